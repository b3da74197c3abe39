/**
 * `WebSocketStream`: the WHATWG WebSocketStream API (the streams-based
 * WebSocket of the WHATWG WebSockets standard) as a thin layer over
 * {@linkcode connect} and {@linkcode WebSocketConnection}.
 *
 * @module
 */

import { connect, type ConnectOptions, parseWebSocketUrl } from "./client.ts";
import { BatchingWritable, MessageBatch } from "./batching_writable.ts";
import { CloseCode } from "./close_code.ts";
import type { Socket } from "./socket.ts";
import { validateProtocols } from "./subprotocols.ts";
import {
  closeConnection,
  type CloseRequest,
  closeRequest,
  enforceRangeUint16,
  toUSVString,
} from "./whatwg_close.ts";
import { copyBytes, isBufferSource } from "./websocket_data.ts";
import { type WebSocketCloseInfo, WebSocketError } from "./websocket_error.ts";

/**
 * Options of {@linkcode WebSocketStream}: the WHATWG ones (`protocols`,
 * `signal`) and every option of {@linkcode connect} (headers, origin,
 * compression, limits, timeouts, keep-alive, TLS roots, proxy) except
 * `maxRedirects`: as in the WHATWG standard, a redirect fails the handshake.
 *
 * @example
 * ```ts
 * import type { WebSocketStreamOptions } from "@wstream/wstream";
 *
 * const options: WebSocketStreamOptions = {
 *   protocols: ["chat"],
 *   signal: AbortSignal.timeout(10_000),
 *   headers: { Authorization: "Bearer token" }, // wstream's extra options
 * };
 * ```
 */
export interface WebSocketStreamOptions
  extends Omit<ConnectOptions, "protocols" | "signal" | "maxRedirects"> {
  /** The subprotocols to offer, most preferred first. */
  protocols?: readonly string[];
  /**
   * Aborting before the connection opens rejects `opened` and `closed`
   * with the signal's reason; later it has no effect.
   */
  signal?: AbortSignal;
}

/**
 * What {@linkcode WebSocketStream.opened} resolves with.
 *
 * @example
 * ```ts
 * import {
 *   serve,
 *   type WebSocketOpenInfo,
 *   WebSocketStream,
 * } from "@wstream/wstream";
 *
 * await using server = serve({ port: 0, hostname: "127.0.0.1" }, (socket) =>
 *   socket.readable.pipeTo(socket.writable)
 * );
 * const wss = new WebSocketStream(`ws://127.0.0.1:${server.addr.port}/`);
 * const { readable, writable, protocol }: WebSocketOpenInfo = await wss.opened;
 * console.log(protocol === "" ? "no subprotocol" : protocol);
 * wss.close();
 * await wss.closed;
 * ```
 */
export interface WebSocketOpenInfo {
  /** The messages received: text as `string`, binary as `Uint8Array`. */
  readable: ReadableStream<string | Uint8Array>;
  /** Messages to send: a `BufferSource` as binary, anything else as text. */
  writable: WritableStream<string | BufferSource>;
  /** The negotiated extensions (`Sec-WebSocket-Extensions`), "" when none. */
  extensions: string;
  /** The negotiated subprotocol, "" when none. */
  protocol: string;
}

/**
 * How a {@linkcode WebSocketStream} closed cleanly.
 *
 * @example
 * ```ts
 * import type { WebSocketStreamClosedInfo } from "@wstream/wstream";
 *
 * function report({ closeCode, reason }: WebSocketStreamClosedInfo): string {
 *   return `closed with ${closeCode}${reason ? `: ${reason}` : ""}`;
 * }
 * report({ closeCode: 1000, reason: "" });
 * ```
 */
export interface WebSocketStreamClosedInfo {
  /** The code of the peer's Close frame; 1005 when it had none. */
  closeCode: number;
  /** The reason of the peer's Close frame, "" when none. */
  reason: string;
}

// A WebSocketError: wstream's, or the runtime's global one (Deno's with
// --unstable-net, a browser's), so code written for either works.
function isWebSocketError(
  value: unknown,
): value is { closeCode: number | null; reason: string } {
  return value instanceof WebSocketError ||
    (value instanceof DOMException && value.name === "WebSocketError" &&
      "closeCode" in value && "reason" in value);
}

// The close a cancel or abort reason asks for: a WebSocketError carries its
// code and reason (a reason alone goes with 1000, as the WHATWG
// WebSocketError constructor sets it); anything else closes without a code.
function closeRequestFromReason(reason: unknown): CloseRequest {
  if (isWebSocketError(reason)) {
    try {
      return closeRequest(
        reason.closeCode ?? undefined,
        reason.reason ? String(reason.reason) : undefined,
      );
    } catch {
      // A code script may not send: close without one.
    }
  }
  return { closeCode: CloseCode.NoStatusReceived, reason: "" };
}

// Writes messages to the connection with one writer, released at once:
// the connection's writable stays unlocked between writes, so a peer's
// Close is answered at once (RFC 6455 §5.5.1).
function writeMessages(
  socket: Socket,
  chunks: Array<string | BufferSource>,
): Promise<void>[] {
  const writer = socket.writable.getWriter();
  try {
    // WHATWG: a BufferSource goes as binary, anything else is converted to
    // a USVString and goes as text.
    return chunks.map((chunk) =>
      writer.write(
        isBufferSource(chunk) ? copyBytes(chunk) : toUSVString(chunk),
      )
    );
  } finally {
    writer.releaseLock();
  }
}

// Settles each message of the batch as the connection settles its write;
// the first failure fails the rest (and errors the writable).
async function writeBatch(
  socket: Socket,
  batch: MessageBatch<string | BufferSource>,
): Promise<void> {
  let failure: { error: unknown } | undefined;
  const fail = (error: unknown) => {
    failure ??= { error };
    batch.rejectRest(error);
  };
  let writes: Promise<void>[] = [];
  try {
    writes = writeMessages(socket, batch.messages);
  } catch (error) {
    fail(error);
  }
  for (const written of writes) {
    try {
      await written;
      if (!failure) batch.resolveNext();
    } catch (error) {
      fail(error);
    }
  }
  if (failure) throw failure.error;
}

/**
 * A WebSocket client with the WHATWG `WebSocketStream` API: `opened` gives
 * a `readable` of received messages and a `writable` to send on, `closed`
 * says how it ended, and `close()` starts the closing handshake. Code
 * written for a browser's (or Deno's `--unstable-net`) `WebSocketStream`
 * runs unchanged, and the second argument also takes every option of
 * {@linkcode connect}.
 *
 * Closing: `close()`, closing the `writable`, aborting it or cancelling the
 * `readable` all start the closing handshake. With no code (or a reason
 * that is not a {@linkcode WebSocketError}) the Close frame has no body; a
 * `WebSocketError` given to `abort()` or `cancel()` sends its `closeCode`
 * and `reason`. `closed` resolves with the peer's code and reason after a
 * clean close and rejects with a `WebSocketError` (code 1006) otherwise.
 * Aborting `signal` before the connection opens rejects `opened` and
 * `closed` with the signal's reason. Both promises are marked handled, so
 * ignoring `closed` never crashes the process.
 *
 * @example Echo through a wstream server
 * ```ts
 * import { serve, WebSocketStream } from "@wstream/wstream";
 * import { assertEquals } from "@std/assert";
 *
 * const server = serve({ port: 0, hostname: "127.0.0.1" }, (socket) =>
 *   socket.readable.pipeTo(socket.writable)
 * );
 * const wss = new WebSocketStream(`ws://127.0.0.1:${server.addr.port}/`);
 * const { readable, writable } = await wss.opened;
 * const writer = writable.getWriter();
 * await writer.write("hello");
 * const reader = readable.getReader();
 * assertEquals((await reader.read()).value, "hello");
 * wss.close({ closeCode: 1000, reason: "done" });
 * assertEquals(await wss.closed, { closeCode: 1000, reason: "done" });
 * await server.shutdown();
 * ```
 */
export class WebSocketStream {
  /** The URL connected to (`http:` mapped to `ws:`, `https:` to `wss:`). */
  readonly url: string;
  /** Resolves once the connection is open; rejects if it never opens. */
  readonly opened: Promise<WebSocketOpenInfo>;
  /**
   * Resolves after a clean close with the peer's code and reason; rejects
   * with a {@linkcode WebSocketError} after an unclean one, or with the
   * signal's reason after an abort.
   */
  readonly closed: Promise<WebSocketStreamClosedInfo>;

  #socket: Socket | undefined;
  // The error of an unclean close, shared by readable, writable and closed.
  #closeError: WebSocketError | undefined;
  // Set when close() is called before the connection opens.
  readonly #cancelOpening = new AbortController();
  #resolveOpened!: (info: WebSocketOpenInfo) => void;
  #rejectOpened!: (reason: unknown) => void;
  #resolveClosed!: (info: WebSocketStreamClosedInfo) => void;
  #rejectClosed!: (reason: unknown) => void;

  /**
   * Starts connecting. Throws at once (a `SyntaxError` `DOMException`) for
   * a URL that is not `ws:`, `wss:`, `http:` or `https:`, has a fragment or
   * does not parse, and for subprotocols that repeat or are not tokens.
   *
   * @param url The URL to connect to.
   * @param options The WHATWG options plus those of {@linkcode connect}.
   */
  constructor(url: string | URL, options: WebSocketStreamOptions = {}) {
    const target = parseWebSocketUrl(toUSVString(url));
    if (typeof options.protocols === "string") {
      // WebIDL: a sequence<USVString> can't be converted from a string.
      throw new TypeError(
        `expected protocols to be an array of strings, found the string ${
          JSON.stringify(options.protocols)
        }`,
      );
    }
    const protocols = options.protocols === undefined
      ? []
      : Array.from(options.protocols, toUSVString);
    // WHATWG: repeated or non-token subprotocols are a SyntaxError.
    validateProtocols(protocols);
    this.url = target.href;
    this.opened = new Promise((resolve, reject) => {
      this.#resolveOpened = resolve;
      this.#rejectOpened = reject;
    });
    this.closed = new Promise((resolve, reject) => {
      this.#resolveClosed = resolve;
      this.#rejectClosed = reject;
    });
    // Ignoring `closed` (or `opened` after a failure) must not end the
    // process with an unhandled rejection; awaiting them still sees it.
    this.opened.catch(() => {});
    this.closed.catch(() => {});

    const signal = options.signal;
    if (signal?.aborted) {
      this.#fail(signal.reason);
      return;
    }
    const connectSignal = signal
      ? AbortSignal.any([signal, this.#cancelOpening.signal])
      : this.#cancelOpening.signal;
    // WHATWG: the opening handshake's fetch fails on a redirect.
    connect(target, {
      ...options,
      maxRedirects: 0,
      protocols,
      signal: connectSignal,
    }).then(
      (socket) => this.#open(socket),
      (error) => this.#fail(error),
    );
  }

  /** `"WebSocketStream"`, for `Object.prototype.toString`. */
  get [Symbol.toStringTag](): string {
    return "WebSocketStream";
  }

  /**
   * Starts the closing handshake, or cancels the connection attempt when it
   * is not open yet (then `opened` and `closed` reject).
   *
   * @param closeInfo `closeCode` 1000 or 3000-4999 and a `reason` of at most
   * 123 bytes of UTF-8; with neither, the Close frame has no body, and a
   * reason without a code sends 1000.
   * @throws {TypeError} for a `closeCode` that is not an integer in 0-65535.
   * @throws {DOMException} `InvalidAccessError` for another code,
   * `SyntaxError` for a longer reason.
   */
  close(closeInfo: WebSocketCloseInfo = {}): void {
    const code = closeInfo.closeCode === undefined
      ? undefined
      : enforceRangeUint16(closeInfo.closeCode);
    const reason = closeInfo.reason === undefined
      ? undefined
      : toUSVString(closeInfo.reason);
    const request = closeRequest(code, reason);
    if (this.#socket === undefined) {
      // WHATWG: not yet established -> fail the WebSocket connection.
      this.#cancelOpening.abort(
        new WebSocketError(
          "the WebSocketStream was closed before its connection opened",
          { closeCode: CloseCode.AbnormalClosure },
        ),
      );
      return;
    }
    closeConnection(this.#socket, request);
  }

  #fail(error: unknown): void {
    this.#rejectOpened(error);
    this.#rejectClosed(error);
  }

  #open(socket: Socket): void {
    if (this.#cancelOpening.signal.aborted) {
      // close() raced the last step of the handshake.
      socket.close();
      this.#fail(this.#cancelOpening.signal.reason);
      return;
    }
    this.#socket = socket;
    const readable = this.#readableFor(socket);
    let writableController!: WritableStreamDefaultController;
    // Messages written while one is on its way come as one batch (see
    // BatchingWritable), passed on to the connection with one writer.
    const writable = new BatchingWritable<string | BufferSource>(
      {
        start: (controller) => {
          writableController = controller;
        },
        write: (chunk) =>
          chunk instanceof MessageBatch
            ? writeBatch(socket, chunk)
            : writeMessages(socket, [chunk])[0],
        close: async () => {
          closeConnection(socket, closeRequestFromReason(undefined));
          await socket.closed;
        },
        abort: async (reason) => {
          closeConnection(socket, closeRequestFromReason(reason));
          await socket.closed;
        },
      },
      1,
      () => 1,
    );

    socket.closed.then(({ closeCode, reason, wasClean }) => {
      if (wasClean) {
        writableController.error(
          new TypeError(
            "the WebSocket is closed: no more messages can be sent",
          ),
        );
        this.#resolveClosed({ closeCode, reason });
        return;
      }
      // RFC 6455 §7.1.5: no closing handshake -> the close code is 1006.
      const error = new WebSocketError(
        `the WebSocket connection closed without a closing handshake${
          reason ? `: ${reason}` : ""
        }`,
        { closeCode: CloseCode.AbnormalClosure },
      );
      this.#closeError = error;
      writableController.error(error);
      this.#rejectClosed(error);
    });
    this.#resolveOpened({
      readable,
      writable,
      extensions: socket.extensions,
      protocol: socket.protocol,
    });
  }

  // Passes the connection's messages through one at a time, so the
  // connection's backpressure reaches the application.
  #readableFor(
    socket: Socket,
  ): ReadableStream<string | Uint8Array> {
    const reader = socket.readable.getReader();
    return new ReadableStream<string | Uint8Array>({
      pull: async (controller) => {
        let result: ReadableStreamReadResult<string | Uint8Array>;
        try {
          result = await reader.read();
        } catch (error) {
          // WHATWG: readable, writable and closed fail with the same
          // WebSocketError; the connection's own error is its message.
          await socket.closed;
          throw this.#closeError ?? error;
        }
        if (result.done) controller.close();
        else controller.enqueue(result.value);
      },
      cancel: async (reason) => {
        closeConnection(socket, closeRequestFromReason(reason));
        reader.cancel(reason).catch(() => {});
        await socket.closed;
      },
    }, { highWaterMark: 0 });
  }
}
