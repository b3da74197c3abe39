// Our client (connect(), compression off) against real servers: Deno.serve
// with Deno.upgradeWebSocket, npm ws's WebSocketServer and Python websockets
// (our own python/scenario_server.py, since echo_server.py only echoes). For
// each server: text and binary of 0 B … 1 MiB, multi-byte UTF-8, 1,000
// pipelined messages, subprotocol negotiation, close code and reason both
// ways (also the longest, 123-byte reason), a server-initiated close, and our
// keep-alive pings answered by the server. Then the server's Pings answered
// by us with the same payloads (ws, Python; Deno's idleTimeout), and from ws
// fragmented messages cut inside UTF-8 characters with a Ping between the
// fragments. Every connection's URL carries ?step=N, so what the server saw
// is matched to the step that opened it. Compression: deflate_interop_test.ts.

import { assert, assertEquals } from "@std/assert";
// npm ws ships no types (its module is `any` here). It is a test-only peer,
// so it is not in deno.json's imports.
// deno-lint-ignore no-import-prefix
import { WebSocketServer } from "npm:ws@8.23.0";
import { Buffer } from "node:buffer";
import { connect, type ConnectOptions } from "../../src/client.ts";
import type { WebSocketConnection } from "../../src/connection.ts";
import {
  type PeerMessage,
  PYTHON,
  pythonWebsocketsAvailable,
  requirePeer,
} from "./_peers.ts";
import {
  assertSameMessages,
  CloseLog,
  delay,
  LONGEST_REASON,
  type PeerClose,
  pipelinedMessages,
  randomBytes,
  sizedMessages,
  splitText,
  stepOf,
  utf8Messages,
  within,
} from "./_socket_scenarios.ts";

const hasPython = await pythonWebsocketsAvailable();

/**
 * A server peer. Paths: /echo echoes; /close-4002 closes with 4002 "later"
 * as soon as the socket opens. It accepts the
 * subprotocol "chat" when offered.
 */
interface ServerPeer {
  /** `ws://127.0.0.1:PORT` (no trailing slash). */
  url: string;
  /** The step connections are tagged with (`?step=`), see {@linkcode CloseLog.startStep}. */
  step: string;
  /** The payloads of the Pings the server received (when it can tell). */
  pings?: Uint8Array[];
  /** Each connection's end as the server saw it, in order. */
  nextClose(): Promise<PeerClose>;
  /** Starts a step: see {@linkcode CloseLog.startStep}. */
  startStep(step: string): void;
  stop(): Promise<void>;
}

function startDenoServer(): ServerPeer {
  const closes = new CloseLog();
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen: () => {},
  }, (request) => {
    const path = new URL(request.url).pathname;
    const offered = (request.headers.get("sec-websocket-protocol") ?? "")
      .split(",").map((name) => name.trim());
    const { socket, response } = Deno.upgradeWebSocket(request, {
      ...(offered.includes("chat") ? { protocol: "chat" } : {}),
      // Deno pings every idleTimeout seconds and closes the socket (1001)
      // when no Pong came back.
      ...(path === "/idle" ? { idleTimeout: 1 } : {}),
    });
    socket.binaryType = "arraybuffer";
    socket.onopen = () => {
      if (path === "/close-4002") socket.close(4002, "later");
    };
    socket.onmessage = (event) => socket.send(event.data);
    socket.onerror = () => {};
    socket.onclose = (event) =>
      closes.push({
        code: event.wasClean ? event.code : 1006,
        reason: event.reason,
        // Deno 2.9.6 leaves a server socket's `protocol` "" even after
        // choosing one: report what went into the 101 response instead.
        protocol: response.headers.get("sec-websocket-protocol") ?? "",
        step: stepOf(request.url),
      });
    return response;
  });
  return {
    url: `ws://127.0.0.1:${server.addr.port}`,
    nextClose: () => closes.next(),
    step: "",
    startStep: (step) => closes.startStep(step),
    stop: () => server.shutdown(),
  };
}

/** What the ws server at /fragmented sends second, in two fragments. */
const FRAGMENTED_BINARY = randomBytes(70_000);

async function startWsServer(): Promise<ServerPeer & { pongs: Buffer[] }> {
  const closes = new CloseLog();
  const pongs: Buffer[] = [];
  const pings: Uint8Array[] = [];
  const server = new WebSocketServer({
    host: "127.0.0.1",
    port: 0,
    maxPayload: 64 << 20,
    handleProtocols: (protocols: Set<string>) =>
      protocols.has("chat") ? "chat" : false,
  });
  await within(
    new Promise((resolve) => server.once("listening", resolve)),
    5000,
    "ws server listening",
  );
  // deno-lint-ignore no-explicit-any
  server.on("connection", (ws: any, request: any) => {
    const path = new URL(request.url, "ws://localhost").pathname;
    ws.on("message", (data: Buffer, isBinary: boolean) => {
      ws.send(data, { binary: isBinary });
    });
    ws.on("pong", (data: Buffer) => pongs.push(data));
    ws.on("ping", (data: Buffer) => pings.push(new Uint8Array(data)));
    ws.on("close", (code: number, reason: Buffer) =>
      closes.push({
        code,
        reason: reason.toString("utf8"),
        protocol: ws.protocol,
        step: stepOf(request.url),
      }));
    if (path === "/close-4002") ws.close(4002, "later");
    if (path === "/fragmented") {
      // Text cut inside multi-byte characters with a Ping between the
      // fragments, then binary in two fragments.
      const { bytes, cuts } = splitText();
      for (let i = 0; i + 1 < cuts.length; i++) {
        ws.send(Buffer.from(bytes.subarray(cuts[i], cuts[i + 1])), {
          binary: false,
          fin: i + 2 === cuts.length,
        });
        if (i === 0) ws.ping(Buffer.from("between fragments"));
      }
      ws.send(Buffer.from(FRAGMENTED_BINARY.subarray(0, 1)), {
        binary: true,
        fin: false,
      });
      ws.send(Buffer.from(FRAGMENTED_BINARY.subarray(1)), {
        binary: true,
        fin: true,
      });
    }
    if (path === "/ping") {
      ws.ping(Buffer.alloc(0));
      ws.ping(Buffer.from("ping from ws"));
      ws.ping(Buffer.alloc(125, 9));
    }
  });
  return {
    url: `ws://127.0.0.1:${server.address().port}`,
    pongs,
    pings,
    nextClose: () => closes.next(),
    step: "",
    startStep: (step) => closes.startStep(step),
    stop: () => {
      // ws's close() waits for its clients: end any a failed test left.
      for (const client of server.clients) client.terminate();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Splits a byte stream into JSON lines, calling onLine for each. */
async function readJsonLines(
  stream: ReadableStream<Uint8Array>,
  onLine: (value: Record<string, unknown>) => void,
): Promise<void> {
  let buffered = "";
  for await (const text of stream.pipeThrough(new TextDecoderStream())) {
    buffered += text;
    let newline;
    while ((newline = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, newline).trim();
      buffered = buffered.slice(newline + 1);
      if (line) onLine(JSON.parse(line));
    }
  }
}

/**
 * Starts python/scenario_server.py (echo, /close-4002 and /ping, like the
 * other servers here). It exits when its stdin closes; `stop()` closes it and
 * kills the child's own PID if it lingers.
 */
async function startPythonServer(): Promise<ServerPeer> {
  const child = new Deno.Command(PYTHON, {
    args: [
      "-B",
      new URL("./python/scenario_server.py", import.meta.url).pathname,
      "--lifetime",
      "120",
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const closes = new CloseLog();
  const listening = Promise.withResolvers<number>();
  const reading = readJsonLines(child.stdout, (line) => {
    if (line.event === "listening") listening.resolve(line.port as number);
    if (line.event === "closed") {
      closes.push({
        code: line.code as number | null,
        reason: line.reason as string | null,
        protocol: (line.subprotocol as string | null) ?? "",
        step: stepOf(line.path as string),
      });
    }
  });
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    stopped ??= (async () => {
      await child.stdin.close().catch(() => {});
      const killer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch {
          // already gone
        }
      }, 3000);
      await child.status.finally(() => clearTimeout(killer));
      await reading;
    })();
  try {
    const port = await within(
      Promise.race([
        listening.promise,
        child.status.then((status) => {
          throw new Error(
            `scenario_server.py exited with code ${status.code} before listening`,
          );
        }),
      ]),
      10_000,
      "scenario_server.py listening",
    );
    return {
      url: `ws://127.0.0.1:${port}`,
      nextClose: () => closes.next(),
      step: "",
      startStep: (step) => closes.startStep(step),
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** url + path, tagged with the current step. */
function at(server: ServerPeer, path: string): string {
  return `${server.url}${path}?step=${server.step}`;
}

function open(
  url: string,
  options: ConnectOptions = {},
): Promise<WebSocketConnection> {
  return within(
    connect(url, { compression: false, ...options }),
    5000,
    `connecting to ${url}`,
  );
}

/** Sends every message while reading the replies (so neither side stalls). */
async function echo(
  socket: WebSocketConnection,
  sent: PeerMessage[],
): Promise<PeerMessage[]> {
  const writer = socket.writable.getWriter();
  const reader = socket.readable.getReader();
  const writing = (async () => {
    for (const message of sent) {
      await writer.write(message as string | Uint8Array<ArrayBuffer>);
    }
  })();
  const received: PeerMessage[] = [];
  const reading = (async () => {
    while (received.length < sent.length) {
      const { value, done } = await reader.read();
      if (done) break;
      received.push(value);
    }
  })();
  await within(Promise.all([writing, reading]), 30_000, "the echoes");
  writer.releaseLock();
  reader.releaseLock();
  return received;
}

/** Closes with 1000 and checks both sides saw a clean 1000. */
async function closeNormally(
  socket: WebSocketConnection,
  server: ServerPeer,
): Promise<void> {
  socket.close();
  const closed = await within(socket.closed, 7000, "our socket closing");
  assertEquals([closed.closeCode, closed.wasClean], [1000, true]);
  assertEquals((await server.nextClose()).code, 1000);
}

let stepCount = 0;

/** t.step, with the step's connections tagged (`?step=N`) and told apart. */
function stepper(
  t: Deno.TestContext,
  server: ServerPeer,
): (name: string, fn: () => Promise<void>) => Promise<boolean> {
  return (name, fn) =>
    t.step(name, () => {
      server.step = String(++stepCount);
      server.startStep(server.step);
      return fn();
    });
}

async function runScenarios(
  t: Deno.TestContext,
  server: ServerPeer,
): Promise<void> {
  const echoUrl = () => at(server, "/echo");
  const step = stepper(t, server);

  await step(
    "text and binary of 0, 1, 125, 126, 65535, 65536 and 1 MiB bytes",
    async () => {
      const socket = await open(echoUrl());
      const sent = sizedMessages();
      assertSameMessages(await echo(socket, sent), sent);
      await closeNormally(socket, server);
    },
  );

  await step(
    "multi-byte UTF-8: 2-, 3-, 4-byte characters, emoji, BOM",
    async () => {
      const socket = await open(echoUrl());
      const sent = utf8Messages();
      assertSameMessages(await echo(socket, sent), sent);
      await closeNormally(socket, server);
    },
  );

  await step("1,000 pipelined messages arrive in order", async () => {
    const socket = await open(echoUrl());
    const sent = pipelinedMessages();
    assertSameMessages(await echo(socket, sent), sent);
    await closeNormally(socket, server);
  });

  await step(
    'subprotocol: we offer ["a", "chat"], the server picks "chat"',
    async () => {
      const socket = await open(echoUrl(), { protocols: ["a", "chat"] });
      assertEquals(socket.protocol, "chat");
      assertEquals(socket.extensions, "");
      assertEquals(await echo(socket, ["hi"]), ["hi"]);
      socket.close();
      await within(socket.closed, 7000, "our socket closing");
      const seen = await server.nextClose();
      assertEquals([seen.code, seen.protocol], [1000, "chat"]);
    },
  );

  await step(
    'we close with 4001 "bye": the server sees it and echoes it',
    async () => {
      const socket = await open(echoUrl());
      socket.close({ closeCode: 4001, reason: "bye" });
      const closed = await within(socket.closed, 7000, "our socket closing");
      assertEquals(
        [closed.closeCode, closed.reason, closed.wasClean],
        [4001, "bye", true],
      );
      const seen = await server.nextClose();
      assertEquals([seen.code, seen.reason], [4001, "bye"]);
    },
  );

  await step(
    "we close with the longest reason, 123 bytes of multi-byte UTF-8",
    async () => {
      const socket = await open(echoUrl());
      socket.close({ closeCode: 4003, reason: LONGEST_REASON });
      const closed = await within(socket.closed, 7000, "our socket closing");
      assertEquals(
        [closed.closeCode, closed.reason, closed.wasClean],
        [4003, LONGEST_REASON, true],
      );
      const seen = await server.nextClose();
      assertEquals([seen.code, seen.reason], [4003, LONGEST_REASON]);
    },
  );

  await step('server-initiated close with 4002 "later"', async () => {
    const socket = await open(at(server, "/close-4002"));
    // readable ends at the server's Close, which our socket echoes
    // (RFC 6455 §5.5.1) without the app closing writable.
    const messages = await within(
      Array.fromAsync(socket.readable),
      5000,
      "readable ending at the server's Close",
    );
    assertEquals(messages, []);
    const closed = await within(socket.closed, 7000, "our socket closing");
    assertEquals(
      [closed.closeCode, closed.reason, closed.wasClean],
      [4002, "later", true],
    );
    const seen = await server.nextClose();
    assertEquals([seen.code, seen.reason], [4002, "later"]);
  });

  await step(
    "the server answers our pings (keep-alive every 50 ms, pong timeout 250 ms, for 600 ms)",
    async () => {
      const socket = await open(echoUrl(), {
        pingIntervalMs: 50,
        pongTimeoutMs: 250,
      });
      const pingsBefore = server.pings?.length ?? 0;
      socket.ping(new TextEncoder().encode("ping from wstream"));
      await delay(600);
      // A missing Pong would have failed the socket (1006) by now.
      assertEquals(await echo(socket, ["still open"]), ["still open"]);
      if (server.pings) {
        // The Pings really went out: ours, then about one per 50 ms.
        const pings = server.pings.slice(pingsBefore);
        assertEquals(
          new TextDecoder().decode(pings[0]),
          "ping from wstream",
        );
        assert(pings.length >= 5, `ws received ${pings.length} Pings`);
      }
      await closeNormally(socket, server);
    },
  );
}

Deno.test("socket interop: our client ⇄ Deno.serve + Deno.upgradeWebSocket", async (t) => {
  const server = startDenoServer();
  try {
    await runScenarios(t, server);
    const step = stepper(t, server);

    await step(
      "we answer Deno's idle-timeout pings (idleTimeout 1 s, for 2.5 s)",
      async () => {
        const socket = await open(at(server, "/idle"));
        await delay(2500);
        // Deno closes an idle socket whose Ping went unanswered with 1001.
        assertEquals(await echo(socket, ["still open"]), ["still open"]);
        await closeNormally(socket, server);
      },
    );
  } finally {
    await server.stop();
  }
});

Deno.test("socket interop: our client ⇄ npm ws WebSocketServer", async (t) => {
  const server = await startWsServer();
  try {
    await runScenarios(t, server);
    const step = stepper(t, server);

    await step(
      "we answer ws's Pings with Pongs carrying the same payloads",
      async () => {
        const socket = await open(at(server, "/ping"));
        // Reading is what processes incoming frames; a message after the
        // pings (echoed) shows they have been handled.
        assertEquals(await echo(socket, ["after the pings"]), [
          "after the pings",
        ]);
        await within(
          (async () => {
            while (server.pongs.length < 3) await delay(10);
          })(),
          5000,
          "ws receiving three Pongs",
        );
        assertEquals(server.pongs.map((pong) => new Uint8Array(pong)), [
          new Uint8Array(0),
          new TextEncoder().encode("ping from ws"),
          new Uint8Array(125).fill(9),
        ]);
        await closeNormally(socket, server);
      },
    );

    await step(
      "ws sends fragmented messages (split inside UTF-8 characters) with a Ping between the fragments",
      async () => {
        const pongsBefore = server.pongs.length;
        const socket = await open(at(server, "/fragmented"));
        const reader = socket.readable.getReader();
        const received: PeerMessage[] = [];
        for (let i = 0; i < 2; i++) {
          const { value } = await within(
            reader.read(),
            5000,
            "the fragmented messages",
          );
          received.push(value!);
        }
        reader.releaseLock();
        assertSameMessages(received, [splitText().text, FRAGMENTED_BINARY]);
        await within(
          (async () => {
            while (server.pongs.length === pongsBefore) await delay(10);
          })(),
          5000,
          "ws receiving the Pong",
        );
        assertEquals(
          String(server.pongs[pongsBefore]),
          "between fragments",
        );
        await closeNormally(socket, server);
      },
    );
  } finally {
    await server.stop();
  }
});

Deno.test("socket interop: our client ⇄ Python websockets server", async (t) => {
  if (
    !requirePeer(
      "python3-websockets",
      hasPython,
      "apt-get install python3-websockets",
    )
  ) return;
  const server = await startPythonServer();
  try {
    await runScenarios(t, server);
    const step = stepper(t, server);

    await step(
      "we answer websockets' Pings with Pongs carrying the same payloads",
      async () => {
        const socket = await open(at(server, "/ping"));
        const reader = socket.readable.getReader();
        const first = await within(
          reader.read(),
          20_000,
          "the server's message after its Pings",
        );
        reader.releaseLock();
        // The server sends this only after each of its three Pings (payloads
        // "", "ping from python", 125 × 0x09) got the Pong with its payload.
        assertEquals(first.value, "pongs received");
        assertEquals(await echo(socket, ["still open"]), ["still open"]);
        await closeNormally(socket, server);
      },
    );
  } finally {
    await server.stop();
  }
});
