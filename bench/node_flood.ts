/**
 * wstream's client on Node 20 under a flood of tiny messages, against npm
 * `ws`'s client on the same Node: each sends COUNT messages of SIZE bytes
 * to one echo server (npm `ws` on `node:http` under Deno, the `ws-http`
 * server of bench/_echo_peer.ts) and reads the echoes. wstream runs from
 * the Node build (scripts/build_npm.ts) twice: writes not awaited at all,
 * and writes that wait for `writer.ready`. Medians of `--repeat` runs.
 *
 *     flock /tmp/wstream-bench.lock deno run -A bench/node_flood.ts \
 *       [--count 100000] [--size 64] [--repeat 3]
 *
 * npm `ws` for Node is installed once into `~/.cache/wstream-node-ws`.
 *
 * @module
 */

import { buildNode } from "../scripts/build_npm.ts";
import { cacheDir, installFromNpm } from "../scripts/npm_cache.ts";

const WS_PACKAGE = "ws@8.23.0";
const CLIENT = new URL("_node_flood_client.mjs", import.meta.url).pathname;
const PEER = new URL("_echo_peer.ts", import.meta.url).pathname;
const IMPORT_MAP = new URL("../import_map.npm.json", import.meta.url).pathname;
const MODES = ["ws", "unawaited", "ready"] as const;
const decoder = new TextDecoder();

function option(name: string, fallback: number): number {
  const index = Deno.args.indexOf(`--${name}`);
  return index === -1 ? fallback : Number(Deno.args[index + 1]);
}

async function firstLine(stream: ReadableStream<Uint8Array>): Promise<string> {
  let text = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    text += chunk;
    if (text.includes("\n")) break;
  }
  return text.split("\n")[0];
}

async function runClient(args: string[]): Promise<number> {
  const { success, stdout, stderr } = await new Deno.Command("node", {
    args: [CLIENT, ...args],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(300_000),
  }).output();
  if (!success) {
    throw new Error(
      `expected the client to finish, found: ${decoder.decode(stderr)}`,
    );
  }
  return (JSON.parse(decoder.decode(stdout)) as { msgs_per_s: number })
    .msgs_per_s;
}

const count = option("count", 100_000);
const size = option("size", 64);
const repeat = option("repeat", 3);
const wsPrefix = cacheDir("wstream-node-ws");
const failure = await installFromNpm(wsPrefix, [WS_PACKAGE]);
if (failure) throw new Error(failure);
const buildDir = await Deno.makeTempDir({ prefix: "wstream-node-" });
const modules: Record<(typeof MODES)[number], string> = {
  ws: `${wsPrefix}/node_modules/ws/index.js`,
  unawaited: await buildNode(buildDir),
  ready: `${buildDir}/mod.js`,
};
const server = new Deno.Command(Deno.execPath(), {
  args: ["run", "-A", `--import-map=${IMPORT_MAP}`, PEER, "server", "ws-http"],
  stdout: "piped",
}).spawn();
try {
  const { port } = JSON.parse(await firstLine(server.stdout)) as {
    port: number;
  };
  const url = `ws://127.0.0.1:${port}/`;
  const medians: Record<string, number> = {};
  for (const mode of MODES) {
    const runs: number[] = [];
    for (let i = 0; i < repeat; i++) {
      runs.push(
        await runClient([
          mode,
          modules[mode],
          url,
          String(count),
          String(size),
        ]),
      );
    }
    runs.sort((a, b) => a - b);
    medians[mode] = runs[Math.floor(runs.length / 2)];
    console.log(`${mode}: ${runs.join(", ")} msg/s (median ${medians[mode]})`);
  }
  for (const mode of ["unawaited", "ready"]) {
    console.log(
      `wstream ${mode} ÷ npm ws: ${(medians[mode] / medians.ws).toFixed(2)}×`,
    );
  }
} finally {
  server.kill();
  await server.status;
  await Deno.remove(buildDir, { recursive: true });
}
