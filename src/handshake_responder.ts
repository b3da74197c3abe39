/**
 * The server side of the opening handshake (RFC 6455 §4.2): read the
 * request head, check it, and answer with 101 and a socket, or with the
 * HTTP error that says what is wrong. It works from a parsed head and a
 * connection, so `serve()` (which reads the head from a `Deno.Conn`) and
 * `handleUpgrade()` (whose head `node:http` has read) answer alike.
 *
 * @module
 */

import { WebSocketConnection } from "./connection.ts";
import type { WebSocketOptions } from "./socket_options.ts";
import type { Transport } from "./transport.ts";
import { buildErrorResponse } from "./http_error_response.ts";
import {
  type ClientHandshake,
  HandshakeRejection,
  isUpgradeRequest,
  offeredKey,
  serverResponseHead,
  validateClientRequest,
} from "./server_handshake.ts";
import { acceptDigest } from "./handshake_key.ts";
import { type ProtocolSelector, selectSubprotocol } from "./subprotocols.ts";
import {
  type ExtensionOptions,
  negotiateServerExtensions,
} from "./handshake_extensions.ts";
import {
  type ByteConn,
  closeQuietly,
  lingeringClose,
  pickSocketOptions,
  writeAll,
} from "./handshake_io.ts";
import {
  DEFAULT_MAX_HEADER_BYTES,
  readHttpHead,
  type ReadHttpHeadOptions,
} from "./http_head_reader.ts";
import { type HttpHead, HttpHeadError } from "./http_head.ts";
import { parseRequestLine, type RequestLine } from "./http_start_line.ts";
import { serializeResponse } from "./fallback_response.ts";

/**
 * The handshake policy a server applies to every upgrade, in `serve()` and
 * in the adapters for other servers: which subprotocols it speaks, who may
 * connect, and the {@linkcode WebSocketOptions} every accepted socket gets.
 *
 * @example
 * ```ts
 * import type { HandshakeOptions } from "@wstream/wstream";
 *
 * const policy: HandshakeOptions = {
 *   protocols: ["chat.v2", "chat.v1"],
 *   allowedOrigins: ["https://chat.example"],
 *   authorize: (request) => request.headers.has("cookie"),
 *   maxMessageBytes: 1024 * 1024,
 * };
 * ```
 */
export interface HandshakeOptions extends WebSocketOptions, ExtensionOptions {
  /**
   * The subprotocols the server speaks (the client's most preferred one in
   * this list is chosen), or a function that picks one of those offered.
   */
  protocols?: ProtocolSelector;
  /**
   * Decides whether an upgrade may proceed (a token or cookie check):
   * returning `false` or throwing answers 403 Forbidden.
   */
  authorize?: (request: Request) => boolean | Promise<boolean>;
  /**
   * The `Origin` values browsers may connect from (exact strings, compared
   * case-insensitively, or patterns); any other origin gets 403. Requests
   * without `Origin` (non-browser clients, which could send any value
   * anyway) pass.
   */
  allowedOrigins?: readonly (string | RegExp)[];
}

/** What the responder needs beyond the policy: `serve()`'s extras. */
export interface ResponderOptions extends HandshakeOptions {
  /** Answers requests that are not upgrades; else they get 426. */
  fallback?: (request: Request) => Response | Promise<Response>;
  /** The largest request head accepted (default 16 KiB); larger -> 431. */
  maxHeaderBytes?: number;
  /** The most header fields accepted (default 100); more -> 431. */
  maxHeaderCount?: number;
}

/** Where the server listens, for the URL of a request without a Host. */
export interface LocalAddress {
  /** `https` behind TLS, else `http`. */
  scheme: "http" | "https";
  /** The address the connection came in on. */
  hostname: string;
  /** Its port. */
  port: number;
}

/** A connection being upgraded: written to, ended, then the socket's. */
export type HandshakeConn = ByteConn & Transport;

/** One handshake's progress, which the responder fills in on success. */
export interface HandshakeState {
  /** Set by a deadline that closed the connection under the handshake. */
  timedOut: boolean;
  /** The accepted socket. */
  socket?: WebSocketConnection;
  /** The socket's request, for the handler. */
  request?: Request;
}

/**
 * Whether an `Origin` is allowed (RFC 6455 §4.2.2 step 4, §10.2: a server
 * may refuse browsers from other origins). No `Origin` passes.
 *
 * @example
 * ```ts
 * import { originAllowed } from "./handshake_responder.ts";
 * import { assert } from "@std/assert";
 *
 * assert(originAllowed("https://A.example", ["https://a.example"]));
 * assert(!originAllowed("https://b.example", [/^https:\/\/a\./]));
 * ```
 *
 * @param origin The request's `Origin`, or `null`.
 * @param allowed Exact strings (any case) or patterns.
 * @returns Whether it may connect.
 */
export function originAllowed(
  origin: string | null,
  allowed: readonly (string | RegExp)[],
): boolean {
  if (origin === null) return true;
  return allowed.some((pattern) =>
    typeof pattern === "string"
      ? pattern.toLowerCase() === origin.toLowerCase()
      : origin.search(pattern) !== -1 // unlike test(), ignores lastIndex of /g
  );
}

/** Sends a final HTTP response, then ends the connection without losing it. */
async function respond(conn: ByteConn, bytes: Uint8Array): Promise<void> {
  await writeAll(conn, bytes);
  await lingeringClose(conn);
}

/**
 * Answers a refused handshake with its status and message.
 *
 * @param conn The connection.
 * @param error The refusal.
 * @returns When the answer is sent and the connection ended.
 */
export function refuse(
  conn: ByteConn,
  error: HandshakeRejection | HttpHeadError,
): Promise<void> {
  return respond(
    conn,
    buildErrorResponse(
      error.status,
      error.message,
      error instanceof HandshakeRejection ? error.headers : [],
    ),
  );
}

/**
 * Answers opening handshakes for one server: built once, with the policy,
 * then given each connection.
 *
 * @example
 * ```ts ignore
 * const responder = new HandshakeResponder({ protocols: ["chat"] }, {
 *   scheme: "http", hostname: "127.0.0.1", port: 8080,
 * });
 * const state = { timedOut: false };
 * if (await responder.readAndAnswer(conn, state)) state.socket!.close();
 * ```
 */
export class HandshakeResponder {
  readonly #options: ResponderOptions;
  readonly #socketOptions: WebSocketOptions;
  readonly #headOptions: ReadHttpHeadOptions;
  readonly #scheme: string;
  readonly #defaultHost: string;
  readonly #isClosing: () => boolean;

  /**
   * Makes a responder.
   *
   * @param options The policy.
   * @param local Where the server listens.
   * @param isClosing Whether the server shuts down (its errors then go
   * unlogged).
   */
  constructor(
    options: ResponderOptions,
    local: LocalAddress,
    isClosing: () => boolean = () => false,
  ) {
    this.#options = options;
    this.#socketOptions = pickSocketOptions(options);
    this.#headOptions = {
      maxHeaderBytes: options.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES,
      maxHeaderCount: options.maxHeaderCount,
    };
    this.#scheme = local.scheme;
    this.#defaultHost =
      (local.hostname.includes(":") ? `[${local.hostname}]` : local.hostname) +
      `:${local.port}`;
    this.#isClosing = isClosing;
  }

  /**
   * Reads the request head from the connection, then answers it as
   * {@linkcode HandshakeResponder.answer} does.
   *
   * @param conn A connection just accepted.
   * @param state The handshake's progress.
   * @returns `true` with the socket and request in `state` when upgraded.
   */
  async readAndAnswer(
    conn: HandshakeConn,
    state: HandshakeState,
  ): Promise<boolean> {
    let head: HttpHead;
    let leftover: Uint8Array;
    try {
      // Read straight from the connection: no stream per connection.
      ({ head, leftover } = await readHttpHead(conn, this.#headOptions));
    } catch (error) {
      if (error instanceof HttpHeadError && !state.timedOut) {
        await refuse(conn, error).catch((ioError) =>
          this.#failed(conn, state, ioError)
        );
        return false;
      }
      // Timeout, TLS failure, or the peer left: nothing to answer.
      closeQuietly(conn);
      return false;
    }
    // (answer() never throws: no await needed to catch.)
    return this.answer(conn, head, leftover, state);
  }

  /**
   * Answers a request head: 101 and a socket over `conn` (fed `leftover`
   * first) when it is a valid upgrade that the policy lets through, else
   * the fallback's response or the error status (400, 403, 405, 426, 500),
   * after which the connection is ended. Never throws.
   *
   * @param conn The connection the head came on.
   * @param head The request head.
   * @param leftover The bytes read after the head.
   * @param state The handshake's progress.
   * @returns `true` with the socket and request in `state` when upgraded.
   */
  async answer(
    conn: HandshakeConn,
    head: HttpHead,
    leftover: Uint8Array,
    state: HandshakeState,
  ): Promise<boolean> {
    try {
      return await this.#answer(conn, head, leftover, state);
    } catch (error) {
      this.#failed(conn, state, error);
      return false;
    }
  }

  // An I/O error while answering, or the deadline closed the socket.
  #failed(conn: ByteConn, state: HandshakeState, error: unknown): void {
    if (!state.timedOut && !this.#isClosing()) {
      console.error("wstream: the opening handshake failed:", error);
    }
    closeQuietly(conn);
  }

  async #answer(
    conn: HandshakeConn,
    head: HttpHead,
    leftover: Uint8Array,
    state: HandshakeState,
  ): Promise<boolean> {
    let line: RequestLine;
    let url: string;
    // Built when something asks for it: the handler, authorize, fallback
    // or a protocols function.
    let request: Request | undefined;
    let offer: ClientHandshake | undefined;
    // RFC 6455 §4.2.2 step 5.4: the hash runs on another thread and comes
    // back in a later turn of the event loop. Started before the request is
    // checked, it runs while the checks, the policy and the handler's
    // Request are done, and is usually back by the time they are.
    const key = offeredKey(head);
    const early = key === null ? undefined : acceptDigest(key);
    // A refused request leaves it unawaited: it must not become an
    // unhandled rejection (awaiting it still sees the error).
    early?.catch(() => {});
    try {
      line = parseRequestLine(head.startLine);
      url = this.#requestUrl(head, line);
      // Other methods are checked now, as the Request constructor checks
      // them (a GET always passes).
      if (line.method !== "GET") request = toRequest(url, head, line);
      // RFC 6455 §4.2.1: the request must be a valid upgrade.
      if (isUpgradeRequest(head)) offer = validateClientRequest(head, line);
    } catch (error) {
      if (
        error instanceof HttpHeadError || error instanceof HandshakeRejection
      ) {
        await refuse(conn, error);
        return false;
      }
      throw error;
    }
    const getRequest = () => request ??= toRequest(url, head, line);
    if (offer === undefined) {
      await this.#answerPlain(conn, getRequest, line.method);
      return false;
    }
    // (A valid request's key is the one hashed above.)
    const accept = early !== undefined && key === offer.key
      ? early
      : acceptDigest(offer.key);
    // (Most servers have no policy: no promise to wait on then.)
    const { allowedOrigins, authorize } = this.#options;
    const refusal = allowedOrigins === undefined && authorize === undefined
      ? undefined
      : await this.#policyRefusal(head, getRequest);
    if (refusal !== undefined) {
      await refuse(conn, refusal);
      return false;
    }
    let protocol: string;
    let negotiated;
    try {
      // RFC 6455 §4.2.2 step 5.5: a subprotocol and the extensions.
      const selected = selectSubprotocol(
        offer.protocols,
        this.#options.protocols,
        getRequest,
      );
      protocol = typeof selected === "string" ? selected : await selected;
      negotiated = negotiateServerExtensions(offer.extensions, this.#options);
    } catch (error) {
      console.error("wstream: the opening handshake failed:", error);
      await refuse(conn, new HandshakeRejection(500, "internal server error"));
      return false;
    }
    // The handler needs it anyway: made while the hash runs.
    const handlerRequest = getRequest();
    await writeAll(
      conn,
      serverResponseHead(await accept, protocol, negotiated.extensions),
    );
    if (state.timedOut) {
      negotiated.deflate?.close?.();
      return false;
    }
    state.socket = new WebSocketConnection({
      ...this.#socketOptions,
      transport: conn,
      role: "server",
      protocol,
      extensions: negotiated.extensions,
      deflate: negotiated.deflate,
      // An empty one would be kept as long as the socket's read loop runs.
      leftover: leftover.length > 0 ? leftover : undefined,
    });
    state.request = handlerRequest;
    return true;
  }

  // Validates the URL a request line and Host form, so that a bad one is
  // refused with 400 before anything else looks at the request.
  #requestUrl(head: HttpHead, line: RequestLine): string {
    let url = line.target;
    if (url.startsWith("/")) {
      const host = head.get("host") ?? this.#defaultHost;
      url = `${this.#scheme}://${host}${url}`;
    } // else RFC 9112 §3.2.2 absolute-form
    if (!URL.canParse(url)) {
      const host = head.get("host");
      throw new HandshakeRejection(
        400,
        `expected a request target and Host that form a URL, found ${
          JSON.stringify(line.target)
        } on host ${JSON.stringify(host)}`,
      );
    }
    return url;
  }

  // A request that is no upgrade: the fallback answers it, or 426.
  async #answerPlain(
    conn: ByteConn,
    getRequest: () => Request,
    method: string,
  ): Promise<void> {
    const fallback = this.#options.fallback;
    if (fallback === undefined) {
      // RFC 9110 §15.5.22: 426 carries the protocol to upgrade to.
      await refuse(conn, notAnUpgrade());
      return;
    }
    let bytes: Uint8Array;
    try {
      bytes = await serializeResponse(await fallback(getRequest()), method);
    } catch (error) {
      console.error("wstream: the fallback failed; answering 500:", error);
      bytes = buildErrorResponse(500, "internal server error");
    }
    await respond(conn, bytes);
  }

  // The policy's refusal (403), if it has one.
  async #policyRefusal(
    head: HttpHead,
    getRequest: () => Request,
  ): Promise<HandshakeRejection | undefined> {
    const { allowedOrigins, authorize } = this.#options;
    // RFC 6455 §4.2.2 step 4 / §10.2: the server may refuse origins.
    if (
      allowedOrigins !== undefined &&
      !originAllowed(head.get("origin"), allowedOrigins)
    ) {
      return new HandshakeRejection(
        403,
        `expected an allowed Origin, found ${
          JSON.stringify(head.get("origin"))
        }`,
      );
    }
    if (authorize !== undefined) {
      let allowed = false;
      try {
        allowed = (await authorize(getRequest())) === true;
      } catch {
        allowed = false;
      }
      if (!allowed) {
        return new HandshakeRejection(403, "the request was not authorized");
      }
    }
    return undefined;
  }
}

/**
 * The 426 a request that is no WebSocket upgrade gets (RFC 9110 §15.5.22:
 * it names the protocol to upgrade to; RFC 6455 §4.4: and our version).
 *
 * @example
 * ```ts
 * import { notAnUpgrade } from "./handshake_responder.ts";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(notAnUpgrade().status, 426);
 * ```
 *
 * @returns The refusal.
 */
export function notAnUpgrade(): HandshakeRejection {
  return new HandshakeRejection(
    426,
    "expected a WebSocket upgrade request (Upgrade: websocket), found a plain HTTP request",
    [["Upgrade", "websocket"], ["Sec-WebSocket-Version", "13"]],
  );
}

function toRequest(url: string, head: HttpHead, line: RequestLine): Request {
  let request: Request;
  try {
    // A string URL and headers appended one by one: several times cheaper
    // than handing Request a URL object and a Headers to copy.
    request = line.method === "GET"
      ? new Request(url)
      : new Request(url, { method: line.method });
  } catch (error) {
    throw new HandshakeRejection(
      405,
      `expected a method a server may answer, found ${line.method} (${
        (error as Error).message
      })`,
    );
  }
  const headers = request.headers;
  for (const [name, value] of head.fields) headers.append(name, value);
  return request;
}
