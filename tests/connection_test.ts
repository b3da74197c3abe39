import { assert, assertEquals, assertRejects } from "@std/assert";
import { WebSocketConnection } from "../src/connection.ts";
import { enqueueSharedFrames } from "../src/prepared_queue.ts";
import type { Transport } from "../src/transport.ts";
import { FrameDecoder } from "../src/frame_decoder.ts";
import { WebSocketError } from "../src/websocket_error.ts";
import { memoryTransportPair } from "./_memory_transport.ts";
import { concat, randomBytes, seededRandom } from "./_codec_util.ts";

function socketPair(
  options: { closeTimeoutMs?: number; maxMessageBytes?: number } = {},
) {
  const [clientEnd, serverEnd] = memoryTransportPair();
  const client = new WebSocketConnection({
    role: "client",
    transport: clientEnd,
    ...options,
  });
  const server = new WebSocketConnection({
    role: "server",
    transport: serverEnd,
    ...options,
  });
  return { client, server, clientEnd, serverEnd };
}

// What a client sends: text "hi", then Close 1000, both masked with a zero
// key.
const MASKED_HI_THEN_CLOSE = new Uint8Array([
  ...[0x81, 0x82, 0, 0, 0, 0, 0x68, 0x69],
  ...[0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8],
]);

Deno.test("a piped server echoes text and binary, then the client's close completes", async () => {
  const { client, server } = socketPair();
  const echo = server.readable.pipeTo(server.writable);
  const writer = client.writable.getWriter();
  const reader = client.readable.getReader();
  await writer.write("héllo");
  await writer.write(new Uint8Array([1, 2, 3]));
  assertEquals((await reader.read()).value, "héllo");
  assertEquals((await reader.read()).value, new Uint8Array([1, 2, 3]));
  await writer.close();
  assertEquals((await reader.read()).done, true);
  await echo;
  assertEquals(await client.closed, {
    closeCode: 1000,
    reason: "",
    wasClean: true,
  });
  assertEquals(await server.closed, {
    closeCode: 1000,
    reason: "",
    wasClean: true,
  });
});

Deno.test("closed first asked for after the socket ended resolves with how it ended, and is one promise", async () => {
  const { client, server } = socketPair();
  const echo = server.readable.pipeTo(server.writable);
  // Only the client's `closed` is asked for before the end.
  client.close({ closeCode: 4001, reason: "done" });
  await client.closed;
  await echo;
  // The server's ended before anyone asked for its `closed`.
  const closed = server.closed;
  assertEquals(await closed, {
    closeCode: 4001,
    reason: "done",
    wasClean: true,
  });
  assert(server.closed === closed, "expected the same promise each time");
});

Deno.test("close() with a code and reason reaches the peer, which echoes it", async () => {
  const { client, server } = socketPair();
  server.close({ closeCode: 4000, reason: "bye" });
  const messages = await Array.fromAsync(client.readable);
  assertEquals(messages, []);
  assertEquals(await client.closed, {
    closeCode: 4000,
    reason: "bye",
    wasClean: true,
  });
  assertEquals(await server.closed, {
    closeCode: 4000,
    reason: "bye",
    wasClean: true,
  });
});

Deno.test("a message over maxMessageBytes fails the receiver with 1009", async () => {
  const [clientEnd, serverEnd] = memoryTransportPair();
  const client = new WebSocketConnection({
    role: "client",
    transport: clientEnd,
  });
  const server = new WebSocketConnection({
    role: "server",
    transport: serverEnd,
    maxMessageBytes: 10,
  });
  const writer = client.writable.getWriter();
  await writer.write("this is longer than ten bytes");
  const error = await assertRejects(
    () => Array.fromAsync(server.readable),
    WebSocketError,
  );
  assertEquals(error.closeCode, 1009);
  assertEquals((await server.closed).closeCode, 1009);
  const clientResult = await client.closed;
  assertEquals(clientResult.closeCode, 1009);
  assert(clientResult.reason.includes("at most 10 bytes"), clientResult.reason);
});

// A transport whose peer is this test: it records what the socket writes
// and lets the test write raw bytes to the socket.
function rawPeer() {
  let controller!: ReadableByteStreamController;
  const written: Uint8Array[] = [];
  const transport = {
    readable: new ReadableStream({
      type: "bytes",
      start(c) {
        controller = c;
      },
    }),
    writable: new WritableStream<Uint8Array>({
      write(chunk) {
        written.push(chunk.slice());
      },
    }),
    closed: false,
    close() {
      this.closed = true;
      try {
        controller.close();
        controller.byobRequest?.respond(0);
      } catch {
        // already closed
      }
    },
  };
  return {
    transport,
    written,
    send(bytes: number[]) {
      controller.enqueue(new Uint8Array(bytes));
    },
  };
}

// A server socket on a raw peer, which sends and records bytes.
function serverOnRawPeer(options: { closeTimeoutMs?: number } = {}) {
  const peer = rawPeer();
  const socket = new WebSocketConnection({
    role: "server",
    transport: peer.transport,
    ...options,
  });
  return { peer, socket };
}

// A client's Close 1000, masked with a zero key.
const MASKED_CLOSE_1000 = [0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8];

Deno.test("a Ping between fragments is answered with the same payload before the message completes", async () => {
  const peer = rawPeer();
  const socket = new WebSocketConnection({
    role: "client",
    transport: peer.transport,
  });
  const reader = socket.readable.getReader();
  peer.send([0x01, 0x02, 0x48, 0x65]); // text "He", not final
  peer.send([0x89, 0x03, 0x61, 0x62, 0x63]); // ping "abc"
  await new Promise((resolve) => setTimeout(resolve, 10));
  // The pong is masked (client role): 0x8a, 0x80 | 3, key, masked "abc".
  const pong = peer.written.find((chunk) => chunk[0] === 0x8a)!;
  assert(pong !== undefined, "expected a Pong to be sent");
  assertEquals(pong[1], 0x83);
  const key = pong.subarray(2, 6);
  assertEquals(
    [...pong.subarray(6)].map((byte, index) => byte ^ key[index % 4]),
    [0x61, 0x62, 0x63],
  );
  peer.send([0x80, 0x03, 0x6c, 0x6c, 0x6f]); // final "llo"
  assertEquals((await reader.read()).value, "Hello");
  peer.send([0x88, 0x02, 0x03, 0xe8]);
  assertEquals((await reader.read()).done, true);
  peer.transport.close();
  assertEquals((await socket.closed).closeCode, 1000);
});

Deno.test("keep-alive fails the socket with 1006 when no Pong comes back", async () => {
  const peer = rawPeer();
  const socket = new WebSocketConnection({
    role: "server",
    transport: peer.transport,
    pingIntervalMs: 20,
    pongTimeoutMs: 30,
  });
  const error = await assertRejects(
    () => socket.readable.getReader().read(),
    WebSocketError,
  );
  assertEquals(error.closeCode, 1006);
  assert(error.message.includes("stopped answering pings"), error.message);
  const result = await socket.closed;
  assertEquals(result.closeCode, 1006);
  assertEquals(result.wasClean, false);
  assert(
    peer.written.some((chunk) => chunk[0] === 0x89),
    "expected a Ping to be sent",
  );
  assert(peer.transport.closed, "expected the transport to be closed");
});

Deno.test("keep-alive keeps a socket whose peer answers", async () => {
  const { client, server } = socketPair();
  const [clientEnd, serverEnd] = memoryTransportPair();
  const pinging = new WebSocketConnection({
    role: "server",
    transport: serverEnd,
    pingIntervalMs: 10,
    pongTimeoutMs: 50,
  });
  const answering = new WebSocketConnection({
    role: "client",
    transport: clientEnd,
  });
  await new Promise((resolve) => setTimeout(resolve, 150));
  pinging.close();
  assertEquals(await answering.closed, {
    closeCode: 1000,
    reason: "",
    wasClean: true,
  });
  assertEquals((await pinging.closed).wasClean, true);
  client.close();
  await Promise.all([client.closed, server.closed]);
});

Deno.test("a peer that never answers Close is cut at the close timeout with 1006", async () => {
  const peer = rawPeer();
  const socket = new WebSocketConnection({
    role: "server",
    transport: peer.transport,
    closeTimeoutMs: 50,
  });
  const started = Date.now();
  socket.close({ closeCode: 1000, reason: "done" });
  const result = await socket.closed;
  assertEquals(result, { closeCode: 1006, reason: "", wasClean: false });
  assert(Date.now() - started >= 40);
  assert(peer.transport.closed);
  assertEquals(
    peer.written.at(-1)!.subarray(0, 4),
    new Uint8Array([0x88, 0x06, 0x03, 0xe8]),
  );
});

Deno.test("nothing is sent after our Close, and writes are refused", async () => {
  const { peer, socket } = serverOnRawPeer({ closeTimeoutMs: 50 });
  const writer = socket.writable.getWriter();
  await writer.write("before");
  await writer.close();
  await assertRejects(() => writer.write("after"), TypeError);
  peer.send([0x89, 0x80, 1, 2, 3, 4]); // a masked ping after our Close
  await socket.closed;
  // Frames written in one turn may leave in one transport write: decode them.
  const opcodes: number[] = [];
  new FrameDecoder({ role: "client" }).decode(
    new Uint8Array(peer.written.flatMap((chunk) => [...chunk])),
    (frame) => void opcodes.push(frame.opcode),
  );
  assertEquals(opcodes, [0x1, 0x8]);
});

Deno.test("the peer's Close with no code is answered with an empty Close and reported as 1005", async () => {
  const peer = rawPeer();
  const socket = new WebSocketConnection({
    role: "server",
    transport: peer.transport,
  });
  peer.send([0x88, 0x80, 1, 2, 3, 4]);
  assertEquals(await Array.fromAsync(socket.readable), []);
  const result = await socket.closed;
  assertEquals(result, { closeCode: 1005, reason: "", wasClean: true });
  assertEquals(peer.written.at(-1), new Uint8Array([0x88, 0x00]));
});

Deno.test("a protocol error sends Close 1002 and errors readable with the reason", async () => {
  const peer = rawPeer();
  const socket = new WebSocketConnection({
    role: "server",
    transport: peer.transport,
  });
  peer.send([0x81, 0x02, 0x48, 0x69]); // unmasked from a client
  const error = await assertRejects(
    () => socket.readable.getReader().read(),
    WebSocketError,
  );
  assertEquals(error.closeCode, 1002);
  assert(error.message.includes("expected a masked frame"), error.message);
  const result = await socket.closed;
  assertEquals(result.closeCode, 1002);
  const close = peer.written.at(-1)!;
  assertEquals(close.subarray(0, 1), new Uint8Array([0x88]));
  assertEquals((close[2] << 8) | close[3], 1002);
});

Deno.test("the socket stops reading the transport while the application does not read", async () => {
  // A peer that produces 16 KiB binary frames on demand, counting them.
  let produced = 0;
  const frame = new Uint8Array(4 + 16 * 1024);
  frame.set([0x82, 126, 0x40, 0x00]);
  const transport = {
    readable: new ReadableStream<Uint8Array>({
      async pull(controller) {
        // A real socket waits for the network; so does this peer, a little.
        await new Promise((resolve) => setTimeout(resolve, 0));
        produced++;
        controller.enqueue(frame.slice());
      },
    }, { highWaterMark: 0 }),
    writable: new WritableStream<Uint8Array>(),
  };
  const socket = new WebSocketConnection({
    role: "client",
    transport,
    closeTimeoutMs: 50,
  });
  const settle = async () => {
    let last = -1;
    for (let i = 0; i < 200 && produced !== last; i++) {
      last = produced;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    return produced;
  };
  const stalled = await settle();
  // 256 KiB of messages (16 of 16 KiB) may wait in readable, plus one read.
  assert(
    stalled <= 18,
    `expected reading to stop near 16 messages, read ${stalled}`,
  );
  const reader = socket.readable.getReader();
  for (let i = 0; i < 10; i++) await reader.read();
  const resumed = await settle();
  assert(
    resumed > stalled,
    "expected reading to resume once messages were taken",
  );
  assert(
    resumed <= stalled + 12,
    `expected reading to stop again, read ${resumed}`,
  );
  await reader.cancel();
  await socket.closed;
});

Deno.test("writable applies backpressure by bytes waiting for the transport", async () => {
  const transport = {
    readable: new ReadableStream<Uint8Array>(),
    // A peer that never takes bytes.
    writable: new WritableStream<Uint8Array>({
      write: () => new Promise(() => {}),
    }),
    close() {},
  };
  const socket = new WebSocketConnection({
    role: "server",
    transport,
    maxBufferedBytes: 64 * 1024,
    closeTimeoutMs: 10,
  });
  const writer = socket.writable.getWriter();
  const message = new Uint8Array(16 * 1024);
  let accepted = 0;
  for (let i = 0; i < 100; i++) {
    const ready = await Promise.race([
      writer.ready.then(() => true),
      new Promise((r) => setTimeout(() => r(false), 5)),
    ]);
    if (!ready) break;
    writer.write(message).catch(() => {});
    accepted++;
  }
  assert(
    accepted < 20,
    `expected backpressure after about 128 KiB, accepted ${accepted} messages of 16 KiB`,
  );
  assert(
    socket.bufferedAmount <= 64 * 1024 + 2 * message.length + 16,
    `bufferedAmount ${socket.bufferedAmount}`,
  );
  socket.close();
  await socket.closed;
});

Deno.test("a message and Close that arrive with the handshake are echoed by a pipe started right after", async () => {
  const peer = rawPeer();
  const leftover = MASKED_HI_THEN_CLOSE.slice(); // unmasked in place
  const socket = new WebSocketConnection({
    role: "server",
    transport: peer.transport,
    leftover,
  });
  await socket.readable.pipeTo(socket.writable);
  assertEquals(await socket.closed, {
    closeCode: 1000,
    reason: "",
    wasClean: true,
  });
  assertEquals(peer.written.map((chunk) => [...chunk]).flat(), [
    0x81,
    0x02,
    0x68,
    0x69,
    0x88,
    0x02,
    0x03,
    0xe8,
  ]);
});

Deno.test("a writer may reuse its buffer as soon as write() resolves, also for large binary messages", async () => {
  // A large unmasked payload is written without a copy (the server role),
  // so write() must not resolve before the bytes have left.
  const { client, server } = socketPair();
  const size = 100_000;
  const count = 5;
  const writing = (async () => {
    const writer = server.writable.getWriter();
    const buffer = new Uint8Array(size);
    for (let fill = 1; fill <= count; fill++) {
      buffer.fill(fill);
      await writer.write(buffer);
    }
    await writer.close();
  })();
  const fills: number[][] = [];
  for await (const message of client.readable) {
    const bytes = message as Uint8Array;
    assertEquals(bytes.length, size);
    fills.push([bytes[0], bytes[size - 1]]);
  }
  await writing;
  assertEquals(fills, [[1, 1], [2, 2], [3, 3], [4, 4], [5, 5]]);
  await client.closed;
});

Deno.test("a client masks large frames that queue behind a write into one write, each with a fresh key", async () => {
  const written: Uint8Array[] = [];
  let endRead: (() => void) | undefined;
  const socket = new WebSocketConnection({
    role: "client",
    // No peer answers the Close: the socket ends at this timeout, which must
    // outlast the queued writes even on a loaded machine.
    closeTimeoutMs: 250,
    // Like a Deno.Conn (read and closeWrite): the socket reuses the buffers
    // it masks into once a write resolves.
    transport: {
      readable: new ReadableStream(),
      writable: new WritableStream(),
      read: () => new Promise<null>((resolve) => endRead = () => resolve(null)),
      // Takes a copy of the bytes, and resolves a task later, so the frames
      // written meanwhile queue.
      write(bytes: Uint8Array) {
        written.push(bytes.slice());
        return new Promise<number>((resolve) =>
          setTimeout(() => resolve(bytes.length), 0)
        );
      },
      closeWrite() {},
      close: () => endRead?.(),
    } as Transport,
  });
  const random = seededRandom(9);
  const payloads = Array.from(
    { length: 8 },
    () => randomBytes(70_000, random) as Uint8Array<ArrayBuffer>,
  );
  const originals = payloads.map((payload) => payload.slice());
  const writer = socket.writable.getWriter();
  await Promise.all(payloads.map((payload) => writer.write(payload)));
  await writer.close();
  await socket.closed;
  // The caller's bytes are untouched: the client masks a copy.
  assertEquals(payloads, originals);
  const bytes = concat(written);
  const frames: { opcode: number; payload: Uint8Array }[] = [];
  new FrameDecoder({ role: "server" }).decode(
    bytes,
    (frame) => void frames.push({ ...frame, payload: frame.payload.slice() }),
  );
  assertEquals(frames.map((frame) => frame.payload), [
    ...originals,
    new Uint8Array([0x03, 0xe8]),
  ]);
  // RFC 6455 §5.3: each frame has its own masking key (after a 10-byte
  // header: 2 bytes and a 64-bit length).
  const frameLength = 14 + 70_000;
  const keys = new Set(
    originals.map((_, i) =>
      bytes.subarray(i * frameLength + 10, i * frameLength + 14).join()
    ),
  );
  assertEquals(keys.size, originals.length);
  assert(
    written.some((chunk) => chunk.length >= 2 * frameLength),
    `expected queued frames to leave together, found writes of ${
      written.map((chunk) => chunk.length)
    } bytes`,
  );
});

Deno.test("a transport's write() is used instead of its writable, and short writes are completed", async () => {
  const fromPeer = MASKED_HI_THEN_CLOSE.slice();
  const sent: number[] = [];
  let writes = 0;
  const server = new WebSocketConnection({
    role: "server",
    transport: {
      readable: ReadableStream.from([fromPeer]),
      get writable(): WritableStream<Uint8Array> {
        throw new Error("expected write() to be used, found writable read");
      },
      // Takes at most 3 bytes a call, as a busy socket may.
      write(bytes: Uint8Array) {
        writes++;
        const count = Math.min(3, bytes.length);
        sent.push(...bytes.subarray(0, count));
        return Promise.resolve(count);
      },
      close() {},
    },
  });
  await server.readable.pipeTo(server.writable);
  assertEquals((await server.closed).closeCode, 1000);
  const frames: { opcode: number; payload: Uint8Array }[] = [];
  new FrameDecoder({ role: "client" }).decode(
    new Uint8Array(sent),
    (frame) => void frames.push(frame),
  );
  assertEquals(frames.map((frame) => frame.opcode), [0x1, 0x8]);
  assertEquals(new TextDecoder().decode(frames[0].payload), "hi");
  assertEquals(frames[1].payload, new Uint8Array([0x03, 0xe8]));
  assert(writes >= Math.ceil(sent.length / 3));
});

Deno.test("a pipe answers the peer's Close with no timer set on the way", async () => {
  const { peer, socket } = serverOnRawPeer();
  const echo = socket.readable.pipeTo(socket.writable);
  // A timer per closing socket costs more than the rest of its close.
  const realSetTimeout = globalThis.setTimeout;
  let timers = 0;
  globalThis.setTimeout = ((...args: Parameters<typeof setTimeout>) => {
    timers++;
    return realSetTimeout(...args);
  }) as typeof setTimeout;
  try {
    peer.send([0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe9]); // Close 1001, masked
    assertEquals(await socket.closed, {
      closeCode: 1001,
      reason: "",
      wasClean: true,
    });
  } finally {
    globalThis.setTimeout = realSetTimeout;
  }
  await echo;
  assertEquals(timers, 0);
  assertEquals(peer.written.at(-1), new Uint8Array([0x88, 0x02, 0x03, 0xe9]));
});

Deno.test("a writer that holds the writable past the peer's Close gets the close timeout, then the Close is answered", async () => {
  const { peer, socket } = serverOnRawPeer({ closeTimeoutMs: 50 });
  const writer = socket.writable.getWriter();
  const started = Date.now();
  peer.send(MASKED_CLOSE_1000);
  assertEquals(await Array.fromAsync(socket.readable), []);
  // Still unanswered a while after the Close: the writer may finish first.
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert(
    !peer.written.some((chunk) => chunk[0] === 0x88),
    "answered while the writable was held",
  );
  assertEquals(await socket.closed, {
    closeCode: 1000,
    reason: "",
    wasClean: true,
  });
  assert(Date.now() - started >= 40);
  assertEquals(peer.written.at(-1), new Uint8Array([0x88, 0x02, 0x03, 0xe8]));
  writer.releaseLock();
});

Deno.test("Nagle's algorithm is turned off before the first data frame, and not for a Close alone", async () => {
  for (const sendsData of [false, true]) {
    const peer = rawPeer();
    const calls: string[] = [];
    const transport = {
      ...peer.transport,
      writable: new WritableStream<Uint8Array>({
        write() {
          if (calls.at(-1) !== "write") calls.push("write");
        },
      }),
      setNoDelay(noDelay?: boolean) {
        calls.push(`setNoDelay ${noDelay}`);
      },
    };
    const socket = new WebSocketConnection({ role: "server", transport });
    const writer = socket.writable.getWriter();
    if (sendsData) await writer.write("hi");
    await writer.close();
    peer.send(MASKED_CLOSE_1000);
    await socket.closed;
    assertEquals(calls, sendsData ? ["setNoDelay true", "write"] : ["write"]);
  }
});

Deno.test("a Close is written at once, with the frames queued before it in the same write", async () => {
  const { peer, socket } = serverOnRawPeer({ closeTimeoutMs: 50 });
  await new Promise((resolve) => setTimeout(resolve, 0)); // streams started
  const writer = socket.writable.getWriter();
  void writer.write("bye");
  socket.close({ closeCode: 1000 });
  // Nothing may follow a Close: no quiet microtask hops wait for more
  // frames (one hop ends the wait the text frame started).
  await Promise.resolve();
  await Promise.resolve();
  assertEquals(peer.written, [
    new Uint8Array([0x81, 0x03, 0x62, 0x79, 0x65, 0x88, 0x02, 0x03, 0xe8]),
  ]);
  writer.releaseLock();
  peer.send(MASKED_CLOSE_1000);
  assertEquals((await socket.closed).wasClean, true);
});

// What a client socket wrote, frame by frame: `text <text>` or `close <code>`.
function clientFramesWritten(written: Uint8Array[]): string[] {
  const decoder = new FrameDecoder({ role: "server" });
  const frames: string[] = [];
  decoder.decode(concat(written), (frame) => {
    frames.push(
      frame.opcode === 0x1
        ? `text ${new TextDecoder().decode(frame.payload)}`
        : frame.opcode === 0x8
        ? `close ${(frame.payload[0] << 8) | frame.payload[1]}`
        : `opcode ${frame.opcode}`,
    );
  });
  return frames;
}

// Two texts, a text with RSV2 (a protocol error: RFC 6455 §5.2) and a ping,
// as a server sends them.
const TWO_TEXTS_THEN_A_VIOLATION = [
  ...[0x81, 0x03, ...new TextEncoder().encode("one")],
  ...[0x81, 0x03, ...new TextEncoder().encode("two")],
  ...[0xa1, 0x03, ...new TextEncoder().encode("bad")],
  ...[0x89, 0x00],
];

Deno.test("a failure waits for the application: a pipe started after the violation still echoes the messages before it, then Close 1002, nothing after", async () => {
  const peer = rawPeer();
  const socket = new WebSocketConnection({
    role: "client",
    transport: peer.transport,
  });
  peer.send(TWO_TEXTS_THEN_A_VIOLATION);
  // The application starts its echo once all of it has been received.
  await new Promise((resolve) => setTimeout(resolve, 20));
  const piped = await socket.readable.pipeTo(socket.writable).then(
    () => "done",
    (error) => `${error.name} ${error.closeCode}`,
  );
  assertEquals(piped, "WebSocketError 1002");
  const result = await socket.closed;
  assertEquals([result.closeCode, result.wasClean], [1002, false]);
  // RFC 6455 §7.1.7: the Close comes last; the ping is never answered.
  assertEquals(clientFramesWritten(peer.written), [
    "text one",
    "text two",
    "close 1002",
  ]);
});

Deno.test("a failure the application does not read fails at closeTimeoutMs, and its messages stay readable before the error", async () => {
  const peer = rawPeer();
  const socket = new WebSocketConnection({
    role: "client",
    transport: peer.transport,
    closeTimeoutMs: 50,
  });
  peer.send(TWO_TEXTS_THEN_A_VIOLATION);
  const result = await socket.closed;
  assertEquals([result.closeCode, result.wasClean], [1002, false]);
  assertEquals(clientFramesWritten(peer.written), ["close 1002"]);
  const reader = socket.readable.getReader();
  assertEquals((await reader.read()).value, "one");
  assertEquals((await reader.read()).value, "two");
  const error = await assertRejects(() => reader.read(), WebSocketError);
  assertEquals(error.closeCode, 1002);
});

Deno.test("close() while a failure waits for the application sends the failure's Close at once", async () => {
  const peer = rawPeer();
  const socket = new WebSocketConnection({
    role: "client",
    transport: peer.transport,
    closeTimeoutMs: 5000,
  });
  peer.send(TWO_TEXTS_THEN_A_VIOLATION);
  const reader = socket.readable.getReader();
  assertEquals((await reader.read()).value, "one");
  // The connection has failed: the code asked for gives way to 1002.
  socket.close({ closeCode: 4000 });
  const result = await socket.closed;
  assertEquals([result.closeCode, result.wasClean], [1002, false]);
  assertEquals(clientFramesWritten(peer.written), ["close 1002"]);
  assertEquals((await reader.read()).value, "two");
  await assertRejects(() => reader.read(), WebSocketError);
});

Deno.test("shared frames reach the peer in order with the socket's own messages, and a closing socket takes none", async () => {
  const { client, server } = socketPair({ closeTimeoutMs: 100 });
  const shared = new Uint8Array([
    0x81,
    0x06,
    ...new TextEncoder().encode("shared"),
  ]);
  const writer = server.writable.getWriter();
  await writer.write("own 1");
  assertEquals(enqueueSharedFrames(server, shared), server.bufferedAmount);
  await writer.write("own 2");
  const reader = client.readable.getReader();
  assertEquals((await reader.read()).value, "own 1");
  assertEquals((await reader.read()).value, "shared");
  assertEquals((await reader.read()).value, "own 2");
  server.close();
  assertEquals(enqueueSharedFrames(server, shared), undefined);
  assertEquals((await reader.read()).done, true);
  await server.closed;
});

Deno.test("the peer ending the connection inside a frame fails the socket with 1006 and says so", async () => {
  const peer = rawPeer();
  const socket = new WebSocketConnection({
    role: "client",
    transport: peer.transport,
  });
  // Half of a text frame "Hello" (its header and "He"), then FIN.
  peer.send([0x81, 0x05, 0x48, 0x65]);
  await new Promise((resolve) => setTimeout(resolve, 10));
  peer.transport.close();
  const result = await socket.closed;
  assertEquals([result.closeCode, result.wasClean], [1006, false]);
  const error = await assertRejects(
    () => socket.readable.getReader().read(),
    WebSocketError,
  );
  assertEquals(error.closeCode, 1006);
  assertEquals(error.message, "the connection ended inside a frame");
});
