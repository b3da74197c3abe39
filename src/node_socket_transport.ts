/**
 * A {@linkcode Transport} over a `node:net` socket (the raw socket of a
 * `node:http` server's `upgrade` event), so wstream's own codec runs on it.
 *
 * @module
 */

import type { Transport } from "./transport.ts";
import type { ByteConn } from "./handshake_io.ts";

/** The part of a `node:net` `Socket` the transport uses. */
export interface NodeSocket {
  /** Queues bytes; `callback` runs once they are written (or failed). */
  write(bytes: Uint8Array, callback: (error?: Error | null) => void): boolean;
  /** Ends our direction once queued writes are done. */
  end(callback?: () => void): unknown;
  /** Ends the connection at once. */
  destroy(): unknown;
  /** Stops `data` events. */
  pause(): unknown;
  /** Resumes `data` events. */
  resume(): unknown;
  /** Listens for `data`, `end`, `error` and `close`. */
  on(event: string, listener: (...args: never[]) => void): unknown;
  /** Removes a listener `on()` added (used to hand the socket on to TLS). */
  removeListener?(event: string, listener: (...args: never[]) => void): unknown;
  /** Turns Nagle's algorithm off (a TCP socket has it). */
  setNoDelay?(noDelay?: boolean): unknown;
  /** Whether the socket has been destroyed. */
  readonly destroyed: boolean;
}

// Chunks the socket may queue before it is paused (the socket's reader
// has stopped reading: its application applies backpressure).
const PAUSE_AT_BYTES = 64 * 1024;

/**
 * Reads a Node socket's `data` events through `read()` the way a
 * `Deno.Conn` reads, pausing the socket while unread bytes pile up, and
 * writes with `write()`, which resolves once Node has written the bytes (so
 * their buffer may be reused).
 *
 * @example
 * ```ts ignore
 * server.on("upgrade", (request, socket, head) => {
 *   const transport = new NodeSocketTransport(socket);
 *   // ... answer the handshake, then new WebSocketConnection({ transport, ... })
 * });
 * ```
 */
export class NodeSocketTransport implements Transport, ByteConn {
  readonly #socket: NodeSocket;
  readonly #chunks: Uint8Array[] = [];
  #queuedBytes = 0;
  #paused = false;
  #ended = false;
  #error: Error | undefined;
  #waiter: (() => void) | undefined;
  #readable: ReadableStream<Uint8Array> | undefined;
  readonly #listeners: Record<string, (...args: never[]) => void>;
  #writable: WritableStream<Uint8Array> | undefined;

  /**
   * Starts collecting the socket's bytes.
   *
   * @param socket The socket.
   */
  constructor(socket: NodeSocket) {
    this.#socket = socket;
    this.#listeners = {
      data: (chunk: Uint8Array) => {
        this.#chunks.push(chunk);
        this.#queuedBytes += chunk.length;
        if (this.#queuedBytes >= PAUSE_AT_BYTES && !this.#paused) {
          this.#paused = true;
          socket.pause();
        }
        this.#wake();
      },
      end: () => {
        this.#ended = true;
        this.#wake();
      },
      error: (error: Error) => {
        this.#error ??= error;
        this.#wake();
      },
      close: () => {
        this.#ended = true;
        this.#wake();
      },
    };
    for (const [event, listener] of Object.entries(this.#listeners)) {
      socket.on(event, listener);
    }
  }

  /**
   * Stops reading the socket and hands it back, e.g. to start TLS on it
   * after a proxy's `CONNECT` answer. Refused while bytes read from it are
   * still unread: they would be lost.
   *
   * @returns The socket, with this transport's listeners removed.
   * @throws {TypeError} when read bytes are waiting, or the socket cannot
   * remove listeners.
   */
  release(): NodeSocket {
    const socket = this.#socket;
    if (this.#queuedBytes > 0 || typeof socket.removeListener !== "function") {
      throw new TypeError(
        `expected a socket with no unread bytes to hand back, found ${this.#queuedBytes} unread bytes${
          typeof socket.removeListener === "function"
            ? ""
            : " and no removeListener()"
        }`,
      );
    }
    for (const [event, listener] of Object.entries(this.#listeners)) {
      socket.removeListener(event, listener);
    }
    if (this.#paused) socket.resume();
    return socket;
  }

  /**
   * Reads queued bytes into `buffer`, waiting for some when none are.
   *
   * @param buffer Where to put them.
   * @returns The count, or `null` once the peer has ended its direction.
   */
  async read(buffer: Uint8Array): Promise<number | null> {
    while (this.#chunks.length === 0) {
      if (this.#error) throw this.#error;
      if (this.#ended || this.#socket.destroyed) return null;
      await new Promise<void>((resolve) => this.#waiter = resolve);
    }
    let count = 0;
    const chunks = this.#chunks;
    while (chunks.length > 0 && count < buffer.length) {
      const chunk = chunks[0];
      const taken = Math.min(chunk.length, buffer.length - count);
      buffer.set(
        taken === chunk.length ? chunk : chunk.subarray(0, taken),
        count,
      );
      count += taken;
      if (taken === chunk.length) chunks.shift();
      else chunks[0] = chunk.subarray(taken);
    }
    this.#queuedBytes -= count;
    if (this.#paused && this.#queuedBytes < PAUSE_AT_BYTES / 2) {
      this.#paused = false;
      this.#socket.resume();
    }
    return count;
  }

  /**
   * Writes bytes.
   *
   * @param bytes The bytes; not to be changed until the promise settles.
   * @returns Their count, once Node has written them.
   */
  write(bytes: Uint8Array): Promise<number> {
    if (this.#socket.destroyed) {
      return Promise.reject(
        new Error("expected an open socket to write to, found it destroyed"),
      );
    }
    return new Promise((resolve, reject) => {
      this.#socket.write(bytes, (error) => {
        if (error) reject(error);
        else resolve(bytes.length);
      });
    });
  }

  /**
   * Ends our direction once queued bytes are written.
   *
   * @returns When `end()` has been called.
   */
  closeWrite(): Promise<void> {
    this.#socket.end();
    return Promise.resolve();
  }

  /** Ends the connection at once. */
  close(): void {
    this.#socket.destroy();
    this.#ended = true;
    this.#wake();
  }

  /**
   * Turns Nagle's algorithm off or on.
   *
   * @param noDelay `true` (the default) to send small writes at once.
   */
  setNoDelay(noDelay = true): void {
    this.#socket.setNoDelay?.(noDelay);
  }

  /** The bytes from the peer as a stream (made on first use). */
  get readable(): ReadableStream<Uint8Array> {
    return this.#readable ??= new ReadableStream({
      pull: async (controller) => {
        const buffer = new Uint8Array(16 * 1024);
        const count = await this.read(buffer);
        if (count === null) controller.close();
        else controller.enqueue(buffer.subarray(0, count));
      },
      cancel: () => this.close(),
    });
  }

  /** Bytes to the peer as a stream (made on first use). */
  get writable(): WritableStream<Uint8Array> {
    return this.#writable ??= new WritableStream({
      write: async (bytes) => void await this.write(bytes),
      close: () => this.closeWrite(),
      abort: () => this.close(),
    });
  }

  #wake(): void {
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.();
  }
}
