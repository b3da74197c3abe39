/**
 * Hub with the sockets of the adapters: upgrade() inside Deno.serve (Deno's
 * own WebSocket underneath: one send per socket) and handleUpgrade() on
 * node:http (wstream's codec: shared frames).
 */

import { assert, assertEquals } from "@std/assert";
import { createServer } from "node:http";
import {
  connect,
  handleUpgrade,
  type HandshakeOptions,
  Hub,
  serve,
  type Socket,
  upgrade,
  type UpgradeOptions,
  type WebSocketConnection,
} from "../mod.ts";
import {
  assertClosedWith1013,
  assertDroppedAndCounted,
  type Message,
  sameMessages,
  slowSubscriberRun,
  type StartSocketServer,
  take,
  waitFor,
} from "./_hub_util.ts";
import { delay, within } from "./_socket_util.ts";

/** upgrade() inside Deno.serve. */
function upgradeSockets(options: UpgradeOptions = {}): StartSocketServer {
  return (onSocket) => {
    const server = Deno.serve(
      { port: 0, hostname: "127.0.0.1", onListen() {} },
      (request) => {
        const { socket, response } = upgrade(request, options);
        onSocket(socket, new URL(request.url).pathname);
        return response;
      },
    );
    return Promise.resolve({
      port: server.addr.port,
      shutdown: () => server.shutdown(),
    });
  };
}

/** handleUpgrade() on a node:http server. */
function handleUpgradeSockets(
  options: HandshakeOptions = {},
): StartSocketServer {
  return async (onSocket) => {
    const server = createServer((_request, response) => response.end());
    server.on(
      "upgrade",
      (request, socket, head) =>
        handleUpgrade(
          request,
          socket,
          head,
          options,
          async (socket, request) => {
            onSocket(socket, new URL(request.url).pathname);
            await socket.closed;
          },
        ),
    );
    await new Promise<void>((resolve) =>
      server.listen(0, "127.0.0.1", resolve)
    );
    return {
      port: (server.address() as { port: number }).port,
      async shutdown() {
        server.closeAllConnections();
        await new Promise((resolve) => server.close(resolve));
      },
    };
  };
}

const kinds: [string, (closeTimeoutMs: number) => StartSocketServer][] = [
  ["upgrade() (Deno.serve)", () => upgradeSockets()],
  [
    "handleUpgrade() (node:http)",
    (closeTimeoutMs) => handleUpgradeSockets({ closeTimeoutMs }),
  ],
];

for (const [kind, start] of kinds) {
  Deno.test(`Hub with ${kind} sockets: 0 B to 1 MiB in publish order to every subscriber; writable() with except; unsubscribed on close`, async () => {
    // 4 MiB published at once: more than a socket may queue by default.
    const hub = new Hub({ maxBufferedBytes: 8 * 1024 * 1024 });
    const server = await start(1000)((socket) => {
      hub.subscribe(socket, "room");
      socket.readable.pipeTo(hub.writable("room", { except: socket }))
        .catch(() => {});
    });
    const url = `ws://127.0.0.1:${server.port}/`;
    const clients = await Promise.all([connect(url), connect(url)]);
    await waitFor(() => hub.subscriberCount("room") === 2, "2 subscribed");
    const expected: Message[] = [];
    for (const size of [0, 1, 125, 126, 65535, 65536, 1024 * 1024]) {
      const bytes = new Uint8Array(size);
      for (let i = 0; i < size; i++) bytes[i] = (i * 7 + size) & 0xff;
      expected.push(bytes, "é".repeat(size >> 1));
    }
    for (const message of expected) {
      assertEquals(hub.publish("room", message), 2);
    }
    for (const client of clients) {
      sameMessages(
        await within(20_000, take(client, expected.length), "the messages"),
        expected,
      );
    }
    // One client's message reaches the other, not itself.
    const writer = clients[0].writable.getWriter();
    await writer.write("hello from 0");
    assertEquals(await take(clients[1], 1), ["hello from 0"]);
    hub.publish("room", "to all");
    assertEquals(await take(clients[0], 1), ["to all"]);
    assertEquals(await take(clients[1], 1), ["to all"]);
    await writer.close();
    await clients[0].closed;
    await waitFor(() => hub.subscriberCount("room") === 1, "one left");
    clients[1].close();
    await clients[1].closed;
    await waitFor(() => hub.subscriberCount("room") === 0, "both left");
    await server.shutdown();
  });

  Deno.test(`Hub with ${kind} sockets: a hub message keeps its place among the socket's own messages`, async () => {
    const hub = new Hub();
    const big = "compress me ".repeat(2000);
    const server = await start(1000)(async (socket) => {
      hub.subscribe(socket, "t");
      const writer = socket.writable.getWriter();
      await writer.write("own 1"); // upgrade()'s socket is open from here on
      const second = writer.write(big); // compressed (asynchronously) if it can be
      hub.publish("t", "after big");
      await second;
      await writer.write("own 2");
      hub.publish("t", "after own 2");
      await writer.close();
    });
    const client = await connect(`ws://127.0.0.1:${server.port}/`);
    const received: Message[] = [];
    for await (const message of client.readable) received.push(message);
    assertEquals(received, [
      "own 1",
      big,
      "after big",
      "own 2",
      "after own 2",
    ]);
    await server.shutdown();
  });

  Deno.test(`Hub with ${kind} sockets: a subscriber that never reads is closed with 1013; the others get everything`, async () => {
    await assertClosedWith1013(await slowSubscriberRun("close", start(20_000)));
  });

  Deno.test(`Hub with ${kind} sockets: slowSubscriber 'drop' skips messages for a subscriber that never reads and counts them`, async () => {
    await assertDroppedAndCounted(await slowSubscriberRun("drop", start(500)));
  });
}

Deno.test("Hub with handleUpgrade() sockets and compression: the socket's own messages compressed, hub messages in between, all in order", async () => {
  const hub = new Hub();
  const big = "compress me ".repeat(2000);
  const server = await handleUpgradeSockets({ compression: { threshold: 0 } })(
    async (socket) => {
      hub.subscribe(socket, "t");
      const writer = socket.writable.getWriter();
      const first = writer.write(big);
      hub.publish("t", "after big");
      await first;
      await writer.write("own 2");
      hub.publish("t", big);
      await writer.close();
    },
  );
  const client = await connect(`ws://127.0.0.1:${server.port}/`);
  assert(client.extensions.includes("permessage-deflate"));
  const received: Message[] = [];
  for await (const message of client.readable) received.push(message);
  assertEquals(received, [big, "after big", "own 2", big]);
  await server.shutdown();
});

Deno.test("Hub with upgrade() sockets: messages published before the socket opens are sent first, in order", async () => {
  const hub = new Hub();
  let subscribed: Socket | undefined;
  const server = await upgradeSockets()((socket) => {
    subscribed = socket;
    hub.subscribe(socket, "early");
    // Deno has not opened the socket yet: the response is not returned.
    assertEquals(hub.publish("early", "early 1"), 1);
    assertEquals(hub.publish("early", new Uint8Array([1, 2, 3])), 1);
  });
  const client = await connect(`ws://127.0.0.1:${server.port}/`);
  assertEquals(await within(5000, take(client, 2), "the early messages"), [
    "early 1",
    new Uint8Array([1, 2, 3]),
  ]);
  assertEquals(hub.publish("early", "open now"), 1);
  assertEquals(await take(client, 1), ["open now"]);
  client.close();
  await client.closed;
  await within(5000, subscribed!.closed, "the server socket's end");
  await server.shutdown();
});

Deno.test("Hub with upgrade() sockets: a refused request's socket may be subscribed; it takes nothing and leaves at once", async () => {
  const hub = new Hub();
  const { socket, response } = upgrade(new Request("http://localhost/"));
  assertEquals(response.status, 426);
  hub.subscribe(socket, "t");
  assertEquals(hub.publish("t", "nobody"), 0);
  await delay(0);
  assertEquals(hub.subscriberCount("t"), 0);
});

Deno.test("Hub: one topic with sockets of every kind (serve(), connect(), handleUpgrade(), upgrade()) gets every message in order", async () => {
  const hub = new Hub();
  const subscribe = (socket: Socket) => hub.subscribe(socket, "mixed");
  const servers = [
    await upgradeSockets()(subscribe),
    await handleUpgradeSockets()(subscribe),
  ];
  await using served = serve({ port: 0, hostname: "127.0.0.1" }, (socket) => {
    subscribe(socket);
    return socket.closed.then(() => {});
  });
  const ports = [...servers.map((s) => s.port), served.addr.port];
  const readers = await Promise.all(
    ports.map((port) => connect(`ws://127.0.0.1:${port}/`)),
  );
  // A client socket subscribes too: what it gets goes to the served socket.
  const upstream: Message[] = [];
  await using sink = serve({ port: 0, hostname: "127.0.0.1" }, async (s) => {
    for await (const message of s.readable) upstream.push(message);
  });
  const servedClient: WebSocketConnection = await connect(
    `ws://127.0.0.1:${sink.addr.port}/`,
  );
  subscribe(servedClient);
  await waitFor(() => hub.subscriberCount("mixed") === 4, "4 subscribed");
  const sent: Message[] = ["one", new Uint8Array(70_000).fill(3), "three"];
  for (const message of sent) assertEquals(hub.publish("mixed", message), 4);
  for (const reader of readers) {
    assertEquals(await within(5000, take(reader, 3), "the messages"), sent);
    reader.close();
    await reader.closed;
  }
  servedClient.close();
  await servedClient.closed;
  await waitFor(() => upstream.length === 3, "the client socket's messages");
  assertEquals(upstream, sent);
  for (const server of servers) await server.shutdown();
});
