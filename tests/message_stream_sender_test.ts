// Sending one message in fragments: streams, Blobs and large whole messages
// written to a socket's writable, checked frame by frame on the wire and as
// the peer socket receives them.

import {
  assert,
  assertEquals,
  assertInstanceOf,
  assertRejects,
  assertThrows,
} from "@std/assert";
import { connect } from "../src/client.ts";
import { WebSocketConnection } from "../src/connection.ts";
import { enqueueSharedFrames } from "../src/prepared_queue.ts";
import type { ConnectionInit } from "../src/socket_options.ts";
import { upgrade } from "../src/upgrade.ts";
import { Hub } from "../src/hub.ts";
import type { Frame } from "../src/frame.ts";
import { FrameDecoder } from "../src/frame_decoder.ts";
import { acceptDeflateOffer } from "../src/permessage_deflate.ts";
import { createMessageDeflate } from "../src/permessage_deflate_codec.ts";
import { WebSocketError } from "../src/websocket_error.ts";
import { concat } from "./_codec_util.ts";
import { memoryTransportPair } from "./_memory_transport.ts";
import { delay, within } from "./_socket_util.ts";

type Options = Omit<ConnectionInit, "transport" | "role">;

function socketPair(
  serverOptions: Options = {},
  clientOptions: Options = {},
) {
  const [clientEnd, serverEnd] = memoryTransportPair();
  const client = new WebSocketConnection({
    role: "client",
    transport: clientEnd,
    closeTimeoutMs: 500,
    ...clientOptions,
  });
  const server = new WebSocketConnection({
    role: "server",
    transport: serverEnd,
    closeTimeoutMs: 500,
    ...serverOptions,
  });
  return { client, server, clientEnd, serverEnd };
}

// Decodes what one end wrote (the server's frames are unmasked, the
// client's masked), copying each payload.
function framesOf(written: Uint8Array[], from: "client" | "server"): Frame[] {
  const frames: Frame[] = [];
  const decoder = new FrameDecoder({
    role: from === "server" ? "client" : "server",
    allowRsv1: true,
  });
  const bytes = concat(written);
  const used = decoder.decodeInPlace(
    bytes,
    (frame) => void frames.push({ ...frame, payload: frame.payload.slice() }),
  );
  assertEquals(used, bytes.length, "the bytes end between frames");
  return frames;
}

function summary(frames: Frame[]): string[] {
  return frames.map((frame) =>
    `${frame.opcode}${frame.fin ? " fin" : ""}${
      frame.rsv1 ? " rsv1" : ""
    } ${frame.payload.length}`
  );
}

// A stream whose chunks come one at a time, each a few ms after the last.
function slowStream<T>(chunks: T[], ms = 5): ReadableStream<T> {
  let index = 0;
  return new ReadableStream<T>({
    async pull(controller) {
      await delay(ms);
      if (index < chunks.length) controller.enqueue(chunks[index++]);
      else controller.close();
    },
  }, { highWaterMark: 0 });
}

const encoder = new TextEncoder();

Deno.test("a byte stream is sent as one binary message, a frame per chunk", async () => {
  const { client, server, serverEnd } = socketPair();
  const writer = server.writable.getWriter();
  await within(
    5000,
    writer.write(slowStream([
      new Uint8Array([1, 2]),
      new Uint8Array([3]),
      new Uint8Array([4, 5, 6]),
    ])),
  );
  const reader = client.readable.getReader();
  assertEquals((await reader.read()).value, new Uint8Array([1, 2, 3, 4, 5, 6]));
  assertEquals(summary(framesOf(serverEnd.written, "server")), [
    "2 2",
    "0 1",
    "0 3",
    "0 fin 0",
  ]);
  await writer.close();
  await client.closed;
});

Deno.test("a client masks every fragment of a streamed message", async () => {
  const { client, server, clientEnd } = socketPair();
  const writer = client.writable.getWriter();
  await writer.write(slowStream(["Hel", "lo"]));
  assertEquals((await server.readable.getReader().read()).value, "Hello");
  // The decoder (as a server) refuses unmasked frames: all were masked.
  assertEquals(summary(framesOf(clientEnd.written, "client")), [
    "1 3",
    "0 2",
    "0 fin 0",
  ]);
  await writer.close();
  await server.closed;
});

Deno.test("a text stream split inside a surrogate pair is encoded as TextEncoderStream does", async () => {
  const { client, server } = socketPair();
  const writer = server.writable.getWriter();
  // U+1F600 is the pair D83D DE00; a lone high surrogate at the end of the
  // stream becomes U+FFFD.
  await writer.write(slowStream(["a\uD83D", "\uDE00b", "c\uD83D"]));
  await writer.write(slowStream(["\uD83D", "\uDE00"]));
  const reader = client.readable.getReader();
  assertEquals((await reader.read()).value, "a\u{1F600}bc\uFFFD");
  assertEquals((await reader.read()).value, "\u{1F600}");
  await writer.close();
  await client.closed;
});

Deno.test("chunks that are ready together are joined into one frame", async () => {
  const { client, server, serverEnd } = socketPair();
  const chunks = Array.from({ length: 1000 }, (_, i) => `${i % 10}`);
  const writer = server.writable.getWriter();
  await writer.write(ReadableStream.from(chunks));
  assertEquals(
    (await client.readable.getReader().read()).value,
    chunks.join(""),
  );
  // However the chunks happen to arrive, they are not a frame each.
  const frames = framesOf(serverEnd.written, "server");
  assert(frames.length <= 3, summary(frames).join(", "));
  assertEquals(frames.at(-1)!.fin, true);
  await writer.close();
  await client.closed;
});

Deno.test("a chunk over maxOutgoingFrameBytes is split into frames of that size", async () => {
  const { client, server, serverEnd } = socketPair({
    maxOutgoingFrameBytes: 1000,
  });
  const payload = new Uint8Array(2500).map((_, i) => i);
  const writer = server.writable.getWriter();
  await writer.write(ReadableStream.from([payload]));
  assertEquals((await client.readable.getReader().read()).value, payload);
  assertEquals(summary(framesOf(serverEnd.written, "server")), [
    "2 1000",
    "0 1000",
    "0 fin 500",
  ]);
  await writer.close();
  await client.closed;
});

Deno.test("a Blob is sent as one binary message; an empty stream as an empty one", async () => {
  const { client, server } = socketPair();
  const writer = server.writable.getWriter();
  await writer.write(new Blob([new Uint8Array([1, 2]), "ab"]));
  await writer.write(ReadableStream.from<Uint8Array>([]));
  await writer.write({ type: "text", stream: ReadableStream.from<string>([]) });
  const reader = client.readable.getReader();
  assertEquals((await reader.read()).value, new Uint8Array([1, 2, 97, 98]));
  assertEquals((await reader.read()).value, new Uint8Array(0));
  assertEquals((await reader.read()).value, "");
  await writer.close();
  await client.closed;
});

Deno.test("messages written after a stream wait until it ends", async () => {
  const { client, server } = socketPair();
  const writer = server.writable.getWriter();
  const stream = writer.write(slowStream(["a", "b", "c"], 20));
  const after = writer.write("after");
  await Promise.all([stream, after]);
  const reader = client.readable.getReader();
  assertEquals((await reader.read()).value, "abc");
  assertEquals((await reader.read()).value, "after");
  await writer.close();
  await client.closed;
});

Deno.test("whole messages over maxOutgoingFrameBytes go out in fragments; others stay single frames", async () => {
  const { client, server, serverEnd } = socketPair({
    maxOutgoingFrameBytes: 1000,
  });
  const big = new Uint8Array(2500).map((_, i) => i * 7);
  const writer = server.writable.getWriter();
  await writer.write(big);
  await writer.write("x".repeat(1000));
  await writer.write("y".repeat(1001));
  const reader = client.readable.getReader();
  assertEquals((await reader.read()).value, big);
  assertEquals((await reader.read()).value, "x".repeat(1000));
  assertEquals((await reader.read()).value, "y".repeat(1001));
  assertEquals(summary(framesOf(serverEnd.written, "server")), [
    "2 1000",
    "0 1000",
    "0 fin 500",
    "1 fin 1000",
    "1 1000",
    "0 fin 1",
  ]);
  await writer.close();
  await client.closed;
});

Deno.test("maxOutgoingFrameBytes is checked", () => {
  const [end] = memoryTransportPair();
  for (const bad of [0, -1, 1.5, NaN]) {
    assertThrows(
      () =>
        new WebSocketConnection({
          role: "server",
          transport: end,
          maxOutgoingFrameBytes: bad,
        }),
      RangeError,
      "maxOutgoingFrameBytes",
    );
  }
});

// A transport whose writes wait until the test lets them through, so the
// order in which frames are queued can be seen.
function gatedTransport() {
  const written: Uint8Array[] = [];
  const gates: (() => void)[] = [];
  const transport = {
    readable: new ReadableStream<Uint8Array>(),
    writable: new WritableStream<Uint8Array>({
      write(chunk) {
        written.push(chunk.slice());
        return new Promise<void>((resolve) => gates.push(resolve));
      },
    }),
  };
  const openAll = async () => {
    while (true) {
      await delay(5);
      const gate = gates.shift();
      if (!gate) return;
      gate();
    }
  };
  return { transport, written, gates, openAll };
}

Deno.test("a Ping and a Close go out between the fragments of a large message, not after it", async () => {
  const { transport, written, gates, openAll } = gatedTransport();
  const socket = new WebSocketConnection({
    role: "server",
    transport,
    maxOutgoingFrameBytes: 100_000,
    maxBufferedBytes: 1,
    closeTimeoutMs: 200,
  });
  const writer = socket.writable.getWriter();
  const sent = writer.write(new Uint8Array(300_000));
  sent.catch(() => {});
  // The first fragment is being written; the others wait for it.
  while (gates.length === 0) await delay(1);
  socket.ping(new Uint8Array([7]));
  gates.shift()!();
  while (written.length < 2) await delay(1);
  socket.close({ closeCode: 1001 });
  await openAll();
  await assertRejects(() => sent, TypeError, "closing or closed");
  assertEquals(summary(framesOf(written, "server")), [
    "2 100000",
    "9 fin 1",
    "8 fin 2",
  ]);
  await socket.closed;
});

Deno.test("a source that errors mid-message fails the socket with 1011; the peer gets no message", async () => {
  const { client, server } = socketPair();
  let sent = 0;
  const source = new ReadableStream<Uint8Array>({
    async pull(controller) {
      await delay(5);
      if (sent++ < 2) controller.enqueue(new Uint8Array([sent]));
      else controller.error(new Error("disk on fire"));
    },
  }, { highWaterMark: 0 });
  const writer = server.writable.getWriter();
  const error = await assertRejects(() => writer.write(source), WebSocketError);
  assertEquals(error.closeCode, 1011);
  assert(error.message.includes("disk on fire"), error.message);
  // The Close 1011 came before the message's last frame: no message.
  assertEquals(await Array.fromAsync(client.readable), []);
  assertEquals((await client.closed).closeCode, 1011);
  assertEquals((await server.closed).closeCode, 1011);
});

Deno.test("an aborted source (pipeThrough with a signal) fails the socket with 1011", async () => {
  const { client, server } = socketPair();
  const controller = new AbortController();
  const source = slowStream(Array.from({ length: 100 }, () => "chunk"), 5)
    .pipeThrough(new TransformStream(), { signal: controller.signal });
  const writer = server.writable.getWriter();
  const sent = writer.write(source);
  setTimeout(() => controller.abort(new Error("user cancelled")), 30);
  const error = await assertRejects(() => sent, WebSocketError);
  assertEquals(error.closeCode, 1011);
  assertEquals((await client.closed).closeCode, 1011);
  await server.closed;
});

Deno.test("a chunk of the wrong kind fails the socket with 1011 and says what it found", async () => {
  const { client, server } = socketPair();
  const writer = server.writable.getWriter();
  const error = await assertRejects(
    () => writer.write(ReadableStream.from<unknown>(["text", 42]) as never),
    WebSocketError,
  );
  assertEquals(error.closeCode, 1011);
  assert(error.message.includes("found number"), error.message);
  assertEquals((await client.closed).closeCode, 1011);
  await server.closed;
});

Deno.test("the peer's Close while a stream is being sent: answered after the close timeout, the source cancelled", async () => {
  const { client, server } = socketPair({ closeTimeoutMs: 100 });
  let cancelled: unknown;
  const endless = new ReadableStream<Uint8Array>({
    async pull(controller) {
      await delay(5);
      controller.enqueue(new Uint8Array(10));
    },
    cancel(reason) {
      cancelled = reason;
    },
  }, { highWaterMark: 0 });
  const writer = server.writable.getWriter();
  const sent = writer.write(endless);
  sent.catch(() => {});
  await delay(30);
  client.close({ closeCode: 4000, reason: "enough" });
  assertEquals(await within(3000, client.closed), {
    closeCode: 4000,
    reason: "enough",
    wasClean: true,
  });
  await assertRejects(() => sent, TypeError);
  await server.closed;
  assertInstanceOf(cancelled, TypeError);
});

Deno.test("with permessage-deflate a stream is compressed as it goes, RSV1 on its first frame only", async () => {
  const accepted = acceptDeflateOffer(
    "permessage-deflate; client_max_window_bits",
    {},
  )!;
  const { client, server, serverEnd } = socketPair(
    { deflate: createMessageDeflate(accepted.params, "server") },
    { deflate: createMessageDeflate(accepted.params, "client") },
  );
  const text = "All work and no play makes Jack a dull boy. ".repeat(200);
  const writer = server.writable.getWriter();
  await writer.write(slowStream([text, text, text]));
  await writer.write(slowStream([text]));
  const reader = client.readable.getReader();
  assertEquals((await reader.read()).value, text.repeat(3));
  assertEquals((await reader.read()).value, text);
  const frames = framesOf(serverEnd.written, "server");
  assertEquals(
    frames.map((frame) => [frame.opcode, frame.fin, frame.rsv1]),
    [
      [1, false, true],
      [0, false, false],
      [0, false, false],
      [0, true, false],
      [1, false, true],
      [0, true, false],
    ],
  );
  const wire = frames.reduce((sum, frame) => sum + frame.payload.length, 0);
  assert(wire < encoder.encode(text).length, `compressed: ${wire} bytes`);
  await writer.close();
  await client.closed;
});

Deno.test("the hub's shared frames wait for a message sent in fragments to end", async () => {
  const { client, server } = socketPair({ maxOutgoingFrameBytes: 1 });
  const writer = server.writable.getWriter();
  const streamed = writer.write(slowStream(["a", "b", "c"], 10));
  await delay(15);
  // An unmasked text frame "hub", queued while the stream is mid-message.
  assertEquals(
    enqueueSharedFrames(server, new Uint8Array([0x81, 3, 0x68, 0x75, 0x62])),
    5,
  );
  await streamed;
  const reader = client.readable.getReader();
  assertEquals((await reader.read()).value, "abc");
  assertEquals((await reader.read()).value, "hub");
  await writer.close();
  await client.closed;
});

Deno.test("a hub message published mid-stream waits for the stream's last fragment", async () => {
  const { client, server, serverEnd } = socketPair({
    maxOutgoingFrameBytes: 1,
  });
  const hub = new Hub();
  hub.subscribe(server, "news");
  const writer = server.writable.getWriter();
  const streamed = writer.write(slowStream(["a", "b", "c"], 10));
  await delay(15);
  // Small: it goes through the hub's prepared queue, not a shared frame.
  hub.publish("news", "hub");
  await streamed;
  const reader = client.readable.getReader();
  assertEquals((await reader.read()).value, "abc");
  assertEquals((await reader.read()).value, "hub");
  // RFC 6455 §5.4: no frame of another message between the fragments: the
  // streamed message's frames (text, continuations, the last with FIN) come
  // first, then the hub's single-frame message.
  const frames = framesOf(serverEnd.written, "server").map((frame) => [
    frame.opcode,
    frame.fin,
  ]);
  const streamedFrames = frames.slice(0, -1);
  assertEquals(streamedFrames[0], [1, false]);
  assertEquals(streamedFrames.at(-1)?.[1], true);
  assert(
    streamedFrames.slice(1).every(([opcode]) => opcode === 0),
    `expected only continuations after the first fragment, found ${frames}`,
  );
  assertEquals(frames.at(-1), [1, true]);
  await writer.close();
  await client.closed;
});

Deno.test("a socket from upgrade() refuses a stream with a TypeError that says what to do", async () => {
  let refused: unknown;
  const done = Promise.withResolvers<void>();
  await using httpServer = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen() {} },
    (request) => {
      const { socket, response } = upgrade(request);
      const writer = socket.writable.getWriter();
      writer.write(ReadableStream.from(["no"])).catch((error) => {
        refused = error;
        socket.close();
        done.resolve();
      });
      return response;
    },
  );
  const client = await connect(
    `ws://127.0.0.1:${httpServer.addr.port}/`,
  );
  await within(5000, done.promise);
  assertInstanceOf(refused, TypeError);
  assert(
    (refused as TypeError).message.includes(
      "cannot send a message in fragments",
    ),
  );
  assertEquals(await Array.fromAsync(client.readable), []);
  await client.closed;
});

Deno.test("a source that stops yielding is cancelled once the socket ends, and the write rejects", async () => {
  const { client, server } = socketPair({ closeTimeoutMs: 100 });
  let cancelled = false;
  const idle = new ReadableStream<string>({
    start(controller) {
      controller.enqueue("only this");
    },
    cancel() {
      cancelled = true;
    },
  });
  const writer = server.writable.getWriter();
  const sent = writer.write(idle);
  sent.catch(() => {});
  await delay(20);
  client.close();
  await within(3000, server.closed);
  await within(3000, assertRejects(() => sent, TypeError));
  assert(cancelled, "the source was cancelled");
  await client.closed;
});

// A byte stream of `total` bytes (byte i is i % 251) that only takes BYOB
// reads, counting the buffers it was given.
function byobOnlySource(total: number) {
  let sent = 0;
  const buffers = new Set<number>();
  const stream = new ReadableStream({
    type: "bytes",
    pull(controller) {
      const request = controller.byobRequest;
      if (!request?.view) throw new Error("expected a BYOB read");
      if (sent === total) {
        controller.close();
        request.respond(0);
        return;
      }
      const view = new Uint8Array(
        request.view.buffer,
        request.view.byteOffset,
        Math.min(request.view.byteLength, total - sent),
      );
      for (let i = 0; i < view.length; i++) view[i] = (sent + i) % 251;
      buffers.add(view.buffer.byteLength);
      sent += view.length;
      request.respond(view.length);
    },
  }, { highWaterMark: 0 });
  return { stream, buffers };
}

for (const role of ["server", "client"] as const) {
  Deno.test(`a ${role} reads a byte stream into its own buffers (BYOB); every frame leaves intact`, async () => {
    const { client, server, clientEnd, serverEnd } = socketPair(
      { maxMessageBytes: 2 ** 24 },
      { maxMessageBytes: 2 ** 24 },
    );
    const [sender, receiver, end] = role === "server"
      ? [server, client, serverEnd]
      : [client, server, clientEnd];
    const total = 1_000_000;
    const source = byobOnlySource(total);
    const writer = sender.writable.getWriter();
    const reader = receiver.readable.getReader();
    const [, { value }] = await within(
      10_000,
      Promise.all([writer.write(source.stream), reader.read()]),
    );
    const expected = new Uint8Array(total).map((_, i) => i % 251);
    assertEquals(value, expected);
    const frames = framesOf(end.written, role);
    // 64 KiB reads: a frame each, the buffers reused, not one per read.
    assert(frames.length >= total / 65536, summary(frames).join(", "));
    assertEquals([...source.buffers], [65536]);
    await writer.close();
    await receiver.closed;
  });
}
