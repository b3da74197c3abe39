/**
 * permessage-deflate (RFC 7692): negotiation of its four parameters and the
 * compression of messages, as pure code without sockets.
 *
 * Negotiation: a client sends {@linkcode createDeflateOffer} and checks the
 * answer with {@linkcode acceptDeflateResponse}; a server answers an offer
 * with {@linkcode acceptDeflateOffer}. Both sides then build the data path
 * with {@linkcode createMessageDeflate} from the agreed
 * {@linkcode NegotiatedDeflate}.
 *
 * Engine: `node:zlib` streams, not `CompressionStream("deflate-raw")`.
 * `CompressionStream` cannot flush without ending its stream (no
 * `Z_SYNC_FLUSH`), so it cannot keep a context across messages (context
 * takeover, RFC 7692 §7.1.1), and it cannot set the window bits that
 * `client_max_window_bits` / `server_max_window_bits` impose on a sender. It
 * is not faster either: `deno task bench bench/deflate_bench.ts` (Deno
 * 2.9.6, 64 distinct 16 KiB JSON-like messages, a shared 2-CPU machine, so
 * the figures are rough) measured deflate at about 400 µs a message for
 * both, inflate at 120–180 µs for `DecompressionStream` against 80–120 µs
 * for a `node:zlib` inflater with context takeover, and a whole round trip
 * at par. Context takeover also makes the messages about 9 % smaller on the
 * wire (215,312 against 237,647 bytes for the 64 messages). Deno runs the
 * zlib work of these streams on the main thread, as it does for npm `ws`.
 *
 * @module
 */

import type { MessageDeflate } from "./connection.ts";
import type { MessageInflater } from "./message_assembler.ts";
import zlib from "node:zlib";
import type { Buffer } from "node:buffer";
import { type ExtensionParam, parseExtensions } from "./extension_header.ts";
import { WebSocketError } from "./websocket_error.ts";
import {
  allowSharedCompression,
  withoutSyncFlushTail,
} from "./shared_deflate.ts";

/** The extension token (RFC 7692 §5). */
export const PERMESSAGE_DEFLATE = "permessage-deflate";

/**
 * Options of permessage-deflate, taken by `connect()` and `serve()` as
 * `compression` (`true`, the default, means `{}`; `false` turns it off).
 *
 * On a client the parameters are what it offers (and requires); on a server
 * they are what it requires of every offer it accepts.
 *
 * @example Compress only messages of 4 KiB and more, without context takeover
 * ```ts
 * import type { PerMessageDeflateOptions } from "@wstream/wstream";
 *
 * const compression: PerMessageDeflateOptions = {
 *   threshold: 4096,
 *   serverNoContextTakeover: true,
 *   clientNoContextTakeover: true,
 * };
 * ```
 */
export interface PerMessageDeflateOptions {
  /**
   * The server compresses each message on its own (RFC 7692 §7.1.1.1),
   * saving it the memory of a compression context between messages.
   * Client: offers `server_no_context_takeover` and fails the connection if
   * the server does not agree. Server: always answers with it.
   */
  serverNoContextTakeover?: boolean;
  /**
   * The client compresses each message on its own (RFC 7692 §7.1.1.2).
   * Client: offers `client_no_context_takeover` (and does so whatever the
   * answer). Server: always answers with it, so clients must.
   */
  clientNoContextTakeover?: boolean;
  /**
   * The largest LZ77 window, in bits (8–15), the server may compress with
   * (RFC 7692 §7.1.2.1). Client: offers `server_max_window_bits` and fails
   * the connection on an answer without it or with a larger value. Server:
   * compresses with at most this window. Default 15.
   */
  serverMaxWindowBits?: number;
  /**
   * The largest LZ77 window, in bits (8–15), the client may compress with
   * (RFC 7692 §7.1.2.2). Client: offers `client_max_window_bits` with this
   * value (without a value, as browsers do, when unset). Server: answers
   * with at most this value, and declines offers without
   * `client_max_window_bits` when it is below 15. Default 15.
   */
  clientMaxWindowBits?: number;
  /**
   * Messages shorter than this many bytes are sent uncompressed, where
   * compression saves little and costs time. Default 1024.
   */
  threshold?: number;
  /** The zlib compression level, 0 (none) to 9 (smallest). Default 6. */
  level?: number;
}

/**
 * The parameters both ends agreed on (plain data, RFC 7692 §7.1). A window
 * of 15 bits means no limit was negotiated.
 *
 * @example
 * ```ts
 * import type { NegotiatedDeflate } from "./permessage_deflate.ts";
 *
 * const browserDefault: NegotiatedDeflate = {
 *   serverNoContextTakeover: false,
 *   clientNoContextTakeover: false,
 *   serverMaxWindowBits: 15,
 *   clientMaxWindowBits: 15,
 * };
 * ```
 */
export interface NegotiatedDeflate {
  /** The server compresses every message with a fresh context. */
  serverNoContextTakeover: boolean;
  /** The client compresses every message with a fresh context. */
  clientNoContextTakeover: boolean;
  /** The largest window (8–15 bits) the server compresses with. */
  serverMaxWindowBits: number;
  /** The largest window (8–15 bits) the client compresses with. */
  clientMaxWindowBits: number;
}

/**
 * Turns the `compression` option of `connect()` / `serve()` into options,
 * or `undefined` when compression is off.
 *
 * @example
 * ```ts
 * import { resolveCompression } from "./permessage_deflate.ts";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(resolveCompression(undefined), {});
 * assertEquals(resolveCompression(false), undefined);
 * assertEquals(resolveCompression({ threshold: 0 }), { threshold: 0 });
 * ```
 *
 * @param compression The option as the user gave it (default `true`).
 * @returns The options, checked, or `undefined` for `false`.
 * @throws {RangeError} When an option is out of range.
 */
export function resolveCompression(
  compression: boolean | PerMessageDeflateOptions | undefined,
): PerMessageDeflateOptions | undefined {
  if (compression === false) return undefined;
  const options = compression === true || compression === undefined
    ? {}
    : compression;
  checkOptions(options);
  return options;
}

function checkOptions(options: PerMessageDeflateOptions): void {
  for (const key of ["serverMaxWindowBits", "clientMaxWindowBits"] as const) {
    const bits = options[key];
    if (
      bits !== undefined && (!Number.isInteger(bits) || bits < 8 || bits > 15)
    ) {
      throw new RangeError(
        `Invalid permessage-deflate option ${key}: expected an integer from 8 to 15, found ${bits}`,
      );
    }
  }
  const { threshold, level } = options;
  if (threshold !== undefined && !(threshold >= 0)) {
    throw new RangeError(
      `Invalid permessage-deflate option threshold: expected a number of bytes >= 0, found ${threshold}`,
    );
  }
  if (
    level !== undefined && (!Number.isInteger(level) || level < 0 || level > 9)
  ) {
    throw new RangeError(
      `Invalid permessage-deflate option level: expected an integer from 0 to 9, found ${level}`,
    );
  }
}

/**
 * Builds the `Sec-WebSocket-Extensions` offer a client sends (RFC 7692 §5).
 * Like browsers, it always offers `client_max_window_bits`, so that a
 * server may limit the client's window.
 *
 * @example
 * ```ts
 * import { createDeflateOffer } from "./permessage_deflate.ts";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(createDeflateOffer({}), "permessage-deflate; client_max_window_bits");
 * assertEquals(
 *   createDeflateOffer({ serverNoContextTakeover: true, clientMaxWindowBits: 10 }),
 *   "permessage-deflate; server_no_context_takeover; client_max_window_bits=10",
 * );
 * ```
 *
 * @param options What to offer.
 * @returns The header value.
 * @throws {RangeError} When an option is out of range.
 */
export function createDeflateOffer(options: PerMessageDeflateOptions): string {
  checkOptions(options);
  const parts = [PERMESSAGE_DEFLATE];
  if (options.serverNoContextTakeover) parts.push("server_no_context_takeover");
  if (options.clientNoContextTakeover) parts.push("client_no_context_takeover");
  if (options.serverMaxWindowBits !== undefined) {
    parts.push(`server_max_window_bits=${options.serverMaxWindowBits}`);
  }
  parts.push(
    options.clientMaxWindowBits === undefined
      ? "client_max_window_bits"
      : `client_max_window_bits=${options.clientMaxWindowBits}`,
  );
  return parts.join("; ");
}

/** The parameters of one offer or response, as written. */
interface DeflateParams {
  serverNoContextTakeover: boolean;
  clientNoContextTakeover: boolean;
  serverMaxWindowBits?: number;
  /** `true`: present without a value (allowed in an offer only). */
  clientMaxWindowBits?: number | true;
}

// RFC 7692 §7.1.2: "a decimal integer value without leading zeroes between
// 8 to 15, inclusive".
const WINDOW_BITS = /^(?:[89]|1[0-5])$/;

/** Reads the parameters of one permessage-deflate element; throws Error on any it cannot accept. */
function readParams(params: ExtensionParam[], what: string): DeflateParams {
  const result: DeflateParams = {
    serverNoContextTakeover: false,
    clientNoContextTakeover: false,
  };
  const seen = new Set<string>();
  for (const [name, value] of params) {
    // RFC 7692 §7.1: an offer or response with a parameter twice is invalid.
    if (seen.has(name)) {
      throw new Error(
        `Invalid permessage-deflate ${what}: parameter ${name} appears twice`,
      );
    }
    seen.add(name);
    switch (name) {
      case "server_no_context_takeover":
      case "client_no_context_takeover":
        // RFC 7692 §7.1.1: these parameters have no value.
        if (value !== true) {
          throw new Error(
            `Invalid permessage-deflate ${what}: ${name} takes no value, found "${value}"`,
          );
        }
        if (name === "server_no_context_takeover") {
          result.serverNoContextTakeover = true;
        } else {
          result.clientNoContextTakeover = true;
        }
        break;
      case "server_max_window_bits":
      case "client_max_window_bits": {
        // RFC 7692 §7.1.2.2: only an offer's client_max_window_bits may come
        // without a value.
        if (value === true) {
          if (name === "client_max_window_bits" && what === "offer") {
            result.clientMaxWindowBits = true;
            break;
          }
          throw new Error(
            `Invalid permessage-deflate ${what}: ${name} needs a value from 8 to 15, found none`,
          );
        }
        if (!WINDOW_BITS.test(value)) {
          throw new Error(
            `Invalid permessage-deflate ${what}: ${name} must be an integer from 8 to 15 without leading zeros, found "${value}"`,
          );
        }
        if (name === "server_max_window_bits") {
          result.serverMaxWindowBits = Number(value);
        } else {
          result.clientMaxWindowBits = Number(value);
        }
        break;
      }
      default:
        // RFC 7692 §7.1: unknown parameters make an offer or response invalid.
        throw new Error(
          `Invalid permessage-deflate ${what}: unknown parameter ${name}`,
        );
    }
  }
  return result;
}

/**
 * Answers a client's `Sec-WebSocket-Extensions` offers as a server (RFC 7692
 * §5, §7.1): accepts the first permessage-deflate offer it can, and declines
 * offers with unknown, duplicate or invalid parameters, or (when
 * `clientMaxWindowBits` is set below 15) without `client_max_window_bits`.
 * A header that does not parse at all is declined as a whole.
 *
 * @example
 * ```ts
 * import { acceptDeflateOffer } from "./permessage_deflate.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const accepted = acceptDeflateOffer(
 *   "permessage-deflate; server_max_window_bits=10; client_max_window_bits, permessage-deflate",
 *   {},
 * );
 * assertEquals(accepted?.response, "permessage-deflate; server_max_window_bits=10");
 * assertEquals(accepted?.params.serverMaxWindowBits, 10);
 * assertEquals(acceptDeflateOffer("permessage-deflate; foo", {}), undefined);
 * ```
 *
 * @param headerValue The request's `Sec-WebSocket-Extensions` value (all
 * its lines joined with `, `).
 * @param options The server's requirements.
 * @returns The response header value and the agreed parameters, or
 * `undefined` when no offer is acceptable (the connection then goes
 * uncompressed).
 * @throws {RangeError} When an option is out of range.
 */
export function acceptDeflateOffer(
  headerValue: string,
  options: PerMessageDeflateOptions,
): { response: string; params: NegotiatedDeflate } | undefined {
  checkOptions(options);
  let extensions;
  try {
    extensions = parseExtensions(headerValue);
  } catch {
    return undefined;
  }
  for (const extension of extensions) {
    if (extension.name !== PERMESSAGE_DEFLATE) continue;
    let offer: DeflateParams;
    try {
      offer = readParams(extension.params, "offer");
    } catch {
      continue; // RFC 7692 §5.1: decline an offer with invalid parameters
    }
    const wantedClientBits = options.clientMaxWindowBits ?? 15;
    // RFC 7692 §7.1.2.2: without client_max_window_bits in the offer the
    // server cannot limit the client's window.
    if (offer.clientMaxWindowBits === undefined && wantedClientBits < 15) {
      continue;
    }
    const params: NegotiatedDeflate = {
      serverNoContextTakeover: offer.serverNoContextTakeover ||
        (options.serverNoContextTakeover ?? false),
      clientNoContextTakeover: offer.clientNoContextTakeover ||
        (options.clientNoContextTakeover ?? false),
      serverMaxWindowBits: Math.min(
        offer.serverMaxWindowBits ?? 15,
        options.serverMaxWindowBits ?? 15,
      ),
      clientMaxWindowBits: Math.min(
        typeof offer.clientMaxWindowBits === "number"
          ? offer.clientMaxWindowBits
          : 15,
        wantedClientBits,
      ),
    };
    const parts = [PERMESSAGE_DEFLATE];
    // RFC 7692 §7.1.1.1: an accepted server_no_context_takeover is echoed.
    if (params.serverNoContextTakeover) {
      parts.push("server_no_context_takeover");
    }
    if (params.clientNoContextTakeover) {
      parts.push("client_no_context_takeover");
    }
    // RFC 7692 §7.1.2.1: an offered server_max_window_bits must be answered
    // with the same or a smaller value.
    if (
      offer.serverMaxWindowBits !== undefined || params.serverMaxWindowBits < 15
    ) {
      parts.push(`server_max_window_bits=${params.serverMaxWindowBits}`);
    }
    if (
      typeof offer.clientMaxWindowBits === "number" ||
      params.clientMaxWindowBits < 15
    ) {
      parts.push(`client_max_window_bits=${params.clientMaxWindowBits}`);
    }
    return { response: parts.join("; "), params };
  }
  return undefined;
}

/**
 * Checks a server's `Sec-WebSocket-Extensions` response to the offer
 * {@linkcode createDeflateOffer} made with the same `options` (RFC 7692
 * §5, §7.1), as a client. Call it only when the response has the header;
 * without it the connection goes uncompressed.
 *
 * @example
 * ```ts
 * import { acceptDeflateResponse } from "./permessage_deflate.ts";
 * import { assertEquals, assertThrows } from "@std/assert";
 *
 * const params = acceptDeflateResponse(
 *   "permessage-deflate; client_max_window_bits=12",
 *   {},
 * );
 * assertEquals(params.clientMaxWindowBits, 12);
 * assertThrows(
 *   () => acceptDeflateResponse("permessage-deflate; server_max_window_bits=16", {}),
 *   Error,
 *   "server_max_window_bits must be an integer from 8 to 15",
 * );
 * ```
 *
 * @param headerValue The response's `Sec-WebSocket-Extensions` value.
 * @param options The options the offer was made with.
 * @returns The agreed parameters.
 * @throws {Error} When the client must fail the connection (RFC 7692 §5.1):
 * the message says what was wrong with the response.
 */
export function acceptDeflateResponse(
  headerValue: string,
  options: PerMessageDeflateOptions,
): NegotiatedDeflate {
  checkOptions(options);
  let extensions;
  try {
    extensions = parseExtensions(headerValue);
  } catch (error) {
    throw new Error((error as Error).message, { cause: error });
  }
  // RFC 6455 §9.1: the server may only answer with extensions the client
  // offered, and RFC 7692 §5: with one permessage-deflate element.
  const names = extensions.map((extension) => extension.name);
  if (names.length !== 1 || names[0] !== PERMESSAGE_DEFLATE) {
    throw new Error(
      `Invalid Sec-WebSocket-Extensions response "${headerValue}": expected exactly one ${PERMESSAGE_DEFLATE} (the only extension offered), found ${
        names.length === 0 ? "none" : names.join(", ")
      }`,
    );
  }
  const response = readParams(extensions[0].params, "response");
  if (options.serverNoContextTakeover && !response.serverNoContextTakeover) {
    throw new Error(
      "Invalid permessage-deflate response: server_no_context_takeover was offered but the response does not include it (RFC 7692 §7.1.1.1)",
    );
  }
  if (options.serverMaxWindowBits !== undefined) {
    if (response.serverMaxWindowBits === undefined) {
      throw new Error(
        `Invalid permessage-deflate response: server_max_window_bits=${options.serverMaxWindowBits} was offered but the response does not include server_max_window_bits (RFC 7692 §7.1.2.1)`,
      );
    }
    if (response.serverMaxWindowBits > options.serverMaxWindowBits) {
      throw new Error(
        `Invalid permessage-deflate response: server_max_window_bits=${response.serverMaxWindowBits} is larger than the ${options.serverMaxWindowBits} offered (RFC 7692 §7.1.2.1)`,
      );
    }
  }
  // The offer always carries client_max_window_bits (see createDeflateOffer),
  // so a response may include it, but not above an offered value.
  const clientBits = response.clientMaxWindowBits as number | undefined;
  if (
    clientBits !== undefined && options.clientMaxWindowBits !== undefined &&
    clientBits > options.clientMaxWindowBits
  ) {
    throw new Error(
      `Invalid permessage-deflate response: client_max_window_bits=${clientBits} is larger than the ${options.clientMaxWindowBits} offered (RFC 7692 §7.1.2.2)`,
    );
  }
  return {
    serverNoContextTakeover: response.serverNoContextTakeover,
    // RFC 7692 §7.1.1.2: an offered client_no_context_takeover binds the
    // client whatever the response says.
    clientNoContextTakeover: response.clientNoContextTakeover ||
      (options.clientNoContextTakeover ?? false),
    serverMaxWindowBits: response.serverMaxWindowBits ?? 15,
    clientMaxWindowBits: clientBits ?? options.clientMaxWindowBits ?? 15,
  };
}

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
function withErrorGuard<T extends zlib.InflateRaw | zlib.DeflateRaw>(
  stream: T,
): T {
  stream.on("error", () => {});
  return stream;
}

class ZlibInflater implements MessageInflater {
  readonly #windowBits: number;
  readonly #noContextTakeover: boolean;
  readonly #serializer = new Serializer();
  #zlib: zlib.InflateRaw | undefined;
  /** The peer ended its DEFLATE stream (a block with BFINAL set). */
  #ended = false;
  #messageBytes = 0;
  #messageInputBytes = 0;
  #failure: WebSocketError | undefined;
  /** Fails the operation in flight, if any. */
  #abort: ((error: WebSocketError) => void) | undefined;

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
    return this.#serializer.run(() => this.#inflate(payload, fin, maxBytes));
  }

  close(): void {
    if (this.#failure) return;
    const error = closedError();
    if (this.#abort) return this.#abort(error);
    this.#failure = error;
    this.#zlib?.close();
    this.#zlib = undefined;
  }

  #inflate(
    payload: Uint8Array,
    fin: boolean,
    maxBytes: number,
  ): Promise<Uint8Array> {
    if (this.#failure) return Promise.reject(this.#failure);
    this.#messageInputBytes += payload.length;
    if (fin && this.#messageInputBytes === 0) {
      // A message without a single compressed byte is empty; 00 00 ff ff
      // alone would not inflate (RFC 7692 §7.2.3.6 sends 0x00 instead).
      return Promise.resolve(new Uint8Array());
    }
    const stream = this.#zlib ??= withErrorGuard(zlib.createInflateRaw({
      windowBits: this.#windowBits,
      chunkSize: INFLATE_CHUNK_BYTES,
      flush: zlib.constants.Z_SYNC_FLUSH,
    }));
    return new Promise((resolve, reject) => {
      const chunks: Uint8Array[] = [];
      let length = 0;
      let settled = false;
      const cleanUp = () => {
        settled = true;
        this.#abort = undefined;
        stream.off("data", onData);
        stream.off("error", onError);
        stream.off("end", onEnd);
      };
      const fail = (error: WebSocketError) => {
        cleanUp();
        this.#failure = error;
        this.#zlib = undefined;
        stream.close();
        reject(error);
      };
      const onData = (chunk: Buffer) => {
        if (settled) return;
        this.#messageBytes += chunk.length;
        if (this.#messageBytes > maxBytes) {
          // Stop here: closing the stream discards the input not yet inflated.
          fail(
            new WebSocketError(
              `The compressed message inflates to more than maxMessageBytes (${maxBytes} bytes); raise maxMessageBytes to accept larger messages`,
              { closeCode: 1009 },
            ),
          );
          return;
        }
        chunks.push(chunk);
        length += chunk.length;
      };
      const onError = (error: Error) => {
        if (settled) return;
        // RFC 7692 §6.2 / §8: data that does not inflate fails the connection.
        fail(
          new WebSocketError(
            `Invalid permessage-deflate data: the compressed message does not inflate (${error.message})`,
            { closeCode: 1002 },
          ),
        );
      };
      const onEnd = () => {
        this.#ended = true;
      };
      this.#abort = fail;
      stream.on("data", onData);
      stream.on("error", onError);
      stream.on("end", onEnd);
      const done = (error?: Error | null) => {
        if (settled) return;
        if (error) return onError(error);
        // zlib reports bad data by destroying the stream, calling this back
        // without the error and emitting "error" next: onError settles.
        if (stream.destroyed) return;
        cleanUp();
        if (fin) {
          this.#messageBytes = 0;
          this.#messageInputBytes = 0;
          if (this.#ended) {
            // RFC 7692 §7.2.3: after a block with BFINAL set, the next
            // message starts a new DEFLATE stream.
            this.#ended = false;
            this.#zlib = undefined;
            stream.close();
          } else if (this.#noContextTakeover) {
            // RFC 7692 §7.1.1: no context takeover, every message on its own.
            stream.reset();
          }
        }
        resolve(concat(chunks, length));
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
  readonly #serializer = new Serializer();
  #zlib: zlib.DeflateRaw | undefined;
  #failure: WebSocketError | undefined;
  /** Fails the operation in flight, if any. */
  #abort: ((error: WebSocketError) => void) | undefined;

  constructor(windowBits: number, noContextTakeover: boolean, level: number) {
    // zlib cannot compress raw deflate with an 8-bit window (it rejects or
    // silently uses 9, whose matches reach 512 bytes back: too far for a peer
    // with a true 256-byte window). With 8 we use 9 and the Z_RLE strategy,
    // whose matches all have distance 1, valid under any window.
    this.#windowBits = Math.max(windowBits, 9);
    this.#strategy = windowBits === 8
      ? zlib.constants.Z_RLE
      : zlib.constants.Z_DEFAULT_STRATEGY;
    this.#level = level;
    this.#noContextTakeover = noContextTakeover;
  }

  // `fin` false: a piece of a message sent in fragments (RFC 7692 §6.1),
  // flushed but kept whole, and the context kept for the next piece.
  deflate(message: Uint8Array, fin = true): Promise<Uint8Array> {
    return this.#serializer.run(() => this.#deflate(message, fin));
  }

  close(): void {
    if (this.#failure) return;
    const error = closedError();
    if (this.#abort) return this.#abort(error);
    this.#failure = error;
    this.#zlib?.close();
    this.#zlib = undefined;
  }

  #deflate(message: Uint8Array, fin: boolean): Promise<Uint8Array> {
    // After a failure the peer's inflater no longer matches our context.
    if (this.#failure) return Promise.reject(this.#failure);
    const stream = this.#zlib ??= withErrorGuard(zlib.createDeflateRaw({
      windowBits: this.#windowBits,
      strategy: this.#strategy,
      level: this.#level,
      // Every write ends with a sync flush: the message ends on a byte
      // boundary with 00 00 ff ff (RFC 7692 §7.2.1).
      flush: zlib.constants.Z_SYNC_FLUSH,
    }));
    return new Promise((resolve, reject) => {
      const chunks: Uint8Array[] = [];
      let length = 0;
      let settled = false;
      const cleanUp = () => {
        settled = true;
        this.#abort = undefined;
        stream.off("data", onData);
        stream.off("error", onError);
      };
      const onData = (chunk: Buffer) => {
        chunks.push(chunk);
        length += chunk.length;
      };
      const fail = (error: WebSocketError) => {
        cleanUp();
        this.#failure = error;
        this.#zlib = undefined;
        stream.close();
        reject(error);
      };
      const onError = (error: Error) => {
        if (settled) return;
        fail(
          new WebSocketError(
            `permessage-deflate could not compress a message: ${error.message}`,
            { closeCode: 1011 },
          ),
        );
      };
      this.#abort = fail;
      stream.on("data", onData);
      stream.on("error", onError);
      stream.write(message, (error?: Error | null) => {
        if (settled) return;
        if (error) return onError(error);
        // zlib reports bad data by destroying the stream, calling this back
        // without the error and emitting "error" next: onError settles.
        if (stream.destroyed) return;
        cleanUp();
        // A piece ending in a sync flush may stay whole: an empty stored
        // block mid-message is valid DEFLATE.
        if (!fin) return resolve(concat(chunks, length));
        // RFC 7692 §7.1.1: no context takeover, every message on its own.
        if (this.#noContextTakeover) stream.reset();
        resolve(withoutSyncFlushTail(concat(chunks, length)));
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
 * import { acceptDeflateOffer, createMessageDeflate } from "./permessage_deflate.ts";
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
  checkOptions(options);
  checkOptions({
    serverMaxWindowBits: params.serverMaxWindowBits,
    clientMaxWindowBits: params.clientMaxWindowBits,
  });
  const threshold = options.threshold ?? 1024;
  const isServer = role === "server";
  const deflater = new ZlibDeflater(
    isServer ? params.serverMaxWindowBits : params.clientMaxWindowBits,
    isServer ? params.serverNoContextTakeover : params.clientNoContextTakeover,
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
  if (
    isServer ? params.serverNoContextTakeover : params.clientNoContextTakeover
  ) {
    allowSharedCompression(
      result,
      isServer ? params.serverMaxWindowBits : params.clientMaxWindowBits,
    );
  }
  return result;
}
