/**
 * Running a server's handler on an accepted socket: what `serve()` and
 * `handleUpgrade()` share once the opening handshake is done.
 *
 * @module
 */

import { applicationStarted } from "./close_answer.ts";
import { CloseCode } from "./close_code.ts";
import type { WebSocketConnection } from "./connection.ts";
import type { HandshakeState } from "./handshake_responder.ts";
import type { Message } from "./message_assembler.ts";
import type { MessageStream } from "./message_stream.ts";
import { socketEnded, whenSocketEnded } from "./socket_ended.ts";
import { WebSocketError } from "./websocket_error.ts";

/**
 * Handles one accepted WebSocket. When it throws (or rejects), its socket is
 * closed with 1011 and the error is logged; the server keeps serving.
 * (Errors the socket itself raised, e.g. a pipe broken by the peer failing
 * the connection or by `shutdown()`, are not logged.) `M` is what the
 * socket's `readable` yields: {@linkcode MessageStream} for a server with
 * `messages: "stream"`.
 *
 * @example Route by path
 * ```ts
 * import type { WebSocketHandler } from "@wstream/wstream";
 *
 * const handler: WebSocketHandler = async (socket, request) => {
 *   if (new URL(request.url).pathname !== "/echo") {
 *     socket.close({ closeCode: 4004, reason: "no such room" });
 *     return;
 *   }
 *   await socket.readable.pipeTo(socket.writable);
 * };
 * ```
 */
export type WebSocketHandler<M extends Message | MessageStream = Message> = (
  socket: WebSocketConnection<M>,
  request: Request,
) => void | Promise<void>;

const GOING_AWAY = {
  closeCode: CloseCode.GoingAway,
  reason: "server shutting down",
} as const;

/**
 * Calls `handler` with the socket and request a handshake left in `state`
 * (which then lets go of the request: while a socket is open, only the
 * handler decides whether its request stays in memory), closes the socket
 * with 1011 when the handler fails, and calls `done` once the socket has
 * ended and the handler has returned. A server that began shutting down
 * during the handshake closes the socket with 1001 instead of calling the
 * handler.
 *
 * A callback rather than a promise, and no `async` frame: an idle socket
 * then keeps no suspended function of ours, only a reaction to the
 * handler's promise and a listener for its end.
 *
 * @example
 * ```ts ignore
 * const state = { timedOut: false };
 * if (await responder.readAndAnswer(conn, state)) {
 *   runHandler(handler, state, () => false, () => console.log("gone"));
 * }
 * ```
 *
 * @param handler The application's handler.
 * @param state An accepted handshake (`socket` and `request` set).
 * @param isClosing Whether the server shuts down.
 * @param done Called once when the socket has ended and the handler has
 * returned.
 */
export function runHandler(
  handler: WebSocketHandler,
  state: HandshakeState,
  isClosing: () => boolean,
  done: () => void,
): void {
  const socket = state.socket!;
  if (isClosing()) {
    // shutdown() ran during the handshake: say goodbye properly.
    closeGoingAway(socket);
    whenSocketEnded(socket, done);
    return;
  }
  let returned;
  try {
    returned = callHandler(handler, state);
  } catch (error) {
    handlerFailed(socket, isClosing, error);
    whenSocketEnded(socket, done);
    return;
  }
  // The handler's synchronous part has run: a Close from now on is
  // answered without a timer unless it writes (see close_answer.ts).
  applicationStarted(socket);
  if (!isPromiseLike(returned)) {
    whenSocketEnded(socket, done);
    return;
  }
  Promise.resolve(returned).then(
    () => whenSocketEnded(socket, done),
    (error) => {
      handlerFailed(socket, isClosing, error);
      whenSocketEnded(socket, done);
    },
  );
}

// The handler threw or rejected: log it unless the socket itself raised
// the error, and close the socket with 1011.
function handlerFailed(
  socket: WebSocketConnection,
  isClosing: () => boolean,
  error: unknown,
): void {
  // Errors the socket itself raised (the peer failed it, or the socket was
  // closed under a pipe by shutdown()) are not handler bugs. (Read now
  // rather than through a reaction on `closed`: that would cost every idle
  // socket a promise and a closure.)
  if (
    !isClosing() && !socketEnded(socket) &&
    !(error instanceof WebSocketError)
  ) {
    console.error(
      "wstream: the WebSocket handler threw; closing its socket with 1011:",
      error,
    );
  }
  try {
    socket.close({
      closeCode: CloseCode.InternalError,
      reason: "internal error",
    });
  } catch {
    // Closed already.
  }
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | undefined)?.then ===
    "function";
}

/**
 * Closes a server's socket with 1001 (Going Away), as shutdown does.
 *
 * @example
 * ```ts ignore
 * closeGoingAway(socket); // Close 1001 "server shutting down"
 * ```
 *
 * @param socket The socket.
 */
export function closeGoingAway(socket: WebSocketConnection): void {
  try {
    socket.close(GOING_AWAY);
  } catch {
    // Closing already.
  }
}

// A function of its own so that the caller's frame holds no request.
function callHandler(
  handler: WebSocketHandler,
  state: HandshakeState,
): void | Promise<void> {
  const request = state.request!;
  state.request = undefined;
  return handler(state.socket!, request);
}
