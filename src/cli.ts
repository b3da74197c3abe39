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
import { type CliOptions, parseCliArgs, USAGE } from "./cli_args.ts";

export { type CliOptions, parseCliArgs, USAGE } from "./cli_args.ts";

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
    await out.write(encoder.encode(USAGE + "\n"));
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
