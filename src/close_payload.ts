/**
 * The payload of a Close frame: an optional 2-byte code and a UTF-8 reason
 * (RFC 6455 §5.5.1).
 *
 * @module
 */

import { CloseCode, isValidCloseCode } from "./close_code.ts";
import { decodeUtf8 } from "./utf8.ts";
import { WebSocketError } from "./websocket_error.ts";

/**
 * The code and reason carried by a Close frame.
 *
 * @example
 * ```ts
 * import type { CloseInfo } from "@wstream/wstream";
 *
 * const goingAway: CloseInfo = { closeCode: 1001, reason: "server restarting" };
 * ```
 */
export interface CloseInfo {
  /** The close code; 1005 when the frame carried none (RFC 6455 §7.1.5). */
  closeCode: number;
  /** The close reason; "" when there was none. */
  reason: string;
}

/** A close reason must fit a control frame: 125 bytes less the 2-byte code. */
export const MAX_CLOSE_REASON_BYTES = 123;

const encoder = new TextEncoder();
const NO_BYTES = new Uint8Array(0);

/**
 * Parses and validates a Close frame's payload (RFC 6455 §5.5.1, §7.4).
 *
 * @example
 * ```ts
 * import { parseClosePayload } from "./close_payload.ts";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(parseClosePayload(new Uint8Array([0x03, 0xe8, 0x62, 0x79, 0x65])), {
 *   closeCode: 1000,
 *   reason: "bye",
 * });
 * ```
 *
 * @param payload The Close frame's payload.
 * @returns The code (1005 when absent) and reason.
 * @throws {WebSocketError} 1002 for a 1-byte payload or an invalid code, 1007
 * for a reason that is not valid UTF-8.
 */
export function parseClosePayload(payload: Uint8Array): CloseInfo {
  if (payload.length === 0) {
    return { closeCode: CloseCode.NoStatusReceived, reason: "" };
  }
  // RFC 6455 §5.5.1: if there is a body, its first two bytes are the code.
  if (payload.length === 1) {
    throw new WebSocketError(
      "expected a Close payload of 0 or at least 2 bytes, found 1 byte",
      { closeCode: CloseCode.ProtocolError },
    );
  }
  const closeCode = (payload[0] << 8) | payload[1];
  // RFC 6455 §7.4.1, §7.4.2: reserved and unassigned codes must not be sent.
  if (!isValidCloseCode(closeCode)) {
    throw new WebSocketError(
      `expected a close code of 1000-1003, 1007-1014 or 3000-4999, found ${closeCode}`,
      { closeCode: CloseCode.ProtocolError },
    );
  }
  const reason = payload.length === 2
    ? ""
    : decodeUtf8(payload.subarray(2), "a close reason");
  return { closeCode, reason };
}

/**
 * Builds a Close frame's payload.
 *
 * @example
 * ```ts
 * import { encodeClosePayload } from "./close_payload.ts";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(encodeClosePayload(1000, "bye"), new Uint8Array([0x03, 0xe8, 0x62, 0x79, 0x65]));
 * assertEquals(encodeClosePayload(), new Uint8Array());
 * ```
 *
 * @param closeCode The code, or `undefined` for an empty payload.
 * @param reason The reason, at most 123 bytes of UTF-8; needs a code.
 * @returns The payload bytes.
 * @throws {RangeError} for a code that may not be sent, a reason without a
 * code, or a reason over 123 bytes.
 */
export function encodeClosePayload(
  closeCode?: number,
  reason = "",
): Uint8Array {
  if (closeCode === undefined) {
    if (reason !== "") {
      throw new RangeError(
        `expected a close code to go with the reason "${reason}", found none`,
      );
    }
    return new Uint8Array(0);
  }
  if (!isValidCloseCode(closeCode)) {
    throw new RangeError(
      `expected a close code of 1000-1003, 1007-1014 or 3000-4999, found ${closeCode}`,
    );
  }
  // Most Close frames have no reason: no call into the encoder for those.
  const reasonBytes = reason === "" ? NO_BYTES : encoder.encode(reason);
  if (reasonBytes.length > MAX_CLOSE_REASON_BYTES) {
    throw new RangeError(
      `expected a close reason of at most ${MAX_CLOSE_REASON_BYTES} bytes, found ${reasonBytes.length} bytes`,
    );
  }
  const payload = new Uint8Array(2 + reasonBytes.length);
  payload[0] = closeCode >>> 8;
  payload[1] = closeCode & 0xff;
  payload.set(reasonBytes, 2);
  return payload;
}
