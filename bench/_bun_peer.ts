/**
 * Bun's server as an outside reference for the end-to-end benchmarks, run by
 * Bun (npm `bun`), not by Deno: `bun bench/_bun_peer.ts echo|fanout`.
 *
 * - `echo`: every message is sent back (bench/echo_e2e.ts).
 * - `fanout`: connections to `/sub` subscribe to one topic; every message on
 *   a connection to `/pub` goes to all of them with `server.publish`
 *   (bench/fanout_e2e.ts).
 *
 * Listens on 127.0.0.1 (ephemeral port) and prints one JSON line
 * `{"port": N}`. Bun's defaults are kept (no permessage-deflate, 16 MiB
 * largest message).
 *
 * @module
 */

/** The part of Bun's API this file uses (Bun.serve with a websocket handler). */
interface BunSocket {
  data: { publisher: boolean };
  send(message: string | Uint8Array): number;
  subscribe(topic: string): void;
}
interface BunServer {
  port: number;
  upgrade(request: Request, options: { data: BunSocket["data"] }): boolean;
  publish(topic: string, message: string | Uint8Array): number;
}
interface BunGlobal {
  argv: string[];
  serve(options: {
    hostname: string;
    port: number;
    fetch(request: Request, server: BunServer): Response | undefined;
    websocket: {
      open?(socket: BunSocket): void;
      message(socket: BunSocket, message: string | Uint8Array): void;
    };
  }): BunServer;
}

const TOPIC = "fanout";
const bun = (globalThis as unknown as { Bun?: BunGlobal }).Bun;
if (!bun) throw new Error("expected to run under Bun (bun bench/_bun_peer.ts)");
const kind = bun.argv[2];
if (kind !== "echo" && kind !== "fanout") {
  throw new Error(`expected "echo" or "fanout", found "${kind}"`);
}

const server: BunServer = bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  fetch(request, server) {
    const publisher = new URL(request.url).pathname === "/pub";
    if (server.upgrade(request, { data: { publisher } })) return undefined;
    return new Response("expected a WebSocket upgrade", { status: 426 });
  },
  websocket: kind === "echo"
    ? { message: (socket, message) => void socket.send(message) }
    : {
      open(socket) {
        if (!socket.data.publisher) socket.subscribe(TOPIC);
      },
      message(socket, message) {
        if (socket.data.publisher) server.publish(TOPIC, message);
      },
    },
});
console.log(JSON.stringify({ port: server.port }));
