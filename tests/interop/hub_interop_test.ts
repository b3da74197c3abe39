// Hub subscribers that are real peers (Python websockets, npm ws, Chromium)
// decode a mix of hub messages (one shared frame, compressed once when the
// socket's compressor keeps no context, else uncompressed) and the socket's
// own compressed messages, in order, with and without context takeover.

import { assertEquals, assertStringIncludes } from "@std/assert";
// npm ws ships no types (its module is `any` here); a test-only peer.
// deno-lint-ignore no-import-prefix
import { WebSocket as WsWebSocket } from "npm:ws@8.23.0";
import type { Buffer } from "node:buffer";
import { Hub, serve, type WebSocketServer } from "../../mod.ts";
import {
  browserEcho,
  chromiumAvailable,
  launchChromium,
  type PeerMessage,
  type PythonClientResult,
  pythonWebsocketsAvailable,
  requirePeer,
  runPythonClient,
} from "./_peers.ts";
import { delay, within } from "../_socket_util.ts";

const hasPython = await pythonWebsocketsAvailable();
const hasChromium = await chromiumAvailable();

const ROUNDS = 12;
const WORDS = "the quick brown fox jumps over the lazy dog, again and again; ";

// The socket's own messages and the hub's share words, so a receiver whose
// window held the wrong bytes would decode wrong text.
function own(i: number): string {
  return `own ${i}: ${WORDS.repeat(30 + i)}`;
}

function published(i: number): PeerMessage {
  if (i === ROUNDS - 1) return `hub ${i}: ${WORDS.repeat(2000)}`; // ~120 KB
  if (i % 3 === 2) {
    return new TextEncoder().encode(`hub ${i}: ${WORDS.repeat(40)}`);
  }
  return `hub ${i}: ${WORDS.repeat(40 + i)}`;
}

function expected(): PeerMessage[] {
  const all: PeerMessage[] = [];
  for (let i = 0; i < ROUNDS; i++) all.push(own(i), published(i));
  return all;
}

/**
 * A server whose sockets subscribe to one topic: for every other message a
 * peer sends, it writes one message of its own (compressed by the socket)
 * and publishes one to the topic, so each peer gets one reply per message.
 */
function startServer(serverNoContextTakeover: boolean): WebSocketServer {
  const hub = new Hub({ maxBufferedBytes: 16 * 1024 * 1024 });
  return serve({
    port: 0,
    hostname: "127.0.0.1",
    compression: { serverNoContextTakeover, threshold: 0 },
  }, async (socket) => {
    hub.subscribe(socket, "t");
    const writer = socket.writable.getWriter();
    await delay(0); // the writable has started: a write reaches the socket at once
    let count = 0;
    for await (const _ of socket.readable) {
      if (count % 2 === 0) {
        const round = count / 2;
        const wrote = writer.write(own(round));
        hub.publish("t", published(round));
        await wrote;
      }
      count++;
    }
    await writer.close();
  });
}

/**
 * What a Python or Chromium peer reports: deflate agreed (with or without
 * server_no_context_takeover as asked), every message in order, closed 1000.
 */
function assertPeerResult(
  result: Pick<PythonClientResult, "extensions" | "received" | "closeCode">,
  noContextTakeover: boolean,
): void {
  assertStringIncludes(result.extensions, "permessage-deflate");
  assertEquals(
    result.extensions.includes("server_no_context_takeover"),
    noContextTakeover,
  );
  assertEquals(result.received, expected());
  assertEquals(result.closeCode, 1000);
}

const pings = (): PeerMessage[] =>
  Array.from({ length: 2 * ROUNDS }, (_, i) => `go ${i}`);

for (const noContextTakeover of [true, false]) {
  const mode = noContextTakeover
    ? "server_no_context_takeover (shared compressed frames)"
    : "context takeover (shared uncompressed frames)";

  Deno.test(`Hub → Python websockets, ${mode}: every message decoded in order`, async () => {
    if (
      !requirePeer(
        "Python websockets",
        hasPython,
        "apt-get install python3-websockets",
      )
    ) return;
    await using server = startServer(noContextTakeover);
    const result = await runPythonClient(
      `ws://127.0.0.1:${server.addr.port}/`,
      pings(),
      { compression: "deflate", timeoutMs: 20_000 },
    );
    assertPeerResult(result, noContextTakeover);
  });

  Deno.test(`Hub → npm ws, ${mode}: every message decoded in order`, async () => {
    await using server = startServer(noContextTakeover);
    const ws = new WsWebSocket(`ws://127.0.0.1:${server.addr.port}/`, {
      perMessageDeflate: true,
    });
    const received: PeerMessage[] = [];
    const done = new Promise<number>((resolve, reject) => {
      ws.on("error", reject);
      ws.on("open", () => {
        for (const message of pings()) ws.send(message);
      });
      ws.on("message", (data: Buffer, isBinary: boolean) => {
        received.push(isBinary ? new Uint8Array(data) : data.toString("utf8"));
        if (received.length === 2 * ROUNDS) ws.close(1000);
      });
      ws.on("close", (code: number) => resolve(code));
    });
    assertEquals(await within(20_000, done, "npm ws's messages"), 1000);
    // (ws.extensions names the extension only, without its parameters.)
    assertEquals(ws.extensions, "permessage-deflate");
    assertEquals(received, expected());
  });

  Deno.test(`Hub → Chromium, ${mode}: every message decoded in order`, async () => {
    if (!requirePeer("chromium", hasChromium, "apt-get install chromium")) {
      return;
    }
    await using server = startServer(noContextTakeover);
    await using browser = await launchChromium();
    const page = await browser.newPage();
    const result = await browserEcho(
      page,
      `ws://127.0.0.1:${server.addr.port}/`,
      pings(),
      { timeoutMs: 20_000 },
    );
    assertPeerResult(result, noContextTakeover);
  });
}
