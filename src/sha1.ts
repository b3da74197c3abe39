/**
 * SHA-1 (FIPS 180-4 §6.1) for the opening handshake's accept value (RFC
 * 6455 §4.2.2, step 5.4), the one hash wstream computes: 60 bytes in, once
 * per connection. Not a security measure (the value is public), so a short
 * synchronous function serves, and it spares a process the WebCrypto
 * machinery that `crypto.subtle.digest` loads: about 1 MiB of RSS on Deno
 * 2.9.6 (measured in the 1 GiB streaming test's client and server).
 *
 * @module
 */

// The message schedule of one 64-byte block, reused.
const schedule = new Int32Array(80);

/**
 * The SHA-1 digest of `bytes` (20 bytes).
 *
 * @example The FIPS 180-4 example "abc"
 * ```ts
 * import { sha1 } from "./sha1.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const digest = sha1(new TextEncoder().encode("abc"));
 * assertEquals(
 *   Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join(""),
 *   "a9993e364706816aba3e25717850c26c9cd0d89d",
 * );
 * ```
 *
 * @param bytes The message.
 * @returns Its digest.
 */
export function sha1(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  // FIPS 180-4 §5.1.1: a 1 bit, zeros, then the length in bits (64-bit
  // big-endian), to a multiple of 64 bytes.
  const padded = new Uint8Array(((bytes.length + 8) >>> 6) + 1 << 6);
  padded.set(bytes);
  padded[bytes.length] = 0x80;
  const view = new DataView(padded.buffer);
  const bits = bytes.length * 8;
  view.setUint32(padded.length - 8, Math.floor(bits / 0x1_0000_0000));
  view.setUint32(padded.length - 4, bits >>> 0);
  // §5.3.1: the initial hash value.
  let h0 = 0x67452301;
  let h1 = 0xefcdab89 | 0;
  let h2 = 0x98badcfe | 0;
  let h3 = 0x10325476;
  let h4 = 0xc3d2e1f0 | 0;
  const w = schedule;
  for (let block = 0; block < padded.length; block += 64) {
    // §6.1.2 step 1: the message schedule.
    for (let t = 0; t < 16; t++) w[t] = view.getInt32(block + t * 4);
    for (let t = 16; t < 80; t++) {
      const x = w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16];
      w[t] = (x << 1) | (x >>> 31);
    }
    // Steps 2-4: 80 rounds with the functions and constants of §4.1.1 and
    // §4.2.1.
    let a = h0;
    let b = h1;
    let c = h2;
    let d = h3;
    let e = h4;
    for (let t = 0; t < 80; t++) {
      let f: number;
      let k: number;
      if (t < 20) {
        f = (b & c) | (~b & d);
        k = 0x5a827999;
      } else if (t < 40) {
        f = b ^ c ^ d;
        k = 0x6ed9eba1;
      } else if (t < 60) {
        f = (b & c) | (b & d) | (c & d);
        k = 0x8f1bbcdc | 0;
      } else {
        f = b ^ c ^ d;
        k = 0xca62c1d6 | 0;
      }
      const temp = (((a << 5) | (a >>> 27)) + f + e + k + w[t]) | 0;
      e = d;
      d = c;
      c = (b << 30) | (b >>> 2);
      b = a;
      a = temp;
    }
    // Step 5: the intermediate hash value.
    h0 = (h0 + a) | 0;
    h1 = (h1 + b) | 0;
    h2 = (h2 + c) | 0;
    h3 = (h3 + d) | 0;
    h4 = (h4 + e) | 0;
  }
  const digest = new Uint8Array(20);
  const out = new DataView(digest.buffer);
  out.setInt32(0, h0);
  out.setInt32(4, h1);
  out.setInt32(8, h2);
  out.setInt32(12, h3);
  out.setInt32(16, h4);
  return digest;
}
