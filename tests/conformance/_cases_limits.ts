/**
 * Autobahn groups 9 (limits and performance: big messages, many fragments,
 * tiny TCP writes, many messages) and 10 (auto-fragmentation). The default
 * limits must accept all of it: 16 MiB messages, and 4 MiB in 65,536
 * fragments of 64 bytes.
 *
 * @module
 */

import {
  type Case,
  type CaseGroup,
  closeNormally,
  expectMessage,
} from "./_cases.ts";
import { binaryOfBytes, textOfBytes } from "./_cases_basic.ts";
import { buildFrame, concat, OP, type RawPeer } from "./_raw_peer.ts";

const KiB = 1024;
const MiB = 1024 * KiB;
const BIG_MS = 30_000;

// Frames of one message: `payload` in fragments of `fragmentBytes`, encoded
// in one buffer.
function fragmented(
  peer: RawPeer,
  opcode: number,
  payload: Uint8Array,
  fragmentBytes: number,
): Uint8Array {
  const frames: Uint8Array[] = [];
  const key = new Uint8Array([0x11, 0x22, 0x33, 0x44]);
  for (let offset = 0; offset < payload.length; offset += fragmentBytes) {
    const end = Math.min(offset + fragmentBytes, payload.length);
    frames.push(buildFrame({
      opcode: offset === 0 ? opcode : OP.cont,
      payload: payload.subarray(offset, end),
      fin: end === payload.length,
      maskKey: key,
    }, peer.masks));
  }
  return concat(frames);
}

function bigCase(
  id: string,
  title: string,
  opcode: number,
  bytes: number,
  fragmentBytes: number,
  writeBytes?: number,
): Case {
  return {
    id,
    title,
    async run(peer, ours) {
      const payload = opcode === OP.text
        ? textOfBytes(bytes)
        : binaryOfBytes(bytes);
      await peer.send(fragmented(peer, opcode, payload, fragmentBytes), {
        chunkBytes: writeBytes,
      });
      await expectMessage(peer, opcode, payload, BIG_MS);
      await closeNormally(peer, ours);
    },
  };
}

const limits: Case[] = [
  bigCase("9.1.1", "text 64 KiB in one frame", OP.text, 64 * KiB, 64 * KiB),
  bigCase("9.1.3", "text 1 MiB in one frame", OP.text, MiB, MiB),
  bigCase("9.1.6", "text 16 MiB in one frame", OP.text, 16 * MiB, 16 * MiB),
  bigCase("9.2.6", "binary 16 MiB in one frame", OP.binary, 16 * MiB, 16 * MiB),
  bigCase(
    "9.2.7",
    "binary 16 MiB in 64 KiB frames",
    OP.binary,
    16 * MiB,
    64 * KiB,
  ),
  bigCase(
    "9.3.1",
    "text 4 MiB in 65,536 fragments of 64 bytes",
    OP.text,
    4 * MiB,
    64,
  ),
  bigCase(
    "9.3.5",
    "text 4 MiB in fragments of 4 KiB",
    OP.text,
    4 * MiB,
    4 * KiB,
  ),
  bigCase(
    "9.4.1",
    "binary 4 MiB in 65,536 fragments of 64 bytes",
    OP.binary,
    4 * MiB,
    64,
  ),
  bigCase(
    "9.4.9",
    "binary 4 MiB in one 4 MiB fragment (fragmented form)",
    OP.binary,
    4 * MiB,
    4 * MiB,
  ),
  bigCase(
    "9.5.1",
    "text 1 MiB in TCP writes of 64 bytes",
    OP.text,
    MiB,
    MiB,
    64,
  ),
  bigCase(
    "9.5.6",
    "text 1 MiB in TCP writes of 2 KiB",
    OP.text,
    MiB,
    MiB,
    2 * KiB,
  ),
  bigCase(
    "9.6.1",
    "binary 1 MiB in TCP writes of 64 bytes",
    OP.binary,
    MiB,
    MiB,
    64,
  ),
  bigCase(
    "9.9.1",
    "binary 4 MiB in 64-byte fragments, TCP writes of 1300 bytes",
    OP.binary,
    4 * MiB,
    64,
    1300,
  ),
];
for (
  const [id, opcode, size] of [
    ["9.7.1", OP.text, 0],
    ["9.7.3", OP.text, 256],
    ["9.8.3", OP.binary, 256],
    ["9.8.5", OP.binary, 4 * KiB],
  ] as const
) {
  limits.push({
    id,
    title: `1000 ${
      opcode === OP.text ? "text" : "binary"
    } messages of ${size} bytes, each echoed before the next`,
    async run(peer, ours) {
      const payload = opcode === OP.text
        ? textOfBytes(size)
        : binaryOfBytes(size);
      for (let i = 0; i < 1000; i++) {
        await peer.sendFrames([{ opcode, payload }]);
        await expectMessage(peer, opcode, payload);
      }
      await closeNormally(peer, ours);
    },
  });
}

const autoFragmentation: Case[] = [
  bigCase(
    "10.1.1",
    "text of 65536 bytes in 1300-byte fragments → echoed whole",
    OP.text,
    65536,
    1300,
  ),
  bigCase(
    "10.1.2",
    "binary of 65536 bytes in 1300-byte fragments → echoed whole",
    OP.binary,
    65536,
    1300,
  ),
];

/** Groups 9 and 10. */
export const limitGroups: CaseGroup[] = [
  { id: 9, name: "limits", cases: limits },
  { id: 10, name: "auto-fragmentation", cases: autoFragmentation },
];
