/**
 * One flush moment for every write queue given a hub's shared frames in a
 * turn: one microtask chain for all of them, rather than one per queue,
 * that flushes them all once no queue got a shared frame for a few hops.
 * Not public API.
 *
 * @module
 */

/** A queue that waits for the common flush. */
export interface SharedFlushQueue {
  /** Writes what the queue holds (its flush was started by the chain). */
  flushShared(): void;
}

let waiting: SharedFlushQueue[] = [];
let sharedSinceCheck = false;
let quietHops = 0;

/**
 * A shared frame was queued: the flush waits a few more hops for the
 * frames that follow it in this turn.
 *
 * @example
 * ```ts
 * import { sharedFrameQueued } from "./shared_flush.ts";
 *
 * sharedFrameQueued();
 * ```
 */
export function sharedFrameQueued(): void {
  sharedSinceCheck = true;
}

/**
 * Makes `queue` wait for the common flush, which is once `quietHops`
 * microtask hops pass without a shared frame queued anywhere.
 *
 * @example
 * ```ts
 * import { flushWhenSharedQuiet } from "./shared_flush.ts";
 * import { assertEquals } from "@std/assert";
 *
 * let flushed = 0;
 * flushWhenSharedQuiet({ flushShared: () => void flushed++ }, 8);
 * await new Promise((resolve) => setTimeout(resolve, 0));
 * assertEquals(flushed, 1);
 * ```
 *
 * @param queue The queue; it is flushed once.
 * @param hops The quiet hops to wait for.
 */
export function flushWhenSharedQuiet(
  queue: SharedFlushQueue,
  hops: number,
): void {
  waiting.push(queue);
  if (waiting.length > 1) return;
  quietHops = 0;
  const check = (): void => {
    if (sharedSinceCheck) {
      sharedSinceCheck = false;
      quietHops = 0;
    } else if (++quietHops >= hops) {
      const queues = waiting;
      waiting = [];
      for (const waiter of queues) waiter.flushShared();
      return;
    }
    queueMicrotask(check);
  };
  queueMicrotask(check);
}
