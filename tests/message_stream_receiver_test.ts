// Receiving messages as streams (`messages: "stream"`): each message is
// handed out as it starts, its payload flows with backpressure down to the
// socket's reads, and the rules for unread, cancelled and broken messages.

import {
  assert,
  assertEquals,
  assertInstanceOf,
  assertRejects,
} from "@std/assert";
import { connect } from "../src/client.ts";
import { WebSocketConnection } from "../src/connection.ts";
import type { ConnectionInit } from "../src/socket_options.ts";
import type { MessageStream } from "../src/message_stream.ts";
import { acceptDeflateOffer } from "../src/permessage_deflate.ts";
import { createMessageDeflate } from "../src/permessage_deflate_codec.ts";
import { serve } from "../src/server.ts";
import { WebSocket as WhatwgWebSocket } from "../src/websocket.ts";
import { WebSocketError } from "../src/websocket_error.ts";
import { frameBytes } from "./_codec_util.ts";
import { memoryTransportPair } from "./_memory_transport.ts";
import { delay, within } from "./_socket_util.ts";

type Options = Omit<ConnectionInit, "transport" | "role">;

// A client in the usual mode sends to a server in the stream mode.
function streamingServerPair(serverOptions: Options = {}) {
  const [clientEnd, serverEnd] = memoryTransportPair();
  const client = new WebSocketConnection({
    role: "client",
    transport: clientEnd,
    closeTimeoutMs: 500,
  });
  const server = new WebSocketConnection<MessageStream>({
    role: "server",
    transport: serverEnd,
    closeTimeoutMs: 500,
    messages: "stream",
    ...serverOptions,
  });
  return { client, server };
}

// A server in the stream mode fed raw bytes by the test.
function rawFedServer(options: Options = {}) {
  let feed!: ReadableStreamDefaultController<Uint8Array>;
  const written: Uint8Array[] = [];
  const server = new WebSocketConnection<MessageStream>({
    role: "server",
    transport: {
      readable: new ReadableStream({ start: (c) => void (feed = c) }),
      writable: new WritableStream({ write: (c) => void written.push(c) }),
    },
    closeTimeoutMs: 200,
    messages: "stream",
    ...options,
  });
  const maskKey = new Uint8Array([1, 2, 3, 4]);
  const send = (opcode: number, payload: Uint8Array | string, fin: boolean) =>
    feed.enqueue(frameBytes({ opcode, payload, fin, maskKey }));
  return { server, send, feed: () => feed };
}

// A stream that yields one chunk each time the test opens the gate.
function gatedStream<T>() {
  let controller!: ReadableStreamDefaultController<T>;
  const stream = new ReadableStream<T>({ start: (c) => void (controller = c) });
  return { stream, controller };
}

async function nextMessage(
  reader: ReadableStreamDefaultReader<MessageStream>,
): Promise<MessageStream> {
  const { value, done } = await within(5000, reader.read(), "the next message");
  assert(!done, "expected a message, found readable closed");
  return value!;
}

// The text chunks of a message that must be text.
function textParts(message: MessageStream): Promise<string[]> {
  assertEquals(message.type, "text");
  return Array.fromAsync(message.stream as ReadableStream<string>);
}

Deno.test("a message is handed out at its first frame, its payload as it arrives", async () => {
  const { client, server } = streamingServerPair();
  const source = gatedStream<Uint8Array>();
  const writer = client.writable.getWriter();
  const sent = writer.write(source.stream);
  source.controller.enqueue(new Uint8Array([1, 2]));
  const reader = server.readable.getReader();
  const message = await nextMessage(reader);
  assertEquals(message.type, "binary");
  const payload = (message.stream as ReadableStream<Uint8Array>).getReader();
  // The first fragment is readable while the sender is still sending.
  assertEquals((await payload.read()).value, new Uint8Array([1, 2]));
  source.controller.enqueue(new Uint8Array([3]));
  assertEquals((await payload.read()).value, new Uint8Array([3]));
  source.controller.close();
  assertEquals((await payload.read()).done, true);
  await sent;
  await writer.write("next");
  const next = await nextMessage(reader);
  assertEquals(next.type, "text");
  assertEquals(await textParts(next), ["next"]);
  await writer.close();
  assertEquals((await reader.read()).done, true);
  assertEquals((await server.closed).wasClean, true);
});

Deno.test("text split inside a UTF-8 sequence across frames is decoded whole", async () => {
  const { server, send } = rawFedServer();
  const bytes = new TextEncoder().encode("é€😀"); // 2, 3 and 4 bytes
  send(0x1, bytes.subarray(0, 1), false);
  send(0x0, bytes.subarray(1, 4), false);
  send(0x0, bytes.subarray(4, 8), false);
  send(0x0, bytes.subarray(8), true);
  const message = await nextMessage(server.readable.getReader());
  assertEquals(message.type, "text");
  assertEquals((await textParts(message)).join(""), "é€😀");
  server.close();
});

Deno.test("invalid UTF-8 inside a streamed text message fails the socket with 1007 before it reaches the stream", async () => {
  const { server, send } = rawFedServer();
  send(0x1, "valid ", false);
  send(0x0, new Uint8Array([0x61, 0xff, 0x62]), false);
  const message = await nextMessage(server.readable.getReader());
  const reader = (message.stream as ReadableStream<string>).getReader();
  const chunks: string[] = [];
  const error = await assertRejects(async () => {
    while (true) {
      const { value, done } = await reader.read();
      if (done) return;
      chunks.push(value);
    }
  }, WebSocketError);
  assertEquals(error.closeCode, 1007);
  assertEquals(chunks.join(""), "valid ");
  assertEquals((await server.closed).closeCode, 1007);
});

Deno.test("maxMessageBytes applies to a streamed message: 1009 once it is passed", async () => {
  const { server, send } = rawFedServer({ maxMessageBytes: 10 });
  send(0x2, new Uint8Array(6), false);
  send(0x2 & 0, new Uint8Array(6), true);
  const message = await nextMessage(server.readable.getReader());
  const received: Uint8Array[] = [];
  const error = await assertRejects(async () => {
    for await (const chunk of message.stream as ReadableStream<Uint8Array>) {
      received.push(chunk);
    }
  }, WebSocketError);
  assertEquals(error.closeCode, 1009);
  assertEquals(received.map((chunk) => chunk.length), [6]);
  assertEquals((await server.closed).closeCode, 1009);
});

Deno.test("a cancelled message stream is dropped and the next message arrives", async () => {
  const { client, server } = streamingServerPair();
  const writer = client.writable.getWriter();
  const big = new Uint8Array(2 * 1024 * 1024).fill(1);
  const sent = writer.write(ReadableStream.from([big, big, big]));
  const reader = server.readable.getReader();
  const first = await nextMessage(reader);
  await first.stream.cancel("not wanted");
  await sent;
  await writer.write("after");
  const next = await nextMessage(reader);
  assertEquals(await textParts(next), ["after"]);
  await writer.close();
  await server.closed;
});

Deno.test("reading the next message before a stream ended drops the rest and errors that stream", async () => {
  const { client, server } = streamingServerPair();
  const source = gatedStream<string>();
  const writer = client.writable.getWriter();
  const sent = writer.write(source.stream);
  source.controller.enqueue("part one");
  const reader = server.readable.getReader();
  const first = await nextMessage(reader);
  const firstReader = (first.stream as ReadableStream<string>).getReader();
  assertEquals((await firstReader.read()).value, "part one");
  const nextRead = reader.read();
  const error = await assertRejects(() => firstReader.read(), TypeError);
  assert(error.message.includes("dropped"), error.message);
  source.controller.enqueue("part two");
  source.controller.close();
  await sent;
  await writer.write("second");
  const second = (await within(5000, nextRead)).value!;
  assertEquals(await textParts(second), ["second"]);
  await writer.close();
  await server.closed;
});

Deno.test("the peer closing inside a message errors its stream; readable closes", async () => {
  const { server, send } = rawFedServer();
  send(0x2, new Uint8Array([1]), false);
  const reader = server.readable.getReader();
  const message = await nextMessage(reader);
  send(0x8, new Uint8Array([0x03, 0xe8]), true);
  const error = await assertRejects(
    () => Array.fromAsync(message.stream as ReadableStream<Uint8Array>),
    WebSocketError,
  );
  assert(error.message.includes("incomplete"), error.message);
  assertEquals((await reader.read()).done, true);
  assertEquals((await server.closed).closeCode, 1000);
});

Deno.test("the connection ending inside a message errors its stream and readable", async () => {
  const { server, send, feed } = rawFedServer();
  send(0x1, "half", false);
  const reader = server.readable.getReader();
  const message = await nextMessage(reader);
  feed().close();
  await assertRejects(
    () => Array.fromAsync(message.stream as ReadableStream<string>),
    WebSocketError,
  );
  await assertRejects(() => reader.read(), WebSocketError);
  assertEquals((await server.closed).closeCode, 1006);
});

Deno.test("a compressed message is inflated into its stream as it arrives", async () => {
  const accepted = acceptDeflateOffer(
    "permessage-deflate; client_max_window_bits",
    {},
  )!;
  const { client, server } = (() => {
    const [clientEnd, serverEnd] = memoryTransportPair();
    return {
      client: new WebSocketConnection({
        role: "client",
        transport: clientEnd,
        deflate: createMessageDeflate(accepted.params, "client"),
      }),
      server: new WebSocketConnection<MessageStream>({
        role: "server",
        transport: serverEnd,
        deflate: createMessageDeflate(accepted.params, "server"),
        messages: "stream",
      }),
    };
  })();
  const text = "compress me, please. ".repeat(500);
  const writer = client.writable.getWriter();
  await writer.write(ReadableStream.from([text, text]));
  await writer.write(text);
  const reader = server.readable.getReader();
  const first = await nextMessage(reader);
  assertEquals((await textParts(first)).join(""), text + text);
  const second = await nextMessage(reader);
  assertEquals((await textParts(second)).join(""), text);
  await writer.close();
  await server.closed;
});

Deno.test("an unread message stream stops the socket reading: backpressure reaches TCP", async () => {
  let taken!: (message: MessageStream) => void;
  const takenMessage = new Promise<MessageStream>((resolve) => taken = resolve);
  let handlerDone!: () => void;
  const handlerFinished = new Promise<void>((r) => handlerDone = r);
  await using server = serve(
    // Uncompressed: 64 MiB of one byte value would deflate to nothing.
    { port: 0, hostname: "127.0.0.1", messages: "stream", compression: false },
    async (socket) => {
      const reader = socket.readable.getReader();
      taken((await reader.read()).value!);
      await handlerFinished;
      reader.releaseLock();
      await socket.readable.cancel();
    },
  );
  const client = await connect(`ws://127.0.0.1:${server.addr.port}/`);
  const writer = client.writable.getWriter();
  const chunk = new Uint8Array(1024 * 1024).fill(9);
  let chunksRead = 0;
  const source = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (chunksRead++ < 64) controller.enqueue(chunk);
      else controller.close();
    },
  }, { highWaterMark: 0 });
  let finished = false;
  const sent = writer.write(source).then(() => finished = true);
  const message = await takenMessage;
  await delay(500);
  // 64 MiB cannot fit in the socket buffers: the sender is held back.
  assert(!finished, "the sender finished though nobody read the message");
  assert(chunksRead < 64, `the source was read to its end (${chunksRead})`);
  let total = 0;
  for await (const part of message.stream as ReadableStream<Uint8Array>) {
    total += part.length;
  }
  assertEquals(total, 64 * 1024 * 1024);
  await within(10_000, sent);
  await writer.close();
  handlerDone();
  assertEquals((await client.closed).wasClean, true);
});

Deno.test("a pipe echoes messages as streams, one after the other, whole on the other side", async () => {
  await using server = serve(
    { port: 0, hostname: "127.0.0.1", messages: "stream" },
    (socket) => socket.readable.pipeTo(socket.writable),
  );
  const client = await connect(`ws://127.0.0.1:${server.addr.port}/`);
  const writer = client.writable.getWriter();
  const big = new Uint8Array(3 * 1024 * 1024).map((_, i) => i * 31);
  await writer.write("one");
  await writer.write(big);
  await writer.write(ReadableStream.from(["th", "ree"]));
  await writer.write(new Uint8Array(0));
  await writer.write("");
  const reader = client.readable.getReader();
  assertEquals((await reader.read()).value, "one");
  assertEquals((await reader.read()).value, big);
  assertEquals((await reader.read()).value, "three");
  assertEquals((await reader.read()).value, new Uint8Array(0));
  assertEquals((await reader.read()).value, "");
  await writer.close();
  assertEquals((await client.closed).wasClean, true);
});

Deno.test("the WHATWG WebSocket still gets a streamed message whole", async () => {
  await using server = serve(
    { port: 0, hostname: "127.0.0.1" },
    async (socket) => {
      const writer = socket.writable.getWriter();
      await writer.write(ReadableStream.from(["a", "b", "c"]));
      await writer.close();
    },
  );
  const ws = new WhatwgWebSocket(`ws://127.0.0.1:${server.addr.port}/`);
  const data = await within(
    5000,
    new Promise((resolve) => ws.onmessage = (event) => resolve(event.data)),
  );
  assertEquals(data, "abc");
  await new Promise((resolve) => ws.onclose = resolve);
  assertInstanceOf(ws, WhatwgWebSocket);
});

Deno.test("cancelling readable inside a message errors that message's stream (no reader is left waiting)", async () => {
  const { server, send } = rawFedServer();
  send(0x2, new Uint8Array([1]), false);
  const reader = server.readable.getReader();
  const message = await nextMessage(reader);
  const payload = (message.stream as ReadableStream<Uint8Array>).getReader();
  assertEquals((await payload.read()).value, new Uint8Array([1]));
  const pending = payload.read();
  await reader.cancel();
  await within(3000, assertRejects(() => pending, TypeError, "cancelled"));
  await server.closed;
});

Deno.test("a binary message's stream takes BYOB reads: frames larger and smaller than the buffer arrive in order, the buffer reused", async () => {
  const { server, send } = rawFedServer();
  const payload = new Uint8Array(10_000).map((_, i) => i % 251);
  send(0x2, payload.subarray(0, 3000), false);
  send(0x0, payload.subarray(3000, 3100), false);
  send(0x0, payload.subarray(3100), true);
  const message = await nextMessage(server.readable.getReader());
  assertEquals(message.type, "binary");
  const reader = (message.stream as ReadableStream<Uint8Array>).getReader({
    mode: "byob",
  });
  const received: number[] = [];
  let buffer = new Uint8Array(1024);
  let reads = 0;
  while (true) {
    const { value, done } = await within(5000, reader.read(buffer), "a read");
    if (done) break;
    reads++;
    received.push(...value);
    // Each read fills the buffer it was given (moved, not copied).
    assertEquals(value.buffer.byteLength, 1024);
    buffer = new Uint8Array(value.buffer);
  }
  assertEquals(new Uint8Array(received), payload);
  assert(reads >= 10, `${reads} reads of 1 KiB for 10,000 bytes`);
  server.close();
});

Deno.test("payloads read later are intact although the socket reuses its read buffer", async () => {
  // Many frames per read, read slowly: each payload must be copied out
  // before the socket reads into the same buffer again.
  const { client, server } = streamingServerPair();
  const writer = client.writable.getWriter();
  const frames = Array.from(
    { length: 64 },
    (_, i) => new Uint8Array(3000).fill(i),
  );
  const source = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const next = frames.shift();
      if (next === undefined) return controller.close();
      // Not ready together: one frame per chunk.
      await delay(1);
      controller.enqueue(next);
    },
  }, { highWaterMark: 0 });
  const sent = writer.write(source);
  const message = await nextMessage(server.readable.getReader());
  const chunks: Uint8Array[] = [];
  for await (const chunk of message.stream as ReadableStream<Uint8Array>) {
    chunks.push(chunk);
    await delay(2);
  }
  await sent;
  const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    all.set(chunk, offset);
    offset += chunk.length;
  }
  assertEquals(all.length, 64 * 3000);
  for (let i = 0; i < 64; i++) {
    assertEquals(all[i * 3000], i);
    assertEquals(all[i * 3000 + 2999], i);
  }
  await writer.close();
  await server.closed;
});

Deno.test("a binary message that ended but is not read yet does not hold up the next one, and reads intact later", async () => {
  const { server, send } = rawFedServer();
  send(0x2, new Uint8Array([1, 2, 3]), true);
  send(0x1, "second", true);
  const reader = server.readable.getReader();
  const first = await nextMessage(reader);
  assertEquals(first.type, "binary");
  // The next message is read before the first one's stream.
  const second = await nextMessage(reader);
  assertEquals(await textParts(second), ["second"]);
  // More bytes arrive (into the socket's reused read buffer) meanwhile.
  send(0x2, new Uint8Array(5000).fill(9), true);
  const third = await nextMessage(reader);
  assertEquals(
    await Array.fromAsync(third.stream as ReadableStream<Uint8Array>),
    [new Uint8Array(5000).fill(9)],
  );
  assertEquals(
    await Array.fromAsync(first.stream as ReadableStream<Uint8Array>),
    [new Uint8Array([1, 2, 3])],
  );
  server.close();
});
