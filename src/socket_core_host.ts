/**
 * What a {@linkcode SocketCore} needs from its driver: a sink for the frames
 * it sends, and a host for the events it reports and the timers it asks
 * for. The socket ({@linkcode WebSocketConnection}) implements them over a
 * transport; a test implements them in memory.
 *
 * @module
 */

import type { CloseInfo } from "./close_payload.ts";
import type { Opcode } from "./frame.ts";
import type { Message } from "./message_assembler.ts";
import type { WebSocketError } from "./websocket_error.ts";

/**
 * Where a socket core's frames go, in order: the write queue, or a test's
 * recorder. Masking (RFC 6455 §5.3) is the sink's, by role.
 */
export interface FrameSink {
  /**
   * Queues one frame.
   *
   * @param opcode The frame's opcode (a continuation for a later fragment).
   * @param payload Its payload, which the sink never modifies.
   * @param rsv1 Whether the message is compressed (RFC 7692 §6).
   * @param fin Whether it is the message's last frame; default `true`.
   * @returns `true` when the queued bytes still view `payload`, which must
   * then stay unchanged until written.
   */
  sendFrame(
    opcode: Opcode,
    payload: Uint8Array,
    rsv1: boolean,
    fin?: boolean,
  ): boolean;
}

/**
 * The timers a socket core asks its driver for: the keep-alive Ping's
 * interval, the wait for its Pong, and the close timeout.
 */
export type TimerKind = "ping" | "pong" | "close";

/**
 * What a socket core tells its driver, in the order things happen: the
 * messages received, then the peer's Close or a failure, then the end. The
 * `closeCode`, `reason` and `wasClean` of the last two are what the
 * socket's `closed` reports.
 */
export interface SocketCoreHost {
  /**
   * A message arrived whole; a binary one may be a view of `bytes`, the
   * received bytes it was decoded from.
   */
  message(message: Message, bytes: Uint8Array): void;
  /**
   * In the `messages: "stream"` mode, instead of `message`: a data frame's
   * payload (checked: size, UTF-8), possibly a view of `bytes`.
   */
  fragment?(
    text: boolean,
    payload: Uint8Array,
    first: boolean,
    fin: boolean,
    bytes: Uint8Array,
  ): void;
  /**
   * The peer's Close arrived: no message follows. While
   * {@linkcode SocketCore.closeSent} is unset, the driver answers it with
   * {@linkcode SocketCore.close}, now or once the application has finished
   * writing ({@linkcode SocketCore.waitForAnswer} bounds that wait).
   */
  closeReceived(info: CloseInfo): void;
  /**
   * The connection failed (or ended without a Close): no message follows,
   * and `readable` fails with `error` once the application has read the
   * messages before it. The driver reports that moment (at once when none
   * are waiting) with {@linkcode SocketCore.messagesRead}; until then the
   * application may still send its answers to them.
   */
  failed(error: WebSocketError): void;
  /**
   * No more messages may be sent after a failure: `writable` fails with
   * `error`. Our Close (if any) and the end follow.
   */
  stopSending(error: WebSocketError): void;
  /**
   * Once the frames queued have been written (or could not be), call
   * {@linkcode SocketCore.end} with these arguments.
   */
  endWhenWritten(closeCode: number, reason: string, wasClean: boolean): void;
  /** The socket has ended: release the transport and everyone waiting. */
  ended(closeCode: number, reason: string, wasClean: boolean): void;
  /**
   * Call {@linkcode SocketCore.onTimer} with `kind` after `delayMs`,
   * replacing the timer of that kind if one is set.
   */
  setTimer(kind: TimerKind, delayMs: number): void;
  /** Cancel the timer of `kind`, if one is set. */
  clearTimer(kind: TimerKind): void;
}
