/**
 * The socket: one WebSocket connection over a byte transport. A thin driver
 * around the sans-I/O {@linkcode SocketCore} (the closing handshake, RFC
 * 6455 §7; ping/pong, §5.5.2-3; keep-alive): it owns the transport, the
 * read loop, the timers, the application's `readable` and `writable`, and
 * the {@linkcode WriteQueue}, and moves bytes and events between them and
 * the core.
 *
 * @module
 */

import { keepHeld } from "./buffer_pool.ts";
import {
  answerOrWait,
  answerPeerClose,
  type CloseAnswerer,
  provideApplicationStart,
} from "./close_answer.ts";
import { closeRequest } from "./close_payload.ts";
import type { Message } from "./message_assembler.ts";
import { sharedDeflateWindowBits } from "./shared_deflate.ts";
import { BatchingWritable } from "./batching_writable.ts";
import { ConnectionSink } from "./connection_sink.ts";
import {
  ConnectionReadable,
  type PipingSource,
} from "./connection_readable.ts";
import { PreparedQueue, providePreparedQueues } from "./prepared_queue.ts";
import type { MessageStream } from "./message_stream.ts";
import {
  type MessageStreamOwner,
  MessageStreamReceiver,
} from "./message_stream_receiver.ts";
import { type ByteSource, ReadLoop, type ReadLoopOwner } from "./read_loop.ts";
import {
  READABLE_HIGH_WATER_BYTES,
  READABLE_QUEUE_LIMIT,
  readableQueueEmpty,
  sizeOf,
  takeReadSizes,
} from "./readable_queue.ts";
import { SocketCore } from "./socket_core.ts";
import { provideSocketEnds } from "./socket_ended.ts";
import { type PipeReads, SocketPipe } from "./socket_pipe.ts";
import type { SocketCoreHost, TimerKind } from "./socket_core_host.ts";
import type {
  CloseResult,
  ConnectionInit,
  MessageDeflate,
} from "./socket_options.ts";
import {
  type OutgoingMessage,
  outgoingSizeOf,
  resolveOutgoingFrameBytes,
} from "./message_stream_sender.ts";
import {
  closeTransport,
  StreamByteReader,
  type Transport,
} from "./transport.ts";
import { WebSocketError } from "./websocket_error.ts";
import {
  markHeaderRoom,
  MERGE_LIMIT_BYTES,
  type WriteFailureListener,
  WriteQueue,
} from "./write_queue.ts";

const DEFAULT_MAX_BUFFERED_BYTES = 1024 * 1024;

// Any socket, whatever its readable yields.
type AnySocket = WebSocketConnection<Message | MessageStream>;

/**
 * One WebSocket connection: messages arrive on `readable` (text as `string`,
 * binary as `Uint8Array`) and are sent by writing to `writable` (`string`
 * for text, any `BufferSource` for binary). `connect()` and the `serve()`
 * handler both give this type.
 *
 * Closing: when the peer sends Close, `readable` closes, and closing
 * `writable` (or calling `close()`) completes the handshake echoing the
 * peer's code, so `socket.readable.pipeTo(socket.writable)` is a correct echo.
 * An application that holds no writer then is answered by the socket a few
 * microtasks after the Close (after what it wrote already); a later write
 * fails. Closing `writable` first sends Close 1000 (or what `close()` was
 * given) and waits for the peer's Close, up to `closeTimeoutMs`. `closed`
 * resolves with how the socket ended.
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
export class WebSocketConnection<
  M extends Message | MessageStream = Message,
> {
  /**
   * The messages received: whole (`Message`), or as streams
   * (`MessageStream`) with the `messages: "stream"` option. Closes when the
   * peer's Close arrives.
   */
  readonly readable: ReadableStream<M>;
  /**
   * Messages to send: `string` as text, any `BufferSource` as binary, a
   * `ReadableStream` of strings or bytes, a `Blob` or a `MessageStream` as
   * one message in fragments (see {@linkcode sendStreamedMessage}).
   */
  readonly writable: WritableStream<OutgoingMessage>;
  /** The negotiated subprotocol, "" when none. */
  readonly protocol: string;
  /** The negotiated extensions (`Sec-WebSocket-Extensions`), "" when none. */
  readonly extensions: string;

  readonly #role: "client" | "server";
  readonly #transport: Transport;
  #reader: StreamByteReader | undefined;
  readonly #core: SocketCore;
  readonly #queue: WriteQueue;
  readonly #deflate: MessageDeflate | undefined;
  readonly #maxBufferedBytes: number;
  // The sending half: the underlying sink of `writable`.
  readonly #sink: ConnectionSink;

  #readableController!: ReadableStreamDefaultController<Message>;
  // The sizes of the messages given to `readable` that may still be in its
  // queue (made with the first one), and their sum.
  #queuedSizes: number[] | undefined;
  #queuedBytes = 0;
  // The `messages: "stream"` mode's readable, else undefined.
  readonly #receiver: MessageStreamReceiver | undefined;
  #readableDone = false;
  // An error for `readable` that waits until the messages received before
  // it have been read.
  #pendingReadableError: Error | undefined;
  #resumeReading: (() => void) | undefined;
  readonly #reads: ReadLoop;
  readonly #host: PipeReads;

  // `closed`, made when first asked for (most server sockets never are).
  #closed: Promise<CloseResult> | undefined;
  #resolveClosed: ((result: CloseResult) => void) | undefined;
  #result: CloseResult | undefined;
  #endListener: (() => void) | undefined;
  #closeTimer: ReturnType<typeof setTimeout> | undefined;
  #answerTimer: ReturnType<typeof setTimeout> | undefined;
  // The application has had the socket and run (see applicationStarted).
  #started = false;
  #pingTimer: ReturnType<typeof setTimeout> | undefined;
  #pongTimer: ReturnType<typeof setTimeout> | undefined;

  // What the core, the write queue, the read loop and the stream receiver
  // report to, and the underlying source of `readable` (the sink of
  // `writable` is a ConnectionSink): one object with one field and shared
  // methods, where closures would cost a few hundred bytes per socket, idle
  // or not.
  static readonly #Host = class
    implements
      SocketCoreHost,
      CloseAnswerer,
      WriteFailureListener,
      ReadLoopOwner,
      MessageStreamOwner,
      PipingSource<Message> {
    readonly #socket: AnySocket;

    constructor(socket: AnySocket) {
      this.#socket = socket;
    }

    start(controller: ReadableStreamDefaultController<Message>): void {
      this.#socket.#readableController = controller;
    }

    pull(): void {
      const socket = this.#socket;
      const error = socket.#pendingReadableError;
      if (error && readableQueueEmpty(socket.#readableController)) {
        socket.#pendingReadableError = undefined;
        socket.#readableController.error(error);
        // The application has every message from before a failure.
        socket.#core.messagesRead();
        return;
      }
      socket.#wakeReads();
    }

    cancel(): void {
      this.#socket.#cancelReadable();
    }

    pipeItself(
      destination: WritableStream<Message | MessageStream>,
      options: StreamPipeOptions | undefined,
    ): Promise<void> | undefined {
      return this.#socket.#pipeItself(destination, options);
    }

    message(message: Message, bytes: Uint8Array): void {
      const socket = this.#socket;
      if (socket.#readableDone) return;
      if (typeof message !== "string") socket.#lend(message, bytes);
      const pipe = socket.#sink.pipe;
      if (pipe?.forwarding) pipe.message(message);
      else {
        // The application keeps its read buffer (see buffer_pool.ts).
        if (typeof message !== "string") keepHeld(message);
        const size = sizeOf(message);
        (socket.#queuedSizes ??= []).push(size);
        socket.#queuedBytes += size;
        socket.#readableController.enqueue(message);
      }
    }

    fragment(
      text: boolean,
      payload: Uint8Array,
      first: boolean,
      fin: boolean,
      bytes: Uint8Array,
    ): void {
      const socket = this.#socket;
      const pipe = socket.#sink.pipe;
      if (pipe?.forwarding) {
        // Forwarded as it is, from the read buffer.
        socket.#lend(payload, bytes);
        pipe.fragment(text, payload, first, fin);
        return;
      }
      // The read buffer is not lent: the receiver copies each payload out
      // (decoded, or into the reader's buffer) before the socket reads
      // again (see MessageStreamReceiver.readPaused).
      socket.#receiver!.fragment(text, payload, first, fin);
    }

    resumeReading(): void {
      this.#socket.#wakeReads();
    }

    readableCancelled(): void {
      this.#socket.#cancelReadable();
    }

    closeReceived(): void {
      const socket = this.#socket;
      socket.#closeReadable();
      // RFC 6455 §5.5.1: the peer's Close is answered (see close_answer.ts).
      if (socket.#core.closeSent === undefined) {
        socket.#answerTimer = answerPeerClose(
          socket.#core,
          socket.writable as BatchingWritable<OutgoingMessage>,
          socket.#sink,
          this,
          socket.#started,
        );
      }
    }

    answerOrWait(): void {
      const socket = this.#socket;
      socket.#answerTimer = undefined;
      answerOrWait(
        socket.#core,
        socket.writable as BatchingWritable<OutgoingMessage>,
        socket.#sink,
        this,
      );
    }

    failed(error: WebSocketError): void {
      const socket = this.#socket;
      socket.#errorReadable(error);
      socket.#resumeReading?.();
      if (socket.#pendingReadableError === undefined) {
        socket.#core.messagesRead();
      }
    }

    stopSending(error: WebSocketError): void {
      this.#socket.#sink.error(error);
    }

    endWhenWritten(closeCode: number, reason: string, wasClean: boolean): void {
      const socket = this.#socket;
      socket.#queue.whenDrained().then(() =>
        socket.#core.end(closeCode, reason, wasClean)
      );
    }

    ended(closeCode: number, reason: string, wasClean: boolean): void {
      this.#socket.#ended(closeCode, reason, wasClean);
    }

    setTimer(kind: TimerKind, delayMs: number): void {
      const socket = this.#socket;
      this.clearTimer(kind);
      const timer = setTimeout(
        WebSocketConnection.#fireTimer,
        delayMs,
        socket,
        kind,
      );
      if (kind === "ping") socket.#pingTimer = timer;
      else if (kind === "pong") socket.#pongTimer = timer;
      else socket.#closeTimer = timer;
    }

    clearTimer(kind: TimerKind): void {
      const socket = this.#socket;
      let timer;
      if (kind === "ping") {
        timer = socket.#pingTimer;
        socket.#pingTimer = undefined;
      } else if (kind === "pong") {
        timer = socket.#pongTimer;
        socket.#pongTimer = undefined;
      } else {
        timer = socket.#closeTimer;
        socket.#closeTimer = undefined;
      }
      if (timer !== undefined) clearTimeout(timer);
    }

    transportEnded(cause: unknown): void {
      this.#socket.#core.transportEnded(cause);
    }

    readPaused(): boolean {
      const socket = this.#socket;
      if (socket.#readableDone) return false;
      const pipe = socket.#sink.pipe;
      if (pipe?.forwarding) return pipe.paused;
      return socket.#receiver
        ? socket.#receiver.readPaused()
        : socket.#readableBytes() >= READABLE_HIGH_WATER_BYTES;
    }

    readsPooled(): boolean {
      return this.#socket.#sink.pipe?.forwarding === true;
    }

    waitForReader(): Promise<void> {
      const socket = this.#socket;
      return new Promise<void>((resolve) => socket.#resumeReading = resolve);
    }
  };

  static #fireTimer(socket: AnySocket, kind: TimerKind): void {
    if (kind === "ping") socket.#pingTimer = undefined;
    else if (kind === "pong") socket.#pongTimer = undefined;
    else socket.#closeTimer = undefined;
    socket.#core.onTimer(kind);
  }

  /**
   * Starts a socket on a transport whose opening handshake is done.
   *
   * @param init The transport, the role, what was negotiated and the options.
   */
  constructor(init: ConnectionInit) {
    this.#role = init.role;
    this.#transport = init.transport;
    this.protocol = init.protocol ?? "";
    this.extensions = init.extensions ?? "";
    this.#deflate = init.deflate;
    const maxOutgoingFrameBytes = resolveOutgoingFrameBytes(
      init.maxOutgoingFrameBytes,
    );
    const maxBufferedBytes = this.#maxBufferedBytes = init.maxBufferedBytes ??
      DEFAULT_MAX_BUFFERED_BYTES;
    const host = this.#host = new WebSocketConnection.#Host(this);
    this.#queue = new WriteQueue(init.transport, {
      mask: init.role === "client",
      maxBufferedBytes,
      listener: host,
    });
    if (init.messages === "stream") {
      this.#receiver = new MessageStreamReceiver(host);
      this.readable = this.#receiver.readable as ReadableStream<M>;
    } else {
      this.readable = new ConnectionReadable<Message>(
        host,
        { highWaterMark: READABLE_QUEUE_LIMIT },
      ) as ReadableStream<Message> as ReadableStream<M>;
    }
    const sink = this.#sink = new ConnectionSink(
      this.#queue,
      init.deflate,
      maxOutgoingFrameBytes,
    );
    this.writable = new BatchingWritable<OutgoingMessage>(
      sink,
      maxBufferedBytes,
      outgoingSizeOf,
    );
    // Last: it may set the keep-alive timer.
    this.#core = new SocketCore({
      role: init.role,
      sink: this.#queue,
      host,
      maxMessageBytes: init.maxMessageBytes,
      maxFrameBytes: init.maxFrameBytes,
      inflater: init.deflate?.inflater,
      closeTimeoutMs: init.closeTimeoutMs,
      pingIntervalMs: init.pingIntervalMs,
      pongTimeoutMs: init.pongTimeoutMs,
      messages: init.messages,
    });
    sink.core = this.#core;
    const transport = init.transport;
    this.#reads = new ReadLoop(
      transport.read
        ? transport as ByteSource
        : (this.#reader = new StreamByteReader(transport.readable)),
      this.#core,
      host,
    );
    this.#reads.run(init.leftover);
  }

  /** Resolves once the socket has ended, with how it ended. */
  get closed(): Promise<CloseResult> {
    if (this.#closed === undefined) {
      const result = this.#result;
      this.#closed = result !== undefined
        ? Promise.resolve(result)
        : new Promise((resolve) => this.#resolveClosed = resolve);
    }
    return this.#closed;
  }

  /**
   * The bytes of frames accepted for sending that the TCP connection has
   * not taken yet.
   */
  get bufferedAmount(): number {
    return this.#queue.bufferedAmount;
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
    this.#core.close(closeRequest(info));
    // (An error costs microseconds to make: none when nothing gets it.)
    if (!this.#sink.done) {
      this.#sink.error(
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
    this.#core.ping(payload);
  }

  static {
    provideSocketEnds(
      (socket) => socket.#core.ended,
      (socket, listener) => {
        if (socket.#result !== undefined) listener();
        else socket.#endListener = listener;
      },
    );
    provideApplicationStart((socket) => socket.#started = true);
    // The hub's way in (see preparedQueueOf): no public member.
    providePreparedQueues((socket) =>
      socket.#sink.prepared ??= new PreparedQueue(
        socket.#queue,
        socket.#sink,
        {
          mask: socket.#role === "client",
          windowBits: sharedDeflateWindowBits(socket.#deflate),
          maxBufferedBytes: socket.#maxBufferedBytes,
        },
      )
    );
  }

  // ---- closing ----------------------------------------------------------

  // Errors `readable`, but only once the application has read the messages
  // that arrived before the failure: controller.error() would drop them.
  #errorReadable(error: Error): void {
    if (this.#readableDone) return;
    this.#readableDone = true;
    if (this.#receiver) {
      this.#receiver.error(error);
      this.#sink.pipe?.sourceErrored(error);
    } else if (readableQueueEmpty(this.#readableController)) {
      this.#readableController.error(error);
      this.#sink.pipe?.sourceErrored(error);
    } else this.#pendingReadableError = error;
  }

  // A payload handed out as a view of the read buffer lends the buffer. A
  // server receives masked frames, so before each payload lie at least four
  // header bytes more than the header of its echo: a large one sent back
  // unchanged leaves as one chunk (see WriteQueue).
  #lend(payload: Uint8Array, bytes: Uint8Array): void {
    if (payload.buffer !== bytes.buffer) return;
    this.#reads.lent = true;
    if (this.#role === "server" && payload.length >= MERGE_LIMIT_BYTES) {
      markHeaderRoom(payload);
    }
  }

  // `readable.pipeTo(writable)` inside the socket, when nothing has been
  // read or written yet; else undefined (the generic pipe runs).
  #pipeItself(
    destination: WritableStream<Message | MessageStream>,
    options: StreamPipeOptions | undefined,
  ): Promise<void> | undefined {
    const sink = this.#sink;
    const receiver = this.#receiver;
    // Streamed messages are forwarded as their frames arrive: none begun
    // already, and none compressed (the generic pipe inflates and deflates).
    if (
      destination !== this.writable || this.#readableDone || sink.done ||
      sink.busy || this.#core.closeSent !== undefined ||
      (receiver
        ? !receiver.idle || this.#deflate !== undefined
        : !readableQueueEmpty(this.#readableController))
    ) return undefined;
    return (sink.pipe = SocketPipe.start(
      sink,
      this.#host,
      this.readable,
      destination as WritableStream<M>,
      options,
      this.#maxBufferedBytes,
    ))?.promise;
  }

  // The application reads again: so may the read loop.
  #wakeReads(): void {
    const resume = this.#resumeReading;
    this.#resumeReading = undefined;
    resume?.();
  }

  // The application wants no more messages: start closing.
  #cancelReadable(): void {
    this.#readableDone = true;
    this.#wakeReads();
    this.#core.close();
  }

  #closeReadable(): void {
    if (this.#readableDone) return;
    this.#readableDone = true;
    if (this.#receiver) this.#receiver.close();
    else this.#readableController.close();
    this.#sink.pipe?.sourceClosed();
  }

  // The bytes of the messages waiting in `readable`: those read since the
  // last call (the first ones queued) are taken off first.
  #readableBytes(): number {
    const sizes = this.#queuedSizes;
    if (sizes === undefined) return 0;
    return this.#queuedBytes -= takeReadSizes(sizes, this.#readableController);
  }

  #ended(closeCode: number, reason: string, wasClean: boolean): void {
    const sink = this.#sink;
    sink.stopStreamedMessage();
    if (this.#answerTimer !== undefined) clearTimeout(this.#answerTimer);
    this.#answerTimer = undefined;
    this.#deflate?.close?.();
    if (!this.#readableDone) {
      if (wasClean || this.#core.closeReceived) {
        this.#closeReadable();
      } else {
        this.#errorReadable(
          new WebSocketError(
            "the connection was closed before the peer's Close arrived",
            { closeCode, reason },
          ),
        );
      }
    }
    if (!sink.done) {
      sink.error(
        new TypeError("the WebSocket is closed: no more messages can be sent"),
      );
    }
    this.#resumeReading?.();
    closeTransport(this.#transport, this.#queue, this.#reader);
    this.#queue.end();
    const result = this.#result = { closeCode, reason, wasClean };
    this.#resolveClosed?.(result);
    this.#resolveClosed = undefined;
    const listener = this.#endListener;
    this.#endListener = undefined;
    listener?.();
  }
}
