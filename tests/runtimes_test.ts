/**
 * wstream on Node (≥ 20) and Bun: the build of scripts/build_npm.ts runs
 * tests/runtimes/core_scenarios.mjs in a child process of each runtime,
 * against peers in this (Deno) process: npm `ws` on node:http as the server
 * of connect() and WebSocketStream, wstream's connect() as the client of
 * handleUpgrade(). Locally a missing runtime skips its tests with one line;
 * under CI=true it fails them.
 *
 * @module
 */

import {
  assert,
  assertEquals,
  assertRejects,
  assertStringIncludes,
} from "@std/assert";
// A test-only peer from npm, so it is not in deno.json's imports.
// deno-lint-ignore no-import-prefix
import { WebSocketServer } from "npm:ws@8.23.0";
import { createServer, type Server } from "node:http";
import type { Socket } from "node:net";
import { buildNode } from "../scripts/build_npm.ts";
import { findBun } from "../bench/_bun.ts";
import { connect } from "../src/client.ts";
import { WebSocketHandshakeError } from "../src/handshake_error.ts";
import { rawUpgradeUnsupported } from "../src/runtime.ts";
import { readJsonLines, requirePeer } from "./interop/_peers.ts";
import { certificateOrSkip, within } from "./_socket_util.ts";
import {
  cacheOnlyEnv,
  requireTinyproxy,
  startTinyproxy,
} from "./_tinyproxy.ts";
import { serve } from "../src/server.ts";

const SCENARIOS = new URL("runtimes/core_scenarios.mjs", import.meta.url)
  .pathname;
// A child runs at most this long (core_scenarios.mjs also stops itself).
const CHILD_TIMEOUT_MS = 30_000;
const decoder = new TextDecoder();

type Line = Record<string, unknown>;

interface RuntimeUnderTest {
  name: string;
  /** The binary, or why there is none. */
  find(): Promise<{ path: string } | { skip: string }>;
  installHint: string;
}

async function versionOf(binary: string): Promise<string> {
  const { stdout } = await new Deno.Command(binary, { args: ["--version"] })
    .output();
  return decoder.decode(stdout).trim();
}

async function findNode(): Promise<{ path: string } | { skip: string }> {
  try {
    const { stdout } = await new Deno.Command("node", { args: ["--version"] })
      .output();
    const version = decoder.decode(stdout).trim();
    const major = Number(/^v(\d+)\./.exec(version)?.[1]);
    return major >= 20
      ? { path: "node" }
      : { skip: `expected Node 20 or later, found ${version}` };
  } catch {
    return { skip: "no node on PATH" };
  }
}

const RUNTIMES: RuntimeUnderTest[] = [
  { name: "Node", find: findNode, installHint: "Node.js 20 or later" },
  { name: "Bun", find: findBun, installHint: "npm install bun@1" },
];

// One build for all the tests of this file, into a temporary directory.
let built: Promise<string> | undefined;
function buildOnce(): Promise<string> {
  return built ??= Deno.makeTempDir({ prefix: "wstream-node-" }).then(
    buildNode,
  );
}

// The runtime's binary, or undefined when the test is to be skipped.
async function runtimeBinary(
  runtime: RuntimeUnderTest,
): Promise<string | undefined> {
  const found = await runtime.find();
  if ("path" in found) return found.path;
  return requirePeer(
      runtime.name,
      false,
      `${runtime.installHint} (${found.skip})`,
    )
    ? undefined
    : undefined;
}

interface Child {
  process: Deno.ChildProcess;
  lines: Line[];
  /** Resolves with the next line that `match` accepts. */
  next(match: (line: Line) => boolean): Promise<Line>;
  /** Ends the child's stdin; resolves with its exit code and stderr. */
  finish(): Promise<{ code: number; stderr: string }>;
}

// The child gets PATH and HOME and `env`: no proxy setting of the machine
// leaks in.
function spawnScenarios(
  binary: string,
  args: string[],
  env: Record<string, string> = {},
): Child {
  const process = new Deno.Command(binary, {
    args: [SCENARIOS, ...args],
    clearEnv: true,
    env: { ...cacheOnlyEnv(), ...env },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => process.kill("SIGKILL"), CHILD_TIMEOUT_MS);
  const lines: Line[] = [];
  const waiters: Array<
    { match: (line: Line) => boolean; resolve(line: Line): void }
  > = [];
  const reading = readJsonLines(process.stdout, (line) => {
    lines.push(line);
    for (const waiter of [...waiters]) {
      if (waiter.match(line)) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(line);
      }
    }
  });
  const stderr = new Response(process.stderr).text();
  return {
    process,
    lines,
    next(match) {
      const seen = lines.find(match);
      if (seen) return Promise.resolve(seen);
      return within(
        CHILD_TIMEOUT_MS,
        new Promise((resolve) => waiters.push({ match, resolve })),
        `a line from ${binary} ${args[0]}`,
      );
    },
    async finish() {
      await process.stdin.close().catch(() => {});
      const { code } = await process.status;
      clearTimeout(timer);
      await reading;
      return { code, stderr: await stderr };
    },
  };
}

function scenario(lines: Line[], name: string): Line {
  const line = lines.find((line) => line.scenario === name);
  if (!line) {
    throw new Error(
      `expected a "${name}" line, found ${JSON.stringify(lines)}`,
    );
  }
  return line;
}

/** The part of an npm ws socket the peer uses. */
interface WsSocket {
  on(event: string, listener: (...args: never[]) => void): void;
  send(data: string | Uint8Array, options?: { binary: boolean }): void;
}

interface ServerEnd {
  path: string;
  code: number;
  reason: string;
  bytesRead: number;
}

/** npm ws on node:http: echoes, and sends 2,048 bytes on /big. */
async function startWsPeer(): Promise<
  { server: Server; port: number; ends: ServerEnd[] } & AsyncDisposable
> {
  const server = createServer();
  const wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: { threshold: 0 },
  });
  const ends: ServerEnd[] = [];
  server.on("upgrade", (request, socket, head) => {
    wss.handleUpgrade(request, socket, head, (ws: WsSocket) => {
      const path = request.url ?? "";
      ws.on(
        "message",
        (data: Uint8Array, isBinary: boolean) =>
          ws.send(data, { binary: isBinary }),
      );
      ws.on("close", (code: number, reason: Uint8Array) =>
        ends.push({
          path,
          code,
          reason: decoder.decode(reason),
          bytesRead: (socket as Socket).bytesRead,
        }));
      if (path === "/big") ws.send("x".repeat(2048));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  return {
    server,
    port,
    ends,
    async [Symbol.asyncDispose]() {
      for (const client of wss.clients) client.terminate();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

async function waitForEnd(ends: ServerEnd[], path: string): Promise<ServerEnd> {
  return await within(
    5000,
    (async () => {
      while (true) {
        const end = ends.find((end) => end.path === path);
        if (end) return end;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    })(),
    `npm ws seeing the end of ${path}`,
  );
}

for (const runtime of RUNTIMES) {
  Deno.test(`${runtime.name}: connect(), WebSocketStream, WebSocket and reconnecting() talk to npm ws (echo, deflate, close, maxMessageBytes)`, async () => {
    const binary = await runtimeBinary(runtime);
    if (!binary) return;
    const mod = await buildOnce();
    await using peer = await startWsPeer();
    const child = spawnScenarios(binary, [
      "client",
      mod,
      `ws://127.0.0.1:${peer.port}/`,
    ]);
    const { code, stderr } = await child.finish();
    assertEquals(code, 0, `${runtime.name} failed: ${stderr}`);

    const echo = scenario(child.lines, "echo");
    assertEquals(echo.messages, ["héllo", [0, 1, 2, 250]]);
    assertEquals((echo.closed as { closeCode: number }).closeCode, 1000);

    const deflate = scenario(child.lines, "deflate");
    assertStringIncludes(deflate.extensions as string, "permessage-deflate");
    assertEquals(deflate.echoedIntact, true);
    // 100,000 bytes of text crossed as far fewer: compressed on the wire.
    const deflateEnd = await waitForEnd(peer.ends, "/deflate");
    assert(
      deflateEnd.bytesRead < 10_000,
      `expected a compressed message, found ${deflateEnd.bytesRead} bytes read`,
    );

    const close = scenario(child.lines, "close");
    assertEquals(close.closed, {
      closeCode: 4000,
      reason: "bye",
      wasClean: true,
    });
    const closeEnd = await waitForEnd(peer.ends, "/close");
    assertEquals([closeEnd.code, closeEnd.reason], [4000, "bye"]);

    const limit = scenario(child.lines, "limit");
    assertEquals(limit.received, 0);
    assertStringIncludes(limit.error as string, "1024");
    assertEquals((limit.closed as { closeCode: number }).closeCode, 1009);
    assertEquals((await waitForEnd(peer.ends, "/big")).code, 1009);

    assertEquals(scenario(child.lines, "burst"), {
      scenario: "burst",
      count: 2000,
      intact: true,
    });

    const stream = scenario(child.lines, "websocketstream");
    assertEquals(stream.messages, ["through WebSocketStream"]);
    assertStringIncludes(stream.extensions as string, "permessage-deflate");
    assertEquals(stream.closed, { closeCode: 1000, reason: "done" });

    assertEquals(scenario(child.lines, "websocket").events, [
      "open",
      ["message", [7, 7]],
      ["close", 4002, "whatwg", true],
    ]);
    const reconnected = scenario(child.lines, "reconnecting");
    assertEquals(reconnected.messages, ["again"]);
    assertEquals(
      (reconnected.closed as { closeCode: number }).closeCode,
      1000,
    );
  });

  Deno.test(`${runtime.name}: handleUpgrade on node:http serves connect() (echo, deflate, close, maxMessageBytes)`, async () => {
    const binary = await runtimeBinary(runtime);
    if (!binary) return;
    const mod = await buildOnce();
    const refusal = runtime.name === "Bun"
      ? rawUpgradeUnsupported(await versionOf(binary))
      : undefined;
    const child = spawnScenarios(binary, ["server", mod]);
    try {
      const { port } = await child.next((line) => line.event === "listening");
      const base = `ws://127.0.0.1:${port}`;
      if (refusal !== undefined) {
        // An older Bun: refused at once with the reason, no hang.
        await assertRejects(
          () => connect(`${base}/echo`, { proxy: false }),
          WebSocketHandshakeError,
        );
        const { stderr } = await child.finish();
        assertStringIncludes(stderr, refusal);
        return console.log(`only the refusal is checked: ${refusal}`);
      }
      const ended = (path: string) =>
        child.next((line) => line.event === "closed" && line.path === path);

      // A plain route on the same port.
      const page = await fetch(`http://127.0.0.1:${port}/hello`);
      assertEquals(await page.text(), "page");

      const echo = await connect(`${base}/echo`, { proxy: false });
      const writer = echo.writable.getWriter();
      await writer.write("héllo");
      await writer.write(new Uint8Array([0, 1, 2, 250]));
      const reader = echo.readable.getReader();
      assertEquals((await reader.read()).value, "héllo");
      assertEquals((await reader.read()).value, new Uint8Array([0, 1, 2, 250]));
      reader.releaseLock();
      await writer.close();
      assertEquals((await echo.closed).closeCode, 1000);
      assertEquals((await ended("/echo")).closed, {
        closeCode: 1000,
        reason: "",
        wasClean: true,
      });

      const deflate = await connect(`${base}/deflate`, { proxy: false });
      assertStringIncludes(deflate.extensions, "permessage-deflate");
      const text = "abcd".repeat(25_000);
      const deflateWriter = deflate.writable.getWriter();
      await deflateWriter.write(text);
      const deflateReader = deflate.readable.getReader();
      assertEquals((await deflateReader.read()).value, text);
      deflateReader.releaseLock();
      await deflateWriter.close();
      await deflate.closed;
      const deflateEnd = await ended("/deflate");
      assertStringIncludes(
        deflateEnd.extensions as string,
        "permessage-deflate",
      );
      assert(
        (deflateEnd.bytesRead as number) < 10_000,
        `expected a compressed message, found ${deflateEnd.bytesRead} bytes read`,
      );

      // 2,000 mixed-size messages pipelined: the server's frames come from
      // pooled buffers reused once the runtime says a write is done.
      const burst = Array.from({ length: 2000 }, (_, i) => {
        const bytes = new Uint8Array(1 + (i * 7919) % 9000);
        for (let j = 0; j < bytes.length; j++) bytes[j] = (i + j * 31) & 0xff;
        return bytes;
      });
      const piped = await connect(`${base}/burst`, { proxy: false });
      const pipedWriter = piped.writable.getWriter();
      const writes = burst.map((message) => pipedWriter.write(message));
      const pipedReader = piped.readable.getReader();
      for (const [i, message] of burst.entries()) {
        const { value } = await within(5000, pipedReader.read(), "an echo");
        assertEquals(value, message, `message ${i}`);
      }
      pipedReader.releaseLock();
      await Promise.all(writes);
      await pipedWriter.close();
      assertEquals((await piped.closed).closeCode, 1000);

      const closing = await connect(`${base}/close`, { proxy: false });
      closing.close({ closeCode: 4001, reason: "bye" });
      assertEquals((await closing.closed).closeCode, 4001);
      assertEquals((await ended("/close")).closed, {
        closeCode: 4001,
        reason: "bye",
        wasClean: true,
      });

      // maxMessageBytes is 200,000 on the child's side.
      const big = await connect(`${base}/big`, { proxy: false });
      const bigWriter = big.writable.getWriter();
      await bigWriter.write(new Uint8Array(300_000));
      // The peer's Close ends the readable; closing ours answers it.
      const bigReader = big.readable.getReader();
      assertEquals((await bigReader.read()).done, true);
      await bigWriter.close();
      const closed = await within(5000, big.closed, "the 1009 close");
      assertEquals(closed.closeCode, 1009);
      assertEquals(
        ((await ended("/big")).closed as { closeCode: number }).closeCode,
        1009,
      );
    } finally {
      const { code, stderr } = await child.finish();
      assertEquals(code, 0, `${runtime.name} failed: ${stderr}`);
    }
  });

  Deno.test(`${runtime.name}: the codec streams decode what they encode`, async () => {
    const binary = await runtimeBinary(runtime);
    if (!binary) return;
    const child = spawnScenarios(binary, ["codec", await buildOnce()]);
    const { code, stderr } = await child.finish();
    assertEquals(code, 0, `${runtime.name} failed: ${stderr}`);
    const codec = scenario(child.lines, "codec");
    assertEquals(codec.messages, ["fragmented", [9, 8, 7]]);
    assertEquals(codec.controlFrames, [9]);
    assertEquals(codec.firstFrameMasked, true);
  });
}

for (const runtime of RUNTIMES) {
  Deno.test(`${runtime.name}: connect() over node:tls and through a proxy; its failures; serve() and upgrade() refused`, async () => {
    const binary = await runtimeBinary(runtime);
    if (!binary || !(await requireTinyproxy())) return;
    const certificate = await certificateOrSkip();
    if (!certificate) return;
    const echo = (
      socket: { readable: ReadableStream; writable: WritableStream },
    ) => socket.readable.pipeTo(socket.writable);
    await using plain = serve({ port: 0, hostname: "127.0.0.1" }, echo);
    await using secure = serve(
      { port: 0, hostname: "127.0.0.1", ...certificate },
      echo,
    );
    await using proxy = await startTinyproxy({
      connectPorts: [plain.addr.port, secure.addr.port],
      basicAuth: ["alice", "s3cret"],
    });
    const closedPort = (() => {
      const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      listener.close();
      return listener.addr.port;
    })();
    // Accepts connections and never answers them.
    using silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const held: Deno.Conn[] = [];
    const accepting = (async () => {
      for await (const conn of silent) held.push(conn);
    })().catch(() => {});
    const config = {
      silentUrl: `ws://127.0.0.1:${silent.addr.port}/`,
      wssUrl: `wss://localhost:${secure.addr.port}/`,
      caCert: certificate.cert,
      proxyUrl: proxy.url,
      plainUrl: `ws://127.0.0.1:${plain.addr.port}/`,
      refusedUrl: `ws://127.0.0.1:${closedPort}/`,
    };
    const child = spawnScenarios(
      binary,
      ["network", await buildOnce(), JSON.stringify(config)],
      { HTTP_PROXY: proxy.url },
    );
    const { code, stderr } = await child.finish();
    for (const conn of held) conn.close();
    silent.close();
    await accepting;
    assertEquals(code, 0, `${runtime.name} failed: ${stderr}`);
    const closedNormally = { closeCode: 1000, reason: "", wasClean: true };

    assertEquals(scenario(child.lines, "wss"), {
      scenario: "wss",
      echoed: "over tls",
      closed: closedNormally,
    });
    const untrusted = scenario(child.lines, "untrusted certificate");
    assertEquals(
      [untrusted.settled, untrusted.handshakeError, untrusted.transient],
      ["rejected", true, false],
    );
    assertStringIncludes(untrusted.message as string, "certificate");

    assertEquals(
      scenario(child.lines, "proxy from HTTP_PROXY").echoed,
      "via env proxy",
    );
    assertEquals(
      scenario(child.lines, "wss through proxy").echoed,
      "tls in tunnel",
    );
    const log = await proxy.log();
    assertStringIncludes(log, `CONNECT 127.0.0.1:${plain.addr.port}`);
    assertStringIncludes(log, `CONNECT localhost:${secure.addr.port}`);

    const refused = scenario(child.lines, "refused");
    assertEquals(
      [refused.settled, refused.handshakeError, refused.transient],
      ["rejected", true, true],
    );
    assertStringIncludes(
      refused.message as string,
      `could not connect to 127.0.0.1:${closedPort}`,
    );

    const silentEnd = scenario(child.lines, "silent server");
    assertEquals(
      [silentEnd.settled, silentEnd.handshakeError, silentEnd.transient],
      ["rejected", true, true],
    );
    assertStringIncludes(silentEnd.message as string, "within 300 ms");

    const denoOnly = scenario(child.lines, "deno only");
    for (const entry of ["serve", "upgrade"] as const) {
      const result = denoOnly[entry] as Record<string, string>;
      assertEquals([result.settled, result.name], ["threw", "TypeError"]);
      assertStringIncludes(result.message, `expected Deno for ${entry}()`);
    }
  });
}
