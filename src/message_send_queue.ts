/**
 * How a socket without wstream's codec takes a {@linkcode PreparedMessage}:
 * `upgrade()`'s socket runs on Deno's own server WebSocket, which takes
 * messages, not pre-encoded frames, so each message is sent to it once per
 * socket, with the same order and slow-subscriber rules as shared frames.
 *
 * @module
 */

import type { PreparedMessage } from "./prepared_message.ts";
import {
  type PreparedSender,
  QueueResult,
  type QueueResultValue,
} from "./prepared_queue.ts";

/** The part of a WHATWG `WebSocket` a {@linkcode MessageSendQueue} uses. */
export type SendingWebSocket = Pick<
  WebSocket,
  "readyState" | "bufferedAmount" | "send"
>;

// WebSocket.CONNECTING and WebSocket.OPEN (WHATWG).
const CONNECTING = 0;
const OPEN = 1;

/**
 * A {@linkcode PreparedSender} over a WHATWG-shaped WebSocket: a message is
 * sent with `send()` (text as the string, binary as the bytes), in the
 * order `send()` is called, so after every message the socket accepted
 * before it. Messages that come before the socket opens wait for
 * {@linkcode MessageSendQueue.opened}. A socket whose `bufferedAmount`
 * passes the limit takes no more (`Full`).
 *
 * @example
 * ```ts
 * import { MessageSendQueue } from "./message_send_queue.ts";
 * import { PreparedMessage } from "./prepared_message.ts";
 * import { QueueResult } from "./prepared_queue.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const sent: (string | BufferSource)[] = [];
 * const ws = { readyState: 1, bufferedAmount: 0, send: (m: string | BufferSource) => void sent.push(m) };
 * const queue = new MessageSendQueue(ws, 1024);
 * assertEquals(queue.queue(new PreparedMessage("hi")), QueueResult.Queued);
 * assertEquals(sent, ["hi"]);
 * ws.bufferedAmount = 2048;
 * assertEquals(queue.queue(new PreparedMessage("more")), QueueResult.Full);
 * ```
 */
export class MessageSendQueue implements PreparedSender {
  readonly #ws: SendingWebSocket;
  readonly #maxBufferedBytes: number;
  // Messages that came before the socket opened.
  #held: PreparedMessage[] = [];
  #heldBytes = 0;

  /**
   * Makes the queue of one socket.
   *
   * @param ws The socket's WebSocket.
   * @param maxBufferedBytes The default limit of
   * {@linkcode MessageSendQueue.queue}.
   */
  constructor(ws: SendingWebSocket, maxBufferedBytes: number) {
    this.#ws = ws;
    this.#maxBufferedBytes = maxBufferedBytes;
  }

  /**
   * Sends `message` now, or once the socket opens; see
   * {@linkcode PreparedSender.queue}.
   *
   * @param message The message.
   * @param limit The bytes that may wait.
   * @returns Whether it was queued, and why not.
   */
  queue(message: PreparedMessage, limit?: number): QueueResultValue {
    const ws = this.#ws;
    const state = ws.readyState;
    if (state !== CONNECTING && state !== OPEN) return QueueResult.Closed;
    if (
      ws.bufferedAmount + this.#heldBytes > (limit ?? this.#maxBufferedBytes)
    ) return QueueResult.Full;
    if (state === CONNECTING) {
      this.#held.push(message);
      this.#heldBytes += message.payload.length;
      return QueueResult.Queued;
    }
    if (this.#held.length > 0) this.opened();
    ws.send(message.text ?? message.payload);
    return QueueResult.Queued;
  }

  /**
   * The socket opened: the messages that came before are sent, first (or
   * dropped, when it closed instead).
   */
  opened(): void {
    const held = this.#held;
    if (held.length === 0) return;
    this.#held = [];
    this.#heldBytes = 0;
    const ws = this.#ws;
    if (ws.readyState !== OPEN) return;
    for (const message of held) ws.send(message.text ?? message.payload);
  }
}
