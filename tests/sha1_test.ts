import { assertEquals } from "@std/assert";
import { sha1 } from "../src/sha1.ts";

const encoder = new TextEncoder();

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test("sha1 gives the FIPS 180-4 / RFC 3174 digests of their example messages", () => {
  assertEquals(
    hex(sha1(new Uint8Array())),
    "da39a3ee5e6b4b0d3255bfef95601890afd80709",
  );
  assertEquals(
    hex(sha1(encoder.encode("abc"))),
    "a9993e364706816aba3e25717850c26c9cd0d89d",
  );
  assertEquals(
    hex(
      sha1(
        encoder.encode(
          "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
        ),
      ),
    ),
    "84983e441c3bd26ebaae4aa1f95129e5e54670f1",
  );
  assertEquals(
    hex(sha1(new Uint8Array(1_000_000).fill(0x61))),
    "34aa973cd4c4daa4f61eeb2bdbad27316534016f",
  );
});

Deno.test("sha1 matches WebCrypto's SHA-1 at every length around the block and padding boundaries", async () => {
  for (let length = 0; length <= 200; length++) {
    const bytes = crypto.getRandomValues(new Uint8Array(length));
    const expected = new Uint8Array(await crypto.subtle.digest("SHA-1", bytes));
    assertEquals(sha1(bytes), expected, `length ${length}`);
  }
});
