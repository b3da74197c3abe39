import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
  assertStringIncludes,
} from "@std/assert";
import {
  connect,
  WebSocketError,
  WebSocketHandshakeError,
  WebSocketStream,
} from "../mod.ts";
import { certificateOrSkip, within } from "./_socket_util.ts";

/**
 * A Deno.serve server: `route` answers a request with a Response (a
 * redirect), or undefined to accept the WebSocket (which echoes). It records
 * each request's path and headers.
 */
function httpServer(
  route: (url: URL) => Response | undefined,
  tls?: { cert: string; key: string },
) {
  const seen: { path: string; headers: Headers }[] = [];
  const server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen() {}, ...tls },
    (request) => {
      const url = new URL(request.url);
      seen.push({ path: url.pathname, headers: new Headers(request.headers) });
      const answer = route(url);
      if (answer) return answer;
      const { socket, response } = Deno.upgradeWebSocket(request);
      socket.onmessage = (event) => socket.send(event.data);
      return response;
    },
  );
  return {
    port: server.addr.port,
    origin: `${tls ? "wss" : "ws"}://127.0.0.1:${server.addr.port}`,
    seen,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

function redirect(status: number, location: string | null): Response {
  const headers = new Headers();
  if (location !== null) headers.set("location", location);
  return new Response(null, { status, headers });
}

async function echo(url: string, options = {}) {
  const socket = await connect(url, options);
  const writer = socket.writable.getWriter();
  const reader = socket.readable.getReader();
  await writer.write("hi");
  const { value } = await within(3000, reader.read(), "the echo");
  reader.releaseLock();
  await writer.close();
  await socket.closed;
  return value;
}

Deno.test("connect(): a redirect is an error by default (maxRedirects 0), naming where it pointed", async () => {
  await using server = httpServer((url) =>
    url.pathname === "/old" ? redirect(302, "/new") : undefined
  );
  const error = await assertRejects(
    () => connect(`${server.origin}/old`),
    WebSocketHandshakeError,
  );
  assertEquals([error.status, error.transient], [302, false]);
  assertStringIncludes(error.message, "set maxRedirects to follow redirects");
  assertStringIncludes(error.message, `${server.origin}/old -> /new`);
  assertEquals(server.seen.length, 1);
});

Deno.test("connect(): 301, 302, 303, 307 and 308 are followed to the Location, relative or absolute, http: mapped to ws:", async () => {
  for (const status of [301, 302, 303, 307, 308]) {
    await using server = httpServer((url) => {
      if (url.pathname === "/a") return redirect(status, "/b?x=1#frag");
      if (url.pathname === "/b") {
        return redirect(status, `http://127.0.0.1:${url.port}/c`);
      }
      return undefined;
    });
    assertEquals(
      await echo(`${server.origin}/a`, { maxRedirects: 2 }),
      "hi",
      `status ${status}`,
    );
    assertEquals(server.seen.map((r) => r.path), ["/a", "/b", "/c"]);
  }
});

Deno.test("connect(): Authorization and Cookie go to the same origin only, and do not come back", async () => {
  await using target = httpServer((url) =>
    url.pathname === "/back" ? redirect(307, origin.origin + "/end") : undefined
  );
  await using origin = httpServer((url) => {
    if (url.pathname === "/start") return redirect(307, "/same");
    if (url.pathname === "/same") return redirect(307, `${target.origin}/back`);
    return undefined;
  });
  const headers = {
    Authorization: "Bearer secret",
    Cookie: "session=1",
    "X-Trace": "t1",
  };
  assertEquals(
    await echo(`${origin.origin}/start`, { headers, maxRedirects: 5 }),
    "hi",
  );
  const seen = [...origin.seen, ...target.seen];
  const byPath = (path: string) => seen.find((r) => r.path === path)!.headers;
  for (const path of ["/start", "/same"]) {
    assertEquals(byPath(path).get("authorization"), "Bearer secret", path);
    assertEquals(byPath(path).get("cookie"), "session=1", path);
  }
  for (const path of ["/back", "/end"]) {
    assertEquals(byPath(path).get("authorization"), null, path);
    assertEquals(byPath(path).get("cookie"), null, path);
    assertEquals(byPath(path).get("x-trace"), "t1", path);
  }
});

Deno.test("connect(): a redirect loop stops at maxRedirects with an error listing the hops", async () => {
  await using b = httpServer(() => redirect(302, a.origin + "/a"));
  await using a = httpServer(() => redirect(302, b.origin + "/b"));
  const error = await assertRejects(
    () => connect(`${a.origin}/a`, { maxRedirects: 3 }),
    WebSocketHandshakeError,
  );
  assertStringIncludes(
    error.message,
    "after 3 redirect(s), with maxRedirects 3",
  );
  assertStringIncludes(
    error.message,
    [
      `${a.origin}/a`,
      `${b.origin}/b`,
      `${a.origin}/a`,
      `${b.origin}/b`,
      `${a.origin}/a`,
    ]
      .join(" -> "),
  );
  assertEquals(a.seen.length + b.seen.length, 4);
});

Deno.test("connect(): a missing or malformed Location is a clear error", async () => {
  const cases: [string | null, RegExp][] = [
    [null, /answered 302 without a Location header/],
    ["", /answered 302 without a Location header/],
    ["http://[bad", /with Location "http:\/\/\[bad": expected a URL/],
    [
      "ftp://127.0.0.1/x",
      /expected a ws:, wss:, http: or https: URL, found the scheme ftp:/,
    ],
  ];
  for (const [location, message] of cases) {
    await using server = httpServer(() => redirect(302, location));
    const error = await assertRejects(
      () => connect(`${server.origin}/`, { maxRedirects: 1 }),
      WebSocketHandshakeError,
    );
    assertMatch(error.message, message);
    assertEquals(error.status, 302);
  }
});

Deno.test("connect(): wss: is never redirected to ws:", async () => {
  const certificate = await certificateOrSkip();
  if (!certificate) return;
  await using plain = httpServer(() => undefined);
  await using secure = httpServer(
    (url) =>
      url.pathname === "/down"
        ? redirect(301, `${plain.origin}/`)
        : url.pathname === "/up"
        ? redirect(301, "/ok")
        : undefined,
    certificate,
  );
  const origin = `wss://localhost:${secure.port}`;
  const options = { maxRedirects: 1, caCerts: [certificate.cert] };
  const error = await assertRejects(
    () => connect(`${origin}/down`, options),
    WebSocketHandshakeError,
  );
  assertStringIncludes(
    error.message,
    "a redirect never downgrades wss: to ws:",
  );
  assertEquals(plain.seen.length, 0);
  // Within wss: it is followed.
  assertEquals(await echo(`${origin}/up`, options), "hi");
});

Deno.test("WebSocketStream does not follow redirects (WHATWG), even when asked", async () => {
  await using server = httpServer((url) =>
    url.pathname === "/old" ? redirect(302, "/new") : undefined
  );
  const stream = new WebSocketStream(`${server.origin}/old`, {
    maxRedirects: 5,
  } as never);
  const error = await assertRejects(() => stream.opened);
  assert(error instanceof WebSocketError);
  await stream.closed.catch(() => {});
  assertEquals(server.seen.map((r) => r.path), ["/old"]);
});
