/**
 * The client's side of the WebSocket opening handshake (RFC 6455 §4.1),
 * without any I/O: the request it sends and the checks of the server's
 * response.
 *
 * @module
 */

import { WebSocketError } from "./websocket_error.ts";
import { computeAccept, WEBSOCKET_VERSION } from "./handshake_key.ts";
import {
  describeHeaderValue,
  extensionNames,
  hasToken,
} from "./header_list.ts";
import { validateProtocols } from "./subprotocols.ts";
import { type HttpHead, isFieldValue, isToken } from "./http_head.ts";
import { parseStatusLine } from "./http_start_line.ts";

const encoder = new TextEncoder();

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
 * import { buildClientRequest } from "./client_handshake.ts";
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
 * import { computeAccept } from "./handshake_key.ts";
 * import { validateServerResponse } from "./client_handshake.ts";
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
    fail(
      `expected header Upgrade: websocket, found ${
        describeHeaderValue(upgrade)
      }`,
    );
  }
  // RFC 6455 §4.1, response check 3: Connection holds the token "Upgrade".
  const connection = head.get("connection");
  if (!hasToken(connection, "upgrade")) {
    fail(
      `expected header Connection: Upgrade, found ${
        describeHeaderValue(connection)
      }`,
    );
  }
  // RFC 6455 §4.1, response check 4: the accept value matches our key.
  const accept = head.get("sec-websocket-accept");
  const expected = await computeAccept(offer.key);
  // A plain comparison: the value is no secret (it is a hash of the key
  // this request sent in the clear, and the error below names it).
  if (accept?.trim() !== expected) {
    fail(
      `expected header Sec-WebSocket-Accept: ${expected}, found ${
        describeHeaderValue(accept)
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
          describeHeaderValue(protocolValue)
        }`,
      );
    }
    if (!offered.includes(protocol)) {
      fail(
        `expected Sec-WebSocket-Protocol to be one of the offered ${
          offered.map((p) => JSON.stringify(p)).join(", ")
        }, found ${describeHeaderValue(protocolValue)}`,
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
        }), found ${JSON.stringify(name)} in ${
          describeHeaderValue(extensions)
        }`,
      );
    }
    if (seen.has(name)) {
      fail(
        `expected extension ${name} at most once in the response, found ${
          describeHeaderValue(extensions)
        }`,
      );
    }
    seen.add(name);
  }
  return { protocol, extensions: extensions ?? "" };
}
