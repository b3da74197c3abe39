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
 * @example
 * ```ts
 * import { decodeUtf8 } from "./utf8.ts";
 * import { assertEquals, assertThrows } from "@std/assert";
 *
 * assertEquals(decodeUtf8(new Uint8Array([0x48, 0x69])), "Hi");
 * assertThrows(() => decodeUtf8(new Uint8Array([0xff])));
 * ```
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

// Whether `bytes` is valid UTF-8, checked natively by the strict decoder.
// Not node:buffer's isUtf8: importing node:buffer loads Deno's Node
// compatibility layer, ~3.5 MiB of RSS in every process that uses a socket
// (issue 17), for a check that only fragmented or partly arrived text needs.
// Decoding makes a string that is dropped at once: 64 KiB of ASCII in ~35 us.
function isUtf8(bytes: Uint8Array): boolean {
  try {
    strictDecoder.decode(bytes);
    return true;
  } catch {
    return false;
  }
}

function invalidUtf8(what: string): WebSocketError {
  return new WebSocketError(
    `expected valid UTF-8 in ${what}, found an invalid byte sequence`,
    { closeCode: CloseCode.InvalidPayloadData },
  );
}

// The number of bytes of the UTF-8 sequence a lead byte starts (1 for ASCII
// and for bytes that start no valid sequence: the bulk check refuses those).
function sequenceLength(lead: number): number {
  if (lead < 0xc2) return 1;
  if (lead < 0xe0) return 2;
  if (lead < 0xf0) return 3;
  return lead < 0xf5 ? 4 : 1;
}

/**
 * Validates UTF-8 that arrives in pieces, failing in the piece where the
 * sequence becomes invalid (RFC 6455 §8.1: a text message is failed as soon
 * as invalid data is seen), while a code point split across pieces is fine.
 *
 * Each piece costs time in its own length only: the bulk of it is checked
 * at once (natively, by a strict `TextDecoder`), and only a code point cut at either end is followed
 * byte by byte, so the validator fails at the first byte that no
 * continuation could make valid (a cut `F4 90` fails, a cut `F4 8F` waits).
 *
 * @example Fail in the piece that makes the text invalid
 * ```ts
 * import { Utf8Validator } from "./utf8.ts";
 * import { assertThrows } from "@std/assert";
 *
 * const validator = new Utf8Validator();
 * validator.push(new Uint8Array([0x48, 0xf4]), false); // "H", then a cut code point
 * assertThrows(() => validator.push(new Uint8Array([0x90]), false)); // above U+10FFFF
 * ```
 */
export class Utf8Validator {
  // A code point cut at the end of the last piece: how many continuation
  // bytes it still needs, and the range the next one must be in (Unicode
  // Table 3-7: the second byte after E0, ED, F0 and F4 is narrower).
  #needed = 0;
  #lower = 0x80;
  #upper = 0xbf;

  /**
   * Checks the next piece.
   *
   * @param bytes The next bytes of the text.
   * @param final Whether this is the last piece: a truncated sequence at the
   * end is then invalid too.
   * @throws {WebSocketError} 1007 when the text is no longer valid UTF-8.
   */
  push(bytes: Uint8Array, final: boolean): void {
    const length = bytes.length;
    let start = 0;
    // Finish the code point cut at the end of the last piece.
    while (this.#needed > 0 && start < length) this.#step(bytes[start++]);
    if (start < length) {
      // A sequence cut at the end is followed byte by byte; the rest is
      // checked in one native call.
      let end = length;
      for (
        let index = length - 1;
        index >= start && index >= length - 3;
        index--
      ) {
        const byte = bytes[index];
        if ((byte & 0xc0) === 0x80) continue;
        if (index + sequenceLength(byte) > length) end = index;
        break;
      }
      if (end > start && !isUtf8(bytes.subarray(start, end))) this.#fail();
      for (let index = end; index < length; index++) this.#step(bytes[index]);
    }
    if (final && this.#needed > 0) this.#fail();
  }

  // One byte of a cut code point, as the WHATWG UTF-8 decoder takes it.
  #step(byte: number): void {
    if (this.#needed > 0) {
      if (byte < this.#lower || byte > this.#upper) this.#fail();
      this.#lower = 0x80;
      this.#upper = 0xbf;
      this.#needed--;
      return;
    }
    if (byte < 0x80) return;
    if (byte >= 0xc2 && byte <= 0xdf) {
      this.#needed = 1;
    } else if (byte >= 0xe0 && byte <= 0xef) {
      if (byte === 0xe0) this.#lower = 0xa0;
      if (byte === 0xed) this.#upper = 0x9f; // no surrogates
      this.#needed = 2;
    } else if (byte >= 0xf0 && byte <= 0xf4) {
      if (byte === 0xf0) this.#lower = 0x90;
      if (byte === 0xf4) this.#upper = 0x8f; // nothing above U+10FFFF
      this.#needed = 3;
    } else {
      this.#fail();
    }
  }

  /** Forgets a cut code point: the validator starts a new text. */
  reset(): void {
    this.#needed = 0;
    this.#lower = 0x80;
    this.#upper = 0xbf;
  }

  #fail(): never {
    this.reset();
    throw invalidUtf8("a text message");
  }
}
