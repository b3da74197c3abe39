/**
 * `serve()`: a WebSocket server on `Deno.listen` / `Deno.listenTls`, one
 * handler call per accepted WebSocket, like `Deno.serve`.
 *
 * @module
 */

import { closeQuietly, DEFAULT_HANDSHAKE_TIMEOUT_MS } from "./handshake_io.ts";
import { HandshakeDeadlines } from "./handshake_deadline.ts";
import {
  type HandshakeOptions,
  HandshakeResponder,
  type HandshakeState,
} from "./handshake_responder.ts";
import {
  acceptConnections,
  listen,
  type ListenOptions,
  refuseBusy,
} from "./listener.ts";
import { resolveCompression } from "./permessage_deflate.ts";
import {
  closeGoingAway,
  runHandler,
  type WebSocketHandler,
} from "./socket_handler.ts";
import type { MessageOf } from "./message_stream.ts";

export type { WebSocketHandler } from "./socket_handler.ts";

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
export interface ServeOptions extends ListenOptions, HandshakeOptions {
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
   * such requests get 426 Upgrade Required. Apps with real routes belong on
   * their own server, with {@linkcode upgrade} or {@linkcode handleUpgrade}.
   */
  fallback?: (request: Request) => Response | Promise<Response>;
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
  /** The largest request head accepted (default 16 KiB); larger -> 431. */
  maxHeaderBytes?: number;
  /** The most header fields accepted (default 100); more -> 431. */
  maxHeaderCount?: number;
}

/**
 * A running server, as {@linkcode serve} returns it. It is
 * `AsyncDisposable`: `await using server = serve(...)` shuts it down at the
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
 * @typeParam Options The options' type: `messages: "stream"` in it makes
 * the sockets' `readable` yield {@linkcode MessageStream}s.
 * @param options Where to listen, the handshake policy and socket options.
 * @param handler Called with each accepted WebSocket.
 * @returns The running server.
 */
export function serve<Options extends ServeOptions>(
  options: Options,
  handler: WebSocketHandler<MessageOf<Options>>,
): WebSocketServer {
  // Checks the compression options now rather than at the first client.
  resolveCompression(options.compression);
  return new Server(options, handler as WebSocketHandler);
}

// One accepted TCP connection, from accept to its end.
interface Tracked extends HandshakeState {
  conn: Deno.Conn;
  /** When the opening handshake must be over (`performance.now()` ms). */
  deadline: number;
}

// The running server: tracks every connection from accept on (so shutdown
// reaches it), gives each to the responder, then to the handler.
class Server implements WebSocketServer {
  readonly addr: Deno.NetAddr;
  readonly finished: Promise<void>;
  readonly #options: ServeOptions;
  readonly #handler: WebSocketHandler;
  readonly #listener: Deno.Listener;
  readonly #responder: HandshakeResponder;
  readonly #deadlines: HandshakeDeadlines;
  readonly #maxConnections: number;
  readonly #tracked = new Set<Tracked>();
  readonly #accepting: Promise<void>;
  #closing = false;
  #resolveFinished!: () => void;
  #shutdownPromise: Promise<void> | undefined;
  // Set while shutdown waits for the last connection to end.
  #allGone: (() => void) | undefined;

  constructor(options: ServeOptions, handler: WebSocketHandler) {
    this.#options = options;
    this.#handler = handler;
    this.#listener = listen(options);
    this.addr = this.#listener.addr as Deno.NetAddr;
    const tls = options.cert !== undefined;
    this.#responder = new HandshakeResponder(
      options,
      {
        scheme: tls ? "https" : "http",
        hostname: this.addr.hostname,
        port: this.addr.port,
      },
      this.#isClosing,
    );
    this.#deadlines = new HandshakeDeadlines(
      options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS,
    );
    this.#maxConnections = options.maxConnections ?? Infinity;
    this.finished = new Promise((resolve) => this.#resolveFinished = resolve);
    // If the listener fails for good, shut down so `finished` settles.
    this.#accepting = acceptConnections(
      this.#listener,
      this.#isClosing,
      this.#onConnection,
    ).finally(() => {
      if (!this.#closing) queueMicrotask(() => void this.shutdown());
    });
    const signal = options.signal;
    if (signal?.aborted) queueMicrotask(this.#onAbort);
    else signal?.addEventListener("abort", this.#onAbort, { once: true });
    options.onListen?.(this.addr);
  }

  readonly shutdown = (): Promise<void> => {
    if (this.#shutdownPromise) return this.#shutdownPromise;
    this.#closing = true;
    this.#deadlines.stop();
    this.#options.signal?.removeEventListener("abort", this.#onAbort);
    closeQuietly(this.#listener);
    for (const entry of this.#tracked) {
      if (entry.socket) closeGoingAway(entry.socket);
      else closeQuietly(entry.conn);
    }
    return this.#shutdownPromise = this.#whenAllGone();
  };

  [Symbol.asyncDispose](): Promise<void> {
    return this.shutdown();
  }

  readonly #isClosing = (): boolean => this.#closing;

  readonly #onAbort = (): void => void this.shutdown();

  async #whenAllGone(): Promise<void> {
    await this.#accepting;
    if (this.#tracked.size > 0) {
      await new Promise<void>((resolve) => this.#allGone = resolve);
    }
    this.#resolveFinished();
  }

  // A connection has ended (and its handler returned).
  #forget(entry: Tracked): void {
    const tracked = this.#tracked;
    tracked.delete(entry);
    if (tracked.size === 0 && this.#allGone !== undefined) {
      this.#allGone();
      this.#allGone = undefined;
    }
  }

  readonly #onConnection = (conn: Deno.Conn): void => {
    const entry: Tracked = {
      conn,
      socket: undefined,
      request: undefined,
      deadline: 0,
      timedOut: false,
    };
    const tracked = this.#tracked;
    tracked.add(entry);
    if (tracked.size > this.#maxConnections) {
      refuseBusy(conn, this.#maxConnections).finally(() => this.#forget(entry));
      return;
    }
    this.#handshake(entry).then((upgraded) => {
      if (!upgraded) {
        this.#forget(entry);
        return;
      }
      try {
        runHandler(
          this.#handler,
          entry,
          this.#isClosing,
          () => this.#forget(entry),
        );
      } catch (error) {
        this.#failed(entry, error);
      }
    }, (error) => this.#failed(entry, error));
  };

  // The opening handshake (async only while it lasts: an open socket keeps
  // no suspended frame of the server's).
  async #handshake(entry: Tracked): Promise<boolean> {
    this.#deadlines.start(entry);
    try {
      return await this.#responder.readAndAnswer(entry.conn, entry);
    } finally {
      this.#deadlines.finish(entry);
    }
  }

  #failed(entry: Tracked, error: unknown): void {
    console.error("wstream: a connection failed:", error);
    closeQuietly(entry.conn);
    this.#forget(entry);
  }
}
