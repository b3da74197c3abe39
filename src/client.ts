/**
 * `connect()`: a WebSocket client over the runtime's TCP and TLS
 * (`Deno.connect` and `Deno.startTls` on Deno, `node:net` and `node:tls` on
 * Node and Bun: see runtime.ts).
 *
 * @module
 */

import { applicationStarted } from "./close_answer.ts";
import { WebSocketConnection } from "./connection.ts";
import type { WebSocketOptions } from "./socket_options.ts";
import type { MessageOf } from "./message_stream.ts";
import {
  buildClientRequest,
  validateServerResponse,
} from "./client_handshake.ts";
import { generateKey } from "./handshake_key.ts";
import { validateProtocols } from "./subprotocols.ts";
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
import {
  isTransientStatus,
  WebSocketHandshakeError,
} from "./handshake_error.ts";
import { DEFAULT_MAX_HEADER_BYTES, readHttpHead } from "./http_head_reader.ts";
import { type HttpHead, HttpHeadError } from "./http_head.ts";
import { parseStatusLine, type StatusLine } from "./http_start_line.ts";
import { type ProxyServer, resolveProxy } from "./proxy.ts";
import { hostPort, openTunnel, unbracketed } from "./proxy_tunnel.ts";
import {
  REDIRECT_STATUSES,
  redirectTarget,
  sameOrigin,
  tooManyRedirects,
  withoutCredentials,
} from "./redirect.ts";
import { WebSocketError } from "./websocket_error.ts";
import { isWebSocketScheme, useWebSocketScheme } from "./websocket_scheme.ts";
import { currentRuntime, type DialedConn, type Runtime } from "./runtime.ts";

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
   * More request headers (`Authorization`, `Cookie`, ...). Names must be
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
  /**
   * The HTTP proxy to tunnel through (HTTP `CONNECT`, for `ws:` and `wss:`
   * alike), as a URL such as `"http://user:pass@proxy:3128"`; the
   * credentials go in `Proxy-Authorization` (Basic). `false` connects
   * directly. Not set: taken from `ALL_PROXY`, `HTTPS_PROXY` (`wss:`),
   * `HTTP_PROXY` (`ws:`) and `NO_PROXY` as Deno's `fetch` reads them (see
   * the README), when `--allow-env` permits.
   */
  proxy?: string | URL | false;
  /**
   * How many redirects (301, 302, 303, 307, 308) to follow during the
   * opening handshake. Default 0, as in npm `ws`: a redirect is an error
   * that names where it pointed. A `wss:` URL is never redirected to `ws:`,
   * and `Authorization` and `Cookie` headers are not sent to another origin.
   */
  maxRedirects?: number;
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
  if (!isWebSocketScheme(useWebSocketScheme(parsed))) {
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
 * Opens a WebSocket connection (RFC 6455 §4.1): connects over TCP (through
 * an HTTP proxy's `CONNECT` tunnel when one is set, and TLS for `wss:`),
 * sends the opening handshake, follows up to `maxRedirects` redirects,
 * checks the server's answer and resolves with the open socket. A bad URL
 * or subprotocol list throws a `SyntaxError`, bad headers or proxy
 * settings a `TypeError`, all before any I/O; a refused or broken
 * handshake rejects with a {@linkcode WebSocketHandshakeError} (a
 * `WebSocketError`) that says what was expected and what was found, with
 * the HTTP status when there was one.
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
 *   proxy: false, // whatever HTTP_PROXY says
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
 * @typeParam Options The options' type: `messages: "stream"` in it makes
 * `readable` yield {@linkcode MessageStream}s.
 * @param url A `ws:` or `wss:` URL (`http:` and `https:` are mapped).
 * @param options Subprotocols, headers, proxy, redirects, abort signal,
 * timeouts and socket options.
 * @returns The open socket.
 */
export async function connect<Options extends ConnectOptions = ConnectOptions>(
  url: string | URL,
  options: Options = {} as Options,
): Promise<WebSocketConnection<MessageOf<Options>>> {
  // Everything that can be refused is refused before any I/O.
  let target = parseWebSocketUrl(url);
  const protocols = typeof options.protocols === "string"
    ? [options.protocols]
    : [...(options.protocols ?? [])];
  validateProtocols(protocols);
  const maxRedirects = options.maxRedirects ?? 0;
  if (!Number.isInteger(maxRedirects) || maxRedirects < 0) {
    throw new RangeError(
      `expected maxRedirects to be an integer of 0 or more, found ${maxRedirects}`,
    );
  }
  const extensionOffer = createExtensionOffer(options);
  let headers: HeadersInit | undefined = options.headers;
  const request = (url: URL, key: string) =>
    buildClientRequest({
      url,
      key,
      protocols,
      extensions: extensionOffer,
      origin: options.origin,
      headers,
    });
  let key = generateKey();
  let requestBytes = request(target, key);
  let proxy = resolveProxy(target, options.proxy);
  options.signal?.throwIfAborted();

  const handshakeTimeoutMs = options.handshakeTimeoutMs ??
    DEFAULT_HANDSHAKE_TIMEOUT_MS;
  const deadline = new AbortController();
  const timer = setTimeout(() => {
    deadline.abort(
      new WebSocketHandshakeError(
        `opening handshake failed: expected it to finish within ${handshakeTimeoutMs} ms, found no complete response by then (raise handshakeTimeoutMs if the server is slow)`,
        { transient: true },
      ),
    );
  }, handshakeTimeoutMs);
  const signal = options.signal
    ? AbortSignal.any([options.signal, deadline.signal])
    : deadline.signal;
  const runtime = currentRuntime();
  let conn: DialedConn | undefined;
  const onAbort = () => {
    if (conn) closeQuietly(conn);
  };
  signal.addEventListener("abort", onAbort, { once: true });
  const hops = [target.href];

  try {
    while (true) {
      conn = undefined;
      conn = await openTransport(runtime, target, proxy, options, signal, (
        opened,
      ) => {
        conn = opened;
      });
      signal.throwIfAborted();
      await writeAll(conn, requestBytes);
      // Read straight from the connection: no stream is made for the head.
      const { head, leftover } = await readHttpHead(conn, {
        maxHeaderBytes: options.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES,
        signal,
      });
      const status = responseStatus(head);
      if (status.status !== 101) {
        if (!REDIRECT_STATUSES.has(status.status)) {
          throw statusError(status, head);
        }
        if (hops.length > maxRedirects) {
          const location = head.get("location");
          throw tooManyRedirects(
            [...hops, location === null ? "(no Location)" : location],
            maxRedirects,
            status.status,
          );
        }
        const next = redirectTarget(
          target,
          status.status,
          head.get("location"),
        );
        hops.push(next.href);
        closeQuietly(conn);
        // Credentials stay with the origin they were given for (and do
        // not come back on a later hop to it).
        if (!sameOrigin(target, next)) headers = withoutCredentials(headers);
        target = next;
        proxy = resolveProxy(target, options.proxy);
        key = generateKey();
        requestBytes = request(target, key);
        continue;
      }
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
      const socket = new WebSocketConnection<MessageOf<Options>>({
        ...pickSocketOptions(options),
        transport: conn,
        role: "client",
        protocol: accepted.protocol,
        extensions: negotiated.extensions,
        deflate: negotiated.deflate,
        // An empty one would be kept as long as the socket's read loop runs.
        leftover: leftover.length > 0 ? leftover : undefined,
      });
      // The caller's code after `await connect()` runs before any later
      // read: a Close from then on is answered without a timer unless it
      // writes (see close_answer.ts).
      applicationStarted(socket);
      return socket;
    }
  } catch (error) {
    if (conn) closeQuietly(conn);
    if (signal.aborted) throw signal.reason;
    if (error instanceof WebSocketHandshakeError) throw error;
    // A 101 answer that breaks RFC 6455 §4.1: not transient.
    if (error instanceof WebSocketError) {
      throw new WebSocketHandshakeError(error.message, {
        status: 101,
        cause: error,
      });
    }
    // TLS failures, resets, a head over the limit: one error type for all.
    throw new WebSocketHandshakeError(
      `opening handshake failed: ${(error as Error).message}`,
      { transient: isTransientFailure(runtime, error), cause: error },
    );
  } finally {
    clearTimeout(timer);
    signal.removeEventListener("abort", onAbort);
  }
}

// TCP to the target or to the proxy, the proxy's tunnel, then TLS for wss:.
// `opened` is told each connection as soon as it exists, so that an abort
// can close it.
async function openTransport(
  runtime: Runtime,
  target: URL,
  proxy: ProxyServer | undefined,
  options: ConnectOptions,
  signal: AbortSignal,
  opened: (conn: DialedConn) => void,
): Promise<DialedConn> {
  const secure = target.protocol === "wss:";
  // URL.hostname keeps the brackets of an IPv6 literal.
  const hostname = unbracketed(target.hostname);
  const port = target.port ? Number(target.port) : secure ? 443 : 80;
  const peer = proxy ?? { hostname, port };
  let tcp: DialedConn;
  try {
    tcp = await runtime.connectTcp(peer.hostname, peer.port, signal);
  } catch (error) {
    if (signal.aborted) throw error;
    const what = proxy
      ? `the proxy ${
        hostPort(proxy.hostname, proxy.port)
      } (from ${proxy.source})`
      : hostPort(hostname, port);
    throw new WebSocketHandshakeError(
      `opening handshake failed: could not connect to ${what}: ${
        (error as Error).message
      }`,
      { transient: isTransientFailure(runtime, error), cause: error },
    );
  }
  opened(tcp);
  if (proxy) {
    await openTunnel(tcp, proxy, hostname, port, {
      maxHeaderBytes: options.maxHeaderBytes,
      signal,
    });
  }
  if (!secure) return tcp;
  // Frames are batched per write already; Nagle's delay would only hold
  // small messages back waiting for ACKs. The socket turns it off itself
  // before its first data frame (Transport.setNoDelay), but a TLS
  // connection hides the TCP one.
  tcp.setNoDelay?.(true);
  // The TLS handshake itself runs on the first write, which an abort stops
  // by closing this connection.
  const tls = await runtime.startTls(tcp, {
    hostname,
    caCerts: options.caCerts,
  });
  opened(tls);
  return tls;
}

function responseStatus(head: HttpHead): StatusLine {
  try {
    return parseStatusLine(head.startLine);
  } catch (error) {
    throw new WebSocketHandshakeError(
      `opening handshake failed: ${(error as Error).message}`,
      { cause: error },
    );
  }
}

// RFC 6455 §4.1: "If the status code received from the server is not 101,
// the client handles the response per HTTP procedures."
function statusError(status: StatusLine, head: HttpHead): Error {
  return new WebSocketHandshakeError(
    `opening handshake failed: expected HTTP status 101 Switching Protocols, found ${status.status}${
      status.statusText ? " " + status.statusText : ""
    }`,
    {
      status: status.status,
      headers: head.headers,
      transient: isTransientStatus(status.status),
    },
  );
}

// Whether a failure below HTTP may pass by itself: refused, reset, timed
// out, ended early. A malformed head, a bad certificate or a missing
// permission will not.
function isTransientFailure(runtime: Runtime, error: unknown): boolean {
  if (error instanceof HttpHeadError) return false;
  if (runtime.isPermanentFailure(error)) return false;
  return !/certificate/i.test((error as Error)?.message ?? "");
}
