/**
 * How much a socket's `readable` (whole messages) holds: the socket counts
 * the bytes of the messages waiting there itself, and stops reading from
 * the TCP connection past a high-water mark. Separate from connection.ts
 * because it is the readable's back-pressure arithmetic, not the driving
 * of the socket; the state (the sizes queued and their sum) stays in the
 * socket, so no object is added per socket.
 *
 * @module
 */

/**
 * Messages (by bytes) that may wait in `readable` before the socket stops
 * reading from the TCP connection.
 */
export const READABLE_HIGH_WATER_BYTES = 256 * 1024;

/**
 * `readable`'s own high-water mark, in messages, never reached: the socket
 * counts the bytes queued itself (a strategy with a size function would
 * cost every socket a closure and a dictionary), and the stream still asks
 * for more (pull) after every read.
 */
export const READABLE_QUEUE_LIMIT = 2 ** 30;

/**
 * The size a message counts for in `readable`: its length.
 *
 * @example
 * ```ts
 * import { sizeOf } from "./readable_queue.ts";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(sizeOf("Hi"), 2);
 * assertEquals(sizeOf(new Uint8Array(3)), 3);
 * ```
 *
 * @param chunk A message.
 * @returns Its length: UTF-16 code units for text, bytes for binary.
 */
export function sizeOf(chunk: string | { byteLength: number }): number {
  return typeof chunk === "string" ? chunk.length : chunk.byteLength;
}

/**
 * Whether the messages given to a `readable` made with
 * {@linkcode READABLE_QUEUE_LIMIT} have all been read.
 *
 * @example
 * ```ts
 * import { READABLE_QUEUE_LIMIT, readableQueueEmpty } from "./readable_queue.ts";
 * import { assert } from "@std/assert";
 *
 * const started = Promise.withResolvers<
 *   ReadableStreamDefaultController<string>
 * >();
 * const readable = new ReadableStream<string>(
 *   { start: started.resolve },
 *   { highWaterMark: READABLE_QUEUE_LIMIT },
 * );
 * const controller = await started.promise;
 * controller.enqueue("a");
 * assert(!readableQueueEmpty(controller));
 * await readable.getReader().read();
 * assert(readableQueueEmpty(controller));
 * ```
 *
 * @param controller The readable's controller.
 * @returns Whether its queue is empty.
 */
export function readableQueueEmpty(
  controller: ReadableStreamDefaultController<unknown>,
): boolean {
  return controller.desiredSize === READABLE_QUEUE_LIMIT;
}

/**
 * Takes off `sizes` (the sizes of the messages given to the readable, in
 * order) those of the messages read since the last call: the first ones
 * queued.
 *
 * @example
 * ```ts
 * import { READABLE_QUEUE_LIMIT, takeReadSizes } from "./readable_queue.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const started = Promise.withResolvers<
 *   ReadableStreamDefaultController<string>
 * >();
 * const readable = new ReadableStream<string>(
 *   { start: started.resolve },
 *   { highWaterMark: READABLE_QUEUE_LIMIT },
 * );
 * const controller = await started.promise;
 * const sizes = [1, 2];
 * controller.enqueue("a");
 * controller.enqueue("bc");
 * await readable.getReader().read();
 * assertEquals(takeReadSizes(sizes, controller), 1);
 * assertEquals(sizes, [2]);
 * ```
 *
 * @param sizes The sizes of the messages that may still be queued.
 * @param controller The readable's controller.
 * @returns The sum of the sizes taken off.
 */
export function takeReadSizes(
  sizes: number[],
  controller: ReadableStreamDefaultController<unknown>,
): number {
  const queued = READABLE_QUEUE_LIMIT - controller.desiredSize!;
  let read = 0;
  while (sizes.length > queued) read += sizes.shift()!;
  return read;
}
