/**
 * A socket's `writable` whose writers, once 256 of their writes are in
 * flight, hand the messages written meanwhile to the sink as
 * {@linkcode MessageBatch}es of up to 1,024, instead of one stream chunk
 * each.
 *
 * Why: a `WritableStream` queues every chunk written before the sink takes
 * it. Node's implementation keeps that queue (and the writes' promises) in
 * arrays it shifts, and once they pass 16,384 entries (V8 then keeps them
 * in large-object space, where a shift moves every element) each shift
 * costs the whole queue: 100,000 unawaited writes of 64 B spent 96% of
 * their time there, 13× slower than npm `ws` (bench/node_flood.ts). A
 * batch is one chunk, however many messages it holds.
 *
 * Each message still gets its own promise, settled when the sink has sent
 * it, as the stream settles each chunk's; `ready` and `desiredSize` are the
 * stream's own, and a batch is handed on as soon as its bytes would reach
 * the stream's high-water mark, so backpressure starts where it would have.
 * `pipeTo` takes no writer of this class and is unchanged.
 *
 * @module
 */

// Writes in flight before messages are batched: a few chunks queue fast
// enough anywhere, and a batch costs a promise of its own per message.
const MAX_SINGLE_WRITES = 256;

// Messages per batch at most: 100,000 unawaited writes make ~100 stream
// chunks, far from the 16,384 where Node's queue slows down.
const MAX_BATCH_MESSAGES = 1024;

/**
 * Messages for the sink to send in order, each with its own promise.
 *
 * @typeParam W The type of a message.
 */
export class MessageBatch<W> {
  /** The messages, in order. */
  readonly messages: W[] = [];
  /** The sum of the messages' sizes (the stream's `size` of each). */
  bytes = 0;
  readonly #settlers: Array<{
    resolve(): void;
    reject(error: unknown): void;
  }> = [];
  // Messages before this index have been settled.
  #settled = 0;

  /**
   * Adds a message.
   *
   * @param message The message.
   * @param size Its size, as the stream counts it.
   * @returns A promise settled when the message is sent, or fails.
   */
  add(message: W, size: number): Promise<void> {
    this.messages.push(message);
    this.bytes += size;
    return new Promise((resolve, reject) =>
      this.#settlers.push({ resolve, reject })
    );
  }

  /** The next unsettled message was sent. */
  resolveNext(): void {
    this.#settlers[this.#settled++].resolve();
  }

  /**
   * Fails every message not settled yet.
   *
   * @param error Why.
   */
  rejectRest(error: unknown): void {
    const settlers = this.#settlers;
    while (this.#settled < settlers.length) {
      settlers[this.#settled++].reject(error);
    }
  }
}

// The strategy's size of a message or a batch, one function per message
// size function rather than a closure per stream.
const chunkSizes = new WeakMap<
  (message: never) => number,
  (chunk: unknown) => number
>();
function chunkSizeOf<W>(
  sizeOf: (message: W) => number,
): (chunk: W | MessageBatch<W>) => number {
  let size = chunkSizes.get(sizeOf);
  if (size === undefined) {
    size = (chunk) =>
      chunk instanceof MessageBatch ? chunk.bytes : sizeOf(chunk as W);
    chunkSizes.set(sizeOf, size);
  }
  return size;
}

// Set by BatchingWritable's static block: counts a write handed to the
// stream (+1) or settled (-1).
let countWrite: <W>(stream: BatchingWritable<W>, delta: number) => void;

/**
 * A `WritableStream` whose `getWriter()` gives a {@linkcode BatchingWriter}.
 * Its sink gets {@linkcode MessageBatch}es beside single messages, and its
 * `size` function sizes both.
 *
 * @typeParam W The type of a message.
 */
export class BatchingWritable<W> extends WritableStream<W> {
  readonly #sizeOf: (message: W) => number;
  // Writes handed to the stream by its writers (released ones too) and not
  // settled yet, and who waits for them to settle.
  #pendingWrites = 0;
  #onSettled: (() => void) | undefined;

  static {
    countWrite = (stream, delta) => {
      if ((stream.#pendingWrites += delta) > 0) return;
      const listener = stream.#onSettled;
      stream.#onSettled = undefined;
      listener?.();
    };
  }

  /**
   * Makes the stream.
   *
   * @param sink The sink: its `write` takes a message or a batch.
   * @param highWaterMark The stream's high-water mark, in `sizeOf` units.
   * @param sizeOf The size of one message.
   */
  constructor(
    sink: UnderlyingSink<W | MessageBatch<W>>,
    highWaterMark: number,
    sizeOf: (message: W) => number,
  ) {
    super(sink as UnderlyingSink<W>, {
      highWaterMark,
      size: chunkSizeOf(sizeOf) as (chunk: W) => number,
    });
    this.#sizeOf = sizeOf;
  }

  /**
   * Locks the stream to a new writer that batches.
   *
   * @returns The writer.
   */
  override getWriter(): WritableStreamDefaultWriter<W> {
    return new BatchingWriter(this, this.#sizeOf);
  }

  /**
   * Whether writes made through {@linkcode BatchingWritable.getWriter}'s
   * writers (released ones too) have not settled yet: messages the sink
   * may not have taken.
   */
  get writesPending(): boolean {
    return this.#pendingWrites > 0;
  }

  /**
   * Calls `listener` once when no write is pending (see
   * {@linkcode BatchingWritable.writesPending}); a later call replaces it.
   *
   * @param listener Called once.
   */
  onceWritesSettled(listener: () => void): void {
    this.#onSettled = listener;
  }
}

/**
 * A writer that writes a message straight to the stream while fewer than
 * `MAX_SINGLE_WRITES` it wrote are in flight, and otherwise adds it to a
 * batch that goes to the stream a microtask later (or at once, once its
 * bytes would use up the stream's room, or before `close()`, `abort()` or
 * `releaseLock()`).
 */
class BatchingWriter<W> extends WritableStreamDefaultWriter<W> {
  readonly #stream: BatchingWritable<W>;
  readonly #sizeOf: (message: W) => number;
  #batch: MessageBatch<W> | undefined;
  // Writes (messages or batches) given to the stream and not settled.
  #inFlight = 0;
  #released = false;
  // Made at the first write: a writer that only holds the lock (a pipe
  // run inside the socket) costs no closures.
  #settle: (() => void) | undefined;
  #flushLater: (() => void) | undefined;

  constructor(stream: BatchingWritable<W>, sizeOf: (message: W) => number) {
    super(stream);
    this.#stream = stream;
    this.#sizeOf = sizeOf;
  }

  override write(message: W): Promise<void> {
    let batch = this.#batch;
    if (
      this.#released ||
      (batch === undefined && this.#inFlight < MAX_SINGLE_WRITES)
    ) {
      return this.#hand(message);
    }
    if (batch === undefined) {
      batch = this.#batch = new MessageBatch();
      queueMicrotask(this.#flushLater ??= () => this.#flush());
    }
    const written = batch.add(message, this.#sizeOf(message));
    // Handed on as the stream's room runs out, so `ready` waits from the
    // same write on as it would have (once out of room, `ready` waits
    // already: the batch may grow).
    // A batch is handed on once it holds MAX_BATCH_MESSAGES too: the stream
    // frees a batch's room only once all of it is sent, and smaller batches
    // let a writer waiting on `ready` go on sooner.
    const room = this.desiredSize;
    if (
      room === null || (room > 0 && room <= batch.bytes) ||
      batch.messages.length >= MAX_BATCH_MESSAGES
    ) this.#flush();
    return written;
  }

  override close(): Promise<void> {
    this.#flush();
    return super.close();
  }

  override abort(reason?: unknown): Promise<void> {
    this.#flush();
    return super.abort(reason);
  }

  override releaseLock(): void {
    this.#flush();
    this.#released = true;
    super.releaseLock();
  }

  // Gives a message or a batch to the stream, counted in flight until it
  // settles.
  #hand(chunk: W | MessageBatch<W>): Promise<void> {
    this.#inFlight++;
    countWrite(this.#stream, 1);
    const written = super.write(chunk as W);
    const settle = this.#settle ??= () => {
      this.#inFlight--;
      countWrite(this.#stream, -1);
    };
    written.then(settle, settle);
    return written;
  }

  #flush(): void {
    const batch = this.#batch;
    if (batch === undefined) return;
    this.#batch = undefined;
    // Messages the sink did not get (the stream failed or was aborted)
    // fail with the stream's error.
    this.#hand(batch).catch((error) => batch.rejectRest(error));
  }
}
