/**
 * `WebSocket`: the WHATWG WebSocket API (an `EventTarget` with
 * `readyState`, `send()`, `close()` and `open`/`message`/`error`/`close`
 * events) as a thin layer over {@linkcode connect} and
 * {@linkcode WebSocketConnection}, for clients and for `serve()` handlers.
 *
 * @module
 */

import { connect, parseWebSocketUrl } from "./client.ts";
import { CloseCode } from "./close_code.ts";
import { RuntimeCloseEvent } from "./close_event.ts";
import type { OutgoingMessage } from "./message_stream_sender.ts";
import type { Socket } from "./socket.ts";
import { useWebSocketScheme } from "./websocket_scheme.ts";
import { validateProtocols } from "./subprotocols.ts";
import {
  clampUint16,
  closeConnection,
  closeRequest,
  toUSVString,
} from "./whatwg_close.ts";
import {
  copyBytes,
  isBufferSource,
  toArrayBuffer,
  utf8Length,
} from "./websocket_data.ts";
import type {
  BinaryType,
  WebSocketInit,
  WebSocketProtocolsInit,
} from "./websocket_options.ts";

export type {
  BinaryType,
  WebSocketInit,
  WebSocketProtocolsInit,
} from "./websocket_options.ts";

/**
 * An event handler attribute's value (`onopen`, `onmessage`, ...).
 *
 * @example
 * ```ts
 * import type { WebSocketEventHandler } from "@wstream/wstream";
 *
 * const onmessage: WebSocketEventHandler<MessageEvent> = (event) => {
 *   console.log(event.data);
 * };
 * ```
 */
export type WebSocketEventHandler<E extends Event> =
  | ((this: WebSocket, event: E) => unknown)
  | null;

const CONNECTING = 0;
const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;

// Set while fromConnection() runs the constructor for a server's socket.
let adopting: { socket: Socket; url: string } | undefined;

/**
 * A WebSocket with the WHATWG `WebSocket` API: code written for a browser's
 * (or Deno's built-in) `WebSocket` runs unchanged. It is a thin layer over
 * wstream's socket, so it also takes wstream's options (custom headers, TLS
 * roots, limits, keep-alive) as an optional third argument, and a
 * {@linkcode serve} handler can wrap its socket in one with
 * {@linkcode WebSocket.fromConnection}.
 *
 * As the standard says: `send()` throws `InvalidStateError` while
 * connecting and, once closing, counts what it is given in
 * `bufferedAmount` without sending it; `close()` throws
 * `InvalidAccessError` for a code other than 1000 or 3000-4999 and
 * `SyntaxError` for a reason over 123 bytes, and with no arguments sends a
 * Close frame without a body; messages that arrive after `close()` are
 * dropped; a connection that fails or ends without a closing handshake
 * fires `error` and then `close` with code 1006.
 *
 * @example Echo through a wstream server
 * ```ts
 * import { serve, WebSocket } from "@wstream/wstream";
 * import { assertEquals } from "@std/assert";
 *
 * const server = serve({ port: 0, hostname: "127.0.0.1" }, (socket) =>
 *   socket.readable.pipeTo(socket.writable)
 * );
 * const ws = new WebSocket(`ws://127.0.0.1:${server.addr.port}/`, [], {
 *   headers: { "x-client": "example" },
 * });
 * ws.binaryType = "arraybuffer";
 * ws.onopen = () => ws.send(new Uint8Array([1, 2, 3]));
 * const event = await new Promise<MessageEvent>((resolve) => ws.onmessage = resolve);
 * assertEquals(new Uint8Array(event.data), new Uint8Array([1, 2, 3]));
 * ws.close(1000, "done");
 * const closed = await new Promise<CloseEvent>((resolve) => ws.onclose = resolve);
 * assertEquals([closed.code, closed.reason, closed.wasClean], [1000, "done", true]);
 * await server.shutdown();
 * ```
 */
export class WebSocket extends EventTarget {
  /** `readyState` while connecting. */
  static readonly CONNECTING: 0 = CONNECTING;
  /** `readyState` while open. */
  static readonly OPEN: 1 = OPEN;
  /** `readyState` once the closing handshake has started. */
  static readonly CLOSING: 2 = CLOSING;
  /** `readyState` once the connection has ended. */
  static readonly CLOSED: 3 = CLOSED;
  /** `readyState` while connecting. */
  declare readonly CONNECTING: 0;
  /** `readyState` while open. */
  declare readonly OPEN: 1;
  /** `readyState` once the closing handshake has started. */
  declare readonly CLOSING: 2;
  /** `readyState` once the connection has ended. */
  declare readonly CLOSED: 3;

  readonly #url: string;
  #readyState: number = CONNECTING;
  #protocol = "";
  #extensions = "";
  #binaryType: BinaryType = "blob";
  #socket: Socket | undefined;
  readonly #cancelOpening = new AbortController();
  readonly #handlers = new Map<string, (event: Event) => unknown>();
  readonly #handlerListeners = new Map<string, (event: Event) => void>();

  // bufferedAmount: bytes given to send() and not yet taken by the
  // connection, bytes the connection took and may not have written yet, and
  // bytes that will never be sent (given after closing started).
  #unhandedBytes = 0;
  #handedBytes = 0;
  #unsentBytes = 0;
  // Set while a Blob is being read: later sends and close() wait for it.
  #sendChain: Promise<void> | undefined;
  #lastWrite: Promise<void> = Promise.resolve();
  // The connection's writer while messages are sent in this turn of the
  // event loop (released a microtask later).
  #writer: WritableStreamDefaultWriter<OutgoingMessage> | undefined;

  /**
   * Starts connecting. Throws at once (a `SyntaxError` `DOMException`) for
   * a URL that is not `ws:`, `wss:`, `http:` or `https:`, has a fragment or
   * does not parse, and for subprotocols that repeat or are not tokens.
   *
   * @param url The URL to connect to.
   * @param protocols One subprotocol or a list, most preferred first; or,
   * as Deno's built-in takes it, `{ protocols, headers, ... }`.
   * @param options wstream's options (see {@linkcode WebSocketInit}).
   */
  constructor(
    url: string | URL,
    protocols: string | readonly string[] | WebSocketProtocolsInit = [],
    options: WebSocketInit = {},
  ) {
    super();
    if (adopting) {
      // A server's socket: open already; `open` fires in a later task, as
      // for Deno.upgradeWebSocket, so handlers set now see it.
      const { socket } = adopting;
      this.#url = adopting.url;
      adopting = undefined;
      setTimeout(() => this.#open(socket), 0);
      return;
    }
    const target = parseWebSocketUrl(toUSVString(url));
    if (
      typeof protocols === "object" && protocols !== null &&
      !(Symbol.iterator in protocols)
    ) {
      // Deno's built-in form: new WebSocket(url, { protocols, headers }).
      const init = protocols as WebSocketProtocolsInit;
      options = { ...options, ...init };
      protocols = init.protocols ?? [];
    }
    const list = typeof protocols === "string"
      ? [protocols]
      : Array.from(protocols as readonly string[], toUSVString);
    // WHATWG: repeated or non-token subprotocols are a SyntaxError.
    validateProtocols(list);
    this.#url = target.href;
    connect(target, {
      ...options,
      // WHATWG: the opening handshake's fetch fails on a redirect.
      maxRedirects: 0,
      protocols: list,
      signal: this.#cancelOpening.signal,
    }).then(
      (socket) => this.#open(socket),
      () => this.#failOpening(),
    );
  }

  /**
   * Wraps a {@linkcode serve} handler's socket in a WHATWG `WebSocket`, for
   * code written against `Deno.upgradeWebSocket`. `readyState` is
   * `CONNECTING` until `open` fires, in a later task. The server keeps the
   * connection until it closes, so the handler may return at once.
   *
   * @example An event-style echo handler
   * ```ts
   * import { serve, WebSocket } from "@wstream/wstream";
   * import { assertEquals } from "@std/assert";
   *
   * const server = serve({ port: 0, hostname: "127.0.0.1" }, (socket, request) => {
   *   const ws = WebSocket.fromConnection(socket, request);
   *   ws.onmessage = (event) => ws.send(event.data);
   * });
   * const client = new WebSocket(`ws://127.0.0.1:${server.addr.port}/`);
   * client.onopen = () => client.send("ping");
   * const event = await new Promise<MessageEvent>((resolve) => client.onmessage = resolve);
   * assertEquals(event.data, "ping");
   * client.close();
   * await new Promise((resolve) => client.onclose = resolve);
   * await server.shutdown();
   * ```
   *
   * @param socket The socket `serve()` gave the handler.
   * @param request The handler's request; its URL becomes `url` (as `ws:`
   * or `wss:`).
   * @returns The WebSocket.
   */
  static fromConnection(
    socket: Socket,
    request?: Request,
  ): WebSocket {
    let url = "";
    if (request) {
      url = useWebSocketScheme(new URL(request.url)).href;
    }
    adopting = { socket, url };
    try {
      return new WebSocket(url);
    } finally {
      adopting = undefined;
    }
  }

  /** `"WebSocket"`, for `Object.prototype.toString`. */
  get [Symbol.toStringTag](): string {
    return "WebSocket";
  }

  /** The URL (`http:` mapped to `ws:`, `https:` to `wss:`). */
  get url(): string {
    return this.#url;
  }

  /** `CONNECTING` (0), `OPEN` (1), `CLOSING` (2) or `CLOSED` (3). */
  get readyState(): number {
    return this.#readyState;
  }

  /** The negotiated subprotocol, "" until open and when none. */
  get protocol(): string {
    return this.#protocol;
  }

  /** The negotiated extensions, "" until open and when none. */
  get extensions(): string {
    return this.#extensions;
  }

  /**
   * How binary messages are given to `message` listeners: `"blob"` (the
   * default) as a `Blob`, `"arraybuffer"` as an `ArrayBuffer`. Other values
   * are ignored, as WebIDL does for enumerations.
   */
  get binaryType(): BinaryType {
    return this.#binaryType;
  }

  set binaryType(value: BinaryType) {
    if (value === "blob" || value === "arraybuffer") this.#binaryType = value;
  }

  /**
   * The bytes of application data passed to `send()` that have not been
   * written to the network yet. Data given after closing started is never
   * sent and stays counted, as the standard says.
   */
  get bufferedAmount(): number {
    const socket = this.#socket;
    if (socket && this.#handedBytes > 0) {
      // The connection holds at most its own bufferedAmount of them.
      this.#handedBytes = Math.min(this.#handedBytes, socket.bufferedAmount);
    }
    return this.#unhandedBytes + this.#handedBytes + this.#unsentBytes;
  }

  /** Called for `open`. */
  get onopen(): WebSocketEventHandler<Event> {
    return this.#getHandler("open");
  }
  set onopen(handler: WebSocketEventHandler<Event>) {
    this.#setHandler("open", handler);
  }

  /** Called for each `message` (a `MessageEvent`). */
  get onmessage(): WebSocketEventHandler<MessageEvent> {
    return this.#getHandler("message");
  }
  set onmessage(handler: WebSocketEventHandler<MessageEvent>) {
    this.#setHandler("message", handler);
  }

  /** Called for `error` (a plain `Event`), just before `close`. */
  get onerror(): WebSocketEventHandler<Event> {
    return this.#getHandler("error");
  }
  set onerror(handler: WebSocketEventHandler<Event>) {
    this.#setHandler("error", handler);
  }

  /** Called for `close` (a `CloseEvent`). */
  get onclose(): WebSocketEventHandler<CloseEvent> {
    return this.#getHandler("close");
  }
  set onclose(handler: WebSocketEventHandler<CloseEvent>) {
    this.#setHandler("close", handler);
  }

  /**
   * Sends a message: a string as text, a `Blob`, `ArrayBuffer` or
   * `ArrayBufferView` as binary (copied at once, so later changes are not
   * sent). Messages leave in the order given.
   *
   * @param data The message.
   * @throws {DOMException} `InvalidStateError` while `CONNECTING`.
   */
  send(data: string | Blob | BufferSource): void {
    if (this.#readyState === CONNECTING) {
      throw new DOMException(
        "expected an open WebSocket to send on, found it still connecting (wait for the open event)",
        "InvalidStateError",
      );
    }
    let message: string | Uint8Array<ArrayBuffer> | Blob;
    let size: number;
    if (typeof data === "string") {
      message = data.toWellFormed();
      size = utf8Length(message);
    } else if (data instanceof Blob) {
      message = data;
      size = data.size;
    } else if (isBufferSource(data)) {
      message = copyBytes(data);
      size = message.byteLength;
    } else {
      // WebIDL overload resolution: anything else is a USVString.
      message = toUSVString(data);
      size = utf8Length(message);
    }
    if (this.#readyState !== OPEN) {
      // WHATWG: once closing, data is counted but not sent.
      this.#unsentBytes += size;
      return;
    }
    this.#unhandedBytes += size;
    if (message instanceof Blob || this.#sendChain) {
      const blob = message;
      this.#chain(async () => {
        const bytes = blob instanceof Blob
          ? new Uint8Array(await blob.arrayBuffer())
          : blob;
        this.#write(bytes, size);
      }, size);
    } else {
      this.#write(message, size);
    }
  }

  /**
   * Starts the closing handshake after the messages already sent (or
   * cancels the connection attempt while `CONNECTING`, which then fires
   * `error` and `close` with 1006). Does nothing once closing.
   *
   * @param code 1000 or 3000-4999; without it (and without a reason) the
   * Close frame has no body.
   * @param reason At most 123 bytes of UTF-8; alone, it is sent with 1000.
   * @throws {DOMException} `InvalidAccessError` for another code,
   * `SyntaxError` for a longer reason.
   */
  close(code?: number, reason?: string): void {
    const request = closeRequest(
      code === undefined ? undefined : clampUint16(code),
      reason === undefined ? undefined : toUSVString(reason),
    );
    if (this.#readyState === CLOSING || this.#readyState === CLOSED) return;
    if (this.#readyState === CONNECTING) {
      // WHATWG: fail the WebSocket connection.
      this.#readyState = CLOSING;
      this.#cancelOpening.abort();
      return;
    }
    this.#readyState = CLOSING;
    const socket = this.#socket!;
    this.#afterSends(() => closeConnection(socket, request));
  }

  // ---- sending ----------------------------------------------------------

  #write(message: string | Uint8Array<ArrayBuffer>, size: number): void {
    const written = this.#heldWriter().write(message);
    this.#lastWrite = written.then(
      () => {
        this.#unhandedBytes -= size;
        this.#handedBytes += size;
      },
      () => {
        // Never sent: the connection closed first.
        this.#unhandedBytes -= size;
        this.#unsentBytes += size;
      },
    );
  }

  // One writer for the messages sent in one turn, so the connection's
  // writable takes them as one batch (see BatchingWritable); it stays
  // unlocked between turns, so the connection answers a peer's Close at
  // once (RFC 6455 §5.5.1).
  #heldWriter(): WritableStreamDefaultWriter<OutgoingMessage> {
    if (this.#writer) return this.#writer;
    const writer = this.#writer = this.#socket!.writable.getWriter();
    queueMicrotask(() => {
      this.#writer = undefined;
      writer.releaseLock();
    });
    return writer;
  }

  #chain(step: () => Promise<void> | void, size = 0): void {
    const previous = this.#sendChain ?? Promise.resolve();
    const next: Promise<void> = previous.then(step).catch(() => {
      // A Blob that could not be read is not sent.
      this.#unhandedBytes -= size;
      this.#unsentBytes += size;
    }).finally(() => {
      if (this.#sendChain === next) this.#sendChain = undefined;
    });
    this.#sendChain = next;
  }

  #afterSends(action: () => void): void {
    const run = () => this.#lastWrite.then(action);
    if (this.#sendChain) this.#chain(run);
    else run();
  }

  // ---- receiving and lifecycle -------------------------------------------

  #open(socket: Socket): void {
    if (this.#cancelOpening.signal.aborted) {
      // close() raced the last step of the handshake.
      closeConnection(socket, { closeCode: CloseCode.GoingAway, reason: "" });
      this.#failOpening();
      return;
    }
    this.#socket = socket;
    this.#protocol = socket.protocol;
    this.#extensions = socket.extensions;
    this.#readyState = OPEN;
    this.dispatchEvent(new Event("open"));
    this.#receive(socket);
  }

  #failOpening(): void {
    this.#readyState = CLOSED;
    this.dispatchEvent(new Event("error"));
    this.dispatchEvent(
      new RuntimeCloseEvent("close", {
        wasClean: false,
        code: CloseCode.AbnormalClosure,
        reason: "",
      }),
    );
  }

  async #receive(socket: Socket): Promise<void> {
    const origin = this.#url ? new URL(this.#url).origin : "";
    const reader = socket.readable.getReader();
    try {
      while (true) {
        const { value, done } = await reader.read();
        if (done) break;
        // WHATWG: messages after close() are dropped.
        if (this.#readyState !== OPEN) continue;
        const data = typeof value === "string"
          ? value
          : this.#binaryType === "arraybuffer"
          ? toArrayBuffer(value)
          : new Blob([value]);
        this.dispatchEvent(new MessageEvent("message", { data, origin }));
      }
      // The peer's Close arrived: the closing handshake has started.
      if (this.#readyState === OPEN) this.#readyState = CLOSING;
    } catch {
      // The connection failed; `closed` says how.
    }
    const { closeCode, reason, wasClean } = await socket.closed;
    this.#readyState = CLOSED;
    // WHATWG: a connection that was failed fires error before close; RFC
    // 6455 §7.1.5: without a closing handshake the close code is 1006.
    if (!wasClean) this.dispatchEvent(new Event("error"));
    this.dispatchEvent(
      new RuntimeCloseEvent("close", {
        wasClean,
        code: wasClean ? closeCode : CloseCode.AbnormalClosure,
        reason: wasClean ? reason : "",
      }),
    );
  }

  // ---- event handler attributes -------------------------------------------

  // deno-lint-ignore no-explicit-any
  #getHandler(type: string): any {
    return this.#handlers.get(type) ?? null;
  }

  #setHandler(type: string, handler: unknown): void {
    if (typeof handler !== "function") {
      // HTML: a non-callable value sets the handler to null.
      this.#handlers.delete(type);
      const listener = this.#handlerListeners.get(type);
      if (listener) this.removeEventListener(type, listener);
      this.#handlerListeners.delete(type);
      return;
    }
    this.#handlers.set(type, handler as (event: Event) => unknown);
    if (!this.#handlerListeners.has(type)) {
      // Registered on first set, so it runs in that order among listeners.
      const listener = (event: Event) => {
        this.#handlers.get(type)?.call(this, event);
      };
      this.#handlerListeners.set(type, listener);
      this.addEventListener(type, listener);
    }
  }
}

Object.defineProperties(WebSocket.prototype, {
  CONNECTING: { value: CONNECTING, enumerable: true },
  OPEN: { value: OPEN, enumerable: true },
  CLOSING: { value: CLOSING, enumerable: true },
  CLOSED: { value: CLOSED, enumerable: true },
});
