// Our server (serve(), compression off) against real clients: Deno's built-in
// WebSocket, npm ws, Python websockets and headless Chromium. For each client:
// text and binary of 0 B … 1 MiB, multi-byte UTF-8, 1,000 pipelined messages,
// subprotocol negotiation, close code and reason both ways (also the longest,
// 123-byte reason), a server-initiated close, shutdown() (1001), and our
// keep-alive pings answered by the client. npm ws and Python
// (python/ping_client.py) also check that we answer their Pings with the same
// payloads (RFC 6455 §5.5.3); npm ws sends fragmented messages cut inside
// UTF-8 characters with a Ping between the fragments.
// Every connection's URL carries ?step=N, so what the server saw is matched
// to the step that opened it. Compression: deflate_interop_test.ts.

import { assert, assertEquals } from "@std/assert";
// npm ws ships no types (its module is `any` here). It is a test-only peer,
// so it is not in deno.json's imports.
// deno-lint-ignore no-import-prefix
import { WebSocket as WsWebSocket } from "npm:ws@8.23.0";
import { Buffer } from "node:buffer";
import { serve } from "../../src/server.ts";
import type { WebSocketConnection } from "../../src/connection.ts";
import {
  browserEcho,
  type BrowserPage,
  chromiumAvailable,
  launchChromium,
  type PeerMessage,
  PYTHON,
  pythonWebsocketsAvailable,
  requirePeer,
  runPythonClient,
} from "./_peers.ts";
import {
  assertSameMessages,
  CloseLog,
  delay,
  LONGEST_REASON,
  pipelinedMessages,
  randomBytes,
  sizedMessages,
  splitText,
  stepOf,
  utf8Messages,
  within,
} from "./_socket_scenarios.ts";

const hasPython = await pythonWebsocketsAvailable();
const hasChromium = await chromiumAvailable();

/** What a client saw of one connection. */
interface ClientResult {
  received: PeerMessage[];
  protocol: string;
  closeCode: number | null;
  closeReason: string | null;
  /** Whether the client saw a clean close (unknown for Python's client). */
  wasClean?: boolean;
}

interface EchoOptions {
  protocols?: string[];
  closeCode?: number;
  closeReason?: string;
  timeoutMs?: number;
}

/**
 * One client peer, driven the same way for each: open a WebSocket to url,
 * send every message, wait for as many replies, then close with
 * closeCode/closeReason and report what it saw (also when the server closed
 * first).
 */
type ClientPeer = (
  url: string,
  messages: PeerMessage[],
  options?: EchoOptions,
) => Promise<ClientResult>;

/** The built-in WebSocket and npm ws have the same event shape for this. */
function eventClient(
  name: string,
  open: (url: string, protocols: string[]) => {
    socket: WebSocket;
    toMessage: (event: MessageEvent) => PeerMessage;
  },
): ClientPeer {
  return (url, messages, options = {}) => {
    const { socket, toMessage } = open(url, options.protocols ?? []);
    const received: PeerMessage[] = [];
    const closeCode = options.closeCode ?? 1000;
    const closeReason = options.closeReason ?? "";
    const { promise, resolve } = Promise.withResolvers<ClientResult>();
    socket.onerror = () => {}; // the close event that follows has the outcome
    socket.onopen = () => {
      for (const message of messages) socket.send(message as string);
      if (messages.length === 0) socket.close(closeCode, closeReason);
    };
    socket.onmessage = (event) => {
      received.push(toMessage(event));
      if (received.length === messages.length) {
        socket.close(closeCode, closeReason);
      }
    };
    socket.onclose = (event) =>
      resolve({
        received,
        protocol: socket.protocol,
        closeCode: event.code,
        closeReason: event.reason,
      });
    return within(promise, options.timeoutMs ?? 15_000, `${name} client`)
      .catch((error) => {
        socket.close();
        throw error;
      });
  };
}

const denoClient: ClientPeer = eventClient(
  "Deno WebSocket",
  (url, protocols) => {
    const socket = new WebSocket(url, protocols);
    socket.binaryType = "arraybuffer";
    return {
      socket,
      toMessage: (event) =>
        typeof event.data === "string"
          ? event.data
          : new Uint8Array(event.data as ArrayBuffer),
    };
  },
);

const wsClient: ClientPeer = eventClient("npm ws", (url, protocols) => {
  const socket = new WsWebSocket(url, protocols, { maxPayload: 64 << 20 });
  socket.binaryType = "arraybuffer";
  return {
    socket,
    toMessage: (event) =>
      typeof event.data === "string"
        ? event.data
        : new Uint8Array(event.data as ArrayBuffer),
  };
});

const pythonClient: ClientPeer = async (url, messages, options = {}) => {
  try {
    const result = await runPythonClient(url, messages, {
      ...options,
      timeoutMs: options.timeoutMs ?? 15_000,
    });
    return {
      received: result.received,
      protocol: result.subprotocol ?? "",
      closeCode: result.closeCode,
      closeReason: result.closeReason,
    };
  } catch (error) {
    // echo_client.py waits for a reply to each message; when the server
    // closes instead, websockets 10.4 raises ConnectionClosedOK, whose
    // message carries the Close frame it received:
    // "received 4002 (private use) later; then sent 4002 (private use) later".
    const match = String(error).match(
      /ConnectionClosed\w*: received (\d+) \([^)]*\)(?: ([^;]*))?;/,
    );
    if (!match) throw error;
    return {
      received: [],
      protocol: "",
      closeCode: Number(match[1]),
      closeReason: match[2] ?? "",
    };
  }
};

function chromiumClient(page: BrowserPage): ClientPeer {
  return async (url, messages, options = {}) => {
    const result = await browserEcho(page, url, messages, {
      ...options,
      timeoutMs: options.timeoutMs ?? 15_000,
    });
    return result;
  };
}

/** Our servers for one client peer: one with keep-alive, one without. */
interface OurServers {
  /** `ws://127.0.0.1:PORT`, for a page URL. */
  url: string;
  /** The step connections are tagged with (`?step=`), see {@linkcode CloseLog.startStep}. */
  step: string;
  /** Routes: /echo echoes; /close-4002 closes with 4002 "later" on the first message. */
  at(path: string): string;
  /** Echoes each message after 300 ms, pinging every 50 ms meanwhile; a Pong missing for 250 ms fails the socket (1006). */
  keepAliveAt(): string;
  /** How each connection ended and its protocol, as our server saw it. */
  closes: CloseLog;
  shutdown(): Promise<void>;
}

function startOurServers(): OurServers {
  const closes = new CloseLog();
  const record = async (socket: WebSocketConnection, request: Request) => {
    const { closeCode, reason, wasClean } = await socket.closed;
    // A close that was not clean is reported as 1006 whatever the code.
    closes.push({
      code: wasClean ? closeCode : 1006,
      reason,
      protocol: socket.protocol,
      step: stepOf(request.url),
    });
  };
  const main = serve({
    hostname: "127.0.0.1",
    port: 0,
    compression: false,
    protocols: ["chat"],
    // A page for Chromium to open, so its WebSocket has an origin.
    fallback: () =>
      new Response("<!doctype html><title>socket interop</title>", {
        headers: { "content-type": "text/html" },
      }),
  }, async (socket, request) => {
    const path = new URL(request.url).pathname;
    if (path === "/close-4002") {
      const reader = socket.readable.getReader();
      await reader.read();
      reader.releaseLock();
      socket.close({ closeCode: 4002, reason: "later" });
    } else {
      await socket.readable.pipeTo(socket.writable).catch(() => {});
    }
    await record(socket, request);
  });
  const keepAlive = serve({
    hostname: "127.0.0.1",
    port: 0,
    compression: false,
    pingIntervalMs: 50,
    pongTimeoutMs: 250,
  }, async (socket, request) => {
    await socket.readable.pipeThrough(
      new TransformStream({
        async transform(message, controller) {
          // Also a Ping with a payload of our own between the keep-alive ones.
          socket.ping(new TextEncoder().encode("are you there?"));
          await delay(300);
          controller.enqueue(message);
        },
      }),
    ).pipeTo(socket.writable).catch(() => {});
    await record(socket, request);
  });
  return {
    url: `ws://127.0.0.1:${main.addr.port}`,
    step: "",
    at(path) {
      return `ws://127.0.0.1:${main.addr.port}${path}?step=${this.step}`;
    },
    keepAliveAt() {
      return `ws://127.0.0.1:${keepAlive.addr.port}/?step=${this.step}`;
    },
    closes,
    async shutdown() {
      await Promise.all([main.shutdown(), keepAlive.shutdown()]);
    },
  };
}

/** The client saw a clean close with this code (and reason). */
function assertClientClosed(
  result: ClientResult,
  closeCode: number,
  reason = "",
): void {
  assertEquals(
    [result.closeCode, result.closeReason, result.wasClean ?? true],
    [closeCode, reason, true],
  );
}

let stepCount = 0;

/** t.step, with the step's connections tagged (`?step=N`) and told apart. */
function stepper(
  t: Deno.TestContext,
  servers: OurServers,
): (name: string, fn: () => Promise<void>) => Promise<boolean> {
  return (name, fn) =>
    t.step(name, () => {
      servers.step = String(++stepCount);
      servers.closes.startStep(servers.step);
      return fn();
    });
}

/** Every scenario, as steps of one test per client peer. */
async function runScenarios(
  t: Deno.TestContext,
  client: ClientPeer,
  servers: OurServers,
): Promise<void> {
  const echoUrl = () => servers.at("/echo");
  const step = stepper(t, servers);

  await step(
    "text and binary of 0, 1, 125, 126, 65535, 65536 and 1 MiB bytes",
    async () => {
      const sent = sizedMessages();
      const result = await client(echoUrl(), sent, { timeoutMs: 30_000 });
      assertSameMessages(result.received, sent);
      assertClientClosed(result, 1000);
      assertEquals((await servers.closes.next()).code, 1000);
    },
  );

  await step(
    "multi-byte UTF-8: 2-, 3-, 4-byte characters, emoji, BOM",
    async () => {
      const sent = utf8Messages();
      const result = await client(echoUrl(), sent);
      assertSameMessages(result.received, sent);
      assertClientClosed(result, 1000);
      assertEquals((await servers.closes.next()).code, 1000);
    },
  );

  await step("1,000 pipelined messages arrive in order", async () => {
    const sent = pipelinedMessages();
    const result = await client(echoUrl(), sent);
    assertSameMessages(result.received, sent);
    assertClientClosed(result, 1000);
    assertEquals((await servers.closes.next()).code, 1000);
  });

  await step(
    'subprotocol: client offers ["a", "chat"], server picks "chat"',
    async () => {
      const result = await client(echoUrl(), ["hi"], {
        protocols: ["a", "chat"],
      });
      assertEquals(result.protocol, "chat");
      assertEquals(result.received, ["hi"]);
      const seen = await servers.closes.next();
      assertEquals([seen.code, seen.protocol], [1000, "chat"]);
    },
  );

  await step(
    'client closes with 4001 "bye": server sees it, echoes it',
    async () => {
      const result = await client(echoUrl(), [], {
        closeCode: 4001,
        closeReason: "bye",
      });
      assertClientClosed(result, 4001, "bye");
      const seen = await servers.closes.next();
      assertEquals([seen.code, seen.reason], [4001, "bye"]);
    },
  );

  await step(
    "client closes with the longest reason, 123 bytes of multi-byte UTF-8",
    async () => {
      const reason = LONGEST_REASON;
      const result = await client(echoUrl(), [], {
        closeCode: 4003,
        closeReason: reason,
      });
      assertClientClosed(result, 4003, reason);
      const seen = await servers.closes.next();
      assertEquals([seen.code, seen.reason], [4003, reason]);
    },
  );

  await step('server-initiated close with 4002 "later"', async () => {
    const result = await client(servers.at("/close-4002"), ["hello"]);
    assertEquals(result.received, []);
    assertClientClosed(result, 4002, "later");
    const seen = await servers.closes.next();
    assertEquals([seen.code, seen.reason], [4002, "later"]);
  });

  await step(
    'shutdown() closes the client\'s socket with 1001 "server shutting down"',
    async () => {
      const received = Promise.withResolvers<void>();
      // Reads without answering: the client waits until the shutdown.
      const server = serve(
        { hostname: "127.0.0.1", port: 0, compression: false },
        async (socket) => {
          for await (const _ of socket.readable) received.resolve();
        },
      );
      try {
        const result = client(`ws://127.0.0.1:${server.addr.port}/`, [
          "hello",
        ]);
        await within(received.promise, 10_000, "the message reaching us");
        await within(server.shutdown(), 10_000, "shutdown()");
        const seen = await result;
        assertEquals(seen.received, []);
        assertClientClosed(seen, 1001, "server shutting down");
      } finally {
        await server.shutdown();
      }
    },
  );

  await step(
    "the client answers our pings (keep-alive every 50 ms, pong timeout 250 ms, for 600 ms)",
    async () => {
      const sent: PeerMessage[] = ["one", new Uint8Array([1, 2, 3])];
      const result = await client(servers.keepAliveAt(), sent);
      assertSameMessages(result.received, sent);
      assertClientClosed(result, 1000);
      // A missing Pong would have failed our socket (1006) before the echoes.
      assertEquals((await servers.closes.next()).code, 1000);
    },
  );
}

Deno.test("socket interop: Deno's built-in WebSocket client ⇄ our server", async (t) => {
  const servers = startOurServers();
  try {
    await runScenarios(t, denoClient, servers);
  } finally {
    await servers.shutdown();
  }
});

/** Resolves once an npm ws client is open (rejects on its error). */
function wsOpened(ws: WsWebSocket): Promise<unknown> {
  return within(
    new Promise((resolve, reject) => {
      ws.once("open", resolve);
      ws.once("error", reject);
    }),
    5000,
    "ws opening",
  );
}

/** Closes an npm ws client with 1000: the close code it ends with. */
function wsClosed(ws: WsWebSocket): Promise<number> {
  const closed = new Promise<number>((resolve) => ws.once("close", resolve));
  ws.close(1000);
  return within(closed, 5000, "ws closing");
}

Deno.test("socket interop: npm ws client ⇄ our server", async (t) => {
  const servers = startOurServers();
  try {
    await runScenarios(t, wsClient, servers);
    const step = stepper(t, servers);

    await step(
      "we answer ws's Ping with a Pong carrying the same payload",
      async () => {
        const ws = new WsWebSocket(servers.at("/echo"));
        try {
          await wsOpened(ws);
          for (
            const payload of [new Uint8Array(0), new Uint8Array(125).fill(7)]
          ) {
            const pong = within(
              new Promise<Buffer>((resolve) => ws.once("pong", resolve)),
              5000,
              "the Pong to ws's Ping",
            );
            ws.ping(Buffer.from(payload));
            assertEquals(new Uint8Array(await pong), payload);
          }
          assertEquals(await wsClosed(ws), 1000);
          assertEquals((await servers.closes.next()).code, 1000);
        } finally {
          ws.terminate();
        }
      },
    );

    await step(
      "our keep-alive Pings reach ws (about one per 50 ms)",
      async () => {
        const ws = new WsWebSocket(servers.keepAliveAt());
        try {
          const pings: string[] = [];
          ws.on("ping", (data: Buffer) => pings.push(data.toString("utf8")));
          await wsOpened(ws);
          const echoed = within(
            new Promise<Buffer>((resolve) => ws.once("message", resolve)),
            5000,
            "the delayed echo",
          );
          ws.send("one");
          assertEquals(String(await echoed), "one"); // after 300 ms
          // The handler's own Ping with a payload, and keep-alive ones.
          assert(pings.includes("are you there?"), JSON.stringify(pings));
          assert(pings.length >= 4, `ws received ${pings.length} Pings`);
          assertEquals(await wsClosed(ws), 1000);
          assertEquals((await servers.closes.next()).code, 1000);
        } finally {
          ws.terminate();
        }
      },
    );

    await step(
      "ws sends fragmented messages (split inside UTF-8 characters) with a Ping between the fragments",
      async () => {
        const ws = new WsWebSocket(servers.at("/echo"));
        try {
          await wsOpened(ws);
          const inbox: PeerMessage[] = [];
          ws.on("message", (data: Buffer, isBinary: boolean) => {
            inbox.push(isBinary ? new Uint8Array(data) : data.toString("utf8"));
          });
          const pong = within(
            new Promise<Buffer>((resolve) => ws.once("pong", resolve)),
            5000,
            "the Pong to a Ping between fragments",
          );
          const { text, bytes, cuts } = splitText();
          for (let i = 0; i + 1 < cuts.length; i++) {
            ws.send(Buffer.from(bytes.subarray(cuts[i], cuts[i + 1])), {
              binary: false,
              fin: i + 2 === cuts.length,
            });
            if (i === 0) ws.ping(Buffer.from("between fragments"));
          }
          const binary = randomBytes(70_000);
          ws.send(Buffer.from(binary.subarray(0, 1)), {
            binary: true,
            fin: false,
          });
          ws.send(Buffer.from(binary.subarray(1)), { binary: true, fin: true });
          assertEquals(String(await pong), "between fragments");
          await within(
            (async () => {
              while (inbox.length < 2) await delay(10);
            })(),
            5000,
            "the echoes of the fragmented messages",
          );
          assertSameMessages(inbox, [text, binary]);
          assertEquals(await wsClosed(ws), 1000);
          assertEquals((await servers.closes.next()).code, 1000);
        } finally {
          ws.terminate();
        }
      },
    );

    await step("ws receives our ping(payload) with its payload", async () => {
      const pinged = Promise.withResolvers<WebSocketConnection>();
      const server = serve(
        { hostname: "127.0.0.1", port: 0, compression: false },
        async (socket) => {
          pinged.resolve(socket);
          await socket.readable.pipeTo(socket.writable).catch(() => {});
        },
      );
      const ws = new WsWebSocket(`ws://127.0.0.1:${server.addr.port}/`);
      try {
        const ping = within(
          new Promise<Buffer>((resolve) => ws.once("ping", resolve)),
          5000,
          "ws receiving our Ping",
        );
        const socket = await within(pinged.promise, 5000, "the handler");
        socket.ping(new TextEncoder().encode("ping from wstream"));
        assertEquals(
          new TextDecoder().decode(await ping),
          "ping from wstream",
        );
        assertEquals(await wsClosed(ws), 1000);
      } finally {
        ws.terminate();
        await server.shutdown();
      }
    });
  } finally {
    await servers.shutdown();
  }
});

Deno.test("socket interop: Python websockets client ⇄ our server", async (t) => {
  if (
    !requirePeer(
      "python3-websockets",
      hasPython,
      "apt-get install python3-websockets",
    )
  ) return;
  const servers = startOurServers();
  try {
    await runScenarios(t, pythonClient, servers);
    const step = stepper(t, servers);

    await step(
      "we answer websockets' Pings with Pongs carrying the same payloads",
      async () => {
        // python/ping_client.py pings with "", "ping from python" and 125 ×
        // 0x09 and counts the Pongs whose payload matches (bounded at 10 s).
        const child = new Deno.Command(PYTHON, {
          args: [
            "-B",
            new URL("./python/ping_client.py", import.meta.url).pathname,
            servers.at("/echo"),
            "--timeout",
            "10",
          ],
          stdout: "piped",
          stderr: "piped",
        }).spawn();
        const killer = setTimeout(() => {
          try {
            child.kill("SIGKILL"); // its own PID only
          } catch {
            // already gone
          }
        }, 13_000);
        const output = await child.output().finally(() => clearTimeout(killer));
        const stdout = new TextDecoder().decode(output.stdout).trim();
        assertEquals(
          JSON.parse(stdout.split("\n").at(-1) || "{}"),
          { pongs: 3, close_code: 1000 },
          `ping_client.py: ${stdout} ${
            new TextDecoder().decode(output.stderr)
          }`,
        );
        assertEquals((await servers.closes.next()).code, 1000);
      },
    );
  } finally {
    await servers.shutdown();
  }
});

Deno.test("socket interop: headless Chromium ⇄ our server", async (t) => {
  if (!requirePeer("chromium", hasChromium, "apt-get install chromium")) {
    return;
  }
  const servers = startOurServers();
  try {
    await using browser = await launchChromium();
    const page = await browser.newPage();
    await page.goto(`${servers.url.replace("ws:", "http:")}/`);
    await runScenarios(t, chromiumClient(page), servers);
  } finally {
    await servers.shutdown();
  }
});
