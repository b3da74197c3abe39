import {
  assertEquals,
  assertInstanceOf,
  assertRejects,
  assertStringIncludes,
  assertThrows,
} from "@std/assert";
// A test-only peer from npm, so it is not in deno.json's imports.
// deno-lint-ignore no-import-prefix
import { Hono } from "npm:hono@4";
import { upgrade, type UpgradeOptions } from "../src/upgrade.ts";
import { serve } from "../src/server.ts";
import { WebSocketError } from "../src/websocket_error.ts";
import { WebSocket as WhatwgWebSocket } from "../src/websocket.ts";
import type { Socket } from "../src/socket.ts";
import { builtinEcho, wsEcho } from "./_adapter_clients.ts";
import { within } from "./_socket_util.ts";
import {
  pythonWebsocketsAvailable,
  requirePeer,
  runPythonClient,
} from "./interop/_peers.ts";

const bytes = new Uint8Array([0, 1, 2, 250]);

/** Hono on Deno.serve: a page route and a socket route on one port. */
function startHono(
  options: UpgradeOptions = {},
  onSocket?: (s: Socket) => void,
) {
  const app = new Hono();
  app.get("/hello", (c) => c.text("hello from hono"));
  app.get("/ws", (c) => {
    const { socket, response } = upgrade(c.req.raw, {
      protocols: ["chat"],
      ...options,
    });
    onSocket?.(socket);
    socket.readable.pipeTo(socket.writable).catch(() => {});
    return response;
  });
  return Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen() {} },
    app.fetch,
  );
}

Deno.test("upgrade() in Hono on Deno.serve: one port serves a route and echoes to npm ws, the built-in WebSocket and Python websockets", async (t) => {
  await using server = startHono();
  const base = `127.0.0.1:${server.addr.port}`;
  await t.step("the route", async () => {
    const response = await fetch(`http://${base}/hello`);
    assertEquals(await response.text(), "hello from hono");
  });
  await t.step("npm ws", async () => {
    const result = await wsEcho(`ws://${base}/ws`, ["hi", bytes], ["chat"]);
    assertEquals(result.received, ["hi", bytes]);
    assertEquals(result.protocol, "chat");
    assertEquals(result.closeCode, 1000);
  });
  await t.step("Deno's built-in WebSocket", async () => {
    const result = await builtinEcho(`ws://${base}/ws`, ["hi", bytes], [
      "other",
      "chat",
    ]);
    assertEquals(result.received, ["hi", bytes]);
    assertEquals(result.protocol, "chat");
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
    const result = await runPythonClient(`ws://${base}/ws`, ["hi", bytes], {
      protocols: ["chat"],
      closeCode: 4000,
      closeReason: "done",
    });
    assertEquals(result.received, ["hi", bytes]);
    assertEquals(result.subprotocol, "chat");
    // The echo answers the client's Close with its code.
    assertEquals(result.closeCode, 4000);
  });
});

/** The status and body serve() answers to `headers` at /ws. */
async function serveAnswer(headers: Record<string, string>, options = {}) {
  await using server = serve(
    { port: 0, hostname: "127.0.0.1", ...options },
    () => {},
  );
  const response = await fetch(`http://127.0.0.1:${server.addr.port}/ws`, {
    headers,
  });
  return { status: response.status, body: await response.text() };
}

Deno.test("upgrade() refuses bad upgrades with the same status and message as serve()", async () => {
  const options = {
    allowedOrigins: ["https://good.example"],
  };
  await using server = startHono(options);
  const url = `http://127.0.0.1:${server.addr.port}/ws`;
  const valid = {
    upgrade: "websocket",
    connection: "Upgrade",
    "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
    "sec-websocket-version": "13",
  };
  const cases: [string, Record<string, string>, number][] = [
    ["a plain request", {}, 426],
    ["another version", { ...valid, "sec-websocket-version": "8" }, 426],
    ["a bad key", { ...valid, "sec-websocket-key": "short" }, 400],
    ["a foreign origin", { ...valid, origin: "https://evil.example" }, 403],
  ];
  for (const [what, headers, status] of cases) {
    const response = await fetch(url, { headers });
    const body = await response.text();
    assertEquals(response.status, status, what);
    assertEquals(
      { status, body },
      await serveAnswer(headers, options),
      `${what}: the same answer as serve()`,
    );
    if (status === 426) {
      assertEquals(response.headers.get("sec-websocket-version"), "13");
    }
  }
});

Deno.test("upgrade(): a refused request's socket never opens: empty readable, closed with 1006 and the reason", async () => {
  const { socket, response } = upgrade(new Request("http://localhost/ws"));
  assertEquals(response.status, 426);
  assertEquals(await Array.fromAsync(socket.readable), []);
  const closed = await socket.closed;
  assertEquals(closed.closeCode, 1006);
  assertEquals(closed.wasClean, false);
  assertStringIncludes(closed.reason, "expected a WebSocket upgrade request");
  const writer = socket.writable.getWriter();
  await assertRejects(() => writer.write("x"), TypeError, "never opened");
});

Deno.test("upgrade(): authorize false or throwing answers 403; a selector function picks the protocol", async () => {
  let calls = 0;
  await using server = startHono({
    authorize: (request) => {
      calls++;
      if (request.url.includes("throw")) throw new Error("boom");
      return !request.url.includes("deny");
    },
    protocols: (offered) => offered.at(-1),
  });
  const base = `127.0.0.1:${server.addr.port}`;
  for (const query of ["deny", "throw"]) {
    const result = builtinEcho(`ws://${base}/ws?${query}`, ["x"]);
    await assertRejects(() => result, Error, "could not open");
  }
  // The built-in client sends "a, b", the form Deno's upgrade accepts.
  const ok = await builtinEcho(`ws://${base}/ws?ok`, ["x"], ["a", "b"]);
  assertEquals(ok.protocol, "b");
  assertEquals(ok.received, ["x"]);
  assertEquals(calls, 3);
  // npm ws sends "a,b": Deno can't answer with either, so none is chosen
  // (and ws, which asked for one, refuses the answer) instead of a 500.
  await assertRejects(
    () => wsEcho(`ws://${base}/ws?ok`, ["x"], ["a", "b"]),
    Error,
    "Server sent no subprotocol",
  );
});

Deno.test("upgrade(): a non-Request argument and a second upgrade of one request throw a TypeError that says why", async () => {
  assertThrows(
    () => upgrade({ url: "http://x/" } as unknown as Request),
    TypeError,
    "c.req.raw",
  );
  let second: unknown;
  await using server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen() {} },
    (request) => {
      const { socket, response } = upgrade(request);
      try {
        upgrade(request);
      } catch (error) {
        second = error;
      }
      socket.readable.pipeTo(socket.writable).catch(() => {});
      return response;
    },
  );
  const result = await wsEcho(`ws://127.0.0.1:${server.addr.port}/`, ["a"]);
  assertEquals(result.received, ["a"]);
  assertInstanceOf(second, TypeError);
  assertStringIncludes((second as TypeError).message, "Deno refusing it");
});

Deno.test("upgrade(): a socket whose response the framework never returned ends with 1006 at handshakeTimeoutMs", async () => {
  let socket: Socket | undefined;
  await using server = Deno.serve(
    {
      port: 0,
      hostname: "127.0.0.1",
      onListen() {},
      onError: () => new Response(null, { status: 500 }),
    },
    (request) => {
      socket = upgrade(request, { handshakeTimeoutMs: 100 }).socket;
      return new Response("answered otherwise", { status: 401 });
    },
  );
  const result = builtinEcho(`ws://127.0.0.1:${server.addr.port}/`, ["a"]);
  await assertRejects(() => result);
  const closed = await within(3000, socket!.closed, "closed");
  assertEquals(closed.closeCode, 1006);
  assertStringIncludes(closed.reason, "did not open within 100 ms");
  const error = await assertRejects(
    () => socket!.readable.getReader().read(),
    WebSocketError,
  );
  assertStringIncludes(error.message, "upgrade() returned to Deno.serve");
});

Deno.test("upgrade(): a message over maxMessageBytes closes with 1009", async () => {
  let closed: Promise<unknown> | undefined;
  await using server = startHono({ maxMessageBytes: 10 }, (socket) => {
    closed = socket.closed;
  });
  const ws = new WebSocket(`ws://127.0.0.1:${server.addr.port}/ws`, "chat");
  const event = await within(
    5000,
    new Promise<CloseEvent>((resolve) => {
      ws.onopen = () => ws.send("x".repeat(11));
      ws.onclose = resolve;
    }),
    "close",
  );
  assertEquals(event.code, 1009);
  assertEquals((await closed as { closeCode: number }).closeCode, 1009);
});

Deno.test("upgrade(): a write past maxBufferedBytes resolves only once Deno's bufferedAmount is back under it, and all arrive in order", async () => {
  const bufferedAfterWrite: number[] = [];
  const sent: Promise<void>[] = [];
  const size = 256 * 1024;
  await using server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen() {} },
    (request) => {
      const { socket, response } = upgrade(request, { maxBufferedBytes: 0 });
      const writer = socket.writable.getWriter();
      sent.push((async () => {
        for (let i = 0; i < 20; i++) {
          await writer.write(new Uint8Array(size).fill(i));
          bufferedAfterWrite.push(socket.bufferedAmount);
        }
        await writer.close();
      })());
      return response;
    },
  );
  const ws = new WebSocket(`ws://127.0.0.1:${server.addr.port}/`);
  ws.binaryType = "arraybuffer";
  const received: number[] = [];
  await within(
    10_000,
    new Promise((resolve) => {
      ws.onmessage = (event) => {
        const bytes = new Uint8Array(event.data);
        assertEquals(bytes.length, size);
        received.push(bytes[size - 1]);
      };
      ws.onclose = resolve;
    }),
    "the messages",
  );
  await sent[0];
  assertEquals(received, Array.from({ length: 20 }, (_, i) => i));
  assertEquals(bufferedAfterWrite, new Array(20).fill(0));
});

Deno.test("upgrade(): the WHATWG WebSocket wraps its socket (the shared Socket type)", async () => {
  await using server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen() {} },
    (request) => {
      const { socket, response } = upgrade(request);
      const ws = WhatwgWebSocket.fromConnection(socket, request);
      ws.onmessage = (event) => ws.send(`echo ${event.data}`);
      return response;
    },
  );
  const result = await builtinEcho(`ws://127.0.0.1:${server.addr.port}/`, [
    "a",
  ]);
  assertEquals(result.received, ["echo a"]);
});
