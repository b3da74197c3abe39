/**
 * What a socket is made from and how it ends: the options every socket
 * takes, the compression it is given, the init of
 * {@linkcode WebSocketConnection}, and its {@linkcode CloseResult}.
 *
 * @module
 */

import type { CloseInfo } from "./close_payload.ts";
import type { MessageInflater } from "./message_assembler.ts";
import type { Transport } from "./transport.ts";

/**
 * Options every socket takes, from {@linkcode connect} and {@linkcode serve}.
 *
 * @example
 * ```ts
 * import type { WebSocketOptions } from "@wstream/wstream";
 *
 * const options: WebSocketOptions = {
 *   maxMessageBytes: 1024 * 1024, // 1 MiB messages at most (1009 beyond)
 *   closeTimeoutMs: 2000,
 *   pingIntervalMs: 30_000, // keep-alive: a Ping every 30 s,
 *   pongTimeoutMs: 10_000, // and 1006 when its Pong is 10 s late
 * };
 * ```
 */
export interface WebSocketOptions {
  /**
   * The largest message accepted, in bytes (inflated bytes when compressed);
   * a larger one fails the connection with 1009. Default 64 MiB.
   */
  maxMessageBytes?: number;
  /** The largest frame accepted, in bytes; else 1009. Default 64 MiB. */
  maxFrameBytes?: number;
  /**
   * How long to wait for the peer's Close after sending ours, and for the
   * application to finish after the peer's Close, before the TCP connection
   * is ended. Default 5000 ms.
   */
  closeTimeoutMs?: number;
  /** Send a Ping every this many milliseconds; 0 (the default) sends none. */
  pingIntervalMs?: number;
  /**
   * Fail the socket (1006) when no Pong arrives this many milliseconds after
   * a keep-alive Ping. Default: `pingIntervalMs`.
   */
  pongTimeoutMs?: number;
  /**
   * The bytes that may wait for the TCP connection before `writable` applies
   * backpressure. Default 1 MiB.
   */
  maxBufferedBytes?: number;
  /**
   * The largest frame payload this end sends: a longer message (or stream
   * chunk) is sent in fragments of this size (RFC 6455 §5.4), one after the
   * other as the connection takes them, so a Ping, Pong or Close waits
   * behind one fragment, never behind a whole huge message. `Infinity`
   * sends every message as one frame. Default 16 MiB: messages up to 16 MiB
   * (nearly all, and the largest the Autobahn testsuite sends) stay single
   * frames, which a receiver such as ours hands out without a copy, while a
   * 1 GiB message no longer holds a Ping back for the whole of it. Lower it
   * on slow links together with keep-alive (16 MiB takes 1.3 s at
   * 100 Mbit/s).
   */
  maxOutgoingFrameBytes?: number;
  /**
   * How `readable` hands out messages: `"whole"` (the default) yields each
   * message once all of it arrived (text as `string`, binary as
   * `Uint8Array`, at most `maxMessageBytes`); `"stream"` yields each one as
   * it starts, as a {@linkcode MessageStream} (`{ type, stream }`) whose
   * `stream` carries its payload as it arrives. See `MessageStream` for the
   * rules of that mode.
   */
  messages?: "whole" | "stream";
}

/**
 * Compresses and inflates messages once permessage-deflate is negotiated
 * (RFC 7692).
 *
 * @example
 * ```ts
 * import type { MessageDeflate } from "@wstream/wstream";
 *
 * // A MessageDeflate that never compresses: every message goes as it is.
 * const identity: MessageDeflate = {
 *   inflater: { inflate: (payload) => Promise.resolve(payload) },
 *   deflate: () => undefined,
 * };
 * ```
 */
export interface MessageDeflate {
  /** Inflates received compressed messages. */
  inflater: MessageInflater;
  /**
   * Compresses a whole message, with the trailing `00 00 ff ff` removed
   * (RFC 7692 §7.2.1), or returns `undefined` to send it uncompressed.
   */
  deflate(message: Uint8Array): Promise<Uint8Array> | Uint8Array | undefined;
  /**
   * Compresses one piece of a message sent in fragments (RFC 7692 §6.1),
   * always: each piece ends with a sync flush, and the last (`fin`) has its
   * trailing `00 00 ff ff` removed. Without it, streamed messages go
   * uncompressed.
   */
  deflateFragment?(bytes: Uint8Array, fin: boolean): Promise<Uint8Array>;
  /**
   * Frees the compressor's memory when the connection ends, rather than at
   * garbage collection.
   */
  close?(): void;
}

/**
 * What {@linkcode WebSocketConnection} is built from.
 *
 * @example
 * ```ts
 * import { type ConnectionInit, WebSocketConnection } from "@wstream/wstream";
 *
 * // A WebSocket over an already upgraded connection (here, in-memory streams).
 * const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
 * const init: ConnectionInit = {
 *   transport: { readable, writable },
 *   role: "server",
 *   closeTimeoutMs: 100,
 * };
 * const socket = new WebSocketConnection(init);
 * socket.close();
 * await socket.closed;
 * ```
 */
export interface ConnectionInit extends WebSocketOptions {
  /** The connection the WebSocket runs on, after the opening handshake. */
  transport: Transport;
  /** Whether this end is the client (it masks its frames) or the server. */
  role: "client" | "server";
  /** The negotiated subprotocol, "" when none. */
  protocol?: string;
  /** The negotiated `Sec-WebSocket-Extensions` value, "" when none. */
  extensions?: string;
  /** Bytes read after the HTTP head: the first bytes of the WebSocket. */
  leftover?: Uint8Array;
  /** Set when permessage-deflate was negotiated. */
  deflate?: MessageDeflate;
}

/**
 * How a socket ended, as {@linkcode WebSocketConnection.closed} reports it.
 *
 * @example
 * ```ts
 * import { connect, serve, type CloseResult } from "@wstream/wstream";
 * import { assertEquals } from "@std/assert";
 *
 * await using server = serve({ port: 0, hostname: "127.0.0.1" }, (socket) =>
 *   socket.readable.pipeTo(socket.writable)
 * );
 * const socket = await connect(`ws://127.0.0.1:${server.addr.port}/`);
 * socket.close({ closeCode: 4000, reason: "done" });
 * const result: CloseResult = await socket.closed;
 * assertEquals(result, { closeCode: 4000, reason: "done", wasClean: true });
 * ```
 */
export interface CloseResult extends CloseInfo {
  /**
   * Whether the closing handshake completed: a Close frame went each way
   * before the TCP connection ended.
   */
  wasClean: boolean;
}
