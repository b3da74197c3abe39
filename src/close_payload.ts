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

/**
 * Validates what an application asks `close()` to send (RFC 6455 §5.5.1,
 * §7.4): the Close to send, or `undefined` for the default (1000, or the
 * peer's code when answering).
 *
 * @example
 * ```ts
 * import { closeRequest } from "./close_payload.ts";
 * import { assertEquals, assertThrows } from "@std/assert";
 *
 * assertEquals(closeRequest({ reason: "bye" }), { closeCode: 1000, reason: "bye" });
 * assertEquals(closeRequest({}), undefined);
 * assertThrows(() => closeRequest({ closeCode: 1006 }), RangeError);
 * ```
 *
 * @param info The close code and reason asked for.
 * @returns The Close to send, or `undefined`.
 * @throws {RangeError} for a code that may not be sent or a reason that is
 * too long.
 */
export function closeRequest(
  info: { closeCode?: number; reason?: string },
): CloseInfo | undefined {
  // RFC 6455 §5.5.1: a Close frame may have no body; 1005 stands for that
  // (§7.4.1), so it asks for an empty Close and never goes on the wire.
  if (info.closeCode === CloseCode.NoStatusReceived) {
    if (info.reason) {
      throw new RangeError(
        `expected no reason with close code 1005 (a Close frame without a body), found "${info.reason}"`,
      );
    }
  } else if (info.closeCode !== undefined || info.reason) {
    // Validates before anything is sent.
    encodeClosePayload(
      info.closeCode ?? CloseCode.NormalClosure,
      info.reason ?? "",
    );
  }
  return info.closeCode !== undefined || info.reason
    ? {
      closeCode: info.closeCode ?? CloseCode.NormalClosure,
      reason: info.reason ?? "",
    }
    : undefined;
}

/**
 * A reason that fits a Close frame: at most 123 bytes, cut at a character
 * boundary and marked with "..." when it was longer (a failure's message
 * becomes the reason of the Close sent).
 *
 * @example
 * ```ts
 * import { truncateCloseReason } from "./close_payload.ts";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(truncateCloseReason("short"), "short");
 * assertEquals(truncateCloseReason("é".repeat(100)).length, 63);
 * ```
 *
 * @param reason Any text.
 * @returns The reason to send.
 */
export function truncateCloseReason(reason: string): string {
  let bytes = encoder.encode(reason);
  if (bytes.length <= MAX_CLOSE_REASON_BYTES) return reason;
  bytes = bytes.subarray(0, MAX_CLOSE_REASON_BYTES - 3);
  return new TextDecoder().decode(bytes).replace(/\uFFFD$/, "") + "...";
}
