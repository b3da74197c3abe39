/**
 * The `http:` -> `ws:` and `https:` -> `wss:` mapping that the WHATWG
 * `WebSocket` constructor, a redirect's `Location` and a server-side
 * socket's URL all share.
 *
 * @module
 */

/**
 * Rewrites an `http:` URL to `ws:` and an `https:` URL to `wss:`, in place;
 * any other scheme is left for the caller to accept or refuse.
 *
 * @example
 * ```ts
 * import { useWebSocketScheme } from "./websocket_scheme.ts";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(useWebSocketScheme(new URL("https://a.example/x")).href, "wss://a.example/x");
 * assertEquals(useWebSocketScheme(new URL("ftp://a.example/")).protocol, "ftp:");
 * ```
 *
 * @param url The URL to rewrite.
 * @returns The same URL, for chaining.
 */
export function useWebSocketScheme(url: URL): URL {
  if (url.protocol === "http:") url.protocol = "ws:";
  else if (url.protocol === "https:") url.protocol = "wss:";
  return url;
}

/**
 * Whether a URL's scheme is `ws:` or `wss:`.
 *
 * @example
 * ```ts
 * import { isWebSocketScheme } from "./websocket_scheme.ts";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(isWebSocketScheme(new URL("wss://a.example/")), true);
 * assertEquals(isWebSocketScheme(new URL("http://a.example/")), false);
 * ```
 *
 * @param url The URL to look at.
 * @returns `true` for `ws:` and `wss:`.
 */
export function isWebSocketScheme(url: URL): boolean {
  return url.protocol === "ws:" || url.protocol === "wss:";
}
