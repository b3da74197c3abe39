/**
 * The start line of an HTTP/1.1 head (RFC 9112 §3, §4): a client's request
 * line or a server's status line, and the HTTP version in either.
 *
 * @module
 */

import { HttpHeadError, isToken } from "./http_head.ts";

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
 * import { parseRequestLine } from "./http_start_line.ts";
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
 * import { parseStatusLine } from "./http_start_line.ts";
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
