import { assertEquals } from "@std/assert";
import { applyMask, copyMasked, simdMaskingAvailable } from "../src/mask.ts";
import {
  assertBytesEqual,
  bytes,
  hex,
  randomBytes,
  seededRandom,
  utf8,
} from "./_codec_util.ts";

// The masking key of the RFC 6455 §5.7 examples.
const rfcKey = bytes(0x37, 0xfa, 0x21, 0x3d);

/** Masking one byte at a time, straight from RFC 6455 §5.3. */
function referenceMask(
  data: Uint8Array,
  key: Uint8Array,
  keyOffset = 0,
): Uint8Array {
  return data.map((b, i) => b ^ key[(keyOffset + i) & 3]);
}

Deno.test("applyMask masks 'Hello' with the key of RFC 6455 §5.7", () => {
  const data = utf8("Hello");
  applyMask(data, rfcKey);
  assertEquals(hex(data), "7f 9f 4d 51 58");
  applyMask(data, rfcKey);
  assertEquals(new TextDecoder().decode(data), "Hello");
});

Deno.test("applyMask matches the byte-by-byte definition for every length, alignment and key offset", () => {
  const random = seededRandom(11);
  const key = randomBytes(4, random);
  const buffer = randomBytes(300, random);
  for (let start = 0; start < 8; start++) {
    for (
      const length of [0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 63, 64, 65, 255]
    ) {
      for (let keyOffset = 0; keyOffset < 8; keyOffset++) {
        const view = buffer.slice().subarray(start, start + length);
        const expected = referenceMask(view, key, keyOffset);
        applyMask(view, key, keyOffset);
        assertBytesEqual(
          view,
          expected,
          `start ${start}, length ${length}, keyOffset ${keyOffset}`,
        );
      }
    }
  }
});

Deno.test("applyMask leaves the bytes around the view untouched", () => {
  const buffer = new Uint8Array(64);
  applyMask(buffer.subarray(3, 61), bytes(0xff, 0xff, 0xff, 0xff));
  assertEquals(hex(buffer.subarray(0, 3)), "00 00 00");
  assertEquals(hex(buffer.subarray(61)), "00 00 00");
  assertEquals(buffer.subarray(3, 61).every((b) => b === 0xff), true);
});

Deno.test("applyMask unmasks a payload that arrives in pieces, with keyOffset", () => {
  const random = seededRandom(12);
  const payload = randomBytes(1000, random);
  const masked = referenceMask(payload, rfcKey);
  for (const cut of [1, 2, 3, 5, 333, 999]) {
    const first = masked.slice(0, cut);
    const second = masked.slice(cut);
    applyMask(first, rfcKey, 0);
    applyMask(second, rfcKey, cut);
    assertBytesEqual(first, payload.subarray(0, cut));
    assertBytesEqual(second, payload.subarray(cut));
  }
});

Deno.test("copyMasked masks into the target and leaves the source untouched", () => {
  const source = utf8("Hello");
  const target = new Uint8Array(8);
  copyMasked(source, rfcKey, target, 2);
  assertEquals(hex(target), "00 00 7f 9f 4d 51 58 00");
  assertEquals(new TextDecoder().decode(source), "Hello");
});

Deno.test("copyMasked uses WebAssembly SIMD for large payloads and matches the definition at every size, source alignment and target offset", () => {
  assertEquals(simdMaskingAvailable(), true);
  const random = seededRandom(11);
  const sizes = [
    4095,
    4096,
    4097,
    4111,
    4112,
    65535,
    65536,
    65537,
    65550,
    131072,
    200003,
    // SIMD from 256 KiB on.
    262143,
    262144,
    262145,
    262160,
    300003,
  ];
  for (const size of sizes) {
    for (const sourceOffset of [0, 1, 3]) {
      for (const targetOffset of [0, 2, 14]) {
        const key = randomBytes(4, random);
        const backing = randomBytes(size + sourceOffset, random);
        const source = backing.subarray(sourceOffset);
        const original = source.slice();
        const target = new Uint8Array(targetOffset + size + 16).fill(0xaa);
        copyMasked(source, key, target, targetOffset);
        assertBytesEqual(
          target.subarray(targetOffset, targetOffset + size),
          referenceMask(original, key),
        );
        // Nothing around the target range is touched, nor the source.
        assertEquals(
          target.subarray(0, targetOffset).every((b) => b === 0xaa),
          true,
        );
        assertEquals(
          target.subarray(targetOffset + size).every((b) => b === 0xaa),
          true,
        );
        assertBytesEqual(source, original);
      }
    }
  }
});

Deno.test("applyMask in place through WebAssembly SIMD matches the definition for large payloads at every alignment and key offset, touching nothing around them", () => {
  const random = seededRandom(13);
  const key = randomBytes(4, random);
  for (
    const length of [4096, 65536, 140_001, 262_143, 262_144, 262_161, 300_003]
  ) {
    const buffer = randomBytes(length + 16, random);
    for (let start = 0; start < 4; start++) {
      for (let keyOffset = 0; keyOffset < 5; keyOffset++) {
        const copy = buffer.slice();
        const view = copy.subarray(start, start + length);
        const expected = referenceMask(view, key, keyOffset);
        applyMask(view, key, keyOffset);
        assertBytesEqual(
          view,
          expected,
          `start ${start}, length ${length}, keyOffset ${keyOffset}`,
        );
        assertBytesEqual(copy.subarray(0, start), buffer.subarray(0, start));
        assertBytesEqual(
          copy.subarray(start + length),
          buffer.subarray(start + length),
        );
      }
    }
  }
});
