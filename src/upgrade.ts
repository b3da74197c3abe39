/**
 * `upgrade()`: a wstream socket inside `Deno.serve` (and Hono, Oak, Fresh
 * on it), built on Deno's own server WebSocket (`Deno.upgradeWebSocket`):
 * Deno gives no raw connection there.
 *
 * @module
 */

import { requireDeno } from "./runtime.ts";
import { CloseCode } from "./close_code.ts";
import { encodeClosePayload } from "./close_payload.ts";
import type { CloseResult } from "./socket_options.ts";
import type { OutgoingMessage } from "./message_stream_sender.ts";
import { isStreamedMessage } from "./message_stream_sender.ts";
import { buildErrorResponse } from "./http_error_response.ts";
import {
  HandshakeRejection,
  isUpgradeRequest,
  validateClientRequest,
} from "./server_handshake.ts";
import { DEFAULT_HANDSHAKE_TIMEOUT_MS } from "./handshake_io.ts";
import { notAnUpgrade, originAllowed } from "./handshake_responder.ts";
import { headFromFields, HttpHeadError } from "./http_head.ts";
import {
  DEFAULT_MAX_MESSAGE_BYTES,
  type Message,
} from "./message_assembler.ts";
import { MessageSendQueue } from "./message_send_queue.ts";
import {
  type PreparedSender,
  QueueResult,
  type QueueResultValue,
} from "./prepared_queue.ts";
import type { Socket } from "./socket.ts";
import { WebSocketError } from "./websocket_error.ts";
import { sizeOf } from "./readable_queue.ts";

/**
 * Options of {@linkcode upgrade}. The checks run before the response is
 * made, so they are synchronous: an asynchronous check (a database lookup)
 * is awaited before calling `upgrade()`.
 *
 * @example
 * ```ts
 * import type { UpgradeOptions } from "@wstream/wstream";
 *
 * const options: UpgradeOptions = {
 *   protocols: ["chat.v2", "chat.v1"],
 *   allowedOrigins: ["https://chat.example"],
 *   authorize: (request) => request.headers.has("cookie"),
 * };
 * ```
 */
export interface UpgradeOptions {
  /**
   * The subprotocols the server speaks (the client's most preferred one in
   * this list is chosen), or a function that picks one of those offered.
   */
  protocols?:
    | readonly string[]
    | ((offered: string[], request: Request) => string | null | undefined);
  /** Returning `false` or throwing answers 403 Forbidden. */
  authorize?: (request: Request) => boolean;
  /**
   * The `Origin` values browsers may connect from (exact strings, compared
   * case-insensitively, or patterns); any other origin gets 403. Requests
   * without `Origin` pass.
   */
  allowedOrigins?: readonly (string | RegExp)[];
  /**
   * The largest message accepted; a larger one closes the socket with 1009.
   * Deno has read it whole by then (its own limit is 64 MiB). Default 64 MiB.
   */
  maxMessageBytes?: number;
  /**
   * The bytes Deno may hold unsent (`bufferedAmount`) before `writable`
   * applies backpressure. Default 1 MiB.
   */
  maxBufferedBytes?: number;
  /**
   * Deno pings the peer after this many milliseconds without traffic and
   * closes the socket when no Pong follows (Deno's `idleTimeout`, in whole
   * seconds). Default: Deno's (30 s).
   */
  pingIntervalMs?: number;
  /**
   * The time from `upgrade()` to the socket opening. A socket whose
   * `response` never went back to `Deno.serve` (the framework answered
   * otherwise) ends with 1006 then. Default 10 000 ms.
   */
  handshakeTimeoutMs?: number;
}

/**
 * What {@linkcode upgrade} returns: the response to hand back to
 * `Deno.serve`, and the socket.
 *
 * @example
 * ```ts
 * import { upgrade, type UpgradeResult } from "@wstream/wstream";
 *
 * const result: UpgradeResult = upgrade(new Request("http://localhost/"));
 * console.log(result.response.status); // 426: not an upgrade request
 * ```
 */
export interface UpgradeResult {
  /**
   * The socket. When the request was refused it never opens: `readable` is
   * empty and `closed` resolves with 1006 and the refusal as its reason.
   */
  socket: Socket;
  /**
   * The 101 to return from the `Deno.serve` handler, or the refusal (400,
   * 403, 405, 426) saying what was expected and what was found.
   */
  response: Response;
}

const DEFAULT_MAX_BUFFERED_BYTES = 1024 * 1024;
const HTTP_1_1 = { major: 1, minor: 1 };
// The fields RFC 6455 §4.2.1 checks (and the offers read after).
const CHECKED_FIELDS = [
  "host",
  "upgrade",
  "connection",
  "sec-websocket-version",
  "sec-websocket-key",
  "sec-websocket-protocol",
  "sec-websocket-extensions",
];

/**
 * Upgrades a request inside `Deno.serve` (or a framework on it, such as
 * Hono: pass `c.req.raw`) to a wstream {@linkcode Socket}, on Deno's own
 * server WebSocket. The request is checked as `serve()` checks it (RFC 6455
 * §4.2.1: 400, 405, 426; origins and `authorize`: 403) before Deno sees it;
 * a refused request gets its error `response` and a socket that never
 * opens. No permessage-deflate (Deno's server does not offer it).
 *
 * @example An echo inside Deno.serve
 * ```ts
 * import { connect, upgrade } from "@wstream/wstream";
 * import { assertEquals } from "@std/assert";
 *
 * await using server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, (request) => {
 *   const { socket, response } = upgrade(request, { protocols: ["chat"] });
 *   socket.readable.pipeTo(socket.writable).catch(() => {});
 *   return response;
 * });
 * const client = await connect(`ws://127.0.0.1:${server.addr.port}/`, { protocols: ["chat"] });
 * assertEquals(client.protocol, "chat");
 * const writer = client.writable.getWriter();
 * await writer.write("hello");
 * const reader = client.readable.getReader();
 * assertEquals((await reader.read()).value, "hello");
 * reader.releaseLock();
 * await writer.close();
 * await client.closed;
 * ```
 *
 * @param request The request `Deno.serve` gave the handler.
 * @param options The handshake policy and socket options.
 * @returns The socket and the response to return.
 * @throws {TypeError} when `request` is no `Request`, or Deno refuses to
 * upgrade it (upgraded already, or not HTTP/1.1), or on a runtime other
 * than Deno.
 */
export function upgrade(
  request: Request,
  options: UpgradeOptions = {},
): UpgradeResult {
  requireDeno("upgrade()", "handleUpgrade() on a node:http server");
  if (!(request instanceof Request)) {
    throw new TypeError(
      `expected the Request given to the Deno.serve handler (in Hono: c.req.raw), found ${
        Object.prototype.toString.call(request)
      }`,
    );
  }
  let offered: string[];
  try {
    offered = checkRequest(request, options);
  } catch (error) {
    if (
      error instanceof HandshakeRejection || error instanceof HttpHeadError
    ) {
      return refused(error);
    }
    // A request upgraded already has no headers left to read.
    throw denoRefused(error);
  }
  const protocol = chooseProtocol(offered, options, request);
  let upgraded: { socket: WebSocket; response: Response };
  try {
    upgraded = Deno.upgradeWebSocket(request, {
      protocol: protocol || undefined,
      idleTimeout: options.pingIntervalMs === undefined
        ? undefined
        : Math.max(1, Math.ceil(options.pingIntervalMs / 1000)),
    });
  } catch (error) {
    throw denoRefused(error);
  }
  return {
    socket: new DenoSocket(upgraded.socket, options),
    response: upgraded.response,
  };
}

// The queue of an upgraded socket, made on first use; set by DenoSocket.
let upgradedQueue: (socket: Socket) => PreparedSender | undefined;
// Sockets of refused requests: they never open.
const refusedSockets = new WeakSet<Socket>();
const neverOpen: PreparedSender = {
  queue: (): QueueResultValue => QueueResult.Closed,
};

/**
 * How the topic hub sends to a socket from {@linkcode upgrade}: Deno's own
 * WebSocket underneath takes no pre-encoded frames, so each message is
 * sent to it on its own (see {@linkcode MessageSendQueue}). Not exported
 * from `mod.ts`.
 *
 * @example
 * ```ts
 * import { preparedSenderOfUpgraded, upgrade } from "./upgrade.ts";
 * import { PreparedMessage } from "./prepared_message.ts";
 * import { QueueResult } from "./prepared_queue.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const { socket } = upgrade(new Request("http://localhost/")); // refused: 426
 * const sender = preparedSenderOfUpgraded(socket)!;
 * assertEquals(sender.queue(new PreparedMessage("hi")), QueueResult.Closed);
 * ```
 *
 * @param socket Any socket.
 * @returns Its sender, the same for every call, or `undefined` when it is
 * no socket of `upgrade()`.
 */
export function preparedSenderOfUpgraded(
  socket: Socket,
): PreparedSender | undefined {
  return refusedSockets.has(socket) ? neverOpen : upgradedQueue(socket);
}

function denoRefused(error: unknown): TypeError {
  return new TypeError(
    `expected a request Deno can upgrade (HTTP/1.1, not upgraded or answered before), found Deno refusing it: ${
      (error as Error).message
    }`,
    { cause: error },
  );
}

// RFC 6455 §4.2.1 and the policy, as serve() applies them: the offered
// subprotocols Deno can accept, or a rejection thrown.
function checkRequest(request: Request, options: UpgradeOptions): string[] {
  if (!isUpgradeRequest(request.headers)) throw notAnUpgrade();
  // Deno.serve hands on HTTP/1.1 upgrades only (and joins repeated
  // fields): the head holds the fields the checks read, fetched one by one
  // (cheaper than iterating the Headers).
  const fields: [string, string][] = [];
  for (const name of CHECKED_FIELDS) {
    const value = request.headers.get(name);
    if (value !== null) fields.push([name, value]);
  }
  const offer = validateClientRequest(headFromFields("", fields), {
    method: request.method,
    target: "/",
    version: HTTP_1_1,
  });
  // RFC 6455 §4.2.2 step 4 / §10.2: the server may refuse origins.
  const origin = request.headers.get("origin");
  if (
    options.allowedOrigins !== undefined &&
    !originAllowed(origin, options.allowedOrigins)
  ) {
    throw new HandshakeRejection(
      403,
      `expected an allowed Origin, found ${JSON.stringify(origin)}`,
    );
  }
  if (options.authorize !== undefined) {
    let allowed = false;
    try {
      allowed = options.authorize(request) === true;
    } catch {
      allowed = false;
    }
    if (!allowed) {
      throw new HandshakeRejection(403, "the request was not authorized");
    }
  }
  // RFC 6455 §4.2.2 step 5.5 comes next. Deno accepts only the offers it
  // finds splitting the header at ", " ("a,b", as npm ws sends it, is one
  // item "a,b" to Deno).
  if (offer.protocols.length === 0) return offer.protocols;
  const denoSees = new Set(
    (request.headers.get("sec-websocket-protocol") ?? "").split(", "),
  );
  return offer.protocols.filter((p) => denoSees.has(p));
}

// RFC 6455 §4.2.2 step 5.5: one of the offered subprotocols, or "".
function chooseProtocol(
  offered: string[],
  options: UpgradeOptions,
  request: Request,
): string {
  const selector = options.protocols;
  if (selector === undefined || offered.length === 0) return "";
  if (typeof selector !== "function") {
    return offered.find((p) => selector.includes(p)) ?? "";
  }
  const chosen = selector([...offered], request);
  if (chosen === null || chosen === undefined || chosen === "") return "";
  if (typeof chosen !== "string" || !offered.includes(chosen)) {
    throw new TypeError(
      `expected the protocols selector to return one of the offered ${
        offered.map((p) => JSON.stringify(p)).join(", ")
      } or undefined, found ${JSON.stringify(chosen)}`,
    );
  }
  return chosen;
}

function refused(error: HandshakeRejection | HttpHeadError): UpgradeResult {
  const headers = new Headers({ "content-type": "text/plain; charset=utf-8" });
  if (error instanceof HandshakeRejection) {
    for (const [name, value] of error.headers) headers.set(name, value);
  }
  const result: CloseResult = {
    closeCode: CloseCode.AbnormalClosure,
    reason: error.message,
    wasClean: false,
  };
  const socket: Socket = {
    readable: new ReadableStream({ start: (c) => c.close() }),
    writable: new WritableStream({
      write() {
        throw new TypeError(
          `the WebSocket never opened: the upgrade was refused (${error.message})`,
        );
      },
    }),
    protocol: "",
    extensions: "",
    closed: Promise.resolve(result),
    bufferedAmount: 0,
    close() {},
  };
  refusedSockets.add(socket);
  // The same body serve() sends for this refusal.
  const body = buildErrorResponse(error.status, error.message);
  const text = new TextDecoder().decode(body);
  return {
    socket,
    response: new Response(text.slice(text.indexOf("\r\n\r\n") + 4), {
      status: error.status,
      headers,
    }),
  };
}

// A stream is refused by the write: any size will do.
function outgoingSizeOf(chunk: OutgoingMessage): number {
  return isStreamedMessage(chunk) ? 0 : sizeOf(chunk);
}

// A wstream socket over Deno's server WebSocket: its events fill
// `readable`, `writable` calls `send()` and waits while `bufferedAmount` is
// over the limit (Deno has no write-done event: polled with a short timer).
class DenoSocket implements Socket {
  readonly readable: ReadableStream<Message>;
  readonly writable: WritableStream<OutgoingMessage>;
  readonly closed: Promise<CloseResult>;
  readonly #ws: WebSocket;
  readonly #maxMessageBytes: number;
  readonly #maxBufferedBytes: number;
  #readable!: ReadableStreamDefaultController<Message>;
  #readableDone = false;
  #resolveClosed!: (result: CloseResult) => void;
  #stopDeadline: () => void = () => {};
  #failure: string | undefined;
  #ended = false;
  #wasOpen = false;
  // The hub's queue (made on first use).
  #prepared: MessageSendQueue | undefined;

  static {
    upgradedQueue = (socket) =>
      #ws in socket
        ? socket.#prepared ??= new MessageSendQueue(
          socket.#ws,
          socket.#maxBufferedBytes,
        )
        : undefined;
  }

  constructor(ws: WebSocket, options: UpgradeOptions) {
    this.#ws = ws;
    ws.binaryType = "arraybuffer";
    this.#maxMessageBytes = options.maxMessageBytes ??
      DEFAULT_MAX_MESSAGE_BYTES;
    this.#maxBufferedBytes = options.maxBufferedBytes ??
      DEFAULT_MAX_BUFFERED_BYTES;
    this.closed = new Promise((resolve) => this.#resolveClosed = resolve);
    const timeoutMs = options.handshakeTimeoutMs ??
      DEFAULT_HANDSHAKE_TIMEOUT_MS;
    const opened = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        // The deadline passed before Deno opened the socket.
        this.#failure =
          `the WebSocket did not open within ${timeoutMs} ms: was the response of upgrade() returned to Deno.serve?`;
        reject(new TypeError(this.#failure));
        this.#end({
          closeCode: CloseCode.AbnormalClosure,
          reason: this.#failure,
          wasClean: false,
        });
      }, timeoutMs);
      this.#stopDeadline = () => clearTimeout(timer);
      ws.onopen = () => {
        clearTimeout(timer);
        this.#wasOpen = true;
        // Hub messages published before it opened go first.
        this.#prepared?.opened();
        resolve();
      };
      // Closed before it opened (no error made once open: they cost).
      ws.addEventListener("close", () => {
        if (ws.readyState !== WebSocket.OPEN && !this.#wasOpen) {
          reject(new TypeError("the WebSocket closed before it opened"));
        }
      });
    });
    opened.catch(() => {});
    ws.onmessage = (event) => this.#onMessage(event.data);
    ws.onclose = (event) =>
      this.#end({
        closeCode: event.code,
        reason: event.reason,
        wasClean: event.wasClean,
      });
    this.readable = new ReadableStream<Message>({
      start: (controller) => void (this.#readable = controller),
      cancel: () => {
        this.#readableDone = true;
        this.close();
      },
    }, { highWaterMark: 0, size: sizeOf });
    this.writable = new WritableStream<OutgoingMessage>({
      start: () => opened,
      write: (chunk) => this.#send(chunk),
      close: () => this.close(),
      abort: (reason) => {
        const code = reason instanceof WebSocketError ? reason.closeCode : null;
        this.close(
          code !== null && code !== CloseCode.AbnormalClosure
            ? { closeCode: code, reason: reason.reason }
            : {},
        );
      },
    }, {
      highWaterMark: this.#maxBufferedBytes,
      size: outgoingSizeOf,
    });
  }

  get protocol(): string {
    return this.#ws.protocol;
  }

  get extensions(): string {
    return this.#ws.extensions;
  }

  get bufferedAmount(): number {
    return this.#ws.bufferedAmount;
  }

  close(info: { closeCode?: number; reason?: string } = {}): void {
    const { closeCode, reason = "" } = info;
    // RFC 6455 §5.5.1, §7.4: checked as WebSocketConnection checks it.
    if (closeCode !== undefined && closeCode !== CloseCode.NoStatusReceived) {
      encodeClosePayload(closeCode, reason);
    }
    if (this.#ended) return;
    try {
      if (closeCode === undefined || closeCode === CloseCode.NoStatusReceived) {
        this.#ws.close();
      } else this.#ws.close(closeCode, reason);
    } catch {
      // Not open yet (the open timer ends it) or closed already.
    }
  }

  #onMessage(data: string | ArrayBuffer): void {
    if (this.#readableDone) return;
    const size = typeof data === "string" ? data.length : data.byteLength;
    if (size > this.#maxMessageBytes) {
      this.close({
        closeCode: CloseCode.MessageTooBig,
        reason: `message over ${this.#maxMessageBytes} bytes`,
      });
      return;
    }
    this.#readable.enqueue(
      typeof data === "string" ? data : new Uint8Array(data),
    );
  }

  #send(chunk: OutgoingMessage): void | Promise<void> {
    const ws = this.#ws;
    if (isStreamedMessage(chunk)) {
      // Deno's WebSocket sends whole messages only.
      throw new TypeError(
        "expected a string or a BufferSource to send: a socket from upgrade() runs on Deno's built-in WebSocket, which cannot send a message in fragments; read the stream into one message first (e.g. `await new Response(stream).bytes()`), or accept the socket with serve() or handleUpgrade()",
      );
    }
    if (ws.readyState !== WebSocket.OPEN) {
      throw new TypeError(
        "expected an open WebSocket to send on, found it closing or closed",
      );
    }
    if (typeof chunk === "string") ws.send(chunk);
    else if (ArrayBuffer.isView(chunk) || chunk instanceof ArrayBuffer) {
      ws.send(chunk);
    } else {
      throw new TypeError(
        `expected a string or a BufferSource to send, found ${typeof chunk}`,
      );
    }
    // No promise while under the limit: the next message goes at once.
    if (ws.bufferedAmount > this.#maxBufferedBytes) return this.#drain();
  }

  // Backpressure, approximated: waits while Deno holds too much unsent
  // (Deno has no event for it: polled, backing off to 50 ms).
  async #drain(): Promise<void> {
    const ws = this.#ws;
    let wait = 1;
    while (
      ws.bufferedAmount > this.#maxBufferedBytes &&
      ws.readyState === WebSocket.OPEN
    ) {
      await new Promise((resolve) => setTimeout(resolve, wait));
      wait = Math.min(wait * 2, 50);
    }
  }

  #end(result: CloseResult): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#stopDeadline();
    if (!this.#readableDone) {
      this.#readableDone = true;
      if (result.wasClean) this.#readable.close();
      else {
        this.#readable.error(
          new WebSocketError(
            this.#failure ?? "the connection ended without a Close frame",
            { closeCode: CloseCode.AbnormalClosure },
          ),
        );
      }
    }
    if (this.#failure !== undefined) {
      try {
        this.#ws.close();
      } catch {
        // Never opened.
      }
    }
    this.#resolveClosed(result);
  }
}
