/**
 * Where the memory of an idle WebSocket connection goes (issue 18): the
 * servers of `_idle_floor_peer.ts` (a bare Deno floor built up step by
 * step, wstream's `serve()` with a `pipeTo` echo handler, Deno's built-in
 * server), each in its own process, each held at 2,000 idle connections by
 * `loadgen --idle` as `bench:echo`'s idle workload does. Besides loadgen's
 * VmRSS delta per connection it shows, per connection, the deltas of the
 * V8 heap's committed size (`heapTotal`), its used bytes, `external`, and
 * the rest of RSS (malloc, stacks, code), and the threads the process has.
 *
 *     flock /tmp/wstream-bench.lock deno run -A bench/idle_floor.ts [--repeat 3] [kinds...]
 *
 * Kinds: builtin, accept, read, streams, wstream (all by default). A kind
 * with `:nojit` runs its server with `--v8-flags=--no-maglev,--no-turbofan`
 * (what the optimizing compilers' memory costs); with `:second`, the
 * figures are those of a second 2,000 connections opened while the first
 * 2,000 stay open (the cost of one more connection, once the code is
 * compiled, the threads started and the young generation grown); with
 * `:alloc`, the young generation is 128 MiB from the start, so no scavenge
 * runs and `heapUsed` is all the JS heap a connection allocates.
 *
 * @module
 */

import { buildLoadgen, runLoadgen, startServer } from "./echo_e2e.ts";

const PEER = new URL("./_idle_floor_peer.ts", import.meta.url).pathname;
const IMPORT_MAP = new URL("../import_map.npm.json", import.meta.url).pathname;
const CONNS = 2000;
const KINDS = ["builtin", "accept", "read", "streams", "wstream"];

interface Sample {
  rssKb: number;
  threads: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
}

async function statusOf(pid: number): Promise<Record<string, number>> {
  const text = await Deno.readTextFile(`/proc/${pid}/status`);
  const field = (name: string) =>
    Number(text.match(new RegExp(`^${name}:\\s+(\\d+)`, "m"))?.[1]);
  return { rssKb: field("VmRSS"), threads: field("Threads") };
}

async function sample(pid: number, statsFile: string): Promise<Sample> {
  await Deno.remove(statsFile).catch(() => {});
  const status = await statusOf(pid);
  Deno.kill(pid, "SIGUSR2");
  for (let i = 0; i < 200; i++) {
    const text = await Deno.readTextFile(statsFile).catch(() => "");
    if (text.endsWith("\n")) {
      const usage = JSON.parse(text);
      return {
        rssKb: status.rssKb,
        threads: status.threads,
        heapTotal: usage.heapTotal,
        heapUsed: usage.heapUsed,
        external: usage.external,
      };
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`no memory usage from ${pid}`);
}

async function openFds(pid: number): Promise<number> {
  let count = 0;
  for await (const _ of Deno.readDir(`/proc/${pid}/fd`)) count++;
  return count;
}

// Opens CONNS idle connections (held for holdS seconds); resolves with
// loadgen's result once it has closed them, and `held` once they are open.
function holdIdle(
  loadgen: string,
  server: { pid: number; port: number },
  holdS: number,
  fds: number,
) {
  const run = runLoadgen(loadgen, [
    "--port",
    String(server.port),
    "--pid",
    String(server.pid),
    "--idle",
    String(CONNS),
    "--hold",
    String(holdS),
  ], 90_000);
  const held = (async () => {
    const start = performance.now();
    while (await openFds(server.pid) < fds + CONNS) {
      if (performance.now() - start > 30_000) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    // Sampled shortly before loadgen's own sample (1 s after opening).
    await new Promise((resolve) => setTimeout(resolve, 700));
  })();
  return { run, held };
}

// kind, or kind:nojit (no Maglev, no Turbofan), or kind:second (the figures
// of a second 2,000 connections opened while the first 2,000 stay open).
async function measure(loadgen: string, spec: string) {
  const [kind, variant] = spec.split(":");
  const statsFile = await Deno.makeTempFile({ prefix: "idle_floor_" });
  Deno.env.set("IDLE_FLOOR_STATS", statsFile);
  const flags = variant === "nojit"
    ? ["--v8-flags=--no-maglev,--no-turbofan"]
    : variant === "alloc"
    ? ["--v8-flags=--min-semi-space-size=128,--max-semi-space-size=128"]
    : [];
  const server = await startServer(kind, {
    path: Deno.execPath(),
    args: ["run", "-A", ...flags, `--import-map=${IMPORT_MAP}`, PEER, kind],
  });
  if ("skip" in server) throw new Error(server.skip);
  try {
    let first;
    if (variant === "second") {
      first = holdIdle(loadgen, server, 8, await openFds(server.pid));
      await first.held;
    }
    const before = await sample(server.pid, statsFile);
    const { run, held } = holdIdle(
      loadgen,
      server,
      1,
      await openFds(server.pid),
    );
    await held;
    const after = await sample(server.pid, statsFile);
    const cell = await run;
    await first?.run;
    const per = (a: number, b: number) => (a - b) / CONNS / 1000;
    const rssKb = per(after.rssKb * 1024, before.rssKb * 1024);
    const heapTotal = per(after.heapTotal, before.heapTotal);
    return {
      kind: spec,
      loadgen: Number(cell.raw?.rss_per_conn_bytes) / 1000,
      rss: rssKb,
      heapTotal,
      heapUsed: per(after.heapUsed, before.heapUsed),
      external: per(after.external, before.external),
      rest: rssKb - heapTotal,
      threads: `${before.threads}->${after.threads}`,
    };
  } finally {
    await server.stop();
    await Deno.remove(statsFile).catch(() => {});
  }
}

if (import.meta.main) {
  let repeat = 1;
  const kinds: string[] = [];
  for (let i = 0; i < Deno.args.length; i++) {
    if (Deno.args[i] === "--repeat") repeat = Number(Deno.args[++i]);
    else kinds.push(Deno.args[i]);
  }
  const { loadgen } = await buildLoadgen();
  const rows = [];
  for (let r = 0; r < repeat; r++) {
    for (const kind of kinds.length ? kinds : KINDS) {
      const row = await measure(loadgen, kind);
      rows.push(row);
      console.log(
        [
          row.kind.padEnd(16),
          `loadgen ${row.loadgen.toFixed(1)} KB`,
          `rss ${row.rss.toFixed(1)}`,
          `heapTotal ${row.heapTotal.toFixed(1)}`,
          `heapUsed ${row.heapUsed.toFixed(1)}`,
          `external ${row.external.toFixed(2)}`,
          `rss-heapTotal ${row.rest.toFixed(1)}`,
          `threads ${row.threads}`,
        ].join("  "),
      );
    }
  }
}
