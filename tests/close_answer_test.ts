/**
 * The answer to the peer's Close (RFC 6455 §5.5.1, §7.1.2) on real
 * connections, for sockets made by `serve()`, `handleUpgrade()` on
 * node:http, `upgrade()` in Deno.serve and `connect()`: an application that
 * never holds `writable` is answered without a timer; one that writes
 * after the Close, before the answer, still has its messages sent; one
 * that writes after the answer is told so.
 */

import {
  assert,
  assertEquals,
  assertInstanceOf,
  assertMatch,
} from "@std/assert";
import { createServer } from "node:http";
import { connect } from "../src/client.ts";
import type { WebSocketConnection } from "../src/connection.ts";
import type { Frame } from "../src/frame.ts";
import { handleUpgrade } from "../src/handle_upgrade.ts";
import { computeAccept } from "../src/handshake_key.ts";
import { serve } from "../src/server.ts";
import type { Socket } from "../src/socket.ts";
import { upgrade } from "../src/upgrade.ts";
import { concat, utf8 } from "./_codec_util.ts";
import { rawListener, readHead, writeText } from "./_raw_listener.ts";
import {
  describeFrames,
  rawClient,
  rawFrames,
  readHeadBytes,
} from "./_raw_ws_peer.ts";
import { maskedFrame, upgradeRequest, within } from "./_socket_util.ts";

const CLOSE = 0x8;
const TEXT = 0x1;
const CLOSE_1001 = new Uint8Array([0x03, 0xe9]);

/**
 * Counts the timers answerPeerClose() sets (its one-task wait for an
 * application that has not run yet) until disposed.
 */
function countAnswerTimers(): { readonly count: number } & Disposable {
  const original = globalThis.setTimeout;
  let count = 0;
  globalThis.setTimeout = ((...args: Parameters<typeof setTimeout>) => {
    if (new Error().stack?.includes("at answerPeerClose ")) count++;
    return original(...args);
  }) as typeof setTimeout;
  return {
    get count() {
      return count;
    },
    [Symbol.dispose]() {
      globalThis.setTimeout = original;
    },
  };
}

/** What an application did with its socket, to check once it is done. */
interface Outcome {
  readonly events: string[];
  lateWrite?: unknown;
}

/**
 * The applications under test. Each gets the socket, and `closeAnswered`,
 * which resolves once the peer has the socket's Close.
 */
const applications: Record<
  string,
  (socket: Socket, closeAnswered: Promise<void>, outcome: Outcome) => unknown
> = {
  // Reads every message and never touches `writable`.
  "only reads": async (socket, _answered, outcome) => {
    for await (const _ of socket.readable) outcome.events.push("message");
    outcome.events.push("readable ended");
  },
  // Returns at once: `readable` and `writable` are never used.
  "only logs": (_socket, _answered, outcome) => {
    outcome.events.push("returned");
  },
  // DESIGN.md: "when the peer sends Close, readable closes; closing
  // writable then completes the handshake".
  "writes after readable ends": async (socket, _answered, outcome) => {
    for await (const _ of socket.readable) outcome.events.push("message");
    const writer = socket.writable.getWriter();
    try {
      await writer.write("bye");
      await writer.close();
      outcome.events.push("closed writable");
    } catch (error) {
      outcome.lateWrite = error;
      outcome.events.push("late write failed");
    }
  },
  // Awaits something that takes longer than the answer, then writes.
  "awaits, then writes": async (socket, answered, outcome) => {
    for await (const _ of socket.readable) outcome.events.push("message");
    await answered;
    try {
      await socket.writable.getWriter().write("too late");
      outcome.events.push("late write sent");
    } catch (error) {
      outcome.lateWrite = error;
      outcome.events.push("late write failed");
    }
  },
};

/**
 * Checks an application's outcome and the frames its peer received.
 * `answersItself`: the socket answers the Close before the application
 * runs again (upgrade(): Deno's WebSocket does).
 */
function checkOutcome(
  name: string,
  outcome: Outcome,
  frames: Frame[],
  closeCode: number,
  answersItself = false,
): void {
  const sent = describeFrames(frames);
  if (answersItself && name === "writes after readable ends") {
    name = "awaits, then writes";
  }
  switch (name) {
    case "only reads":
      assertEquals(outcome.events, ["readable ended"]);
      assertEquals(sent, [`close ${closeCode}`]);
      break;
    case "only logs":
      assertEquals(outcome.events, ["returned"]);
      assertEquals(sent, [`close ${closeCode}`]);
      break;
    case "writes after readable ends":
      // Nothing written is lost: "bye", then the answer.
      assertEquals(outcome.events, ["closed writable"]);
      assertEquals(sent, ["text bye", `close ${closeCode}`]);
      break;
    case "awaits, then writes":
      // RFC 6455 §5.5.1: no data frame after our Close; the write says so.
      assertEquals(outcome.events, ["late write failed"]);
      assertInstanceOf(outcome.lateWrite, TypeError);
      assertMatch(String(outcome.lateWrite), /clos/);
      assertEquals(sent, [`close ${closeCode}`]);
      break;
  }
}

// Runs each application on a server whose handler `onSocket` is given the
// socket, and a raw client that sends Close 1001 once the handshake is
// done; `answerTimers` is whether the server may use close_answer.ts's
// timer (upgrade() sockets: Deno answers the Close itself).
async function runServerApplications(
  t: Deno.TestContext,
  start: (
    onSocket: (socket: Socket) => unknown,
  ) => Promise<{ port: number } & AsyncDisposable>,
  answersItself = false,
): Promise<void> {
  for (const [name, application] of Object.entries(applications)) {
    await t.step(name, async () => {
      const outcome: Outcome = { events: [] };
      const answered = Promise.withResolvers<void>();
      const handled = Promise.withResolvers<void>();
      await using server = await start((socket) => {
        const run = Promise.resolve(
          application(socket, answered.promise, outcome),
        );
        run.then(() => handled.resolve(), (error) => {
          outcome.events.push(`threw ${error}`);
          handled.resolve();
        });
        return run;
      });
      using timers = countAnswerTimers();
      const client = await rawClient(server.port);
      await client.send(maskedFrame(CLOSE, CLOSE_1001));
      await client.closeReceived;
      answered.resolve();
      const frames = await client.frames;
      await within(5000, handled.promise, "the application");
      checkOutcome(name, outcome, frames, 1001, answersItself);
      assertEquals(timers.count, 0, "the answer waited for a timer");
    });
  }
}

Deno.test("serve(): the peer's Close is answered without a timer when the handler does not hold writable, and what it writes after readable ends is sent first", async (t) => {
  await runServerApplications(t, (onSocket) => {
    const server = serve(
      { port: 0, hostname: "127.0.0.1", onListen() {} },
      (socket) => onSocket(socket) as Promise<void>,
    );
    return Promise.resolve({
      port: server.addr.port,
      [Symbol.asyncDispose]: () => server.shutdown(),
    });
  });
});

Deno.test("handleUpgrade() on node:http: the peer's Close is answered without a timer when the handler does not hold writable, and what it writes after readable ends is sent first", async (t) => {
  await runServerApplications(t, async (onSocket) => {
    const server = createServer();
    server.on("upgrade", (request, socket, head) => {
      handleUpgrade(
        request,
        socket,
        head,
        {},
        (ws) => onSocket(ws) as Promise<void>,
      );
    });
    await new Promise<void>((resolve) =>
      server.listen(0, "127.0.0.1", resolve)
    );
    return {
      port: (server.address() as { port: number }).port,
      async [Symbol.asyncDispose]() {
        server.closeAllConnections();
        await new Promise((resolve) => server.close(resolve));
      },
    };
  });
});

Deno.test("upgrade() in Deno.serve: the peer's Close is answered (by Deno) when the application does not hold writable, and a write after it fails clearly", async (t) => {
  await runServerApplications(t, (onSocket) => {
    const server = Deno.serve(
      { port: 0, hostname: "127.0.0.1", onListen() {} },
      (request) => {
        const { socket, response } = upgrade(request);
        onSocket(socket);
        return response;
      },
    );
    return Promise.resolve({
      port: server.addr.port,
      [Symbol.asyncDispose]: () => server.shutdown(),
    });
  }, true);
});

Deno.test("connect(): the server's Close is answered without a timer when the application does not hold writable, and what it writes after readable ends is sent first", async (t) => {
  for (const [name, application] of Object.entries(applications)) {
    await t.step(name, async () => {
      const received = Promise.withResolvers<Frame[]>();
      await using server = rawListener(async (conn) => {
        const head = await readHead(conn);
        const key = /sec-websocket-key: *(\S+)/i.exec(head)![1];
        const accept = await computeAccept(key);
        await writeText(
          conn,
          "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" +
            `Connection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
        );
        // The Close comes in a later read than the 101.
        await new Promise((resolve) => setTimeout(resolve, 20));
        const peer = rawFrames(conn, "server", new Uint8Array(0));
        await writeText(conn, new Uint8Array([0x88, 0x02, 0x03, 0xe9]));
        // RFC 6455 §7.1.1: the server ends TCP once it has the answer.
        await within(5000, peer.closeReceived, "the client's Close");
        conn.closeWrite();
        received.resolve(await peer.frames);
      });
      using timers = countAnswerTimers();
      const socket = await connect(`ws://127.0.0.1:${server.port}/`);
      const outcome: Outcome = { events: [] };
      const answered = Promise.withResolvers<void>();
      const run = Promise.resolve(
        application(socket, answered.promise, outcome),
      );
      const frames = await within(5000, received.promise, "the server");
      answered.resolve();
      await within(5000, run, "the application");
      checkOutcome(name, outcome, frames, 1001);
      assertEquals((await socket.closed).closeCode, 1001);
      assertEquals(timers.count, 0, "the answer waited for a timer");
    });
  }
});

Deno.test("serve(): messages a released writer left pending when the peer's Close arrived are sent before the answer", async () => {
  const big = 1024 * 1024;
  const outcome: Outcome = { events: [] };
  const handled = Promise.withResolvers<void>();
  await using server = serve(
    { port: 0, hostname: "127.0.0.1", onListen() {} },
    async (socket: WebSocketConnection) => {
      try {
        for await (const _ of socket.readable) {
          // Not awaited, and the writable let go at once: the second
          // message waits in the stream while the first is written.
          const writer = socket.writable.getWriter();
          writer.write(new Uint8Array(big)).then(
            () => outcome.events.push("first sent"),
            () => outcome.events.push("first failed"),
          );
          writer.write(new Uint8Array(big)).then(
            () => outcome.events.push("second sent"),
            () => outcome.events.push("second failed"),
          );
          writer.releaseLock();
        }
        handled.resolve();
      } catch (error) {
        handled.reject(error);
      }
    },
  );
  const client = await rawClient(server.addr.port);
  // The message and the Close in one write: both arrive in one read.
  await client.send(
    concat([maskedFrame(TEXT, utf8("go")), maskedFrame(CLOSE, CLOSE_1001)]),
  );
  const frames = await client.frames;
  await within(5000, handled.promise, "the handler");
  assertEquals(describeFrames(frames), [
    `binary ${big}`,
    `binary ${big}`,
    "close 1001",
  ]);
  assertEquals(outcome.events, ["first sent", "second sent"]);
});

Deno.test("serve(): a Close that came with the upgrade request still waits for a handler that pipes at once", async () => {
  await using server = serve(
    { port: 0, hostname: "127.0.0.1", onListen() {} },
    (socket) => socket.readable.pipeTo(socket.writable),
  );
  const conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: server.addr.port,
  });
  await writeText(
    conn,
    concat([
      utf8(upgradeRequest()),
      maskedFrame(TEXT, utf8("early")),
      maskedFrame(CLOSE, CLOSE_1001),
    ]),
  );
  const client = rawFrames(conn, "client", await readHeadBytes(conn));
  const frames = await client.frames;
  assert(frames.length === 2, describeFrames(frames).join(", "));
  assertEquals(describeFrames(frames), ["text early", "close 1001"]);
});
