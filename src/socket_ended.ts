/**
 * When a socket has ended, for the server's handler runner: read or
 * listened for without a promise (and its reaction) per socket, and
 * without a public member on {@linkcode WebSocketConnection}. Separate from
 * connection.ts because it is the runner's view of a socket, not part of
 * driving one; the socket provides the accessors once, from its static
 * block. Not exported from `mod.ts`.
 *
 * @module
 */

import type { WebSocketConnection } from "./connection.ts";

// Set by WebSocketConnection's static block (see provideSocketEnds).
let endedOf: (socket: WebSocketConnection) => boolean;
let listenForEnd: (socket: WebSocketConnection, listener: () => void) => void;

/**
 * Called once, by {@linkcode WebSocketConnection}'s static block: how a
 * socket's end is read and listened for, without a public member.
 *
 * @example
 * ```ts ignore
 * provideSocketEnds(
 *   (socket) => socket.#core.ended,
 *   (socket, listener) => socket.#endListener = listener,
 * );
 * ```
 *
 * @param ended Whether the socket has ended.
 * @param listen Calls the listener once the socket has ended (at once when
 * it has).
 */
export function provideSocketEnds(
  ended: (socket: WebSocketConnection) => boolean,
  listen: (socket: WebSocketConnection, listener: () => void) => void,
): void {
  endedOf = ended;
  listenForEnd = listen;
}

/**
 * Whether a socket has ended (closed or failed, its `closed` settled or
 * settling), read without a promise reaction per socket. For the server's
 * handler runner; not exported from `mod.ts`.
 *
 * @example
 * ```ts
 * import { WebSocketConnection } from "./connection.ts";
 * import { socketEnded } from "./socket_ended.ts";
 * import { assert } from "@std/assert";
 *
 * const socket = new WebSocketConnection({
 *   role: "server",
 *   transport: { readable: new ReadableStream(), writable: new WritableStream() },
 *   closeTimeoutMs: 10,
 * });
 * assert(!socketEnded(socket));
 * socket.close();
 * await socket.closed;
 * assert(socketEnded(socket));
 * ```
 *
 * @param socket The socket.
 * @returns Whether it has ended.
 */
export function socketEnded(socket: WebSocketConnection): boolean {
  return endedOf(socket);
}

/**
 * Calls `listener` once the socket has ended (at once when it has), without
 * a promise: the server's handler runner waits so for every socket. One
 * listener per socket; not exported from `mod.ts`.
 *
 * @example
 * ```ts
 * import { WebSocketConnection } from "./connection.ts";
 * import { whenSocketEnded } from "./socket_ended.ts";
 * import { assert } from "@std/assert";
 *
 * const socket = new WebSocketConnection({
 *   role: "server",
 *   transport: { readable: new ReadableStream(), writable: new WritableStream() },
 *   closeTimeoutMs: 10,
 * });
 * let ended = false;
 * whenSocketEnded(socket, () => ended = true);
 * socket.close();
 * await socket.closed;
 * assert(ended);
 * ```
 *
 * @param socket The socket.
 * @param listener Called once it has ended.
 */
export function whenSocketEnded(
  socket: WebSocketConnection,
  listener: () => void,
): void {
  listenForEnd(socket, listener);
}
