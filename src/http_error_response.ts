/**
 * The whole, closing HTTP/1.1 error response a server sends when it refuses
 * a connection before any WebSocket exists (RFC 6455 §4.2.1: "an HTTP
 * response with an appropriate error code"), and the reason phrases of
 * RFC 9110 §15.
 *
 * @module
 */

const encoder = new TextEncoder();

const STATUS_TEXT: Record<number, string> = {
  200: "OK",
  201: "Created",
  202: "Accepted",
  204: "No Content",
  206: "Partial Content",
  301: "Moved Permanently",
  302: "Found",
  303: "See Other",
  304: "Not Modified",
  307: "Temporary Redirect",
  308: "Permanent Redirect",
  400: "Bad Request",
  401: "Unauthorized",
  404: "Not Found",
  409: "Conflict",
  410: "Gone",
  413: "Content Too Large",
  415: "Unsupported Media Type",
  429: "Too Many Requests",
  403: "Forbidden",
  405: "Method Not Allowed",
  408: "Request Timeout",
  426: "Upgrade Required",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
};

/**
 * The reason phrase for a status code (RFC 9110 §15), or "" when unknown.
 *
 * @example
 * ```ts
 * import { statusText } from "./http_error_response.ts";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(statusText(426), "Upgrade Required");
 * ```
 *
 * @param status The status code.
 * @returns Its reason phrase.
 */
export function statusText(status: number): string {
  return STATUS_TEXT[status] ?? "";
}

/**
 * Builds a complete, closing HTTP/1.1 error response with a plain-text body
 * (`Content-Length`, `Connection: close`).
 *
 * @example
 * ```ts
 * import { buildErrorResponse } from "./http_error_response.ts";
 * import { assertStringIncludes } from "@std/assert";
 *
 * const text = new TextDecoder().decode(
 *   buildErrorResponse(426, "expected a WebSocket upgrade", [["Sec-WebSocket-Version", "13"]]),
 * );
 * assertStringIncludes(text, "HTTP/1.1 426 Upgrade Required\r\n");
 * assertStringIncludes(text, "Sec-WebSocket-Version: 13\r\n");
 * ```
 *
 * @param status The HTTP status.
 * @param message The body, what was expected and what was found.
 * @param headers More header fields.
 * @returns The whole response.
 */
export function buildErrorResponse(
  status: number,
  message: string,
  headers: readonly [string, string][] = [],
): Uint8Array {
  const body = encoder.encode(message + "\n");
  const lines = [
    `HTTP/1.1 ${status} ${statusText(status)}`.trimEnd(),
    "Content-Type: text/plain; charset=utf-8",
    `Content-Length: ${body.length}`,
    "Connection: close",
    ...headers.map(([name, value]) => `${name}: ${value}`),
  ];
  const head = encoder.encode(lines.join("\r\n") + "\r\n\r\n");
  const bytes = new Uint8Array(head.length + body.length);
  bytes.set(head);
  bytes.set(body, head.length);
  return bytes;
}
