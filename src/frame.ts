/**
 * The WebSocket frame as the codec streams see it (RFC 6455 §5.2).
 *
 * @module
 */

/**
 * Frame opcodes of RFC 6455 §5.2 (and §11.8). Opcodes 3-7 and 11-15 are
 * reserved; receiving one is a protocol error.
 *
 * @example Test a frame's kind
 * ```ts
 * import { Opcode } from "@wstream/wstream";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(Opcode.Text, 1);
 * assertEquals(Opcode.Close, 8);
 * ```
 */
export const Opcode = {
  /** A continuation of a fragmented message. */
  Continuation: 0x0,
  /** The first (or only) frame of a text message. */
  Text: 0x1,
  /** The first (or only) frame of a binary message. */
  Binary: 0x2,
  /** The closing handshake (RFC 6455 §5.5.1). */
  Close: 0x8,
  /** A ping, answered by a pong with the same payload (§5.5.2). */
  Ping: 0x9,
  /** A pong (§5.5.3). */
  Pong: 0xa,
} as const;

/**
 * One of the opcode values in {@linkcode Opcode}.
 *
 * @example
 * ```ts
 * import { Opcode } from "@wstream/wstream";
 * import { assertEquals } from "@std/assert";
 *
 * const opcode: Opcode = Opcode.Text;
 * assertEquals(opcode, 0x1);
 * ```
 */
export type Opcode = typeof Opcode[keyof typeof Opcode];

/**
 * One WebSocket frame (RFC 6455 §5.2), unmasked: the decoder removes the
 * mask and the encoder adds one when its role requires it.
 *
 * @example A final text frame
 * ```ts
 * import { type Frame, Opcode } from "@wstream/wstream";
 *
 * const frame: Frame = {
 *   fin: true,
 *   rsv1: false,
 *   opcode: Opcode.Text,
 *   payload: new TextEncoder().encode("hello"),
 * };
 * ```
 */
export interface Frame {
  /** Whether this is the last frame of its message (§5.2 FIN). */
  fin: boolean;
  /**
   * RSV1: set on the first frame of a compressed message when
   * permessage-deflate is negotiated (RFC 7692 §6). RSV2 and RSV3 have no
   * negotiated meaning in wstream, so a frame carrying them is never
   * decoded.
   */
  rsv1: boolean;
  /** The frame's opcode (§5.2). */
  opcode: Opcode;
  /** The application data, already unmasked. */
  payload: Uint8Array;
}

/**
 * Whether an opcode is a control opcode (Close, Ping, Pong): RFC 6455 §5.5
 * says control opcodes have the most significant opcode bit set.
 *
 * @example
 * ```ts
 * import { isControlOpcode, Opcode } from "@wstream/wstream";
 * import { assert } from "@std/assert";
 *
 * assert(isControlOpcode(Opcode.Ping));
 * assert(!isControlOpcode(Opcode.Binary));
 * ```
 *
 * @param opcode The opcode to test.
 * @returns `true` for opcodes 0x8-0xF.
 */
export function isControlOpcode(opcode: number): boolean {
  return (opcode & 0x8) !== 0;
}
