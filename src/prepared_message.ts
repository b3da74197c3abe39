/**
 * A message prepared once for many sockets: what {@linkcode Hub.publish}
 * builds so that a published message is framed (and compressed) once,
 * whatever the number of subscribers.
 *
 * @module
 */

import { Opcode } from "./frame.ts";
import { arenaBytes } from "./frame_arena.ts";
import { encodeFrameHeader, frameHeaderLength } from "./frame_encoder.ts";
import { withoutSyncFlushTail } from "./shared_deflate.ts";
import { loadedZlib, loadZlib, type ZlibModule } from "./zlib_module.ts";

/**
 * How a {@linkcode PreparedMessage} is compressed for the sockets that can
 * take a shared compressed frame.
 *
 * @example
 * ```ts
 * import type { PreparedMessageOptions } from "./prepared_message.ts";
 *
 * const options: PreparedMessageOptions = { compressionThreshold: 256, compressionLevel: 1 };
 * ```
 */
export interface PreparedMessageOptions {
  /**
   * Messages shorter than this many bytes are never compressed. Default
   * 1024 (as for a socket's own messages); `Infinity` turns the shared
   * compression off.
   */
  compressionThreshold?: number;
  /** The zlib level of the shared compression, 0-9. Default 6. */
  compressionLevel?: number;
}

const DEFAULT_THRESHOLD = 1024;
const DEFAULT_LEVEL = 6;
const textEncoder = new TextEncoder();

// A compressed payload not yet made (undefined), made (bytes), or found no
// smaller than the message (null: sent uncompressed).
type Compressed = Uint8Array | null | undefined;

/**
 * One text or binary message, encoded once: its payload, its unmasked
 * frame (what every server socket sends, the same bytes for all), and, made
 * on first use and at most once per window size, its payload compressed as
 * RFC 7692 permits for any receiver: a DEFLATE stream of its own, without
 * reference to earlier messages.
 *
 * The bytes are never changed after they are built: a client socket masks
 * a copy (RFC 6455 §5.3), a server socket queues them as they are.
 *
 * @example
 * ```ts
 * import { PreparedMessage } from "./prepared_message.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const message = new PreparedMessage("Hi");
 * assertEquals(message.frame, new Uint8Array([0x81, 0x02, 0x48, 0x69]));
 * assertEquals(message.payload, new Uint8Array([0x48, 0x69]));
 * ```
 */
export class PreparedMessage {
  /** `Opcode.Text` for a string, `Opcode.Binary` for bytes. */
  readonly opcode: typeof Opcode.Text | typeof Opcode.Binary;
  /** The message's bytes (UTF-8 for text): a view into {@linkcode frame}. */
  readonly payload: Uint8Array;
  /** The whole unmasked, uncompressed frame (FIN set). */
  readonly frame: Uint8Array;
  /**
   * The text of a text message (for sockets that send strings, such as
   * `upgrade()`'s), `undefined` for a binary one.
   */
  readonly text: string | undefined;
  readonly #threshold: number;
  readonly #level: number;
  // Indexed by window bits (8-15).
  readonly #compressed: Compressed[] = [];
  readonly #compressedFrames: (Uint8Array | undefined)[] = [];

  /**
   * Encodes `message` (a copy of bytes is taken: the caller may reuse its
   * buffer right after).
   *
   * @param message A string (a text message) or bytes (a binary message).
   * @param options How the shared compressed payload is made.
   * @throws {TypeError} When `message` is neither a string nor a
   * `BufferSource`.
   */
  constructor(
    message: string | BufferSource | ArrayBufferView,
    options: PreparedMessageOptions = {},
  ) {
    let bytes: Uint8Array;
    // Checked at run time too: JavaScript callers pass anything.
    const value: unknown = message;
    this.text = typeof value === "string" ? value : undefined;
    if (typeof value === "string") {
      this.opcode = Opcode.Text;
      bytes = textEncoder.encode(value);
    } else if (ArrayBuffer.isView(value)) {
      this.opcode = Opcode.Binary;
      bytes = new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
    } else if (
      value instanceof ArrayBuffer || value instanceof SharedArrayBuffer
    ) {
      this.opcode = Opcode.Binary;
      bytes = new Uint8Array(value);
    } else {
      throw new TypeError(
        `expected a string or a BufferSource to publish, found ${
          value === null ? "null" : typeof value
        }`,
      );
    }
    this.frame = buildFrame(this.opcode, bytes, false);
    this.payload = this.frame.subarray(this.frame.length - bytes.length);
    this.#threshold = options.compressionThreshold ?? DEFAULT_THRESHOLD;
    this.#level = options.compressionLevel ?? DEFAULT_LEVEL;
  }

  /**
   * Whether the message is long enough to be sent compressed (at least
   * the compression threshold); whether it is depends on whether it
   * shrinks (see {@linkcode PreparedMessage.compressedPayload}).
   */
  get compressible(): boolean {
    return this.payload.length >= this.#threshold;
  }

  /**
   * The payload compressed (RFC 7692 §7.2.1, without the trailing
   * `00 00 ff ff`) by a fresh DEFLATE stream whose matches reach at most
   * `2 ** windowBits` bytes back, or `undefined` when the message is below
   * the threshold or does not shrink. Made once per `windowBits`. Also
   * `undefined` while `node:zlib` is not loaded (a socket that negotiates
   * permessage-deflate loads it): RFC 7692 §6 lets any message go
   * uncompressed.
   *
   * @param windowBits The receiver's window for this sender (8-15).
   * @returns The compressed payload, or `undefined` to send it as it is.
   */
  compressedPayload(windowBits: number): Uint8Array | undefined {
    if (this.payload.length < this.#threshold) return undefined;
    let compressed = this.#compressed[windowBits];
    if (compressed === undefined) {
      const zlib = loadedZlib();
      if (zlib === undefined) {
        loadZlib().catch(() => {});
        return undefined;
      }
      compressed = deflateAlone(zlib, this.payload, windowBits, this.#level);
      if (compressed.length >= this.payload.length) compressed = null;
      this.#compressed[windowBits] = compressed;
    }
    return compressed ?? undefined;
  }

  /**
   * The unmasked frame (RSV1 set) of {@linkcode compressedPayload}, or
   * `undefined` when the message goes uncompressed.
   *
   * @param windowBits The receiver's window for this sender (8-15).
   * @returns The frame's bytes, the same for every call.
   */
  compressedFrame(windowBits: number): Uint8Array | undefined {
    const payload = this.compressedPayload(windowBits);
    if (payload === undefined) return undefined;
    return this.#compressedFrames[windowBits] ??= buildFrame(
      this.opcode,
      payload,
      true,
    );
  }
}

function buildFrame(
  opcode: typeof Opcode.Text | typeof Opcode.Binary,
  payload: Uint8Array,
  rsv1: boolean,
): Uint8Array {
  const headerLength = frameHeaderLength(payload.length, false);
  // Frames built one after another lie next to each other (see
  // frame_arena.ts): a subscriber's queue sends a run of them in one write.
  const frame = arenaBytes(headerLength + payload.length);
  encodeFrameHeader(frame, { fin: true, rsv1, opcode, payload });
  frame.set(payload, headerLength);
  return frame;
}

// RFC 7692 §7.2.1 with a DEFLATE stream of its own (§7.1.1.1: valid
// whatever the receiver's window holds). zlib cannot make raw deflate with
// an 8-bit window: 9 bits with Z_RLE (every match at distance 1) is valid
// for a 256-byte window too (as in permessage_deflate.ts).
function deflateAlone(
  zlib: ZlibModule,
  payload: Uint8Array,
  windowBits: number,
  level: number,
): Uint8Array {
  const output: Uint8Array = zlib.deflateRawSync(payload, {
    windowBits: Math.max(windowBits, 9),
    strategy: windowBits <= 8
      ? zlib.constants.Z_RLE
      : zlib.constants.Z_DEFAULT_STRATEGY,
    level,
    finishFlush: zlib.constants.Z_SYNC_FLUSH,
  });
  // A plain Uint8Array of its own (a Buffer's slice() would be a view).
  return new Uint8Array(withoutSyncFlushTail(output));
}
