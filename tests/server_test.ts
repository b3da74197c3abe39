import {
  assert,
  assertEquals,
  assertGreaterOrEqual,
  assertLess,
  assertMatch,
  assertRejects,
  assertStringIncludes,
  assertThrows,
} from "@std/assert";
import { connect } from "../src/client.ts";
import {
  serve,
  type ServeOptions,
  type WebSocketHandler,
} from "../src/server.ts";
import type { WebSocketConnection } from "../src/connection.ts";
import { WebSocketError } from "../src/websocket_error.ts";
import {
  certificateOrSkip,
  delay,
  IN_CI,
  maskedFrame,
  rawExchange,
  readUntilClosed,
  statusOf,
  upgradeRequest,
  within,
} from "./_socket_util.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

const echo: WebSocketHandler = (socket) =>
  socket.readable.pipeTo(socket.writable);

function start(options: ServeOptions, handler: WebSocketHandler = echo) {
  return serve({ port: 0, hostname: "127.0.0.1", ...options }, handler);
}

/** Opens Deno's built-in WebSocket and waits for open (or error). */
async function openBuiltin(
  url: string,
  protocols?: string[],
): Promise<WebSocket> {
  const ws = new WebSocket(url, protocols);
  ws.binaryType = "arraybuffer";
  await within(
    3000,
    new Promise<void>((resolve, reject) => {
      ws.onopen = () => resolve();
      ws.onerror = (event) =>
        reject(new Error(`WebSocket error: ${(event as ErrorEvent).message}`));
    }),
    "the built-in WebSocket opening",
  );
  return ws;
}

function nextMessage(ws: WebSocket): Promise<string | ArrayBuffer> {
  return within(
    3000,
    new Promise((resolve) => {
      ws.onmessage = (event) => resolve(event.data);
    }),
    "the next message",
  );
}

function closeEvent(ws: WebSocket): Promise<CloseEvent> {
  return within(
    6000,
    new Promise((resolve) => {
      ws.onclose = resolve;
    }),
    "the close event",
  );
}

Deno.test("serve() echoes text and binary to Deno's built-in WebSocket", async () => {
  await using server = start({});
  const ws = await openBuiltin(`ws://127.0.0.1:${server.addr.port}/`);
  ws.send("héllo wörld ✓ 🚀");
  assertEquals(await nextMessage(ws), "héllo wörld ✓ 🚀");
  for (const size of [0, 1, 125, 126, 65535, 65536, 1024 * 1024]) {
    const bytes = crypto.getRandomValues(new Uint8Array(Math.min(size, 65536)));
    const payload = new Uint8Array(size);
    for (let i = 0; i < size; i += bytes.length) {
      payload.set(bytes.subarray(0, size - i), i);
    }
    ws.send(payload);
    assertEquals(new Uint8Array(await nextMessage(ws) as ArrayBuffer), payload);
  }
  const closed = closeEvent(ws);
  ws.close(4000, "done here");
  const event = await closed;
  assertEquals([event.code, event.reason, event.wasClean], [
    4000,
    "done here",
    true,
  ]);
});

Deno.test("serve() keeps 1,000 pipelined messages in order", async () => {
  await using server = start({});
  const ws = await openBuiltin(`ws://127.0.0.1:${server.addr.port}/`);
  const received: string[] = [];
  const all = within(
    5000,
    new Promise<void>((resolve) => {
      ws.onmessage = (event) => {
        received.push(event.data);
        if (received.length === 1000) resolve();
      };
    }),
    "1,000 echoes",
  );
  for (let i = 0; i < 1000; i++) ws.send(`message ${i}`);
  await all;
  assertEquals(
    received,
    Array.from({ length: 1000 }, (_, i) => `message ${i}`),
  );
  const closed = closeEvent(ws);
  ws.close();
  assertEquals((await closed).code, 1005);
});

Deno.test("serve() negotiates a subprotocol from a list and gives the handler the Request", async () => {
  let seen:
    | { url: string; protocol: string; custom: string | null }
    | undefined;
  await using server = start(
    { protocols: ["v2", "v1"] },
    (socket, request) => {
      seen = {
        url: request.url,
        protocol: socket.protocol,
        custom: request.headers.get("x-custom"),
      };
      return socket.readable.pipeTo(socket.writable);
    },
  );
  const socket = await connect(
    `ws://127.0.0.1:${server.addr.port}/room/1?user=a`,
    { protocols: ["v0", "v1", "v2"], headers: { "X-Custom": "yes" } },
  );
  assertEquals(socket.protocol, "v1"); // the client's preference among the server's
  assertEquals(seen, {
    url: `http://127.0.0.1:${server.addr.port}/room/1?user=a`,
    protocol: "v1",
    custom: "yes",
  });
  socket.close();
  await socket.closed;
});

Deno.test("serve(): the handler's Request has the method, URL and every header field sent, repeated ones joined", async () => {
  const seen = Promise.withResolvers<Request>();
  await using server = start({}, (socket, request) => {
    seen.resolve(request);
    socket.close();
  });
  const conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: server.addr.port,
  });
  const head = upgradeRequest(
    { Host: "chat.example:8080", "X-Tag": "a", Cookie: "k=v" },
    "GET /room/7?user=b HTTP/1.1",
  ).replace("\r\n\r\n", "\r\nx-tag: b\r\n\r\n");
  await conn.write(encoder.encode(head));
  const request = await within(3000, seen.promise, "the handler");
  conn.close();
  assert(request instanceof Request);
  assertEquals(request.method, "GET");
  assertEquals(request.url, "http://chat.example:8080/room/7?user=b");
  assertEquals([...request.headers], [
    ["connection", "Upgrade"],
    ["cookie", "k=v"],
    ["host", "chat.example:8080"],
    ["sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="],
    ["sec-websocket-version", "13"],
    ["upgrade", "websocket"],
    ["x-tag", "a, b"],
  ]);
  // Still a standard Request: it can be cloned and handed to other APIs.
  assertEquals(new Request(request).url, request.url);
  assertEquals(request.clone().headers.get("x-tag"), "a, b");
});

Deno.test("serve() calls a protocol selector function with the offer and the request", async () => {
  await using server = start({
    protocols: (offered, request) =>
      new URL(request.url).pathname === "/json"
        ? offered.find((p) => p.includes("json"))
        : undefined,
  });
  const ws = await openBuiltin(`ws://127.0.0.1:${server.addr.port}/json`, [
    "a",
    "b.json",
  ]);
  assertEquals(ws.protocol, "b.json");
  const closed = closeEvent(ws);
  ws.close();
  await closed;
  const plain = await openBuiltin(`ws://127.0.0.1:${server.addr.port}/other`, [
    "a",
    "b.json",
  ]);
  assertEquals(plain.protocol, "");
  const closedPlain = closeEvent(plain);
  plain.close();
  await closedPlain;
});

Deno.test("serve(): the server closes with a code and reason the client sees", async () => {
  await using server = start({}, (socket) => {
    socket.close({ closeCode: 4001, reason: "bye from server" });
  });
  const ws = await openBuiltin(`ws://127.0.0.1:${server.addr.port}/`);
  const event = await closeEvent(ws);
  assertEquals([event.code, event.reason, event.wasClean], [
    4001,
    "bye from server",
    true,
  ]);
});

Deno.test("serve() feeds frame bytes sent with the handshake to the socket", async () => {
  await using server = start({});
  const conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: server.addr.port,
  });
  const head = encoder.encode(upgradeRequest());
  const frame = maskedFrame(0x1, encoder.encode("early"));
  // One write: the head and a text frame, before the 101 is seen.
  const bytes = new Uint8Array(head.length + frame.length);
  bytes.set(head);
  bytes.set(frame, head.length);
  await conn.write(bytes);
  const echo = [0x81, 5, ...encoder.encode("early")];
  const received: number[] = [];
  const buffer = new Uint8Array(1024);
  let headEnd = -1;
  await within(
    3000,
    (async () => {
      while (headEnd < 0 || received.length < headEnd + 4 + echo.length) {
        const n = await conn.read(buffer);
        if (n === null) break;
        received.push(...buffer.subarray(0, n));
        headEnd = decoder.decode(new Uint8Array(received)).indexOf("\r\n\r\n");
      }
    })(),
    "the 101 and the echo",
  );
  const text = decoder.decode(new Uint8Array(received));
  assertEquals(statusOf(text), 101);
  assertStringIncludes(
    text,
    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n",
  );
  assertEquals(received.slice(headEnd + 4), echo);
  await conn.write(maskedFrame(0x8, new Uint8Array([0x03, 0xe8])));
  assertEquals([...await readUntilClosed(conn)], [0x88, 2, 0x03, 0xe8]);
  conn.close();
});

// --- refused handshakes ------------------------------------------------------

Deno.test("serve() answers 426 with Sec-WebSocket-Version: 13 to another version", async () => {
  await using server = start({});
  const response = await rawExchange(
    server.addr.port,
    upgradeRequest({ "Sec-WebSocket-Version": "8" }),
  );
  assertEquals(statusOf(response), 426);
  assertStringIncludes(response, "\r\nSec-WebSocket-Version: 13\r\n");
  assertStringIncludes(
    response,
    'expected header Sec-WebSocket-Version: 13, found "8"',
  );
});

Deno.test("serve() answers 400 to a bad key", async () => {
  await using server = start({});
  for (const key of ["short", "AAAAAAAAAAAAAAAAAAAAAAA=", null]) {
    const response = await rawExchange(
      server.addr.port,
      upgradeRequest({ "Sec-WebSocket-Key": key }),
    );
    assertEquals(statusOf(response), 400, String(key));
    assertStringIncludes(response, "Sec-WebSocket-Key");
  }
});

Deno.test("serve() answers 400 to missing Connection: Upgrade, missing Host and HTTP/1.0", async () => {
  await using server = start({});
  for (
    const request of [
      upgradeRequest({ Connection: "keep-alive" }),
      upgradeRequest({ Host: null }),
      upgradeRequest({}, "GET /chat HTTP/1.0"),
      "GET /chat HTTP/1.1\r\nHost: a\r\n folded: x\r\n\r\n",
      "NOT HTTP AT ALL\r\n\r\n",
    ]
  ) {
    assertEquals(
      statusOf(await rawExchange(server.addr.port, request)),
      400,
      request,
    );
  }
});

Deno.test("serve() answers 405 to an upgrade with another method than GET", async () => {
  await using server = start({});
  const response = await rawExchange(
    server.addr.port,
    upgradeRequest({}, "POST /chat HTTP/1.1"),
  );
  assertEquals(statusOf(response), 405);
  assertStringIncludes(response, "\r\nAllow: GET\r\n");
});

Deno.test("serve() answers 431 to a head over maxHeaderBytes", async () => {
  await using server = start({});
  const big = upgradeRequest({ "X-Big": "a".repeat(20 * 1024) });
  const response = await rawExchange(server.addr.port, big);
  assertEquals(statusOf(response), 431);
  assertStringIncludes(response, "at most 16384 bytes");
  await using small = start({ maxHeaderBytes: 256 });
  const refused = await rawExchange(
    small.addr.port,
    upgradeRequest({ "X-Big": "a".repeat(300) }),
  );
  assertEquals(statusOf(refused), 431);
});

Deno.test("serve() cuts a handshake sent one byte per second at handshakeTimeoutMs", async () => {
  await using server = start({ handshakeTimeoutMs: 1500 });
  const conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: server.addr.port,
  });
  const request = encoder.encode(upgradeRequest());
  const startTime = performance.now();
  let sent = 0;
  let writeFailed = false;
  const trickle = (async () => {
    for (; sent < request.length; sent++) {
      try {
        await conn.write(request.subarray(sent, sent + 1));
      } catch {
        writeFailed = true;
        return;
      }
      await delay(1000);
    }
  })();
  const response = await readUntilClosed(conn, 5000);
  const elapsed = performance.now() - startTime;
  await trickle;
  conn.close();
  assertEquals(response.length, 0, "no response, just a closed connection");
  assertGreaterOrEqual(elapsed, 1400);
  assertLess(elapsed, 3500);
  assertLess(sent, 5);
  assert(writeFailed || sent < request.length);
});

Deno.test("serve() cuts each of several staggered slow handshakes at its own deadline, and quick ones pass", async () => {
  await using server = start({ handshakeTimeoutMs: 1000 });
  const silent = async () => {
    const conn = await Deno.connect({
      hostname: "127.0.0.1",
      port: server.addr.port,
    });
    const opened = performance.now();
    await readUntilClosed(conn, 5000);
    conn.close();
    return performance.now() - opened;
  };
  const first = silent();
  await delay(500);
  const second = silent();
  await delay(300);
  // A client that completes its handshake meanwhile is not cut.
  const socket = await connect(`ws://127.0.0.1:${server.addr.port}/`);
  const [firstMs, secondMs] = await Promise.all([first, second]);
  // Each is cut about 1 s after its own start: not earlier, and the second
  // not when the first was cut nor a whole timeout after that.
  for (const elapsed of [firstMs, secondMs]) {
    assertGreaterOrEqual(elapsed, 950);
    assertLess(elapsed, IN_CI ? 2500 : 1400);
  }
  const writer = socket.writable.getWriter();
  await writer.write("still open");
  const reader = socket.readable.getReader();
  assertEquals((await reader.read()).value, "still open");
  reader.releaseLock();
  await writer.close();
  await socket.closed;
});

Deno.test("serve() answers 426 to a plain request when there is no fallback", async () => {
  await using server = start({});
  const response = await rawExchange(
    server.addr.port,
    "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
  );
  assertEquals(statusOf(response), 426);
  assertStringIncludes(response, "\r\nUpgrade: websocket\r\n");
});

Deno.test("serve() gives plain requests to the fallback, and sockets still work on the port", async () => {
  await using server = start({
    fallback: (request) =>
      new URL(request.url).pathname === "/"
        ? new Response("<h1>chat</h1>", {
          headers: { "content-type": "text/html" },
        })
        : new Response("not found", { status: 404 }),
  });
  const base = `http://127.0.0.1:${server.addr.port}`;
  const page = await within(3000, fetch(`${base}/`), "fetch");
  assertEquals(page.status, 200);
  assertEquals(page.headers.get("content-type"), "text/html");
  assertEquals(await page.text(), "<h1>chat</h1>");
  const missing = await within(3000, fetch(`${base}/nope`), "fetch");
  assertEquals(missing.status, 404);
  assertEquals(await missing.text(), "not found");
  const raw = await rawExchange(
    server.addr.port,
    "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n",
  );
  assertMatch(
    raw,
    /^HTTP\/1\.1 200 OK\r\n[^]*Content-Length: 13\r\n[^]*Connection: close\r\n\r\n$/,
  );
  const ws = await openBuiltin(`ws://127.0.0.1:${server.addr.port}/`);
  ws.send("still a socket");
  assertEquals(await nextMessage(ws), "still a socket");
  const closed = closeEvent(ws);
  ws.close();
  await closed;
});

Deno.test("serve() answers 500 when the fallback throws or rejects, and logs it", async () => {
  const logged: unknown[][] = [];
  const originalError = console.error;
  console.error = (...args: unknown[]) => void logged.push(args);
  try {
    await using server = start({
      fallback: (request) => {
        if (new URL(request.url).pathname === "/throw") {
          throw new Error("page bug");
        }
        return Promise.reject(new Error("async page bug"));
      },
    });
    for (const path of ["/throw", "/reject"]) {
      const response = await rawExchange(
        server.addr.port,
        `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`,
      );
      assertEquals(statusOf(response), 500, path);
    }
    assertEquals(logged.length, 2);
  } finally {
    console.error = originalError;
  }
});

Deno.test("serve() answers 403 when authorize returns false or throws", async () => {
  await using server = start({
    authorize: (request) => {
      const token = new URL(request.url).searchParams.get("token");
      if (token === "boom") throw new Error("token service down");
      return token === "secret";
    },
  });
  const base = `ws://127.0.0.1:${server.addr.port}/`;
  for (const token of ["wrong", "boom"]) {
    await assertRejects(
      () => connect(`${base}?token=${token}`),
      WebSocketError,
      "expected HTTP status 101 Switching Protocols, found 403 Forbidden",
    );
  }
  const socket = await connect(`${base}?token=secret`);
  socket.close();
  await socket.closed;
});

Deno.test("serve() answers 403 to an Origin that is not allowed", async () => {
  await using server = start({
    // A /g pattern must not alternate between match and miss (lastIndex).
    allowedOrigins: [
      "https://app.example",
      /^https:\/\/[a-z]+\.example\.org$/g,
    ],
  });
  const url = `ws://127.0.0.1:${server.addr.port}/`;
  await assertRejects(
    () => connect(url, { origin: "https://evil.example" }),
    WebSocketError,
    "found 403 Forbidden",
  );
  for (
    const origin of [
      "https://app.example",
      "https://chat.example.org",
      "https://chat.example.org",
      undefined,
    ]
  ) {
    const socket = await connect(url, { origin });
    socket.close();
    await socket.closed;
  }
});

Deno.test("serve(): a refused handshake leaves no unhandled rejection from the hash it started early", async () => {
  // The accept hash starts before the Origin check; here it fails, and the
  // refusal never awaits it. An unhandled rejection would fail this test.
  const subtle = crypto.subtle;
  const originalDigest = subtle.digest;
  subtle.digest = () => Promise.reject(new Error("digest failed"));
  try {
    await using server = start({ allowedOrigins: ["https://app.example"] });
    await assertRejects(
      () =>
        connect(`ws://127.0.0.1:${server.addr.port}/`, {
          origin: "https://evil.example",
        }),
      WebSocketError,
      "found 403 Forbidden",
    );
    // Unhandled rejections are reported after a macrotask.
    await delay(20);
  } finally {
    subtle.digest = originalDigest;
  }
});

Deno.test("serve(): requests the RFC 6455 checks refuse after their key was hashed get their status, and leave no unhandled rejection", async () => {
  // The accept hash starts before the request is checked at all; a request
  // with a well-formed key but another version or method is refused without
  // awaiting it. An unhandled rejection would fail this test.
  const subtle = crypto.subtle;
  const originalDigest = subtle.digest;
  let digests = 0;
  subtle.digest = () => {
    digests++;
    return Promise.reject(new Error("digest failed"));
  };
  try {
    await using server = start({});
    const port = server.addr.port;
    const version = await rawExchange(
      port,
      upgradeRequest({ "Sec-WebSocket-Version": "8" }),
    );
    assertEquals(statusOf(version), 426);
    const method = await rawExchange(
      port,
      upgradeRequest({}, "POST /chat HTTP/1.1"),
    );
    assertEquals(statusOf(method), 405);
    // Both keys were hashed early (the refusals came after).
    assertEquals(digests, 2);
    // Unhandled rejections are reported after a macrotask.
    await delay(20);
  } finally {
    subtle.digest = originalDigest;
  }
});

Deno.test("serve(): an error a handler throws after its socket ended is not logged as a handler bug", async () => {
  const logged: unknown[][] = [];
  const originalError = console.error;
  console.error = (...args: unknown[]) => void logged.push(args);
  try {
    const handlerDone = Promise.withResolvers<void>();
    await using server = start({}, async (socket) => {
      try {
        await socket.closed;
        // Like an app's own code failing once the peer has gone.
        throw new Error("the peer went away");
      } finally {
        handlerDone.resolve();
      }
    });
    const ws = await openBuiltin(`ws://127.0.0.1:${server.addr.port}/`);
    const closed = closeEvent(ws);
    ws.close();
    await closed;
    await handlerDone.promise;
    await delay(20);
    assertEquals(logged, []);
  } finally {
    console.error = originalError;
  }
});

Deno.test("serve(): a handler that throws closes its socket with 1011, logs once, and the server keeps serving", async () => {
  const logged: unknown[][] = [];
  const originalError = console.error;
  console.error = (...args: unknown[]) => void logged.push(args);
  try {
    let calls = 0;
    await using server = start({}, async (socket) => {
      if (++calls === 1) throw new Error("handler bug");
      await socket.readable.pipeTo(socket.writable);
    });
    const first = await openBuiltin(`ws://127.0.0.1:${server.addr.port}/`);
    const event = await closeEvent(first);
    assertEquals(event.code, 1011);
    assertEquals(logged.length, 1);
    assert(
      logged[0].some((arg) =>
        arg instanceof Error && arg.message === "handler bug"
      ),
    );
    const second = await openBuiltin(`ws://127.0.0.1:${server.addr.port}/`);
    second.send("ok");
    assertEquals(await nextMessage(second), "ok");
    const closed = closeEvent(second);
    second.close();
    await closed;
    assertEquals(logged.length, 1);
  } finally {
    console.error = originalError;
  }
});

Deno.test("serve(): shutdown() closes every socket with 1001 and resolves when they are gone", async () => {
  const sockets: WebSocketConnection[] = [];
  const server = start({}, (socket) => {
    sockets.push(socket);
    return socket.readable.pipeTo(socket.writable);
  });
  const clients = await Promise.all(
    [1, 2, 3].map(() => openBuiltin(`ws://127.0.0.1:${server.addr.port}/`)),
  );
  const events = clients.map(closeEvent);
  await within(5000, server.shutdown(), "shutdown()");
  await within(1000, server.finished, "finished");
  for (const event of await Promise.all(events)) {
    assertEquals([event.code, event.reason], [1001, "server shutting down"]);
  }
  for (const socket of sockets) {
    assertEquals((await socket.closed).closeCode, 1001);
  }
  // No longer accepting.
  await assertRejects(() =>
    Deno.connect({ hostname: "127.0.0.1", port: server.addr.port })
  );
});

Deno.test("serve(): shutdown() waits for a handler that goes on after its socket ended, and for a socket that outlives its handler", async () => {
  let releaseHandler!: () => void;
  const handlerMayReturn = new Promise<void>((r) => releaseHandler = r);
  let handlerReturned = false;
  const sockets: WebSocketConnection[] = [];
  const server = start({ closeTimeoutMs: 2000 }, async (socket, request) => {
    sockets.push(socket);
    if (new URL(request.url).pathname === "/returns-at-once") return;
    await socket.closed;
    await handlerMayReturn;
    handlerReturned = true;
  });
  const url = `ws://127.0.0.1:${server.addr.port}`;
  const lingering = await openBuiltin(`${url}/waits`);
  // This one's handler returned at once; its socket stays open until
  // shutdown closes it.
  const returnedAtOnce = await openBuiltin(`${url}/returns-at-once`);
  const events = [closeEvent(lingering), closeEvent(returnedAtOnce)];
  let finished = false;
  server.finished.then(() => finished = true);
  const shutdown = server.shutdown();
  await Promise.all(events);
  await Promise.all(sockets.map((socket) => socket.closed));
  await delay(50);
  assert(!finished, "expected shutdown to wait for the running handler");
  releaseHandler();
  await within(2000, shutdown, "shutdown()");
  assert(handlerReturned);
  assert(finished);
});

Deno.test("serve(): shutdown() also ends handshakes in progress", async () => {
  const server = start({});
  const conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: server.addr.port,
  });
  await conn.write(encoder.encode("GET / HTTP/1.1\r\n")); // never finished
  await delay(50);
  await within(3000, server.shutdown(), "shutdown()");
  assertEquals((await readUntilClosed(conn)).length, 0);
  conn.close();
});

Deno.test("serve(): aborting the signal shuts the server down", async () => {
  const controller = new AbortController();
  let listened: Deno.NetAddr | undefined;
  const server = start({
    signal: controller.signal,
    onListen: (addr) => listened = addr,
  });
  assertEquals(listened, server.addr);
  const ws = await openBuiltin(`ws://127.0.0.1:${server.addr.port}/`);
  const closed = closeEvent(ws);
  controller.abort();
  assertEquals((await closed).code, 1001);
  await within(3000, server.finished, "finished");
});

Deno.test("serve() answers 503 over maxConnections", async () => {
  await using server = start({ maxConnections: 1 });
  const ws = await openBuiltin(`ws://127.0.0.1:${server.addr.port}/`);
  const response = await rawExchange(server.addr.port, upgradeRequest());
  assertEquals(statusOf(response), 503);
  const closed = closeEvent(ws);
  ws.close();
  await closed;
});

Deno.test("serve() with reusePort: two servers on one port both accept sockets", async () => {
  const accepted = [0, 0];
  const counting = (index: number): WebSocketHandler => (socket) => {
    accepted[index]++;
    return socket.readable.pipeTo(socket.writable);
  };
  await using first = start({ reusePort: true }, counting(0));
  const port = first.addr.port;
  // Without the option the port is taken: the option is what lets them share.
  assertThrows(() => start({ port }), Deno.errors.AddrInUse);
  await using second = start({ port, reusePort: true }, counting(1));
  assertEquals(second.addr.port, port);
  // The kernel spreads connections by their address hash: a few dozen
  // connections from distinct ports reach both listeners.
  for (let i = 0; i < 200 && (accepted[0] === 0 || accepted[1] === 0); i++) {
    const socket = await connect(`ws://127.0.0.1:${port}/`);
    const writer = socket.writable.getWriter();
    await writer.write("hi");
    const reader = socket.readable.getReader();
    assertEquals((await reader.read()).value, "hi");
    reader.releaseLock();
    await writer.close();
    await socket.closed;
  }
  assertGreaterOrEqual(accepted[0], 1);
  assertGreaterOrEqual(accepted[1], 1);
});

Deno.test("serve(): a peer that vanishes mid-frame gives the handler 1006", async () => {
  let closedWith: Promise<{ closeCode: number; wasClean: boolean }> | undefined;
  await using server = start({}, (socket) => {
    closedWith = socket.closed;
    return socket.readable.pipeTo(socket.writable).catch(() => {});
  });
  const conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: server.addr.port,
  });
  await conn.write(encoder.encode(upgradeRequest()));
  const frame = maskedFrame(0x2, new Uint8Array(100));
  await conn.write(frame.subarray(0, 50)); // half a frame, then gone
  await delay(50);
  conn.close();
  await within(
    3000,
    (async () => {
      while (!closedWith) await delay(10);
    })(),
  );
  const result = await within(3000, closedWith!, "socket.closed");
  assertEquals([result.closeCode, result.wasClean], [1006, false]);
});

Deno.test("serve(): a peer that never answers Close is cut at closeTimeoutMs", async () => {
  let closedWith: Promise<{ closeCode: number; wasClean: boolean }> | undefined;
  await using server = start({ closeTimeoutMs: 300 }, (socket) => {
    closedWith = socket.closed;
    socket.close({ closeCode: 1000 });
  });
  const conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: server.addr.port,
  });
  await conn.write(encoder.encode(upgradeRequest()));
  const startTime = performance.now();
  const bytes = await readUntilClosed(conn, 3000); // 101, Close, then EOF
  const elapsed = performance.now() - startTime;
  conn.close();
  const text = decoder.decode(bytes);
  assertEquals(statusOf(text), 101);
  assertEquals([...bytes.subarray(text.indexOf("\r\n\r\n") + 4)], [
    0x88,
    2,
    0x03,
    0xe8,
  ]);
  assertGreaterOrEqual(elapsed, 250);
  const result = await within(3000, closedWith!, "socket.closed");
  assertEquals([result.closeCode, result.wasClean], [1006, false]);
});

Deno.test("serve() over TLS: a wss: round trip with a self-signed certificate", async (t) => {
  const certificate = await certificateOrSkip();
  if (!certificate) return;
  await using server = start({ ...certificate });
  await t.step("our client", async () => {
    const socket = await connect(`wss://localhost:${server.addr.port}/`, {
      caCerts: [certificate.cert],
    });
    const writer = socket.writable.getWriter();
    await writer.write("over tls");
    const reader = socket.readable.getReader();
    assertEquals((await reader.read()).value, "over tls");
    reader.releaseLock();
    await writer.close();
    assertEquals((await socket.closed).wasClean, true);
  });
  await t.step("an HTTP error response over TLS arrives whole", async () => {
    const client = Deno.createHttpClient({ caCerts: [certificate.cert] });
    try {
      const response = await within(
        3000,
        fetch(`https://localhost:${server.addr.port}/`, { client }),
        "fetch",
      );
      assertEquals(response.status, 426);
      assertStringIncludes(
        await response.text(),
        "expected a WebSocket upgrade",
      );
    } finally {
      client.close();
    }
  });
  await t.step("an untrusted certificate fails the handshake", async () => {
    await assertRejects(
      () => connect(`wss://localhost:${server.addr.port}/`),
      WebSocketError,
      "opening handshake failed",
    );
  });
});
