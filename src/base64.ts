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
