/**
 * When a socket answers the peer's Close (RFC 6455 §5.5.1): at once, or,
 * while the application is still writing (its `writable` locked, e.g. by
 * a pipe, or messages it wrote not taken yet), when it closes the writable
 * or its writes are taken, within the close timeout. Separate from
 * connection.ts because it is one policy of the closing handshake, the
 * same for every socket; the functions take the socket's parts as
 * parameters, so no object is added per socket.
 *
 * @module
 */

import type { WebSocketConnection } from "./connection.ts";
import type { Message } from "./message_assembler.ts";
import type { MessageStream } from "./message_stream.ts";
import type { SocketCore } from "./socket_core.ts";

// How many microtasks a socket waits before it answers the peer's Close:
// time for the application to react to `readable`'s end by taking the
// writable (a `for await` loop sees the end in two, one behind two
// `pipeThrough`s in ten) or for a pipe to close it (two when no write is
// pending), without paying for a timer.
const ANSWER_HOPS = 32;

/** The socket's `writable`, as far as the answer's timing reads it. */
export interface AnswerWritable {
  /** Whether a writer or a pipe holds it. */
  readonly locked: boolean;
  /** Whether messages written to it may not have been sent yet. */
  readonly writesPending: boolean;
  /** Calls `listener` once when no write is pending. */
  onceWritesSettled(listener: () => void): void;
}

type AnySocket = WebSocketConnection<Message | MessageStream>;

// Set by WebSocketConnection's static block (see provideApplicationStart).
let markStarted: (socket: AnySocket) => void;

/**
 * Called once, by {@linkcode WebSocketConnection}'s static block: how a
 * socket is told that its application has run, without a public member.
 *
 * @example
 * ```ts ignore
 * provideApplicationStart((socket) => socket.#started = true);
 * ```
 *
 * @param mark Marks the socket.
 */
export function provideApplicationStart(
  mark: (socket: AnySocket) => void,
): void {
  markStarted = mark;
}

/**
 * Tells a socket that its application has had it and run: a server's
 * handler was called and returned (or reached its first `await`), or
 * `connect()` is handing it over. From then on the peer's Close is
 * answered a few microtasks after it arrived unless the application
 * writes (see {@linkcode answerPeerClose}), with no timer. Not exported
 * from `mod.ts`.
 *
 * @example
 * ```ts
 * import { WebSocketConnection } from "./connection.ts";
 * import { applicationStarted } from "./close_answer.ts";
 *
 * const socket = new WebSocketConnection({
 *   role: "server",
 *   transport: { readable: new ReadableStream(), writable: new WritableStream() },
 *   closeTimeoutMs: 10,
 * });
 * applicationStarted(socket);
 * socket.close();
 * await socket.closed;
 * ```
 *
 * @param socket The socket.
 */
export function applicationStarted(socket: AnySocket): void {
  markStarted(socket);
}

/** What {@linkcode answerPeerClose} calls back when it is time to answer. */
export interface CloseAnswerer {
  /** Calls {@linkcode answerOrWait} with the socket's parts. */
  answerOrWait(): void;
}

/**
 * Schedules the answer to the peer's Close. Once the application has had
 * the socket and run (a server's handler was called, `connect()`
 * resolved), or while a pipe writes, the answer waits only the few
 * microtasks the application takes to react to `readable`'s end. Before
 * that (the Close came with the opening handshake's bytes) it waits one
 * task, so that a handler that starts writing right away is seen.
 *
 * @example Before the application has run, the answer waits one task
 * ```ts
 * import { answerPeerClose } from "./close_answer.ts";
 * import { assert } from "@std/assert";
 *
 * const answered = Promise.withResolvers<void>();
 * const writable = { locked: false, writesPending: false, onceWritesSettled() {} };
 * const timer = answerPeerClose(
 *   { closeSent: undefined, ended: false },
 *   writable,
 *   { done: false },
 *   { answerOrWait: answered.resolve },
 *   false,
 * );
 * assert(timer !== undefined);
 * await answered.promise;
 * ```
 *
 * @param core The socket's core.
 * @param writable The socket's `writable`.
 * @param sink The underlying sink of `writable`.
 * @param answerer Called back to answer (or wait for the application).
 * @param started Whether the application has had the socket and run.
 * @returns The timer set, or `undefined` when microtasks are counted
 * instead.
 */
export function answerPeerClose(
  core: Pick<SocketCore, "closeSent" | "ended">,
  writable: AnswerWritable,
  sink: { readonly done: boolean },
  answerer: CloseAnswerer,
  started: boolean,
): ReturnType<typeof setTimeout> | undefined {
  // RFC 6455 §5.5.1: the peer's Close is answered. An application that is
  // writing may finish its current messages first and answer by closing
  // the writable; others are answered now. Either way, the close timeout
  // bounds the wait.
  if (started || (writable.locked && !sink.done)) {
    // (Closures made here, once per connection, cost an idle socket
    // nothing.)
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
 * Answers the peer's Close now unless the application is still writing:
 * a writer or a pipe holding the writable then has up to the close timeout
 * to close it, and messages written through a writer released since are
 * sent first (RFC 6455 §5.5.1: no data frame follows our Close).
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
 * const answerer = { answerOrWait: () => void calls.push("again") };
 * const writable = { locked: true, writesPending: false, onceWritesSettled() {} };
 * // A pipe still writes: it has the close timeout to close the writable.
 * answerOrWait(core, writable, { done: false }, answerer);
 * answerOrWait(core, { ...writable, locked: false }, { done: false }, answerer);
 * assertEquals(calls, ["wait", "close"]);
 * ```
 *
 * @param core The socket's core.
 * @param writable The socket's `writable`.
 * @param sink The underlying sink of `writable`.
 * @param answerer Called back once pending writes have settled.
 */
export function answerOrWait(
  core: Pick<SocketCore, "close" | "waitForAnswer">,
  writable: AnswerWritable,
  sink: { readonly done: boolean },
  answerer: CloseAnswerer,
): void {
  if (sink.done) core.close();
  else if (writable.locked) core.waitForAnswer();
  else if (writable.writesPending) {
    core.waitForAnswer();
    writable.onceWritesSettled(() => answerer.answerOrWait());
  } else core.close();
}
