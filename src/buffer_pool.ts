/**
 * The pool of buffers that outgoing frames are encoded into (batches of
 * small frames, masked large ones), reused once the transport has taken
 * their bytes: a fresh `ArrayBuffer` costs more than masking its bytes.
 * Shared by all sockets and bounded, so an idle socket holds none.
 *
 * @module
 */

/** The smallest buffer the pool hands out, and the first batch size. */
export const MIN_POOLED_BYTES = 4 * 1024;

// The free buffers kept at most, in bytes: room for one 4 KiB batch of each
// of 16,384 sockets, so a hub's publication to thousands of subscribers
// reuses the batches of the last one instead of leaving them to the
// garbage collector (with 4 MiB: 0.59 GiB peak RSS at 5,000 subscribers
// against 0.40 GiB).
const MAX_POOLED_BYTES = 64 * 1024 * 1024;
const freeBuffers = new Map<number, ArrayBuffer[]>();
let freeBytes = 0;
// The buffers taken from the pool and not yet returned.
const takenBuffers = new WeakSet<ArrayBuffer>();

/**
 * The capacity of the buffer the pool hands out for `size` bytes: sizes are
 * rounded up to 1, 1.25, 1.5 or 1.75 times a power of two (at least 4 KiB),
 * so buffers of near sizes are shared at little waste.
 *
 * @example
 * ```ts
 * import { poolCapacity } from "./buffer_pool.ts";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(poolCapacity(100), 4096);
 * assertEquals(poolCapacity(9000), 10240);
 * ```
 *
 * @param size The bytes needed.
 * @returns The capacity of the buffer given for them.
 */
export function poolCapacity(size: number): number {
  if (size <= MIN_POOLED_BYTES) return MIN_POOLED_BYTES;
  const step = 2 ** (Math.ceil(Math.log2(size)) - 3);
  return Math.ceil(size / step) * step;
}

// A free buffer of `capacity` bytes, or a new one.
function freeOrNew(capacity: number): ArrayBuffer {
  const buffer = freeBuffers.get(capacity)?.pop();
  if (buffer === undefined) return new ArrayBuffer(capacity);
  freeBytes -= capacity;
  return buffer;
}

// Keeps a buffer no one uses any more for the next taker, while the free
// buffers stay within their bound.
function keepFree(buffer: ArrayBuffer): void {
  const capacity = buffer.byteLength;
  if (freeBytes + capacity > MAX_POOLED_BYTES) return;
  let free = freeBuffers.get(capacity);
  if (free === undefined) freeBuffers.set(capacity, free = []);
  free.push(buffer);
  freeBytes += capacity;
}

/**
 * A buffer of at least `size` bytes (the whole of its capacity), reused when
 * one of that capacity was returned.
 *
 * @example
 * ```ts
 * import { returnPooled, takePooled } from "./buffer_pool.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const bytes = takePooled(5000);
 * assertEquals(bytes.length, 5120);
 * returnPooled(bytes);
 * assertEquals(takePooled(5000).buffer, bytes.buffer);
 * ```
 *
 * @param size The bytes needed.
 * @returns A buffer of {@linkcode poolCapacity}`(size)` bytes.
 */
export function takePooled(size: number): Uint8Array<ArrayBuffer> {
  const buffer = freeOrNew(poolCapacity(size));
  takenBuffers.add(buffer);
  return new Uint8Array(buffer);
}

/**
 * Gives back the buffer `bytes` views, if it was taken from the pool and not
 * returned yet; any other bytes are left alone.
 *
 * @example
 * ```ts
 * import { isPooled, returnPooled, takePooled } from "./buffer_pool.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const bytes = takePooled(10);
 * returnPooled(bytes.subarray(0, 4));
 * assertEquals(isPooled(bytes), false);
 * ```
 *
 * @param bytes Any view of the buffer.
 */
export function returnPooled(bytes: Uint8Array): void {
  const buffer = bytes.buffer as ArrayBuffer;
  if (takenBuffers.delete(buffer)) keepFree(buffer);
}

/**
 * Whether `bytes` views a buffer taken from the pool and not returned yet.
 *
 * @example
 * ```ts
 * import { isPooled, takePooled } from "./buffer_pool.ts";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(isPooled(takePooled(10)), true);
 * assertEquals(isPooled(new Uint8Array(10)), false);
 * ```
 *
 * @param bytes Any view of a buffer.
 * @returns `true` for a pooled buffer in use.
 */
export function isPooled(bytes: Uint8Array): boolean {
  return takenBuffers.has(bytes.buffer as ArrayBuffer);
}

// Read buffers lent to the messages decoded from them, by how many users
// (the read loop, a message being echoed) still hold each. Weak: a buffer
// whose users never let go (an application kept a message) is collected
// as usual.
const heldBuffers = new WeakMap<ArrayBuffer, number>();

/**
 * A buffer of exactly `size` bytes for a read loop, from the pool when one
 * of its capacity is free, held once (by the caller). It returns to the
 * pool once every holder has let go ({@linkcode letGoHeld}); a view given
 * to code that keeps it must be passed to {@linkcode keepHeld} first.
 *
 * @example
 * ```ts
 * import { holdHeld, letGoHeld, takeHeld } from "./buffer_pool.ts";
 * import { assertEquals, assertNotStrictEquals } from "@std/assert";
 *
 * const bytes = takeHeld(10_000);
 * holdHeld(bytes.subarray(100)); // a message echoed from it
 * letGoHeld(bytes); // the read loop moved on
 * assertNotStrictEquals(takeHeld(10_000).buffer, bytes.buffer);
 * letGoHeld(bytes.subarray(100)); // the echo was written
 * assertEquals(takeHeld(10_000).buffer, bytes.buffer);
 * ```
 *
 * @param size The bytes needed.
 * @returns A view of `size` bytes.
 */
export function takeHeld(size: number): Uint8Array<ArrayBuffer> {
  const buffer = freeOrNew(poolCapacity(size));
  heldBuffers.set(buffer, 1);
  return new Uint8Array(buffer, 0, size);
}

/**
 * One more holder of the buffer `bytes` views, if it came from
 * {@linkcode takeHeld} and is not kept.
 *
 * @example
 * ```ts
 * import { holdHeld, letGoHeld, takeHeld } from "./buffer_pool.ts";
 *
 * const bytes = takeHeld(8192);
 * holdHeld(bytes);
 * letGoHeld(bytes);
 * letGoHeld(bytes); // back in the pool
 * ```
 *
 * @param bytes Any view of the buffer.
 */
export function holdHeld(bytes: Uint8Array): void {
  const buffer = bytes.buffer as ArrayBuffer;
  const holders = heldBuffers.get(buffer);
  if (holders !== undefined) heldBuffers.set(buffer, holders + 1);
}

/**
 * One holder fewer; the last one returns the buffer to the pool.
 *
 * @example
 * ```ts
 * import { letGoHeld, takeHeld } from "./buffer_pool.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const bytes = takeHeld(8192);
 * letGoHeld(bytes);
 * assertEquals(takeHeld(8192).buffer, bytes.buffer);
 * ```
 *
 * @param bytes Any view of the buffer.
 */
export function letGoHeld(bytes: Uint8Array): void {
  const buffer = bytes.buffer as ArrayBuffer;
  const holders = heldBuffers.get(buffer);
  if (holders === undefined) return;
  if (holders > 1) {
    heldBuffers.set(buffer, holders - 1);
    return;
  }
  heldBuffers.delete(buffer);
  keepFree(buffer);
}

/**
 * The buffer `bytes` views is kept by code outside the socket (an
 * application's message): it never returns to the pool.
 *
 * @example
 * ```ts
 * import { keepHeld, letGoHeld, takeHeld } from "./buffer_pool.ts";
 * import { assertNotStrictEquals } from "@std/assert";
 *
 * const bytes = takeHeld(8192);
 * keepHeld(bytes);
 * letGoHeld(bytes);
 * assertNotStrictEquals(takeHeld(8192).buffer, bytes.buffer);
 * ```
 *
 * @param bytes Any view of the buffer.
 */
export function keepHeld(bytes: Uint8Array): void {
  heldBuffers.delete(bytes.buffer as ArrayBuffer);
}
