/**
 * The messages and checks shared by the uncompressed socket interop tests
 * (`socket_interop_server_test.ts`, `socket_interop_client_test.ts`).
 *
 * @module
 */

import { assert, assertEquals } from "@std/assert";
import type { PeerMessage } from "./_peers.ts";

/** The payload sizes around each length-encoding boundary (RFC 6455 §5.2). */
export const SIZES: readonly number[] = [
  0,
  1,
  125,
  126,
  65535,
  65536,
  1 << 20,
];

/** Random bytes (any length; getRandomValues takes 64 KiB at a time). */
export function randomBytes(length: number): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i += 65536) {
    crypto.getRandomValues(bytes.subarray(i, i + 65536));
  }
  return bytes;
}

/** Random printable ASCII text of exactly `length` bytes. */
export function randomText(length: number): string {
  const bytes = randomBytes(length);
  let text = "";
  for (let i = 0; i < length; i += 8192) {
    text += String.fromCharCode(
      ...bytes.subarray(i, i + 8192).map((byte) => 0x20 + byte % 95),
    );
  }
  return text;
}

/** For every size in {@linkcode SIZES}: a random text and a random binary message. */
export function sizedMessages(): PeerMessage[] {
  return SIZES.flatMap((size) => [randomText(size), randomBytes(size)]);
}

/** Text with 2-, 3- and 4-byte UTF-8 characters, emoji and a leading BOM. */
export function utf8Messages(): string[] {
  return [
    "\uFEFFstarts with a byte order mark",
    "\uFEFF",
    "é ß ñ ü ø", // 2 bytes each
    "€ 中文 한국어 ✓", // 3 bytes each
    "𝄞 😀 🚀 🇫🇷", // 4 bytes each (surrogate pairs in JS)
    "👩‍👩‍👧‍👦 family (ZWJ sequence)",
    // Larger than 65,535 bytes: 16-bit and 64-bit lengths, and
    // multi-byte characters across every read and frame boundary.
    "aé€😀".repeat(7000),
  ];
}

/**
 * The longest close reason allowed: 123 bytes (RFC 6455 §5.5: a control
 * frame carries at most 125, 2 of them the code), in 2-, 3- and 4-byte
 * characters.
 */
export const LONGEST_REASON: string = "é€😀".repeat(13) + "€€";

/** 1,000 small messages, text and binary alternating, each naming its index. */
export function pipelinedMessages(): PeerMessage[] {
  return Array.from(
    { length: 1000 },
    (_, i) =>
      i % 2 === 0
        ? `message ${i}`
        : new Uint8Array(new Uint32Array([i, ~i]).buffer),
  );
}

/**
 * Text for fragmented sends, and where to cut its UTF-8 bytes: each 23-byte
 * repeat has é at 1–2, € at 14–16 and 😀 at 18–21, so the cuts fall inside a
 * 2-, a 3- and a 4-byte character (RFC 6455 §5.4 lets fragments split a
 * character). `cuts` starts at 0 and ends at the byte length.
 */
export function splitText(): {
  text: string;
  bytes: Uint8Array;
  cuts: number[];
} {
  const text = "héllo wörld € 😀 ".repeat(1000);
  const bytes = new TextEncoder().encode(text);
  return {
    text,
    bytes,
    cuts: [0, 2, 15 + 23 * 300, 19 + 23 * 600, bytes.length],
  };
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Compares messages exactly (type, length, content) without printing megabytes. */
export function assertSameMessages(
  got: readonly PeerMessage[],
  want: readonly PeerMessage[],
): void {
  assertEquals(got.length, want.length, "message count");
  for (let i = 0; i < want.length; i++) {
    const a = got[i];
    const b = want[i];
    assertEquals(typeof a, typeof b, `message ${i}: type`);
    assertEquals(a.length, b.length, `message ${i}: length`);
    if (typeof a === "string") {
      assert(a === b, `message ${i} (${a.length} chars) differs`);
    } else {
      assert(
        sameBytes(a, b as Uint8Array),
        `message ${i} (${a.length} bytes) differs`,
      );
    }
  }
}

/** Resolves or rejects like promise, or rejects after ms naming what hung. */
export async function within<T>(
  promise: Promise<T>,
  ms: number,
  what: string,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`${what}: not done within ${ms} ms`)),
          ms,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves after ms. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** How a peer saw one connection end, and the subprotocol it had. */
export interface PeerClose {
  code: number | null;
  reason: string | null;
  protocol: string;
  /** The `step` query parameter of the connection's URL, when it had one. */
  step?: string | null;
}

/** The query that tags a connection with its test step: `?step=N`. */
export function stepOf(url: string): string | null {
  return new URL(url, "ws://localhost").searchParams.get("step");
}

/**
 * A queue of connection endings reported by a server, read in order with a
 * bound on the wait.
 */
export class CloseLog {
  readonly #events: PeerClose[] = [];
  readonly #waiters: Array<(event: PeerClose) => void> = [];

  /** Records one connection's end. */
  push(event: PeerClose): void {
    if (this.#step !== undefined && event.step !== this.#step) return;
    const waiter = this.#waiters.shift();
    if (waiter) waiter(event);
    else this.#events.push(event);
  }

  #step: string | undefined;

  /**
   * From now on, keeps only the endings of connections whose URL had
   * `?step=step`: a step that failed leaves its connection's ending behind
   * (possibly arriving later), which must not fail the next step too.
   */
  startStep(step: string): void {
    this.#step = step;
    const kept = this.#events.filter((event) => event.step === step);
    this.#events.splice(0, this.#events.length, ...kept);
  }

  /** The next connection's end, waiting at most ms. */
  next(ms = 5000): Promise<PeerClose> {
    const event = this.#events.shift();
    if (event) return Promise.resolve(event);
    const { promise, resolve } = Promise.withResolvers<PeerClose>();
    this.#waiters.push(resolve);
    return within(promise, ms, "the server reporting a closed connection")
      .finally(() => {
        const index = this.#waiters.indexOf(resolve);
        if (index >= 0) this.#waiters.splice(index, 1);
      });
  }
}
