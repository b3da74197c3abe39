/**
 * An HTTP `CONNECT` tunnel through a proxy (RFC 9110 §9.3.6): after the
 * proxy's 2xx answer, the connection carries the bytes of a TCP connection
 * to the target, on which `ws:` speaks HTTP and `wss:` starts TLS.
 *
 * @module
 */

import {
  isTransientStatus,
  WebSocketHandshakeError,
} from "./handshake_error.ts";
import { type ByteConn, writeAll } from "./handshake_io.ts";
import { DEFAULT_MAX_HEADER_BYTES, readHttpHead } from "./http_head_reader.ts";
import { HttpHeadError } from "./http_head.ts";
import { parseStatusLine } from "./http_start_line.ts";
import type { ProxyServer } from "./proxy.ts";

/** Limits for {@linkcode openTunnel}. */
export interface TunnelOptions {
  /** The largest answer head accepted from the proxy (default 16 KiB). */
  maxHeaderBytes?: number;
  /** Aborting stops the exchange and closes the connection. */
  signal?: AbortSignal;
}

/**
 * `host:port`, with brackets around an IPv6 address (the form of a
 * `CONNECT` request target, RFC 9112 §3.2.3).
 *
 * @example
 * ```ts
 * import { hostPort } from "./proxy_tunnel.ts";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(hostPort("::1", 443), "[::1]:443");
 * ```
 *
 * @param hostname A host name or address (IPv6 without brackets).
 * @param port The port.
 * @returns The two joined.
 */
export function hostPort(hostname: string, port: number): string {
  return `${hostname.includes(":") ? `[${hostname}]` : hostname}:${port}`;
}

/**
 * A URL's `hostname` without the brackets of an IPv6 address (`[::1]` ->
 * `::1`), as connecting and proxy matching want it; the inverse of
 * {@linkcode hostPort}'s bracketing.
 *
 * @example
 * ```ts
 * import { unbracketed } from "./proxy_tunnel.ts";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(unbracketed(new URL("ws://[::1]:80/").hostname), "::1");
 * assertEquals(unbracketed("example.com"), "example.com");
 * ```
 *
 * @param hostname A URL's `hostname`.
 * @returns It without surrounding brackets.
 */
export function unbracketed(hostname: string): string {
  return hostname.replace(/^\[(.*)\]$/, "$1");
}

/**
 * Asks the proxy on `conn` for a tunnel to `hostname:port` and reads its
 * answer. Resolves when the tunnel is open; rejects with a
 * {@linkcode WebSocketHandshakeError} when the proxy refuses (its status in
 * `status`; 5xx and 429 are `transient`), answers with something that is
 * not HTTP, ends the connection, or sends a head over `maxHeaderBytes`; and
 * with the signal's reason when it aborts.
 *
 * @example
 * ```ts ignore
 * import { openTunnel } from "./proxy_tunnel.ts";
 * import { parseProxyUrl } from "./proxy.ts";
 *
 * const proxy = parseProxyUrl("http://127.0.0.1:3128");
 * const conn = await Deno.connect({ hostname: proxy.hostname, port: proxy.port });
 * await openTunnel(conn, proxy, "example.com", 443);
 * const tls = await Deno.startTls(conn, { hostname: "example.com" });
 * ```
 *
 * @param conn A connection to the proxy.
 * @param proxy The proxy (for its credentials and error messages).
 * @param hostname The target host.
 * @param port The target port.
 * @param options Limits.
 */
export async function openTunnel(
  conn: ByteConn,
  proxy: ProxyServer,
  hostname: string,
  port: number,
  options: TunnelOptions = {},
): Promise<void> {
  const target = hostPort(hostname, port);
  const where = `the proxy ${
    hostPort(proxy.hostname, proxy.port)
  } (from ${proxy.source})`;
  const lines = [`CONNECT ${target} HTTP/1.1`, `Host: ${target}`];
  if (proxy.authorization) {
    lines.push(`Proxy-Authorization: ${proxy.authorization}`);
  }
  await writeAll(
    conn,
    new TextEncoder().encode(lines.join("\r\n") + "\r\n\r\n"),
  );
  let result;
  try {
    result = await readHttpHead(conn, {
      maxHeaderBytes: options.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES,
      signal: options.signal,
    });
  } catch (error) {
    if (options.signal?.aborted) throw options.signal.reason;
    // A malformed or oversized head will not get better by itself; an
    // early end of the connection may.
    throw new WebSocketHandshakeError(
      `opening handshake failed: expected ${where} to answer CONNECT ${target} with an HTTP head, found: ${
        (error as Error).message
      }`,
      { transient: !(error instanceof HttpHeadError), cause: error },
    );
  }
  let status;
  try {
    status = parseStatusLine(result.head.startLine);
  } catch (error) {
    throw new WebSocketHandshakeError(
      `opening handshake failed: ${where} did not answer CONNECT ${target} with HTTP: ${
        (error as Error).message
      }`,
      { cause: error },
    );
  }
  if (status.status < 200 || status.status > 299) {
    // 407 is the proxy's "credentials needed" (RFC 9110 §15.5.8); some
    // proxies (tinyproxy 1.11) send 401 for it.
    const hint = status.status === 407 || status.status === 401
      ? " (check the user name and password in the proxy URL)"
      : "";
    throw new WebSocketHandshakeError(
      `opening handshake failed: ${where} refused to open a tunnel to ${target}: expected a 2xx answer to CONNECT, found ${status.status}${
        status.statusText ? " " + status.statusText : ""
      }${hint}`,
      {
        status: status.status,
        headers: result.head.headers,
        transient: isTransientStatus(status.status),
      },
    );
  }
  // Nothing may come from the target before the client speaks (ws:) or
  // before TLS starts (wss:): bytes here are the proxy's, not the target's.
  if (result.leftover.length > 0) {
    throw new WebSocketHandshakeError(
      `opening handshake failed: expected nothing after the answer of ${where} to CONNECT ${target} until the client spoke, found ${result.leftover.length} bytes`,
    );
  }
}
