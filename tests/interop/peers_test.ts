// Smoke tests of the interop peer toolkit (_peers.ts): each peer against a
// known-good peer built into Deno, so a failure in the interop tests of our
// own code can be told apart from a broken peer.

import { assertEquals, assertRejects, assertThrows } from "@std/assert";
// npm ws ships no types (its module is `any` here), so the callbacks below
// annotate their parameters themselves. It is a test-only peer, so it is not
// in deno.json's imports (which JSR users get).
// deno-lint-ignore no-import-prefix
import { WebSocket as WsWebSocket, WebSocketServer } from "npm:ws@8.23.0";
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

/** Text, multi-byte UTF-8, empty and binary messages, up to 1 MiB. */
const MESSAGES: PeerMessage[] = [
  "hello",
  "",
  "héllo wörld ✓ 🚀",
  new Uint8Array([0, 1, 2, 255]),
  new Uint8Array(0),
  crypto.getRandomValues(new Uint8Array(65536)),
  "x".repeat(1 << 20),
  randomBytes(1 << 20),
];

/** crypto.getRandomValues fills at most 64 KiB per call. */
function randomBytes(length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i += 65536) {
    crypto.getRandomValues(bytes.subarray(i, i + 65536));
  }
  return bytes;
}

/** Deno's built-in WebSocket server echoing every message, on an ephemeral port. */
function startBuiltinEchoServer(protocol?: string) {
  const closes: Array<{ code: number; reason: string }> = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (request) => {
      if (request.headers.get("upgrade") !== "websocket") {
        return new Response("<!doctype html><title>peer</title>", {
          headers: { "content-type": "text/html" },
        });
      }
      const { socket, response } = Deno.upgradeWebSocket(request, { protocol });
      socket.binaryType = "arraybuffer";
      socket.onmessage = (event) => socket.send(event.data);
      socket.onclose = (event) =>
        closes.push({ code: event.code, reason: event.reason });
      return response;
    },
  );
  return { server, closes, url: `ws://127.0.0.1:${server.addr.port}/` };
}

Deno.test("requirePeer passes an available peer, skips or fails a missing one", () => {
  assertEquals(requirePeer("present", true, "nothing"), true);
  const ci = Deno.env.get("CI");
  try {
    Deno.env.set("CI", "true");
    assertThrows(
      () => requirePeer("absent", false, "apt-get install absent"),
      Error,
      "absent",
    );
    Deno.env.set("CI", "false");
    assertEquals(requirePeer("absent", false, "apt-get install absent"), false);
  } finally {
    if (ci === undefined) Deno.env.delete("CI");
    else Deno.env.set("CI", ci);
  }
});

Deno.test("Python websockets client echoes through Deno.upgradeWebSocket", async () => {
  if (
    !requirePeer(
      "python3-websockets",
      hasPython,
      "apt-get install python3-websockets",
    )
  ) return;
  const { server, closes, url } = startBuiltinEchoServer("chat");
  try {
    const result = await runPythonClient(url, MESSAGES, {
      protocols: ["chat"],
      closeCode: 4001,
      closeReason: "done",
    });
    assertEquals(result.received, MESSAGES);
    assertEquals(result.subprotocol, "chat");
    assertEquals(result.closeCode, 4001);
    assertEquals(result.closeReason, "done");
  } finally {
    await server.shutdown();
  }
  assertEquals(closes, [{ code: 4001, reason: "done" }]);
});

Deno.test("Python websockets client reports a refused connection as an error", async () => {
  if (
    !requirePeer(
      "python3-websockets",
      hasPython,
      "apt-get install python3-websockets",
    )
  ) return;
  // A port that was just free: bind, read it, release.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  await assertRejects(
    () =>
      runPythonClient(`ws://127.0.0.1:${port}/`, ["x"], { timeoutMs: 5000 }),
    Error,
    "echo_client.py failed",
  );
});

Deno.test("Python websockets echo server answers Deno's built-in WebSocket client", async () => {
  if (
    !requirePeer(
      "python3-websockets",
      hasPython,
      "apt-get install python3-websockets",
    )
  ) return;
  await using server = await startPythonEchoServer({ protocols: ["chat"] });
  const socket = new WebSocket(server.url, ["chat"]);
  socket.binaryType = "arraybuffer";
  const received: PeerMessage[] = [];
  const { promise: closed, resolve: onClose } = Promise.withResolvers<
    CloseEvent
  >();
  socket.onopen = () => MESSAGES.forEach((message) => socket.send(message));
  socket.onmessage = (event) => {
    received.push(
      typeof event.data === "string" ? event.data : new Uint8Array(event.data),
    );
    if (received.length === MESSAGES.length) socket.close(4002, "bye");
  };
  socket.onclose = onClose;
  const event = await closed;
  assertEquals(socket.protocol, "chat");
  assertEquals(received, MESSAGES);
  assertEquals([event.code, event.reason], [4002, "bye"]);
  assertEquals(await server.nextClose(), {
    code: 4002,
    reason: "bye",
    subprotocol: "chat",
  });
});

Deno.test("npm ws client echoes through Deno.upgradeWebSocket", async () => {
  const { server, closes, url } = startBuiltinEchoServer();
  try {
    const client = new WsWebSocket(url);
    const received: PeerMessage[] = [];
    const closed = new Promise<[number, string]>((resolve, reject) => {
      client.on("error", reject);
      client.on(
        "close",
        (code: number, reason: Uint8Array) =>
          resolve([code, new TextDecoder().decode(reason)]),
      );
    });
    client.on(
      "open",
      () => MESSAGES.forEach((message) => client.send(message)),
    );
    client.on("message", (data: Uint8Array, isBinary: boolean) => {
      const bytes = new Uint8Array(data);
      received.push(isBinary ? bytes : new TextDecoder().decode(bytes));
      if (received.length === MESSAGES.length) client.close(4003, "ws done");
    });
    assertEquals(await closed, [4003, "ws done"]);
    assertEquals(received, MESSAGES);
  } finally {
    await server.shutdown();
  }
  assertEquals(closes, [{ code: 4003, reason: "ws done" }]);
});

Deno.test("npm ws server answers Deno's built-in WebSocket client", async () => {
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  await new Promise((resolve) => wss.once("listening", resolve));
  const serverCloses: Array<[number, string]> = [];
  // deno-lint-ignore no-explicit-any
  wss.on("connection", (peer: any) => {
    peer.on(
      "message",
      (data: Uint8Array, isBinary: boolean) =>
        peer.send(data, { binary: isBinary }),
    );
    peer.on(
      "close",
      (code: number, reason: Uint8Array) =>
        serverCloses.push([code, new TextDecoder().decode(reason)]),
    );
  });
  try {
    const { port } = wss.address() as { port: number };
    const socket = new WebSocket(`ws://127.0.0.1:${port}/`);
    socket.binaryType = "arraybuffer";
    const received: PeerMessage[] = [];
    const { promise: closed, resolve: onClose } = Promise.withResolvers<
      CloseEvent
    >();
    socket.onopen = () => MESSAGES.forEach((message) => socket.send(message));
    socket.onmessage = (event) => {
      received.push(
        typeof event.data === "string"
          ? event.data
          : new Uint8Array(event.data),
      );
      if (received.length === MESSAGES.length) {
        socket.close(4004, "ws server done");
      }
    };
    socket.onclose = onClose;
    const event = await closed;
    assertEquals(received, MESSAGES);
    assertEquals([event.code, event.reason], [4004, "ws server done"]);
  } finally {
    await new Promise((resolve) => wss.close(resolve));
  }
  assertEquals(serverCloses, [[4004, "ws server done"]]);
});

Deno.test({
  name: "headless Chromium page echoes through Deno.upgradeWebSocket",
  // Playwright starts its own timers and pipes through Node compatibility and
  // ends them after the browser has exited; the browser and its profile are
  // closed in the finally block below.
  async fn() {
    if (!requirePeer("chromium", hasChromium, "apt-get install chromium")) {
      return;
    }
    const { server, closes, url } = startBuiltinEchoServer("chat");
    await using browser = await launchChromium();
    try {
      const page = await browser.newPage();
      await page.goto(url.replace("ws:", "http:"));
      const result = await browserEcho(page, url, MESSAGES, {
        protocols: ["chat"],
        closeCode: 4005,
        closeReason: "page done",
      });
      assertEquals(result.received, MESSAGES);
      assertEquals(result.protocol, "chat");
      assertEquals([result.closeCode, result.closeReason, result.wasClean], [
        4005,
        "page done",
        true,
      ]);
    } finally {
      await browser.close();
      await server.shutdown();
    }
    assertEquals(closes, [{ code: 4005, reason: "page done" }]);
  },
});
