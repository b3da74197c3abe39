import {
  assert,
  assertEquals,
  assertGreaterOrEqual,
  assertLess,
  assertRejects,
  assertStringIncludes,
} from "@std/assert";
import { connect, parseWebSocketUrl } from "../src/client.ts";
import type { WebSocketConnection } from "../src/connection.ts";
import { computeAccept } from "../src/handshake_key.ts";
import { serve } from "../src/server.ts";
import type { PerMessageDeflateOptions } from "../src/permessage_deflate.ts";
import { WebSocketError } from "../src/websocket_error.ts";
import { RawServer } from "./conformance/_raw_peer.ts";
import { readHead } from "./_raw_listener.ts";
import { delay, readUntilClosed, within } from "./_socket_util.ts";

const encoder = new TextEncoder();

/** A Deno.serve server whose sockets (Deno.upgradeWebSocket) echo. */
function denoEchoServer(
  onSocket: (socket: WebSocket, request: Request) => void = (socket) => {
    socket.onmessage = (event) => socket.send(event.data);
  },
  protocol?: string,
) {
  // Copies: a Deno.serve Request can't be read after its response is sent.
  const seen: { url: string; headers: Headers }[] = [];
  const server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen() {} },
    (request) => {
      seen.push({ url: request.url, headers: new Headers(request.headers) });
      if (request.headers.get("upgrade") !== "websocket") {
        return new Response("plain page");
      }
      const { socket, response } = Deno.upgradeWebSocket(request, {
        protocol,
      });
      socket.binaryType = "arraybuffer";
      onSocket(socket, request);
      return response;
    },
  );
  return {
    url: `ws://127.0.0.1:${server.addr.port}`,
    port: server.addr.port,
    seen,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

/** A raw TCP server that runs `script` on the first connection. */
function rawServer(script: (conn: Deno.Conn) => Promise<void>) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const done = (async () => {
    const conn = await listener.accept();
    try {
      await script(conn);
    } finally {
      try {
        conn.close();
      } catch {
        // closed
      }
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    done,
    async [Symbol.asyncDispose]() {
      listener.close();
      await done.catch(() => {});
    },
  };
}

async function exchange(
  socket: WebSocketConnection,
  messages: (string | Uint8Array<ArrayBuffer>)[],
): Promise<(string | Uint8Array)[]> {
  const writer = socket.writable.getWriter();
  const reader = socket.readable.getReader();
  try {
    const replies: (string | Uint8Array)[] = [];
    const reading = within(
      5000,
      (async () => {
        while (replies.length < messages.length) {
          const { value, done } = await reader.read();
          if (done) break;
          replies.push(value);
        }
      })(),
      "the replies",
    );
    for (const message of messages) await writer.write(message);
    await reading;
    return replies;
  } finally {
    reader.releaseLock();
    writer.releaseLock();
  }
}

Deno.test("connect() exchanges text and binary of 0 B to 1 MiB with Deno.upgradeWebSocket", async () => {
  await using peer = denoEchoServer();
  const socket = await connect(`${peer.url}/`);
  const sizes = [0, 1, 125, 126, 65535, 65536, 1024 * 1024];
  const binaries = sizes.map((size) => {
    const bytes = new Uint8Array(size);
    for (let i = 0; i < size; i++) bytes[i] = (i * 31 + 7) & 0xff;
    return bytes;
  });
  const texts = ["", "ascii", "héllo wörld ✓ 🚀 日本語", "é".repeat(70000)];
  const messages = [...binaries, ...texts];
  assertEquals(await exchange(socket, messages), messages);
  socket.close({ closeCode: 1000, reason: "done" });
  const closed = await within(6000, socket.closed, "socket.closed");
  assertEquals(closed, { closeCode: 1000, reason: "done", wasClean: true });
});

Deno.test("connect() keeps 1,000 pipelined messages in order", async () => {
  await using peer = denoEchoServer();
  const socket = await connect(`${peer.url}/`);
  const messages = Array.from({ length: 1000 }, (_, i) => `message ${i}`);
  assertEquals(await exchange(socket, messages), messages);
  socket.close();
  await within(6000, socket.closed, "socket.closed");
});

Deno.test("connect() maps http: to ws: and sends protocols, origin and headers", async () => {
  await using peer = denoEchoServer(undefined, "chat.v2");
  const socket = await connect(`http://127.0.0.1:${peer.port}/path?q=1`, {
    protocols: ["chat.v1", "chat.v2"],
    origin: "https://app.example",
    headers: [["Authorization", "Bearer abc"], ["X-Trace", "1"]],
  });
  assertEquals(socket.protocol, "chat.v2");
  const request = peer.seen.at(-1)!;
  assertEquals(new URL(request.url).pathname, "/path");
  assertEquals(new URL(request.url).search, "?q=1");
  assertEquals(request.headers.get("origin"), "https://app.example");
  assertEquals(request.headers.get("authorization"), "Bearer abc");
  assertEquals(request.headers.get("x-trace"), "1");
  assertEquals(
    request.headers.get("sec-websocket-protocol"),
    "chat.v1, chat.v2",
  );
  socket.close();
  await within(6000, socket.closed, "socket.closed");
});

Deno.test("connect(): close codes and reasons go both ways", async () => {
  let serverSaw: CloseEvent | undefined;
  await using peer = denoEchoServer((socket, request) => {
    socket.onclose = (event) => serverSaw = event;
    if (new URL(request.url).pathname === "/server-closes") {
      socket.onopen = () => socket.close(4002, "server says bye");
    }
  });
  const client = await connect(`${peer.url}/client-closes`);
  client.close({ closeCode: 4001, reason: "client says bye" });
  assertEquals(await within(6000, client.closed, "socket.closed"), {
    closeCode: 4001,
    reason: "client says bye",
    wasClean: true,
  });
  await within(
    3000,
    (async () => {
      while (!serverSaw) await delay(10);
    })(),
  );
  assertEquals([serverSaw!.code, serverSaw!.reason], [4001, "client says bye"]);

  const other = await connect(`${peer.url}/server-closes`);
  // readable ends when the server's Close arrives.
  assertEquals(await within(3000, Array.fromAsync(other.readable)), []);
  await other.writable.close(); // completes the handshake, echoing 4002
  assertEquals(await within(6000, other.closed, "socket.closed"), {
    closeCode: 4002,
    reason: "server says bye",
    wasClean: true,
  });
});

Deno.test("connect(): keep-alive pings are answered by the peer", async () => {
  await using peer = denoEchoServer();
  const socket = await connect(`${peer.url}/`, {
    pingIntervalMs: 30,
    pongTimeoutMs: 500,
  });
  await delay(300); // several ping/pong rounds
  assertEquals(await exchange(socket, ["still open"]), ["still open"]);
  socket.close();
  assertEquals((await within(6000, socket.closed)).closeCode, 1000);
});

Deno.test("connect() throws SyntaxError for bad URLs before any I/O", async () => {
  for (
    const url of [
      "not a url",
      "ftp://127.0.0.1/",
      "ws://127.0.0.1:1/#fragment",
      "ws://127.0.0.1:1/#",
      "file:///tmp/x",
    ]
  ) {
    const error = await assertRejects(() => connect(url), DOMException);
    assertEquals(error.name, "SyntaxError", url);
  }
  assertEquals(parseWebSocketUrl("http://a/b").href, "ws://a/b");
  assertEquals(parseWebSocketUrl("https://a/b").href, "wss://a/b");
  assertEquals(parseWebSocketUrl(new URL("WSS://A:443/")).href, "wss://a/");
});

Deno.test("connect() refuses bad protocols (SyntaxError) and headers (TypeError) before any I/O", async () => {
  // Port 1 has no server: had any I/O happened, the error would be a
  // WebSocketError saying the connection was refused.
  const url = "ws://127.0.0.1:1/";
  for (const protocols of [["a b"], ["x", "x"], "bad,protocol"]) {
    const error = await assertRejects(
      () => connect(url, { protocols }),
      DOMException,
    );
    assertEquals(error.name, "SyntaxError");
  }
  for (
    const headers of [
      { "X-A": "a\r\nX-Injected: 1" },
      { "X-A": "a\0" },
      [["Bad\nName", "1"]],
    ] as HeadersInit[]
  ) {
    await assertRejects(
      () => connect(url, { headers }),
      TypeError,
      "expected",
    );
  }
  await assertRejects(
    () => connect(url, { origin: "http://a\r\nX: 1" }),
    TypeError,
  );
});

Deno.test("connect() with an aborted signal rejects with its reason before any I/O", async () => {
  const reason = new DOMException("not wanted", "AbortError");
  const error = await assertRejects(
    () => connect("ws://127.0.0.1:1/", { signal: AbortSignal.abort(reason) }),
    DOMException,
  );
  assertEquals(error, reason);
});

Deno.test("connect(): aborting during the handshake closes the TCP connection", async () => {
  const controller = new AbortController();
  let requestSeen = "";
  let serverSawEnd = false;
  await using peer = rawServer(async (conn) => {
    requestSeen = await readHead(conn);
    controller.abort(new DOMException("changed my mind", "AbortError"));
    // Never answer; the client must close.
    serverSawEnd = (await readUntilClosed(conn, 3000)).length === 0;
  });
  const error = await assertRejects(
    () =>
      connect(`ws://127.0.0.1:${peer.port}/`, { signal: controller.signal }),
    DOMException,
    "changed my mind",
  );
  assertEquals(error.name, "AbortError");
  await within(3000, peer.done);
  assertStringIncludes(requestSeen, "GET / HTTP/1.1\r\n");
  assert(serverSawEnd);
});

Deno.test("connect() fails at handshakeTimeoutMs when the server never answers", async () => {
  await using peer = rawServer(async (conn) => {
    await readHead(conn);
    await readUntilClosed(conn, 3000);
  });
  const start = performance.now();
  await assertRejects(
    () => connect(`ws://127.0.0.1:${peer.port}/`, { handshakeTimeoutMs: 300 }),
    WebSocketError,
    "expected it to finish within 300 ms",
  );
  const elapsed = performance.now() - start;
  assertGreaterOrEqual(elapsed, 250);
  assertLess(elapsed, 2000);
});

Deno.test("connect() reports a refused upgrade with the status and a wrong accept value", async () => {
  await using refusing = serve(
    { port: 0, hostname: "127.0.0.1", authorize: () => false },
    () => {},
  );
  await assertRejects(
    () => connect(`ws://127.0.0.1:${refusing.addr.port}/`),
    WebSocketError,
    "opening handshake failed: expected HTTP status 101 Switching Protocols, found 403 Forbidden",
  );
  await using lying = rawServer(async (conn) => {
    await readHead(conn);
    await conn.write(encoder.encode(
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" +
        "Connection: Upgrade\r\nSec-WebSocket-Accept: " +
        (await computeAccept("AAAAAAAAAAAAAAAAAAAAAA==")) + "\r\n\r\n",
    ));
    await readUntilClosed(conn, 3000);
  });
  const error = await assertRejects(
    () => connect(`ws://127.0.0.1:${lying.port}/`),
    WebSocketError,
    "expected header Sec-WebSocket-Accept:",
  );
  assertEquals(error.closeCode, 1006);
});

Deno.test("connect() feeds frames that arrive with the 101 response to the socket", async () => {
  await using peer = rawServer(async (conn) => {
    const request = await readHead(conn);
    const key = /Sec-WebSocket-Key: (.*)\r\n/.exec(request)![1];
    const head = encoder.encode(
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" +
        `Connection: Upgrade\r\nSec-WebSocket-Accept: ${await computeAccept(
          key,
        )}\r\n\r\n`,
    );
    // The head, a text frame "first" and a Close 1000 in one write.
    const frames = [0x81, 5, ...encoder.encode("first"), 0x88, 2, 3, 0xe8];
    const bytes = new Uint8Array([...head, ...frames]);
    await conn.write(bytes);
    await readUntilClosed(conn, 3000);
  });
  const socket = await connect(`ws://127.0.0.1:${peer.port}/`, {
    closeTimeoutMs: 500,
  });
  assertEquals(await within(3000, Array.fromAsync(socket.readable)), ["first"]);
  await socket.writable.close();
  assertEquals((await within(3000, socket.closed)).closeCode, 1000);
});

Deno.test("connect() and serve() negotiate permessage-deflate by default, and not when turned off", async () => {
  await using server = serve(
    { port: 0, hostname: "127.0.0.1" },
    (socket) => socket.readable.pipeTo(socket.writable),
  );
  const url = `ws://127.0.0.1:${server.addr.port}/`;
  const compressed = await connect(url);
  assertStringIncludes(compressed.extensions, "permessage-deflate");
  const big = "compressible ".repeat(20000);
  assertEquals(await exchange(compressed, [big, "small"]), [big, "small"]);
  compressed.close();
  await within(6000, compressed.closed);
  const plain = await connect(url, { compression: false });
  assertEquals(plain.extensions, "");
  assertEquals(await exchange(plain, [big]), [big]);
  plain.close();
  await within(6000, plain.closed);
});

Deno.test("connect() rejects a permessage-deflate response it cannot accept, with a clear error, and closes the TCP connection", async (t) => {
  // [test name, our compression option, the server's extensions header,
  // what the error must say]. Our client always offers a bare
  // client_max_window_bits, so "client_max_window_bits when not offered"
  // is covered by offering a smaller value than the response's.
  const table: [
    string,
    PerMessageDeflateOptions | false,
    string,
    string,
  ][] = [
    [
      "server_max_window_bits=7 (below 8)",
      {},
      "permessage-deflate; server_max_window_bits=7",
      "Invalid permessage-deflate response: server_max_window_bits must be an integer from 8 to 15",
    ],
    [
      "a parameter it never offered",
      {},
      "permessage-deflate; foo",
      "Invalid permessage-deflate response: unknown parameter foo",
    ],
    [
      "client_max_window_bits without a value",
      {},
      "permessage-deflate; client_max_window_bits",
      "Invalid permessage-deflate response: client_max_window_bits needs a value from 8 to 15, found none",
    ],
    [
      "client_max_window_bits above the offered 10",
      { clientMaxWindowBits: 10 },
      "permessage-deflate; client_max_window_bits=12",
      "Invalid permessage-deflate response: client_max_window_bits=12 is larger than the 10 offered",
    ],
    [
      "no server_no_context_takeover after offering it",
      { serverNoContextTakeover: true },
      "permessage-deflate",
      "server_no_context_takeover was offered but the response does not include it",
    ],
    [
      "permessage-deflate when compression is off (not offered)",
      false,
      "permessage-deflate",
      'expected only extensions the client offered (none), found "permessage-deflate"',
    ],
  ];
  for (const [name, compression, header, says] of table) {
    await t.step(name, async () => {
      const server = new RawServer();
      try {
        const accepted = server.accept([`Sec-WebSocket-Extensions: ${header}`]);
        const error = await assertRejects(
          () =>
            connect(`ws://127.0.0.1:${server.port}/`, {
              compression,
              handshakeTimeoutMs: 3000,
            }),
          WebSocketError,
          says,
        );
        assertStringIncludes(error.message, "opening handshake failed: ");
        assertEquals(error.closeCode, 1006);
        // Our client sent no frame and ended the TCP connection.
        const peer = await accepted;
        try {
          const event = await peer.next(3000, "the end of the connection");
          assertEquals(event.kind, "end", JSON.stringify(event));
        } finally {
          await peer.close();
        }
      } finally {
        server.close();
      }
    });
  }
});
