/**
 * Topics: sockets subscribe by name, and a message published to a topic is
 * framed once and queued to every subscriber, in one process or, through a
 * {@linkcode Backplane} such as Redis, in many.
 *
 * @module
 */

import { WebSocketConnection } from "./connection.ts";
import {
  PreparedMessage,
  type PreparedMessageOptions,
} from "./prepared_message.ts";
import {
  PreparedQueue,
  preparedQueueOf,
  type PreparedSender,
  QueueResult,
} from "./prepared_queue.ts";
import { PublicationRun } from "./publication_run.ts";
import {
  settlePublications,
  settleWhenSharedQuiet,
  sharedFrameQueued,
} from "./shared_flush.ts";
import type { Socket } from "./socket.ts";
import { preparedSenderOfUpgraded } from "./upgrade.ts";

/**
 * Relays a hub's topics between processes (`redisBackplane()` from
 * `@wstream/wstream/redis` is one). The hub calls it synchronously and
 * never awaits it: a backplane deals with its own faults and keeps no
 * promise unhandled.
 *
 * @example A backplane that relays between hubs of one process
 * ```ts
 * import { type Backplane, Hub } from "@wstream/wstream";
 *
 * const receivers = new Set<(topic: string, message: string | Uint8Array) => void>();
 * function localBackplane(): Backplane {
 *   let receive: ((topic: string, message: string | Uint8Array) => void) | undefined;
 *   return {
 *     start(receiver) { receivers.add(receive = receiver); },
 *     subscribe() {},
 *     unsubscribe() {},
 *     publish(topic, message) {
 *       for (const other of receivers) if (other !== receive) other(topic, message);
 *     },
 *     close() { receivers.delete(receive!); return Promise.resolve(); },
 *   };
 * }
 * const a = new Hub({ backplane: localBackplane() });
 * const b = new Hub({ backplane: localBackplane() });
 * a.publish("news", "relayed to b's subscribers");
 * await a.close();
 * await b.close();
 * ```
 */
export interface Backplane {
  /**
   * Called once by the hub: messages published to a topic by other
   * processes go to `receive` (text as a string, binary as bytes).
   */
  start(receive: (topic: string, message: string | Uint8Array) => void): void;
  /** The hub has a first local subscriber to `topic`. */
  subscribe(topic: string): void;
  /** The hub's last local subscriber to `topic` left. */
  unsubscribe(topic: string): void;
  /**
   * A message published in this process, for the other processes (not
   * to be handed back to this one's `receive`).
   */
  publish(topic: string, message: string | Uint8Array): void;
  /** Stops relaying and frees the backplane's connections. */
  close(): Promise<void>;
}

/**
 * Options of a {@linkcode Hub}.
 *
 * @example
 * ```ts
 * import { Hub, type HubOptions } from "@wstream/wstream";
 *
 * const options: HubOptions = {
 *   maxBufferedBytes: 256 * 1024,
 *   slowSubscriber: "drop",
 * };
 * const hub = new Hub(options);
 * ```
 */
export interface HubOptions extends PreparedMessageOptions {
  /** Relays topics to and from other processes. */
  backplane?: Backplane;
  /**
   * A subscriber with more than this many bytes waiting for its TCP
   * connection gets no more messages (see `slowSubscriber`). Default: each
   * socket's own `maxBufferedBytes` (1 MiB unless set).
   */
  maxBufferedBytes?: number;
  /**
   * What happens to a subscriber past `maxBufferedBytes`: `"close"` (the
   * default) closes it with 1013 (Try Again Later), so no message is lost
   * without the client knowing; `"drop"` skips messages for it until it
   * catches up, and counts them ({@linkcode Hub.droppedMessages}).
   */
  slowSubscriber?: "close" | "drop";
}

/**
 * Options of {@linkcode Hub.publish} and {@linkcode Hub.writable}.
 *
 * @example
 * ```ts ignore
 * hub.publish("lobby", "hi all but me", { except: socket });
 * ```
 */
export interface PublishOptions {
  /** A socket that does not get the message (typically its sender). */
  except?: Socket;
}

// Close code 1013 "Try Again Later" (IANA WebSocket Close Code Number
// registry, RFC 6455 §11.7): the server is overloaded, try later.
const TRY_AGAIN_LATER = 1013;

interface Subscriber {
  readonly socket: Socket;
  readonly sender: PreparedSender;
  // The sender when it takes a run of messages in one call (wstream's
  // codec); else (upgrade()'s sockets) each message is sent at once.
  readonly runs: PreparedQueue | undefined;
  readonly topics: Set<string>;
  dropped: number;
}

// A topic's subscribers, and those of them that take no runs.
interface Topic {
  readonly all: Set<Subscriber>;
  readonly direct: Set<Subscriber>;
}

/**
 * Topics of sockets: `publish(topic, message)` encodes the message once
 * (and compresses it at most once per window size) and queues the same
 * bytes to every socket subscribed to the topic, without a promise per
 * socket. Each subscriber gets a topic's messages in publish order. A
 * subscriber that does not keep up never slows the publisher or the
 * others: past `maxBufferedBytes` it is closed with 1013, or, with
 * `slowSubscriber: "drop"`, it misses messages until it catches up.
 *
 * What each socket receives: a server socket whose compressor keeps no
 * context between messages (`server_no_context_takeover` was agreed) gets
 * the shared compressed frame of a message of at least
 * `compressionThreshold` bytes; every other socket gets the shared
 * uncompressed frame (RFC 7692 lets each message choose, and an
 * uncompressed one does not enter the receiver's window). Client sockets
 * mask each frame with a key of their own (RFC 6455 §5.3). Sockets from
 * `upgrade()` run on Deno's own WebSocket, which takes no pre-encoded
 * frames: they get one `send()` each, in the same order and under the same
 * slow-subscriber policy.
 *
 * @example A chat room
 * ```ts
 * import { connect, Hub, serve } from "@wstream/wstream";
 * import { assertEquals } from "@std/assert";
 *
 * const hub = new Hub();
 * await using server = serve({ port: 0, hostname: "127.0.0.1" }, async (socket) => {
 *   hub.subscribe(socket, "lobby");
 *   await socket.readable.pipeTo(hub.writable("lobby", { except: socket }));
 * });
 * const url = `ws://127.0.0.1:${server.addr.port}/`;
 * const alice = await connect(url);
 * const bob = await connect(url);
 * while (hub.subscriberCount("lobby") < 2) await new Promise((r) => setTimeout(r, 5));
 * const writer = alice.writable.getWriter();
 * await writer.write("hello, bob");
 * const reader = bob.readable.getReader();
 * assertEquals((await reader.read()).value, "hello, bob");
 * reader.releaseLock();
 * await writer.close();
 * bob.close();
 * await Promise.all([alice.closed, bob.closed]);
 * ```
 */
export class Hub {
  readonly #topics = new Map<string, Topic>();
  readonly #subscribers = new Map<Socket, Subscriber>();
  readonly #backplane: Backplane | undefined;
  readonly #limit: number | undefined;
  readonly #dropSlow: boolean;
  readonly #prepareOptions: PreparedMessageOptions;
  #dropped = 0;
  #closed = false;
  // Messages from writable() and the backplane, held until the turn goes
  // quiet (see shared_flush.ts), then handed to each subscriber at once.
  #runs: PublicationRun[] = [];
  #settleScheduled = false;
  readonly #settle = (): void => {
    this.#settleScheduled = false;
    const runs = this.#runs;
    this.#runs = [];
    for (const run of runs) this.#deliverRun(run);
  };

  /**
   * Makes a hub.
   *
   * @param options The backplane, the slow-subscriber policy and the
   * shared compression.
   */
  constructor(options: HubOptions = {}) {
    const { backplane, maxBufferedBytes, slowSubscriber = "close" } = options;
    if (slowSubscriber !== "close" && slowSubscriber !== "drop") {
      throw new TypeError(
        `expected slowSubscriber "close" or "drop", found ${
          JSON.stringify(slowSubscriber)
        }`,
      );
    }
    if (
      maxBufferedBytes !== undefined &&
      !(typeof maxBufferedBytes === "number" && maxBufferedBytes >= 0)
    ) {
      throw new RangeError(
        `expected maxBufferedBytes to be a number >= 0, found ${maxBufferedBytes}`,
      );
    }
    this.#limit = maxBufferedBytes;
    this.#dropSlow = slowSubscriber === "drop";
    this.#prepareOptions = {
      compressionThreshold: options.compressionThreshold,
      compressionLevel: options.compressionLevel,
    };
    this.#backplane = backplane;
    backplane?.start((topic, message) => {
      if (!this.#closed) this.#hold(topic, this.#prepare(message), undefined);
    });
  }

  /**
   * Subscribes `socket` to `topic` (again: no effect). The socket leaves
   * all its topics when it closes.
   *
   * @param socket A socket from `serve()`, `connect()`, `handleUpgrade()`
   * or `upgrade()`.
   * @param topic Any string; names are data, never patterns.
   * @throws {TypeError} When `socket` is not a wstream socket or `topic`
   * not a string.
   */
  subscribe(socket: Socket, topic: string): void {
    checkTopic(topic);
    // What is held was published before this socket joined.
    settlePublications();
    let subscriber = this.#subscribers.get(socket);
    if (subscriber === undefined) {
      const sender = senderOf(socket);
      if (sender === undefined) {
        throw new TypeError(
          "expected a socket from serve(), connect(), handleUpgrade() or upgrade() to subscribe, found " +
            (socket === null ? "null" : typeof socket),
        );
      }
      subscriber = {
        socket,
        sender,
        runs: sender instanceof PreparedQueue ? sender : undefined,
        topics: new Set(),
        dropped: 0,
      };
      this.#subscribers.set(socket, subscriber);
      const added = subscriber;
      socket.closed.then(() => this.#forget(added));
    }
    if (subscriber.topics.has(topic)) return;
    subscriber.topics.add(topic);
    let subscribers = this.#topics.get(topic);
    if (subscribers === undefined) {
      subscribers = { all: new Set(), direct: new Set() };
      this.#topics.set(topic, subscribers);
      this.#backplane?.subscribe(topic);
    }
    subscribers.all.add(subscriber);
    if (subscriber.runs === undefined) subscribers.direct.add(subscriber);
  }

  /**
   * Unsubscribes `socket` from `topic` (when not subscribed: no effect).
   *
   * @param socket The socket.
   * @param topic The topic.
   */
  unsubscribe(socket: Socket, topic: string): void {
    checkTopic(topic);
    settlePublications();
    const subscriber = this.#subscribers.get(socket);
    if (subscriber === undefined || !subscriber.topics.delete(topic)) return;
    this.#leave(subscriber, topic);
  }

  /**
   * Sends `message` to every subscriber of `topic` (but `except`), here
   * and, through the backplane, in other processes. The message is
   * encoded once; nothing waits for any subscriber.
   *
   * @param topic The topic.
   * @param message A string (text) or bytes (binary; copied, so the
   * buffer may be reused right after).
   * @param options `except`: a socket that does not get it.
   * @returns The number of local sockets it was queued to.
   * @throws {TypeError} When the topic is not a string or the message
   * neither a string nor a `BufferSource`.
   */
  publish(
    topic: string,
    message: string | BufferSource | ArrayBufferView,
    options: PublishOptions = {},
  ): number {
    checkTopic(topic);
    const prepared = this.#relay(topic, message);
    if (prepared === undefined) return 0;
    // Messages held from writable() were published first.
    settlePublications();
    return this.#deliver(topic, prepared, options.except);
  }

  /**
   * A stream whose every chunk is published to `topic`, so a socket's
   * messages go to a room with
   * `socket.readable.pipeTo(hub.writable(topic, { except: socket }))`.
   * It never applies backpressure: publishing does not wait. The messages
   * written in a turn reach each subscriber in one step once the turn goes
   * quiet, in the order and under the policy of `publish()`; anything else
   * sent to a subscriber, or a close, waits for them.
   *
   * @param topic The topic.
   * @param options `except`: a socket that does not get the messages.
   * @returns A new writable stream.
   */
  writable(
    topic: string,
    options: PublishOptions = {},
  ): WritableStream<string | BufferSource | ArrayBufferView> {
    checkTopic(topic);
    const except = options.except;
    return new WritableStream({
      write: (message) => {
        const prepared = this.#relay(topic, message);
        if (prepared !== undefined) this.#hold(topic, prepared, except);
      },
    });
  }

  /**
   * How many local sockets are subscribed to `topic`.
   *
   * @param topic The topic.
   * @returns The count (0 for an unknown topic).
   */
  subscriberCount(topic: string): number {
    return this.#topics.get(topic)?.all.size ?? 0;
  }

  /**
   * How many messages were skipped for a slow subscriber under
   * `slowSubscriber: "drop"`: for `socket` while it is subscribed, or for
   * all sockets since the hub was made.
   *
   * @param socket A subscribed socket; omit it for the hub's total.
   * @returns The count.
   */
  droppedMessages(socket?: Socket): number {
    settlePublications();
    if (socket === undefined) return this.#dropped;
    return this.#subscribers.get(socket)?.dropped ?? 0;
  }

  /**
   * Stops publishing and closes the backplane. Sockets stay open and
   * subscribed to nothing.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    // What is held was published before the hub closed.
    settlePublications();
    this.#closed = true;
    this.#topics.clear();
    this.#subscribers.clear();
    await this.#backplane?.close();
  }

  /** Same as {@linkcode Hub.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #prepare(message: string | BufferSource | ArrayBufferView): PreparedMessage {
    return new PreparedMessage(message, this.#prepareOptions);
  }

  #deliver(
    topic: string,
    message: PreparedMessage,
    except: Socket | undefined,
  ): number {
    const subscribers = this.#topics.get(topic);
    if (subscribers === undefined) return 0;
    return this.#deliverEach(subscribers.all, message, except);
  }

  // A message published here: encoded once (a bad one throws, also on a
  // closed hub), sent to the other processes, and returned for local
  // delivery; undefined once the hub is closed.
  #relay(
    topic: string,
    message: string | BufferSource | ArrayBufferView,
  ): PreparedMessage | undefined {
    const prepared = this.#prepare(message);
    if (this.#closed) return undefined;
    this.#backplane?.publish(
      topic,
      typeof message === "string" ? message : prepared.payload,
    );
    return prepared;
  }

  // Queues message to each of subscribers but except; how many took it.
  #deliverEach(
    subscribers: Set<Subscriber>,
    message: PreparedMessage,
    except: Socket | undefined,
  ): number {
    let queued = 0;
    for (const subscriber of subscribers) {
      if (subscriber.socket === except) continue;
      const result = subscriber.sender.queue(message, this.#limit);
      if (result === QueueResult.Queued) queued++;
      else if (result === QueueResult.Full) this.#onFull(subscriber, 1);
    }
    return queued;
  }

  // A publication from writable() or the backplane: sent now to the
  // subscribers that take no runs, held for the others until the turn goes
  // quiet (or something else is queued first: see shared_flush.ts).
  #hold(topic: string, message: PreparedMessage, except: Socket | undefined) {
    const subscribers = this.#topics.get(topic);
    if (subscribers === undefined) return;
    if (subscribers.direct.size > 0) {
      this.#deliverEach(subscribers.direct, message, except);
      if (subscribers.direct.size === subscribers.all.size) return;
    }
    const runs = this.#runs;
    let run = runs[runs.length - 1];
    if (run === undefined || run.topic !== topic || run.except !== except) {
      runs.push(run = new PublicationRun(topic, except));
    }
    run.add(message);
    if (this.#settleScheduled) {
      sharedFrameQueued();
    } else {
      this.#settleScheduled = true;
      settleWhenSharedQuiet(this.#settle);
    }
  }

  // Hands the run to each subscriber of its topic that takes runs.
  #deliverRun(run: PublicationRun): void {
    const subscribers = this.#topics.get(run.topic);
    if (subscribers === undefined) return;
    const count = run.messages.length;
    for (const subscriber of subscribers.all) {
      const queue = subscriber.runs;
      if (queue === undefined || subscriber.socket === run.except) continue;
      const queued = queue.queueRun(run, this.#limit);
      if (queued >= 0 && queued < count) {
        this.#onFull(subscriber, count - queued);
      }
    }
  }

  // messages did not fit in subscriber's queue (the policy's call).
  #onFull(subscriber: Subscriber, messages: number): void {
    if (this.#dropSlow) {
      subscriber.dropped += messages;
      this.#dropped += messages;
      return;
    }
    // The client learns that it missed messages (1013: Try Again Later).
    subscriber.socket.close({
      closeCode: TRY_AGAIN_LATER,
      reason: "too slow: messages queued past maxBufferedBytes",
    });
  }

  #leave(subscriber: Subscriber, topic: string): void {
    const subscribers = this.#topics.get(topic);
    if (subscribers === undefined || !subscribers.all.delete(subscriber)) {
      return;
    }
    subscribers.direct.delete(subscriber);
    if (subscribers.all.size > 0) return;
    this.#topics.delete(topic);
    this.#backplane?.unsubscribe(topic);
  }

  #forget(subscriber: Subscriber): void {
    if (this.#subscribers.get(subscriber.socket) !== subscriber) return;
    settlePublications();
    this.#subscribers.delete(subscriber.socket);
    for (const topic of subscriber.topics) this.#leave(subscriber, topic);
    subscriber.topics.clear();
  }
}

// The way each kind of socket takes a prepared message: shared frames on
// wstream's codec, one send per socket on upgrade()'s.
function senderOf(socket: Socket): PreparedSender | undefined {
  if (socket instanceof WebSocketConnection) return preparedQueueOf(socket);
  if (typeof socket !== "object" || socket === null) return undefined;
  return preparedSenderOfUpgraded(socket);
}

function checkTopic(topic: unknown): asserts topic is string {
  if (typeof topic !== "string") {
    throw new TypeError(
      `expected a topic name (a string), found ${
        topic === null ? "null" : typeof topic
      }`,
    );
  }
}
