import { assert, assertEquals, assertStringIncludes } from "@std/assert";
// A test-only peer from npm, so it is not in deno.json's imports.
// deno-lint-ignore no-import-prefix
import express from "npm:express@4";
import { createServer, type Server } from "node:http";
import { handleUpgrade } from "../src/handle_upgrade.ts";
import type { HandshakeOptions } from "../src/handshake_responder.ts";
import { serve } from "../src/server.ts";
import type { WebSocketHandler } from "../src/socket_handler.ts";
import { builtinEcho, wsEcho } from "./_adapter_clients.ts";
import {
  maskedFrame,
  rawExchange,
  readUntilClosed,
  upgradeRequest,
  within,
} from "./_socket_util.ts";
import {
  browserEcho,
  chromiumAvailable,
  launchChromium,
  pythonWebsocketsAvailable,
  requirePeer,
  runPythonClient,
} from "./interop/_peers.ts";

const bytes = new Uint8Array([0, 1, 2, 250]);
const echo: WebSocketHandler = (socket) =>
  socket.readable.pipeTo(socket.writable);

interface Started extends AsyncDisposable {
  server: Server;
  port: number;
}

/** Express on node:http: a page route, and the socket on the upgrade event. */
async function startExpress(
  options: HandshakeOptions = {},
  onUpgrade?: Parameters<Server["on"]>[1],
): Promise<Started> {
  const app = express();
  app.get(
    "/hello",
    (_request: unknown, response: { send(body: string): void }) => {
      response.send("hello from express");
    },
  );
  const server = createServer(app);
  server.on(
    "upgrade",
    onUpgrade ??
      ((request, socket, head) =>
        handleUpgrade(request, socket, head, {
          protocols: ["chat"],
          ...options,
        }, echo)),
  );
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  return {
    server,
    port,
    async [Symbol.asyncDispose]() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** Runs `body` with console.error collected. */
async function collectingErrors(
  body: (logged: unknown[][]) => Promise<void>,
): Promise<void> {
  const logged: unknown[][] = [];
  const original = console.error;
  console.error = (...args: unknown[]) => void logged.push(args);
  try {
    await body(logged);
  } finally {
    console.error = original;
  }
}

Deno.test("handleUpgrade() on Express (node:http): one port serves a route and echoes to Chromium, Python websockets and npm ws, with permessage-deflate", async (t) => {
  await using started = await startExpress();
  const base = `127.0.0.1:${started.port}`;
  await t.step("the route", async () => {
    const response = await fetch(`http://${base}/hello`);
    assertEquals(await response.text(), "hello from express");
  });
  await t.step("npm ws", async () => {
    const result = await wsEcho(`ws://${base}/ws`, ["hi", bytes], ["chat"]);
    assertEquals(result.received, ["hi", bytes]);
    assertEquals(result.protocol, "chat");
    assertEquals(result.closeCode, 1000);
  });
  await t.step("Deno's built-in WebSocket", async () => {
    const result = await builtinEcho(`ws://${base}/ws`, ["hi", bytes]);
    assertEquals(result.received, ["hi", bytes]);
    assertEquals(result.closeCode, 1000);
  });
  await t.step("Python websockets", async () => {
    if (
      !requirePeer(
        "python3-websockets",
        await pythonWebsocketsAvailable(),
        "apt-get install python3-websockets",
      )
    ) return;
    const big = "x".repeat(100_000);
    const result = await runPythonClient(`ws://${base}/ws`, [big, bytes], {
      protocols: ["chat"],
      compression: "deflate",
      closeCode: 4000,
      closeReason: "done",
    });
    assertEquals(result.received, [big, bytes]);
    assertEquals(result.subprotocol, "chat");
    assertStringIncludes(result.extensions, "permessage-deflate");
    assertEquals(result.closeCode, 4000);
  });
  await t.step("Chromium", async () => {
    if (
      !requirePeer(
        "chromium",
        await chromiumAvailable(),
        "apt-get install chromium",
      )
    ) return;
    await using browser = await launchChromium();
    const page = await browser.newPage();
    await page.goto(`http://${base}/hello`);
    const result = await browserEcho(page, `ws://${base}/ws`, ["hi", bytes], {
      protocols: ["chat"],
    });
    assertEquals(result.received, ["hi", bytes]);
    assertEquals(result.protocol, "chat");
    assertStringIncludes(result.extensions, "permessage-deflate");
    assertEquals(result.closeCode, 1000);
    assert(result.wasClean);
  });
});

Deno.test("handleUpgrade() answers invalid upgrades byte for byte as serve() does", async () => {
  await using started = await startExpress({
    allowedOrigins: ["https://good.example"],
  });
  await using server = serve({
    port: 0,
    hostname: "127.0.0.1",
    allowedOrigins: ["https://good.example"],
  }, echo);
  const cases: [string, string, number][] = [
    ["another version", upgradeRequest({ "Sec-WebSocket-Version": "8" }), 426],
    ["a bad key", upgradeRequest({ "Sec-WebSocket-Key": "short" }), 400],
    ["another protocol", upgradeRequest({ Upgrade: "h2c" }), 426],
    [
      "a foreign origin",
      upgradeRequest({ Origin: "https://evil.example" }),
      403,
    ],
  ];
  for (const [what, request, status] of cases) {
    const ours = await rawExchange(started.port, request);
    assert(ours.startsWith(`HTTP/1.1 ${status} `), `${what}: ${ours}`);
    assertEquals(ours, await rawExchange(server.addr.port, request), what);
  }
});

Deno.test("handleUpgrade(): frame bytes that came with the head (node's head argument) are the socket's first bytes", async () => {
  await using started = await startExpress();
  const conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: started.port,
  });
  const head = new TextEncoder().encode(upgradeRequest());
  const frame = maskedFrame(0x1, new TextEncoder().encode("early"));
  const close = maskedFrame(0x8, new Uint8Array([0x03, 0xe8]));
  const all = new Uint8Array(head.length + frame.length + close.length);
  all.set(head);
  all.set(frame, head.length);
  all.set(close, head.length + frame.length);
  await conn.write(all);
  const reply = await readUntilClosed(conn);
  conn.close();
  const text = new TextDecoder().decode(reply);
  assert(text.startsWith("HTTP/1.1 101 "), text);
  const frames = reply.subarray(text.indexOf("\r\n\r\n") + 4);
  // The echo of "early", then the Close 1000 answer.
  assertEquals([...frames.subarray(0, 7)], [
    0x81,
    5,
    ...new TextEncoder().encode("early"),
  ]);
  assertEquals([...frames.subarray(7)], [0x88, 2, 0x03, 0xe8]);
});

Deno.test("handleUpgrade(): a socket that has ended, one already answered, and a second call are refused with a clear log; the server keeps serving", async () => {
  await collectingErrors(async (logged) => {
    let mode = "";
    const done: Promise<void>[] = [];
    await using started = await startExpress({}, (request, socket, head) => {
      if (mode === "ended") socket.destroy();
      if (mode === "answered") {
        socket.write("HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n");
      }
      done.push(handleUpgrade(request, socket, head, {}, echo));
      if (mode === "twice") {
        done.push(handleUpgrade(request, socket, head, {}, echo));
      }
    });
    const url = `ws://127.0.0.1:${started.port}/`;
    mode = "ended";
    await within(5000, wsEcho(url, ["x"]).catch(() => {}), "ended");
    await within(5000, Promise.all(done), "the ended call");
    assertStringIncludes(String(logged.at(-1)), "found one that has ended");
    mode = "answered";
    const answered = await rawExchange(started.port, upgradeRequest());
    assert(answered.startsWith("HTTP/1.1 401 "), answered);
    await within(5000, Promise.all(done), "the answered call");
    assertStringIncludes(String(logged.at(-1)), "bytes sent already");
    mode = "twice";
    const result = await wsEcho(url, ["still works"]);
    assertEquals(result.received, ["still works"]);
    assertStringIncludes(String(logged.at(-1)), "a second call");
    assertEquals(logged.length, 3);
    await within(5000, Promise.all(done), "every call");
  });
});

Deno.test("handleUpgrade(): a handler that throws closes with 1011 and is logged; a socket object that is no socket is refused", async () => {
  await collectingErrors(async (logged) => {
    await using started = await startExpress(
      {},
      (request, socket, head) =>
        handleUpgrade(request, socket, head, {}, () => {
          throw new Error("handler bug");
        }),
    );
    const result = await wsEcho(`ws://127.0.0.1:${started.port}/`, ["x"])
      .catch((error) => error);
    assertEquals((result as { closeCode?: number }).closeCode, 1011);
    assert(
      logged.some((args) =>
        args.some((a) => a instanceof Error && a.message === "handler bug")
      ),
    );
    await handleUpgrade(
      { httpVersion: "1.1", rawHeaders: [] },
      {} as never,
      new Uint8Array(0),
      {},
      echo,
    );
    assertStringIncludes(String(logged.at(-1)), "expected the socket");
  });
});

Deno.test("handleUpgrade(): 2,000 pipelined messages of mixed sizes echo intact and in order (the write buffers are reused only once node has written them)", async () => {
  await using started = await startExpress({ compression: false });
  const messages: Uint8Array[] = [];
  for (let i = 0; i < 2000; i++) {
    const message = new Uint8Array(1 + (i * 7919) % 70_000);
    for (let j = 0; j < message.length; j += 997) message[j] = (i + j) & 0xff;
    message[0] = i & 0xff;
    messages.push(message);
  }
  const result = await within(
    20_000,
    wsEcho(`ws://127.0.0.1:${started.port}/`, messages),
    "the echo",
  );
  assertEquals(result.received.length, messages.length);
  for (let i = 0; i < messages.length; i++) {
    assertEquals(result.received[i], messages[i], `message ${i}`);
  }
});
