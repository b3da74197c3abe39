/**
 * Faults, bounded and on loopback: peers that reset mid-frame, vanish
 * without Close, send after Close or half-close (each socket ends with the
 * right code, the server keeps serving, sanitizers on); `shutdown()` under
 * load; a slow consumer that never reads.
 *
 * @module
 */

import { assert, assertEquals, assertLess } from "@std/assert";
import { connect } from "../../src/client.ts";
import type { WebSocketConnection } from "../../src/connection.ts";
import type { CloseResult } from "../../src/socket_options.ts";
import { serve } from "../../src/server.ts";
import {
  type Case,
  expectCloseEcho,
  expectEnd,
  expectMessage,
  runAgainstClient,
  runAgainstServer,
} from "./_cases.ts";
import {
  buildFrame,
  closePayload,
  delay,
  OP,
  RawPeer,
  within,
  writeAll,
} from "./_raw_peer.ts";

const encoder = new TextEncoder();

const decoder = new TextDecoder();

function upgradeHead(path = "/"): string {
  return [
    `GET ${path} HTTP/1.1`,
    "Host: 127.0.0.1",
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version: 13",
  ].join("\r\n") + "\r\n\r\n";
}

// Upgrades a plain connection and reads only the 101 head.
async function upgradeOnly(port: number, path = "/"): Promise<Deno.Conn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await writeAll(conn, encoder.encode(upgradeHead(path)));
  const buffer = new Uint8Array(1);
  let head = "";
  while (!head.endsWith("\r\n\r\n")) {
    const n = await conn.read(buffer);
    if (n === null) throw new Error("expected a 101, found the end");
    head += decoder.decode(buffer.subarray(0, n));
  }
  assert(head.startsWith("HTTP/1.1 101"), head);
  return conn;
}

Deno.test("faults: reset mid-frame, vanish, data after Close, half-close — right codes, and the server keeps serving", async (t) => {
  const results: Promise<CloseResult>[] = [];
  await using server = serve(
    { hostname: "127.0.0.1", port: 0, closeTimeoutMs: 1000 },
    async (socket) => {
      results.push(socket.closed);
      await socket.readable.pipeTo(socket.writable).catch(() => {});
    },
  );
  const port = server.addr.port;
  const lastResult = async () => {
    await within(
      (async () => {
        while (results.length === 0) await delay(5);
      })(),
      3000,
      "the handler",
    );
    return await within(results.shift()!, 5000, "the socket to end");
  };
  const healthy = async () => {
    const peer = await RawPeer.connect(port);
    await peer.sendFrames([{ opcode: OP.text, payload: "still serving" }]);
    await expectMessage(peer, OP.text, "still serving");
    await peer.sendFrames([{ opcode: OP.close, payload: closePayload(1000) }]);
    await expectCloseEcho(peer, 1000);
    await expectEnd(peer);
    await peer.close();
    assertEquals((await lastResult()).wasClean, true);
  };

  // Each step reads the result of its own connections only.
  const step = (name: string, fn: () => Promise<void>) =>
    t.step({
      name,
      fn: async () => {
        results.length = 0;
        await fn();
      },
    });

  await step("a reset in the middle of a frame → 1006", async () => {
    const conn = await upgradeOnly(port);
    // A ping whose pong we leave unread: closing with unread data makes
    // the kernel send RST instead of FIN.
    const mask = new Uint8Array([9, 8, 7, 6]);
    await writeAll(
      conn,
      buildFrame({ opcode: OP.ping, payload: "x", maskKey: mask }, true),
    );
    await delay(50);
    const frame = buildFrame(
      { opcode: OP.binary, payload: new Uint8Array(100), maskKey: mask },
      true,
    );
    await writeAll(conn, frame.subarray(0, 40));
    await delay(20);
    conn.close();
    const result = await lastResult();
    assertEquals([result.closeCode, result.wasClean], [1006, false]);
    await healthy();
  });

  await step("a peer that vanishes without Close → 1006", async () => {
    const peer = await RawPeer.connect(port);
    await peer.sendFrames([{ opcode: OP.text, payload: "bye" }]);
    await expectMessage(peer, OP.text, "bye");
    await peer.close();
    const result = await lastResult();
    assertEquals([result.closeCode, result.wasClean], [1006, false]);
    await healthy();
  });

  // RFC 6455 §5.5.1, §7.1.1: nothing after a Close is processed.
  await step(
    "frames and garbage after the peer's Close are ignored",
    async () => {
      const peer = await RawPeer.connect(port);
      await peer.send([
        peer.frame({ opcode: OP.close, payload: closePayload(4001, "done") }),
        peer.frame({ opcode: OP.text, payload: "after close" }),
        peer.frame({ opcode: OP.ping, payload: "after close" }),
        new Uint8Array(64).fill(0xff), // not even frames
      ]);
      await expectCloseEcho(peer, 4001);
      await expectEnd(peer);
      await peer.close();
      const result = await lastResult();
      assertEquals(
        [result.closeCode, result.reason, result.wasClean],
        [4001, "done", true],
      );
      await healthy();
    },
  );

  // RFC 6455 §5.5.1: "MUST send a Close frame in response"; the peer's FIN
  // (a half-close) leaves our direction open, so the echo still goes out.
  await step(
    "Close, then half-close (FIN): the echo still arrives",
    async () => {
      const peer = await RawPeer.connect(port);
      await peer.sendFrames([{
        opcode: OP.close,
        payload: closePayload(1000),
      }]);
      await peer.closeWrite();
      await expectCloseEcho(peer, 1000);
      await expectEnd(peer);
      await peer.close();
      assertEquals((await lastResult()).wasClean, true);
      await healthy();
    },
  );

  await step(
    "half-close without Close → 1006, and the server ends the connection",
    async () => {
      const peer = await RawPeer.connect(port);
      await peer.closeWrite();
      const event = await peer.next(3000, "the server to end the connection");
      // A Close frame may come first (1006 is never sent); then the end.
      if (event.kind === "frame") {
        assertEquals(event.frame.opcode, OP.close);
        await expectEnd(peer);
      }
      await peer.close();
      const result = await lastResult();
      assertEquals([result.closeCode, result.wasClean], [1006, false]);
      await healthy();
    },
  );

  await step(
    "a flood of pings after the peer stopped reading ends within bounds",
    async () => {
      const conn = await upgradeOnly(port);
      const ping = buildFrame({
        opcode: OP.ping,
        payload: new Uint8Array(125),
        maskKey: new Uint8Array(4),
      }, true);
      const flood = new Uint8Array(ping.length * 2000);
      for (let i = 0; i < 2000; i++) flood.set(ping, i * ping.length);
      // 260 KB of pings whose pongs are never read: the server's writes
      // back up; it must neither hang nor buffer without bound.
      await writeAll(conn, flood).catch(() => {});
      conn.close();
      const result = await lastResult();
      assertEquals(result.closeCode, 1006);
      await healthy();
    },
  );
});

Deno.test("faults: our client facing a server that vanishes or resets", async (t) => {
  const cases: [string, Case][] = [
    ["vanishes without Close → 1006", {
      id: "F2.1",
      title: "vanish",
      async run(peer, ours) {
        await peer.sendFrames([{ opcode: OP.text, payload: "x" }]);
        await expectMessage(peer, OP.text, "x");
        await peer.close();
        const result = await within(ours.socket.closed, 3000, "closed");
        assertEquals([result.closeCode, result.wasClean], [1006, false]);
      },
    }],
    ["ends in the middle of a frame → 1006", {
      id: "F2.2",
      title: "mid-frame",
      async run(peer, ours) {
        const frame = peer.frame({
          opcode: OP.binary,
          payload: new Uint8Array(50),
        });
        await peer.send(frame.subarray(0, 20));
        await delay(20);
        await peer.close();
        const result = await within(ours.socket.closed, 3000, "closed");
        assertEquals([result.closeCode, result.wasClean], [1006, false]);
      },
    }],
    ["half-closes after its Close: the client answers and ends", {
      id: "F2.3",
      title: "half-close",
      async run(peer, ours) {
        await peer.sendFrames([{
          opcode: OP.close,
          payload: closePayload(1001),
        }]);
        await peer.closeWrite();
        await expectCloseEcho(peer, 1001);
        await peer.close();
        const result = await within(ours.socket.closed, 3000, "closed");
        assertEquals(result.closeCode, 1001);
      },
    }],
  ];
  for (const [title, testCase] of cases) {
    await t.step({
      name: title,
      fn: async () => {
        await runAgainstClient(testCase);
      },
    });
  }
});

Deno.test("faults: keep-alive — a peer that answers pings stays, one that stops is failed with 1006", async (t) => {
  for (const role of ["server", "client"] as const) {
    const run = role === "server" ? runAgainstServer : runAgainstClient;
    await t.step(`our ${role}: pongs keep it open`, async () => {
      await run({
        id: "F4.1",
        title: "answered",
        options: { pingIntervalMs: 50, pongTimeoutMs: 150 },
        async run(peer, ours) {
          // Answer five keep-alive pings, then close normally.
          for (let i = 0; i < 5; i++) {
            const ping = await peer.nextFrame(2000, "a keep-alive ping");
            assertEquals(ping.opcode, OP.ping);
            await peer.sendFrames([{ opcode: OP.pong, payload: ping.payload }]);
          }
          await peer.sendFrames([{
            opcode: OP.close,
            payload: closePayload(1000),
          }]);
          // Pings may still cross our Close; then the echo.
          let frame = await peer.nextFrame();
          while (frame.opcode === OP.ping) frame = await peer.nextFrame();
          assertEquals(frame.opcode, OP.close);
          if (ours.role === "server") await expectEnd(peer);
          else await peer.close();
          assertEquals((await ours.socket.closed).closeCode, 1000);
        },
      });
    });
    await t.step(`our ${role}: no pong → 1006 at pongTimeoutMs`, async () => {
      await run({
        id: "F4.2",
        title: "unanswered",
        options: { pingIntervalMs: 50, pongTimeoutMs: 150 },
        async run(peer, ours) {
          const started = performance.now();
          const ping = await peer.nextFrame(2000, "a keep-alive ping");
          assertEquals(ping.opcode, OP.ping);
          // Never answered: the socket fails; 1006 is never sent, so the
          // connection just ends (a Close without 1006 may precede it).
          const result = await within(ours.socket.closed, 3000, "closed");
          const elapsed = performance.now() - started;
          assertEquals([result.closeCode, result.wasClean], [1006, false]);
          assert(elapsed >= 100, `failed after ${elapsed} ms`);
          let event = await peer.next(2000, "the end");
          while (event.kind === "frame") {
            assert(
              event.frame.opcode !== OP.close ||
                event.frame.payload.length === 0 ||
                (event.frame.payload[0] << 8 | event.frame.payload[1]) !== 1006,
              "1006 is never sent",
            );
            event = await peer.next(2000, "the end");
          }
        },
      });
    });
  }
});

Deno.test("faults: shutdown() under load — every socket receives 1001, nothing hangs", async () => {
  const server = serve(
    { hostname: "127.0.0.1", port: 0 },
    (socket) => socket.readable.pipeTo(socket.writable).catch(() => {}),
  );
  const url = `ws://127.0.0.1:${server.addr.port}/`;
  const sockets = await Promise.all(
    Array.from({ length: 50 }, () => connect(url, { compression: false })),
  );
  let echoed = 0;
  // Each client keeps messages flowing until its socket closes.
  const loops = sockets.map(async (socket, index) => {
    const writer = socket.writable.getWriter();
    const reader = socket.readable.getReader();
    try {
      for (let i = 0;; i++) {
        await writer.write(`client ${index} message ${i}`);
        const { value, done } = await reader.read();
        if (done) break;
        assertEquals(value, `client ${index} message ${i}`);
        echoed++;
      }
    } catch {
      // Writes fail once the server's Close has arrived.
    }
    // Complete the closing handshake from our side.
    writer.releaseLock();
    await socket.writable.close().catch(() => {});
    reader.releaseLock();
  });
  await delay(300);
  const started = performance.now();
  await within(server.shutdown(), 10_000, "shutdown()");
  const results = await within(
    Promise.all(sockets.map((socket) => socket.closed)),
    10_000,
    "every client to close",
  );
  await within(Promise.all(loops), 10_000, "the client loops");
  console.log(
    `  ${echoed} messages echoed before shutdown; shutdown took ${
      (performance.now() - started).toFixed(0)
    } ms`,
  );
  assert(echoed > 50, "the clients were busy");
  for (const result of results) {
    assertEquals(result.closeCode, 1001);
    assertEquals(result.reason, "server shutting down");
  }
});

Deno.test("faults: a slow consumer (never reads) costs bounded memory; others keep their speed", async () => {
  const slowSockets: WebSocketConnection[] = [];
  const chunk = new Uint8Array(64 * 1024);
  let slowWritten = 0;
  await using server = serve(
    {
      hostname: "127.0.0.1",
      port: 0,
      maxBufferedBytes: 512 * 1024,
      closeTimeoutMs: 500,
    },
    async (socket, request) => {
      if (new URL(request.url).pathname !== "/slow") {
        await socket.readable.pipeTo(socket.writable).catch(() => {});
        return;
      }
      slowSockets.push(socket);
      // Sends as fast as the consumer allows: writable's backpressure is
      // what bounds the memory.
      const writer = socket.writable.getWriter();
      try {
        while (true) {
          await writer.write(chunk);
          slowWritten += chunk.length;
        }
      } catch {
        // Ended.
      }
    },
  );
  const port = server.addr.port;
  const roundTrips = async (count: number) => {
    const socket = await connect(`ws://127.0.0.1:${port}/`);
    const writer = socket.writable.getWriter();
    const reader = socket.readable.getReader();
    const started = performance.now();
    for (let i = 0; i < count; i++) {
      await writer.write(`ping ${i}`);
      assertEquals((await reader.read()).value, `ping ${i}`);
    }
    const elapsed = performance.now() - started;
    reader.releaseLock();
    await writer.close();
    await socket.closed;
    return elapsed;
  };

  const baseline = await roundTrips(200);
  const slow = await Promise.all(
    Array.from({ length: 5 }, () => upgradeOnly(port, "/slow")),
  );
  // Wait until the slow sockets have filled every buffer and stalled.
  await within(
    (async () => {
      let last = -1;
      while (slowWritten !== last) {
        last = slowWritten;
        await delay(200);
      }
    })(),
    10_000,
    "the slow consumers to stall",
  );
  const rssBefore = Deno.memoryUsage().rss;
  const writtenBefore = slowWritten;
  const loaded = await roundTrips(200);
  await delay(500);
  const rssGrowth = Deno.memoryUsage().rss - rssBefore;
  const writtenDuring = slowWritten - writtenBefore;
  for (const socket of slowSockets) {
    assert(
      socket.bufferedAmount <= 512 * 1024 + chunk.length,
      `bufferedAmount ${socket.bufferedAmount} bounded by maxBufferedBytes`,
    );
  }
  console.log(
    `  200 round trips: ${baseline.toFixed(0)} ms alone, ${
      loaded.toFixed(0)
    } ms beside 5 stalled consumers; RSS ${
      (rssGrowth / (1 << 20)).toFixed(1)
    } MiB while they stalled; ${writtenDuring} bytes accepted for them meanwhile`,
  );
  assertEquals(writtenDuring, 0, "the stalled consumers took nothing more");
  assertLess(rssGrowth, 64 * (1 << 20), "RSS stays bounded");
  // Measured on a shared 2-core machine, also with both cores kept busy:
  // 20–82 ms beside the stalled consumers against 30–263 ms alone.
  assertLess(
    loaded,
    baseline * 3 + 200,
    "other connections keep their speed (at most 3× + 200 ms)",
  );
  for (const conn of slow) conn.close();
  await within(
    Promise.all(slowSockets.map((socket) => socket.closed)),
    5000,
    "the slow sockets to end",
  );
});
