/**
 * One fan-out server of the fan-out benchmark (bench/fanout_e2e.ts), run as
 * its own `deno run` process so that its CPU time and RSS are its own.
 *
 * Every connection to `/sub` subscribes to one topic; every message that
 * arrives on a connection to `/pub` is published to all subscribers. Each
 * server listens on 127.0.0.1 (ephemeral port) and prints one JSON line
 * `{"port": N}`, or `{"skip": "why"}` when it cannot run:
 *
 *     deno run -A bench/_fanout_peer.ts builtin   # Deno.serve + Deno.upgradeWebSocket, a send() loop
 *     deno run -A bench/_fanout_peer.ts ws        # npm ws, the broadcast loop of its README
 *     deno run -A bench/_fanout_peer.ts loop      # wstream serve(), a write() loop over the subscribers' writers
 *     deno run -A bench/_fanout_peer.ts hub       # wstream serve() and Hub: subscribe, writable(topic)
 *     deno run -A bench/_fanout_peer.ts redis URL # the same Hub with the Redis backplane at URL
 *
 * Bun's `server.publish` is in bench/_bun_peer.ts (run by Bun, not Deno).
 *
 * @module
 */

import { Hub, serve, type WebSocketConnection } from "../mod.ts";
import { redisBackplane } from "../src/redis_backplane.ts";

const WS = "npm:ws@8.23.0";
const TOPIC = "fanout";
const HOSTNAME = "127.0.0.1";

function report(value: Record<string, unknown>): void {
  console.log(JSON.stringify(value));
}

function isPublisher(request: Request): boolean {
  return new URL(request.url).pathname === "/pub";
}

/** Reads socket until the peer closes (a subscriber sends nothing else). */
async function drain(socket: WebSocketConnection): Promise<void> {
  try {
    for await (const _ of socket.readable) {
      // Subscribers do not send messages.
    }
  } catch {
    // The connection failed; the caller cleans up the same way.
  }
}

function builtin(): void {
  const subscribers = new Set<WebSocket>();
  const server = Deno.serve(
    { hostname: HOSTNAME, port: 0, onListen() {} },
    (request) => {
      const { socket, response } = Deno.upgradeWebSocket(request);
      socket.binaryType = "arraybuffer";
      if (isPublisher(request)) {
        socket.onmessage = (event) => {
          for (const subscriber of subscribers) subscriber.send(event.data);
        };
      } else {
        socket.onopen = () => subscribers.add(socket);
        socket.onclose = () => subscribers.delete(socket);
      }
      return response;
    },
  );
  report({ port: server.addr.port });
}

async function ws(): Promise<void> {
  const { WebSocket, WebSocketServer } = await import(WS);
  const wss = new WebSocketServer({ host: HOSTNAME, port: 0 });
  await new Promise((resolve) => wss.once("listening", resolve));
  // The ws README's "broadcast to all connected clients, excluding itself".
  // deno-lint-ignore no-explicit-any
  wss.on("connection", (socket: any) => {
    socket.on("error", console.error);
    socket.on("message", (data: Uint8Array, isBinary: boolean) => {
      // deno-lint-ignore no-explicit-any
      wss.clients.forEach((client: any) => {
        if (client !== socket && client.readyState === WebSocket.OPEN) {
          client.send(data, { binary: isBinary });
        }
      });
    });
  });
  report({ port: wss.address().port });
}

function loop(): void {
  const writers = new Set<WritableStreamDefaultWriter<string | BufferSource>>();
  const server = serve(
    { hostname: HOSTNAME, port: 0, onListen() {} },
    async (socket, request) => {
      if (isPublisher(request)) {
        try {
          for await (const message of socket.readable) {
            for (const writer of writers) {
              writer.write(message).catch(() => {});
            }
          }
        } catch {
          // The publisher went away.
        }
        return;
      }
      const writer = socket.writable.getWriter();
      writers.add(writer);
      await drain(socket);
      writers.delete(writer);
      await writer.close().catch(() => {});
    },
  );
  report({ port: server.addr.port });
}

/** The Hub row; with redisUrl, its topics go through Redis. */
async function hub(redisUrl?: string): Promise<void> {
  const topics = new Hub(
    redisUrl ? { backplane: await redisBackplane({ url: redisUrl }) } : {},
  );
  const server = serve(
    { hostname: HOSTNAME, port: 0, onListen() {} },
    async (socket, request) => {
      if (isPublisher(request)) {
        await socket.readable.pipeTo(topics.writable(TOPIC)).catch(() => {});
        return;
      }
      topics.subscribe(socket, TOPIC); // unsubscribed when it closes
      await drain(socket);
      try {
        socket.close(); // answers the client's Close
      } catch {
        // Closed already.
      }
    },
  );
  report({ port: server.addr.port });
}

if (import.meta.main) {
  const kind = Deno.args[0];
  switch (kind) {
    case "builtin":
      builtin();
      break;
    case "ws":
      await ws();
      break;
    case "loop":
      loop();
      break;
    case "hub":
      await hub();
      break;
    case "redis":
      await hub(Deno.args[1]);
      break;
    default:
      throw new Error(
        `expected a server kind builtin|ws|loop|hub|redis, found "${kind}"`,
      );
  }
}
