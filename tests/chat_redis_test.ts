/**
 * examples/chat.ts --redis: two chat processes on two ports with one real
 * redis-server are one chat; rooms are kept apart.
 */

import { assertEquals, assertStringIncludes } from "@std/assert";
import { connect, type WebSocketConnection } from "../mod.ts";
import { type ChatPage, logShows } from "./_chat_page.ts";
import { runScript, spawnScript, waitForOutput } from "./_deno_child.ts";
import {
  chromiumAvailable,
  launchChromium,
  requirePeer,
} from "./interop/_peers.ts";
import {
  freePort,
  type RedisServer,
  requireRedis,
  startRedis,
} from "./_redis_server.ts";
import { delay, within } from "./_socket_util.ts";

const CHAT = new URL("../examples/chat.ts", import.meta.url);

/** Runs examples/chat.ts --redis in a child process until disposed. */
async function startChatProcess(redisUrl: string) {
  const port = freePort();
  const child = spawnScript(CHAT, [
    "--port",
    String(port),
    "--redis",
    redisUrl,
  ]);
  const { match, drained } = await waitForOutput(
    child,
    /open (http:\/\/\S+) in two tabs/,
  );
  const url = match[1];
  const stderr = child.stderr.pipeTo(new WritableStream());
  return {
    url,
    port,
    async [Symbol.asyncDispose]() {
      child.kill("SIGINT"); // the example shuts down gracefully on Ctrl+C
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await child.status;
      clearTimeout(timer);
      await drained;
      await stderr;
    },
  };
}

/** Waits until `count` processes subscribe to the room in Redis. */
async function redisSubscribers(
  redis: RedisServer,
  room: string,
  count: number,
): Promise<void> {
  await within(
    10_000,
    (async () => {
      while (await redis.numsub(`wstream:${room}`) !== count) await delay(20);
    })(),
    `${count} processes subscribed to ${room}`,
  );
}

async function nextEvent(
  socket: WebSocketConnection,
): Promise<Record<string, unknown>> {
  const reader = socket.readable.getReader();
  try {
    const { value } = await within(10_000, reader.read(), "a chat event");
    return JSON.parse(value as string);
  } finally {
    reader.releaseLock();
  }
}

/** Reads events until one of type `type` (skipping joins and the like). */
async function nextOfType(socket: WebSocketConnection, type: string) {
  while (true) {
    const event = await nextEvent(socket);
    if (event.type === type) return event;
  }
}

Deno.test("examples/chat.ts --redis: pages on two chat processes are in one chat, room by room", async () => {
  if (!await requireRedis()) return;
  await using redis = await startRedis();
  await using one = await startChatProcess(redis.url);
  await using two = await startChatProcess(redis.url);
  const ws = (chat: { url: string }, room: string) =>
    `${chat.url.replace("http:", "ws:")}ws?room=${encodeURIComponent(room)}`;

  const alice = await connect(ws(one, "lobby"));
  assertEquals(await nextEvent(alice), {
    type: "welcome",
    name: `guest 1 (:${one.port})`,
    room: "lobby",
    online: 1,
  });
  // Each process subscribes in Redis when its first page joins a room.
  await redisSubscribers(redis, "lobby", 1);
  const bob = await connect(ws(two, "lobby"));
  await redisSubscribers(redis, "lobby", 2);
  const carol = await connect(ws(two, "kitchen"));
  for (const socket of [bob, carol]) await nextOfType(socket, "welcome");
  // Alice, on the first process, sees Bob join on the second.
  assertEquals(await nextOfType(alice, "join"), {
    type: "join",
    name: `guest 1 (:${one.port})`,
    online: 1,
  });
  assertEquals(
    (await nextOfType(alice, "join")).name,
    `guest 1 (:${two.port})`,
  );

  const writer = alice.writable.getWriter();
  await writer.write(JSON.stringify({ text: "hello from process one" }));
  assertEquals(await nextOfType(bob, "message"), {
    type: "message",
    name: `guest 1 (:${one.port})`,
    text: "hello from process one",
  });
  // Carol is in another room: her next message is her own.
  const carolWriter = carol.writable.getWriter();
  await carolWriter.write(JSON.stringify({ text: "anyone in the kitchen?" }));
  assertEquals(
    (await nextOfType(carol, "message")).text,
    "anyone in the kitchen?",
  );
  writer.releaseLock();
  carolWriter.releaseLock();
  for (const socket of [alice, bob, carol]) socket.close();
  await Promise.all([alice.closed, bob.closed, carol.closed]);
});

Deno.test("examples/chat.ts --redis with Redis unreachable exits with a clear error naming the URL", async () => {
  const port = freePort();
  const result = await runScript(CHAT, [
    "--port",
    "0",
    "--redis",
    `redis://127.0.0.1:${port}`,
  ]);
  assertEquals(result.code, 1);
  assertStringIncludes(
    result.stderr,
    `Could not connect to Redis at redis://127.0.0.1:${port}`,
  );
});

Deno.test("examples/chat.ts --redis in headless Chromium: a message typed on one process's page appears on the other's", async () => {
  if (!await requireRedis()) return;
  if (
    !requirePeer(
      "chromium",
      await chromiumAvailable(),
      "apt-get install chromium",
    )
  ) return;
  await using redis = await startRedis();
  await using one = await startChatProcess(redis.url);
  await using two = await startChatProcess(redis.url);
  await using browser = await launchChromium();

  const alice = await browser.newPage() as ChatPage;
  await alice.setViewportSize({ width: 720, height: 420 });
  await alice.goto(one.url);
  await logShows(alice, "You joined as guest 1");
  await redisSubscribers(redis, "lobby", 1);
  const bob = await browser.newPage() as ChatPage;
  await bob.setViewportSize({ width: 720, height: 420 });
  await bob.goto(two.url);
  await logShows(bob, "You joined as guest 1");
  await redisSubscribers(redis, "lobby", 2);
  await logShows(alice, `guest 1 (:${two.port}) joined.`);

  await alice.fill("#text", `Hi from the server on port ${one.port}`);
  await alice.press("#text", "Enter");
  await logShows(bob, `Hi from the server on port ${one.port}`);
  await bob.fill("#text", `Hello back from port ${two.port}!`);
  await bob.click("#send");
  await logShows(alice, `Hello back from port ${two.port}!`);

  // WSTREAM_SCREENSHOT_DIR=docs keeps it (the README's picture).
  const dir = Deno.env.get("WSTREAM_SCREENSHOT_DIR") ??
    await Deno.makeTempDir({ prefix: "wstream-chat-redis-" });
  const path = `${dir}/chat_redis.png`;
  await alice.screenshot({ path });
  console.log(`two-process chat screenshot: ${path}`);
  await alice.close();
  await bob.close();
});
