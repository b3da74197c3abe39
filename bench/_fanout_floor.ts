/**
 * The floor of the fan-out benchmark (bench/fanout_e2e.ts, server "floor"):
 * the least a Deno program can do per message, to learn how many
 * deliveries/s Deno itself allows with one `conn.write` per subscriber per
 * round. No library: `Deno.listen`, a minimal RFC 6455 handshake, and for
 * each chunk read from the publisher its frames re-framed once (server
 * frames, unmasked) into one buffer that is written to every subscriber
 * with one `conn.write` each. While a subscriber's write is in flight,
 * what follows is appended and leaves in its next write (as the `Hub`
 * does). Each subscriber's completion callbacks are made once, no closure
 * per write. `FLOOR_STATS=1` prints writes/s and bytes a write on stderr.
 *
 *     deno run -A bench/_fanout_floor.ts   # prints {"port": N}
 *
 * Not a WebSocket server for anything else: it trusts its one client (the
 * load generator), handles only what it sends, and has no limits.
 *
 * @module
 */

const HOSTNAME = "127.0.0.1";
const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A subscriber: its connection and the bytes waiting for its write. */
interface Subscriber {
  conn: Deno.TcpConn;
  /** The chunk in flight, or undefined when idle. */
  writing: Uint8Array | undefined;
  /** Chunks queued behind it. */
  pending: Uint8Array[];
  pendingBytes: number;
  closed: boolean;
  onWritten: (count: number) => void;
  onFailed: () => void;
}

const subscribers: Subscriber[] = [];

/** Reads the HTTP upgrade request; returns its path and key. */
async function handshake(
  conn: Deno.TcpConn,
): Promise<{ path: string; rest: Uint8Array } | undefined> {
  const buffer = new Uint8Array(8192);
  let used = 0;
  while (true) {
    const n = await conn.read(buffer.subarray(used));
    if (n === null) return undefined;
    used += n;
    const text = decoder.decode(buffer.subarray(0, used));
    const end = text.indexOf("\r\n\r\n");
    if (end < 0) continue;
    const path = text.slice(4, text.indexOf(" ", 4));
    const key = /sec-websocket-key:\s*(\S+)/i.exec(text)![1];
    const digest = await crypto.subtle.digest(
      "SHA-1",
      encoder.encode(key + GUID),
    );
    const accept = btoa(String.fromCharCode(...new Uint8Array(digest)));
    await conn.write(encoder.encode(
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" +
        `Connection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
    ));
    return { path, rest: buffer.slice(end + 4, used) };
  }
}

// With FLOOR_STATS=1: writes, bytes and publisher chunks per second, on
// stderr.
const stats = { writes: 0, bytes: 0, chunks: 0 };

// Each subscriber's completion callbacks are made once, not per write.
function startWrite(subscriber: Subscriber): void {
  stats.writes++;
  stats.bytes += subscriber.writing!.length;
  subscriber.conn.write(subscriber.writing!).then(
    subscriber.onWritten,
    subscriber.onFailed,
  );
}

function written(subscriber: Subscriber, count: number): void {
  const bytes = subscriber.writing!;
  if (count < bytes.length) restWritten(subscriber, bytes.subarray(count));
  else chunkWritten(subscriber);
}

function restWritten(subscriber: Subscriber, rest: Uint8Array): void {
  subscriber.writing = rest;
  startWrite(subscriber);
}

function chunkWritten(subscriber: Subscriber): void {
  const pending = subscriber.pending;
  if (pending.length === 0) {
    subscriber.writing = undefined;
    return;
  }
  if (pending.length === 1) {
    subscriber.writing = pending[0];
  } else {
    const joined = new Uint8Array(subscriber.pendingBytes);
    let offset = 0;
    for (const chunk of pending) {
      joined.set(chunk, offset);
      offset += chunk.length;
    }
    subscriber.writing = joined;
  }
  subscriber.pending = [];
  subscriber.pendingBytes = 0;
  startWrite(subscriber);
}

function deliver(frames: Uint8Array): void {
  for (const subscriber of subscribers) {
    if (subscriber.closed) continue;
    if (subscriber.writing !== undefined) {
      subscriber.pending.push(frames);
      subscriber.pendingBytes += frames.length;
      continue;
    }
    subscriber.writing = frames;
    startWrite(subscriber);
  }
}

/**
 * Re-frames the complete client frames at the start of bytes as server
 * frames; returns them and how many bytes they took.
 */
function reframe(bytes: Uint8Array): { frames: Uint8Array; used: number } {
  const out: Uint8Array[] = [];
  let total = 0;
  let at = 0;
  while (bytes.length - at >= 2) {
    const first = bytes[at];
    let length = bytes[at + 1] & 0x7f;
    let header = 2;
    if (length === 126) {
      if (bytes.length - at < 4) break;
      length = bytes[at + 2] << 8 | bytes[at + 3];
      header = 4;
    } else if (length === 127) {
      if (bytes.length - at < 10) break;
      length = Number(
        new DataView(bytes.buffer, bytes.byteOffset + at + 2, 8)
          .getBigUint64(0),
      );
      header = 10;
    }
    if (bytes.length - at < header + 4 + length) break;
    const maskAt = at + header;
    const payloadAt = maskAt + 4;
    const outHeader = length < 126 ? 2 : length < 65536 ? 4 : 10;
    const frame = new Uint8Array(outHeader + length);
    frame[0] = first;
    if (outHeader === 2) frame[1] = length;
    else if (outHeader === 4) {
      frame[1] = 126;
      frame[2] = length >> 8;
      frame[3] = length & 0xff;
    } else {
      frame[1] = 127;
      new DataView(frame.buffer).setBigUint64(2, BigInt(length));
    }
    for (let i = 0; i < length; i++) {
      frame[outHeader + i] = bytes[payloadAt + i] ^ bytes[maskAt + (i & 3)];
    }
    if ((first & 0x0f) === 0x8) {
      closeSignal = true;
    } else {
      out.push(frame);
      total += frame.length;
    }
    at = payloadAt + length;
  }
  const frames = new Uint8Array(total);
  let offset = 0;
  for (const frame of out) {
    frames.set(frame, offset);
    offset += frame.length;
  }
  return { frames, used: at };
}
let closeSignal = false;

async function publisher(conn: Deno.TcpConn, rest: Uint8Array): Promise<void> {
  let buffer = new Uint8Array(256 * 1024);
  let used = rest.length;
  buffer.set(rest);
  while (true) {
    const { frames, used: taken } = reframe(buffer.subarray(0, used));
    if (frames.length > 0) {
      stats.chunks++;
      deliver(frames);
    }
    buffer.copyWithin(0, taken, used);
    used -= taken;
    if (closeSignal) {
      closeSignal = false;
      await conn.write(new Uint8Array([0x88, 0x02, 0x03, 0xe8])).catch(
        () => {},
      );
      conn.close();
      return;
    }
    if (used === buffer.length) {
      const grown = new Uint8Array(buffer.length * 2);
      grown.set(buffer);
      buffer = grown;
    }
    const n = await conn.read(buffer.subarray(used)).catch(() => null);
    if (n === null) return;
    used += n;
  }
}

async function subscriber(conn: Deno.TcpConn): Promise<void> {
  conn.setNoDelay(true);
  const entry: Subscriber = {
    conn,
    writing: undefined,
    pending: [],
    pendingBytes: 0,
    closed: false,
    onWritten: (count) => written(entry, count),
    onFailed: () => void (entry.closed = true),
  };
  subscribers.push(entry);
  const buffer = new Uint8Array(1024);
  // A subscriber sends nothing but its Close: answer it, then end.
  const n = await conn.read(buffer).catch(() => null);
  entry.closed = true;
  subscribers.splice(subscribers.indexOf(entry), 1);
  if (n !== null) {
    await conn.write(new Uint8Array([0x88, 0x02, 0x03, 0xe8])).catch(() => {});
  }
  try {
    conn.close();
  } catch {
    // Closed already.
  }
}

async function serveConnection(conn: Deno.TcpConn): Promise<void> {
  const request = await handshake(conn).catch(() => undefined);
  if (request === undefined) {
    conn.close();
    return;
  }
  if (request.path === "/pub") await publisher(conn, request.rest);
  else await subscriber(conn);
}

if (import.meta.main) {
  const listener = Deno.listen({ hostname: HOSTNAME, port: 0 });
  console.log(JSON.stringify({ port: listener.addr.port }));
  if (Deno.env.get("FLOOR_STATS")) {
    setInterval(() => {
      if (stats.writes > 0) {
        console.error(
          `floor: ${stats.writes} writes/s, ${
            (stats.bytes / stats.writes).toFixed(0)
          } B a write, ${stats.chunks} publisher chunks/s`,
        );
      }
      stats.writes = stats.bytes = stats.chunks = 0;
    }, 1000);
  }
  for await (const conn of listener) serveConnection(conn);
}
