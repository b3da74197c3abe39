/**
 * The sans-I/O core of a socket: the protocol state (open, closing,
 * closed), the closing handshake (RFC 6455 §7), ping/pong (§5.5.2-3), the
 * decisions of keep-alive and failing the connection with a close code.
 * It is fed received bytes, messages to send, close requests and timer
 * expiries; it hands frames to a {@linkcode FrameSink} and events to a
 * {@linkcode SocketCoreHost}. It has no transport, no timers, no streams and
 * no awaits: the one promise it meets, a compressed frame being inflated,
 * it hands back to its driver, who awaits it and feeds the result back.
 *
 * @module
 */

import { CloseCode, isValidCloseCode } from "./close_code.ts";
import {
  type CloseInfo,
  encodeClosePayload,
  parseClosePayload,
  truncateCloseReason,
} from "./close_payload.ts";
import { type Frame, Opcode } from "./frame.ts";
import { FrameReceiver } from "./frame_receiver.ts";
import { KeepAlive } from "./keep_alive.ts";
import { settlePublications } from "./shared_flush.ts";
import type { Message, MessageInflater } from "./message_assembler.ts";
import type {
  FrameSink,
  SocketCoreHost,
  TimerKind,
} from "./socket_core_host.ts";
import { WebSocketError } from "./websocket_error.ts";

/** The default close timeout: 5000 ms. */
export const DEFAULT_CLOSE_TIMEOUT_MS = 5000;

const EMPTY_BYTES = new Uint8Array(0);
// The Close most sockets send (an echo of the peer's 1000, or our own),
// made once: the write queue copies a Close's payload and never modifies it.
const NORMAL_CLOSURE_BYTES = encodeClosePayload(CloseCode.NormalClosure);

/** What a {@linkcode SocketCore} is built from. */
export interface SocketCoreInit {
  /** Whether this end is the client or the server. */
  role: "client" | "server";
  /** Where frames go. */
  sink: FrameSink;
  /** Who hears the events. */
  host: SocketCoreHost;
  /** The largest message accepted; else 1009. Default 64 MiB. */
  maxMessageBytes?: number;
  /** The largest frame accepted; else 1009. Default 64 MiB. */
  maxFrameBytes?: number;
  /** Inflates compressed messages, when permessage-deflate was negotiated. */
  inflater?: MessageInflater;
  /** How long each step of closing may wait. Default 5000 ms. */
  closeTimeoutMs?: number;
  /** Send a Ping every this many milliseconds; 0 (the default) sends none. */
  pingIntervalMs?: number;
  /** Fail (1006) when a keep-alive Ping's Pong is this late. */
  pongTimeoutMs?: number;
  /**
   * `"stream"`: payloads go to {@linkcode SocketCoreHost.fragment} as they
   * arrive, instead of whole messages to `message`. Default `"whole"`.
   */
  messages?: "whole" | "stream";
}

// What the close timer is waiting for, so its expiry does the right thing.
const CloseWait = {
  // Our Close was sent: the peer's Close (else 1006).
  PeerClose: 1,
  // The handshake completed: the server ending TCP (RFC 6455 §7.1.1).
  TransportEnd: 2,
  // We failed the connection: our Close leaving.
  Failure: 3,
  // The peer's Close arrived: the application answering it.
  Answer: 4,
  // We failed the connection: the application reading the messages before
  // the failure (and answering them), before our Close is sent.
  FailureHeld: 5,
} as const;
type CloseWait = typeof CloseWait[keyof typeof CloseWait];

/**
 * One WebSocket's protocol, without I/O: bytes in, frames and events out.
 * The socket ({@linkcode WebSocketConnection}) drives it over a transport;
 * a test drives it in memory.
 *
 * @example A server answers a Ping and the peer's Close
 * ```ts
 * import { SocketCore } from "./socket_core.ts";
 * import { encodeFrame } from "./frame_encoder.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const sent: Uint8Array[] = [];
 * const events: string[] = [];
 * const core = new SocketCore({
 *   role: "server",
 *   sink: {
 *     sendFrame(opcode, payload, rsv1, fin = true) {
 *       sent.push(...encodeFrame({ opcode, payload, rsv1, fin }, false));
 *       return false;
 *     },
 *   },
 *   host: {
 *     message: (message) => void events.push(`message ${message}`),
 *     closeReceived: () => core.close(),
 *     failed: (error) => void events.push(`failed ${error.closeCode}`),
 *     stopSending() {},
 *     endWhenWritten: (code, reason, clean) => core.end(code, reason, clean),
 *     ended: (code, _, clean) => void events.push(`ended ${code} ${clean}`),
 *     setTimer() {},
 *     clearTimer() {},
 *   },
 * });
 * // A masked Ping "a", then a masked Close 1000 (all-zero masking keys).
 * const bytes = new Uint8Array([
 *   0x89, 0x81, 0, 0, 0, 0, 0x61,
 *   0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8,
 * ]);
 * assertEquals(core.receive(bytes), bytes.length);
 * assertEquals(sent, [
 *   new Uint8Array([0x8a, 0x01, 0x61]),
 *   new Uint8Array([0x88, 0x02, 0x03, 0xe8]),
 * ]);
 * assertEquals(events, ["ended 1000 true"]);
 * ```
 */
export class SocketCore {
  readonly #role: "client" | "server";
  readonly #sink: FrameSink;
  readonly #host: SocketCoreHost;
  // Made with the first bytes received: an idle socket has no decoder.
  #receiver: FrameReceiver | undefined;
  readonly #maxMessageBytes: number | undefined;
  readonly #maxFrameBytes: number | undefined;
  readonly #inflater: MessageInflater | undefined;
  readonly #streamed: boolean;
  readonly #closeTimeoutMs: number;
  // Only with keep-alive on.
  readonly #keepAlive: KeepAlive | undefined;

  #closeSent: CloseInfo | undefined;
  #closeReceived: CloseInfo | undefined;
  #closeWait: CloseWait | undefined;
  #failure: WebSocketError | undefined;
  // Whether the failure was sent: `writable` failed and our Close queued.
  #failureSent = false;
  // The peer's direction ended (EOF) after its Close; ours is still open.
  #inputEnded = false;
  #ended = false;

  /**
   * Creates the core of a socket whose opening handshake is done, and
   * starts keep-alive when asked for.
   *
   * @param init The role, the frame sink, the host and the options.
   */
  constructor(init: SocketCoreInit) {
    this.#role = init.role;
    this.#sink = init.sink;
    this.#host = init.host;
    this.#closeTimeoutMs = init.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS;
    this.#maxMessageBytes = init.maxMessageBytes;
    this.#maxFrameBytes = init.maxFrameBytes;
    this.#inflater = init.inflater;
    this.#streamed = init.messages === "stream";
    const pingIntervalMs = init.pingIntervalMs ?? 0;
    if (pingIntervalMs > 0) {
      this.#keepAlive = new KeepAlive(
        init.sink,
        init.host,
        pingIntervalMs,
        init.pongTimeoutMs ?? pingIntervalMs,
      );
      this.#keepAlive.schedule();
    }
  }

  #receiverOf(): FrameReceiver {
    if (this.#receiver !== undefined) return this.#receiver;
    const host = this.#host;
    return this.#receiver = new FrameReceiver({
      role: this.#role,
      maxMessageBytes: this.#maxMessageBytes,
      maxFrameBytes: this.#maxFrameBytes,
      inflater: this.#inflater,
      onMessage: (message, bytes) => host.message(message, bytes),
      onControlFrame: (frame) => this.#onControlFrame(frame),
      onFragment: this.#streamed
        ? (text, payload, first, fin, bytes) =>
          host.fragment!(text, payload, first, fin, bytes)
        : undefined,
    });
  }

  /** Our Close, once sent (or queued): no data frame may follow it. */
  get closeSent(): CloseInfo | undefined {
    return this.#closeSent;
  }

  /** The peer's Close, once received: nothing after it is processed. */
  get closeReceived(): CloseInfo | undefined {
    return this.#closeReceived;
  }

  /** Whether the socket has ended. */
  get ended(): boolean {
    return this.#ended;
  }

  /**
   * Whether nothing more is to be read: a server reads nothing after the
   * peer's Close (RFC 6455 §5.5.1), and ends the connection itself once it
   * has answered (§7.1.1), so a pending read would only be interrupted. A
   * client reads on to see the server end it.
   */
  get inputDone(): boolean {
    return this.#closeReceived !== undefined && this.#role === "server";
  }

  /** Whether messages may still be sent: no Close sent, not ended. */
  get sendable(): boolean {
    return this.#closeSent === undefined && !this.#ended;
  }

  /**
   * The size (header and payload) of the last complete frame received; 0
   * before the first. The driver sizes its reads by it.
   */
  get lastFrameBytes(): number {
    return this.#receiver?.lastFrameBytes ?? 0;
  }

  /**
   * The size of the incomplete frame the last {@linkcode SocketCore.receive}
   * left, once its header is complete; else 0.
   */
  get incompleteFrameBytes(): number {
    return this.#receiver?.incompleteFrameBytes ?? 0;
  }

  // ---- receiving --------------------------------------------------------

  /**
   * Decodes the complete frames at the start of `bytes` (unmasking them in
   * place) and hands out their messages and control frames in order.
   *
   * @param bytes Received bytes, starting with the incomplete frame the last
   * call left unused; binary messages may be views of them.
   * @returns The count of bytes used (the rest is an incomplete frame, to be
   * passed again with more bytes after it), or the promise of a frame being
   * inflated: await it, then pass its result to
   * {@linkcode SocketCore.resumeReceive}.
   * @throws {WebSocketError} for a protocol violation (1002, 1007, 1009),
   * after the messages before it were handed out: pass it to
   * {@linkcode SocketCore.fail}.
   */
  receive(bytes: Uint8Array): number | Promise<Message | undefined> {
    // RFC 6455 §5.5.1, §7.1.1: nothing after the peer's Close is processed,
    // not even bytes that are no frame at all; §7.1.7: nor after a failure.
    if (this.#closeReceived || this.#failure) return bytes.length;
    return this.#receiverOf().receive(bytes);
  }

  /**
   * Goes on with the chunk {@linkcode SocketCore.receive} stopped in, once
   * the frame it waited for is inflated.
   *
   * @param message What the awaited promise resolved to.
   * @returns As {@linkcode SocketCore.receive}.
   * @throws {WebSocketError} as {@linkcode SocketCore.receive}.
   */
  resumeReceive(
    message: Message | undefined,
  ): number | Promise<Message | undefined> {
    // RFC 6455 §7.1.7: nothing is processed after a failure (keep-alive's,
    // while the frame was inflated).
    const receiver = this.#receiverOf();
    if (this.#failure) return receiver.abandon();
    return receiver.resume(message);
  }

  #onControlFrame(frame: Frame): void {
    switch (frame.opcode) {
      case Opcode.Ping:
        // RFC 6455 §5.5.2: answer with a Pong carrying the same payload, as
        // soon as practical, also between the fragments of a message.
        if (!this.#closeSent) {
          this.#sink.sendFrame(Opcode.Pong, frame.payload, false);
        }
        break;
      case Opcode.Pong:
        // RFC 6455 §5.5.3: a Pong answers our Ping (an unsolicited one is
        // a heartbeat and is not answered).
        this.#keepAlive?.pongReceived();
        break;
      case Opcode.Close:
        this.#onClose(parseClosePayload(frame.payload));
        break;
    }
  }

  #onClose(info: CloseInfo): void {
    this.#closeReceived = info;
    // When our Close went first, this one completes the handshake; else
    // the host answers it (which completes it).
    const answered = this.#closeSent !== undefined;
    this.#host.closeReceived(info);
    if (answered) this.#closeHandshakeDone();
  }

  /**
   * The transport ended: EOF (no `cause`), a reset, or a failed write.
   *
   * @param cause The error, if the transport failed.
   */
  transportEnded(cause?: unknown): void {
    if (this.#ended) return;
    const received = this.#closeReceived;
    const failure = this.#failure;
    if (failure) {
      this.end(
        failure.closeCode ?? CloseCode.AbnormalClosure,
        failure.message,
        false,
      );
      return;
    }
    if (received) {
      if (cause === undefined) {
        // The peer sent Close, then FIN: that ends only its direction. Its
        // Close is still answered (RFC 6455 §5.5.1): by the usual path if
        // not yet, and what is queued is written before the end.
        this.#inputEnded = true;
        if (this.#closeSent === undefined) return;
        this.#host.endWhenWritten(received.closeCode, received.reason, true);
        return;
      }
      this.end(
        received.closeCode,
        received.reason,
        this.#closeSent !== undefined,
      );
      return;
    }
    // RFC 6455 §7.1.5: no Close frame was received: 1006.
    const detail = cause instanceof Error ? `: ${cause.message}` : "";
    const message = this.#receiver?.hasPartialFrame
      ? `the connection ended inside a frame${detail}`
      : `the connection ended without a Close frame${detail}`;
    const error = new WebSocketError(message, {
      closeCode: CloseCode.AbnormalClosure,
    });
    this.#host.failed(error);
    this.#host.stopSending(error);
    this.end(CloseCode.AbnormalClosure, "", false);
  }

  /**
   * Reading the transport failed: a {@linkcode WebSocketError} (thrown by
   * {@linkcode SocketCore.receive}) fails the connection with its code, any
   * other error ends it as the transport's failure.
   *
   * @param error What the read loop caught.
   */
  readFailed(error: unknown): void {
    if (error instanceof WebSocketError) this.fail(error);
    else this.transportEnded(error);
  }

  // ---- sending ----------------------------------------------------------

  /**
   * Sends a data frame: a whole message, or one fragment of one (RFC 6455
   * §5.4: the first with the message's opcode, the rest as continuations,
   * the last with `fin`).
   *
   * @param opcode Text, Binary, or Continuation.
   * @param payload The frame's payload.
   * @param rsv1 Whether the message is compressed (its first frame only).
   * @param fin Whether the frame ends the message; default `true`.
   * @returns `true` when the queued bytes view `payload` (see
   * {@linkcode FrameSink.sendFrame}).
   * @throws {TypeError} once our Close was sent or the socket ended.
   */
  send(
    opcode: Opcode,
    payload: Uint8Array,
    rsv1: boolean,
    fin = true,
  ): boolean {
    this.assertSendable();
    return this.#sink.sendFrame(opcode, payload, rsv1, fin);
  }

  /**
   * Throws unless messages may still be sent.
   *
   * @throws {TypeError} once our Close was sent or the socket ended (RFC
   * 6455 §5.5.1: no data frame follows a Close).
   */
  assertSendable(): void {
    if (this.#closeSent || this.#ended) {
      throw new TypeError(
        "expected an open WebSocket to send on, found it closing or closed",
      );
    }
  }

  /**
   * Sends a Ping (RFC 6455 §5.5.2), unless closing.
   *
   * @param payload At most 125 bytes.
   * @throws {RangeError} for a longer payload.
   */
  ping(payload: Uint8Array): void {
    if (payload.length > 125) {
      throw new RangeError(
        `expected a ping payload of at most 125 bytes, found ${payload.length} bytes`,
      );
    }
    if (this.#closeSent || this.#ended) return;
    this.#sink.sendFrame(Opcode.Ping, payload, false);
  }

  // ---- closing ----------------------------------------------------------

  /**
   * Sends our Close unless it was sent (RFC 6455 §5.5.1): the requested
   * code, else the peer's code when answering its Close, else 1000. Then
   * waits for the peer's Close, up to the close timeout, or completes the
   * handshake when it arrived already. After a failure, the failure's
   * Close is sent instead, now (see {@linkcode SocketCore.fail}).
   *
   * @param request The Close to send (see {@linkcode closeRequest}).
   */
  close(request?: CloseInfo): void {
    if (this.#failure) {
      this.#sendFailure();
      return;
    }
    if (this.#closeSent || this.#ended) return;
    const received = this.#closeReceived;
    let info: CloseInfo;
    if (request) info = request;
    else if (received) info = received;
    else info = { closeCode: CloseCode.NormalClosure, reason: "" };
    // Messages a hub holds were published before this Close.
    settlePublications();
    this.#closeSent = info;
    // 1005 means the peer's Close had no code: the answer has none either.
    const payload = info.closeCode === CloseCode.NoStatusReceived
      ? EMPTY_BYTES
      : info.closeCode === CloseCode.NormalClosure && info.reason === ""
      ? NORMAL_CLOSURE_BYTES
      : encodeClosePayload(info.closeCode, info.reason);
    this.#sink.sendFrame(Opcode.Close, payload, false);
    this.#keepAlive?.stop();
    if (received) {
      this.#closeHandshakeDone();
    } else {
      // RFC 6455 §7.1.1: wait for the peer's Close, but not forever.
      this.#setCloseTimer(CloseWait.PeerClose);
    }
  }

  /**
   * The peer's Close arrived and the application is still writing: it has
   * up to the close timeout to finish, then the Close is answered.
   */
  waitForAnswer(): void {
    if (!this.#closeSent && !this.#ended) {
      this.#setCloseTimer(CloseWait.Answer);
    }
  }

  #closeHandshakeDone(): void {
    // RFC 6455 §7.1.1: the server ends the TCP connection first; the client
    // waits for it to, up to the close timeout.
    const info = this.#closeReceived!;
    if (this.#role === "server" || this.#inputEnded) {
      this.#host.endWhenWritten(info.closeCode, info.reason, true);
    } else {
      this.#setCloseTimer(CloseWait.TransportEnd);
    }
  }

  #setCloseTimer(wait: CloseWait, delayMs = this.#closeTimeoutMs): void {
    this.#closeWait = wait;
    this.#host.setTimer("close", delayMs);
  }

  /**
   * Fails the connection (RFC 6455 §7.1.7). Nothing more is received. The
   * messages that arrived whole before the failure still reach the
   * application first, and what it writes in answer to them is still sent:
   * our Close (with the error's code, when that code may be sent) waits
   * until one task after the application has read them (see
   * {@linkcode SocketCore.messagesRead}), or until it closes (see
   * {@linkcode SocketCore.close}), or the close timeout. The connection ends
   * once that Close has left (or the close timeout passed again).
   *
   * @param error Why, with the close code (1006 when it has none).
   */
  fail(error: WebSocketError): void {
    if (this.#ended || this.#failure) return;
    this.#failure = error;
    this.#keepAlive?.stop();
    // Set first: the host may report at once that no message is waiting.
    this.#setCloseTimer(CloseWait.FailureHeld);
    this.#host.failed(error);
  }

  /**
   * The application has read every message handed out before a failure
   * (or stopped reading): our Close is sent one task later, so that what
   * it writes in answer within this task (a pipe, a read loop, a message
   * handler) goes first. Does nothing without a failure, or once the
   * failure was sent (at the close timeout: its wait for the end stays).
   */
  messagesRead(): void {
    if (this.#failure && !this.#failureSent && !this.#ended) {
      this.#setCloseTimer(CloseWait.FailureHeld, 0);
    }
  }

  // Fails `writable`, sends Close with the failure's code when it may be
  // sent (after the frames already queued), then ends the connection.
  #sendFailure(): void {
    if (this.#ended || this.#failureSent) return;
    this.#failureSent = true;
    const error = this.#failure!;
    this.#host.stopSending(error);
    const code = error.closeCode ?? CloseCode.AbnormalClosure;
    const reason = truncateCloseReason(error.message);
    if (!this.#closeSent && isValidCloseCode(code)) {
      settlePublications();
      this.#closeSent = { closeCode: code, reason };
      this.#sink.sendFrame(
        Opcode.Close,
        encodeClosePayload(code, reason),
        false,
      );
    }
    // Give the Close frame a bounded chance to leave, then end.
    this.#setCloseTimer(CloseWait.Failure);
    this.#host.endWhenWritten(code, reason, false);
  }

  /**
   * Ends the socket, once: timers are cleared and the host hears
   * {@linkcode SocketCoreHost.ended}.
   *
   * @param closeCode The code `closed` reports.
   * @param reason The reason `closed` reports.
   * @param wasClean Whether the closing handshake completed.
   */
  end(closeCode: number, reason: string, wasClean: boolean): void {
    if (this.#ended) return;
    settlePublications();
    this.#ended = true;
    this.#keepAlive?.stop();
    if (this.#closeWait !== undefined) {
      this.#closeWait = undefined;
      this.#host.clearTimer("close");
    }
    this.#host.ended(closeCode, reason, wasClean);
  }

  // ---- time ---------------------------------------------------------------

  /**
   * A timer the core asked for ({@linkcode SocketCoreHost.setTimer}) is due.
   *
   * @param kind Which one.
   */
  onTimer(kind: TimerKind): void {
    if (kind === "close") {
      this.#closeTimeout();
    } else if (kind === "ping") {
      if (!this.#closeSent && !this.#ended) this.#keepAlive?.pingDue();
    } else {
      const late = this.#keepAlive?.pongDue();
      if (late) this.fail(late);
    }
  }

  #closeTimeout(): void {
    const wait = this.#closeWait;
    this.#closeWait = undefined;
    const received = this.#closeReceived;
    switch (wait) {
      case CloseWait.PeerClose:
        this.end(CloseCode.AbnormalClosure, "", false);
        break;
      case CloseWait.TransportEnd:
        this.end(received!.closeCode, received!.reason, true);
        break;
      case CloseWait.Failure: {
        const failure = this.#failure!;
        this.end(
          failure.closeCode ?? CloseCode.AbnormalClosure,
          failure.message,
          false,
        );
        break;
      }
      case CloseWait.Answer:
        this.close();
        break;
      case CloseWait.FailureHeld:
        this.#sendFailure();
        break;
    }
  }
}
