/**
 * Close codes (RFC 6455 §7.4) and the rule for which may appear in a Close
 * frame.
 *
 * @module
 */

/**
 * The close codes wstream sends or reports (RFC 6455 §7.4.1).
 *
 * @example
 * ```ts
 * import { CloseCode } from "@wstream/wstream";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(CloseCode.ProtocolError, 1002);
 * ```
 */
export const CloseCode = {
  /** The purpose of the connection was fulfilled. */
  NormalClosure: 1000,
  /** The endpoint is going away (server shutdown, page navigation). */
  GoingAway: 1001,
  /** The peer broke the protocol. */
  ProtocolError: 1002,
  /** A data type the endpoint cannot accept. */
  UnsupportedData: 1003,
  /** Reported, never sent: the Close frame carried no code. */
  NoStatusReceived: 1005,
  /** Reported, never sent: the connection ended without a Close frame. */
  AbnormalClosure: 1006,
  /** A text message (or close reason) was not valid UTF-8. */
  InvalidPayloadData: 1007,
  /** A message that violates the endpoint's policy. */
  PolicyViolation: 1008,
  /** A message or frame larger than the endpoint's limit. */
  MessageTooBig: 1009,
  /** The client expected an extension the server did not negotiate. */
  MandatoryExtension: 1010,
  /** The server met an unexpected condition (a handler threw). */
  InternalError: 1011,
  /** Reported, never sent: the TLS handshake failed. */
  TlsHandshake: 1015,
} as const;

/**
 * Whether `code` may be sent in a Close frame (RFC 6455 §7.4.1, §7.4.2 and
 * the IANA registry of §11.7): 1000-1003, 1007-1014 and 3000-4999. Codes
 * 1004-1006 and 1015 are reserved for reporting; everything below 1000, in
 * 1016-2999 or at 5000 and above is invalid on the wire.
 *
 * @example
 * ```ts
 * import { isValidCloseCode } from "@wstream/wstream";
 * import { assert } from "@std/assert";
 *
 * assert(isValidCloseCode(1000));
 * assert(isValidCloseCode(4000));
 * assert(!isValidCloseCode(1005));
 * ```
 *
 * @param code The code to test.
 * @returns `true` when the code may appear in a Close frame.
 */
export function isValidCloseCode(code: number): boolean {
  if (code >= 3000 && code <= 4999) return true;
  if (code < 1000 || code > 1014) return false;
  return code !== 1004 && code !== 1005 && code !== 1006;
}
