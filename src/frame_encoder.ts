/**
 * Frames to bytes (RFC 6455 §5.2): the encoder and its stream.
 *
 * @module
 */

import type { Frame } from "./frame.ts";
import { copyMasked } from "./mask.ts";

/**
 * Options for {@linkcode FrameEncoderStream}.
 *
 * @example
 * ```ts
 * import { FrameEncoderStream, type FrameEncoderOptions } from "@wstream/wstream";
 *
 * // A client masks every frame it encodes.
 * const options: FrameEncoderOptions = { role: "client" };
 * const encoder = new FrameEncoderStream(options);
 * ```
 */
export interface FrameEncoderOptions {
  /**
   * The role of the encoding endpoint. RFC 6455 §5.3: a client masks every
   * frame with a fresh random key; a server masks none.
   */
  role: "client" | "server";
}

// Payloads up to this size are copied next to their header so the frame
// leaves as one chunk; larger unmasked payloads are sent as they are.
const COPY_THRESHOLD_BYTES = 16 * 1024;

// Masking keys come from the CSPRNG (RFC 6455 §5.3 requires unpredictable
// keys); drawing them from a pool refilled by crypto.getRandomValues avoids a
// call per frame.
const keyPool = new Uint8Array(4096);
let keyPoolOffset = keyPool.length;

function nextMaskingKey(): Uint8Array {
  if (keyPoolOffset === keyPool.length) {
    crypto.getRandomValues(keyPool);
    keyPoolOffset = 0;
  }
  const key = keyPool.subarray(keyPoolOffset, keyPoolOffset + 4);
  keyPoolOffset += 4;
  return key;
}

/**
 * The size in bytes of the header of a frame with a payload of
 * `payloadLength` bytes (RFC 6455 §5.2).
 *
 * @param payloadLength The payload size.
 * @param masked Whether the frame carries a masking key.
 * @returns 2 to 14.
 */
export function frameHeaderLength(
  payloadLength: number,
  masked: boolean,
): number {
  const lengthBytes = payloadLength < 126 ? 0 : payloadLength < 0x10000 ? 2 : 8;
  return 2 + lengthBytes + (masked ? 4 : 0);
}

/**
 * Writes a frame's header into `target` at `offset` (RFC 6455 §5.2),
 * including the masking key when one is given.
 *
 * @returns The offset just after the header.
 */
function writeHeader(
  target: Uint8Array,
  offset: number,
  frame: Frame,
  maskingKey: Uint8Array | undefined,
): number {
  const length = frame.payload.length;
  target[offset] = (frame.fin ? 0x80 : 0) | (frame.rsv1 ? 0x40 : 0) |
    frame.opcode;
  const maskBit = maskingKey ? 0x80 : 0;
  if (length < 126) {
    target[offset + 1] = maskBit | length;
    offset += 2;
  } else if (length < 0x10000) {
    target[offset + 1] = maskBit | 126;
    target[offset + 2] = length >>> 8;
    target[offset + 3] = length & 0xff;
    offset += 4;
  } else {
    target[offset + 1] = maskBit | 127;
    const high = Math.floor(length / 0x1_0000_0000);
    const low = length >>> 0;
    target[offset + 2] = high >>> 24;
    target[offset + 3] = (high >>> 16) & 0xff;
    target[offset + 4] = (high >>> 8) & 0xff;
    target[offset + 5] = high & 0xff;
    target[offset + 6] = low >>> 24;
    target[offset + 7] = (low >>> 16) & 0xff;
    target[offset + 8] = (low >>> 8) & 0xff;
    target[offset + 9] = low & 0xff;
    offset += 10;
  }
  if (maskingKey) {
    target.set(maskingKey, offset);
    offset += 4;
  }
  return offset;
}

/**
 * Encodes one frame into bytes. A masked frame, or one whose payload is
 * small, leaves as a single chunk (header and payload together); a large
 * unmasked payload is not copied: the result is the header followed by the
 * payload itself. The payload passed in is never modified.
 *
 * @example Encode an unmasked text frame (RFC 6455 §5.7)
 * ```ts
 * import { encodeFrame } from "./frame_encoder.ts";
 * import { Opcode } from "./frame.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const chunks = encodeFrame({
 *   fin: true,
 *   rsv1: false,
 *   opcode: Opcode.Text,
 *   payload: new TextEncoder().encode("Hello"),
 * }, false);
 * assertEquals(chunks, [new Uint8Array([0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f])]);
 * ```
 *
 * @param frame The frame to encode.
 * @param mask Whether to mask it with a fresh random key (client role).
 * @returns One chunk, or a header chunk followed by the payload.
 */
export function encodeFrame(frame: Frame, mask: boolean): Uint8Array[] {
  const payload = frame.payload;
  const headerLength = frameHeaderLength(payload.length, mask);
  if (!mask && payload.length > COPY_THRESHOLD_BYTES) {
    const header = new Uint8Array(headerLength);
    writeHeader(header, 0, frame, undefined);
    return [header, payload];
  }
  const bytes = new Uint8Array(headerLength + payload.length);
  encodeFrameInto(bytes, 0, frame, mask);
  return [bytes];
}

/**
 * Writes the header of an unmasked frame at the start of `target`, which
 * must have room for it; the payload is not copied (the caller has it
 * right after the header already).
 *
 * @param target Where the header goes.
 * @param frame The frame whose header is written.
 * @returns The header length.
 */
export function encodeFrameHeader(target: Uint8Array, frame: Frame): number {
  return writeHeader(target, 0, frame, undefined);
}

/**
 * Encodes one frame into `target` at `offset`, which must have room for
 * {@linkcode frameHeaderLength} plus the payload length.
 *
 * @param target Where the frame goes.
 * @param offset Its position in `target`.
 * @param frame The frame to encode; its payload is not modified.
 * @param mask Whether to mask it with a fresh random key (client role).
 * @returns The offset just after the frame.
 */
export function encodeFrameInto(
  target: Uint8Array,
  offset: number,
  frame: Frame,
  mask: boolean,
): number {
  const maskingKey = mask ? nextMaskingKey() : undefined;
  const payloadStart = writeHeader(target, offset, frame, maskingKey);
  if (maskingKey) copyMasked(frame.payload, maskingKey, target, payloadStart);
  else target.set(frame.payload, payloadStart);
  return payloadStart + frame.payload.length;
}

/**
 * A `TransformStream` from {@linkcode Frame}s to bytes (RFC 6455 §5.2). In
 * the client role every frame is masked with a fresh key from
 * `crypto.getRandomValues` (§5.3).
 *
 * @example Encode a frame as a server
 * ```ts
 * import { FrameEncoderStream, Opcode } from "@wstream/wstream";
 * import { assertEquals } from "@std/assert";
 *
 * const chunks = await Array.fromAsync(
 *   ReadableStream.from([{
 *     fin: true,
 *     rsv1: false,
 *     opcode: Opcode.Text,
 *     payload: new TextEncoder().encode("Hi"),
 *   }]).pipeThrough(new FrameEncoderStream({ role: "server" })),
 * );
 * assertEquals(chunks, [new Uint8Array([0x81, 0x02, 0x48, 0x69])]);
 * ```
 */
export class FrameEncoderStream extends TransformStream<Frame, Uint8Array> {
  /**
   * Creates the stream.
   *
   * @param options The role of the encoding endpoint.
   */
  constructor(options: FrameEncoderOptions) {
    const mask = options.role === "client";
    super({
      transform(frame, controller) {
        for (const chunk of encodeFrame(frame, mask)) controller.enqueue(chunk);
      },
    });
  }
}
