/**
 * Receiving messages as streams (the `messages: "stream"` mode): a socket's
 * `readable` yields a {@linkcode MessageStream} as each message starts, and
 * its `stream` gets the payload frame by frame, with backpressure down to
 * the socket's reads.
 *
 * @module
 */

import { CloseCode } from "./close_code.ts";
import type { MessageStream } from "./message_stream.ts";
import { WebSocketError } from "./websocket_error.ts";

// Payload (bytes, or UTF-16 code units of text) a message's stream may hold
// unread before the socket stops reading.
const MESSAGE_HIGH_WATER = 256 * 1024;

function sizeOf(chunk: string | Uint8Array): number {
  return chunk.length;
}

/** What the receiver asks of its socket. */
export interface MessageStreamOwner {
  /** The read loop may go on (a stream or `readable` was read). */
  resumeReading(): void;
  /** The application cancelled `readable`: start closing. */
  readableCancelled(): void;
}

/** The message being received. */
interface CurrentMessage {
  controller: ReadableStreamDefaultController<string | Uint8Array>;
  decoder: TextDecoder | undefined;
  // The application gave it up, or it failed: the rest of it is read and
  // dropped.
  dropping: boolean;
  // An error that waits until the payload received before it is read.
  pendingError: Error | undefined;
}

/**
 * The `readable` of a socket in the `messages: "stream"` mode, fed with the
 * checked payload of each data frame (see `SocketCoreHost.fragment`).
 *
 * Memory: a message's stream holds up to 256 KiB unread, then the socket
 * stops reading (plus the frame being decoded, whole: at most
 * `maxFrameBytes`). A message whose object `readable` has not handed out
 * yet stops the reads the same way once its first frame is in.
 *
 * @example
 * ```ts
 * import { MessageStreamReceiver } from "./message_stream_receiver.ts";
 * import type { MessageStream } from "./message_stream.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const receiver = new MessageStreamReceiver({
 *   resumeReading() {},
 *   readableCancelled() {},
 * });
 * const reader = receiver.readable.getReader();
 * const utf8 = new TextEncoder().encode("é");
 * receiver.fragment(true, utf8.subarray(0, 1), true, false);
 * receiver.fragment(true, utf8.subarray(1), false, true);
 * const message = (await reader.read()).value as MessageStream;
 * if (message.type !== "text") throw new Error("expected a text message");
 * assertEquals(await Array.fromAsync(message.stream), ["é"]);
 * ```
 */
export class MessageStreamReceiver {
  /** The messages, each as it starts. */
  readonly readable: ReadableStream<MessageStream>;

  readonly #owner: MessageStreamOwner;
  #controller!: ReadableStreamDefaultController<MessageStream>;
  #current: CurrentMessage | undefined;
  #done = false;

  /**
   * Creates the `readable` of a socket.
   *
   * @param owner The socket.
   */
  constructor(owner: MessageStreamOwner) {
    this.#owner = owner;
    // No message is taken ahead of the application: a read of `readable`
    // (a pull) means it wants the next message now.
    this.readable = new ReadableStream<MessageStream>({
      start: (controller) => void (this.#controller = controller),
      pull: () => this.#nextWanted(),
      cancel: () => {
        this.#done = true;
        this.#dropCurrent(
          new TypeError(
            "readable was cancelled: the rest of this message was dropped",
          ),
        );
        owner.readableCancelled();
      },
    }, { highWaterMark: 0 });
  }

  /**
   * Whether the socket should stop reading: the message's stream is full,
   * or a message waits in `readable` unread.
   *
   * @returns `true` to pause reads.
   */
  readPaused(): boolean {
    if (this.#done) return false;
    const current = this.#current;
    if (
      current !== undefined && !current.dropping &&
      current.controller.desiredSize! <= 0
    ) return true;
    return this.#controller.desiredSize! < 0;
  }

  /**
   * Takes a data frame's payload (already inflated, size-checked and, for
   * text, validated as UTF-8).
   *
   * @param text Whether the message is text.
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
    if (first) this.#start(text);
    const current = this.#current;
    if (current === undefined) return;
    if (!current.dropping) {
      const chunk = current.decoder
        ? current.decoder.decode(payload, { stream: !fin })
        : payload;
      if (chunk.length > 0) current.controller.enqueue(chunk);
      if (fin) current.controller.close();
    }
    if (fin) this.#current = undefined;
  }

  /**
   * The peer's Close arrived: `readable` closes; a message it interrupted
   * errors.
   */
  close(): void {
    this.#dropCurrent(
      new WebSocketError(
        "expected the rest of the message, found the peer's Close: the message is incomplete",
        { closeCode: CloseCode.AbnormalClosure },
      ),
    );
    if (this.#done) return;
    this.#done = true;
    this.#controller.close();
  }

  /**
   * The socket failed or ended without the peer's Close: `readable` and
   * the message in progress error with `error`.
   *
   * @param error Why.
   */
  error(error: Error): void {
    this.#dropCurrent(error);
    if (this.#done) return;
    this.#done = true;
    this.#controller.error(error);
  }

  #start(text: boolean): void {
    const decoder = text
      ? new TextDecoder("utf-8", { ignoreBOM: true })
      : undefined;
    let controller!: ReadableStreamDefaultController<string | Uint8Array>;
    const current: CurrentMessage = {
      controller: undefined as never,
      decoder,
      dropping: this.#done,
      pendingError: undefined,
    };
    const owner = this.#owner;
    const stream = new ReadableStream<string | Uint8Array>({
      start: (c) => void (controller = c),
      pull: () => {
        const error = current.pendingError;
        if (error && controller.desiredSize === MESSAGE_HIGH_WATER) {
          current.pendingError = undefined;
          controller.error(error);
        }
        owner.resumeReading();
      },
      cancel: () => {
        // Not wanted: the rest of it is read and dropped.
        current.dropping = true;
        owner.resumeReading();
      },
    }, { highWaterMark: MESSAGE_HIGH_WATER, size: sizeOf });
    current.controller = controller;
    this.#current = current;
    if (this.#done) return;
    this.#controller.enqueue(
      (text
        ? { type: "text", stream }
        : { type: "binary", stream }) as MessageStream,
    );
  }

  // The application reads `readable` for the next message: one still in
  // progress is given up (else the next could never arrive while its
  // stream goes unread), and its stream errors so a reader learns so.
  #nextWanted(): void {
    this.#dropCurrent(
      new TypeError(
        "expected this message's stream to be read to its end before the next message was read from readable: the rest of it was dropped",
      ),
    );
    this.#owner.resumeReading();
  }

  #dropCurrent(error: Error | undefined): void {
    const current = this.#current;
    if (current === undefined || current.dropping) return;
    current.dropping = true;
    // The payload received before the failure is still read first.
    if (error) {
      if (current.controller.desiredSize === MESSAGE_HIGH_WATER) {
        current.controller.error(error);
      } else current.pendingError = error;
    }
    this.#owner.resumeReading();
  }
}
