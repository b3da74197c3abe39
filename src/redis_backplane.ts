/**
 * A {@linkcode Backplane} on Redis pub/sub: hubs in several processes, on
 * one machine or many, share their topics through one Redis server.
 *
 * Client: `@redis/client` (the client of the npm `redis` package, kept by
 * Redis itself; ioredis is in maintenance and points new code to it). It
 * reconnects by itself and subscribes again to its channels after a
 * reconnect, and it hands pub/sub messages over as bytes, so binary
 * messages arrive byte for byte.
 *
 * Delivery across processes is at most once: a message published while
 * Redis is away, or while this process is reconnecting, is not seen by
 * the other processes (local subscribers still get it), as with
 * socket.io's Redis adapter.
 *
 * @module
 */

import { createClient } from "@redis/client";
import { Buffer } from "node:buffer";
import type { Backplane } from "./hub.ts";
import { equalJitter } from "./jitter.ts";

/**
 * Options of {@linkcode redisBackplane}.
 *
 * @example
 * ```ts
 * import type { RedisBackplaneOptions } from "@wstream/wstream/redis";
 *
 * const options: RedisBackplaneOptions = {
 *   url: "redis://127.0.0.1:6379",
 *   channelPrefix: "chat:",
 * };
 * ```
 */
export interface RedisBackplaneOptions {
  /** The Redis server, e.g. `redis://user:password@host:6379/0`. */
  url: string;
  /**
   * Put in front of a topic's name to make its Redis channel, so that other
   * users of the same Redis are not mixed up with the hub. Default
   * `"wstream:"`.
   */
  channelPrefix?: string;
  /** How long the first connection may take. Default 5000 ms. */
  connectTimeoutMs?: number;
  /**
   * Told of what goes wrong while running (Redis went away, a message that
   * is not ours on a channel). Default: one warning on the console per
   * outage.
   */
  onError?: (error: Error) => void;
}

// A Redis message: a kind byte, the publishing backplane's id, the payload.
const KIND_TEXT = 0x01;
const KIND_BINARY = 0x02;
const ORIGIN_BYTES = 16;
const HEADER_BYTES = 1 + ORIGIN_BYTES;
// Reconnect delays: doubling from 50 ms up to 5 s, each with jitter.
const RECONNECT_FIRST_MS = 50;
const RECONNECT_MAX_MS = 5000;

const textEncoder = new TextEncoder();
const strictDecoder = new TextDecoder("utf-8", {
  fatal: true,
  ignoreBOM: true,
});

// What the backplane uses of a client (its full generic type is not needed).
interface RedisClient {
  readonly isReady: boolean;
  connect(): Promise<unknown>;
  subscribe(
    channel: string,
    listener: (message: Buffer) => void,
    bufferMode: true,
  ): Promise<unknown>;
  unsubscribe(channel: string): Promise<unknown>;
  publish(channel: string, message: Buffer): Promise<unknown>;
  close(): Promise<unknown>;
  destroy(): void;
  on(event: string, listener: (...args: unknown[]) => void): unknown;
}

// The URL without its password, for messages.
function safeUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.href;
  } catch {
    return url;
  }
}

function reconnectDelay(retries: number): number {
  return equalJitter(
    Math.min(RECONNECT_FIRST_MS * 2 ** retries, RECONNECT_MAX_MS),
  );
}

function errorOf(cause: unknown): Error {
  return cause instanceof Error ? cause : new Error(String(cause));
}

/**
 * Connects to Redis and returns a {@linkcode Backplane} for a `Hub`: the
 * hub's topics with local subscribers are subscribed in Redis (with
 * SUBSCRIBE, never a pattern), and its publications go to Redis for the
 * other processes. Text stays text and binary stays binary; a process does
 * not get its own publications back.
 *
 * @example
 * ```ts ignore
 * import { Hub, serve } from "@wstream/wstream";
 * import { redisBackplane } from "@wstream/wstream/redis";
 *
 * const hub = new Hub({ backplane: await redisBackplane({ url: "redis://127.0.0.1:6379" }) });
 * serve({ port: 8080 }, async (socket) => {
 *   hub.subscribe(socket, "lobby");
 *   await socket.readable.pipeTo(hub.writable("lobby", { except: socket }));
 * });
 * ```
 *
 * @param options The Redis URL and how to use it.
 * @returns The backplane, once both of its connections are up.
 * @throws {Error} When Redis cannot be reached at the start (the message
 * names the URL, without its password).
 */
export async function redisBackplane(
  options: RedisBackplaneOptions,
): Promise<Backplane> {
  const { url, channelPrefix = "wstream:", connectTimeoutMs = 5000 } = options;
  if (typeof url !== "string") {
    throw new TypeError(
      `expected a Redis URL (a string), found ${typeof url}`,
    );
  }
  let started = false;
  let warned = false;
  const onError = options.onError ?? ((error: Error) => {
    if (warned) return;
    warned = true;
    console.warn(
      `wstream: Redis at ${safeUrl(url)}: ${error.message} (reconnecting; ` +
        "messages published meanwhile reach local subscribers only)",
    );
  });
  const make = (queueWhileAway: boolean): RedisClient => {
    const client = createClient({
      url,
      // A publication during an outage is dropped, not queued without bound;
      // a (un)subscription is sent once Redis is back.
      disableOfflineQueue: !queueWhileAway,
      socket: {
        connectTimeout: connectTimeoutMs,
        // Before the start a failure is final (the caller is told); after
        // it, reconnect with backoff for as long as it takes.
        reconnectStrategy: (retries: number, cause: Error) =>
          started ? reconnectDelay(retries) : cause,
      },
    }) as unknown as RedisClient;
    // Without a listener, an "error" event would end the process.
    client.on("error", (error: unknown) => {
      if (started) onError(errorOf(error));
    });
    client.on("ready", () => warned = false);
    return client;
  };
  const publisher = make(false);
  const subscriber = make(true);
  try {
    await Promise.all([publisher.connect(), subscriber.connect()]);
  } catch (error) {
    for (const client of [publisher, subscriber]) {
      try {
        client.destroy();
      } catch {
        // Never connected.
      }
    }
    throw new Error(
      `Could not connect to Redis at ${safeUrl(url)}: ${
        errorOf(error).message
      }. Is redis-server running there?`,
      { cause: error },
    );
  }
  started = true;
  return new RedisBackplane(publisher, subscriber, channelPrefix, onError);
}

class RedisBackplane implements Backplane {
  readonly #publisher: RedisClient;
  readonly #subscriber: RedisClient;
  readonly #prefix: string;
  readonly #onError: (error: Error) => void;
  readonly #origin = crypto.getRandomValues(new Uint8Array(ORIGIN_BYTES));
  #receive: ((topic: string, message: string | Uint8Array) => void) | undefined;
  #closed = false;

  constructor(
    publisher: RedisClient,
    subscriber: RedisClient,
    prefix: string,
    onError: (error: Error) => void,
  ) {
    this.#publisher = publisher;
    this.#subscriber = subscriber;
    this.#prefix = prefix;
    this.#onError = onError;
  }

  start(receive: (topic: string, message: string | Uint8Array) => void): void {
    this.#receive = receive;
  }

  subscribe(topic: string): void {
    if (this.#closed) return;
    // The channel is an argument of SUBSCRIBE, sent as a bulk string:
    // binary-safe, never parsed as a command or a pattern.
    this.#subscriber.subscribe(
      this.#prefix + topic,
      (message: Buffer) => this.#onMessage(topic, message),
      true,
    ).catch((error: unknown) => this.#failed("subscribe", topic, error));
  }

  unsubscribe(topic: string): void {
    if (this.#closed) return;
    this.#subscriber.unsubscribe(this.#prefix + topic)
      .catch((error: unknown) => this.#failed("unsubscribe", topic, error));
  }

  publish(topic: string, message: string | Uint8Array): void {
    if (this.#closed || !this.#publisher.isReady) return; // at most once
    let bytes: Uint8Array;
    if (typeof message === "string") {
      // Room for the header and the text's UTF-8 (3 bytes a code unit at most).
      const buffer = new Uint8Array(HEADER_BYTES + message.length * 3);
      const { written } = textEncoder.encodeInto(
        message,
        buffer.subarray(HEADER_BYTES),
      );
      bytes = buffer.subarray(0, HEADER_BYTES + written);
      bytes[0] = KIND_TEXT;
    } else {
      bytes = new Uint8Array(HEADER_BYTES + message.length);
      bytes[0] = KIND_BINARY;
      bytes.set(message, HEADER_BYTES);
    }
    bytes.set(this.#origin, 1);
    this.#publisher.publish(
      this.#prefix + topic,
      Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length),
    ).catch((error: unknown) => this.#failed("publish to", topic, error));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all(
      [this.#publisher, this.#subscriber].map(async (client) => {
        try {
          if (client.isReady) await client.close();
          else client.destroy();
        } catch {
          client.destroy();
        }
      }),
    );
  }

  #onMessage(topic: string, message: Buffer): void {
    if (this.#closed || this.#receive === undefined) return;
    const kind = message[0];
    if (
      message.length < HEADER_BYTES ||
      (kind !== KIND_TEXT && kind !== KIND_BINARY)
    ) {
      this.#onError(
        new Error(
          `expected a wstream message on Redis channel "${this.#prefix}${topic}", found ${message.length} bytes that are not one (ignored)`,
        ),
      );
      return;
    }
    // Our own publication, back from Redis: the local subscribers had it.
    let ours = true;
    for (let i = 0; i < ORIGIN_BYTES; i++) {
      if (message[1 + i] !== this.#origin[i]) {
        ours = false;
        break;
      }
    }
    if (ours) return;
    const payload = new Uint8Array(
      message.buffer,
      message.byteOffset + HEADER_BYTES,
      message.length - HEADER_BYTES,
    );
    if (kind === KIND_BINARY) {
      this.#receive(topic, payload);
      return;
    }
    let text: string;
    try {
      text = strictDecoder.decode(payload);
    } catch {
      this.#onError(
        new Error(
          `expected UTF-8 text in a message on Redis channel "${this.#prefix}${topic}", found invalid bytes (ignored)`,
        ),
      );
      return;
    }
    this.#receive(topic, text);
  }

  #failed(what: string, topic: string, cause: unknown): void {
    if (this.#closed) return;
    const error = errorOf(cause);
    this.#onError(
      new Error(
        `Redis: could not ${what} channel "${this.#prefix}${topic}": ${error.message}`,
        { cause },
      ),
    );
  }
}
