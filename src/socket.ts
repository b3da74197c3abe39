/**
 * The surface every wstream socket offers, whatever runs it: the socket of
 * `serve()`, `connect()` and `handleUpgrade()` (a
 * {@linkcode WebSocketConnection}) and the one `upgrade()` builds on Deno's
 * own server WebSocket inside `Deno.serve`.
 *
 * @module
 */

import type { CloseResult } from "./socket_options.ts";
import type { OutgoingMessage } from "./message_stream_sender.ts";
import type { Message } from "./message_assembler.ts";

/**
 * One WebSocket as a pair of streams: the surface shared by
 * {@linkcode WebSocketConnection} (from `serve()`, `connect()` and
 * `handleUpgrade()`) and the socket `upgrade()` returns inside `Deno.serve`.
 * Code written against `Socket` (a handler, `WebSocket.fromConnection`,
 * `WebSocketStream.fromConnection`) runs on either.
 *
 * @example An echo that works on any wstream socket
 * ```ts
 * import type { Socket } from "@wstream/wstream";
 *
 * async function echo(socket: Socket): Promise<void> {
 *   await socket.readable.pipeTo(socket.writable);
 * }
 * ```
 */
export interface Socket {
  /** The messages received (text as `string`, binary as `Uint8Array`). */
  readonly readable: ReadableStream<Message>;
  /**
   * Messages to send: `string` as text, any `BufferSource` as binary; a
   * stream, `Blob` or `MessageStream` as one message in fragments (not on a
   * socket from `upgrade()`, which refuses them with a `TypeError`).
   */
  readonly writable: WritableStream<OutgoingMessage>;
  /** The negotiated subprotocol, "" when none. */
  readonly protocol: string;
  /** The negotiated extensions (`Sec-WebSocket-Extensions`), "" when none. */
  readonly extensions: string;
  /** Resolves once the socket has ended, with how it ended. */
  readonly closed: Promise<CloseResult>;
  /** The bytes accepted for sending that the connection has not taken yet. */
  readonly bufferedAmount: number;
  /**
   * Starts the closing handshake (RFC 6455 §7.1.2), or completes it after
   * the peer's Close.
   *
   * @param info The close code and a reason of at most 123 bytes of UTF-8.
   */
  close(info?: { closeCode?: number; reason?: string }): void;
}
