/**
 * Base64 for the handshake's short values (`Sec-WebSocket-Key`,
 * `Sec-WebSocket-Accept`, `Proxy-Authorization`). Not `@std/encoding`'s
 * `encodeBase64`: it calls `ArrayBuffer.prototype.transfer`, which Node 20
 * lacks, and wstream runs there too.
 *
 * @module
 */

/**
 * Encodes bytes as standard base64 (RFC 4648 §4, with padding), through
 * the web-standard `btoa`.
 *
 * @example
 * ```ts
 * import { encodeBase64 } from "./base64.ts";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(encodeBase64(new TextEncoder().encode("hello")), "aGVsbG8=");
 * ```
 *
 * @param data The bytes (an `ArrayBuffer` as `crypto.subtle.digest` gives).
 * @returns The base64 text.
 */
export function encodeBase64(data: Uint8Array | ArrayBuffer): string {
  const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

const ALPHABET =
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
// The ASCII code of each base64 digit.
const DIGIT_CODES = Uint8Array.from(ALPHABET, (char) => char.charCodeAt(0));
const PAD = 0x3d; // "="

/**
 * Writes the base64 of `data` (RFC 4648 §4, with padding) as ASCII bytes
 * into `target` at `offset`, with no string in between: the server's 101
 * response gets its `Sec-WebSocket-Accept` value straight from the digest.
 *
 * @example
 * ```ts
 * import { encodeBase64Into } from "./base64.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const target = new Uint8Array(10);
 * const end = encodeBase64Into(new TextEncoder().encode("hello"), target, 1);
 * assertEquals(new TextDecoder().decode(target.subarray(1, end)), "aGVsbG8=");
 * ```
 *
 * @param data The bytes (an `ArrayBuffer` as `crypto.subtle.digest` gives).
 * @param target Where the digits go: room for `4 * ceil(n / 3)` bytes.
 * @param offset Where in `target` they start.
 * @returns The offset just past the last digit.
 */
export function encodeBase64Into(
  data: Uint8Array | ArrayBuffer,
  target: Uint8Array,
  offset: number,
): number {
  const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
  const length = bytes.length;
  let at = offset;
  let i = 0;
  for (; i + 2 < length; i += 3) {
    const triple = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    target[at++] = DIGIT_CODES[triple >> 18];
    target[at++] = DIGIT_CODES[(triple >> 12) & 63];
    target[at++] = DIGIT_CODES[(triple >> 6) & 63];
    target[at++] = DIGIT_CODES[triple & 63];
  }
  const rest = length - i;
  if (rest > 0) {
    const triple = (bytes[i] << 16) | (rest === 2 ? bytes[i + 1] << 8 : 0);
    target[at++] = DIGIT_CODES[triple >> 18];
    target[at++] = DIGIT_CODES[(triple >> 12) & 63];
    target[at++] = rest === 2 ? DIGIT_CODES[(triple >> 6) & 63] : PAD;
    target[at++] = PAD;
  }
  return at;
}
