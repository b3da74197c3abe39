/**
 * The messages a hub published to one topic in a turn, held until the turn
 * goes quiet and then handed to each subscriber in one call (see
 * `PreparedQueue.queueRun`), rather than one call per subscriber per
 * message. Not public API.
 *
 * @module
 */

import type { PreparedMessage } from "./prepared_message.ts";
import type { Socket } from "./socket.ts";
import { MERGE_LIMIT_BYTES } from "./write_queue.ts";

/**
 * Consecutive publications to one topic with the same `except`: the
 * messages in order, and their frames as the fewest byte spans (frames
 * built one after another lie next to each other, see frame_arena.ts),
 * which a server socket queues as they are.
 *
 * @example
 * ```ts
 * import { PublicationRun } from "./publication_run.ts";
 * import { PreparedMessage } from "./prepared_message.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const run = new PublicationRun("news", undefined);
 * run.add(new PreparedMessage("a"));
 * run.add(new PreparedMessage("b"));
 * assertEquals(run.messages.length, 2);
 * assertEquals(run.bytes, 6);
 * // Both frames in one span: 0x81 0x01 "a" 0x81 0x01 "b".
 * assertEquals(run.spans(), [new Uint8Array([0x81, 1, 0x61, 0x81, 1, 0x62])]);
 * ```
 */
export class PublicationRun {
  /** The topic. */
  readonly topic: string;
  /** The socket that gets none of them. */
  readonly except: Socket | undefined;
  /** The messages, in publish order. */
  readonly messages: PreparedMessage[] = [];
  /** The bytes of all their uncompressed frames. */
  bytes = 0;
  /** The bytes of the last one's frame. */
  lastBytes = 0;
  /**
   * Whether one of them may be sent compressed (is at least its
   * compression threshold long).
   */
  compressible = false;
  // Where the spans start and end: a span's first frame, and the offset
  // in its buffer where it ends.
  #starts: Uint8Array[] = [];
  #ends: number[] = [];
  #spans: Uint8Array[] | undefined;

  /**
   * Starts an empty run.
   *
   * @param topic The topic.
   * @param except The socket that gets none of the messages.
   */
  constructor(topic: string, except: Socket | undefined) {
    this.topic = topic;
    this.except = except;
  }

  /**
   * Adds a message after the others.
   *
   * @param message The message.
   */
  add(message: PreparedMessage): void {
    this.messages.push(message);
    const frame = message.frame;
    const size = frame.length;
    this.bytes += size;
    this.lastBytes = size;
    if (message.compressible) this.compressible = true;
    this.#spans = undefined;
    const last = this.#starts.length - 1;
    if (
      last >= 0 && frame.byteOffset === this.#ends[last] &&
      frame.buffer === this.#starts[last].buffer &&
      this.#ends[last] + size - this.#starts[last].byteOffset <
        MERGE_LIMIT_BYTES
    ) {
      this.#ends[last] += size;
      return;
    }
    this.#starts.push(frame);
    this.#ends.push(frame.byteOffset + size);
  }

  /**
   * The frames of all the messages, in order, as views of the buffers they
   * lie in: each span is one frame of at least `MERGE_LIMIT_BYTES`, or
   * frames next to each other that are together shorter.
   *
   * @returns The spans (the same array on every call until the next add).
   */
  spans(): Uint8Array[] {
    if (this.#spans !== undefined) return this.#spans;
    const spans: Uint8Array[] = [];
    for (let i = 0; i < this.#starts.length; i++) {
      const start = this.#starts[i];
      const length = this.#ends[i] - start.byteOffset;
      spans.push(
        length === start.length
          ? start
          : new Uint8Array(start.buffer, start.byteOffset, length),
      );
    }
    return this.#spans = spans;
  }
}
