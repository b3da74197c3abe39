// `socket.readable.pipeTo(socket.writable)` runs inside the socket
// (src/socket_pipe.ts). Each behaviour is checked on that path ("fast") and
// on the generic WHATWG pipe ("generic", `ReadableStream.prototype.pipeTo`
// called directly), which must agree.

import { assert, assertEquals, assertRejects, assertThrows } from "@std/assert";
import { WebSocketConnection } from "../src/connection.ts";
import type { CloseResult, ConnectionInit } from "../src/socket_options.ts";
import { connect } from "../src/client.ts";
import { ConnectionSink } from "../src/connection_sink.ts";
import type { Frame } from "../src/frame.ts";
import { FrameDecoder } from "../src/frame_decoder.ts";
import type { Message } from "../src/message_assembler.ts";
import type { MessageStream } from "../src/message_stream.ts";
import type { OutgoingMessage } from "../src/message_stream_sender.ts";
import { acceptDeflateOffer } from "../src/permessage_deflate.ts";
import { createMessageDeflate } from "../src/permessage_deflate_codec.ts";
import { serve } from "../src/server.ts";
import { WebSocketError } from "../src/websocket_error.ts";
import { concat, frameBytes, utf8 } from "./_codec_util.ts";
import { memoryTransportPair } from "./_memory_transport.ts";
import { delay, within } from "./_socket_util.ts";

// What the pipes use of a socket, whatever its readable yields.
interface PipedSocket {
  readonly readable: ReadableStream<unknown>;
  readonly writable: WritableStream<OutgoingMessage>;
}

type Pipe = (
  socket: PipedSocket,
  options?: StreamPipeOptions,
) => Promise<void>;

const PIPES: [string, Pipe][] = [
  [
    "fast",
    (socket, options) => socket.readable.pipeTo(socket.writable, options),
  ],
  [
    "generic",
    (socket, options) =>
      ReadableStream.prototype.pipeTo.call(
        socket.readable,
        socket.writable as WritableStream<unknown>,
        options,
      ),
  ],
];

// Counts the messages the socket sent back without the generic pipe.
let forwarded = 0;
const realForward = ConnectionSink.prototype.forward;
ConnectionSink.prototype.forward = function (message) {
  forwarded++;
  return realForward.call(this, message);
};
const realForwardFragment = ConnectionSink.prototype.forwardFragment;
ConnectionSink.prototype.forwardFragment = function (...args) {
  forwarded++;
  return realForwardFragment.apply(this, args);
};

function pair(server: Partial<ConnectionInit> = {}) {
  const [clientEnd, serverEnd] = memoryTransportPair();
  return {
    client: new WebSocketConnection({ role: "client", transport: clientEnd }),
    server: new WebSocketConnection({
      role: "server",
      transport: serverEnd,
      ...server,
    }),
  };
}

// A server socket whose peer is raw bytes.
function serverOnRawClient() {
  const [clientEnd, serverEnd] = memoryTransportPair();
  return {
    clientEnd,
    server: new WebSocketConnection({ role: "server", transport: serverEnd }),
  };
}

// A server with `messages: "stream"` whose peer is raw bytes.
function streamServerOnRawClient(options: Partial<ConnectionInit> = {}) {
  const [clientEnd, serverEnd] = memoryTransportPair();
  const server = new WebSocketConnection<MessageStream>({
    role: "server",
    transport: serverEnd,
    messages: "stream",
    ...options,
  });
  return { clientEnd, serverEnd, server };
}

// A client with whole messages and a server with `messages: "stream"`.
function streamPair(
  server: Partial<ConnectionInit> = {},
  client: Partial<ConnectionInit> = {},
) {
  const [clientEnd, serverEnd] = memoryTransportPair();
  return {
    client: new WebSocketConnection({
      role: "client",
      transport: clientEnd,
      ...client,
    }),
    server: new WebSocketConnection<MessageStream>({
      role: "server",
      transport: serverEnd,
      messages: "stream",
      ...server,
    }),
  };
}

// A server whose transport writes only once `release()` is called, and
// which counts the bytes it read; with a client on the other end.
function gatedServer(init: Partial<ConnectionInit> = {}) {
  const [clientEnd, serverEnd] = memoryTransportPair();
  let release!: () => void;
  const gate = new Promise<void>((resolve) => release = resolve);
  const toClient = serverEnd.writable.getWriter();
  const fromClient = serverEnd.readable.getReader({ mode: "byob" });
  const counts = { readBytes: 0 };
  const server = new WebSocketConnection<Message | MessageStream>({
    role: "server",
    maxBufferedBytes: 16 * 1024,
    ...init,
    transport: {
      readable: serverEnd.readable,
      get writable(): WritableStream<Uint8Array> {
        throw new Error("expected write() to be used, found writable read");
      },
      async read(buffer) {
        const { value, done } = await fromClient.read(
          new Uint8Array(buffer.length),
        );
        if (done) return null;
        counts.readBytes += value.length;
        buffer.set(value);
        return value.length;
      },
      async write(bytes) {
        await gate;
        await toClient.write(bytes.slice());
        return bytes.length;
      },
      close() {
        toClient.close().catch(() => {});
        fromClient.cancel().catch(() => {});
      },
    },
  });
  const client = new WebSocketConnection({
    role: "client",
    transport: clientEnd,
  });
  return { server, client, counts, release };
}

// The frames a server wrote to its peer.
function framesWritten(written: Uint8Array[]): Frame[] {
  const frames: Frame[] = [];
  new FrameDecoder({ role: "client" }).decode(
    concat(written),
    (frame) => void frames.push({ ...frame, payload: frame.payload.slice() }),
  );
  return frames;
}

// Closes the client's writable, then checks that the echo ended with it:
// the pipe resolved, both streams released, the handshake clean.
async function closeAndAssertEnded(
  writer: WritableStreamDefaultWriter<OutgoingMessage>,
  reader: ReadableStreamDefaultReader<Message>,
  echo: Promise<void>,
  server: PipedSocket & { readonly closed: Promise<CloseResult> },
): Promise<void> {
  await writer.close();
  assertEquals((await reader.read()).done, true);
  await echo;
  assert(!server.readable.locked && !server.writable.locked);
  assertEquals(await server.closed, {
    closeCode: 1000,
    reason: "",
    wasClean: true,
  });
}

// Asserts that the pipe took the path it was meant to.
function assertPath(name: string, before: number): void {
  if (name === "fast") assert(forwarded > before, "expected the fast path");
  else assertEquals(forwarded, before, "expected the generic pipe");
}

for (const [name, pipe] of PIPES) {
  Deno.test(`${name} pipe: echoes in order, locks both streams, ends with the peer's Close`, async () => {
    const before = forwarded;
    const { client, server } = pair();
    const echo = pipe(server);
    assert(server.readable.locked && server.writable.locked);
    assertThrows(() => server.readable.getReader(), TypeError);
    assertThrows(() => server.writable.getWriter(), TypeError);
    const writer = client.writable.getWriter();
    const reader = client.readable.getReader();
    const sent: Message[] = ["héllo", new Uint8Array([1, 2, 3]), ""];
    for (let i = 0; i < 50; i++) sent.push(`m${i}`);
    for (const message of sent) void writer.write(message);
    for (const message of sent) {
      assertEquals((await reader.read()).value, message);
    }
    await closeAndAssertEnded(writer, reader, echo, server);
    assertEquals((await client.closed).wasClean, true);
    assertPath(name, before);
  });

  Deno.test(`${name} pipe: the peer's messages and Close in one chunk: every message is echoed before the Close, with its code`, async () => {
    const before = forwarded;
    const { clientEnd, server } = serverOnRawClient();
    const echo = pipe(server);
    const maskKey = new Uint8Array(4); // zero: the payload stays readable
    const frames: Uint8Array[] = [];
    for (let i = 0; i < 20; i++) {
      frames.push(frameBytes({ opcode: 0x1, payload: `n${i}`, maskKey }));
    }
    const close = new Uint8Array([
      0x10,
      0xe1,
      ...new TextEncoder().encode("bye"),
    ]);
    frames.push(frameBytes({ opcode: 0x8, payload: close, maskKey }));
    await clientEnd.writable.getWriter().write(concat(frames));
    await echo;
    assertEquals(await server.closed, {
      closeCode: 4321,
      reason: "bye",
      wasClean: true,
    });
    const echoed: string[] = [];
    new FrameDecoder({ role: "client" }).decode(
      concat(await Array.fromAsync(clientEnd.readable)),
      (frame) =>
        void echoed.push(
          frame.opcode === 0x1
            ? new TextDecoder().decode(frame.payload)
            : `close ${
              new DataView(frame.payload.buffer, frame.payload.byteOffset)
                .getUint16(0)
            }`,
        ),
    );
    assertEquals(echoed, [
      ...Array.from({ length: 20 }, (_, i) => `n${i}`),
      "close 4321",
    ]);
    assertPath(name, before);
  });

  Deno.test(`${name} pipe: preventClose leaves the writable open and unlocked once the peer's Close arrives`, async () => {
    const before = forwarded;
    const { client, server } = pair();
    const echo = pipe(server, { preventClose: true });
    const writer = client.writable.getWriter();
    await writer.write("x");
    const reader = client.readable.getReader();
    assertEquals((await reader.read()).value, "x");
    void writer.close();
    await echo;
    assert(!server.writable.locked && !server.readable.locked);
    // The socket answers the Close itself, as with no pipe.
    assertEquals((await server.closed).closeCode, 1000);
    assertPath(name, before);
  });

  Deno.test(`${name} pipe: an aborted signal rejects with its reason, aborts the writable (Close with the reason's code) and cancels the readable`, async () => {
    const before = forwarded;
    const { client, server } = pair();
    const controller = new AbortController();
    const echo = pipe(server, { signal: controller.signal });
    const writer = client.writable.getWriter();
    const reader = client.readable.getReader();
    await writer.write("before");
    assertEquals((await reader.read()).value, "before");
    const reason = new WebSocketError("go away", {
      closeCode: 4001,
      reason: "stop",
    });
    controller.abort(reason);
    assertEquals(await assertRejects(() => echo), reason);
    assert(!server.readable.locked && !server.writable.locked);
    assertEquals((await reader.read()).done, true);
    void writer.close();
    assertEquals((await client.closed).closeCode, 4001);
    assertPath(name, before);
  });

  Deno.test(`${name} pipe: an aborted signal with preventAbort and preventCancel leaves both streams usable`, async () => {
    const before = forwarded;
    const { client, server } = pair();
    const controller = new AbortController();
    const echo = pipe(server, {
      signal: controller.signal,
      preventAbort: true,
      preventCancel: true,
    });
    const writer = client.writable.getWriter();
    const reader = client.readable.getReader();
    await writer.write("one");
    assertEquals((await reader.read()).value, "one");
    controller.abort("enough");
    assertEquals(await echo.catch((error) => error), "enough");
    // The socket is open: the application reads and writes itself.
    await writer.write("two");
    const serverReader = server.readable.getReader();
    assertEquals((await serverReader.read()).value, "two");
    const serverWriter = server.writable.getWriter();
    await serverWriter.write("three");
    assertEquals((await reader.read()).value, "three");
    await writer.close();
    assertEquals((await serverReader.read()).done, true);
    await serverWriter.close();
    assertEquals((await server.closed).wasClean, true);
    assertPath(name, before);
  });

  Deno.test(`${name} pipe: the peer failing the connection rejects the pipe with a WebSocketError 1006`, async () => {
    const before = forwarded;
    const { clientEnd, server } = serverOnRawClient();
    const echo = pipe(server);
    // A masked text "hi" (zero key), then the connection ends without Close.
    const toServer = clientEnd.writable.getWriter();
    await toServer.write(new Uint8Array([0x81, 0x82, 0, 0, 0, 0, 0x68, 0x69]));
    await delay(10);
    await toServer.close();
    const error = await assertRejects(() => echo, WebSocketError);
    assertEquals(error.closeCode, 1006);
    assertEquals((await server.closed).closeCode, 1006);
    assert(!server.readable.locked && !server.writable.locked);
    assertPath(name, before);
  });

  Deno.test(`${name} pipe: close() mid-pipe errors the writable: the pipe rejects with that error and the peer gets the Close`, async () => {
    const before = forwarded;
    const { client, server } = pair();
    const echo = pipe(server);
    const writer = client.writable.getWriter();
    const reader = client.readable.getReader();
    await writer.write("a");
    assertEquals((await reader.read()).value, "a");
    server.close({ closeCode: 4000, reason: "server says" });
    await assertRejects(() => echo, TypeError, "closing");
    assertEquals((await reader.read()).done, true);
    void writer.close();
    assertEquals((await client.closed).closeCode, 4000);
    assertPath(name, before);
  });

  Deno.test(`${name} pipe: a slow peer's backpressure stops the reads; every message arrives, in order`, async () => {
    const before = forwarded;
    // The server's transport writes only when released.
    const { server, client, counts, release } = gatedServer();
    const echo = pipe(server);
    const writer = client.writable.getWriter();
    const message = new Uint8Array(4096);
    const count = 400; // 1.6 MB, far over what the server buffers
    for (let i = 0; i < count; i++) {
      void writer.write(message.map(() => i & 0xff));
    }
    await delay(100);
    const whileStalled = counts.readBytes;
    await delay(100);
    // Reading stopped while nothing could be written.
    assertEquals(counts.readBytes, whileStalled);
    assert(
      whileStalled < count * 4096 / 2,
      `expected the reads to stop early, found ${whileStalled} bytes read`,
    );
    release();
    const reader = client.readable.getReader();
    for (let i = 0; i < count; i++) {
      const { value } = await within(5000, reader.read(), `message ${i}`);
      assertEquals((value as Uint8Array)[0], i & 0xff);
      assertEquals((value as Uint8Array).length, 4096);
    }
    await writer.close();
    await echo;
    assertEquals((await server.closed).wasClean, true);
    assertPath(name, before);
  });

  Deno.test(`${name} pipe: messages sent in fragments and compressed keep their order`, async () => {
    const before = forwarded;
    const accepted = acceptDeflateOffer(
      "permessage-deflate; client_max_window_bits",
      {},
    )!;
    const [clientEnd, serverEnd] = memoryTransportPair();
    const client = new WebSocketConnection({
      role: "client",
      transport: clientEnd,
      deflate: createMessageDeflate(accepted.params, "client"),
    });
    const server = new WebSocketConnection({
      role: "server",
      transport: serverEnd,
      deflate: createMessageDeflate(accepted.params, "server"),
      maxOutgoingFrameBytes: 128,
    });
    const echo = pipe(server);
    const writer = client.writable.getWriter();
    const sent: string[] = [];
    for (let i = 0; i < 30; i++) {
      sent.push(`${i} `.repeat(i * 40));
      void writer.write(sent[i]);
    }
    void writer.close();
    assertEquals(await Array.fromAsync(client.readable), sent);
    await echo;
    assertEquals((await server.closed).wasClean, true);
    assertPath(name, before);
  });
}

// The same contract with `messages: "stream"`: each message is forwarded
// as its frames arrive (fast) or read as a MessageStream and written back
// (generic).
for (const [name, pipe] of PIPES) {
  Deno.test(`${name} pipe, streamed messages: each is echoed whole and in order, both streams locked, ending with the peer's Close`, async () => {
    const before = forwarded;
    const { client, server } = streamPair();
    const echo = pipe(server);
    assert(server.readable.locked && server.writable.locked);
    assertThrows(() => server.readable.getReader(), TypeError);
    const writer = client.writable.getWriter();
    const reader = client.readable.getReader();
    const large = [0, 1, 2, 3].map((i) => patterned(i, 70_000));
    void writer.write(ReadableStream.from(["hé", "llo ", "wörld"]));
    void writer.write(ReadableStream.from(large));
    void writer.write("");
    void writer.write(new Uint8Array([5, 6]));
    void writer.write(new Blob([]));
    assertEquals((await reader.read()).value, "héllo wörld");
    assertEquals((await reader.read()).value, concat(large));
    assertEquals((await reader.read()).value, "");
    assertEquals((await reader.read()).value, new Uint8Array([5, 6]));
    assertEquals((await reader.read()).value, new Uint8Array(0));
    await closeAndAssertEnded(writer, reader, echo, server);
    assertPath(name, before);
  });

  Deno.test(`${name} pipe, streamed messages: a text message split inside a UTF-8 sequence, with a Ping between its frames, goes back as one message, the Pong before its end`, async () => {
    const before = forwarded;
    const { clientEnd, serverEnd, server } = streamServerOnRawClient();
    const echo = pipe(server);
    const maskKey = new Uint8Array([1, 2, 3, 4]);
    const e = new TextEncoder().encode("é"); // 0xc3 0xa9
    await clientEnd.writable.getWriter().write(concat([
      frameBytes({
        opcode: 0x1,
        fin: false,
        payload: concat([utf8("h"), e.subarray(0, 1)]),
        maskKey,
      }),
      frameBytes({ opcode: 0x9, payload: "p", maskKey }),
      frameBytes({
        opcode: 0x0,
        fin: false,
        payload: concat([e.subarray(1), utf8("llo")]),
        maskKey,
      }),
      frameBytes({ opcode: 0x0, payload: "!", maskKey }),
      frameBytes({ opcode: 0x8, payload: new Uint8Array([3, 232]), maskKey }),
    ]));
    await echo;
    assertEquals((await server.closed).closeCode, 1000);
    const frames = framesWritten(serverEnd.written);
    const data = frames.filter((frame) => frame.opcode < 0x8);
    // One message: a text frame, continuations, only the last one final.
    assertEquals(data[0].opcode, 0x1);
    assert(data.slice(1).every((frame) => frame.opcode === 0x0));
    assertEquals(
      data.map((frame) => frame.fin),
      data.map((_, i) => i === data.length - 1),
    );
    assertEquals(
      new TextDecoder().decode(concat(data.map((frame) => frame.payload))),
      "héllo!",
    );
    const pong = frames.findIndex((frame) => frame.opcode === 0xa);
    assert(
      pong >= 0 && pong < frames.indexOf(data.at(-1)!),
      "expected the Pong before the message's last frame",
    );
    assertEquals(frames.at(-1)!.opcode, 0x8);
    assertPath(name, before);
  });

  Deno.test(`${name} pipe, streamed messages: a slow peer's backpressure stops the reads inside a message; all of it arrives`, async () => {
    const before = forwarded;
    const { server, client, counts, release } = gatedServer({
      messages: "stream",
    });
    const echo = pipe(server);
    const writer = client.writable.getWriter();
    const chunks = Array.from({ length: 400 }, (_, i) => patterned(i, 4096));
    const sending = writer.write(ReadableStream.from(chunks)); // 1.6 MB
    await delay(100);
    const whileStalled = counts.readBytes;
    await delay(100);
    assertEquals(counts.readBytes, whileStalled);
    assert(
      whileStalled < 400 * 4096 / 2,
      `expected the reads to stop early, found ${whileStalled} bytes read`,
    );
    release();
    const reader = client.readable.getReader();
    const { value } = await within(5000, reader.read(), "the echo");
    assertEquals(value, concat(chunks));
    await sending;
    await writer.close();
    await echo;
    assertEquals((await server.closed).wasClean, true);
    assertPath(name, before);
  });

  Deno.test(`${name} pipe, streamed messages: the peer's Close inside a message fails the socket with 1011; the peer never gets the message's end`, async () => {
    const before = forwarded;
    const { clientEnd, serverEnd, server } = streamServerOnRawClient();
    const echo = pipe(server);
    const maskKey = new Uint8Array([9, 9, 9, 9]);
    const toServer = clientEnd.writable.getWriter();
    await toServer.write(
      frameBytes({
        opcode: 0x2,
        fin: false,
        payload: new Uint8Array([1, 2, 3]),
        maskKey,
      }),
    );
    await delay(10);
    await toServer.write(
      frameBytes({ opcode: 0x8, payload: new Uint8Array([3, 232]), maskKey }),
    );
    const error = await assertRejects(() => echo, WebSocketError);
    assertEquals(error.closeCode, 1011);
    const closed = await server.closed;
    assertEquals(closed.closeCode, 1011);
    assert(!server.readable.locked && !server.writable.locked);
    const frames = framesWritten(serverEnd.written);
    assert(frames.every((frame) => frame.opcode >= 0x8 || !frame.fin));
    const close = frames.at(-1)!;
    assertEquals([close.opcode, close.payload[0] << 8 | close.payload[1]], [
      0x8,
      1011,
    ]);
    assertPath(name, before);
  });

  Deno.test(`${name} pipe, streamed messages: an aborted signal inside a message finishes the message first, then aborts (Close with the reason's code)`, async () => {
    const before = forwarded;
    const { clientEnd, serverEnd, server } = streamServerOnRawClient();
    const controller = new AbortController();
    const echo = pipe(server, { signal: controller.signal });
    let settled = false;
    echo.catch(() => {}).finally(() => settled = true);
    const maskKey = new Uint8Array([5, 6, 7, 8]);
    const toServer = clientEnd.writable.getWriter();
    await toServer.write(
      frameBytes({
        opcode: 0x2,
        fin: false,
        payload: new Uint8Array([1]),
        maskKey,
      }),
    );
    await delay(10);
    const reason = new WebSocketError("go away", { closeCode: 4001 });
    controller.abort(reason);
    await delay(10);
    assert(!settled, "expected the pipe to wait for the message's end");
    await toServer.write(
      frameBytes({ opcode: 0x0, payload: new Uint8Array([2]), maskKey }),
    );
    assertEquals(await assertRejects(() => echo), reason);
    await toServer.write(
      frameBytes({ opcode: 0x8, payload: new Uint8Array([3, 232]), maskKey }),
    );
    await server.closed;
    const frames = framesWritten(serverEnd.written);
    const data = frames.filter((frame) => frame.opcode < 0x8);
    assertEquals(
      concat(data.map((frame) => frame.payload)),
      new Uint8Array([1, 2]),
    );
    assertEquals(
      data.map((frame) => frame.fin).lastIndexOf(true),
      data.length - 1,
    );
    assertEquals(data.filter((frame) => frame.fin).length, 1);
    const close = frames.at(-1)!;
    assertEquals(
      [close.opcode, close.payload[0] << 8 | close.payload[1]],
      [0x8, 4001],
    );
    assertPath(name, before);
  });

  for (
    const [what, tail, closeCode, options] of [
      [
        "invalid UTF-8",
        { opcode: 0x0, payload: new Uint8Array([0xff]) },
        1007,
        {},
      ],
      [
        "a message over maxMessageBytes",
        { opcode: 0x0, payload: new Uint8Array(60) },
        1009,
        { maxMessageBytes: 100 },
      ],
    ] as const
  ) {
    Deno.test(`${name} pipe, streamed messages: ${what} inside a message fails the socket with ${closeCode} before the message's end`, async () => {
      const before = forwarded;
      const { clientEnd, serverEnd, server } = streamServerOnRawClient(
        options,
      );
      const echo = pipe(server);
      const maskKey = new Uint8Array([7, 0, 7, 0]);
      const toServer = clientEnd.writable.getWriter();
      await toServer.write(
        frameBytes({
          opcode: 0x1,
          fin: false,
          payload: "x".repeat(60),
          maskKey,
        }),
      );
      await delay(10);
      await toServer.write(frameBytes({ ...tail, maskKey }));
      await assertRejects(() => echo, WebSocketError);
      assertEquals((await server.closed).closeCode, closeCode);
      const frames = framesWritten(serverEnd.written);
      assert(frames.every((frame) => frame.opcode >= 0x8 || !frame.fin));
      const close = frames.at(-1)!;
      assertEquals([close.opcode, close.payload[0] << 8 | close.payload[1]], [
        0x8,
        closeCode,
      ]);
      assertPath(name, before);
    });
  }
}

Deno.test("a streamed-message pipe takes the generic path when a message in progress was handed out already, and with compression", async () => {
  const before = forwarded;
  const { client, server } = streamPair();
  const writer = client.writable.getWriter();
  const reader = client.readable.getReader();
  let finish!: ReadableStreamDefaultController<string>;
  void writer.write(
    new ReadableStream<string>({ start: (c) => void (finish = c) }),
  );
  finish.enqueue("begun, ");
  const serverReader = server.readable.getReader();
  const begun = (await serverReader.read()).value!;
  assertEquals(begun.type, "text");
  serverReader.releaseLock();
  const echo = server.readable.pipeTo(server.writable);
  finish.enqueue("then dropped");
  finish.close();
  await writer.write("piped");
  // The generic pipe's read of the next message dropped the rest of the
  // one handed out (see MessageStream).
  assertEquals((await reader.read()).value, "piped");
  await writer.close();
  await echo;
  assertEquals(forwarded, before);

  const accepted = acceptDeflateOffer("permessage-deflate", {})!;
  const compressed = streamPair(
    { deflate: createMessageDeflate(accepted.params, "server") },
    { deflate: createMessageDeflate(accepted.params, "client") },
  );
  const compressedEcho = compressed.server.readable.pipeTo(
    compressed.server.writable,
  );
  const compressedWriter = compressed.client.writable.getWriter();
  void compressedWriter.write(ReadableStream.from(["com", "pressed"]));
  void compressedWriter.close();
  assertEquals(await Array.fromAsync(compressed.client.readable), [
    "compressed",
  ]);
  await compressedEcho;
  assertEquals(forwarded, before);
});

Deno.test("a pipe into another socket's writable takes the generic pipe", async () => {
  const before = forwarded;
  const a = pair();
  const b = pair();
  const relay = a.server.readable.pipeTo(b.client.writable);
  const bEcho = b.server.readable.pipeTo(b.server.writable);
  const writer = a.client.writable.getWriter();
  await writer.write("relayed");
  const reader = b.client.readable.getReader();
  assertEquals((await reader.read()).value, "relayed");
  assertEquals(forwarded - before, 1, "only b's echo forwards by itself");
  await writer.close();
  await relay;
  await bEcho;
  await a.server.closed;
  await b.server.closed;
});

Deno.test('a socket with messages: "stream" echoes its messages in-socket', async () => {
  const before = forwarded;
  const [clientEnd, serverEnd] = memoryTransportPair();
  const client = new WebSocketConnection({
    role: "client",
    transport: clientEnd,
  });
  const server = new WebSocketConnection<MessageStream>({
    role: "server",
    transport: serverEnd,
    messages: "stream",
  });
  const echo = server.readable.pipeTo(server.writable);
  const writer = client.writable.getWriter();
  void writer.write("streamed");
  void writer.write(new Uint8Array([9, 8, 7]));
  void writer.close();
  assertEquals(await Array.fromAsync(client.readable), [
    "streamed",
    new Uint8Array([9, 8, 7]),
  ]);
  await echo;
  assertEquals((await server.closed).wasClean, true);
  assert(forwarded > before, "expected the fast path");
});

Deno.test("a pipe started after a reader was released, or with an already aborted signal, behaves as the generic pipe", async () => {
  const { client, server } = pair();
  const reader = server.readable.getReader();
  const writer = client.writable.getWriter();
  await writer.write("read by hand");
  assertEquals((await reader.read()).value, "read by hand");
  reader.releaseLock();
  const controller = new AbortController();
  controller.abort("already");
  const refused = server.readable.pipeTo(server.writable, {
    signal: controller.signal,
    preventAbort: true,
    preventCancel: true,
  });
  assertEquals(await refused.catch((error) => error), "already");
  const echo = server.readable.pipeTo(server.writable);
  await writer.write("piped");
  const clientReader = client.readable.getReader();
  assertEquals((await clientReader.read()).value, "piped");
  await writer.close();
  await echo;
  assertEquals((await server.closed).wasClean, true);
});

// Distinct bytes for message `index`, so a buffer reused too early shows.
function patterned(index: number, size: number): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i += 997) bytes[i] = (index * 31 + i) & 0xff;
  bytes[size - 1] = index & 0xff;
  return bytes;
}

for (const messages of ["whole", "stream"] as const) {
  Deno.test(`a TCP echo of large messages through pooled read buffers returns every byte unchanged (${messages} messages)`, async () => {
    const server = serve(
      { port: 0, hostname: "127.0.0.1", onListen() {}, messages },
      (socket) => socket.readable.pipeTo(socket.writable),
    );
    try {
      const client = await connect(`ws://127.0.0.1:${server.addr.port}/`);
      const writer = client.writable.getWriter();
      const reader = client.readable.getReader();
      const sizes = [65536, 70000, 200_000, 4096, 65536];
      const count = 150;
      const window = 8;
      let received = 0;
      const expect = async () => {
        const size = sizes[received % sizes.length];
        const { value } = await within(5000, reader.read(), `echo ${received}`);
        assertEquals(value, patterned(received, size), `echo ${received}`);
        received++;
      };
      for (let sent = 0; sent < count; sent++) {
        const message = patterned(sent, sizes[sent % sizes.length]);
        // Streamed: sent in fragments of 64 KiB at most.
        await writer.write(
          messages === "stream" ? new Blob([message]) : message,
        );
        if (sent - received >= window) await expect();
      }
      while (received < count) await expect();
      await writer.close();
      assertEquals((await client.closed).wasClean, true);
    } finally {
      await server.shutdown();
    }
  });
}

Deno.test("large messages the application keeps are never overwritten by later reads", async () => {
  const kept: Uint8Array[] = [];
  const server = serve(
    { port: 0, hostname: "127.0.0.1", onListen() {} },
    async (socket) => {
      for await (const message of socket.readable) {
        kept.push(message as Uint8Array);
      }
    },
  );
  try {
    const client = await connect(`ws://127.0.0.1:${server.addr.port}/`);
    const writer = client.writable.getWriter();
    const count = 60;
    for (let i = 0; i < count; i++) await writer.write(patterned(i, 70000));
    await writer.close();
    await client.closed;
    assertEquals(kept.length, count);
    kept.forEach((message, i) => assertEquals(message, patterned(i, 70000)));
  } finally {
    await server.shutdown();
  }
});

// Whole messages; or, with `messages: "stream"`, one message in as many
// fragments, forwarded as they arrive.
for (const messages of ["whole", "stream"] as const) {
  Deno.test(`an echo of frames arriving many per read, to a peer that reads late, returns every byte unchanged (${messages} messages)`, async () => {
    const server = serve(
      { port: 0, hostname: "127.0.0.1", onListen() {}, messages },
      (socket) => socket.readable.pipeTo(socket.writable),
    );
    const conn = await Deno.connect({
      hostname: "127.0.0.1",
      port: server.addr.port,
    });
    try {
      await conn.write(
        new TextEncoder().encode(
          "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        ),
      );
      const head = new Uint8Array(1024);
      const headBytes = (await conn.read(head))!;
      assert(
        new TextDecoder().decode(head.subarray(0, headBytes)).includes(" 101 "),
      );
      const count = 64;
      const maskKey = new Uint8Array(4); // zero: the payload is sent as is
      const frames = Array.from(
        { length: count },
        (_, i) =>
          frameBytes({
            opcode: messages === "stream" && i > 0 ? 0x0 : 0x2,
            fin: messages === "whole" || i === count - 1,
            payload: patterned(i, 65536),
            maskKey,
          }),
      );
      frames.push(
        frameBytes({ opcode: 0x8, payload: new Uint8Array([3, 232]), maskKey }),
      );
      const writing = (async () => {
        const all = concat(frames);
        for (let at = 0; at < all.length;) {
          at += await conn.write(all.subarray(at));
        }
      })();
      // The echoes wait in the server's write queue meanwhile.
      await delay(200);
      const echoed: Uint8Array[] = [];
      const decoder = new FrameDecoder({ role: "client" });
      const buffer = new Uint8Array(256 * 1024);
      let closed = false;
      while (!closed) {
        const n = await within(5000, conn.read(buffer), "the echoes");
        if (n === null) break;
        decoder.decode(buffer.slice(0, n), (frame) => {
          if (frame.opcode === 0x8) closed = true;
          else echoed.push(frame.payload.slice());
        });
      }
      await writing;
      assertEquals(echoed.length, count);
      echoed.forEach((payload, i) =>
        assertEquals(payload, patterned(i, 65536))
      );
    } finally {
      conn.close();
      await server.shutdown();
    }
  });
}
