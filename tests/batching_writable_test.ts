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
  // The first write goes alone; the rest, written meanwhile, in batches of
  // at most 1,024.
  assertEquals(
    calls.map((call) => call.length),
    [1, ...Array(9).fill(1024), 783],
  );
  await writer.close();
});

Deno.test("BatchingWritable: desiredSize and ready turn at the same write as a plain WritableStream's", async () => {
  const observe = async (writable: WritableStream<number>) => {
    const writer = writable.getWriter();
    const sizes: Array<number | null> = [];
    const writes = range(12).map((i) => {
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
      highWaterMark: 5,
    }),
  );
  const found = await observe(
    new BatchingWritable(batching.sink, 5, () => 1),
  );
  assertEquals(found, expected);
  assertEquals(expected.firstFull, 4);
  assertEquals(batching.sent, range(12));
});

Deno.test("BatchingWritable: a message that fails fails the ones after it and the stream; those before it are sent", async () => {
  const { sink, sent } = recordingSink(5);
  const writer = new BatchingWritable(sink, 100, () => 1).getWriter();
  const results = await Promise.allSettled(
    range(10).map((i) => writer.write(i)),
  );
  assertEquals(sent, range(5));
  assertEquals(
    results.map((result) => result.status),
    [...range(5).map(() => "fulfilled"), ...range(5).map(() => "rejected")],
  );
  for (const result of results.slice(5)) {
    assertEquals((result as PromiseRejectedResult).reason.message, "refused 5");
  }
  await assertRejects(() => writer.closed, Error, "refused 5");
  await assertRejects(() => writer.write(99), Error, "refused 5");
});

Deno.test("BatchingWritable: abort() fails the messages not yet given to the sink with its reason", async () => {
  const { sink, sent } = recordingSink();
  const writer = new BatchingWritable(sink, 100, () => 1).getWriter();
  await writer.ready; // started: the first write goes to the sink at once
  const writes = range(4).map((i) => writer.write(i));
  const reason = new Error("stop");
  await writer.abort(reason);
  const results = await Promise.allSettled(writes);
  // The first was in the sink already and finishes; the batch never went.
  assertEquals(sent, [0]);
  assertEquals(results.map((result) => result.status), [
    "fulfilled",
    "rejected",
    "rejected",
    "rejected",
  ]);
  assertEquals((results[1] as PromiseRejectedResult).reason, reason);
});

Deno.test("BatchingWritable: releaseLock() and close() hand on the batch first; a released writer's write rejects", async () => {
  const { sink, sent } = recordingSink();
  const writable = new BatchingWritable(sink, 100, () => 1);
  const first = writable.getWriter();
  const writes = range(3).map((i) => first.write(i));
  first.releaseLock();
  await assertRejects(() => first.write(9), TypeError);
  const second = writable.getWriter();
  writes.push(second.write(3), second.write(4));
  await second.close();
  await Promise.all(writes);
  assertEquals(sent, range(5));
});
