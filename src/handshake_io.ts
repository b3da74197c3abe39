/**
 * Small socket helpers shared by `connect()` and `serve()` for the time
 * before a connection becomes a WebSocket.
 *
 * @module
 */

import type { WebSocketOptions } from "./socket_options.ts";

/**
 * A connection as the handshake code writes to and ends it: a `Deno.Conn`
 * has all of it, and so does the transport over a `node:http` socket.
 */
export interface ByteConn {
  /** Reads bytes into `buffer`: the count, or `null` at EOF. */
  read(buffer: Uint8Array): Promise<number | null>;
  /** Writes bytes: the count written, possibly fewer than given. */
  write(bytes: Uint8Array): Promise<number>;
  /** Ends our direction (TCP FIN); the peer's may still send. */
  closeWrite(): Promise<void>;
  /** Ends the connection at once. */
  close(): void;
}

/** The default time for the whole opening handshake: 10 s. */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;

const SOCKET_OPTION_NAMES = [
  "maxMessageBytes",
  "maxFrameBytes",
  "closeTimeoutMs",
  "pingIntervalMs",
  "pongTimeoutMs",
  "maxBufferedBytes",
  "maxOutgoingFrameBytes",
  "messages",
] as const satisfies readonly (keyof WebSocketOptions)[];

/**
 * The {@linkcode WebSocketOptions} part of `connect()` or `serve()` options,
 * to pass on to the socket.
 *
 * @example
 * ```ts
 * import { pickSocketOptions } from "./handshake_io.ts";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(pickSocketOptions({ closeTimeoutMs: 1, port: 1 } as never), {
 *   closeTimeoutMs: 1,
 * });
 * ```
 *
 * @param options The options of connect() or serve().
 * @returns Only the socket options that are set.
 */
export function pickSocketOptions(options: WebSocketOptions): WebSocketOptions {
  const picked: WebSocketOptions = {};
  for (const name of SOCKET_OPTION_NAMES) {
    if (options[name] !== undefined) {
      (picked as Record<string, unknown>)[name] = options[name];
    }
  }
  return picked;
}

/**
 * Writes all of `bytes` to a connection (`conn.write` may write only part).
 *
 * @example
 * ```ts ignore
 * import { writeAll } from "./handshake_io.ts";
 *
 * const conn = await Deno.connect({ port: 8080 });
 * await writeAll(conn, new TextEncoder().encode("GET / HTTP/1.1\r\n\r\n"));
 * conn.close();
 * ```
 *
 * @param conn The connection.
 * @param bytes What to write.
 */
export async function writeAll(
  conn: Pick<ByteConn, "write">,
  bytes: Uint8Array,
): Promise<void> {
  // The first write takes `bytes` itself: it nearly always writes them all.
  if (bytes.length === 0) return;
  let written = await conn.write(bytes);
  while (written < bytes.length) {
    written += await conn.write(bytes.subarray(written));
  }
}

/**
 * Closes a connection, ignoring that it may be closed already.
 *
 * @example
 * ```ts ignore
 * import { closeQuietly } from "./handshake_io.ts";
 *
 * const conn = await Deno.connect({ port: 8080 });
 * closeQuietly(conn);
 * closeQuietly(conn); // no error
 * ```
 *
 * @param conn The connection.
 */
export function closeQuietly(conn: Pick<ByteConn, "close">): void {
  try {
    conn.close();
  } catch {
    // Already closed.
  }
}

/**
 * Ends a connection after an HTTP response without losing the response:
 * closing a socket with unread input makes the kernel send a reset, which
 * can destroy the response before the peer reads it. So this half-closes,
 * then reads and discards what the peer still sends (at most `maxBytes`, for
 * at most `timeoutMs`), then closes.
 *
 * @example
 * ```ts ignore
 * import { lingeringClose, writeAll } from "./handshake_io.ts";
 *
 * const conn = await Deno.connect({ port: 8080 });
 * await writeAll(conn, new TextEncoder().encode("HTTP/1.1 400 Bad Request\r\n\r\n"));
 * await lingeringClose(conn);
 * ```
 *
 * @param conn The connection.
 * @param timeoutMs The longest time to wait for the peer to close.
 * @param maxBytes The most bytes to read and discard.
 */
export async function lingeringClose(
  conn: ByteConn,
  timeoutMs = 1000,
  maxBytes = 1024 * 1024,
): Promise<void> {
  const timer = setTimeout(() => closeQuietly(conn), timeoutMs);
  try {
    await conn.closeWrite();
    const buffer = new Uint8Array(16 * 1024);
    let read = 0;
    while (read < maxBytes) {
      const n = await conn.read(buffer);
      if (n === null) break;
      read += n;
    }
  } catch {
    // Reset or closed by the timer: either way, done.
  } finally {
    clearTimeout(timer);
    closeQuietly(conn);
  }
}
