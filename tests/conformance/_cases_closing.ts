/**
 * Autobahn group 7: the closing handshake (RFC 6455 §5.5.1, §7).
 *
 * @module
 */

import { assert, assertEquals, assertThrows } from "@std/assert";
import {
  type Case,
  type CaseGroup,
  closeNormally,
  expectCloseEcho,
  expectEnd,
  expectFail,
  expectMessage,
} from "./_cases.ts";
import { textOfBytes } from "./_cases_basic.ts";
import { closeCodeOf, closePayload, OP } from "./_raw_peer.ts";

/**
 * The close codes a Close frame may carry, written from RFC 6455 §7.4 and
 * the IANA registry independently of src/close_code.ts: 1000–1003, 1007–1011,
 * the registered 1012–1014, and 3000–4999 (registered and private use).
 */
export function mayBeSent(code: number): boolean {
  if (code >= 3000 && code <= 4999) return true;
  return [
    1000,
    1001,
    1002,
    1003,
    1007,
    1008,
    1009,
    1010,
    1011,
    1012,
    1013,
    1014,
  ]
    .includes(code);
}

const VALID_CODES = [
  1000,
  1001,
  1002,
  1003,
  1007,
  1008,
  1009,
  1010,
  1011,
  1012,
  1013,
  1014,
  3000,
  3999,
  4000,
  4999,
];
const INVALID_CODES = [
  0,
  1,
  999,
  1004,
  1005,
  1006,
  1015,
  1016,
  1100,
  2000,
  2999,
  5000,
  0xffff,
];

const cases: Case[] = [
  {
    id: "7.1.1",
    title: "text, then Close → echo, Close echo, TCP end",
    async run(peer, ours) {
      await peer.sendFrames([{ opcode: OP.text, payload: "Hello World!" }]);
      await expectMessage(peer, OP.text, "Hello World!");
      await closeNormally(peer, ours);
    },
  },
  {
    id: "7.1.2",
    title: "Close, Close → one Close echo, nothing after",
    async run(peer, ours) {
      await peer.sendFrames([
        { opcode: OP.close, payload: closePayload(1000) },
        { opcode: OP.close, payload: closePayload(1000) },
      ]);
      await expectCloseEcho(peer, 1000);
      if (ours.role === "server") await expectEnd(peer);
      else await peer.close();
      assertEquals((await ours.socket.closed).closeCode, 1000);
    },
  },
  {
    id: "7.1.3",
    title: "Close, ping → Close echo, no pong",
    async run(peer, ours) {
      await peer.sendFrames([
        { opcode: OP.close, payload: closePayload(1000) },
        { opcode: OP.ping, payload: "ping after close" },
      ]);
      await expectCloseEcho(peer, 1000);
      if (ours.role === "server") await expectEnd(peer);
      else await peer.close();
    },
  },
  {
    id: "7.1.4",
    title: "Close, text → Close echo, the text not echoed",
    async run(peer, ours) {
      await peer.sendFrames([
        { opcode: OP.close, payload: closePayload(1000) },
        { opcode: OP.text, payload: "after close" },
      ]);
      await expectCloseEcho(peer, 1000);
      if (ours.role === "server") await expectEnd(peer);
      else await peer.close();
    },
  },
  {
    id: "7.1.5",
    title: "text fragment, Close, continuation → Close echo only",
    async run(peer, ours) {
      await peer.sendFrames([
        { opcode: OP.text, payload: "fragment1", fin: false },
        { opcode: OP.close, payload: closePayload(1000) },
        { opcode: OP.cont, payload: "fragment2" },
      ]);
      await expectCloseEcho(peer, 1000);
      if (ours.role === "server") await expectEnd(peer);
      else await peer.close();
    },
  },
  {
    id: "7.1.6",
    title: "256 KiB text, Close, ping together → echo, Close echo, no pong",
    async run(peer, ours) {
      const text = textOfBytes(256 * 1024);
      await peer.sendFrames([
        { opcode: OP.text, payload: text },
        { opcode: OP.close, payload: closePayload(1000) },
        { opcode: OP.ping, payload: "ping after close" },
      ]);
      await expectMessage(peer, OP.text, text);
      await expectCloseEcho(peer, 1000);
      if (ours.role === "server") await expectEnd(peer);
      else await peer.close();
    },
  },
  {
    id: "7.1.7",
    title: "Close, then bytes that are no frame → Close echo, clean end",
    async run(peer, ours) {
      await peer.send([
        peer.frame({ opcode: OP.close, payload: closePayload(1000) }),
        new Uint8Array(32).fill(0xff),
      ]);
      await expectCloseEcho(peer, 1000);
      if (ours.role === "server") await expectEnd(peer);
      else await peer.close();
      const result = await ours.socket.closed;
      assertEquals([result.closeCode, result.wasClean], [1000, true]);
    },
  },
  {
    id: "7.3.1",
    title: "Close without payload → Close echo without code; reported 1005",
    async run(peer, ours) {
      await closeNormally(peer, ours, undefined);
    },
  },
  {
    id: "7.3.2",
    title: "Close with a 1-byte payload → 1002 (§5.5.1)",
    async run(peer, ours) {
      await peer.sendFrames([{
        opcode: OP.close,
        payload: new Uint8Array([3]),
      }]);
      await expectFail(peer, ours, 1002);
    },
  },
  {
    id: "7.3.3",
    title: "Close 1000 without reason → echo 1000",
    async run(peer, ours) {
      await closeNormally(peer, ours, 1000);
    },
  },
  {
    id: "7.3.4",
    title: "Close 1000 with a reason → echo 1000",
    async run(peer, ours) {
      const result = await closeNormally(peer, ours, 1000, "Hello World!");
      assertEquals(result.reason, "Hello World!");
    },
  },
  {
    id: "7.3.5",
    title: "Close with a 123-byte reason (125-byte payload) → echo",
    async run(peer, ours) {
      const reason = "*".repeat(123);
      const result = await closeNormally(peer, ours, 1000, reason);
      assertEquals(result.reason, reason);
    },
  },
  {
    id: "7.3.6",
    title: "Close with a 124-byte reason (126-byte payload) → 1002 (§5.5)",
    async run(peer, ours) {
      await peer.sendFrames([{
        opcode: OP.close,
        payload: closePayload(1000, "*".repeat(124)),
      }]);
      await expectFail(peer, ours, 1002);
    },
  },
  {
    id: "7.5.1",
    title: "Close reason that is not UTF-8 → 1007 (§5.5.1)",
    async run(peer, ours) {
      await peer.sendFrames([{
        opcode: OP.close,
        payload: closePayload(
          1000,
          new Uint8Array([
            0xce,
            0xba,
            0xe1,
            0xbd,
            0xb9,
            0xcf,
            0x83,
            0xce,
            0xbc,
            0xce,
            0xb5,
            0xed,
            0xa0,
            0x80,
            0x65,
            0x64,
            0x69,
            0x74,
            0x65,
            0x64,
          ]),
        ),
      }]);
      await expectFail(peer, ours, 1007);
    },
  },
];

VALID_CODES.forEach((code, index) => {
  cases.push({
    id: `7.7.${index + 1}`,
    title: `the peer's Close ${code} → echoed with ${code}`,
    async run(peer, ours) {
      await closeNormally(peer, ours, code, "reason");
    },
  });
});
INVALID_CODES.forEach((code, index) => {
  cases.push({
    id: `7.9.${index + 1}`,
    title: `the peer's Close ${code} → 1002 (§7.4)`,
    async run(peer, ours) {
      await peer.sendFrames([{
        opcode: OP.close,
        payload: closePayload(code),
      }]);
      await expectFail(peer, ours, 1002);
    },
  });
});

// 7.11: our end closes first, with each code an application may send; the
// peer echoes and the connection ends cleanly with that code.
const APPLICATION_CODES = [1000, 1001, 1003, 1008, 1011, 3000, 4000, 4999];
APPLICATION_CODES.forEach((code, index) => {
  cases.push({
    id: `7.11.${index + 1}`,
    title: `our close(${code}) → Close ${code}, peer's echo, clean end`,
    handler: async (socket) => {
      socket.close({ closeCode: code, reason: "done" });
      await socket.closed;
    },
    async run(peer, ours) {
      const frame = await peer.nextFrame(undefined, `our Close ${code}`);
      assertEquals(frame.opcode, OP.close);
      assertEquals(closeCodeOf(frame), code);
      assertEquals(new TextDecoder().decode(frame.payload.slice(2)), "done");
      await peer.sendFrames([{ opcode: OP.close, payload: frame.payload }]);
      if (ours.role === "server") await expectEnd(peer);
      else await peer.close();
      const result = await ours.socket.closed;
      assertEquals(result.closeCode, code);
      assertEquals(result.wasClean, true);
    },
  });
});
cases.push(
  {
    id: "7.12.1",
    title: "our close() with every invalid code 0..65535 (but 1005) throws",
    handler: async (socket) => {
      for (let code = 0; code <= 0xffff; code++) {
        // 1005 asks for a Close without a body (see 7.12.3).
        if (mayBeSent(code) || code === 1005) continue;
        assertThrows(
          () => socket.close({ closeCode: code }),
          RangeError,
          undefined,
          `close(${code})`,
        );
      }
      socket.close({ closeCode: 1000 });
      await socket.closed;
    },
    async run(peer, ours) {
      const frame = await peer.nextFrame(undefined, "our Close 1000");
      assertEquals(frame.opcode, OP.close);
      assertEquals(closeCodeOf(frame), 1000);
      await peer.sendFrames([{ opcode: OP.close, payload: frame.payload }]);
      if (ours.role === "server") await expectEnd(peer);
      else await peer.close();
    },
  },
  {
    id: "7.12.2",
    title: "our close() with a 124-byte reason throws; 123 bytes goes out",
    handler: async (socket) => {
      assertThrows(
        () => socket.close({ closeCode: 1000, reason: "é".repeat(62) }),
        RangeError,
      );
      socket.close({ closeCode: 1000, reason: "*".repeat(123) });
      await socket.closed;
    },
    async run(peer, ours) {
      const frame = await peer.nextFrame(undefined, "our Close 1000");
      assertEquals(frame.opcode, OP.close);
      assertEquals(frame.payload.length, 125);
      await peer.sendFrames([{ opcode: OP.close, payload: frame.payload }]);
      if (ours.role === "server") await expectEnd(peer);
      else await peer.close();
    },
  },
  {
    id: "7.12.3",
    title: "our close({ closeCode: 1005 }) → a Close without a body",
    handler: async (socket) => {
      socket.close({ closeCode: 1005 });
      await socket.closed;
    },
    async run(peer, ours) {
      const frame = await peer.nextFrame(undefined, "our Close");
      assertEquals(frame.opcode, OP.close);
      assertEquals(frame.payload.length, 0);
      await peer.sendFrames([{ opcode: OP.close }]);
      if (ours.role === "server") await expectEnd(peer);
      else await peer.close();
      assertEquals((await ours.socket.closed).closeCode, 1005);
    },
  },
  {
    id: "7.13.1",
    title:
      "after our Close, the peer's data is ignored and nothing more is sent",
    handler: async (socket) => {
      socket.close({ closeCode: 1000 });
      await socket.closed;
    },
    async run(peer, ours) {
      const frame = await peer.nextFrame(undefined, "our Close");
      assertEquals(frame.opcode, OP.close);
      await peer.sendFrames([
        { opcode: OP.text, payload: "late" },
        { opcode: OP.ping, payload: "late ping" },
        { opcode: OP.close, payload: closePayload(1000) },
      ]);
      // RFC 6455 §5.5.1: after sending Close, an endpoint sends no more
      // data frames; no pong either (nothing may follow a Close).
      if (ours.role === "server") await expectEnd(peer);
      else {
        const next = await peer.quietFor(100);
        assert(next === undefined, "expected nothing after our Close");
        await peer.close();
      }
      assertEquals((await ours.socket.closed).wasClean, true);
    },
  },
);

/** Group 7. */
export const closingGroup: CaseGroup = { id: 7, name: "closing", cases };
