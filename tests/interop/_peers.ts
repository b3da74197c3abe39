/**
 * Real WebSocket peers for the interop tests: Python `websockets` servers and
 * clients, headless Chromium through npm `playwright-core`, and a check that
 * says what to install when a peer is missing.
 *
 * npm `ws` needs no helper: import it directly,
 * `import { WebSocket, WebSocketServer } from "npm:ws@8.23.0";`.
 *
 * Every helper is bounded in time, listens and connects on 127.0.0.1 only,
 * and ends only the processes it started itself (by their PID).
 *
 * @module
 */

import { AssertionError } from "@std/assert";
import { decodeBase64, encodeBase64 } from "@std/encoding/base64";

/** A WebSocket message as our API and the peers see it. */
export type PeerMessage = string | Uint8Array;

/** Path of Debian's Python, which has Debian's `python3-websockets`. */
export const PYTHON = "/usr/bin/python3";
/** Path of Debian's Chromium (`apt-get install chromium`). */
export const CHROMIUM = "/usr/bin/chromium";

/** The flags every Chromium we start gets (a closed network, run as root). */
export const CHROMIUM_ARGS: readonly string[] = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

const PYTHON_DIR = new URL("./python/", import.meta.url);

/**
 * Says whether a test can use a peer. When it is available: true. When it is
 * missing: locally, prints one line naming what to install and returns false
 * (the test then returns early); under `CI=true`, throws an AssertionError,
 * because CI installs every peer and a missing one is a broken CI.
 *
 * @example
 * ```ts ignore
 * Deno.test("chromium talks to our server", async () => {
 *   if (!requirePeer("chromium", await chromiumAvailable(), "apt-get install chromium")) return;
 *   // ...
 * });
 * ```
 */
export function requirePeer(
  name: string,
  available: boolean,
  installHint: string,
): boolean {
  if (available) return true;
  const message = `${name} is not installed (install it with: ${installHint})`;
  if (Deno.env.get("CI") === "true") {
    throw new AssertionError(`${message}; CI must provide every interop peer`);
  }
  console.log(`skipped: ${message}`);
  return false;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** True when Debian's python3 can import `websockets`. */
export async function pythonWebsocketsAvailable(): Promise<boolean> {
  if (!(await exists(PYTHON))) return false;
  const { success } = await new Deno.Command(PYTHON, {
    args: ["-c", "import websockets"],
    stdout: "null",
    stderr: "null",
  }).output();
  return success;
}

/** True when Debian's Chromium is installed. */
export function chromiumAvailable(): Promise<boolean> {
  return exists(CHROMIUM);
}

/** Encodes messages the way the Python scripts and the page read them. */
function toWire(message: PeerMessage): string | { base64: string } {
  return typeof message === "string"
    ? message
    : { base64: encodeBase64(message) };
}

function fromWire(item: string | { base64: string }): PeerMessage {
  return typeof item === "string" ? item : decodeBase64(item.base64);
}

/** Options shared by the Python server and client. */
export interface PythonPeerOptions {
  /** Subprotocols to offer (client) or accept (server). */
  protocols?: string[];
  /** Whether to negotiate permessage-deflate; default "none". */
  compression?: "none" | "deflate";
  /**
   * Send every message (the client) or echo (the server) as this many
   * frames of one message; default 1 (unfragmented).
   */
  fragments?: number;
  /**
   * Send those fragments from an async iterator (`send(async iterable)`),
   * each frame as its chunk comes, instead of from a list.
   */
  streamed?: boolean;
}

/** What {@linkcode startPythonEchoServer} reports when a connection ends. */
export interface PythonCloseEvent {
  code: number | null;
  reason: string | null;
  subprotocol: string | null;
}

/** A running Python `websockets` echo server; `await using` stops it. */
export interface PythonEchoServer extends AsyncDisposable {
  readonly port: number;
  /** `ws://127.0.0.1:PORT/` */
  readonly url: string;
  /** One entry per connection that ended, in order. */
  readonly closeEvents: PythonCloseEvent[];
  /**
   * With `reportFrames`: how many data frames each message it received
   * came in, in order.
   */
  readonly frameCounts: number[];
  /** Resolves with the next connection's close event (at most `timeoutMs`). */
  nextClose(timeoutMs?: number): Promise<PythonCloseEvent>;
  /** Stops the server: closes its stdin, then kills its PID if it lingers. */
  stop(): Promise<void>;
}

/** Reads JSON lines from a stream, calling onLine for each. */
export async function readJsonLines(
  stream: ReadableStream<Uint8Array>,
  onLine: (value: Record<string, unknown>) => void,
): Promise<void> {
  let buffered = "";
  for await (const text of stream.pipeThrough(new TextDecoderStream())) {
    buffered += text;
    let newline;
    while ((newline = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, newline).trim();
      buffered = buffered.slice(newline + 1);
      if (line) onLine(JSON.parse(line));
    }
  }
}

/** Rejects after ms with message, unless cleared. */
function deadline(
  ms: number,
  message: string,
): { promise: Promise<never>; clear: () => void } {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const promise = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return { promise, clear: () => clearTimeout(timer) };
}

/** Signals child (by its own PID); a child that already exited is fine. */
function kill(child: Deno.ChildProcess, signal: Deno.Signal): void {
  try {
    child.kill(signal);
  } catch {
    // already gone
  }
}

/** Waits for the child to exit, killing its PID if it takes longer than ms. */
async function stopChild(child: Deno.ChildProcess, ms: number): Promise<void> {
  const timer = setTimeout(() => {
    kill(child, "SIGKILL");
  }, ms);
  try {
    await child.status;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Starts `tests/interop/python/echo_server.py` on 127.0.0.1 with an
 * ephemeral port and resolves once it listens (at most `startTimeoutMs`).
 */
export async function startPythonEchoServer(
  options: PythonPeerOptions & {
    maxSize?: number;
    startTimeoutMs?: number;
    /** Report each received message's data frame count (`frameCounts`). */
    reportFrames?: boolean;
  } = {},
): Promise<PythonEchoServer> {
  const args = [
    "-B",
    new URL("echo_server.py", PYTHON_DIR).pathname,
    "--lifetime",
    "120",
  ];
  for (const protocol of options.protocols ?? []) {
    args.push("--subprotocol", protocol);
  }
  args.push("--compression", options.compression ?? "none");
  if (options.maxSize) args.push("--max-size", String(options.maxSize));
  args.push("--fragments", String(options.fragments ?? 1));
  if (options.streamed) args.push("--streamed");
  if (options.reportFrames) args.push("--report-frames");
  const child = new Deno.Command(PYTHON, {
    args,
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();

  const closeEvents: PythonCloseEvent[] = [];
  const frameCounts: number[] = [];
  const waiters: Array<(event: PythonCloseEvent) => void> = [];
  let consumed = 0;
  const { promise: listening, resolve: onListening } = Promise.withResolvers<
    number
  >();
  const reading = readJsonLines(child.stdout, (line) => {
    if (line.event === "listening") onListening(line.port as number);
    if (line.event === "received") frameCounts.push(line.frames as number);
    if (line.event === "closed") {
      const event: PythonCloseEvent = {
        code: line.code as number | null,
        reason: line.reason as string | null,
        subprotocol: line.subprotocol as string | null,
      };
      closeEvents.push(event);
      waiters.shift()?.(closeEvents[consumed++]);
    }
  });

  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    stopped ??= (async () => {
      await child.stdin.close().catch(() => {});
      await stopChild(child, 3000);
      await reading;
    })();

  const timeout = deadline(
    options.startTimeoutMs ?? 10_000,
    "echo_server.py did not start listening in time",
  );
  let port: number;
  try {
    port = await Promise.race([
      listening,
      child.status.then((status) => {
        throw new Error(
          `echo_server.py exited with code ${status.code} before listening`,
        );
      }),
      timeout.promise,
    ]);
  } catch (error) {
    await stop();
    throw error;
  } finally {
    timeout.clear();
  }

  return {
    port,
    url: `ws://127.0.0.1:${port}/`,
    closeEvents,
    frameCounts,
    async nextClose(timeoutMs = 5000) {
      if (consumed < closeEvents.length) return closeEvents[consumed++];
      const { promise, resolve } = Promise.withResolvers<PythonCloseEvent>();
      waiters.push(resolve);
      const timer = deadline(
        timeoutMs,
        "echo_server.py reported no closed connection in time",
      );
      try {
        return await Promise.race([promise, timer.promise]);
      } finally {
        timer.clear();
        // A waiter that timed out must not swallow a later event.
        const index = waiters.indexOf(resolve);
        if (index >= 0) waiters.splice(index, 1);
      }
    },
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

/** What {@linkcode runPythonClient} returns. */
export interface PythonClientResult {
  /** The replies, one per message sent. */
  received: PeerMessage[];
  /** The subprotocol the server chose, or null. */
  subprotocol: string | null;
  /** The server's Sec-WebSocket-Extensions value, or "". */
  extensions: string;
  /** The code of the server's Close frame, as the client saw it. */
  closeCode: number | null;
  closeReason: string | null;
}

/**
 * Runs `tests/interop/python/echo_client.py` against url: it sends messages,
 * reads one reply per message, closes with closeCode/closeReason and reports
 * what it saw. Rejects with the client's error message when it fails, or when
 * it is not done within `timeoutMs` (its PID is then killed).
 */
export async function runPythonClient(
  url: string,
  messages: PeerMessage[],
  options: PythonPeerOptions & {
    closeCode?: number;
    closeReason?: string;
    timeoutMs?: number;
  } = {},
): Promise<PythonClientResult> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const args = [
    "-B",
    new URL("echo_client.py", PYTHON_DIR).pathname,
    url,
    "--compression",
    options.compression ?? "none",
    "--close-code",
    String(options.closeCode ?? 1000),
    "--close-reason",
    options.closeReason ?? "",
    "--timeout",
    String(timeoutMs / 1000),
    "--fragments",
    String(options.fragments ?? 1),
    ...(options.streamed ? ["--streamed"] : []),
  ];
  for (const protocol of options.protocols ?? []) {
    args.push("--subprotocol", protocol);
  }
  const child = new Deno.Command(PYTHON, {
    args,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  // The messages go through stdin: one argument is limited to 128 KiB.
  const writer = child.stdin.getWriter();
  writer.write(new TextEncoder().encode(JSON.stringify(messages.map(toWire))))
    .catch(() => {}); // a client that died early is reported from its output
  writer.close().catch(() => {});
  // The script bounds itself; this is the backstop if Python itself hangs.
  const killer = setTimeout(() => {
    kill(child, "SIGKILL");
  }, timeoutMs + 3000);
  const output = await child.output().finally(() => clearTimeout(killer));
  const stdout = new TextDecoder().decode(output.stdout).trim();
  const stderr = new TextDecoder().decode(output.stderr).trim();
  let result: Record<string, unknown>;
  try {
    result = JSON.parse(stdout.split("\n").at(-1) ?? "");
  } catch {
    throw new Error(
      `echo_client.py printed no result (exit code ${output.code}): ${stdout}\n${stderr}`,
    );
  }
  if (typeof result.error === "string") {
    throw new Error(`echo_client.py failed: ${result.error}`);
  }
  return {
    received: (result.received as Array<string | { base64: string }>).map(
      fromWire,
    ),
    subprotocol: result.subprotocol as string | null,
    extensions: result.extensions as string,
    closeCode: result.close_code as number | null,
    closeReason: result.close_reason as string | null,
  };
}

/**
 * The npm `playwright-core` we drive Chromium with. It is imported through a
 * variable, so it stays out of the static module graph: `deno check .` and
 * test files that never start a browser neither fetch it nor type-check its
 * large declarations. The few methods used are typed below.
 */
const PLAYWRIGHT_CORE = "npm:playwright-core@1.65.1";

/** The part of a playwright-core `Page` the interop tests use. */
export interface BrowserPage {
  /** Navigates to url and waits for its load event. */
  goto(url: string): Promise<unknown>;
  /** Runs fn inside the page with arg (JSON-serializable) and returns its result. */
  evaluate<Result, Arg>(
    fn: (arg: Arg) => Result | Promise<Result>,
    arg: Arg,
  ): Promise<Result>;
  /** Closes the page. */
  close(): Promise<void>;
}

interface PersistentContext {
  newPage(): Promise<BrowserPage>;
  close(): Promise<void>;
}

interface PlaywrightCore {
  chromium: {
    launchPersistentContext(userDataDir: string, options: {
      executablePath: string;
      headless: boolean;
      args: string[];
      timeout: number;
    }): Promise<PersistentContext>;
  };
}

/** A headless Chromium with its own temporary profile; `await using` closes it. */
export interface Chromium extends AsyncDisposable {
  /** Opens a new page (tab). */
  newPage(): Promise<BrowserPage>;
  /** Closes the browser and removes its profile directory. */
  close(): Promise<void>;
}

/**
 * Starts Debian's Chromium headless through npm `playwright-core`, with the
 * flags of {@linkcode CHROMIUM_ARGS} and a fresh temporary user data
 * directory. Bounded by `timeoutMs` (default 30 s).
 */
export async function launchChromium(timeoutMs = 30_000): Promise<Chromium> {
  const { chromium }: PlaywrightCore = await import(PLAYWRIGHT_CORE);
  const profile = await Deno.makeTempDir({ prefix: "wstream-chromium-" });
  let context: PersistentContext;
  try {
    // Playwright refuses --user-data-dir in args: a persistent context is how
    // it takes a profile directory of ours.
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [...CHROMIUM_ARGS],
      timeout: timeoutMs,
    });
  } catch (error) {
    await Deno.remove(profile, { recursive: true }).catch(() => {});
    throw error;
  }
  let closed: Promise<void> | undefined;
  const close = (): Promise<void> =>
    closed ??= (async () => {
      await context.close();
      await Deno.remove(profile, { recursive: true }).catch(() => {});
    })();
  return {
    newPage: () => context.newPage(),
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** What {@linkcode browserEcho} returns. */
export interface BrowserEchoResult {
  received: PeerMessage[];
  protocol: string;
  extensions: string;
  closeCode: number;
  closeReason: string;
  wasClean: boolean;
}

/**
 * In page, opens the browser's own `WebSocket` to url, sends messages, waits
 * for one reply per message, closes with closeCode/closeReason and reports
 * what it saw (binary replies read as ArrayBuffer). Bounded by `timeoutMs`.
 */
export async function browserEcho(
  page: BrowserPage,
  url: string,
  messages: PeerMessage[],
  options: {
    protocols?: string[];
    closeCode?: number;
    closeReason?: string;
    timeoutMs?: number;
  } = {},
): Promise<BrowserEchoResult> {
  const input = {
    url,
    messages: messages.map(toWire),
    protocols: options.protocols ?? [],
    closeCode: options.closeCode ?? 1000,
    closeReason: options.closeReason ?? "",
    timeoutMs: options.timeoutMs ?? 10_000,
  };
  // This function runs inside the page, so it carries its own base64 code.
  const result = await page.evaluate(async (input) => {
    const toBytes = (b64: string) =>
      Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const toBase64 = (bytes: Uint8Array) => {
      let binary = "";
      for (let i = 0; i < bytes.length; i += 0x8000) {
        binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
      }
      return btoa(binary);
    };
    const socket = new WebSocket(input.url, input.protocols);
    socket.binaryType = "arraybuffer";
    const received: Array<string | { base64: string }> = [];
    return await new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.close();
        reject(
          new Error(`browser WebSocket not done after ${input.timeoutMs} ms`),
        );
      }, input.timeoutMs);
      socket.onerror = () => {}; // the close event that follows carries the outcome
      socket.onopen = () => {
        for (const item of input.messages) {
          socket.send(typeof item === "string" ? item : toBytes(item.base64));
        }
        if (input.messages.length === 0) {
          socket.close(input.closeCode, input.closeReason);
        }
      };
      socket.onmessage = (event) => {
        received.push(
          typeof event.data === "string"
            ? event.data
            : { base64: toBase64(new Uint8Array(event.data)) },
        );
        if (received.length === input.messages.length) {
          socket.close(input.closeCode, input.closeReason);
        }
      };
      socket.onclose = (event) => {
        clearTimeout(timer);
        resolve({
          received,
          protocol: socket.protocol,
          extensions: socket.extensions,
          closeCode: event.code,
          closeReason: event.reason,
          wasClean: event.wasClean,
        });
      };
    });
  }, input);
  return {
    received: (result.received as Array<string | { base64: string }>).map(
      fromWire,
    ),
    protocol: result.protocol as string,
    extensions: result.extensions as string,
    closeCode: result.closeCode as number,
    closeReason: result.closeReason as string,
    wasClean: result.wasClean as boolean,
  };
}
