/**
 * Fan-out benchmark (issue 14): one publisher and N subscribers on
 * loopback; a message is complete when all N subscribers have it.
 *
 *     deno task bench:fanout                 # about 3 minutes
 *     deno task bench:fanout --quick         # about 1.5 minutes
 *     deno task bench:fanout --servers bun,hub --workloads n1000-64 --json out.json
 *
 * Servers, each in its own process, fresh for every workload: Deno's
 * built-in server with a `send()` loop over its sockets, npm `ws` (on Deno)
 * with the broadcast loop of its README, Bun's `server.publish` (npm `bun`,
 * an outside reference), a hand-written `write()` loop over wstream writers,
 * and wstream's `Hub` (bench/_fanout_peer.ts, bench/_bun_peer.ts).
 *
 * The C load generator (bench/loadgen, `--fanout`) plays every client: the
 * N subscribers (epoll, one thread, every delivery checked: order, length,
 * every payload byte) and the publisher, one WebSocket client connection
 * whose messages the server publishes to the topic. Every server therefore
 * does the same work per message: read one frame, send it to N sockets. The
 * publisher keeps `--window` messages incomplete (default 32): each
 * completion sends the next, so every server runs saturated with the same
 * number of messages in flight. Latency is full delivery: from queueing a
 * message on the publisher's connection to its arrival at the last
 * subscriber (with a fixed window, throughput and latency are two views of
 * the same run). See bench/loadgen/fanout.h for the protocol.
 *
 * Options: `--quick`, `--duration S` (default 5), `--warmup S` (default 1),
 * `--window W` (default 32), `--repeat N` (medians of N runs, default 1),
 * `--servers a,b` (of builtin,ws,bun,loop,hub,redis, and floor: a bare
 * `conn.write` loop, bench/_fanout_floor.ts, run only when named), `--workloads a,b` (of the
 * ids below), `--json FILE` (raw results).
 *
 * @module
 */

import { redisAvailable, startRedis } from "../tests/_redis_server.ts";
import {
  buildLoadgen,
  lastJsonLine,
  loadAverage,
  loadBeforeRun,
  outputWithin,
  printTable,
  type RunningServer,
  serverCommand,
  startServer,
} from "./echo_e2e.ts";

const PEER = new URL("./_fanout_peer.ts", import.meta.url).pathname;
const FLOOR = new URL("./_fanout_floor.ts", import.meta.url).pathname;

const SERVERS = [
  "builtin",
  "ws",
  "bun",
  "loop",
  "hub",
  "redis",
  "floor",
] as const;
/** Run only when asked for (`--servers ...,floor`): not a library. */
const ON_REQUEST = ["floor"];
const SERVER_NAMES: Record<string, string> = {
  builtin: "Deno built-in loop",
  ws: "npm ws loop (Deno)",
  bun: "Bun publish",
  loop: "wstream writer loop",
  hub: "wstream Hub",
  redis: "Hub via Redis (2 processes)",
  floor: "Deno floor (conn.write)",
};
/** Ratios printed: [kind, baseline]. */
const RATIOS: [string, string][] = [
  ["hub", "bun"],
  ["hub", "builtin"],
  ["redis", "bun"],
  ["loop", "bun"],
  ["loop", "builtin"],
  ["floor", "bun"],
  ["hub", "floor"],
];

interface Workload {
  id: string;
  label: string;
  subscribers: number;
  size: number;
}
const WORKLOADS: Workload[] = [
  { id: "n100-64", label: "N = 100, 64 B", subscribers: 100, size: 64 },
  { id: "n1000-64", label: "N = 1,000, 64 B", subscribers: 1000, size: 64 },
  {
    id: "n1000-1k",
    label: "N = 1,000, 1 KiB",
    subscribers: 1000,
    size: 1024,
  },
  { id: "n5000-64", label: "N = 5,000, 64 B", subscribers: 5000, size: 64 },
];
/** The workload whose server peak RSS is reported. */
const RSS_WORKLOAD = "n5000-64";

interface Options {
  duration: number;
  warmup: number;
  window: number;
  repeat: number;
  servers: string[];
  workloads: string[];
  json?: string;
}

const NUMBER_FLAGS = {
  "--duration": "duration",
  "--warmup": "warmup",
  "--window": "window",
  "--repeat": "repeat",
} as const;
const LIST_FLAGS = {
  "--servers": ["servers", SERVERS],
  "--workloads": ["workloads", WORKLOADS.map((w) => w.id)],
} as const;

function parseOptions(args: string[]): Options {
  const options: Options = {
    duration: 5,
    warmup: 1,
    window: 32,
    repeat: 1,
    servers: SERVERS.filter((kind) => !ON_REQUEST.includes(kind)),
    workloads: WORKLOADS.map((w) => w.id),
  };
  for (let i = 0; i < args.length; i++) {
    const [flag, inline] = args[i].split("=", 2);
    const value = () => inline ?? args[++i] ?? "";
    if (flag === "--quick") {
      options.duration = 2;
      options.warmup = 0.5;
    } else if (flag === "--json") {
      options.json = value();
    } else if (flag in NUMBER_FLAGS) {
      options[NUMBER_FLAGS[flag as keyof typeof NUMBER_FLAGS]] = Number(
        value(),
      );
    } else if (flag in LIST_FLAGS) {
      const [field, allowed] = LIST_FLAGS[flag as keyof typeof LIST_FLAGS];
      const items = value().split(",");
      const wrong = items.find((item) =>
        !(allowed as readonly string[]).includes(item)
      );
      if (wrong !== undefined) {
        throw new Error(
          `expected ${field} from ${allowed.join(",")}, found "${wrong}"`,
        );
      }
      options[field] = items;
    } else {
      throw new Error(
        `unknown option "${args[i]}"; expected --quick, --json FILE, ` +
          [...Object.keys(NUMBER_FLAGS), ...Object.keys(LIST_FLAGS)].join(
            ", ",
          ),
      );
    }
  }
  const whole = (n: number) => Number.isInteger(n) && n >= 1;
  if (
    !(options.duration > 0) || !(options.warmup >= 0) ||
    !whole(options.window) || !whole(options.repeat)
  ) {
    throw new Error(
      "expected --duration > 0, --warmup >= 0, --window and --repeat whole " +
        `numbers >= 1, found ${options.duration}, ${options.warmup}, ` +
        `${options.window} and ${options.repeat}`,
    );
  }
  return options;
}

/** What loadgen --fanout prints (see bench/loadgen/fanout.h). */
interface FanoutResult {
  completed_per_s: number;
  deliveries_per_s: number;
  p50_us: number;
  p99_us: number;
  sent: number;
  lost: number;
  torn: number;
  duplicate: number;
  stray: number;
  missing: number;
  connection_errors: number;
  errors: number;
  client_cpu_pct: number;
  server_cpu_pct: number;
  server_peak_rss_kb: number;
  error?: string;
}

interface Run {
  result?: FanoutResult;
  /** Why there is no result, or what went wrong in it. */
  note?: string;
}

/**
 * The server processes of kind: one, or for "redis" a redis-server and two
 * hub processes on it (the subscribers' first, then the publisher's).
 */
async function startServers(
  kind: string,
): Promise<
  { servers: RunningServer[]; stop(): Promise<void> } | { skip: string }
> {
  if (kind !== "redis") {
    const command = kind === "floor"
      ? await serverCommand(kind, FLOOR, [], "fanout")
      : await serverCommand(kind, PEER, [kind], "fanout");
    if ("skip" in command) return command;
    const server = await startServer(kind, command);
    return "skip" in server ? server : { servers: [server], stop: server.stop };
  }
  if (!await redisAvailable()) {
    return { skip: "redis-server not found (apt-get install redis-server)" };
  }
  const redis = await startRedis();
  const servers: RunningServer[] = [];
  const stop = async () => {
    for (const server of servers) await server.stop();
    await redis.kill();
  };
  try {
    for (let i = 0; i < 2; i++) {
      const command = await serverCommand(
        kind,
        PEER,
        ["redis", redis.url],
        "fanout",
      );
      const server = "skip" in command
        ? command
        : await startServer(kind, command);
      if ("skip" in server) {
        await stop();
        return server;
      }
      servers.push(server);
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return { servers, stop };
}

/** One workload on a fresh server process of kind. */
async function measure(
  loadgen: string,
  kind: string,
  workload: Workload,
  options: Options,
): Promise<Run | { skip: string }> {
  const started = await startServers(kind);
  if ("skip" in started) return started;
  const [server, publisherServer] = started.servers;
  try {
    const child = new Deno.Command(loadgen, {
      args: [
        "--port",
        String(server.port),
        "--pid",
        String(server.pid),
        ...(publisherServer
          ? ["--pub-port", String(publisherServer.port)]
          : []),
        "--fanout",
        String(workload.subscribers),
        "--size",
        String(workload.size),
        "--window",
        String(options.window),
        "--duration",
        String(options.duration),
        "--warmup",
        String(options.warmup),
      ],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    // loadgen bounds itself (opening, priming, draining, closing); this is
    // the backstop.
    const limitMs =
      (options.duration + options.warmup + 60 + workload.subscribers / 100) *
      1000;
    const output = await outputWithin(child, limitMs);
    if (output.timedOut) return { note: `killed after ${limitMs / 1000} s` };
    const result = lastJsonLine(output.stdout) as FanoutResult | undefined;
    const stderr = output.stderr.trim().split("\n").slice(0, 3).join(" | ");
    if (!result || result.error) {
      return { note: `loadgen failed: ${result?.error ?? stderr}` };
    }
    return {
      result,
      note: result.errors > 0
        ? `lost ${result.lost}, torn ${result.torn}, duplicate ${result.duplicate}, ` +
          `stray ${result.stray}, missing ${result.missing}, connection errors ` +
          `${result.connection_errors}: ${stderr}`
        : undefined,
    };
  } finally {
    await started.stop();
  }
}

function median(values: number[]): number | undefined {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (sorted.length === 0) return undefined;
  const middle = sorted.length >> 1;
  return sorted.length % 2
    ? sorted[middle]
    : (sorted[middle - 1] + sorted[middle]) / 2;
}

function rate(value: number | undefined): string {
  if (value === undefined) return "—";
  return value >= 1e6
    ? `${(value / 1e6).toFixed(2)}M`
    : value >= 1e3
    ? `${(value / 1e3).toFixed(1)}k`
    : value.toFixed(0);
}

function ms(us: number | undefined): string {
  if (us === undefined) return "—";
  const value = us / 1000;
  return value >= 100 ? value.toFixed(0) : value.toFixed(value >= 10 ? 1 : 2);
}

function ratio(a: number | undefined, b: number | undefined): string {
  return a === undefined || b === undefined || !(b > 0)
    ? "—"
    : `${(a / b).toFixed(2)}×`;
}

type Results = Record<string, Record<string, Run[]>>;

/** The median of field over the runs of kind on workload. */
function pick(
  results: Results,
  kind: string,
  workload: string,
  field: keyof FanoutResult,
): number | undefined {
  return median(
    (results[kind]?.[workload] ?? []).flatMap((run) =>
      run.result ? [run.result[field] as number] : []
    ),
  );
}

function printResults(results: Results, options: Options): void {
  const kinds = options.servers.filter((kind) => results[kind]);
  const workloads = WORKLOADS.filter((w) => options.workloads.includes(w.id));
  const ratios = RATIOS.filter(([a, b]) =>
    kinds.includes(a) && kinds.includes(b)
  );
  const flag = (kind: string, id: string) =>
    results[kind]?.[id]?.some((run) => run.note) ? " !" : "";
  console.log(
    "\nDeliveries/s (completed messages/s): loadgen --fanout, " +
      `${options.window} messages in flight\n`,
  );
  printTable(
    [
      "workload",
      ...kinds.map((kind) => SERVER_NAMES[kind]),
      ...ratios.map(([a, b]) => `${a} ÷ ${b}`),
    ],
    workloads.map((w) => [
      w.label,
      ...kinds.map((kind) =>
        `${rate(pick(results, kind, w.id, "deliveries_per_s"))} (${
          rate(pick(results, kind, w.id, "completed_per_s"))
        })${flag(kind, w.id)}`
      ),
      ...ratios.map(([a, b]) =>
        ratio(
          pick(results, a, w.id, "deliveries_per_s"),
          pick(results, b, w.id, "deliveries_per_s"),
        )
      ),
    ]),
  );
  const p99Ratios = ratios.filter(([, b]) => b === "bun");
  console.log("\nFull-delivery latency, p50 / p99 (ms)\n");
  printTable(
    [
      "workload",
      ...kinds.map((kind) => SERVER_NAMES[kind]),
      ...p99Ratios.map(([a, b]) => `p99 ${a} ÷ ${b}`),
    ],
    workloads.map((w) => [
      w.label,
      ...kinds.map((kind) =>
        `${ms(pick(results, kind, w.id, "p50_us"))} / ${
          ms(pick(results, kind, w.id, "p99_us"))
        }`
      ),
      ...p99Ratios.map(([a, b]) =>
        ratio(
          pick(results, a, w.id, "p99_us"),
          pick(results, b, w.id, "p99_us"),
        )
      ),
    ]),
  );
  console.log("\nServer and load generator\n");
  const kb = (kind: string) =>
    pick(results, kind, RSS_WORKLOAD, "server_peak_rss_kb");
  const cpu = (kind: string, field: keyof FanoutResult) => {
    const values = workloads.map((w) => pick(results, kind, w.id, field))
      .filter((value) => value !== undefined);
    return values.length ? `${Math.round(Math.max(...values))}%` : "—";
  };
  printTable(
    ["", ...kinds.map((kind) => SERVER_NAMES[kind])],
    [
      [
        "server peak RSS, N = 5,000 (MiB)",
        ...kinds.map((kind) => {
          const value = kb(kind);
          return value === undefined || value < 0
            ? "—"
            : `${(value / 1024).toFixed(0)}`;
        }),
      ],
      [
        "server CPU, highest of the workloads",
        ...kinds.map((kind) => cpu(kind, "server_cpu_pct")),
      ],
      [
        "loadgen CPU, highest of the workloads",
        ...kinds.map((kind) => cpu(kind, "client_cpu_pct")),
      ],
      [
        "messages sent; lost, torn, duplicate, missing",
        ...kinds.map((kind) => {
          const runs = Object.values(results[kind]).flat();
          const sum = (field: keyof FanoutResult) =>
            runs.reduce(
              (total, run) => total + Number(run.result?.[field] ?? 0),
              0,
            );
          return `${sum("sent")}; ${sum("lost")}, ${sum("torn")}, ${
            sum("duplicate")
          }, ${sum("missing")}`;
        }),
      ],
    ],
  );
  if (kb("hub") !== undefined && kb("builtin") !== undefined) {
    console.log(
      `\nserver peak RSS at N = 5,000: hub ÷ built-in ${
        ratio(kb("hub"), kb("builtin"))
      }`,
    );
  }
  for (const kind of kinds) {
    for (const w of workloads) {
      for (const run of results[kind][w.id] ?? []) {
        if (run.note) {
          console.log(`! ${SERVER_NAMES[kind]}, ${w.label}: ${run.note}`);
        }
      }
    }
  }
}

if (import.meta.main) {
  const options = parseOptions(Deno.args);
  const loadBefore = loadBeforeRun();
  const { loadgen } = await buildLoadgen();
  console.error(
    `fan-out benchmark: ${options.servers.length} servers × ${options.workloads.length} workloads × ${options.repeat}; about ${
      Math.ceil(
        options.servers.length * options.workloads.length * options.repeat *
          (options.duration + options.warmup + 6) / 60,
      )
    } min`,
  );
  const results: Results = {};
  for (const kind of options.servers) {
    for (const w of WORKLOADS.filter((w) => options.workloads.includes(w.id))) {
      for (let repetition = 0; repetition < options.repeat; repetition++) {
        const run = await measure(loadgen, kind, w, options);
        if ("skip" in run) {
          console.error(`${SERVER_NAMES[kind]}: skipped (${run.skip})`);
          break;
        }
        ((results[kind] ??= {})[w.id] ??= []).push(run);
        const r = run.result;
        console.error(
          `${SERVER_NAMES[kind]}, ${w.label}: ` +
            (r
              ? `${rate(r.deliveries_per_s)} deliveries/s, ${
                rate(r.completed_per_s)
              } msg/s, p50 ${ms(r.p50_us)} ms, p99 ${ms(r.p99_us)} ms, ` +
                `server CPU ${Math.round(r.server_cpu_pct)}%, loadgen CPU ${
                  Math.round(r.client_cpu_pct)
                }%`
              : "no result") +
            (run.note ? ` (${run.note})` : ""),
        );
      }
      if (!results[kind]) break; // skipped
    }
  }
  printResults(results, options);
  console.log(
    `\n${Deno.build.target}, deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} cores; ` +
      `duration ${options.duration} s, warmup ${options.warmup} s, window ${options.window}, ` +
      `median of ${options.repeat} run(s); load average ${loadBefore} before, ${loadAverage()} after`,
  );
  if (options.json) {
    await Deno.writeTextFile(
      options.json,
      JSON.stringify({ options, deno: Deno.version.deno, results }, null, 2),
    );
  }
}
