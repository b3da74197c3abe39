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
  // A plain promise chain: no async function frame per handshake.
  return acceptDigest(key).then(encodeBase64);
}

/**
 * The SHA-1 digest (SubtleCrypto) whose base64 is `Sec-WebSocket-Accept`
 * (RFC 6455 §4.2.2, step 5.4): the server writes it into its 101 response
 * as base64 digits directly, with no string in between.
 *
 * @example
 * ```ts
 * import { acceptDigest } from "./handshake_key.ts";
 * import { encodeBase64 } from "./base64.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const digest = await acceptDigest("dGhlIHNhbXBsZSBub25jZQ==");
 * assertEquals(encodeBase64(digest), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
 * ```
 *
 * @param key The client's `Sec-WebSocket-Key`.
 * @returns The 20 bytes of the SHA-1 of the key followed by the GUID.
 */
export function acceptDigest(key: string): Promise<ArrayBuffer> {
  // digest() copies its input before it returns (WebCrypto "get a copy of
  // the bytes"), so one buffer that holds the GUID after room for a key of
  // the usual 24 characters serves every handshake: no string, no copy.
  if (key.length === KEY_CHARS) {
    const { read, written } = encoder.encodeInto(key, scratchKey);
    if (read === KEY_CHARS && written === KEY_CHARS) {
      return crypto.subtle.digest("SHA-1", scratchInput);
    }
  }
  return crypto.subtle.digest("SHA-1", encoder.encode(key + WEBSOCKET_GUID));
}

// RFC 6455 §4.1: a key is 16 bytes in base64, 24 characters.
const KEY_CHARS = 24;
const scratchInput = encoder.encode("x".repeat(KEY_CHARS) + WEBSOCKET_GUID);
const scratchKey = scratchInput.subarray(0, KEY_CHARS);
