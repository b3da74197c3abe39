import {
  assert,
  assertEquals,
  assertGreaterOrEqual,
  assertLessOrEqual,
  assertRejects,
  assertStringIncludes,
} from "@std/assert";
import {
  reconnecting,
  type RetryInfo,
  serve,
  type WebSocketConnection,
  WebSocketError,
  WebSocketHandshakeError,
} from "../mod.ts";
import { computeAccept } from "../src/handshake_key.ts";
import { rawListener, readHead, writeText } from "./_raw_listener.ts";
import { within } from "./_socket_util.ts";

/** Reads every message of a socket; a lost connection just ends it. */
async function drain(socket: WebSocketConnection): Promise<unknown[]> {
  const messages: unknown[] = [];
  try {
    for await (const message of socket.readable) messages.push(message);
  } catch {
    // Lost without a Close frame: the loop reconnects after 1006.
  }
  return messages;
}

/** A Deno.serve server answering with `answer(n)` for request n (0-based). */
function statusServer(answer: (n: number) => Response | undefined) {
  let requests = 0;
  const server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen() {} },
    (request) => {
      const response = answer(requests++);
      if (response) return response;
      const { socket, response: upgrade } = Deno.upgradeWebSocket(request);
      socket.onopen = () => {
        socket.send(`hello ${requests}`);
        socket.close(1000, "done");
      };
      return upgrade;
    },
  );
  return {
    url: `ws://127.0.0.1:${server.addr.port}/`,
    get requests() {
      return requests;
    },
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

const FAST = { initialDelayMs: 20, maxDelayMs: 200, proxy: false } as const;

Deno.test("reconnecting(): a server that restarts is reconnected to, refusals retried in between", async () => {
  const port = freePort();
  const url = `ws://127.0.0.1:${port}/`;
  let generation = 0;
  const start = () =>
    serve({ port, hostname: "127.0.0.1" }, async (socket) => {
      const writer = socket.writable.getWriter();
      await writer.write(`generation ${generation}`);
      if (generation === 2) await writer.close(); // 1000: the loop ends
    });
  generation = 1;
  let server = start();
  const retries: RetryInfo[] = [];
  const seen: unknown[][] = [];
  const loop = (async () => {
    for await (
      const socket of reconnecting(url, {
        ...FAST,
        onRetry: (info) => void retries.push(info),
      })
    ) {
      const reader = socket.readable.getReader();
      const first = await reader.read();
      reader.releaseLock();
      if (seen.length === 0) {
        // Restart the server: shutdown() closes with 1001, then the port is
        // closed for 150 ms (connections refused), then it listens again.
        await server.shutdown();
        await new Promise((resolve) => setTimeout(resolve, 150));
        generation = 2;
        server = start();
      }
      seen.push([first.value, ...await drain(socket)]);
      const { closeCode } = await socket.closed;
      if (seen.length === 1) assertEquals(closeCode, 1001);
    }
  })();
  await within(5000, loop, "the reconnecting loop");
  await server.shutdown();
  assertEquals(seen, [["generation 1"], ["generation 2"]]);
  // The 1001 close, then connection refused while it was down (or none
  // if a retry landed after the restart).
  assertEquals(retries[0].error instanceof WebSocketError, true);
  assertEquals((retries[0].error as WebSocketError).closeCode, 1001);
  for (const retry of retries.slice(1)) {
    const error = retry.error as WebSocketHandshakeError;
    assert(error instanceof WebSocketHandshakeError);
    assertStringIncludes(error.message, "could not connect");
    assertEquals(error.transient, true);
  }
  assertEquals(retries.map((r) => r.attempt), retries.map((_, i) => i + 1));
});

Deno.test("reconnecting(): nothing listening, maxRetries 2: three attempts, then the last error is thrown", async () => {
  const url = `ws://127.0.0.1:${freePort()}/`;
  const retries: RetryInfo[] = [];
  const error = await within(
    3000,
    assertRejects(async () => {
      for await (
        const _ of reconnecting(url, {
          ...FAST,
          maxRetries: 2,
          onRetry: (i) => void retries.push(i),
        })
      ) {
        throw new Error("expected no socket");
      }
    }, WebSocketHandshakeError),
    "giving up",
  );
  assertStringIncludes(
    (error as WebSocketHandshakeError).message,
    "could not connect to 127.0.0.1:",
  );
  assertEquals(retries.map((r) => r.attempt), [1, 2]);
  // Jittered between half and all of 20 ms, then of 40 ms.
  assert(
    retries[0].delayMs >= 10 && retries[0].delayMs <= 20,
    `${retries[0].delayMs}`,
  );
  assert(
    retries[1].delayMs >= 20 && retries[1].delayMs <= 40,
    `${retries[1].delayMs}`,
  );
});

Deno.test("reconnecting(): 503 then 101, 429 retried too", async () => {
  await using server = statusServer((n) =>
    n === 0
      ? new Response("busy", { status: 503 })
      : n === 1
      ? new Response("slow down", { status: 429 })
      : undefined
  );
  const retries: RetryInfo[] = [];
  const seen: unknown[] = [];
  for await (
    const socket of reconnecting(server.url, {
      ...FAST,
      onRetry: (i) => void retries.push(i),
    })
  ) {
    seen.push(...await drain(socket));
  }
  assertEquals(seen, ["hello 3"]);
  assertEquals(
    retries.map((r) => (r.error as WebSocketHandshakeError).status),
    [503, 429],
  );
  assertEquals(server.requests, 3);
});

Deno.test("reconnecting(): Retry-After is honoured up to maxDelayMs", async () => {
  await using server = statusServer((n) =>
    n === 0
      ? new Response(null, { status: 503, headers: { "retry-after": "1" } })
      : n === 1
      ? new Response(null, { status: 503, headers: { "retry-after": "3600" } })
      : undefined
  );
  const retries: RetryInfo[] = [];
  for await (
    const socket of reconnecting(server.url, {
      initialDelayMs: 10,
      maxDelayMs: 1200,
      proxy: false,
      onRetry: (i) => void retries.push(i),
    })
  ) await drain(socket);
  assertEquals(retries.length, 2);
  assert(
    retries[0].delayMs >= 1000 && retries[0].delayMs <= 1200,
    `${retries[0].delayMs}`,
  );
  assertEquals(retries[1].delayMs, 1200);
});

Deno.test("reconnecting(): 403 stops at once: the for-await throws its WebSocketHandshakeError", async () => {
  await using server = statusServer(() => new Response("no", { status: 403 }));
  let retried = false;
  const error = await assertRejects(async () => {
    for await (
      const _ of reconnecting(server.url, {
        ...FAST,
        onRetry: () => retried = true,
      })
    ) {
      throw new Error("expected no socket");
    }
  }, WebSocketHandshakeError);
  assertEquals([error.status, error.transient], [403, false]);
  assertEquals(retried, false);
  assertEquals(server.requests, 1);
});

Deno.test("reconnecting(): a bad URL, bad backoff options and a protocol error close stop at once", async () => {
  await assertRejects(async () => {
    for await (const _ of reconnecting("ftp://example.com/")) break;
  }, DOMException);
  for (
    const options of [
      { initialDelayMs: 0 },
      { initialDelayMs: 100, maxDelayMs: 50 },
      { backoffFactor: 0.5 },
      { maxRetries: -1 },
      { initialDelayMs: NaN },
    ]
  ) {
    await assertRejects(async () => {
      for await (const _ of reconnecting("ws://127.0.0.1:1/", options)) break;
    }, RangeError);
  }
  // A server that closes with 1008 (policy): not retried.
  await using server = serve(
    { port: 0, hostname: "127.0.0.1" },
    (socket) => socket.close({ closeCode: 1008, reason: "banned" }),
  );
  let sockets = 0;
  const error = await assertRejects(async () => {
    for await (
      const socket of reconnecting(`ws://127.0.0.1:${server.addr.port}/`, FAST)
    ) {
      sockets++;
      await drain(socket);
    }
  }, WebSocketError);
  assertEquals([error.closeCode, error.reason, sockets], [1008, "banned", 1]);
  assertStringIncludes(error.message, "not a transient close");
});

Deno.test("reconnecting(): a server that accepts and drops every connection within 10 ms gets no reconnect storm", async () => {
  // Completes the handshake, then drops the TCP connection: 1006 each time.
  await using server = rawListener(async (conn) => {
    const head = await readHead(conn);
    const key = /sec-websocket-key: *(\S+)/i.exec(head)![1];
    await writeText(
      conn,
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${await computeAccept(
        key,
      )}\r\n\r\n`,
    );
    await new Promise((resolve) => setTimeout(resolve, 5));
  });
  const options = {
    initialDelayMs: 20,
    maxDelayMs: 160,
    backoffFactor: 2,
    proxy: false,
    signal: AbortSignal.timeout(1500),
  } as const;
  let sockets = 0;
  const error = await within(
    4000,
    assertRejects(async () => {
      for await (
        const socket of reconnecting(`ws://127.0.0.1:${server.port}/`, options)
      ) {
        sockets++;
        await drain(socket);
        assertEquals((await socket.closed).closeCode, 1006);
      }
    }),
    "the aborted loop",
  );
  // The abort ends it, with the signal's reason.
  assertEquals((error as DOMException).name, "TimeoutError");
  assertEquals(sockets, server.accepted);
  // Waits of at least 10, 20, 40, 80, 80, … ms (half of 20 × 2^n, capped
  // at 160): at most 1 + 4 + 16 connections in 1.5 s, about 12 on average.
  // Without a backoff that holds it would be hundreds.
  assertGreaterOrEqual(server.accepted, 5);
  assertLessOrEqual(server.accepted, 21);
  const gaps = server.acceptTimes.slice(1).map((t, i) =>
    t - server.acceptTimes[i]
  );
  gaps.forEach((gap, i) => {
    const base = Math.min(160, 20 * 2 ** i);
    // Each gap is the wait plus a connection's life; never under half the base.
    assertGreaterOrEqual(gap, base / 2 - 2, `gap ${i}: ${gaps.join(", ")}`);
  });
});

Deno.test("reconnecting(): aborting during a wait, during a connect and while a socket is open", async (t) => {
  await t.step("during a backoff wait", async () => {
    const controller = new AbortController();
    const url = `ws://127.0.0.1:${freePort()}/`;
    const reason = new Error("stop now");
    const started = performance.now();
    const error = await assertRejects(async () => {
      for await (
        const _ of reconnecting(url, {
          initialDelayMs: 10_000,
          proxy: false,
          onRetry: () => setTimeout(() => controller.abort(reason), 20),
          signal: controller.signal,
        })
      ) throw new Error("expected no socket");
    });
    assertEquals(error, reason);
    assert(performance.now() - started < 2000, "the 10 s wait was cut short");
  });
  await t.step("during a connect that hangs", async () => {
    await using silent = rawListener(async (conn) => {
      await readHead(conn);
      await new Promise((resolve) => setTimeout(resolve, 300));
    });
    const error = await assertRejects(async () => {
      for await (
        const _ of reconnecting(`ws://127.0.0.1:${silent.port}/`, {
          proxy: false,
          signal: AbortSignal.timeout(100),
        })
      ) throw new Error("expected no socket");
    });
    assertEquals((error as DOMException).name, "TimeoutError");
  });
  await t.step(
    "while a socket is open: it is closed, the loop throws",
    async () => {
      await using server = serve(
        { port: 0, hostname: "127.0.0.1" },
        (socket) => socket.readable.pipeTo(socket.writable),
      );
      const controller = new AbortController();
      let closed;
      const error = await assertRejects(async () => {
        for await (
          const socket of reconnecting(`ws://127.0.0.1:${server.addr.port}/`, {
            ...FAST,
            signal: controller.signal,
          })
        ) {
          setTimeout(() => controller.abort(new Error("aborted")), 20);
          await drain(socket);
          closed = await socket.closed;
        }
      });
      assertEquals((error as Error).message, "aborted");
      assertEquals(closed, { closeCode: 1000, reason: "", wasClean: true });
    },
  );
});

Deno.test("reconnecting(): break closes the open socket with 1000", async () => {
  await using server = serve(
    { port: 0, hostname: "127.0.0.1" },
    (socket) => socket.readable.pipeTo(socket.writable),
  );
  let socket: WebSocketConnection | undefined;
  for await (
    const opened of reconnecting(`ws://127.0.0.1:${server.addr.port}/`, FAST)
  ) {
    socket = opened;
    break;
  }
  assertEquals((await within(3000, socket!.closed, "closed")).closeCode, 1000);
});

Deno.test('reconnecting(): messages: "stream" gives sockets whose readable yields { type, stream }, typed so', async () => {
  await using server = serve(
    { port: 0, hostname: "127.0.0.1" },
    (socket) => socket.readable.pipeTo(socket.writable),
  );
  for await (
    const socket of reconnecting(`ws://127.0.0.1:${server.addr.port}/`, {
      ...FAST,
      messages: "stream",
    })
  ) {
    const writer = socket.writable.getWriter();
    await writer.write("echoed as a stream");
    const reader = socket.readable.getReader();
    const { value } = await within(3000, reader.read(), "the message");
    // Typed as a MessageStream: no cast needed to read its parts.
    const message = value!;
    assert(message.type === "text", `expected text, found ${message.type}`);
    let text = "";
    for await (const piece of message.stream) text += piece;
    assertEquals(text, "echoed as a stream");
    reader.releaseLock();
    break;
  }
});

Deno.test("reconnecting(): the documented default first wait is half to all of 1000 ms, doubling after", async () => {
  const url = `ws://127.0.0.1:${freePort()}/`;
  const controller = new AbortController();
  const delays: number[] = [];
  await assertRejects(async () => {
    for await (
      const _ of reconnecting(url, {
        proxy: false,
        signal: controller.signal,
        // Aborts during the first wait, having seen its length.
        onRetry: ({ delayMs }) => {
          delays.push(delayMs);
          controller.abort();
        },
      })
    ) throw new Error("expected no socket");
  });
  assertEquals(delays.length, 1);
  assert(delays[0] >= 500 && delays[0] <= 1000, `${delays[0]}`);
});

Deno.test("reconnecting(): a 101 that breaks RFC 6455 (wrong Sec-WebSocket-Accept) is a protocol error: no retry", async () => {
  await using server = rawListener(async (conn) => {
    await readHead(conn);
    await writeText(
      conn,
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: d3Jvbmc=\r\n\r\n",
    );
  });
  let retried = false;
  const error = await assertRejects(async () => {
    for await (
      const _ of reconnecting(`ws://127.0.0.1:${server.port}/`, {
        ...FAST,
        onRetry: () => retried = true,
      })
    ) throw new Error("expected no socket");
  }, WebSocketHandshakeError);
  assertStringIncludes(error.message, "expected header Sec-WebSocket-Accept");
  assertEquals([error.status, error.transient, retried], [101, false, false]);
  assertEquals(server.accepted, 1);
});
