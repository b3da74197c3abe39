/**
 * The per-connection handshake deadline of `serve()`: every connection gets
 * the same time from accept to the end of its opening handshake, so one
 * timer serves them all.
 *
 * @module
 */

/** A connection whose opening handshake has a deadline. */
export interface DeadlineEntry {
  /** Closed when the deadline passes: ends the read or write it waits on. */
  readonly conn: { close(): void };
  /** When the opening handshake must be over (`performance.now()` ms). */
  deadline: number;
  /** The deadline passed and the connection was closed. */
  timedOut: boolean;
}

/**
 * The handshakes in progress, oldest first, and the one timer that cuts
 * those past their deadline. All get the same time, so deadlines come in
 * insertion order: the timer only ever looks at the oldest, instead of a
 * timer set and cleared per connection.
 *
 * @example
 * ```ts
 * import { HandshakeDeadlines } from "./handshake_deadline.ts";
 * import { assert } from "@std/assert";
 *
 * const deadlines = new HandshakeDeadlines(10);
 * const entry = { conn: { close() {} }, deadline: 0, timedOut: false };
 * deadlines.start(entry);
 * await new Promise((resolve) => setTimeout(resolve, 30));
 * assert(entry.timedOut);
 * deadlines.stop();
 * ```
 */
export class HandshakeDeadlines {
  readonly #timeoutMs: number;
  readonly #entries = new Set<DeadlineEntry>();
  #timer: ReturnType<typeof setTimeout> | undefined;

  /**
   * Makes an empty set of deadlines.
   *
   * @param timeoutMs The time every handshake gets.
   */
  constructor(timeoutMs: number) {
    this.#timeoutMs = timeoutMs;
  }

  /**
   * Starts an entry's clock: its deadline covers the whole handshake, TLS
   * and the response included.
   *
   * @param entry The connection.
   */
  start(entry: DeadlineEntry): void {
    entry.deadline = performance.now() + this.#timeoutMs;
    this.#entries.add(entry);
    this.#timer ??= setTimeout(this.#expire, this.#timeoutMs);
  }

  /**
   * Stops an entry's clock (its handshake is over, either way).
   *
   * @param entry The connection.
   */
  finish(entry: DeadlineEntry): void {
    this.#entries.delete(entry);
  }

  /** Clears the timer: no entry times out any more. */
  stop(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  readonly #expire = (): void => {
    this.#timer = undefined;
    const now = performance.now();
    for (const entry of this.#entries) {
      if (entry.deadline > now) {
        this.#timer = setTimeout(this.#expire, entry.deadline - now);
        return;
      }
      this.#entries.delete(entry);
      entry.timedOut = true;
      try {
        entry.conn.close();
      } catch {
        // Closed already.
      }
    }
  };
}
