/**
 * `reconnecting()`: a client that stays connected, as an async iterable of
 * sockets with jittered exponential backoff between attempts.
 *
 * @module
 */

import { connect, type ConnectOptions } from "./client.ts";
import type { Message } from "./message_assembler.ts";
import type { MessageOf, MessageStream } from "./message_stream.ts";
import type { WebSocketConnection } from "./connection.ts";
import { WebSocketHandshakeError } from "./handshake_error.ts";
import { equalJitter } from "./jitter.ts";
import { WebSocketError } from "./websocket_error.ts";

/** Closes after which `reconnecting()` connects again by default. */
export const DEFAULT_RETRY_CLOSE_CODES: readonly number[] = [
  1001, // Going Away: the server is restarting or shutting down
  1006, // Abnormal Closure: the connection was lost
  1011, // Internal Error
  1012, // Service Restart
  1013, // Try Again Later
  1014, // Bad Gateway
];

/**
 * What {@linkcode ReconnectingOptions.onRetry} is told before each wait.
 *
 * @example
 * ```ts
 * import type { RetryInfo } from "@wstream/wstream";
 *
 * const log = ({ attempt, delayMs, error }: RetryInfo) =>
 *   console.error(`attempt ${attempt} failed (${error}); next in ${delayMs} ms`);
 * ```
 */
export interface RetryInfo {
  /** Failures in a row so far (1 after the first). */
  attempt: number;
  /** How long it waits before the next attempt. */
  delayMs: number;
  /** Why: the `connect()` error, or a `WebSocketError` for a close. */
  error: unknown;
}

/**
 * Options of {@linkcode reconnecting}: every {@linkcode connect} option,
 * and the backoff between attempts. The wait before retry `n` (1, 2, ...) is
 * a random time between half and all of
 * `min(maxDelayMs, initialDelayMs × backoffFactor^(n-1))`, or longer when
 * the server's `Retry-After` asks for it (up to `maxDelayMs`).
 *
 * @example
 * ```ts
 * import type { ReconnectingOptions } from "@wstream/wstream";
 *
 * const options: ReconnectingOptions = {
 *   initialDelayMs: 500,
 *   maxDelayMs: 10_000,
 *   maxRetries: 20,
 *   signal: AbortSignal.timeout(60_000),
 * };
 * ```
 */
export interface ReconnectingOptions extends ConnectOptions {
  /**
   * Stops it at any point: an attempt in progress, a wait, or an open
   * socket (closed with 1000). The iteration then throws the signal's
   * reason.
   */
  signal?: AbortSignal;
  /** The base of the first wait (default 1000 ms; at least 1). */
  initialDelayMs?: number;
  /** The longest wait (default 30 000 ms; at least `initialDelayMs`). */
  maxDelayMs?: number;
  /** How much the wait grows after each failure (default 2; at least 1). */
  backoffFactor?: number;
  /**
   * How many failures in a row to retry before giving up (default
   * `Infinity`); then the iteration throws the last failure.
   */
  maxRetries?: number;
  /**
   * How long a socket must stay open for the backoff to start over
   * (default 10 000 ms). A socket that opens and dies sooner counts as one
   * more failure, so a server that accepts and drops every connection is
   * retried ever more slowly, not in a storm.
   */
  stableAfterMs?: number;
  /** Close codes after which it reconnects (default {@linkcode DEFAULT_RETRY_CLOSE_CODES}). */
  retryCloseCodes?: Iterable<number>;
  /** Called before each wait, e.g. to log it. */
  onRetry?: (info: RetryInfo) => void;
}

interface Backoff {
  initialDelayMs: number;
  maxDelayMs: number;
  backoffFactor: number;
  maxRetries: number;
  stableAfterMs: number;
}

function checkBackoff(options: ReconnectingOptions): Backoff {
  const backoff: Backoff = {
    initialDelayMs: options.initialDelayMs ?? 1000,
    maxDelayMs: options.maxDelayMs ??
      Math.max(30_000, options.initialDelayMs ?? 0),
    backoffFactor: options.backoffFactor ?? 2,
    maxRetries: options.maxRetries ?? Infinity,
    stableAfterMs: options.stableAfterMs ?? 10_000,
  };
  const rules: [keyof Backoff, number][] = [
    ["initialDelayMs", 1],
    ["maxDelayMs", backoff.initialDelayMs],
    ["backoffFactor", 1],
    ["maxRetries", 0],
    ["stableAfterMs", 0],
  ];
  for (const [name, least] of rules) {
    const value = backoff[name];
    if (!(value >= least) || (value === Infinity && name !== "maxRetries")) {
      throw new RangeError(
        `expected ${name} to be a finite number of at least ${least}, found ${value}`,
      );
    }
  }
  return backoff;
}

/**
 * The wait before retry `attempt` (1, 2, ...): a random time between half and
 * all of the exponential delay, so clients dropped together do not return
 * together; never less than a `Retry-After` the server asked for, up to
 * `maxDelayMs`.
 */
function backoffDelay(
  backoff: Backoff,
  attempt: number,
  retryAfterMs: number | undefined,
): number {
  const base = Math.min(
    backoff.maxDelayMs,
    backoff.initialDelayMs * backoff.backoffFactor ** (attempt - 1),
  );
  const asked = Math.min(retryAfterMs ?? 0, backoff.maxDelayMs);
  return Math.round(Math.max(equalJitter(base), asked));
}

// RFC 9110 §10.2.3: Retry-After is seconds or an HTTP date.
function retryAfterMs(error: unknown): number | undefined {
  if (!(error instanceof WebSocketHandshakeError)) return undefined;
  const value = error.headers?.get("retry-after")?.trim();
  if (!value) return undefined;
  if (/^\d+$/.test(value)) return Number(value) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    signal?.throwIfAborted();
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Keeps a client connected: yields an open socket, and when it closes for
 * a transient reason, connects again after a jittered exponential backoff
 * and yields the new one, so the application can resynchronise on each.
 *
 * - **Retried:** connections refused, reset or timed out, answers 429 and
 *   5xx (honouring `Retry-After` up to `maxDelayMs`), and sockets that close
 *   with a code in `retryCloseCodes` (1001, 1006, 1011, 1012, 1013, 1014).
 * - **Ends the loop normally:** a close with 1000 or without a code (1005),
 *   whoever closed, and `break` (which closes the open socket with 1000).
 *   When the loop body finishes with the socket still open, the next round
 *   closes it (1000), so that ends the loop too.
 * - **Throws from the `for await`:** anything else, at once. A bad URL or
 *   option throws as `connect()` does; a failed handshake that is not
 *   transient (4xx other than 429, a protocol error in the 101, a bad
 *   redirect, a bad certificate) throws its {@linkcode WebSocketHandshakeError};
 *   another close (1002, 1003, 1007, 1008, 1009, 1010, 3000-4999) throws a
 *   `WebSocketError` with that `closeCode` and `reason`; after `maxRetries`
 *   failures in a row the last one is thrown; an abort throws the signal's
 *   reason.
 *
 * @example
 * ```ts
 * import { reconnecting, serve } from "@wstream/wstream";
 * import { assertEquals } from "@std/assert";
 *
 * // A server that says hello, then drops the first client with 1012.
 * let connections = 0;
 * await using server = serve({ port: 0, hostname: "127.0.0.1" }, async (socket) => {
 *   const writer = socket.writable.getWriter();
 *   await writer.write(`hello ${++connections}`);
 *   if (connections === 1) socket.close({ closeCode: 1012 }); // Service Restart
 *   else await writer.close(); // 1000 ends the loop
 * });
 * const seen = [];
 * for await (
 *   const socket of reconnecting(`ws://127.0.0.1:${server.addr.port}/`, {
 *     initialDelayMs: 10,
 *   })
 * ) {
 *   for await (const message of socket.readable) seen.push(message);
 * }
 * assertEquals(seen, ["hello 1", "hello 2"]);
 * ```
 *
 * @param url A `ws:` or `wss:` URL.
 * @param options Every {@linkcode connect} option, the signal and the
 * backoff.
 * @returns The sockets, one after the other.
 */
export async function* reconnecting<
  Options extends ReconnectingOptions = ReconnectingOptions,
>(
  url: string | URL,
  options: Options = {} as Options,
): AsyncGenerator<WebSocketConnection<MessageOf<Options>>, void, undefined> {
  const backoff = checkBackoff(options);
  const retryCloseCodes = new Set(
    options.retryCloseCodes ?? DEFAULT_RETRY_CLOSE_CODES,
  );
  const { signal } = options;
  let failures = 0;
  const retry = async (error: unknown, retryAfter?: number) => {
    failures++;
    if (failures > backoff.maxRetries) throw error;
    const delayMs = backoffDelay(backoff, failures, retryAfter);
    options.onRetry?.({ attempt: failures, delayMs, error });
    await sleep(delayMs, signal);
  };
  while (true) {
    signal?.throwIfAborted();
    let socket: WebSocketConnection<MessageOf<Options>>;
    try {
      socket = await connect<Options>(url, options);
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      if (!(error instanceof WebSocketHandshakeError && error.transient)) {
        throw error;
      }
      await retry(error, retryAfterMs(error));
      continue;
    }
    const openedAt = Date.now();
    const state: SocketState = {};
    socket.closed.then(() => state.closedAt = Date.now());
    // An abort closes the open socket; the loop body then sees it end.
    const onAbort = () => closeIfOpen(socket, state);
    signal?.addEventListener("abort", onAbort, { once: true });
    let resumed = false;
    try {
      yield socket;
      resumed = true;
    } finally {
      signal?.removeEventListener("abort", onAbort);
      // `break` (or a throw) in the loop body: close, and end here.
      if (!resumed) closeIfOpen(socket, state);
    }
    // The body is done with this socket: one still open is closed (1000).
    closeIfOpen(socket, state);
    const { closeCode, reason } = await socket.closed;
    if (signal?.aborted) throw signal.reason;
    if (closeCode === 1000 || closeCode === 1005) return;
    const error = new WebSocketError(
      `the connection to ${String(url)} closed with ${closeCode}${
        reason ? ` ${JSON.stringify(reason)}` : ""
      }${
        retryCloseCodes.has(closeCode)
          ? ""
          : `: not a transient close (those are ${
            [...retryCloseCodes].join(", ")
          }), so reconnecting stopped`
      }`,
      { closeCode, reason },
    );
    if (!retryCloseCodes.has(closeCode)) throw error;
    // Only a socket that lived a while starts the backoff over.
    if (state.closedAt! - openedAt >= backoff.stableAfterMs) failures = 0;
    await retry(error);
  }
}

// Closes a socket the loop is done with, if it is still open.
function closeIfOpen(
  socket: WebSocketConnection<Message | MessageStream>,
  state: SocketState,
): void {
  if (state.closedAt !== undefined) return;
  try {
    socket.close();
  } catch {
    // Closing already.
  }
}

interface SocketState {
  /** When `closed` resolved (`Date.now()`), once it has. */
  closedAt?: number;
}
