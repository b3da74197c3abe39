/**
 * Receiving messages as streams (the `messages: "stream"` mode): a socket's
 * `readable` yields a {@linkcode MessageStream} as each message starts, and
 * its `stream` gets the payload frame by frame, with backpressure down to
 * the socket's reads.
 *
 * @module
 */

import { CloseCode } from "./close_code.ts";
import { ConnectionReadable } from "./connection_readable.ts";
import type { MessageStream } from "./message_stream.ts";
import { WebSocketError } from "./websocket_error.ts";
import { sizeOf } from "./readable_queue.ts";

// Text (UTF-16 code units) a message's stream may hold unread before the
// socket stops reading.
const MESSAGE_HIGH_WATER = 256 * 1024;

/** What the receiver asks of its socket. */
export interface MessageStreamOwner {
  /** The read loop may go on (a stream or `readable` was read). */
  resumeReading(): void;
  /** The application cancelled `readable`: start closing. */
  readableCancelled(): void;
  /**
   * `readable.pipeTo(destination)`, run by the socket itself when it can
   * (see socket_pipe.ts); `undefined` for the generic pipe.
   */
  pipeItself?(
    destination: WritableStream<MessageStream>,
    options: StreamPipeOptions | undefined,
  ): Promise<void> | undefined;
}

/** A message being received, or a binary one whose last bytes wait unread. */
type CurrentMessage = TextMessage | BinaryMessage;

interface MessageState {
  // The application gave it up, or it failed: the rest of it is read and
  // dropped.
  dropping: boolean;
  // An error that waits until the payload received before it is read.
  pendingError: Error | undefined;
}

interface TextMessage extends MessageState {
  controller: ReadableStreamDefaultController<string>;
  decoder: TextDecoder;
}

interface BinaryMessage extends MessageState {
  controller: ReadableByteStreamController;
  decoder: undefined;
  // Payload not handed out yet: views of the socket's read buffer (the
  // socket reads nothing more until they are copied out), or copies once
  // the message is dropped.
  unread: Uint8Array[];
  // Whether `unread` views the read buffer.
  viewsReadBuffer: boolean;
  // A read of the stream waits.
  wanted: boolean;
  // The last frame arrived.
  ended: boolean;
}

/**
 * The `readable` of a socket in the `messages: "stream"` mode, fed with the
 * checked payload of each data frame (see `SocketCoreHost.fragment`).
 *
 * Memory: a text message's stream holds up to 256 KiB unread, then the
 * socket stops reading. A binary message's stream is a byte stream: its
 * payload is copied straight from the socket's read buffer into the
 * buffer of a BYOB read (`getReader({ mode: "byob" })`), or into a chunk
 * per read for a default reader, and the socket reads nothing more until
 * what it read is handed out; so the read buffer is reused, and a BYOB
 * reader receives any size in a buffer of its own. (Plus the frame being
 * decoded, whole: at most `maxFrameBytes`.) A message whose object
 * `readable` has not handed out yet stops the reads the same way once its
 * first frame is in.
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
  // The binary message whose unread payload views the read buffer (only
  // the one in progress may).
  #holding: BinaryMessage | undefined;
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
    this.readable = new ConnectionReadable<MessageStream>({
      start: (controller) => void (this.#controller = controller),
      pipeItself: (destination, options) =>
        owner.pipeItself?.(destination, options),
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
   * Whether no message is in progress or waits in `readable` unread (a
   * pipe inside the socket may then take the messages' frames).
   */
  get idle(): boolean {
    return this.#current === undefined && this.#controller.desiredSize === 0;
  }

  /**
   * Whether the socket should stop reading: the message's stream is full,
   * or a message waits in `readable` unread.
   *
   * @returns `true` to pause reads.
   */
  readPaused(): boolean {
    if (this.#done) return false;
    // The read buffer is read into again only once no payload views it.
    if (this.#holding !== undefined) return true;
    const current = this.#current;
    if (
      current !== undefined && !current.dropping && current.decoder &&
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
    if (fin) this.#current = undefined;
    if (current.dropping) return;
    if (current.decoder) {
      const chunk = current.decoder.decode(payload, { stream: !fin });
      if (chunk.length > 0) current.controller.enqueue(chunk);
      if (fin) current.controller.close();
      return;
    }
    if (payload.length > 0) {
      current.unread.push(payload);
      current.viewsReadBuffer = true;
      this.#holding = current;
    }
    current.ended = fin;
    this.#serve(current);
    // A message that ended never holds up the socket's reads (nor the
    // next message): what is left of it unread is read from a copy.
    if (fin) this.#copyUnread(current);
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
    const owner = this.#owner;
    const state = { dropping: this.#done, pendingError: undefined };
    let current: CurrentMessage;
    let stream: ReadableStream<string> | ReadableStream<Uint8Array>;
    if (text) {
      const message: TextMessage = current = {
        ...state,
        controller: undefined as never,
        decoder: new TextDecoder("utf-8", { ignoreBOM: true }),
      };
      stream = new ReadableStream<string>({
        start: (c) => void (message.controller = c),
        pull: (controller) => {
          const error = message.pendingError;
          if (error && controller.desiredSize === MESSAGE_HIGH_WATER) {
            message.pendingError = undefined;
            controller.error(error);
          }
          owner.resumeReading();
        },
        cancel: () => {
          // Not wanted: the rest of it is read and dropped.
          message.dropping = true;
          owner.resumeReading();
        },
      }, { highWaterMark: MESSAGE_HIGH_WATER, size: sizeOf });
    } else {
      const message: BinaryMessage = current = {
        ...state,
        controller: undefined as never,
        decoder: undefined,
        unread: [],
        viewsReadBuffer: false,
        wanted: false,
        ended: false,
      };
      // No chunk is taken ahead of a read (high-water mark 0): a pull
      // means a read waits.
      stream = new ReadableStream({
        type: "bytes",
        start: (c) => void (message.controller = c),
        pull: () => {
          message.wanted = true;
          this.#serve(message);
        },
        cancel: () => {
          // Not wanted: the rest of it is read and dropped.
          message.dropping = true;
          this.#release(message);
          message.unread = [];
          owner.resumeReading();
        },
      }, { highWaterMark: 0 });
    }
    this.#current = current;
    if (this.#done) return;
    this.#controller.enqueue(
      (text
        ? { type: "text", stream }
        : { type: "binary", stream }) as MessageStream,
    );
  }

  // Hands a binary message's unread payload to the read that waits, if
  // any: copied into a BYOB read's buffer, else as a chunk (a copy). Once
  // all is handed out, the socket may read again, and an ended message's
  // stream closes (or errors, after a failure).
  #serve(message: BinaryMessage): void {
    const controller = message.controller;
    const unread = message.unread;
    if (message.wanted && unread.length > 0) {
      message.wanted = false;
      const request = controller.byobRequest;
      if (request?.view) {
        const { buffer, byteOffset, byteLength } = request.view;
        const view = new Uint8Array(buffer, byteOffset, byteLength);
        let filled = 0;
        while (unread.length > 0 && filled < view.length) {
          const head = unread[0];
          const count = Math.min(head.length, view.length - filled);
          view.set(head.subarray(0, count), filled);
          filled += count;
          if (count === head.length) unread.shift();
          else unread[0] = head.subarray(count);
        }
        request.respond(filled);
      } else {
        for (const bytes of unread) controller.enqueue(bytes.slice());
        unread.length = 0;
      }
    }
    if (unread.length > 0) return;
    this.#release(message);
    const error = message.pendingError;
    if (error) {
      // Once the chunks queued before it are read, too.
      if (controller.desiredSize === 0) {
        message.pendingError = undefined;
        controller.error(error);
      }
    } else if (message.ended && !message.dropping) {
      message.dropping = true;
      controller.close();
      controller.byobRequest?.respond(0);
    } else if (!message.ended) this.#owner.resumeReading();
  }

  // The message's payload no longer views the read buffer.
  #release(message: BinaryMessage): void {
    if (!message.viewsReadBuffer) return;
    message.viewsReadBuffer = false;
    if (this.#holding === message) this.#holding = undefined;
    this.#owner.resumeReading();
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
    if (current.decoder) {
      // The payload received before the failure is still read first.
      if (error) {
        if (current.controller.desiredSize === MESSAGE_HIGH_WATER) {
          current.controller.error(error);
        } else current.pendingError = error;
      }
    } else {
      // The unread payload is still read first, from copies: the socket
      // reads on (to drop the rest, or to its end).
      current.pendingError = error;
      this.#copyUnread(current);
      this.#serve(current);
    }
    this.#owner.resumeReading();
  }

  // Copies the payload a message has not handed out yet out of the read
  // buffer (at most one read's worth), so the socket may read again.
  #copyUnread(message: BinaryMessage): void {
    if (!message.viewsReadBuffer) return;
    message.unread = message.unread.map((bytes) => bytes.slice());
    this.#release(message);
  }
}
