/**
 * The socket: one WebSocket connection over a byte transport, joining the
 * codec to the application's `readable` and `writable`, with the closing
 * handshake (RFC 6455 §7), ping/pong (§5.5.2–3) and keep-alive.
 *
 * @module
 */

import { CloseCode, isValidCloseCode } from "./close_code.ts";
import {
  type CloseInfo,
  encodeClosePayload,
  MAX_CLOSE_REASON_BYTES,
  parseClosePayload,
} from "./close_payload.ts";
import { type Frame, Opcode } from "./frame.ts";
import { DEFAULT_MAX_FRAME_BYTES, FrameDecoder } from "./frame_decoder.ts";
import {
  encodeFrame,
  encodeFrameHeader,
  encodeFrameInto,
  frameHeaderLength,
} from "./frame_encoder.ts";
import {
  DEFAULT_MAX_MESSAGE_BYTES,
  type Message,
  MessageAssembler,
  type MessageInflater,
} from "./message_assembler.ts";
import { WebSocketError } from "./websocket_error.ts";

/**
 * Options every socket takes, from {@linkcode connect} and {@linkcode serve}.
 *
 * @example
 * ```ts
 * import type { WebSocketOptions } from "@wstream/wstream";
 *
 * const options: WebSocketOptions = {
 *   maxMessageBytes: 1024 * 1024, // 1 MiB messages at most (1009 beyond)
 *   closeTimeoutMs: 2000,
 *   pingIntervalMs: 30_000, // keep-alive: a Ping every 30 s,
 *   pongTimeoutMs: 10_000, // and 1006 when its Pong is 10 s late
 * };
 * ```
 */
export interface WebSocketOptions {
  /**
   * The largest message accepted, in bytes (inflated bytes when compressed);
   * a larger one fails the connection with 1009. Default 64 MiB.
   */
  maxMessageBytes?: number;
  /** The largest frame accepted, in bytes; else 1009. Default 64 MiB. */
  maxFrameBytes?: number;
  /**
   * How long to wait for the peer's Close after sending ours, and for the
   * application to finish after the peer's Close, before the TCP connection
   * is ended. Default 5000 ms.
   */
  closeTimeoutMs?: number;
  /** Send a Ping every this many milliseconds; 0 (the default) sends none. */
  pingIntervalMs?: number;
  /**
   * Fail the socket (1006) when no Pong arrives this many milliseconds after
   * a keep-alive Ping. Default: `pingIntervalMs`.
   */
  pongTimeoutMs?: number;
  /**
   * The bytes that may wait for the TCP connection before `writable` applies
   * backpressure. Default 1 MiB.
   */
  maxBufferedBytes?: number;
}

/**
 * Compresses and inflates messages once permessage-deflate is negotiated
 * (RFC 7692).
 *
 * @example
 * ```ts
 * import type { MessageDeflate } from "@wstream/wstream";
 *
 * // A MessageDeflate that never compresses: every message goes as it is.
 * const identity: MessageDeflate = {
 *   inflater: { inflate: (payload) => Promise.resolve(payload) },
 *   deflate: () => undefined,
 * };
 * ```
 */
export interface MessageDeflate {
  /** Inflates received compressed messages. */
  inflater: MessageInflater;
  /**
   * Compresses a whole message, with the trailing `00 00 ff ff` removed
   * (RFC 7692 §7.2.1), or returns `undefined` to send it uncompressed.
   */
  deflate(message: Uint8Array): Promise<Uint8Array> | Uint8Array | undefined;
  /**
   * Frees the compressor's memory when the connection ends, rather than at
   * garbage collection.
   */
  close?(): void;
}

/**
 * A byte transport: a `Deno.Conn` or `Deno.TlsConn`, or in-memory streams.
 *
 * @example
 * ```ts
 * import type { Transport } from "@wstream/wstream";
 *
 * // A Deno.Conn is a Transport; so is any pair of byte streams.
 * const pipe = new TransformStream<Uint8Array, Uint8Array>();
 * const loopback: Transport = { readable: pipe.readable, writable: pipe.writable };
 * ```
 */
export interface Transport {
  /** Bytes from the peer; a byte stream is read with small, growing buffers. */
  readable: ReadableStream<Uint8Array>;
  /**
   * Reads bytes from the peer into `buffer`: the count, or `null` at EOF (a
   * `Deno.Conn` has it). Used instead of `readable` when present: it reads
   * into the socket's own small buffer, and the peer's FIN then ends only
   * the peer's direction, so its Close can still be answered (a
   * `Deno.Conn`'s `readable` closes the whole connection at EOF).
   */
  read?(buffer: Uint8Array): Promise<number | null>;
  /** Bytes to the peer. */
  writable: WritableStream<Uint8Array>;
  /**
   * Writes bytes to the peer: the count written, possibly fewer than given
   * (a `Deno.Conn` has it). Used instead of `writable` when present, so a
   * socket makes no stream of its own over the connection.
   */
  write?(bytes: Uint8Array): Promise<number>;
  /** Ends the connection at once (a `Deno.Conn` has it). */
  close?(): void;
  /**
   * Turns off Nagle's algorithm (a `Deno.TcpConn` has it): frames are
   * batched per write already, and the delay would only hold small ones
   * back waiting for ACKs. The socket calls it once, before its first frame
   * other than a Close: a Close is the last frame, and a connection that
   * only opens and closes saves the system call.
   */
  setNoDelay?(noDelay?: boolean): void;
}

/**
 * What {@linkcode WebSocketConnection} is built from.
 *
 * @example
 * ```ts
 * import { type ConnectionInit, WebSocketConnection } from "@wstream/wstream";
 *
 * // A WebSocket over an already upgraded connection (here, in-memory streams).
 * const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
 * const init: ConnectionInit = {
 *   transport: { readable, writable },
 *   role: "server",
 *   closeTimeoutMs: 100,
 * };
 * const socket = new WebSocketConnection(init);
 * socket.close();
 * await socket.closed;
 * ```
 */
export interface ConnectionInit extends WebSocketOptions {
  /** The connection the WebSocket runs on, after the opening handshake. */
  transport: Transport;
  /** Whether this end is the client (it masks its frames) or the server. */
  role: "client" | "server";
  /** The negotiated subprotocol, "" when none. */
  protocol?: string;
  /** The negotiated `Sec-WebSocket-Extensions` value, "" when none. */
  extensions?: string;
  /** Bytes read after the HTTP head: the first bytes of the WebSocket. */
  leftover?: Uint8Array;
  /** Set when permessage-deflate was negotiated. */
  deflate?: MessageDeflate;
}

/**
 * How a socket ended, as {@linkcode WebSocketConnection.closed} reports it.
 *
 * @example
 * ```ts
 * import { connect, serve, type CloseResult } from "@wstream/wstream";
 * import { assertEquals } from "@std/assert";
 *
 * await using server = serve({ port: 0, hostname: "127.0.0.1" }, (socket) =>
 *   socket.readable.pipeTo(socket.writable)
 * );
 * const socket = await connect(`ws://127.0.0.1:${server.addr.port}/`);
 * socket.close({ closeCode: 4000, reason: "done" });
 * const result: CloseResult = await socket.closed;
 * assertEquals(result, { closeCode: 4000, reason: "done", wasClean: true });
 * ```
 */
export interface CloseResult extends CloseInfo {
  /**
   * Whether the closing handshake completed: a Close frame went each way
   * before the TCP connection ended.
   */
  wasClean: boolean;
}

const DEFAULT_CLOSE_TIMEOUT_MS = 5000;
const DEFAULT_MAX_BUFFERED_BYTES = 1024 * 1024;
// Reads start small so an idle socket pins little memory (a read that waits
// holds its buffer: 2 KiB made an idle server socket ~2 KB larger in RSS),
// and small messages still fit at once. A read that fills its buffer makes
// the next one twice as big, and at least GROWN_READ_BYTES: from then on
// reads grow as they did from a 2 KiB start.
const MIN_READ_BYTES = 256;
const GROWN_READ_BYTES = 4 * 1024;
const MAX_READ_BYTES = 256 * 1024;
// Messages (by bytes) that may wait in `readable` before the socket stops
// reading from the TCP connection.
const READABLE_HIGH_WATER_BYTES = 256 * 1024;
// Frames smaller than this are merged into one TCP write.
const MERGE_LIMIT_BYTES = 64 * 1024;
// Masked large frames queued behind a write in flight are encoded into one
// buffer of up to this size (so they leave in one write).
const MAX_QUEUED_WRITE_BYTES = 512 * 1024;
// The first size of the buffer small frames are encoded into.
const MIN_BATCH_BYTES = 4 * 1024;
// Microtask hops without a new frame before queued frames are written.
const QUIET_HOPS_BEFORE_FLUSH = 8;
// How many microtasks a socket waits for a pipe to answer the peer's Close
// by closing the writable (`pipeTo` takes two when no write is pending)
// before it sets the close timer instead.
const ANSWER_HOPS = 16;

const textEncoder = new TextEncoder();
const EMPTY_BYTES = new Uint8Array(0);

// Large binary messages this module handed out as views of a buffer in
// which the bytes just before the view are its frame's header, which no
// other view covers: a server may write its own (shorter) header there and
// send the message back as one chunk, without a copy. Keyed by the view
// object itself, so a subarray the application makes is never mistaken
// for one.
const headroomViews = new WeakSet<Uint8Array>();

// Buffers that frames are encoded into (batches of small frames, masked
// large ones), reused once the transport has taken their bytes: a fresh
// ArrayBuffer costs more than masking its bytes. Shared by all sockets and
// bounded, so an idle socket holds none.
const MAX_POOLED_BYTES = 4 * 1024 * 1024;
const bufferPool = new Map<number, ArrayBuffer[]>();
let pooledBytes = 0;
// The buffers taken from the pool and not yet returned.
const pooledBuffers = new WeakSet<ArrayBuffer>();

// Sizes are rounded up to 1, 1.25, 1.5 or 1.75 times a power of two (at
// least 4 KiB), so buffers of near sizes are shared at little waste.
function poolCapacity(size: number): number {
  if (size <= MIN_BATCH_BYTES) return MIN_BATCH_BYTES;
  const step = 2 ** (Math.ceil(Math.log2(size)) - 3);
  return Math.ceil(size / step) * step;
}

// A buffer of at least `size` bytes (the whole of its capacity).
function takePooled(size: number): Uint8Array {
  const capacity = poolCapacity(size);
  let buffer = bufferPool.get(capacity)?.pop();
  if (buffer !== undefined) pooledBytes -= capacity;
  else buffer = new ArrayBuffer(capacity);
  pooledBuffers.add(buffer);
  return new Uint8Array(buffer);
}

// Gives back the buffer of `bytes` if it came from the pool (once).
function returnPooled(bytes: Uint8Array): void {
  const buffer = bytes.buffer as ArrayBuffer;
  if (!pooledBuffers.delete(buffer)) return;
  const capacity = buffer.byteLength;
  if (pooledBytes + capacity > MAX_POOLED_BYTES) return;
  let free = bufferPool.get(capacity);
  if (free === undefined) bufferPool.set(capacity, free = []);
  free.push(buffer);
  pooledBytes += capacity;
}

// `size` rounded down to whole frames of `frameBytes` (possibly none), so a
// read of a stream of same-size frames ends between two of them.
function frameAligned(size: number, frameBytes: number): number {
  return frameBytes > 0 ? size - size % frameBytes : size;
}

function sizeOf(chunk: string | { byteLength: number }): number {
  return typeof chunk === "string" ? chunk.length : chunk.byteLength;
}

function toBytes(chunk: BufferSource): Uint8Array {
  if (chunk instanceof Uint8Array) return chunk;
  if (ArrayBuffer.isView(chunk)) {
    return new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  }
  return new Uint8Array(chunk);
}

function isBufferSource(chunk: unknown): chunk is BufferSource {
  return ArrayBuffer.isView(chunk) || chunk instanceof ArrayBuffer ||
    chunk instanceof SharedArrayBuffer;
}

// What a socket writes its bytes through: a writer of `transport.writable`,
// or a `DirectWriter` over `transport.write`.
type ByteWriter = Pick<
  WritableStreamDefaultWriter<Uint8Array>,
  "write" | "close"
>;

type DirectTransport = Transport & Required<Pick<Transport, "write">>;

// Writes to `transport.write` the way a writer of `transport.writable`
// would: all bytes, in order. A class, not an object of closures: every
// socket holds one, idle or not.
class DirectWriter implements ByteWriter {
  readonly #transport: DirectTransport;

  constructor(transport: DirectTransport) {
    this.#transport = transport;
  }

  async write(bytes: Uint8Array): Promise<void> {
    let written = 0;
    while (written < bytes.length) {
      written += await this.#transport.write(bytes.subarray(written));
    }
  }

  close(): Promise<void> {
    this.#transport.close?.();
    return Promise.resolve();
  }
}

// A reason of at most 123 bytes, cut at a character boundary.
function truncateReason(reason: string): string {
  let bytes = textEncoder.encode(reason);
  if (bytes.length <= MAX_CLOSE_REASON_BYTES) return reason;
  bytes = bytes.subarray(0, MAX_CLOSE_REASON_BYTES - 3);
  return new TextDecoder().decode(bytes).replace(/\uFFFD$/, "") + "...";
}

/**
 * One WebSocket connection: messages arrive on `readable` (text as `string`,
 * binary as `Uint8Array`) and are sent by writing to `writable` (`string`
 * for text, any `BufferSource` for binary). `connect()` and the `serve()`
 * handler both give this type.
 *
 * Closing: when the peer sends Close, `readable` closes, and closing
 * `writable` (or calling `close()`) completes the handshake echoing the
 * peer's code, so `socket.readable.pipeTo(socket.writable)` is a correct echo.
 * Closing `writable` first sends Close 1000 (or what `close()` was given)
 * and waits for the peer's Close, up to `closeTimeoutMs`. `closed` resolves
 * with how the socket ended.
 *
 * @example Run a socket over in-memory streams
 * ```ts
 * import { WebSocketConnection } from "@wstream/wstream";
 * import { assertEquals } from "@std/assert";
 *
 * // The peer sends an unmasked text frame "Hi" and a Close 1000.
 * const fromPeer = ReadableStream.from([
 *   new Uint8Array([0x81, 0x02, 0x48, 0x69, 0x88, 0x02, 0x03, 0xe8]),
 * ]);
 * const toPeer: Uint8Array[] = [];
 * const socket = new WebSocketConnection({
 *   role: "client",
 *   transport: {
 *     readable: fromPeer,
 *     writable: new WritableStream({ write: (chunk) => void toPeer.push(chunk) }),
 *   },
 * });
 * assertEquals(await Array.fromAsync(socket.readable), ["Hi"]);
 * assertEquals((await socket.closed).closeCode, 1000);
 * ```
 */
export class WebSocketConnection {
  /** The messages received. Closes when the peer's Close arrives. */
  readonly readable: ReadableStream<Message>;
  /** Messages to send: `string` as text, any `BufferSource` as binary. */
  readonly writable: WritableStream<string | BufferSource>;
  /** The negotiated subprotocol, "" when none. */
  readonly protocol: string;
  /** The negotiated extensions (`Sec-WebSocket-Extensions`), "" when none. */
  readonly extensions: string;
  /** Resolves once the socket has ended, with how it ended. */
  readonly closed: Promise<CloseResult>;

  readonly #role: "client" | "server";
  readonly #mask: boolean;
  readonly #transport: Transport;
  readonly #writer: ByteWriter;
  #reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  readonly #decoder: FrameDecoder;
  readonly #assembler: MessageAssembler;
  readonly #deflate: MessageDeflate | undefined;
  readonly #closeTimeoutMs: number;
  readonly #pingIntervalMs: number;
  readonly #pongTimeoutMs: number;
  readonly #maxBufferedBytes: number;
  readonly #reuseWrites: boolean;

  #readableController!: ReadableStreamDefaultController<Message>;
  #readableDone = false;
  // An error for `readable` that waits until the messages received before
  // it have been read.
  #pendingReadableError: Error | undefined;
  #resumeReading: (() => void) | undefined;
  #writableController!: WritableStreamDefaultController;
  #writableDone = false;

  // Frames received in the chunk being processed.
  readonly #receivedFrames: Frame[] = [];
  // Whether a message handed out is a view of the read buffer.
  #bufferLent = false;
  // The peer's direction ended (EOF) after its Close; ours is still open.
  #inputEnded = false;

  // Bytes waiting for the transport, and who waits for them to drain.
  #outgoing: Uint8Array[] = [];
  // Small frames are encoded straight into one buffer, written as one chunk.
  #batch: Uint8Array | undefined;
  #batchUsed = 0;
  #outgoingBytes = 0;
  // Bytes ever queued and ever written, and who waits for a position.
  #queuedBytesTotal = 0;
  #writtenBytesTotal = 0;
  #writtenWaiters: { position: number; resolve: () => void }[] = [];
  #flushing = false;
  #queuedSinceCheck = false;
  #quietHops = 0;
  #drainWaiters: (() => void)[] = [];
  #transportFailed = false;
  #noDelaySet = false;

  #closeSent: CloseInfo | undefined;
  #closeReceived: CloseInfo | undefined;
  #failure: WebSocketError | undefined;
  // Whether the failure was sent: `writable` failed and our Close queued.
  #failureSent = false;
  #ended = false;
  #resolveClosed!: (result: CloseResult) => void;
  #closeTimer: ReturnType<typeof setTimeout> | undefined;
  #answerTimer: ReturnType<typeof setTimeout> | undefined;
  #pingTimer: ReturnType<typeof setTimeout> | undefined;
  #pongTimer: ReturnType<typeof setTimeout> | undefined;

  // The underlying source of `readable` and sink of `writable`: each an
  // object with one field and shared methods, where closures would cost a
  // few hundred bytes per socket, idle or not.
  static readonly #Source = class implements UnderlyingDefaultSource<Message> {
    readonly #socket: WebSocketConnection;

    constructor(socket: WebSocketConnection) {
      this.#socket = socket;
    }

    start(controller: ReadableStreamDefaultController<Message>): void {
      this.#socket.#readableController = controller;
    }

    pull(): void {
      const socket = this.#socket;
      const error = socket.#pendingReadableError;
      if (error && socket.#readableQueueEmpty()) {
        socket.#pendingReadableError = undefined;
        socket.#readableController.error(error);
        if (socket.#failure !== undefined) socket.#sendFailureSoon();
        return;
      }
      const resume = socket.#resumeReading;
      socket.#resumeReading = undefined;
      resume?.();
    }

    cancel(): void {
      // The application wants no more messages: start closing.
      const socket = this.#socket;
      socket.#readableDone = true;
      socket.#resumeReading?.();
      socket.#startClose(undefined);
    }
  };

  static readonly #Sink = class
    implements UnderlyingSink<string | BufferSource> {
    readonly #socket: WebSocketConnection;

    constructor(socket: WebSocketConnection) {
      this.#socket = socket;
    }

    start(controller: WritableStreamDefaultController): void {
      this.#socket.#writableController = controller;
    }

    write(chunk: string | BufferSource): void | Promise<void> {
      return this.#socket.#sendMessage(chunk);
    }

    close(): Promise<void> {
      const socket = this.#socket;
      socket.#writableDone = true;
      socket.#startClose(undefined);
      return socket.#whenDrained();
    }

    abort(reason: unknown): void {
      const socket = this.#socket;
      socket.#writableDone = true;
      const info =
        reason instanceof WebSocketError && reason.closeCode !== null &&
          isValidCloseCode(reason.closeCode)
          ? { closeCode: reason.closeCode, reason: reason.reason }
          : undefined;
      socket.#startClose(info);
    }
  };

  /**
   * Starts a socket on a transport whose opening handshake is done.
   *
   * @param init The transport, the role, what was negotiated and the options.
   */
  constructor(init: ConnectionInit) {
    this.#role = init.role;
    this.#mask = init.role === "client";
    this.#transport = init.transport;
    this.protocol = init.protocol ?? "";
    this.extensions = init.extensions ?? "";
    this.#deflate = init.deflate;
    this.#closeTimeoutMs = init.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS;
    this.#pingIntervalMs = init.pingIntervalMs ?? 0;
    this.#pongTimeoutMs = init.pongTimeoutMs ?? this.#pingIntervalMs;
    this.#maxBufferedBytes = init.maxBufferedBytes ??
      DEFAULT_MAX_BUFFERED_BYTES;
    const maxMessageBytes = init.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    let maxFrameBytes = init.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    // Without compression a frame can't be larger than its message: refuse
    // it from its header instead of buffering it first.
    if (!init.deflate) maxFrameBytes = Math.min(maxFrameBytes, maxMessageBytes);

    this.#decoder = new FrameDecoder({
      role: init.role === "client" ? "client" : "server",
      maxFrameBytes,
      allowRsv1: init.deflate !== undefined,
    });
    this.#assembler = new MessageAssembler({
      maxMessageBytes,
      inflater: init.deflate?.inflater,
      onControlFrame: (frame) => this.#onControlFrame(frame),
    });
    this.closed = new Promise((resolve) => this.#resolveClosed = resolve);
    const transport = init.transport;
    this.#writer = transport.write
      ? new DirectWriter(transport as DirectTransport)
      : transport.writable.getWriter();
    // A Deno.Conn hands each chunk to the OS before the write resolves, so
    // the buffers frames are encoded into can be reused then; other
    // writables may keep chunks (a TransformStream queues them).
    const conn = transport as Partial<Deno.Conn>;
    this.#reuseWrites = typeof conn.read === "function" &&
      typeof conn.closeWrite === "function";

    this.readable = new ReadableStream<Message>(
      new WebSocketConnection.#Source(this),
      { highWaterMark: READABLE_HIGH_WATER_BYTES, size: sizeOf },
    );
    this.writable = new WritableStream<string | BufferSource>(
      new WebSocketConnection.#Sink(this),
      { highWaterMark: this.#maxBufferedBytes, size: sizeOf },
    );

    this.#schedulePing();
    this.#readLoop(init.leftover);
  }

  /**
   * The bytes of frames accepted for sending that the TCP connection has
   * not taken yet.
   */
  get bufferedAmount(): number {
    return this.#outgoingBytes;
  }

  /**
   * Starts the closing handshake (RFC 6455 §7.1.2): sends Close after the
   * frames already accepted, then waits for the peer's Close up to
   * `closeTimeoutMs`. After the peer's Close it completes the handshake,
   * echoing the peer's code when none is given. Later writes are refused.
   *
   * @param info The close code (default 1000, or the peer's when echoing)
   * and a reason of at most 123 bytes of UTF-8. Code 1005 (No Status
   * Received) sends a Close frame without a body, as the WHATWG
   * `WebSocket.close()` does when given no code.
   * @throws {RangeError} for a code that may not be sent or a reason that is
   * too long.
   */
  close(info: { closeCode?: number; reason?: string } = {}): void {
    // RFC 6455 §5.5.1: a Close frame may have no body; 1005 stands for that
    // (§7.4.1), so it asks for an empty Close and never goes on the wire.
    if (info.closeCode === CloseCode.NoStatusReceived) {
      if (info.reason) {
        throw new RangeError(
          `expected no reason with close code 1005 (a Close frame without a body), found "${info.reason}"`,
        );
      }
    } else if (info.closeCode !== undefined || info.reason) {
      // Validates before anything is sent.
      encodeClosePayload(
        info.closeCode ?? CloseCode.NormalClosure,
        info.reason ?? "",
      );
    }
    const request = info.closeCode !== undefined || info.reason
      ? {
        closeCode: info.closeCode ?? CloseCode.NormalClosure,
        reason: info.reason ?? "",
      }
      : undefined;
    this.#startClose(request);
    if (!this.#writableDone) {
      this.#writableDone = true;
      this.#writableController.error(
        new TypeError("the WebSocket is closing: no more messages can be sent"),
      );
    }
  }

  /**
   * Sends a Ping (RFC 6455 §5.5.2); the peer answers with a Pong.
   *
   * @param payload At most 125 bytes to send with it.
   */
  ping(payload: Uint8Array = new Uint8Array(0)): void {
    if (payload.length > 125) {
      throw new RangeError(
        `expected a ping payload of at most 125 bytes, found ${payload.length} bytes`,
      );
    }
    if (this.#closeSent || this.#ended) return;
    this.#sendFrame(Opcode.Ping, payload, false);
  }

  // ---- sending ----------------------------------------------------------

  #sendMessage(chunk: string | BufferSource): void | Promise<void> {
    if (this.#closeSent || this.#ended) {
      throw new TypeError(
        "expected an open WebSocket to send on, found it closing or closed",
      );
    }
    let opcode: Opcode;
    let bytes: Uint8Array;
    if (typeof chunk === "string") {
      opcode = Opcode.Text;
      bytes = textEncoder.encode(chunk);
    } else if (isBufferSource(chunk)) {
      opcode = Opcode.Binary;
      bytes = toBytes(chunk);
    } else {
      throw new TypeError(
        `expected a string or a BufferSource to send, found ${
          chunk === null ? "null" : typeof chunk
        }`,
      );
    }
    const deflated = this.#deflate?.deflate(bytes);
    if (deflated instanceof Promise) {
      return deflated.then((compressed) => {
        if (this.#closeSent || this.#ended) return;
        this.#sendFrame(opcode, compressed, true);
        return this.#backpressure();
      });
    }
    if (deflated !== undefined) this.#sendFrame(opcode, deflated, true);
    else if (this.#sendFrame(opcode, bytes, false)) {
      // The frame views the caller's bytes: the write completes only once
      // they are written, so the caller may reuse its buffer right after.
      return this.#whenWritten().then(() => this.#backpressure());
    }
    return this.#backpressure();
  }

  #backpressure(): void | Promise<void> {
    if (this.#outgoingBytes <= this.#maxBufferedBytes) return;
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  // Queues a frame; true when the queued bytes view `payload` (a large
  // unmasked payload is not copied).
  #sendFrame(opcode: Opcode, payload: Uint8Array, rsv1: boolean): boolean {
    if (this.#transportFailed) return false;
    if (!this.#noDelaySet && opcode !== Opcode.Close) {
      this.#noDelaySet = true;
      try {
        this.#transport.setNoDelay?.(true);
      } catch {
        // Closed already: the write will say so.
      }
    }
    let viewsPayload = false;
    const frame = { fin: true, rsv1, opcode, payload };
    const size = frameHeaderLength(payload.length, this.#mask) + payload.length;
    if (size < MERGE_LIMIT_BYTES) {
      let batch = this.#batch;
      const used = this.#batchUsed;
      if (batch === undefined || used + size > batch.length) {
        if (used + size > MERGE_LIMIT_BYTES) {
          this.#sealBatch();
          batch = this.#newBatch(size);
        } else {
          const grown = this.#newBatch(
            Math.min(MERGE_LIMIT_BYTES, (used + size) * 2),
          );
          if (batch !== undefined) {
            grown.set(batch.subarray(0, used));
            returnPooled(batch);
          }
          batch = grown;
        }
        this.#batch = batch;
      }
      this.#batchUsed = encodeFrameInto(
        batch,
        this.#batchUsed,
        frame,
        this.#mask,
      );
    } else {
      this.#sealBatch();
      const headerLength = size - payload.length;
      if (
        !this.#mask && !rsv1 && headroomViews.has(payload) &&
        payload.byteOffset >= headerLength
      ) {
        // A message received as a view after its frame's header: our header
        // goes in front of it, and the frame leaves whole, without a copy.
        const bytes = new Uint8Array(
          payload.buffer,
          payload.byteOffset - headerLength,
          size,
        );
        encodeFrameHeader(bytes, frame);
        this.#outgoing.push(bytes);
        viewsPayload = true;
      } else if (this.#mask && this.#reuseWrites) {
        // RFC 6455 §5.3: the client masks a copy; the copy's buffer is
        // reused once written. Frames that queue behind a write in flight
        // are masked into one buffer, so they leave in one write.
        const outgoing = this.#outgoing;
        const last = outgoing[outgoing.length - 1];
        if (
          last !== undefined && last.byteOffset === 0 &&
          pooledBuffers.has(last.buffer as ArrayBuffer) &&
          last.buffer.byteLength - last.length >= size
        ) {
          const grown = new Uint8Array(last.buffer, 0, last.length + size);
          encodeFrameInto(grown, last.length, frame, true);
          outgoing[outgoing.length - 1] = grown;
        } else {
          const capacity = this.#flushing
            ? Math.max(size, Math.min(size * 4, MAX_QUEUED_WRITE_BYTES))
            : size;
          const bytes = takePooled(capacity).subarray(0, size);
          encodeFrameInto(bytes, 0, frame, true);
          outgoing.push(bytes);
        }
      } else {
        for (const chunk of encodeFrame(frame, this.#mask)) {
          this.#outgoing.push(chunk);
          if (chunk === payload) viewsPayload = true;
        }
      }
    }
    this.#outgoingBytes += size;
    this.#queuedBytesTotal += size;
    this.#queuedSinceCheck = true;
    if (this.#flushing) return viewsPayload;
    this.#flushing = true;
    if (payload.length >= MERGE_LIMIT_BYTES || opcode === Opcode.Close) {
      // A large frame leaves on its own anyway, and nothing follows a Close
      // (RFC 6455 §5.5.1): no reason to wait for more frames.
      void this.#flush();
      return viewsPayload;
    }
    this.#quietHops = 0;
    queueMicrotask(this.#flushWhenQuiet);
    return viewsPayload;
  }

  // Resolves once every byte queued so far has been written (or the
  // transport failed).
  #whenWritten(): Promise<void> {
    const position = this.#queuedBytesTotal;
    if (this.#writtenBytesTotal >= position) return Promise.resolve();
    return new Promise((resolve) =>
      this.#writtenWaiters.push({ position, resolve })
    );
  }

  #notifyWritten(all: boolean): void {
    const waiters = this.#writtenWaiters;
    while (
      waiters.length > 0 &&
      (all || waiters[0].position <= this.#writtenBytesTotal)
    ) {
      waiters.shift()!.resolve();
    }
  }

  // Frames written in the same turn leave in one TCP write: the flush waits
  // until a few microtask hops pass without a new frame (a pipe hands its
  // messages over a few hops apart), then writes them together.
  readonly #flushWhenQuiet = (): void => {
    if (this.#closeSent) {
      // Nothing follows a Close: no reason to wait for more frames.
      void this.#flush();
      return;
    }
    if (this.#queuedSinceCheck) {
      this.#queuedSinceCheck = false;
      this.#quietHops = 0;
    } else if (++this.#quietHops >= QUIET_HOPS_BEFORE_FLUSH) {
      void this.#flush();
      return;
    }
    queueMicrotask(this.#flushWhenQuiet);
  };

  // A buffer to encode small frames into: from the pool when the transport
  // takes each write's bytes before it resolves (see #reuseWrites).
  #newBatch(size: number): Uint8Array {
    if (this.#reuseWrites) return takePooled(size);
    return new Uint8Array(Math.max(MIN_BATCH_BYTES, size));
  }

  // Moves the frames encoded into the batch buffer to the outgoing chunks.
  #sealBatch(): void {
    if (this.#batchUsed === 0) return;
    this.#outgoing.push(this.#batch!.subarray(0, this.#batchUsed));
    this.#batch = undefined;
    this.#batchUsed = 0;
  }

  // Writes what is queued; frames queued while a write is in flight leave
  // together in the next write.
  async #flush(): Promise<void> {
    try {
      while (true) {
        this.#sealBatch();
        if (this.#outgoing.length === 0) break;
        const chunks = this.#outgoing;
        this.#outgoing = [];
        for (const bytes of chunks) {
          await this.#writer.write(bytes);
          if (this.#reuseWrites) returnPooled(bytes);
          this.#outgoingBytes -= bytes.length;
          this.#writtenBytesTotal += bytes.length;
          if (this.#writtenWaiters.length > 0) this.#notifyWritten(false);
          if (this.#outgoingBytes <= this.#maxBufferedBytes) {
            this.#notifyDrained();
          }
        }
      }
    } catch (error) {
      this.#transportFailed = true;
      this.#outgoing = [];
      this.#batch = undefined;
      this.#batchUsed = 0;
      this.#outgoingBytes = 0;
      this.#notifyWritten(true);
      this.#onTransportEnd(error);
    } finally {
      this.#flushing = false;
      this.#notifyDrained();
    }
  }

  #notifyDrained(): void {
    const waiters = this.#drainWaiters;
    if (waiters.length === 0) return;
    if (
      (this.#outgoing.length > 0 || this.#batchUsed > 0) &&
      this.#outgoingBytes > this.#maxBufferedBytes
    ) return;
    this.#drainWaiters = [];
    for (const resolve of waiters) resolve();
  }

  #whenDrained(): Promise<void> {
    const drained = () =>
      this.#ended || (!this.#flushing && this.#outgoing.length === 0);
    if (drained()) return Promise.resolve();
    return new Promise((resolve) => {
      const check = () => {
        if (drained()) resolve();
        else this.#drainWaiters.push(check);
      };
      this.#drainWaiters.push(check);
    });
  }

  // ---- closing ----------------------------------------------------------

  // Sends our Close unless it was sent (RFC 6455 §5.5.1): the requested code,
  // else the peer's code when answering its Close, else 1000.
  #startClose(request: CloseInfo | undefined): void {
    // A failure waiting for the application ends now instead (see #fail).
    if (this.#failure !== undefined) {
      this.#sendFailure();
      return;
    }
    if (this.#closeSent || this.#ended) return;
    const received = this.#closeReceived;
    let info: CloseInfo;
    if (request) info = request;
    else if (received) info = received;
    else info = { closeCode: CloseCode.NormalClosure, reason: "" };
    this.#closeSent = info;
    // 1005 means the peer's Close had no code: the answer has none either.
    const payload = info.closeCode === CloseCode.NoStatusReceived
      ? new Uint8Array(0)
      : encodeClosePayload(info.closeCode, info.reason);
    this.#sendFrame(Opcode.Close, payload, false);
    this.#stopKeepAlive();
    if (received) {
      this.#closeHandshakeDone();
    } else {
      // RFC 6455 §7.1.1: wait for the peer's Close, but not forever.
      this.#setCloseTimer(() =>
        this.#end(CloseCode.AbnormalClosure, "", false)
      );
    }
  }

  #closeHandshakeDone(): void {
    // RFC 6455 §7.1.1: the server ends the TCP connection first; the client
    // waits for it to, up to the close timeout.
    const info = this.#closeReceived!;
    if (this.#role === "server" || this.#inputEnded) {
      this.#whenDrained().then(() =>
        this.#end(info.closeCode, info.reason, true)
      );
    } else {
      this.#setCloseTimer(() => this.#end(info.closeCode, info.reason, true));
    }
  }

  #setCloseTimer(
    onTimeout: () => void,
    ms: number = this.#closeTimeoutMs,
  ): void {
    if (this.#closeTimer !== undefined) clearTimeout(this.#closeTimer);
    this.#closeTimer = setTimeout(() => {
      this.#closeTimer = undefined;
      onTimeout();
    }, ms);
  }

  // RFC 6455 §7.1.7: fail the connection. Nothing more is received. The
  // messages that arrived whole before the failure still reach `readable`
  // first, in order (then the error), and what the application writes in
  // answer to them is still sent: `writable` fails and our Close goes out
  // one task after the application has read the last of them (see
  // #Source.pull), or when it closes either stream, or after the close
  // timeout if it does not read them.
  #fail(error: WebSocketError): void {
    if (this.#ended || this.#failure) return;
    this.#failure = error;
    this.#stopKeepAlive();
    this.#errorReadable(error);
    this.#resumeReading?.();
    if (this.#pendingReadableError === undefined) this.#sendFailureSoon();
    else this.#setCloseTimer(() => this.#sendFailure());
  }

  // The application has every message from before the failure: what it
  // writes in answer within this task (a pipe, a read loop, a message
  // handler) goes before our Close.
  #sendFailureSoon(): void {
    // (Sent already, at the close timeout: its timer to end stays.)
    if (this.#failureSent || this.#ended) return;
    this.#setCloseTimer(() => this.#sendFailure(), 0);
  }

  // Fails `writable`, sends Close with the failure's code when it may be
  // sent (after the frames already queued), then ends the TCP connection.
  #sendFailure(): void {
    const error = this.#failure!;
    if (this.#ended || this.#failureSent) return;
    this.#failureSent = true;
    if (!this.#writableDone) {
      this.#writableDone = true;
      this.#writableController.error(error);
    }
    const code = error.closeCode ?? CloseCode.AbnormalClosure;
    if (!this.#closeSent && isValidCloseCode(code)) {
      const reason = truncateReason(error.message);
      this.#closeSent = { closeCode: code, reason };
      this.#sendFrame(Opcode.Close, encodeClosePayload(code, reason), false);
    }
    this.#stopKeepAlive();
    // Give the Close frame a bounded chance to leave, then end.
    this.#setCloseTimer(() => this.#end(code, error.message, false));
    this.#whenDrained().then(() =>
      this.#end(code, truncateReason(error.message), false)
    );
  }

  // Errors `readable`, but only once the application has read the messages
  // that arrived before the failure: controller.error() would drop them.
  #errorReadable(error: Error): void {
    if (this.#readableDone) return;
    this.#readableDone = true;
    if (this.#readableQueueEmpty()) this.#readableController.error(error);
    else this.#pendingReadableError = error;
  }

  #readableQueueEmpty(): boolean {
    return this.#readableController.desiredSize === READABLE_HIGH_WATER_BYTES;
  }

  #errorStreams(error: Error): void {
    this.#errorReadable(error);
    if (!this.#writableDone) {
      this.#writableDone = true;
      this.#writableController.error(error);
    }
    this.#resumeReading?.();
  }

  // The transport ended (EOF, reset, or a failed write).
  #onTransportEnd(cause?: unknown): void {
    if (this.#ended) return;
    const received = this.#closeReceived;
    if (this.#failure) {
      this.#end(
        this.#failure.closeCode ?? CloseCode.AbnormalClosure,
        this.#failure.message,
        false,
      );
      return;
    }
    if (received) {
      if (cause === undefined) {
        // The peer sent Close, then FIN: that ends only its direction. Its
        // Close is still answered (RFC 6455 §5.5.1): by the usual path if
        // not yet, and what is queued is written before the end.
        this.#inputEnded = true;
        if (this.#closeSent === undefined) return;
        this.#whenDrained().then(() =>
          this.#end(received.closeCode, received.reason, true)
        );
        return;
      }
      this.#end(
        received.closeCode,
        received.reason,
        this.#closeSent !== undefined,
      );
      return;
    }
    // RFC 6455 §7.1.5: no Close frame was received: 1006.
    const detail = cause instanceof Error ? `: ${cause.message}` : "";
    const message = this.#decoder.hasPartialFrame
      ? `the connection ended inside a frame${detail}`
      : `the connection ended without a Close frame${detail}`;
    this.#errorStreams(
      new WebSocketError(message, { closeCode: CloseCode.AbnormalClosure }),
    );
    this.#end(CloseCode.AbnormalClosure, "", false);
  }

  #end(closeCode: number, reason: string, wasClean: boolean): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#stopKeepAlive();
    if (this.#closeTimer !== undefined) clearTimeout(this.#closeTimer);
    if (this.#answerTimer !== undefined) clearTimeout(this.#answerTimer);
    this.#closeTimer = undefined;
    this.#answerTimer = undefined;
    this.#deflate?.close?.();
    if (!this.#readableDone) {
      if (wasClean || this.#closeReceived) {
        this.#readableDone = true;
        this.#readableController.close();
      } else {
        this.#errorReadable(
          new WebSocketError(
            "the connection was closed before the peer's Close arrived",
            {
              closeCode,
              reason,
            },
          ),
        );
      }
    }
    if (!this.#writableDone) {
      this.#writableDone = true;
      this.#writableController.error(
        new TypeError("the WebSocket is closed: no more messages can be sent"),
      );
    }
    this.#resumeReading?.();
    this.#closeTransport();
    this.#notifyDrained();
    for (const resolve of this.#drainWaiters.splice(0)) resolve();
    this.#notifyWritten(true);
    this.#resolveClosed({ closeCode, reason, wasClean });
  }

  #closeTransport(): void {
    try {
      if (this.#transport.close) {
        this.#transport.close();
        return;
      }
    } catch {
      // Already closed.
    }
    // In-memory transports: end both directions.
    this.#writer.close().catch(() => {});
    this.#reader?.cancel().catch(() => {});
  }

  // ---- keep-alive -------------------------------------------------------

  #schedulePing(): void {
    if (this.#pingIntervalMs <= 0 || this.#closeSent || this.#ended) return;
    this.#pingTimer = setTimeout(() => {
      this.#pingTimer = undefined;
      if (this.#closeSent || this.#ended) return;
      this.#sendFrame(Opcode.Ping, new Uint8Array(0), false);
      this.#pongTimer = setTimeout(() => {
        this.#pongTimer = undefined;
        this.#fail(
          new WebSocketError(
            `the peer stopped answering pings: no Pong within ${this.#pongTimeoutMs} ms`,
            { closeCode: CloseCode.AbnormalClosure },
          ),
        );
      }, this.#pongTimeoutMs);
    }, this.#pingIntervalMs);
  }

  #stopKeepAlive(): void {
    if (this.#pingTimer !== undefined) clearTimeout(this.#pingTimer);
    if (this.#pongTimer !== undefined) clearTimeout(this.#pongTimer);
    this.#pingTimer = undefined;
    this.#pongTimer = undefined;
  }

  // ---- receiving --------------------------------------------------------

  async #readLoop(leftover: Uint8Array | undefined): Promise<void> {
    const read = this.#transport.read
      ? this.#transport.read.bind(this.#transport)
      : this.#streamReader();
    // The bytes read but not yet decoded (at most one incomplete frame) are
    // buffer[start, end). Complete frames are decoded where they were read:
    // their payloads are handed out as views, so the buffer is "lent" and
    // only its unused tail is read into again. An incomplete frame stays in
    // place when it fits, else it moves (once) to a buffer that holds it
    // whole, and the rest of it is read straight behind its first bytes.
    let buffer = leftover ?? EMPTY_BYTES;
    let start = 0;
    let end = buffer.length;
    let readSize = MIN_READ_BYTES;
    let spare: Uint8Array | undefined;
    // Whether the last read emptied the socket: then the next one may wait.
    let drained = true;
    try {
      while (!this.#ended) {
        if (end > start) {
          let used = this.#receive(buffer.subarray(start, end));
          if (typeof used !== "number") used = await used;
          start += used;
          if (this.#ended) break;
        }
        // RFC 6455 §5.5.1: nothing after the peer's Close is processed. The
        // server ends the connection itself once it has answered (§7.1.1),
        // so it reads no further (a pending read would only be interrupted);
        // a client reads on to see the server end it.
        if (this.#closeReceived && this.#role === "server") return;
        if (this.#readableController.desiredSize! <= 0 && !this.#readableDone) {
          // Backpressure: the application is not reading; neither do we.
          await new Promise<void>((resolve) => this.#resumeReading = resolve);
          continue;
        }
        const pending = end - start;
        // Reads and buffers are sized in whole frames of the last frame's
        // size when one fits a read.
        const lastFrameBytes = this.#decoder.lastFrameBytes;
        const unit = lastFrameBytes <= readSize ? lastFrameBytes : 0;
        // The bytes the incomplete frame (if any) is expected to span, from
        // `start`: before its header is whole, it is taken for one of the
        // last frame's size (for sizing reads only).
        let expectedFrameBytes = 0;
        if (pending === 0) {
          if (!this.#bufferLent && buffer.length >= readSize) {
            // Nothing refers to the buffer: read into it from the start.
            start = end = 0;
          } else if (
            buffer.length - end < Math.max(readSize / 4, unit) ||
            (this.#bufferLent ? buffer.length > readSize : drained)
          ) {
            // A read that may wait for the peer holds a buffer of the size
            // recent reads needed, so an idle socket pins little memory
            // (never the unused tail of a large lent buffer). The tail of a
            // lent buffer no larger than that serves the next read: the
            // messages before it pin the buffer anyway, and a fresh buffer
            // per short read (zeroed, often on new pages) costs more than
            // the read itself (a client reading 64 KiB echoes gets a single
            // frame in about one read of four).
            const size = frameAligned(readSize, unit);
            buffer = !drained && spare !== undefined && spare.length >= size
              ? spare.subarray(0, size)
              : new Uint8Array(size);
            spare = undefined;
            this.#bufferLent = false;
            start = end = 0;
          }
        } else {
          // An incomplete frame: how big it is once its header is known.
          const frameBytes = this.#decoder.incompleteFrameBytes;
          const needed = Math.max(frameBytes, pending + 1);
          expectedFrameBytes = frameBytes > 0
            ? frameBytes
            : Math.max(needed, unit);
          if (start + needed > buffer.length || (drained && this.#bufferLent)) {
            // Move it to a buffer that holds it whole (read into straight
            // after), or a read's worth past it. A frame announced larger
            // gets at most eight times the bytes it has sent so far (at
            // least two full reads' worth) until more arrive, so a peer
            // can't make the socket allocate a large frame it never sends.
            const size = frameBytes > readSize
              ? Math.min(
                frameBytes,
                Math.max(2 * MAX_READ_BYTES, pending * 8),
              )
              : expectedFrameBytes +
                frameAligned(Math.max(readSize - expectedFrameBytes, 0), unit);
            const moved = new Uint8Array(size);
            moved.set(buffer.subarray(start, end));
            // A buffer no message refers to serves the next read after the
            // frame, unless the socket may be idle by then.
            spare = this.#bufferLent || drained ? undefined : buffer;
            buffer = moved;
            this.#bufferLent = false;
            start = 0;
            end = pending;
          }
        }
        // Reads never go past the incomplete frame when the buffer was sized
        // for it, so the frame's payload is its own buffer, not shared. And
        // they end on a frame boundary when frames come in one size, so no
        // frame straddles two buffers (then to be moved).
        let limit = buffer.length;
        const frameEnd = start + expectedFrameBytes;
        if (frameEnd <= limit) {
          limit = frameEnd + frameAligned(limit - frameEnd, unit);
        }
        // (No view when the read takes the whole buffer, as an idle one does.)
        const target = end === 0 && limit === buffer.length
          ? buffer
          : buffer.subarray(end, limit);
        const count = await read(target);
        if (count === null) break;
        end += count;
        drained = count < target.length;
        if (!drained && target.length >= readSize / 2) {
          readSize = Math.min(
            Math.max(readSize * 2, GROWN_READ_BYTES),
            MAX_READ_BYTES,
          );
        } else if (drained && count < readSize / 4) {
          readSize = Math.max(readSize / 2, MIN_READ_BYTES);
        }
        if (this.#ended) break;
      }
      this.#onTransportEnd();
    } catch (error) {
      if (error instanceof WebSocketError) this.#fail(error);
      else this.#onTransportEnd(error);
    }
  }

  // Reads `transport.readable` the way `transport.read` would: into the
  // given buffer, the count of bytes or `null` at EOF.
  #streamReader(): (buffer: Uint8Array) => Promise<number | null> {
    const reader = this.#transport.readable.getReader();
    this.#reader = reader;
    // The part of the last chunk that did not fit the buffer.
    let rest: Uint8Array | undefined;
    return async (buffer) => {
      while (rest === undefined || rest.length === 0) {
        const result = await reader.read();
        if (result.done) return null;
        rest = result.value;
      }
      const count = Math.min(rest.length, buffer.length);
      buffer.set(rest.subarray(0, count));
      rest = count < rest.length ? rest.subarray(count) : undefined;
      return count;
    };
  }

  // Decodes the complete frames in `bytes` (a view of the read buffer) and
  // hands out their messages. Returns the bytes used (the rest is an
  // incomplete frame), or a promise of it when a message must be inflated.
  #receive(bytes: Uint8Array): number | Promise<number> {
    // RFC 6455 §5.5.1, §7.1.1: nothing after the peer's Close is processed,
    // not even bytes that are no frame at all; §7.1.7: nor after a failure.
    if (this.#closeReceived || this.#failure) return bytes.length;
    const frames = this.#receivedFrames;
    frames.length = 0;
    let decodeError: unknown;
    let used = 0;
    try {
      used = this.#decoder.decodeInPlace(
        bytes,
        (frame) => void frames.push(frame),
      );
    } catch (error) {
      // Frames before the bad one are still delivered, in order.
      decodeError = error;
    }
    for (let index = 0; index < frames.length; index++) {
      const result = this.#assembler.push(frames[index]);
      if (result instanceof Promise) {
        return this.#receiveAsync(
          result,
          frames.slice(index + 1),
          bytes,
          used,
          decodeError,
        );
      }
      if (result !== undefined) this.#deliver(result, bytes);
    }
    return this.#bytesReceived(bytes, used, decodeError);
  }

  async #receiveAsync(
    first: Promise<Message | undefined>,
    rest: Frame[],
    bytes: Uint8Array,
    used: number,
    decodeError: unknown,
  ): Promise<number> {
    const message = await first;
    if (message !== undefined) this.#deliver(message, bytes);
    for (const frame of rest) {
      let result = this.#assembler.push(frame);
      if (result instanceof Promise) result = await result;
      if (result !== undefined) this.#deliver(result, bytes);
    }
    return this.#bytesReceived(bytes, used, decodeError);
  }

  // How many of `bytes` the read loop may drop once their frames were
  // delivered; a decode error is thrown only after the frames before it.
  #bytesReceived(
    bytes: Uint8Array,
    used: number,
    decodeError: unknown,
  ): number {
    // Bytes after a Close in the same chunk are ignored, even invalid ones.
    if (this.#closeReceived) return bytes.length;
    if (decodeError !== undefined) throw decodeError;
    // RFC 6455 §8.1: text is validated as it arrives, also inside a frame
    // that is not complete yet (after the frames before it).
    const partial = this.#decoder.partialFrame;
    if (partial !== undefined) this.#assembler.pushPartial(partial);
    return used;
  }

  #deliver(message: Message, bytes: Uint8Array): void {
    if (this.#readableDone) return;
    if (typeof message !== "string" && message.buffer === bytes.buffer) {
      this.#bufferLent = true;
      // A server receives masked frames, so before each payload lie at
      // least four header bytes more than the header of its echo: a large
      // one sent back unchanged leaves as one chunk (see #sendFrame).
      if (this.#role === "server" && message.length >= MERGE_LIMIT_BYTES) {
        headroomViews.add(message);
      }
    }
    this.#readableController.enqueue(message);
  }

  #onControlFrame(frame: Frame): void {
    switch (frame.opcode) {
      case Opcode.Ping:
        // RFC 6455 §5.5.2: answer with a Pong carrying the same payload, as
        // soon as practical, also between the fragments of a message.
        if (!this.#closeSent) {
          this.#sendFrame(Opcode.Pong, frame.payload, false);
        }
        break;
      case Opcode.Pong:
        if (this.#pongTimer !== undefined) {
          clearTimeout(this.#pongTimer);
          this.#pongTimer = undefined;
          this.#schedulePing();
        }
        break;
      case Opcode.Close:
        this.#onClose(parseClosePayload(frame.payload));
        break;
    }
  }

  #onClose(info: CloseInfo): void {
    this.#closeReceived = info;
    if (!this.#readableDone) {
      this.#readableDone = true;
      this.#readableController.close();
    }
    if (this.#closeSent) {
      this.#closeHandshakeDone();
      return;
    }
    // RFC 6455 §5.5.1: answer the Close. An application that is writing
    // (the writable is locked, e.g. by a pipe) may finish its current
    // messages first and answer by closing the writable; others are
    // answered now. Either way, the close timeout bounds the wait.
    if (this.writable.locked && !this.#writableDone) {
      // A pipe closes the writable a few microtasks after `readable`
      // closed: wait for that before paying for a timer. (Closures made
      // here, once per connection, cost an idle socket nothing.)
      let hops = 0;
      const watch = (): void => {
        if (this.#closeSent || this.#ended) return;
        if (++hops < ANSWER_HOPS) queueMicrotask(watch);
        else this.#answerOrWait();
      };
      queueMicrotask(watch);
      return;
    }
    // The check waits one task, so a handler that starts its pipe right
    // away (when the Close came with the handshake's bytes) is seen.
    this.#answerTimer = setTimeout(() => this.#answerOrWait(), 0);
  }

  // Answers the peer's Close now unless the application is still writing,
  // which then has up to the close timeout to close the writable.
  #answerOrWait(): void {
    this.#answerTimer = undefined;
    if (!this.writable.locked || this.#writableDone) {
      this.#startClose(undefined);
    } else if (!this.#closeSent && !this.#ended) {
      this.#setCloseTimer(() => this.#startClose(undefined));
    }
  }
}
