/**
 * How a socket takes a {@linkcode PreparedMessage} (the hub's way to send
 * one message to many sockets; not public API): queued after every frame
 * the socket accepted before it, or refused as Full or Closed, with no
 * promise per socket.
 *
 * @module
 */

import type { WebSocketConnection } from "./connection.ts";
import type { PreparedMessage } from "./prepared_message.ts";
import type { PublicationRun } from "./publication_run.ts";
import { MERGE_LIMIT_BYTES, type WriteQueue } from "./write_queue.ts";

// A socket's queue, made on first use: WebSocketConnection provides it (it
// keeps no public member for the hub).
let queueOfSocket: (socket: WebSocketConnection) => PreparedQueue;

/**
 * Called once, by {@linkcode WebSocketConnection}: how a socket's
 * {@linkcode PreparedQueue} is found.
 *
 * @example
 * ```ts ignore
 * providePreparedQueues((socket) => socket.#prepared ??= new PreparedQueue(...));
 * ```
 *
 * @param access Returns the socket's queue, the same for every call.
 */
export function providePreparedQueues(
  access: (socket: WebSocketConnection) => PreparedQueue,
): void {
  queueOfSocket = access;
}

/**
 * The queue through which the topic hub sends prepared messages to
 * `socket` (a socket with wstream's codec: from `serve()`, `connect()` or
 * `handleUpgrade()`). Not exported from `mod.ts`.
 *
 * @example
 * ```ts
 * import { WebSocketConnection } from "./connection.ts";
 * import { PreparedMessage } from "./prepared_message.ts";
 * import { preparedQueueOf, QueueResult } from "./prepared_queue.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
 * const socket = new WebSocketConnection({ transport: { readable, writable }, role: "server" });
 * const queue = preparedQueueOf(socket);
 * assertEquals(queue.queue(new PreparedMessage("hi")), QueueResult.Queued);
 * socket.close();
 * assertEquals(queue.queue(new PreparedMessage("late")), QueueResult.Closed);
 * ```
 *
 * @param socket The socket.
 * @returns Its queue, the same for every call.
 */
export function preparedQueueOf(socket: WebSocketConnection): PreparedQueue {
  return queueOfSocket(socket);
}

/**
 * Queues bytes that are already whole frames, encoded once for many server
 * sockets (unmasked), after the frames the socket accepted before them; they
 * are never copied, masked, pooled or modified, so they must stay unchanged
 * until written. For the topic hub; not exported from `mod.ts`.
 *
 * @example
 * ```ts
 * import { WebSocketConnection } from "./connection.ts";
 * import { enqueueSharedFrames } from "./prepared_queue.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const written: Uint8Array[] = [];
 * const socket = new WebSocketConnection({
 *   role: "server",
 *   transport: {
 *     readable: new ReadableStream(),
 *     writable: new WritableStream({ write: (chunk) => void written.push(chunk) }),
 *   },
 *   closeTimeoutMs: 10,
 * });
 * const hello = new Uint8Array([0x81, 0x02, 0x48, 0x69]); // text "Hi"
 * assertEquals(enqueueSharedFrames(socket, hello), 4);
 * socket.close();
 * await socket.closed;
 * assertEquals(written[0], hello);
 * ```
 *
 * @param socket A server socket.
 * @param frames Whole encoded frames.
 * @returns The bytes now queued for the socket (for a slow-subscriber
 * policy), or `undefined` when it is closing or closed (nothing queued).
 */
export function enqueueSharedFrames(
  socket: WebSocketConnection,
  frames: Uint8Array,
): number | undefined {
  return queueOfSocket(socket).enqueueFrames(frames);
}

/**
 * What a socket did with a prepared message.
 *
 * @example
 * ```ts
 * import { QueueResult } from "./prepared_queue.ts";
 *
 * console.log(QueueResult.Full); // 1: not queued, too many bytes wait already
 * ```
 */
export const QueueResult = {
  /** Queued after every frame accepted before it. */
  Queued: 0,
  /** Not queued: more than the limit waits for the connection already. */
  Full: 1,
  /** Not queued: the socket is closing or closed. */
  Closed: 2,
} as const;

/**
 * One of the values of {@linkcode QueueResult}.
 *
 * @example
 * ```ts
 * import { QueueResult, type QueueResultValue } from "./prepared_queue.ts";
 *
 * const result: QueueResultValue = QueueResult.Queued;
 * ```
 */
export type QueueResultValue = typeof QueueResult[keyof typeof QueueResult];

/**
 * A socket's way in for prepared messages: every socket kind the hub
 * takes has one.
 */
export interface PreparedSender {
  /**
   * Queues `message` after every frame accepted before it, unless the
   * socket is closing or more than `limit` bytes wait already. Nothing to
   * await: the hub never waits for one subscriber.
   *
   * @param message The message; its bytes are never changed.
   * @param limit The bytes that may wait; default the socket's
   * `maxBufferedBytes`.
   * @returns Whether it was queued, and why not.
   */
  queue(message: PreparedMessage, limit?: number): QueueResultValue;
}

/** What a {@linkcode PreparedQueue} reads from its socket. */
export interface PreparedQueueState {
  /** Whether messages may still be sent (no Close sent, not ended). */
  readonly sendable: boolean;
  /**
   * Whether a message of the socket's own is being compressed or sent in
   * fragments (RFC 6455 §5.4: no other message between its fragments).
   */
  readonly busy: boolean;
}

/** How a {@linkcode PreparedQueue} frames messages for its socket. */
export interface PreparedQueueOptions {
  /** Whether frames are masked (the client role, RFC 6455 §5.3). */
  mask: boolean;
  /**
   * The window of a shared compressed message the socket may send, or 0
   * when it may send none (see `sharedDeflateWindowBits`).
   */
  windowBits: number;
  /** The default limit of {@linkcode PreparedQueue.queue}. */
  maxBufferedBytes: number;
}

/**
 * The prepared-message queue of a socket with wstream's codec (from
 * `serve()`, `connect()` or `handleUpgrade()`), over its
 * {@linkcode WriteQueue}. Messages that come while the socket compresses
 * one of its own (asynchronously) wait until that one is queued, so the
 * order is the order of acceptance; the socket calls
 * {@linkcode PreparedQueue.release} then.
 *
 * @example
 * ```ts
 * import { PreparedQueue, QueueResult } from "./prepared_queue.ts";
 * import { PreparedMessage } from "./prepared_message.ts";
 * import { WriteQueue } from "./write_queue.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const writes: Uint8Array[] = [];
 * const queue = new WriteQueue({
 *   readable: new ReadableStream(),
 *   writable: new WritableStream({ write: (chunk) => void writes.push(chunk) }),
 * }, { mask: false, maxBufferedBytes: 1024, listener: { transportEnded() {} } });
 * const state = { sendable: true, busy: false };
 * const prepared = new PreparedQueue(queue, state, {
 *   mask: false,
 *   windowBits: 0,
 *   maxBufferedBytes: 1024,
 * });
 * assertEquals(prepared.queue(new PreparedMessage("Hi")), QueueResult.Queued);
 * await queue.whenDrained();
 * assertEquals(writes, [new Uint8Array([0x81, 0x02, 0x48, 0x69])]);
 * ```
 */
export class PreparedQueue implements PreparedSender {
  readonly #queue: WriteQueue;
  readonly #state: PreparedQueueState;
  readonly #options: PreparedQueueOptions;
  // Messages held while the socket compresses one of its own.
  #held: PreparedMessage[] = [];
  #heldBytes = 0;

  /**
   * Makes the queue of one socket.
   *
   * @param queue The socket's write queue.
   * @param state The socket's state, read at each call.
   * @param options Masking, the shared compression window, the limit.
   */
  constructor(
    queue: WriteQueue,
    state: PreparedQueueState,
    options: PreparedQueueOptions,
  ) {
    this.#queue = queue;
    this.#state = state;
    this.#options = options;
  }

  /**
   * Queues `message`, or holds it while the socket compresses a message of
   * its own or sends one in fragments; see {@linkcode PreparedSender.queue}.
   *
   * @param message The message.
   * @param limit The bytes that may wait.
   * @returns Whether it was queued, and why not.
   */
  queue(message: PreparedMessage, limit?: number): QueueResultValue {
    const state = this.#state;
    if (!state.sendable) return QueueResult.Closed;
    if (
      this.#queue.bufferedAmount + this.#heldBytes >
        (limit ?? this.#options.maxBufferedBytes)
    ) return QueueResult.Full;
    if (state.busy) {
      this.#held.push(message);
      this.#heldBytes += message.frame.length;
    } else {
      this.#send(message);
    }
    return QueueResult.Queued;
  }

  /**
   * Queues the messages of `run` in order, each as
   * {@linkcode PreparedQueue.queue} would, and stops at the first that
   * finds more than `limit` bytes waiting (the rest would too: nothing is
   * written meanwhile). When the socket is a server's that is not busy,
   * sends them all uncompressed and all fit, their frames are queued as
   * the run's spans, one call each.
   *
   * @param run The messages.
   * @param limit The bytes that may wait.
   * @returns How many were queued (the one after them found the queue
   * full), or -1 when the socket is closing or closed.
   */
  queueRun(run: PublicationRun, limit?: number): number {
    const state = this.#state;
    if (!state.sendable) return -1;
    const { mask, windowBits, maxBufferedBytes } = this.#options;
    const messages = run.messages;
    if (
      !state.busy && !mask && (windowBits === 0 || !run.compressible) &&
      this.#queue.bufferedAmount + this.#heldBytes + run.bytes -
            run.lastBytes <= (limit ?? maxBufferedBytes)
    ) {
      const queue = this.#queue;
      for (const span of run.spans()) {
        if (span.length < MERGE_LIMIT_BYTES) queue.appendSharedFrame(span);
        else queue.enqueueShared(span);
      }
      return messages.length;
    }
    for (let i = 0; i < messages.length; i++) {
      if (this.queue(messages[i], limit) !== QueueResult.Queued) return i;
    }
    return messages.length;
  }

  /**
   * The socket's own compressed or fragmented message was queued (or
   * failed): the held messages follow it, unless the socket is still busy
   * with another, or the
   * socket is closing (RFC 6455 §5.5.1: no data frame after a Close).
   */
  release(): void {
    if (this.#held.length === 0 || this.#state.busy) return;
    const held = this.#held;
    this.#held = [];
    this.#heldBytes = 0;
    if (!this.#state.sendable) return;
    for (const message of held) this.#send(message);
  }

  /**
   * Queues whole encoded frames as they are (see
   * {@linkcode enqueueSharedFrames}).
   *
   * @param frames Whole, unmasked frames.
   * @returns The bytes now queued, or `undefined` when the socket is
   * closing or closed (nothing queued).
   */
  enqueueFrames(frames: Uint8Array): number | undefined {
    if (!this.#state.sendable) return undefined;
    this.#queue.enqueueShared(frames);
    return this.#queue.bufferedAmount;
  }

  #send(message: PreparedMessage): void {
    const { mask, windowBits } = this.#options;
    // RFC 7692 §6: a message may be compressed or not, each on its own;
    // shared compressed bytes only where the sender keeps no context.
    const compressed = windowBits === 0
      ? undefined
      : message.compressedPayload(windowBits);
    if (mask) {
      // RFC 6455 §5.3: a client masks a copy with a key of its own.
      this.#queue.sendFrame(
        message.opcode,
        compressed ?? message.payload,
        compressed !== undefined,
      );
      return;
    }
    // A server socket sends the frame built once for all, never copied
    // while it follows the hub's frame before it in memory (see
    // WriteQueue.appendSharedFrame); a large one is queued as it is.
    const frame = compressed === undefined
      ? message.frame
      : message.compressedFrame(windowBits)!;
    if (frame.length < MERGE_LIMIT_BYTES) this.#queue.appendSharedFrame(frame);
    else this.#queue.enqueueShared(frame);
  }
}
