/**
 * The byte transport a socket runs on, the two adapters that let the
 * socket read and write any transport the way it reads and writes a
 * `Deno.Conn`, and how a socket ends any transport.
 *
 * @module
 */

import { writeAll } from "./handshake_io.ts";

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
 * What a socket writes its bytes through: a writer of `transport.writable`,
 * or a {@linkcode DirectWriter} over `transport.write`.
 */
export type ByteWriter = Pick<
  WritableStreamDefaultWriter<Uint8Array>,
  "write" | "close"
>;

type DirectTransport = Transport & Required<Pick<Transport, "write">>;

/**
 * Writes to `transport.write` the way a writer of `transport.writable`
 * would: all bytes, in order. A class, not an object of closures: every
 * socket holds one, idle or not.
 */
class DirectWriter implements ByteWriter {
  readonly #transport: DirectTransport;

  constructor(transport: DirectTransport) {
    this.#transport = transport;
  }

  write(bytes: Uint8Array): Promise<void> {
    return writeAll(this.#transport, bytes);
  }

  close(): Promise<void> {
    this.#transport.close?.();
    return Promise.resolve();
  }
}

/**
 * The writer a socket writes `transport` with: `transport.write` when it
 * has one (no stream is made over the connection), else a writer of
 * `transport.writable` (which it locks).
 *
 * @param transport The socket's transport.
 * @returns A writer of all the bytes given to it, in order.
 */
export function byteWriterOf(transport: Transport): ByteWriter {
  return transport.write
    ? new DirectWriter(transport as DirectTransport)
    : transport.writable.getWriter();
}

/**
 * Whether `transport` is done with each chunk once its write resolves: a
 * `Deno.Conn` hands each chunk to the OS before the write resolves, so the
 * buffers frames are encoded into can be reused then; other writables may
 * keep chunks (a `TransformStream` queues them).
 *
 * @param transport The socket's transport.
 * @returns `true` for a `Deno.Conn`.
 */
export function reusesWrites(transport: Transport): boolean {
  const conn = transport as Partial<Deno.Conn>;
  return typeof conn.read === "function" &&
    typeof conn.closeWrite === "function";
}

/**
 * Reads `transport.readable` the way `transport.read` would: into the
 * given buffer, the count of bytes or `null` at EOF.
 */
export class StreamByteReader {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  // The part of the last chunk that did not fit the buffer.
  #rest: Uint8Array | undefined;

  /**
   * Locks `readable` for the reader.
   *
   * @param readable The transport's bytes from the peer.
   */
  constructor(readable: ReadableStream<Uint8Array>) {
    this.#reader = readable.getReader();
  }

  /**
   * Reads bytes into `buffer`.
   *
   * @param buffer Where the bytes go.
   * @returns The count of bytes read, or `null` at the end of the stream.
   */
  async read(buffer: Uint8Array): Promise<number | null> {
    let rest = this.#rest;
    while (rest === undefined || rest.length === 0) {
      const result = await this.#reader.read();
      if (result.done) return null;
      rest = result.value;
    }
    const count = Math.min(rest.length, buffer.length);
    buffer.set(rest.subarray(0, count));
    this.#rest = count < rest.length ? rest.subarray(count) : undefined;
    return count;
  }

  /** Cancels the stream: the peer's direction is not read any more. */
  cancel(): Promise<void> {
    return this.#reader.cancel();
  }
}

/**
 * Ends a socket's transport at once: `close()` when it has one (a
 * `Deno.Conn`), else both directions of its streams (in-memory transports).
 *
 * @example
 * ```ts
 * import { closeTransport } from "./transport.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const calls: string[] = [];
 * const writer = { closeWriter: () => void calls.push("closeWriter") };
 * const streams = {
 *   readable: new ReadableStream<Uint8Array>(),
 *   writable: new WritableStream<Uint8Array>(),
 * };
 * closeTransport({ ...streams, close: () => void calls.push("close") }, writer);
 * closeTransport(streams, writer);
 * assertEquals(calls, ["close", "closeWriter"]);
 * ```
 *
 * @param transport The socket's transport.
 * @param writer What writes the socket's bytes: closes its writer.
 * @param reader The socket's reader of `transport.readable`, if it made one.
 */
export function closeTransport(
  transport: Transport,
  writer: { closeWriter(): void },
  reader?: StreamByteReader,
): void {
  try {
    if (transport.close) {
      transport.close();
      return;
    }
  } catch {
    // Already closed.
  }
  // In-memory transports: end both directions.
  writer.closeWriter();
  reader?.cancel().catch(() => {});
}
