import {
  assert,
  assertEquals,
  assertMatch,
  assertNotEquals,
  assertRejects,
  assertStringIncludes,
  assertThrows,
} from "@std/assert";
import { decodeBase64 } from "@std/encoding/base64";
import {
  buildClientRequest,
  validateServerResponse,
} from "../src/client_handshake.ts";
import { buildErrorResponse } from "../src/http_error_response.ts";
import {
  buildServerResponse,
  HandshakeRejection,
  isUpgradeRequest,
  offeredKey,
  serverResponseHead,
  validateClientRequest,
} from "../src/server_handshake.ts";
import { computeAccept, generateKey } from "../src/handshake_key.ts";
import { extensionNames, splitHeaderList } from "../src/header_list.ts";
import { selectSubprotocol, validateProtocols } from "../src/subprotocols.ts";
import { parseHttpHead } from "../src/http_head.ts";
import { WebSocketError } from "../src/websocket_error.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const head = (text: string) => parseHttpHead(encoder.encode(text));

const RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ==";
const RFC_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

Deno.test("computeAccept() gives the RFC 6455 §1.3 example value", async () => {
  assertEquals(await computeAccept(RFC_KEY), RFC_ACCEPT);
});

Deno.test("generateKey() makes 16 random bytes in base64", () => {
  const key = generateKey();
  assertEquals(decodeBase64(key).length, 16);
  assertMatch(key, /^[A-Za-z0-9+/]{22}==$/);
  assertNotEquals(generateKey(), key);
});

Deno.test("splitHeaderList() and extensionNames() read comma lists", () => {
  assertEquals(splitHeaderList(null), []);
  assertEquals(splitHeaderList(" a ,b,, c"), ["a", "b", "c"]);
  assertEquals(
    extensionNames(
      "permessage-deflate; client_max_window_bits, X-Foo;a=1",
    ),
    ["permessage-deflate", "x-foo"],
  );
});

// --- the client's request --------------------------------------------------

Deno.test("buildClientRequest() writes every header RFC 6455 §4.1 requires", () => {
  const text = decoder.decode(buildClientRequest({
    url: new URL("ws://example.com:8080/chat?room=1"),
    key: RFC_KEY,
    protocols: ["chat", "superchat"],
    extensions: "permessage-deflate; client_max_window_bits",
    origin: "http://example.com",
    headers: { Authorization: "Bearer t" },
  }));
  assertEquals(
    text,
    "GET /chat?room=1 HTTP/1.1\r\n" +
      "Host: example.com:8080\r\n" +
      "Upgrade: websocket\r\n" +
      "Connection: Upgrade\r\n" +
      `Sec-WebSocket-Key: ${RFC_KEY}\r\n` +
      "Sec-WebSocket-Version: 13\r\n" +
      "Sec-WebSocket-Protocol: chat, superchat\r\n" +
      "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" +
      "Origin: http://example.com\r\n" +
      "Authorization: Bearer t\r\n\r\n",
  );
});

Deno.test("buildClientRequest() leaves default ports out of Host and uses / for an empty path", () => {
  const text = decoder.decode(buildClientRequest({
    url: new URL("wss://example.com:443"),
    key: RFC_KEY,
  }));
  assert(text.startsWith("GET / HTTP/1.1\r\nHost: example.com\r\n"));
  assert(!text.includes("Sec-WebSocket-Protocol"));
  assert(!text.includes("Origin"));
});

Deno.test("buildClientRequest() refuses CR, LF and NUL in header names and values", () => {
  const url = new URL("ws://localhost/");
  const bad: HeadersInit[] = [
    { "X-A": "a\r\nInjected: 1" },
    { "X-A": "a\nb" },
    { "X-A": "a\0b" },
    [["X-A\r\nInjected", "1"]],
    [["Bad Name", "1"]],
  ];
  for (const headers of bad) {
    assertThrows(
      () => buildClientRequest({ url, key: RFC_KEY, headers }),
      TypeError,
      "expected",
    );
  }
  assertThrows(
    () => buildClientRequest({ url, key: RFC_KEY, origin: "http://a\r\nX: 1" }),
    TypeError,
    "Origin",
  );
});

Deno.test("buildClientRequest() refuses custom headers the handshake sets itself", () => {
  assertThrows(
    () =>
      buildClientRequest({
        url: new URL("ws://localhost/"),
        key: RFC_KEY,
        headers: { "Sec-WebSocket-Key": RFC_KEY },
      }),
    TypeError,
    "which the handshake sets itself",
  );
});

Deno.test("validateProtocols() wants unique tokens (SyntaxError otherwise)", () => {
  validateProtocols([]);
  validateProtocols(["chat", "v2.json"]);
  for (const protocols of [["a b"], [""], ["chat", "Chat"], ["a,b"]]) {
    const error = assertThrows(
      () => validateProtocols(protocols),
      DOMException,
    );
    assertEquals(error.name, "SyntaxError");
  }
});

// --- the server's response, checked by the client --------------------------

function response(lines: string[]): string {
  return ["HTTP/1.1 101 Switching Protocols", ...lines].join("\r\n") +
    "\r\n\r\n";
}
const GOOD = [
  "Upgrade: websocket",
  "Connection: Upgrade",
  `Sec-WebSocket-Accept: ${RFC_ACCEPT}`,
];

Deno.test("validateServerResponse() accepts a correct response, case-insensitively", async () => {
  assertEquals(
    await validateServerResponse(
      head(response([
        "upgrade: WebSocket",
        "connection: keep-alive, upgrade",
        `sec-websocket-accept: ${RFC_ACCEPT}`,
        "Sec-WebSocket-Protocol: chat",
        "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover",
      ])),
      {
        key: RFC_KEY,
        protocols: ["superchat", "chat"],
        extensions: "permessage-deflate; client_max_window_bits",
      },
    ),
    {
      protocol: "chat",
      extensions: "permessage-deflate; server_no_context_takeover",
    },
  );
});

Deno.test("validateServerResponse() says what it expected and found for each failure", async () => {
  const cases: [string, string][] = [
    [
      "HTTP/1.1 403 Forbidden\r\n\r\n",
      "expected HTTP status 101 Switching Protocols, found 403 Forbidden",
    ],
    [
      response([GOOD[1], GOOD[2]]),
      "expected header Upgrade: websocket, found no such header",
    ],
    [
      response(["Upgrade: h2c", GOOD[1], GOOD[2]]),
      'expected header Upgrade: websocket, found "h2c"',
    ],
    [
      response([GOOD[0], "Connection: keep-alive", GOOD[2]]),
      'expected header Connection: Upgrade, found "keep-alive"',
    ],
    [
      response([GOOD[0], GOOD[1]]),
      `expected header Sec-WebSocket-Accept: ${RFC_ACCEPT}, found no such header`,
    ],
    [
      response([GOOD[0], GOOD[1], "Sec-WebSocket-Accept: AAAA"]),
      `expected header Sec-WebSocket-Accept: ${RFC_ACCEPT}, found "AAAA"`,
    ],
    [
      response([...GOOD, "Sec-WebSocket-Protocol: chat"]),
      "expected no Sec-WebSocket-Protocol header (no subprotocol was offered)",
    ],
    [
      response([...GOOD, "Sec-WebSocket-Extensions: permessage-deflate"]),
      'expected only extensions the client offered (none), found "permessage-deflate"',
    ],
    [
      "SSH-2.0-OpenSSH_9.0\r\n\r\n",
      "expected a status line",
    ],
  ];
  for (const [text, message] of cases) {
    const error = await assertRejects(
      () => validateServerResponse(head(text), { key: RFC_KEY }),
      WebSocketError,
      message,
    );
    assertEquals(error.closeCode, 1006);
  }
  await assertRejects(
    () =>
      validateServerResponse(
        head(response([...GOOD, "Sec-WebSocket-Protocol: other"])),
        { key: RFC_KEY, protocols: ["chat"] },
      ),
    WebSocketError,
    'expected Sec-WebSocket-Protocol to be one of the offered "chat", found "other"',
  );
  await assertRejects(
    () =>
      validateServerResponse(
        head(response([
          ...GOOD,
          "Sec-WebSocket-Extensions: permessage-deflate, permessage-deflate",
        ])),
        { key: RFC_KEY, extensions: "permessage-deflate" },
      ),
    WebSocketError,
    "at most once",
  );
});

Deno.test("validateServerResponse() accepts no subprotocol when some were offered", async () => {
  const result = await validateServerResponse(head(response(GOOD)), {
    key: RFC_KEY,
    protocols: ["chat"],
  });
  assertEquals(result.protocol, "");
});

// --- the client's request, checked by the server ---------------------------

function request(lines: string[], start = "GET /chat HTTP/1.1"): string {
  return [start, ...lines].join("\r\n") + "\r\n\r\n";
}
const REQUEST = [
  "Host: server.example.com",
  "Upgrade: websocket",
  "Connection: Upgrade",
  `Sec-WebSocket-Key: ${RFC_KEY}`,
  "Sec-WebSocket-Version: 13",
];

Deno.test("validateClientRequest() accepts the RFC 6455 §1.2 request", () => {
  const result = validateClientRequest(head(request([
    ...REQUEST,
    "Origin: http://example.com",
    "Sec-WebSocket-Protocol: chat, superchat",
    "Sec-WebSocket-Extensions: permessage-deflate",
  ])));
  assertEquals(result, {
    key: RFC_KEY,
    protocols: ["chat", "superchat"],
    extensions: "permessage-deflate",
  });
});

Deno.test("validateClientRequest() reads Upgrade and Connection as case-insensitive lists", () => {
  validateClientRequest(head(request([
    "Host: a",
    "Upgrade: foo/1, WebSocket",
    "Connection: keep-alive, UPGRADE",
    `Sec-WebSocket-Key: ${RFC_KEY}`,
    "Sec-WebSocket-Version: 13",
  ])));
});

function rejection(text: string): HandshakeRejection {
  return assertThrows(
    () => validateClientRequest(head(text)),
    HandshakeRejection,
  );
}

Deno.test("validateClientRequest() answers 405 to a method other than GET", () => {
  const error = rejection(request(REQUEST, "POST /chat HTTP/1.1"));
  assertEquals(error.status, 405);
  assertEquals(
    error.message,
    "expected method GET for a WebSocket upgrade, found POST",
  );
  assertEquals(error.headers, [["Allow", "GET"]]);
});

Deno.test("validateClientRequest() answers 400 to HTTP/1.0, no Host, missing tokens, bad keys", () => {
  const without = (name: string) => REQUEST.filter((l) => !l.startsWith(name));
  const cases: [string, string][] = [
    [request(REQUEST, "GET /chat HTTP/1.0"), "expected HTTP/1.1 or later"],
    [request(without("Host")), "expected one non-empty Host header"],
    [request([...REQUEST, "Host: b"]), "expected one non-empty Host header"],
    [request(without("Upgrade")), "expected header Upgrade: websocket"],
    [request(without("Connection")), "expected header Connection: Upgrade"],
    [request([...without("Connection"), "Connection: close"]), 'found "close"'],
    [request(without("Sec-WebSocket-Key")), "found no such header"],
    [
      request([...without("Sec-WebSocket-Key"), "Sec-WebSocket-Key: abc"]),
      'found "abc"',
    ],
    [
      // 15 bytes in base64.
      request([
        ...without("Sec-WebSocket-Key"),
        "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA",
      ]),
      "16 bytes in base64",
    ],
    [
      // 17 bytes in base64.
      request([
        ...without("Sec-WebSocket-Key"),
        "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAA=",
      ]),
      "16 bytes in base64",
    ],
    [
      request([...REQUEST, `Sec-WebSocket-Key: ${RFC_KEY}`]),
      "found 2 of them",
    ],
    [
      request([...REQUEST, "Sec-WebSocket-Protocol: a b"]),
      "expected Sec-WebSocket-Protocol to list tokens",
    ],
  ];
  for (const [text, message] of cases) {
    const error = rejection(text);
    assertEquals(error.status, 400, text);
    assertStringIncludes(error.message, message);
  }
});

Deno.test("validateClientRequest() answers 426 with Sec-WebSocket-Version: 13 to other versions", () => {
  for (const version of ["8", "14", null]) {
    const lines = REQUEST.filter((l) => !l.startsWith("Sec-WebSocket-Version"));
    if (version) lines.push(`Sec-WebSocket-Version: ${version}`);
    const error = rejection(request(lines));
    assertEquals(error.status, 426);
    assertEquals(error.headers, [["Sec-WebSocket-Version", "13"]]);
    assertStringIncludes(
      error.message,
      "expected header Sec-WebSocket-Version: 13",
    );
  }
});

Deno.test("offeredKey() gives the key of a request with one well-formed Sec-WebSocket-Key, else null", () => {
  const withKeys = (...keys: string[]) =>
    head(request(["Host: a", ...keys.map((k) => `Sec-WebSocket-Key: ${k}`)]));
  assertEquals(offeredKey(withKeys(RFC_KEY)), RFC_KEY);
  assertEquals(offeredKey(withKeys()), null);
  // Not 16 bytes of base64, or two keys (RFC 6455 §4.2.1 item 5).
  assertEquals(offeredKey(withKeys("short")), null);
  assertEquals(offeredKey(withKeys("AAAAAAAAAAAAAAAAAAAAAAA=")), null);
  assertEquals(offeredKey(withKeys(RFC_KEY, RFC_KEY)), null);
  // Whatever offeredKey() takes, validateClientRequest() would take too.
  assertEquals(
    validateClientRequest(head(request(REQUEST))).key,
    offeredKey(head(request(REQUEST))),
  );
});

Deno.test("isUpgradeRequest() looks for the websocket token in Upgrade", () => {
  assert(isUpgradeRequest(new Headers({ upgrade: "h2c, websocket" })));
  assert(!isUpgradeRequest(new Headers({ upgrade: "h2c" })));
  assert(!isUpgradeRequest(new Headers()));
});

// --- subprotocols and the 101 response -------------------------------------

Deno.test("selectSubprotocol() picks the client's most preferred supported protocol", async () => {
  const req = new Request("http://localhost/");
  assertEquals(await selectSubprotocol(["b", "a"], ["a", "b"], req), "b");
  assertEquals(await selectSubprotocol(["c"], ["a", "b"], req), "");
  assertEquals(await selectSubprotocol([], ["a"], req), "");
  assertEquals(await selectSubprotocol(["a"], undefined, req), "");
});

Deno.test("selectSubprotocol() calls a selector function and checks its answer", async () => {
  const req = new Request("http://localhost/?v=2");
  const selector = (offered: string[], request: Request) =>
    new URL(request.url).searchParams.get("v") === "2"
      ? offered.find((p) => p.endsWith("2"))
      : undefined;
  assertEquals(await selectSubprotocol(["v1", "v2"], selector, req), "v2");
  assertEquals(await selectSubprotocol(["v1"], selector, req), "");
  await assertRejects(
    () => selectSubprotocol(["a"], () => Promise.resolve("z"), req),
    TypeError,
    'found "z"',
  );
});

Deno.test("buildServerResponse() answers 101 with the accept value and what was chosen", async () => {
  const text = decoder.decode(
    await buildServerResponse({
      key: RFC_KEY,
      protocol: "chat",
      extensions: "permessage-deflate",
    }),
  );
  assertEquals(
    text,
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" +
      `Connection: Upgrade\r\nSec-WebSocket-Accept: ${RFC_ACCEPT}\r\n` +
      "Sec-WebSocket-Protocol: chat\r\n" +
      "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
  );
  // The client side accepts what the server side builds.
  const parsed = head(text);
  assertEquals(
    await validateServerResponse(parsed, {
      key: RFC_KEY,
      protocols: ["chat"],
      extensions: "permessage-deflate",
    }),
    { protocol: "chat", extensions: "permessage-deflate" },
  );
});

Deno.test("selectSubprotocol() answers a list at once and turns a throwing selector into a rejection", async () => {
  const req = new Request("http://localhost/");
  // No promise for a list: the server's handshake goes on in the same turn.
  assertEquals(selectSubprotocol(["b", "a"], ["a", "b"], req), "b");
  assertEquals(selectSubprotocol(["a"], undefined, req), "");
  const result = selectSubprotocol(["a"], () => {
    throw new Error("selector bug");
  }, req);
  assert(result instanceof Promise);
  await assertRejects(() => result, Error, "selector bug");
});

Deno.test("serverResponseHead() builds the same 101 as buildServerResponse()", async () => {
  for (
    const [protocol, extensions] of [
      ["", ""],
      ["chat", ""],
      ["", "permessage-deflate; server_no_context_takeover"],
      ["chat.v2", "permessage-deflate"],
    ]
  ) {
    assertEquals(
      serverResponseHead(RFC_ACCEPT, protocol, extensions),
      await buildServerResponse({ key: RFC_KEY, protocol, extensions }),
    );
  }
  assertEquals(
    decoder.decode(serverResponseHead(RFC_ACCEPT)),
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" +
      `Connection: Upgrade\r\nSec-WebSocket-Accept: ${RFC_ACCEPT}\r\n\r\n`,
  );
});

Deno.test("computeAccept() hashes keys of any length, also longer than its scratch buffer", async () => {
  for (const key of ["", RFC_KEY, "k".repeat(100), "é".repeat(300)]) {
    const digest = await crypto.subtle.digest(
      "SHA-1",
      encoder.encode(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"),
    );
    assertEquals(
      decodeBase64(await computeAccept(key)),
      new Uint8Array(digest),
    );
  }
  // Hashes started together don't share bytes.
  const keys = ["a".repeat(24), "b".repeat(24), RFC_KEY];
  const accepts = await Promise.all(keys.map(computeAccept));
  assertEquals(accepts[2], RFC_ACCEPT);
  assertEquals(accepts, await Promise.all(keys.map(computeAccept)));
  assertNotEquals(accepts[0], accepts[1]);
});

Deno.test("buildErrorResponse() writes a closing response with Content-Length", () => {
  const text = decoder.decode(buildErrorResponse(431, "too big", [["X", "y"]]));
  assertEquals(
    text,
    "HTTP/1.1 431 Request Header Fields Too Large\r\n" +
      "Content-Type: text/plain; charset=utf-8\r\nContent-Length: 8\r\n" +
      "Connection: close\r\nX: y\r\n\r\ntoo big\n",
  );
});
