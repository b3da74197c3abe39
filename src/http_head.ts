/**
 * Parsing the HTTP/1.1 head (start line and header fields) that opens every
 * WebSocket connection (RFC 6455 §4.1, §4.2.1; RFC 9112 §2-§5), and the
 * token and field-value grammar it checks (RFC 9110 §5). Reading a head
 * from a connection is `http_head_reader.ts`; its start line is
 * `http_start_line.ts`.
 *
 * @module
 */

/** The default limit on the number of header fields in an HTTP head. */
export const DEFAULT_MAX_HEADER_COUNT = 100;

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
// most heads are only asked for a few fields: `headers` is built on demand,
// and `get` scans the few fields in place (no map, no lower-cased copies).
class ParsedHead implements HttpHead {
  readonly startLine: string;
  readonly fields: [name: string, value: string][];
  #headers: Headers | undefined;

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
    let found: string | null = null;
    for (const field of this.fields) {
      const fieldName = field[0];
      if (
        fieldName.length === name.length &&
        asciiLowerEquals(fieldName, 0, name)
      ) {
        found = found === null ? field[1] : `${found}, ${field[1]}`;
      }
    }
    return found;
  }
}

/**
 * Whether `text` holds `lower` (in ASCII lower case) at `at`, in any ASCII
 * case: how header names and list tokens are compared, without a
 * lower-cased copy.
 *
 * @example
 * ```ts
 * import { asciiLowerEquals } from "./http_head.ts";
 * import { assert } from "@std/assert";
 *
 * assert(asciiLowerEquals("Connection: Upgrade", 12, "upgrade"));
 * assert(!asciiLowerEquals("Upgrade", 0, "upgrades"));
 * ```
 *
 * @param text The text to look in.
 * @param at Where in `text` the comparison starts.
 * @param lower The expected characters, ASCII letters in lower case.
 * @returns `true` when the characters from `at` match `lower`.
 */
export function asciiLowerEquals(
  text: string,
  at: number,
  lower: string,
): boolean {
  if (at + lower.length > text.length) return false;
  for (let i = 0; i < lower.length; i++) {
    let code = text.charCodeAt(at + i);
    if (code >= 0x41 && code <= 0x5a) code += 0x20; // A-Z
    if (code !== lower.charCodeAt(i)) return false;
  }
  return true;
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
 * (TextDecoder's "latin1" is windows-1252, which remaps 0x80-0x9F.)
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
  const startLine = lines[0];
  if (/[\r\n\0]/.test(startLine)) {
    throw new HttpHeadError(
      "expected the start line to end in CRLF, found a bare CR, LF or NUL in it",
      400,
    );
  }
  const fieldCount = lines.length - 1;
  if (fieldCount > maxHeaderCount) {
    throw new HttpHeadError(
      `expected at most ${maxHeaderCount} header fields, found ${fieldCount} (raise maxHeaderCount to accept them)`,
      431,
    );
  }
  const fields: [string, string][] = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i];
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
    let first = colon + 1;
    let last = line.length;
    while (first < last && isOws(line.charCodeAt(first))) first++;
    while (last > first && isOws(line.charCodeAt(last - 1))) last--;
    const value = line.slice(first, last);
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

// RFC 9110 §5.6.3: OWS is spaces and horizontal tabs.
function isOws(code: number): boolean {
  return code === 0x20 || code === 0x09;
}

/** An HTTP version, as in `HTTP/1.1`. */
