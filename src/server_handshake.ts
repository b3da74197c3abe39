/**
 * The server's side of the WebSocket opening handshake (RFC 6455 §4.2),
 * without any I/O: the checks of the client's request, the refusal that
 * names what was wrong, and the 101 response.
 *
 * @module
 */

import { encodeBase64Into } from "./base64.ts";
import { acceptDigest, WEBSOCKET_VERSION } from "./handshake_key.ts";
import {
  describeHeaderValue,
  hasToken,
  splitHeaderList,
} from "./header_list.ts";
import { asciiLowerEquals, type HttpHead, isToken } from "./http_head.ts";
import { parseRequestLine, type RequestLine } from "./http_start_line.ts";

/**
 * An opening handshake the server refuses, with the HTTP response that says
 * why (RFC 6455 §4.2.1: "the server MUST stop processing the client's
 * handshake and return an HTTP response with an appropriate error code").
 *
 * @example
 * ```ts
 * import { HandshakeRejection } from "./server_handshake.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const rejection = new HandshakeRejection(400, "expected a Host header");
 * assertEquals(rejection.status, 400);
 * ```
 */
export class HandshakeRejection extends Error {
  /** The HTTP status to answer with. */
  readonly status: number;
  /** Header fields to add to the response. */
  readonly headers: [string, string][];

  /**
   * Creates a rejection.
   *
   * @param status The HTTP status to answer with.
   * @param message What was expected and what was found (sent as the body).
   * @param headers Header fields to add to the response.
   */
  constructor(
    status: number,
    message: string,
    headers: [string, string][] = [],
  ) {
    super(message);
    this.name = "HandshakeRejection";
    this.status = status;
    this.headers = headers;
  }
}

/** The parts of a client request that {@linkcode validateClientRequest} found. */
export interface ClientHandshake {
  /** The client's `Sec-WebSocket-Key`. */
  key: string;
  /** The subprotocols the client offered, in its order of preference. */
  protocols: string[];
  /** The client's `Sec-WebSocket-Extensions` offer, or "" when none. */
  extensions: string;
}

/**
 * Whether a request asks for a WebSocket upgrade at all: its `Upgrade` header
 * lists `websocket`. Requests that do not go to the server's fallback (or get
 * 426); requests that do are checked by {@linkcode validateClientRequest}.
 *
 * @example
 * ```ts
 * import { isUpgradeRequest } from "./server_handshake.ts";
 * import { assert } from "@std/assert";
 *
 * assert(isUpgradeRequest(new Headers({ upgrade: "WebSocket" })));
 * assert(!isUpgradeRequest(new Headers({ accept: "text/html" })));
 * ```
 *
 * @param headers The request's headers (`Headers`, or a parsed head).
 * @returns `true` when the client asks for a WebSocket.
 */
export function isUpgradeRequest(
  headers: { get(name: string): string | null },
): boolean {
  return hasToken(headers.get("upgrade"), "websocket");
}

// RFC 6455 §4.1: the key is base64 of 16 bytes: 22 characters and "==".
// (Any such string decodes to exactly 16 bytes, so it need not be decoded.)
const KEY_PATTERN = /^[A-Za-z0-9+/]{22}==$/;
const KEY_FIELD = "sec-websocket-key";

/**
 * The `Sec-WebSocket-Key` of a request when it holds one well-formed key
 * (RFC 6455 §4.2.1 item 5: base64 of 16 bytes), else `null`. A server
 * starts hashing it before it checks the rest of the request (the hash
 * runs on another thread); {@linkcode validateClientRequest} still decides
 * whether the request is accepted.
 *
 * @example
 * ```ts
 * import { offeredKey } from "./server_handshake.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const key = "dGhlIHNhbXBsZSBub25jZQ==";
 * assertEquals(offeredKey(new Headers({ "sec-websocket-key": key })), key);
 * assertEquals(offeredKey(new Headers({ "sec-websocket-key": "short" })), null);
 * // Two keys are no key (the field's values joined by ", ").
 * const two = new Headers([["sec-websocket-key", key], ["sec-websocket-key", key]]);
 * assertEquals(offeredKey(two), null);
 * ```
 *
 * @param headers The request's headers (`Headers`, or a parsed head).
 * @returns The key, or `null`.
 */
export function offeredKey(
  headers: { get(name: string): string | null },
): string | null {
  const key = headers.get(KEY_FIELD);
  return key !== null && KEY_PATTERN.test(key) ? key : null;
}

// RFC 6455 §4.2.1 items 3 and 4: a header that must list a token, else 400.
function requireToken(
  head: HttpHead,
  name: string,
  token: string,
  expected: string,
): void {
  const value = head.get(name);
  if (!hasToken(value, token)) {
    throw new HandshakeRejection(
      400,
      `expected header ${expected}, found ${describeHeaderValue(value)}`,
    );
  }
}

/**
 * Checks a client's opening handshake on the server (RFC 6455 §4.2.1).
 * Throws a {@linkcode HandshakeRejection}: 405 for a method other than GET,
 * 400 for HTTP/1.0, a missing Host, missing Upgrade/Connection tokens or a
 * key that is not 16 bytes of base64, and 426 with
 * `Sec-WebSocket-Version: 13` for any other version. Without
 * `requestLine`, a malformed request line throws an `HttpHeadError` (400).
 *
 * @example
 * ```ts
 * import { validateClientRequest } from "./server_handshake.ts";
 * import { parseHttpHead } from "./http_head.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const head = parseHttpHead(new TextEncoder().encode(
 *   "GET /chat HTTP/1.1\r\nHost: server.example.com\r\n" +
 *     "Upgrade: websocket\r\nConnection: Upgrade\r\n" +
 *     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
 *     "Sec-WebSocket-Protocol: chat, superchat\r\n" +
 *     "Sec-WebSocket-Version: 13\r\n\r\n",
 * ));
 * assertEquals(validateClientRequest(head).protocols, ["chat", "superchat"]);
 * ```
 *
 * @param head The request head.
 * @param requestLine The parsed request line, when the caller has it.
 * @returns The key, offered subprotocols and extension offer.
 */
export function validateClientRequest(
  head: HttpHead,
  requestLine: RequestLine = parseRequestLine(head.startLine),
): ClientHandshake {
  const { method, version } = requestLine;
  // RFC 6455 §4.2.1 item 1: "An HTTP/1.1 or higher GET request".
  if (method !== "GET") {
    throw new HandshakeRejection(
      405,
      `expected method GET for a WebSocket upgrade, found ${method}`,
      [["Allow", "GET"]],
    );
  }
  if (version.major < 1 || (version.major === 1 && version.minor < 1)) {
    throw new HandshakeRejection(
      400,
      `expected HTTP/1.1 or later for a WebSocket upgrade, found HTTP/${version.major}.${version.minor}`,
    );
  }
  // Items 2 and 5: the Host and Sec-WebSocket-Key fields, counted in one
  // pass (each must be there once).
  let hostCount = 0;
  let host = "";
  let keyCount = 0;
  let lastKey = "";
  for (const field of head.fields) {
    const name = field[0];
    // (By length first: most fields are neither.)
    if (name.length === 4 && asciiLowerEquals(name, 0, "host")) {
      hostCount++;
      host = field[1];
    } else if (
      name.length === KEY_FIELD.length && asciiLowerEquals(name, 0, KEY_FIELD)
    ) {
      keyCount++;
      lastKey = field[1];
    }
  }
  // Item 2: a Host header field (exactly one, RFC 9112 §3.2).
  if (hostCount !== 1 || host === "") {
    const hosts = head.fields.filter(([name]) => name.toLowerCase() === "host");
    throw new HandshakeRejection(
      400,
      `expected one non-empty Host header, found ${
        hosts.length === 0 ? "none" : hosts.map(([, v]) => JSON.stringify(v))
      }`,
    );
  }
  // Item 3: Upgrade lists "websocket", case-insensitively.
  requireToken(head, "upgrade", "websocket", "Upgrade: websocket");
  // Item 4: Connection lists "Upgrade", case-insensitively.
  requireToken(head, "connection", "upgrade", "Connection: Upgrade");
  // Item 6: the version is checked before the key so that a client of
  // another version learns which one we speak (§4.4).
  const wsVersion = head.get("sec-websocket-version");
  if (wsVersion?.trim() !== WEBSOCKET_VERSION) {
    throw new HandshakeRejection(
      426,
      `expected header Sec-WebSocket-Version: 13, found ${
        describeHeaderValue(wsVersion)
      }`,
      [["Sec-WebSocket-Version", WEBSOCKET_VERSION]],
    );
  }
  // Item 5: Sec-WebSocket-Key, base64 that decodes to 16 bytes, sent once.
  const key = keyCount === 1 ? lastKey : null;
  if (
    key === null || !KEY_PATTERN.test(key)
  ) {
    throw new HandshakeRejection(
      400,
      `expected one Sec-WebSocket-Key header holding 16 bytes in base64 (24 characters), found ${
        keyCount > 1 ? `${keyCount} of them` : describeHeaderValue(key)
      }`,
    );
  }
  // Items 8 and 9 (optional): subprotocols and extensions offered.
  const protocols = splitHeaderList(head.get("sec-websocket-protocol"));
  for (const protocol of protocols) {
    if (!isToken(protocol)) {
      throw new HandshakeRejection(
        400,
        `expected Sec-WebSocket-Protocol to list tokens, found ${
          JSON.stringify(protocol)
        }`,
      );
    }
  }
  return {
    key,
    protocols,
    extensions: head.get("sec-websocket-extensions") ?? "",
  };
}

/** What the server's 101 response carries. */
export interface ServerResponseOptions {
  /** The client's key. */
  key: string;
  /** The chosen subprotocol, or "" for none. */
  protocol?: string;
  /** The `Sec-WebSocket-Extensions` response value, or "" for none. */
  extensions?: string;
}

/**
 * Builds the server's 101 response (RFC 6455 §4.2.2, step 5).
 *
 * @example
 * ```ts
 * import { buildServerResponse } from "./server_handshake.ts";
 * import { assertStringIncludes } from "@std/assert";
 *
 * const response = new TextDecoder().decode(
 *   await buildServerResponse({ key: "dGhlIHNhbXBsZSBub25jZQ==" }),
 * );
 * assertStringIncludes(response, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n");
 * ```
 *
 * @param options The key and what was negotiated.
 * @returns The response head, ending in CRLF CRLF.
 */
export function buildServerResponse(
  options: ServerResponseOptions,
): Promise<Uint8Array> {
  return acceptDigest(options.key).then((digest) =>
    serverResponseHead(digest, options.protocol, options.extensions)
  );
}

/**
 * Builds the server's 101 response (RFC 6455 §4.2.2, step 5) from an
 * accept value already computed, so that a server can start the hash early
 * and do other work while it runs. The value may be given as its SHA-1
 * digest (from {@linkcode acceptDigest}), whose base64 digits are then
 * written into the response bytes directly.
 *
 * @example
 * ```ts
 * import { acceptDigest, computeAccept } from "./handshake_key.ts";
 * import { serverResponseHead } from "./server_handshake.ts";
 * import { assertEquals, assertStringIncludes } from "@std/assert";
 *
 * const accept = await computeAccept("dGhlIHNhbXBsZSBub25jZQ==");
 * const response = new TextDecoder().decode(serverResponseHead(accept, "chat"));
 * assertStringIncludes(response, "Sec-WebSocket-Protocol: chat\r\n");
 * const digest = await acceptDigest("dGhlIHNhbXBsZSBub25jZQ==");
 * assertEquals(serverResponseHead(digest, "chat"), serverResponseHead(accept, "chat"));
 * ```
 *
 * @param accept The `Sec-WebSocket-Accept` value, from {@linkcode computeAccept},
 * or the digest it is the base64 of.
 * @param protocol The chosen subprotocol, or "" for none.
 * @param extensions The `Sec-WebSocket-Extensions` value, or "" for none.
 * @returns The response head, ending in CRLF CRLF.
 */
export function serverResponseHead(
  accept: string | ArrayBuffer,
  protocol = "",
  extensions = "",
): Uint8Array {
  // Step 5.5 (optional): the chosen subprotocol and extensions.
  let tail = "\r\n";
  if (protocol) tail += `Sec-WebSocket-Protocol: ${protocol}\r\n`;
  if (extensions) tail += `Sec-WebSocket-Extensions: ${extensions}\r\n`;
  tail += "\r\n";
  const acceptLength = typeof accept === "string"
    ? accept.length
    : 4 * Math.ceil(accept.byteLength / 3);
  const bytes = new Uint8Array(
    RESPONSE_START.length + acceptLength + tail.length,
  );
  // Step 5.1: status 101; 5.2 and 5.3: Upgrade and Connection; 5.4: the
  // accept value.
  bytes.set(RESPONSE_START);
  let at = RESPONSE_START.length;
  if (typeof accept === "string") at = writeAscii(accept, bytes, at);
  else at = encodeBase64Into(accept, bytes, at);
  writeAscii(tail, bytes, at);
  return bytes;
}

const RESPONSE_START = new TextEncoder().encode(
  "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" +
    "Connection: Upgrade\r\nSec-WebSocket-Accept: ",
);

// Every part of the response is ASCII (base64, a token, an extension header
// we built): a copy loop costs less than a call into the encoder.
function writeAscii(text: string, target: Uint8Array, at: number): number {
  for (let i = 0; i < text.length; i++) target[at++] = text.charCodeAt(i);
  return at;
}
