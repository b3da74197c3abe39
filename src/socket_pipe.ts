/**
 * `socket.readable.pipeTo(socket.writable)` run inside the socket: each
 * message the core hands out is sent back out through the socket's sink at
 * once, without the generic WHATWG pipe (its reader loop, its promises per
 * message, about 3 KB of JavaScript heap per idle socket). The contract is
 * the pipe's (WHATWG Streams, ReadableStreamPipeTo): both streams stay
 * locked by a real reader and writer while it runs; the source closing
 * closes the destination (unless `preventClose`), the source failing aborts
 * it (unless `preventAbort`), the destination failing cancels the source
 * (unless `preventCancel`), `signal` does both; messages already taken are
 * written before any of that; the promise settles once both locks are
 * released. Backpressure: while a message waits (the write queue full, a
 * message compressed or sent in fragments) the next ones wait in order and
 * the socket stops reading.
 *
 * @module
 */

import { holdHeld } from "./buffer_pool.ts";
import type { Message } from "./message_assembler.ts";

/** The sink of the socket's `writable`, which a {@linkcode SocketPipe} writes through. */
export interface PipeSink {
  /** The pipe running, set by the socket; the pipe clears it when done. */
  pipe: SocketPipe | undefined;
  /**
   * Sends a message received back out, after those sent before it.
   *
   * @returns A promise while the message is not yet queued whole or the
   * write queue is over its limit; else nothing.
   * @throws When the socket may no longer send.
   */
  forward(message: Message): void | Promise<void>;
  /** Errors `writable` (sending failed). */
  error(error: Error): void;
}

/** The socket's reading side: told when the pipe takes messages again. */
export interface PipeReads {
  /** The socket may read on. */
  resumeReading(): void;
}

// What the pipe does once it shuts down (after the messages taken are
// sent, when the destination may still take them).
const Action = {
  None: 0,
  CloseDestination: 1,
  AbortDestination: 2,
  CancelSource: 3,
  // The signal's abort: both, as the options allow.
  Abort: 4,
} as const;
type Action = typeof Action[keyof typeof Action];

/**
 * One running pipe from a socket's `readable` into its `writable`. The
 * socket hands it the messages received and tells it when either stream
 * ends; it is its own `abort` listener (no closure per socket).
 *
 * @example
 * ```ts ignore
 * const pipe = SocketPipe.start(sink, reads, readable, writable, options, highWaterMark)!;
 * pipe.message("hi"); // forwarded at once
 * pipe.sourceClosed(); // then closes the writable and settles pipe.promise
 * ```
 */
export class SocketPipe {
  /** Settles as `pipeTo`'s promise. */
  readonly promise: Promise<void>;

  readonly #sink: PipeSink;
  readonly #reads: PipeReads;
  readonly #reader: ReadableStreamDefaultReader<Message>;
  readonly #writer: WritableStreamDefaultWriter<Message>;
  readonly #preventClose: boolean;
  readonly #preventAbort: boolean;
  readonly #preventCancel: boolean;
  readonly #signal: AbortSignal | undefined;
  #resolve!: () => void;
  #reject!: (error: unknown) => void;
  // Messages that wait for the one being sent.
  #waiting: Message[] | undefined;
  #busy = false;
  #shuttingDown = false;
  #sourceEnded = false;
  #action: Action = Action.None;
  #isError = false;
  #error: unknown;

  /**
   * Starts a pipe over streams already locked by `reader` and `writer`.
   *
   * @param sink The sink of the socket's `writable`.
   * @param reads The socket's reading side.
   * @param reader A reader of the socket's `readable`.
   * @param writer A writer of the socket's `writable`.
   * @param options `pipeTo`'s options (a signal not aborted yet).
   */
  constructor(
    sink: PipeSink,
    reads: PipeReads,
    reader: ReadableStreamDefaultReader<Message>,
    writer: WritableStreamDefaultWriter<Message>,
    options: StreamPipeOptions | undefined,
  ) {
    this.#sink = sink;
    this.#reads = reads;
    this.#reader = reader;
    this.#writer = writer;
    this.#preventClose = Boolean(options?.preventClose);
    this.#preventAbort = Boolean(options?.preventAbort);
    this.#preventCancel = Boolean(options?.preventCancel);
    this.#signal = options?.signal;
    this.promise = new Promise((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    this.#signal?.addEventListener("abort", this);
  }

  /**
   * Starts a pipe from `readable` into `writable` when both are unlocked,
   * the options are well formed with no signal aborted, and no write is
   * queued on `writable` (the generic pipe keeps those first); else
   * returns `undefined` (the generic pipe runs, and settles as the WHATWG
   * pipe does in those cases).
   *
   * @param sink The sink of the socket's `writable`.
   * @param reads The socket's reading side.
   * @param readable The socket's `readable`, nothing queued in it.
   * @param writable The socket's `writable`.
   * @param options `pipeTo`'s options.
   * @param highWaterMark The high-water mark of `writable`.
   * @returns The running pipe, or `undefined`.
   */
  static start(
    sink: PipeSink,
    reads: PipeReads,
    readable: ReadableStream<Message>,
    writable: WritableStream<Message>,
    options: StreamPipeOptions | undefined,
    highWaterMark: number,
  ): SocketPipe | undefined {
    if (readable.locked || writable.locked) return undefined;
    if (options !== undefined) {
      if (typeof options !== "object" || options === null) return undefined;
      const signal = options.signal;
      if (
        signal !== undefined &&
        (!(signal instanceof AbortSignal) || signal.aborted)
      ) return undefined;
    }
    const writer = writable.getWriter();
    if (writer.desiredSize !== highWaterMark) {
      writer.releaseLock();
      return undefined;
    }
    return new SocketPipe(sink, reads, readable.getReader(), writer, options);
  }

  /** Whether messages go to the pipe (not yet shutting down). */
  get forwarding(): boolean {
    return !this.#shuttingDown;
  }

  /** Whether the socket should stop reading: a message waits to be sent. */
  get paused(): boolean {
    return this.#busy;
  }

  /**
   * A message received: sent now, or after those waiting.
   *
   * @param message The message.
   */
  message(message: Message): void {
    // Its read buffer may return to the pool once it is written (see
    // buffer_pool.ts).
    if (typeof message !== "string") holdHeld(message);
    if (this.#busy) (this.#waiting ??= []).push(message);
    else this.#send(message);
  }

  /** The source closed (the peer's Close): close the destination. */
  sourceClosed(): void {
    this.#sourceEnded = true;
    if (this.#preventClose) this.#shutdown(Action.None, false, undefined);
    else this.#shutdown(Action.CloseDestination, false, undefined);
  }

  /**
   * The source errored: abort the destination with the same error.
   *
   * @param error The source's error.
   */
  sourceErrored(error: unknown): void {
    this.#sourceEnded = true;
    this.#shutdown(
      this.#preventAbort ? Action.None : Action.AbortDestination,
      true,
      error,
    );
  }

  /**
   * The destination errored: cancel the source with the same error. The
   * messages waiting are dropped (the destination takes no more).
   *
   * @param error The destination's error.
   */
  destinationErrored(error: unknown): void {
    if (this.#shuttingDown) return;
    this.#waiting = undefined;
    this.#busy = false;
    this.#shutdown(
      this.#preventCancel ? Action.None : Action.CancelSource,
      true,
      error,
    );
  }

  /** The signal's abort (the pipe is its own listener). */
  handleEvent(): void {
    this.#shutdown(Action.Abort, true, this.#signal!.reason);
  }

  #send(message: Message): void {
    let sent;
    try {
      sent = this.#sink.forward(message);
    } catch (error) {
      this.#forwardFailed(error);
      return;
    }
    if (sent === undefined) return;
    this.#busy = true;
    sent.then(() => this.#sent(), (error) => {
      this.#busy = false;
      this.#forwardFailed(error);
    });
  }

  // The message being sent is queued: the next ones follow.
  #sent(): void {
    if (!this.#busy) return;
    this.#busy = false;
    const waiting = this.#waiting;
    while (waiting !== undefined && waiting.length > 0 && !this.#busy) {
      this.#send(waiting.shift()!);
    }
    if (this.#busy) return;
    if (this.#shuttingDown) this.#act();
    else this.#reads.resumeReading();
  }

  #forwardFailed(error: unknown): void {
    this.#sink.error(
      error instanceof Error ? error : new TypeError(String(error)),
    );
  }

  // WHATWG "shutdown with an action": once, after the messages taken are
  // sent (unless the destination failed), then the action, then release.
  #shutdown(action: Action, isError: boolean, error: unknown): void {
    if (this.#shuttingDown) return;
    this.#shuttingDown = true;
    this.#action = action;
    this.#isError = isError;
    this.#error = error;
    if (this.#busy) return; // #sent() acts once the last one is queued.
    queueMicrotask(() => this.#act());
  }

  #act(): void {
    const error = this.#error;
    let done: Promise<unknown> | undefined;
    switch (this.#action) {
      case Action.CloseDestination:
        done = this.#writer.close();
        break;
      case Action.AbortDestination:
        done = this.#writer.abort(error);
        break;
      case Action.CancelSource:
        done = this.#reader.cancel(error);
        break;
      case Action.Abort: {
        const actions: Promise<void>[] = [];
        if (!this.#preventAbort) actions.push(this.#writer.abort(error));
        if (!this.#preventCancel && !this.#sourceEnded) {
          actions.push(this.#reader.cancel(error));
        }
        done = Promise.all(actions);
        break;
      }
    }
    if (done === undefined) {
      this.#finalize(this.#isError, error);
      return;
    }
    done.then(
      () => this.#finalize(this.#isError, error),
      (newError) => this.#finalize(true, newError),
    );
  }

  #finalize(isError: boolean, error: unknown): void {
    this.#writer.releaseLock();
    this.#reader.releaseLock();
    this.#signal?.removeEventListener("abort", this);
    this.#sink.pipe = undefined;
    if (isError) this.#reject(error);
    else this.#resolve();
  }
}
