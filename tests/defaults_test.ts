/**
 * The documented defaults of every socket (README "Options"), pinned where
 * it is cheap: by an exported constant, or by behaviour that shows the
 * default in use (and a small override that shows the option honoured).
 *
 * - maxMessageBytes 64 MiB: the exported constant, and a compressed
 *   message that inflates to 64 MiB passes while 64 MiB + 1 is closed
 *   with 1009 (the frame is small, so maxFrameBytes plays no part).
 * - handshakeTimeoutMs 10,000: the exported constant (used by `connect()`
 *   and `serve()`; the timeout itself is tested with small values in
 *   client_test.ts, server_test.ts and limits_test.ts).
 * - maxBufferedBytes 1 MiB: the high-water mark of `writable`
 *   (`writer.desiredSize` before any write).
 * - pongTimeoutMs = pingIntervalMs: the time from an unanswered Ping to
 *   the failure, and the error's words.
 *
 * closeTimeoutMs (5,000) has no exported constant and showing it would
 * take 5 real seconds, so it is not pinned here.
 *
 * @module
 */

import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { constants, deflateRawSync } from "node:zlib";
import { Buffer } from "node:buffer";
import { connect } from "../src/client.ts";
import { DEFAULT_HANDSHAKE_TIMEOUT_MS } from "../src/handshake_io.ts";
import { DEFAULT_MAX_MESSAGE_BYTES } from "../src/message_assembler.ts";
import { serve } from "../src/server.ts";
import {
  closeCodeOf,
  closePayload,
  OP,
  RawPeer,
  RawServer,
  within,
} from "./conformance/_raw_peer.ts";

const MiB = 1 << 20;
const decoder = new TextDecoder();

Deno.test("default maxMessageBytes is 64 MiB: a compressed message inflating to 64 MiB passes, 64 MiB + 1 is closed with 1009", async (t) => {
  assertEquals(DEFAULT_MAX_MESSAGE_BYTES, 64 * MiB);
  // The handler (default options) reports the size of the one message it
  // got as its close reason.
  await using server = serve(
    { hostname: "127.0.0.1", port: 0 },
    async (socket) => {
      const reader = socket.readable.getReader();
      try {
        const { value } = await reader.read();
        const size = typeof value === "string" ? value.length : value?.length;
        socket.close({ closeCode: 4000, reason: String(size) });
      } catch {
        // Failed with 1009: the peer sees it.
      }
    },
  );
  for (const [size, expected] of [[64 * MiB, 4000], [64 * MiB + 1, 1009]]) {
    await t.step(`${size} bytes → ${expected}`, async () => {
      // Zeros compress about 1000:1; a sync flush without its 4-byte tail
      // (RFC 7692 §7.2.1).
      const compressed = deflateRawSync(Buffer.alloc(size), {
        finishFlush: constants.Z_SYNC_FLUSH,
      });
      const payload = new Uint8Array(
        compressed.buffer,
        compressed.byteOffset,
        compressed.length - 4,
      );
      assert(payload.length < MiB, `${payload.length} compressed bytes`);
      const peer = await RawPeer.connect(server.addr.port, {
        headers: { "Sec-WebSocket-Extensions": "permessage-deflate" },
      });
      try {
        assertStringIncludes(peer.head.toLowerCase(), "permessage-deflate");
        await peer.sendFrames([{ opcode: OP.binary, rsv: 4, payload }]);
        const close = await peer.nextFrame(10_000, "the server's Close");
        assertEquals([close.opcode, closeCodeOf(close)], [
          OP.close,
          expected,
        ]);
        if (expected === 4000) {
          assertEquals(decoder.decode(close.payload.subarray(2)), `${size}`);
        }
        await peer.sendFrames([{
          opcode: OP.close,
          payload: closePayload(closeCodeOf(close)),
        }]);
      } finally {
        await peer.close();
      }
    });
  }
});

Deno.test("default handshakeTimeoutMs is 10,000", () => {
  assertEquals(DEFAULT_HANDSHAKE_TIMEOUT_MS, 10_000);
});

Deno.test("default maxBufferedBytes is 1 MiB: the high-water mark of writable, on connect() and serve() sockets; an override is honoured", async () => {
  const desired: Record<string, number | null> = {};
  await using server = serve(
    { hostname: "127.0.0.1", port: 0 },
    (socket) => {
      desired[socket.protocol || "server default"] = socket.writable
        .getWriter().desiredSize;
      socket.close();
    },
  );
  await using small = serve(
    { hostname: "127.0.0.1", port: 0, maxBufferedBytes: 1000 },
    (socket) => {
      desired["server 1000"] = socket.writable.getWriter().desiredSize;
      socket.close();
    },
  );
  for (
    const [name, port, options] of [
      ["client default", server.addr.port, {}],
      ["client 1000", small.addr.port, { maxBufferedBytes: 1000 }],
    ] as const
  ) {
    const socket = await connect(`ws://127.0.0.1:${port}/`, options);
    const writer = socket.writable.getWriter();
    desired[name] = writer.desiredSize;
    // The server closed at once: closing writable answers its Close.
    await writer.close();
    await within(socket.closed, 3000, "the closing handshake");
  }
  assertEquals(desired, {
    "server default": MiB,
    "server 1000": 1000,
    "client default": MiB,
    "client 1000": 1000,
  });
});

Deno.test("default pongTimeoutMs is pingIntervalMs: an unanswered Ping fails the socket (1006) pingIntervalMs later", async () => {
  for (
    const [options, timeout] of [
      [{ pingIntervalMs: 200 }, 200],
      [{ pingIntervalMs: 200, pongTimeoutMs: 700 }, 700],
    ] as const
  ) {
    const server = new RawServer();
    try {
      const accepted = server.accept();
      const socket = await connect(`ws://127.0.0.1:${server.port}/`, options);
      const peer = await accepted;
      try {
        const event = await peer.next(2000, "a keep-alive Ping");
        assert(event.kind === "frame" && event.frame.opcode === OP.ping);
        const result = await within(socket.closed, 3000, "the failure");
        const elapsed = performance.now() - event.at;
        assertEquals([result.closeCode, result.wasClean], [1006, false]);
        assertStringIncludes(result.reason, `no Pong within ${timeout} ms`);
        assert(
          elapsed >= timeout - 50 && elapsed < timeout + 500,
          `failed ${elapsed.toFixed(0)} ms after the Ping, expected ${timeout}`,
        );
      } finally {
        await peer.close();
      }
    } finally {
      server.close();
    }
  }
});
