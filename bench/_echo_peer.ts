/**
 * One echo endpoint of the end-to-end benchmark (bench/echo_e2e.ts), run as
 * its own `deno run` process so that its CPU time and RSS are its own.
 *
 * Servers (listen on 127.0.0.1, ephemeral port, then print one JSON line
 * `{"port": N}`, or `{"skip": "why"}` and exit when they cannot run):
 *
 *     deno run -A bench/_echo_peer.ts server builtin   # Deno.serve + Deno.upgradeWebSocket
 *     deno run -A bench/_echo_peer.ts server ws        # npm ws WebSocketServer
 *     deno run -A bench/_echo_peer.ts server tcp       # conn.readable.pipeTo(conn.writable)
 *     deno run -A bench/_echo_peer.ts server wstream   # serve() from mod.ts
 *     deno run -A bench/_echo_peer.ts server wstream-unheld # serve(), a writer per message
 *     deno run -A bench/_echo_peer.ts server upgrade   # Deno.serve + upgrade() from mod.ts
 *     deno run -A bench/_echo_peer.ts server ws-http   # node:http + npm ws handleUpgrade
 *     deno run -A bench/_echo_peer.ts server handleUpgrade # node:http + handleUpgrade()
 *
 * Clients (keep WINDOW binary messages of SIZE bytes in flight against the
 * echo server at URL for WARMUP + DURATION seconds, print one JSON line with
 * `msgs_per_s` and `mb_per_s` over DURATION, or `{"skip": "why"}`):
 *
 *     deno run -A bench/_echo_peer.ts client builtin|ws|wstream URL SIZE WINDOW DURATION WARMUP
 *
 * @module
 */

import process from "node:process";

const WS = "npm:ws@8.23.0";

/** The shape of wstream's socket the benchmark uses (DESIGN.md). */
interface WstreamSocket {
  readable: ReadableStream<string | Uint8Array<ArrayBuffer>>;
  writable: WritableStream<string | BufferSource>;
  closed: Promise<unknown>;
  close(info?: { closeCode?: number; reason?: string }): void;
}
type WstreamServe = (
  options: { port: number; hostname: string; onListen?: () => void },
  handler: (socket: WstreamSocket, request: Request) => Promise<void>,
) => { addr: Deno.NetAddr };
type WstreamConnect = (url: string) => Promise<WstreamSocket>;

type WstreamUpgrade = (request: Request) => {
  socket: WstreamSocket;
  response: Response;
};
type WstreamHandleUpgrade = (
  request: unknown,
  socket: unknown,
  head: Uint8Array,
  options: Record<string, never>,
  handler: (socket: WstreamSocket) => Promise<void>,
) => Promise<void>;

/** A wstream export, or undefined while mod.ts lacks it. */
async function wstreamExport<T>(
  name: "serve" | "connect" | "upgrade" | "handleUpgrade",
): Promise<T | undefined> {
  // Imported as a record so this file type-checks before the export exists.
  const mod: Record<string, unknown> = await import("../mod.ts");
  return typeof mod[name] === "function" ? mod[name] as T : undefined;
}

function report(value: Record<string, unknown>): void {
  console.log(JSON.stringify(value));
}

// serve() on an ephemeral port with handler; reports the port, or why it
// cannot run.
async function serveWstream(
  hostname: string,
  handler: (socket: WstreamSocket) => Promise<void>,
): Promise<void> {
  const serve = await wstreamExport<WstreamServe>("serve");
  if (!serve) return report({ skip: "mod.ts does not export serve() yet" });
  const server = serve({ hostname, port: 0, onListen() {} }, handler);
  report({ port: server.addr.port });
}

/**
 * Starts the echo server of kind (see the module's list) and prints its
 * port as one JSON line; bench/_idle_floor_peer.ts measures the same
 * servers.
 *
 * @param kind The server kind.
 */
export async function startServer(kind: string): Promise<void> {
  const hostname = "127.0.0.1";
  switch (kind) {
    case "builtin": {
      const server = Deno.serve(
        { hostname, port: 0, onListen() {} },
        (request) => {
          const { socket, response } = Deno.upgradeWebSocket(request);
          socket.binaryType = "arraybuffer";
          socket.onmessage = (event) => socket.send(event.data);
          return response;
        },
      );
      report({ port: server.addr.port });
      return;
    }
    case "ws": {
      const { WebSocketServer } = await import(WS);
      const server = new WebSocketServer({ host: hostname, port: 0 });
      await new Promise((resolve) => server.once("listening", resolve));
      // deno-lint-ignore no-explicit-any
      server.on("connection", (socket: any) => {
        socket.on("message", (data: Uint8Array, isBinary: boolean) => {
          socket.send(data, { binary: isBinary });
        });
      });
      report({ port: server.address().port });
      return;
    }
    case "tcp": {
      const listener = Deno.listen({ hostname, port: 0 });
      report({ port: listener.addr.port });
      for await (const conn of listener) {
        conn.setNoDelay(true);
        conn.readable.pipeTo(conn.writable).catch(() => {});
      }
      return;
    }
    case "wstream":
      return await serveWstream(hostname, async (socket) => {
        await socket.readable.pipeTo(socket.writable).catch(() => {});
      });
    case "wstream-unheld":
      // An echo that never holds `writable`: it takes a writer for each
      // message and lets go of it at once (the peer's Close finds the
      // writable free, as with a handler that only reads or only logs).
      return await serveWstream(hostname, async (socket) => {
        try {
          for await (const message of socket.readable) {
            const writer = socket.writable.getWriter();
            writer.write(message).catch(() => {});
            writer.releaseLock();
          }
        } catch {
          // The peer failed the connection.
        }
      });
    case "upgrade": {
      const upgrade = await wstreamExport<WstreamUpgrade>("upgrade");
      if (!upgrade) return report({ skip: "mod.ts does not export upgrade()" });
      const server = Deno.serve(
        { hostname, port: 0, onListen() {} },
        (request) => {
          const { socket, response } = upgrade(request);
          socket.readable.pipeTo(socket.writable).catch(() => {});
          return response;
        },
      );
      report({ port: server.addr.port });
      return;
    }
    case "ws-http":
    case "handleUpgrade": {
      const { createServer } = await import("node:http");
      const server = createServer((_request, response) => response.end());
      if (kind === "ws-http") {
        const { WebSocketServer } = await import(WS);
        const wss = new WebSocketServer({ noServer: true });
        server.on("upgrade", (request, socket, head) => {
          // deno-lint-ignore no-explicit-any
          wss.handleUpgrade(request, socket, head, (ws: any) => {
            ws.on("message", (data: Uint8Array, isBinary: boolean) => {
              ws.send(data, { binary: isBinary });
            });
          });
        });
      } else {
        const handleUpgrade = await wstreamExport<WstreamHandleUpgrade>(
          "handleUpgrade",
        );
        if (!handleUpgrade) {
          return report({ skip: "mod.ts does not export handleUpgrade()" });
        }
        server.on("upgrade", (request, socket, head) => {
          handleUpgrade(request, socket, head, {}, async (ws) => {
            await ws.readable.pipeTo(ws.writable).catch(() => {});
          });
        });
      }
      await new Promise<void>((resolve) => server.listen(0, hostname, resolve));
      report({ port: (server.address() as { port: number }).port });
      return;
    }
    default:
      throw new Error(
        `expected a server kind builtin|ws|tcp|wstream|upgrade|ws-http|handleUpgrade, found "${kind}"`,
      );
  }
}

/** Counts echoes; the client calls echoed() per reply and send() to keep the window full. */
function meter(size: number, durationS: number, warmupS: number) {
  let count = 0;
  let measuring = false;
  let startedAt = 0;
  const { promise: done, resolve } = Promise.withResolvers<
    Record<string, number>
  >();
  let cpuAtStart = process.cpuUsage();
  setTimeout(() => {
    measuring = true;
    startedAt = performance.now();
    cpuAtStart = process.cpuUsage();
    setTimeout(() => {
      const seconds = (performance.now() - startedAt) / 1000;
      const cpu = process.cpuUsage(cpuAtStart); // this whole process, in µs
      measuring = false;
      resolve({
        msgs_per_s: count / seconds,
        mb_per_s: (count * size) / seconds / 1e6,
        duration_s: seconds,
        client_cpu_pct: (cpu.user + cpu.system) / 1e4 / seconds,
      });
    }, durationS * 1000);
  }, warmupS * 1000);
  return {
    done,
    echoed(bytes: number) {
      if (bytes !== size) {
        throw new Error(`expected an echo of ${size} bytes, found ${bytes}`);
      }
      if (measuring) count++;
    },
  };
}

async function runClient(
  kind: string,
  url: string,
  size: number,
  window: number,
  durationS: number,
  warmupS: number,
): Promise<void> {
  const payload = crypto.getRandomValues(new Uint8Array(size));
  const { done, echoed } = meter(size, durationS, warmupS);
  let result: Record<string, number>;
  switch (kind) {
    case "builtin": {
      const socket = new WebSocket(url);
      socket.binaryType = "arraybuffer";
      await new Promise((resolve, reject) => {
        socket.onopen = resolve;
        socket.onerror = () =>
          reject(new Error(`built-in WebSocket could not open ${url}`));
      });
      socket.onmessage = (event) => {
        echoed((event.data as ArrayBuffer).byteLength);
        socket.send(payload);
      };
      for (let i = 0; i < window; i++) socket.send(payload);
      result = await done;
      socket.close();
      break;
    }
    case "ws": {
      const { WebSocket } = await import(WS);
      const socket = new WebSocket(url);
      await new Promise((resolve, reject) => {
        socket.once("open", resolve);
        socket.once("error", reject);
      });
      socket.on("message", (data: Uint8Array) => {
        echoed(data.length);
        socket.send(payload);
      });
      for (let i = 0; i < window; i++) socket.send(payload);
      result = await done;
      socket.close();
      break;
    }
    case "wstream": {
      const connect = await wstreamExport<WstreamConnect>("connect");
      if (!connect) {
        return report({ skip: "mod.ts does not export connect() yet" });
      }
      const socket = await connect(url);
      const writer = socket.writable.getWriter();
      // Writes are not awaited one by one: the window bounds what is queued.
      const send = () => writer.write(payload).catch(() => {});
      for (let i = 0; i < window; i++) send();
      const reading = (async () => {
        for await (const message of socket.readable) {
          echoed(typeof message === "string" ? -1 : message.byteLength);
          send();
        }
      })();
      result = await done;
      socket.close();
      await Promise.race([
        reading.catch(() => {}),
        socket.closed.catch(() => {}),
      ]);
      break;
    }
    default:
      throw new Error(
        `expected a client kind builtin|ws|wstream, found "${kind}"`,
      );
  }
  report(result);
  // Do not wait for a slow close handshake: the figures are out.
  Deno.exit(0);
}

if (import.meta.main) {
  const [role, kind, ...rest] = Deno.args;
  if (role === "server") await startServer(kind);
  else if (role === "client") {
    const [url, size, window, duration, warmup] = rest;
    await runClient(
      kind,
      url,
      Number(size),
      Number(window),
      Number(duration),
      Number(warmup),
    );
  } else {
    throw new Error(
      `expected "server" or "client" as the first argument, found "${role}"`,
    );
  }
}
