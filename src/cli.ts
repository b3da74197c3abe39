/**
 * `wstream` on the command line, in the spirit of wscat and websocat: a
 * WebSocket client that sends each line of stdin and prints what arrives,
 * or a server that echoes (or broadcasts) what it receives.
 *
 * ```sh
 * deno run -A jsr:@wstream/wstream/cli ws://127.0.0.1:9001/
 * deno run -A jsr:@wstream/wstream/cli --listen 9001 --broadcast
 * ```
 *
 * Run `--help` for every option. Exit status: 0 after a normal close
 * (1000, 1001, or a Close without a code), 1 when the connection is refused,
 * the handshake fails or the socket closes with any other code, 2 for bad
 * arguments.
 *
 * @module
 */

import { connect, type ConnectOptions } from "./client.ts";
import type { WebSocketConnection } from "./connection.ts";
import { reconnecting } from "./reconnecting.ts";
import { serve } from "./server.ts";

/**
 * The text `--help` prints.
 *
 * @example
 * ```ts
 * import { USAGE } from "@wstream/wstream/cli";
 * import { assertStringIncludes } from "@std/assert";
 *
 * assertStringIncludes(USAGE, "--listen <port>");
 * ```
 */
export const USAGE: string = `Usage:
  cli [options] <ws://host:port/path | wss://…>   connect; send stdin lines, print messages
  cli --listen <port> [options]                   serve: echo every message back

Client: each line of stdin is sent as one text message (binary with
--binary); each message received is printed as one line (binary ones as
their raw bytes). At the end of stdin (or Ctrl+C) the socket closes with
1000. Connection events and the close code go to stderr.

Options:
  --protocol <name>        offer (client) or accept (server) a subprotocol;
                           repeat for more, most preferred first
  --header "Name: value"   send a request header (client); repeatable
  --binary                 send stdin lines as binary messages (client)
  --reconnect              reconnect after a lost connection, a server restart
                           (1001, 1012, ...), a refusal or a 5xx/429 answer,
                           with jittered exponential backoff (client)
  --proxy <url>            tunnel through this HTTP proxy (client), e.g.
                           http://user:pass@proxy:3128; without it the
                           HTTPS_PROXY, HTTP_PROXY, ALL_PROXY and NO_PROXY
                           environment variables apply
  --no-proxy               connect directly, whatever the environment says
  --listen <port>          serve on this port (0 picks a free one)
  --hostname <address>     the address to listen on (default 127.0.0.1)
  --broadcast              serve: send each message to every connected client
                           instead of echoing it to its sender
  --no-compression         do not negotiate permessage-deflate
  -h, --help               print this help

Exit status: 0 after a normal close (1000, 1001, or no code), 1 when the
connection is refused, the handshake fails or the socket closes with
another code, 2 for bad arguments. With --reconnect: 0 after a close with
1000 (or no code) or Ctrl+C, 1 when it stops on a failure it does not retry
(a 4xx answer, a protocol error, a close such as 1008).`;

/**
 * The parsed command line, as {@linkcode parseCliArgs} returns it.
 *
 * @example
 * ```ts
 * import type { CliOptions } from "@wstream/wstream/cli";
 *
 * const echoServer: CliOptions = {
 *   listen: 9001,
 *   hostname: "127.0.0.1",
 *   protocols: [],
 *   headers: [],
 *   binary: false,
 *   reconnect: false,
 *   broadcast: false,
 *   compression: true,
 *   help: false,
 * };
 * ```
 */
export interface CliOptions {
  /** The URL to connect to (client mode). */
  url?: string;
  /** The port to serve on (server mode). */
  listen?: number;
  /** Where to listen (server mode); default "127.0.0.1". */
  hostname: string;
  /** Subprotocols to offer or accept. */
  protocols: string[];
  /** Request headers (client mode). */
  headers: [string, string][];
  /** Send stdin lines as binary messages. */
  binary: boolean;
  /** Reconnect after transient failures (client mode). */
  reconnect: boolean;
  /**
   * The HTTP proxy (client mode): a URL, `false` for none, or `undefined`
   * for the environment's.
   */
  proxy?: string | false;
  /** Broadcast instead of echo (server mode). */
  broadcast: boolean;
  /** Negotiate permessage-deflate (default true). */
  compression: boolean;
  /** `--help` was given. */
  help: boolean;
}

/**
 * Parses the command line; throws a `TypeError` that says what was wrong.
 *
 * @example
 * ```ts
 * import { parseCliArgs } from "@wstream/wstream/cli";
 * import { assertEquals } from "@std/assert";
 *
 * const options = parseCliArgs(["--protocol", "chat", "ws://127.0.0.1:9001/"]);
 * assertEquals(options.url, "ws://127.0.0.1:9001/");
 * assertEquals(options.protocols, ["chat"]);
 * ```
 *
 * @param args The arguments after the program name.
 * @returns The options.
 */
export function parseCliArgs(args: readonly string[]): CliOptions {
  const options: CliOptions = {
    hostname: "127.0.0.1",
    protocols: [],
    headers: [],
    binary: false,
    reconnect: false,
    broadcast: false,
    compression: true,
    help: false,
  };
  for (let i = 0; i < args.length; i++) {
    let arg = args[i];
    let inlineValue: string | undefined;
    const equals = arg.indexOf("=");
    if (arg.startsWith("--") && equals > 0) {
      inlineValue = arg.slice(equals + 1);
      arg = arg.slice(0, equals);
    }
    const value = (): string => {
      if (inlineValue !== undefined) return inlineValue;
      const next = args[++i];
      if (next === undefined) {
        throw new TypeError(`expected a value after ${arg}, found nothing`);
      }
      return next;
    };
    switch (arg) {
      case "-h":
      case "--help":
        options.help = true;
        break;
      case "--protocol":
        options.protocols.push(value());
        break;
      case "--header": {
        const header = value();
        const colon = header.indexOf(":");
        if (colon <= 0) {
          throw new TypeError(
            `expected --header "Name: value", found ${JSON.stringify(header)}`,
          );
        }
        options.headers.push([
          header.slice(0, colon).trim(),
          header.slice(colon + 1).trim(),
        ]);
        break;
      }
      case "--binary":
        options.binary = true;
        break;
      case "--broadcast":
        options.broadcast = true;
        break;
      case "--reconnect":
        options.reconnect = true;
        break;
      case "--proxy": {
        const url = value();
        if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(url) && !url.includes(":")) {
          throw new TypeError(
            `expected --proxy to be a URL such as http://proxy:3128, found ${
              JSON.stringify(url)
            }`,
          );
        }
        options.proxy = url;
        break;
      }
      case "--no-proxy":
        options.proxy = false;
        break;
      case "--no-compression":
        options.compression = false;
        break;
      case "--hostname":
        options.hostname = value();
        break;
      case "--listen": {
        const text = value();
        const port = Number(text);
        if (!/^\d+$/.test(text) || port > 65535) {
          throw new TypeError(
            `expected --listen to be a port from 0 to 65535, found ${
              JSON.stringify(text)
            }`,
          );
        }
        options.listen = port;
        break;
      }
      default:
        if (arg.startsWith("-")) {
          throw new TypeError(`unknown option ${arg} (see --help)`);
        }
        if (options.url !== undefined) {
          throw new TypeError(
            `expected one URL, found ${JSON.stringify(options.url)} and ${
              JSON.stringify(arg)
            }`,
          );
        }
        options.url = arg;
    }
  }
  if (options.help) return options;
  if (options.url === undefined && options.listen === undefined) {
    throw new TypeError(
      "expected a ws:// or wss:// URL to connect to, or --listen <port>",
    );
  }
  if (options.url !== undefined && options.listen !== undefined) {
    throw new TypeError("expected either a URL or --listen, found both");
  }
  return options;
}

/**
 * Where the CLI reads and writes; a test or an embedding program may
 * redirect it.
 *
 * @example Collect the output in memory
 * ```ts
 * import type { CliIo } from "@wstream/wstream/cli";
 *
 * const log: string[] = [];
 * const chunks: Uint8Array[] = [];
 * const io: CliIo = {
 *   stdin: ReadableStream.from([new TextEncoder().encode("hello\n")]),
 *   stdout: new WritableStream({ write: (chunk) => void chunks.push(chunk) }),
 *   log: (line) => log.push(line),
 * };
 * ```
 */
export interface CliIo {
  /** Lines of input (client mode): each is sent as a message. */
  stdin: ReadableStream<Uint8Array>;
  /** Received messages. */
  stdout: WritableStream<Uint8Array>;
  /** Connection events, closes and errors, one line each. */
  log: (line: string) => void;
}

const CLOSE_NAMES: Record<number, string> = {
  1000: "normal closure",
  1001: "going away",
  1002: "protocol error",
  1003: "unsupported data",
  1005: "no status code",
  1006: "abnormal closure, no Close frame",
  1007: "invalid payload data",
  1008: "policy violation",
  1009: "message too big",
  1010: "mandatory extension",
  1011: "internal error",
  1015: "TLS handshake failed",
};

/** Describes a close as "1000 (normal closure) \"bye\"". */
function describeClose(closeCode: number, reason: string): string {
  const name = CLOSE_NAMES[closeCode];
  return `${closeCode}${name ? ` (${name})` : ""}${
    reason ? ` ${JSON.stringify(reason)}` : ""
  }`;
}

/** Closes that end the client with status 0. */
function isNormalClose(closeCode: number): boolean {
  return closeCode === 1000 || closeCode === 1001 || closeCode === 1005;
}

/** Splits a byte stream into lines (without "\n" or a trailing "\r"). */
function lines(): TransformStream<string, string> {
  let pending = "";
  return new TransformStream({
    transform(text, controller) {
      pending += text;
      let newline;
      while ((newline = pending.indexOf("\n")) >= 0) {
        controller.enqueue(pending.slice(0, newline).replace(/\r$/, ""));
        pending = pending.slice(newline + 1);
      }
    },
    flush(controller) {
      if (pending !== "") controller.enqueue(pending.replace(/\r$/, ""));
    },
  });
}

/** Explains a failed connect() for a person at a terminal. */
function describeConnectError(url: string, error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  if (/refused/i.test(message)) {
    return `error: connection refused by ${url}: is a WebSocket server listening there? (${message})`;
  }
  return `error: could not open a WebSocket to ${url}: ${message}`;
}

function connectOptions(
  options: CliOptions,
  signal: AbortSignal | undefined,
): ConnectOptions {
  return {
    protocols: options.protocols,
    headers: options.headers,
    compression: options.compression,
    proxy: options.proxy,
    signal,
  };
}

function logConnected(socket: WebSocketConnection, url: string, io: CliIo) {
  const details = [
    socket.protocol && `protocol: ${socket.protocol}`,
    socket.extensions && `extensions: ${socket.extensions}`,
  ].filter(Boolean).join(", ");
  io.log(`connected to ${url}${details ? ` (${details})` : ""}`);
}

const encoder = new TextEncoder();
const newline = encoder.encode("\n");

// Prints each message as a line; when the server closes (or the socket
// fails), stops sending and completes the close handshake, echoing its code.
async function printMessages(
  socket: WebSocketConnection,
  out: WritableStreamDefaultWriter<Uint8Array>,
): Promise<void> {
  try {
    for await (const message of socket.readable) {
      await out.write(
        typeof message === "string" ? encoder.encode(message) : message,
      );
      await out.write(newline);
    }
  } catch {
    // The socket failed; `closed` says how.
  }
  socket.close();
}

async function runClient(
  options: CliOptions & { url: string },
  io: CliIo,
  signal?: AbortSignal,
): Promise<number> {
  if (options.reconnect) return await runReconnecting(options, io, signal);
  let socket: WebSocketConnection;
  try {
    socket = await connect(options.url, connectOptions(options, signal));
  } catch (error) {
    io.log(describeConnectError(options.url, error));
    return 1;
  }
  logConnected(socket, options.url, io);

  const onAbort = () => socket.close();
  signal?.addEventListener("abort", onAbort, { once: true });

  const out = io.stdout.getWriter();
  const printing = printMessages(socket, out);

  const sending = io.stdin
    .pipeThrough(new TextDecoderStream())
    .pipeThrough(lines())
    .pipeThrough(
      new TransformStream<string, string | BufferSource>({
        transform(line, controller) {
          controller.enqueue(options.binary ? encoder.encode(line) : line);
        },
      }),
    )
    // The end of stdin closes writable: Close 1000.
    .pipeTo(socket.writable)
    .catch(() => {
      // close() above, or a failed socket, ends the pipe; `closed` says how.
    });

  const { closeCode, reason } = await socket.closed;
  signal?.removeEventListener("abort", onAbort);
  await printing;
  out.releaseLock();
  io.log(`closed: ${describeClose(closeCode, reason)}`);
  // stdin may still be open (a terminal): do not wait for `sending`.
  void sending;
  return isNormalClose(closeCode) ? 0 : 1;
}

// --reconnect: one stdin for a series of sockets. A line read while no
// socket is open goes to the next one; the end of stdin closes with 1000,
// which ends the series.
async function runReconnecting(
  options: CliOptions & { url: string },
  io: CliIo,
  signal?: AbortSignal,
): Promise<number> {
  const input = io.stdin
    .pipeThrough(new TextDecoderStream())
    .pipeThrough(lines())
    .getReader();
  let nextLine: Promise<ReadableStreamReadResult<string>> | undefined;
  const out = io.stdout.getWriter();
  try {
    const sockets = reconnecting(options.url, {
      ...connectOptions(options, signal),
      onRetry: ({ attempt, delayMs, error }) =>
        io.log(
          `reconnecting in ${delayMs} ms (failure ${attempt}): ${
            error instanceof Error ? error.message : String(error)
          }`,
        ),
    });
    for await (const socket of sockets) {
      logConnected(socket, options.url, io);
      const printing = printMessages(socket, out);
      const writer = socket.writable.getWriter();
      const closed = socket.closed.then(() => null);
      while (true) {
        nextLine ??= input.read();
        const next = await Promise.race([nextLine, closed]);
        if (next === null) break; // the line waits for the next socket
        nextLine = undefined;
        if (next.done) {
          await writer.close().catch(() => {});
          break;
        }
        const line = options.binary ? encoder.encode(next.value) : next.value;
        await writer.write(line).catch(() => {});
      }
      const { closeCode, reason } = await socket.closed;
      await printing;
      io.log(`closed: ${describeClose(closeCode, reason)}`);
    }
    return 0;
  } catch (error) {
    if (signal?.aborted) return 0;
    io.log(describeConnectError(options.url, error));
    return 1;
  } finally {
    out.releaseLock();
  }
}

async function runServer(
  options: CliOptions & { listen: number },
  io: CliIo,
  signal?: AbortSignal,
): Promise<number> {
  const clients = new Set<
    WritableStreamDefaultWriter<string | BufferSource>
  >();
  let connections = 0;
  let server;
  try {
    server = serve({
      port: options.listen,
      hostname: options.hostname,
      protocols: options.protocols.length > 0 ? options.protocols : undefined,
      compression: options.compression,
      signal,
      onListen: ({ hostname, port }) => {
        const host = hostname.includes(":") ? `[${hostname}]` : hostname;
        io.log(
          `listening on ws://${host}:${port}/ (${
            options.broadcast ? "broadcast" : "echo"
          }; Ctrl+C stops)`,
        );
      },
    }, async (socket, request) => {
      const id = ++connections;
      const details = [
        socket.protocol && `protocol: ${socket.protocol}`,
        socket.extensions && `extensions: ${socket.extensions}`,
      ].filter(Boolean).join(", ");
      io.log(
        `[${id}] connected: ${new URL(request.url).pathname}${
          details ? ` (${details})` : ""
        }`,
      );
      try {
        if (options.broadcast) {
          const writer = socket.writable.getWriter();
          clients.add(writer);
          try {
            for await (const message of socket.readable) {
              for (const client of clients) {
                client.write(message).catch(() => {});
              }
            }
          } finally {
            clients.delete(writer);
            await writer.close().catch(() => {});
          }
        } else {
          await socket.readable.pipeTo(socket.writable);
        }
      } catch {
        // The peer failed the connection; `closed` says how.
      }
      const { closeCode, reason } = await socket.closed;
      io.log(`[${id}] closed: ${describeClose(closeCode, reason)}`);
    });
  } catch (error) {
    io.log(
      `error: could not listen on ${options.hostname}:${options.listen}: ${
        error instanceof Error ? error.message : String(error)
      }`,
    );
    return 1;
  }
  await server.finished;
  io.log("stopped");
  return 0;
}

/**
 * Runs the command line and resolves with the exit status: 0 after a normal
 * close (or a server stopped by `signal`), 1 for a refused connection, a
 * failed handshake or another close code, 2 for bad arguments.
 *
 * @example Serve an echo server until the signal aborts
 * ```ts
 * import { runCli } from "@wstream/wstream/cli";
 * import { assertEquals } from "@std/assert";
 *
 * const controller = new AbortController();
 * const io = {
 *   stdin: ReadableStream.from<Uint8Array>([]),
 *   stdout: new WritableStream<Uint8Array>(),
 *   log: (line: string) => {
 *     if (line.startsWith("listening")) controller.abort();
 *   },
 * };
 * assertEquals(await runCli(["--listen", "0"], io, controller.signal), 0);
 * ```
 *
 * @param args The arguments after the program name.
 * @param io Where input comes from and output goes (default: the process's
 * stdin, stdout and stderr).
 * @param signal Aborting it closes the client's socket with 1000, or shuts
 * the server down.
 * @returns The exit status.
 */
export async function runCli(
  args: readonly string[],
  io: CliIo = {
    stdin: Deno.stdin.readable,
    stdout: Deno.stdout.writable,
    log: (line) => console.error(line),
  },
  signal?: AbortSignal,
): Promise<number> {
  let options: CliOptions;
  try {
    options = parseCliArgs(args);
  } catch (error) {
    io.log(`error: ${(error as Error).message}`);
    return 2;
  }
  if (options.help) {
    const out = io.stdout.getWriter();
    await out.write(new TextEncoder().encode(USAGE + "\n"));
    out.releaseLock();
    return 0;
  }
  if (options.listen !== undefined) {
    return await runServer({ ...options, listen: options.listen }, io, signal);
  }
  return await runClient({ ...options, url: options.url! }, io, signal);
}

if (import.meta.main) {
  // Ctrl+C closes the socket with 1000 (client) or shuts the server down
  // with 1001 to every client.
  const controller = new AbortController();
  Deno.addSignalListener("SIGINT", () => controller.abort());
  const status = await runCli(Deno.args, undefined, controller.signal);
  Deno.exit(status);
}
