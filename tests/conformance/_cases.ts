/**
 * The conformance case model: a case drives a {@linkcode RawPeer} against
 * our server (`serve` with an echo handler) or our client (`connect` with an
 * echo loop), and checks what RFC 6455 requires of our end. Plus the
 * expectations the cases share and the table of results.
 *
 * @module
 */

import { assert, assertEquals } from "@std/assert";
import { connect } from "../../src/client.ts";
import type { WebSocketConnection } from "../../src/connection.ts";
import type {
  CloseResult,
  WebSocketOptions,
} from "../../src/socket_options.ts";
import { serve, type ServeOptions } from "../../src/server.ts";
import type { ConnectOptions } from "../../src/client.ts";
import {
  bytesOf,
  closeCodeOf,
  closePayload,
  delay,
  EXPECT_MS,
  OP,
  type RawFrame,
  RawPeer,
  RawServer,
} from "./_raw_peer.ts";

/** Which of our ends a case tests: our server (raw client) or our client. */
export type Role = "server" | "client";

/** Our end of the connection, as a case sees it. */
export interface OurEnd {
  role: Role;
  socket: WebSocketConnection;
}

/** One conformance case. */
export interface Case {
  /** Autobahn-style id, e.g. "5.9" (ours extend the numbering). */
  id: string;
  /** What it checks. */
  title: string;
  /** The roles of ours it runs against (default both). */
  roles?: Role[];
  /** Options for our end. */
  options?: WebSocketOptions & ServeOptions & ConnectOptions;
  /** The raw client's `Sec-WebSocket-Extensions` offer to our server. */
  peerOffer?: string;
  /** The raw server's `Sec-WebSocket-Extensions` answer to our client. */
  peerResponse?: string;
  /** Our end's behaviour: echo (default) or a custom one. */
  handler?: (socket: WebSocketConnection) => Promise<void>;
  /**
   * Set when the RFC allows either of two behaviours and the case accepts
   * the weaker one: the case returns "non-strict" when it saw it.
   */
  run(peer: RawPeer, ours: OurEnd): Promise<void | "non-strict">;
}

/** A group of cases, as in the Autobahn|Testsuite. */
export interface CaseGroup {
  id: number;
  name: string;
  cases: Case[];
}

/** The echo every case expects unless it says otherwise. */
export async function echo(socket: WebSocketConnection): Promise<void> {
  await socket.readable.pipeTo(socket.writable).catch(() => {});
}

/** How long {@linkcode lateEcho} waits before it reads. */
export const LATE_ECHO_MS = 100;

/**
 * An application that sets itself up before it reads (or, on a client, gets
 * its socket after the peer's first bytes came with the handshake's answer,
 * as Autobahn's fuzzing server sends them): it starts reading only after
 * {@linkcode LATE_ECHO_MS}, when a case's bytes have all arrived and a
 * violation among them has been found. Then it echoes each message with a
 * read loop (a write a few microtasks after each read, not inside it as a
 * pipe does).
 */
export async function lateEcho(socket: WebSocketConnection): Promise<void> {
  await delay(LATE_ECHO_MS);
  const writer = socket.writable.getWriter();
  try {
    for await (const message of socket.readable) await writer.write(message);
    await writer.close();
  } catch {
    // The connection failed: `closed` says how.
  }
}

/** A certificate for running cases over TLS. */
export interface TlsSetup {
  cert: string;
  key: string;
}

/** Runs a case against our server: a raw client connects to `serve`. */
export async function runAgainstServer(
  testCase: Case,
  tls?: TlsSetup,
): Promise<void | "non-strict"> {
  let resolveSocket!: (socket: WebSocketConnection) => void;
  const socketPromise = new Promise<WebSocketConnection>((resolve) =>
    resolveSocket = resolve
  );
  const handler = testCase.handler ?? echo;
  let handlerError: unknown;
  const server = serve(
    { hostname: "127.0.0.1", port: 0, ...tls, ...testCase.options },
    async (socket) => {
      resolveSocket(socket);
      try {
        await handler(socket);
      } catch (error) {
        handlerError ??= error;
        socket.close();
      }
    },
  );
  let peer: RawPeer | undefined;
  try {
    peer = await RawPeer.connect(server.addr.port, {
      caCerts: tls ? [tls.cert] : undefined,
      headers: testCase.peerOffer === undefined
        ? {}
        : { "Sec-WebSocket-Extensions": testCase.peerOffer },
    });
    const socket = await socketPromise;
    const outcome = await testCase.run(peer, { role: "server", socket })
      .catch((error) => {
        throw handlerError ?? error;
      });
    if (handlerError !== undefined) throw handlerError;
    return outcome;
  } finally {
    await peer?.close();
    await server.shutdown();
  }
}

/** Runs a case against our client: `connect` to a raw server. */
export async function runAgainstClient(
  testCase: Case,
  tls?: TlsSetup,
): Promise<void | "non-strict"> {
  const raw = new RawServer(tls);
  let peer: RawPeer | undefined;
  let socket: WebSocketConnection | undefined;
  let handling: Promise<void> | undefined;
  try {
    [peer, socket] = await Promise.all([
      raw.accept(
        testCase.peerResponse === undefined
          ? []
          : [`Sec-WebSocket-Extensions: ${testCase.peerResponse}`],
      ),
      tls
        ? connect(`wss://localhost:${raw.port}/`, {
          caCerts: [tls.cert],
          ...testCase.options,
        })
        : connect(`ws://127.0.0.1:${raw.port}/`, testCase.options),
    ]);
    raw.close();
    let handlerError: unknown;
    const opened = socket;
    handling = (testCase.handler ?? echo)(socket).catch((error) => {
      handlerError ??= error;
      opened.close();
    });
    const outcome = await testCase.run(peer, { role: "client", socket })
      .catch((error) => {
        throw handlerError ?? error;
      });
    if (handlerError !== undefined) throw handlerError;
    return outcome;
  } finally {
    raw.close();
    await peer?.close();
    await handling;
    await socket?.closed;
  }
}

// ---- expectations ---------------------------------------------------------

const decoder = new TextDecoder();

function describe(frame: RawFrame): string {
  const names: Record<number, string> = {
    0: "continuation",
    1: "text",
    2: "binary",
    8: "close",
    9: "ping",
    10: "pong",
  };
  const name = names[frame.opcode] ?? `opcode ${frame.opcode}`;
  const extra = frame.opcode === OP.close
    ? ` code ${closeCodeOf(frame)} "${decoder.decode(frame.payload.slice(2))}"`
    : ` ${frame.payload.length} bytes`;
  return `${name}${frame.fin ? "" : " (not final)"}${extra}`;
}

function sameBytes(actual: Uint8Array, expected: Uint8Array): boolean {
  if (actual.length !== expected.length) return false;
  for (let i = 0; i < actual.length; i++) {
    if (actual[i] !== expected[i]) return false;
  }
  return true;
}

/**
 * Expects the echo of one message: a data frame with `opcode` (and its
 * continuations, if our end fragments), with exactly `payload`.
 */
export async function expectMessage(
  peer: RawPeer,
  opcode: number,
  payload: Uint8Array | string,
  ms = EXPECT_MS,
): Promise<void> {
  const expected = bytesOf(payload);
  const what = `the echo of a ${expected.length}-byte ${
    opcode === OP.text ? "text" : "binary"
  } message`;
  const first = await peer.nextFrame(ms, what);
  assert(
    first.opcode === opcode,
    `expected ${what}, found ${describe(first)}`,
  );
  assertEquals(first.rsv, 0, `expected RSV bits 0 in ${what}`);
  const parts = [first.payload];
  let frame = first;
  while (!frame.fin) {
    frame = await peer.nextFrame(ms, `the rest of ${what}`);
    assert(
      frame.opcode === OP.cont,
      `expected a continuation of ${what}, found ${describe(frame)}`,
    );
    parts.push(frame.payload);
  }
  let received = parts[0];
  if (parts.length > 1) {
    received = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let offset = 0;
    for (const part of parts) {
      received.set(part, offset);
      offset += part.length;
    }
  }
  assert(
    sameBytes(received, expected),
    `expected ${what} with the bytes sent, found ${received.length} different bytes`,
  );
}

/** Expects a Pong with exactly `payload`. */
export async function expectPong(
  peer: RawPeer,
  payload: Uint8Array | string = new Uint8Array(0),
): Promise<void> {
  const expected = bytesOf(payload);
  const frame = await peer.nextFrame(EXPECT_MS, "a pong");
  assert(
    frame.opcode === OP.pong && frame.fin,
    `expected a pong, found ${describe(frame)}`,
  );
  assert(
    sameBytes(frame.payload, expected),
    `expected the pong to carry the ping's ${expected.length} bytes, found ${frame.payload.length} other bytes`,
  );
}

/**
 * Expects the TCP connection to end with nothing more sent (RFC 6455 §5.5.1:
 * no data frames after Close).
 */
export async function expectEnd(peer: RawPeer, ms = EXPECT_MS): Promise<void> {
  const event = await peer.next(ms, "the end of the TCP connection");
  if (event.kind === "frame") {
    throw new Error(
      `expected nothing after the Close, found ${describe(event.frame)}`,
    );
  }
}

/**
 * Expects a Close with one of `codes` (undefined: an empty payload) as the
 * next frame, then the end of the TCP connection with nothing after it.
 * Our end failed the connection (RFC 6455 §7.1.7), so it also reports the
 * code on `closed`.
 */
export async function expectFail(
  peer: RawPeer,
  ours: OurEnd,
  code: number,
): Promise<void> {
  const frame = await peer.nextFrame(EXPECT_MS, `a Close ${code}`);
  assert(
    frame.opcode === OP.close,
    `expected a Close ${code}, found ${describe(frame)}`,
  );
  assertEquals(
    closeCodeOf(frame),
    code,
    `expected a Close ${code}, found ${describe(frame)}`,
  );
  assert(frame.fin, "expected a final Close frame");
  // The reason must be valid UTF-8 (RFC 6455 §5.5.1).
  new TextDecoder("utf-8", { fatal: true }).decode(frame.payload.slice(2));
  await expectEnd(peer);
  const result = await ours.socket.closed;
  assertEquals(
    result.closeCode,
    code,
    `expected our end to report ${code}, found ${result.closeCode}`,
  );
  assertEquals(result.wasClean, false, "a failed connection is not clean");
}

/**
 * Completes a normal closing handshake from the peer's side: sends Close
 * (1000 by default), expects it echoed, and the server to end the TCP
 * connection (RFC 6455 §7.1.1: the server closes first; our client waits
 * for the raw server to close it).
 */
export async function closeNormally(
  peer: RawPeer,
  ours: OurEnd,
  code: number | undefined = 1000,
  reason = "",
): Promise<CloseResult> {
  await peer.sendFrames([{
    opcode: OP.close,
    payload: closePayload(code, reason),
  }]);
  await expectCloseEcho(peer, code, reason);
  if (ours.role === "server") await expectEnd(peer);
  else await peer.close();
  const result = await ours.socket.closed;
  assertEquals(result.closeCode, code ?? 1005);
  assertEquals(result.wasClean, true, "expected a clean close");
  return result;
}

/** Expects our end's answer to the peer's Close: the same code (§5.5.1). */
export async function expectCloseEcho(
  peer: RawPeer,
  code: number | undefined,
  _reason = "",
): Promise<void> {
  const frame = await peer.nextFrame(EXPECT_MS, "the Close echo");
  assert(
    frame.opcode === OP.close,
    `expected the Close echo, found ${describe(frame)}`,
  );
  assertEquals(
    closeCodeOf(frame),
    code,
    `expected the Close echoed with ${code ?? "no code"}, found ${
      describe(frame)
    }`,
  );
}

/** Expects no frame for `ms` milliseconds (and the connection still open). */
export async function expectQuiet(peer: RawPeer, ms: number): Promise<void> {
  const event = await peer.quietFor(ms);
  if (event?.kind === "frame") {
    throw new Error(`expected nothing, found ${describe(event.frame)}`);
  }
  if (event?.kind === "end") {
    throw new Error(`expected the connection open, found it ended`);
  }
}

// ---- results ----------------------------------------------------------------

interface Tally {
  passed: number;
  /** The ids of the cases that passed non-strict. */
  nonStrict: string[];
  total: number;
}

const tallies = new Map<string, Tally>();

/** Records one case's outcome in the table. */
export function record(
  group: CaseGroup,
  role: Role,
  testCase: Case,
  outcome: "pass" | "non-strict" | "fail",
): void {
  const key = `${group.id}\t${group.name}\t${role}`;
  const tally = tallies.get(key) ?? { passed: 0, nonStrict: [], total: 0 };
  tally.total++;
  if (outcome !== "fail") tally.passed++;
  if (outcome === "non-strict") tally.nonStrict.push(testCase.id);
  tallies.set(key, tally);
}

/** The table of groups with passed/total, one line per group and role. */
export function resultTable(): string {
  const rows = [...tallies.entries()].map(([key, tally]) => {
    const [id, name, role] = key.split("\t");
    return [
      id.padStart(2),
      name.padEnd(26),
      role.padEnd(6),
      `${tally.passed}/${tally.total}`.padStart(9),
      tally.nonStrict.length > 0
        ? `(${tally.nonStrict.length} non-strict: ${
          tally.nonStrict.join(", ")
        })`
        : "",
    ].join("  ");
  });
  let passed = 0;
  let total = 0;
  for (const tally of tallies.values()) {
    passed += tally.passed;
    total += tally.total;
  }
  return [
    "group  name                        ours     passed",
    ...rows,
    `    ${"all".padEnd(34)}  ${`${passed}/${total}`.padStart(9)}`,
  ].join("\n");
}
