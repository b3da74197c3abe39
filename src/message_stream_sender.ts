/**
 * Sending one message in fragments (RFC 6455 §5.4): a `ReadableStream` of
 * strings or bytes, a `Blob`, or a {@linkcode MessageStream} written to a
 * socket's `writable` goes out as one message, a frame per chunk (tiny
 * chunks that are ready together are joined, huge ones split); and a
 * whole message longer than `maxOutgoingFrameBytes` goes out in fragments.
 * Fragments are queued one after the other as the connection takes them,
 * so control frames (Ping, Pong, Close) go out between them.
 *
 * @module
 */

import { CloseCode } from "./close_code.ts";
import { Opcode } from "./frame.ts";
import type { MessageStream } from "./message_stream.ts";
import type { MessageDeflate } from "./socket_options.ts";
import { WebSocketError } from "./websocket_error.ts";

/** The default `maxOutgoingFrameBytes`: 16 MiB. */
export const DEFAULT_MAX_OUTGOING_FRAME_BYTES = 16 * 1024 * 1024;

// Chunks of a stream that are ready together are joined into frames of up
// to this size (a frame per 10-byte chunk would spend more on headers and
// per-frame work than on data).
const COALESCE_BYTES = 64 * 1024;
// Microtask hops a stream's next chunk may take to count as ready now.
const READY_HOPS = 8;
// A byte stream (a file's `readable`, a Blob's stream) is read into two
// buffers of this size, each reused once its frame is written: no buffer
// per chunk waiting for the garbage collector, so memory stays a few
// chunks whatever the message's size.
const BYOB_READ_BYTES = 64 * 1024;

const textEncoder = new TextEncoder();
// What TextEncoderStream makes of a lone surrogate: U+FFFD.
const REPLACEMENT_CHARACTER = new Uint8Array([0xef, 0xbf, 0xbd]);

/**
 * Anything `writable` sends as one message in fragments: a stream of
 * strings (text) or of bytes (binary), a `Blob` (binary), or a
 * {@linkcode MessageStream} (its `type` says which, also when it is empty).
 *
 * @example
 * ```ts
 * import type { StreamedMessage } from "@wstream/wstream";
 *
 * const text: StreamedMessage = ReadableStream.from(["Hel", "lo"]);
 * const binary: StreamedMessage = new Blob([new Uint8Array([1, 2, 3])]);
 * ```
 */
export type StreamedMessage =
  | ReadableStream<string>
  | ReadableStream<Uint8Array>
  | Blob
  | MessageStream;

/**
 * What `writable` sends: a `string` as a text message, any `BufferSource`
 * as a binary one, and a {@linkcode StreamedMessage} (a `ReadableStream`
 * of strings or bytes, a `Blob`, or a `MessageStream`) as one message in
 * fragments.
 *
 * @example
 * ```ts
 * import type { OutgoingMessage } from "@wstream/wstream";
 *
 * const messages: OutgoingMessage[] = [
 *   "text",
 *   new Uint8Array([1, 2]),
 *   ReadableStream.from(["one ", "message"]),
 * ];
 * ```
 */
export type OutgoingMessage = string | BufferSource | StreamedMessage;

/**
 * The size a socket's `writable` counts a message as: a string's length, a
 * buffer's bytes, and for a message sent from a stream, more than any limit
 * (so a pipe reads the next message only once this one is sent).
 *
 * @example
 * ```ts
 * import { outgoingSizeOf } from "./message_stream_sender.ts";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(outgoingSizeOf("abc"), 3);
 * assertEquals(outgoingSizeOf(new Blob([])), Number.MAX_SAFE_INTEGER);
 * ```
 *
 * @param chunk A message written to `writable`.
 * @returns Its size for the queue.
 */
export function outgoingSizeOf(chunk: OutgoingMessage): number {
  if (typeof chunk === "string") return chunk.length;
  if (isStreamedMessage(chunk)) return Number.MAX_SAFE_INTEGER;
  return chunk.byteLength;
}

/** What the sender drives: the socket's core and write queue. */
export interface FragmentTarget {
  /** Whether data frames may still be sent (no Close sent, not ended). */
  readonly sendable: boolean;
  /**
   * Queues one data frame.
   *
   * @returns `true` when the queued bytes view `payload`.
   */
  send(
    opcode: Opcode,
    payload: Uint8Array,
    rsv1: boolean,
    fin: boolean,
  ): boolean;
  /** Fails the socket with the error's close code. */
  fail(error: WebSocketError): void;
  /** Resolves once the queued bytes are under the backpressure limit. */
  backpressure(): void | Promise<void>;
  /** Resolves once everything queued so far is written. */
  whenWritten(): Promise<void>;
  /**
   * Sets (or, with `undefined`, clears) what to call when the socket ends,
   * so a source that never yields again is not waited for past it. (One
   * slot, not a promise: a reaction per message on a long-lived promise
   * would keep every message's reader until the socket ends.)
   */
  stopWhenEnded?(stop: (() => void) | undefined): void;
}

/**
 * Whether `chunk` is sent by {@linkcode sendStreamedMessage}.
 *
 * @example
 * ```ts
 * import { isStreamedMessage } from "./message_stream_sender.ts";
 * import { assert } from "@std/assert";
 *
 * assert(isStreamedMessage(new Blob([])));
 * assert(!isStreamedMessage("text"));
 * ```
 *
 * @param chunk What was written to `writable`.
 * @returns Whether it is a stream, a Blob or a message stream.
 */
export function isStreamedMessage(chunk: unknown): chunk is StreamedMessage {
  // The common chunks first: this runs for every message some sockets send.
  if (typeof chunk === "string" || ArrayBuffer.isView(chunk)) return false;
  if (chunk instanceof ReadableStream || chunk instanceof Blob) return true;
  if (typeof chunk !== "object" || chunk === null) return false;
  const { type, stream } = chunk as Partial<MessageStream>;
  return (type === "text" || type === "binary") &&
    stream instanceof ReadableStream;
}

function checkFrameBytes(maxFrameBytes: number): number {
  if (
    !(maxFrameBytes >= 1) ||
    (!Number.isInteger(maxFrameBytes) && maxFrameBytes !== Infinity)
  ) {
    throw new RangeError(
      `expected maxOutgoingFrameBytes to be an integer >= 1 or Infinity, found ${maxFrameBytes}`,
    );
  }
  return maxFrameBytes;
}

/**
 * Checks a `maxOutgoingFrameBytes` option.
 *
 * @example
 * ```ts
 * import { resolveOutgoingFrameBytes } from "./message_stream_sender.ts";
 * import { assertEquals, assertThrows } from "@std/assert";
 *
 * assertEquals(resolveOutgoingFrameBytes(undefined), 16 * 1024 * 1024);
 * assertThrows(() => resolveOutgoingFrameBytes(0), RangeError);
 * ```
 *
 * @param option The option as given.
 * @returns The frame size to use.
 * @throws {RangeError} unless an integer >= 1 or `Infinity`.
 */
export function resolveOutgoingFrameBytes(option: number | undefined): number {
  return checkFrameBytes(option ?? DEFAULT_MAX_OUTGOING_FRAME_BYTES);
}

/**
 * The error a socket fails with when a message it began to send can never
 * end (its source failed, or ended inside it): 1011, so that the peer does
 * not take the part sent for the whole message.
 *
 * @example
 * ```ts
 * import { unfinishedMessageError } from "./message_stream_sender.ts";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(unfinishedMessageError("disk error").closeCode, 1011);
 * ```
 *
 * @param cause What ended the message's source.
 * @returns The error, with close code 1011.
 */
export function unfinishedMessageError(cause: string): WebSocketError {
  return new WebSocketError(
    `the message stream failed before its end (${cause}); the socket fails with 1011 so the peer does not take the part sent for the whole message`,
    { closeCode: CloseCode.InternalError },
  );
}

/**
 * Sends a payload in fragments of at most `maxFrameBytes` (RFC 6455
 * §5.4; one frame when it fits, an empty one for an empty payload), each queued once the connection took the one before it (down to
 * the backpressure limit), so control frames go out between them.
 *
 * @example
 * ```ts
 * import { sendInFragments } from "./message_stream_sender.ts";
 * import { Opcode } from "./frame.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const frames: [number, number, boolean, boolean][] = [];
 * await sendInFragments({
 *   sendable: true,
 *   send(opcode, payload, rsv1, fin) {
 *     frames.push([opcode, payload.length, rsv1, fin]);
 *     return false;
 *   },
 *   fail() {},
 *   backpressure() {},
 *   whenWritten: () => Promise.resolve(),
 * }, Opcode.Binary, new Uint8Array(5), false, 2);
 * assertEquals(frames, [[2, 2, false, false], [0, 2, false, false], [0, 1, false, true]]);
 * ```
 *
 * @param target The socket's core and queue.
 * @param opcode Text or Binary, or Continuation to go on with a message.
 * @param payload The message's payload (compressed, when `rsv1`).
 * @param rsv1 Whether it is compressed (RFC 7692 §6: RSV1 on the first frame).
 * @param maxFrameBytes The largest fragment.
 * @param options Whether the last fragment ends the message, and whether to
 * wait for the bytes to be written.
 * @returns Once every fragment is queued and, when a fragment views
 * `payload`, written (the caller may then reuse its buffer).
 * @throws {TypeError} when the socket closes before the last fragment.
 */
export async function sendInFragments(
  target: FragmentTarget,
  opcode: Opcode,
  payload: Uint8Array,
  rsv1: boolean,
  maxFrameBytes: number,
  { fin = true, waitForWrite = true }: FragmentOptions = {},
): Promise<void> {
  let viewed = false;
  let start = 0;
  do {
    assertStillSendable(target);
    const end = Math.min(start + maxFrameBytes, payload.length);
    viewed = target.send(
      start === 0 ? opcode : Opcode.Continuation,
      payload.subarray(start, end),
      rsv1 && start === 0,
      fin && end === payload.length,
    ) || viewed;
    start = end;
    await target.backpressure();
  } while (start < payload.length);
  if (viewed && waitForWrite) await target.whenWritten();
}

/** How {@linkcode sendInFragments} ends. */
export interface FragmentOptions {
  /** Whether its last fragment ends the message. Default `true`. */
  fin?: boolean;
  /**
   * Whether to wait, when a fragment views the payload, until it is
   * written (so the caller may reuse its buffer). Default `true`.
   */
  waitForWrite?: boolean;
}

function assertStillSendable(target: FragmentTarget): void {
  if (!target.sendable) {
    throw new TypeError(
      "expected an open WebSocket to finish sending the message, found it closing or closed: the rest of the message was not sent",
    );
  }
}

// Whether `promise` settles within a few microtask hops: a stream's next
// chunk that is ready now, not one the source still waits for.
async function settlesSoon(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  promise.then(() => settled = true, () => settled = true);
  for (let hop = 0; hop < READY_HOPS && !settled; hop++) await null;
  return settled;
}

/**
 * Turns stream chunks into the message's bytes: the first chunk fixes the
 * type (unless given); strings are encoded as `TextEncoderStream` does, a
 * surrogate pair split across two chunks included.
 */
class ChunkEncoder {
  type: "text" | "binary" | undefined;
  // A high surrogate that ended the last string chunk.
  #heldSurrogate = "";

  constructor(type: "text" | "binary" | undefined) {
    this.type = type;
  }

  encode(chunk: unknown): Uint8Array {
    if (typeof chunk === "string") {
      this.#expect("text", "a string");
      let text = this.#heldSurrogate + chunk;
      this.#heldSurrogate = "";
      const last = text.charCodeAt(text.length - 1);
      if (last >= 0xd800 && last <= 0xdbff) {
        this.#heldSurrogate = text[text.length - 1];
        text = text.slice(0, -1);
      }
      return textEncoder.encode(text);
    }
    if (ArrayBuffer.isView(chunk)) {
      this.#expect("binary", "bytes");
      return new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    }
    if (chunk instanceof ArrayBuffer) {
      this.#expect("binary", "bytes");
      return new Uint8Array(chunk);
    }
    throw new TypeError(
      `expected the message stream's chunks to be strings or bytes, found ${
        chunk === null ? "null" : typeof chunk
      }`,
    );
  }

  // The bytes a lone high surrogate at the very end becomes.
  finish(): Uint8Array | undefined {
    return this.#heldSurrogate === "" ? undefined : REPLACEMENT_CHARACTER;
  }

  #expect(type: "text" | "binary", found: string): void {
    this.type ??= type;
    if (this.type !== type) {
      throw new TypeError(
        `expected every chunk of a ${this.type} message stream to be ${
          this.type === "text" ? "a string" : "bytes"
        }, found ${found}`,
      );
    }
  }
}

/**
 * Sends a {@linkcode StreamedMessage} as one message: a frame per chunk
 * (chunks ready together joined up to 64 KiB, chunks over `maxFrameBytes`
 * split), compressed as it goes when `deflate` can compress fragments (RFC
 * 7692 §6.1). A stream's type comes from its first chunk (strings: text;
 * bytes: binary; an empty stream is an empty binary message), a Blob is
 * binary, a {@linkcode MessageStream} says its type.
 *
 * If the source errors (or yields a chunk of the wrong kind), the socket
 * fails with 1011 (Internal Error): the peer sees the Close before the
 * message's last frame, so it never takes the part sent for the whole
 * message. If the socket closes meanwhile, the source is cancelled.
 *
 * @example
 * ```ts
 * import { sendStreamedMessage } from "./message_stream_sender.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const frames: [number, string, boolean][] = [];
 * await sendStreamedMessage({
 *   sendable: true,
 *   send(opcode, payload, _rsv1, fin) {
 *     frames.push([opcode, new TextDecoder().decode(payload), fin]);
 *     return false;
 *   },
 *   fail() {},
 *   backpressure() {},
 *   whenWritten: () => Promise.resolve(),
 * }, ReadableStream.from(["Hello, ", "world"]), undefined, 1024);
 * // Both chunks were ready at once: one frame, then the empty final one.
 * assertEquals(frames, [[1, "Hello, world", false], [0, "", true]]);
 * ```
 *
 * @param target The socket's core and queue.
 * @param message What to send.
 * @param deflate The connection's compression, if negotiated.
 * @param maxFrameBytes The largest frame payload.
 * @returns Once the last frame is queued (under the backpressure limit).
 * @throws {WebSocketError} (1011) when the source failed; {TypeError} when
 * the socket closed before the message ended.
 */
export async function sendStreamedMessage(
  target: FragmentTarget,
  message: StreamedMessage,
  deflate: MessageDeflate | undefined,
  maxFrameBytes: number,
): Promise<void> {
  let stream: ReadableStream<unknown>;
  let type: "text" | "binary" | undefined;
  if (message instanceof ReadableStream) stream = message;
  else if (message instanceof Blob) {
    [stream, type] = [message.stream(), "binary"];
  } else [stream, type] = [message.stream, message.type];
  const sender = new FragmentSender(
    target,
    new ChunkEncoder(type),
    deflate?.deflateFragment?.bind(deflate),
    maxFrameBytes,
  );
  const byob = byobReaderOf(stream);
  const reader = byob ?? stream.getReader();
  // A read the socket's end interrupts comes back done; sending the last
  // frame then fails as the socket is closed.
  target.stopWhenEnded?.(() => {
    reader.cancel(
      new TypeError("the WebSocket ended before the message was sent"),
    ).catch(() => {});
  });
  try {
    if (byob) await sendByteStream(byob, sender);
    else await sendChunks(reader as ReadableStreamDefaultReader, sender);
    await sender.flush(true);
  } catch (error) {
    if (!target.sendable) {
      // The socket closed (or failed) under the message: stop reading.
      reader.cancel(error).catch(() => {});
      throw error;
    }
    const failure = unfinishedMessageError(
      error instanceof Error ? error.message : String(error),
    );
    reader.cancel(failure).catch(() => {});
    target.fail(failure);
    throw failure;
  } finally {
    target.stopWhenEnded?.(undefined);
    reader.releaseLock();
  }
}

// A reader that fills buffers we give it, when `stream` is a byte stream.
function byobReaderOf(
  stream: ReadableStream<unknown>,
): ReadableStreamBYOBReader | undefined {
  try {
    return (stream as ReadableStream<Uint8Array>).getReader({ mode: "byob" });
  } catch {
    return undefined; // Not a byte stream.
  }
}

// Sends a stream's chunks: those ready together are joined.
async function sendChunks(
  reader: ReadableStreamDefaultReader<unknown>,
  sender: FragmentSender,
): Promise<void> {
  let next = reader.read();
  while (true) {
    const result = await next;
    if (result.done) return;
    sender.add(result.value);
    next = reader.read();
    if (sender.pendingBytes >= COALESCE_BYTES || !(await settlesSoon(next))) {
      await sender.flush(false);
    }
  }
}

// Sends a byte stream read into two buffers in turn: one is read into
// while the other's frame is sent, and a buffer is read into again only
// once its frame is written.
async function sendByteStream(
  reader: ReadableStreamBYOBReader,
  sender: FragmentSender,
): Promise<void> {
  let spare = new Uint8Array(BYOB_READ_BYTES);
  let next = reader.read(new Uint8Array(BYOB_READ_BYTES));
  while (true) {
    const result = await next;
    if (result.done) return;
    const bytes = result.value;
    next = reader.read(spare);
    sender.add(bytes);
    await sender.flush(false, true);
    // The read gave back the buffer it filled (moved to a new ArrayBuffer).
    spare = new Uint8Array(bytes.buffer);
  }
}

/** The frames of one streamed message, in order. */
class FragmentSender {
  readonly #target: FragmentTarget;
  readonly #encoder: ChunkEncoder;
  readonly #deflate:
    | ((bytes: Uint8Array, fin: boolean) => Promise<Uint8Array>)
    | undefined;
  readonly #maxFrameBytes: number;
  #pending: Uint8Array[] = [];
  pendingBytes = 0;
  #first = true;

  constructor(
    target: FragmentTarget,
    encoder: ChunkEncoder,
    deflate:
      | ((bytes: Uint8Array, fin: boolean) => Promise<Uint8Array>)
      | undefined,
    maxFrameBytes: number,
  ) {
    this.#target = target;
    this.#encoder = encoder;
    this.#deflate = deflate;
    this.#maxFrameBytes = maxFrameBytes;
  }

  add(chunk: unknown): void {
    const bytes = this.#encoder.encode(chunk);
    if (bytes.length === 0) return;
    this.#pending.push(bytes);
    this.pendingBytes += bytes.length;
  }

  // Sends what is pending: small chunks joined, each large one on its own;
  // with `fin`, the message's last frame (empty when nothing is pending).
  // With `reused`, returns only once the chunks' frames are written.
  async flush(fin: boolean, reused = false): Promise<void> {
    const tail = fin ? this.#encoder.finish() : undefined;
    if (tail) this.#pending.push(tail);
    const pieces = joinSmall(this.#pending);
    this.#pending = [];
    this.pendingBytes = 0;
    if (fin && pieces.length === 0) pieces.push(new Uint8Array(0));
    for (let i = 0; i < pieces.length; i++) {
      await this.#sendPiece(pieces[i], fin && i === pieces.length - 1, reused);
    }
  }

  async #sendPiece(
    bytes: Uint8Array,
    fin: boolean,
    reused: boolean,
  ): Promise<void> {
    const target = this.#target;
    assertStillSendable(target);
    const compressed = this.#deflate !== undefined;
    const payload = compressed ? await this.#deflate!(bytes, fin) : bytes;
    const opcode = this.#first
      ? (this.#encoder.type === "text" ? Opcode.Text : Opcode.Binary)
      : Opcode.Continuation;
    // RFC 7692 §6.1: RSV1 on the message's first frame only.
    const rsv1 = compressed && this.#first;
    this.#first = false;
    await sendInFragments(target, opcode, payload, rsv1, this.#maxFrameBytes, {
      fin,
      waitForWrite: false,
    });
    // A buffer read into again waits until its frame is written, also when
    // the frame is a copy (a client's masked frame, a compressed one): the
    // message then holds two chunks, not up to `maxBufferedBytes` of copies
    // (1 MiB by default, which the kernel's socket buffer makes useless).
    if (reused) await target.whenWritten();
  }
}

// Joins runs of chunks under COALESCE_BYTES into one buffer of up to that
// size; larger chunks stay as they are (no copy).
function joinSmall(chunks: Uint8Array[]): Uint8Array[] {
  if (chunks.length <= 1) return chunks;
  const pieces: Uint8Array[] = [];
  let run: Uint8Array[] = [];
  let runBytes = 0;
  const endRun = () => {
    if (run.length === 1) pieces.push(run[0]);
    else if (run.length > 1) {
      const joined = new Uint8Array(runBytes);
      let offset = 0;
      for (const chunk of run) {
        joined.set(chunk, offset);
        offset += chunk.length;
      }
      pieces.push(joined);
    }
    run = [];
    runBytes = 0;
  };
  for (const chunk of chunks) {
    if (chunk.length >= COALESCE_BYTES) {
      endRun();
      pieces.push(chunk);
      continue;
    }
    if (runBytes + chunk.length > COALESCE_BYTES) endRun();
    run.push(chunk);
    runBytes += chunk.length;
  }
  endRun();
  return pieces;
}
