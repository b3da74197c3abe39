/**
 * Servers for the differential tests of the WHATWG APIs: each scenario runs
 * once against Deno's built-in `WebSocket`/`WebSocketStream` and once
 * against wstream's, on the same server.
 *
 * @module
 */

/** How one server-side socket saw its connection end. */
export interface ServerClose {
  code: number;
  reason: string;
  wasClean: boolean;
}

/** A running test server. */
export interface TestServer {
  /** `ws://127.0.0.1:<port>/`. */
  url: string;
  /**
   * Every message the server received, in order: text as is, binary as
   * `binary <bytes>`.
   */
  received: string[];
  /** Resolves with how the next server-side socket (in order) closed. */
  nextClose(): Promise<ServerClose>;
  /**
   * Forgets the close events not taken yet (after a scenario attempt that
   * failed midway), once the sockets still closing have had 100 ms.
   */
  discardCloses(): Promise<void>;
  /** Stops the server; waits for it. */
  shutdown(): Promise<void>;
}

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/**
 * Rejects when `promise` has not settled within `ms`, so a broken scenario
 * fails instead of hanging the run.
 */
export async function bounded<T>(
  promise: Promise<T>,
  what: string,
  ms = 5000,
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

/**
 * A `Deno.serve` + `Deno.upgradeWebSocket` server (Deno's own server side,
 * so neither client under test is judged by our server). It picks the first
 * offered subprotocol, echoes every message, and obeys commands sent as
 * text: `close` (close without a code), `close <code> <reason>`, and a
 * text starting with `size:` is answered with `got <its UTF-8 bytes>`
 * instead of an echo.
 */
export function startEchoServer(): TestServer {
  const closes: ServerClose[] = [];
  const received: string[] = [];
  const waiters: ((close: ServerClose) => void)[] = [];
  let taken = 0;
  const server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen() {} },
    (request) => {
      const offered = request.headers.get("sec-websocket-protocol");
      const protocol = offered?.split(",")[0].trim();
      const { socket, response } = Deno.upgradeWebSocket(request, {
        protocol,
      });
      socket.binaryType = "arraybuffer";
      socket.onmessage = (event) => {
        const data = event.data;
        received.push(
          typeof data === "string" ? data : `binary ${data.byteLength}`,
        );
        if (typeof data === "string") {
          if (data === "close") return socket.close();
          const command = /^close (\d+) (.*)$/.exec(data);
          if (command) return socket.close(Number(command[1]), command[2]);
          if (data.startsWith("size:")) {
            return socket.send(`got ${new TextEncoder().encode(data).length}`);
          }
        }
        socket.send(data);
      };
      socket.onclose = (event) => {
        const close = {
          code: event.code,
          reason: event.reason,
          wasClean: event.wasClean,
        };
        const waiter = waiters.shift();
        if (waiter) waiter(close);
        else closes.push(close);
      };
      socket.onerror = () => {};
      return response;
    },
  );
  return {
    url: `ws://127.0.0.1:${server.addr.port}/`,
    received,
    nextClose() {
      taken++;
      const close = closes.shift();
      if (close) return Promise.resolve(close);
      return bounded(
        new Promise((resolve) => waiters.push(resolve)),
        `the server's close event #${taken}`,
      );
    },
    async discardCloses() {
      await new Promise((resolve) => setTimeout(resolve, 100));
      closes.length = 0;
    },
    async shutdown() {
      await server.shutdown();
    },
  };
}

/**
 * A raw TCP server that completes the opening handshake by hand (RFC 6455
 * §4.2.2) and then runs `behaviour` on the connection, for peers that
 * misbehave in ways `Deno.upgradeWebSocket` can't.
 */
export function startRawServer(
  behaviour: (conn: Deno.Conn) => Promise<void>,
): { url: string; shutdown(): Promise<void> } {
  const listener = Deno.listen({ port: 0, hostname: "127.0.0.1" });
  const handlers = new Set<Promise<void>>();
  let stopped = false;
  const accepting = (async () => {
    for await (const conn of listener) {
      const handled = handle(conn).finally(() => handlers.delete(handled));
      handlers.add(handled);
    }
  })();
  async function handle(conn: Deno.Conn): Promise<void> {
    try {
      let head = "";
      const buffer = new Uint8Array(4096);
      while (!head.includes("\r\n\r\n")) {
        const n = await conn.read(buffer);
        if (n === null) return;
        head += new TextDecoder().decode(buffer.subarray(0, n));
      }
      const key = /sec-websocket-key:\s*(\S+)/i.exec(head)![1];
      const digest = await crypto.subtle.digest(
        "SHA-1",
        new TextEncoder().encode(key + GUID),
      );
      const accept = btoa(String.fromCharCode(...new Uint8Array(digest)));
      await conn.write(
        new TextEncoder().encode(
          "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" +
            `Connection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
        ),
      );
      await behaviour(conn);
    } finally {
      try {
        conn.close();
      } catch {
        // Closed by the behaviour.
      }
    }
  }
  return {
    url: `ws://127.0.0.1:${(listener.addr as Deno.NetAddr).port}/`,
    async shutdown() {
      if (!stopped) {
        stopped = true;
        listener.close();
      }
      await accepting.catch(() => {});
      await Promise.all(handlers);
    },
  };
}

/** A `ws:` URL on a loopback port that nothing listens on. */
export function refusedUrl(): string {
  const listener = Deno.listen({ port: 0, hostname: "127.0.0.1" });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return `ws://127.0.0.1:${port}/`;
}

/** An unmasked text frame, as a server sends it (RFC 6455 §5.2). */
export function serverTextFrame(text: string): Uint8Array {
  const payload = new TextEncoder().encode(text);
  if (payload.length > 125) throw new RangeError("short frames only");
  return new Uint8Array([0x81, payload.length, ...payload]);
}

/**
 * Reads one frame from a client (masked, RFC 6455 §5.3), or `null` when the
 * connection ends first. For the small control frames the tests expect.
 */
export async function readClientFrame(
  conn: Deno.Conn,
): Promise<{ opcode: number; payload: Uint8Array } | null> {
  const bytes: number[] = [];
  const buffer = new Uint8Array(1024);
  const need = async (count: number): Promise<boolean> => {
    while (bytes.length < count) {
      let n: number | null;
      try {
        n = await conn.read(buffer);
      } catch {
        return false;
      }
      if (n === null) return false;
      bytes.push(...buffer.subarray(0, n));
    }
    return true;
  };
  if (!await need(2)) return null;
  const length = bytes[1] & 0x7f;
  if (length > 125) throw new RangeError("small frames only");
  if (!await need(2 + 4 + length)) return null;
  const mask = bytes.slice(2, 6);
  const payload = new Uint8Array(length);
  for (let index = 0; index < length; index++) {
    payload[index] = bytes[6 + index] ^ mask[index % 4];
  }
  return { opcode: bytes[0] & 0x0f, payload };
}

/**
 * Reads every frame a client sends until the connection ends (or `ms`
 * pass), described: `text <text>`, `Close <code>`, `opcode <n>`; then `end`
 * when the connection ended. For the small frames the tests expect.
 */
export async function readClientFramesToEnd(
  conn: Deno.Conn,
  ms = 3000,
): Promise<string[]> {
  const received: number[] = [];
  const buffer = new Uint8Array(4096);
  let ended = false;
  const timer = setTimeout(() => conn.close(), ms);
  try {
    while (true) {
      const n = await conn.read(buffer);
      if (n === null) break;
      received.push(...buffer.subarray(0, n));
    }
    ended = true;
  } catch {
    // Closed by the timer, or reset.
  } finally {
    clearTimeout(timer);
  }
  const frames: string[] = [];
  let at = 0;
  while (received.length - at >= 6) {
    const length = received[at + 1] & 0x7f;
    if (length > 125) throw new RangeError("small frames only");
    const mask = received.slice(at + 2, at + 6);
    const payload = new Uint8Array(
      received.slice(at + 6, at + 6 + length).map((b, i) => b ^ mask[i % 4]),
    );
    const opcode = received[at] & 0x0f;
    frames.push(
      opcode === 0x1
        ? `text ${new TextDecoder().decode(payload)}`
        : opcode === 0x8 && length >= 2
        ? `Close ${(payload[0] << 8) | payload[1]}`
        : `opcode ${opcode}`,
    );
    at += 6 + length;
  }
  if (ended) frames.push("end");
  return frames;
}

/**
 * A raw server playing Autobahn case 3.2 to each client: a text "Hello", a
 * text with RSV2 set (no extension gives it a meaning: RFC 6455 §5.2) and a
 * ping, in one TCP write. `peerSaw` gets, per connection, what the client
 * sent back (see {@linkcode readClientFramesToEnd}).
 */
export function startTextThenViolationServer(): {
  url: string;
  peerSaw: string[][];
  shutdown(): Promise<void>;
} {
  const peerSaw: string[][] = [];
  const server = startRawServer(async (conn) => {
    await conn.write(
      new Uint8Array([
        ...serverTextFrame("Hello"),
        ...[0xa1, 0x05, ...new TextEncoder().encode("World")],
        ...[0x89, 0x04, ...new TextEncoder().encode("ping")],
      ]),
    );
    peerSaw.push(await readClientFramesToEnd(conn));
  });
  return { ...server, peerSaw };
}
