// The write queue and the buffer pool, in memory: batching, quiet-hop
// flushing, write positions, backpressure, shared frames, pooled buffers and
// the lazy setNoDelay.

import { assert, assertEquals, assertNotStrictEquals } from "@std/assert";
import {
  isPooled,
  poolCapacity,
  returnPooled,
  takePooled,
} from "../src/buffer_pool.ts";
import { Opcode } from "../src/frame.ts";
import type { Transport } from "../src/transport.ts";
import { WriteQueue } from "../src/write_queue.ts";
import { bytes, concat, frameBytes, utf8 } from "./_codec_util.ts";

// A transport whose writes are recorded (as given, and as copies) and can be
// held until released.
function recordingTransport(options: { conn?: boolean; hold?: boolean } = {}) {
  const chunks: Uint8Array[] = [];
  const copies: Uint8Array[] = [];
  const held: (() => void)[] = [];
  let noDelayCalls = 0;
  const record = (chunk: Uint8Array) => {
    chunks.push(chunk);
    copies.push(chunk.slice());
  };
  const release = () => {
    for (const resolve of held.splice(0)) resolve();
  };
  const wait = () =>
    options.hold
      ? new Promise<void>((resolve) => held.push(resolve))
      : Promise.resolve();
  let transport: Transport;
  if (options.conn) {
    // Shaped like a Deno.Conn (read, write, closeWrite): the queue then
    // reuses its buffers once a write resolves.
    const conn = {
      readable: new ReadableStream<Uint8Array>(),
      writable: new WritableStream<Uint8Array>(),
      read: () => Promise.resolve(null),
      async write(chunk: Uint8Array): Promise<number> {
        record(chunk);
        await wait();
        return chunk.length;
      },
      closeWrite: () => Promise.resolve(),
      setNoDelay() {
        noDelayCalls++;
      },
    };
    transport = conn;
  } else {
    transport = {
      readable: new ReadableStream<Uint8Array>(),
      writable: new WritableStream<Uint8Array>({
        write(chunk) {
          record(chunk);
          return wait();
        },
      }),
    };
  }
  return {
    transport,
    chunks,
    copies,
    release,
    noDelayCalls: () => noDelayCalls,
  };
}

function queueOver(
  transport: Transport,
  options: { mask?: boolean; maxBufferedBytes?: number } = {},
) {
  const failures: unknown[] = [];
  const queue = new WriteQueue(transport, {
    mask: options.mask ?? false,
    maxBufferedBytes: options.maxBufferedBytes ?? 1024 * 1024,
    listener: { transportEnded: (cause) => void failures.push(cause) },
  });
  return { queue, failures };
}

function hops(count: number): Promise<void> {
  let promise = Promise.resolve();
  for (let i = 0; i < count; i++) promise = promise.then(() => {});
  return promise;
}

Deno.test("small frames queued in one turn leave in one write, byte for byte", async () => {
  const { transport, copies } = recordingTransport();
  const { queue } = queueOver(transport);
  queue.sendFrame(Opcode.Text, utf8("Hi"), false);
  queue.sendFrame(Opcode.Binary, bytes(1, 2, 3), false);
  queue.sendFrame(Opcode.Ping, new Uint8Array(0), false);
  await queue.whenDrained();
  assertEquals(copies, [
    concat([
      frameBytes({ opcode: Opcode.Text, payload: "Hi" }),
      frameBytes({ opcode: Opcode.Binary, payload: bytes(1, 2, 3) }),
      frameBytes({ opcode: Opcode.Ping }),
    ]),
  ]);
});

Deno.test("frames a few microtasks apart share a write; frames a task apart do not", async () => {
  const { transport, copies } = recordingTransport();
  const { queue } = queueOver(transport);
  queue.sendFrame(Opcode.Text, utf8("a"), false);
  await hops(3);
  queue.sendFrame(Opcode.Text, utf8("b"), false);
  await queue.whenDrained();
  assertEquals(copies.length, 1);
  queue.sendFrame(Opcode.Text, utf8("c"), false);
  await new Promise((resolve) => setTimeout(resolve, 0));
  queue.sendFrame(Opcode.Text, utf8("d"), false);
  await queue.whenDrained();
  assertEquals(copies.map((chunk) => chunk.length), [6, 3, 3]);
});

Deno.test("fragments keep their opcode and fin flag", async () => {
  const { transport, copies } = recordingTransport();
  const { queue } = queueOver(transport);
  queue.sendFrame(Opcode.Text, utf8("Hel"), false, false);
  queue.sendFrame(Opcode.Continuation, utf8("lo"), false, true);
  await queue.whenDrained();
  assertEquals(copies, [
    concat([
      frameBytes({ opcode: Opcode.Text, fin: false, payload: "Hel" }),
      frameBytes({ opcode: Opcode.Continuation, payload: "lo" }),
    ]),
  ]);
});

Deno.test("a large unmasked payload is written at once, after the frames before it, without a copy", async () => {
  const { transport, chunks } = recordingTransport();
  const { queue } = queueOver(transport);
  const large = new Uint8Array(70_000).fill(7);
  queue.sendFrame(Opcode.Text, utf8("first"), false);
  assertEquals(queue.sendFrame(Opcode.Binary, large, false), true);
  await queue.whenDrained();
  assertEquals(chunks.length, 3);
  assertEquals(
    chunks[0],
    frameBytes({ opcode: Opcode.Text, payload: "first" }),
  );
  assertEquals(chunks[1], bytes(0x82, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70));
  assert(chunks[2] === large);
});

Deno.test("a Close is written at once, with the frames queued before it in the same write", async () => {
  const { transport, copies } = recordingTransport();
  const { queue } = queueOver(transport);
  queue.sendFrame(Opcode.Text, utf8("bye"), false);
  queue.sendFrame(Opcode.Close, bytes(0x03, 0xe8), false);
  // No quiet hops are waited for.
  await hops(1);
  assertEquals(copies, [
    concat([
      frameBytes({ opcode: Opcode.Text, payload: "bye" }),
      frameBytes({ opcode: Opcode.Close, payload: bytes(0x03, 0xe8) }),
    ]),
  ]);
});

Deno.test("whenWritten resolves only once the bytes queued before it are written", async () => {
  const { transport, release, chunks } = recordingTransport({ hold: true });
  const { queue } = queueOver(transport);
  queue.sendFrame(Opcode.Text, utf8("one"), false);
  let written = false;
  const done = queue.whenWritten().then(() => written = true);
  await hops(20);
  assertEquals(chunks.length, 1);
  assertEquals(written, false);
  release();
  await done;
  assert(written);
  // Nothing queued since: resolves at once.
  await queue.whenWritten();
});

Deno.test("backpressure waits while more than maxBufferedBytes are queued, and bufferedAmount counts them", async () => {
  const { transport, release } = recordingTransport({ hold: true });
  const { queue } = queueOver(transport, { maxBufferedBytes: 10 });
  queue.sendFrame(Opcode.Text, utf8("tiny"), false);
  assertEquals(queue.backpressure(), undefined);
  queue.sendFrame(Opcode.Binary, new Uint8Array(100), false);
  assertEquals(queue.bufferedAmount, 6 + 102);
  const wait = queue.backpressure();
  if (!(wait instanceof Promise)) throw new Error("expected a promise");
  let resumed = false;
  wait.then(() => resumed = true);
  await hops(20);
  assertEquals(resumed, false);
  release();
  await wait;
  assertEquals(queue.bufferedAmount, 0);
  await queue.whenDrained();
});

Deno.test("shared frames are written as they are, in order, never copied, pooled or modified", async () => {
  const { transport, chunks } = recordingTransport({ conn: true });
  const { queue } = queueOver(transport);
  const shared = frameBytes({ opcode: Opcode.Text, payload: "to everyone" });
  const original = shared.slice();
  queue.sendFrame(Opcode.Text, utf8("before"), false);
  queue.enqueueShared(shared);
  assertEquals(queue.bufferedAmount, 8 + shared.length);
  queue.sendFrame(Opcode.Text, utf8("after"), false);
  await queue.whenDrained();
  assertEquals(chunks.length, 3);
  // The very bytes (transport.write is given a view of them: no copy).
  assert(chunks[1].buffer === shared.buffer);
  assertEquals([chunks[1].byteOffset, chunks[1].length], [0, shared.length]);
  assertEquals(shared, original);
  assertEquals(isPooled(shared), false);
  assertEquals(
    chunks[2],
    frameBytes({ opcode: Opcode.Text, payload: "after" }),
  );
  // The same bytes serve another queue too.
  const other = recordingTransport();
  const second = queueOver(other.transport).queue;
  second.enqueueShared(shared);
  await second.whenDrained();
  assert(other.chunks[0] === shared);
});

Deno.test("an encoded small frame is copied into the batch between the socket's own frames, in order, the original unchanged", async () => {
  const { transport, copies } = recordingTransport({ conn: true });
  const { queue } = queueOver(transport);
  const shared = frameBytes({ opcode: Opcode.Text, payload: "to everyone" });
  const original = shared.slice();
  queue.sendFrame(Opcode.Text, utf8("before"), false);
  queue.appendSharedFrame(shared);
  queue.sendFrame(Opcode.Binary, bytes(7), false);
  queue.appendSharedFrame(shared);
  assertEquals(queue.bufferedAmount, 8 + 3 + 2 * shared.length);
  await queue.whenDrained();
  assertEquals(copies, [
    concat([
      frameBytes({ opcode: Opcode.Text, payload: "before" }),
      shared,
      frameBytes({ opcode: Opcode.Binary, payload: bytes(7) }),
      shared,
    ]),
  ]);
  assertEquals(shared, original);
});

Deno.test("shared frames that lie next to each other in one buffer leave as one view of it, not copied", async () => {
  const { transport, chunks, copies } = recordingTransport({ conn: true });
  const { queue } = queueOver(transport);
  const first = frameBytes({ opcode: Opcode.Text, payload: "one" });
  const second = frameBytes({ opcode: Opcode.Binary, payload: bytes(2, 3) });
  const arena = concat([bytes(0xee), first, second]);
  const original = arena.slice();
  queue.appendSharedFrame(arena.subarray(1, 1 + first.length));
  queue.appendSharedFrame(arena.subarray(1 + first.length));
  assertEquals(queue.bufferedAmount, first.length + second.length);
  await queue.whenDrained();
  assertEquals(chunks.length, 1);
  assert(chunks[0].buffer === arena.buffer, "a view, not a copy");
  assertEquals([chunks[0].byteOffset, chunks[0].length], [1, arena.length - 1]);
  assertEquals(copies, [concat([first, second])]);
  assertEquals(arena, original);
  assertEquals(isPooled(chunks[0]), false);
});

Deno.test("a short run of shared frames followed by other frames is copied into their batch, in order", async () => {
  const { transport, chunks, copies } = recordingTransport({ conn: true });
  const { queue } = queueOver(transport);
  const first = frameBytes({ opcode: Opcode.Text, payload: "a" });
  const second = frameBytes({ opcode: Opcode.Text, payload: "b" });
  const arena = concat([first, second]);
  const elsewhere = frameBytes({ opcode: Opcode.Text, payload: "c" });
  queue.appendSharedFrame(arena.subarray(0, first.length));
  queue.appendSharedFrame(arena.subarray(first.length));
  queue.appendSharedFrame(elsewhere); // not next to the run
  queue.sendFrame(Opcode.Text, utf8("own"), false);
  queue.appendSharedFrame(arena.subarray(0, first.length));
  await queue.whenDrained();
  assertEquals(copies, [
    concat([
      first,
      second,
      elsewhere,
      frameBytes({ opcode: Opcode.Text, payload: "own" }),
      first,
    ]),
  ]);
  assert(chunks[0].buffer !== arena.buffer, "copied: more followed the run");
});

Deno.test("queues given shared frames in one turn are written once each, after the turn goes quiet", async () => {
  const transports = [recordingTransport(), recordingTransport()];
  const queues = transports.map((t) => queueOver(t.transport).queue);
  const a = frameBytes({ opcode: Opcode.Text, payload: "a" });
  const b = frameBytes({ opcode: Opcode.Text, payload: "b" });
  queues[0].appendSharedFrame(a);
  await hops(5);
  queues[1].appendSharedFrame(a);
  await hops(5);
  // Still one turn: each new shared frame restarts the wait for all.
  assertEquals(transports.map((t) => t.copies.length), [0, 0]);
  queues[0].appendSharedFrame(b);
  queues[1].appendSharedFrame(b);
  await Promise.all(queues.map((queue) => queue.whenDrained()));
  for (const { copies } of transports) assertEquals(copies, [concat([a, b])]);
});

Deno.test("over a Deno.Conn the batch buffer comes from the pool and goes back once written", async () => {
  const { transport, chunks } = recordingTransport({ conn: true });
  const { queue } = queueOver(transport);
  queue.sendFrame(Opcode.Text, utf8("pooled"), false);
  await queue.whenDrained();
  const buffer = chunks[0].buffer;
  assertEquals(buffer.byteLength, poolCapacity(8));
  assertEquals(isPooled(chunks[0]), false);
  const reused = takePooled(8);
  assert(reused.buffer === buffer);
  returnPooled(reused);
});

Deno.test("over other writables the batch buffer is never reused (they may keep chunks)", async () => {
  const { transport, chunks, copies } = recordingTransport();
  const { queue } = queueOver(transport);
  queue.sendFrame(Opcode.Text, utf8("kept"), false);
  await queue.whenDrained();
  queue.sendFrame(Opcode.Text, utf8("next"), false);
  await queue.whenDrained();
  assertNotStrictEquals(chunks[0].buffer, chunks[1].buffer);
  assertEquals(chunks[0].subarray(0, 6), copies[0]);
});

Deno.test("a client's large frames queued behind a write in flight are masked into one pooled buffer", async () => {
  const { transport, chunks, release } = recordingTransport({
    conn: true,
    hold: true,
  });
  const { queue } = queueOver(transport, { mask: true });
  const payload = new Uint8Array(70_000).fill(1);
  queue.sendFrame(Opcode.Binary, payload, false);
  queue.sendFrame(Opcode.Binary, payload, false);
  queue.sendFrame(Opcode.Binary, payload, false);
  await hops(5);
  release();
  await hops(20);
  release();
  await queue.whenDrained();
  // The first frame alone, then the two that waited behind it together.
  assertEquals(chunks.map((chunk) => chunk.length), [70_014, 140_028]);
  assertEquals(payload[0], 1); // the payload itself is never masked
});

Deno.test("setNoDelay is called once, before the first frame other than a Close", async () => {
  const closeOnly = recordingTransport({ conn: true });
  const first = queueOver(closeOnly.transport).queue;
  first.sendFrame(Opcode.Close, bytes(0x03, 0xe8), false);
  await first.whenDrained();
  assertEquals(closeOnly.noDelayCalls(), 0);

  const data = recordingTransport({ conn: true });
  const second = queueOver(data.transport).queue;
  second.sendFrame(Opcode.Text, utf8("a"), false);
  second.sendFrame(Opcode.Text, utf8("b"), false);
  second.enqueueShared(frameBytes({ opcode: Opcode.Text, payload: "c" }));
  await second.whenDrained();
  assertEquals(data.noDelayCalls(), 1);
});

Deno.test("a failed write is reported once, releases the waiters, and later frames are dropped", async () => {
  let writes = 0;
  const transport: Transport = {
    readable: new ReadableStream(),
    writable: new WritableStream({
      write() {
        writes++;
        throw new Error("broken pipe");
      },
    }),
  };
  const { queue, failures } = queueOver(transport);
  queue.sendFrame(Opcode.Text, utf8("lost"), false);
  await queue.whenWritten();
  await queue.whenDrained();
  assertEquals(failures.length, 1);
  assertEquals((failures[0] as Error).message, "broken pipe");
  assertEquals(queue.bufferedAmount, 0);
  assertEquals(queue.sendFrame(Opcode.Text, utf8("later"), false), false);
  await hops(20);
  assertEquals(writes, 1);
});

Deno.test("end() releases whoever waits for a drain or a write position", async () => {
  const { transport } = recordingTransport({ hold: true });
  const { queue } = queueOver(transport, { maxBufferedBytes: 0 });
  queue.sendFrame(Opcode.Text, utf8("stuck"), false);
  const waits = [
    queue.whenWritten(),
    queue.whenDrained(),
    queue.backpressure(),
  ];
  queue.end();
  await Promise.all(waits);
});

// ---- the buffer pool ---------------------------------------------------------

Deno.test("pool capacities are 4 KiB at least, then quarter steps of a power of two", () => {
  assertEquals(poolCapacity(1), 4096);
  assertEquals(poolCapacity(4096), 4096);
  assertEquals(poolCapacity(4097), 5120);
  assertEquals(poolCapacity(65_536), 65_536);
  assertEquals(poolCapacity(65_537), 81_920);
  assertEquals(poolCapacity(100_000), 114_688);
});

Deno.test("a returned buffer is handed out again, once; foreign bytes are ignored", () => {
  const first = takePooled(20_000);
  assertEquals(first.length, poolCapacity(20_000));
  assert(isPooled(first));
  returnPooled(first.subarray(10));
  returnPooled(first); // a second return is ignored
  returnPooled(new Uint8Array(first.length)); // not from the pool
  const second = takePooled(20_000);
  assert(second.buffer === first.buffer);
  const third = takePooled(20_000);
  assert(third.buffer !== first.buffer);
  returnPooled(second);
  returnPooled(third);
});
