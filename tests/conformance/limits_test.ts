/**
 * Every limit, over real TCP with a raw peer: message bytes, frame bytes,
 * fragments per message (a million 1-byte fragments: bounded memory and
 * time, see the ws 2026 advisory on tiny fragments), header bytes and
 * count, handshake time, close time, outgoing buffered bytes, connections
 * per server.
 *
 * @module
 */

import {
  assert,
  assertEquals,
  assertGreater,
  assertLess,
  assertRejects,
} from "@std/assert";
import { connect } from "../../src/client.ts";
import type { WebSocketConnection } from "../../src/connection.ts";
import { serve } from "../../src/server.ts";
import { WebSocketError } from "../../src/websocket_error.ts";
import {
  type Case,
  closeNormally,
  expectCloseEcho,
  expectEnd,
  expectFail,
  expectMessage,
  type Role,
  runAgainstClient,
  runAgainstServer,
} from "./_cases.ts";
import { runScript } from "../_deno_child.ts";
import { binaryOfBytes } from "./_cases_basic.ts";
import {
  closePayload,
  concat,
  delay,
  OP,
  RawPeer,
  RawServer,
  within,
  writeAll,
} from "./_raw_peer.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function run(role: Role, testCase: Case) {
  return role === "server"
    ? runAgainstServer(testCase)
    : runAgainstClient(testCase);
}

async function bothRoles(
  t: Deno.TestContext,
  testCase: Case,
): Promise<void> {
  for (const role of ["server", "client"] as Role[]) {
    await t.step(`our ${role}`, async () => {
      await run(role, testCase);
    });
  }
}

Deno.test("limit: maxMessageBytes — the limit is accepted, one byte more is 1009", async (t) => {
  const options = { maxMessageBytes: 1000 };
  await bothRoles(t, {
    id: "L1.1",
    title: "exactly the limit",
    options,
    async run(peer, ours) {
      await peer.sendFrames([{
        opcode: OP.binary,
        payload: binaryOfBytes(1000),
      }]);
      await expectMessage(peer, OP.binary, binaryOfBytes(1000));
      await closeNormally(peer, ours);
    },
  });
  await bothRoles(t, {
    id: "L1.2",
    title: "one byte over, in one frame",
    options,
    async run(peer, ours) {
      await peer.sendFrames([{
        opcode: OP.binary,
        payload: binaryOfBytes(1001),
      }]);
      await expectFail(peer, ours, 1009);
    },
  });
  await bothRoles(t, {
    id: "L1.3",
    title: "over the limit across fragments: 1009 before the final one",
    options,
    async run(peer, ours) {
      const piece = binaryOfBytes(300);
      await peer.sendFrames([
        { opcode: OP.binary, payload: piece, fin: false },
        { opcode: OP.cont, payload: piece, fin: false },
        { opcode: OP.cont, payload: piece, fin: false },
        { opcode: OP.cont, payload: piece, fin: false }, // 1200 > 1000
      ]);
      await expectFail(peer, ours, 1009);
    },
  });
});

Deno.test("limit: maxFrameBytes — a header announcing more is 1009 before any payload", async (t) => {
  for (
    const [title, options, length] of [
      [
        "maxFrameBytes 1 MiB, a 1 MiB + 1 frame",
        { maxFrameBytes: 1 << 20 },
        (1 << 20) + 1,
      ],
      ["the default (64 MiB), a 64 MiB + 1 frame", {}, 64 * (1 << 20) + 1],
      ["the default, a 2^63 - 1 byte frame", {}, Number.MAX_SAFE_INTEGER],
    ] as const
  ) {
    await bothRoles(t, {
      id: "L2",
      title,
      options,
      async run(peer, ours) {
        const header = new Uint8Array(peer.masks ? 14 : 10);
        header[0] = 0x82;
        header[1] = (peer.masks ? 0x80 : 0) | 127;
        new DataView(header.buffer).setBigUint64(2, BigInt(length));
        await peer.send(header); // and not one byte of payload
        await expectFail(peer, ours, 1009);
      },
    });
  }
});

Deno.test("limit: a message of 1,000,000 one-byte fragments costs O(1) memory per fragment and bounded time", async (t) => {
  // In a child process with --expose-gc: the heap retained after a full
  // collection, measured once 999,999 fragments were processed.
  for (const role of ["server", "client"] as Role[]) {
    await t.step(`our ${role}`, async () => {
      const output = await runScript(
        new URL("./_fragment_memory.ts", import.meta.url),
        [role, "1000000"],
        { denoFlags: ["--v8-flags=--expose-gc"], timeoutMs: 120_000 },
      );
      assertEquals(
        output.code,
        0,
        `the measurement failed: ${output.stderr}`,
      );
      const { retainedBytes, seconds } = JSON.parse(
        output.stdout.trim().split("\n").at(-1)!,
      );
      const retainedMiB = retainedBytes / (1 << 20);
      console.log(
        `  1,000,000 fragments: ${seconds.toFixed(2)} s, ${
          retainedMiB.toFixed(1)
        } MiB retained after 999,999 of them`,
      );
      // One retained object per fragment would cost at least ~50 MiB (npm
      // ws before its 2026 fix); O(1) per fragment keeps about the message
      // so far (1 MB, in a buffer that grows by doubling) and read buffers.
      assertLess(
        retainedMiB,
        16,
        "heap retained for a 1 MB fragmented message",
      );
      assertLess(seconds, 30, "time to receive the fragments");
    });
  }
});

// ---- handshake limits ---------------------------------------------------------

async function rawRequest(port: number, head: string): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await writeAll(conn, encoder.encode(head));
    const chunks: Uint8Array[] = [];
    const buffer = new Uint8Array(16 * 1024);
    await within(
      (async () => {
        while (true) {
          let n: number | null;
          try {
            n = await conn.read(buffer);
          } catch {
            break;
          }
          if (n === null) break;
          chunks.push(buffer.slice(0, n));
          // A 101 head is all we want: the WebSocket would go on.
          const text = decoder.decode(concat(chunks));
          if (text.startsWith("HTTP/1.1 101") && text.includes("\r\n\r\n")) {
            break;
          }
        }
      })(),
      5000,
      "the server's answer",
    );
    return decoder.decode(concat(chunks));
  } finally {
    conn.close();
  }
}

function upgradeHead(extra: string[] = []): string {
  return [
    "GET / HTTP/1.1",
    "Host: 127.0.0.1",
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version: 13",
    ...extra,
  ].join("\r\n") + "\r\n\r\n";
}

const statusOf = (response: string) => Number(response.split(" ")[1]);

Deno.test("limit: header count — over maxHeaderCount (and the default 100) is 431", async () => {
  const noop = () => {};
  {
    await using server = serve({
      hostname: "127.0.0.1",
      port: 0,
      maxHeaderCount: 10,
    }, noop);
    const fields = (n: number) =>
      Array.from({ length: n }, (_, i) => `X-${i}: ${i}`);
    // The handshake has 5 fields; 5 more make 10: accepted.
    assertEquals(
      statusOf(await rawRequest(server.addr.port, upgradeHead(fields(5)))),
      101,
    );
    assertEquals(
      statusOf(await rawRequest(server.addr.port, upgradeHead(fields(6)))),
      431,
      "5 + 6 = 11 fields over a limit of 10",
    );
  }
  {
    await using server = serve({ hostname: "127.0.0.1", port: 0 }, () => {});
    const fields = (n: number) =>
      Array.from({ length: n }, (_, i) => `X-${i}: ${i}`);
    // 5 handshake fields + 95 = 100: accepted; + 96 = 101: refused.
    assertEquals(
      statusOf(await rawRequest(server.addr.port, upgradeHead(fields(95)))),
      101,
    );
    assertEquals(
      statusOf(await rawRequest(server.addr.port, upgradeHead(fields(96)))),
      431,
    );
  }
});

Deno.test("limit: header bytes — our client refuses a 101 head over maxHeaderBytes", async () => {
  const raw = new RawServer();
  try {
    const accepting = raw.accept([`X-Big: ${"a".repeat(4000)}`]);
    await assertRejects(
      () =>
        connect(`ws://127.0.0.1:${raw.port}/`, {
          maxHeaderBytes: 2048,
          handshakeTimeoutMs: 3000,
        }),
      WebSocketError,
      "2048",
    );
    const peer = await accepting;
    await peer.close();
  } finally {
    raw.close();
  }
});

Deno.test("limit: handshake time — a server cuts a half-sent head; a client gives up on a silent server", async () => {
  await using server = serve({
    hostname: "127.0.0.1",
    port: 0,
    handshakeTimeoutMs: 300,
  }, () => {});
  const conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: server.addr.port,
  });
  const started = performance.now();
  await writeAll(conn, encoder.encode("GET / HTTP/1.1\r\nHost: x\r\n"));
  const buffer = new Uint8Array(1024);
  const n = await within(
    conn.read(buffer).catch(() => null),
    3000,
    "the server to cut the connection",
  );
  conn.close();
  assertEquals(n, null, "no answer, just the end of the connection");
  const elapsed = performance.now() - started;
  assertGreater(elapsed, 250);
  assertLess(elapsed, 4000);

  const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = silent.accept();
  const clientStarted = performance.now();
  await assertRejects(
    () =>
      connect(`ws://127.0.0.1:${silent.addr.port}/`, {
        handshakeTimeoutMs: 300,
      }),
    WebSocketError,
    "300 ms",
  );
  assertLess(performance.now() - clientStarted, 4000);
  (await accepted).close();
  silent.close();
});

Deno.test("limit: close time — unanswered Close, and an application that never closes", async (t) => {
  await bothRoles(t, {
    id: "L7.1",
    title:
      "our Close is never answered: the TCP connection ends at closeTimeoutMs",
    options: { closeTimeoutMs: 300 },
    handler: async (socket) => {
      socket.close({ closeCode: 1000 });
      await socket.closed;
    },
    async run(peer, ours) {
      const started = performance.now();
      const frame = await peer.nextFrame();
      assertEquals(frame.opcode, OP.close);
      await expectEnd(peer); // we send nothing back
      const elapsed = performance.now() - started;
      assertGreater(elapsed, 250);
      assertLess(elapsed, 4000);
      const result = await ours.socket.closed;
      assertEquals([result.closeCode, result.wasClean], [1006, false]);
    },
  });
  await bothRoles(t, {
    id: "L7.2",
    title:
      "the peer's Close while the application holds writable: answered at closeTimeoutMs",
    options: { closeTimeoutMs: 300 },
    handler: async (socket) => {
      const writer = socket.writable.getWriter(); // and never closed
      await socket.closed;
      writer.releaseLock();
    },
    async run(peer, ours) {
      const started = performance.now();
      await peer.sendFrames([{
        opcode: OP.close,
        payload: closePayload(1000),
      }]);
      await expectCloseEcho(peer, 1000);
      const elapsed = performance.now() - started;
      assertGreater(elapsed, 250);
      assertLess(elapsed, 4000);
      if (ours.role === "server") await expectEnd(peer);
      else await peer.close();
      assertEquals((await ours.socket.closed).closeCode, 1000);
    },
  });
});

// Connects, upgrades, and then never reads again.
async function upgradeAndStopReading(port: number): Promise<Deno.Conn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await writeAll(conn, encoder.encode(upgradeHead()));
  const buffer = new Uint8Array(1024);
  let head = "";
  while (!head.includes("\r\n\r\n")) {
    const n = await conn.read(buffer);
    if (n === null) throw new Error("expected a 101, found the end");
    head += decoder.decode(buffer.subarray(0, n));
  }
  assertEquals(statusOf(head), 101);
  return conn;
}

Deno.test("limit: maxBufferedBytes — a peer that never reads stalls writable with bounded memory", async () => {
  const maxBufferedBytes = 256 * 1024;
  const message = new Uint8Array(64 * 1024);
  let resolveStalled!: (info: { accepted: number; buffered: number }) => void;
  const stalled = new Promise<{ accepted: number; buffered: number }>((r) =>
    resolveStalled = r
  );
  let socketClosed: Promise<unknown> | undefined;
  await using server = serve(
    { hostname: "127.0.0.1", port: 0, maxBufferedBytes, closeTimeoutMs: 300 },
    async (socket) => {
      socketClosed = socket.closed;
      const writer = socket.writable.getWriter();
      let accepted = 0;
      let maxBuffered = 0;
      try {
        while (true) {
          const write = writer.write(message);
          write.catch(() => {});
          // A write that stays pending for 300 ms: backpressure holds.
          const done = await Promise.race([
            write.then(() => true),
            delay(300).then(() => false),
          ]);
          maxBuffered = Math.max(maxBuffered, socket.bufferedAmount);
          if (!done) break;
          accepted++;
          if (accepted > 10_000) break;
        }
      } catch {
        // The connection ended.
      }
      resolveStalled({ accepted, buffered: maxBuffered });
      writer.releaseLock();
      socket.close();
      await socket.closed;
    },
  );
  const conn = await upgradeAndStopReading(server.addr.port);
  const { accepted, buffered } = await within(stalled, 30_000, "the stall");
  conn.close();
  await within(socketClosed!, 5000, "the socket to end");
  console.log(
    `  accepted ${accepted} × 64 KiB before the stall (kernel buffers included); bufferedAmount peaked at ${buffered} bytes`,
  );
  assertLess(accepted, 10_000, "writes stall: backpressure reaches writable");
  assert(
    buffered <= maxBufferedBytes + message.length,
    `bufferedAmount ${buffered} stays within maxBufferedBytes + one message`,
  );
});

Deno.test("limit: maxConnections — one more is 503; a freed slot is usable again", async () => {
  const sockets: WebSocketConnection[] = [];
  await using server = serve(
    { hostname: "127.0.0.1", port: 0, maxConnections: 2 },
    async (socket) => {
      sockets.push(socket);
      await socket.readable.pipeTo(socket.writable).catch(() => {});
    },
  );
  const first = await RawPeer.connect(server.addr.port);
  const second = await RawPeer.connect(server.addr.port);
  const response = await rawRequest(server.addr.port, upgradeHead());
  assertEquals(statusOf(response), 503);
  await first.sendFrames([{ opcode: OP.close, payload: closePayload(1000) }]);
  await expectCloseEcho(first, 1000);
  await expectEnd(first);
  await first.close();
  // The slot is freed once the socket has ended.
  await within(sockets[0].closed, 3000, "the first socket to end");
  await delay(20);
  const third = await RawPeer.connect(server.addr.port);
  await third.sendFrames([{ opcode: OP.text, payload: "still serving" }]);
  await expectMessage(third, OP.text, "still serving");
  await third.close();
  await second.close();
});
