// Messages as streams against real peers, compressed and not: Python
// websockets sending fragmented messages from an async iterator (to our
// client and our server in the stream mode) and receiving ours whole; npm
// ws sending with `fin: false` and receiving our streamed messages; headless
// Chromium receiving streamed messages whole. (Debian's websockets 10.4 has
// no `recv_streaming` and no public frame API; Python receives our
// fragmented messages whole with `recv`, and its server counts the data
// frames each came in through the legacy protocol's `read_data_frame`.)

import { assert, assertEquals } from "@std/assert";
// npm ws ships no types (its module is `any` here). It is a test-only peer,
// so it is not in deno.json's imports.
// deno-lint-ignore no-import-prefix
import { WebSocket as WsWebSocket } from "npm:ws@8.23.0";
import { Buffer } from "node:buffer";
import { connect } from "../../src/client.ts";
import type { MessageStream } from "../../src/message_stream.ts";
import type { StreamedMessage } from "../../src/message_stream_sender.ts";
import { serve } from "../../src/server.ts";
import { within } from "../_socket_util.ts";
import {
  browserEcho,
  chromiumAvailable,
  launchChromium,
  type PeerMessage,
  pythonWebsocketsAvailable,
  requirePeer,
  runPythonClient,
  startPythonEchoServer,
} from "./_peers.ts";

const hasPython = await pythonWebsocketsAvailable();
const hasChromium = await chromiumAvailable();
const pythonReady = () =>
  requirePeer(
    "python3-websockets",
    hasPython,
    "apt-get install python3-websockets",
  );

const TEXT = "streamed ünïcödé 😀 ".repeat(3000); // ~60 KB, multibyte
const BINARY = new Uint8Array(300_000).map((_, i) => (i * 7919) % 251);

// A stream of `message` in `parts` pieces, each a few ms after the last, so
// each leaves as its own frame (a string is cut between code points'
// UTF-16 units too: the sender must keep surrogate pairs together).
function piecewise<T extends string | Uint8Array>(
  message: T,
  parts: number,
): ReadableStream<T> {
  let index = 0;
  return new ReadableStream<T>({
    async pull(controller) {
      await new Promise((resolve) => setTimeout(resolve, 2));
      if (index === parts) return controller.close();
      const start = Math.floor(message.length * index / parts);
      const end = Math.floor(message.length * ++index / parts);
      controller.enqueue(message.slice(start, end) as T);
    },
  }, { highWaterMark: 0 });
}

// A message of either type as a piecewise stream.
function streamOf(message: PeerMessage, parts: number): StreamedMessage {
  return typeof message === "string"
    ? piecewise(message, parts)
    : piecewise(message, parts);
}

// Reads a streamed message: its whole payload and how many chunks it came in.
async function readMessage(
  message: MessageStream,
): Promise<{ value: PeerMessage; chunks: number }> {
  if (message.type === "text") {
    const parts = await Array.fromAsync(message.stream);
    return { value: parts.join(""), chunks: parts.length };
  }
  const parts = await Array.fromAsync(message.stream);
  return { value: new Uint8Array(Buffer.concat(parts)), chunks: parts.length };
}

// A server in the stream mode that answers each message with the same
// message sent from a stream of four pieces.
function streamingEchoServer(compression: boolean) {
  return serve(
    {
      port: 0,
      hostname: "127.0.0.1",
      messages: "stream",
      compression,
      fallback: () =>
        new Response("<!doctype html><title>wstream</title>", {
          headers: { "content-type": "text/html" },
        }),
    },
    async (socket) => {
      const writer = socket.writable.getWriter();
      for await (const message of socket.readable) {
        const { value } = await readMessage(message);
        await writer.write(streamOf(value, 4));
      }
      await writer.close();
    },
  );
}

for (const compression of [false, true]) {
  const mode = compression ? "compressed" : "uncompressed";

  Deno.test(`message streams ⇄ Python websockets server (${mode}): async-iterator fragments arrive as streams; our streams arrive whole`, async () => {
    if (!pythonReady()) return;
    await using python = await startPythonEchoServer({
      compression: compression ? "deflate" : "none",
      fragments: 4,
      streamed: true,
      reportFrames: true,
    });
    const socket = await connect(python.url, {
      messages: "stream",
      compression,
    });
    assertEquals(socket.extensions !== "", compression);
    const writer = socket.writable.getWriter();
    const reader = socket.readable.getReader();
    for (const message of [TEXT, BINARY]) {
      // Python takes our fragmented message whole and sends it back as an
      // async iterator of four chunks: four frames, four pieces here.
      await writer.write(streamOf(message, 5));
      const received = await within(
        10_000,
        reader.read().then(({ value }) => readMessage(value!)),
      );
      assertEquals(received.value, message);
      assert(received.chunks >= 4, `${received.chunks} chunks`);
    }
    // Python got each of ours as five data frames and the empty last one.
    assertEquals(python.frameCounts, [6, 6]);
    await writer.close();
    assertEquals((await socket.closed).closeCode, 1000);
    assertEquals((await python.nextClose()).code, 1000);
  });

  Deno.test(`message streams ⇄ Python websockets client (${mode}): its async-iterator messages echo through our stream-mode server`, async () => {
    if (!pythonReady()) return;
    await using server = streamingEchoServer(compression);
    const result = await runPythonClient(
      `ws://127.0.0.1:${server.addr.port}/`,
      [TEXT, BINARY, "", new Uint8Array(0)],
      {
        compression: compression ? "deflate" : "none",
        fragments: 3,
        streamed: true,
      },
    );
    assertEquals(result.extensions !== "", compression);
    assertEquals(result.received, [TEXT, BINARY, "", new Uint8Array(0)]);
    assertEquals(result.closeCode, 1000);
  });

  Deno.test(`message streams ⇄ npm ws (${mode}): fin:false fragments echo through our stream-mode server, whole on arrival`, async () => {
    await using server = streamingEchoServer(compression);
    const ws = new WsWebSocket(`ws://127.0.0.1:${server.addr.port}/`, {
      perMessageDeflate: compression ? { threshold: 0 } : false,
    });
    const received: PeerMessage[] = [];
    const replies = new Promise<void>((resolve, reject) => {
      ws.on("message", (data: Buffer, isBinary: boolean) => {
        received.push(isBinary ? new Uint8Array(data) : data.toString());
        if (received.length === 2) resolve();
      });
      ws.on("error", reject);
    });
    await new Promise((resolve, reject) => {
      ws.on("open", resolve);
      ws.on("error", reject);
    });
    assertEquals(ws.extensions !== "", compression);
    const textBytes = Buffer.from(TEXT);
    // Cut inside a UTF-8 sequence on purpose: fragments need not end on
    // code point boundaries.
    const cut = textBytes.indexOf(Buffer.from("😀")) + 1;
    ws.send(textBytes.subarray(0, cut), { binary: false, fin: false });
    ws.send(textBytes.subarray(cut), { binary: false, fin: true });
    for (let i = 0; i < 3; i++) {
      ws.send(BINARY.subarray(i * 100_000, (i + 1) * 100_000), {
        binary: true,
        fin: i === 2,
      });
    }
    await within(10_000, replies);
    assertEquals(received, [TEXT, BINARY]);
    const closed = new Promise((resolve) => ws.on("close", resolve));
    ws.close(1000);
    await within(5000, closed);
  });

  Deno.test(`message streams ⇄ headless Chromium (${mode}): streamed replies arrive whole in the browser`, async () => {
    if (!requirePeer("chromium", hasChromium, "apt-get install chromium")) {
      return;
    }
    await using server = streamingEchoServer(compression);
    await using browser = await launchChromium();
    const page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${server.addr.port}/`);
    const result = await browserEcho(
      page,
      `ws://127.0.0.1:${server.addr.port}/`,
      [TEXT, BINARY, ""],
      { timeoutMs: 15_000 },
    );
    assertEquals(result.extensions !== "", compression);
    assertEquals(result.received, [TEXT, BINARY, ""]);
    assertEquals(result.closeCode, 1000);
    assert(result.wasClean);
  });
}
