/**
 * Reading the HTTP/1.1 head that opens every WebSocket connection (RFC 6455
 * §4.1, §4.2.1; RFC 9112 §2.2) from a byte stream or a connection, with
 * limits on its size, its number of fields and, through an `AbortSignal`,
 * its time. The bytes are parsed by `parseHttpHead` in `http_head.ts`.
 *
 * @module
 */

import { type HttpHead, HttpHeadError, parseHttpHead } from "./http_head.ts";

/** The default limit on the size of an HTTP head: 16 KiB. */
export const DEFAULT_MAX_HEADER_BYTES = 16 * 1024;
// Reads of the head go into a buffer this small (a head is rarely larger).
const HEAD_READ_BYTES = 2 * 1024;

/**
 * Something a head can be read from without a stream: a `Deno.Conn` has
 * both methods.
 */
export interface HeadSource {
  /** Reads bytes into `buffer`: the count, or `null` at EOF. */
  read(buffer: Uint8Array): Promise<number | null>;
  /** Ends the connection (called when `signal` aborts). */
  close?(): void;
}

/** Limits for {@linkcode readHttpHead}. */
export interface ReadHttpHeadOptions {
  /** The largest head accepted, CRLF CRLF included (default 16 KiB -> 431). */
  maxHeaderBytes?: number;
  /** The most header fields accepted (default 100 -> 431). */
  maxHeaderCount?: number;
  /**
   * Aborting stops the read: the reader is cancelled (which closes a
   * `Deno.Conn`) and the promise rejects with the signal's reason. Pass
   * `AbortSignal.timeout(ms)` to bound the time a peer may take.
   */
  signal?: AbortSignal;
}

/** What {@linkcode readHttpHead} returns. */
export interface ReadHttpHeadResult {
  /** The parsed head. */
  head: HttpHead;
  /**
   * The bytes read after the head (possibly empty): the start of the
   * WebSocket frames or of a request body. They are not in the stream any
   * more, so they must be handed on.
   */
  leftover: Uint8Array;
}

const CR = 0x0d;
const LF = 0x0a;
const NO_BYTES = new Uint8Array(0);

/**
 * Index of the first CRLF CRLF in `bytes[0, length)` at or after `from`, or
 * -1.
 */
function findHeadEnd(bytes: Uint8Array, length: number, from: number): number {
  for (let i = Math.max(0, from); i + 3 < length; i++) {
    if (
      bytes[i] === CR && bytes[i + 1] === LF && bytes[i + 2] === CR &&
      bytes[i + 3] === LF
    ) return i;
  }
  return -1;
}

// The end of the head if `bytes[0, length)` holds it (bytes from
// `searchFrom` on are new), throwing 431 once the limit is passed.
function takeHead(
  bytes: Uint8Array,
  length: number,
  searchFrom: number,
  options: ReadHttpHeadOptions,
): ReadHttpHeadResult | undefined {
  const maxHeaderBytes = options.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES;
  const end = findHeadEnd(bytes, length, searchFrom);
  const headLength = end + 4;
  if (end >= 0 && headLength <= maxHeaderBytes) {
    const head = parseHttpHead(bytes.subarray(0, headLength), options);
    // Usually nothing follows the head: no buffer for that.
    const leftover = headLength === length
      ? NO_BYTES
      : bytes.slice(headLength, length);
    return { head, leftover };
  }
  // RFC 6585 §5: 431 Request Header Fields Too Large.
  if (end >= 0 || length >= maxHeaderBytes) {
    throw new HttpHeadError(
      `expected an HTTP head of at most ${maxHeaderBytes} bytes, found ${
        end >= 0 ? `${headLength} bytes` : `more than ${maxHeaderBytes}`
      } (raise maxHeaderBytes to accept it)`,
      431,
    );
  }
  return undefined;
}

function endOfInput(length: number): Error {
  return new Error(
    length === 0
      ? "expected an HTTP head, found the end of the stream"
      : `expected the HTTP head to end with an empty line, found the end of the stream after ${length} bytes`,
  );
}

/**
 * Reads one HTTP head: everything up to and including the first empty line.
 * It reads from a byte stream, whose lock is released afterwards (success or
 * limit error) so the same stream can go on to the WebSocket connection, or
 * from a {@linkcode HeadSource} such as a `Deno.Conn`, read straight into a
 * small buffer with no stream at all. Either way the bytes read after the
 * head come back as {@linkcode ReadHttpHeadResult.leftover}, to be fed in
 * first.
 *
 * Rejects with {@linkcode HttpHeadError} (status 400 or 431) for a malformed
 * or oversized head, with a plain `Error` when the input ends before the
 * head does, with the source's error when a read fails, and with the
 * signal's reason when `signal` aborts.
 *
 * @example
 * ```ts
 * import { readHttpHead } from "./http_head_reader.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const stream = ReadableStream.from([
 *   new TextEncoder().encode("HTTP/1.1 101 Switching Protocols\r\n"),
 *   new TextEncoder().encode("Upgrade: websocket\r\n\r\nfirst frame bytes"),
 * ]);
 * const { head, leftover } = await readHttpHead(stream);
 * assertEquals(head.get("upgrade"), "websocket");
 * assertEquals(new TextDecoder().decode(leftover), "first frame bytes");
 * ```
 *
 * @param source The stream to read, or a `Deno.Conn` to read directly.
 * @param options Limits.
 * @returns The head and the bytes read after it.
 */
export function readHttpHead(
  source: ReadableStream<Uint8Array> | HeadSource,
  options: ReadHttpHeadOptions = {},
): Promise<ReadHttpHeadResult> {
  return source instanceof ReadableStream
    ? readHeadFromStream(source, options)
    : readHeadFromSource(source, options);
}

// Buffers that held heads already parsed, for the next heads: a busy server
// then allocates no buffer per handshake. A few are kept, zeroed.
const spareHeadBuffers: Uint8Array[] = [];
const MAX_SPARE_HEAD_BUFFERS = 16;

// Reads go straight into the buffer that collects the head: a server's
// handshake then costs no stream, no reader and (mostly) no new buffer.
async function readHeadFromSource(
  source: HeadSource,
  options: ReadHttpHeadOptions,
): Promise<ReadHttpHeadResult> {
  const signal = options.signal;
  signal?.throwIfAborted();
  let aborted: Promise<never> | undefined;
  let onAbort: (() => void) | undefined;
  if (signal) {
    aborted = new Promise<never>((_, reject) => {
      onAbort = () => {
        reject(signal.reason);
        try {
          source.close?.();
        } catch {
          // Closed already.
        }
      };
      signal.addEventListener("abort", onAbort, { once: true });
    });
    aborted.catch(() => {});
  }
  let storage = spareHeadBuffers.pop() ?? new Uint8Array(HEAD_READ_BYTES);
  let length = 0;
  // Whether no read into `storage` is in flight: only then may it be reused
  // (the parsed head and the leftover bytes are copies).
  let settled = true;
  try {
    while (true) {
      // Doubling keeps a head that arrives a byte at a time linear to copy.
      if (length === storage.length) {
        const grown = new Uint8Array(storage.length * 2);
        grown.set(storage);
        storage = grown;
      }
      settled = false;
      // (The first read takes the whole buffer: no view for it.)
      const reading = source.read(
        length === 0 ? storage : storage.subarray(length),
      );
      const count = aborted
        ? await Promise.race([reading, aborted])
        : await reading;
      settled = true;
      if (count === null) throw endOfInput(length);
      if (count === 0) continue;
      const searchFrom = length - 3;
      length += count;
      const result = takeHead(storage, length, searchFrom, options);
      if (result) return result;
    }
  } finally {
    if (onAbort) signal!.removeEventListener("abort", onAbort);
    if (
      settled && storage.length === HEAD_READ_BYTES &&
      spareHeadBuffers.length < MAX_SPARE_HEAD_BUFFERS
    ) {
      // Zeroed, so no client's bytes linger for the next.
      spareHeadBuffers.push(storage.fill(0, 0, length));
    }
  }
}

// A stream is read as a HeadSource: each read takes what fits of the chunk
// at hand, and the rest of that chunk follows the head's own leftover.
async function readHeadFromStream(
  readable: ReadableStream<Uint8Array>,
  options: ReadHttpHeadOptions,
): Promise<ReadHttpHeadResult> {
  // Before the lock: an aborted signal leaves the stream as it was.
  options.signal?.throwIfAborted();
  const reader = readable.getReader();
  let rest: Uint8Array = NO_BYTES;
  const source: HeadSource = {
    async read(buffer) {
      while (rest.length === 0) {
        const { value, done } = await reader.read();
        if (done) return null;
        rest = value;
      }
      const count = Math.min(rest.length, buffer.length);
      buffer.set(rest.subarray(0, count));
      rest = rest.subarray(count);
      return count;
    },
    close() {
      reader.cancel(options.signal?.reason).catch(() => {});
    },
  };
  try {
    const { head, leftover } = await readHeadFromSource(source, options);
    if (rest.length === 0) return { head, leftover };
    const joined = new Uint8Array(leftover.length + rest.length);
    joined.set(leftover);
    joined.set(rest, leftover.length);
    return { head, leftover: joined };
  } finally {
    reader.releaseLock();
  }
}
