/**
 * The sending half of a `WebSocketConnection` (connection.ts): the
 * underlying sink of its `writable`. It turns each message written into frames on the
 * socket's core (compressing it first when permessage-deflate was
 * negotiated, RFC 7692 §7.2.1), splits those over `maxOutgoingFrameBytes`
 * into fragments (RFC 6455 §5.4), holds the hub's prepared messages while
 * one of its own is compressed or sent in fragments, and reports the write
 * queue's backpressure to the application.
 *
 * Not exported from `mod.ts`: the socket makes one per connection.
 *
 * @module
 */

import { keepHeld, letGoHeld } from "./buffer_pool.ts";
import { isValidCloseCode } from "./close_code.ts";
import { Opcode } from "./frame.ts";
import {
  type FragmentTarget,
  isStreamedMessage,
  type OutgoingMessage,
  sendInFragments,
  sendStreamedMessage,
} from "./message_stream_sender.ts";
import type { PreparedQueue, PreparedQueueState } from "./prepared_queue.ts";
import { MessageBatch } from "./batching_writable.ts";
import { settlePublications } from "./shared_flush.ts";
import type { SocketCore } from "./socket_core.ts";
import type { PipeSink, SocketPipe } from "./socket_pipe.ts";
import type { MessageDeflate } from "./socket_options.ts";
import { isBufferSource } from "./websocket_data.ts";
import { WebSocketError } from "./websocket_error.ts";
import type { WriteQueue } from "./write_queue.ts";

const textEncoder = new TextEncoder();

function toBytes(chunk: BufferSource): Uint8Array {
  if (chunk instanceof Uint8Array) return chunk;
  if (ArrayBuffer.isView(chunk)) {
    return new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  }
  return new Uint8Array(chunk);
}

/**
 * The underlying sink of a socket's `writable`, and the state the hub's
 * {@linkcode PreparedQueue} asks about (whether the socket may send, and
 * whether one of its own messages is on its way). One object per socket,
 * with shared methods: closures would cost every socket, idle or not.
 */
export class ConnectionSink
  implements
    UnderlyingSink<OutgoingMessage | MessageBatch<OutgoingMessage>>,
    PreparedQueueState,
    PipeSink {
  // Set by the socket right after it makes the core (the core is made last).
  core!: SocketCore;
  // The hub's queue, made on first use: its messages wait for the socket's
  // own that are being compressed or sent in fragments, to keep their place.
  prepared: PreparedQueue | undefined;
  // True once `writable` is closed, aborted or errored.
  done = false;
  // `readable.pipeTo(writable)` running inside the socket, if it is.
  pipe: SocketPipe | undefined;

  readonly #queue: WriteQueue;
  readonly #deflate: MessageDeflate | undefined;
  readonly #maxOutgoingFrameBytes: number;
  #controller!: WritableStreamDefaultController;
  #deflatesPending = 0;
  #sendingFragments = false;
  // A pipe forwards a received message in fragments (forwardFragment).
  #forwardingFragments = false;
  // Stops the message being sent from a stream, when the socket ends.
  #stopSending: (() => void) | undefined;
  // A message was left unfinished after its first fragments (its source
  // failed, or the message forwarded was cut): RFC 6455 §5.4, no data
  // frame of another message may follow; the socket is failing.
  #abandoned = false;

  constructor(
    queue: WriteQueue,
    deflate: MessageDeflate | undefined,
    maxOutgoingFrameBytes: number,
  ) {
    this.#queue = queue;
    this.#deflate = deflate;
    this.#maxOutgoingFrameBytes = maxOutgoingFrameBytes;
  }

  start(controller: WritableStreamDefaultController): void {
    this.#controller = controller;
  }

  write(
    chunk: OutgoingMessage | MessageBatch<OutgoingMessage>,
  ): void | Promise<void> {
    if (chunk instanceof MessageBatch) return this.#sendBatch(chunk);
    return this.#sendMessage(chunk);
  }

  close(): Promise<void> {
    this.done = true;
    this.core.close();
    return this.#queue.whenDrained();
  }

  abort(reason: unknown): void {
    this.done = true;
    const info =
      reason instanceof WebSocketError && reason.closeCode !== null &&
        isValidCloseCode(reason.closeCode)
        ? { closeCode: reason.closeCode, reason: reason.reason }
        : undefined;
    this.core.close(info);
  }

  /** Errors `writable`, unless it is already done: no more messages. */
  error(error: Error): void {
    if (this.done) return;
    this.done = true;
    this.#controller.error(error);
    // Nothing more of a message being forwarded is sent, nor, after its
    // first fragments, any other data frame (RFC 6455 §5.4): the hub's
    // frames stay held; the socket is closing.
    this.#forwardingFragments = false;
    this.pipe?.destinationErrored(error);
  }

  /**
   * Sends a message the socket received, for a pipe running inside the
   * socket (socket_pipe.ts): as {@linkcode ConnectionSink.write}, but its
   * bytes are the socket's own, so it need not wait until they are written.
   *
   * @returns A promise while the message is being compressed or sent in
   * fragments, or the write queue is over its limit.
   */
  forward(message: string | Uint8Array<ArrayBuffer>): void | Promise<void> {
    return this.#sendMessage(message, true);
  }

  /**
   * Sends a received data frame's payload, for a pipe running inside the
   * socket with `messages: "stream"`: as a fragment of the message being
   * forwarded (RFC 6455 §5.4: the first with the message's opcode, the
   * rest as continuations), split at `maxOutgoingFrameBytes`. The hub's
   * frames wait until its last fragment. The payload is the socket's: a
   * view of it is kept until written (see buffer_pool.ts).
   *
   * @returns A promise while the write queue is over its limit.
   */
  forwardFragment(
    text: boolean,
    payload: Uint8Array,
    first: boolean,
    fin: boolean,
  ): void | Promise<void> {
    const core = this.core;
    core.assertSendable();
    const queue = this.#queue;
    if (first && !fin) {
      queue.holdShared(true);
      this.#forwardingFragments = true;
    }
    const maxFrameBytes = this.#maxOutgoingFrameBytes;
    // Split, its buffer is not tracked until written: it never returns to
    // the pool.
    if (payload.length > maxFrameBytes) keepHeld(payload);
    let opcode = first
      ? (text ? Opcode.Text : Opcode.Binary)
      : Opcode.Continuation;
    let start = 0;
    let viewed = false;
    do {
      const end = Math.min(start + maxFrameBytes, payload.length);
      viewed = core.send(
        opcode,
        start === 0 && end === payload.length
          ? payload
          : payload.subarray(start, end),
        false,
        fin && end === payload.length,
      ) || viewed;
      opcode = Opcode.Continuation;
      start = end;
    } while (start < payload.length);
    // Copied into the queue, its read buffer is free (else the queue lets
    // go of it once written).
    if (!viewed) letGoHeld(payload);
    if (fin && !first) this.#forwardEnded();
    return queue.backpressure();
  }

  /**
   * The message a pipe forwards in fragments will never end: the socket
   * fails with `error` (the peer sees the Close before the message's last
   * frame) and `writable` errors.
   *
   * @param error Why, with its close code (1011).
   */
  abandonMessage(error: WebSocketError): void {
    this.#abandoned = true;
    this.core.fail(error);
    this.error(error);
  }

  // The message forwarded in fragments ended (or never will): the hub's
  // frames that came meanwhile follow.
  #forwardEnded(): void {
    if (!this.#forwardingFragments) return;
    this.#forwardingFragments = false;
    this.#queue.holdShared(false);
    this.prepared?.release();
  }

  /** The socket ended: stops the message being sent from a stream. */
  stopStreamedMessage(): void {
    this.#stopSending?.();
  }

  get sendable(): boolean {
    return !this.#abandoned && this.core.sendable;
  }

  get busy(): boolean {
    return this.#deflatesPending > 0 || this.#sendingFragments ||
      this.#forwardingFragments;
  }

  // Sends a batch's messages in order, settling each as a write of its own
  // would be; the first failure fails the rest (and errors `writable`).
  async #sendBatch(batch: MessageBatch<OutgoingMessage>): Promise<void> {
    try {
      for (const message of batch.messages) {
        const sent = this.#sendMessage(message);
        if (sent !== undefined) await sent;
        batch.resolveNext();
      }
    } catch (error) {
      batch.rejectRest(error);
      throw error;
    }
  }

  #sendMessage(
    chunk: OutgoingMessage,
    owned = false,
  ): void | Promise<void> {
    const core = this.core;
    core.assertSendable();
    let opcode: Opcode;
    let bytes: Uint8Array;
    if (typeof chunk === "string") {
      opcode = Opcode.Text;
      bytes = textEncoder.encode(chunk);
    } else if (isBufferSource(chunk)) {
      opcode = Opcode.Binary;
      bytes = toBytes(chunk);
      // Compressed or split, an echoed message's buffer is not tracked
      // until written: it never returns to the pool.
      if (
        owned &&
        (this.#deflate || bytes.length > this.#maxOutgoingFrameBytes)
      ) keepHeld(bytes);
    } else if (isStreamedMessage(chunk)) {
      return this.#sendInFragments((target) =>
        sendStreamedMessage(
          target,
          chunk,
          this.#deflate,
          this.#maxOutgoingFrameBytes,
        )
      );
    } else {
      throw new TypeError(
        `expected a string, a BufferSource, a ReadableStream, a Blob or a MessageStream to send, found ${
          chunk === null ? "null" : typeof chunk
        }`,
      );
    }
    const deflated = this.#deflate?.deflate(bytes);
    if (deflated instanceof Promise) {
      // Messages a hub holds were published before this one: they are
      // queued now, not held behind it (see PreparedQueue).
      settlePublications();
      this.#deflatesPending++;
      return deflated.then((compressed) => {
        this.#deflatesPending--;
        if (!core.sendable) return;
        const sent = this.#sendPayload(opcode, compressed, true);
        // Hub messages that came meanwhile follow it.
        this.prepared?.release();
        return sent;
      }, (error) => {
        this.#deflatesPending--;
        this.prepared?.release();
        throw error;
      });
    }
    if (deflated !== undefined) {
      return this.#sendPayload(opcode, deflated, true);
    }
    return this.#sendPayload(opcode, bytes, false, owned);
  }

  // `owned`: the payload is the socket's, not the caller's to reuse.
  #sendPayload(
    opcode: Opcode,
    payload: Uint8Array,
    rsv1: boolean,
    owned = false,
  ): void | Promise<void> {
    const maxFrameBytes = this.#maxOutgoingFrameBytes;
    if (payload.length > maxFrameBytes) {
      return this.#sendInFragments((target) =>
        sendInFragments(target, opcode, payload, rsv1, maxFrameBytes)
      );
    }
    const queue = this.#queue;
    const viewed = this.core.send(opcode, payload, rsv1);
    if (owned) {
      // An echoed message: copied into the queue, its read buffer is free
      // (else the queue lets go of it once written).
      if (!viewed) letGoHeld(payload);
    } else if (viewed && !rsv1) {
      // The frame views the caller's bytes: the write completes only once
      // they are written, so the caller may reuse its buffer right after.
      return queue.whenWritten().then(() => queue.backpressure());
    }
    return queue.backpressure();
  }

  // Runs `send`, which queues one message's fragments one after the other
  // (RFC 6455 §5.4: no other data frame between them); the hub's frames
  // wait meanwhile (see WriteQueue.holdShared).
  async #sendInFragments(
    send: (target: FragmentTarget) => Promise<void>,
  ): Promise<void> {
    const core = this.core;
    const queue = this.#queue;
    queue.holdShared(true);
    this.#sendingFragments = true;
    let finished = false;
    try {
      await send({
        get sendable() {
          return core.sendable;
        },
        send: (opcode, payload, rsv1, fin) =>
          core.send(opcode, payload, rsv1, fin),
        fail: (error) => core.fail(error),
        backpressure: () => queue.backpressure(),
        whenWritten: () => queue.whenWritten(),
        stopWhenEnded: (stop) => this.#stopSending = stop,
      });
      finished = true;
    } finally {
      this.#sendingFragments = false;
      // Hub messages that came meanwhile follow the message's last
      // fragment. Unfinished, the message would have them follow a part of
      // it (RFC 6455 §5.4): they stay held, and the hub's are dropped, as
      // the socket is no longer sendable.
      if (finished) queue.holdShared(false);
      else this.#abandoned = true;
      this.prepared?.release();
    }
  }
}
