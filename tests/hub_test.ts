/**
 * Hub: topics in one process, over in-memory sockets (for scale) and real
 * TCP sockets from serve() and connect().
 */

import { assert, assertEquals, assertThrows } from "@std/assert";
import { connect, Hub, serve, type WebSocketConnection } from "../mod.ts";
import type { ServeOptions } from "../src/server.ts";
import {
  assertClosedWith1013,
  assertDroppedAndCounted,
  closeAll,
  memoryPair,
  type Message,
  sameMessages,
  slowSubscriberRun,
  type StartSocketServer,
  take,
  waitFor,
} from "./_hub_util.ts";
import { delay, within } from "./_socket_util.ts";

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
  sameMessages(await take(client, expected.length), expected);
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
    "expected a socket from serve(), connect(), handleUpgrade() or upgrade()",
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

/** serve(), its sockets handed to `onSocket` with their path. */
function serveSockets(closeTimeoutMs: number): StartSocketServer {
  return (onSocket) => {
    const server = serve(
      { port: 0, hostname: "127.0.0.1", closeTimeoutMs },
      async (socket, request) => {
        onSocket(socket, new URL(request.url).pathname);
        await socket.closed;
      },
    );
    return Promise.resolve({
      port: server.addr.port,
      shutdown: () => server.shutdown(),
    });
  };
}

Deno.test("Hub: a subscriber that never reads is closed with 1013 by default; the others get everything", async () => {
  await assertClosedWith1013(
    await slowSubscriberRun("close", serveSockets(20_000)),
  );
});

Deno.test("Hub: slowSubscriber 'drop' skips messages for a subscriber that never reads and counts them", async () => {
  await assertDroppedAndCounted(
    await slowSubscriberRun("drop", serveSockets(500)),
  );
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
