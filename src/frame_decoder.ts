/**
 * Bytes to frames (RFC 6455 §5.2): a sans-I/O decoder and its stream.
 *
 * @module
 */

import { CloseCode } from "./close_code.ts";
import { type Frame, isControlOpcode, Opcode } from "./frame.ts";
import { applyMask } from "./mask.ts";
import { WebSocketError } from "./websocket_error.ts";

/**
 * Options for {@linkcode FrameDecoderStream} and {@linkcode FrameDecoder}.
 *
 * @example
 * ```ts
 * import { FrameDecoderStream, type FrameDecoderOptions } from "@wstream/wstream";
 *
 * // A server decoding client frames (which must be masked), 1 MiB at most.
 * const options: FrameDecoderOptions = { role: "server", maxFrameBytes: 1 << 20 };
 * const decoder = new FrameDecoderStream(options);
 * ```
 */
export interface FrameDecoderOptions {
  /**
   * The role of the endpoint that decodes. RFC 6455 §5.1: a server must
   * receive only masked frames and a client only unmasked ones.
   */
  role: "client" | "server";
  /** The largest frame payload accepted, in bytes. Default 64 MiB. */
  maxFrameBytes?: number;
  /**
   * Whether RSV1 may be set on the first frame of a data message: true when
   * permessage-deflate was negotiated (RFC 7692 §6). Default false.
   */
  allowRsv1?: boolean;
}

/** The default {@linkcode FrameDecoderOptions.maxFrameBytes}: 64 MiB. */
export const DEFAULT_MAX_FRAME_BYTES: number = 64 * 1024 * 1024;

const MAX_HEADER_BYTES = 14;
const MIN_PAYLOAD_BUFFER_BYTES = 16 * 1024;

function protocolError(message: string): WebSocketError {
  return new WebSocketError(message, { closeCode: CloseCode.ProtocolError });
}

/**
 * The sans-I/O frame decoder behind {@linkcode FrameDecoderStream}: fed
 * bytes in chunks of any size, it hands out every complete frame.
 *
 * It unmasks payloads in place and hands them out as views of the chunk
 * when a frame lies whole inside one, so it takes ownership of the chunks it
 * is given.
 *
 * @example Decode two frames from one chunk
 * ```ts
 * import { FrameDecoder } from "./frame_decoder.ts";
 * import type { Frame } from "./frame.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const decoder = new FrameDecoder({ role: "client" });
 * const frames: Frame[] = [];
 * decoder.decode(
 *   new Uint8Array([0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f]),
 *   (frame) => frames.push(frame),
 * );
 * assertEquals(frames.map((frame) => frame.fin), [false, true]);
 * ```
 */
export class FrameDecoder {
  readonly #role: "client" | "server";
  readonly #maxFrameBytes: number;
  readonly #allowRsv1: boolean;

  // A header that arrived in pieces (at most 14 bytes). Made on first use,
  // as #partialKey: a socket holds one decoder for its whole life, and each
  // small typed array costs a few hundred bytes, idle or not.
  #header: Uint8Array | undefined;
  #headerBytes = 0;

  // A payload that arrived in pieces: the frame it belongs to, its bytes so
  // far (unmasked as they arrive), and its masking key (a copy of
  // `frameKey`, which serves only until the next header).
  #partial: Frame | undefined;
  #partialLength = 0;
  #partialBuffer = EMPTY;
  #partialReceived = 0;
  #partialKey: Uint8Array | undefined;
  #partialMasked = false;

  /**
   * Creates a decoder.
   *
   * @param options The role of the decoding endpoint and the limits.
   */
  constructor(options: FrameDecoderOptions) {
    this.#role = options.role;
    this.#maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    this.#allowRsv1 = options.allowRsv1 ?? false;
  }

  /**
   * Whether the bytes so far end inside a frame: the decoder holds part of
   * one ({@linkcode FrameDecoder.decode}), or the last
   * {@linkcode FrameDecoder.decodeInPlace} call left one's first bytes
   * unused.
   */
  get hasPartialFrame(): boolean {
    return this.#headerBytes > 0 || this.#partial !== undefined ||
      this.#unusedBytes > 0;
  }
  // The bytes the last decodeInPlace call left unused (an incomplete frame).
  #unusedBytes = 0;

  /**
   * Decodes every complete frame in `chunk`, keeping an incomplete tail for
   * the next call.
   *
   * @param chunk The next bytes received; the decoder takes ownership.
   * @param onFrame Called with each complete frame, in order.
   * @throws {WebSocketError} 1002 for a protocol violation, 1009 for a frame
   * over the size limit (before its payload is buffered).
   */
  decode(chunk: Uint8Array, onFrame: (frame: Frame) => void): void {
    let offset = 0;
    const length = chunk.length;
    if (this.#partial !== undefined) {
      offset = this.#continuePayload(chunk, 0, onFrame);
    } else if (this.#headerBytes > 0) {
      offset = this.#continueHeader(chunk, onFrame);
    }
    while (offset < length) {
      const available = length - offset;
      const headerLength = available >= 2
        ? headerLengthOf(chunk[offset + 1])
        : 0;
      if (headerLength === 0 || available < headerLength) {
        // Too few bytes to know the frame: keep them for the next chunk.
        (this.#header ??= new Uint8Array(MAX_HEADER_BYTES)).set(
          chunk.subarray(offset),
          0,
        );
        this.#headerBytes = available;
        return;
      }
      offset = this.#startFrame(chunk, offset, headerLength, onFrame);
    }
  }

  /**
   * The size in bytes (header and payload) of the incomplete frame that the
   * last {@linkcode FrameDecoder.decodeInPlace} call left, once its header
   * is complete (and valid); 0 when it left no frame or only part of a
   * header.
   */
  get incompleteFrameBytes(): number {
    return this.#incompleteFrameBytes;
  }
  #incompleteFrameBytes = 0;

  /**
   * The size in bytes (header and payload) of the last complete frame
   * {@linkcode FrameDecoder.decodeInPlace} decoded; 0 before the first.
   */
  get lastFrameBytes(): number {
    return this.#lastFrameBytes;
  }
  #lastFrameBytes = 0;

  /**
   * Decodes the complete frames at the start of `bytes`, unmasking their
   * payloads in place and handing them out as views of `bytes`. Unlike
   * {@linkcode FrameDecoder.decode} it keeps nothing: the bytes of an
   * incomplete frame at the end are left to the caller, who passes them
   * again, at the start of `bytes`, once more have arrived. So a socket can
   * read the rest of a frame straight after its first bytes (into a buffer
   * sized for the frame) instead of the decoder copying it piece by piece.
   *
   * The incomplete frame's header is validated as soon as it is complete,
   * so a bad or oversized frame fails before its payload is buffered.
   *
   * The payload bytes of the incomplete frame are unmasked in place as they
   * arrive and handed out as {@linkcode FrameDecoder.partialFrame}.
   *
   * Do not mix with {@linkcode FrameDecoder.decode} on one decoder.
   *
   * @param bytes Bytes received; the decoder unmasks them in place.
   * @param onFrame Called with each complete frame, in order.
   * @returns The number of bytes used: the complete frames.
   * @throws {WebSocketError} 1002 for a protocol violation, 1009 for a frame
   * over the size limit.
   */
  decodeInPlace(bytes: Uint8Array, onFrame: (frame: Frame) => void): number {
    let offset = 0;
    const length = bytes.length;
    this.#incompleteFrameBytes = 0;
    this.#partialFrame = undefined;
    // The payload bytes of the first frame handed out (and unmasked) by the
    // last call, which left that frame incomplete.
    let seen = this.#incompleteSeen;
    this.#incompleteSeen = 0;
    while (length - offset >= 2) {
      const available = length - offset;
      const headerLength = headerLengthOf(bytes[offset + 1]);
      if (available < headerLength) break;
      const frame = this.#readHeader(bytes, offset);
      const frameLength = headerLength + this.#partialLength;
      if (available < frameLength) {
        this.#incompleteFrameBytes = frameLength;
        this.#handOutPartial(frame, bytes, offset + headerLength, seen);
        break;
      }
      const payload = bytes.subarray(
        offset + headerLength,
        offset + frameLength,
      );
      if (this.#partialMasked) {
        applyMask(seen > 0 ? payload.subarray(seen) : payload, frameKey, seen);
      }
      seen = 0;
      frame.payload = payload;
      this.#lastFrameBytes = frameLength;
      onFrame(frame);
      offset += frameLength;
    }
    this.#unusedBytes = length - offset;
    return offset;
  }

  /**
   * The incomplete frame that the last {@linkcode FrameDecoder.decodeInPlace}
   * call left, with as `payload` the bytes of it that arrived since the call
   * before (unmasked in place: pass them back unchanged with the rest of the
   * frame); `undefined` when no payload bytes of an incomplete frame
   * arrived. Lets text be validated as it arrives (RFC 6455 §8.1).
   */
  get partialFrame(): Frame | undefined {
    return this.#partialFrame;
  }
  #partialFrame: Frame | undefined;
  // The payload bytes of the incomplete frame handed out so far.
  #incompleteSeen = 0;

  // Hands out the payload bytes of an incomplete frame that arrived since
  // the last call (the first `seen` of them were handed out before).
  #handOutPartial(
    frame: Frame,
    bytes: Uint8Array,
    payloadStart: number,
    seen: number,
  ): void {
    const arrived = bytes.length - payloadStart;
    this.#incompleteSeen = arrived;
    if (arrived === seen) return;
    const fresh = bytes.subarray(payloadStart + seen);
    if (this.#partialMasked) applyMask(fresh, frameKey, seen);
    frame.payload = fresh;
    this.#partialFrame = frame;
  }

  // Completes a header that began in an earlier chunk; returns the offset in
  // `chunk` just after the bytes it used.
  #continueHeader(chunk: Uint8Array, onFrame: (frame: Frame) => void): number {
    const header = this.#header!;
    let used = 0;
    while (used < chunk.length) {
      const headerLength = this.#headerBytes >= 2
        ? headerLengthOf(header[1])
        : 0;
      if (headerLength !== 0 && this.#headerBytes === headerLength) break;
      header[this.#headerBytes++] = chunk[used++];
    }
    const headerLength = this.#headerBytes >= 2 ? headerLengthOf(header[1]) : 0;
    if (headerLength === 0 || this.#headerBytes < headerLength) {
      return chunk.length;
    }
    this.#headerBytes = 0;
    // Start the frame from the saved header, with its payload in `chunk`.
    const frame = this.#readHeader(header, 0);
    return this.#beginPayload(frame, chunk, used, onFrame);
  }

  #startFrame(
    chunk: Uint8Array,
    offset: number,
    headerLength: number,
    onFrame: (frame: Frame) => void,
  ): number {
    const frame = this.#readHeader(chunk, offset);
    return this.#beginPayload(frame, chunk, offset + headerLength, onFrame);
  }

  // Validates the header at `headerStart` and returns the frame with an empty
  // payload; the payload length is kept in #partialLength and the masking key
  // in `frameKey`.
  #readHeader(bytes: Uint8Array, headerStart: number): Frame {
    const first = bytes[headerStart];
    const second = bytes[headerStart + 1];
    const fin = (first & 0x80) !== 0;
    const rsv1 = (first & 0x40) !== 0;
    const opcode = first & 0x0f;
    const masked = (second & 0x80) !== 0;

    // RFC 6455 §5.2: RSV bits must be 0 unless an extension gives them a
    // meaning; RFC 7692 §6: permessage-deflate uses RSV1 on the first frame
    // of a data message only.
    if ((first & 0x30) !== 0) {
      throw protocolError(
        `expected RSV2 and RSV3 to be 0 (no extension uses them), found ${
          (first & 0x20) ? "RSV2" : "RSV3"
        } set`,
      );
    }
    if (
      rsv1 &&
      (!this.#allowRsv1 || opcode === Opcode.Continuation ||
        isControlOpcode(opcode))
    ) {
      throw protocolError(
        this.#allowRsv1
          ? `expected RSV1 only on the first frame of a data message (RFC 7692 §6), found it on opcode ${opcode}`
          : "expected RSV1 to be 0 (no extension negotiated it), found it set",
      );
    }
    // RFC 6455 §5.2: opcodes 0x3-0x7 and 0xB-0xF are reserved.
    if (
      (opcode > Opcode.Binary && opcode < Opcode.Close) || opcode > Opcode.Pong
    ) {
      throw protocolError(
        `expected a known opcode (0, 1, 2, 8, 9 or 10), found reserved opcode ${opcode}`,
      );
    }
    // RFC 6455 §5.1: clients mask every frame they send, servers none.
    if (this.#role === "server" && !masked) {
      throw protocolError(
        "expected a masked frame from the client (RFC 6455 §5.1), found an unmasked one",
      );
    }
    if (this.#role === "client" && masked) {
      throw protocolError(
        "expected an unmasked frame from the server (RFC 6455 §5.1), found a masked one",
      );
    }

    let payloadLength = second & 0x7f;
    let keyStart = headerStart + 2;
    if (payloadLength === 126) {
      payloadLength = (bytes[headerStart + 2] << 8) | bytes[headerStart + 3];
      keyStart += 2;
    } else if (payloadLength === 127) {
      const high =
        ((bytes[headerStart + 2] << 24) | (bytes[headerStart + 3] << 16) |
          (bytes[headerStart + 4] << 8) | bytes[headerStart + 5]) >>> 0;
      const low =
        ((bytes[headerStart + 6] << 24) | (bytes[headerStart + 7] << 16) |
          (bytes[headerStart + 8] << 8) | bytes[headerStart + 9]) >>> 0;
      // RFC 6455 §5.2: the most significant bit of a 64-bit length must be 0.
      if (high >= 0x80000000) {
        throw protocolError(
          "expected a 64-bit payload length with the top bit 0, found it set",
        );
      }
      payloadLength = high * 0x1_0000_0000 + low;
      keyStart += 8;
    }
    if (isControlOpcode(opcode)) {
      // RFC 6455 §5.5: control frames are never fragmented and carry at most
      // 125 bytes.
      if (!fin) {
        throw protocolError(
          `expected a control frame with FIN set, found a fragmented one (opcode ${opcode})`,
        );
      }
      if (payloadLength > 125) {
        throw protocolError(
          `expected a control frame payload of at most 125 bytes, found ${payloadLength} bytes (opcode ${opcode})`,
        );
      }
    }
    if (payloadLength > this.#maxFrameBytes) {
      throw new WebSocketError(
        `expected a frame of at most ${this.#maxFrameBytes} bytes, found one of ${payloadLength} bytes`,
        { closeCode: CloseCode.MessageTooBig },
      );
    }
    this.#partialMasked = masked;
    if (masked) {
      const key = frameKey;
      key[0] = bytes[keyStart];
      key[1] = bytes[keyStart + 1];
      key[2] = bytes[keyStart + 2];
      key[3] = bytes[keyStart + 3];
    }
    this.#partialLength = payloadLength;
    return { fin, rsv1, opcode: opcode as Opcode, payload: EMPTY };
  }

  // Takes the payload of `frame` from `chunk` at `offset`: whole if it is
  // there, else starts buffering it. Returns the offset after what it used.
  #beginPayload(
    frame: Frame,
    chunk: Uint8Array,
    offset: number,
    onFrame: (frame: Frame) => void,
  ): number {
    const payloadLength = this.#partialLength;
    const available = chunk.length - offset;
    if (available >= payloadLength) {
      const payload = chunk.subarray(offset, offset + payloadLength);
      if (this.#partialMasked) applyMask(payload, frameKey);
      frame.payload = payload;
      onFrame(frame);
      return offset + payloadLength;
    }
    if (this.#partialMasked) {
      (this.#partialKey ??= new Uint8Array(4)).set(frameKey);
    }
    // The payload continues in later chunks. The buffer grows as bytes
    // arrive, so a header that announces a large frame costs nothing until
    // the bytes come.
    this.#partial = frame;
    this.#partialReceived = 0;
    this.#partialBuffer = new Uint8Array(
      Math.min(
        payloadLength,
        Math.max(MIN_PAYLOAD_BUFFER_BYTES, available * 2),
      ),
    );
    return this.#continuePayload(chunk, offset, onFrame);
  }

  #continuePayload(
    chunk: Uint8Array,
    offset: number,
    onFrame: (frame: Frame) => void,
  ): number {
    const frame = this.#partial!;
    const needed = this.#partialLength - this.#partialReceived;
    const taken = Math.min(needed, chunk.length - offset);
    const received = this.#partialReceived;
    if (received + taken > this.#partialBuffer.length) {
      const grown = new Uint8Array(
        Math.min(
          this.#partialLength,
          // Four times: few copies of a large payload, and still at most
          // four times the bytes received allocated.
          Math.max(received + taken, this.#partialBuffer.length * 4),
        ),
      );
      grown.set(this.#partialBuffer.subarray(0, received));
      this.#partialBuffer = grown;
    }
    const target = this.#partialBuffer.subarray(received, received + taken);
    target.set(chunk.subarray(offset, offset + taken));
    if (this.#partialMasked) applyMask(target, this.#partialKey!, received);
    this.#partialReceived = received + taken;
    if (this.#partialReceived === this.#partialLength) {
      frame.payload = this.#partialBuffer;
      this.#partial = undefined;
      this.#partialBuffer = EMPTY;
      onFrame(frame);
    }
    return offset + taken;
  }
}

const EMPTY = new Uint8Array(0);
// The masking key of the header just read, shared by all decoders: it is
// used before the next header is read (of any decoder, as decoding never
// waits in between), and a payload that continues in later chunks takes a
// copy.
const frameKey = new Uint8Array(4);

// The header length given its second byte (RFC 6455 §5.2): the mask bit and
// the 7-bit length code.
function headerLengthOf(second: number): number {
  const lengthCode = second & 0x7f;
  const maskBytes = (second & 0x80) !== 0 ? 4 : 0;
  if (lengthCode < 126) return 2 + maskBytes;
  return (lengthCode === 126 ? 4 : 10) + maskBytes;
}

/**
 * A `TransformStream` from bytes to {@linkcode Frame}s (RFC 6455 §5.2).
 * Chunks may split frames anywhere and hold many frames. Any violation of
 * the framing rules errors the stream with a {@linkcode WebSocketError}
 * whose `closeCode` is 1002 (or 1009 for a frame over `maxFrameBytes`).
 *
 * The stream unmasks payloads in place: it takes ownership of the chunks
 * written to it.
 *
 * @example Decode an unmasked text frame
 * ```ts
 * import { FrameDecoderStream } from "@wstream/wstream";
 * import { assertEquals } from "@std/assert";
 *
 * const frames = await Array.fromAsync(
 *   ReadableStream.from([new Uint8Array([0x81, 0x02, 0x48, 0x69])])
 *     .pipeThrough(new FrameDecoderStream({ role: "client" })),
 * );
 * assertEquals(frames.length, 1);
 * assertEquals(new TextDecoder().decode(frames[0].payload), "Hi");
 * ```
 */
export class FrameDecoderStream extends TransformStream<Uint8Array, Frame> {
  /**
   * Creates the stream.
   *
   * @param options The role of the decoding endpoint and the limits.
   */
  constructor(options: FrameDecoderOptions) {
    const decoder = new FrameDecoder(options);
    super({
      transform(chunk, controller) {
        decoder.decode(chunk, (frame) => controller.enqueue(frame));
      },
      flush() {
        if (decoder.hasPartialFrame) {
          throw new WebSocketError(
            "expected the byte stream to end between frames, found it ended inside a frame",
            { closeCode: CloseCode.AbnormalClosure },
          );
        }
      },
    });
  }
}
