/**
 * Comma-separated header lists (RFC 9110 §5.6.1) as the opening handshake
 * reads them: `Connection: keep-alive, Upgrade`, `Upgrade: websocket`,
 * `Sec-WebSocket-Protocol: chat, superchat`.
 *
 * @module
 */

import { asciiLowerEquals } from "./http_head.ts";

/**
 * Splits a comma-separated header list (RFC 9110 §5.6.1) into its trimmed,
 * non-empty elements.
 *
 * @example
 * ```ts
 * import { splitHeaderList } from "./header_list.ts";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(splitHeaderList("keep-alive, Upgrade,,"), ["keep-alive", "Upgrade"]);
 * ```
 *
 * @param value A header value, or `null` when the header is absent.
 * @returns The list elements.
 */
export function splitHeaderList(value: string | null): string[] {
  if (value === null) return [];
  return value.split(",").map((item) => item.trim()).filter((item) =>
    item !== ""
  );
}

/**
 * Whether a comma list holds `token`, compared ASCII case-insensitively (as
 * RFC 6455 §4.1 and §4.2.1 compare `Upgrade` and `Connection`).
 *
 * @example
 * ```ts
 * import { hasToken } from "./header_list.ts";
 * import { assert } from "@std/assert";
 *
 * assert(hasToken("keep-alive, Upgrade", "upgrade"));
 * assert(!hasToken(null, "upgrade"));
 * ```
 *
 * @param value A header value, or `null` when the header is absent.
 * @param token The token to look for.
 * @returns `true` when one element of the list is the token.
 */
export function hasToken(value: string | null, token: string): boolean {
  const lower = token.toLowerCase();
  if (value === null || lower === "") return false;
  // Scanned in place (no array, no strings): every handshake asks this
  // three times.
  let start = 0;
  while (start <= value.length) {
    let end = value.indexOf(",", start);
    if (end < 0) end = value.length;
    let first = start;
    let last = end;
    while (first < last && isTrimmed(value.charCodeAt(first))) first++;
    while (last > first && isTrimmed(value.charCodeAt(last - 1))) last--;
    if (
      last - first === lower.length && asciiLowerEquals(value, first, lower)
    ) {
      return true;
    }
    start = end + 1;
  }
  return false;
}

// The characters String.prototype.trim() removes that a head decoded one
// char per byte can hold: HTAB, LF, VT, FF, CR, SP, NBSP.
function isTrimmed(code: number): boolean {
  return (code >= 0x09 && code <= 0x0d) || code === 0x20 || code === 0xa0;
}

/**
 * Quotes a header value (or its absence) for an error message.
 *
 * @example
 * ```ts
 * import { describeHeaderValue } from "./header_list.ts";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(describeHeaderValue("h2c"), '"h2c"');
 * assertEquals(describeHeaderValue(null), "no such header");
 * ```
 *
 * @param value A header value, or `null` when the header is absent.
 * @returns The value in quotes, or "no such header".
 */
export function describeHeaderValue(value: string | null): string {
  return value === null ? "no such header" : JSON.stringify(value);
}

/**
 * The extension names of a `Sec-WebSocket-Extensions` value (RFC 6455 §9.1),
 * lower-cased, without their parameters.
 *
 * @example
 * ```ts
 * import { extensionNames } from "./header_list.ts";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(
 *   extensionNames("permessage-deflate; client_max_window_bits, x-foo"),
 *   ["permessage-deflate", "x-foo"],
 * );
 * ```
 *
 * @param value A `Sec-WebSocket-Extensions` value, or `null` when absent.
 * @returns The names, in order.
 */
export function extensionNames(value: string | null): string[] {
  return splitHeaderList(value).map((item) =>
    item.split(";")[0].trim().toLowerCase()
  );
}
