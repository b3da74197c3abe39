/**
 * Autobahn groups 12 (compressed messages of many sizes) and 13 (each
 * permessage-deflate parameter combination), RFC 7692. The raw peer
 * compresses and inflates with node:zlib on its own, independently of
 * src/permessage_deflate.ts, and checks what our end sends: RSV1 on the
 * first frame of a compressed message only, a window no larger than agreed,
 * and messages that inflate on their own when no context takeover was
 * agreed for our direction.
 *
 * @module
 */

import { assert, assertEquals } from "@std/assert";
import { constants, deflateRawSync } from "node:zlib";
import { inflateRaw } from "./_inflate.ts";
import {
  type Case,
  type CaseGroup,
  closeNormally,
  expectEnd,
  type OurEnd,
} from "./_cases.ts";
import { binaryOfBytes, textOfBytes } from "./_cases_basic.ts";
import {
  bytesOf,
  closeCodeOf,
  concat,
  EXPECT_MS,
  type FrameSpec,
  OP,
  type RawPeer,
} from "./_raw_peer.ts";

/** permessage-deflate parameters, as offered or agreed. */
export interface DeflateParams {
  serverNoContextTakeover?: boolean;
  clientNoContextTakeover?: boolean;
  serverMaxWindowBits?: number;
  /** `true`: the bare parameter (an offer without a value). */
  clientMaxWindowBits?: number | true;
}

/** Renders parameters as a `Sec-WebSocket-Extensions` element. */
export function renderParams(params: DeflateParams): string {
  const parts = ["permessage-deflate"];
  if (params.serverNoContextTakeover) parts.push("server_no_context_takeover");
  if (params.clientNoContextTakeover) parts.push("client_no_context_takeover");
  if (params.serverMaxWindowBits !== undefined) {
    parts.push(`server_max_window_bits=${params.serverMaxWindowBits}`);
  }
  if (params.clientMaxWindowBits === true) parts.push("client_max_window_bits");
  else if (params.clientMaxWindowBits !== undefined) {
    parts.push(`client_max_window_bits=${params.clientMaxWindowBits}`);
  }
  return parts.join("; ");
}

/** Parses an agreed `permessage-deflate` response element. */
export function parseAgreed(value: string): DeflateParams {
  const [name, ...rest] = value.split(";").map((part) => part.trim());
  assertEquals(name, "permessage-deflate");
  const params: DeflateParams = {};
  for (const part of rest) {
    const [key, raw] = part.split("=").map((s) => s.trim());
    const bits = raw === undefined ? undefined : Number(raw.replace(/"/g, ""));
    if (key === "server_no_context_takeover") {
      params.serverNoContextTakeover = true;
    } else if (key === "client_no_context_takeover") {
      params.clientNoContextTakeover = true;
    } else if (key === "server_max_window_bits") {
      params.serverMaxWindowBits = bits;
    } else if (key === "client_max_window_bits") {
      params.clientMaxWindowBits = bits ?? true;
    } else throw new Error(`unexpected parameter ${part} in ${value}`);
  }
  return params;
}

function headerOf(head: string, name: string): string | undefined {
  for (const line of head.split("\r\n").slice(1)) {
    const colon = line.indexOf(":");
    if (line.slice(0, colon).trim().toLowerCase() === name) {
      return line.slice(colon + 1).trim();
    }
  }
  return undefined;
}

/** The raw peer's side of the compression: independent of our code. */
class PeerCodec {
  readonly #ownBits: number;
  readonly #ourBits: number;
  readonly #ourNoContext: boolean;
  // The last 32 KiB our end sent compressed (its LZ77 history, §7.2.2).
  #history = new Uint8Array(0);

  constructor(ownBits: number, ourBits: number, ourNoContext: boolean) {
    this.#ownBits = ownBits;
    this.#ourBits = ourBits;
    this.#ourNoContext = ourNoContext;
  }

  /** Compresses one message on its own, ending in a sync flush (§7.2.1). */
  compress(message: Uint8Array): Uint8Array {
    // zlib can't deflate raw with an 8-bit window; RLE matches (distance
    // 1) are valid under any window.
    const compressed = deflateRawSync(message, {
      windowBits: Math.max(this.#ownBits, 9),
      strategy: this.#ownBits === 8 ? constants.Z_RLE : undefined,
      finishFlush: constants.Z_SYNC_FLUSH,
    });
    const bytes = new Uint8Array(compressed);
    assertEquals([...bytes.subarray(bytes.length - 4)], [0, 0, 255, 255]);
    return bytes.subarray(0, bytes.length - 4);
  }

  /**
   * Inflates a compressed message from our end with the test's own
   * decoder: back-references must stay within the agreed window, and
   * within the message itself when our end may not take over its context.
   */
  inflate(payload: Uint8Array): Uint8Array {
    const data = concat([payload, new Uint8Array([0, 0, 255, 255])]);
    const history = this.#ourNoContext ? new Uint8Array(0) : this.#history;
    const { output, maxDistance } = inflateRaw(data, history);
    assert(
      maxDistance <= 2 ** this.#ourBits,
      `expected back-references within the agreed ${this.#ourBits}-bit window (${
        2 ** this.#ourBits
      } bytes), found one of ${maxDistance} bytes`,
    );
    // The window our end may refer back to in its next message.
    const window = concat([this.#history, output]);
    this.#history = window.slice(Math.max(0, window.length - 32768));
    return output;
  }
}

interface Negotiated {
  agreed: DeflateParams;
  codec: PeerCodec;
}

function negotiated(peer: RawPeer, ours: OurEnd): Negotiated {
  // Our server's 101 (read by the raw client), or the raw server's answer
  // (which our client must have taken as it was).
  const value = ours.role === "server"
    ? headerOf(peer.head, "sec-websocket-extensions")
    : ours.socket.extensions;
  if (!value) throw new Error("expected permessage-deflate to be agreed");
  assertEquals(ours.socket.extensions, value);
  const agreed = parseAgreed(value);
  const serverBits = agreed.serverMaxWindowBits ?? 15;
  const clientBits = typeof agreed.clientMaxWindowBits === "number"
    ? agreed.clientMaxWindowBits
    : 15;
  const codec = ours.role === "server"
    ? new PeerCodec(
      clientBits,
      serverBits,
      agreed.serverNoContextTakeover === true,
    )
    : new PeerCodec(
      serverBits,
      clientBits,
      agreed.clientNoContextTakeover === true,
    );
  return { agreed, codec };
}

/** Sends a message compressed, in `fragments` frames (RSV1 on the first). */
async function sendCompressed(
  peer: RawPeer,
  codec: PeerCodec,
  opcode: number,
  message: Uint8Array,
  fragments = 1,
): Promise<void> {
  const payload = codec.compress(message);
  const frames: FrameSpec[] = [];
  const size = Math.ceil(payload.length / fragments);
  for (let i = 0; i < fragments; i++) {
    frames.push({
      opcode: i === 0 ? opcode : OP.cont,
      payload: payload.subarray(i * size, (i + 1) * size),
      fin: i === fragments - 1,
      rsv: i === 0 ? 4 : 0,
    });
  }
  await peer.sendFrames(frames);
}

/** Expects the echo of `message`, compressed or not, and inflates it. */
async function expectEcho(
  peer: RawPeer,
  codec: PeerCodec,
  opcode: number,
  message: Uint8Array,
): Promise<boolean> {
  const first = await peer.nextFrame(EXPECT_MS, "an echo");
  assertEquals(
    first.opcode,
    opcode,
    `the echo's opcode (${new TextDecoder().decode(first.payload.slice(2))})`,
  );
  // RFC 7692 §6: RSV1 only (never RSV2/3) and only on the first frame.
  assert(first.rsv === 0 || first.rsv === 4, `RSV ${first.rsv}`);
  const parts = [first.payload];
  let frame = first;
  while (!frame.fin) {
    frame = await peer.nextFrame(EXPECT_MS, "a continuation");
    assertEquals(frame.opcode, OP.cont);
    assertEquals(frame.rsv, 0, "RSV1 is set on the first frame only");
    parts.push(frame.payload);
  }
  const compressed = first.rsv === 4;
  const payload = concat(parts);
  const received = compressed ? codec.inflate(payload) : payload;
  assertEquals(received.length, message.length, "the echo's length");
  assert(
    received.every((byte, i) => byte === message[i]),
    "expected the echo to carry the bytes sent",
  );
  return compressed;
}

// Bytes that compress, with repeats at distances past small windows.
function compressible(bytes: number, seed: number): Uint8Array {
  const block = binaryOfBytes(700).map((b, i) =>
    (b * 31 + seed + i * 7) & 0xff
  );
  const out = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) out[i] = block[i % block.length];
  return out;
}

// ---- group 12 ---------------------------------------------------------------

const sizes = [16, 64, 256, 1024, 4096, 16384, 65536, 131072];
const compressionGroup: Case[] = [];
for (const [sub, opcode] of [[1, OP.text], [2, OP.binary]] as const) {
  sizes.forEach((size, index) => {
    compressionGroup.push({
      id: `12.${sub}.${index + 1}`,
      title: `10 compressed ${
        opcode === OP.text ? "text" : "binary"
      } messages of ${size} bytes, echoed compressed`,
      options: { compression: { threshold: 0 } },
      peerOffer: "permessage-deflate; client_max_window_bits",
      peerResponse: "permessage-deflate",
      async run(peer, ours) {
        const { codec } = negotiated(peer, ours);
        for (let i = 0; i < 10; i++) {
          const message = opcode === OP.text
            ? textOfBytes(size)
            : compressible(size, i);
          await sendCompressed(peer, codec, opcode, message, 1 + (i % 3));
          const compressed = await expectEcho(peer, codec, opcode, message);
          assert(compressed, "threshold 0: every echo is compressed");
        }
        await closeNormally(peer, ours);
      },
    });
  });
}

async function expectFailWith(
  peer: RawPeer,
  ours: OurEnd,
  codes: number[],
): Promise<number> {
  const frame = await peer.nextFrame(EXPECT_MS, `a Close ${codes.join("/")}`);
  assertEquals(frame.opcode, OP.close);
  const code = closeCodeOf(frame)!;
  assert(codes.includes(code), `expected ${codes.join(" or ")}, found ${code}`);
  await expectEnd(peer);
  assertEquals((await ours.socket.closed).closeCode, code);
  return code;
}

compressionGroup.push(
  {
    id: "12.3.1",
    title: "uncompressed and compressed messages mixed (RSV1 per message)",
    peerOffer: "permessage-deflate",
    peerResponse: "permessage-deflate",
    async run(peer, ours) {
      const { codec } = negotiated(peer, ours);
      const text = textOfBytes(3000);
      await peer.sendFrames([{ opcode: OP.text, payload: text }]);
      await expectEcho(peer, codec, OP.text, text);
      await sendCompressed(peer, codec, OP.text, text);
      await expectEcho(peer, codec, OP.text, text);
      await peer.sendFrames([{ opcode: OP.binary, payload: text }]);
      await expectEcho(peer, codec, OP.binary, text);
      await closeNormally(peer, ours);
    },
  },
  {
    id: "12.3.2",
    title: "RSV1 on a continuation frame → 1002 (RFC 7692 §6)",
    peerOffer: "permessage-deflate",
    peerResponse: "permessage-deflate",
    async run(peer, ours) {
      const { codec } = negotiated(peer, ours);
      const payload = codec.compress(bytesOf("Hello, compressed world"));
      await peer.sendFrames([
        {
          opcode: OP.text,
          payload: payload.subarray(0, 5),
          fin: false,
          rsv: 4,
        },
        { opcode: OP.cont, payload: payload.subarray(5), rsv: 4 },
      ]);
      await expectFailWith(peer, ours, [1002]);
    },
  },
  {
    id: "12.3.3",
    title: "RSV1 on a ping → 1002 (RFC 7692 §6: data frames only)",
    peerOffer: "permessage-deflate",
    peerResponse: "permessage-deflate",
    async run(peer, ours) {
      await peer.sendFrames([{ opcode: OP.ping, payload: "x", rsv: 4 }]);
      await expectFailWith(peer, ours, [1002]);
    },
  },
  {
    id: "12.3.4",
    title: "compressed data that does not inflate → 1002 or 1007",
    peerOffer: "permessage-deflate",
    peerResponse: "permessage-deflate",
    async run(peer, ours) {
      // A stored block whose LEN and NLEN disagree.
      await peer.sendFrames([{
        opcode: OP.binary,
        payload: new Uint8Array([0x00, 0x05, 0x00, 0x00, 0x00, 1, 2, 3, 4, 5]),
        rsv: 4,
      }]);
      await expectFailWith(peer, ours, [1002, 1007]);
    },
  },
  {
    id: "12.3.5",
    title: "compressed text that inflates to invalid UTF-8 → 1007",
    peerOffer: "permessage-deflate",
    peerResponse: "permessage-deflate",
    async run(peer, ours) {
      const { codec } = negotiated(peer, ours);
      await sendCompressed(
        peer,
        codec,
        OP.text,
        new Uint8Array([0x48, 0x69, 0xed, 0xa0, 0x80]),
      );
      await expectFailWith(peer, ours, [1007]);
    },
  },
  {
    id: "12.3.6",
    title:
      "a compression bomb (16 MiB of zeros) over maxMessageBytes 1 MiB → 1009",
    options: { maxMessageBytes: 1024 * 1024 },
    peerOffer: "permessage-deflate",
    peerResponse: "permessage-deflate",
    async run(peer, ours) {
      const { codec } = negotiated(peer, ours);
      await sendCompressed(peer, codec, OP.binary, new Uint8Array(16 << 20));
      await expectFailWith(peer, ours, [1009]);
    },
  },
  {
    id: "12.3.7",
    title:
      "an empty compressed message (a single 0x00 byte, RFC 7692 §7.2.3.6)",
    peerOffer: "permessage-deflate",
    peerResponse: "permessage-deflate",
    async run(peer, ours) {
      const { codec } = negotiated(peer, ours);
      await peer.sendFrames([{
        opcode: OP.text,
        payload: new Uint8Array([0x00]),
        rsv: 4,
      }]);
      await expectEcho(peer, codec, OP.text, new Uint8Array(0));
      await closeNormally(peer, ours);
    },
  },
);

// ---- group 13 ---------------------------------------------------------------

// Each parameter combination (Autobahn 13.1-13.7 and more): the raw client
// offers it to our server; the raw server answers our client with it.
const COMBINATIONS: DeflateParams[] = [
  {},
  { clientNoContextTakeover: true },
  { serverNoContextTakeover: true },
  { serverNoContextTakeover: true, clientNoContextTakeover: true },
  { serverMaxWindowBits: 9 },
  { serverMaxWindowBits: 8 },
  { serverMaxWindowBits: 12, serverNoContextTakeover: true },
  { clientMaxWindowBits: 9 },
  { clientMaxWindowBits: 8, serverMaxWindowBits: 8 },
  {
    serverNoContextTakeover: true,
    clientNoContextTakeover: true,
    serverMaxWindowBits: 10,
    clientMaxWindowBits: 11,
  },
];

const parameterGroup: Case[] = [];
COMBINATIONS.forEach((params, index) => {
  // Our client always offers client_max_window_bits; a raw client offer of
  // client_max_window_bits=N says the client will use at most N bits.
  const offer = renderParams({
    ...params,
    clientMaxWindowBits: params.clientMaxWindowBits ?? true,
  });
  const response = renderParams(params);
  parameterGroup.push({
    id: `13.${index + 1}`,
    title: `${response}: messages both ways, windows and contexts as agreed`,
    options: { compression: { threshold: 0 } },
    peerOffer: offer,
    peerResponse: response,
    async run(peer, ours) {
      const { agreed, codec } = negotiated(peer, ours);
      if (ours.role === "server") {
        // RFC 7692 §7.1.1.1 / §7.1.2.1: what the client asked of the server
        // is in the answer (a server may agree to more, never less).
        if (params.serverNoContextTakeover) {
          assert(agreed.serverNoContextTakeover, "server_no_context_takeover");
        }
        if (params.serverMaxWindowBits !== undefined) {
          assert(
            (agreed.serverMaxWindowBits ?? 15) <= params.serverMaxWindowBits,
            "server_max_window_bits",
          );
        }
      }
      const messages: [number, Uint8Array][] = [
        [OP.text, textOfBytes(100)],
        [OP.binary, compressible(5000, 1)],
        // The same again: context takeover may shrink it.
        [OP.binary, compressible(5000, 1)],
        [OP.binary, compressible(40_000, 2)],
        [OP.text, textOfBytes(20_000)],
      ];
      for (const [i, [opcode, message]] of messages.entries()) {
        await sendCompressed(peer, codec, opcode, message, 1 + (i % 2));
        await expectEcho(peer, codec, opcode, message);
      }
      await closeNormally(peer, ours);
    },
  });
});
parameterGroup.push({
  id: "13.11",
  title: "an unacceptable offer, then an acceptable one: the second is agreed",
  roles: ["server"],
  options: { compression: { threshold: 0 } },
  peerOffer:
    "permessage-deflate; server_max_window_bits=20, permessage-deflate; client_max_window_bits",
  async run(peer, ours) {
    const { agreed, codec } = negotiated(peer, ours);
    assertEquals(agreed.serverMaxWindowBits, undefined);
    await sendCompressed(peer, codec, OP.text, textOfBytes(2000));
    await expectEcho(peer, codec, OP.text, textOfBytes(2000));
    await closeNormally(peer, ours);
  },
});

/** Groups 12 and 13. */
export const deflateGroups: CaseGroup[] = [
  { id: 12, name: "permessage-deflate", cases: compressionGroup },
  { id: 13, name: "deflate parameters", cases: parameterGroup },
];
