/**
 * Autobahn groups 1 (framing), 2 (ping/pong), 3 (reserved bits) and
 * 4 (opcodes).
 *
 * @module
 */

import {
  type Case,
  type CaseGroup,
  closeNormally,
  expectFail,
  expectMessage,
  expectPong,
  expectQuiet,
  lateEcho,
} from "./_cases.ts";
import { delay, type FrameSpec, OP, type RawPeer } from "./_raw_peer.ts";

/** Valid UTF-8 text of exactly `bytes` bytes, with multi-byte characters. */
export function textOfBytes(bytes: number): Uint8Array {
  const pattern = new TextEncoder().encode("Hello, wörld ✓ 😀 ");
  const out = new Uint8Array(bytes);
  let offset = 0;
  while (offset + pattern.length <= bytes) {
    out.set(pattern, offset);
    offset += pattern.length;
  }
  out.fill(0x2a, offset); // "*" up to the end
  return out;
}

/** Binary bytes 0..255 repeated. */
export function binaryOfBytes(bytes: number): Uint8Array {
  const out = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) out[i] = i & 0xff;
  return out;
}

function echoCase(
  id: string,
  title: string,
  opcode: number,
  payload: Uint8Array,
  send: { chunkBytes?: number; delayMs?: number } = {},
): Case {
  return {
    id,
    title,
    async run(peer, ours) {
      await peer.sendFrames([{ opcode, payload }], send);
      await expectMessage(peer, opcode, payload, 20_000);
      await closeNormally(peer, ours);
    },
  };
}

function failCase(
  id: string,
  title: string,
  frames: FrameSpec[],
  code = 1002,
  options: { chunkBytes?: number; delayMs?: number } = {},
): Case {
  return {
    id,
    title,
    async run(peer, ours) {
      await peer.sendFrames(frames, options);
      await expectFail(peer, ours, code);
    },
  };
}

/** How the raw peer cuts a case's bytes into TCP writes (as Autobahn). */
export type Chops = "together" | "frame-wise" | "octet-wise";

/**
 * Sends `frames` without waiting for anything in between: in one TCP write,
 * one write per frame (a few milliseconds apart, so they arrive in separate
 * reads), or one write per byte.
 */
export async function sendChopped(
  peer: RawPeer,
  frames: FrameSpec[],
  chops: Chops,
): Promise<void> {
  if (chops === "frame-wise") {
    for (const [index, frame] of frames.entries()) {
      if (index > 0) await delay(2);
      await peer.sendFrames([frame]);
    }
    return;
  }
  await peer.sendFrames(
    frames,
    chops === "octet-wise" ? { chunkBytes: 1, delayMs: 0 } : {},
  );
}

/**
 * A valid text, a bad frame and a ping, sent without waiting for the echo
 * (Autobahn 3.2–3.4, 4.1.3–4.2.5). The application reads only once they
 * have all arrived ({@linkcode lateEcho}), so the violation is found before
 * it reads. RFC 6455 §7.1.7 with nothing lost: the text, which arrived whole
 * before the violation, still reaches the application and its echo goes out
 * before our Close 1002; the ping after the violation is never answered.
 */
function echoThenFail(
  id: string,
  title: string,
  bad: FrameSpec,
  chops: Chops,
): Case {
  return {
    id,
    title: `${title} (${chops})`,
    handler: lateEcho,
    async run(peer, ours) {
      const text = "Hello, world!";
      await sendChopped(peer, [
        { opcode: OP.text, payload: text },
        bad,
        { opcode: OP.ping, payload: "ping" },
      ], chops);
      await expectMessage(peer, OP.text, text);
      await expectFail(peer, ours, 1002);
    },
  };
}

const MiB = 1024 * 1024;
const sizes = [0, 125, 126, 127, 128, 65535, 65536];

const framing: Case[] = [];
sizes.forEach((size, index) => {
  framing.push(
    echoCase(
      `1.1.${index + 1}`,
      `text message of ${size} bytes`,
      OP.text,
      textOfBytes(size),
    ),
  );
});
framing.push(
  echoCase(
    "1.1.8",
    "text message of 65536 bytes in TCP writes of 997 bytes",
    OP.text,
    textOfBytes(65536),
    { chunkBytes: 997 },
  ),
  echoCase(
    "1.1.9",
    "text message of 16 MiB in one frame",
    OP.text,
    textOfBytes(16 * MiB),
  ),
);
sizes.forEach((size, index) => {
  framing.push(
    echoCase(
      `1.2.${index + 1}`,
      `binary message of ${size} bytes`,
      OP.binary,
      binaryOfBytes(size),
    ),
  );
});
framing.push(
  echoCase(
    "1.2.8",
    "binary message of 65536 bytes in TCP writes of 997 bytes",
    OP.binary,
    binaryOfBytes(65536),
    { chunkBytes: 997 },
  ),
  echoCase(
    "1.2.9",
    "binary message of 16 MiB in one frame",
    OP.binary,
    binaryOfBytes(16 * MiB),
  ),
  {
    id: "1.3.1",
    title: "a frame unmasked by a client / masked by a server → 1002 (§5.1)",
    async run(peer, ours) {
      await peer.sendFrames([{
        opcode: OP.text,
        payload: "Hello",
        mask: !peer.masks,
      }]);
      await expectFail(peer, ours, 1002);
    },
  },
  {
    id: "1.3.2",
    title: "64-bit length with its most significant bit set → 1002 (§5.2)",
    async run(peer, ours) {
      const header = [0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 1];
      if (peer.masks) header[1] |= 0x80, header.push(1, 2, 3, 4);
      await peer.send(new Uint8Array(header));
      await expectFail(peer, ours, 1002);
    },
  },
  {
    id: "1.3.3",
    title: "every frame of a sequence in its own 1-byte TCP write",
    async run(peer, ours) {
      await peer.sendFrames([
        { opcode: OP.text, payload: "Hello" },
        { opcode: OP.binary, payload: new Uint8Array([0, 1, 2, 255]) },
        { opcode: OP.text, payload: textOfBytes(130) },
      ], { chunkBytes: 1, delayMs: 0 });
      await expectMessage(peer, OP.text, "Hello");
      await expectMessage(peer, OP.binary, new Uint8Array([0, 1, 2, 255]));
      await expectMessage(peer, OP.text, textOfBytes(130));
      await closeNormally(peer, ours);
    },
  },
);

// Group 2: ping/pong (RFC 6455 §5.5.2, §5.5.3).
function pingCase(
  id: string,
  title: string,
  payload: Uint8Array | string,
  send: { chunkBytes?: number; delayMs?: number } = {},
): Case {
  return {
    id,
    title,
    async run(peer, ours) {
      await peer.sendFrames([{ opcode: OP.ping, payload }], send);
      await expectPong(peer, payload);
      await closeNormally(peer, ours);
    },
  };
}

const pingPong: Case[] = [
  pingCase("2.1", "ping without payload → pong", new Uint8Array(0)),
  pingCase("2.2", "ping with a small text payload", "Hello, world!"),
  pingCase(
    "2.3",
    "ping with a small binary payload",
    new Uint8Array([0x00, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0x00, 0xff]),
  ),
  pingCase("2.4", "ping with a 125-byte payload", binaryOfBytes(125)),
  failCase("2.5", "ping with a 126-byte payload → 1002 (§5.5)", [{
    opcode: OP.ping,
    payload: binaryOfBytes(126),
  }]),
  pingCase(
    "2.6",
    "ping with a 125-byte payload in 1-byte TCP writes",
    binaryOfBytes(125),
    { chunkBytes: 1, delayMs: 0 },
  ),
  {
    id: "2.7",
    title: "unsolicited pong without payload is ignored",
    async run(peer, ours) {
      await peer.sendFrames([{ opcode: OP.pong }]);
      await expectQuiet(peer, 100);
      await closeNormally(peer, ours);
    },
  },
  {
    id: "2.8",
    title: "unsolicited pong with payload is ignored",
    async run(peer, ours) {
      await peer.sendFrames([{ opcode: OP.pong, payload: "unsolicited" }]);
      await expectQuiet(peer, 100);
      await closeNormally(peer, ours);
    },
  },
  {
    id: "2.9",
    title: "unsolicited pong, then ping → one pong for the ping",
    async run(peer, ours) {
      await peer.sendFrames([
        { opcode: OP.pong, payload: "unsolicited" },
        { opcode: OP.ping, payload: "solicited" },
      ]);
      await expectPong(peer, "solicited");
      await expectQuiet(peer, 50);
      await closeNormally(peer, ours);
    },
  },
  {
    id: "2.10",
    title: "10 pings → 10 pongs in order",
    async run(peer, ours) {
      const payloads = Array.from({ length: 10 }, (_, i) => `ping ${i}`);
      await peer.sendFrames(
        payloads.map((payload) => ({ opcode: OP.ping, payload })),
      );
      for (const payload of payloads) await expectPong(peer, payload);
      await closeNormally(peer, ours);
    },
  },
  {
    id: "2.11",
    title: "10 pings in 1-byte TCP writes → 10 pongs in order",
    async run(peer, ours) {
      const payloads = Array.from({ length: 10 }, (_, i) => `ping ${i}`);
      await peer.sendFrames(
        payloads.map((payload) => ({ opcode: OP.ping, payload })),
        { chunkBytes: 1, delayMs: 0 },
      );
      for (const payload of payloads) await expectPong(peer, payload);
      await closeNormally(peer, ours);
    },
  },
  {
    id: "2.12",
    title: "pings of every payload length 0..125 → pongs",
    async run(peer, ours) {
      const payloads = Array.from({ length: 126 }, (_, n) => binaryOfBytes(n));
      await peer.sendFrames(
        payloads.map((payload) => ({ opcode: OP.ping, payload })),
      );
      for (const payload of payloads) await expectPong(peer, payload);
      await closeNormally(peer, ours);
    },
  },
];

// Group 3: reserved bits (RFC 6455 §5.2: RSV1-3 must be 0 unless an
// extension defines them; no extension is negotiated here).
const rsvNames: Record<number, string> = {
  1: "RSV3",
  2: "RSV2",
  3: "RSV2+RSV3",
  4: "RSV1",
  5: "RSV1+RSV3",
  6: "RSV1+RSV2",
  7: "RSV1+RSV2+RSV3",
};
const reservedBits: Case[] = [
  failCase("3.1", "text with RSV3 → 1002", [{
    opcode: OP.text,
    payload: "Hello",
    rsv: 1,
  }]),
  echoThenFail(
    "3.2",
    "text, text with RSV2, ping → echo, 1002, no pong",
    { opcode: OP.text, payload: "Hello", rsv: 2 },
    "together",
  ),
  echoThenFail(
    "3.3",
    "text, text with RSV2+RSV3, ping → echo, 1002, no pong",
    { opcode: OP.text, payload: "Hello", rsv: 3 },
    "frame-wise",
  ),
  echoThenFail(
    "3.4",
    "text, text with RSV1, ping → echo, 1002, no pong",
    { opcode: OP.text, payload: "Hello", rsv: 4 },
    "octet-wise",
  ),
  failCase("3.5", "binary with RSV1+RSV3 → 1002", [{
    opcode: OP.binary,
    payload: new Uint8Array([0, 1, 2]),
    rsv: 5,
  }]),
  failCase("3.6", "ping with RSV1+RSV2 → 1002", [{
    opcode: OP.ping,
    payload: "Hello",
    rsv: 6,
  }]),
  failCase("3.7", "close with all RSV bits → 1002", [{
    opcode: OP.close,
    payload: new Uint8Array([0x03, 0xe8]),
    rsv: 7,
  }]),
];
for (const [opcodeName, opcode] of Object.entries(OP)) {
  for (let rsv = 1; rsv <= 7; rsv++) {
    const frames: FrameSpec[] = opcode === OP.cont
      ? [{ opcode: OP.text, payload: "Hel", fin: false }, {
        opcode,
        payload: "lo",
        rsv,
      }]
      : [{
        opcode,
        payload: opcode === OP.close ? new Uint8Array([3, 232]) : "x",
        rsv,
      }];
    frames.push({ opcode: OP.ping, payload: "after" });
    reservedBits.push(
      failCase(
        `3.8.${reservedBits.length - 6}`,
        `${opcodeName} with ${rsvNames[rsv]}, then ping → 1002, no pong`,
        frames,
      ),
    );
  }
}

// Group 4: opcodes (RFC 6455 §5.2: reserved opcodes fail the connection).
const opcodes: Case[] = [];
const reservedData = [3, 4, 5, 6, 7];
const reservedControl = [11, 12, 13, 14, 15];
for (const [sub, list] of [[1, reservedData], [2, reservedControl]] as const) {
  list.forEach((opcode, index) => {
    const id = `4.${sub}.${index + 1}`;
    const kind = sub === 1 ? "data" : "control";
    switch (index) {
      case 0:
        opcodes.push(
          failCase(id, `reserved ${kind} opcode ${opcode} → 1002`, [{
            opcode,
          }]),
        );
        break;
      case 1:
        opcodes.push(
          failCase(
            id,
            `reserved ${kind} opcode ${opcode} with payload → 1002`,
            [{ opcode, payload: "reserved" }],
          ),
        );
        break;
      default:
        opcodes.push(
          echoThenFail(
            id,
            `text, reserved ${kind} opcode ${opcode}, ping → echo, 1002`,
            { opcode, payload: index === 2 ? "" : "reserved" },
            index === 2
              ? "together"
              : index === 3
              ? "frame-wise"
              : "octet-wise",
          ),
        );
    }
  });
}
for (const opcode of [...reservedData, ...reservedControl]) {
  opcodes.push({
    id: `4.3.${opcode}`,
    title: `reserved opcode ${opcode} inside a fragmented message → 1002`,
    async run(peer, ours) {
      await peer.sendFrames([
        { opcode: OP.text, payload: "Hel", fin: false },
        { opcode, payload: "x" },
        { opcode: OP.cont, payload: "lo" },
      ]);
      await expectFail(peer, ours, 1002);
    },
  });
}

/** Groups 1–4. */
export const basicGroups: CaseGroup[] = [
  { id: 1, name: "framing", cases: framing },
  { id: 2, name: "ping/pong", cases: pingPong },
  { id: 3, name: "reserved bits", cases: reservedBits },
  { id: 4, name: "opcodes", cases: opcodes },
];
