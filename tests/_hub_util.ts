/**
 * Helpers for the hub tests (hub_test.ts, hub_adapters_test.ts): reading a
 * number of messages, waiting for a condition, and the slow-subscriber run
 * on any kind of server socket.
 *
 * @module
 */

import { assert, assertEquals, assertLessOrEqual } from "@std/assert";
import {
  connect,
  type Frame,
  FrameDecoderStream,
  Hub,
  Opcode,
  type Socket,
  WebSocketConnection,
} from "../mod.ts";
import { memoryTransportPair } from "./_memory_transport.ts";
import { parseClosePayload } from "../src/close_payload.ts";
import { delay, maskedFrame, upgradeRequest, within } from "./_socket_util.ts";

/** A message as a socket receives it. */
export type Message = string | Uint8Array;

/** Reads `count` messages (fewer if `readable` ends first). */
export async function take(
  socket: { readable: ReadableStream<Message> },
  count: number,
): Promise<Message[]> {
  const reader = socket.readable.getReader();
  const messages: Message[] = [];
  try {
    while (messages.length < count) {
      const { value, done } = await reader.read();
      if (done) break;
      messages.push(value);
    }
  } finally {
    reader.releaseLock();
  }
  return messages;
}

/** Asserts the messages are `expected`, one by one (a diff of megabytes is no help). */
export function sameMessages(received: Message[], expected: Message[]): void {
  assertEquals(received.length, expected.length);
  received.forEach((message, i) =>
    assert(
      typeof message === "string"
        ? message === expected[i]
        : message.length === expected[i].length &&
          message.every((byte, j) => byte === (expected[i] as Uint8Array)[j]),
      `message ${i} (${expected[i].length} long) differs`,
    )
  );
}

/** Polls `condition` every 5 ms, for up to 10 s. */
export async function waitFor(
  condition: () => boolean,
  what: string,
): Promise<void> {
  await within(
    10_000,
    (async () => {
      while (!condition()) await delay(5);
    })(),
    what,
  );
}

/** A TCP client that completes the handshake and then never reads. */
export async function stalledClient(
  port: number,
  path: string,
): Promise<Deno.TcpConn> {
  const conn = await Deno.connect({ port, hostname: "127.0.0.1" });
  await conn.write(
    new TextEncoder().encode(upgradeRequest({}, `GET ${path} HTTP/1.1`)),
  );
  const head = new Uint8Array(1024);
  const n = await conn.read(head);
  assert(
    new TextDecoder().decode(head.subarray(0, n ?? 0)).startsWith(
      "HTTP/1.1 101",
    ),
  );
  return conn;
}

/**
 * A server whose sockets are given to `onSocket` with their request path;
 * each socket lives until it closes.
 */
export interface SocketServer {
  port: number;
  shutdown(): Promise<void>;
}

/** Starts a server of one kind (serve(), upgrade(), handleUpgrade()...). */
export type StartSocketServer = (
  onSocket: (socket: Socket, path: string) => void,
) => Promise<SocketServer>;

/** What {@linkcode slowSubscriberRun} leaves for the checks after it. */
export interface SlowRun {
  hub: Hub;
  slow: Socket;
  stalled: Deno.TcpConn;
  reader: WebSocketConnection;
  server: SocketServer;
}

/**
 * Two subscribers to "feed", one of them a client that never reads; 2,000
 * messages of 16 KiB are published. The reading one gets them all in
 * order, and the stalled one never has much more than the hub's limit
 * queued.
 */
export async function slowSubscriberRun(
  policy: "close" | "drop",
  start: StartSocketServer,
): Promise<SlowRun> {
  const limit = 256 * 1024;
  const hub = new Hub({ maxBufferedBytes: limit, slowSubscriber: policy });
  let slow: Socket | undefined;
  const server = await start((socket, path) => {
    if (path === "/stalled") slow = socket;
    hub.subscribe(socket, "feed");
  });
  const stalled = await stalledClient(server.port, "/stalled");
  const reader = await connect(`ws://127.0.0.1:${server.port}/`);
  await waitFor(() => hub.subscriberCount("feed") === 2, "both subscribed");
  assert(slow !== undefined);
  const chunk = new Uint8Array(16 * 1024).fill(7);
  const count = 2000; // 32 MiB: far more than the kernel buffers hold
  const readAll = take(reader, count);
  let maxBuffered = 0;
  for (let i = 0; i < count; i++) {
    chunk[0] = i & 0xff;
    hub.publish("feed", chunk);
    maxBuffered = Math.max(maxBuffered, slow!.bufferedAmount);
    // Let the reader's socket drain now and then, as a real publisher would.
    if (i % 16 === 0) await delay(0);
  }
  const received = await within(20_000, readAll, "the reader's messages");
  assertEquals(received.length, count);
  received.forEach((message, i) =>
    assertEquals((message as Uint8Array)[0], i & 0xff)
  );
  // Memory bounded: the slow socket never queued much more than the limit.
  assertLessOrEqual(maxBuffered, limit + chunk.length + 64);
  return { hub, slow: slow!, stalled, reader, server };
}

/**
 * The stalled client reads at last: a prefix of the messages, none
 * missing, then Close 1013, which it answers.
 */
export async function assertClosedWith1013(run: SlowRun): Promise<void> {
  const { hub, slow, stalled, reader, server } = run;
  assertEquals(hub.droppedMessages(), 0);
  const frames: Frame[] = [];
  await within(
    10_000,
    (async () => {
      const decoded = stalled.readable.pipeThrough(
        new FrameDecoderStream({ role: "client" }),
      );
      for await (const frame of decoded) {
        frames.push(frame);
        if (frame.opcode !== Opcode.Close) continue;
        await stalled.write(maskedFrame(Opcode.Close, frame.payload));
        break;
      }
    })(),
    "reading the stalled client's frames up to the Close",
  );
  const close = frames.pop()!;
  assertEquals(close.opcode, Opcode.Close);
  assertEquals(parseClosePayload(close.payload).closeCode, 1013);
  assert(frames.length > 0);
  frames.forEach((frame, i) => assertEquals(frame.payload[0], i & 0xff));
  await within(10_000, slow.closed, "the slow socket's end");
  assertEquals(hub.subscriberCount("feed"), 1);
  reader.close();
  await reader.closed;
  await server.shutdown();
}

/**
 * Under "drop", the stalled subscriber missed messages, which are counted,
 * and stays subscribed until it leaves.
 */
export async function assertDroppedAndCounted(run: SlowRun): Promise<void> {
  const { hub, slow, stalled, reader, server } = run;
  const dropped = hub.droppedMessages(slow);
  assert(dropped > 0, "some messages were dropped");
  assertEquals(hub.droppedMessages(), dropped);
  assertEquals(hub.subscriberCount("feed"), 2, "it stays subscribed");
  stalled.close();
  await within(5000, slow.closed, "the slow socket's end");
  reader.close();
  await reader.closed;
  await server.shutdown();
}

/** A server socket and the client socket at the other end, in memory. */
export function memoryPair(): {
  server: WebSocketConnection;
  client: WebSocketConnection;
} {
  const [a, b] = memoryTransportPair();
  return {
    server: new WebSocketConnection({
      transport: a,
      role: "server",
      closeTimeoutMs: 200,
    }),
    client: new WebSocketConnection({
      transport: b,
      role: "client",
      closeTimeoutMs: 200,
    }),
  };
}

/** Closes the sockets and waits until they end. */
export async function closeAll(sockets: WebSocketConnection[]): Promise<void> {
  for (const socket of sockets) socket.close();
  await Promise.all(sockets.map((socket) => socket.closed));
}
