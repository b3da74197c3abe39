/**
 * Tail latency under load (issue 18, `deno task test:load:latency`): 1,000
 * connections with one 64-byte message in flight each, as fast as the
 * server answers, against each echo server in its own process (the echo
 * benchmark's servers, bench/_echo_peer.ts). The C load generator
 * (bench/loadgen) plays the clients, so the figures are the server's.
 * Prints messages/s and the round-trip p50 / p99 / p99.9 of each server,
 * and the ratio of each p99 to the built-in server's in the same run, and
 * how evenly the connections were served (the fewest echoes any connection
 * got in the measured window ÷ the median).
 *
 *     deno task test:load:latency                     # builtin and wstream, 10 s each
 *     deno task test:load:latency --servers builtin,wstream,ws,bun --duration 20
 *     deno task test:load:latency --conns 5000 --window 4 --duration 30   # fairness, C clients
 *     deno task test:load:latency --servers tcp,bun --conns 5000 --window 4
 *
 * `tcp` is Deno's raw TCP echo (no WebSocket): with 5,000 connections × 4
 * in flight, most of its connections get no echo at all while a few get
 * them all, as with every Deno server here, while Bun serves every
 * connection evenly with the same load generator: the starvation is in
 * Deno's scheduling of socket reads, below any WebSocket code
 * (bench/tcp_starvation.ts shows it alone and explains it).
 *
 * A benchmark, not a test: it asserts nothing about time, and fails only
 * when the load generator reports errors (a lost or wrong echo, a dropped
 * connection).
 *
 * @module
 */

import {
  buildLoadgen,
  type Cell,
  echoLoadArgs,
  loadAverage,
  printTable,
  runLoadgen,
  startServer,
} from "./echo_e2e.ts";

// tcp: Deno's raw TCP echo (conn.readable.pipeTo(conn.writable)), no
// WebSocket at all: the Deno floor that the others are judged against.
const SERVERS = ["builtin", "wstream", "ws", "bun", "tcp"];
function parseOptions(args: string[]) {
  const options = {
    duration: 10,
    warmup: 2,
    conns: 1000,
    window: 1,
    servers: ["builtin", "wstream"],
  };
  for (let i = 0; i < args.length; i++) {
    const [flag, inline] = args[i].split("=", 2);
    const value = inline ?? args[++i] ?? "";
    if (flag === "--duration") options.duration = Number(value);
    else if (flag === "--warmup") options.warmup = Number(value);
    else if (flag === "--conns") options.conns = Number(value);
    else if (flag === "--window") options.window = Number(value);
    else if (flag === "--servers") options.servers = value.split(",");
    else {
      throw new Error(
        `unknown option "${
          args[i]
        }"; expected --duration S, --warmup S, --conns N, --window W or --servers LIST`,
      );
    }
  }
  const unknown = options.servers.find((kind) => !SERVERS.includes(kind));
  if (unknown !== undefined) {
    throw new Error(
      `expected servers from ${SERVERS.join(",")}, found "${unknown}"`,
    );
  }
  const whole = (n: number) => Number.isInteger(n) && n >= 1;
  if (
    !(options.duration > 0) || !(options.warmup >= 0) ||
    !whole(options.conns) || !whole(options.window)
  ) {
    throw new Error(
      "expected --duration > 0, --warmup >= 0, --conns and --window whole " +
        `numbers >= 1, found ${options.duration}, ${options.warmup}, ` +
        `${options.conns} and ${options.window}`,
    );
  }
  return options;
}

if (import.meta.main) {
  const options = parseOptions(Deno.args);
  const loadBefore = loadAverage();
  const { loadgen } = await buildLoadgen();
  const runs: Record<string, Cell> = {};
  for (const kind of options.servers) {
    const server = await startServer(kind);
    if ("skip" in server) {
      console.error(`${kind}: skipped (${server.skip})`);
      continue;
    }
    try {
      runs[kind] = await runLoadgen(
        loadgen,
        echoLoadArgs({
          port: server.port,
          pid: server.pid,
          raw: kind === "tcp",
          conns: options.conns,
          window: options.window,
          durationSeconds: options.duration,
          warmupSeconds: options.warmup,
        }),
        (options.duration + options.warmup + 60) * 1000,
      );
    } finally {
      await server.stop();
    }
    const raw = runs[kind].raw as Record<string, number> | undefined;
    console.error(
      `${kind}: ${
        raw
          ? `${Math.round(raw.msgs_per_s)} msg/s, p99 ${
            (raw.p99_us / 1000).toFixed(1)
          } ms`
          : "no result"
      }${runs[kind].note ? ` (${runs[kind].note})` : ""}`,
    );
  }
  const field = (kind: string, name: string) =>
    (runs[kind]?.raw as Record<string, number> | undefined)?.[name];
  const ms = (us: number | undefined) =>
    us === undefined ? "—" : (us / 1000).toFixed(us >= 100_000 ? 0 : 1);
  const base = field("builtin", "p99_us");
  console.log(
    `\n${options.conns} connections × ${options.window} message(s) of 64 B in flight (loadgen → echo server)\n`,
  );
  printTable(
    [
      "server",
      "msg/s",
      "p50 (ms)",
      "p99 (ms)",
      "p99.9 (ms)",
      "server CPU",
      "echoes per conn.: min / median",
      "p99 ÷ built-in",
    ],
    Object.keys(runs).map((kind) => {
      const p99 = field(kind, "p99_us");
      return [
        kind + (runs[kind].note ? " !" : ""),
        String(Math.round(field(kind, "msgs_per_s") ?? NaN)),
        ms(field(kind, "p50_us")),
        ms(p99),
        ms(field(kind, "p999_us")),
        `${Math.round(field(kind, "server_cpu_pct") ?? NaN)}%`,
        `${field(kind, "per_conn_min")} / ${field(kind, "per_conn_median")}`,
        p99 !== undefined && base ? `${(p99 / base).toFixed(2)}×` : "—",
      ];
    }),
  );
  console.log(
    `\nduration ${options.duration} s, warmup ${options.warmup} s; load average ${loadBefore} before, ${loadAverage()} after`,
  );
  const failed = Object.entries(runs).filter(([, run]) => run.note);
  for (const [kind, run] of failed) console.error(`${kind}: ${run.note}`);
  if (failed.length) Deno.exit(1);
}
