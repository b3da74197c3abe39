// permessage-deflate (RFC 7692) against real peers: npm ws with
// perMessageDeflate and Python websockets (compression on by default), our
// client and our server, with and without context takeover, window bits,
// sizes from 0 to 1 MiB, and fragmented compressed messages (from npm ws and
// from Python websockets, both directions: Python's fragmented messages to
// our client and our server; our own fragmented output, which our sockets
// never produce, built from our deflater and frame encoder). The agreed
// extensions are checked exactly; with Python, a TCP tap between the two
// ends counts the bytes each way and reads the frame headers on the wire.

import { assert, assertEquals } from "@std/assert";
// npm ws ships no types (its module is `any` here). It is a test-only peer,
// so it is not in deno.json's imports.
// deno-lint-ignore no-import-prefix
import { WebSocket as WsWebSocket, WebSocketServer } from "npm:ws@8.23.0";
import { Buffer } from "node:buffer";
import { connect } from "../../src/client.ts";
import { serve } from "../../src/server.ts";
import type { PerMessageDeflateOptions } from "../../src/permessage_deflate.ts";
import { encodeFrame } from "../../src/frame_encoder.ts";
import { Opcode } from "../../src/frame.ts";
import { acceptDeflateResponse } from "../../src/permessage_deflate.ts";
import { createMessageDeflate } from "../../src/permessage_deflate_codec.ts";
import {
  closeCodeOf,
  closePayload,
  RawPeer,
  writeAll,
} from "../conformance/_raw_peer.ts";
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

/** Deterministic JSON-like text of about `bytes` bytes. */
function jsonText(bytes: number, seed: number): string {
  let state = seed;
  const random = () => (state = (state * 1103515245 + 12345) & 0x7fffffff);
  const items: string[] = [];
  let size = 2;
  for (let id = 0; size < bytes; id++) {
    const item = `{"id":${id},"user":"user_${random() % 1000}","score":${
      random() % 100000
    },"tags":["t${random() % 16}","t${random() % 16}"],"ok":${
      random() % 2 === 0
    }}`;
    items.push(item);
    size += item.length + 1;
  }
  return ("[" + items.join(",") + "]").slice(0, bytes);
}

/** Text and binary, compressible and not, from 0 bytes to 1 MiB. */
function messages(): PeerMessage[] {
  const random = new Uint8Array(65536);
  for (let i = 0; i < random.length; i += 65536) {
    crypto.getRandomValues(random.subarray(i, i + 65536));
  }
  return [
    "",
    "a",
    new Uint8Array(0),
    new Uint8Array([1]),
    jsonText(1000, 1),
    "héllo wörld ✓ 🚀 ".repeat(500),
    jsonText(16 * 1024, 2),
    new TextEncoder().encode(jsonText(100_000, 3)),
    random,
    jsonText(1 << 20, 4),
    new TextEncoder().encode(jsonText(1 << 20, 5)),
  ];
}

/** Bytes the messages take uncompressed. */
function payloadBytes(list: PeerMessage[]): number {
  return list.reduce(
    (n, m) =>
      n +
      (typeof m === "string" ? new TextEncoder().encode(m).length : m.length),
    0,
  );
}

/** Bytes of the messages that compress (JSON-like text), uncompressed. */
const COMPRESSIBLE_SHARE = 0.9;

interface Variant {
  name: string;
  ours: PerMessageDeflateOptions;
  ws: Record<string, unknown>;
  /** What socket.extensions must be, on our client against a ws server. */
  agreed: string;
}

const VARIANTS: Variant[] = [
  {
    name: "context takeover",
    ours: { threshold: 0 },
    ws: { threshold: 0 },
    agreed: "permessage-deflate",
  },
  {
    name: "no context takeover",
    ours: {
      threshold: 0,
      serverNoContextTakeover: true,
      clientNoContextTakeover: true,
    },
    ws: {
      threshold: 0,
      serverNoContextTakeover: true,
      clientNoContextTakeover: true,
    },
    agreed:
      "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
  },
  {
    name: "window bits 9 and 10",
    ours: { threshold: 0, serverMaxWindowBits: 9, clientMaxWindowBits: 10 },
    ws: { threshold: 0, serverMaxWindowBits: 9, clientMaxWindowBits: 10 },
    agreed:
      "permessage-deflate; server_max_window_bits=9; client_max_window_bits=10",
  },
];

/** Compares echoed messages without printing megabytes on failure. */
function assertSameMessages(got: PeerMessage[], want: PeerMessage[]) {
  assertEquals(got.length, want.length, "message count");
  for (let i = 0; i < want.length; i++) {
    const a = got[i];
    const b = want[i];
    assertEquals(typeof a, typeof b, `message ${i} type`);
    if (typeof a === "string") {
      assert(a === b, `message ${i} (${(b as string).length} chars) differs`);
    } else {
      assertEquals(a.length, (b as Uint8Array).length, `message ${i} length`);
      assert(
        Buffer.compare(Buffer.from(a), Buffer.from(b as Uint8Array)) === 0,
        `message ${i} (${a.length} bytes) differs`,
      );
    }
  }
}

/** Sends a message from ws in three fragments (the first with RSV1). */
// deno-lint-ignore no-explicit-any
function wsSendFragmented(ws: any, data: Buffer, binary: boolean) {
  const cut1 = Math.floor(data.length / 3);
  const cut2 = Math.floor((2 * data.length) / 3);
  ws.send(data.subarray(0, cut1), { binary, fin: false, compress: true });
  ws.send(data.subarray(cut1, cut2), { binary, fin: false, compress: true });
  ws.send(data.subarray(cut2), { binary, fin: true, compress: true });
}

async function startWsEchoServer(perMessageDeflate: Record<string, unknown>) {
  const server = new WebSocketServer({
    host: "127.0.0.1",
    port: 0,
    perMessageDeflate,
    maxPayload: 64 << 20,
  });
  await new Promise((resolve) => server.once("listening", resolve));
  // The TCP socket of the last connection: its byte counters outlive it.
  const stats = { bytesRead: 0, bytesWritten: 0 };
  // deno-lint-ignore no-explicit-any
  let tcp: any;
  // deno-lint-ignore no-explicit-any
  server.on("connection", (ws: any) => {
    tcp = ws._socket;
    ws.on("message", (data: Buffer, isBinary: boolean) => {
      // Every echo goes back fragmented: compressed fragmented messages.
      wsSendFragmented(ws, data, isBinary);
    });
  });
  Object.defineProperties(stats, {
    bytesRead: { get: () => tcp?.bytesRead ?? 0 },
    bytesWritten: { get: () => tcp?.bytesWritten ?? 0 },
  });
  return {
    url: `ws://127.0.0.1:${server.address().port}/`,
    stats,
    close: () => {
      // ws's close() waits for its clients: end any a failed test left.
      for (const client of server.clients) client.terminate();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

for (const variant of VARIANTS) {
  Deno.test(`deflate interop: our client ⇄ npm ws server, ${variant.name}, 0..1 MiB, fragmented echoes`, async () => {
    const peer = await startWsEchoServer(variant.ws);
    let socket: Awaited<ReturnType<typeof connect>> | undefined;
    try {
      socket = await connect(peer.url, { compression: variant.ours });
      assertEquals(socket.extensions, variant.agreed);
      const sent = messages();
      const writer = socket.writable.getWriter();
      const reader = socket.readable.getReader();
      const received: PeerMessage[] = [];
      for (const message of sent) {
        await writer.write(message as string | Uint8Array<ArrayBuffer>);
        const { value } = await reader.read();
        received.push(value!);
      }
      assertSameMessages(received, sent);
      reader.releaseLock();
      await writer.close();
      assertEquals((await socket.closed).closeCode, 1000);
      // Both directions were compressed: JSON-like text shrinks severalfold.
      const total = payloadBytes(sent);
      assert(
        peer.stats.bytesRead < total * COMPRESSIBLE_SHARE / 2,
        `we sent ${peer.stats.bytesRead} bytes for ${total}`,
      );
      assert(
        peer.stats.bytesWritten < total * COMPRESSIBLE_SHARE / 2,
        `ws sent ${peer.stats.bytesWritten} bytes for ${total}`,
      );
    } finally {
      socket?.close();
      await socket?.closed;
      await peer.close();
    }
  });

  Deno.test(`deflate interop: npm ws client ⇄ our server, ${variant.name}, 0..1 MiB, fragmented sends`, async () => {
    const server = serve({
      hostname: "127.0.0.1",
      port: 0,
      compression: variant.ours,
    }, async (socket) => {
      await socket.readable.pipeTo(socket.writable);
    });
    try {
      const ws = new WsWebSocket(`ws://127.0.0.1:${server.addr.port}/`, {
        perMessageDeflate: variant.ws,
        maxPayload: 64 << 20,
      });
      ws.binaryType = "nodebuffer";
      const inbox: PeerMessage[] = [];
      const waiters: Array<() => void> = [];
      ws.on("message", (data: Buffer, isBinary: boolean) => {
        inbox.push(
          isBinary ? new Uint8Array(data) : data.toString("utf8"),
        );
        waiters.shift()?.();
      });
      const closed = new Promise<number>((resolve) =>
        ws.on("close", (code: number) => resolve(code))
      );
      await new Promise((resolve, reject) => {
        ws.once("open", resolve);
        ws.once("error", reject);
      });
      assert(
        String(ws.extensions).startsWith("permessage-deflate"),
        ws.extensions,
      );
      const sent = messages();
      for (const message of sent) {
        const arrived = new Promise<void>((resolve) => waiters.push(resolve));
        const bytes = typeof message === "string"
          ? Buffer.from(message, "utf8")
          : Buffer.from(message);
        wsSendFragmented(ws, bytes, typeof message !== "string");
        await arrived;
      }
      assertSameMessages(inbox, sent);
      const total = payloadBytes(sent);
      assert(
        ws._socket.bytesRead < total * COMPRESSIBLE_SHARE / 2,
        `our server sent ${ws._socket.bytesRead} bytes for ${total}`,
      );
      ws.close(1000);
      assertEquals(await closed, 1000);
    } finally {
      await server.shutdown();
    }
  });
}

/** A frame header as seen on the wire by {@linkcode startTcpTap}. */
interface WireFrame {
  fin: boolean;
  rsv1: boolean;
  opcode: number;
  length: number;
}

/**
 * Parses the frame headers in one direction of a captured WebSocket
 * connection (after its HTTP head), skipping the payloads.
 */
function wireFrames(chunks: Uint8Array[]): WireFrame[] {
  const bytes = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  let at = 0;
  while (
    at + 4 <= bytes.length &&
    !(bytes[at] === 13 && bytes[at + 1] === 10 && bytes[at + 2] === 13 &&
      bytes[at + 3] === 10)
  ) at++;
  at += 4;
  const frames: WireFrame[] = [];
  const view = new DataView(bytes.buffer);
  while (at + 2 <= bytes.length) {
    let length = bytes[at + 1] & 0x7f;
    let header = 2;
    if (length === 126) {
      length = view.getUint16(at + 2);
      header = 4;
    } else if (length === 127) {
      length = Number(view.getBigUint64(at + 2));
      header = 10;
    }
    if (bytes[at + 1] & 0x80) header += 4;
    frames.push({
      fin: (bytes[at] & 0x80) !== 0,
      rsv1: (bytes[at] & 0x40) !== 0,
      opcode: bytes[at] & 0x0f,
      length,
    });
    at += header + length;
  }
  return frames;
}

/** The data frames of each message, in order (control frames left out). */
function wireMessages(frames: WireFrame[]): WireFrame[][] {
  const messages: WireFrame[][] = [];
  let current: WireFrame[] | undefined;
  for (const frame of frames) {
    if (frame.opcode >= 8) continue;
    if (frame.opcode !== 0) current = [];
    current!.push(frame);
    if (frame.fin) messages.push(current!);
  }
  return messages;
}

/**
 * A TCP relay on loopback in front of `targetPort` for one connection: it
 * counts and keeps the bytes each way (what the npm ws tests read from
 * `socket.bytesRead` / `bytesWritten`), so a test can check that the wire
 * carried compressed, fragmented frames.
 */
function startTcpTap(targetPort: number) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const up: Uint8Array[] = [];
  const down: Uint8Array[] = [];
  const sum = (chunks: Uint8Array[]) =>
    chunks.reduce((n, chunk) => n + chunk.length, 0);
  const relay = async (from: Deno.Conn, to: Deno.Conn, log: Uint8Array[]) => {
    const buffer = new Uint8Array(64 * 1024);
    try {
      while (true) {
        const n = await from.read(buffer);
        if (n === null) break;
        log.push(buffer.slice(0, n));
        await writeAll(to, buffer.subarray(0, n));
      }
      await to.closeWrite();
    } catch {
      // One side reset or is gone: end both.
      for (const conn of [from, to]) {
        try {
          conn.close();
        } catch {
          // Already closed.
        }
      }
    }
  };
  const done = (async () => {
    let inbound: Deno.Conn;
    try {
      inbound = await listener.accept();
    } catch {
      return; // closed before anyone connected
    }
    listener.close();
    const outbound = await Deno.connect({
      hostname: "127.0.0.1",
      port: targetPort,
    });
    await Promise.all([
      relay(inbound, outbound, up),
      relay(outbound, inbound, down),
    ]);
    for (const conn of [inbound, outbound]) {
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    /** Bytes from the connecting side (the client) to the target. */
    get upBytes() {
      return sum(up);
    },
    /** Bytes from the target (the server) to the client. */
    get downBytes() {
      return sum(down);
    },
    upFrames: () => wireFrames(up),
    downFrames: () => wireFrames(down),
    /** Waits until both directions ended (or stops listening if unused). */
    async close() {
      try {
        listener.close();
      } catch {
        // Already closed.
      }
      await done;
    },
  };
}

type Tap = ReturnType<typeof startTcpTap>;

/** Asserts each message went as `count` frames, compressed (RSV1 first). */
function assertFragmentedCompressed(
  messages: WireFrame[][],
  expected: number,
  count: number,
  who: string,
) {
  assertEquals(messages.length, expected, `${who}: messages on the wire`);
  const shape = Array.from(
    { length: count },
    (_, j) => [j === count - 1, j === 0, j > 0],
  );
  messages.forEach((frames, i) => {
    assertEquals(
      frames.map((f) => [f.fin, f.rsv1, f.opcode === 0]),
      shape,
      `${who}: message ${i} as ${count} frames, RSV1 on the first only`,
    );
  });
}

/**
 * Asserts what the tap saw of an exchange of `sent` with Python sending
 * fragmented messages in direction `python`: each of its messages in
 * PYTHON_FRAMES compressed frames, each of ours in one, and both directions
 * compressed.
 */
function assertPythonFragmentedExchange(
  tap: Tap,
  sent: PeerMessage[],
  python: "up" | "down",
  ours: string,
) {
  const [pythonFrames, ourFrames, pythonBytes, ourBytes] = python === "up"
    ? [tap.upFrames(), tap.downFrames(), tap.upBytes, tap.downBytes]
    : [tap.downFrames(), tap.upFrames(), tap.downBytes, tap.upBytes];
  assertFragmentedCompressed(
    wireMessages(pythonFrames),
    sent.length,
    PYTHON_FRAMES,
    "Python's messages",
  );
  assertFragmentedCompressed(
    wireMessages(ourFrames),
    sent.length,
    1,
    `${ours}'s messages`,
  );
  const total = payloadBytes(sent);
  assert(
    pythonBytes < total * COMPRESSIBLE_SHARE / 2,
    `Python sent ${pythonBytes} bytes for ${total}`,
  );
  assert(
    ourBytes < total * COMPRESSIBLE_SHARE / 2,
    `${ours} sent ${ourBytes} bytes for ${total}`,
  );
}

// Our offers to a Python websockets server, and what it agrees to: 10.4
// answers with 12-bit windows both ways by default.
const PYTHON_SERVER_AGREEMENTS: [PerMessageDeflateOptions, string][] = [
  [
    { threshold: 0 },
    "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12",
  ],
  [
    {
      threshold: 0,
      serverNoContextTakeover: true,
      clientNoContextTakeover: true,
    },
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12; client_max_window_bits=12",
  ],
];

Deno.test("deflate interop: our client ⇄ Python websockets server (compression on), 0..1 MiB", async () => {
  if (
    !requirePeer(
      "python3-websockets",
      hasPython,
      "apt-get install python3-websockets",
    )
  ) return;
  for (const [ours, agreed] of PYTHON_SERVER_AGREEMENTS) {
    await using peer = await startPythonEchoServer({ compression: "deflate" });
    const socket = await connect(peer.url, { compression: ours });
    assertEquals(socket.extensions, agreed);
    const sent = messages();
    const writer = socket.writable.getWriter();
    const reader = socket.readable.getReader();
    const received: PeerMessage[] = [];
    for (const message of sent) {
      await writer.write(message as string | Uint8Array<ArrayBuffer>);
      const { value } = await reader.read();
      received.push(value!);
    }
    assertSameMessages(received, sent);
    reader.releaseLock();
    await writer.close();
    assertEquals((await socket.closed).closeCode, 1000);
    assertEquals((await peer.nextClose()).code, 1000);
  }
});

Deno.test("deflate interop: Python websockets client (compression on) ⇄ our server, 0..1 MiB", async () => {
  if (
    !requirePeer(
      "python3-websockets",
      hasPython,
      "apt-get install python3-websockets",
    )
  ) return;
  const table: [PerMessageDeflateOptions, string][] = [
    [{ threshold: 0 }, "permessage-deflate"],
    [
      {
        threshold: 0,
        serverNoContextTakeover: true,
        clientNoContextTakeover: true,
      },
      "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
    ],
    [
      { threshold: 0, clientMaxWindowBits: 10, serverMaxWindowBits: 11 },
      "permessage-deflate; server_max_window_bits=11; client_max_window_bits=10",
    ],
  ];
  for (const [compression, agreed] of table) {
    const server = serve(
      { hostname: "127.0.0.1", port: 0, compression },
      async (socket) => {
        await socket.readable.pipeTo(socket.writable);
      },
    );
    try {
      const sent = messages();
      const result = await runPythonClient(
        `ws://127.0.0.1:${server.addr.port}/`,
        sent,
        { compression: "deflate", timeoutMs: 30_000 },
      );
      // websockets offers "permessage-deflate; client_max_window_bits".
      assertEquals(result.extensions, agreed);
      assertSameMessages(result.received, sent);
      assertEquals(result.closeCode, 1000);
    } finally {
      await server.shutdown();
    }
  }
});

Deno.test("deflate interop: headless Chromium (offers client_max_window_bits) ⇄ our server, 0..1 MiB", async () => {
  if (!requirePeer("chromium", hasChromium, "apt-get install chromium")) {
    return;
  }
  const table: [PerMessageDeflateOptions, string][] = [
    [{ threshold: 0 }, "permessage-deflate"],
    [
      {
        threshold: 0,
        serverNoContextTakeover: true,
        clientNoContextTakeover: true,
        clientMaxWindowBits: 10,
      },
      "permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits=10",
    ],
  ];
  await using browser = await launchChromium();
  for (const [compression, agreed] of table) {
    const server = serve({
      hostname: "127.0.0.1",
      port: 0,
      compression,
      fallback: () =>
        new Response("<!doctype html><title>deflate</title>", {
          headers: { "content-type": "text/html" },
        }),
    }, async (socket) => {
      await socket.readable.pipeTo(socket.writable);
    });
    try {
      const page = await browser.newPage();
      await page.goto(`http://127.0.0.1:${server.addr.port}/`);
      const sent = messages();
      const result = await browserEcho(
        page,
        `ws://127.0.0.1:${server.addr.port}/`,
        sent,
        { timeoutMs: 30_000 },
      );
      assertEquals(result.extensions, agreed);
      assertSameMessages(result.received, sent);
      assertEquals([result.closeCode, result.wasClean], [1000, true]);
    } finally {
      await server.shutdown();
    }
  }
});

// websockets 10.4 sends an iterable of chunks as one fragmented message, and
// compresses it frame by frame (RSV1 on the first frame only): one frame
// per chunk with FIN clear, then an empty final frame with FIN set.
const PYTHON_FRAGMENTS = 3;
const PYTHON_FRAMES = PYTHON_FRAGMENTS + 1;

Deno.test("deflate interop: Python websockets server echoes FRAGMENTED compressed messages to our client, 0..1 MiB, wire checked", async () => {
  if (
    !requirePeer(
      "python3-websockets",
      hasPython,
      "apt-get install python3-websockets",
    )
  ) return;
  for (const [ours, agreed] of PYTHON_SERVER_AGREEMENTS) {
    await using peer = await startPythonEchoServer({
      compression: "deflate",
      fragments: PYTHON_FRAGMENTS,
    });
    const tap = startTcpTap(peer.port);
    try {
      const socket = await connect(`ws://127.0.0.1:${tap.port}/`, {
        compression: ours,
      });
      assertEquals(socket.extensions, agreed);
      const sent = messages();
      const writer = socket.writable.getWriter();
      const reader = socket.readable.getReader();
      const received: PeerMessage[] = [];
      for (const message of sent) {
        await writer.write(message as string | Uint8Array<ArrayBuffer>);
        const { value } = await reader.read();
        received.push(value!);
      }
      // Each echo arrived in 3 compressed frames and was put back together.
      assertSameMessages(received, sent);
      reader.releaseLock();
      await writer.close();
      assertEquals((await socket.closed).closeCode, 1000);
      assertEquals((await peer.nextClose()).code, 1000);
      await tap.close();
      assertPythonFragmentedExchange(tap, sent, "down", "our client");
    } finally {
      await tap.close();
    }
  }
});

Deno.test("deflate interop: Python websockets client sends FRAGMENTED compressed messages to our server, 0..1 MiB, wire checked", async () => {
  if (
    !requirePeer(
      "python3-websockets",
      hasPython,
      "apt-get install python3-websockets",
    )
  ) return;
  // websockets offers "permessage-deflate; client_max_window_bits".
  const table: [PerMessageDeflateOptions, string][] = [
    [{ threshold: 0 }, "permessage-deflate"],
    [
      {
        threshold: 0,
        serverNoContextTakeover: true,
        clientNoContextTakeover: true,
      },
      "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
    ],
  ];
  for (const [compression, agreed] of table) {
    const server = serve(
      { hostname: "127.0.0.1", port: 0, compression },
      async (socket) => {
        await socket.readable.pipeTo(socket.writable);
      },
    );
    const tap = startTcpTap(server.addr.port);
    try {
      const sent = messages();
      const result = await runPythonClient(
        `ws://127.0.0.1:${tap.port}/`,
        sent,
        {
          compression: "deflate",
          fragments: PYTHON_FRAGMENTS,
          timeoutMs: 30_000,
        },
      );
      assertEquals(result.extensions, agreed);
      // Our server put each message together and echoed it whole.
      assertSameMessages(result.received, sent);
      assertEquals(result.closeCode, 1000);
      await tap.close();
      assertPythonFragmentedExchange(tap, sent, "up", "our server");
    } finally {
      await tap.close();
      await server.shutdown();
    }
  }
});

// Our sockets send every message as one frame (`socket.writable` takes
// whole messages and has no fragmenting option), so our fragmented
// compressed output is made with our own parts: the message deflater of
// the agreed parameters and the frame encoder, over a raw connection.
Deno.test("deflate interop: a FRAGMENTED message compressed by our deflater and frame encoder reaches the Python websockets server whole", async () => {
  if (
    !requirePeer(
      "python3-websockets",
      hasPython,
      "apt-get install python3-websockets",
    )
  ) return;
  await using peer = await startPythonEchoServer({ compression: "deflate" });
  const raw = await RawPeer.connect(peer.port, {
    headers: { "Sec-WebSocket-Extensions": "permessage-deflate" },
  });
  const agreed = /^sec-websocket-extensions:(.*)$/im.exec(raw.head)?.[1]
    .trim();
  // client_max_window_bits was not offered, so only the server's is set.
  assertEquals(agreed, "permessage-deflate; server_max_window_bits=12");
  const deflate = createMessageDeflate(
    acceptDeflateResponse(agreed!, {}),
    "client",
    { threshold: 0 },
  );
  try {
    const sent = messages();
    for (const [i, message] of sent.entries()) {
      const text = typeof message === "string";
      const compressed = await deflate.deflate(
        text ? new TextEncoder().encode(message) : message,
      )!;
      const cut1 = Math.floor(compressed.length / 3);
      const cut2 = Math.floor((2 * compressed.length) / 3);
      const parts = [
        compressed.subarray(0, cut1),
        compressed.subarray(cut1, cut2),
        compressed.subarray(cut2),
      ];
      const bytes = parts.flatMap((payload, j) =>
        encodeFrame({
          fin: j === 2,
          rsv1: j === 0,
          opcode: j > 0
            ? Opcode.Continuation
            : text
            ? Opcode.Text
            : Opcode.Binary,
          payload,
        }, true)
      );
      await raw.send(bytes);
      // Python echoes it whole, in one compressed frame.
      const echo = await raw.nextFrame(10_000, `the echo of message ${i}`);
      assertEquals(
        [echo.fin, echo.rsv, echo.opcode],
        [true, 4, text ? Opcode.Text : Opcode.Binary],
        `echo ${i}`,
      );
      const inflated = await deflate.inflater.inflate(
        echo.payload,
        true,
        64 << 20,
      );
      assertSameMessages(
        [text ? new TextDecoder().decode(inflated) : inflated],
        [message],
      );
    }
    await raw.sendFrames([{
      opcode: Opcode.Close,
      payload: closePayload(1000),
    }]);
    const close = await raw.nextFrame(5000, "Python's Close");
    assertEquals([close.opcode, closeCodeOf(close)], [Opcode.Close, 1000]);
    // websockets reports the end once the TCP connection is gone.
    await raw.close();
    assertEquals((await peer.nextClose()).code, 1000);
  } finally {
    deflate.close();
    await raw.close();
  }
});
