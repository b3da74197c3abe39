import { assertEquals, assertMatch, assertThrows } from "@std/assert";
import { serve } from "../mod.ts";
import { type CliIo, parseCliArgs, runCli } from "../src/cli.ts";
import {
  cacheOnlyEnv,
  requireTinyproxy,
  startTinyproxy,
} from "./_tinyproxy.ts";
import { within } from "./_socket_util.ts";

const CLI = new URL("../src/cli.ts", import.meta.url).pathname;
const IMPORT_MAP = new URL("../import_map.npm.json", import.meta.url).pathname;

/** An in-memory CliIo whose stdin the test feeds line by line. */
function memoryIo() {
  const log: string[] = [];
  const chunks: Uint8Array[] = [];
  let feed!: ReadableStreamDefaultController<Uint8Array>;
  const waiters: [RegExp, () => void][] = [];
  const io: CliIo = {
    stdin: new ReadableStream({ start: (c) => void (feed = c) }),
    stdout: new WritableStream({ write: (chunk) => void chunks.push(chunk) }),
    log: (line) => {
      log.push(line);
      for (const [pattern, resolve] of waiters) {
        if (pattern.test(line)) resolve();
      }
    },
  };
  return {
    io,
    log,
    stdout: () =>
      new TextDecoder().decode(new Uint8Array(chunks.flatMap((c) => [...c]))),
    send: (line: string) => feed.enqueue(new TextEncoder().encode(line + "\n")),
    end: () => feed.close(),
    /** Resolves when the `count`-th log line matching `pattern` appears. */
    waitFor(pattern: RegExp, count = 1) {
      return new Promise<void>((resolve) => {
        const check = () => {
          if (log.filter((line) => pattern.test(line)).length >= count) {
            resolve();
            return true;
          }
          return false;
        };
        if (!check()) waiters.push([pattern, () => void check()]);
      });
    },
  };
}

Deno.test("parseCliArgs reads --reconnect, --proxy and --no-proxy", () => {
  const options = parseCliArgs([
    "--reconnect",
    "--proxy",
    "http://u:p@127.0.0.1:3128",
    "ws://h/",
  ]);
  assertEquals([options.reconnect, options.proxy], [
    true,
    "http://u:p@127.0.0.1:3128",
  ]);
  assertEquals(parseCliArgs(["--no-proxy", "ws://h/"]).proxy, false);
  assertEquals(parseCliArgs(["ws://h/"]).proxy, undefined);
  assertThrows(
    () => parseCliArgs(["--proxy", "nonsense", "ws://h/"]),
    TypeError,
    "expected --proxy to be a URL",
  );
  assertThrows(
    () => parseCliArgs(["ws://h/", "--proxy"]),
    TypeError,
    "expected a value after --proxy",
  );
});

Deno.test("cli --reconnect: a server restart (1012) reconnects, stdin goes on to the new socket, its end closes with 1000", async () => {
  let connections = 0;
  await using server = serve(
    { port: 0, hostname: "127.0.0.1" },
    async (socket) => {
      if (++connections === 1) {
        const writer = socket.writable.getWriter();
        await writer.write("first connection");
        socket.close({ closeCode: 1012, reason: "restarting" });
        return;
      }
      await socket.readable.pipeTo(socket.writable);
    },
  );
  const url = `ws://127.0.0.1:${server.addr.port}/`;
  const session = memoryIo();
  const running = runCli(
    ["--reconnect", "--no-proxy", "--no-compression", url],
    session.io,
  );
  await within(
    5000,
    session.waitFor(/^connected to /, 2),
    "the second connection",
  );
  session.send("after the restart");
  // The echo comes back before stdin ends (which closes the socket).
  await within(
    3000,
    (async () => {
      while (!session.stdout().includes("after the restart")) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    })(),
    "the echo",
  );
  session.end();
  assertEquals(await within(5000, running, "the CLI"), 0);
  assertEquals(session.stdout(), "first connection\nafter the restart\n");
  assertEquals(session.log[0], `connected to ${url}`);
  assertEquals(session.log[1], 'closed: 1012 "restarting"');
  assertMatch(
    session.log[2],
    /^reconnecting in \d+ ms \(failure 1\): the connection to .* closed with 1012/,
  );
  assertEquals(session.log.slice(3), [
    `connected to ${url}`,
    "closed: 1000 (normal closure)",
  ]);
  assertEquals(connections, 2);
});

Deno.test("cli --reconnect: a 403 stops it at once with status 1", async () => {
  await using server = serve({
    port: 0,
    hostname: "127.0.0.1",
    authorize: () => false,
  }, () => {});
  const session = memoryIo();
  const status = await within(
    5000,
    runCli(["--reconnect", `ws://127.0.0.1:${server.addr.port}/`], session.io),
    "the CLI",
  );
  assertEquals(status, 1);
  assertEquals(session.log.length, 1);
  assertMatch(
    session.log[0],
    /^error: could not open a WebSocket to .*found 403 Forbidden/,
  );
});

Deno.test("cli --proxy and HTTP_PROXY: through a real tinyproxy", async () => {
  if (!(await requireTinyproxy())) return;
  await using server = serve(
    { port: 0, hostname: "127.0.0.1" },
    (socket) => socket.readable.pipeTo(socket.writable),
  );
  await using proxy = await startTinyproxy({
    connectPorts: [server.addr.port],
  });
  const url = `ws://127.0.0.1:${server.addr.port}/`;
  const connects = async () =>
    (await proxy.log()).split(`CONNECT 127.0.0.1:${server.addr.port}`).length -
    1;

  const session = memoryIo();
  const running = runCli(["--proxy", proxy.url, url], session.io);
  session.send("via --proxy");
  session.end();
  assertEquals(await within(5000, running, "the CLI"), 0);
  assertEquals(session.stdout(), "via --proxy\n");
  assertEquals(await connects(), 1);

  // The environment variable, in a child process (and --no-proxy beats it).
  const run = async (args: string[]) => {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", `--import-map=${IMPORT_MAP}`, "-A", CLI, ...args, url],
      // Only what Deno needs to find its cache, and the proxy under test.
      env: {
        ...cacheOnlyEnv(),
        HTTP_PROXY: proxy.url,
        NO_COLOR: "1",
      },
      clearEnv: true,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(20_000),
    }).spawn();
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode("via env\n"));
    await writer.close();
    const output = await child.output();
    return {
      code: output.code,
      stdout: new TextDecoder().decode(output.stdout),
    };
  };
  const viaEnv = await run([]);
  assertEquals([viaEnv.code, viaEnv.stdout], [0, "via env\n"]);
  assertEquals(await connects(), 2);
  const direct = await run(["--no-proxy"]);
  assertEquals([direct.code, direct.stdout], [0, "via env\n"]);
  assertEquals(await connects(), 2, "--no-proxy went around the proxy");
});
