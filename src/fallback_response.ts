/**
 * The bytes of a `serve()` fallback's `Response`: a whole, closing
 * HTTP/1.1 response (the server answers one request per connection).
 *
 * @module
 */

import { statusText } from "./http_error_response.ts";

/** Headers a fallback `Response` may not set: wstream frames the message. */
const HOP_BY_HOP = new Set([
  "connection",
  "content-length",
  "keep-alive",
  "transfer-encoding",
  "upgrade",
]);

/**
 * Serializes a `Response` as a closing HTTP/1.1 response: its body is read
 * in full and sent with `Content-Length` and `Connection: close`.
 *
 * @example
 * ```ts
 * import { serializeResponse } from "./fallback_response.ts";
 * import { assertStringIncludes } from "@std/assert";
 *
 * const bytes = await serializeResponse(new Response("hi"), "GET");
 * const text = new TextDecoder().decode(bytes);
 * assertStringIncludes(text, "HTTP/1.1 200 OK\r\n");
 * assertStringIncludes(text, "Content-Length: 2\r\nConnection: close\r\n\r\nhi");
 * ```
 *
 * @param response The fallback's answer.
 * @param method The request's method (a HEAD answer has no body).
 * @returns The response's bytes.
 * @throws {TypeError} for an informational (1xx) status.
 */
export async function serializeResponse(
  response: Response,
  method: string,
): Promise<Uint8Array> {
  const status = response.status;
  if (status < 200) {
    throw new TypeError(
      `expected the fallback to return a final response (status 200-599), found ${status}`,
    );
  }
  const body = new Uint8Array(await response.arrayBuffer());
  // RFC 9110 §6.4.1: 204 and 304 have no content; HEAD gets only the length.
  const bodyless = status === 204 || status === 304;
  const lines = [
    `HTTP/1.1 ${status} ${response.statusText || statusText(status)}`
      .trimEnd(),
  ];
  for (const [name, value] of response.headers) {
    if (!HOP_BY_HOP.has(name)) lines.push(`${name}: ${value}`);
  }
  if (!bodyless) lines.push(`Content-Length: ${body.length}`);
  lines.push("Connection: close");
  const head = new TextEncoder().encode(lines.join("\r\n") + "\r\n\r\n");
  if (bodyless || method === "HEAD" || body.length === 0) return head;
  const bytes = new Uint8Array(head.length + body.length);
  bytes.set(head);
  bytes.set(body, head.length);
  return bytes;
}
