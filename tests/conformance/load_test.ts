/**
 * Load: many concurrent connections (our `connect` clients to our `serve`)
 * exchanging messages: every message echoed exactly once and in order, RSS
 * bounded and reported.
 *
 * The default suite runs a small variant (200 connections, 3 s). The full
 * one is `deno task test:load` (LOAD_CONNECTIONS=5000 LOAD_SECONDS=30);
 * both ends run in this process, so it needs about 2 × connections file
 * descriptors (`ulimit -n`).
 *
 * @module
 */

import { assert, assertEquals, assertLess } from "@std/assert";
import { connect } from "../../src/client.ts";
import type { WebSocketConnection } from "../../src/connection.ts";
import { serve } from "../../src/server.ts";

const CONNECTIONS = Number(Deno.env.get("LOAD_CONNECTIONS") ?? "200");
const SECONDS = Number(Deno.env.get("LOAD_SECONDS") ?? "3");
// Messages each client keeps in flight.
const WINDOW = 4;
const MiB = 1 << 20;

Deno.test(`load: ${CONNECTIONS} connections for ${SECONDS} s, every message echoed once and in order`, async () => {
  const server = serve({
    hostname: "127.0.0.1",
    port: 0,
    maxConnections: CONNECTIONS + 10,
  }, (socket) => socket.readable.pipeTo(socket.writable).catch(() => {}));
  const url = `ws://127.0.0.1:${server.addr.port}/`;
  const rssStart = Deno.memoryUsage().rss;

  // Open in batches so the accept queue doesn't overflow.
  const sockets: WebSocketConnection[] = [];
  const openStarted = performance.now();
  for (let i = 0; i < CONNECTIONS; i += 100) {
    const batch = Math.min(100, CONNECTIONS - i);
    sockets.push(
      ...await Promise.all(
        Array.from({ length: batch }, () => connect(url)),
      ),
    );
  }
  const openSeconds = (performance.now() - openStarted) / 1000;
  const rssOpen = Deno.memoryUsage().rss;

  let stop = false;
  let rssPeak = rssOpen;
  const sampler = setInterval(() => {
    rssPeak = Math.max(rssPeak, Deno.memoryUsage().rss);
  }, 100);
  const timer = setTimeout(() => stop = true, SECONDS * 1000);
  const counts = new Array<number>(CONNECTIONS).fill(0);
  const runStarted = performance.now();
  await Promise.all(sockets.map(async (socket, index) => {
    const writer = socket.writable.getWriter();
    const reader = socket.readable.getReader();
    let sent = 0;
    let received = 0;
    // Text and binary alternate; the content names the client and the
    // sequence number, so a lost, doubled or reordered echo is caught.
    const message = (n: number): string | Uint8Array<ArrayBuffer> =>
      n % 2 === 0
        ? `client ${index} message ${n}`
        : new TextEncoder().encode(`client ${index} binary ${n}`);
    while (sent < WINDOW) await writer.write(message(sent++));
    while (received < sent) {
      const { value, done } = await reader.read();
      assert(!done, `client ${index}: the socket closed early`);
      assertEquals(value, message(received), `client ${index}, #${received}`);
      received++;
      if (!stop) await writer.write(message(sent++));
    }
    counts[index] = received;
    reader.releaseLock();
    await writer.close();
    const result = await socket.closed;
    assertEquals([result.closeCode, result.wasClean], [1000, true]);
  }));
  const runSeconds = (performance.now() - runStarted) / 1000;
  clearTimeout(timer);
  clearInterval(sampler);
  await server.shutdown();

  const total = counts.reduce((a, b) => a + b, 0);
  const sorted = [...counts].sort((a, b) => a - b);
  const slowest = sorted[0];
  const percentile = (p: number) =>
    sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
  console.log(
    [
      `  ${CONNECTIONS} connections opened in ${openSeconds.toFixed(2)} s`,
      `  ${total} messages echoed in ${runSeconds.toFixed(2)} s (${
        Math.round(total / runSeconds)
      }/s); per client: min ${slowest}, p10 ${percentile(0.1)}, median ${
        percentile(0.5)
      }, max ${sorted[sorted.length - 1]}`,
      `  RSS: ${(rssStart / MiB).toFixed(0)} MiB at start, ${
        (rssOpen / MiB).toFixed(0)
      } MiB with all open, peak ${(rssPeak / MiB).toFixed(0)} MiB (${
        ((rssPeak - rssStart) / CONNECTIONS / 1024).toFixed(1)
      } KiB per connection, both ends)`,
    ].join("\n"),
  );
  assert(slowest > 0, "every client got its echoes");
  // Both ends in one process, and V8's heap grows with the garbage of the
  // traffic: a generous bound (256 MiB, plus 256 KiB a connection) that
  // still catches a per-connection buffer that never shrinks (1 MiB each),
  // or unbounded growth.
  assertLess(
    rssPeak - rssStart,
    256 * MiB + CONNECTIONS * 256 * 1024,
    "RSS growth",
  );
});
