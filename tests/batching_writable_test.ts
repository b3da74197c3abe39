import {
  assert,
  assertEquals,
  assertInstanceOf,
  assertRejects,
} from "@std/assert";
import { BatchingWritable, MessageBatch } from "../src/batching_writable.ts";

/**
 * A sink that records what it is given (one entry per sink write: a message
 * or a batch's messages) and sends each message after a microtask, as a
 * socket's sink does; `failOn` makes the message with that value throw.
 */
function recordingSink(failOn?: number) {
  const calls: number[][] = [];
  const sent: number[] = [];
  const send = async (message: number) => {
    await Promise.resolve();
    if (message === failOn) throw new Error(`refused ${message}`);
    sent.push(message);
  };
  const sink: UnderlyingSink<number | MessageBatch<number>> = {
    async write(chunk) {
      if (!(chunk instanceof MessageBatch)) {
        calls.push([chunk]);
        return await send(chunk);
      }
      calls.push([...chunk.messages]);
      try {
        for (const message of chunk.messages) {
          await send(message);
          chunk.resolveNext();
        }
      } catch (error) {
        chunk.rejectRest(error);
        throw error;
      }
    },
  };
  return { sink, calls, sent };
}

const range = (count: number) => Array.from({ length: count }, (_, i) => i);

Deno.test("BatchingWritable: unawaited writes reach the sink in order, as few chunks, each write settled once its message is sent", async () => {
  const { sink, calls, sent } = recordingSink();
  const writable = new BatchingWritable(sink, 1_000_000, () => 1);
  const writer = writable.getWriter();
  assertInstanceOf(writer, WritableStreamDefaultWriter);
  const settledWhenSent: boolean[] = [];
  const writes = range(10_000).map((i) =>
    writer.write(i).then(() => settledWhenSent.push(sent.includes(i)))
  );
  await Promise.all(writes);
  assertEquals(sent, range(10_000));
  assert(settledWhenSent.every(Boolean), "a write settled before its send");
  // The first 256 writes go alone; the rest, written while they are in
  // flight, in batches of at most 1,024.
  assertEquals(
    calls.map((call) => call.length),
    [...Array(256).fill(1), ...Array(9).fill(1024), 528],
  );
  await writer.close();
});

// Writers of a BatchingWritable batch only once 256 writes are in flight.
const SINGLE_WRITES = 256;

Deno.test("BatchingWritable: desiredSize and ready turn at the same write as a plain WritableStream's", async () => {
  const observe = async (writable: WritableStream<number>) => {
    const writer = writable.getWriter();
    const sizes: Array<number | null> = [];
    const writes = range(320).map((i) => {
      const written = writer.write(i);
      sizes.push(writer.desiredSize);
      return written;
    });
    let readyWaited = false;
    const ready = writer.ready.then(() => readyWaited = true);
    await Promise.all(writes);
    await ready;
    await writer.close();
    return { firstFull: sizes.findIndex((size) => size! <= 0), readyWaited };
  };
  const plain = recordingSink();
  const batching = recordingSink();
  const expected = await observe(
    new WritableStream(plain.sink as UnderlyingSink<number>, {
      highWaterMark: 300,
    }),
  );
  // Writes from the 257th on are batched; the batch is handed on at the
  // 300th, which fills the stream.
  const found = await observe(
    new BatchingWritable(batching.sink, 300, () => 1),
  );
  assertEquals(found, expected);
  assertEquals(expected.firstFull, 299);
  assertEquals(batching.sent, range(320));
  assertEquals(batching.calls[SINGLE_WRITES], range(44).map((i) => 256 + i));
});

Deno.test("BatchingWritable: a message that fails fails the ones after it and the stream; those before it are sent", async () => {
  // Message 280 is in the batch of messages 256 to 299.
  const { sink, sent, calls } = recordingSink(280);
  const writer = new BatchingWritable(sink, 1000, () => 1).getWriter();
  const results = await Promise.allSettled(
    range(300).map((i) => writer.write(i)),
  );
  assertEquals(calls.at(-1), range(44).map((i) => SINGLE_WRITES + i));
  assertEquals(sent, range(280));
  assertEquals(
    results.map((result) => result.status),
    [...range(280).map(() => "fulfilled"), ...range(20).map(() => "rejected")],
  );
  for (const result of results.slice(280)) {
    assertEquals(
      (result as PromiseRejectedResult).reason.message,
      "refused 280",
    );
  }
  await assertRejects(() => writer.closed, Error, "refused 280");
  await assertRejects(() => writer.write(999), Error, "refused 280");
});

Deno.test("BatchingWritable: abort() fails the messages not yet given to the sink with its reason", async () => {
  const { sink, sent, calls } = recordingSink();
  const writer = new BatchingWritable(sink, 1000, () => 1).getWriter();
  await writer.ready; // started: the first write goes to the sink at once
  const writes = range(SINGLE_WRITES + 4).map((i) => writer.write(i));
  const reason = new Error("stop");
  await writer.abort(reason);
  const results = await Promise.allSettled(writes);
  // The first was in the sink already and finishes; the rest, single or
  // batched, never went.
  assertEquals(sent, [0]);
  assertEquals(calls, [[0]]);
  assertEquals(results.map((result) => result.status), [
    "fulfilled",
    ...range(SINGLE_WRITES + 3).map(() => "rejected"),
  ]);
  assertEquals((results.at(-1) as PromiseRejectedResult).reason, reason);
});

Deno.test("BatchingWritable: releaseLock() and close() hand on the batch first; a released writer's write rejects", async () => {
  const { sink, sent, calls } = recordingSink();
  const writable = new BatchingWritable(sink, 1000, () => 1);
  const first = writable.getWriter();
  const writes = range(SINGLE_WRITES + 3).map((i) => first.write(i));
  first.releaseLock();
  await assertRejects(() => first.write(9), TypeError);
  const second = writable.getWriter();
  writes.push(second.write(SINGLE_WRITES + 3), second.write(SINGLE_WRITES + 4));
  await second.close();
  await Promise.all(writes);
  assertEquals(sent, range(SINGLE_WRITES + 5));
  assertEquals(calls[SINGLE_WRITES], [256, 257, 258]);
});

Deno.test("BatchingWritable: writes of released writers stay pending until sent, and onceWritesSettled is called once when the last settles", async () => {
  const { sink, sent } = recordingSink(3);
  const stream = new BatchingWritable<number>(sink, 1024, () => 1);
  assertEquals(stream.writesPending, false);
  const writer = stream.getWriter();
  const writes = [1, 2, 3].map((message) => writer.write(message));
  writer.releaseLock();
  assert(!stream.locked);
  assertEquals(stream.writesPending, true);
  const settled: boolean[] = [];
  stream.onceWritesSettled(() => settled.push(stream.writesPending));
  await Promise.allSettled(writes);
  // A failed write settles too (3 is refused, and fails the stream).
  await Promise.resolve();
  assertEquals(sent, [1, 2]);
  assertEquals(settled, [false]);
  assertEquals(stream.writesPending, false);
});
