/**
 * Test server: a wstream server whose sockets subscribe to the topic in
 * their path (`/topic/<encoded name>`) and publish what they send to it.
 * Run as a child process with a Redis URL, it relays through Redis,
 * prints `listening <port>` and stops when its stdin closes:
 *
 *     deno run -A tests/_hub_server.ts redis://127.0.0.1:6379
 *
 * @module
 */

import { Hub, serve, type WebSocketServer } from "../mod.ts";
import { redisBackplane } from "../src/redis_backplane.ts";

/** The path of a socket subscribed to `topic`. */
export function topicPath(topic: string): string {
  return `/topic/${encodeURIComponent(topic)}`;
}

/** Serves `hub`'s topics on a free loopback port. */
export function startTopicServer(hub: Hub): WebSocketServer {
  return serve(
    { port: 0, hostname: "127.0.0.1", closeTimeoutMs: 1000 },
    async (socket, request) => {
      const path = new URL(request.url).pathname;
      const topic = decodeURIComponent(path.slice("/topic/".length));
      hub.subscribe(socket, topic);
      await socket.readable.pipeTo(hub.writable(topic, { except: socket }))
        .catch(() => {});
    },
  );
}

if (import.meta.main) {
  const hub = new Hub({
    backplane: await redisBackplane({ url: Deno.args[0] }),
    maxBufferedBytes: 64 * 1024 * 1024,
  });
  const server = startTopicServer(hub);
  console.log(`listening ${server.addr.port}`);
  for await (const _ of Deno.stdin.readable) {
    // Until the parent closes our stdin.
  }
  await server.shutdown();
  await hub.close();
}
