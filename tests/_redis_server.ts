/**
 * Test helper: a real `redis-server` on a free loopback port, persistence
 * off, stopped (and restarted) by its PID; and a RESP command over TCP.
 *
 * @module
 */

import { requirePeer } from "./interop/_peers.ts";

const REDIS_SERVER = "/usr/bin/redis-server";
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** True when Debian's redis-server is installed. */
export async function redisAvailable(): Promise<boolean> {
  try {
    await Deno.stat(REDIS_SERVER);
    return true;
  } catch {
    return false;
  }
}

/** Says whether the test can run (see requirePeer: CI fails without it). */
export async function requireRedis(): Promise<boolean> {
  return requirePeer(
    "redis-server",
    await redisAvailable(),
    "apt-get install redis-server",
  );
}

/** A loopback port nothing listens on (at the time of the call). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** A running redis-server. */
export interface RedisServer extends AsyncDisposable {
  readonly port: number;
  readonly url: string;
  /** Kills it (SIGKILL, by PID) and waits for its end. */
  kill(): Promise<void>;
  /** Starts it again on the same port. */
  restart(): Promise<void>;
  /** Sends one command and returns the raw RESP reply. */
  command(...args: (string | Uint8Array)[]): Promise<string>;
  /** `PUBSUB NUMSUB channel`: how many connections subscribe to it. */
  numsub(channel: string): Promise<number>;
}

/** Sends one command (RESP array of bulk strings) and reads one reply. */
export async function redisCommand(
  port: number,
  args: (string | Uint8Array)[],
): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const parts: Uint8Array[] = [encoder.encode(`*${args.length}\r\n`)];
    for (const arg of args) {
      const bytes = typeof arg === "string" ? encoder.encode(arg) : arg;
      parts.push(encoder.encode(`$${bytes.length}\r\n`), bytes);
      parts.push(encoder.encode("\r\n"));
    }
    const request = new Uint8Array(
      parts.reduce((sum, part) => sum + part.length, 0),
    );
    let offset = 0;
    for (const part of parts) {
      request.set(part, offset);
      offset += part.length;
    }
    await conn.write(request);
    const buffer = new Uint8Array(64 * 1024);
    const n = await conn.read(buffer);
    return decoder.decode(buffer.subarray(0, n ?? 0));
  } finally {
    conn.close();
  }
}

/** Starts redis-server and waits until it answers PING. */
export async function startRedis(): Promise<RedisServer> {
  const port = freePort();
  let child: Deno.ChildProcess | undefined;
  const start = async () => {
    child = new Deno.Command(REDIS_SERVER, {
      args: [
        "--port",
        String(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
      ],
      stdout: "null",
      stderr: "null",
    }).spawn();
    for (let i = 0; i < 200; i++) {
      try {
        if ((await redisCommand(port, ["PING"])).startsWith("+PONG")) return;
      } catch {
        // Not listening yet.
      }
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    throw new Error(`redis-server did not answer PING on port ${port}`);
  };
  const kill = async () => {
    if (child === undefined) return;
    const running = child;
    child = undefined;
    try {
      Deno.kill(running.pid, "SIGKILL");
    } catch {
      // Ended already.
    }
    await running.status;
  };
  await start();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    kill,
    restart: start,
    command: (...args) => redisCommand(port, args),
    async numsub(channel) {
      const reply = await redisCommand(port, ["PUBSUB", "NUMSUB", channel]);
      // *2\r\n$len\r\nchannel\r\n:count\r\n
      const match = reply.match(/:(\d+)\r\n$/);
      if (!match) {
        throw new Error(`unexpected NUMSUB reply ${JSON.stringify(reply)}`);
      }
      return Number(match[1]);
    },
    [Symbol.asyncDispose]: kill,
  };
}
