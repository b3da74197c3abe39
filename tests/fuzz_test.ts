/**
 * Property-based fuzzing with fast-check: hostile bytes through the frame
 * decoder and the message assembler, the permessage-deflate inflater and
 * the HTTP head parser (only results or the library's own errors: never
 * another exception, a hang or unbounded buffering), and encode → decode
 * round trips for random frames, messages and chunkings.
 *
 * Bounded for `deno task test` (a few seconds); `FUZZ_RUNS=100000 deno task
 * fuzz` runs longer.
 *
 * @module
 */

// fast-check is a test-only dependency, so it is not in deno.json's imports
// (which JSR users get).
// deno-lint-ignore no-import-prefix
import fc from "npm:fast-check@4.10.2";
import { assertEquals } from "@std/assert";
import { type Frame, Opcode } from "../src/frame.ts";
import { FrameDecoder } from "../src/frame_decoder.ts";
import { encodeFrame } from "../src/frame_encoder.ts";
import { type Message, MessageAssembler } from "../src/message_assembler.ts";
import { WebSocketError } from "../src/websocket_error.ts";
import { HttpHeadError, parseHttpHead } from "../src/http_head.ts";
import { readHttpHead } from "../src/http_head_reader.ts";
import {
  HandshakeRejection,
  validateClientRequest,
} from "../src/server_handshake.ts";
import { validateServerResponse } from "../src/client_handshake.ts";
import { createMessageDeflate } from "../src/permessage_deflate_codec.ts";
import { WebSocketConnection } from "../src/connection.ts";
import { memoryTransportPair } from "./_memory_transport.ts";

const RUNS = Number(Deno.env.get("FUZZ_RUNS") ?? "1000");
const params = { numRuns: RUNS };
// Seeds are printed by fast-check on failure; set FUZZ_SEED to replay.
const seed = Deno.env.get("FUZZ_SEED");
if (seed !== undefined) Object.assign(params, { seed: Number(seed) });

const encoder = new TextEncoder();

// An assertion that narrows types.
function check(
  condition: unknown,
  message = "check failed",
): asserts condition {
  if (!condition) throw new Error(message);
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** Splits `bytes` at the given cut points (sorted, deduplicated). */
function chop(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [
    ...new Set(cuts.map((cut) => cut % (bytes.length + 1))),
  ].sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let from = 0;
  for (const point of [...points, bytes.length]) {
    if (point > from) chunks.push(bytes.slice(from, point));
    from = Math.max(from, point);
  }
  return chunks;
}

interface Limits {
  maxFrameBytes: number;
  maxMessageBytes: number;
}

/**
 * Feeds chunks through a decoder and an assembler the way the connection
 * does; returns what came out, or the WebSocketError that ended it. Any
 * other exception escapes and fails the property.
 */
function feed(
  chunks: Uint8Array[],
  role: "client" | "server",
  limits: Limits,
): { messages: Message[]; controls: Frame[]; error?: WebSocketError } {
  const decoder = new FrameDecoder({
    role,
    maxFrameBytes: limits.maxFrameBytes,
  });
  const controls: Frame[] = [];
  const assembler = new MessageAssembler({
    maxMessageBytes: limits.maxMessageBytes,
    onControlFrame: (frame) => void controls.push(frame),
  });
  const messages: Message[] = [];
  let buffered = 0;
  try {
    for (const chunk of chunks) {
      buffered += chunk.length;
      decoder.decode(chunk, (frame) => {
        // The decoder never hands out a frame over its limit, and control
        // frames are at most 125 bytes (RFC 6455 §5.5).
        check(frame.payload.length <= limits.maxFrameBytes);
        if (frame.opcode >= 8) check(frame.payload.length <= 125);
        const result = assembler.push(frame);
        if (result instanceof Promise) {
          throw new Error("expected no promise without an inflater");
        }
        if (result !== undefined) {
          check(
            typeof result === "string" ||
              result.length <= limits.maxMessageBytes,
          );
          messages.push(result);
        }
      });
    }
  } catch (error) {
    if (!(error instanceof WebSocketError)) throw error;
    // Every error carries a close code that may be sent (RFC 6455 §7.4).
    check(
      error.closeCode === 1002 || error.closeCode === 1007 ||
        error.closeCode === 1009,
      `unexpected close code ${error.closeCode}: ${error.message}`,
    );
    check(error.message.length > 0, "errors say what was wrong");
    return { messages, controls, error };
  }
  check(buffered >= 0);
  return { messages, controls };
}

const limitsArb = fc.record({
  maxFrameBytes: fc.integer({ min: 0, max: 300 }),
  maxMessageBytes: fc.integer({ min: 0, max: 600 }),
});
const roleArb = fc.constantFrom<"client" | "server">("client", "server");
const cutsArb = fc.array(fc.nat(), { maxLength: 20 });

// A frame as a peer could send it, valid or not: any opcode, RSV bits,
// lengths near the limits, masked or not.
const rawFrameArb = fc.record({
  fin: fc.boolean(),
  rsv: fc.constantFrom(0, 0, 0, 0, 1, 2, 4),
  opcode: fc.constantFrom(0, 1, 2, 8, 9, 10, 0, 1, 2, 3, 11),
  masked: fc.boolean(),
  payload: fc.uint8Array({ maxLength: 300 }),
  key: fc.uint8Array({ minLength: 4, maxLength: 4 }),
});

interface RawFrameSpec {
  fin: boolean;
  rsv: number;
  opcode: number;
  masked: boolean;
  payload: Uint8Array;
  key: Uint8Array;
}

function encodeRaw(frame: RawFrameSpec): Uint8Array {
  const { payload } = frame;
  const lengthBytes = payload.length < 126 ? 0 : 2;
  const header = new Uint8Array(2 + lengthBytes + (frame.masked ? 4 : 0));
  header[0] = (frame.fin ? 0x80 : 0) | frame.rsv << 4 | frame.opcode;
  header[1] = (frame.masked ? 0x80 : 0) |
    (lengthBytes ? 126 : payload.length);
  if (lengthBytes) {
    header[2] = payload.length >> 8;
    header[3] = payload.length & 0xff;
  }
  const body = payload.slice();
  if (frame.masked) {
    header.set(frame.key, 2 + lengthBytes);
    for (let i = 0; i < body.length; i++) body[i] ^= frame.key[i & 3];
  }
  return concat([header, body]);
}

// A mutation of a byte string: flip, set, insert, delete or truncate.
const mutationArb = fc.oneof(
  fc.record({ kind: fc.constant("flip"), at: fc.nat(), bit: fc.nat(7) }),
  fc.record({ kind: fc.constant("set"), at: fc.nat(), byte: fc.nat(255) }),
  fc.record({
    kind: fc.constant("insert"),
    at: fc.nat(),
    bytes: fc.uint8Array({ maxLength: 8 }),
  }),
  fc.record({ kind: fc.constant("delete"), at: fc.nat(), count: fc.nat(8) }),
  fc.record({ kind: fc.constant("truncate"), at: fc.nat() }),
);

type Mutation =
  | { kind: "flip"; at: number; bit: number }
  | { kind: "set"; at: number; byte: number }
  | { kind: "insert"; at: number; bytes: Uint8Array }
  | { kind: "delete"; at: number; count: number }
  | { kind: "truncate"; at: number };

function mutate(bytes: Uint8Array, mutations: Mutation[]): Uint8Array {
  let out: Uint8Array = bytes.slice();
  for (const mutation of mutations) {
    const at = out.length === 0 ? 0 : mutation.at % (out.length + 1);
    switch (mutation.kind) {
      case "flip":
        if (at < out.length) out[at] ^= 1 << mutation.bit;
        break;
      case "set":
        if (at < out.length) out[at] = mutation.byte;
        break;
      case "insert":
        out = concat([out.subarray(0, at), mutation.bytes, out.subarray(at)]);
        break;
      case "delete":
        out = concat([
          out.subarray(0, at),
          out.subarray(Math.min(out.length, at + mutation.count)),
        ]);
        break;
      case "truncate":
        out = out.slice(0, at);
        break;
    }
  }
  return out;
}

Deno.test("fuzz: random bytes through decoder + assembler give results or WebSocketError", () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 2048 }),
      cutsArb,
      roleArb,
      limitsArb,
      (bytes, cuts, role, limits) => {
        feed(chop(bytes, cuts), role, limits);
      },
    ),
    params,
  );
});

Deno.test("fuzz: mutated frame sequences give results or WebSocketError", () => {
  fc.assert(
    fc.property(
      fc.array(rawFrameArb, { maxLength: 12 }),
      fc.array(mutationArb, { maxLength: 6 }),
      cutsArb,
      roleArb,
      limitsArb,
      (frames, mutations, cuts, role, limits) => {
        const bytes = mutate(concat(frames.map(encodeRaw)), mutations);
        feed(chop(bytes, cuts), role, limits);
      },
    ),
    params,
  );
});

Deno.test("fuzz: a header announcing more than maxFrameBytes fails at once with 1009", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 2 ** 20 }),
      fc.integer({ min: 1, max: 2 ** 40 }),
      fc.constantFrom(1, 2),
      (maxFrameBytes, extra, opcode) => {
        const length = maxFrameBytes + extra;
        // Only the header: nothing of the payload is sent or buffered.
        const header = new Uint8Array(10);
        header[0] = 0x80 | opcode;
        header[1] = 127;
        new DataView(header.buffer).setBigUint64(2, BigInt(length));
        const decoder = new FrameDecoder({ role: "client", maxFrameBytes });
        try {
          decoder.decode(header, () => {
            throw new Error("expected no frame");
          });
        } catch (error) {
          check(error instanceof WebSocketError, String(error));
          assertEquals(error.closeCode, 1009);
          return;
        }
        throw new Error(
          `expected 1009 for ${length} > ${maxFrameBytes}, found nothing`,
        );
      },
    ),
    params,
  );
});

// Parses what a socket sent: whole frames only, none after a Close.
function framesSent(bytes: Uint8Array): { opcode: number; code?: number }[] {
  const frames: { opcode: number; code?: number }[] = [];
  let at = 0;
  while (at < bytes.length) {
    check(!frames.some((f) => f.opcode === 8), "nothing after our Close");
    check(at + 2 <= bytes.length, "whole frames only");
    const opcode = bytes[at] & 0xf;
    let length = bytes[at + 1] & 0x7f;
    let header = 2;
    if (length === 126) {
      length = bytes[at + 2] << 8 | bytes[at + 3];
      header = 4;
    } else if (length === 127) {
      length = Number(
        new DataView(bytes.buffer, bytes.byteOffset + at + 2, 8)
          .getBigUint64(0),
      );
      header = 10;
    }
    const masked = (bytes[at + 1] & 0x80) !== 0;
    if (masked) header += 4;
    check(at + header + length <= bytes.length, "whole frames only");
    const payload = bytes.slice(at + header, at + header + length);
    if (masked) {
      for (let i = 0; i < payload.length; i++) {
        payload[i] ^= bytes[at + header - 4 + (i & 3)];
      }
    }
    frames.push({
      opcode,
      code: opcode === 8 && payload.length >= 2
        ? payload[0] << 8 | payload[1]
        : undefined,
    });
    at += header + length;
  }
  return frames;
}

Deno.test("fuzz: a socket fed hostile bytes always ends, sends whole frames and nothing after its Close", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(rawFrameArb, { maxLength: 8 }),
      fc.array(mutationArb, { maxLength: 4 }),
      cutsArb,
      roleArb,
      fc.boolean(),
      async (frames, mutations, cuts, role, endWithEof) => {
        const [peer, ours] = memoryTransportPair();
        const socket = new WebSocketConnection({
          role,
          transport: ours,
          closeTimeoutMs: 100,
          maxMessageBytes: 500,
        });
        const echo = socket.readable.pipeTo(socket.writable).catch(() => {});
        const writer = peer.writable.getWriter();
        const reader = peer.readable.getReader();
        const draining = (async () => {
          while (!(await reader.read()).done);
        })();
        const bytes = mutate(concat(frames.map(encodeRaw)), mutations);
        for (const chunk of chop(bytes, cuts)) {
          await writer.write(chunk).catch(() => {});
        }
        if (endWithEof) await writer.close().catch(() => {});
        else {
          // A peer that neither ends nor sends Close: our close() must
          // still end the socket, within the close timeout.
          await new Promise((resolve) => setTimeout(resolve, 5));
          socket.close();
        }
        // Ends by itself after the peer's EOF (or a Close answered, or a
        // failure), and after close() at the latest at the close timeout.
        let timer: ReturnType<typeof setTimeout> | undefined;
        const result = await Promise.race([
          socket.closed,
          new Promise<undefined>((resolve) => {
            timer = setTimeout(() => resolve(undefined), 2000);
          }),
        ]);
        clearTimeout(timer);
        check(result !== undefined, "the socket ended within 2 s");
        await writer.close().catch(() => {});
        await echo;
        await draining;
        const sent = framesSent(concat(ours.written));
        const close = sent.find((f) => f.opcode === 8);
        if (close?.code !== undefined) {
          check(
            [1000, 1001, 1002, 1003, 1005, 1007, 1008, 1009, 1010, 1011]
              .includes(close.code) ||
              (close.code >= 3000 && close.code < 5000),
            `sent close code ${close.code}`,
          );
        }
      },
    ),
    { ...params, numRuns: Math.max(1, Math.floor(RUNS / 5)) },
  );
});

// ---- round trips ----------------------------------------------------------

const frameArb: fc.Arbitrary<Frame> = fc.oneof(
  fc.record({
    fin: fc.boolean(),
    rsv1: fc.constant(false),
    opcode: fc.constantFrom<Opcode>(
      Opcode.Continuation,
      Opcode.Text,
      Opcode.Binary,
    ),
    payload: fc.oneof(
      fc.uint8Array({ maxLength: 200 }),
      fc.integer({ min: 0, max: 70_000 }).map((n) => new Uint8Array(n)),
    ),
  }),
  fc.record({
    fin: fc.constant(true),
    rsv1: fc.constant(false),
    opcode: fc.constantFrom<Opcode>(Opcode.Ping, Opcode.Pong, Opcode.Close),
    payload: fc.uint8Array({ maxLength: 125 }),
  }),
);

Deno.test("fuzz: encode → any chunking → decode gives the same frames", () => {
  fc.assert(
    fc.property(
      fc.array(frameArb, { maxLength: 10 }),
      cutsArb,
      fc.boolean(),
      (frames, cuts, mask) => {
        const bytes = concat(
          frames.flatMap((frame) => encodeFrame(frame, mask)),
        );
        // Copies: the encoder may return views of the payloads.
        const expected = frames.map((f) => ({
          ...f,
          payload: f.payload.slice(),
        }));
        const decoder = new FrameDecoder({
          role: mask ? "server" : "client",
        });
        const decoded: Frame[] = [];
        for (const chunk of chop(bytes, cuts)) {
          decoder.decode(
            chunk,
            (frame) =>
              decoded.push({ ...frame, payload: frame.payload.slice() }),
          );
        }
        assertEquals(decoded.length, expected.length);
        decoded.forEach((frame, i) => {
          assertEquals(frame.fin, expected[i].fin);
          assertEquals(frame.rsv1, expected[i].rsv1);
          assertEquals(frame.opcode, expected[i].opcode);
          assertEquals(frame.payload, expected[i].payload);
        });
        check(!decoder.hasPartialFrame);
      },
    ),
    params,
  );
});

// A message, its fragmentation and the pings between its fragments.
const messageArb = fc.record({
  text: fc.boolean(),
  content: fc.oneof(
    fc.string({ unit: "grapheme", maxLength: 60 }),
    fc.string({ maxLength: 60 }),
  ),
  binary: fc.uint8Array({ maxLength: 200 }),
  cuts: fc.array(fc.nat(), { maxLength: 6 }),
  pings: fc.array(fc.uint8Array({ maxLength: 10 }), { maxLength: 3 }),
});

Deno.test("fuzz: fragmented messages with pings between survive encode → chop → decode → assemble", () => {
  fc.assert(
    fc.property(
      fc.array(messageArb, { maxLength: 6 }),
      cutsArb,
      roleArb,
      (messages, cuts, role) => {
        const mask = role === "server";
        const parts: Uint8Array[] = [];
        const expectedMessages: Message[] = [];
        const expectedPings: Uint8Array[] = [];
        for (const message of messages) {
          const payload = message.text
            ? encoder.encode(message.content)
            : message.binary;
          // Fragments split anywhere, inside UTF-8 sequences too.
          const pieces = chop(payload, message.cuts);
          if (pieces.length === 0) pieces.push(new Uint8Array(0));
          pieces.forEach((piece, i) => {
            parts.push(...encodeFrame({
              fin: i === pieces.length - 1,
              rsv1: false,
              opcode: i > 0
                ? Opcode.Continuation
                : message.text
                ? Opcode.Text
                : Opcode.Binary,
              payload: piece,
            }, mask));
            const ping = message.pings[i];
            if (ping !== undefined && i < pieces.length - 1) {
              parts.push(...encodeFrame({
                fin: true,
                rsv1: false,
                opcode: Opcode.Ping,
                payload: ping,
              }, mask));
              expectedPings.push(ping);
            }
          });
          expectedMessages.push(
            message.text ? message.content : message.binary.slice(),
          );
        }
        const result = feed(chop(concat(parts), cuts), role, {
          maxFrameBytes: 1 << 20,
          maxMessageBytes: 1 << 20,
        });
        assertEquals(result.error, undefined);
        assertEquals(result.messages, expectedMessages);
        assertEquals(result.controls.map((f) => f.payload), expectedPings);
      },
    ),
    params,
  );
});

// ---- permessage-deflate ----------------------------------------------------

const deflateParams = {
  serverNoContextTakeover: false,
  clientNoContextTakeover: false,
  serverMaxWindowBits: 15,
  clientMaxWindowBits: 15,
};

Deno.test("fuzz: deflate round trips, and mutated compressed payloads inflate or fail with WebSocketError", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.uint8Array({ maxLength: 2000 }),
      fc.array(mutationArb, { maxLength: 4 }),
      fc.integer({ min: 1, max: 4096 }),
      async (message, mutations, maxBytes) => {
        const sender = createMessageDeflate(deflateParams, "server", {
          threshold: 0,
        });
        const receiver = createMessageDeflate(deflateParams, "client", {});
        const compressed = await sender.deflate(message);
        check(compressed !== undefined);
        const roundTrip = await receiver.inflater.inflate(
          compressed,
          true,
          1 << 20,
        );
        // RFC 7692 §7.2.3.6: an empty message may arrive as one 0x00 byte.
        if (message.length > 0) assertEquals(roundTrip, message);
        const fresh = createMessageDeflate(deflateParams, "client", {});
        try {
          const inflated = await fresh.inflater.inflate(
            mutate(compressed, mutations),
            true,
            maxBytes,
          );
          check(inflated.length <= maxBytes, "the inflate limit holds");
        } catch (error) {
          check(error instanceof WebSocketError, String(error));
          check(
            error.closeCode === 1007 || error.closeCode === 1009 ||
              error.closeCode === 1002,
            `close code ${error.closeCode}`,
          );
        }
      },
    ),
    { ...params, numRuns: Math.max(1, Math.floor(RUNS / 3)) },
  );
});

// ---- HTTP heads -------------------------------------------------------------

const headerNameArb = fc.oneof(
  fc.constantFrom(
    "Host",
    "Upgrade",
    "Connection",
    "Sec-WebSocket-Key",
    "Sec-WebSocket-Version",
    "Sec-WebSocket-Protocol",
    "Sec-WebSocket-Extensions",
    "Sec-WebSocket-Accept",
    "Origin",
  ),
  fc.string({ maxLength: 12 }),
);
const headerValueArb = fc.oneof(
  fc.constantFrom(
    "websocket",
    "Upgrade",
    "keep-alive, Upgrade",
    "13",
    "dGhlIHNhbXBsZSBub25jZQ==",
    "chat, superchat",
    "permessage-deflate; client_max_window_bits",
    "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
  ),
  fc.string({ maxLength: 30 }),
  fc.string({ unit: "binary", maxLength: 30 }),
);
const startLineArb = fc.oneof(
  fc.constantFrom(
    "GET / HTTP/1.1",
    "GET /chat?x=1 HTTP/1.1",
    "HTTP/1.1 101 Switching Protocols",
    "POST / HTTP/1.0",
    "GET  / HTTP/1.1",
    "GET / HTTP/2",
  ),
  fc.string({ maxLength: 40 }),
);
const headArb = fc.record({
  start: startLineArb,
  fields: fc.array(fc.tuple(headerNameArb, headerValueArb), { maxLength: 12 }),
  separator: fc.constantFrom(": ", ":", " : ", ":\t", "\r\n "),
  lineEnd: fc.constantFrom("\r\n", "\r\n", "\n", "\r"),
});

interface HeadSpec {
  start: string;
  fields: [string, string][];
  separator: string;
  lineEnd: string;
}

function headBytes(head: HeadSpec): Uint8Array {
  const text = [
    head.start,
    ...head.fields.map(([name, value]) => name + head.separator + value),
  ].join(head.lineEnd) + "\r\n\r\n";
  // Latin-1, as on the wire.
  return Uint8Array.from(text, (c) => c.charCodeAt(0) & 0xff);
}

Deno.test("fuzz: random HTTP heads parse or fail with HttpHeadError; values never hold CR, LF or NUL", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(
        headArb.map(headBytes),
        fc.uint8Array({ maxLength: 400 }),
        fc.tuple(
          headArb.map(headBytes),
          fc.array(mutationArb, { maxLength: 4 }),
        )
          .map(([bytes, mutations]) => mutate(bytes, mutations)),
      ),
      cutsArb,
      fc.integer({ min: 16, max: 2048 }),
      async (bytes, cuts, maxHeaderBytes) => {
        let head;
        try {
          head = parseHttpHead(bytes);
        } catch (error) {
          check(error instanceof HttpHeadError, String(error));
          check(error.status === 400 || error.status === 431);
        }
        if (head) {
          for (const [name, value] of head.fields) {
            check(!/[\r\n\0]/.test(name + value), "no CR/LF/NUL in fields");
          }
          try {
            validateClientRequest(head);
          } catch (error) {
            // A request line that doesn't parse is an HttpHeadError (400).
            check(
              error instanceof HandshakeRejection ||
                error instanceof HttpHeadError,
              String(error),
            );
          }
          try {
            await validateServerResponse(head, {
              key: "dGhlIHNhbXBsZSBub25jZQ==",
            });
          } catch (error) {
            check(error instanceof WebSocketError, String(error));
          }
        }
        // The streaming reader, over any chunking and a size limit.
        try {
          const { leftover } = await readHttpHead(
            ReadableStream.from(chop(bytes, cuts)),
            { maxHeaderBytes },
          );
          check(leftover.length <= bytes.length);
        } catch (error) {
          check(error instanceof Error, String(error));
          check(
            error instanceof HttpHeadError ||
              /end of the stream/.test(error.message),
            `unexpected ${error.name}: ${error.message}`,
          );
        }
      },
    ),
    params,
  );
});
