/**
 * Following HTTP redirects during the opening handshake: where a 301, 302,
 * 303, 307 or 308 answer leads, which hops are refused, and which request
 * headers may go on to another origin.
 *
 * @module
 */

import { WebSocketHandshakeError } from "./handshake_error.ts";
import { isWebSocketScheme, useWebSocketScheme } from "./websocket_scheme.ts";

/** The statuses `connect()` follows when `maxRedirects` allows. */
export const REDIRECT_STATUSES: ReadonlySet<number> = new Set([
  301,
  302,
  303,
  307,
  308,
]);

/**
 * Where a redirect answer sends the client: its `Location` resolved
 * against the URL that answered, `http:` and `https:` mapped to `ws:` and
 * `wss:`, any fragment dropped. Throws a {@linkcode WebSocketHandshakeError}
 * for a missing or malformed `Location`, another scheme, or a `wss:` URL
 * sending the client to `ws:` (a downgrade to plain text is never
 * followed).
 *
 * @example
 * ```ts
 * import { redirectTarget } from "./redirect.ts";
 * import { assertEquals, assertThrows } from "@std/assert";
 *
 * const from = new URL("wss://a.example/old");
 * assertEquals(redirectTarget(from, 308, "/new?x=1").href, "wss://a.example/new?x=1");
 * assertEquals(redirectTarget(from, 301, "https://b.example/").href, "wss://b.example/");
 * assertThrows(() => redirectTarget(from, 302, "ws://a.example/"));
 * ```
 *
 * @param from The URL that answered with the redirect.
 * @param status Its status.
 * @param location Its `Location` header, or `null`.
 * @returns The URL to connect to next.
 */
export function redirectTarget(
  from: URL,
  status: number,
  location: string | null,
): URL {
  const fail = (message: string): never => {
    throw new WebSocketHandshakeError(
      `opening handshake failed: ${from.href} answered ${status} ${message}`,
      { status },
    );
  };
  if (location === null || location.trim() === "") {
    return fail("without a Location header: expected one naming where to go");
  }
  let next: URL;
  try {
    next = new URL(location.trim(), from);
  } catch {
    return fail(
      `with Location ${
        JSON.stringify(location)
      }: expected a URL, found something that does not parse as one`,
    );
  }
  if (!isWebSocketScheme(useWebSocketScheme(next))) {
    return fail(
      `with Location ${
        JSON.stringify(location)
      }: expected a ws:, wss:, http: or https: URL, found the scheme ${next.protocol}`,
    );
  }
  if (from.protocol === "wss:" && next.protocol === "ws:") {
    return fail(
      `with Location ${
        JSON.stringify(location)
      }: expected a wss: (or https:) URL, found one without TLS; a redirect never downgrades wss: to ws:`,
    );
  }
  // RFC 6455 §3: no fragment in a WebSocket URL.
  next.hash = "";
  return next;
}

/**
 * Whether two URLs have the same origin (scheme, host and port), after
 * which credentials may be sent again.
 *
 * @example
 * ```ts
 * import { sameOrigin } from "./redirect.ts";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(sameOrigin(new URL("ws://a:80/x"), new URL("ws://a/y")), true);
 * assertEquals(sameOrigin(new URL("ws://a/"), new URL("wss://a/")), false);
 * ```
 *
 * @param a One URL.
 * @param b The other.
 * @returns `true` when scheme, host and port are the same.
 */
export function sameOrigin(a: URL, b: URL): boolean {
  return a.protocol === b.protocol && a.host === b.host;
}

// Headers that carry credentials: not sent to another origin (as fetch
// does for Authorization, and for cookies, which belong to their site).
const CREDENTIAL_HEADERS = new Set(["authorization", "cookie"]);

/**
 * The request headers without `Authorization` and `Cookie`, for a redirect
 * to another origin.
 *
 * @example
 * ```ts
 * import { withoutCredentials } from "./redirect.ts";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(
 *   withoutCredentials({ Authorization: "Bearer x", "X-Trace": "1" }),
 *   [["X-Trace", "1"]],
 * );
 * ```
 *
 * @param headers The request headers as `connect()` was given them.
 * @returns The same headers as pairs, credentials left out.
 */
export function withoutCredentials(
  headers: HeadersInit | undefined,
): [string, string][] {
  const pairs: [string, string][] = headers === undefined
    ? []
    : headers instanceof Headers
    ? [...headers]
    : Array.isArray(headers)
    ? headers.map(([name, value]) => [name, value])
    : Object.entries(headers);
  return pairs.filter(([name]) => !CREDENTIAL_HEADERS.has(name.toLowerCase()));
}

/**
 * The error for a redirect beyond `maxRedirects`, listing the hops taken.
 *
 * @example
 * ```ts
 * import { tooManyRedirects } from "./redirect.ts";
 * import { assertStringIncludes } from "@std/assert";
 *
 * const error = tooManyRedirects(["ws://a/", "ws://b/", "ws://a/"], 2, 302);
 * assertStringIncludes(error.message, "ws://a/ -> ws://b/ -> ws://a/");
 * ```
 *
 * @param hops Every URL tried, the first one included, and where the last
 * one pointed.
 * @param maxRedirects The limit.
 * @param status The status of the redirect not followed.
 * @returns The error to throw.
 */
export function tooManyRedirects(
  hops: readonly string[],
  maxRedirects: number,
  status: number,
): WebSocketHandshakeError {
  const advice = maxRedirects === 0
    ? "set maxRedirects to follow redirects"
    : "a redirect loop, or raise maxRedirects";
  return new WebSocketHandshakeError(
    `opening handshake failed: expected HTTP status 101 Switching Protocols, found ${status} after ${
      hops.length - 2
    } redirect(s), with maxRedirects ${maxRedirects} (${advice}): ${
      hops.join(" -> ")
    }`,
    { status },
  );
}
