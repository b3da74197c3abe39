/**
 * Minimal program showing that Deno starves most of thousands of busy TCP
 * connections, without any WebSocket code (issue 18, "fairness and tails").
 *
 *     deno run --import-map=import_map.npm.json -A bench/tcp_starvation.ts                 # Deno echo, 5,000 × 4
 *     deno run --import-map=import_map.npm.json -A bench/tcp_starvation.ts --paced         # same, reads paced by setTimeout(0) turns
 *     deno run --import-map=import_map.npm.json -A bench/tcp_starvation.ts --adaptive      # same, paced as wstream paces them
 *     deno run --import-map=import_map.npm.json -A bench/tcp_starvation.ts --c             # control: the C echo server
 *     deno run --import-map=import_map.npm.json -A bench/tcp_starvation.ts --conns 1000 --window 1
 *
 * A raw TCP echo server (a `conn.read` / `conn.write` loop per connection)
 * runs in this process; the C load generator (bench/loadgen, `--raw`) keeps
 * WINDOW 64-byte messages in flight on each of CONNS connections for 10 s
 * and reports how many echoes each connection got. Every second the server
 * prints how many of its connections it read from in that second.
 *
 * Seen on a 2-core Linux machine shared with other work (Deno 2.9.6),
 * 5,000 × 4, 8 s: the C echo server (`--c`) serves every connection evenly
 * (427,000 echoes/s; echoes per connection min 680, median 684); this Deno
 * server reads from only 350–1,000 of its 5,000 connections in a second,
 * and the load generator counts min 0, p10 0, median 8 (294,000 echoes/s,
 * nearly all to a few connections). With `conn.readable.pipeTo(conn.writable)`
 * exactly 128 connections were served each second. Python asyncio is fair
 * with the same load generator (min 120, median 144), and a Deno TCP client
 * against the C echo server starves the same way (median 0): it is in Deno,
 * on either end. 1,000 × 1: min 12, p10 161, median 817.
 *
 * Why (from reading deno_core and tokio, consistent with the figures): every
 * pending op of a Deno process (all 5,000 socket reads) is polled inside one
 * tokio task (deno_core's FuturesUnordered op driver), and tokio's
 * cooperative budget lets a task complete only 128 I/O operations per poll;
 * a socket polled after the budget is spent returns Pending and is woken
 * again only when the current-thread scheduler parks (every 61 task polls
 * when busy), and there the I/O driver's fresh readiness wakes are queued
 * first and the budget-deferred wakes after them. A socket that missed the
 * budget once thus waits behind every socket that becomes readable afresh;
 * while more than 128 of those come each round (a saturated process with a
 * closed-loop peer: the served connections answer fast and become readable
 * again), it is never served. The 128 connections of the `pipeTo` variant
 * are that budget.
 *
 * `--paced` lets at most 64 read completions proceed per setTimeout(0) turn
 * (the rest wait in a FIFO for later turns): the process then parks between
 * turns, the deferred wakes run with few fresh ones ahead of them, and every
 * connection is served evenly (5,000 × 4: min = median = 212, 134,000
 * echoes/s). A turn that does not idle the process (setImmediate, a
 * MessageChannel) does not help (median 0). A setTimeout(0) turn takes
 * ~2.2 ms in Deno 2.9.6 whether nested or not (a 1 ms minimum rounded up
 * by tokio's millisecond timer wheel; not HTML's 4 ms clamp after 5 nested
 * timers), so timer pacing caps the read rate: 1,000 × 1 is fair (min 267,
 * median 268) but at 33,000 echoes/s against 115,000 unpaced.
 *
 * `--adaptive` (`--per-round N`, default wstream's READS_PER_ROUND) is what
 * wstream does (src/read_pacer.ts): at most N read completions proceed per
 * round, a round being one batch of op completions (it ends with a
 * microtask queued by its first completion); the others wait in a FIFO and
 * go first in later rounds, with a setTimeout(0) only when no completion
 * comes. Below N completions a round nothing waits; under saturation the
 * admitted reads plus their writes stay under the budget, so the deferred
 * reads are served. Seen (a loaded 2-core machine, 6 s runs): 5,000 × 4,
 * N = 16: min 264, median 268 (222,000 echoes/s); N = 24: 336 / 336
 * (280,000/s); N = 32: 320 / 324 (268,000/s); N = 40: 112 / 136; N = 48:
 * 0 / 0, against 0 / 0 (93,000/s) unpaced. 1,000 × 1, N = 16: 536 / 536 at
 * 89,000/s (p99 19 ms) against 24 / 540 at 99,000/s (p99 145 ms) unpaced.
 * Pacing the next read's start instead (process and answer every
 * completion, then wait) was fair but half as fast (N = 32: 128 / 136,
 * 114,000/s): the answers to all completions still spend the budget.
 *
 * @module
 */

import { buildLoadgen, echoLoadArgs, runLoadgen } from "./echo_e2e.ts";
import { ReadPacer, READS_PER_ROUND } from "../src/read_pacer.ts";

const PACED_READS_PER_TURN = 64;

function parseOptions(args: string[]) {
  const options = {
    conns: 5000,
    window: 4,
    duration: 10,
    server: "deno",
    perRound: READS_PER_ROUND,
  };
  for (let i = 0; i < args.length; i++) {
    const flag = args[i];
    if (flag === "--paced") options.server = "paced";
    else if (flag === "--c") options.server = "c";
    else if (flag === "--adaptive") options.server = "adaptive";
    else if (flag === "--per-round") options.perRound = Number(args[++i]);
    else if (flag === "--conns") options.conns = Number(args[++i]);
    else if (flag === "--window") options.window = Number(args[++i]);
    else if (flag === "--duration") options.duration = Number(args[++i]);
    else {
      throw new Error(
        `unknown option "${flag}"; expected --paced, --adaptive, --per-round N, --c, --conns N, --window W or --duration S`,
      );
    }
  }
  return options;
}

/** FIFO of reads waiting for a later setTimeout(0) turn (`--paced`). */
class TimerPacer {
  #used = 0;
  #scheduled = false;
  readonly #waiting: (() => void)[] = [];

  /** Resolves when this read completion may proceed. */
  admit(): Promise<void> | undefined {
    if (!this.#scheduled) this.#schedule();
    if (this.#used < PACED_READS_PER_TURN && this.#waiting.length === 0) {
      this.#used++;
      return undefined;
    }
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  #schedule(): void {
    this.#scheduled = true;
    setTimeout(() => this.#turn(), 0);
  }

  #turn(): void {
    this.#used = 0;
    while (this.#waiting.length > 0 && this.#used < PACED_READS_PER_TURN) {
      this.#used++;
      this.#waiting.shift()!();
    }
    if (this.#used > 0) this.#schedule();
    else this.#scheduled = false;
  }
}

async function echo(
  conn: Deno.Conn,
  counts: number[],
  index: number,
  pacer: TimerPacer | ReadPacer | undefined,
): Promise<void> {
  const buffer = new Uint8Array(64 * 1024);
  try {
    for (;;) {
      const n = await conn.read(buffer);
      if (n === null) break;
      const wait = pacer?.admit();
      if (wait) await wait;
      counts[index]++;
      let written = 0;
      while (written < n) {
        written += await conn.write(buffer.subarray(written, n));
      }
    }
  } catch {
    // The load generator closed the connection.
  }
  conn.close();
}

function startDenoServer(kind: string, perRound: number) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const counts: number[] = [];
  let last: number[] = [];
  const reporter = setInterval(() => {
    const served = counts.filter((count, i) => count !== (last[i] ?? 0));
    console.error(
      `server: read from ${served.length} of ${counts.length} connections in the last second`,
    );
    last = counts.slice();
  }, 1000);
  const pacer = kind === "paced"
    ? new TimerPacer()
    : kind === "adaptive"
    ? new ReadPacer(perRound)
    : undefined;
  (async () => {
    for await (const conn of listener) {
      conn.setNoDelay(true);
      counts.push(0);
      echo(conn, counts, counts.length - 1, pacer);
    }
  })().catch(() => {});
  return {
    port: listener.addr.port,
    pid: Deno.pid,
    stop() {
      clearInterval(reporter);
      listener.close();
    },
  };
}

function startCServer(cEcho: string, port: number) {
  const child = new Deno.Command(cEcho, {
    args: ["tcp", String(port)],
    stdout: "null",
    stderr: "null",
  }).spawn();
  return {
    port,
    pid: child.pid,
    async stop() {
      child.kill("SIGTERM");
      await child.status;
    },
  };
}

if (import.meta.main) {
  const options = parseOptions(Deno.args);
  const { loadgen, cEcho } = await buildLoadgen();
  const server = options.server === "c"
    ? startCServer(cEcho, 30000 + Math.floor(Math.random() * 20000))
    : startDenoServer(options.server, options.perRound);
  // The C server needs a moment to listen.
  await new Promise((resolve) => setTimeout(resolve, 300));
  let cell;
  try {
    cell = await runLoadgen(
      loadgen,
      echoLoadArgs({
        port: server.port,
        pid: server.pid,
        raw: true,
        conns: options.conns,
        window: options.window,
        durationSeconds: options.duration,
        warmupSeconds: 2,
      }),
      (options.duration + 60) * 1000,
    );
  } finally {
    // Stopped whatever the load generator did, so no server outlives us.
    await server.stop();
  }
  const raw = cell.raw as Record<string, number> | undefined;
  if (!raw) throw new Error(`the load generator gave no result: ${cell.note}`);
  console.log(
    `${options.server} server, ${options.conns} connections × ${options.window} in flight: ` +
      `${Math.round(raw.msgs_per_s)} echoes/s, p99 ${
        (raw.p99_us / 1000).toFixed(1)
      } ms; echoes per connection: min ${raw.per_conn_min}, p10 ${raw.per_conn_p10}, median ${raw.per_conn_median}` +
      (cell.note ? ` (${cell.note})` : ""),
  );
  Deno.exit(0);
}
