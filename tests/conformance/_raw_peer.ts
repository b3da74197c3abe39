/**
 * A raw-TCP WebSocket peer for the conformance suite: it sends exact bytes
 * (any frame, masked or not, split into any TCP writes at any pace), parses
 * what comes back with its own small parser (independent of the codec under
 * test), and records whether and how the TCP connection ended.
 *
 * Two ways to get one: {@linkcode RawPeer.connect} opens a raw client to a
 * server under test; {@linkcode RawServer} accepts one connection from a
 * client under test and answers its handshake with a minimal 101.
 *
 * @module
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Opcodes, spelled out so the tests read like the RFC. */
export const OP = {
  cont: 0x0,
  text: 0x1,
  binary: 0x2,
  close: 0x8,
  ping: 0x9,
  pong: 0xa,
} as const;

/** A frame as the peer builds it. */
export interface FrameSpec {
  opcode: number;
  payload?: Uint8Array | string;
  /** Default true. */
  fin?: boolean;
  /** The three RSV bits as Autobahn numbers them: 4 = RSV1, 2 = RSV2, 1 = RSV3. */
  rsv?: number;
  /** Default: masked when the peer is a client. */
  mask?: boolean;
  /** Default: 4 random bytes. */
  maskKey?: Uint8Array;
}

/** A frame as the peer parsed it. */
export interface RawFrame {
  fin: boolean;
  rsv: number;
  opcode: number;
  masked: boolean;
  /** The masking key, when masked. */
  maskKey?: Uint8Array;
  payload: Uint8Array;
}

/** What the peer saw next: a frame, or the end of the TCP connection. */
export type RawEvent =
  | { kind: "frame"; frame: RawFrame; at: number }
  | { kind: "end"; how: "eof" | "reset"; at: number };

/** Bytes of a string (UTF-8) or the bytes themselves. */
export function bytesOf(data: Uint8Array | string): Uint8Array {
  return typeof data === "string" ? encoder.encode(data) : data;
}

/** Encodes one frame exactly as specified (RFC 6455 §5.2). */
export function buildFrame(spec: FrameSpec, defaultMask: boolean): Uint8Array {
  const payload = bytesOf(spec.payload ?? new Uint8Array(0));
  const mask = spec.mask ?? defaultMask;
  const length = payload.length;
  const lengthBytes = length < 126 ? 0 : length < 65536 ? 2 : 8;
  const headerLength = 2 + lengthBytes + (mask ? 4 : 0);
  const out = new Uint8Array(headerLength + length);
  out[0] = ((spec.fin ?? true) ? 0x80 : 0) | ((spec.rsv ?? 0) & 7) << 4 |
    (spec.opcode & 0xf);
  const view = new DataView(out.buffer);
  if (lengthBytes === 0) out[1] = length;
  else if (lengthBytes === 2) {
    out[1] = 126;
    view.setUint16(2, length);
  } else {
    out[1] = 127;
    view.setUint32(2, Math.floor(length / 2 ** 32));
    view.setUint32(6, length >>> 0);
  }
  if (mask) {
    out[1] |= 0x80;
    const key = spec.maskKey ?? crypto.getRandomValues(new Uint8Array(4));
    out.set(key, 2 + lengthBytes);
    const start = headerLength;
    for (let i = 0; i < length; i++) out[start + i] = payload[i] ^ key[i & 3];
  } else {
    out.set(payload, headerLength);
  }
  return out;
}

/** Concatenates byte arrays. */
export function concat(parts: Uint8Array[]): Uint8Array {
  let total = 0;
  for (const part of parts) total += part.length;
  const out = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** A Close payload: a code (big-endian) and a reason. */
export function closePayload(
  code?: number,
  reason: Uint8Array | string = "",
): Uint8Array {
  if (code === undefined) return new Uint8Array(0);
  const reasonBytes = bytesOf(reason);
  const out = new Uint8Array(2 + reasonBytes.length);
  out[0] = code >>> 8;
  out[1] = code & 0xff;
  out.set(reasonBytes, 2);
  return out;
}

/** The close code in a Close frame's payload, or undefined when empty. */
export function closeCodeOf(frame: RawFrame): number | undefined {
  if (frame.payload.length < 2) return undefined;
  return frame.payload[0] << 8 | frame.payload[1];
}

/** Resolves after `ms` milliseconds. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Rejects with a message naming `what` when `promise` takes over `ms`. */
export async function within<T>(
  promise: Promise<T>,
  ms: number,
  what: string,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)),
      ms,
    );
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** How the peer splits the bytes it sends into TCP writes. */
export interface SendOptions {
  /** Write at most this many bytes at a time (default: all at once). */
  chunkBytes?: number;
  /**
   * Milliseconds to wait between writes; 0 yields to the event loop once so
   * the other end reads each write on its own (same process). Default: no
   * wait (back-to-back writes, which TCP may coalesce).
   */
  delayMs?: number;
}

/** Computes Sec-WebSocket-Accept (RFC 6455 §4.2.2 step 5.4). */
export async function acceptFor(key: string): Promise<string> {
  const digest = await crypto.subtle.digest(
    "SHA-1",
    encoder.encode(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"),
  );
  return btoa(String.fromCharCode(...new Uint8Array(digest)));
}

const HEAD_END = encoder.encode("\r\n\r\n");

function indexOfHeadEnd(bytes: Uint8Array): number {
  outer: for (let i = 0; i + 4 <= bytes.length; i++) {
    for (let j = 0; j < 4; j++) {
      if (bytes[i + j] !== HEAD_END[j]) continue outer;
    }
    return i;
  }
  return -1;
}

// Reads an HTTP head; returns it and the bytes after it.
async function readHead(
  conn: Deno.Conn,
): Promise<{ head: string; rest: Uint8Array }> {
  let bytes: Uint8Array = new Uint8Array(0);
  const buffer = new Uint8Array(4096);
  while (true) {
    const n = await conn.read(buffer);
    if (n === null) {
      throw new Error(
        `expected an HTTP head, found the end of the connection after ${bytes.length} bytes: ${
          JSON.stringify(decoder.decode(bytes))
        }`,
      );
    }
    bytes = concat([bytes, buffer.subarray(0, n)]);
    const end = indexOfHeadEnd(bytes);
    if (end >= 0) {
      return {
        head: decoder.decode(bytes.subarray(0, end)),
        rest: bytes.slice(end + 4),
      };
    }
  }
}

function headerOf(head: string, name: string): string | undefined {
  for (const line of head.split("\r\n").slice(1)) {
    const colon = line.indexOf(":");
    if (line.slice(0, colon).trim().toLowerCase() === name.toLowerCase()) {
      return line.slice(colon + 1).trim();
    }
  }
  return undefined;
}

/** The default wait for something the RFC says must happen promptly. */
export const EXPECT_MS = 3000;

/** One raw end of a WebSocket connection. */
export class RawPeer {
  /** The peer's role: a raw client masks by default, a raw server doesn't. */
  readonly role: "client" | "server";
  /** The TCP connection. */
  readonly conn: Deno.Conn;
  /** The HTTP head the other end sent (101 response or upgrade request). */
  readonly head: string;

  readonly #events: RawEvent[] = [];
  #cursor = 0;
  #wake: (() => void) | undefined;
  #data = new Uint8Array(256 * 1024);
  #start = 0;
  #end = 0;
  #closedByUs = false;
  #ended = false;
  readonly #loop: Promise<void>;

  constructor(
    role: "client" | "server",
    conn: Deno.Conn,
    head: string,
    rest: Uint8Array,
  ) {
    this.role = role;
    this.conn = conn;
    this.head = head;
    this.#append(rest);
    this.#parse();
    this.#loop = this.#readLoop();
  }

  /**
   * Connects a raw client to `port` and does the opening handshake, checking
   * the server's 101 and its accept value.
   */
  static async connect(
    port: number,
    options: {
      path?: string;
      headers?: Record<string, string>;
      hostname?: string;
      /** Connect with TLS, trusting these certificates. */
      caCerts?: string[];
    } = {},
  ): Promise<RawPeer> {
    const conn: Deno.Conn = options.caCerts
      ? await Deno.connectTls({
        hostname: options.hostname ?? "localhost",
        port,
        caCerts: options.caCerts,
      })
      : await Deno.connect({ hostname: options.hostname ?? "127.0.0.1", port });
    noDelay(conn);
    try {
      const key = btoa(
        String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))),
      );
      const lines = [
        `GET ${options.path ?? "/"} HTTP/1.1`,
        `Host: 127.0.0.1:${port}`,
        "Upgrade: websocket",
        "Connection: Upgrade",
        `Sec-WebSocket-Key: ${key}`,
        "Sec-WebSocket-Version: 13",
        ...Object.entries(options.headers ?? {}).map(([k, v]) => `${k}: ${v}`),
      ];
      await writeAll(conn, encoder.encode(lines.join("\r\n") + "\r\n\r\n"));
      const { head, rest } = await readHead(conn);
      const status = head.split("\r\n")[0];
      if (!/^HTTP\/1\.1 101 /.test(status)) {
        throw new Error(`expected a 101 response, found ${status}`);
      }
      const accept = headerOf(head, "sec-websocket-accept");
      if (accept !== await acceptFor(key)) {
        throw new Error(
          `expected Sec-WebSocket-Accept ${await acceptFor(
            key,
          )}, found ${accept}`,
        );
      }
      return new RawPeer("client", conn, head, rest);
    } catch (error) {
      conn.close();
      throw error;
    }
  }

  /** Whether frames are masked when a spec doesn't say. */
  get masks(): boolean {
    return this.role === "client";
  }

  /** Encodes a frame with this peer's default masking. */
  frame(spec: FrameSpec): Uint8Array {
    return buildFrame(spec, this.masks);
  }

  /** Sends bytes (or frames), split into writes as asked. */
  async send(
    data: Uint8Array | Uint8Array[],
    options: SendOptions = {},
  ): Promise<void> {
    const bytes = Array.isArray(data) ? concat(data) : data;
    const chunk = options.chunkBytes ?? bytes.length;
    const wait = options.delayMs;
    try {
      for (let offset = 0; offset < bytes.length; offset += chunk) {
        if (offset > 0 && wait !== undefined) await delay(wait);
        // The other end may fail the connection halfway: stop sending then.
        if (this.#ended || this.#closedByUs) return;
        await writeAll(this.conn, bytes.subarray(offset, offset + chunk));
      }
    } catch (error) {
      if (!this.#ended && !this.#closedByUs && !isDisconnect(error)) {
        throw error;
      }
      this.sendFailed = true;
    }
  }

  /** Whether a send stopped because the other end had gone. */
  sendFailed = false;

  /** Sends frames built from specs. */
  sendFrames(specs: FrameSpec[], options: SendOptions = {}): Promise<void> {
    return this.send(specs.map((spec) => this.frame(spec)), options);
  }

  /** Sends bytes split at the given offsets, yielding between the writes. */
  async sendSplit(bytes: Uint8Array, cuts: number[]): Promise<void> {
    let from = 0;
    for (const cut of [...cuts, bytes.length]) {
      if (from > 0) await delay(0);
      await this.send(bytes.subarray(from, cut));
      from = cut;
    }
  }

  /** The next frame or the end of the connection. */
  async next(ms = EXPECT_MS, what = "a frame"): Promise<RawEvent> {
    while (this.#cursor >= this.#events.length) {
      await within(
        new Promise<void>((resolve) => this.#wake = resolve),
        ms,
        what,
      );
    }
    const event = this.#events[this.#cursor];
    if (event.kind === "frame") this.#cursor++;
    return event;
  }

  /** The next event without taking it. */
  async peek(ms = EXPECT_MS, what = "a frame"): Promise<RawEvent> {
    const event = await this.next(ms, what);
    if (event.kind === "frame") this.#cursor--;
    return event;
  }

  /** The next frame; fails when the connection ends first. */
  async nextFrame(ms = EXPECT_MS, what = "a frame"): Promise<RawFrame> {
    const event = await this.next(ms, what);
    if (event.kind === "end") {
      throw new Error(
        `expected ${what}, found the end of the connection (${event.how})`,
      );
    }
    this.#checkMask(event.frame);
    return event.frame;
  }

  /** Whether something (a frame or the end) arrives within `ms`. */
  async quietFor(ms: number): Promise<RawEvent | undefined> {
    try {
      const event = await this.next(ms);
      if (event.kind === "frame") this.#cursor--;
      return event;
    } catch {
      return undefined;
    }
  }

  /** Whether the TCP connection has ended (EOF or reset seen). */
  get ended(): boolean {
    return this.#ended;
  }

  // RFC 6455 §5.1: a client masks every frame, a server none.
  #checkMask(frame: RawFrame): void {
    const expected = this.role === "server";
    if (frame.masked !== expected) {
      throw new Error(
        `expected ${expected ? "masked" : "unmasked"} frames from the ${
          this.role === "server" ? "client" : "server"
        }, found a${frame.masked ? " masked" : "n unmasked"} frame`,
      );
    }
  }

  /** Closes the TCP connection and waits for the read loop to stop. */
  async close(): Promise<void> {
    if (!this.#closedByUs) {
      this.#closedByUs = true;
      try {
        this.conn.close();
      } catch {
        // Already closed.
      }
    }
    await this.#loop;
  }

  /** Half-closes: no more bytes from the peer, reading goes on. */
  async closeWrite(): Promise<void> {
    await this.conn.closeWrite();
  }

  #append(bytes: Uint8Array): void {
    if (this.#end + bytes.length > this.#data.length) {
      const live = this.#end - this.#start;
      const needed = live + bytes.length;
      if (needed > this.#data.length) {
        const data = new Uint8Array(Math.max(needed, this.#data.length * 2));
        data.set(this.#data.subarray(this.#start, this.#end), 0);
        this.#data = data;
      } else {
        this.#data.copyWithin(0, this.#start, this.#end);
      }
      this.#start = 0;
      this.#end = live;
    }
    this.#data.set(bytes, this.#end);
    this.#end += bytes.length;
  }

  #parse(): void {
    const data = this.#data;
    while (this.#end - this.#start >= 2) {
      const at = this.#start;
      const available = this.#end - at;
      const b0 = data[at];
      const b1 = data[at + 1];
      const masked = (b1 & 0x80) !== 0;
      let length = b1 & 0x7f;
      let header = 2;
      if (length === 126) {
        if (available < 4) return;
        length = data[at + 2] << 8 | data[at + 3];
        header = 4;
      } else if (length === 127) {
        if (available < 10) return;
        const view = new DataView(data.buffer, data.byteOffset + at + 2, 8);
        length = view.getUint32(0) * 2 ** 32 + view.getUint32(4);
        header = 10;
      }
      const keyAt = at + header;
      if (masked) header += 4;
      if (available < header + length) return;
      const payload = data.slice(at + header, at + header + length);
      if (masked) {
        for (let i = 0; i < payload.length; i++) {
          payload[i] ^= data[keyAt + (i & 3)];
        }
      }
      this.#start = at + header + length;
      this.#push({
        kind: "frame",
        frame: {
          fin: (b0 & 0x80) !== 0,
          rsv: (b0 >> 4) & 7,
          opcode: b0 & 0xf,
          masked,
          maskKey: masked ? data.slice(keyAt, keyAt + 4) : undefined,
          payload,
        },
        at: performance.now(),
      });
    }
  }

  #push(event: RawEvent): void {
    this.#events.push(event);
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  async #readLoop(): Promise<void> {
    const buffer = new Uint8Array(256 * 1024);
    let how: "eof" | "reset" = "eof";
    try {
      while (true) {
        const n = await this.conn.read(buffer);
        if (n === null) break;
        this.#append(buffer.subarray(0, n));
        this.#parse();
      }
    } catch {
      how = "reset";
    }
    this.#ended = true;
    this.#push({ kind: "end", how, at: performance.now() });
  }
}

// Small writes leave at once (TLS connections have no such switch).
function noDelay(conn: Deno.Conn): void {
  const tcp = conn as Partial<Deno.TcpConn>;
  if (typeof tcp.setNoDelay === "function") tcp.setNoDelay(true);
}

/** Whether an I/O error means the other end went away. */
export function isDisconnect(error: unknown): boolean {
  return error instanceof Deno.errors.BrokenPipe ||
    error instanceof Deno.errors.ConnectionReset ||
    error instanceof Deno.errors.ConnectionAborted ||
    error instanceof Deno.errors.NotConnected;
}

/** Writes all of `bytes` (a write may take only part). */
export async function writeAll(
  conn: Deno.Conn,
  bytes: Uint8Array,
): Promise<void> {
  let written = 0;
  while (written < bytes.length) {
    written += await conn.write(bytes.subarray(written));
  }
}

/**
 * A raw server on a random loopback port: accepts one connection, reads the
 * client's upgrade request and answers with a minimal 101.
 */
export class RawServer {
  readonly listener: Deno.Listener;

  /** Listens on loopback; with `tls`, speaks TLS with that certificate. */
  constructor(tls?: { cert: string; key: string }) {
    this.listener = tls
      ? Deno.listenTls({ hostname: "127.0.0.1", port: 0, ...tls })
      : Deno.listen({ hostname: "127.0.0.1", port: 0 });
  }

  /** The port to connect to. */
  get port(): number {
    return (this.listener.addr as Deno.NetAddr).port;
  }

  /**
   * Accepts the next connection and completes its handshake; `response`
   * may add header lines to the 101.
   */
  async accept(extraResponseLines: string[] = []): Promise<RawPeer> {
    const conn = await this.listener.accept();
    noDelay(conn);
    try {
      const { head, rest } = await readHead(conn);
      const key = headerOf(head, "sec-websocket-key");
      if (key === undefined) {
        throw new Error(`expected a Sec-WebSocket-Key in ${head}`);
      }
      const lines = [
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        `Sec-WebSocket-Accept: ${await acceptFor(key)}`,
        ...extraResponseLines,
      ];
      await writeAll(conn, encoder.encode(lines.join("\r\n") + "\r\n\r\n"));
      return new RawPeer("server", conn, head, rest);
    } catch (error) {
      conn.close();
      throw error;
    }
  }

  /** Stops listening. */
  close(): void {
    try {
      this.listener.close();
    } catch {
      // Already closed.
    }
  }
}
