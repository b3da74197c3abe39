/**
 * The data path of permessage-deflate (RFC 7692 §7.2): compressing the
 * messages this end sends and decompressing those the peer sends, with the
 * parameters negotiated in `permessage_deflate.ts`, as pure code without
 * sockets.
 *
 * Engine: `node:zlib` streams, not `CompressionStream("deflate-raw")`.
 * `CompressionStream` cannot flush without ending its stream (no
 * `Z_SYNC_FLUSH`), so it cannot keep a context across messages (context
 * takeover, RFC 7692 §7.1.1), and it cannot set the window bits that
 * `client_max_window_bits` / `server_max_window_bits` impose on a sender. It
 * is not faster either: `deno task bench bench/deflate_bench.ts` (Deno
 * 2.9.6, 64 distinct 16 KiB JSON-like messages, a shared 2-CPU machine, so
 * the figures are rough) measured deflate at about 400 µs a message for
 * both, inflate at 120-180 µs for `DecompressionStream` against 80-120 µs
 * for a `node:zlib` inflater with context takeover, and a whole round trip
 * at par. Context takeover also makes the messages about 9 % smaller on the
 * wire (215,312 against 237,647 bytes for the 64 messages). Deno runs the
 * zlib work of these streams on the main thread, as it does for npm `ws`.
 *
 * @module
 */

import type { MessageDeflate } from "./socket_options.ts";
import type { MessageInflater } from "./message_assembler.ts";
import type { DeflateRaw, InflateRaw } from "node:zlib";
import type { Buffer } from "node:buffer";
import { WebSocketError } from "./websocket_error.ts";
import { loadedZlib, loadZlib, type ZlibModule } from "./zlib_module.ts";
import {
  allowSharedCompression,
  withoutSyncFlushTail,
} from "./shared_deflate.ts";
import {
  checkDeflateOptions,
  type NegotiatedDeflate,
  type PerMessageDeflateOptions,
} from "./permessage_deflate.ts";

// zlib.constants, known before node:zlib is loaded.
const Z_SYNC_FLUSH = 2;
const Z_RLE = 3;
const Z_DEFAULT_STRATEGY = 0;

// RFC 7692 §7.2.1 / §7.2.2: the end of a sync flush, removed by the sender
// and appended by the receiver.
const SYNC_FLUSH_TAIL = new Uint8Array([0x00, 0x00, 0xff, 0xff]);

// Inflater output comes in chunks of this size; the size limit is checked
// after each, so at most this much is inflated past maxBytes.
const INFLATE_CHUNK_BYTES = 64 * 1024;

function closedError(): WebSocketError {
  return new WebSocketError(
    "permessage-deflate was closed (the connection ended)",
    { closeCode: 1006 },
  );
}

/** Runs async operations one after the other, so that misuse cannot interleave them. */
class Serializer {
  #tail: Promise<unknown> = Promise.resolve();
  #pending = 0;

  run<T>(operation: () => Promise<T>): Promise<T> {
    const result = this.#pending === 0
      ? operation()
      : this.#tail.then(operation);
    this.#pending++;
    const settled = result.then(
      () => this.#pending--,
      () => this.#pending--,
    );
    this.#tail = settled;
    return result;
  }
}

/**
 * Joins zlib's output chunks. A lone chunk is returned as a view when it
 * fills most of zlib's output buffer, and copied otherwise, so that a small
 * message kept by the application does not keep a 64 KiB buffer alive.
 */
function concat(chunks: Uint8Array[], length: number): Uint8Array {
  if (chunks.length === 1) {
    const [chunk] = chunks;
    return chunk.byteLength * 2 >= chunk.buffer.byteLength
      ? new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength)
      : new Uint8Array(chunk);
  }
  const result = new Uint8Array(length);
  let offset = 0;
  for (const chunk of chunks) {
    result.set(chunk, offset);
    offset += chunk.length;
  }
  return result;
}

/**
 * Keeps a zlib stream's late errors (after an operation settled, or after
 * close) from becoming uncaught: each operation listens for its own.
 */
function withErrorGuard<T extends InflateRaw | DeflateRaw>(
  stream: T,
): T {
  stream.on("error", () => {});
  return stream;
}

/**
 * One direction's zlib stream, made when first needed, with what ends it:
 * the state and failure handling the inflater and the deflater share.
 * Operations run one after the other (`run`); each `begin`s its write and
 * settles exactly once, with its output or with a failure that ends the
 * stream for good (the peer's context no longer matches ours).
 */
class ZlibSession<S extends InflateRaw | DeflateRaw> {
  readonly #serializer = new Serializer();
  stream: S | undefined;
  failure: WebSocketError | undefined;
  /** Fails the operation in flight, if any. */
  #abort: ((error: WebSocketError) => void) | undefined;

  run<T>(operation: () => Promise<T>): Promise<T> {
    return this.#serializer.run(operation);
  }

  close(): void {
    if (this.failure) return;
    const error = closedError();
    if (this.#abort) return this.#abort(error);
    this.failure = error;
    this.stream?.close();
    this.stream = undefined;
  }

  /**
   * Listens to `stream` for one operation. `onData` sees each output chunk
   * (and may fail the operation); a zlib error becomes `describe(error)`.
   * The caller writes, then calls `written` from the write's callback: it
   * returns the output once, or undefined if the operation already settled.
   */
  begin(
    stream: S,
    reject: (error: WebSocketError) => void,
    describe: (error: Error) => WebSocketError,
    onData?: (chunk: Buffer, operation: ZlibOperation) => void,
  ): ZlibOperation {
    const operation: ZlibOperation = {
      chunks: [],
      length: 0,
      settled: false,
      fail: (error) => {
        cleanUp();
        this.failure = error;
        this.stream = undefined;
        stream.close();
        reject(error);
      },
      written: (error) => {
        if (operation.settled) return undefined;
        if (error) return void onError(error);
        // zlib reports bad data by destroying the stream, calling this back
        // without the error and emitting "error" next: onError settles.
        if (stream.destroyed) return undefined;
        cleanUp();
        return concat(operation.chunks, operation.length);
      },
    };
    const cleanUp = () => {
      operation.settled = true;
      this.#abort = undefined;
      stream.off("data", listenData);
      stream.off("error", onError);
    };
    const listenData = (chunk: Buffer) => {
      if (operation.settled) return;
      if (onData) return onData(chunk, operation);
      operation.chunks.push(chunk);
      operation.length += chunk.length;
    };
    const onError = (error: Error) => {
      if (!operation.settled) operation.fail(describe(error));
    };
    this.#abort = operation.fail;
    stream.on("data", listenData);
    stream.on("error", onError);
    return operation;
  }
}

/** One inflate or deflate in flight on a {@linkcode ZlibSession}. */
interface ZlibOperation {
  readonly chunks: Uint8Array[];
  length: number;
  settled: boolean;
  /** Ends the operation and the stream with `error`. */
  fail(error: WebSocketError): void;
  /** From the write's callback: the output, or undefined if settled. */
  written(error?: Error | null): Uint8Array | undefined;
}

class ZlibInflater implements MessageInflater {
  readonly #windowBits: number;
  readonly #noContextTakeover: boolean;
  readonly #session = new ZlibSession<InflateRaw>();
  /** The peer ended its DEFLATE stream (a block with BFINAL set). */
  #ended = false;
  #messageBytes = 0;
  #messageInputBytes = 0;

  constructor(windowBits: number, noContextTakeover: boolean) {
    // A zlib peer asked for an 8-bit window compresses with 9 bits (zlib
    // cannot do 8 in raw deflate, see ZlibDeflater), so inflate with at
    // least 9: a larger inflate window accepts every smaller one.
    this.#windowBits = Math.max(windowBits, 9);
    this.#noContextTakeover = noContextTakeover;
  }

  inflate(
    payload: Uint8Array,
    fin: boolean,
    maxBytes: number,
  ): Promise<Uint8Array> {
    return this.#session.run(() => this.#inflate(payload, fin, maxBytes));
  }

  close(): void {
    this.#session.close();
  }

  #newStream(zlib: ZlibModule): InflateRaw {
    const stream = withErrorGuard(zlib.createInflateRaw({
      windowBits: this.#windowBits,
      chunkSize: INFLATE_CHUNK_BYTES,
      flush: Z_SYNC_FLUSH,
    }));
    stream.on("end", () => {
      if (this.#session.stream === stream) this.#ended = true;
    });
    return stream;
  }

  #inflate(
    payload: Uint8Array,
    fin: boolean,
    maxBytes: number,
  ): Promise<Uint8Array> {
    const session = this.#session;
    if (session.failure) return Promise.reject(session.failure);
    // node:zlib is loaded by the first socket that negotiates
    // permessage-deflate (see zlib_module.ts).
    const zlib = loadedZlib();
    if (zlib === undefined) {
      return loadZlib().then(() => this.#inflate(payload, fin, maxBytes));
    }
    this.#messageInputBytes += payload.length;
    if (fin && this.#messageInputBytes === 0) {
      // A message without a single compressed byte is empty; 00 00 ff ff
      // alone would not inflate (RFC 7692 §7.2.3.6 sends 0x00 instead).
      return Promise.resolve(new Uint8Array());
    }
    const stream = session.stream ??= this.#newStream(zlib);
    return new Promise((resolve, reject) => {
      const operation = session.begin(
        stream,
        reject,
        // RFC 7692 §6.2 / §8: data that does not inflate fails the connection.
        (error) =>
          new WebSocketError(
            `Invalid permessage-deflate data: the compressed message does not inflate (${error.message})`,
            { closeCode: 1002 },
          ),
        (chunk, operation) => {
          this.#messageBytes += chunk.length;
          if (this.#messageBytes > maxBytes) {
            // Stop here: closing the stream discards the input not yet inflated.
            return operation.fail(
              new WebSocketError(
                `The compressed message inflates to more than maxMessageBytes (${maxBytes} bytes); raise maxMessageBytes to accept larger messages`,
                { closeCode: 1009 },
              ),
            );
          }
          operation.chunks.push(chunk);
          operation.length += chunk.length;
        },
      );
      const done = (error?: Error | null) => {
        const output = operation.written(error);
        if (output === undefined) return;
        if (fin) {
          this.#messageBytes = 0;
          this.#messageInputBytes = 0;
          if (this.#ended) {
            // RFC 7692 §7.2.3: after a block with BFINAL set, the next
            // message starts a new DEFLATE stream.
            this.#ended = false;
            session.stream = undefined;
            stream.close();
          } else if (this.#noContextTakeover) {
            // RFC 7692 §7.1.1: no context takeover, every message on its own.
            stream.reset();
          }
        }
        resolve(output);
      };
      if (!fin) {
        stream.write(payload, done);
      } else if (payload.length <= INFLATE_CHUNK_BYTES) {
        // RFC 7692 §7.2.2: append 00 00 ff ff to the message's payload.
        const input = new Uint8Array(payload.length + 4);
        input.set(payload);
        input.set(SYNC_FLUSH_TAIL, payload.length);
        stream.write(input, done);
      } else {
        stream.write(payload);
        stream.write(SYNC_FLUSH_TAIL, done);
      }
    });
  }
}

class ZlibDeflater {
  readonly #windowBits: number;
  readonly #strategy: number;
  readonly #level: number;
  readonly #noContextTakeover: boolean;
  readonly #session = new ZlibSession<DeflateRaw>();

  constructor(windowBits: number, noContextTakeover: boolean, level: number) {
    // zlib cannot compress raw deflate with an 8-bit window (it rejects or
    // silently uses 9, whose matches reach 512 bytes back: too far for a peer
    // with a true 256-byte window). With 8 we use 9 and the Z_RLE strategy,
    // whose matches all have distance 1, valid under any window.
    this.#windowBits = Math.max(windowBits, 9);
    this.#strategy = windowBits === 8 ? Z_RLE : Z_DEFAULT_STRATEGY;
    this.#level = level;
    this.#noContextTakeover = noContextTakeover;
  }

  // `fin` false: a piece of a message sent in fragments (RFC 7692 §6.1),
  // flushed but kept whole, and the context kept for the next piece.
  deflate(message: Uint8Array, fin = true): Promise<Uint8Array> {
    return this.#session.run(() => this.#deflate(message, fin));
  }

  close(): void {
    this.#session.close();
  }

  #deflate(message: Uint8Array, fin: boolean): Promise<Uint8Array> {
    const session = this.#session;
    // After a failure the peer's inflater no longer matches our context.
    if (session.failure) return Promise.reject(session.failure);
    const zlib = loadedZlib();
    if (zlib === undefined) {
      return loadZlib().then(() => this.#deflate(message, fin));
    }
    const stream = session.stream ??= withErrorGuard(zlib.createDeflateRaw({
      windowBits: this.#windowBits,
      strategy: this.#strategy,
      level: this.#level,
      // Every write ends with a sync flush: the message ends on a byte
      // boundary with 00 00 ff ff (RFC 7692 §7.2.1).
      flush: Z_SYNC_FLUSH,
    }));
    return new Promise((resolve, reject) => {
      const operation = session.begin(
        stream,
        reject,
        (error) =>
          new WebSocketError(
            `permessage-deflate could not compress a message: ${error.message}`,
            { closeCode: 1011 },
          ),
      );
      stream.write(message, (error?: Error | null) => {
        const output = operation.written(error);
        if (output === undefined) return;
        // A piece ending in a sync flush may stay whole: an empty stored
        // block mid-message is valid DEFLATE.
        if (!fin) return resolve(output);
        // RFC 7692 §7.1.1: no context takeover, every message on its own.
        if (this.#noContextTakeover) stream.reset();
        resolve(withoutSyncFlushTail(output));
      });
    });
  }
}

/**
 * Builds both directions of permessage-deflate for one connection from the
 * agreed parameters: an inflater for what the peer sends and a deflater for
 * what this end sends, each keeping its context across messages unless no
 * context takeover was agreed for that direction, and each honouring the
 * window bits agreed for its sender.
 *
 * @example
 * ```ts
 * import { acceptDeflateOffer } from "./permessage_deflate.ts";
 * import { createMessageDeflate } from "./permessage_deflate_codec.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const accepted = acceptDeflateOffer("permessage-deflate; client_max_window_bits", {})!;
 * const server = createMessageDeflate(accepted.params, "server", { threshold: 0 });
 * const payload = await server.deflate(new TextEncoder().encode("Hello"));
 * assertEquals(payload, new Uint8Array([0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]));
 * ```
 *
 * @param params The agreed parameters.
 * @param role Which end this is.
 * @param options `threshold` and `level` (the negotiation options are
 * ignored here).
 * @returns The deflater and inflater of the connection.
 * @throws {RangeError} When an option or parameter is out of range.
 */
export function createMessageDeflate(
  params: NegotiatedDeflate,
  role: "client" | "server",
  options: PerMessageDeflateOptions = {},
): MessageDeflate & { close(): void } {
  checkDeflateOptions(options);
  checkDeflateOptions({
    serverMaxWindowBits: params.serverMaxWindowBits,
    clientMaxWindowBits: params.clientMaxWindowBits,
  });
  // Loaded now rather than at the first message: a hub's shared compressed
  // frames (prepared_message.ts) need it synchronously.
  loadZlib().catch(() => {});
  const threshold = options.threshold ?? 1024;
  const isServer = role === "server";
  // This end's sending direction: its deflater, and shared compression.
  const sendWindowBits = isServer
    ? params.serverMaxWindowBits
    : params.clientMaxWindowBits;
  const sendNoContextTakeover = isServer
    ? params.serverNoContextTakeover
    : params.clientNoContextTakeover;
  const deflater = new ZlibDeflater(
    sendWindowBits,
    sendNoContextTakeover,
    options.level ?? 6,
  );
  const inflater = new ZlibInflater(
    isServer ? params.clientMaxWindowBits : params.serverMaxWindowBits,
    isServer ? params.clientNoContextTakeover : params.serverNoContextTakeover,
  );
  const result = {
    inflater,
    deflate(message: Uint8Array): Promise<Uint8Array> | undefined {
      if (message.length < threshold) return undefined;
      return deflater.deflate(message);
    },
    deflateFragment(bytes: Uint8Array, fin: boolean): Promise<Uint8Array> {
      return deflater.deflate(bytes, fin);
    },
    close(): void {
      deflater.close();
      inflater.close();
    },
  };
  if (sendNoContextTakeover) allowSharedCompression(result, sendWindowBits);
  return result;
}
