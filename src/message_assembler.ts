/**
 * Frames to messages (RFC 6455 §5.4, §5.6): fragments joined, text
 * validated, control frames handed to the connection as they arrive.
 *
 * @module
 */

import { CloseCode } from "./close_code.ts";
import { parseClosePayload } from "./close_payload.ts";
import { type Frame, Opcode } from "./frame.ts";
import { decodeUtf8, Utf8Validator } from "./utf8.ts";
import { WebSocketError } from "./websocket_error.ts";

/**
 * A WebSocket message: text as `string`, binary as `Uint8Array`.
 *
 * @example
 * ```ts
 * import type { Message } from "@wstream/wstream";
 *
 * function describe(message: Message): string {
 *   return typeof message === "string"
 *     ? `text: ${message}`
 *     : `binary: ${message.length} bytes`;
 * }
 * describe("hello");
 * ```
 */
export type Message = string | Uint8Array<ArrayBuffer>;

/**
 * Inflates the frames of a compressed message (RFC 7692 §7.2.2), one call
 * per frame. Implemented by permessage-deflate.
 *
 * @example
 * ```ts
 * import type { MessageInflater } from "@wstream/wstream";
 *
 * // An inflater for a peer that never compresses (RSV1 is then refused by the
 * // decoder anyway); permessage-deflate provides the real one.
 * const inflater: MessageInflater = {
 *   inflate: (payload) => Promise.resolve(payload),
 * };
 * ```
 */
export interface MessageInflater {
  /**
   * Inflates one frame's payload.
   *
   * @param payload The frame's compressed payload.
   * @param fin Whether it is the message's last frame.
   * @param maxBytes The largest inflated size the whole message may reach.
   * @returns The inflated bytes of this frame.
   * @throws {WebSocketError} 1009 as soon as the message would pass `maxBytes`.
   */
  inflate(
    payload: Uint8Array,
    fin: boolean,
    maxBytes: number,
  ): Promise<Uint8Array>;
}

/**
 * Options for {@linkcode MessageAssemblerStream} and {@linkcode MessageAssembler}.
 *
 * @example
 * ```ts
 * import {
 *   type MessageAssemblerOptions,
 *   MessageAssemblerStream,
 *   Opcode,
 * } from "@wstream/wstream";
 *
 * const options: MessageAssemblerOptions = {
 *   maxMessageBytes: 1024 * 1024,
 *   onControlFrame: (frame) => {
 *     if (frame.opcode === Opcode.Ping) console.log("ping", frame.payload);
 *   },
 * };
 * const assembler = new MessageAssemblerStream(options);
 * ```
 */
export interface MessageAssemblerOptions {
  /**
   * The largest message accepted, in bytes (inflated bytes for a compressed
   * message). Default 64 MiB.
   */
  maxMessageBytes?: number;
  /**
   * Called with each Ping, Pong and Close frame as it arrives, also between
   * the fragments of a message (RFC 6455 §5.4). A Close frame's payload has
   * been validated before the call.
   */
  onControlFrame?: (frame: Frame) => void;
  /** Inflates compressed messages; set when permessage-deflate is negotiated. */
  inflater?: MessageInflater;
}

/** The default {@linkcode MessageAssemblerOptions.maxMessageBytes}: 64 MiB. */
export const DEFAULT_MAX_MESSAGE_BYTES: number = 64 * 1024 * 1024;

/**
 * Takes each data frame's payload as it arrives, instead of whole messages
 * (the `messages: "stream"` mode): inflated, size-checked and, for text,
 * UTF-8 validated first.
 */
export type FragmentListener = (
  text: boolean,
  payload: Uint8Array,
  first: boolean,
  fin: boolean,
) => void;

const MIN_MESSAGE_BUFFER_BYTES = 1024;
const EMPTY = new Uint8Array(0);
// A buffer up to this size is kept for the next fragmented message.
const REUSED_BUFFER_BYTES = 64 * 1024;

function protocolError(message: string): WebSocketError {
  return new WebSocketError(message, { closeCode: CloseCode.ProtocolError });
}

/**
 * The sans-I/O core of {@linkcode MessageAssemblerStream}: fed frames one at
 * a time, it returns each message once its last frame arrives.
 *
 * Fragments are appended to one growing buffer, so each costs O(1) retained
 * memory however small it is, and text is validated as it arrives.
 *
 * @example Join two fragments
 * ```ts
 * import { MessageAssembler } from "./message_assembler.ts";
 * import { Opcode } from "./frame.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const assembler = new MessageAssembler();
 * const bytes = new TextEncoder().encode("Hello");
 * assertEquals(
 *   assembler.push({ fin: false, rsv1: false, opcode: Opcode.Text, payload: bytes.subarray(0, 3) }),
 *   undefined,
 * );
 * assertEquals(
 *   assembler.push({ fin: true, rsv1: false, opcode: Opcode.Continuation, payload: bytes.subarray(3) }),
 *   "Hello",
 * );
 * ```
 */
export class MessageAssembler {
  readonly #maxMessageBytes: number;
  readonly #onControlFrame: ((frame: Frame) => void) | undefined;
  readonly #inflater: MessageInflater | undefined;

  // The message being assembled: its opcode (undefined between messages),
  // whether it is compressed, and its bytes so far.
  #opcode: Opcode | undefined;
  #compressed = false;
  // Empty until a fragmented message needs it: even an empty Uint8Array
  // costs a few hundred bytes, in every socket.
  #buffer = EMPTY;
  #length = 0;
  // Whether the message being assembled is text (its bytes are validated).
  #text = false;
  // Validates the text message being assembled; made on first use.
  #validator: Utf8Validator | undefined;
  // The bytes of the frame not complete yet that were validated already
  // (see pushPartial).
  #validatedBytes = 0;
  #closed = false;
  readonly #onFragment: FragmentListener | undefined;
  #firstFragment = false;

  /**
   * Creates an assembler.
   *
   * @param options Limits, the control frame callback and the inflater.
   * @param onFragment Set to get payloads as they arrive (then `push`
   * returns no messages).
   */
  constructor(
    options: MessageAssemblerOptions = {},
    onFragment?: FragmentListener,
  ) {
    this.#maxMessageBytes = options.maxMessageBytes ??
      DEFAULT_MAX_MESSAGE_BYTES;
    this.#onControlFrame = options.onControlFrame;
    this.#inflater = options.inflater;
    this.#onFragment = onFragment;
  }

  /** Whether a Close frame has been received: later frames are ignored. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Whether a fragmented message is in progress. */
  get inMessage(): boolean {
    return this.#opcode !== undefined;
  }

  /**
   * Takes the payload bytes that arrived so far of a frame that is not
   * complete yet, so that text is validated as it arrives, also inside one
   * frame (RFC 6455 §8.1: fail as soon as invalid data is seen). Each byte
   * is validated once: the frame's {@linkcode MessageAssembler.push} later
   * validates only the bytes after these.
   *
   * @example Fail inside a frame before it is complete
   * ```ts
   * import { MessageAssembler } from "./message_assembler.ts";
   * import { Opcode } from "./frame.ts";
   * import { assertThrows } from "@std/assert";
   *
   * const assembler = new MessageAssembler();
   * const header = { fin: true, rsv1: false, opcode: Opcode.Text };
   * assembler.pushPartial({ ...header, payload: new Uint8Array([0x48, 0x69]) });
   * assertThrows(() =>
   *   assembler.pushPartial({ ...header, payload: new Uint8Array([0xff]) })
   * );
   * ```
   *
   * @param frame The frame's header fields, with the payload bytes that
   * arrived since the last call for this frame as `payload`.
   * @throws {WebSocketError} 1007 when the text is no longer valid UTF-8.
   */
  pushPartial(frame: Frame): void {
    if (this.#closed || frame.rsv1) return;
    if (frame.opcode === Opcode.Text) {
      // A text frame inside a fragmented message is refused once complete.
      if (this.#opcode !== undefined) return;
      if (this.#validatedBytes === 0) this.#textValidator().reset();
    } else if (
      frame.opcode !== Opcode.Continuation || !this.#text || this.#compressed
    ) {
      // Binary, control frames, compressed text (validated once inflated).
      return;
    }
    this.#validator!.push(frame.payload, false);
    this.#validatedBytes += frame.payload.length;
  }

  #textValidator(): Utf8Validator {
    return this.#validator ??= new Utf8Validator();
  }

  /**
   * Takes the next frame.
   *
   * @param frame The next frame received.
   * @returns The message the frame completes, `undefined` when it completes
   * none, or a promise of either when the frame must be inflated first.
   * @throws {WebSocketError} 1002 for a bad sequence of frames, 1007 for
   * invalid UTF-8, 1009 for a message over the limit.
   */
  push(frame: Frame): Message | undefined | Promise<Message | undefined> {
    // RFC 6455 §1.4, §5.5.1: nothing is processed after a Close frame.
    if (this.#closed) return undefined;
    const opcode = frame.opcode;
    // The first bytes of a data frame may have been validated already.
    const validated = this.#validatedBytes;
    this.#validatedBytes = 0;
    if (opcode >= Opcode.Close) {
      if (opcode === Opcode.Close) {
        parseClosePayload(frame.payload);
        this.#closed = true;
      }
      this.#onControlFrame?.(frame);
      return undefined;
    }
    if (opcode === Opcode.Continuation) {
      // RFC 6455 §5.4: a continuation needs a message to continue.
      if (this.#opcode === undefined) {
        throw protocolError(
          "expected a text or binary frame to start a message, found a continuation frame",
        );
      }
    } else {
      // RFC 6455 §5.4: a fragmented message's frames must not be interleaved
      // with another message's.
      if (this.#opcode !== undefined) {
        throw protocolError(
          `expected a continuation frame of the fragmented message, found a new ${
            opcode === Opcode.Text ? "text" : "binary"
          } frame`,
        );
      }
      this.#compressed = frame.rsv1;
      this.#firstFragment = true;
      if (frame.fin && !frame.rsv1 && !this.#onFragment) {
        return this.#singleFrameMessage(opcode, frame.payload);
      }
      this.#opcode = opcode;
      this.#length = 0;
      this.#text = opcode === Opcode.Text;
      if (this.#text && validated === 0) this.#textValidator().reset();
    }
    if (this.#compressed) {
      if (this.#inflater === undefined) {
        throw protocolError(
          "expected an uncompressed message (no extension negotiated), found RSV1 set",
        );
      }
      return this.#inflater.inflate(
        frame.payload,
        frame.fin,
        this.#maxMessageBytes,
      ).then(
        (inflated) => this.#appendFragment(inflated, frame.fin, 0),
      );
    }
    return this.#appendFragment(frame.payload, frame.fin, validated);
  }

  // The common case: a whole message in one uncompressed frame. Decoding
  // checks all of it (1007 as the validator would), so the bytes after those
  // validated as they arrived need no separate pass.
  #singleFrameMessage(opcode: Opcode, payload: Uint8Array): Message {
    this.#checkSize(payload.length);
    return opcode === Opcode.Text
      ? decodeUtf8(payload)
      : payload as Uint8Array<ArrayBuffer>;
  }

  // Stream mode: the checked payload goes out as it is.
  #handOut(bytes: Uint8Array, length: number, fin: boolean): undefined {
    const first = this.#firstFragment;
    this.#firstFragment = false;
    const text = this.#opcode === Opcode.Text;
    this.#length = length;
    if (fin) {
      this.#opcode = undefined;
      this.#text = false;
    }
    this.#onFragment!(text, bytes, first, fin);
  }

  #checkSize(size: number): void {
    if (size > this.#maxMessageBytes) {
      this.#opcode = undefined;
      throw new WebSocketError(
        `expected a message of at most ${this.#maxMessageBytes} bytes, found one of at least ${size} bytes`,
        { closeCode: CloseCode.MessageTooBig },
      );
    }
  }

  // Appends a fragment (inflated, if compressed) of which the first
  // `validated` bytes were validated as they arrived.
  #appendFragment(
    bytes: Uint8Array,
    fin: boolean,
    validated: number,
  ): Message | undefined {
    const length = this.#length + bytes.length;
    this.#checkSize(length);
    // RFC 6455 §8.1: invalid UTF-8 fails the connection as soon as it is
    // seen, in the fragment where the sequence becomes invalid.
    if (this.#text) {
      this.#validator!.push(
        validated > 0 ? bytes.subarray(validated) : bytes,
        fin,
      );
    }
    if (this.#onFragment) return this.#handOut(bytes, length, fin);
    if (fin && this.#length === 0) {
      // One fragment holds the whole message: no copy needed.
      const opcode = this.#opcode ?? Opcode.Binary;
      this.#opcode = undefined;
      this.#text = false;
      return opcode === Opcode.Text
        ? decodeUtf8(bytes)
        : bytes as Uint8Array<ArrayBuffer>;
    }
    if (length > this.#buffer.length) {
      const grown = new Uint8Array(
        Math.min(
          this.#maxMessageBytes,
          Math.max(length, this.#buffer.length * 2, MIN_MESSAGE_BUFFER_BYTES),
        ),
      );
      grown.set(this.#buffer.subarray(0, this.#length));
      this.#buffer = grown;
    }
    this.#buffer.set(bytes, this.#length);
    this.#length = length;
    if (!fin) return undefined;

    const opcode = this.#opcode;
    this.#opcode = undefined;
    this.#text = false;
    const data = this.#buffer.subarray(0, length);
    if (opcode === Opcode.Text) {
      const text = decodeUtf8(data);
      if (this.#buffer.length > REUSED_BUFFER_BYTES) {
        this.#buffer = EMPTY;
      }
      return text;
    }
    // The binary message takes the buffer; the next message gets a new one.
    this.#buffer = EMPTY;
    return data;
  }
}

/**
 * A `TransformStream` from {@linkcode Frame}s to messages (RFC 6455 §5.4):
 * fragments are joined, text becomes a `string` and binary a `Uint8Array`.
 * Ping, Pong and Close frames go to `onControlFrame` as they arrive; after a
 * Close frame the readable side closes. A violation errors the stream with a
 * {@linkcode WebSocketError} whose `closeCode` says why (1002, 1007, 1009).
 *
 * @example Assemble a fragmented text message
 * ```ts
 * import { MessageAssemblerStream, Opcode } from "@wstream/wstream";
 * import { assertEquals } from "@std/assert";
 *
 * const encoder = new TextEncoder();
 * const messages = await Array.fromAsync(
 *   ReadableStream.from([
 *     { fin: false, rsv1: false, opcode: Opcode.Text, payload: encoder.encode("Hel") },
 *     { fin: true, rsv1: false, opcode: Opcode.Continuation, payload: encoder.encode("lo") },
 *   ]).pipeThrough(new MessageAssemblerStream()),
 * );
 * assertEquals(messages, ["Hello"]);
 * ```
 */
export class MessageAssemblerStream extends TransformStream<Frame, Message> {
  /**
   * Creates the stream.
   *
   * @param options Limits, the control frame callback and the inflater.
   */
  constructor(options: MessageAssemblerOptions = {}) {
    const assembler = new MessageAssembler(options);
    super({
      async transform(frame, controller) {
        let message = assembler.push(frame);
        if (message instanceof Promise) message = await message;
        if (message !== undefined) controller.enqueue(message);
        if (assembler.closed) controller.terminate();
      },
      flush() {
        if (assembler.inMessage) {
          throw new WebSocketError(
            "expected the frame stream to end between messages, found it ended inside a fragmented message",
            { closeCode: CloseCode.AbnormalClosure },
          );
        }
      },
    });
  }
}
