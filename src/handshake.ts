/**
 * The WebSocket opening handshake of RFC 6455 §4, without any I/O: the
 * client's request and the checks of the server's response, the server's
 * checks of the request and its 101 (or error) response.
 *
 * @module
 */

import { encodeBase64 } from "./base64.ts";
import { timingSafeEqual } from "@std/crypto/timing-safe-equal";
import { WebSocketError } from "./websocket_error.ts";
import { type HttpHead, isFieldValue, isToken } from "./http_head.ts";
import {
  parseRequestLine,
  parseStatusLine,
  type RequestLine,
} from "./http_start_line.ts";

/** The GUID of RFC 6455 §1.3 appended to the key before hashing. */
export const WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/** The only protocol version wstream speaks (RFC 6455 §4.1, §11.6). */
export const WEBSOCKET_VERSION = "13";

const encoder = new TextEncoder();

/**
 * Makes a `Sec-WebSocket-Key`: 16 random bytes in base64 (RFC 6455 §4.1,
 * client requirement 7).
 *
 * @example
 * ```ts
 * import { generateKey } from "./handshake.ts";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(generateKey().length, 24);
 * ```
 *
 * @returns A fresh nonce, 24 characters long.
 */
export function generateKey(): string {
  return encodeBase64(crypto.getRandomValues(new Uint8Array(16)));
}

/**
 * Computes `Sec-WebSocket-Accept` for a key: base64 of the SHA-1 of the key
 * followed by the GUID (RFC 6455 §4.2.2, step 5.4).
 *
 * @example The example of RFC 6455 §1.3
 * ```ts
 * import { computeAccept } from "./handshake.ts";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(
 *   await computeAccept("dGhlIHNhbXBsZSBub25jZQ=="),
 *   "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
 * );
 * ```
 *
 * @param key The client's `Sec-WebSocket-Key`.
 * @returns The matching `Sec-WebSocket-Accept` value.
 */
export function computeAccept(key: string): Promise<string> {
  const input = key + WEBSOCKET_GUID;
  // digest() copies its input before it returns (WebCrypto "get a copy of
  // the bytes"), so one scratch buffer serves every handshake instead of an
  // encoded copy each.
  const { read, written } = encoder.encodeInto(input, acceptScratch);
  const bytes = read === input.length
    ? acceptScratch.subarray(0, written)
    : encoder.encode(input);
  // A plain promise chain: no async function frame per handshake.
  return crypto.subtle.digest("SHA-1", bytes).then(encodeBase64);
}

// Room for a key of the usual 24 characters and the GUID, with margin.
const acceptScratch = new Uint8Array(128);

/**
 * Splits a comma-separated header list (RFC 9110 §5.6.1) into its trimmed,
 * non-empty elements.
 *
 * @example
 * ```ts
 * import { splitHeaderList } from "./handshake.ts";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(splitHeaderList("keep-alive, Upgrade,,"), ["keep-alive", "Upgrade"]);
 * ```
 *
 * @param value A header value, or `null` when the header is absent.
 * @returns The list elements.
 */
export function splitHeaderList(value: string | null): string[] {
  if (value === null) return [];
  return value.split(",").map((item) => item.trim()).filter((item) =>
    item !== ""
  );
}

/** Whether a comma list holds `token`, compared ASCII case-insensitively. */
function hasToken(value: string | null, token: string): boolean {
  const lower = token.toLowerCase();
  return splitHeaderList(value).some((item) => item.toLowerCase() === lower);
}

/** Quotes a header value (or its absence) for an error message. */
function found(value: string | null): string {
  return value === null ? "no such header" : JSON.stringify(value);
}

// ---------------------------------------------------------------------------
// Client side
// ---------------------------------------------------------------------------

/** What goes into the client's opening handshake. */
export interface ClientRequestOptions {
  /** The `ws:` or `wss:` URL (fragment-free). */
  url: URL;
  /** The `Sec-WebSocket-Key`, from {@linkcode generateKey}. */
  key: string;
  /** Subprotocols offered, most preferred first. */
  protocols?: readonly string[];
  /** The `Sec-WebSocket-Extensions` offer, e.g. from permessage-deflate. */
  extensions?: string;
  /** The `Origin` header, for servers that check it. */
  origin?: string;
  /** More header fields (e.g. `Authorization`, `Cookie`). */
  headers?: HeadersInit;
}

// Fields the handshake itself sets; a custom header may not replace them.
const RESERVED_REQUEST_HEADERS = new Set([
  "upgrade",
  "connection",
  "sec-websocket-key",
  "sec-websocket-version",
  "sec-websocket-protocol",
  "sec-websocket-extensions",
  "sec-websocket-accept",
  "content-length",
  "transfer-encoding",
]);

/** A header list as pairs, checked for request smuggling characters. */
function headerPairs(init: HeadersInit | undefined): [string, string][] {
  if (init === undefined) return [];
  const pairs: [string, string][] = init instanceof Headers
    ? [...init]
    : Array.isArray(init)
    ? init.map((pair) => {
      if (pair.length !== 2) {
        throw new TypeError(
          `expected each header as a [name, value] pair, found ${pair.length} items`,
        );
      }
      return [String(pair[0]), String(pair[1])];
    })
    : Object.entries(init).map(([name, value]) => [name, String(value)]);
  for (const [name, value] of pairs) {
    if (!isToken(name)) {
      throw new TypeError(
        `expected a header name made of token characters, found ${
          JSON.stringify(name)
        }`,
      );
    }
    if (!isFieldValue(value)) {
      throw new TypeError(
        `expected the value of header ${name} without CR, LF, NUL or other control characters, found ${
          JSON.stringify(value)
        }`,
      );
    }
    if (RESERVED_REQUEST_HEADERS.has(name.toLowerCase())) {
      throw new TypeError(
        `expected custom headers other than ${name}, which the handshake sets itself (use the protocols or compression options instead)`,
      );
    }
  }
  return pairs;
}

/**
 * Checks a subprotocol list the way the WHATWG `WebSocket` constructor does:
 * each a token (RFC 6455 §4.1, client requirement 10), no duplicates.
 * Throws a `SyntaxError` `DOMException` otherwise.
 *
 * @example
 * ```ts
 * import { validateProtocols } from "./handshake.ts";
 * import { assertThrows } from "@std/assert";
 *
 * validateProtocols(["chat", "superchat"]);
 * assertThrows(() => validateProtocols(["chat", "chat"]), DOMException);
 * ```
 *
 * @param protocols The subprotocols to offer.
 */
export function validateProtocols(protocols: readonly string[]): void {
  const seen = new Set<string>();
  for (const protocol of protocols) {
    if (typeof protocol !== "string" || !isToken(protocol)) {
      throw new DOMException(
        `expected each subprotocol to be an HTTP token, found ${
          JSON.stringify(protocol)
        }`,
        "SyntaxError",
      );
    }
    // RFC 6455 §4.1: "The elements that comprise this value MUST be ...
    // unique strings"; the WHATWG constructor compares them case-insensitively.
    const lower = protocol.toLowerCase();
    if (seen.has(lower)) {
      throw new DOMException(
        `expected unique subprotocols, found ${JSON.stringify(protocol)} twice`,
        "SyntaxError",
      );
    }
    seen.add(lower);
  }
}

/** The `Host` header value for a URL: the port only when not the default. */
function hostHeader(url: URL): string {
  return url.host; // URL.host already omits 80 for ws: and 443 for wss:.
}

/**
 * Builds the client's opening handshake (RFC 6455 §4.1). Every header name
 * and value is checked first: a name that is not a token or a value with CR,
 * LF or NUL throws a `TypeError`, so nothing malformed is ever sent.
 *
 * @example
 * ```ts
 * import { buildClientRequest } from "./handshake.ts";
 * import { assertStringIncludes } from "@std/assert";
 *
 * const request = new TextDecoder().decode(buildClientRequest({
 *   url: new URL("ws://example.com/chat"),
 *   key: "dGhlIHNhbXBsZSBub25jZQ==",
 *   protocols: ["chat"],
 * }));
 * assertStringIncludes(request, "GET /chat HTTP/1.1\r\nHost: example.com\r\n");
 * assertStringIncludes(request, "Sec-WebSocket-Protocol: chat\r\n");
 * ```
 *
 * @param options What to send.
 * @returns The request head, ending in CRLF CRLF.
 */
export function buildClientRequest(options: ClientRequestOptions): Uint8Array {
  const { url, key } = options;
  const custom = headerPairs(options.headers);
  const protocols = options.protocols ?? [];
  validateProtocols(protocols);
  for (
    const [name, value] of [
      ["Origin", options.origin],
      ["Sec-WebSocket-Extensions", options.extensions],
    ] as const
  ) {
    if (value !== undefined && !isFieldValue(value)) {
      throw new TypeError(
        `expected the ${name} value without CR, LF, NUL or other control characters, found ${
          JSON.stringify(value)
        }`,
      );
    }
  }
  // RFC 6455 §4.1, client requirement 3: the request-target is the path and
  // query of the URL (never the fragment, §3).
  const target = (url.pathname || "/") + url.search;
  const customNames = new Set(custom.map(([name]) => name.toLowerCase()));
  const lines = [`GET ${target} HTTP/1.1`];
  // Requirement 4: Host (a custom Host header replaces it, e.g. for proxies).
  if (!customNames.has("host")) lines.push(`Host: ${hostHeader(url)}`);
  // Requirements 5 and 6: Upgrade and Connection.
  lines.push("Upgrade: websocket", "Connection: Upgrade");
  // Requirement 7: the 16-byte nonce.
  lines.push(`Sec-WebSocket-Key: ${key}`);
  // Requirement 9: version 13.
  lines.push(`Sec-WebSocket-Version: ${WEBSOCKET_VERSION}`);
  // Requirement 10: subprotocols, most preferred first.
  if (protocols.length > 0) {
    lines.push(`Sec-WebSocket-Protocol: ${protocols.join(", ")}`);
  }
  // Requirement 11: extensions.
  if (options.extensions) {
    lines.push(`Sec-WebSocket-Extensions: ${options.extensions}`);
  }
  // Requirement 8: Origin, for browser-like clients.
  if (options.origin !== undefined && !customNames.has("origin")) {
    lines.push(`Origin: ${options.origin}`);
  }
  // Requirement 12: other header fields (cookies, authorization).
  for (const [name, value] of custom) lines.push(`${name}: ${value}`);
  return encoder.encode(lines.join("\r\n") + "\r\n\r\n");
}

/** What the client offered, to check the response against. */
export interface ClientOffer {
  /** The `Sec-WebSocket-Key` sent. */
  key: string;
  /** The subprotocols offered. */
  protocols?: readonly string[];
  /** The `Sec-WebSocket-Extensions` offer sent, if any. */
  extensions?: string;
}

/** What the server agreed to, from its 101 response. */
export interface AcceptedHandshake {
  /** The subprotocol the server chose, or "" when none. */
  protocol: string;
  /** The server's `Sec-WebSocket-Extensions` value, or "" when none. */
  extensions: string;
}

/** Extension names of a `Sec-WebSocket-Extensions` value (RFC 6455 §9.1). */
export function extensionNames(value: string | null): string[] {
  return splitHeaderList(value).map((item) =>
    item.split(";")[0].trim().toLowerCase()
  );
}

/**
 * Checks the server's response to the opening handshake the way RFC 6455
 * §4.1 (and OkHttp) do, each failure with its own message saying what was
 * expected and what was found. Throws a {@linkcode WebSocketError} with close
 * code 1006 (the connection failed before it opened).
 *
 * Extension parameters (e.g. those of permessage-deflate) are checked by the
 * extension itself; this only checks that each extension was offered.
 *
 * @example
 * ```ts
 * import { computeAccept, validateServerResponse } from "./handshake.ts";
 * import { parseHttpHead } from "./http_head.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const key = "dGhlIHNhbXBsZSBub25jZQ==";
 * const head = parseHttpHead(new TextEncoder().encode(
 *   "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" +
 *     "Connection: Upgrade\r\nSec-WebSocket-Accept: " +
 *     (await computeAccept(key)) + "\r\n\r\n",
 * ));
 * assertEquals(await validateServerResponse(head, { key }), {
 *   protocol: "",
 *   extensions: "",
 * });
 * ```
 *
 * @param head The server's response head.
 * @param offer What the client sent.
 * @returns The negotiated subprotocol and extensions.
 */
export async function validateServerResponse(
  head: HttpHead,
  offer: ClientOffer,
): Promise<AcceptedHandshake> {
  const fail = (message: string): never => {
    throw new WebSocketError(`opening handshake failed: ${message}`, {
      closeCode: 1006,
    });
  };
  let status;
  try {
    status = parseStatusLine(head.startLine);
  } catch (error) {
    return fail((error as Error).message);
  }
  // RFC 6455 §4.1: "If the status code received from the server is not 101,
  // the client handles the response per HTTP procedures."
  if (status.status !== 101) {
    fail(
      `expected HTTP status 101 Switching Protocols, found ${status.status}${
        status.statusText ? " " + status.statusText : ""
      }`,
    );
  }
  // RFC 6455 §4.1, response check 2: Upgrade is "websocket", any case.
  const upgrade = head.get("upgrade");
  if (upgrade === null || upgrade.trim().toLowerCase() !== "websocket") {
    fail(`expected header Upgrade: websocket, found ${found(upgrade)}`);
  }
  // RFC 6455 §4.1, response check 3: Connection holds the token "Upgrade".
  const connection = head.get("connection");
  if (!hasToken(connection, "upgrade")) {
    fail(`expected header Connection: Upgrade, found ${found(connection)}`);
  }
  // RFC 6455 §4.1, response check 4: the accept value matches our key.
  const accept = head.get("sec-websocket-accept");
  const expected = await computeAccept(offer.key);
  const acceptBytes = encoder.encode(accept?.trim() ?? "");
  const expectedBytes = encoder.encode(expected);
  // timingSafeEqual throws on different lengths; the length is public anyway.
  if (
    acceptBytes.length !== expectedBytes.length ||
    !timingSafeEqual(acceptBytes, expectedBytes)
  ) {
    fail(
      `expected header Sec-WebSocket-Accept: ${expected}, found ${
        found(accept)
      }`,
    );
  }
  // RFC 6455 §4.1, response check 6: a subprotocol the client offered.
  const protocolValue = head.get("sec-websocket-protocol");
  let protocol = "";
  if (protocolValue !== null) {
    const offered = offer.protocols ?? [];
    protocol = protocolValue.trim();
    if (offered.length === 0) {
      fail(
        `expected no Sec-WebSocket-Protocol header (no subprotocol was offered), found ${
          found(protocolValue)
        }`,
      );
    }
    if (!offered.includes(protocol)) {
      fail(
        `expected Sec-WebSocket-Protocol to be one of the offered ${
          offered.map((p) => JSON.stringify(p)).join(", ")
        }, found ${found(protocolValue)}`,
      );
    }
  }
  // RFC 6455 §4.1, response check 5: only extensions the client offered.
  const extensions = head.get("sec-websocket-extensions");
  const offeredExtensions = new Set(extensionNames(offer.extensions ?? null));
  const seen = new Set<string>();
  for (const name of extensionNames(extensions)) {
    if (!offeredExtensions.has(name)) {
      fail(
        `expected only extensions the client offered (${
          offeredExtensions.size > 0
            ? [...offeredExtensions].join(", ")
            : "none"
        }), found ${JSON.stringify(name)} in ${found(extensions)}`,
      );
    }
    if (seen.has(name)) {
      fail(
        `expected extension ${name} at most once in the response, found ${
          found(extensions)
        }`,
      );
    }
    seen.add(name);
  }
  return { protocol, extensions: extensions ?? "" };
}

// ---------------------------------------------------------------------------
// Server side
// ---------------------------------------------------------------------------

/**
 * An opening handshake the server refuses, with the HTTP response that says
 * why (RFC 6455 §4.2.1: "the server MUST stop processing the client's
 * handshake and return an HTTP response with an appropriate error code").
 *
 * @example
 * ```ts
 * import { HandshakeRejection } from "./handshake.ts";
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
 * import { isUpgradeRequest } from "./handshake.ts";
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
 * import { validateClientRequest } from "./handshake.ts";
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
  // Item 2: a Host header field (exactly one, RFC 9112 §3.2).
  const hosts = head.fields.filter(([name]) => name.toLowerCase() === "host");
  if (hosts.length !== 1 || hosts[0][1] === "") {
    throw new HandshakeRejection(
      400,
      `expected one non-empty Host header, found ${
        hosts.length === 0 ? "none" : hosts.map(([, v]) => JSON.stringify(v))
      }`,
    );
  }
  // Item 3: Upgrade lists "websocket", case-insensitively.
  const upgrade = head.get("upgrade");
  if (!hasToken(upgrade, "websocket")) {
    throw new HandshakeRejection(
      400,
      `expected header Upgrade: websocket, found ${found(upgrade)}`,
    );
  }
  // Item 4: Connection lists "Upgrade", case-insensitively.
  const connection = head.get("connection");
  if (!hasToken(connection, "upgrade")) {
    throw new HandshakeRejection(
      400,
      `expected header Connection: Upgrade, found ${found(connection)}`,
    );
  }
  // Item 6: the version is checked before the key so that a client of
  // another version learns which one we speak (§4.4).
  const wsVersion = head.get("sec-websocket-version");
  if (wsVersion?.trim() !== WEBSOCKET_VERSION) {
    throw new HandshakeRejection(
      426,
      `expected header Sec-WebSocket-Version: 13, found ${found(wsVersion)}`,
      [["Sec-WebSocket-Version", WEBSOCKET_VERSION]],
    );
  }
  // Item 5: Sec-WebSocket-Key, base64 that decodes to 16 bytes, sent once.
  const keys = head.fields.filter(([name]) =>
    name.toLowerCase() === "sec-websocket-key"
  );
  const key = keys.length === 1 ? keys[0][1] : null;
  if (
    key === null || !KEY_PATTERN.test(key)
  ) {
    throw new HandshakeRejection(
      400,
      `expected one Sec-WebSocket-Key header holding 16 bytes in base64 (24 characters), found ${
        keys.length > 1 ? `${keys.length} of them` : found(key)
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

/**
 * Chooses a subprotocol: either the list of those the server speaks (the
 * client's most preferred one that is in it wins) or a function that picks
 * one of the offered (or none).
 *
 * @example
 * ```ts
 * import type { ProtocolSelector } from "@wstream/wstream";
 *
 * const list: ProtocolSelector = ["chat.v2", "chat.v1"];
 * const byPath: ProtocolSelector = (offered, request) =>
 *   new URL(request.url).pathname === "/v2" ? offered.find((p) => p === "chat.v2") : undefined;
 * ```
 */
export type ProtocolSelector =
  | readonly string[]
  | ((
    offered: string[],
    request: Request,
  ) => string | null | undefined | Promise<string | null | undefined>);

/**
 * Applies a {@linkcode ProtocolSelector} to the subprotocols a client offered
 * (RFC 6455 §4.2.2, step 5.4 /subprotocol/). Returns "" when none is chosen;
 * a selector function that returns a protocol the client did not offer is a
 * programming error and throws a `TypeError`.
 *
 * @example
 * ```ts
 * import { selectSubprotocol } from "./handshake.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const request = new Request("http://localhost/");
 * assertEquals(await selectSubprotocol(["b", "a"], ["a", "b"], request), "b");
 * assertEquals(await selectSubprotocol(["x"], ["a"], request), "");
 * ```
 *
 * @param offered The client's subprotocols, in its order of preference.
 * @param selector The server's list or choice function.
 * @param request The request, for selector functions, or a function that
 * makes it (called only for a selector function).
 * @returns The chosen subprotocol or "": at once for a list, as a promise
 * for a selector function (rejected when it throws or picks wrongly).
 */
export function selectSubprotocol(
  offered: string[],
  selector: ProtocolSelector | undefined,
  request: Request | (() => Request),
): string | Promise<string> {
  if (selector === undefined || offered.length === 0) return "";
  if (typeof selector !== "function") {
    // A list needs no promise: the handshake goes on in the same turn.
    return offered.find((protocol) => selector.includes(protocol)) ?? "";
  }
  try {
    return checkSelected(
      offered,
      selector(
        [...offered],
        typeof request === "function" ? request() : request,
      ),
    );
  } catch (error) {
    return Promise.reject(error);
  }
}

async function checkSelected(
  offered: string[],
  selected: ReturnType<Exclude<ProtocolSelector, readonly string[]>>,
): Promise<string> {
  const chosen = await selected;
  if (chosen === null || chosen === undefined || chosen === "") return "";
  if (!offered.includes(chosen)) {
    throw new TypeError(
      `expected the protocols selector to return one of the offered ${
        offered.map((p) => JSON.stringify(p)).join(", ")
      } or undefined, found ${JSON.stringify(chosen)}`,
    );
  }
  return chosen;
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
 * import { buildServerResponse } from "./handshake.ts";
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
  return computeAccept(options.key).then((accept) =>
    serverResponseHead(accept, options.protocol, options.extensions)
  );
}

/**
 * Builds the server's 101 response (RFC 6455 §4.2.2, step 5) from an
 * accept value already computed, so that a server can start the hash early
 * and do other work while it runs.
 *
 * @example
 * ```ts
 * import { computeAccept, serverResponseHead } from "./handshake.ts";
 * import { assertStringIncludes } from "@std/assert";
 *
 * const accept = await computeAccept("dGhlIHNhbXBsZSBub25jZQ==");
 * const response = new TextDecoder().decode(serverResponseHead(accept, "chat"));
 * assertStringIncludes(response, "Sec-WebSocket-Protocol: chat\r\n");
 * ```
 *
 * @param accept The `Sec-WebSocket-Accept` value, from {@linkcode computeAccept}.
 * @param protocol The chosen subprotocol, or "" for none.
 * @param extensions The `Sec-WebSocket-Extensions` value, or "" for none.
 * @returns The response head, ending in CRLF CRLF.
 */
export function serverResponseHead(
  accept: string,
  protocol = "",
  extensions = "",
): Uint8Array {
  // Step 5.1: status 101; 5.2 and 5.3: Upgrade and Connection; 5.4: the
  // accept value.
  let head = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" +
    `Connection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n`;
  // Step 5.5 (optional): the chosen subprotocol and extensions.
  if (protocol) head += `Sec-WebSocket-Protocol: ${protocol}\r\n`;
  if (extensions) head += `Sec-WebSocket-Extensions: ${extensions}\r\n`;
  head += "\r\n";
  // Every part is ASCII (base64, a token, an extension header we built):
  // a copy loop costs less than a call into the encoder.
  const bytes = new Uint8Array(head.length);
  for (let i = 0; i < head.length; i++) bytes[i] = head.charCodeAt(i);
  return bytes;
}

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
 * import { statusText } from "./handshake.ts";
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
 * import { buildErrorResponse } from "./handshake.ts";
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
