/**
 * The send side of a socket: frames queued in order, small ones batched into
 * one write, large ones written without a copy where that is safe, and the
 * byte count that `writable` applies backpressure by.
 *
 * @module
 */

import {
  keepHeld,
  letGoHeld,
  MIN_POOLED_BYTES,
  returnPooled,
  takePooled,
} from "./buffer_pool.ts";
import { type Frame, Opcode } from "./frame.ts";
import { queueLargeFrame } from "./large_frame.ts";
import type { FrameSink } from "./socket_core_host.ts";
import {
  flushWhenSharedQuiet,
  QUIET_HOPS,
  settlePublications,
  type SharedFlushQueue,
  sharedFrameQueued,
} from "./shared_flush.ts";
import { encodeFrameInto, frameHeaderLength } from "./frame_encoder.ts";
import {
  type ByteWriter,
  byteWriterOf,
  reusesWrites,
  type Transport,
} from "./transport.ts";

export { markHeaderRoom } from "./large_frame.ts";

/** Frames smaller than this are merged into one TCP write. */
export const MERGE_LIMIT_BYTES = 64 * 1024;

/**
 * Who hears that the transport failed while being written: the socket,
 * which then ends.
 */
export interface WriteFailureListener {
  /**
   * The transport refused a write.
   *
   * @param cause The write's error.
   */
  transportEnded(cause: unknown): void;
}

/**
 * Options of a {@linkcode WriteQueue}.
 */
export interface WriteQueueOptions {
  /** Whether frames are masked (the client role, RFC 6455 §5.3). */
  mask: boolean;
  /** The queued bytes above which {@linkcode WriteQueue.backpressure} waits. */
  maxBufferedBytes: number;
  /** Told when a write fails; the queue then drops what it holds. */
  listener: WriteFailureListener;
}

/**
 * Frames waiting for the transport, in order. Frames queued in the same
 * turn leave in one write: small ones are encoded straight into one batch
 * buffer, which is written once a few microtask hops pass without a new
 * frame. A large frame, or a Close, is written at once. Buffers come from
 * the shared pool when the transport is done with each chunk as its write
 * resolves (a `Deno.Conn`).
 *
 * @example Two small frames leave in one write
 * ```ts
 * import { WriteQueue } from "./write_queue.ts";
 * import { Opcode } from "./frame.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const writes: Uint8Array[] = [];
 * const queue = new WriteQueue({
 *   readable: new ReadableStream(),
 *   writable: new WritableStream({ write: (chunk) => void writes.push(chunk) }),
 * }, { mask: false, maxBufferedBytes: 1024, listener: { transportEnded() {} } });
 * queue.sendFrame(Opcode.Text, new Uint8Array([0x48]), false);
 * queue.sendFrame(Opcode.Text, new Uint8Array([0x69]), false);
 * await queue.whenDrained();
 * assertEquals(writes, [new Uint8Array([0x81, 0x01, 0x48, 0x81, 0x01, 0x69])]);
 * ```
 */
export class WriteQueue implements FrameSink, SharedFlushQueue {
  readonly #transport: Transport;
  readonly #writer: ByteWriter;
  readonly #mask: boolean;
  readonly #reuseWrites: boolean;
  readonly #maxBufferedBytes: number;
  readonly #listener: WriteFailureListener;

  // Bytes waiting for the transport, and who waits for them to drain.
  #outgoing: Uint8Array[] = [];
  // The chunks being written, and the one in flight.
  #writing: Uint8Array[] = [];
  #writingIndex = 0;
  // Small frames are encoded straight into one buffer, written as one chunk.
  #batch: Uint8Array | undefined;
  #batchUsed = 0;
  // Or, instead of a batch (never both), a run of shared frames that lie
  // next to each other in one buffer: its first frame, and where it ends.
  #run: Uint8Array | undefined;
  #runEnd = 0;
  #outgoingBytes = 0;
  // Bytes ever queued and ever written, and who waits for a position.
  #queuedBytesTotal = 0;
  #writtenBytesTotal = 0;
  #writtenWaiters: { position: number; resolve: () => void }[] = [];
  #flushing = false;
  #queuedSinceCheck = false;
  #quietHops = 0;
  #drainWaiters: (() => void)[] = [];
  #transportFailed = false;
  #noDelaySet = false;
  #closeQueued = false;
  #ended = false;
  // Shared frames that wait for a message sent in fragments to end (RFC
  // 6455 §5.4: no data frame of another message between its fragments).
  #heldShared: Uint8Array[] | undefined;
  #heldSharedBytes = 0;

  /**
   * Creates the queue of a socket's transport; it writes with
   * `transport.write` when there is one, else it locks `transport.writable`.
   *
   * @param transport Where the bytes go.
   * @param options Masking, the backpressure limit and the failure listener.
   */
  constructor(transport: Transport, options: WriteQueueOptions) {
    this.#transport = transport;
    this.#writer = byteWriterOf(transport);
    this.#reuseWrites = reusesWrites(transport);
    this.#mask = options.mask;
    this.#maxBufferedBytes = options.maxBufferedBytes;
    this.#listener = options.listener;
  }

  /** The bytes queued that the transport has not taken yet. */
  get bufferedAmount(): number {
    return this.#outgoingBytes + this.#heldSharedBytes;
  }

  /**
   * While a message goes out in fragments, holds the frames given to
   * {@linkcode WriteQueue.enqueueShared}; they follow once it ends.
   *
   * @param hold `true` as the first fragment is queued, `false` after the
   * last (or when the message is abandoned).
   */
  holdShared(hold: boolean): void {
    // What a hub holds was published before this: it goes first.
    settlePublications();
    if (hold) {
      this.#heldShared ??= [];
      return;
    }
    const held = this.#heldShared;
    this.#heldShared = undefined;
    this.#heldSharedBytes = 0;
    // RFC 6455 §5.5.1: no data frame follows a Close.
    if (this.#closeQueued) return;
    for (const bytes of held ?? []) this.enqueueShared(bytes);
  }

  /**
   * Queues one frame, encoded after the frames queued before it.
   *
   * @param opcode The frame's opcode (a continuation for a later fragment).
   * @param payload Its payload; never modified.
   * @param rsv1 Whether it is compressed (the first frame of a message).
   * @param fin Whether it is the last frame of its message.
   * @returns `true` when the queued bytes view `payload` (a large unmasked
   * payload is not copied): then it must stay unchanged until written.
   */
  sendFrame(
    opcode: Opcode,
    payload: Uint8Array,
    rsv1: boolean,
    fin = true,
  ): boolean {
    // What a hub holds was published before this frame: it goes first.
    settlePublications();
    if (opcode === Opcode.Close) this.#closeQueued = true;
    if (this.#transportFailed) return false;
    if (!this.#noDelaySet && opcode !== Opcode.Close) this.#setNoDelay();
    let viewsPayload = false;
    const frame: Frame = { fin, rsv1, opcode, payload };
    const size = frameHeaderLength(payload.length, this.#mask) + payload.length;
    if (size < MERGE_LIMIT_BYTES) {
      this.#encodeIntoBatch(frame, size);
    } else {
      this.#sealBatch();
      viewsPayload = queueLargeFrame(this.#outgoing, frame, size, {
        mask: this.#mask,
        reuseWrites: this.#reuseWrites,
        writing: this.#flushing,
      });
    }
    this.#queued(
      size,
      payload.length >= MERGE_LIMIT_BYTES || opcode === Opcode.Close,
    );
    return viewsPayload;
  }

  /**
   * Queues bytes that are already whole frames (for example one frame
   * encoded once for many sockets), after the frames queued before them.
   * They are written as they are: never copied, masked, pooled or
   * modified, so they must stay unchanged until written.
   *
   * @param bytes Whole, encoded frames (unmasked: a server's).
   */
  enqueueShared(bytes: Uint8Array): void {
    settlePublications();
    if (this.#transportFailed) return;
    if (this.#heldShared) {
      this.#heldShared.push(bytes);
      this.#heldSharedBytes += bytes.length;
      return;
    }
    if (!this.#noDelaySet) this.#setNoDelay();
    this.#sealBatch();
    this.#outgoing.push(bytes);
    this.#queued(bytes.length, bytes.length >= MERGE_LIMIT_BYTES);
  }

  /**
   * Queues one small frame, or frames next to each other, already encoded
   * and shared by many sockets (unmasked: a server's, shorter together than
   * {@linkcode MERGE_LIMIT_BYTES}; they must stay unchanged until written),
   * after the frames queued before them: the same as {@linkcode WriteQueue.sendFrame} without encoding it
   * again. Frames that lie right after the one before them in the same
   * buffer (see frame_arena.ts) leave as one view of it, not copied; others
   * are copied into the batch. Queues that take such frames in one turn are
   * flushed together once the turn goes quiet.
   *
   * @param frame Whole encoded frames.
   */
  appendSharedFrame(frame: Uint8Array): void {
    if (this.#transportFailed) return;
    if (!this.#noDelaySet) this.#setNoDelay();
    const size = frame.length;
    const run = this.#run;
    if (
      run !== undefined && frame.byteOffset === this.#runEnd &&
      frame.buffer === run.buffer
    ) {
      this.#runEnd += size;
    } else {
      // A short run is copied when something else follows it (see
      // #closeRun), so no queue keeps a small view of a large buffer.
      if (run !== undefined) this.#closeRun();
      if (this.#batchUsed === 0) {
        this.#run = frame;
        this.#runEnd = frame.byteOffset + size;
      } else {
        this.#batchWithRoom(size).set(frame, this.#batchUsed);
        this.#batchUsed += size;
      }
    }
    this.#queued(size, false, true);
  }

  /** Writes what is queued: the common flush of shared frames is due. */
  flushShared(): void {
    this.#flush();
  }

  /**
   * Resolves once the bytes queued are at most `maxBufferedBytes`, or at
   * once (`undefined`) when they are already.
   *
   * @returns A promise to wait on, or `undefined`.
   */
  backpressure(): void | Promise<void> {
    if (this.#outgoingBytes <= this.#maxBufferedBytes) return;
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  /**
   * Resolves once every byte queued so far has been written (or the
   * transport failed, or the queue ended).
   *
   * @returns A promise of that.
   */
  whenWritten(): Promise<void> {
    const position = this.#queuedBytesTotal;
    if (this.#writtenBytesTotal >= position) return Promise.resolve();
    return new Promise((resolve) =>
      this.#writtenWaiters.push({ position, resolve })
    );
  }

  /**
   * Resolves once nothing is queued or being written, or the queue ended.
   *
   * @returns A promise of that.
   */
  whenDrained(): Promise<void> {
    const drained = () =>
      this.#ended || (!this.#flushing && this.#outgoing.length === 0);
    if (drained()) return Promise.resolve();
    return new Promise((resolve) => {
      const check = () => {
        if (drained()) resolve();
        else this.#drainWaiters.push(check);
      };
      this.#drainWaiters.push(check);
    });
  }

  /** The socket ended: every waiter is released. */
  end(): void {
    this.#ended = true;
    this.#notifyDrained();
    for (const resolve of this.#drainWaiters.splice(0)) resolve();
    this.#notifyWritten(true);
  }

  /** Closes the writer (an in-memory transport's writable). */
  closeWriter(): void {
    this.#writer.close().catch(() => {});
  }

  #setNoDelay(): void {
    this.#noDelaySet = true;
    try {
      this.#transport.setNoDelay?.(true);
    } catch {
      // Closed already: the write will say so.
    }
  }

  // Counts a frame's bytes and starts a flush unless one is running: now,
  // or once a few microtask hops pass without another frame (shared frames:
  // without another shared frame for any queue: see shared_flush.ts).
  #queued(size: number, now: boolean, shared = false): void {
    this.#outgoingBytes += size;
    this.#queuedBytesTotal += size;
    this.#queuedSinceCheck = true;
    if (shared) sharedFrameQueued();
    if (this.#flushing) return;
    this.#flushing = true;
    if (now) {
      // A large frame leaves on its own anyway, and nothing follows a Close
      // (RFC 6455 §5.5.1): no reason to wait for more frames.
      this.#flush();
      return;
    }
    if (shared) {
      flushWhenSharedQuiet(this);
      return;
    }
    this.#quietHops = 0;
    // (Made at the first frame: an idle socket that never sent one has no
    // closure for it.)
    queueMicrotask(this.#flushWhenQuiet ??= () => this.#flushIfQuiet());
  }

  #encodeIntoBatch(frame: Frame, size: number): void {
    this.#batchUsed = encodeFrameInto(
      this.#batchWithRoom(size),
      this.#batchUsed,
      frame,
      this.#mask,
    );
  }

  // The batch buffer, with room for size more bytes after #batchUsed.
  #batchWithRoom(size: number): Uint8Array {
    if (this.#run !== undefined) this.#closeRun();
    let batch = this.#batch;
    const used = this.#batchUsed;
    if (batch === undefined || used + size > batch.length) {
      if (used + size > MERGE_LIMIT_BYTES) {
        this.#sealBatch();
        batch = this.#newBatch(size);
      } else {
        const grown = this.#newBatch(
          Math.min(MERGE_LIMIT_BYTES, (used + size) * 2),
        );
        if (batch !== undefined) {
          grown.set(batch.subarray(0, used));
          returnPooled(batch);
        }
        batch = grown;
      }
      this.#batch = batch;
    }
    return batch;
  }

  #notifyWritten(all: boolean): void {
    const waiters = this.#writtenWaiters;
    while (
      waiters.length > 0 &&
      (all || waiters[0].position <= this.#writtenBytesTotal)
    ) {
      waiters.shift()!.resolve();
    }
  }

  // Frames written in the same turn leave in one TCP write: the flush waits
  // until a few microtask hops pass without a new frame (a pipe hands its
  // messages over a few hops apart), then writes them together.
  #flushWhenQuiet: (() => void) | undefined;

  #flushIfQuiet(): void {
    if (this.#closeQueued) {
      // Nothing follows a Close: no reason to wait for more frames.
      this.#flush();
      return;
    }
    if (this.#queuedSinceCheck) {
      this.#queuedSinceCheck = false;
      this.#quietHops = 0;
    } else if (++this.#quietHops >= QUIET_HOPS) {
      this.#flush();
      return;
    }
    queueMicrotask(this.#flushWhenQuiet!);
  }

  // A buffer to encode small frames into: from the pool when the transport
  // takes each write's bytes before it resolves (see reusesWrites).
  #newBatch(size: number): Uint8Array {
    if (this.#reuseWrites) return takePooled(size);
    return new Uint8Array(Math.max(MIN_POOLED_BYTES, size));
  }

  // Ends the run of shared frames before another frame: a short one is
  // copied into the batch (the frames after it may join it there), a long
  // one goes out as a view.
  #closeRun(): void {
    const run = this.#takeRun();
    if (run.length >= MERGE_LIMIT_BYTES) {
      this.#outgoing.push(run);
      return;
    }
    this.#batchWithRoom(run.length).set(run, this.#batchUsed);
    this.#batchUsed += run.length;
  }

  // The run of shared frames as one view (its first frame itself when it
  // has no other), no longer queued as a run.
  #takeRun(): Uint8Array {
    const run = this.#run!;
    const length = this.#runEnd - run.byteOffset;
    this.#run = undefined;
    return length === run.length
      ? run
      : new Uint8Array(run.buffer, run.byteOffset, length);
  }

  // Moves the frames encoded into the batch buffer, or the run of shared
  // frames, to the outgoing chunks.
  #sealBatch(): void {
    if (this.#run !== undefined) {
      this.#outgoing.push(this.#takeRun());
      return;
    }
    if (this.#batchUsed === 0) return;
    this.#outgoing.push(this.#batch!.subarray(0, this.#batchUsed));
    this.#batch = undefined;
    this.#batchUsed = 0;
  }

  // Writes what is queued, chunk after chunk; frames queued while a write
  // is in flight leave together in the next write. Callbacks, not an async
  // function: a write in flight keeps only its promise alive, which counts
  // with thousands of sockets writing at once (a hub's subscribers).
  #flush(): void {
    this.#chunkWritten ??= (written) => this.#onWritten(written);
    this.#writeFailed ??= (error) => this.#onWriteFailed(error);
    this.#writeNext();
  }

  #writeNext(): void {
    let chunks = this.#writing;
    if (this.#writingIndex >= chunks.length) {
      // (Emptied: no written chunk stays alive here.)
      chunks.length = 0;
      this.#sealBatch();
      if (this.#outgoing.length === 0) {
        this.#flushing = false;
        this.#notifyDrained();
        return;
      }
      // The two arrays take turns: no new array per write.
      this.#writing = this.#outgoing;
      this.#outgoing = chunks;
      this.#writingIndex = 0;
      chunks = this.#writing;
    }
    const bytes = chunks[this.#writingIndex];
    try {
      // A Deno.Conn's write takes all the bytes at once nearly always:
      // call it without the writer's extra promise.
      const direct = this.#reuseWrites ? this.#transport.write : undefined;
      const pending: Promise<number | void> = direct === undefined
        ? this.#writer.write(bytes)
        : direct.call(this.#transport, bytes);
      pending.then(this.#chunkWritten, this.#writeFailed);
    } catch (error) {
      this.#onWriteFailed(error);
    }
  }

  // The chunk in flight was written (the count from a direct write, of
  // which the rest goes through the writer), or failed.
  #chunkWritten: ((written: number | void) => void) | undefined;
  #writeFailed: ((error: unknown) => void) | undefined;

  #onWritten(written: number | void): void {
    try {
      const bytes = this.#writing[this.#writingIndex];
      if (typeof written === "number" && written < bytes.length) {
        this.#writer.write(written === 0 ? bytes : bytes.subarray(written))
          .then(this.#chunkWritten, this.#writeFailed);
        return;
      }
      this.#writingIndex++;
      // Buffers the transport is done with go back to the pool (a read
      // buffer once the last echo viewing it is written); a stream
      // transport may keep what it was given.
      if (this.#reuseWrites) {
        returnPooled(bytes);
        letGoHeld(bytes);
      } else keepHeld(bytes);
      this.#outgoingBytes -= bytes.length;
      this.#writtenBytesTotal += bytes.length;
      if (this.#writtenWaiters.length > 0) this.#notifyWritten(false);
      if (this.#outgoingBytes <= this.#maxBufferedBytes) {
        this.#notifyDrained();
      }
    } catch (error) {
      this.#onWriteFailed(error);
      return;
    }
    this.#writeNext();
  }

  #onWriteFailed(error: unknown): void {
    this.#transportFailed = true;
    this.#writing = [];
    this.#writingIndex = 0;
    this.#outgoing = [];
    this.#batch = undefined;
    this.#batchUsed = 0;
    this.#run = undefined;
    this.#outgoingBytes = 0;
    this.#notifyWritten(true);
    try {
      this.#listener.transportEnded(error);
    } finally {
      this.#flushing = false;
      this.#notifyDrained();
    }
  }

  #notifyDrained(): void {
    const waiters = this.#drainWaiters;
    if (waiters.length === 0) return;
    if (
      (this.#outgoing.length > 0 || this.#batchUsed > 0 ||
        this.#run !== undefined) &&
      this.#outgoingBytes > this.#maxBufferedBytes
    ) return;
    this.#drainWaiters = [];
    for (const resolve of waiters) resolve();
  }
}
