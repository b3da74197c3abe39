/**
 * The key and accept values of the WebSocket opening handshake (RFC 6455
 * §1.3, §4.1, §4.2.2): the client's nonce, the server's proof that it read
 * it, and the one protocol version both send.
 *
 * @module
 */

import { encodeBase64 } from "./base64.ts";

/** The GUID of RFC 6455 §1.3 appended to the key before hashing. */
export const WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/** The only protocol version wstream speaks (RFC 6455 §4.1, §11.6). */
export const WEBSOCKET_VERSION = "13";

const encoder = new TextEncoder();

/**
 * Makes a `Sec-WebSocket-Key`: 16 random bytes in base64 (RFC 6455 §4.1,
 * client requirement 7).
 *
 * @example
 * ```ts
 * import { generateKey } from "./handshake_key.ts";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(generateKey().length, 24);
 * ```
 *
 * @returns A fresh nonce, 24 characters long.
 */
export function generateKey(): string {
  return encodeBase64(crypto.getRandomValues(new Uint8Array(16)));
}

/**
 * Computes `Sec-WebSocket-Accept` for a key: base64 of the SHA-1 of the key
 * followed by the GUID (RFC 6455 §4.2.2, step 5.4).
 *
 * @example The example of RFC 6455 §1.3
 * ```ts
 * import { computeAccept } from "./handshake_key.ts";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(
 *   await computeAccept("dGhlIHNhbXBsZSBub25jZQ=="),
 *   "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
 * );
 * ```
 *
 * @param key The client's `Sec-WebSocket-Key`.
 * @returns The matching `Sec-WebSocket-Accept` value.
 */
export function computeAccept(key: string): Promise<string> {
  const input = key + WEBSOCKET_GUID;
  // digest() copies its input before it returns (WebCrypto "get a copy of
  // the bytes"), so one scratch buffer serves every handshake instead of an
  // encoded copy each.
  const { read, written } = encoder.encodeInto(input, acceptScratch);
  const bytes = read === input.length
    ? acceptScratch.subarray(0, written)
    : encoder.encode(input);
  // A plain promise chain: no async function frame per handshake.
  return crypto.subtle.digest("SHA-1", bytes).then(encodeBase64);
}

// Room for a key of the usual 24 characters and the GUID, with margin.
const acceptScratch = new Uint8Array(128);
