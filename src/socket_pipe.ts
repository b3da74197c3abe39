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
 * With `messages: "stream"`, the pipe takes each data frame's payload as it
 * arrives and sends it on as a fragment of the same message (RFC 6455
 * §5.4), so a message of any size passes through without a
 * {@linkcode MessageStream} or a stream read per frame. A message begun is
 * always finished before the pipe shuts down; one the source ends inside
 * (the peer's Close, a failure) fails the socket with 1011, as the generic
 * pipe's write of that message's stream would.
 *
 * @module
 */

import { holdHeld } from "./buffer_pool.ts";
import type { Message } from "./message_assembler.ts";
import type { MessageStream } from "./message_stream.ts";
import { unfinishedMessageError } from "./message_stream_sender.ts";
import type { WebSocketError } from "./websocket_error.ts";

/** What a pipe takes from `readable` and writes to `writable`. */
type PipedMessage = Message | MessageStream;

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
  /**
   * Sends a received data frame's payload back out as a fragment of the
   * message being forwarded (RFC 6455 §5.4), after those sent before it.
   *
   * @returns A promise while the write queue is over its limit; else
   * nothing.
   * @throws When the socket may no longer send.
   */
  forwardFragment(
    text: boolean,
    payload: Uint8Array,
    first: boolean,
    fin: boolean,
  ): void | Promise<void>;
  /**
   * The message being forwarded will never end (its source ended inside
   * it): fails the socket with `error` and errors `writable`.
   */
  abandonMessage(error: WebSocketError): void;
  /** Errors `writable` (sending failed). */
  error(error: Error): void;
}

/** A received data frame's payload, waiting to be forwarded. */
class Fragment {
  constructor(
    readonly text: boolean,
    readonly payload: Uint8Array,
    readonly first: boolean,
    readonly fin: boolean,
  ) {}
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
  readonly #reader: ReadableStreamDefaultReader<PipedMessage>;
  readonly #writer: WritableStreamDefaultWriter<PipedMessage>;
  readonly #preventClose: boolean;
  readonly #preventAbort: boolean;
  readonly #preventCancel: boolean;
  readonly #signal: AbortSignal | undefined;
  #resolve!: () => void;
  #reject!: (error: unknown) => void;
  // Messages (or fragments) that wait for the one being sent.
  #waiting: (Message | Fragment)[] | undefined;
  #busy = false;
  // A fragment received began a message whose last one has not arrived.
  #inMessage = false;
  #shuttingDown = false;
  #sourceEnded = false;
  #action: Action = Action.None;
  // The action has run (or is running).
  #done = false;
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
    reader: ReadableStreamDefaultReader<PipedMessage>,
    writer: WritableStreamDefaultWriter<PipedMessage>,
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
    readable: ReadableStream<PipedMessage>,
    writable: WritableStream<PipedMessage>,
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

  /**
   * Whether messages go to the pipe: not yet shutting down, or a message
   * begun is still to be finished.
   */
  get forwarding(): boolean {
    return !this.#shuttingDown || this.#inMessage;
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

  /**
   * A data frame's payload received (`messages: "stream"`): sent now as a
   * fragment of the same message, or after those waiting.
   *
   * @param text Whether the message is text (its bytes validated as UTF-8).
   * @param payload The payload; may view the socket's read buffer.
   * @param first Whether it starts a message.
   * @param fin Whether it ends it.
   */
  fragment(
    text: boolean,
    payload: Uint8Array,
    first: boolean,
    fin: boolean,
  ): void {
    holdHeld(payload);
    this.#inMessage = !fin;
    if (this.#busy) {
      (this.#waiting ??= []).push(new Fragment(text, payload, first, fin));
    } else this.#sendFragment(text, payload, first, fin);
  }

  /** The source closed (the peer's Close): close the destination. */
  sourceClosed(): void {
    this.#sourceEnded = true;
    if (this.#cutWhileShuttingDown(undefined)) return;
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
    if (this.#cutWhileShuttingDown(error)) return;
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
    // The rest of a message being forwarded is dropped (the socket fails).
    this.#inMessage = false;
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

  #send(message: Message | Fragment): void {
    if (message instanceof Fragment) {
      const { text, payload, first, fin } = message;
      this.#sendFragment(text, payload, first, fin);
      return;
    }
    let sent;
    try {
      sent = this.#sink.forward(message);
    } catch (error) {
      this.#forwardFailed(error);
      return;
    }
    this.#waitFor(sent);
  }

  #sendFragment(
    text: boolean,
    payload: Uint8Array,
    first: boolean,
    fin: boolean,
  ): void {
    let sent;
    try {
      sent = this.#sink.forwardFragment(text, payload, first, fin);
    } catch (error) {
      this.#forwardFailed(error);
      return;
    }
    this.#waitFor(sent);
    // A shutdown that waited for the message's end acts now (else #sent()
    // does, once what waits is sent).
    if (
      fin && this.#shuttingDown && !this.#busy && !this.#inMessage &&
      !this.#waiting?.length
    ) {
      queueMicrotask(() => this.#act());
    }
  }

  #waitFor(sent: void | Promise<void>): void {
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
    if (this.#shuttingDown && !this.#inMessage) this.#act();
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
    if (this.#inMessage) {
      if (this.#sourceEnded) {
        this.#messageCut(error);
        return;
      }
      // The rest of the message is forwarded first: #sendFragment() acts
      // once its last fragment is queued.
      return;
    }
    if (this.#busy) return; // #sent() acts once the last one is queued.
    queueMicrotask(() => this.#act());
  }

  // A shutdown waits for the message being forwarded, which the source
  // just ended inside: it never ends.
  #cutWhileShuttingDown(cause: unknown): boolean {
    if (!this.#shuttingDown || !this.#inMessage) return false;
    this.#messageCut(cause);
    return true;
  }

  // The source ended inside the message being forwarded: its last fragment
  // never comes. The socket fails with 1011, so the peer never takes the
  // part sent for the whole message, and the pipe rejects with that error
  // (as the generic pipe's write of the message's stream would fail).
  #messageCut(cause: unknown): void {
    this.#inMessage = false;
    this.#waiting = undefined;
    this.#busy = false;
    const failure = unfinishedMessageError(
      cause instanceof Error
        ? cause.message
        : cause === undefined
        ? "the peer's Close arrived inside the message"
        : String(cause),
    );
    this.#sink.abandonMessage(failure);
    this.#action = Action.None;
    this.#isError = true;
    this.#error = failure;
    queueMicrotask(() => this.#act());
  }

  #act(): void {
    if (this.#done) return;
    this.#done = true;
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
