// Test helpers shared by the codec tests: a reference frame builder that is
// independent of src/frame_encoder.ts, a seeded PRNG, chunking helpers and an
// assertion for WebSocketError.

import { assertInstanceOf, assertMatch, fail } from "@std/assert";
import { WebSocketError } from "../src/websocket_error.ts";

/** What {@linkcode frameBytes} builds. */
export interface RawFrame {
  fin?: boolean;
  rsv1?: boolean;
  rsv2?: boolean;
  rsv3?: boolean;
  opcode: number;
  payload?: Uint8Array | string;
  /** Masks the payload with this key (RFC 6455 §5.3). */
  maskKey?: Uint8Array;
  /** Forces a length form; by default the minimal one (RFC 6455 §5.2). */
  lengthForm?: 7 | 16 | 64;
  /** Writes this length instead of the payload's (for invalid headers). */
  declaredLength?: bigint;
}

const encoder = new TextEncoder();

/** Encodes `text` as UTF-8. */
export function utf8(text: string): Uint8Array {
  return encoder.encode(text);
}

/** Bytes from a list of numbers, for readable fixtures. */
export function bytes(...values: number[]): Uint8Array {
  return new Uint8Array(values);
}

/**
 * Builds the wire bytes of one frame, byte by byte, following RFC 6455 §5.2
 * (a reference implementation for the tests, deliberately simple).
 */
export function frameBytes(frame: RawFrame): Uint8Array {
  const payload = typeof frame.payload === "string"
    ? utf8(frame.payload)
    : frame.payload ?? new Uint8Array(0);
  const length = frame.declaredLength ?? BigInt(payload.length);
  const form = frame.lengthForm ??
    (length <= 125n ? 7 : length <= 0xffffn ? 16 : 64);
  const header: number[] = [
    (frame.fin ?? true ? 0x80 : 0) | (frame.rsv1 ? 0x40 : 0) |
    (frame.rsv2 ? 0x20 : 0) | (frame.rsv3 ? 0x10 : 0) | frame.opcode,
  ];
  const maskBit = frame.maskKey ? 0x80 : 0;
  if (form === 7) {
    header.push(maskBit | Number(length));
  } else if (form === 16) {
    header.push(
      maskBit | 126,
      Number(length >> 8n) & 0xff,
      Number(length) & 0xff,
    );
  } else {
    header.push(maskBit | 127);
    for (let shift = 56n; shift >= 0n; shift -= 8n) {
      header.push(Number((length >> shift) & 0xffn));
    }
  }
  if (frame.maskKey) header.push(...frame.maskKey);
  const out = new Uint8Array(header.length + payload.length);
  out.set(header);
  for (let i = 0; i < payload.length; i++) {
    out[header.length + i] = frame.maskKey
      ? payload[i] ^ frame.maskKey[i & 3]
      : payload[i];
  }
  return out;
}

/** Concatenates byte arrays. */
export function concat(parts: readonly Uint8Array[]): Uint8Array {
  let length = 0;
  for (const part of parts) length += part.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** A small seeded PRNG (mulberry32) so random tests can be reproduced. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `length` pseudo-random bytes from `random`. */
export function randomBytes(length: number, random: () => number): Uint8Array {
  const out = new Uint8Array(length);
  const words = new Uint32Array(out.buffer, 0, length >>> 2);
  for (let i = 0; i < words.length; i++) words[i] = random() * 4294967296;
  for (let i = words.length * 4; i < length; i++) out[i] = random() * 256;
  return out;
}

/** Splits `data` into copies of random sizes between 1 and `maxChunk`. */
export function randomChunks(
  data: Uint8Array,
  random: () => number,
  maxChunk: number,
): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  for (let offset = 0; offset < data.length;) {
    const size = 1 + Math.floor(random() * maxChunk);
    chunks.push(data.slice(offset, offset + size));
    offset += size;
  }
  return chunks;
}

/**
 * A TransformStream that re-chunks bytes at random boundaries (copying, so
 * that a stage that mutates its input cannot affect the one before it).
 */
export function rechunkStream(
  random: () => number,
  maxChunk: number,
): TransformStream<Uint8Array, Uint8Array> {
  let pending: Uint8Array[] = [];
  let pendingBytes = 0;
  let target = 1 + Math.floor(random() * maxChunk);
  return new TransformStream({
    transform(chunk, controller) {
      pending.push(chunk);
      pendingBytes += chunk.length;
      if (pendingBytes < target) return;
      const all = concat(pending);
      let offset = 0;
      while (all.length - offset >= target) {
        controller.enqueue(all.slice(offset, offset + target));
        offset += target;
        target = 1 + Math.floor(random() * maxChunk);
      }
      pending = offset < all.length ? [all.slice(offset)] : [];
      pendingBytes = all.length - offset;
    },
    flush(controller) {
      if (pendingBytes > 0) controller.enqueue(concat(pending));
    },
  });
}

/**
 * Asserts that `error` is a {@linkcode WebSocketError} with `closeCode`, that
 * its message says what was expected and what was found, and that it matches
 * `message` when given.
 */
export function assertWebSocketError(
  error: unknown,
  closeCode: number,
  message?: RegExp,
): WebSocketError {
  assertInstanceOf(error, WebSocketError);
  const wsError = error as WebSocketError;
  if (wsError.closeCode !== closeCode) {
    fail(
      `expected close code ${closeCode}, found ${wsError.closeCode} (message: ${wsError.message})`,
    );
  }
  // The team rule: every error says what was expected and what was found.
  assertMatch(wsError.message, /expected[^]*found/);
  if (message) assertMatch(wsError.message, message);
  return wsError;
}

/** Calls `fn` and returns what it throws; fails when it does not throw. */
export function thrownBy(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  return fail("expected an error, but none was thrown");
}

/** Awaits `promise` and returns its rejection; fails when it resolves. */
export async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  return fail("expected a rejection, but the promise resolved");
}

/** The hex form of bytes, for readable assertion messages. */
export function hex(data: Uint8Array): string {
  return Array.from(data, (b) => b.toString(16).padStart(2, "0")).join(" ");
}

/** Asserts byte-for-byte equality, fast for large arrays. */
export function assertBytesEqual(
  actual: Uint8Array,
  expected: Uint8Array,
  what = "bytes",
): void {
  if (actual.length !== expected.length) {
    fail(`${what}: expected ${expected.length} bytes, found ${actual.length}`);
  }
  for (let i = 0; i < expected.length; i++) {
    if (actual[i] !== expected[i]) {
      fail(
        `${what}: first difference at byte ${i} of ${expected.length}: expected ${
          expected[i]
        }, found ${actual[i]}`,
      );
    }
  }
}

/** The parts of a frame the tests compare, with `payload` as plain bytes. */
export interface ExpectedFrame {
  fin: boolean;
  rsv1: boolean;
  opcode: number;
  payload: Uint8Array;
}

/** Asserts that two lists of frames are equal (payloads compared fast). */
export function assertFramesEqual(
  actual: readonly ExpectedFrame[],
  expected: readonly ExpectedFrame[],
): void {
  if (actual.length !== expected.length) {
    fail(`expected ${expected.length} frames, found ${actual.length}`);
  }
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i], e = expected[i];
    const header = (f: ExpectedFrame) =>
      `fin=${f.fin} rsv1=${f.rsv1} opcode=${f.opcode} length=${f.payload.length}`;
    if (header(a) !== header(e)) {
      fail(`frame ${i}: expected ${header(e)}, found ${header(a)}`);
    }
    assertBytesEqual(a.payload, e.payload, `frame ${i} payload`);
  }
}
