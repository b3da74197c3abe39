import { assert, assertEquals, assertRejects, assertThrows } from "@std/assert";
import {
  HttpHeadError,
  isFieldValue,
  isToken,
  parseHttpHead,
} from "../src/http_head.ts";
import { parseRequestLine, parseStatusLine } from "../src/http_start_line.ts";
import { readHttpHead } from "../src/http_head_reader.ts";

const encoder = new TextEncoder();
const bytes = (text: string) => encoder.encode(text);

/** A stream of the given chunks that records whether it was cancelled. */
function chunks(...parts: (string | Uint8Array)[]) {
  const state = { cancelled: false };
  const queue = parts.map((p) => typeof p === "string" ? bytes(p) : p);
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      const next = queue.shift();
      if (next) controller.enqueue(next);
      else controller.close();
    },
    cancel() {
      state.cancelled = true;
    },
  });
  return { stream, state };
}

Deno.test("readHttpHead() parses a head and returns the bytes after it", async () => {
  const { stream } = chunks(
    "GET /chat?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n",
    new Uint8Array([0x81, 0x80]),
  );
  const { head, leftover } = await readHttpHead(stream);
  assertEquals(head.startLine, "GET /chat?x=1 HTTP/1.1");
  assertEquals(head.headers.get("host"), "example.com");
  assertEquals(leftover, new Uint8Array());
  // The lock is released and the rest of the stream is still there.
  const reader = stream.getReader();
  assertEquals((await reader.read()).value, new Uint8Array([0x81, 0x80]));
  reader.releaseLock();
});

Deno.test("readHttpHead() keeps frame bytes that arrive in the same chunk as the head", async () => {
  const { stream } = chunks(
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x02hi",
  );
  const { head, leftover } = await readHttpHead(stream);
  assertEquals(head.headers.get("upgrade"), "websocket");
  assertEquals(leftover, bytes("\x81\x02hi"));
});

Deno.test("readHttpHead() returns every byte after the head when a chunk is larger than its read buffer", async () => {
  // Frame bytes of 5,000 and a head of over 2 KiB: both larger than one
  // read of the head buffer, so part of each chunk waits for the next read.
  const frames = Uint8Array.from({ length: 5000 }, (_, i) => i % 251);
  const shortHead = bytes("HTTP/1.1 101 Switching Protocols\r\n\r\n");
  const longHead = bytes(
    `GET / HTTP/1.1\r\nCookie: ${"c".repeat(3000)}\r\n\r\n`,
  );
  for (const head of [shortHead, longHead]) {
    const whole = new Uint8Array(head.length + frames.length);
    whole.set(head);
    whole.set(frames, head.length);
    for (
      const parts of [[whole], [whole.subarray(0, 10), whole.subarray(10)]]
    ) {
      const { stream } = chunks(...parts, bytes("next chunk"));
      const result = await readHttpHead(stream);
      assertEquals(result.leftover, frames);
      // The chunk after them is still in the stream.
      assertEquals(await Array.fromAsync(stream), [bytes("next chunk")]);
    }
  }
});

Deno.test("readHttpHead() finds the end of the head split over one-byte chunks", async () => {
  const text = "GET / HTTP/1.1\r\nHost: a\r\n\r\nXY";
  const { stream } = chunks(...[...text]);
  const { head, leftover } = await readHttpHead(stream);
  assertEquals(head.fields, [["Host", "a"]]);
  // It stops reading at the chunk that ends the head.
  assertEquals(leftover, new Uint8Array());
  assertEquals((await Array.fromAsync(stream)).length, 2);
});

Deno.test("readHttpHead() rejects with 431 once maxHeaderBytes pass without an empty line", async () => {
  const { stream } = chunks("GET / HTTP/1.1\r\n", "X-Big: " + "a".repeat(100));
  const error = await assertRejects(
    () => readHttpHead(stream, { maxHeaderBytes: 64 }),
    HttpHeadError,
    "at most 64 bytes",
  );
  assertEquals(error.status, 431);
});

Deno.test("readHttpHead() rejects with 431 a complete head that is over the limit", async () => {
  const head = "GET / HTTP/1.1\r\nHost: a\r\nX: " + "b".repeat(60) + "\r\n\r\n";
  const { stream } = chunks(head);
  const error = await assertRejects(
    () => readHttpHead(stream, { maxHeaderBytes: 64 }),
    HttpHeadError,
  );
  assertEquals(error.status, 431);
});

Deno.test("readHttpHead() accepts a head of exactly maxHeaderBytes followed by more bytes", async () => {
  const head = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
  const { stream } = chunks(head + "z".repeat(100));
  const result = await readHttpHead(stream, { maxHeaderBytes: head.length });
  assertEquals(result.leftover.length, 100);
});

Deno.test("readHttpHead() rejects with 431 more header fields than maxHeaderCount", async () => {
  const fields = Array.from({ length: 5 }, (_, i) => `X-${i}: ${i}\r\n`);
  const { stream } = chunks("GET / HTTP/1.1\r\n" + fields.join("") + "\r\n");
  const error = await assertRejects(
    () => readHttpHead(stream, { maxHeaderCount: 4 }),
    HttpHeadError,
    "at most 4 header fields, found 5",
  );
  assertEquals(error.status, 431);
});

Deno.test("readHttpHead() rejects when the stream ends before the head", async () => {
  await assertRejects(
    () => readHttpHead(chunks().stream),
    Error,
    "found the end of the stream",
  );
  await assertRejects(
    () => readHttpHead(chunks("GET / HTTP/1.1\r\n").stream),
    Error,
    "after 16 bytes",
  );
});

Deno.test("readHttpHead() stops and cancels the stream when the signal aborts", async () => {
  // A stream that never delivers anything.
  let cancelled = false;
  const stream = new ReadableStream<Uint8Array>({
    cancel() {
      cancelled = true;
    },
  });
  const controller = new AbortController();
  const reading = readHttpHead(stream, { signal: controller.signal });
  controller.abort(new DOMException("too slow", "TimeoutError"));
  const error = await assertRejects(() => reading, DOMException, "too slow");
  assertEquals(error.name, "TimeoutError");
  assert(cancelled);
});

Deno.test("readHttpHead() rejects at once with an already aborted signal", async () => {
  const { stream } = chunks("GET / HTTP/1.1\r\n\r\n");
  await assertRejects(
    () => readHttpHead(stream, { signal: AbortSignal.abort() }),
    DOMException,
  );
  assert(!stream.locked);
});

/**
 * A `Deno.Conn`-like source of the given chunks (each read returns at most
 * one chunk, cut to the buffer), recording the reads and whether it was
 * closed. Without chunks left it waits until `end()` (then reads give EOF)
 * or `close()` (then they fail as on a closed `Deno.Conn`).
 */
function source(...parts: string[]) {
  const queue = parts.map(bytes);
  const state = { closed: false, ended: false, readSizes: [] as number[] };
  let wake: (() => void) | undefined;
  return {
    state,
    async read(buffer: Uint8Array): Promise<number | null> {
      state.readSizes.push(buffer.length);
      if (queue.length === 0 && !state.closed && !state.ended) {
        await new Promise<void>((resolve) => wake = resolve);
      }
      if (state.closed) throw new Deno.errors.BadResource("closed");
      const next = queue.shift();
      if (next === undefined) return null;
      const count = Math.min(next.length, buffer.length);
      buffer.set(next.subarray(0, count));
      if (count < next.length) queue.unshift(next.subarray(count));
      return count;
    },
    close() {
      state.closed = true;
      wake?.();
    },
    end() {
      state.ended = true;
      wake?.();
    },
  };
}

Deno.test("readHttpHead() reads a Deno.Conn-like source directly, into one small buffer", async () => {
  const first = "GET /chat HTTP/1.1\r\nHost: a\r";
  const conn = source(first, "\n\r\nframe");
  const { head, leftover } = await readHttpHead(conn);
  assertEquals(head.startLine, "GET /chat HTTP/1.1");
  assertEquals(head.get("host"), "a");
  assertEquals(new TextDecoder().decode(leftover), "frame");
  // The second read continues in the same buffer, after the first bytes.
  assertEquals(conn.state.readSizes, [2048, 2048 - first.length]);
  assert(!conn.state.closed);
});

Deno.test("readHttpHead() from a source: one byte at a time, 431 over the limit, and the end of input", async () => {
  const text = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
  const { head } = await readHttpHead(source(...text.split("")));
  assertEquals(head.fields, [["Host", "a"]]);

  const long = source("GET / HTTP/1.1\r\nX: " + "a".repeat(5000));
  const error = await assertRejects(
    () => readHttpHead(long, { maxHeaderBytes: 4096 }),
    HttpHeadError,
    "at most 4096 bytes",
  );
  assertEquals(error.status, 431);

  const cut = source("GET / HTTP/1.1\r\n");
  const reading = readHttpHead(cut);
  cut.end();
  await assertRejects(() => reading, Error, "found the end of the stream");
});

Deno.test("readHttpHead() from a source reuses the buffer of a head already parsed, zeroed", async () => {
  const seen: { buffer: ArrayBufferLike; bytes: number[] }[] = [];
  const recording = (text: string) => {
    const inner = source(text);
    return {
      read(buffer: Uint8Array) {
        seen.push({ buffer: buffer.buffer, bytes: [...buffer] });
        return inner.read(buffer);
      },
    };
  };
  const first = await readHttpHead(
    recording("GET / HTTP/1.1\r\nCookie: secret\r\n\r\nrest"),
  );
  assertEquals(first.head.get("cookie"), "secret");
  assertEquals(new TextDecoder().decode(first.leftover), "rest");
  const second = await readHttpHead(recording("GET / HTTP/1.1\r\n\r\n"));
  assertEquals(second.head.fields, []);
  assertEquals(second.leftover.length, 0);
  // The second head was read into the first one's buffer, wiped clean.
  assert(seen[1].buffer === seen[0].buffer);
  assert(seen[1].bytes.every((byte) => byte === 0));
  // The first result does not share it.
  assertEquals(new TextDecoder().decode(first.leftover), "rest");
});

Deno.test("readHttpHead() from a source closes it when the signal aborts", async () => {
  const conn = source();
  const controller = new AbortController();
  const reading = readHttpHead(conn, { signal: controller.signal });
  controller.abort(new DOMException("too slow", "TimeoutError"));
  await assertRejects(() => reading, DOMException, "too slow");
  assert(conn.state.closed);
});

Deno.test("parseHttpHead(): get() answers as headers.get() would, without building Headers", () => {
  const head = parseHttpHead(
    bytes("GET / HTTP/1.1\r\nX-A: 1\r\nHost: h\r\nx-a: 2\r\nEmpty:\r\n\r\n"),
  );
  for (const name of ["x-a", "host", "empty", "missing"]) {
    assertEquals(head.get(name), head.headers.get(name), name);
  }
  assertEquals(head.get("x-a"), "1, 2");
  assertEquals(head.get("missing"), null);
  assertEquals([...head.headers], [["empty", ""], ["host", "h"], [
    "x-a",
    "1, 2",
  ]]);
});

Deno.test("parseHttpHead() joins repeated fields and trims optional whitespace", () => {
  const head = parseHttpHead(
    bytes("GET / HTTP/1.1\r\nA: 1\r\na:\t2 \r\nEmpty:\r\n\r\n"),
  );
  assertEquals(head.headers.get("a"), "1, 2");
  assertEquals(head.headers.get("empty"), "");
  assertEquals(head.fields, [["A", "1"], ["a", "2"], ["Empty", ""]]);
});

Deno.test("parseHttpHead() keeps obs-text bytes (0x80-0xFF) as one char each", () => {
  const head = parseHttpHead(
    new Uint8Array([...bytes("GET / HTTP/1.1\r\nX: "), 0x80, 0xff, 13, 10]),
  );
  assertEquals(head.headers.get("x"), "\x80\xff");
});

Deno.test("parseHttpHead() refuses malformed heads with status 400", () => {
  const cases: [string, string][] = [
    ["GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", "folded continuation"],
    ["GET / HTTP/1.1\r\nHost : a\r\n\r\n", "token name"],
    ["GET / HTTP/1.1\r\nNo colon\r\n\r\n", "token name"],
    ["GET / HTTP/1.1\r\n: empty name\r\n\r\n", "token name"],
    ["GET / HTTP/1.1\r\nX: a\nY: b\r\n\r\n", "0x0a"],
    ["GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", "0x0d"],
    ["GET / HTTP/1.1\r\nX: a\0b\r\n\r\n", "0x00"],
    ["GET / HTTP/1.1\nHost: a\r\n\r\n", "bare CR, LF or NUL"],
    ["\r\n\r\n", "empty head"],
  ];
  for (const [text, message] of cases) {
    const error = assertThrows(
      () => parseHttpHead(bytes(text)),
      HttpHeadError,
      message,
    );
    assertEquals(error.status, 400, text);
  }
});

Deno.test("parseRequestLine() splits a request line and refuses bad ones", () => {
  assertEquals(parseRequestLine("GET /a?b HTTP/1.1"), {
    method: "GET",
    target: "/a?b",
    version: { major: 1, minor: 1 },
  });
  assertEquals(parseRequestLine("GET / HTTP/1.0").version, {
    major: 1,
    minor: 0,
  });
  for (
    const line of [
      "GET /",
      "GET  / HTTP/1.1",
      "GET / HTTP/1.1 x",
      "G(T / HTTP/1.1",
      "GET / HTTPS/1.1",
      "GET / HTTP/11",
    ]
  ) {
    assertThrows(() => parseRequestLine(line), HttpHeadError, "request line");
  }
});

Deno.test("parseStatusLine() splits a status line, reason phrase optional", () => {
  assertEquals(parseStatusLine("HTTP/1.1 101 Switching Protocols"), {
    version: { major: 1, minor: 1 },
    status: 101,
    statusText: "Switching Protocols",
  });
  assertEquals(parseStatusLine("HTTP/1.1 404").statusText, "");
  assertThrows(() => parseStatusLine("HTTP/1.1 10"), HttpHeadError);
  assertThrows(() => parseStatusLine("SSH-2.0-OpenSSH"), HttpHeadError);
});

Deno.test("isToken() and isFieldValue() follow RFC 9110", () => {
  assert(isToken("Sec-WebSocket-Protocol"));
  assert(isToken("x!#$%&'*+-.^_`|~9"));
  assert(!isToken(""));
  assert(!isToken("a b"));
  assert(!isToken("a:b"));
  assert(!isToken("a\r\n"));
  assert(isFieldValue("text/html; q=0.9\tx"));
  assert(!isFieldValue("a\rb"));
  assert(!isFieldValue("a\nb"));
  assert(!isFieldValue("a\0b"));
});
