/**
 * `socket.writable` of the core socket (what `connect()` and `serve()`
 * give) takes `string | BufferSource`: every kind of BufferSource goes out
 * as one binary message with exactly the bytes the view covers (not the
 * whole underlying buffer), and the caller's buffer is left as it was
 * (the client masks a copy, never the caller's bytes).
 *
 * @module
 */

import { assertEquals } from "@std/assert";
import { connect } from "../src/client.ts";
import { serve } from "../src/server.ts";
import {
  closeCodeOf,
  closePayload,
  OP,
  RawPeer,
  RawServer,
} from "./conformance/_raw_peer.ts";

/** One of each BufferSource kind, with the bytes it stands for. */
function sources(): { name: string; chunk: BufferSource; bytes: number[] }[] {
  const backing = new ArrayBuffer(32);
  new Uint8Array(backing).forEach((_, i, a) => a[i] = 0xa0 + i);
  const range = (from: number, to: number) =>
    Array.from({ length: to - from }, (_, i) => 0xa0 + from + i);
  const whole = new Uint8Array(20).map((_, i) => i + 1);
  const int32 = new Int32Array([0x01020304, -2]);
  return [
    {
      name: "ArrayBuffer",
      chunk: new Uint8Array([1, 2, 3, 4, 5]).buffer,
      bytes: [1, 2, 3, 4, 5],
    },
    {
      name: "empty ArrayBuffer",
      chunk: new ArrayBuffer(0),
      bytes: [],
    },
    {
      name: "DataView at offset 3, 7 bytes",
      chunk: new DataView(backing, 3, 7),
      bytes: range(3, 10),
    },
    {
      name: "Uint16Array at byteOffset 2, 3 elements",
      chunk: new Uint16Array(backing, 2, 3),
      bytes: range(2, 8),
    },
    {
      name: "Uint8Array subarray(5, 12)",
      chunk: whole.subarray(5, 12),
      bytes: [6, 7, 8, 9, 10, 11, 12],
    },
    {
      name: "Int32Array",
      chunk: int32,
      bytes: [...new Uint8Array(int32.buffer)],
    },
    {
      name: "Float64Array at byteOffset 16, 1 element",
      chunk: new Float64Array(backing, 16, 1),
      bytes: range(16, 24),
    },
  ];
}

/** The bytes a BufferSource covers, copied (to check it is unchanged). */
function snapshot(chunk: BufferSource): number[] {
  return ArrayBuffer.isView(chunk)
    ? [...new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength)]
    : [...new Uint8Array(chunk)];
}

async function expectBinaryMessages(
  peer: RawPeer,
  list: ReturnType<typeof sources>,
) {
  for (const { name, bytes } of list) {
    const frame = await peer.nextFrame(3000, name);
    assertEquals(
      [frame.fin, frame.rsv, frame.opcode, [...frame.payload]],
      [true, 0, OP.binary, bytes],
      name,
    );
  }
}

Deno.test("connect(): every BufferSource kind goes out as a binary message of exactly its bytes, the caller's buffer unchanged", async () => {
  const server = new RawServer();
  try {
    const accepted = server.accept();
    const socket = await connect(`ws://127.0.0.1:${server.port}/`);
    const peer = await accepted;
    try {
      assertEquals(socket.extensions, "");
      const list = sources();
      const before = list.map(({ chunk }) => snapshot(chunk));
      const writer = socket.writable.getWriter();
      for (const { chunk } of list) await writer.write(chunk);
      await expectBinaryMessages(peer, list);
      // The client masked copies, not the caller's bytes.
      assertEquals(list.map(({ chunk }) => snapshot(chunk)), before);
      await peer.sendFrames([{
        opcode: OP.close,
        payload: closePayload(1000),
      }]);
      const closing = writer.close();
      const echo = await peer.nextFrame(3000, "our client's Close");
      assertEquals([echo.opcode, closeCodeOf(echo)], [OP.close, 1000]);
      await peer.close(); // the server ends the TCP connection first
      await closing;
      assertEquals((await socket.closed).closeCode, 1000);
    } finally {
      socket.close();
      await peer.close();
    }
  } finally {
    server.close();
  }
});

Deno.test("serve(): every BufferSource kind goes out as a binary message of exactly its bytes", async () => {
  const list = sources();
  const before = list.map(({ chunk }) => snapshot(chunk));
  await using server = serve(
    { hostname: "127.0.0.1", port: 0 },
    async (socket) => {
      const writer = socket.writable.getWriter();
      for (const { chunk } of list) await writer.write(chunk);
      await writer.close();
    },
  );
  const peer = await RawPeer.connect(server.addr.port);
  try {
    await expectBinaryMessages(peer, list);
    const close = await peer.nextFrame(3000, "the server's Close");
    assertEquals(close.opcode, OP.close);
    await peer.sendFrames([{ opcode: OP.close, payload: close.payload }]);
    assertEquals(list.map(({ chunk }) => snapshot(chunk)), before);
  } finally {
    await peer.close();
  }
});
