/**
 * Hub: messages from writable() are held until the turn goes quiet and then
 * handed to each subscriber in one call (PublicationRun,
 * PreparedQueue.queueRun); they keep their place among everything else sent
 * to the socket, and the slow-subscriber policy counts them one by one, as
 * publish() does.
 */

import { assert, assertEquals } from "@std/assert";
import { connect, Hub, serve } from "../mod.ts";
import { PreparedMessage } from "../src/prepared_message.ts";
import { PublicationRun } from "../src/publication_run.ts";
import { MERGE_LIMIT_BYTES } from "../src/write_queue.ts";
import { concat } from "./_codec_util.ts";
import { closeAll, memoryPair, type Message, take } from "./_hub_util.ts";

/** Every message `socket` receives until it ends. */
async function readAll(
  socket: { readable: ReadableStream<Message> },
): Promise<Message[]> {
  const messages: Message[] = [];
  for await (const message of socket.readable) messages.push(message);
  return messages;
}

Deno.test("Hub: messages held from writable() go before a publish(), a message of the socket's own and a close that come after them", async () => {
  const hub = new Hub();
  const { server, client } = memoryPair();
  hub.subscribe(server, "t");
  const topic = hub.writable("t").getWriter();
  const own = server.writable.getWriter();
  await topic.write("held 1");
  hub.publish("t", "published");
  await topic.write("held 2");
  await own.write("own");
  await topic.write("held 3");
  server.close();
  assertEquals(await readAll(client), [
    "held 1",
    "published",
    "held 2",
    "own",
    "held 3",
  ]);
  await client.closed;
});

Deno.test("Hub: a message held from writable() goes before a message of the socket's own that is being compressed", async () => {
  const hub = new Hub();
  const big = "compress me ".repeat(2000);
  await using server = serve(
    { port: 0, hostname: "127.0.0.1", compression: { threshold: 0 } },
    async (socket) => {
      hub.subscribe(socket, "t");
      const topic = hub.writable("t").getWriter();
      const own = socket.writable.getWriter();
      await topic.write("held");
      await own.write(big); // compressed asynchronously
      await topic.write("held after");
      await own.close();
    },
  );
  const client = await connect(`ws://127.0.0.1:${server.addr.port}/`);
  assert(client.extensions.includes("permessage-deflate"));
  assertEquals(await readAll(client), ["held", big, "held after"]);
});

Deno.test("Hub: a socket that subscribes after a held message does not get it; one that unsubscribes after it does", async () => {
  const hub = new Hub();
  const a = memoryPair();
  const b = memoryPair();
  hub.subscribe(a.server, "t");
  const topic = hub.writable("t").getWriter();
  await topic.write("a only");
  hub.subscribe(b.server, "t");
  await topic.write("both");
  hub.unsubscribe(a.server, "t");
  await topic.write("b only");
  assertEquals(await take(b.client, 2), ["both", "b only"]);
  a.server.close();
  assertEquals(await readAll(a.client), ["a only", "both"]);
  await closeAll([b.client]);
});

// Ten 100-byte messages (102-byte frames) against a limit of 350 bytes: a
// message is queued while at most 350 bytes wait before it, so 4 go (0,
// 102, 204 and 306 bytes before them) and 6 do not.
const LIMIT = 350;
const COUNT = 10;
function numbered(i: number): Uint8Array {
  return new Uint8Array(100).fill(i);
}

Deno.test("Hub: under 'drop' held messages past maxBufferedBytes are skipped and counted one by one, as publish() counts them", async () => {
  const hub = new Hub({ maxBufferedBytes: LIMIT, slowSubscriber: "drop" });
  const held = memoryPair();
  const published = memoryPair();
  hub.subscribe(held.server, "held");
  hub.subscribe(published.server, "published");
  const topic = hub.writable("held").getWriter();
  for (let i = 0; i < COUNT; i++) {
    void topic.write(numbered(i));
    hub.publish("published", numbered(i));
  }
  await topic.ready;
  assertEquals(hub.droppedMessages(published.server), COUNT - 4);
  assertEquals(hub.droppedMessages(held.server), COUNT - 4);
  assertEquals(hub.droppedMessages(), 2 * (COUNT - 4));
  const expected = [0, 1, 2, 3].map(numbered);
  assertEquals(await take(held.client, 4), expected);
  assertEquals(await take(published.client, 4), expected);
  await closeAll([held.client, published.client]);
});

Deno.test("Hub: under 'close' the held messages that fit are sent, then Close 1013", async () => {
  const hub = new Hub({ maxBufferedBytes: LIMIT });
  const { server, client } = memoryPair();
  hub.subscribe(server, "t");
  const topic = hub.writable("t").getWriter();
  for (let i = 0; i < COUNT; i++) void topic.write(numbered(i));
  await topic.ready;
  assertEquals(await readAll(client), [0, 1, 2, 3].map(numbered));
  assertEquals((await client.closed).closeCode, 1013);
  assertEquals(hub.droppedMessages(), 0);
});

Deno.test("Hub: a client socket from connect() takes held messages one by one, masked, in order", async () => {
  // The client end subscribes: its frames are masked (RFC 6455 §5.3).
  const hub = new Hub();
  const { server, client } = memoryPair();
  hub.subscribe(client, "t");
  const topic = hub.writable("t").getWriter();
  const sent = ["x", new Uint8Array([1, 2, 3]), "y".repeat(70_000)];
  for (const message of sent) void topic.write(message);
  await topic.ready;
  assertEquals(await take(server, 3), sent);
  await closeAll([server]);
});

Deno.test("PublicationRun: the frames become the fewest spans, each a large frame alone or neighbours under MERGE_LIMIT_BYTES together", () => {
  const run = new PublicationRun("t", undefined);
  const messages = [
    new PreparedMessage("a"),
    new PreparedMessage(new Uint8Array(MERGE_LIMIT_BYTES)),
    new PreparedMessage("b"),
    new PreparedMessage("c"),
    // 10 KiB frames: the arena's 64 KiB chunks end among them.
    ...Array.from(
      { length: 12 },
      (_, i) => new PreparedMessage(new Uint8Array(10 * 1024).fill(i)),
    ),
  ];
  for (const message of messages) run.add(message);
  const spans = run.spans();
  const frames = messages.map((message) => message.frame);
  assertEquals(run.messages, messages);
  assertEquals(run.bytes, frames.reduce((sum, frame) => sum + frame.length, 0));
  assertEquals(run.lastBytes, frames[frames.length - 1].length);
  assertEquals(spans[0], frames[0]);
  assertEquals(spans[1], frames[1]);
  assertEquals(spans[2].byteOffset, frames[2].byteOffset);
  assert(spans.length < frames.length, "neighbours share a span");
  assertEquals(concat(spans), concat(frames));
  for (const span of spans.slice(2)) assert(span.length < MERGE_LIMIT_BYTES);
  assertEquals(run.compressible, true, "the large message may be compressed");
  const small = new PublicationRun("t", undefined);
  small.add(new PreparedMessage("tiny"));
  assertEquals(small.compressible, false);
});
