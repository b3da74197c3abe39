/**
 * Autobahn group 6: UTF-8 handling (RFC 6455 §5.6, §8.1), including 6.4
 * fail-fast: invalid text is refused in the fragment where it becomes
 * invalid, while the message is still unfinished.
 *
 * @module
 */

import {
  type Case,
  type CaseGroup,
  closeNormally,
  expectFail,
  expectMessage,
  expectQuiet,
} from "./_cases.ts";
import { type FrameSpec, OP } from "./_raw_peer.ts";

function hex(text: string): Uint8Array {
  const parts = text.trim().split(/\s+/).filter((part) => part !== "");
  return new Uint8Array(parts.map((part) => parseInt(part, 16)));
}

const utf8 = (text: string) => new TextEncoder().encode(text);
const kosme = hex("ce ba e1 bd b9 cf 83 ce bc ce b5"); // "κόσμε"

/** Valid sequences: boundaries, noncharacters (valid in UTF-8), mixes. */
const VALID: [string, Uint8Array][] = [
  ["κόσμε", kosme],
  ["Hello-µ@ßöäüàá-UTF-8!!", utf8("Hello-µ@ßöäüàá-UTF-8!!")],
  ["U+0000", hex("00")],
  ["U+0080", hex("c2 80")],
  ["U+0800", hex("e0 a0 80")],
  ["U+10000", hex("f0 90 80 80")],
  ["U+007F", hex("7f")],
  ["U+07FF", hex("df bf")],
  ["U+FFFF", hex("ef bf bf")],
  ["U+10FFFF", hex("f4 8f bf bf")],
  ["U+D7FF", hex("ed 9f bf")],
  ["U+E000", hex("ee 80 80")],
  ["U+FFFD", hex("ef bf bd")],
  ["U+FFFE", hex("ef bf be")],
  ["U+FDD0", hex("ef b7 90")],
  ["U+1FFFE", hex("f0 9f bf be")],
  ["U+10FFFE", hex("f4 8f bf be")],
  ["emoji and CJK", utf8("😀 漢字 ✓ 𝄞")],
];

/** Invalid sequences (Markus Kuhn's UTF-8 stress test, as Autobahn 6.x). */
const INVALID: [string, Uint8Array][] = [
  [
    "κόσμε + surrogate U+D800 + edited",
    hex(
      "ce ba e1 bd b9 cf 83 ce bc ce b5 ed a0 80 65 64 69 74 65 64",
    ),
  ],
  ["5-byte sequence", hex("f8 88 80 80 80")],
  ["6-byte sequence", hex("fc 84 80 80 80 80")],
  ["last 5-byte", hex("fb bf bf bf bf")],
  ["last 6-byte", hex("fd bf bf bf bf bf")],
  ["above U+10FFFF", hex("f4 90 80 80")],
  ["F7 BF BF BF", hex("f7 bf bf bf")],
  ["F5 start byte", hex("f5 80 80 80")],
  ["lone continuation 80", hex("80")],
  ["lone continuation BF", hex("bf")],
  ["two continuations", hex("80 bf")],
  ["three continuations", hex("80 bf 80")],
  ["all continuations", new Uint8Array(64).map((_, i) => 0x80 + i)],
  ["lone C0 then space", hex("c0 20")],
  ["lone E0 then space", hex("e0 20")],
  ["lone F0 then space", hex("f0 20")],
  ["lone F8 then space", hex("f8 20")],
  ["lone FC then space", hex("fc 20")],
  ["2-byte missing last", hex("c2")],
  ["3-byte missing last", hex("e0 a0")],
  ["4-byte missing last", hex("f0 90 80")],
  ["DF missing last", hex("df")],
  ["EF BF missing last", hex("ef bf")],
  ["F4 8F BF missing last", hex("f4 8f bf")],
  ["κόσμε then a truncated 3-byte", hex("ce ba e1 bd b9 cf 83 ce bc ce b5 e1")],
  ["FE", hex("fe")],
  ["FF", hex("ff")],
  ["FE FE FF FF", hex("fe fe ff ff")],
  ["overlong / 2-byte", hex("c0 af")],
  ["overlong / 3-byte", hex("e0 80 af")],
  ["overlong / 4-byte", hex("f0 80 80 af")],
  ["overlong / 5-byte", hex("f8 80 80 80 af")],
  ["overlong / 6-byte", hex("fc 80 80 80 80 af")],
  ["max overlong 2-byte", hex("c1 bf")],
  ["max overlong 3-byte", hex("e0 9f bf")],
  ["max overlong 4-byte", hex("f0 8f bf bf")],
  ["overlong NUL 2-byte", hex("c0 80")],
  ["overlong NUL 3-byte", hex("e0 80 80")],
  ["overlong NUL 4-byte", hex("f0 80 80 80")],
  ["surrogate U+D800", hex("ed a0 80")],
  ["surrogate U+DB7F", hex("ed ad bf")],
  ["surrogate U+DB80", hex("ed ae 80")],
  ["surrogate U+DBFF", hex("ed af bf")],
  ["surrogate U+DC00", hex("ed b0 80")],
  ["surrogate U+DF80", hex("ed be 80")],
  ["surrogate U+DFFF", hex("ed bf bf")],
  ["surrogate pair D800 DC00", hex("ed a0 80 ed b0 80")],
  ["surrogate pair DBFF DFFF", hex("ed af bf ed bf bf")],
  ["valid text, then FF", new Uint8Array([...utf8("Hello, world! "), 0xff])],
];

/**
 * The length of the shortest prefix of `bytes` that no continuation could
 * make valid (the WHATWG streaming decoder reports an error as soon as it
 * sees such a byte), or `bytes.length + 1` when only the end is missing.
 */
function invalidAt(bytes: Uint8Array): number {
  for (let length = 1; length <= bytes.length; length++) {
    try {
      new TextDecoder("utf-8", { fatal: true }).decode(
        bytes.subarray(0, length),
        { stream: true },
      );
    } catch {
      return length;
    }
  }
  return bytes.length + 1;
}

function oneBytePerFragment(bytes: Uint8Array): FrameSpec[] {
  if (bytes.length === 0) return [{ opcode: OP.text }];
  return [...bytes].map((byte, index) => ({
    opcode: index === 0 ? OP.text : OP.cont,
    payload: new Uint8Array([byte]),
    fin: index === bytes.length - 1,
  }));
}

const cases: Case[] = [
  {
    id: "6.1.1",
    title: "empty text frame",
    async run(peer, ours) {
      await peer.sendFrames([{ opcode: OP.text }]);
      await expectMessage(peer, OP.text, "");
      await closeNormally(peer, ours);
    },
  },
  {
    id: "6.1.2",
    title: "text of 3 empty fragments",
    async run(peer, ours) {
      await peer.sendFrames([
        { opcode: OP.text, fin: false },
        { opcode: OP.cont, fin: false },
        { opcode: OP.cont },
      ]);
      await expectMessage(peer, OP.text, "");
      await closeNormally(peer, ours);
    },
  },
  {
    id: "6.1.3",
    title: "empty first and last fragments, payload in the middle",
    async run(peer, ours) {
      await peer.sendFrames([
        { opcode: OP.text, fin: false },
        { opcode: OP.cont, payload: "middle frame payload", fin: false },
        { opcode: OP.cont },
      ]);
      await expectMessage(peer, OP.text, "middle frame payload");
      await closeNormally(peer, ours);
    },
  },
];

// 6.2: valid text split into 2 fragments at every byte (code point
// boundaries and inside code points).
const mixed = utf8("Hello-µ@ßöäüàá-UTF-8!!");
for (let cut = 0; cut <= mixed.length; cut++) {
  cases.push({
    id: `6.2.${cut + 1}`,
    title: `valid text in 2 fragments split at byte ${cut}`,
    async run(peer, ours) {
      await peer.sendFrames([
        { opcode: OP.text, payload: mixed.subarray(0, cut), fin: false },
        { opcode: OP.cont, payload: mixed.subarray(cut) },
      ]);
      await expectMessage(peer, OP.text, mixed);
      await closeNormally(peer, ours);
    },
  });
}

// 6.3 (Autobahn 6.3 and 6.5-6.23): each vector in one frame and in 1-byte
// fragments.
VALID.forEach(([name, bytes], index) => {
  cases.push({
    id: `6.3.${index + 1}`,
    title: `valid ${name}: one frame, then 1-byte fragments`,
    async run(peer, ours) {
      await peer.sendFrames([{ opcode: OP.text, payload: bytes }]);
      await expectMessage(peer, OP.text, bytes);
      await peer.sendFrames(oneBytePerFragment(bytes));
      await expectMessage(peer, OP.text, bytes);
      await closeNormally(peer, ours);
    },
  });
});
INVALID.forEach(([name, bytes], index) => {
  cases.push({
    id: `6.5.${index + 1}`,
    title: `invalid ${name} in one frame → 1007`,
    async run(peer, ours) {
      await peer.sendFrames([{ opcode: OP.text, payload: bytes }]);
      await expectFail(peer, ours, 1007);
    },
  });
  cases.push({
    id: `6.6.${index + 1}`,
    title: `invalid ${name} in 1-byte fragments → 1007`,
    async run(peer, ours) {
      await peer.sendFrames(oneBytePerFragment(bytes));
      await expectFail(peer, ours, 1007);
    },
  });
  // 6.7: fail fast. Send the fragments up to the byte where the text
  // becomes invalid, then wait: the 1007 must come while the message is
  // unfinished (RFC 6455 §8.1; Autobahn 6.4).
  const at = invalidAt(bytes);
  if (at <= bytes.length) {
    cases.push({
      id: `6.7.${index + 1}`,
      title: `fail fast: invalid ${name}, 1007 before the final fragment`,
      async run(peer, ours) {
        const frames = oneBytePerFragment(bytes).slice(0, at);
        frames[frames.length - 1] = {
          ...frames[frames.length - 1],
          fin: false,
        };
        await peer.sendFrames(frames);
        await expectFail(peer, ours, 1007);
      },
    });
  }
});

// Autobahn 6.4.3, 6.4.4: one text frame sent in three chops, a second apart
// there: the payload up to `cuts[0]` (still valid), up to `cuts[1]` (now
// invalid), and the rest. RFC 6455 §8.1 fails the connection as soon as
// invalid data is seen, so the 1007 comes after the second chop, while the
// frame is incomplete, and the rest is never needed.
function failFastInOneFrame(
  id: string,
  title: string,
  cuts: [number, number],
): Case {
  return {
    id,
    title,
    async run(peer, ours) {
      const payload = new Uint8Array([...frag1, ...frag2, ...frag3]);
      const frame = peer.frame({ opcode: OP.text, payload });
      const payloadStart = frame.length - payload.length;
      const [valid, invalid] = cuts.map((cut) => payloadStart + cut);
      await peer.send(frame.subarray(0, valid));
      await expectQuiet(peer, 100);
      await peer.send(frame.subarray(valid, invalid));
      await expectFail(peer, ours, 1007);
      await peer.send(frame.subarray(invalid));
    },
  };
}

// 6.4: Autobahn's fail-fast cases.
const frag1 = kosme;
const frag2 = hex("f4 90 80 80"); // invalid: above U+10FFFF
const frag3 = utf8("edited");
cases.push(
  {
    id: "6.4.1",
    title: "fragment 1 valid, fragment 2 invalid: 1007 before fragment 3",
    async run(peer, ours) {
      await peer.sendFrames([
        { opcode: OP.text, payload: frag1, fin: false },
        { opcode: OP.cont, payload: frag2, fin: false },
      ]);
      await expectFail(peer, ours, 1007);
      await peer.sendFrames([{ opcode: OP.cont, payload: frag3 }]);
    },
  },
  {
    id: "6.4.2",
    title: "the invalid code point split across fragments 1 and 2 (F4 | 90)",
    async run(peer, ours) {
      await peer.sendFrames([
        {
          opcode: OP.text,
          payload: new Uint8Array([...frag1, 0xf4]),
          fin: false,
        },
        { opcode: OP.cont, payload: hex("90"), fin: false },
      ]);
      await expectFail(peer, ours, 1007);
      await peer.sendFrames([{ opcode: OP.cont, payload: hex("80 80 65") }]);
    },
  },
  failFastInOneFrame(
    "6.4.3",
    "one frame in 3 chops (valid, invalid code point, rest): 1007 before the rest",
    [frag1.length, frag1.length + frag2.length],
  ),
  failFastInOneFrame(
    "6.4.4",
    "one frame in 3 chops (valid + F4, 90, rest): 1007 at the 90, before the rest",
    [frag1.length + 1, frag1.length + 2],
  ),
);

/** Group 6. */
export const utf8Group: CaseGroup = { id: 6, name: "UTF-8", cases };
