/**
 * The receiving half of a socket core: received bytes in, messages and
 * control frames out, decoded where they were read.
 *
 * @module
 */

import type { Frame } from "./frame.ts";
import { DEFAULT_MAX_FRAME_BYTES, FrameDecoder } from "./frame_decoder.ts";
import {
  DEFAULT_MAX_MESSAGE_BYTES,
  type FragmentListener,
  type Message,
  MessageAssembler,
  type MessageInflater,
} from "./message_assembler.ts";

const EMPTY_BYTES = new Uint8Array(0);

/** What a {@linkcode FrameReceiver} is built from. */
export interface FrameReceiverInit {
  /** Whether this end is the client or the server. */
  role: "client" | "server";
  /** The largest message accepted; else 1009. Default 64 MiB. */
  maxMessageBytes?: number;
  /** The largest frame accepted; else 1009. Default 64 MiB. */
  maxFrameBytes?: number;
  /** Inflates compressed messages, when permessage-deflate was negotiated. */
  inflater?: MessageInflater;
  /** Takes each message, with the bytes it was decoded from. */
  onMessage: (message: Message, bytes: Uint8Array) => void;
  /** Takes each control frame (Ping, Pong, Close), in order. */
  onControlFrame: (frame: Frame) => void;
  /**
   * Set for the `messages: "stream"` mode: takes each data frame's checked
   * payload as it arrives (with the chunk it was decoded from) instead of
   * whole messages to `onMessage`.
   */
  onFragment?: (...args: [...Parameters<FragmentListener>, Uint8Array]) => void;
}

/**
 * Decodes the complete frames of each received chunk in place and hands
 * out their messages and control frames in order, stopping at a frame that
 * must be inflated (its promise goes to the caller, who resumes with its
 * result). Text is validated as it arrives, also inside an incomplete frame
 * (RFC 6455 §8.1). Nothing after a Close frame is processed (§5.5.1).
 *
 * @example Two messages, the second one split across chunks
 * ```ts
 * import { FrameReceiver } from "./frame_receiver.ts";
 * import type { Message } from "./message_assembler.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const messages: Message[] = [];
 * const receiver = new FrameReceiver({
 *   role: "client",
 *   onMessage: (message) => void messages.push(message),
 *   onControlFrame() {},
 * });
 * // Text "Hi", then the first byte of text "Yo".
 * const chunk = new Uint8Array([0x81, 0x02, 0x48, 0x69, 0x81, 0x02, 0x59]);
 * assertEquals(receiver.receive(chunk), 4);
 * assertEquals(receiver.receive(new Uint8Array([0x81, 0x02, 0x59, 0x6f])), 4);
 * assertEquals(messages, ["Hi", "Yo"]);
 * ```
 */
export class FrameReceiver {
  readonly #decoder: FrameDecoder;
  readonly #assembler: MessageAssembler;
  readonly #onMessage: (message: Message, bytes: Uint8Array) => void;

  // The chunk being received: its frames, the next to assemble, the bytes
  // the complete frames span and the decoder's error after them, if any.
  readonly #frames: Frame[] = [];
  #nextFrame = 0;
  #bytes: Uint8Array = EMPTY_BYTES;
  #used = 0;
  #decodeError: unknown;

  /**
   * Creates a receiver.
   *
   * @param init The role, the limits, the inflater and who takes what.
   */
  constructor(init: FrameReceiverInit) {
    const maxMessageBytes = init.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    let maxFrameBytes = init.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    // Without compression a frame can't be larger than its message: refuse
    // it from its header instead of buffering it first.
    if (!init.inflater) {
      maxFrameBytes = Math.min(maxFrameBytes, maxMessageBytes);
    }
    this.#decoder = new FrameDecoder({
      role: init.role,
      maxFrameBytes,
      allowRsv1: init.inflater !== undefined,
    });
    const onFragment = init.onFragment;
    this.#assembler = new MessageAssembler(
      {
        maxMessageBytes,
        inflater: init.inflater,
        onControlFrame: init.onControlFrame,
      },
      onFragment
        ? (text, payload, first, fin) =>
          onFragment(text, payload, first, fin, this.#bytes)
        : undefined,
    );
    this.#onMessage = init.onMessage;
  }

  /**
   * The size (header and payload) of the last complete frame received; 0
   * before the first.
   */
  get lastFrameBytes(): number {
    return this.#decoder.lastFrameBytes;
  }

  /**
   * The size of the incomplete frame the last
   * {@linkcode FrameReceiver.receive} left, once its header is complete;
   * else 0.
   */
  get incompleteFrameBytes(): number {
    return this.#decoder.incompleteFrameBytes;
  }

  /** Whether the last chunk ended inside a frame. */
  get hasPartialFrame(): boolean {
    return this.#decoder.hasPartialFrame;
  }

  /**
   * Decodes the complete frames at the start of `bytes` (unmasking them in
   * place) and hands out their messages and control frames in order.
   *
   * @param bytes Received bytes, starting with the incomplete frame the last
   * call left unused; binary messages may be views of them.
   * @returns The count of bytes used (the rest is an incomplete frame, to be
   * passed again with more bytes after it), or the promise of a frame being
   * inflated: await it, then pass its result to
   * {@linkcode FrameReceiver.resume}.
   * @throws {WebSocketError} for a protocol violation (1002, 1007, 1009),
   * after the messages before it were handed out.
   */
  receive(bytes: Uint8Array): number | Promise<Message | undefined> {
    const frames = this.#frames;
    frames.length = 0;
    this.#nextFrame = 0;
    this.#bytes = bytes;
    this.#decodeError = undefined;
    try {
      this.#used = this.#decoder.decodeInPlace(
        bytes,
        (frame) => void frames.push(frame),
      );
    } catch (error) {
      // Frames before the bad one are still delivered, in order.
      this.#used = 0;
      this.#decodeError = error;
    }
    return this.#assemble();
  }

  /**
   * Goes on with the chunk {@linkcode FrameReceiver.receive} stopped in,
   * once the frame it waited for is inflated.
   *
   * @param message What the awaited promise resolved to.
   * @returns As {@linkcode FrameReceiver.receive}.
   * @throws {WebSocketError} as {@linkcode FrameReceiver.receive}.
   */
  resume(message: Message | undefined): number | Promise<Message | undefined> {
    if (message !== undefined) this.#onMessage(message, this.#bytes);
    return this.#assemble();
  }

  /**
   * Drops the rest of the chunk {@linkcode FrameReceiver.receive} stopped
   * in: nothing more of it is processed.
   *
   * @returns The count of bytes dropped: the whole chunk.
   */
  abandon(): number {
    const length = this.#bytes.length;
    this.#bytes = EMPTY_BYTES;
    return length;
  }

  #assemble(): number | Promise<Message | undefined> {
    const frames = this.#frames;
    const bytes = this.#bytes;
    const assembler = this.#assembler;
    while (this.#nextFrame < frames.length) {
      const result = assembler.push(frames[this.#nextFrame++]);
      if (result instanceof Promise) return result;
      if (result !== undefined) this.#onMessage(result, bytes);
    }
    this.#bytes = EMPTY_BYTES;
    // Bytes after a Close in the same chunk are ignored, even invalid ones.
    if (assembler.closed) return bytes.length;
    if (this.#decodeError !== undefined) throw this.#decodeError;
    // RFC 6455 §8.1: text is validated as it arrives, also inside a frame
    // that is not complete yet (after the frames before it).
    const partial = this.#decoder.partialFrame;
    if (partial !== undefined) assembler.pushPartial(partial);
    return this.#used;
  }
}
