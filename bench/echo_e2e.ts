/**
 * End-to-end echo benchmark (issue 7): wstream's server against Deno's
 * built-in WebSocket server, npm `ws` on Deno, a raw TCP `pipeTo` echo and
 * Bun's server (npm `bun`, an outside reference), each in its own process,
 * driven in turn by the C load generator in `bench/loadgen/` (epoll,
 * pipelined, pre-built masked frames: never the bottleneck). Then the client side: wstream's `connect()` against
 * Deno's built-in `WebSocket` client (and npm `ws`) talking to `c_echo`.
 *
 *     deno task bench:echo               # a few seconds per workload (about 3 minutes)
 *     deno task bench:echo --quick       # about 1 minute
 *     deno task bench:echo --duration 10 --servers builtin,wstream --json out.json
 *
 * Options: `--quick`, `--duration S` (measured seconds per workload, default
 * 5), `--warmup S` (default 1), `--repeat N` (runs of the whole
 * matrix, each on fresh server processes; the table shows medians; default 1), `--servers a,b` (of builtin,ws,tcp,wstream,wstream-unheld,bun,upgrade,ws-http,handleUpgrade:
 * wstream-unheld echoes with a writer taken and let go per message, so the
 * peer's Close finds `writable` free, as a handler that only reads does
 * (run only when named);
 * the last three are the adapters and their peer, npm ws's handleUpgrade on
 * the same node:http server),
 * `--workloads a,b` (of the ids below), `--clients a,b` (of builtin,ws,wstream;
 * `--clients none` skips the client side), `--json FILE` (raw results).
 *
 * Workload `stream-256MiB` (issue 17) is wstream against itself: one 256 MiB
 * message echoed as a stream (`messages: "stream"`), beside the same
 * message sent whole with `maxMessageBytes` raised, each side in its own
 * process (MB/s, each side's peak RSS; see `stream_echo.ts`, also
 * `deno task bench:stream [MiB]`). Only it:
 * `--workloads stream-256MiB --servers none --clients none`.
 *
 * The load generator is built with `make` (gcc) into
 * `$XDG_CACHE_HOME/wstream-loadgen` (default `~/.cache/wstream-loadgen`),
 * never into the repository; Bun comes from npm (see `_bun.ts`). Every child process is killed by its own PID
 * when it outlives its time limit; all traffic stays on 127.0.0.1.
 *
 * @module
 */

import { findBun } from "./_bun.ts";
import { type LargeMessageRow, largeMessageRows } from "./stream_echo.ts";

const PEER = new URL("./_echo_peer.ts", import.meta.url).pathname;
const BUN_PEER = new URL("./_bun_peer.ts", import.meta.url).pathname;
const IMPORT_MAP = new URL("../import_map.npm.json", import.meta.url).pathname;
const LOADGEN_SOURCE = new URL("./loadgen/", import.meta.url).pathname;
const LOADGEN_FILES = [
  "Makefile",
  "loadgen.c",
  "fanout.h",
  "c_echo.c",
  "wscommon.h",
];

const SERVERS = [
  "builtin",
  "ws",
  "tcp",
  "wstream",
  "wstream-unheld",
  "bun",
  "upgrade",
  "ws-http",
  "handleUpgrade",
] as const;
/** Run only when asked for (`--servers ...,wstream-unheld`): it measures
 * one closing path. */
const ON_REQUEST = ["wstream-unheld"];
const SERVER_NAMES: Record<string, string> = {
  builtin: "Deno built-in",
  ws: "npm ws (Deno)",
  tcp: "raw TCP pipeTo",
  wstream: "wstream",
  "wstream-unheld": "wstream, echo not holding writable",
  upgrade: "wstream upgrade() in Deno.serve",
  "ws-http": "npm ws on node:http (Deno)",
  handleUpgrade: "wstream handleUpgrade() on node:http (Deno)",
  bun: "Bun (npm bun)",
};
const CLIENTS = ["builtin", "ws", "wstream"] as const;

interface Workload {
  id: string;
  label: string;
  unit: string;
  /** Lower is better (memory rows). */
  lower?: boolean;
  /** loadgen arguments; idle mode needs the server PID. */
  args(pid: number, options: Options): string[];
  metric(result: Record<string, number>): number;
  /** Raw TCP has no WebSocket handshake. */
  wsOnly?: boolean;
}

const WORKLOADS: Workload[] = [
  {
    id: "idle",
    label: "RSS per idle connection (2,000 held)",
    unit: "KB",
    lower: true,
    args: (
      pid,
      o,
    ) => ["--idle", "2000", "--pid", String(pid), "--hold", String(o.warmup)],
    metric: (r) => r.rss_per_conn_bytes / 1000,
  },
  {
    id: "handshakes",
    label: "handshakes/s (8 concurrent)",
    unit: "hs/s",
    wsOnly: true,
    args: (_, o) => ["--handshakes", "--concurrency", "8", ...timing(o)],
    metric: (r) => r.handshakes_per_s,
  },
  {
    id: "64B-1x64",
    label: "1 conn, 64 in flight, 64 B",
    unit: "msg/s",
    args: (
      _,
      o,
    ) => ["--conns", "1", "--window", "64", "--size", "64", ...timing(o)],
    metric: (r) => r.msgs_per_s,
  },
  {
    id: "64B-64x16",
    label: "64 conns, 16 in flight each, 64 B",
    unit: "msg/s",
    args: (
      _,
      o,
    ) => ["--conns", "64", "--window", "16", "--size", "64", ...timing(o)],
    metric: (r) => r.msgs_per_s,
  },
  {
    id: "64KiB-1x8",
    label: "1 conn, 8 in flight, 64 KiB",
    unit: "MB/s",
    args: (
      _,
      o,
    ) => ["--conns", "1", "--window", "8", "--size", "65536", ...timing(o)],
    metric: (r) => r.mb_per_s,
  },
  {
    id: "1MiB-1x2",
    label: "1 conn, 2 in flight, 1 MiB",
    unit: "MB/s",
    args: (
      _,
      o,
    ) => ["--conns", "1", "--window", "2", "--size", "1048576", ...timing(o)],
    metric: (r) => r.mb_per_s,
  },
];
// Not a loadgen workload: one large message, streamed and whole.
const LARGE_MESSAGE_WORKLOAD = "stream-256MiB";
const LARGE_MESSAGE_MIB = 256;
const WORKLOAD_IDS = [...WORKLOADS.map((w) => w.id), LARGE_MESSAGE_WORKLOAD];

const PEAK_RSS: Workload = {
  id: "peak-rss",
  label: "peak RSS over the whole matrix",
  unit: "MiB",
  lower: true,
  args: () => [],
  metric: (r) => r.peak_rss_mib,
};

const CLIENT_WORKLOADS = [
  {
    id: "client-64B",
    label: "client, 64 B, 64 in flight",
    size: 64,
    window: 64,
    unit: "msg/s",
  },
  {
    id: "client-64KiB",
    label: "client, 64 KiB, 8 in flight",
    size: 65536,
    window: 8,
    unit: "MB/s",
  },
] as const;

interface Options {
  duration: number;
  warmup: number;
  /** Runs per workload; the table shows their median. */
  repeat: number;
  servers: string[];
  workloads: string[];
  clients: string[];
  json?: string;
}

function timing(o: Options): string[] {
  return ["--duration", String(o.duration), "--warmup", String(o.warmup)];
}

function parseOptions(args: string[]): Options {
  const options: Options = {
    duration: 5,
    warmup: 1,
    repeat: 1,
    servers: SERVERS.filter((kind) => !ON_REQUEST.includes(kind)),
    workloads: [...WORKLOAD_IDS],
    clients: [...CLIENTS],
  };
  const list = (value: string, allowed: readonly string[], what: string) => {
    if (value === "none") return [];
    const items = value.split(",");
    for (const item of items) {
      if (!allowed.includes(item)) {
        throw new Error(
          `expected ${what} from ${allowed.join(",")}, found "${item}"`,
        );
      }
    }
    return items;
  };
  for (let i = 0; i < args.length; i++) {
    const [flag, inline] = args[i].split("=", 2);
    const value = () => inline ?? args[++i];
    switch (flag) {
      case "--quick":
        options.duration = 1;
        options.warmup = 0.5;
        break;
      case "--duration":
        options.duration = Number(value());
        break;
      case "--warmup":
        options.warmup = Number(value());
        break;
      case "--repeat":
        options.repeat = Number(value());
        break;
      case "--servers":
        options.servers = list(value(), SERVERS, "servers");
        break;
      case "--workloads":
        options.workloads = list(value(), WORKLOAD_IDS, "workloads");
        break;
      case "--clients":
        options.clients = list(value(), CLIENTS, "clients");
        break;
      case "--json":
        options.json = value();
        break;
      default:
        throw new Error(
          `unknown option "${
            args[i]
          }"; expected --quick, --duration S, --warmup S, ` +
            "--servers LIST, --workloads LIST, --clients LIST or --json FILE",
        );
    }
  }
  if (
    !(options.duration > 0) || !(options.warmup >= 0) ||
    !(Number.isInteger(options.repeat) && options.repeat >= 1)
  ) {
    throw new Error(
      "expected --duration > 0, --warmup >= 0 and --repeat a whole number >= 1, found " +
        `${options.duration}, ${options.warmup} and ${options.repeat}`,
    );
  }
  return options;
}

/** Copies loadgen's sources into the cache directory and runs make there. */
export async function buildLoadgen(): Promise<
  { loadgen: string; cEcho: string }
> {
  const home = Deno.env.get("HOME") ?? Deno.cwd();
  const dir = `${
    Deno.env.get("XDG_CACHE_HOME") ?? `${home}/.cache`
  }/wstream-loadgen`;
  await Deno.mkdir(dir, { recursive: true });
  for (const file of LOADGEN_FILES) {
    const source = await Deno.readFile(LOADGEN_SOURCE + file).catch(() => {
      throw new Error(
        `expected the load generator at ${LOADGEN_SOURCE}${file}: not found`,
      );
    });
    const cached = await Deno.readFile(`${dir}/${file}`).catch(() => undefined);
    // Rewrite only changed files, so make rebuilds only what changed.
    if (
      !cached || cached.length !== source.length ||
      !cached.every((b, i) => b === source[i])
    ) {
      await Deno.writeFile(`${dir}/${file}`, source);
    }
  }
  const make = await new Deno.Command("make", {
    args: ["-s", "-C", dir],
    stdout: "piped",
  })
    .output()
    .catch((error) => {
      throw new Error(
        `expected make and gcc to build the load generator: ${error.message}`,
      );
    });
  if (!make.success) {
    throw new Error(`make in ${dir} failed (exit code ${make.code})`);
  }
  return { loadgen: `${dir}/loadgen`, cEcho: `${dir}/c_echo` };
}

/** Signals child (by its own PID); a child that already exited is fine. */
export function kill(child: Deno.ChildProcess, signal: Deno.Signal): void {
  try {
    child.kill(signal);
  } catch {
    // already gone
  }
}

/** Kills child by its PID if it has not exited after ms; resolves with its output. */
export async function outputWithin(
  child: Deno.ChildProcess,
  ms: number,
): Promise<
  { stdout: string; stderr: string; code: number; timedOut: boolean }
> {
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    kill(child, "SIGKILL");
  }, ms);
  const output = await child.output();
  clearTimeout(timer);
  const text = new TextDecoder();
  return {
    stdout: text.decode(output.stdout),
    stderr: text.decode(output.stderr),
    code: output.code,
    timedOut,
  };
}

export function lastJsonLine(
  text: string,
): Record<string, unknown> | undefined {
  const line = text.trim().split("\n").at(-1);
  if (!line) return undefined;
  try {
    return JSON.parse(line);
  } catch {
    return undefined;
  }
}

/** A server process started by {@linkcode startServer}. */
export interface RunningServer {
  pid: number;
  port: number;
  stop(): Promise<void>;
}

/** A program and its arguments. */
export interface Command {
  path: string;
  args: string[];
}

/**
 * How to start a server of kind: Bun runs `_bun_peer.ts bunMode`, every
 * other kind is `deno run` of peer with peerArgs.
 */
export async function serverCommand(
  kind: string,
  peer: string,
  peerArgs: string[],
  bunMode: "echo" | "fanout",
): Promise<Command | { skip: string }> {
  if (kind === "bun") {
    const bun = await findBun();
    return "skip" in bun ? bun : { path: bun.path, args: [BUN_PEER, bunMode] };
  }
  return {
    path: Deno.execPath(),
    args: ["run", "-A", `--import-map=${IMPORT_MAP}`, peer, ...peerArgs],
  };
}

/**
 * Starts a server process (the echo server of kind unless command says
 * otherwise); resolves with its port, or a reason to skip it.
 */
export async function startServer(
  kind: string,
  command?: Command,
): Promise<RunningServer | { skip: string }> {
  const how = command ??
    await serverCommand(kind, PEER, ["server", kind], "echo");
  if ("skip" in how) return how;
  const child = new Deno.Command(how.path, {
    args: how.args,
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const stop = async () => {
    kill(child, "SIGTERM");
    const timer = setTimeout(() => {
      kill(child, "SIGKILL");
    }, 3000);
    await child.status;
    clearTimeout(timer);
  };
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${kind} server did not start in 30 s`)),
      30_000,
    );
  });
  try {
    while (!text.includes("\n")) {
      const { value, done } = await Promise.race([reader.read(), timeout]);
      if (done) {
        throw new Error(`${kind} server exited before reporting its port`);
      }
      text += value;
    }
  } catch (error) {
    await stop();
    throw error;
  } finally {
    clearTimeout(timer);
  }
  // Keep draining stdout so the server never blocks on a full pipe.
  (async () => {
    while (!(await reader.read()).done);
  })().catch(() => {});
  const line = JSON.parse(text.slice(0, text.indexOf("\n")));
  if (line.skip) {
    await stop();
    return { skip: line.skip };
  }
  return { pid: child.pid, port: line.port, stop };
}

/** VmHWM (peak resident set) of a process, in MiB. */
export async function peakRssMiB(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const kb = Number(status.match(/^VmHWM:\s+(\d+) kB/m)?.[1]);
  return kb / 1024;
}

/** One measurement: its value, and loadgen's raw JSON line. */
export interface Cell {
  value?: number;
  /** value ÷ the measured process's CPU share (1.0 = one core busy). */
  perCpu?: number;
  note?: string;
  raw?: Record<string, unknown>;
}

/** Sets perCpu from cpuPct, the measured process's CPU % over the window. */
function withPerCpu(cell: Cell, cpuPct: unknown): Cell {
  if (cell.value !== undefined && typeof cpuPct === "number" && cpuPct > 0) {
    cell.perCpu = cell.value / (cpuPct / 100);
  }
  return cell;
}

/** Several runs of one measurement as one cell: the median of their values. */
function summarize(runs: Cell[]): Cell & { runs: Cell[] } {
  const median = (pick: (run: Cell) => number | undefined) => {
    const values = runs.flatMap((run) => pick(run) ?? [])
      .sort((a, b) => a - b);
    const middle = values.length >> 1;
    return values.length === 0
      ? undefined
      : values.length % 2
      ? values[middle]
      : (values[middle - 1] + values[middle]) / 2;
  };
  return {
    value: median((run) => run.value),
    perCpu: median((run) => run.perCpu),
    note: runs.find((run) => run.note)?.note,
    runs,
  };
}

/** Runs one measurement `times` times; the cell's value is the median. */
async function repeated(
  times: number,
  measure: () => Promise<Cell>,
): Promise<Cell & { runs: Cell[] }> {
  const runs: Cell[] = [];
  for (let i = 0; i < times; i++) runs.push(await measure());
  return summarize(runs);
}

/** A saturated echo load of 64 B messages, as `loadgen` takes it. */
export interface EchoLoad {
  port: number;
  /** The server's PID, whose CPU loadgen reports. */
  pid: number;
  /** Plain TCP echo rather than WebSocket frames. */
  raw?: boolean;
  conns: number;
  /** Messages in flight per connection. */
  window: number;
  durationSeconds: number;
  warmupSeconds: number;
}

/** loadgen's arguments for an echo load of 64 B messages. */
export function echoLoadArgs(load: EchoLoad): string[] {
  return [
    "--port",
    String(load.port),
    "--pid",
    String(load.pid),
    ...(load.raw ? ["--raw"] : []),
    "--conns",
    String(load.conns),
    "--window",
    String(load.window),
    "--size",
    "64",
    "--duration",
    String(load.durationSeconds),
    "--warmup",
    String(load.warmupSeconds),
  ];
}

export async function runLoadgen(
  loadgen: string,
  args: string[],
  limitMs: number,
): Promise<Cell> {
  const child = new Deno.Command(loadgen, {
    args,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output = await outputWithin(child, limitMs);
  const raw = lastJsonLine(output.stdout) as Record<string, number> | undefined;
  const stderr = output.stderr.trim().split("\n").slice(0, 3).join(" | ");
  if (output.timedOut) return { note: `killed after ${limitMs / 1000} s` };
  if (!raw || "error" in raw) {
    return { note: `loadgen failed: ${raw?.error ?? stderr}`, raw };
  }
  const cell: Cell = { raw };
  if (raw.errors > 0) cell.note = `${raw.errors} errors: ${stderr}`;
  return cell;
}

function format(value: number | undefined, unit: string): string {
  if (value === undefined || !Number.isFinite(value)) return "—";
  if (unit === "msg/s" || unit === "hs/s") {
    return value >= 1e6
      ? `${(value / 1e6).toFixed(2)}M`
      : value >= 1e3
      ? `${(value / 1e3).toFixed(1)}k`
      : value.toFixed(0);
  }
  return value >= 100 ? value.toFixed(0) : value.toFixed(1);
}

function ratio(a: number | undefined, b: number | undefined): string {
  if (a === undefined || b === undefined || !(b > 0) || !Number.isFinite(a)) {
    return "—";
  }
  return `${(a / b).toFixed(2)}×`;
}

export function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) =>
    Math.max(h.length, ...rows.map((r) => r[i].length))
  );
  const line = (cells: string[]) =>
    "| " +
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i])))
      .join(" | ") +
    " |";
  console.log(line(header));
  console.log(
    "|" +
      widths.map((w, i) =>
        (i === 0 ? "-" : "") + "-".repeat(w + 1) + (i === 0 ? "" : ":")
      ).join("|") + "|",
  );
  for (const row of rows) console.log(line(row));
}

/**
 * Prints one figure per kind and row, then each kind's ratio to each
 * baseline kind (baselines themselves get no ratio columns).
 */
function printMatrix(
  title: string,
  rows: readonly { id: string; label: string; unit: string }[],
  kinds: string[],
  baselines: string[],
  results: Record<string, Record<string, Cell>>,
  pick: (cell: Cell) => number | undefined,
): void {
  const value = (kind: string, id: string) => {
    const cell = results[kind]?.[id];
    return cell ? pick(cell) : undefined;
  };
  const compared = kinds.filter((kind) => !baselines.includes(kind));
  const present = baselines.filter((kind) => kinds.includes(kind));
  console.log(`\n${title}\n`);
  printTable(
    [
      "workload",
      ...kinds.map((kind) => SERVER_NAMES[kind]),
      ...compared.flatMap((kind) =>
        present.map((base) => `${kind} ÷ ${SERVER_NAMES[base]}`)
      ),
    ],
    rows.map((row) => [
      `${row.label} (${row.unit})`,
      ...kinds.map((kind) =>
        format(value(kind, row.id), row.unit) +
        (results[kind]?.[row.id]?.note ? " !" : "")
      ),
      ...compared.flatMap((kind) =>
        present.map((base) => ratio(value(kind, row.id), value(base, row.id)))
      ),
    ]),
  );
}

async function serverMatrix(loadgen: string, options: Options) {
  const workloads = WORKLOADS.filter((w) => options.workloads.includes(w.id));
  const results: Record<string, Record<string, Cell>> = {};
  for (const kind of options.servers) {
    // Each repetition runs the whole matrix on a fresh server process, so
    // the idle-connection RSS and the peak RSS start from a clean heap.
    const runs: Record<string, Cell[]> = {};
    for (let repetition = 0; repetition < options.repeat; repetition++) {
      const server = await startServer(kind);
      if ("skip" in server) {
        console.error(`${SERVER_NAMES[kind]}: skipped (${server.skip})`);
        break;
      }
      try {
        for (const workload of workloads) {
          if (workload.wsOnly && kind === "tcp") continue;
          const args = [
            "--port",
            String(server.port),
            "--pid",
            String(server.pid),
            ...(kind === "tcp" ? ["--raw"] : []),
            ...workload.args(server.pid, options),
          ];
          // loadgen bounds itself; this is the backstop (opening 2,000
          // connections, closing, startup).
          const limitMs = (options.duration + options.warmup + 30) * 1000;
          const run = await runLoadgen(loadgen, args, limitMs);
          if (run.raw && !run.raw.error) {
            run.value = workload.metric(run.raw as Record<string, number>);
            if (!workload.lower) withPerCpu(run, run.raw.server_cpu_pct);
          }
          (runs[workload.id] ??= []).push(run);
          console.error(
            `${SERVER_NAMES[kind]}: ${workload.label}: ${
              format(run.value, workload.unit)
            } ${workload.unit}` +
              (run.note ? ` (${run.note})` : ""),
          );
        }
        const peak = await peakRssMiB(server.pid);
        (runs[PEAK_RSS.id] ??= []).push({
          value: peak,
          raw: { peak_rss_mib: peak },
        });
      } finally {
        await server.stop();
      }
    }
    results[kind] = Object.fromEntries(
      Object.entries(runs).map(([id, cells]) => [id, summarize(cells)]),
    );
  }
  printMatrix(
    "Servers (loadgen → echo server on 127.0.0.1; memory rows: lower is better)",
    [...workloads, PEAK_RSS],
    options.servers,
    ["builtin", "tcp", "ws-http"],
    results,
    (cell) => cell.value,
  );
  printMatrix(
    "Servers per CPU-second of the server (figure ÷ the server's CPU share " +
      "over the window: efficiency, not speed)",
    workloads.filter((w) => !w.lower),
    options.servers,
    ["builtin", "tcp", "ws-http"],
    results,
    (cell) => cell.perCpu,
  );
  return results;
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

/** One client process against the echo server at url. */
async function runClient(
  kind: string,
  url: string,
  workload: { size: number; window: number; unit: string },
  options: Options,
): Promise<Cell | { skip: string }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      `--import-map=${IMPORT_MAP}`,
      PEER,
      "client",
      kind,
      url,
      String(workload.size),
      String(workload.window),
      String(options.duration),
      String(options.warmup),
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output = await outputWithin(
    child,
    (options.duration + options.warmup + 30) * 1000,
  );
  const raw = lastJsonLine(output.stdout) as Record<string, number> | undefined;
  if (raw && "skip" in raw) return { skip: String(raw.skip) };
  if (!raw || output.code !== 0) {
    const stderr = output.stderr.trim().split("\n").slice(0, 3).join(" | ");
    return { note: `failed: ${stderr}` };
  }
  return withPerCpu(
    { raw, value: workload.unit === "MB/s" ? raw.mb_per_s : raw.msgs_per_s },
    raw.client_cpu_pct,
  );
}

async function clientMatrix(cEcho: string, options: Options) {
  const port = freePort();
  const echo = new Deno.Command(cEcho, {
    args: ["ws", String(port)],
    stdout: "null",
    stderr: "piped",
  })
    .spawn();
  const results: Record<string, Record<string, Cell>> = {};
  try {
    // c_echo prints "listening" on stderr once it accepts connections.
    const reader = echo.stderr.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    const killer = setTimeout(() => kill(echo, "SIGKILL"), 5000);
    while (!text.includes("listening")) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`c_echo did not start in 5 s: ${text}`);
      text += value;
    }
    clearTimeout(killer);
    reader.releaseLock();
    echo.stderr.cancel().catch(() => {});
    const url = `ws://127.0.0.1:${port}/`;
    for (const kind of options.clients) {
      results[kind] = {};
      for (const w of CLIENT_WORKLOADS) {
        let skip: string | undefined;
        const cell = await repeated(options.repeat, async () => {
          const run = await runClient(kind, url, w, options);
          if ("skip" in run) skip = run.skip;
          return "skip" in run ? {} : run;
        });
        if (skip) {
          console.error(`client ${kind}: skipped (${skip})`);
          break;
        }
        results[kind][w.id] = cell;
        console.error(
          `client ${kind}: ${w.label}: ${
            format(cell.value, w.unit)
          } ${w.unit}` +
            (cell.note ? ` (${cell.note})` : ""),
        );
      }
    }
  } finally {
    kill(echo, "SIGTERM");
    await echo.status;
  }
  printMatrix(
    "Clients (client in its own deno process → c_echo ws on 127.0.0.1)",
    CLIENT_WORKLOADS,
    options.clients,
    ["builtin"],
    results,
    (cell) => cell.value,
  );
  printMatrix(
    "Clients per CPU-second of the client process",
    CLIENT_WORKLOADS,
    options.clients,
    ["builtin"],
    results,
    (cell) => cell.perCpu,
  );
  return results;
}

/** The 1-minute load average: other work on the machine skews every figure. */
export function loadAverage(): string {
  try {
    return Deno.readTextFileSync("/proc/loadavg").split(" ")[0];
  } catch {
    return "?";
  }
}

/**
 * The load average before a run, with a warning on stderr when other work
 * is running (above 0.5).
 */
export function loadBeforeRun(): string {
  const load = loadAverage();
  if (Number(load) > 0.5) {
    console.error(
      `warning: load average ${load} before the run; figures will be noisy`,
    );
  }
  return load;
}

if (import.meta.main) {
  const options = parseOptions(Deno.args);
  const loadBefore = loadBeforeRun();
  const loadgenWorkloads = options.workloads.filter((id) =>
    id !== LARGE_MESSAGE_WORKLOAD
  );
  const runServers = options.servers.length > 0 && loadgenWorkloads.length > 0;
  const { loadgen, cEcho } = runServers || options.clients.length > 0
    ? await buildLoadgen()
    : { loadgen: "", cEcho: "" };
  const perServer = options.repeat * loadgenWorkloads.length *
    (options.duration + options.warmup + 2);
  const perClient = options.repeat * CLIENT_WORKLOADS.length *
    (options.duration + options.warmup + 1);
  console.error(
    `echo benchmark: ${options.servers.length} servers × ${loadgenWorkloads.length} workloads, ` +
      `${options.clients.length} clients × ${CLIENT_WORKLOADS.length}; ` +
      `about ${
        Math.ceil(
          (options.servers.length * perServer +
            options.clients.length * perClient) / 60,
        )
      } min`,
  );
  const servers = runServers ? await serverMatrix(loadgen, options) : {};
  const clients = options.clients.length
    ? await clientMatrix(cEcho, options)
    : {};
  let largeMessage: LargeMessageRow[] | undefined;
  if (options.workloads.includes(LARGE_MESSAGE_WORKLOAD)) {
    largeMessage = await largeMessageRows(LARGE_MESSAGE_MIB);
  }
  console.log(
    `\n${Deno.build.target}, deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} cores; ` +
      `duration ${options.duration} s, warmup ${options.warmup} s per workload, ` +
      `median of ${options.repeat} run(s); ` +
      `load average ${loadBefore} before, ${loadAverage()} after`,
  );
  if (options.json) {
    await Deno.writeTextFile(
      options.json,
      JSON.stringify(
        { options, deno: Deno.version.deno, servers, clients, largeMessage },
        null,
        2,
      ),
    );
  }
}
