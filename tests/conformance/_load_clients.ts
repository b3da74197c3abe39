/**
 * The client side of load_test.ts, run in its own process so the server
 * under test does not share an event loop with its clients (in one process
 * the clients that happen to be scheduled first keep the loop and most of
 * the others never get past their first window of messages).
 *
 * Usage: deno run -A _load_clients.ts <url> <connections> <seconds> <window>
 *
 * Opens `connections` clients with `connect()` (in batches of 100), each
 * keeps `window` messages in flight for `seconds`, text and binary
 * alternating; every echo is checked against what was sent (the content
 * names the client and the sequence number, so a lost, doubled or
 * reordered echo is caught). Then every client closes with 1000.
 *
 * Prints one JSON line: {@linkcode LoadClientsResult}.
 *
 * @module
 */

import { connect } from "../../src/client.ts";
import type { WebSocketConnection } from "../../src/connection.ts";

/** What the child prints (one JSON line on stdout). */
export interface LoadClientsResult {
  /** Clients that opened. */
  opened: number;
  /** Seconds to open them all. */
  openSeconds: number;
  /** Seconds from the first message to the last client's close. */
  runSeconds: number;
  /** Echoes received (and checked) by each client, by index. */
  counts: number[];
  /** Messages sent by each client, by index. */
  sent: number[];
  /** `closeCode/wasClean` of each client, by index. */
  closes: string[];
  /** The first few failures (wrong echo, early close, error), if any. */
  errors: string[];
  /** How many failures in all. */
  errorCount: number;
}

const [url, connectionsArg, secondsArg, windowArg] = Deno.args;
const CONNECTIONS = Number(connectionsArg);
const SECONDS = Number(secondsArg);
const WINDOW = Number(windowArg);
if (!url || !(CONNECTIONS > 0) || !(SECONDS > 0) || !(WINDOW > 0)) {
  throw new Error(
    "usage: _load_clients.ts <url> <connections> <seconds> <window>",
  );
}

const encoder = new TextEncoder();
const errors: string[] = [];
let errorCount = 0;
function fail(message: string): void {
  errorCount++;
  if (errors.length < 20) errors.push(message);
}

const message = (
  index: number,
  n: number,
): string | Uint8Array<ArrayBuffer> =>
  n % 2 === 0
    ? `client ${index} message ${n}`
    : encoder.encode(`client ${index} binary ${n}`);

function same(a: unknown, b: string | Uint8Array): boolean {
  if (typeof b === "string") return a === b;
  if (!(a instanceof Uint8Array) || a.length !== b.length) return false;
  for (let i = 0; i < b.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function show(value: unknown): string {
  return value instanceof Uint8Array
    ? `binary ${JSON.stringify(new TextDecoder().decode(value))}`
    : JSON.stringify(value);
}

// Open in batches so the server's accept queue doesn't overflow.
const sockets: WebSocketConnection[] = [];
const openStarted = performance.now();
for (let i = 0; i < CONNECTIONS; i += 100) {
  const batch = Math.min(100, CONNECTIONS - i);
  const results = await Promise.allSettled(
    Array.from({ length: batch }, () => connect(url)),
  );
  for (const result of results) {
    if (result.status === "fulfilled") sockets.push(result.value);
    else fail(`connect: ${result.reason}`);
  }
}
const openSeconds = (performance.now() - openStarted) / 1000;

let stop = false;
const timer = setTimeout(() => stop = true, SECONDS * 1000);
const counts = new Array<number>(sockets.length).fill(0);
const sentCounts = new Array<number>(sockets.length).fill(0);
const closes = new Array<string>(sockets.length).fill("none");
const runStarted = performance.now();
await Promise.all(sockets.map(async (socket, index) => {
  try {
    const writer = socket.writable.getWriter();
    const reader = socket.readable.getReader();
    let sent = 0;
    let received = 0;
    while (sent < WINDOW) await writer.write(message(index, sent++));
    sentCounts[index] = sent;
    while (received < sent) {
      const { value, done } = await reader.read();
      if (done) {
        fail(`client ${index}: the socket closed after ${received} echoes`);
        break;
      }
      const expected = message(index, received);
      if (!same(value, expected)) {
        fail(
          `client ${index}, echo #${received}: expected ${
            show(expected)
          }, found ${show(value)}`,
        );
        break;
      }
      received++;
      counts[index] = received;
      if (!stop) {
        await writer.write(message(index, sent++));
        sentCounts[index] = sent;
      }
    }
    reader.releaseLock();
    await writer.close();
    const result = await socket.closed;
    closes[index] = `${result.closeCode}/${result.wasClean}`;
  } catch (error) {
    fail(`client ${index}: ${error}`);
    socket.close();
  }
}));
const runSeconds = (performance.now() - runStarted) / 1000;
clearTimeout(timer);

const result: LoadClientsResult = {
  opened: sockets.length,
  openSeconds,
  runSeconds,
  counts,
  sent: sentCounts,
  closes,
  errors,
  errorCount,
};
console.log(JSON.stringify(result));
