/**
 * The servers of bench/idle_floor.ts: how much memory an idle WebSocket
 * connection costs in Deno with nothing of wstream's, step by step, beside
 * wstream's and the built-in server's. Each runs in its own process and
 * prints `{"port": N}`; on SIGUSR2 it writes `Deno.memoryUsage()` (after no
 * collection) as one JSON line to the file named by `IDLE_FLOOR_STATS`, and
 * a heap snapshot (after a full collection) to `IDLE_FLOOR_SNAPSHOT` when set.
 *
 *     deno run -A bench/_idle_floor_peer.ts accept    # handshake, then hold the conn
 *     deno run -A bench/_idle_floor_peer.ts read      # + a pending 256 B conn.read
 *     deno run -A bench/_idle_floor_peer.ts streams   # + a ReadableStream, a WritableStream and pipeTo
 *     deno run -A bench/_idle_floor_peer.ts wstream   # serve(), readable.pipeTo(writable)
 *     deno run -A bench/_idle_floor_peer.ts builtin   # Deno.serve + Deno.upgradeWebSocket
 *
 * The floor's handshake is the least RFC 6455 §4.2.2 asks: read the head,
 * SHA-1 the key with `crypto.subtle.digest`, answer 101.
 *
 * @module
 */

import { startServer } from "./_echo_peer.ts";

const hostname = "127.0.0.1";
const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const encoder = new TextEncoder();
const decoder = new TextDecoder();

function report(value: Record<string, unknown>): void {
  console.log(JSON.stringify(value));
}

// Reads the request head; resolves with the bytes after it (none here).
async function handshake(conn: Deno.Conn): Promise<void> {
  const head = new Uint8Array(4096);
  let length = 0;
  let text = "";
  while (!text.includes("\r\n\r\n")) {
    const count = await conn.read(head.subarray(length));
    if (count === null) throw new Error("EOF in the request head");
    length += count;
    text = decoder.decode(head.subarray(0, length));
  }
  const key = text.match(/^sec-websocket-key:\s*(\S+)/im)?.[1] ?? "";
  const digest = await crypto.subtle.digest(
    "SHA-1",
    encoder.encode(key + GUID),
  );
  const accept = btoa(String.fromCharCode(...new Uint8Array(digest)));
  const response = encoder.encode(
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" +
      `Connection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
  );
  let written = 0;
  while (written < response.length) {
    written += await conn.write(response.subarray(written));
  }
}

// A pending read that reads again when bytes come (the idle load sends none).
function readForever(conn: Deno.Conn): void {
  const buffer = new Uint8Array(256);
  const next = (): void => {
    conn.read(buffer).then((count) => {
      if (count === null) conn.close();
      else next();
    }, () => {});
  };
  next();
}

// Two WHATWG streams over the connection and a pipe between them, as an
// echo handler holds them: the readable pulls through a pending read.
function streamsOver(conn: Deno.Conn): void {
  const buffer = new Uint8Array(256);
  const readable = new ReadableStream<Uint8Array>({
    pull(controller) {
      return conn.read(buffer).then((count) => {
        if (count === null) controller.close();
        else controller.enqueue(buffer.slice(0, count));
      });
    },
  }, { highWaterMark: 0 });
  const writable = new WritableStream<Uint8Array>({
    async write(chunk) {
      await conn.write(chunk);
    },
  });
  readable.pipeTo(writable).catch(() => {}).finally(() => {
    try {
      conn.close();
    } catch {
      // Closed already.
    }
  });
}

async function floor(step: string): Promise<void> {
  const listener = Deno.listen({ hostname, port: 0 });
  report({ port: (listener.addr as Deno.NetAddr).port });
  for await (const conn of listener) {
    handshake(conn).then(() => {
      if (step === "read") readForever(conn);
      else if (step === "streams") streamsOver(conn);
    }, () => conn.close());
  }
}

const statsFile = Deno.env.get("IDLE_FLOOR_STATS");
const snapshotFile = Deno.env.get("IDLE_FLOOR_SNAPSHOT");
if (statsFile || snapshotFile) {
  const { writeHeapSnapshot } = snapshotFile
    ? await import("node:v8")
    : { writeHeapSnapshot: undefined };
  Deno.addSignalListener("SIGUSR2", () => {
    if (statsFile) {
      Deno.writeTextFileSync(
        statsFile,
        JSON.stringify(Deno.memoryUsage()) + "\n",
      );
    }
    if (snapshotFile) writeHeapSnapshot!(snapshotFile);
  });
}

const kind = Deno.args[0];
switch (kind) {
  case "accept":
  case "read":
  case "streams":
    await floor(kind);
    break;
  case "wstream":
  case "builtin":
    // The very servers bench:echo measures.
    await startServer(kind);
    break;
  default:
    throw new Error(
      `expected accept|read|streams|wstream|builtin, found "${kind}"`,
    );
}
