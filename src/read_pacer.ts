/**
 * Fair reads across the sockets of a process (issue 18, "fairness and
 * tails"). Deno polls every pending op of a process in one tokio task,
 * which completes at most 128 I/O operations per poll; a read cut off by
 * that budget is retried behind the sockets that became readable since, so
 * under saturation the same sockets are served every poll and the others
 * not at all (bench/tcp_starvation.ts shows it with a raw TCP echo). The
 * pacer keeps each poll under the budget: at most
 * {@linkcode READS_PER_ROUND} read completions proceed in one round (one
 * batch of completions, ended by a microtask); the others wait in arrival
 * order and go first in the next rounds. Below that rate nothing waits.
 *
 * @module
 */

/**
 * Read completions that proceed in one round. Each admitted read is
 * followed by a write and, a round later, by its next read, out of the 128
 * operations of a poll; what is left serves the reads the budget cut off
 * before. In bench/tcp_starvation.ts (5,000 connections × 4 in flight) 16
 * to 32 were fair and 40 or more were not; between two Deno processes
 * (`deno task test:load:fairness`) 16 was fair (slowest ÷ median 0.80,
 * 0.82) and 24 was not (0.24, 0.47).
 */
export const READS_PER_ROUND = 16;

// Past this many admitted waiters at the front, the queue drops them.
const COMPACT_AT = 1024;

/**
 * Admits read completions, at most `readsPerRound` a round, the others in
 * arrival order in later rounds. A round opens with the first completion
 * after the previous one ended, or with a timer when reads wait and no
 * completion comes.
 *
 * @example
 * ```ts
 * import { ReadPacer } from "./read_pacer.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const pacer = new ReadPacer(2);
 * assertEquals(pacer.admit(), undefined); // proceeds at once
 * assertEquals(pacer.admit(), undefined);
 * const third = pacer.admit(); // waits for the next round
 * assertEquals(third instanceof Promise, true);
 * await third;
 * ```
 */
export class ReadPacer {
  readonly #readsPerRound: number;
  #admitted = 0;
  #roundOpen = false;
  // Resolvers of the reads waiting, from #head on.
  #waiting: (() => void)[] = [];
  #head = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  // Ends a round; while reads wait, a timer opens the next one if no
  // completion does. (Armed here, not when a read starts waiting: under
  // `deno test`, setTimeout runs the queued microtasks, which would end
  // the round in the middle of its batch.)
  readonly #endRound = (): void => {
    this.#roundOpen = false;
    if (this.#head < this.#waiting.length) {
      this.#timer ??= setTimeout(this.#onTimer, 0);
    }
  };
  readonly #onTimer = (): void => {
    this.#timer = undefined;
    if (!this.#roundOpen) this.#openRound();
  };

  /**
   * Makes a pacer.
   *
   * @param readsPerRound Completions that proceed in one round.
   */
  constructor(readsPerRound: number = READS_PER_ROUND) {
    this.#readsPerRound = readsPerRound;
  }

  /**
   * A read completed: may it be processed now?
   *
   * @returns `undefined` to proceed now, or a promise that resolves when
   * its turn comes.
   */
  admit(): Promise<void> | undefined {
    if (!this.#roundOpen) this.#openRound();
    if (
      this.#admitted < this.#readsPerRound &&
      this.#head === this.#waiting.length
    ) {
      this.#admitted++;
      return undefined;
    }
    return new Promise<void>((resolve) => this.#waiting.push(resolve));
  }

  // A new round: the reads waiting go first.
  #openRound(): void {
    this.#roundOpen = true;
    this.#admitted = 0;
    // Runs after the completions of this batch (queued before it).
    queueMicrotask(this.#endRound);
    const waiting = this.#waiting;
    // (Nothing waits, the common case: nothing more to do.)
    if (this.#head === waiting.length) return;
    while (
      this.#head < waiting.length && this.#admitted < this.#readsPerRound
    ) {
      this.#admitted++;
      waiting[this.#head++]();
    }
    if (this.#head === waiting.length) {
      this.#waiting = [];
      this.#head = 0;
      if (this.#timer !== undefined) {
        clearTimeout(this.#timer);
        this.#timer = undefined;
      }
    } else if (this.#head >= COMPACT_AT) {
      this.#waiting = waiting.slice(this.#head);
      this.#head = 0;
    }
  }
}

/** The pacer all the sockets of the process share. */
export const readPacer: ReadPacer = new ReadPacer();
