/**
 * Listening for `serve()`: the TCP or TLS listener and the loop that
 * accepts its connections, and the answer to one too many.
 *
 * @module
 */

import { requireDeno } from "./runtime.ts";
import { buildErrorResponse } from "./http_error_response.ts";
import { closeQuietly, lingeringClose, writeAll } from "./handshake_io.ts";

/** Where and how to listen. */
export interface ListenOptions {
  /** The port to listen on (default 8000; 0 picks a free one). */
  port?: number;
  /** The address to listen on (default "0.0.0.0"). */
  hostname?: string;
  /** A PEM certificate chain: with `key`, the server speaks TLS (wss:). */
  cert?: string;
  /** The PEM private key for `cert`. */
  key?: string;
  /**
   * Lets several processes listen on the same port, the kernel spreading
   * connections between them (`SO_REUSEPORT`; Linux only, ignored
   * elsewhere). Default `false`.
   */
  reusePort?: boolean;
}

/**
 * Opens the listener: TLS when `cert` and `key` are given, else TCP.
 *
 * @example
 * ```ts
 * import { listen } from "./listener.ts";
 *
 * const listener = listen({ port: 0, hostname: "127.0.0.1" });
 * console.log((listener.addr as Deno.NetAddr).port);
 * listener.close();
 * ```
 *
 * @param options Where and how to listen.
 * @returns The listener.
 * @throws {TypeError} for only one of `cert` and `key`, or on a runtime
 * other than Deno.
 */
export function listen(options: ListenOptions): Deno.Listener {
  requireDeno("serve()", "handleUpgrade() on a node:http server");
  const hostname = options.hostname ?? "0.0.0.0";
  const port = options.port ?? 8000;
  const { cert, key } = options;
  if (cert === undefined && key === undefined) {
    return Deno.listen({
      hostname,
      port,
      transport: "tcp",
      reusePort: options.reusePort,
    });
  }
  if (cert === undefined || key === undefined) {
    throw new TypeError(
      "expected both cert and key for a TLS server, found only one of them",
    );
  }
  return Deno.listenTls({
    hostname,
    port,
    cert,
    key,
    reusePort: options.reusePort,
  });
}

/**
 * Accepts connections until the listener closes or `isClosing()` says so,
 * handing each to `onConnection`. A failing accept (too many open files)
 * is logged and retried after a short pause instead of spinning.
 *
 * @example
 * ```ts ignore
 * await acceptConnections(listener, () => closing, (conn) => handle(conn));
 * ```
 *
 * @param listener The listener.
 * @param isClosing Whether to stop.
 * @param onConnection Takes each accepted connection.
 * @returns When accepting has stopped.
 */
export async function acceptConnections(
  listener: Deno.Listener,
  isClosing: () => boolean,
  onConnection: (conn: Deno.Conn) => void,
): Promise<void> {
  while (!isClosing()) {
    let conn: Deno.Conn;
    try {
      conn = await listener.accept();
    } catch (error) {
      if (isClosing() || error instanceof Deno.errors.BadResource) break;
      console.error("wstream: accept failed:", error);
      await new Promise((resolve) => setTimeout(resolve, 100));
      continue;
    }
    if (isClosing()) {
      closeQuietly(conn);
      break;
    }
    onConnection(conn);
  }
}

/**
 * Answers a connection over the limit with 503 and `Retry-After`, bounded
 * in time: a full buffer or a slow peer only delays this connection.
 *
 * @example
 * ```ts ignore
 * if (open >= maxConnections) await refuseBusy(conn, maxConnections);
 * ```
 *
 * @param conn The connection.
 * @param maxConnections The limit, for the message.
 * @returns When the connection is closed.
 */
export async function refuseBusy(
  conn: Deno.Conn,
  maxConnections: number,
): Promise<void> {
  const bytes = buildErrorResponse(
    503,
    `expected at most ${maxConnections} connections at once; try again later`,
    [["Retry-After", "1"]],
  );
  const timer = setTimeout(() => closeQuietly(conn), 1000);
  try {
    await writeAll(conn, bytes);
    await lingeringClose(conn, 200);
  } catch {
    closeQuietly(conn);
  } finally {
    clearTimeout(timer);
  }
}
