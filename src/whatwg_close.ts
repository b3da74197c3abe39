/**
 * The argument checks shared by the WHATWG `WebSocket.close()` and
 * `WebSocketStream.close()` ("close the WebSocket" in the WHATWG WebSockets
 * standard), turned into what {@linkcode WebSocketConnection.close} takes.
 *
 * @module
 */

import { CloseCode } from "./close_code.ts";
import { MAX_CLOSE_REASON_BYTES } from "./close_payload.ts";
import type { Socket } from "./socket.ts";

const encoder = new TextEncoder();

/** A close request the connection understands. */
export interface CloseRequest {
  /** 1000, 3000-4999, or 1005 for a Close frame without a body. */
  closeCode: number;
  /** The reason, "" when none. */
  reason: string;
}

/**
 * Checks a close code and reason the way the WHATWG standard does and says
 * which Close frame to send: none given -> a Close frame without a body
 * (1005, RFC 6455 §5.5.1), a reason without a code -> 1000.
 *
 * @example
 * ```ts
 * import { closeRequest } from "./whatwg_close.ts";
 * import { assertEquals, assertThrows } from "@std/assert";
 *
 * assertEquals(closeRequest(undefined, undefined), { closeCode: 1005, reason: "" });
 * assertEquals(closeRequest(undefined, "bye"), { closeCode: 1000, reason: "bye" });
 * assertThrows(() => closeRequest(1001, undefined), DOMException);
 * ```
 *
 * @param code The code, already converted to an integer, or `undefined`.
 * @param reason The reason, already converted to a string, or `undefined`.
 * @returns What to pass to the connection's `close()`.
 * @throws {DOMException} `InvalidAccessError` for a code other than 1000 or
 * 3000-4999, `SyntaxError` for a reason over 123 bytes of UTF-8.
 */
export function closeRequest(
  code: number | undefined,
  reason: string | undefined,
): CloseRequest {
  // WHATWG WebSockets, "close the WebSocket", step 1: only 1000 and the
  // application range may be sent by script (RFC 6455 §7.4.2).
  if (code !== undefined && code !== 1000 && !(code >= 3000 && code <= 4999)) {
    throw new DOMException(
      `expected a close code of 1000 or 3000-4999, found ${code}`,
      "InvalidAccessError",
    );
  }
  // Step 2: the reason must fit a control frame (RFC 6455 §5.5).
  const reasonBytes = reason === undefined ? 0 : encoder.encode(reason).length;
  if (reasonBytes > MAX_CLOSE_REASON_BYTES) {
    throw new DOMException(
      `expected a close reason of at most ${MAX_CLOSE_REASON_BYTES} bytes of UTF-8, found ${reasonBytes} bytes`,
      "SyntaxError",
    );
  }
  if (code === undefined) {
    return reasonBytes === 0
      ? { closeCode: CloseCode.NoStatusReceived, reason: "" }
      : { closeCode: CloseCode.NormalClosure, reason: reason! };
  }
  return { closeCode: code, reason: reason ?? "" };
}

/**
 * Converts a value to a `USVString` (WebIDL): `String()` with lone
 * surrogates replaced by U+FFFD.
 *
 * @example
 * ```ts
 * import { toUSVString } from "./whatwg_close.ts";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(toUSVString(42), "42");
 * assertEquals(toUSVString("a\uD800"), "a\uFFFD");
 * ```
 *
 * @param value Any value but a symbol.
 * @returns The string.
 */
export function toUSVString(value: unknown): string {
  if (typeof value === "symbol") {
    throw new TypeError(
      "expected a value convertible to a string, found a symbol",
    );
  }
  return String(value).toWellFormed();
}

/**
 * Converts a close code the way WebIDL converts `[EnforceRange] unsigned
 * short` (`WebSocketStream.close()`): not finite or outside 0-65535 ->
 * `TypeError`, fractions dropped.
 *
 * @example
 * ```ts
 * import { enforceRangeUint16 } from "./whatwg_close.ts";
 * import { assertEquals, assertThrows } from "@std/assert";
 *
 * assertEquals(enforceRangeUint16(3000.9), 3000);
 * assertThrows(() => enforceRangeUint16(70000), TypeError);
 * ```
 *
 * @param value The value given.
 * @returns The integer.
 */
export function enforceRangeUint16(value: unknown): number {
  const number = Number(value);
  if (!Number.isFinite(number)) {
    throw new TypeError(`expected a finite close code, found ${String(value)}`);
  }
  const integer = Math.trunc(number);
  if (integer < 0 || integer > 0xffff) {
    throw new TypeError(
      `expected a close code in the range 0-65535, found ${integer}`,
    );
  }
  return integer;
}

/**
 * Converts a close code the way WebIDL converts `[Clamp] unsigned short`
 * (`WebSocket.close()`): NaN -> 0, clamped to 0-65535, rounded to the
 * nearest integer (ties to even).
 *
 * @example
 * ```ts
 * import { clampUint16 } from "./whatwg_close.ts";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(clampUint16(1000.4), 1000);
 * assertEquals(clampUint16(70000), 65535);
 * assertEquals(clampUint16(NaN), 0);
 * ```
 *
 * @param value The value given.
 * @returns The integer.
 */
export function clampUint16(value: unknown): number {
  const number = Number(value);
  if (Number.isNaN(number)) return 0;
  const clamped = Math.min(Math.max(number, 0), 0xffff);
  const floor = Math.floor(clamped);
  const fraction = clamped - floor;
  if (fraction > 0.5) return floor + 1;
  if (fraction < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

/**
 * Runs `close()` on a connection, ignoring that it may have ended already.
 *
 * @example
 * ```ts ignore
 * import { closeConnection } from "./whatwg_close.ts";
 *
 * closeConnection(socket, { closeCode: 1000, reason: "" });
 * ```
 *
 * @param socket The connection.
 * @param request The checked close request.
 */
export function closeConnection(
  socket: Socket,
  request: CloseRequest,
): void {
  try {
    socket.close(request);
  } catch {
    // Checked before; a connection that has ended ignores close().
  }
}
