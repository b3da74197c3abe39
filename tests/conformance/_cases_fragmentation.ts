/**
 * Autobahn group 5: fragmentation (RFC 6455 §5.4).
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
  lateEcho,
} from "./_cases.ts";
import {
  buildFrame,
  concat,
  delay,
  type FrameSpec,
  OP,
  type RawPeer,
  type SendOptions,
} from "./_raw_peer.ts";

type Pace = "together" | "frame-wise" | "chopped";

const PACE_TITLES: Record<Pace, string> = {
  together: "",
  "frame-wise": ", frame by frame",
  chopped: ", in 1-byte TCP writes",
};

async function sendPaced(
  peer: RawPeer,
  frames: FrameSpec[],
  pace: Pace,
): Promise<void> {
  if (pace === "frame-wise") {
    for (const frame of frames) {
      await peer.sendFrames([frame]);
      await delay(5);
    }
    return;
  }
  const options: SendOptions = pace === "chopped"
    ? { chunkBytes: 1, delayMs: 0 }
    : {};
  await peer.sendFrames(frames, options);
}

const paces: Pace[] = ["together", "frame-wise", "chopped"];

function fragmentedEcho(
  id: string,
  title: string,
  frames: FrameSpec[],
  expected: { opcode: number; payload: Uint8Array | string },
  pace: Pace,
  pongs: (Uint8Array | string)[] = [],
): Case {
  return {
    id,
    title: title + PACE_TITLES[pace],
    async run(peer, ours) {
      await sendPaced(peer, frames, pace);
      // RFC 6455 §5.4/§5.5: control frames between fragments are answered
      // at once, so the pongs come before the message's echo.
      for (const pong of pongs) await expectPong(peer, pong);
      await expectMessage(peer, expected.opcode, expected.payload);
      await closeNormally(peer, ours);
    },
  };
}

function fragmentedFail(
  id: string,
  title: string,
  frames: FrameSpec[],
  pace: Pace,
  code = 1002,
): Case {
  return {
    id,
    title: title + PACE_TITLES[pace],
    async run(peer, ours) {
      await sendPaced(peer, frames, pace);
      await expectFail(peer, ours, code);
    },
  };
}

const cases: Case[] = [
  fragmentedFail("5.1", "ping in 2 fragments → 1002 (§5.5)", [
    { opcode: OP.ping, payload: "frag1", fin: false },
    { opcode: OP.cont, payload: "frag2" },
  ], "together"),
  fragmentedFail("5.2", "pong in 2 fragments → 1002 (§5.5)", [
    { opcode: OP.pong, payload: "frag1", fin: false },
    { opcode: OP.cont, payload: "frag2" },
  ], "together"),
];

paces.forEach((pace, index) => {
  cases.push(
    fragmentedEcho(
      `5.${3 + index}`,
      "text in 2 fragments",
      [
        { opcode: OP.text, payload: "frag1", fin: false },
        { opcode: OP.cont, payload: "frag2" },
      ],
      { opcode: OP.text, payload: "frag1frag2" },
      pace,
    ),
  );
});
paces.forEach((pace, index) => {
  cases.push(
    fragmentedEcho(
      `5.${6 + index}`,
      "text in 2 fragments with a ping between",
      [
        { opcode: OP.text, payload: "frag1", fin: false },
        { opcode: OP.ping, payload: "pongme!" },
        { opcode: OP.cont, payload: "frag2" },
      ],
      { opcode: OP.text, payload: "frag1frag2" },
      pace,
      ["pongme!"],
    ),
  );
});
paces.forEach((pace, index) => {
  cases.push(
    fragmentedFail(
      `5.${9 + index}`,
      "final continuation without a message → 1002",
      [
        { opcode: OP.cont, payload: "non-continuation payload" },
        { opcode: OP.text, payload: "Hello, world!" },
      ],
      pace,
    ),
  );
});
paces.forEach((pace, index) => {
  cases.push(
    fragmentedFail(
      `5.${12 + index}`,
      "non-final continuation without a message → 1002",
      [
        { opcode: OP.cont, payload: "non-continuation payload", fin: false },
        { opcode: OP.text, payload: "Hello, world!" },
      ],
      pace,
    ),
  );
});
cases.push(
  {
    id: "5.15",
    title: "a fragmented text, then a continuation and a new text → echo, 1002",
    // The application reads once all four frames have arrived: the message
    // completed before the violation still reaches it, and its echo goes
    // out before our Close (RFC 6455 §7.1.7; Autobahn expects the echo).
    handler: lateEcho,
    async run(peer, ours) {
      await peer.sendFrames([
        { opcode: OP.text, payload: "fragment1", fin: false },
        { opcode: OP.cont, payload: "fragment2" },
        { opcode: OP.cont, payload: "fragment3", fin: false },
        { opcode: OP.text, payload: "fragment4" },
      ]);
      await expectMessage(peer, OP.text, "fragment1fragment2");
      await expectFail(peer, ours, 1002);
    },
  },
  fragmentedFail("5.16", "(continuation, text, continuation) ×2 → 1002", [
    { opcode: OP.cont, payload: "fragment1", fin: false },
    { opcode: OP.text, payload: "fragment2", fin: false },
    { opcode: OP.cont, payload: "fragment3" },
    { opcode: OP.cont, payload: "fragment1", fin: false },
    { opcode: OP.text, payload: "fragment2", fin: false },
    { opcode: OP.cont, payload: "fragment3" },
  ], "together"),
  fragmentedFail("5.17", "(final continuation, text, continuation) ×2 → 1002", [
    { opcode: OP.cont, payload: "fragment1" },
    { opcode: OP.text, payload: "fragment2", fin: false },
    { opcode: OP.cont, payload: "fragment3" },
  ], "together"),
  fragmentedFail("5.18", "a new text inside a fragmented text → 1002", [
    { opcode: OP.text, payload: "fragment1", fin: false },
    { opcode: OP.text, payload: "fragment2" },
  ], "together"),
  fragmentedEcho(
    "5.19",
    "text in 5 fragments with 2 pings between",
    [
      { opcode: OP.text, payload: "fragment1", fin: false },
      { opcode: OP.cont, payload: "fragment2", fin: false },
      { opcode: OP.ping, payload: "pongme 1!" },
      { opcode: OP.cont, payload: "fragment3", fin: false },
      { opcode: OP.ping, payload: "pongme 2!" },
      { opcode: OP.cont, payload: "fragment4", fin: false },
      { opcode: OP.cont, payload: "fragment5" },
    ],
    {
      opcode: OP.text,
      payload: "fragment1fragment2fragment3fragment4fragment5",
    },
    "frame-wise",
    ["pongme 1!", "pongme 2!"],
  ),
  fragmentedEcho(
    "5.20",
    "text in 5 fragments with 2 pings between",
    [
      { opcode: OP.text, payload: "fragment1", fin: false },
      { opcode: OP.cont, payload: "fragment2", fin: false },
      { opcode: OP.ping, payload: "pongme 1!" },
      { opcode: OP.cont, payload: "fragment3", fin: false },
      { opcode: OP.ping, payload: "pongme 2!" },
      { opcode: OP.cont, payload: "fragment4", fin: false },
      { opcode: OP.cont, payload: "fragment5" },
    ],
    {
      opcode: OP.text,
      payload: "fragment1fragment2fragment3fragment4fragment5",
    },
    "chopped",
    ["pongme 1!", "pongme 2!"],
  ),
  fragmentedEcho(
    "5.21",
    "binary in 3 fragments",
    [
      { opcode: OP.binary, payload: new Uint8Array([1, 2]), fin: false },
      { opcode: OP.cont, payload: new Uint8Array([3]), fin: false },
      { opcode: OP.cont, payload: new Uint8Array([4, 255]) },
    ],
    { opcode: OP.binary, payload: new Uint8Array([1, 2, 3, 4, 255]) },
    "together",
  ),
  fragmentedFail("5.22", "Close in 2 fragments → 1002 (§5.5)", [
    { opcode: OP.close, payload: new Uint8Array([3, 232]), fin: false },
    { opcode: OP.cont, payload: "bye" },
  ], "together"),
  fragmentedFail("5.23", "a new binary inside a fragmented binary → 1002", [
    { opcode: OP.binary, payload: "a", fin: false },
    { opcode: OP.binary, payload: "b", fin: false },
    { opcode: OP.cont, payload: "c" },
  ], "together"),
  fragmentedFail("5.24", "a binary inside a fragmented text → 1002", [
    { opcode: OP.text, payload: "a", fin: false },
    { opcode: OP.binary, payload: "b" },
  ], "together"),
  fragmentedEcho(
    "5.25",
    "empty text fragments",
    [
      { opcode: OP.text, fin: false },
      { opcode: OP.cont, fin: false },
      { opcode: OP.cont },
    ],
    { opcode: OP.text, payload: "" },
    "together",
  ),
  fragmentedEcho(
    "5.26",
    "binary fragments with an unsolicited pong and a ping between",
    [
      { opcode: OP.binary, payload: new Uint8Array([9]), fin: false },
      { opcode: OP.pong, payload: "unsolicited" },
      { opcode: OP.cont, payload: new Uint8Array([8]), fin: false },
      { opcode: OP.ping, payload: "ping" },
      { opcode: OP.cont, payload: new Uint8Array([7]) },
    ],
    { opcode: OP.binary, payload: new Uint8Array([9, 8, 7]) },
    "chopped",
    ["ping"],
  ),
  {
    id: "5.27",
    title: "two fragmented messages back to back, each with a ping between",
    async run(peer, ours) {
      const frames: FrameSpec[] = [];
      for (const word of ["first", "second"]) {
        frames.push(
          { opcode: OP.text, payload: word.slice(0, 2), fin: false },
          { opcode: OP.ping, payload: word },
          { opcode: OP.cont, payload: word.slice(2) },
        );
      }
      await peer.sendFrames(frames);
      await expectPong(peer, "first");
      await expectMessage(peer, OP.text, "first");
      await expectPong(peer, "second");
      await expectMessage(peer, OP.text, "second");
      await closeNormally(peer, ours);
    },
  },
);

// 5.28: every split of (text fragment, ping, continuation) into two TCP
// writes, so each byte boundary of the sequence falls between two reads.
function splitSequence(masked: boolean): Uint8Array {
  const key = new Uint8Array([0x37, 0xfa, 0x21, 0x3d]);
  const spec = (frame: FrameSpec): FrameSpec => ({
    ...frame,
    mask: masked,
    maskKey: key,
  });
  return concat([
    spec({ opcode: OP.text, payload: "Hel", fin: false }),
    spec({ opcode: OP.ping, payload: "p" }),
    spec({ opcode: OP.cont, payload: "lo" }),
  ].map((frame) => buildFrame(frame, masked)));
}

const sequenceLength = splitSequence(true).length; // 9 + 7 + 8 bytes masked
for (let cut = 1; cut < sequenceLength; cut++) {
  cases.push({
    id: `5.28.${cut}`,
    title:
      `text fragment, ping, continuation split into 2 TCP writes at byte ${cut}`,
    async run(peer, ours) {
      const bytes = splitSequence(peer.masks);
      // Unmasked frames are 12 bytes shorter; cut within their length.
      await peer.sendSplit(bytes, [Math.min(cut, bytes.length - 1)]);
      await expectPong(peer, "p");
      await expectMessage(peer, OP.text, "Hello");
      await closeNormally(peer, ours);
    },
  });
}

/** Group 5. */
export const fragmentationGroup: CaseGroup = {
  id: 5,
  name: "fragmentation",
  cases,
};
