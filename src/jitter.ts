/**
 * Randomised delays, so that clients dropped together do not come back
 * together.
 *
 * @module
 */

/**
 * A random whole number of milliseconds between half of `delayMs` and all of
 * it ("equal jitter"): the wait keeps growing with the backoff, but peers that
 * failed at the same moment spread out over the second half.
 *
 * @example Half to all of the delay
 * ```ts
 * import { assert } from "@std/assert";
 * import { equalJitter } from "./jitter.ts";
 *
 * const delay = equalJitter(1000);
 * assert(delay >= 500 && delay <= 1000);
 * ```
 */
export function equalJitter(delayMs: number): number {
  return Math.round(delayMs / 2 + Math.random() * (delayMs / 2));
}
