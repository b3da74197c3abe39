/**
 * Strict UTF-8 decoding for text messages and close reasons (RFC 6455 §8.1).
 *
 * @module
 */

import { CloseCode } from "./close_code.ts";
import { WebSocketError } from "./websocket_error.ts";

// `ignoreBOM` keeps a leading U+FEFF: a text message is delivered exactly as
// it was sent, so an echo returns the same bytes.
const strictDecoder = new TextDecoder("utf-8", {
  fatal: true,
  ignoreBOM: true,
});

/**
 * Decodes `bytes` as UTF-8, failing with close code 1007 on any invalid
 * sequence (RFC 6455 §8.1).
 *
 * @param bytes The bytes of a complete text message or close reason.
 * @param what What the bytes are, for the error message.
 * @returns The decoded text.
 */
export function decodeUtf8(bytes: Uint8Array, what = "a text message"): string {
  try {
    return strictDecoder.decode(bytes);
  } catch {
    throw invalidUtf8(what);
  }
}

function invalidUtf8(what: string): WebSocketError {
  return new WebSocketError(
    `expected valid UTF-8 in ${what}, found an invalid byte sequence`,
    { closeCode: CloseCode.InvalidPayloadData },
  );
}

/**
 * Validates UTF-8 that arrives in pieces, failing in the piece where the
 * sequence becomes invalid (RFC 6455 §8.1: a text message is failed as soon
 * as invalid data is seen), while a code point split across pieces is fine.
 */
export class Utf8Validator {
  #decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

  /**
   * Checks the next piece.
   *
   * @param bytes The next bytes of the text.
   * @param final Whether this is the last piece: a truncated sequence at the
   * end is then invalid too.
   */
  push(bytes: Uint8Array, final: boolean): void {
    try {
      this.#decoder.decode(bytes, { stream: !final });
    } catch {
      this.#decoder = new TextDecoder("utf-8", {
        fatal: true,
        ignoreBOM: true,
      });
      throw invalidUtf8("a text message");
    }
  }
}
