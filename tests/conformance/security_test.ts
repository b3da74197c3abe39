/**
 * Security: `authorize` and the origin allow-list refuse with 403 before
 * upgrading; CR/LF never reaches a header; client masking keys come from
 * `crypto.getRandomValues` and differ across frames; TLS both ways (a
 * certificate made in the test with openssl) through conformance cases.
 *
 * @module
 */

import {
  assert,
  assertEquals,
  assertNotEquals,
  assertRejects,
  assertStringIncludes,
} from "@std/assert";
import { connect } from "../../src/client.ts";
import { serve } from "../../src/server.ts";
import { WebSocketError } from "../../src/websocket_error.ts";
import { certificateOrSkip } from "../_socket_util.ts";
import {
  type Case,
  closeNormally,
  expectMessage,
  runAgainstClient,
  runAgainstServer,
} from "./_cases.ts";
import { basicGroups } from "./_cases_basic.ts";
import { closingGroup } from "./_cases_closing.ts";
import { fragmentationGroup } from "./_cases_fragmentation.ts";
import { limitGroups } from "./_cases_limits.ts";
import { utf8Group } from "./_cases_utf8.ts";
import { delay, OP, RawServer, within, writeAll } from "./_raw_peer.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

async function exchange(port: number, head: string): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await writeAll(conn, encoder.encode(head));
    const buffer = new Uint8Array(16 * 1024);
    let text = "";
    await within(
      (async () => {
        while (!text.includes("\r\n\r\n")) {
          const n = await conn.read(buffer);
          if (n === null) break;
          text += decoder.decode(buffer.subarray(0, n));
        }
      })(),
      3000,
      "the response head",
    );
    return text;
  } finally {
    conn.close();
  }
}

function upgrade(lines: string[] = [], path = "/"): string {
  return [
    `GET ${path} HTTP/1.1`,
    "Host: 127.0.0.1",
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version: 13",
    ...lines,
  ].join("\r\n") + "\r\n\r\n";
}

const statusOf = (response: string) => Number(response.split(" ")[1]);

Deno.test("security: authorize and the origin allow-list refuse with 403 before upgrading", async () => {
  let upgraded = 0;
  await using server = serve({
    hostname: "127.0.0.1",
    port: 0,
    allowedOrigins: ["https://app.example", /^https:\/\/[a-z]+\.example\.org$/],
    authorize: (request) =>
      request.headers.get("authorization") === "Bearer good" ||
      new URL(request.url).searchParams.get("token") === "good",
  }, (socket) => {
    upgraded++;
    socket.close();
  });
  const port = server.addr.port;
  const cases: [string, string[], string, number][] = [
    ["no credentials", [], "/", 403],
    ["a bad token", ["Authorization: Bearer bad"], "/", 403],
    ["a good token in the header", ["Authorization: Bearer good"], "/", 101],
    ["a good token in the query", [], "/?token=good", 101],
    ["an allowed origin", ["Origin: https://app.example"], "/?token=good", 101],
    [
      "an allowed origin, other case",
      [
        "Origin: HTTPS://APP.EXAMPLE",
      ],
      "/?token=good",
      101,
    ],
    [
      "an origin matching the RegExp",
      [
        "Origin: https://chat.example.org",
      ],
      "/?token=good",
      101,
    ],
    [
      "an origin not allowed",
      [
        "Origin: https://evil.example",
      ],
      "/?token=good",
      403,
    ],
    [
      "an origin the RegExp refuses",
      [
        "Origin: https://chat.example.org.evil",
      ],
      "/?token=good",
      403,
    ],
    ["the literal null origin", ["Origin: null"], "/?token=good", 403],
  ];
  let expectedUpgrades = 0;
  for (const [what, lines, path, status] of cases) {
    const response = await exchange(port, upgrade(lines, path));
    assertEquals(statusOf(response), status, what);
    if (status === 101) expectedUpgrades++;
    else assert(!/sec-websocket-accept/i.test(response), what);
  }
  await delay(50);
  assertEquals(upgraded, expectedUpgrades, "the handler ran only for 101s");
});

Deno.test("security: CR/LF never reaches a header line, either way", async () => {
  // Our client refuses before any I/O: the raw server sees no connection.
  const raw = new RawServer();
  const accepted = raw.listener.accept().then((conn) => {
    conn.close();
    return true;
  }, () => false);
  const url = `ws://127.0.0.1:${raw.port}/`;
  await assertRejects(
    () => connect(url, { headers: { "X-Test": "a\r\nX-Injected: 1" } }),
    TypeError,
  );
  await assertRejects(
    () => connect(url, { headers: { "X-Test": "a\nb" } }),
    TypeError,
  );
  await assertRejects(
    () => connect(url, { origin: "https://a.example\r\nX-Injected: 1" }),
    TypeError,
  );
  await assertRejects(
    () => connect(url, { headers: { "X-Te\r\nst": "a" } }),
    TypeError,
  );
  await delay(50);
  raw.close();
  assertEquals(await accepted, false, "no connection was made");

  // Our server: a subprotocol selector cannot smuggle a header line.
  await using server = serve({
    hostname: "127.0.0.1",
    port: 0,
    protocols: () => "chat\r\nX-Injected: 1",
  }, (socket) => socket.close());
  const response = await exchange(
    server.addr.port,
    upgrade(["Sec-WebSocket-Protocol: chat"]),
  );
  assertNotEquals(statusOf(response), 101);
  assert(!/^X-Injected/im.test(response), response);

  // A request with a bare CR inside a header value is refused.
  await using plain = serve(
    { hostname: "127.0.0.1", port: 0 },
    (socket) => socket.close(),
  );
  for (
    const line of [
      "X-Test: a\rX-Injected: 1",
      "X-Test: a\0b",
      " folded: continuation",
    ]
  ) {
    const refused = await exchange(plain.addr.port, upgrade([line]));
    assertEquals(statusOf(refused), 400, JSON.stringify(line));
  }
});

Deno.test("security: client masking keys come from crypto.getRandomValues and differ across frames", async () => {
  const raw = new RawServer();
  const original = crypto.getRandomValues;
  // While installed, fills with a pattern random keys would not show:
  // every key [0xa5, n, n, n].
  let calls = 0;
  const spy = function <T extends ArrayBufferView | null>(array: T): T {
    calls++;
    if (array) {
      const bytes = new Uint8Array(
        array.buffer,
        array.byteOffset,
        array.byteLength,
      );
      for (let i = 0; i < bytes.length; i++) {
        bytes[i] = i % 4 === 0 ? 0xa5 : (i >> 2) & 0xff;
      }
    }
    return array;
  };
  const [peer, socket] = await Promise.all([
    raw.accept(),
    connect(`ws://127.0.0.1:${raw.port}/`, { compression: false }),
  ]);
  raw.close();
  const writer = socket.writable.getWriter();
  const keysBefore: string[] = [];
  const keysDuring: Uint8Array[] = [];
  try {
    // 1,100 frames with the real CSPRNG, then 1,100 with the spy: the key
    // pool (1,024 keys) must be refilled from getRandomValues meanwhile.
    for (let i = 0; i < 1100; i++) await writer.write(`m${i}`);
    for (let i = 0; i < 1100; i++) {
      const frame = await peer.nextFrame();
      assertEquals(decoder.decode(frame.payload), `m${i}`);
      keysBefore.push([...frame.maskKey!].join(","));
    }
    crypto.getRandomValues = spy as typeof crypto.getRandomValues;
    for (let i = 0; i < 1100; i++) await writer.write(`n${i}`);
    crypto.getRandomValues = original;
    for (let i = 0; i < 1100; i++) {
      const frame = await peer.nextFrame();
      assertEquals(decoder.decode(frame.payload), `n${i}`);
      keysDuring.push(frame.maskKey!);
    }
  } finally {
    crypto.getRandomValues = original;
  }
  // RFC 6455 §5.3: a fresh, unpredictable key for every frame. 1,100
  // random 32-bit keys collide with probability ~1/7,000: allow one.
  const distinct = new Set(keysBefore).size;
  assert(distinct >= 1099, `expected distinct keys, found ${distinct}/1100`);
  assert(!keysBefore.includes("0,0,0,0"), "no all-zero key");
  assert(calls > 0, "the key pool was refilled through getRandomValues");
  const fromSpy =
    keysDuring.filter((key) =>
      key[0] === 0xa5 && key[1] === key[2] && key[2] === key[3]
    ).length;
  assert(fromSpy > 0, "keys after the refill are the bytes it returned");
  await peer.close();
  await socket.closed;
});

// ---- TLS both ways ----------------------------------------------------------

const TLS_CASES = [
  "1.1.6",
  "1.2.8",
  "2.6",
  "3.1",
  "4.2.1",
  "5.20",
  "6.4.1",
  "6.7.1",
  "7.3.2",
  "7.7.1",
  "9.9.1",
  "10.1.1",
];

Deno.test("security: TLS both ways — conformance cases over wss: with a certificate made here", async (t) => {
  const certificate = await certificateOrSkip();
  if (!certificate) return;
  const groups = [
    ...basicGroups,
    fragmentationGroup,
    utf8Group,
    closingGroup,
    ...limitGroups,
  ];
  const cases = groups.flatMap((group) =>
    group.cases.filter((c) => TLS_CASES.includes(c.id))
  );
  assertEquals(cases.length, TLS_CASES.length, "every listed case exists");
  for (const testCase of cases) {
    for (const role of ["server", "client"] as const) {
      await t.step(
        `${testCase.id} ${testCase.title}: our ${role}`,
        async () => {
          if (role === "server") await runAgainstServer(testCase, certificate);
          else await runAgainstClient(testCase, certificate);
        },
      );
    }
  }
  await t.step(
    "a plain TCP client on the TLS port fails alone; the server goes on",
    async () => {
      const echoCase: Case = {
        id: "tls",
        title: "echo",
        async run(peer, ours) {
          const conn = await Deno.connect({
            hostname: "127.0.0.1",
            port: (peer.conn.remoteAddr as Deno.NetAddr).port,
          });
          await writeAll(conn, encoder.encode(upgrade()));
          const buffer = new Uint8Array(1024);
          const n = await within(
            conn.read(buffer).catch(() => null),
            5000,
            "the server to drop the plain connection",
          );
          conn.close();
          if (n !== null) {
            assert(!decoder.decode(buffer.subarray(0, n)).includes("101"));
          }
          await peer.sendFrames([{ opcode: OP.text, payload: "still here" }]);
          await expectMessage(peer, OP.text, "still here");
          await closeNormally(peer, ours);
        },
      };
      await runAgainstServer(echoCase, certificate);
    },
  );
  await t.step(
    "our client refuses the certificate when it is not trusted",
    async () => {
      const raw = new RawServer(certificate);
      const accepting = raw.listener.accept().then(async (conn) => {
        // The TLS handshake fails on our client's side.
        await (conn as Deno.TlsConn).handshake().catch(() => {});
        conn.close();
      });
      const error = await assertRejects(
        () => connect(`wss://localhost:${raw.port}/`),
        WebSocketError,
        "opening handshake failed",
      );
      assertEquals(error.closeCode, 1006);
      await accepting;
      raw.close();
    },
  );
  assertStringIncludes(certificate.cert, "BEGIN CERTIFICATE");
});
