/**
 * Where the hub's shared frames are built: small frames are laid out one
 * after the other in a shared chunk, so the frames published in one turn
 * sit next to each other in memory and a subscriber's write queue sends a
 * run of them as one view of the chunk (no copy, one write); see
 * `WriteQueue.appendSharedFrame`. Not public API.
 *
 * @module
 */

// The size of a chunk. A view of a chunk keeps all of it alive until the
// view is written: write queues copy short runs instead of keeping them
// (see WriteQueue), so a queue keeps at most one short run as a view.
const CHUNK_BYTES = 64 * 1024;
// Frames longer than this get a buffer of their own: they would leave too
// much of a chunk unused.
const MAX_ARENA_FRAME_BYTES = 16 * 1024;

let chunk: ArrayBuffer | undefined;
let chunkUsed = 0;

/**
 * A new zero-filled view of `size` bytes for a frame that is written once
 * and never changed after: small sizes lie right after the bytes the last
 * call handed out, in the same chunk, when there is room; larger ones have
 * a buffer of their own.
 *
 * @example
 * ```ts
 * import { arenaBytes } from "./frame_arena.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const first = arenaBytes(10);
 * const second = arenaBytes(20);
 * assertEquals(second.buffer, first.buffer);
 * assertEquals(second.byteOffset, first.byteOffset + 10);
 * ```
 *
 * @param size The bytes needed.
 * @returns A view of exactly `size` bytes.
 */
export function arenaBytes(size: number): Uint8Array<ArrayBuffer> {
  if (size > MAX_ARENA_FRAME_BYTES) return new Uint8Array(size);
  if (chunk === undefined || chunkUsed + size > CHUNK_BYTES) {
    chunk = new ArrayBuffer(CHUNK_BYTES);
    chunkUsed = 0;
  }
  const bytes = new Uint8Array(chunk, chunkUsed, size);
  chunkUsed += size;
  return bytes;
}
