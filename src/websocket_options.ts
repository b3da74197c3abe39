/**
 * The options of the WHATWG {@linkcode WebSocket} (websocket.ts): its
 * constructor's arguments beyond the URL, and what `binaryType` can be.
 *
 * @module
 */

import type { ConnectOptions } from "./client.ts";

/**
 * The optional third argument of the {@linkcode WebSocket} constructor
 * (wstream's addition to the WHATWG API): every option of
 * {@linkcode connect} except `protocols` (the second argument) and `signal`
 * (use `close()`). For example `headers` (`Authorization`, `Cookie`),
 * `origin`, `compression`, `maxMessageBytes`, `closeTimeoutMs`,
 * `pingIntervalMs`/`pongTimeoutMs` (keep-alive), `handshakeTimeoutMs` and
 * `caCerts`.
 *
 * @example
 * ```ts
 * import type { WebSocketInit } from "@wstream/wstream";
 *
 * const init: WebSocketInit = {
 *   headers: { Authorization: "Bearer token" },
 *   maxMessageBytes: 1024 * 1024,
 * };
 * ```
 */
export type WebSocketInit = Omit<
  ConnectOptions,
  "protocols" | "signal" | "maxRedirects"
>;

/**
 * The second argument of the {@linkcode WebSocket} constructor in the form
 * Deno's built-in `WebSocket` also takes: the subprotocols together with
 * options (`headers` and, here, every {@linkcode WebSocketInit} option).
 *
 * @example
 * ```ts
 * import type { WebSocketProtocolsInit } from "@wstream/wstream";
 *
 * // new WebSocket(url, init), as with Deno's built-in WebSocket
 * const init: WebSocketProtocolsInit = {
 *   protocols: ["chat.v2", "chat.v1"],
 *   headers: { Cookie: "session=1" },
 * };
 * ```
 */
export interface WebSocketProtocolsInit extends WebSocketInit {
  /** One subprotocol or a list, most preferred first. */
  protocols?: string | readonly string[];
}

/**
 * What `binaryType` can be: how binary messages are given to `message`.
 *
 * @example
 * ```ts
 * import type { BinaryType } from "@wstream/wstream";
 *
 * const binaryType: BinaryType = "arraybuffer"; // event.data is an ArrayBuffer
 * ```
 */
export type BinaryType = "blob" | "arraybuffer";
