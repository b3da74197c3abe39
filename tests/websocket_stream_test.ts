/**
 * Differential tests of `WebSocketStream`: every scenario is written once,
 * runs against Deno's built-in `WebSocketStream` and against wstream's on
 * the same server, and the observations must be equal. Where the built-in
 * departs from the WHATWG WebSocketStream explainer/specification draft,
 * wstream follows the specification and the test says so (and pins the
 * built-in's behaviour, so a change in Deno shows up here).
 *
 * Deno's `WebSocketStream` and `WebSocketError` need `--unstable-net`.
 * Without it the built-in half of each test is skipped with a warning
 * (a failure when `CI=true`), and wstream's half still runs.
 */

import { assert, assertEquals } from "@std/assert";
import { WebSocketError as WstreamWebSocketError } from "../src/websocket_error.ts";
import { WebSocketStream as WstreamWebSocketStream } from "../src/websocket_stream.ts";
import {
  bounded,
  readClientFrame,
  refusedUrl,
  serverTextFrame,
  startEchoServer,
  startRawServer,
  startTextThenViolationServer,
  type TestServer,
} from "./_whatwg_servers.ts";

/** What the scenarios use of a WebSocketStream. */
interface AnyWebSocketStream {
  readonly url: string;
  readonly opened: Promise<{
    readable: ReadableStream<string | Uint8Array>;
    writable: WritableStream<unknown>;
    protocol: string;
    extensions: string;
  }>;
  readonly closed: Promise<{ closeCode: number; reason: string }>;
  close(info?: { closeCode?: number; reason?: string }): void;
}

type ErrorClass = new (
  message?: string,
  init?: { closeCode?: number; reason?: string },
) => DOMException & { closeCode: number | null; reason: string };

interface Impl {
  name: "built-in" | "wstream";
  create(
    url: string | URL,
    options?: {
      protocols?: string[];
      signal?: AbortSignal;
      headers?: HeadersInit;
    },
  ): AnyWebSocketStream;
  WebSocketError: ErrorClass;
}

// deno-lint-ignore no-explicit-any
const globals = globalThis as any;
const builtInAvailable = typeof globals.WebSocketStream === "function" &&
  typeof globals.WebSocketError === "function";
const missingBuiltIn =
  'Deno\'s built-in WebSocketStream needs --unstable-net (deno.json: "unstable": ["net"], or the flag in the test task) to compare against it';
if (!builtInAvailable && Deno.env.get("CI") !== "true") {
  console.warn(
    `websocket_stream_test.ts: ${missingBuiltIn}; the built-in half of each test is skipped`,
  );
}

Deno.test("WebSocketStream: Deno's built-in WebSocketStream is there to compare against", () => {
  // Locally a missing built-in only skips the comparisons; in CI it fails.
  if (!builtInAvailable && Deno.env.get("CI") === "true") {
    throw new Error(missingBuiltIn);
  }
});

const builtIn: Impl = {
  name: "built-in",
  create: (url, options) => new globals.WebSocketStream(url, options),
  WebSocketError: globals.WebSocketError,
};
const wstream: Impl = {
  name: "wstream",
  create: (url, options) =>
    new WstreamWebSocketStream(url, options) as unknown as AnyWebSocketStream,
  WebSocketError: WstreamWebSocketError as unknown as ErrorClass,
};

// The echo server of the running test, so a failed attempt can be undone.
let activeServer: TestServer | undefined;

// Deno 2.9.6's WebSocketStream sometimes rejects `closed` (and the pending
// read) with a WebSocketError carrying the close reason as its message
// after a clean, client-initiated close; the server saw the handshake
// complete. Such runs of the built-in are retried.
function isBuiltInCloseRace(error: unknown): boolean {
  return builtInAvailable && error instanceof globals.WebSocketError &&
    String((error as Error).stack).includes("ext:deno_websocket");
}

/**
 * Runs a scenario on the built-in (when available), then on wstream, on
 * the same server. A built-in run that hits the built-in's close race is
 * retried (up to 5 times); wstream's run is never retried.
 */
async function both<T>(
  scenario: (impl: Impl) => Promise<T>,
): Promise<{ builtIn: T | undefined; wstream: T }> {
  let builtInResult: T | undefined;
  for (let attempt = 1; builtInAvailable; attempt++) {
    try {
      builtInResult = await scenario(builtIn);
      break;
    } catch (error) {
      if (!isBuiltInCloseRace(error) || attempt === 5) throw error;
      await activeServer?.discardCloses();
    }
  }
  return { builtIn: builtInResult, wstream: await scenario(wstream) };
}

/** Asserts the built-in's observation, when the built-in ran. */
function assertBuiltIn<T>(actual: T | undefined, expected: T): void {
  if (builtInAvailable) assertEquals(actual, expected);
}

async function withEchoServer(
  run: (server: TestServer) => Promise<void>,
): Promise<void> {
  const server = startEchoServer();
  activeServer = server;
  try {
    await run(server);
  } finally {
    activeServer = undefined;
    await server.shutdown();
  }
}

function typeOf(value: unknown): string {
  if (value === undefined) return "undefined";
  if (typeof value === "string") return "string";
  return (value as object).constructor.name;
}

function show(value: unknown): unknown {
  if (value instanceof Uint8Array) return [...value];
  return value;
}

/** A settled promise, described: its value, or its rejection's name. */
async function settle(promise: Promise<unknown>): Promise<unknown> {
  try {
    const value = await bounded(promise, "a promise to settle");
    return value === undefined ? "resolved" : value;
  } catch (error) {
    if (error instanceof Error && error.message.startsWith("timed out")) {
      throw error;
    }
    return `rejected: ${(error as Error).name} ${(error as Error).message}`;
  }
}

/** A rejection, described: its class, name, closeCode and reason. */
async function rejection(promise: Promise<unknown>): Promise<string> {
  try {
    await bounded(promise, "a promise to settle");
    return "resolved";
  } catch (error) {
    if (error instanceof Error && error.message.startsWith("timed out")) {
      throw error;
    }
    if (error instanceof DOMException) {
      const detail = "closeCode" in error
        ? ` closeCode=${(error as { closeCode: unknown }).closeCode}`
        : "";
      return `${error.name}${detail}`;
    }
    return typeOf(error);
  }
}

function errorName(run: () => unknown): string {
  try {
    run();
    return "no error";
  } catch (error) {
    return error instanceof DOMException
      ? `DOMException ${error.name}`
      : typeOf(error);
  }
}

Deno.test("WebSocketStream: opening: url, opened, protocol, extensions", async () => {
  await withEchoServer(async (server) => {
    const results = await both(async (impl) => {
      const wss = impl.create(server.url + "p?q=1", {
        protocols: ["chat", "superchat"],
      });
      const url = wss.url;
      const info = await bounded(wss.opened, "opened");
      const outcome = {
        url,
        keys: Object.keys(info).sort(),
        protocol: info.protocol,
        extensions: info.extensions,
        readable: info.readable instanceof ReadableStream,
        writable: info.writable instanceof WritableStream,
        sameOpened: (await wss.opened) === info,
      };
      wss.close();
      await bounded(wss.closed, "closed");
      await server.nextClose();
      return outcome;
    });
    assertBuiltIn(results.builtIn, results.wstream);
    assertEquals(results.wstream, {
      url: server.url + "p?q=1",
      keys: ["extensions", "protocol", "readable", "writable"],
      protocol: "chat",
      extensions: "",
      readable: true,
      writable: true,
      sameOpened: true,
    });
  });
});

Deno.test("WebSocketStream: text and Uint8Array echo", async () => {
  await withEchoServer(async (server) => {
    const results = await both(async (impl) => {
      const wss = impl.create(server.url);
      const { readable, writable } = await bounded(wss.opened, "opened");
      const writer = writable.getWriter();
      const reader = readable.getReader();
      const bytes = new Uint8Array([0, 1, 254, 255]);
      await writer.write("héllo ✓");
      await writer.write(bytes);
      await writer.write(bytes.subarray(1, 3));
      await writer.write("");
      const received = [];
      for (let index = 0; index < 4; index++) {
        const { value } = await bounded(reader.read(), "a message");
        received.push([typeOf(value), show(value)]);
      }
      wss.close({ closeCode: 1000 });
      const closed = await bounded(wss.closed, "closed");
      const end = await reader.read();
      await server.nextClose();
      return { received, closed, readableDone: end.done };
    });
    assertBuiltIn(results.builtIn, results.wstream);
    assertEquals(results.wstream, {
      received: [
        ["string", "héllo ✓"],
        ["Uint8Array", [0, 1, 254, 255]],
        ["Uint8Array", [1, 254]],
        ["string", ""],
      ],
      closed: { closeCode: 1000, reason: "" },
      readableDone: true,
    });
  });
});

Deno.test("WebSocketStream: any BufferSource is sent as binary, anything else as text", async () => {
  await withEchoServer(async (server) => {
    const results = await both(async (impl) => {
      const wss = impl.create(server.url);
      const { readable, writable } = await bounded(wss.opened, "opened");
      const reader = readable.getReader();
      const outcome: unknown[] = [];
      for (
        const chunk of [
          new Uint8Array([1, 2, 3]).buffer,
          new DataView(new Uint8Array([4, 5, 6]).buffer, 1, 2),
          new Uint16Array([0x0102]),
          42,
        ]
      ) {
        const writer = writable.getWriter();
        try {
          await writer.write(chunk);
          const { value } = await bounded(reader.read(), "a message");
          outcome.push([typeOf(value), show(value)]);
        } catch (error) {
          outcome.push(`write rejected: ${typeOf(error)}`);
          break;
        } finally {
          writer.releaseLock();
        }
      }
      wss.close();
      await bounded(wss.closed, "closed").catch(() => {});
      await server.nextClose();
      return outcome;
    });
    // The specification's write algorithm: a BufferSource is sent as
    // binary, anything else is converted to a USVString and sent as text.
    assertEquals(results.wstream, [
      ["Uint8Array", [1, 2, 3]],
      ["Uint8Array", [5, 6]],
      ["Uint8Array", [...new Uint8Array(new Uint16Array([0x0102]).buffer)]],
      ["string", "42"],
    ]);
    // The built-in takes only strings and Uint8Arrays and errors the
    // writable (and so the connection) on anything else.
    assertBuiltIn(results.builtIn, ["write rejected: TypeError"]);
  });
});

Deno.test("WebSocketStream: close() with a code and reason, with none, and with a reason only", async () => {
  await withEchoServer(async (server) => {
    const results = await both(async (impl) => {
      const outcomes = [];
      for (
        const info of [
          { closeCode: 4000, reason: "bye ✓" },
          { closeCode: 1000 },
          undefined,
          {},
          { reason: "" },
          { reason: "reason only" },
        ]
      ) {
        const wss = impl.create(server.url);
        await bounded(wss.opened, "opened");
        wss.close(info);
        // A second close() does nothing.
        wss.close({ closeCode: 4999, reason: "ignored" });
        outcomes.push({
          info,
          closed: await bounded(wss.closed, "closed"),
          server: await server.nextClose(),
        });
      }
      return outcomes;
    });
    assertBuiltIn(results.builtIn, results.wstream);
    assertEquals(
      results.wstream.map(({ closed, server }) => [closed, server.code]),
      [
        [{ closeCode: 4000, reason: "bye ✓" }, 4000],
        [{ closeCode: 1000, reason: "" }, 1000],
        // No code: a Close frame without a body, reported as 1005.
        [{ closeCode: 1005, reason: "" }, 1005],
        [{ closeCode: 1005, reason: "" }, 1005],
        [{ closeCode: 1005, reason: "" }, 1005],
        // A reason without a code goes with 1000.
        [{ closeCode: 1000, reason: "reason only" }, 1000],
      ],
    );
  });
});

Deno.test("WebSocketStream: closing the writable, aborting it and cancelling the readable", async () => {
  await withEchoServer(async (server) => {
    const results = await both(async (impl) => {
      const cases: [
        string,
        (info: Awaited<AnyWebSocketStream["opened"]>) => Promise<void>,
      ][] = [
        ["writable.close()", (info) => info.writable.close()],
        ["writable.abort(reason)", (info) => info.writable.abort("no code")],
        [
          "writable.abort(WebSocketError)",
          (info) =>
            info.writable.abort(
              new impl.WebSocketError("stop", {
                closeCode: 4003,
                reason: "aborted",
              }),
            ),
        ],
        ["readable.cancel()", (info) => info.readable.cancel()],
        [
          "readable.cancel(WebSocketError with a reason only)",
          (info) =>
            info.readable.cancel(
              new impl.WebSocketError("stop", { reason: "reason only" }),
            ),
        ],
        [
          "readable.cancel(WebSocketError)",
          (info) =>
            info.readable.cancel(
              new impl.WebSocketError("stop", {
                closeCode: 4002,
                reason: "cancelled",
              }),
            ),
        ],
      ];
      const outcomes: Record<string, unknown> = {};
      for (const [name, end] of cases) {
        const wss = impl.create(server.url);
        const info = await bounded(wss.opened, "opened");
        const ended = await settle(end(info));
        outcomes[name] = {
          ended,
          closed: await settle(wss.closed),
          server: await server.nextClose(),
        };
      }
      return outcomes;
    });
    const abortCase = "writable.abort(WebSocketError)";
    if (results.builtIn) {
      // The built-in sometimes (about one run in four here) rejects abort()
      // and closed with a WebSocketError whose message is the close reason
      // ("aborted") although the closing handshake completed cleanly; the
      // server's view is always right.
      const flaky = results.builtIn[abortCase] as {
        ended: unknown;
        closed: unknown;
        server: unknown;
      };
      if (flaky.closed === "rejected: WebSocketError aborted") {
        assertEquals(flaky.server, {
          code: 4003,
          reason: "aborted",
          wasClean: true,
        });
        results.builtIn[abortCase] = results.wstream[abortCase];
      }
    }
    assertBuiltIn(results.builtIn, results.wstream);
    assertEquals(results.wstream, {
      "writable.close()": {
        ended: "resolved",
        closed: { closeCode: 1005, reason: "" },
        server: { code: 1005, reason: "", wasClean: true },
      },
      "writable.abort(reason)": {
        ended: "resolved",
        closed: { closeCode: 1005, reason: "" },
        server: { code: 1005, reason: "", wasClean: true },
      },
      "writable.abort(WebSocketError)": {
        ended: "resolved",
        closed: { closeCode: 4003, reason: "aborted" },
        server: { code: 4003, reason: "aborted", wasClean: true },
      },
      "readable.cancel()": {
        ended: "resolved",
        closed: { closeCode: 1005, reason: "" },
        server: { code: 1005, reason: "", wasClean: true },
      },
      "readable.cancel(WebSocketError with a reason only)": {
        ended: "resolved",
        // WHATWG WebSocketError: a reason without a code means 1000.
        closed: { closeCode: 1000, reason: "reason only" },
        server: { code: 1000, reason: "reason only", wasClean: true },
      },
      "readable.cancel(WebSocketError)": {
        ended: "resolved",
        closed: { closeCode: 4002, reason: "cancelled" },
        server: { code: 4002, reason: "cancelled", wasClean: true },
      },
    });
  });
});

Deno.test("WebSocketStream: the server closes with a code and reason, or with none", async () => {
  await withEchoServer(async (server) => {
    const results = await both(async (impl) => {
      const outcomes = [];
      for (const command of ["close 4001 server says bye", "close"]) {
        const wss = impl.create(server.url);
        const { readable, writable } = await bounded(wss.opened, "opened");
        const writer = writable.getWriter();
        await writer.write("before");
        await writer.write(command);
        const messages = [];
        for await (const message of readable) messages.push(message);
        const closed = await bounded(wss.closed, "closed");
        const lateWrite = await rejection(writer.write("late"));
        outcomes.push({
          closed,
          messages,
          lateWrite,
          server: await server.nextClose(),
        });
      }
      return outcomes;
    });
    assertBuiltIn(results.builtIn, results.wstream);
    assertEquals(results.wstream, [
      {
        closed: { closeCode: 4001, reason: "server says bye" },
        messages: ["before"],
        lateWrite: "TypeError",
        server: { code: 4001, reason: "server says bye", wasClean: true },
      },
      {
        closed: { closeCode: 1005, reason: "" },
        messages: ["before"],
        lateWrite: "TypeError",
        server: { code: 1005, reason: "", wasClean: true },
      },
    ]);
  });
});

Deno.test("WebSocketStream: closed settles when the server closes, with messages left unread", async () => {
  await withEchoServer(async (server) => {
    const results = await both(async (impl) => {
      const wss = impl.create(server.url);
      const { writable } = await bounded(wss.opened, "opened");
      const writer = writable.getWriter();
      // A message that nobody reads, then the server's Close.
      await writer.write("unread");
      await writer.write("close 4001 bye");
      const closed = await Promise.race([
        wss.closed,
        new Promise((resolve) => setTimeout(() => resolve("pending"), 500)),
      ]);
      // Unblock the built-in (see below) so it cleans up.
      if (closed === "pending") {
        await bounded((await wss.opened).readable.cancel(), "cancel");
      }
      await bounded(wss.closed, "closed").catch(() => {});
      return { closed, server: await server.nextClose() };
    });
    // The specification settles closed when the connection closes; the
    // server's Close is answered at once.
    assertEquals(results.wstream, {
      closed: { closeCode: 4001, reason: "bye" },
      server: { code: 4001, reason: "bye", wasClean: true },
    });
    // The built-in processes incoming frames only as the readable is read:
    // with a message unread, the Close behind it waits, and so do closed
    // and the answer to the server (sent, without a code, only when the
    // readable is cancelled).
    assertBuiltIn(results.builtIn, {
      closed: "pending",
      server: { code: 1005, reason: "", wasClean: true },
    });
  });
});

Deno.test("WebSocketStream: aborting the signal before opening rejects opened and closed with its reason", async () => {
  await withEchoServer(async (server) => {
    const results = await both(async (impl) => {
      const outcomes: Record<string, unknown> = {};
      // Aborted before construction.
      const reason = new Error("changed my mind");
      const early = impl.create(server.url, {
        signal: AbortSignal.abort(reason),
      });
      outcomes.alreadyAborted = [
        await early.opened.then(() => "resolved", (error) => error === reason),
        await early.closed.then(() => "resolved", (error) => error === reason),
      ];
      // Aborted while connecting.
      const controller = new AbortController();
      const late = impl.create(server.url, { signal: controller.signal });
      controller.abort();
      outcomes.whileConnecting = [
        await rejection(late.opened),
        await rejection(late.closed),
      ];
      // Aborted once open: no effect.
      const afterOpen = new AbortController();
      const open = impl.create(server.url, { signal: afterOpen.signal });
      await bounded(open.opened, "opened");
      afterOpen.abort();
      open.close({ closeCode: 4000 });
      outcomes.afterOpen = await bounded(open.closed, "closed");
      await server.nextClose();
      // Let the server see the aborted attempts end.
      await new Promise((resolve) => setTimeout(resolve, 50));
      return outcomes;
    });
    assertBuiltIn(results.builtIn, results.wstream);
    assertEquals(results.wstream, {
      alreadyAborted: [true, true],
      whileConnecting: ["AbortError", "AbortError"],
      afterOpen: { closeCode: 4000, reason: "" },
    });
  });
});

Deno.test("WebSocketStream: close() before opening rejects opened and closed", async () => {
  await withEchoServer(async (server) => {
    const results = await both(async (impl) => {
      const wss = impl.create(server.url);
      wss.close();
      const outcome = [
        await rejection(wss.opened),
        await rejection(wss.closed),
      ];
      await new Promise((resolve) => setTimeout(resolve, 50));
      return outcome;
    });
    // The specification fails the connection, so both reject with a
    // WebSocketError for an unclean close; wstream gives it the connection
    // close code 1006 (RFC 6455 §7.1.5).
    assertEquals(results.wstream, [
      "WebSocketError closeCode=1006",
      "WebSocketError closeCode=1006",
    ]);
    // The built-in's WebSocketError has no close code.
    assertBuiltIn(results.builtIn, [
      "WebSocketError closeCode=null",
      "WebSocketError closeCode=null",
    ]);
  });
});

Deno.test("WebSocketStream: a refused connection rejects opened and closed with a WebSocketError", async () => {
  const url = refusedUrl();
  const results = await both(async (impl) => {
    const wss = impl.create(url);
    return [await rejection(wss.opened), await rejection(wss.closed)];
  });
  assertEquals(results.wstream, [
    "WebSocketError closeCode=1006",
    "WebSocketError closeCode=1006",
  ]);
  // The built-in's WebSocketError has no close code.
  assertBuiltIn(results.builtIn, [
    "WebSocketError closeCode=null",
    "WebSocketError closeCode=null",
  ]);
});

Deno.test("WebSocketStream: a server that ends the TCP connection without a Close frame", async () => {
  const server = startRawServer(async (conn) => {
    await conn.write(serverTextFrame("hi"));
    // Then end the connection: no Close frame.
  });
  try {
    const results = await both(async (impl) => {
      const wss = impl.create(server.url);
      const { readable } = await bounded(wss.opened, "opened");
      const reader = readable.getReader();
      const first = await bounded(reader.read(), "a message");
      const next = await rejection(reader.read());
      const closed = await rejection(wss.closed);
      return { first: first.value, next, closed };
    });
    // RFC 6455 §7.1.5: no Close frame → close code 1006, an unclean close:
    // the specification rejects closed with a WebSocketError.
    assertEquals(results.wstream, {
      first: "hi",
      next: "WebSocketError closeCode=1006",
      closed: "WebSocketError closeCode=1006",
    });
    // The built-in's WebSocketError has no close code.
    assertBuiltIn(results.builtIn, {
      first: "hi",
      next: "WebSocketError closeCode=null",
      closed: "WebSocketError closeCode=null",
    });
  } finally {
    await server.shutdown();
  }
});

Deno.test("WebSocketStream: a text message that is not UTF-8 fails the connection", async () => {
  const answers: string[] = [];
  const server = startRawServer(async (conn) => {
    // A text frame with the invalid UTF-8 sequence C3 28.
    await conn.write(new Uint8Array([0x81, 0x02, 0xc3, 0x28]));
    const frame = await readClientFrame(conn);
    answers.push(
      frame === null
        ? "no frame"
        : frame.opcode === 0x8 && frame.payload.length >= 2
        ? `Close ${(frame.payload[0] << 8) | frame.payload[1]}`
        : `opcode ${frame.opcode}`,
    );
  });
  try {
    const results = await both(async (impl) => {
      const wss = impl.create(server.url);
      const { readable } = await bounded(wss.opened, "opened");
      let readError: unknown;
      let closedError: unknown;
      await readable.getReader().read().catch((error) => readError = error);
      await bounded(wss.closed, "closed").catch((error) => closedError = error);
      return {
        read: await rejection(Promise.reject(readError)),
        closed: await rejection(Promise.reject(closedError)),
        sameError: readError === closedError,
      };
    });
    await server.shutdown();
    // RFC 6455 §8.1, §7.1.7: fail the connection, sending Close 1007 first;
    // the connection closed without a closing handshake, so readable and
    // closed fail with one WebSocketError with the close code 1006.
    assertEquals(results.wstream, {
      read: "WebSocketError closeCode=1006",
      closed: "WebSocketError closeCode=1006",
      sameError: true,
    });
    // The built-in: no close code, and no Close frame to the peer.
    assertBuiltIn(results.builtIn, {
      read: "WebSocketError closeCode=null",
      closed: "WebSocketError closeCode=null",
      sameError: true,
    });
    assertEquals(
      answers,
      builtInAvailable ? ["no frame", "Close 1007"] : ["Close 1007"],
    );
  } finally {
    await server.shutdown();
  }
});

Deno.test("WebSocketStream: invalid URLs, subprotocols and close() arguments", async () => {
  await withEchoServer(async (server) => {
    const results = await both(async (impl) => {
      const url = server.url;
      const outcome: Record<string, string> = {};
      const attempts: [string, string, unknown?][] = [
        ["not a URL", "not a url"],
        ["ftp scheme", "ftp://127.0.0.1/"],
        ["fragment", url + "#fragment"],
        ["duplicate subprotocols", url, ["chat", "chat"]],
        ["duplicates differing in case", url, ["chat", "CHAT"]],
        ["protocols as a string", url, "chat"],
      ];
      for (const [name, target, protocols] of attempts) {
        outcome[name] = errorName(() =>
          impl.create(target, { protocols: protocols as string[] })
        );
      }
      const wss = impl.create(url);
      await bounded(wss.opened, "opened");
      const closeAttempts: [string, unknown][] = [
        ["closeCode 1001", { closeCode: 1001 }],
        ["closeCode 2999", { closeCode: 2999 }],
        ["closeCode 5000", { closeCode: 5000 }],
        ["closeCode 70000", { closeCode: 70000 }],
        ["closeCode NaN", { closeCode: NaN }],
        ["reason of 124 bytes", { closeCode: 1000, reason: "é".repeat(62) }],
        ["reason only, 124 bytes", { reason: "x".repeat(124) }],
      ];
      for (const [name, info] of closeAttempts) {
        outcome[name] = errorName(() =>
          wss.close(info as { closeCode?: number; reason?: string })
        );
      }
      wss.close({ closeCode: 4000, reason: "é".repeat(61) + "x" });
      outcome.closed = JSON.stringify(
        (await bounded(wss.closed, "closed")).closeCode,
      );
      await server.nextClose();
      return outcome;
    });
    const expected = {
      // WHATWG "get a URL record": a URL that does not parse is a
      // SyntaxError.
      "not a URL": "DOMException SyntaxError",
      "ftp scheme": "DOMException SyntaxError",
      "fragment": "DOMException SyntaxError",
      "duplicate subprotocols": "DOMException SyntaxError",
      "duplicates differing in case": "DOMException SyntaxError",
      // WebIDL: a string is not a sequence<USVString>.
      "protocols as a string": "TypeError",
      "closeCode 1001": "DOMException InvalidAccessError",
      "closeCode 2999": "DOMException InvalidAccessError",
      "closeCode 5000": "DOMException InvalidAccessError",
      // WebIDL [EnforceRange] unsigned short.
      "closeCode 70000": "TypeError",
      "closeCode NaN": "TypeError",
      "reason of 124 bytes": "DOMException SyntaxError",
      "reason only, 124 bytes": "DOMException SyntaxError",
      closed: "4000",
    };
    assertEquals(results.wstream, expected);
    // The built-in lets the URL parser's TypeError through.
    assertBuiltIn(results.builtIn, { ...expected, "not a URL": "TypeError" });
  });
});

Deno.test("WebSocketStream: http: and https: URLs are mapped to ws: and wss:", async () => {
  await withEchoServer(async (server) => {
    const results = await both(async (impl) => {
      const httpUrl = server.url.replace("ws:", "http:");
      let wss: AnyWebSocketStream;
      try {
        wss = impl.create(httpUrl);
      } catch (error) {
        return `threw ${(error as Error).name}`;
      }
      const url = wss.url;
      await bounded(wss.opened, "opened");
      wss.close();
      await bounded(wss.closed, "closed");
      await server.nextClose();
      return url;
    });
    // WHATWG "get a URL record": http: becomes ws:, https: becomes wss:.
    assertEquals(results.wstream, server.url);
    // The built-in still refuses every scheme but ws: and wss:.
    assertBuiltIn(results.builtIn, "threw SyntaxError");
  });
});

Deno.test("WebSocketStream: subprotocols that are not tokens throw SyntaxError", async () => {
  const url = refusedUrl();
  const results = await both((impl) => {
    const outcome: Record<string, string> = {};
    for (const protocol of ["a b", "", "a,b", "é"]) {
      let created: AnyWebSocketStream | undefined;
      outcome[JSON.stringify(protocol)] = errorName(() => {
        created = impl.create(url, { protocols: [protocol] });
      });
      // Let a connection attempt that did start fail quietly.
      created?.opened.catch(() => {});
      created?.closed.catch(() => {});
    }
    return Promise.resolve(outcome);
  });
  // The specification: "If any of the values in protocols ... fail to match
  // the requirements for elements that comprise the value of
  // Sec-WebSocket-Protocol fields ..., throw a SyntaxError".
  assertEquals(results.wstream, {
    '"a b"': "DOMException SyntaxError",
    '""': "DOMException SyntaxError",
    '"a,b"': "DOMException SyntaxError",
    '"é"': "DOMException SyntaxError",
  });
  // The built-in checks only for duplicates and accepts these.
  if (results.builtIn) {
    assert(
      Object.values(results.builtIn).some((name) => name === "no error"),
      `the built-in now refuses every invalid token: ${
        JSON.stringify(results.builtIn)
      }`,
    );
  }
  // The attempts the built-in started are refused by the closed port.
  await new Promise((resolve) => setTimeout(resolve, 100));
});

Deno.test("WebSocketStream: the headers option reaches the server", async () => {
  const seen: (string | null)[] = [];
  const server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen() {} },
    (request) => {
      seen.push(request.headers.get("authorization"));
      const { socket, response } = Deno.upgradeWebSocket(request);
      socket.onmessage = () => {};
      return response;
    },
  );
  try {
    // Deno's WebSocketStream takes `headers` too; wstream takes every
    // option of connect().
    await both(async (impl) => {
      const wss = impl.create(`ws://127.0.0.1:${server.addr.port}/`, {
        headers: { authorization: "Bearer token" },
      });
      await bounded(wss.opened, "opened");
      wss.close();
      await bounded(wss.closed, "closed");
    });
    assertEquals(
      seen,
      builtInAvailable ? ["Bearer token", "Bearer token"] : ["Bearer token"],
    );
  } finally {
    await server.shutdown();
  }
});

Deno.test(
  "WebSocketStream: abort() takes the runtime's own WebSocketError too",
  {
    ignore: !builtInAvailable,
  },
  async () => {
    await withEchoServer(async (server) => {
      const wss = new WstreamWebSocketStream(server.url);
      const { writable } = await bounded(wss.opened, "opened");
      // Code written for the built-in constructs the global WebSocketError.
      await writable.abort(
        new globals.WebSocketError("stop", {
          closeCode: 4005,
          reason: "global",
        }),
      );
      assertEquals(await bounded(wss.closed, "closed"), {
        closeCode: 4005,
        reason: "global",
      });
      assertEquals(await server.nextClose(), {
        code: 4005,
        reason: "global",
        wasClean: true,
      });
    });
  },
);

Deno.test("WebSocketError: the constructor fills closeCode and reason like the built-in one", () => {
  const inits = [
    undefined,
    {},
    { reason: "reason only" },
    { closeCode: 1000 },
    { closeCode: 4000, reason: "bye" },
  ];
  const describe = (impl: Impl) =>
    inits.map((init) => {
      const error = new impl.WebSocketError("message", init);
      return {
        name: error.name,
        message: error.message,
        closeCode: error.closeCode,
        reason: error.reason,
        isDOMException: error instanceof DOMException,
      };
    });
  const ours = describe(wstream);
  // The specification's values, whether or not the built-in is available.
  assertEquals(ours.map((e) => [e.closeCode, e.reason]), [
    [null, ""],
    [null, ""],
    [1000, "reason only"],
    [1000, ""],
    [4000, "bye"],
  ]);
  assert(ours.every((e) => e.isDOMException && e.name === "WebSocketError"));
  if (builtInAvailable) assertEquals(ours, describe(builtIn));
});

Deno.test("WebSocketStream: messages that arrived before a protocol error are read, and echoed, before the failure", async () => {
  // Autobahn 3.2 as a client.
  const server = startTextThenViolationServer();
  const peerSaw = server.peerSaw;
  try {
    const results = await both(async (impl) => {
      const wss = impl.create(server.url);
      const { readable, writable } = await bounded(wss.opened, "opened");
      const reader = readable.getReader();
      const writer = writable.getWriter();
      const read: string[] = [];
      let failure = "";
      // The application echoes each message with a read loop.
      try {
        while (true) {
          const { value, done } = await bounded(reader.read(), "a message");
          if (done) break;
          read.push(String(value));
          await writer.write(value);
        }
      } catch (error) {
        failure = await rejection(Promise.reject(error));
      }
      return { read, failure, closed: await rejection(wss.closed) };
    });
    await server.shutdown();
    // The text arrived whole before the violation: it is read first, then
    // readable fails (RFC 6455 §7.1.7: fail the connection; WHATWG: an
    // unclean close, so the WebSocketError has close code 1006).
    assertEquals(results.wstream, {
      read: ["Hello"],
      failure: "WebSocketError closeCode=1006",
      closed: "WebSocketError closeCode=1006",
    });
    // The echo goes out before our Close 1002, nothing after it, and the
    // ping after the violation is never answered.
    assertEquals(peerSaw.at(-1), ["text Hello", "Close 1002", "end"]);
    // The built-in reads the text too, but its write of the echo fails
    // (BadResource), and it ends the connection with no Close frame.
    assertBuiltIn(results.builtIn, {
      read: ["Hello"],
      failure: "BadResource",
      closed: "WebSocketError closeCode=null",
    });
    assertEquals(peerSaw.length, builtInAvailable ? 2 : 1);
    if (builtInAvailable) assertEquals(peerSaw[0], ["end"]);
  } finally {
    await server.shutdown();
  }
});
