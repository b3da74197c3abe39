/**
 * Load: many concurrent connections (our `connect` clients to our `serve`)
 * exchanging messages: every message echoed exactly once and in order, every
 * client served (no starvation), server RSS bounded and reported.
 *
 * The server runs in this process and the clients in a child process
 * (`_load_clients.ts`): with both ends in one event loop the run is unfair
 * (the clients scheduled first keep the loop, most others never get past
 * their first window), and the RSS figure would mix both ends.
 *
 * The default suite runs a small variant (200 connections, 3 s) with our
 * `connect()` clients. The full one is `deno task test:load`
 * (LOAD_CONNECTIONS=5000 LOAD_SECONDS=30 LOAD_CLIENTS=python) with Python
 * websockets clients (`_load_clients.py`): between two Deno processes, past
 * about 1,400 connections most clients starved before wstream paced its
 * reads (also with Deno's built-in WebSocket on both sides; see the
 * fairness assertion below), so the server under test gets a peer that
 * does not. Each process needs about as many
 * file descriptors as connections (`ulimit -n`).
 *
 * `deno task test:load:fairness` (LOAD_CLIENTS=wstream, LOAD_FAIRNESS=report)
 * runs 5,000 of our clients against our server for 30 s and reports how
 * evenly they were served (the slowest client's echo count ÷ the median)
 * instead of asserting it: a benchmark figure, with every other check kept.
 * The starvation is Deno's, not the WebSocket code's: bench/tcp_starvation.ts
 * shows it with a raw TCP echo and a C client, and explains it (tokio's
 * 128-operation budget per poll of the one task that polls all of a Deno
 * process's ops). wstream paces its reads around it (src/read_pacer.ts):
 * slowest ÷ median 0.80 and 0.77 at 5,000 × 30 s, against 0.06 unpaced.
 *
 * @module
 */

import { assert, assertEquals, assertLess } from "@std/assert";
import { serve } from "../../src/server.ts";
import { PYTHON } from "../interop/_peers.ts";
import type { LoadClientsResult } from "./_load_clients.ts";

const CONNECTIONS = Number(Deno.env.get("LOAD_CONNECTIONS") ?? "200");
const SECONDS = Number(Deno.env.get("LOAD_SECONDS") ?? "3");
// Messages each client keeps in flight.
const WINDOW = 4;
// Who plays the clients: our connect() ("wstream") or Python websockets.
const CLIENTS = Deno.env.get("LOAD_CLIENTS") ?? "wstream";
if (CLIENTS !== "wstream" && CLIENTS !== "python") {
  throw new Error(
    `expected LOAD_CLIENTS to be "wstream" or "python", found "${CLIENTS}"`,
  );
}
// "assert" (the default): no client starves; "report": print the figure only.
const FAIRNESS = Deno.env.get("LOAD_FAIRNESS") ?? "assert";
if (FAIRNESS !== "assert" && FAIRNESS !== "report") {
  throw new Error(
    `expected LOAD_FAIRNESS to be "assert" or "report", found "${FAIRNESS}"`,
  );
}
const MiB = 1 << 20;
// The child gets the run time, plus generous time to open and close every
// connection on a loaded machine; past that it is killed.
const CHILD_TIMEOUT_MS = (SECONDS + 60 + CONNECTIONS / 50) * 1000;

const decoder = new TextDecoder();

Deno.test(
  `load: ${CONNECTIONS} connections for ${SECONDS} s (${CLIENTS} clients in a child process), every message echoed once and in order, ${
    FAIRNESS === "assert"
      ? "every client served"
      : "fairness reported (slowest ÷ median)"
  }`,
  async () => {
    let open = 0;
    let echoedByServer = 0;
    let allOpen!: () => void;
    const allOpened = new Promise<void>((resolve) => allOpen = resolve);
    const server = serve({
      hostname: "127.0.0.1",
      port: 0,
      maxConnections: CONNECTIONS + 10,
    }, async (socket) => {
      if (++open === CONNECTIONS) allOpen();
      // Echo, counting what passes through (cross-checked with the clients).
      await socket.readable.pipeThrough(
        new TransformStream<
          string | Uint8Array,
          string | Uint8Array<ArrayBuffer>
        >({
          transform(message, controller) {
            echoedByServer++;
            // Payloads of received messages own an ArrayBuffer.
            controller.enqueue(message as string | Uint8Array<ArrayBuffer>);
          },
        }),
      ).pipeTo(socket.writable).catch(() => {});
    });
    const url = `ws://127.0.0.1:${server.addr.port}/`;
    const rssStart = Deno.memoryUsage().rss;
    let rssOpen = rssStart;
    let rssPeak = rssStart;
    let heapPeak = 0;
    let externalPeak = 0;
    const sampler = setInterval(() => {
      const usage = Deno.memoryUsage();
      rssPeak = Math.max(rssPeak, usage.rss);
      heapPeak = Math.max(heapPeak, usage.heapTotal);
      externalPeak = Math.max(externalPeak, usage.external);
    }, 100);
    allOpened.then(() => rssOpen = Deno.memoryUsage().rss);

    const clientArgs = [
      url,
      String(CONNECTIONS),
      String(SECONDS),
      String(WINDOW),
    ];
    const child = new Deno.Command(
      CLIENTS === "python" ? PYTHON : Deno.execPath(),
      {
        args: CLIENTS === "python"
          ? [
            new URL("./_load_clients.py", import.meta.url).pathname,
            ...clientArgs,
          ]
          : [
            "run",
            "-A",
            `--import-map=${
              new URL("../../import_map.npm.json", import.meta.url).pathname
            }`,
            new URL("./_load_clients.ts", import.meta.url).pathname,
            ...clientArgs,
          ],
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      },
    ).spawn();
    let killed = false;
    const killer = setTimeout(() => {
      killed = true;
      try {
        Deno.kill(child.pid, "SIGKILL");
      } catch {
        // It ended just now.
      }
    }, CHILD_TIMEOUT_MS);
    let output: Deno.CommandOutput;
    try {
      output = await child.output();
    } finally {
      clearTimeout(killer);
      clearInterval(sampler);
      await server.shutdown();
    }
    const stdout = decoder.decode(output.stdout);
    const stderr = decoder.decode(output.stderr);
    assert(
      !killed,
      `the clients did not finish within ${CHILD_TIMEOUT_MS} ms and were killed (pid ${child.pid}); stderr: ${stderr}`,
    );
    assert(
      output.success,
      `the client process failed (code ${output.code}): ${stderr}`,
    );
    const result: LoadClientsResult = JSON.parse(
      stdout.trim().split("\n").at(-1)!,
    );

    const { counts, sent } = result;
    const total = counts.reduce((a, b) => a + b, 0);
    const sorted = [...counts].sort((a, b) => a - b);
    const percentile = (p: number) =>
      sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
    const kib = (bytes: number) => (bytes / CONNECTIONS / 1024).toFixed(1);
    console.log(
      [
        `  ${result.opened} connections opened in ${
          result.openSeconds.toFixed(2)
        } s`,
        `  ${total} messages echoed in ${result.runSeconds.toFixed(2)} s (${
          Math.round(total / result.runSeconds)
        }/s); per client: min ${sorted[0]}, p10 ${percentile(0.1)}, median ${
          percentile(0.5)
        }, max ${sorted[sorted.length - 1]}; ${
          counts.filter((count) => count <= WINDOW).length
        } clients got no more than their first window; slowest ÷ median ${
          (sorted[0] / percentile(0.5)).toFixed(2)
        }`,
        `  server RSS: ${(rssStart / MiB).toFixed(0)} MiB at start, ${
          (rssOpen / MiB).toFixed(0)
        } MiB with all open (${
          kib(rssOpen - rssStart)
        } KiB per connection), peak ${(rssPeak / MiB).toFixed(0)} MiB (${
          kib(rssPeak - rssStart)
        } KiB per connection)`,
        `  server V8 heap (total) peak ${
          (heapPeak / MiB).toFixed(0)
        } MiB, external peak ${(externalPeak / MiB).toFixed(0)} MiB`,
      ].join("\n"),
    );

    assertEquals(
      result.errors,
      [],
      `${result.errorCount} client failures, the first ones listed`,
    );
    assertEquals(result.opened, CONNECTIONS, "connections opened");
    // Exactly once: each client got back every message it sent (checked in
    // order, one by one, by the child), and the server echoed no more and no
    // fewer messages than the clients sent.
    assertEquals(counts, sent, "echoes received = messages sent, per client");
    assertEquals(echoedByServer, total, "messages echoed by the server");
    assertEquals(
      result.closes.filter((close) => close !== "1000/true"),
      [],
      "every client closed cleanly with 1000",
    );
    // No starvation: every client got past its first window of messages
    // (which is sent before any echo is awaited), and the least served one
    // got at least a tenth of the median. Clients and server in one process
    // failed this badly (5,000 × 30 s: min 4, median 4, max 6,068); in
    // separate processes 200 × 3 s passes with room (min 380, median 388 on
    // a busy 2-core machine). At 5,000 it failed between two Deno processes
    // before wstream paced its reads (min 4, p10 4, median 112), with Deno's
    // built-in WebSocket on both sides too, but not with Python websockets
    // on either side; it started between 1,000 connections (10 s: min 156,
    // median 356) and 2,000 (min 4, p10 4, median 156). Paced: min 86,
    // median 107 (see src/read_pacer.ts).
    if (FAIRNESS === "assert") {
      assert(
        sorted[0] > WINDOW,
        `every client completes more than its first window (${WINDOW}) of round trips: min ${
          sorted[0]
        }, median ${percentile(0.5)}`,
      );
      assert(
        sorted[0] * 10 >= percentile(0.5),
        `the least served client got at least a tenth of the median: min ${
          sorted[0]
        }, median ${percentile(0.5)}`,
      );
    }
    // The server alone, but V8's heap grows with the garbage of the traffic
    // (5,000 × 30 s: peak 1,140 MiB from 125 MiB): a generous bound (256 MiB,
    // plus 256 KiB a connection) that still catches a per-connection buffer
    // that never shrinks (1 MiB each), or unbounded growth.
    assertLess(
      rssPeak - rssStart,
      256 * MiB + CONNECTIONS * 256 * 1024,
      "server RSS growth",
    );
  },
);
