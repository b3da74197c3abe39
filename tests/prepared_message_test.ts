/**
 * PreparedMessage (frame once, compress at most once) and what the hub
 * sends to sockets with and without a shared compressor (RFC 7692).
 */

import { assert, assertEquals, assertGreater, assertLess } from "@std/assert";
import zlib from "node:zlib";
import { Hub, WebSocketConnection } from "../mod.ts";
import { PreparedMessage } from "../src/prepared_message.ts";
import { loadZlib } from "../src/zlib_module.ts";
import { acceptDeflateOffer } from "../src/permessage_deflate.ts";
import { createMessageDeflate } from "../src/permessage_deflate_codec.ts";
import { memoryTransportPair } from "./_memory_transport.ts";
import { delay } from "./_socket_util.ts";

const TAIL = new Uint8Array([0x00, 0x00, 0xff, 0xff]);

function inflate(payload: Uint8Array, windowBits = 15): Uint8Array {
  const input = new Uint8Array(payload.length + 4);
  input.set(payload);
  input.set(TAIL, payload.length);
  return new Uint8Array(
    zlib.inflateRawSync(input, {
      windowBits,
      finishFlush: zlib.constants.Z_SYNC_FLUSH,
    }),
  );
}

Deno.test("PreparedMessage: the frame is the RFC 6455 encoding of the message for every length class", () => {
  for (const size of [0, 125, 126, 65535, 65536]) {
    const bytes = new Uint8Array(size).map((_, i) => i & 0xff);
    const message = new PreparedMessage(bytes);
    const header = size < 126 ? 2 : size < 65536 ? 4 : 10;
    assertEquals(message.frame.length, header + size);
    assertEquals(message.frame[0], 0x82); // FIN, binary
    assertEquals(message.frame[1] & 0x80, 0); // unmasked
    assertEquals(
      message.frame[1] & 0x7f,
      size < 126 ? size : size < 65536 ? 126 : 127,
    );
    assertEquals(message.payload, bytes);
    assert(message.payload.buffer === message.frame.buffer, "no second copy");
  }
  const text = new PreparedMessage("héllo");
  assertEquals(text.frame[0], 0x81);
  assertEquals(new TextDecoder().decode(text.payload), "héllo");
});

Deno.test("PreparedMessage: small frames built one after another lie next to each other in one buffer, large ones alone", () => {
  const frames = ["a", new Uint8Array(1000), "c"].map((message) =>
    new PreparedMessage(message).frame
  );
  let adjacent = 0;
  for (let i = 1; i < frames.length; i++) {
    const [before, frame] = [frames[i - 1], frames[i]];
    if (frame.buffer === before.buffer) {
      assertEquals(frame.byteOffset, before.byteOffset + before.length);
      adjacent++;
    } else {
      assertEquals(frame.byteOffset, 0, "the start of a new shared buffer");
    }
  }
  // A 64 KiB buffer ends between at most one of the two pairs.
  assertGreater(adjacent, 0);
  const large = new PreparedMessage(new Uint8Array(20_000)).frame;
  assertEquals(large.byteOffset, 0);
  assertEquals(large.buffer.byteLength, large.length);
});

Deno.test("PreparedMessage: compressed once per window, a DEFLATE stream of its own that any receiver inflates", async () => {
  await loadZlib();
  const text = "the same words again and again, ".repeat(200);
  const message = new PreparedMessage(text);
  for (const bits of [8, 9, 12, 15]) {
    const payload = message.compressedPayload(bits)!;
    // (8 bits: runs only, see deflateAlone.)
    assertLess(payload.length, message.payload.length / (bits === 8 ? 2 : 4));
    assert(message.compressedPayload(bits) === payload, "made once");
    assertEquals(
      new TextDecoder().decode(inflate(payload, Math.max(bits, 9))),
      text,
    );
    const frame = message.compressedFrame(bits)!;
    assert(message.compressedFrame(bits) === frame, "framed once");
    assertEquals(frame[0], 0xc1); // FIN, RSV1, text
    assertEquals(frame.subarray(frame.length - payload.length), payload);
  }
  // Below the threshold, or not smaller: sent as it is.
  assertEquals(new PreparedMessage("short").compressedPayload(15), undefined);
  const noise = crypto.getRandomValues(new Uint8Array(4096));
  assertEquals(new PreparedMessage(noise).compressedPayload(15), undefined);
  const never = new PreparedMessage(text, { compressionThreshold: Infinity });
  assertEquals(never.compressedPayload(15), undefined);
});

/** A server and a client socket in memory with permessage-deflate agreed from `offer`. */
function deflatePair(offer: string) {
  const accepted = acceptDeflateOffer(offer, {})!;
  const [a, b] = memoryTransportPair();
  const server = new WebSocketConnection({
    transport: a,
    role: "server",
    extensions: accepted.response,
    deflate: createMessageDeflate(accepted.params, "server", { threshold: 0 }),
  });
  const client = new WebSocketConnection({
    transport: b,
    role: "client",
    extensions: accepted.response,
    deflate: createMessageDeflate(accepted.params, "client", { threshold: 0 }),
  });
  return { server, client, written: a.written, clientWritten: b.written };
}

function wireBytes(chunks: Uint8Array[]): number {
  return chunks.reduce((sum, chunk) => sum + chunk.length, 0);
}

for (
  const [offer, shared] of [
    ["permessage-deflate; server_no_context_takeover", true],
    ["permessage-deflate", false],
    [
      "permessage-deflate; server_no_context_takeover; server_max_window_bits=10",
      true,
    ],
  ] as const
) {
  Deno.test(`Hub: with "${offer}" hub messages go ${shared ? "compressed (shared)" : "uncompressed"}, mixed with the socket's own compressed ones, all decoded`, async () => {
    const hub = new Hub();
    const { server, client, written } = deflatePair(offer);
    hub.subscribe(server, "t");
    const writer = server.writable.getWriter();
    // Once the stream has started, a write reaches the socket at once when
    // none is in flight: its message is then ahead of the hub's.
    await delay(0);
    const expected: string[] = [];
    for (let i = 0; i < 20; i++) {
      // The socket's own messages share words with the hub's, so a wrong
      // window on either side would show in the decoded text.
      const own = `own ${i}: the quick brown fox jumps over the lazy dog `
        .repeat(40);
      const published = `hub ${i}: the quick brown fox jumps over the lazy dog `
        .repeat(40);
      const wrote = writer.write(own);
      hub.publish("t", published);
      await wrote;
      expected.push(own, published);
    }
    const before = wireBytes(written);
    const big = "x".repeat(100_000);
    hub.publish("t", big);
    expected.push(big);
    const reader = client.readable.getReader();
    for (const message of expected) {
      assertEquals((await reader.read()).value, message);
    }
    const bigOnWire = wireBytes(written) - before;
    if (shared) assertLess(bigOnWire, 2000);
    else assertGreater(bigOnWire, 100_000);
    reader.releaseLock();
    await writer.close(); // Close 1000, answered by the client
    assertEquals((await server.closed).closeCode, 1000);
  });
}

Deno.test("Hub: a client socket with client_no_context_takeover sends the shared compressed payload, masked (the server accepts only masked frames); without it, the uncompressed one", async () => {
  for (
    const [offer, shared] of [
      ["permessage-deflate; client_no_context_takeover", true],
      ["permessage-deflate", false],
    ] as const
  ) {
    const hub = new Hub();
    const { server, client, clientWritten } = deflatePair(offer);
    hub.subscribe(client, "up");
    const text = "upstream words, upstream words. ".repeat(3000);
    hub.publish("up", text);
    hub.publish("up", "short");
    const reader = server.readable.getReader();
    assertEquals((await reader.read()).value, text);
    assertEquals((await reader.read()).value, "short");
    reader.releaseLock();
    const onWire = wireBytes(clientWritten);
    if (shared) assertLess(onWire, 2000);
    else assertGreater(onWire, text.length);
    client.close();
    await server.closed;
  }
});
