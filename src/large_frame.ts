/**
 * How a write queue queues a frame of at least `MERGE_LIMIT_BYTES` (see
 * write_queue.ts): without a copy where that is safe, masked into a pooled
 * buffer for a client. Not public API.
 *
 * @module
 */

import { isPooled, takePooled } from "./buffer_pool.ts";
import type { Frame } from "./frame.ts";
import {
  encodeFrame,
  encodeFrameHeader,
  encodeFrameInto,
} from "./frame_encoder.ts";

// Masked large frames queued behind a write in flight are encoded into one
// buffer of up to this size (so they leave in one write).
const MAX_QUEUED_WRITE_BYTES = 512 * 1024;

// Large binary messages handed out as views of a buffer in which the bytes
// just before the view are its frame's header, which no other view covers:
// a server may write its own (shorter) header there and send the message
// back as one chunk, without a copy. Keyed by the view object itself, so a
// subarray the application makes is never mistaken for one.
const headroomViews = new WeakSet<Uint8Array>();

/**
 * Marks a received payload, handed out as a view of the read buffer right
 * after its own (masked, so longer) frame header, as one whose header bytes
 * an unmasked echo may overwrite with its own header (see
 * `WriteQueue.sendFrame`).
 *
 * @param payload A view no other view overlaps in its header's bytes.
 */
export function markHeaderRoom(payload: Uint8Array): void {
  headroomViews.add(payload);
}

/** How the queue that queues a large frame writes. */
export interface LargeFrameOptions {
  /** Whether frames are masked (the client role, RFC 6455 §5.3). */
  mask: boolean;
  /** Whether the transport is done with each chunk once its write resolves. */
  reuseWrites: boolean;
  /** Whether a write is in flight (more frames may queue behind it). */
  writing: boolean;
}

/**
 * Queues one large frame at the end of `outgoing`: a received payload
 * marked by {@linkcode markHeaderRoom} gets its header in front of it, a
 * client's frame is masked into a pooled buffer (after the last one when it
 * has room), else the frame is encoded as header and payload.
 *
 * @example
 * ```ts
 * import { queueLargeFrame } from "./large_frame.ts";
 * import { Opcode } from "./frame.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const outgoing: Uint8Array[] = [];
 * const payload = new Uint8Array(70_000);
 * const frame = { fin: true, rsv1: false, opcode: Opcode.Binary, payload };
 * const options = { mask: false, reuseWrites: false, writing: false };
 * assertEquals(queueLargeFrame(outgoing, frame, 70_010, options), true);
 * assertEquals(outgoing[1], payload); // the header, then the payload itself
 * ```
 *
 * @param outgoing The chunks waiting for the transport.
 * @param frame The frame.
 * @param size Its encoded size (header and payload).
 * @param options How the queue writes.
 * @returns Whether the queued bytes view the payload (then it must stay
 * unchanged until written).
 */
export function queueLargeFrame(
  outgoing: Uint8Array[],
  frame: Frame,
  size: number,
  options: LargeFrameOptions,
): boolean {
  const { mask, reuseWrites, writing } = options;
  const payload = frame.payload;
  const headerLength = size - payload.length;
  if (
    !mask && !frame.rsv1 && headroomViews.has(payload) &&
    payload.byteOffset >= headerLength
  ) {
    // A message received as a view after its frame's header: our header
    // goes in front of it, and the frame leaves whole, without a copy.
    const bytes = new Uint8Array(
      payload.buffer,
      payload.byteOffset - headerLength,
      size,
    );
    encodeFrameHeader(bytes, frame);
    outgoing.push(bytes);
    return true;
  }
  if (mask && reuseWrites) {
    // RFC 6455 §5.3: the client masks a copy; the copy's buffer is reused
    // once written. Frames that queue behind a write in flight are masked
    // into one buffer, so they leave in one write.
    const last = outgoing[outgoing.length - 1];
    if (
      last !== undefined && last.byteOffset === 0 && isPooled(last) &&
      last.buffer.byteLength - last.length >= size
    ) {
      const grown = new Uint8Array(last.buffer, 0, last.length + size);
      encodeFrameInto(grown, last.length, frame, true);
      outgoing[outgoing.length - 1] = grown;
    } else {
      const capacity = writing
        ? Math.max(size, Math.min(size * 4, MAX_QUEUED_WRITE_BYTES))
        : size;
      const bytes = takePooled(capacity).subarray(0, size);
      encodeFrameInto(bytes, 0, frame, true);
      outgoing.push(bytes);
    }
    return false;
  }
  let viewsPayload = false;
  for (const chunk of encodeFrame(frame, mask)) {
    outgoing.push(chunk);
    if (chunk === payload) viewsPayload = true;
  }
  return viewsPayload;
}
