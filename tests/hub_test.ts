/**
 * Hub: topics in one process, over in-memory sockets (for scale) and real
 * TCP sockets from serve() and connect().
 */

import {
  assert,
  assertEquals,
  assertLessOrEqual,
  assertThrows,
} from "@std/assert";
import {
  connect,
  type Frame,
  FrameDecoderStream,
  Hub,
  Opcode,
  serve,
  WebSocketConnection,
} from "../mod.ts";
import type { ServeOptions } from "../src/server.ts";
import { memoryTransportPair } from "./_memory_transport.ts";
import { delay, within } from "./_socket_util.ts";
import { parseClosePayload } from "../src/close_payload.ts";

type Message = string | Uint8Array;

/** A server socket and the client socket at the other end, in memory. */
function memoryPair(): {
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

async function take(
  socket: WebSocketConnection,
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

async function closeAll(sockets: WebSocketConnection[]): Promise<void> {
  for (const socket of sockets) socket.close();
  await Promise.all(sockets.map((socket) => socket.closed));
}

function startServer(
  hub: Hub,
  topic: string,
  options: Partial<ServeOptions> = {},
) {
  return serve(
    { port: 0, hostname: "127.0.0.1", closeTimeoutMs: 500, ...options },
    async (socket) => {
      hub.subscribe(socket, topic);
      await socket.readable.pipeTo(hub.writable(topic, { except: socket }))
        .catch(() => {});
    },
  );
}

async function waitFor(condition: () => boolean, what: string): Promise<void> {
  await within(
    10_000,
    (async () => {
      while (!condition()) await delay(5);
    })(),
    what,
  );
}

Deno.test("Hub: text and binary reach every subscriber of the topic, in publish order, and no one else", async () => {
  const hub = new Hub();
  const pairs = [memoryPair(), memoryPair(), memoryPair()];
  hub.subscribe(pairs[0].server, "a");
  hub.subscribe(pairs[1].server, "a");
  hub.subscribe(pairs[2].server, "b");
  assertEquals(hub.subscriberCount("a"), 2);
  assertEquals(hub.subscriberCount("b"), 1);
  const sent: Message[] = [];
  for (let i = 0; i < 100; i++) {
    const message = i % 2 === 0 ? `text ${i}` : new Uint8Array([i, 255 - i, 0]);
    sent.push(message);
    assertEquals(hub.publish("a", message), 2);
  }
  hub.publish("b", "only b");
  assertEquals(await take(pairs[0].client, 100), sent);
  assertEquals(await take(pairs[1].client, 100), sent);
  assertEquals(await take(pairs[2].client, 1), ["only b"]);
  await closeAll(pairs.map((pair) => pair.client));
});

Deno.test("Hub: sizes from 0 B to 1 MiB arrive byte for byte, and the publisher's buffer may be reused at once", async () => {
  // 4 MiB published at once: more than the 1 MiB a socket may queue by default.
  const hub = new Hub({ maxBufferedBytes: 8 * 1024 * 1024 });
  const { server, client } = memoryPair();
  hub.subscribe(server, "sizes");
  const sizes = [0, 1, 125, 126, 65535, 65536, 100_000, 1024 * 1024];
  const expected: Message[] = [];
  const buffer = new Uint8Array(1024 * 1024);
  for (const size of sizes) {
    const view = buffer.subarray(0, size);
    for (let i = 0; i < size; i++) view[i] = (i * 7 + size) & 0xff;
    expected.push(view.slice());
    hub.publish("sizes", view);
    buffer.fill(0xee); // the hub copied it
    expected.push("é".repeat(size >> 1));
    hub.publish("sizes", "é".repeat(size >> 1));
  }
  const received = await take(client, expected.length);
  assertEquals(received.length, expected.length);
  // One by one: a diff of megabytes is no help.
  received.forEach((message, i) =>
    assert(
      typeof message === "string"
        ? message === expected[i]
        : message.length === expected[i].length &&
          message.every((byte, j) => byte === (expected[i] as Uint8Array)[j]),
      `message ${i} (${expected[i].length} long) differs`,
    )
  );
  await closeAll([client]);
});

Deno.test("Hub: except skips the sender; writable() publishes a socket's messages to the others", async () => {
  const hub = new Hub();
  const pairs = [memoryPair(), memoryPair(), memoryPair()];
  for (const { server } of pairs) hub.subscribe(server, "room");
  const piped = pairs[0].server.readable.pipeTo(
    hub.writable("room", { except: pairs[0].server }),
  );
  const writer = pairs[0].client.writable.getWriter();
  await writer.write("from 0");
  await writer.write(new Uint8Array([1, 2]));
  assertEquals(await take(pairs[1].client, 2), [
    "from 0",
    new Uint8Array([1, 2]),
  ]);
  hub.publish("room", "to all");
  assertEquals(await take(pairs[1].client, 1), ["to all"]);
  assertEquals(await take(pairs[2].client, 3), [
    "from 0",
    new Uint8Array([1, 2]),
    "to all",
  ]);
  // The sender got only what it did not send.
  assertEquals(await take(pairs[0].client, 1), ["to all"]);
  await writer.close();
  await piped;
  await closeAll(pairs.slice(1).map((pair) => pair.client));
});

Deno.test("Hub: a socket leaves its topics when it closes; unsubscribe() leaves one topic", async () => {
  const hub = new Hub();
  const one = memoryPair();
  const two = memoryPair();
  hub.subscribe(one.server, "x");
  hub.subscribe(one.server, "y");
  hub.subscribe(one.server, "y"); // twice: still one subscription
  hub.subscribe(two.server, "y");
  assertEquals(hub.subscriberCount("y"), 2);
  hub.unsubscribe(two.server, "y");
  hub.unsubscribe(two.server, "never subscribed");
  assertEquals(hub.subscriberCount("y"), 1);
  assertEquals(hub.publish("y", "after unsubscribe"), 1);
  one.client.close();
  await one.server.closed;
  await delay(0);
  assertEquals(hub.subscriberCount("x"), 0);
  assertEquals(hub.subscriberCount("y"), 0);
  assertEquals(hub.publish("x", "nobody"), 0);
  await closeAll([two.client]);
});

Deno.test("Hub: topic names are data: empty, very long, glob characters, newlines, Redis commands", async () => {
  const hub = new Hub();
  const names = [
    "",
    "x".repeat(100_000),
    "*",
    "a?b",
    "[abc]",
    "line\nbreak\r\n",
    "PUBLISH x y\r\n",
    "\u0000nul",
    "émoji 🎉",
  ];
  const pairs = names.map(() => memoryPair());
  names.forEach((name, i) => hub.subscribe(pairs[i].server, name));
  for (const name of names) assertEquals(hub.publish(name, `to ${name}`), 1);
  // A glob matches nothing but itself.
  assertEquals(hub.publish("a", "nobody"), 0);
  assertEquals(hub.publish("?", "nobody"), 0);
  for (let i = 0; i < names.length; i++) {
    assertEquals(await take(pairs[i].client, 1), [`to ${names[i]}`]);
  }
  assertThrows(
    () => hub.subscribe(pairs[0].server, 42 as unknown as string),
    TypeError,
    "expected a topic name (a string), found number",
  );
  assertThrows(
    () => hub.publish("x", {} as unknown as string),
    TypeError,
    "expected a string or a BufferSource to publish, found object",
  );
  assertThrows(
    () => hub.subscribe({} as WebSocketConnection, "x"),
    TypeError,
    "expected a socket from serve() or connect()",
  );
  await closeAll(pairs.map((pair) => pair.client));
});

Deno.test("Hub: 10,000 in-memory subscribers on one topic each get every message in order", async () => {
  const hub = new Hub();
  const pairs = Array.from({ length: 10_000 }, memoryPair);
  for (const { server } of pairs) hub.subscribe(server, "all");
  assertEquals(hub.subscriberCount("all"), 10_000);
  const sent = ["first", new Uint8Array([1, 2, 3]), "third"];
  for (const message of sent) assertEquals(hub.publish("all", message), 10_000);
  const received = await within(
    60_000,
    Promise.all(pairs.map(({ client }) => take(client, 3))),
    "10,000 subscribers reading 3 messages",
  );
  for (const messages of received) assertEquals(messages, sent);
  await closeAll(pairs.map((pair) => pair.client));
  await delay(0);
  assertEquals(hub.subscriberCount("all"), 0);
});

Deno.test("Hub: client sockets from connect() mask each frame with their own key and receive in order", async () => {
  const hub = new Hub();
  const received: Message[][] = [];
  const done: Promise<void>[] = [];
  await using server = serve(
    { port: 0, hostname: "127.0.0.1" },
    (socket) => {
      const messages: Message[] = [];
      received.push(messages);
      done.push(
        (async () => {
          for await (const message of socket.readable) messages.push(message);
        })(),
      );
    },
  );
  const url = `ws://127.0.0.1:${server.addr.port}/`;
  const clients = await Promise.all([connect(url), connect(url)]);
  for (const client of clients) hub.subscribe(client, "up");
  const sent: Message[] = ["a", new Uint8Array(70_000).fill(9), "b"];
  for (const message of sent) hub.publish("up", message);
  await closeAll(clients);
  await Promise.all(done);
  assertEquals(received, [sent, sent]);
});

Deno.test("Hub: a few hundred real TCP subscribers from serve() get every message, and chat through writable()", async () => {
  const hub = new Hub();
  await using server = startServer(hub, "lobby");
  const url = `ws://127.0.0.1:${server.addr.port}/`;
  const clients: WebSocketConnection[] = [];
  for (let i = 0; i < 300; i += 50) {
    clients.push(
      ...await Promise.all(Array.from({ length: 50 }, () => connect(url))),
    );
  }
  await waitFor(() => hub.subscriberCount("lobby") === 300, "300 subscribed");
  const sent = Array.from({ length: 20 }, (_, i) => `message ${i}`);
  for (const message of sent) assertEquals(hub.publish("lobby", message), 300);
  const received = await Promise.all(clients.map((c) => take(c, 20)));
  for (const messages of received) assertEquals(messages, sent);
  // One client's message reaches the 299 others, not itself.
  const writer = clients[0].writable.getWriter();
  await writer.write("hello from 0");
  const echoed = await Promise.all(clients.slice(1).map((c) => take(c, 1)));
  for (const messages of echoed) assertEquals(messages, ["hello from 0"]);
  writer.releaseLock();
  await closeAll(clients);
  await waitFor(() => hub.subscriberCount("lobby") === 0, "all left");
});

Deno.test("Hub: a hub message keeps its place among a socket's own messages, also while the socket compresses one", async () => {
  const hub = new Hub();
  const order: Message[] = [];
  const big = "compress me ".repeat(2000);
  await using server = serve(
    { port: 0, hostname: "127.0.0.1", compression: { threshold: 0 } },
    async (socket) => {
      hub.subscribe(socket, "t");
      const writer = socket.writable.getWriter();
      const first = writer.write(big); // compressed asynchronously
      hub.publish("t", "after big");
      await first;
      await writer.write("own 2");
      hub.publish("t", "after own 2");
      await writer.close();
    },
  );
  const client = await connect(`ws://127.0.0.1:${server.addr.port}/`);
  assert(client.extensions.includes("permessage-deflate"));
  for await (const message of client.readable) order.push(message);
  assertEquals(order, [big, "after big", "own 2", "after own 2"]);
});

/** A TCP client that completes the handshake and then never reads. */
async function stalledClient(port: number): Promise<Deno.TcpConn> {
  const conn = await Deno.connect({ port, hostname: "127.0.0.1" });
  await conn.write(
    new TextEncoder().encode(
      "GET /stalled HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    ),
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

async function slowSubscriberRun(
  policy: "close" | "drop",
  closeTimeoutMs: number,
) {
  const limit = 256 * 1024;
  const hub = new Hub({ maxBufferedBytes: limit, slowSubscriber: policy });
  let slow: WebSocketConnection | undefined;
  const server = serve(
    { port: 0, hostname: "127.0.0.1", closeTimeoutMs },
    async (socket, request) => {
      if (new URL(request.url).pathname === "/stalled") slow = socket;
      hub.subscribe(socket, "feed");
      await socket.closed;
    },
  );
  const stalled = await stalledClient(server.addr.port);
  const reader = await connect(`ws://127.0.0.1:${server.addr.port}/`);
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

Deno.test("Hub: a subscriber that never reads is closed with 1013 by default; the others get everything", async () => {
  const { hub, slow, stalled, reader, server } = await slowSubscriberRun(
    "close",
    20_000,
  );
  assertEquals(hub.droppedMessages(), 0);
  // The stalled client reads at last (within the close timeout): a prefix
  // of the messages, none missing, then Close 1013.
  const frames: Frame[] = [];
  await within(
    10_000,
    (async () => {
      const decoded = stalled.readable.pipeThrough(
        new FrameDecoderStream({ role: "client" }),
      );
      for await (const frame of decoded) {
        frames.push(frame);
        if (frame.opcode === Opcode.Close) break;
      }
    })(),
    "reading the stalled client's frames up to the Close",
  );
  const close = frames.pop()!;
  assertEquals(close.opcode, Opcode.Close);
  assertEquals(parseClosePayload(close.payload).closeCode, 1013);
  assert(frames.length > 0);
  frames.forEach((frame, i) => assertEquals(frame.payload[0], i & 0xff));
  await slow.closed;
  assertEquals(hub.subscriberCount("feed"), 1);
  await closeAll([reader]);
  await server.shutdown();
});

Deno.test("Hub: slowSubscriber 'drop' skips messages for a subscriber that never reads and counts them", async () => {
  const { hub, slow, stalled, reader, server } = await slowSubscriberRun(
    "drop",
    500,
  );
  const dropped = hub.droppedMessages(slow);
  assert(dropped > 0, "some messages were dropped");
  assertEquals(hub.droppedMessages(), dropped);
  assertEquals(hub.subscriberCount("feed"), 2, "it stays subscribed");
  stalled.close();
  await within(5000, slow.closed, "the slow socket's end");
  await closeAll([reader]);
  await server.shutdown();
});

Deno.test("Hub: bad options are refused with a clear error", () => {
  assertThrows(
    () => new Hub({ slowSubscriber: "wait" as "drop" }),
    TypeError,
    'expected slowSubscriber "close" or "drop", found "wait"',
  );
  assertThrows(
    () => new Hub({ maxBufferedBytes: -1 }),
    RangeError,
    "expected maxBufferedBytes to be a number >= 0, found -1",
  );
});

Deno.test("Hub: after close() nothing is published and the backplane is closed", async () => {
  const calls: string[] = [];
  const hub = new Hub({
    backplane: {
      start: () => void calls.push("start"),
      subscribe: (topic) => void calls.push(`subscribe ${topic}`),
      unsubscribe: (topic) => void calls.push(`unsubscribe ${topic}`),
      publish: (topic, message) =>
        void calls.push(`publish ${topic} ${message}`),
      close: () => {
        calls.push("close");
        return Promise.resolve();
      },
    },
  });
  const { server, client } = memoryPair();
  hub.subscribe(server, "t");
  hub.subscribe(server, "t");
  hub.publish("t", "m");
  hub.unsubscribe(server, "t");
  await hub.close();
  assertEquals(hub.publish("t", "late"), 0);
  assertEquals(calls, [
    "start",
    "subscribe t",
    "publish t m",
    "unsubscribe t",
    "close",
  ]);
  await closeAll([client]);
});
