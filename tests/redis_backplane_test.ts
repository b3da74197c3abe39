/**
 * redisBackplane: hubs in two processes (this one and a child `deno run`)
 * sharing topics through a real redis-server started by the test.
 */

import {
  assert,
  assertEquals,
  assertRejects,
  assertStringIncludes,
} from "@std/assert";
import { connect, Hub, WebSocketConnection } from "../mod.ts";
import { redisBackplane } from "../src/redis_backplane.ts";
import { spawnScript, waitForOutput } from "./_deno_child.ts";
import { startTopicServer, topicPath } from "./_hub_server.ts";
import { memoryTransportPair } from "./_memory_transport.ts";
import { freePort, requireRedis, startRedis } from "./_redis_server.ts";
import { delay, within } from "./_socket_util.ts";

type Message = string | Uint8Array;

const HUB_SERVER = new URL("./_hub_server.ts", import.meta.url);

/** The child process: a hub server on Redis. */
async function startChild(redisUrl: string) {
  const child = spawnScript(HUB_SERVER, [redisUrl], {
    stdin: "piped",
    stderr: "inherit",
  });
  const { match, drained } = await waitForOutput(child, /listening (\d+)/);
  const port = Number(match[1]);
  return {
    port,
    async [Symbol.asyncDispose]() {
      await child.stdin.close().catch(() => {});
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await child.status;
      clearTimeout(timer);
      await drained;
    },
  };
}

function topicUrl(port: number, topic: string): string {
  return `ws://127.0.0.1:${port}${topicPath(topic)}`;
}

async function take(
  socket: WebSocketConnection,
  count: number,
  ms = 20_000,
): Promise<Message[]> {
  const reader = socket.readable.getReader();
  const messages: Message[] = [];
  try {
    await within(
      ms,
      (async () => {
        while (messages.length < count) {
          const { value, done } = await reader.read();
          if (done) break;
          messages.push(value);
        }
      })(),
      `reading ${count} messages`,
    );
  } finally {
    reader.releaseLock();
  }
  return messages;
}

function describe(message: Message | undefined): string {
  if (message === undefined) return "nothing";
  return typeof message === "string"
    ? `text of ${message.length} code units`
    : `${message.length} bytes`;
}

/** Compares message lists one by one (a diff of megabytes is no help). */
function assertMessages(actual: Message[], expected: Message[]): void {
  for (let i = 0; i < Math.max(actual.length, expected.length); i++) {
    const a = actual[i];
    const e = expected[i];
    const same = typeof a === "string" || typeof e === "string"
      ? a === e
      : a !== undefined && e !== undefined && a.length === e.length &&
        a.every((byte, j) => byte === e[j]);
    assert(
      same,
      `message ${i}: expected ${describe(e)}, found ${describe(a)}`,
    );
  }
}

async function waitFor(
  condition: () => Promise<boolean> | boolean,
  what: string,
  ms = 20_000,
): Promise<void> {
  await within(
    ms,
    (async () => {
      while (!(await condition())) await delay(20);
    })(),
    what,
  );
}

function memoryPair() {
  const [a, b] = memoryTransportPair();
  return {
    server: new WebSocketConnection({ transport: a, role: "server" }),
    client: new WebSocketConnection({ transport: b, role: "client" }),
  };
}

async function closeAll(sockets: WebSocketConnection[]): Promise<void> {
  for (const socket of sockets) socket.close();
  await Promise.all(sockets.map((socket) => socket.closed));
}

Deno.test("redisBackplane: Redis unreachable at the start is a clear error naming the URL (without its password)", async () => {
  const port = freePort(); // nothing listens there now
  const error = await assertRejects(
    () => redisBackplane({ url: `redis://user:secret@127.0.0.1:${port}` }),
    Error,
    `Could not connect to Redis at redis://user:***@127.0.0.1:${port}`,
  );
  assert(!error.message.includes("secret"));
  assertStringIncludes(error.message, "Is redis-server running there?");
});

Deno.test("redisBackplane: clients on one process get what is published on the other, text and binary, 0 B to 1 MiB, in order, once", async () => {
  if (!await requireRedis()) return;
  await using redis = await startRedis();
  await using child = await startChild(redis.url);
  const hub = new Hub({
    backplane: await redisBackplane({ url: redis.url }),
    maxBufferedBytes: 64 * 1024 * 1024,
  });
  await using local = startTopicServer(hub);
  const remote = await connect(topicUrl(child.port, "room"));
  const near = await connect(topicUrl(local.addr.port, "room"));
  await waitFor(
    async () => await redis.numsub("wstream:room") === 2,
    "both processes subscribed in Redis",
  );
  const sent: Message[] = [];
  for (const size of [0, 1, 125, 126, 65_536, 1024 * 1024]) {
    const bytes = new Uint8Array(size).map((_, i) => (i * 31 + size) & 0xff);
    sent.push(bytes, "ü€".repeat(size >> 2));
  }
  sent.push(new Uint8Array([0, 0xff, 0x0d, 0x0a])); // bytes that are no UTF-8
  for (const message of sent) hub.publish("room", message);
  assertMessages(await take(remote, sent.length), sent);
  // The other way: the remote client's messages come to the local one.
  const writer = remote.writable.getWriter();
  for (const message of ["from the child", new Uint8Array([7, 8, 9])]) {
    await writer.write(message);
  }
  // Exactly once: the local publications, then the child's, then "end"
  // (the local hub's own publications are not delivered a second time).
  assertMessages(await take(near, sent.length + 2), [
    ...sent,
    "from the child",
    new Uint8Array([7, 8, 9]),
  ]);
  hub.publish("room", "end");
  assertEquals(await take(near, 1), ["end"]);
  assertEquals(await take(remote, 1), ["end"]);
  writer.releaseLock();
  await closeAll([remote, near]);
  await hub.close();
});

Deno.test("redisBackplane: a process subscribes in Redis only while it has local subscribers (PUBSUB NUMSUB)", async () => {
  if (!await requireRedis()) return;
  await using redis = await startRedis();
  const hub = new Hub({ backplane: await redisBackplane({ url: redis.url }) });
  const one = memoryPair();
  const two = memoryPair();
  assertEquals(await redis.numsub("wstream:t"), 0);
  hub.subscribe(one.server, "t");
  hub.subscribe(two.server, "t");
  await waitFor(
    async () => await redis.numsub("wstream:t") === 1,
    "subscribed",
  );
  await closeAll([one.client]);
  await delay(100);
  assertEquals(await redis.numsub("wstream:t"), 1, "one local subscriber left");
  await closeAll([two.client]);
  await waitFor(
    async () => await redis.numsub("wstream:t") === 0,
    "unsubscribed when the last socket closed",
  );
  const three = memoryPair();
  hub.subscribe(three.server, "u");
  await waitFor(async () => await redis.numsub("wstream:u") === 1, "u");
  hub.unsubscribe(three.server, "u");
  await waitFor(async () => await redis.numsub("wstream:u") === 0, "no u");
  await closeAll([three.client]);
  await hub.close();
});

Deno.test("redisBackplane: Redis killed and restarted: local delivery goes on, cross-process delivery resumes, nothing crashes", async () => {
  if (!await requireRedis()) return;
  await using redis = await startRedis();
  await using child = await startChild(redis.url);
  const errors: Error[] = [];
  const hub = new Hub({
    backplane: await redisBackplane({
      url: redis.url,
      onError: (error) => void errors.push(error),
    }),
  });
  await using local = startTopicServer(hub);
  const remote = await connect(topicUrl(child.port, "room"));
  const near = await connect(topicUrl(local.addr.port, "room"));
  await waitFor(async () => await redis.numsub("wstream:room") === 2, "up");
  hub.publish("room", "before");
  assertEquals(await take(remote, 1), ["before"]);
  assertEquals(await take(near, 1), ["before"]);

  await redis.kill();
  await waitFor(() => errors.length > 0, "the outage reported");
  // Local delivery keeps working while Redis is away.
  for (let i = 0; i < 5; i++) hub.publish("room", `during ${i}`);
  assertEquals(await take(near, 5), [0, 1, 2, 3, 4].map((i) => `during ${i}`));
  // Topics joined and left while Redis is away are (un)subscribed once back.
  const joined = memoryPair();
  hub.subscribe(joined.server, "joined while away");
  hub.unsubscribe(joined.server, "joined while away");
  hub.subscribe(joined.server, "kept");

  await redis.restart();
  await waitFor(
    async () => await redis.numsub("wstream:room") === 2,
    "both processes subscribed again after the restart",
    30_000,
  );
  await waitFor(
    async () => await redis.numsub("wstream:kept") === 1,
    "the topic joined during the outage subscribed",
  );
  assertEquals(await redis.numsub("wstream:joined while away"), 0);
  // Publications during the outage are lost across processes (at most
  // once): the remote client's first message after it is a probe sent
  // after the restart (probes repeat until our publisher is back too).
  const remoteReader = remote.readable.getReader();
  const firstRemote = remoteReader.read();
  let probes = 0;
  let arrived = false;
  firstRemote.then(() => arrived = true);
  await waitFor(
    async () => {
      if (!arrived) hub.publish("room", `probe ${probes++}`);
      await delay(100);
      return arrived;
    },
    "a publication crossing Redis after the restart",
    30_000,
  );
  assertStringIncludes((await firstRemote).value as string, "probe ");
  remoteReader.releaseLock();
  assertEquals(
    await take(near, probes),
    Array.from({ length: probes }, (_, i) => `probe ${i}`),
  );
  // And the other way.
  const writer = remote.writable.getWriter();
  await writer.write("remote after restart");
  assertEquals(await take(near, 1), ["remote after restart"]);
  writer.releaseLock();
  await closeAll([remote, near, joined.client]);
  await hub.close();
});

Deno.test("redisBackplane: what is not a wstream message on a channel (foreign, or text that is no UTF-8) is reported and skipped", async () => {
  if (!await requireRedis()) return;
  await using redis = await startRedis();
  const errors: Error[] = [];
  const hub = new Hub({
    backplane: await redisBackplane({
      url: redis.url,
      onError: (error) => void errors.push(error),
    }),
  });
  const { server, client } = memoryPair();
  hub.subscribe(server, "t");
  await waitFor(async () => await redis.numsub("wstream:t") === 1, "up");
  // Kind byte (1: text), some other process's id, then the payload.
  const header = new Uint8Array(17).fill(1);
  const withHeader = (payload: Uint8Array) => {
    const bytes = new Uint8Array(17 + payload.length);
    bytes.set(header);
    bytes.set(payload, 17);
    return bytes;
  };
  await redis.command("PUBLISH", "wstream:t", "hello from redis-cli");
  await redis.command(
    "PUBLISH",
    "wstream:t",
    withHeader(new Uint8Array([0x68, 0xff, 0xfe])), // not UTF-8
  );
  await redis.command(
    "PUBLISH",
    "wstream:t",
    withHeader(new TextEncoder().encode("fine")),
  );
  assertEquals(await take(client, 1), ["fine"]);
  assertEquals(errors.length, 2);
  assertStringIncludes(errors[0].message, "expected a wstream message");
  assertStringIncludes(errors[1].message, "expected UTF-8 text");
  await closeAll([client]);
  await hub.close();
});

Deno.test("redisBackplane: hostile topic names are channel names, never commands or patterns", async () => {
  if (!await requireRedis()) return;
  await using redis = await startRedis();
  await redis.command("SET", "canary", "alive");
  const sender = new Hub({
    backplane: await redisBackplane({ url: redis.url }),
  });
  const receiver = new Hub({
    backplane: await redisBackplane({ url: redis.url }),
  });
  const names = [
    "",
    "x".repeat(10_000),
    "*",
    "a?b",
    "[abc]",
    "line\nbreak\r\n",
    "FLUSHALL\r\n",
    "PUBLISH x y\r\n*1\r\n$8\r\nFLUSHALL\r\n",
    "\u0000nul",
    "émoji 🎉",
  ];
  const pairs = names.map(() => memoryPair());
  names.forEach((name, i) => receiver.subscribe(pairs[i].server, name));
  const star = memoryPair(); // a plain "a" subscriber: "*" must not reach it
  receiver.subscribe(star.server, "a");
  for (const name of [...names, "a"]) {
    await waitFor(
      async () => await redis.numsub(`wstream:${name}`) === 1,
      `subscribed to ${JSON.stringify(name.slice(0, 20))}`,
    );
  }
  assertEquals(await redis.command("PUBSUB", "NUMPAT"), ":0\r\n");
  for (const name of names) sender.publish(name, `to ${name}`);
  sender.publish("a", "to a");
  for (let i = 0; i < names.length; i++) {
    assertEquals(await take(pairs[i].client, 1), [`to ${names[i]}`]);
  }
  assertEquals(await take(star.client, 1), ["to a"]);
  assertEquals(await redis.command("GET", "canary"), "$5\r\nalive\r\n");
  await closeAll([...pairs.map((pair) => pair.client), star.client]);
  await sender.close();
  await receiver.close();
});
