/**
 * `connect()`: a WebSocket client on `Deno.connect` (and `Deno.startTls` for
 * wss:).
 *
 * @module
 */

import { WebSocketConnection, type WebSocketOptions } from "./connection.ts";
import {
  buildClientRequest,
  generateKey,
  validateProtocols,
  validateServerResponse,
} from "./handshake.ts";
import {
  createExtensionOffer,
  type ExtensionOptions,
  negotiateClientExtensions,
} from "./handshake_extensions.ts";
import {
  closeQuietly,
  DEFAULT_HANDSHAKE_TIMEOUT_MS,
  pickSocketOptions,
  writeAll,
} from "./handshake_io.ts";
import { DEFAULT_MAX_HEADER_BYTES, readHttpHead } from "./http_head.ts";
import { WebSocketError } from "./websocket_error.ts";

/**
 * Options of {@linkcode connect}: what the handshake sends, its limits,
 * and the {@linkcode WebSocketOptions} of the socket.
 *
 * @example
 * ```ts
 * import type { ConnectOptions } from "@wstream/wstream";
 *
 * const options: ConnectOptions = {
 *   protocols: ["chat.v2"],
 *   headers: { Authorization: "Bearer token" },
 *   signal: AbortSignal.timeout(30_000),
 *   handshakeTimeoutMs: 5_000,
 *   pingIntervalMs: 20_000,
 * };
 * ```
 */
export interface ConnectOptions extends WebSocketOptions, ExtensionOptions {
  /** The subprotocols to offer, most preferred first. */
  protocols?: string | readonly string[];
  /**
   * More request headers (`Authorization`, `Cookie`, …). Names must be
   * tokens and values free of CR, LF and NUL, or `connect()` throws a
   * `TypeError` before connecting.
   */
  headers?: HeadersInit;
  /** The `Origin` header to send, for servers that check it. */
  origin?: string;
  /**
   * Aborting before the socket opens cancels the attempt: the TCP
   * connection is closed and `connect()` rejects with the signal's reason.
   * (It has no effect on an open socket; use `close()` then.)
   */
  signal?: AbortSignal;
  /**
   * The time for the TCP connection, TLS and the opening handshake together;
   * then `connect()` fails with a `WebSocketError`. Default 10 000 ms.
   */
  handshakeTimeoutMs?: number;
  /** The largest response head accepted (default 16 KiB). */
  maxHeaderBytes?: number;
  /** Extra PEM root certificates to trust for wss: (e.g. a test CA). */
  caCerts?: string[];
}

/**
 * Checks and normalizes a WebSocket URL the way the WHATWG `WebSocket`
 * constructor does: `http:` becomes `ws:` and `https:` becomes `wss:`; an
 * unparsable URL, another scheme or a fragment throws a `SyntaxError`
 * `DOMException`.
 *
 * @example
 * ```ts
 * import { parseWebSocketUrl } from "@wstream/wstream";
 * import { assertEquals, assertThrows } from "@std/assert";
 *
 * assertEquals(parseWebSocketUrl("https://example.com/a").href, "wss://example.com/a");
 * assertThrows(() => parseWebSocketUrl("ws://example.com/#x"), DOMException);
 * ```
 *
 * @param url The URL to connect to.
 * @returns The `ws:` or `wss:` URL.
 */
export function parseWebSocketUrl(url: string | URL): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new DOMException(
      `expected a valid ws: or wss: URL, found ${JSON.stringify(String(url))}`,
      "SyntaxError",
    );
  }
  if (parsed.protocol === "http:") parsed.protocol = "ws:";
  else if (parsed.protocol === "https:") parsed.protocol = "wss:";
  if (parsed.protocol !== "ws:" && parsed.protocol !== "wss:") {
    throw new DOMException(
      `expected a ws:, wss:, http: or https: URL, found the scheme ${parsed.protocol} in ${
        JSON.stringify(parsed.href)
      }`,
      "SyntaxError",
    );
  }
  // RFC 6455 §3: "Fragment identifiers are meaningless in the context of
  // WebSocket URIs and MUST NOT be used on these URIs."
  if (parsed.hash !== "" || parsed.href.endsWith("#")) {
    throw new DOMException(
      `expected a URL without a fragment, found ${JSON.stringify(parsed.href)}`,
      "SyntaxError",
    );
  }
  return parsed;
}

/**
 * Opens a WebSocket connection (RFC 6455 §4.1): connects over TCP (and TLS
 * for `wss:`), sends the opening handshake, checks the server's answer and
 * resolves with the open socket. A bad URL or subprotocol list throws a
 * `SyntaxError` and bad headers a `TypeError`, both before any I/O; a
 * refused or broken handshake rejects with a `WebSocketError` that says what
 * was expected and what was found.
 *
 * @example Talk to an echo server
 * ```ts
 * import { connect, serve } from "@wstream/wstream";
 * import { assertEquals } from "@std/assert";
 *
 * const server = serve({ port: 0, hostname: "127.0.0.1", protocols: ["echo"] }, (socket) =>
 *   socket.readable.pipeTo(socket.writable)
 * );
 * const socket = await connect(`ws://127.0.0.1:${server.addr.port}/`, {
 *   protocols: ["echo"],
 * });
 * assertEquals(socket.protocol, "echo");
 * const writer = socket.writable.getWriter();
 * await writer.write(new Uint8Array([1, 2, 3]));
 * const reader = socket.readable.getReader();
 * assertEquals((await reader.read()).value, new Uint8Array([1, 2, 3]));
 * reader.releaseLock();
 * socket.close({ closeCode: 1000, reason: "done" });
 * assertEquals((await socket.closed).closeCode, 1000);
 * await server.shutdown();
 * ```
 *
 * @param url A `ws:` or `wss:` URL (`http:` and `https:` are mapped).
 * @param options Subprotocols, headers, abort signal, timeouts and socket
 * options.
 * @returns The open socket.
 */
export async function connect(
  url: string | URL,
  options: ConnectOptions = {},
): Promise<WebSocketConnection> {
  // Everything that can be refused is refused before any I/O.
  const target = parseWebSocketUrl(url);
  const protocols = typeof options.protocols === "string"
    ? [options.protocols]
    : [...(options.protocols ?? [])];
  validateProtocols(protocols);
  const key = generateKey();
  const extensionOffer = createExtensionOffer(options);
  const requestBytes = buildClientRequest({
    url: target,
    key,
    protocols,
    extensions: extensionOffer,
    origin: options.origin,
    headers: options.headers,
  });
  options.signal?.throwIfAborted();

  const handshakeTimeoutMs = options.handshakeTimeoutMs ??
    DEFAULT_HANDSHAKE_TIMEOUT_MS;
  const deadline = new AbortController();
  const timer = setTimeout(() => {
    deadline.abort(
      new WebSocketError(
        `opening handshake failed: expected it to finish within ${handshakeTimeoutMs} ms, found no complete response by then (raise handshakeTimeoutMs if the server is slow)`,
        { closeCode: 1006 },
      ),
    );
  }, handshakeTimeoutMs);
  const signal = options.signal
    ? AbortSignal.any([options.signal, deadline.signal])
    : deadline.signal;
  let conn: Deno.Conn | undefined;
  const onAbort = () => {
    if (conn) closeQuietly(conn);
  };
  signal.addEventListener("abort", onAbort, { once: true });

  try {
    const secure = target.protocol === "wss:";
    // URL.hostname keeps the brackets of an IPv6 literal.
    const hostname = target.hostname.replace(/^\[(.*)\]$/, "$1");
    const port = target.port ? Number(target.port) : secure ? 443 : 80;
    let tcp: Deno.Conn;
    try {
      tcp = await Deno.connect({ hostname, port, signal });
      // Frames are batched per write already; Nagle's delay would only hold
      // small messages back waiting for ACKs. The socket turns it off itself
      // before its first data frame (Transport.setNoDelay), but a TLS
      // connection hides the TCP one.
      if (secure) (tcp as Deno.TcpConn).setNoDelay(true);
    } catch (error) {
      if (signal.aborted) throw error;
      throw new WebSocketError(
        `opening handshake failed: could not connect to ${hostname}:${port}: ${
          (error as Error).message
        }`,
        { closeCode: 1006 },
      );
    }
    conn = secure
      ? await Deno.startTls(tcp as Deno.TcpConn, {
        hostname,
        caCerts: options.caCerts,
      })
      : tcp;
    signal.throwIfAborted();
    await writeAll(conn, requestBytes);
    // Read straight from the connection: no stream is made for the head.
    const { head, leftover } = await readHttpHead(conn, {
      maxHeaderBytes: options.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES,
      signal,
    });
    const accepted = await validateServerResponse(head, {
      key,
      protocols,
      extensions: extensionOffer,
    });
    const negotiated = negotiateClientExtensions(
      accepted.extensions,
      extensionOffer,
      options,
    );
    signal.throwIfAborted();
    return new WebSocketConnection({
      ...pickSocketOptions(options),
      transport: conn,
      role: "client",
      protocol: accepted.protocol,
      extensions: negotiated.extensions,
      deflate: negotiated.deflate,
      // An empty one would be kept as long as the socket's read loop runs.
      leftover: leftover.length > 0 ? leftover : undefined,
    });
  } catch (error) {
    if (conn) closeQuietly(conn);
    if (signal.aborted) throw signal.reason;
    if (error instanceof WebSocketError) throw error;
    // TLS failures, resets, a head over the limit: one error type for all.
    throw new WebSocketError(
      `opening handshake failed: ${(error as Error).message}`,
      { closeCode: 1006 },
    );
  } finally {
    clearTimeout(timer);
    signal.removeEventListener("abort", onAbort);
  }
}
