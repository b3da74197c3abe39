/**
 * `serve()`: a WebSocket server on `Deno.listen` / `Deno.listenTls`, one
 * handler call per accepted WebSocket, like `Deno.serve`.
 *
 * @module
 */

import { CloseCode } from "./close_code.ts";
import { WebSocketConnection, type WebSocketOptions } from "./connection.ts";
import {
  buildErrorResponse,
  computeAccept,
  HandshakeRejection,
  isUpgradeRequest,
  type ProtocolSelector,
  selectSubprotocol,
  serverResponseHead,
  statusText,
  validateClientRequest,
} from "./handshake.ts";
import {
  type ExtensionOptions,
  negotiateServerExtensions,
} from "./handshake_extensions.ts";
import {
  closeQuietly,
  DEFAULT_HANDSHAKE_TIMEOUT_MS,
  lingeringClose,
  pickSocketOptions,
  writeAll,
} from "./handshake_io.ts";
import { resolveCompression } from "./permessage_deflate.ts";
import { WebSocketError } from "./websocket_error.ts";
import {
  DEFAULT_MAX_HEADER_BYTES,
  type HttpHead,
  HttpHeadError,
  parseRequestLine,
  readHttpHead,
  type RequestLine,
} from "./http_head.ts";

/**
 * Options of {@linkcode serve}: where to listen, the handshake policy, and
 * the {@linkcode WebSocketOptions} every accepted socket gets.
 *
 * @example A chat server that checks origins and serves its page
 * ```ts
 * import { serve, type ServeOptions } from "@wstream/wstream";
 *
 * const options: ServeOptions = {
 *   port: 0,
 *   hostname: "127.0.0.1",
 *   protocols: ["chat.v2", "chat.v1"],
 *   allowedOrigins: ["https://chat.example"],
 *   fallback: () => new Response("<!doctype html><title>chat</title>"),
 *   maxMessageBytes: 1024 * 1024,
 * };
 * const server = serve(options, (socket) => socket.readable.pipeTo(socket.writable));
 * await server.shutdown();
 * ```
 */
export interface ServeOptions extends WebSocketOptions, ExtensionOptions {
  /** The port to listen on (default 8000; 0 picks a free one). */
  port?: number;
  /** The address to listen on (default "0.0.0.0"). */
  hostname?: string;
  /** A PEM certificate chain: with `key`, the server speaks TLS (wss:). */
  cert?: string;
  /** The PEM private key for `cert`. */
  key?: string;
  /**
   * The subprotocols the server speaks (the client's most preferred one in
   * this list is chosen), or a function that picks one of those offered.
   */
  protocols?: ProtocolSelector;
  /** Aborting shuts the server down, as {@linkcode WebSocketServer.shutdown}. */
  signal?: AbortSignal;
  /** Called once the server listens. */
  onListen?: (addr: Deno.NetAddr) => void;
  /**
   * Answers requests that are not WebSocket upgrades (a page, a health
   * check), so one port serves a page and its socket. The request has no
   * body; the response's body is read in full and sent with
   * `Content-Length` and `Connection: close`, all within
   * `handshakeTimeoutMs` (so no streaming responses). Without a fallback
   * such requests get 426 Upgrade Required.
   */
  fallback?: (request: Request) => Response | Promise<Response>;
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
  /**
   * The most connections open at once (handshakes and WebSockets); more are
   * answered 503 and closed. Default: no limit.
   */
  maxConnections?: number;
  /**
   * The time a client has from TCP accept to the end of the opening
   * handshake; a slower one is disconnected. Default 10 000 ms.
   */
  handshakeTimeoutMs?: number;
  /** The largest request head accepted (default 16 KiB); larger → 431. */
  maxHeaderBytes?: number;
  /** The most header fields accepted (default 100); more → 431. */
  maxHeaderCount?: number;
}

/**
 * Handles one accepted WebSocket. When it throws (or rejects), its socket is
 * closed with 1011 and the error is logged; the server keeps serving.
 * (Errors the socket itself raised, e.g. a pipe broken by the peer failing
 * the connection or by `shutdown()`, are not logged.)
 *
 * @example Route by path
 * ```ts
 * import type { WebSocketHandler } from "@wstream/wstream";
 *
 * const handler: WebSocketHandler = async (socket, request) => {
 *   if (new URL(request.url).pathname !== "/echo") {
 *     socket.close({ closeCode: 4004, reason: "no such room" });
 *     return;
 *   }
 *   await socket.readable.pipeTo(socket.writable);
 * };
 * ```
 */
export type WebSocketHandler = (
  socket: WebSocketConnection,
  request: Request,
) => void | Promise<void>;

/**
 * A running server, as {@linkcode serve} returns it. It is
 * `AsyncDisposable`: `await using server = serve(…)` shuts it down at the
 * end of the scope.
 *
 * @example
 * ```ts
 * import { serve } from "@wstream/wstream";
 *
 * await using server = serve({ port: 0, hostname: "127.0.0.1" }, () => {});
 * console.log(`listening on ws://127.0.0.1:${server.addr.port}/`);
 * ```
 */
export interface WebSocketServer extends AsyncDisposable {
  /** The address the server listens on (read `addr.port` after port 0). */
  readonly addr: Deno.NetAddr;
  /**
   * Stops accepting, closes every open WebSocket with 1001 (Going Away) and
   * every unfinished handshake, and resolves once all are gone and their
   * handlers have returned.
   */
  shutdown(): Promise<void>;
  /** Resolves once the server has shut down. */
  readonly finished: Promise<void>;
}

// One accepted TCP connection, from accept to its end.
interface Tracked {
  conn: Deno.Conn;
  socket?: WebSocketConnection;
  /** The socket's request, from the handshake until the handler gets it. */
  request?: Request;
  done: Promise<void>;
  /** When the opening handshake must be over (`performance.now()` ms). */
  deadline: number;
  /** The handshake took too long and the connection was closed. */
  timedOut: boolean;
}

function originAllowed(
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

/** Headers a fallback `Response` may not set: wstream frames the message. */
const HOP_BY_HOP = new Set([
  "connection",
  "content-length",
  "keep-alive",
  "transfer-encoding",
  "upgrade",
]);

/** Serializes a `Response` as a closing HTTP/1.1 response. */
async function serializeResponse(
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

/**
 * Starts a WebSocket server: every request that upgrades to a WebSocket
 * (RFC 6455 §4.2) is checked, answered 101 and handed to `handler` as a
 * {@linkcode WebSocketConnection} with the standard `Request` it came from.
 * Broken handshakes get the status RFC 6455 asks for (400, 405, 426 with
 * `Sec-WebSocket-Version: 13`, 431 for heads over `maxHeaderBytes`), slow
 * ones are cut at `handshakeTimeoutMs`, other requests go to `fallback`.
 *
 * @example An echo server
 * ```ts
 * import { connect, serve } from "@wstream/wstream";
 * import { assertEquals } from "@std/assert";
 *
 * const server = serve({ port: 0, hostname: "127.0.0.1" }, async (socket) => {
 *   await socket.readable.pipeTo(socket.writable);
 * });
 * const socket = await connect(`ws://127.0.0.1:${server.addr.port}/`);
 * const writer = socket.writable.getWriter();
 * await writer.write("hello");
 * const reader = socket.readable.getReader();
 * assertEquals((await reader.read()).value, "hello");
 * reader.releaseLock();
 * await writer.close();
 * await socket.closed;
 * await server.shutdown();
 * ```
 *
 * @param options Where to listen, the handshake policy and socket options.
 * @param handler Called with each accepted WebSocket.
 * @returns The running server.
 */
export function serve(
  options: ServeOptions,
  handler: WebSocketHandler,
): WebSocketServer {
  const hostname = options.hostname ?? "0.0.0.0";
  const port = options.port ?? 8000;
  const tls = options.cert !== undefined || options.key !== undefined;
  if (tls && (options.cert === undefined || options.key === undefined)) {
    throw new TypeError(
      "expected both cert and key for a TLS server, found only one of them",
    );
  }
  // Checks the compression options now rather than at the first client.
  resolveCompression(options.compression);
  const listener: Deno.Listener = tls
    ? Deno.listenTls({ hostname, port, cert: options.cert!, key: options.key! })
    : Deno.listen({ hostname, port, transport: "tcp" });
  const addr = listener.addr as Deno.NetAddr;
  const scheme = tls ? "https" : "http";
  const handshakeTimeoutMs = options.handshakeTimeoutMs ??
    DEFAULT_HANDSHAKE_TIMEOUT_MS;
  const maxConnections = options.maxConnections ?? Infinity;
  const socketOptions = pickSocketOptions(options);
  const tracked = new Set<Tracked>();
  let closing = false;

  const respond = async (conn: Deno.Conn, bytes: Uint8Array) => {
    await writeAll(conn, bytes);
    await lingeringClose(conn);
  };

  const reject = (conn: Deno.Conn, error: HandshakeRejection | HttpHeadError) =>
    respond(
      conn,
      buildErrorResponse(
        error.status,
        error.message,
        error instanceof HandshakeRejection ? error.headers : [],
      ),
    );

  // Validates the URL a request line and Host form, so that a bad one is
  // refused with 400 before anything else looks at the request.
  const requestUrl = (head: HttpHead, line: RequestLine): string => {
    let url = line.target;
    if (url.startsWith("/")) {
      const host = head.get("host") ??
        (addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname) +
          `:${addr.port}`;
      url = `${scheme}://${host}${url}`;
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
  };

  const toRequest = (
    url: string,
    head: HttpHead,
    line: RequestLine,
  ): Request => {
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
  };

  // Handshakes in progress, oldest first. They all get the same time, so
  // their deadlines come in insertion order and one timer serves them all,
  // instead of a timer set and cleared per connection.
  const handshaking = new Set<Tracked>();
  let handshakeTimer: ReturnType<typeof setTimeout> | undefined;
  const expireHandshakes = () => {
    handshakeTimer = undefined;
    const now = performance.now();
    for (const entry of handshaking) {
      if (entry.deadline > now) {
        handshakeTimer = setTimeout(expireHandshakes, entry.deadline - now);
        return;
      }
      handshaking.delete(entry);
      entry.timedOut = true;
      // Ends the read or write the handshake waits on.
      closeQuietly(entry.conn);
    }
  };
  const startHandshakeClock = (entry: Tracked) => {
    // The deadline covers the whole handshake, TLS and our response included.
    entry.deadline = performance.now() + handshakeTimeoutMs;
    handshaking.add(entry);
    handshakeTimer ??= setTimeout(expireHandshakes, handshakeTimeoutMs);
  };

  // The opening handshake: answers it and returns true with the socket and
  // its request in `entry` when it succeeded, else answers (when there is
  // something to say), closes the connection and returns false.
  const handshake = async (entry: Tracked): Promise<boolean> => {
    const { conn } = entry;
    startHandshakeClock(entry);
    try {
      let head: HttpHead;
      let leftover: Uint8Array;
      try {
        // Read straight from the connection: no stream per connection.
        ({ head, leftover } = await readHttpHead(conn, {
          maxHeaderBytes: options.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES,
          maxHeaderCount: options.maxHeaderCount,
        }));
      } catch (error) {
        if (error instanceof HttpHeadError && !entry.timedOut) {
          await reject(conn, error);
          return false;
        }
        // Timeout, TLS failure, or the peer left: nothing to answer.
        closeQuietly(conn);
        return false;
      }
      let line: RequestLine;
      let url: string;
      // Built when something asks for it: the handler, authorize, fallback
      // or a protocols function.
      let request: Request | undefined;
      try {
        line = parseRequestLine(head.startLine);
        url = requestUrl(head, line);
        // Other methods are checked now, as the Request constructor checks
        // them (a GET always passes).
        if (line.method !== "GET") request = toRequest(url, head, line);
      } catch (error) {
        if (
          error instanceof HttpHeadError || error instanceof HandshakeRejection
        ) {
          await reject(conn, error);
          return false;
        }
        throw error;
      }
      const getRequest = () => request ??= toRequest(url, head, line);

      if (!isUpgradeRequest(head)) {
        if (options.fallback === undefined) {
          // RFC 9110 §15.5.22: 426 carries the protocol to upgrade to.
          await reject(
            conn,
            new HandshakeRejection(
              426,
              "expected a WebSocket upgrade request (Upgrade: websocket), found a plain HTTP request",
              [["Upgrade", "websocket"], ["Sec-WebSocket-Version", "13"]],
            ),
          );
          return false;
        }
        let bytes: Uint8Array;
        try {
          bytes = await serializeResponse(
            await options.fallback(getRequest()),
            line.method,
          );
        } catch (error) {
          console.error("wstream: the fallback failed; answering 500:", error);
          bytes = buildErrorResponse(500, "internal server error");
        }
        await respond(conn, bytes);
        return false;
      }

      // RFC 6455 §4.2.1: the request must be a valid upgrade.
      let offer;
      try {
        offer = validateClientRequest(head, line);
      } catch (error) {
        if (error instanceof HandshakeRejection) {
          await reject(conn, error);
          return false;
        }
        throw error;
      }
      // The hash runs on another thread: started now, it is done (or
      // nearly) once the checks below and the handler's Request are.
      const accept = computeAccept(offer.key);
      // A refusal below leaves it unawaited: it must not become an unhandled
      // rejection (awaiting it still sees the error).
      accept.catch(() => {});
      // RFC 6455 §4.2.2 step 4 / §10.2: the server may refuse origins.
      if (
        options.allowedOrigins !== undefined &&
        !originAllowed(head.get("origin"), options.allowedOrigins)
      ) {
        await reject(
          conn,
          new HandshakeRejection(
            403,
            `expected an allowed Origin, found ${
              JSON.stringify(head.get("origin"))
            }`,
          ),
        );
        return false;
      }
      if (options.authorize !== undefined) {
        let allowed = false;
        try {
          allowed = (await options.authorize(getRequest())) === true;
        } catch {
          allowed = false;
        }
        if (!allowed) {
          await reject(
            conn,
            new HandshakeRejection(403, "the request was not authorized"),
          );
          return false;
        }
      }
      let protocol: string;
      let negotiated;
      try {
        const selected = selectSubprotocol(
          offer.protocols,
          options.protocols,
          getRequest,
        );
        protocol = typeof selected === "string" ? selected : await selected;
        negotiated = negotiateServerExtensions(offer.extensions, options);
      } catch (error) {
        console.error("wstream: the opening handshake failed:", error);
        await reject(
          conn,
          new HandshakeRejection(500, "internal server error"),
        );
        return false;
      }
      // The handler needs it anyway: made while the hash runs.
      const handlerRequest = getRequest();
      await writeAll(
        conn,
        serverResponseHead(await accept, protocol, negotiated.extensions),
      );
      if (entry.timedOut) {
        negotiated.deflate?.close?.();
        return false;
      }
      handshaking.delete(entry);
      const socket = new WebSocketConnection({
        ...socketOptions,
        transport: conn,
        role: "server",
        protocol,
        extensions: negotiated.extensions,
        deflate: negotiated.deflate,
        // An empty one would be kept as long as the socket's read loop runs.
        leftover: leftover.length > 0 ? leftover : undefined,
      });
      entry.socket = socket;
      entry.request = handlerRequest;
      return true;
    } catch (error) {
      // An I/O error while answering, or the deadline closed the socket.
      if (!entry.timedOut && !closing) {
        console.error("wstream: the opening handshake failed:", error);
      }
      closeQuietly(conn);
      return false;
    } finally {
      handshaking.delete(entry);
    }
  };

  // Calls the handler with the request, which the entry then lets go of:
  // while a socket is open, only the handler decides whether its request
  // stays in memory (a suspended async function would keep it).
  const callHandler = (entry: Tracked): void | Promise<void> => {
    const request = entry.request!;
    entry.request = undefined;
    return handler(entry.socket!, request);
  };

  const handleConnection = async (entry: Tracked): Promise<void> => {
    try {
      if (!await handshake(entry)) return;
      const socket = entry.socket!;
      if (closing) {
        // shutdown() ran during the handshake: say goodbye properly.
        socket.close({
          closeCode: CloseCode.GoingAway,
          reason: "server shutting down",
        });
        await socket.closed.catch(() => {});
        return;
      }
      let socketEnded = false;
      const markEnded = () => void (socketEnded = true);
      socket.closed.then(markEnded, markEnded);
      try {
        await callHandler(entry);
      } catch (error) {
        // Errors the socket itself raised (the peer failed it, or the socket
        // was closed under a pipe by shutdown()) are not handler bugs.
        if (!closing && !socketEnded && !(error instanceof WebSocketError)) {
          console.error(
            "wstream: the WebSocket handler threw; closing its socket with 1011:",
            error,
          );
        }
        try {
          socket.close({
            closeCode: CloseCode.InternalError,
            reason: "internal error",
          });
        } catch {
          // Closed already.
        }
      }
      await socket.closed.catch(() => {});
    } catch (error) {
      console.error("wstream: a connection failed:", error);
      closeQuietly(entry.conn);
    } finally {
      tracked.delete(entry);
    }
  };

  // Every connection is tracked from accept on, so shutdown() reaches it.
  const trackedEntry = (conn: Deno.Conn): Tracked => {
    const entry: Tracked = {
      conn,
      socket: undefined,
      request: undefined,
      done: undefined!,
      deadline: 0,
      timedOut: false,
    };
    tracked.add(entry);
    return entry;
  };

  const track = (conn: Deno.Conn) => {
    const entry = trackedEntry(conn);
    entry.done = handleConnection(entry);
  };

  const acceptLoop = async () => {
    while (!closing) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (error) {
        if (closing || error instanceof Deno.errors.BadResource) break;
        // E.g. too many open files: wait a little instead of spinning.
        console.error("wstream: accept failed:", error);
        await new Promise((resolve) => setTimeout(resolve, 100));
        continue;
      }
      if (closing) {
        closeQuietly(conn);
        break;
      }
      if (tracked.size >= maxConnections) {
        const bytes = buildErrorResponse(
          503,
          `expected at most ${maxConnections} connections at once; try again later`,
          [["Retry-After", "1"]],
        );
        // Bounded: a full buffer or a slow peer only delays this connection.
        const entry = trackedEntry(conn);
        entry.done = (async () => {
          const timer = setTimeout(() => closeQuietly(conn), 1000);
          try {
            await writeAll(conn, bytes);
            await lingeringClose(conn, 200);
          } catch {
            closeQuietly(conn);
          } finally {
            clearTimeout(timer);
            tracked.delete(entry);
          }
        })();
        continue;
      }
      track(conn);
    }
  };

  let resolveFinished!: () => void;
  const finished = new Promise<void>((resolve) => resolveFinished = resolve);
  // If the listener fails for good, shut down so `finished` settles.
  const accepting = acceptLoop().finally(() => {
    if (!closing) queueMicrotask(() => void shutdown());
  });
  let shutdownPromise: Promise<void> | undefined;

  const onAbort = () => void shutdown();
  const shutdown = (): Promise<void> => {
    if (shutdownPromise) return shutdownPromise;
    closing = true;
    if (handshakeTimer !== undefined) clearTimeout(handshakeTimer);
    handshakeTimer = undefined;
    options.signal?.removeEventListener("abort", onAbort);
    try {
      listener.close();
    } catch {
      // Closed already.
    }
    for (const entry of tracked) {
      if (entry.socket) {
        try {
          entry.socket.close({
            closeCode: CloseCode.GoingAway,
            reason: "server shutting down",
          });
        } catch {
          // Closing already.
        }
      } else {
        closeQuietly(entry.conn);
      }
    }
    shutdownPromise = (async () => {
      await accepting;
      while (tracked.size > 0) {
        await Promise.all([...tracked].map((entry) => entry.done));
      }
      resolveFinished();
    })();
    return shutdownPromise;
  };

  if (options.signal?.aborted) queueMicrotask(onAbort);
  else options.signal?.addEventListener("abort", onAbort, { once: true });
  options.onListen?.(addr);

  return {
    addr,
    shutdown,
    finished,
    [Symbol.asyncDispose]: shutdown,
  };
}
