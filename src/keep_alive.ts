/**
 * Keep-alive for a socket core: a Ping every interval, and a deadline for
 * its Pong (RFC 6455 §5.5.2-3). Sans I/O: it asks its host for timers and
 * is told when they are due.
 *
 * @module
 */

import { CloseCode } from "./close_code.ts";
import { Opcode } from "./frame.ts";
import type { FrameSink, SocketCoreHost } from "./socket_core_host.ts";
import { WebSocketError } from "./websocket_error.ts";

const EMPTY_BYTES = new Uint8Array(0);

/** The timers of a {@linkcode KeepAlive}: its host's setTimer and clearTimer. */
export type KeepAliveTimers = Pick<SocketCoreHost, "setTimer" | "clearTimer">;

/**
 * Sends a Ping every `intervalMs` (counted from the last Pong) and says
 * when its Pong is late. Its owner stops it once closing, and reports the
 * timers of kinds `"ping"` and `"pong"` to it.
 *
 * @example A Ping, then its Pong is late
 * ```ts
 * import { KeepAlive } from "./keep_alive.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const timers: string[] = [];
 * const keepAlive = new KeepAlive(
 *   { sendFrame: () => false },
 *   {
 *     setTimer: (kind, delayMs) => void timers.push(`${kind} ${delayMs}`),
 *     clearTimer() {},
 *   },
 *   1000,
 *   500,
 * );
 * keepAlive.schedule();
 * keepAlive.pingDue();
 * assertEquals(timers, ["ping 1000", "pong 500"]);
 * assertEquals(keepAlive.pongDue()?.closeCode, 1006);
 * ```
 */
export class KeepAlive {
  readonly #sink: FrameSink;
  readonly #timers: KeepAliveTimers;
  readonly #intervalMs: number;
  readonly #pongTimeoutMs: number;
  #awaitingPong = false;

  /**
   * Creates a keep-alive; {@linkcode KeepAlive.schedule} starts it.
   *
   * @param sink Where its Pings go.
   * @param timers Sets and clears its timers.
   * @param intervalMs A Ping every this many milliseconds; 0 sends none.
   * @param pongTimeoutMs How long a Ping's Pong may take.
   */
  constructor(
    sink: FrameSink,
    timers: KeepAliveTimers,
    intervalMs: number,
    pongTimeoutMs: number,
  ) {
    this.#sink = sink;
    this.#timers = timers;
    this.#intervalMs = intervalMs;
    this.#pongTimeoutMs = pongTimeoutMs;
  }

  /** Sets the timer of the next Ping, when keep-alive is on. */
  schedule(): void {
    if (this.#intervalMs > 0) this.#timers.setTimer("ping", this.#intervalMs);
  }

  /** The Ping timer is due: sends a Ping and sets the timer of its Pong. */
  pingDue(): void {
    this.#sink.sendFrame(Opcode.Ping, EMPTY_BYTES, false);
    this.#awaitingPong = true;
    this.#timers.setTimer("pong", this.#pongTimeoutMs);
  }

  /**
   * A Pong arrived: when it answers our Ping, the next Ping is counted from
   * now (RFC 6455 §5.5.3: an unsolicited Pong is a heartbeat, and changes
   * nothing).
   */
  pongReceived(): void {
    if (!this.#awaitingPong) return;
    this.#awaitingPong = false;
    this.#timers.clearTimer("pong");
    this.schedule();
  }

  /**
   * The Pong timer is due.
   *
   * @returns The error to fail the socket with (1006) when the Pong is
   * late, else `undefined`.
   */
  pongDue(): WebSocketError | undefined {
    if (!this.#awaitingPong) return undefined;
    this.#awaitingPong = false;
    return new WebSocketError(
      `the peer stopped answering pings: no Pong within ${this.#pongTimeoutMs} ms`,
      { closeCode: CloseCode.AbnormalClosure },
    );
  }

  /** Stops: no more Pings, no Pong awaited. */
  stop(): void {
    if (this.#intervalMs <= 0) return;
    this.#awaitingPong = false;
    this.#timers.clearTimer("ping");
    this.#timers.clearTimer("pong");
  }
}
