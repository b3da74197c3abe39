/**
 * One flush moment for every write queue given a hub's shared frames in a
 * turn: one microtask chain for all of them, rather than one per queue,
 * that flushes them all once no queue got a shared frame for a few hops.
 * Publications a hub holds until then (see
 * {@linkcode settleWhenSharedQuiet}) are delivered first, at that moment,
 * or earlier when anything else is about to be queued for a socket (see
 * {@linkcode settlePublications}). Not public API.
 *
 * @module
 */

/** A queue that waits for the common flush. */
export interface SharedFlushQueue {
  /** Writes what the queue holds (its flush was started by the chain). */
  flushShared(): void;
}

/**
 * Microtask hops without a new frame before queued frames are written (a
 * pipe hands its messages over a few hops apart): for a socket's own
 * frames, and, counted over all queues, for the common flush.
 */
export const QUIET_HOPS = 8;

let waiting: SharedFlushQueue[] = [];
// Delivers what a hub holds; each is called once.
let settlers: (() => void)[] = [];
let chainRunning = false;
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
 * Makes `queue` wait for the common flush, which is once `QUIET_HOPS`
 * microtask hops pass without a shared frame queued anywhere.
 *
 * @example
 * ```ts
 * import { flushWhenSharedQuiet } from "./shared_flush.ts";
 * import { assertEquals } from "@std/assert";
 *
 * let flushed = 0;
 * flushWhenSharedQuiet({ flushShared: () => void flushed++ });
 * await new Promise((resolve) => setTimeout(resolve, 0));
 * assertEquals(flushed, 1);
 * ```
 *
 * @param queue The queue; it is flushed once.
 */
export function flushWhenSharedQuiet(queue: SharedFlushQueue): void {
  waiting.push(queue);
  startChain();
}

/**
 * Holds a delivery until the common flush: `settle` is called once, when
 * the turn goes quiet (just before the queues are flushed) or when
 * {@linkcode settlePublications} is called first. A hub holds the messages
 * published in a turn this way, to hand each subscriber all of them in
 * one call. Counts as a shared frame queued.
 *
 * @example
 * ```ts
 * import { settleWhenSharedQuiet } from "./shared_flush.ts";
 * import { assertEquals } from "@std/assert";
 *
 * let settled = 0;
 * settleWhenSharedQuiet(() => void settled++);
 * assertEquals(settled, 0);
 * await new Promise((resolve) => setTimeout(resolve, 0));
 * assertEquals(settled, 1);
 * ```
 *
 * @param settle Delivers what is held.
 */
export function settleWhenSharedQuiet(settle: () => void): void {
  settlers.push(settle);
  sharedSinceCheck = true;
  startChain();
}

/**
 * Delivers every held publication now: called before anything else is
 * queued for a socket or changes whether it can take a message, so a
 * held message keeps its place among the socket's own frames.
 *
 * @example
 * ```ts
 * import { settlePublications, settleWhenSharedQuiet } from "./shared_flush.ts";
 * import { assertEquals } from "@std/assert";
 *
 * let settled = 0;
 * settleWhenSharedQuiet(() => void settled++);
 * settlePublications();
 * assertEquals(settled, 1);
 * ```
 */
export function settlePublications(): void {
  if (settlers.length === 0) return;
  const held = settlers;
  settlers = [];
  for (const settle of held) settle();
}

function startChain(): void {
  if (chainRunning) return;
  chainRunning = true;
  quietHops = 0;
  queueMicrotask(check);
}

function check(): void {
  if (sharedSinceCheck) {
    sharedSinceCheck = false;
    quietHops = 0;
  } else if (++quietHops >= QUIET_HOPS) {
    // What the hubs held joins the queues first, then all leave at once.
    settlePublications();
    sharedSinceCheck = false;
    chainRunning = false;
    const queues = waiting;
    waiting = [];
    for (const waiter of queues) waiter.flushShared();
    return;
  }
  queueMicrotask(check);
}
