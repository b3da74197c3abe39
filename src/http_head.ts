/**
 * Reading and parsing the HTTP/1.1 head (start line and header fields) that
 * opens every WebSocket connection (RFC 6455 §4.1, §4.2.1; RFC 9112 §2–§5),
 * with limits on its size, its number of fields and, through an
 * `AbortSignal`, its time.
 *
 * @module
 */

/** The default limit on the size of an HTTP head: 16 KiB. */
export const DEFAULT_MAX_HEADER_BYTES = 16 * 1024;
/** The default limit on the number of header fields in an HTTP head. */
export const DEFAULT_MAX_HEADER_COUNT = 100;
// Reads of the head go into a buffer this small (a head is rarely larger).
const HEAD_READ_BYTES = 2 * 1024;

/**
 * An HTTP head that could not be accepted. `status` is the response a server
 * sends for it: 400 for a malformed head, 431 for one over the limits.
 *
 * @example
 * ```ts
 * import { HttpHeadError, parseHttpHead } from "./http_head.ts";
 * import { assertEquals, assertThrows } from "@std/assert";
 *
 * const bytes = new TextEncoder().encode("GET / HTTP/1.1\r\n folded\r\n\r\n");
 * const error = assertThrows(() => parseHttpHead(bytes), HttpHeadError);
 * assertEquals(error.status, 400);
 * ```
 */
export class HttpHeadError extends Error {
  /** The HTTP status a server answers with (400 or 431). */
  readonly status: number;

  /**
   * Creates an error.
   *
   * @param message What was expected and what was found.
   * @param status The HTTP status that goes with it.
   */
  constructor(message: string, status: number) {
    super(message);
    this.name = "HttpHeadError";
    this.status = status;
  }
}

/**
 * A parsed HTTP head.
 *
 * @example
 * ```ts
 * import { parseHttpHead } from "./http_head.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const head = parseHttpHead(
 *   new TextEncoder().encode("GET /chat HTTP/1.1\r\nHost: a.example\r\n\r\n"),
 * );
 * assertEquals(head.startLine, "GET /chat HTTP/1.1");
 * assertEquals(head.get("host"), "a.example");
 * assertEquals(head.headers.get("host"), "a.example");
 * ```
 */
export interface HttpHead {
  /** The request line or status line, without its CRLF. */
  startLine: string;
  /**
   * The header fields as `Headers`; repeated fields are joined with ", ".
   * Built on first use: {@linkcode HttpHead.get} answers without it.
   */
  readonly headers: Headers;
  /** The header fields in order, names as sent, values without OWS. */
  fields: [name: string, value: string][];
  /**
   * The value of a header field, as `headers.get(name)` gives it (repeated
   * fields joined with ", "), or `null` when absent.
   *
   * @param name The field name in lower case.
   */
  get(name: string): string | null;
}

// Headers objects cost more than the whole rest of a server's handshake, and
// most heads are only asked for a few fields: both views are built on demand.
class ParsedHead implements HttpHead {
  readonly startLine: string;
  readonly fields: [name: string, value: string][];
  #headers: Headers | undefined;
  #byName: Map<string, string> | undefined;

  constructor(startLine: string, fields: [name: string, value: string][]) {
    this.startLine = startLine;
    this.fields = fields;
  }

  get headers(): Headers {
    if (this.#headers === undefined) {
      const headers = new Headers();
      for (const [name, value] of this.fields) headers.append(name, value);
      this.#headers = headers;
    }
    return this.#headers;
  }

  get(name: string): string | null {
    let byName = this.#byName;
    if (byName === undefined) {
      byName = this.#byName = new Map();
      for (const [fieldName, value] of this.fields) {
        const key = fieldName.toLowerCase();
        const previous = byName.get(key);
        byName.set(
          key,
          previous === undefined ? value : `${previous}, ${value}`,
        );
      }
    }
    return byName.get(name) ?? null;
  }
}

/**
 * An {@linkcode HttpHead} from a start line and fields another parser has
 * read already (a `node:http` request's `rawHeaders`), with the same lazy
 * lookups as a head this module parsed.
 *
 * @example
 * ```ts
 * import { headFromFields } from "./http_head.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const head = headFromFields("GET / HTTP/1.1", [["Host", "a"], ["X", "1"], ["x", "2"]]);
 * assertEquals(head.get("x"), "1, 2");
 * ```
 *
 * @param startLine The request or status line.
 * @param fields The header fields in order, names as sent.
 * @returns The head.
 */
export function headFromFields(
  startLine: string,
  fields: [name: string, value: string][],
): HttpHead {
  return new ParsedHead(startLine, fields);
}

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
  /** The largest head accepted, CRLF CRLF included (default 16 KiB → 431). */
  maxHeaderBytes?: number;
  /** The most header fields accepted (default 100 → 431). */
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

/** Index of the first CRLF CRLF in `bytes` at or after `from`, or -1. */
function findHeadEnd(bytes: Uint8Array, from: number): number {
  for (let i = Math.max(0, from); i + 3 < bytes.length; i++) {
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
  const buffer = bytes.subarray(0, length);
  const end = findHeadEnd(buffer, searchFrom);
  const headLength = end + 4;
  if (end >= 0 && headLength <= maxHeaderBytes) {
    const head = parseHttpHead(buffer.subarray(0, headLength), options);
    // Usually nothing follows the head: no buffer for that.
    const leftover = headLength === length
      ? NO_BYTES
      : buffer.slice(headLength);
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
 * import { readHttpHead } from "./http_head.ts";
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
      const reading = source.read(storage.subarray(length));
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

// RFC 9110 §5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" /
// "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * Whether `value` is an HTTP token (RFC 9110 §5.6.2), the syntax of header
 * names, methods, subprotocols and extension names.
 *
 * @example
 * ```ts
 * import { isToken } from "./http_head.ts";
 * import { assert } from "@std/assert";
 *
 * assert(isToken("Sec-WebSocket-Key"));
 * assert(!isToken("bad name"));
 * ```
 *
 * @param value The string to test.
 * @returns `true` when it is a non-empty token.
 */
export function isToken(value: string): boolean {
  return TOKEN.test(value);
}

// RFC 9110 §5.5: field values are VCHAR, obs-text, SP and HTAB; CR, LF and
// NUL are never allowed and other controls are refused too.
// deno-lint-ignore no-control-regex
const BAD_FIELD_VALUE = /[\x00-\x08\x0a-\x1f\x7f]/;

/**
 * Whether `value` may be sent as a header field value: no CR, LF, NUL or
 * other control character except HTAB (RFC 9110 §5.5).
 *
 * @example
 * ```ts
 * import { isFieldValue } from "./http_head.ts";
 * import { assert } from "@std/assert";
 *
 * assert(isFieldValue("chat, superchat"));
 * assert(!isFieldValue("a\r\nInjected: yes"));
 * ```
 *
 * @param value The string to test.
 * @returns `true` when it is safe to send.
 */
export function isFieldValue(value: string): boolean {
  return !BAD_FIELD_VALUE.test(value);
}

const asciiDecoder = new TextDecoder();

/**
 * One char per byte (ISO-8859-1), so obs-text bytes survive as they are.
 * (TextDecoder's "latin1" is windows-1252, which remaps 0x80–0x9F.)
 */
function bytesToLatin1(bytes: Uint8Array): string {
  // Heads are nearly always ASCII, where UTF-8 decoding gives the same
  // characters several times faster than building the string by code.
  let ascii = true;
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] > 0x7f) {
      ascii = false;
      break;
    }
  }
  if (ascii) return asciiDecoder.decode(bytes);
  let text = "";
  for (let i = 0; i < bytes.length; i += 8192) {
    text += String.fromCharCode(...bytes.subarray(i, i + 8192));
  }
  return text;
}

/** Describes a character for an error message. */
function describeChar(char: string): string {
  const code = char.charCodeAt(0);
  return code < 0x20 || code === 0x7f
    ? `0x${code.toString(16).padStart(2, "0")}`
    : JSON.stringify(char);
}

/**
 * Parses an HTTP head (start line, header fields, the final empty line).
 * Lines must end in CRLF (RFC 9112 §2.2); obsolete line folding (§5.2), a
 * field name that is not a token or is followed by whitespace (§5.1), and
 * values with control characters are refused with status 400; more fields
 * than `maxHeaderCount` with status 431.
 *
 * @example
 * ```ts
 * import { parseHttpHead } from "./http_head.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const head = parseHttpHead(new TextEncoder().encode(
 *   "GET / HTTP/1.1\r\nConnection: keep-alive\r\nConnection:  Upgrade \r\n\r\n",
 * ));
 * assertEquals(head.headers.get("connection"), "keep-alive, Upgrade");
 * ```
 *
 * @param bytes The head, ending in CRLF CRLF (the final CRLF may be left off).
 * @param options `maxHeaderCount` (default 100).
 * @returns The parsed head.
 */
export function parseHttpHead(
  bytes: Uint8Array,
  options: { maxHeaderCount?: number } = {},
): HttpHead {
  const maxHeaderCount = options.maxHeaderCount ?? DEFAULT_MAX_HEADER_COUNT;
  const text = bytesToLatin1(bytes);
  const lines = text.split("\r\n");
  while (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  if (lines.length === 0) {
    throw new HttpHeadError("expected a start line, found an empty head", 400);
  }
  const [startLine, ...fieldLines] = lines;
  if (/[\r\n\0]/.test(startLine)) {
    throw new HttpHeadError(
      "expected the start line to end in CRLF, found a bare CR, LF or NUL in it",
      400,
    );
  }
  if (fieldLines.length > maxHeaderCount) {
    throw new HttpHeadError(
      `expected at most ${maxHeaderCount} header fields, found ${fieldLines.length} (raise maxHeaderCount to accept them)`,
      431,
    );
  }
  const fields: [string, string][] = [];
  for (const line of fieldLines) {
    if (line === "") {
      throw new HttpHeadError(
        "expected one empty line ending the head, found more lines after it",
        400,
      );
    }
    // RFC 9112 §5.2: obs-fold must be rejected by a server (or replaced).
    if (line[0] === " " || line[0] === "\t") {
      throw new HttpHeadError(
        `expected a header field, found a folded continuation line ${
          JSON.stringify(line.slice(0, 40))
        } (obsolete line folding is refused, RFC 9112 §5.2)`,
        400,
      );
    }
    const colon = line.indexOf(":");
    const name = colon < 0 ? line : line.slice(0, colon);
    // RFC 9112 §5.1: no whitespace between the field name and the colon.
    if (colon < 0 || !isToken(name)) {
      throw new HttpHeadError(
        `expected a header field "name: value" with a token name, found ${
          JSON.stringify(line.slice(0, 60))
        }`,
        400,
      );
    }
    // RFC 9110 §5.5: OWS around the value is not part of it.
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, "");
    const bad = BAD_FIELD_VALUE.exec(value);
    if (bad) {
      throw new HttpHeadError(
        `expected the value of header ${name} without control characters, found ${
          describeChar(bad[0])
        }`,
        400,
      );
    }
    fields.push([name, value]);
  }
  return new ParsedHead(startLine, fields);
}

/** An HTTP version, as in `HTTP/1.1`. */
export interface HttpVersion {
  /** The major version. */
  major: number;
  /** The minor version. */
  minor: number;
}

// RFC 9112 §3.2: the request-target has no whitespace or control characters.
// deno-lint-ignore no-control-regex
const BAD_TARGET = /[\s\x00-\x1f\x7f]/;

/** The parts of a request line (RFC 9112 §3). */
export interface RequestLine {
  /** The method, e.g. `GET`. */
  method: string;
  /** The request target, e.g. `/chat?room=1`. */
  target: string;
  /** The HTTP version. */
  version: HttpVersion;
}

function parseVersion(text: string): HttpVersion | undefined {
  // RFC 9112 §2.3: HTTP-version = "HTTP" "/" DIGIT "." DIGIT
  const match = /^HTTP\/(\d)\.(\d)$/.exec(text);
  return match ? { major: +match[1], minor: +match[2] } : undefined;
}

/**
 * Parses a request line: `method SP request-target SP HTTP-version`
 * (RFC 9112 §3). Throws {@linkcode HttpHeadError} with status 400 otherwise.
 *
 * @example
 * ```ts
 * import { parseRequestLine } from "./http_head.ts";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(parseRequestLine("GET /chat HTTP/1.1"), {
 *   method: "GET",
 *   target: "/chat",
 *   version: { major: 1, minor: 1 },
 * });
 * ```
 *
 * @param line The start line of a request.
 * @returns Its parts.
 */
export function parseRequestLine(line: string): RequestLine {
  const parts = line.split(" ");
  const version = parts.length === 3 ? parseVersion(parts[2]) : undefined;
  if (
    parts.length !== 3 || !isToken(parts[0]) || parts[1] === "" ||
    BAD_TARGET.test(parts[1]) || version === undefined
  ) {
    throw new HttpHeadError(
      `expected a request line "METHOD /path HTTP/1.1", found ${
        JSON.stringify(line.slice(0, 80))
      }`,
      400,
    );
  }
  return { method: parts[0], target: parts[1], version };
}

/** The parts of a status line (RFC 9112 §4). */
export interface StatusLine {
  /** The HTTP version. */
  version: HttpVersion;
  /** The three-digit status code. */
  status: number;
  /** The reason phrase (possibly empty). */
  statusText: string;
}

/**
 * Parses a status line: `HTTP-version SP status-code SP [reason-phrase]`
 * (RFC 9112 §4). Throws {@linkcode HttpHeadError} otherwise.
 *
 * @example
 * ```ts
 * import { parseStatusLine } from "./http_head.ts";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(parseStatusLine("HTTP/1.1 101 Switching Protocols"), {
 *   version: { major: 1, minor: 1 },
 *   status: 101,
 *   statusText: "Switching Protocols",
 * });
 * ```
 *
 * @param line The start line of a response.
 * @returns Its parts.
 */
export function parseStatusLine(line: string): StatusLine {
  const match = /^(HTTP\/\d\.\d) (\d{3})(?: (.*))?$/.exec(line);
  const version = match ? parseVersion(match[1]) : undefined;
  if (!match || !version) {
    throw new HttpHeadError(
      `expected a status line "HTTP/1.1 101 Switching Protocols", found ${
        JSON.stringify(line.slice(0, 80))
      }`,
      400,
    );
  }
  return { version, status: +match[2], statusText: match[3] ?? "" };
}
