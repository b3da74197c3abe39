/**
 * Compressed echo (RFC 7692 permessage-deflate) of 16 KiB JSON-like text
 * messages: wstream's `connect()` against wstream's `serve()`, side by side
 * with an npm `ws` client against an npm `ws` server (`perMessageDeflate`
 * on), both with their defaults (context takeover, 15-bit windows, 1 KiB
 * threshold) and, for reference, wstream without compression.
 *
 * One bench iteration is a session of 256 distinct messages, pipelined 32
 * at a time, each echoed back; connection setup is outside the timing. The
 * messages per second are 256 / (time per iteration). Bytes on the wire are
 * counted once, before the benches, through a counting TCP relay.
 *
 * Run: `deno bench --import-map=import_map.npm.json -A bench/deflate_echo_bench.ts`
 * (part of `deno task bench`).
 *
 * @module
 */
// npm ws ships no types (its module is `any` here); a bench-only peer.
// deno-lint-ignore no-import-prefix
import { WebSocket as WsWebSocket, WebSocketServer } from "npm:ws@8.23.0";
import { connect } from "../src/client.ts";
import { serve } from "../src/server.ts";
import { jsonLikeText } from "./_json_like_text.ts";

const MESSAGE_COUNT = 256;
const WINDOW = 32;
const messages = Array.from(
  { length: MESSAGE_COUNT },
  (_, i) => jsonLikeText(16 * 1024, 1000 + i),
);

interface Session {
  url: string;
  close(): Promise<void>;
}

/** wstream's server, echoing. */
function startWstreamServer(compression: boolean): Session {
  const server = serve(
    { hostname: "127.0.0.1", port: 0, compression },
    async (socket) => {
      await socket.readable.pipeTo(socket.writable);
    },
  );
  return {
    url: `ws://127.0.0.1:${server.addr.port}/`,
    close: () => server.shutdown(),
  };
}

/** npm ws's server with perMessageDeflate, echoing. */
async function startWsServer(): Promise<Session> {
  const server = new WebSocketServer({
    host: "127.0.0.1",
    port: 0,
    perMessageDeflate: true,
  });
  await new Promise((resolve) => server.once("listening", resolve));
  // deno-lint-ignore no-explicit-any
  server.on("connection", (ws: any) => {
    ws.on("message", (data: unknown, isBinary: boolean) => {
      ws.send(data, { binary: isBinary });
    });
  });
  return {
    url: `ws://127.0.0.1:${server.address().port}/`,
    close: () => {
      for (const client of server.clients) client.terminate();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Echoes every message through a wstream client, WINDOW in flight. */
async function wstreamClientSession(url: string, compression: boolean) {
  const socket = await connect(url, { compression });
  const writer = socket.writable.getWriter();
  const reader = socket.readable.getReader();
  return {
    async run() {
      for (let i = 0; i < MESSAGE_COUNT; i += WINDOW) {
        const batch = messages.slice(i, i + WINDOW);
        await Promise.all(batch.map((m) => writer.write(m)));
        for (let j = 0; j < batch.length; j++) {
          const { value } = await reader.read();
          if (typeof value !== "string" || value.length !== batch[j].length) {
            throw new Error("wstream echo returned a different message");
          }
        }
      }
    },
    async close() {
      reader.releaseLock();
      await writer.close();
      await socket.closed;
    },
  };
}

/** Echoes every message through an npm ws client, WINDOW in flight. */
async function wsClientSession(url: string) {
  const ws = new WsWebSocket(url, { perMessageDeflate: true });
  let pending = 0;
  let wake: (() => void) | undefined;
  ws.on("message", () => {
    if (--pending === 0) wake?.();
  });
  await new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
  return {
    async run() {
      for (let i = 0; i < MESSAGE_COUNT; i += WINDOW) {
        const batch = messages.slice(i, i + WINDOW);
        const done = new Promise<void>((resolve) => (wake = resolve));
        pending = batch.length;
        for (const m of batch) ws.send(m);
        await done;
      }
    },
    close() {
      const closed = new Promise<void>((resolve) =>
        ws.once("close", () => resolve())
      );
      ws.close(1000);
      return closed;
    },
  };
}

/** A TCP relay to `port` that counts the bytes each way. */
function countingRelay(port: number) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const counts = { clientToServer: 0, serverToClient: 0 };
  const relays: Promise<unknown>[] = [];
  const counter = (key: keyof typeof counts) =>
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        counts[key] += chunk.length;
        controller.enqueue(chunk);
      },
    });
  const accepting = (async () => {
    for await (const inbound of listener) {
      const outbound = await Deno.connect({ hostname: "127.0.0.1", port });
      relays.push(
        inbound.readable.pipeThrough(counter("clientToServer"))
          .pipeTo(outbound.writable).catch(() => {}),
        outbound.readable.pipeThrough(counter("serverToClient"))
          .pipeTo(inbound.writable).catch(() => {}),
      );
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    counts,
    async close() {
      listener.close();
      await accepting.catch(() => {});
      await Promise.all(relays);
    },
  };
}

async function wireBytes(kind: "wstream" | "wstream-plain" | "ws") {
  const server = kind === "ws"
    ? await startWsServer()
    : startWstreamServer(kind === "wstream");
  const relay = countingRelay(Number(new URL(server.url).port));
  const url = `ws://127.0.0.1:${relay.port}/`;
  const client = kind === "ws"
    ? await wsClientSession(url)
    : await wstreamClientSession(url, kind === "wstream");
  await client.run();
  await client.close();
  await server.close();
  await relay.close();
  return relay.counts;
}

const raw = messages.reduce((n, m) => n + m.length, 0);
const ours = await wireBytes("wstream");
const theirs = await wireBytes("ws");
const plain = await wireBytes("wstream-plain");
const ratio = (a: number, b: number) => (a / b).toFixed(3);
console.log(
  `bytes on the wire for ${MESSAGE_COUNT} echoed 16 KiB JSON-like messages ` +
    `(${raw} B of payload each way):\n` +
    `  wstream       client→server ${ours.clientToServer} B, server→client ${ours.serverToClient} B\n` +
    `  npm ws        client→server ${theirs.clientToServer} B, server→client ${theirs.serverToClient} B\n` +
    `  uncompressed  client→server ${plain.clientToServer} B, server→client ${plain.serverToClient} B\n` +
    `  wstream / ws: client→server ${
      ratio(ours.clientToServer, theirs.clientToServer)
    }, server→client ${ratio(ours.serverToClient, theirs.serverToClient)}`,
);

const benchOptions = { group: "compressed echo", n: 20, warmup: 3 };

Deno.bench(
  `wstream connect() ⇄ serve(), permessage-deflate (${MESSAGE_COUNT} × 16 KiB)`,
  { ...benchOptions, baseline: true },
  async (b) => {
    const server = startWstreamServer(true);
    const client = await wstreamClientSession(server.url, true);
    b.start();
    await client.run();
    b.end();
    await client.close();
    await server.close();
  },
);

Deno.bench(
  `npm ws client ⇄ ws server, perMessageDeflate (${MESSAGE_COUNT} × 16 KiB)`,
  benchOptions,
  async (b) => {
    const server = await startWsServer();
    const client = await wsClientSession(server.url);
    b.start();
    await client.run();
    b.end();
    await client.close();
    await server.close();
  },
);

Deno.bench(
  `wstream connect() ⇄ serve(), uncompressed (${MESSAGE_COUNT} × 16 KiB)`,
  benchOptions,
  async (b) => {
    const server = startWstreamServer(false);
    const client = await wstreamClientSession(server.url, false);
    b.start();
    await client.run();
    b.end();
    await client.close();
    await server.close();
  },
);
