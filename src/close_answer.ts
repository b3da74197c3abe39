/**
 * When a socket answers the peer's Close (RFC 6455 §5.5.1): at once, or,
 * while the application is still writing (its `writable` locked, e.g. by
 * a pipe), when it closes the writable, within the close timeout.
 * Separate from connection.ts because it is one policy of the closing
 * handshake, the same for every socket; the functions take the socket's
 * parts as parameters, so no object is added per socket.
 *
 * @module
 */

import type { SocketCore } from "./socket_core.ts";

// How many microtasks a socket waits for a pipe to answer the peer's Close
// by closing the writable (`pipeTo` takes two when no write is pending)
// before it sets the close timer instead.
const ANSWER_HOPS = 16;

/** What {@linkcode answerPeerClose} calls back when it is time to answer. */
export interface CloseAnswerer {
  /** Calls {@linkcode answerOrWait} with the socket's parts. */
  answerOrWait(): void;
}

/**
 * Schedules the answer to the peer's Close: after the few microtasks a pipe
 * takes to close the writable, or after one task when none is writing.
 *
 * @example No pipe: the answer waits one task
 * ```ts
 * import { answerPeerClose } from "./close_answer.ts";
 * import { assert } from "@std/assert";
 *
 * const answered = Promise.withResolvers<void>();
 * const timer = answerPeerClose(
 *   { closeSent: undefined, ended: false },
 *   { locked: false },
 *   { done: false },
 *   { answerOrWait: answered.resolve },
 * );
 * assert(timer !== undefined);
 * await answered.promise;
 * ```
 *
 * @param core The socket's core.
 * @param writable The socket's `writable`.
 * @param sink The underlying sink of `writable`.
 * @param answerer Called back to answer (or wait for the application).
 * @returns The timer set, or `undefined` when a pipe is watched instead.
 */
export function answerPeerClose(
  core: Pick<SocketCore, "closeSent" | "ended">,
  writable: { readonly locked: boolean },
  sink: { readonly done: boolean },
  answerer: CloseAnswerer,
): ReturnType<typeof setTimeout> | undefined {
  // RFC 6455 §5.5.1: the peer's Close is answered. An application that is
  // writing (the writable is locked, e.g. by a pipe) may finish its current
  // messages first and answer by closing the writable; others are answered
  // now. Either way, the close timeout bounds the wait.
  if (writable.locked && !sink.done) {
    // A pipe closes the writable a few microtasks after `readable`
    // closed: wait for that before paying for a timer. (Closures made
    // here, once per connection, cost an idle socket nothing.)
    let hops = 0;
    const watch = (): void => {
      if (core.closeSent || core.ended) return;
      if (++hops < ANSWER_HOPS) queueMicrotask(watch);
      else answerer.answerOrWait();
    };
    queueMicrotask(watch);
    return undefined;
  }
  // The check waits one task, so a handler that starts its pipe right
  // away (when the Close came with the handshake's bytes) is seen.
  return setTimeout(() => answerer.answerOrWait(), 0);
}

/**
 * Answers the peer's Close now unless the application is still writing,
 * which then has up to the close timeout to close the writable.
 *
 * @example
 * ```ts
 * import { answerOrWait } from "./close_answer.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const calls: string[] = [];
 * const core = {
 *   close: () => void calls.push("close"),
 *   waitForAnswer: () => void calls.push("wait"),
 * };
 * // A pipe still writes: it has the close timeout to close the writable.
 * answerOrWait(core, { locked: true }, { done: false });
 * answerOrWait(core, { locked: false }, { done: false });
 * assertEquals(calls, ["wait", "close"]);
 * ```
 *
 * @param core The socket's core.
 * @param writable The socket's `writable`.
 * @param sink The underlying sink of `writable`.
 */
export function answerOrWait(
  core: Pick<SocketCore, "close" | "waitForAnswer">,
  writable: { readonly locked: boolean },
  sink: { readonly done: boolean },
): void {
  if (!writable.locked || sink.done) core.close();
  else core.waitForAnswer();
}
