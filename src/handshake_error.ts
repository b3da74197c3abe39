/**
 * The error `connect()` rejects with when a connection could not be opened:
 * a {@linkcode WebSocketError} that also says whether trying again later may
 * succeed, and what HTTP status (if any) the server or proxy answered.
 *
 * @module
 */

import { WebSocketError } from "./websocket_error.ts";

/**
 * What {@linkcode WebSocketHandshakeError} is made from.
 *
 * @example
 * ```ts
 * import type { WebSocketHandshakeErrorInit } from "@wstream/wstream";
 *
 * const init: WebSocketHandshakeErrorInit = { status: 503, transient: true };
 * ```
 */
export interface WebSocketHandshakeErrorInit {
  /** The HTTP status the server (or proxy) answered, if it answered. */
  status?: number;
  /** The header fields of that answer. */
  headers?: Headers;
  /** Whether the same attempt may succeed later (default `false`). */
  transient?: boolean;
  /** The error that caused this one. */
  cause?: unknown;
}

/**
 * A failed opening handshake (close code 1006): a refused or reset TCP
 * connection, a timeout, a TLS failure, a proxy that refused the tunnel, an
 * HTTP answer other than 101, a redirect that could not be followed, or a
 * 101 answer that breaks RFC 6455 §4.1.
 *
 * `transient` is `true` for what may pass by itself: connections refused,
 * reset or timed out, and answers 429 and 5xx (from the server or the
 * proxy). `reconnecting()` retries exactly these.
 *
 * @example Tell a server that is down from one that says no
 * ```ts
 * import { connect, serve, WebSocketHandshakeError } from "@wstream/wstream";
 * import { assert, assertEquals } from "@std/assert";
 *
 * await using server = serve({
 *   port: 0,
 *   hostname: "127.0.0.1",
 *   authorize: () => false, // answers 403
 * }, () => {});
 * const error = await connect(`ws://127.0.0.1:${server.addr.port}/`).catch((e) => e);
 * assert(error instanceof WebSocketHandshakeError);
 * assertEquals([error.status, error.transient, error.closeCode], [403, false, 1006]);
 * ```
 */
export class WebSocketHandshakeError extends WebSocketError {
  /** The HTTP status answered, or `null` when there was no answer. */
  readonly status: number | null;
  /** The header fields of the answer, or `null` when there was none. */
  readonly headers: Headers | null;
  /** Whether trying again later may succeed. */
  readonly transient: boolean;
  /** The error that caused this one, if any. */
  override readonly cause?: unknown;

  /**
   * Creates an error.
   *
   * @param message What was expected and what was found.
   * @param init The status, headers and whether it is transient.
   */
  constructor(message: string, init: WebSocketHandshakeErrorInit = {}) {
    super(message, { closeCode: 1006 });
    this.status = init.status ?? null;
    this.headers = init.headers ?? null;
    this.transient = init.transient ?? false;
    if (init.cause !== undefined) this.cause = init.cause;
  }
}

/**
 * Whether an HTTP status means "try again later": 429 Too Many Requests and
 * every 5xx.
 *
 * @example
 * ```ts
 * import { isTransientStatus } from "./handshake_error.ts";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals([503, 429, 403].map(isTransientStatus), [true, true, false]);
 * ```
 *
 * @param status The HTTP status.
 * @returns `true` for 429 and 500-599.
 */
export function isTransientStatus(status: number): boolean {
  return status === 429 || (status >= 500 && status <= 599);
}
