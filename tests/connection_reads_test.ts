// The socket's read path (src/connection.ts #readLoop): frames are decoded
// where they were read, an incomplete frame stays in place or moves once to
// a buffer sized for it and the rest of it is read straight behind its
// first bytes, and large received views are echoed with their header
// written in front of them. These tests drive it through a transport with
// `read(buffer)` (as a Deno.Conn has), fed in chunks split at every
// interesting boundary, and check every message only at the end, so a
// buffer that was reused while a message still viewed it shows up.

import { assert, assertEquals } from "@std/assert";
import { WebSocketConnection } from "../src/connection.ts";
import { FrameDecoder } from "../src/frame_decoder.ts";
import type { Frame } from "../src/frame.ts";
import {
  assertWebSocketError,
  concat,
  frameBytes,
  randomBytes,
  randomChunks,
  type RawFrame,
  seededRandom,
  utf8,
} from "./_codec_util.ts";

const KEY = new Uint8Array([0x37, 0xfa, 0x21, 0x3d]);

interface ScriptedTransport {
  readable: ReadableStream<Uint8Array>;
  writable: WritableStream<Uint8Array>;
  read(buffer: Uint8Array): Promise<number | null>;
  close(): void;
  /** Every chunk written, copied as it was written. */
  written: Uint8Array[];
  /** The sizes of the buffers the socket read into. */
  readSizes: number[];
  /** Where in the byte stream each read's buffer ended. */
  readEnds: number[];
}

// A socket-like transport: each read returns the next scripted chunk, or as
// much of it as fits the socket's buffer. After the script it waits (as an
// open connection does) until closed, or ends (EOF) with `endAfter`.
function scriptedTransport(
  chunks: readonly Uint8Array[],
  { endAfter = false } = {},
): ScriptedTransport {
  let index = 0;
  let offset = 0;
  let closed = false;
  let wake: (() => void) | undefined;
  const written: Uint8Array[] = [];
  const readSizes: number[] = [];
  const readEnds: number[] = [];
  let position = 0;
  return {
    readable: new ReadableStream(),
    writable: new WritableStream({
      write(chunk) {
        written.push(chunk.slice());
      },
    }),
    async read(buffer) {
      readSizes.push(buffer.length);
      readEnds.push(position + buffer.length);
      // A real read completes on a later turn.
      await Promise.resolve();
      while (index === chunks.length && !closed && !endAfter) {
        await new Promise<void>((resolve) => wake = resolve);
      }
      if (closed || index === chunks.length) return null;
      const chunk = chunks[index];
      const count = Math.min(buffer.length, chunk.length - offset);
      buffer.set(chunk.subarray(offset, offset + count));
      offset += count;
      position += count;
      if (offset === chunk.length) {
        index++;
        offset = 0;
      }
      return count;
    },
    close() {
      closed = true;
      wake?.();
    },
    written,
    readSizes,
    readEnds,
  };
}

// Splits `data` at the given offsets (sorted, deduplicated, in range).
function splitAt(data: Uint8Array, offsets: number[]): Uint8Array[] {
  const points = [...new Set(offsets)]
    .filter((point) => point > 0 && point < data.length)
    .sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let last = 0;
  for (const point of points) {
    chunks.push(data.slice(last, point));
    last = point;
  }
  chunks.push(data.slice(last));
  return chunks;
}

interface Scenario {
  bytes: Uint8Array;
  /** The offsets where each frame starts, and its header length. */
  frames: { start: number; headerLength: number; length: number }[];
  messages: (string | Uint8Array)[];
}

// One binary message per size (and a text one), then a Close 1000. Masked
// when the receiver is a server.
function scenario(sizes: number[], masked: boolean, seed: number): Scenario {
  const random = seededRandom(seed);
  const raws: RawFrame[] = [];
  const messages: (string | Uint8Array)[] = [];
  for (const size of sizes) {
    const payload = randomBytes(size, random);
    raws.push({ opcode: 0x2, payload });
    messages.push(payload);
  }
  const text = "héllo wörld ✓ 🎉".repeat(500);
  raws.push({ opcode: 0x1, payload: text });
  messages.push(text);
  raws.push({ opcode: 0x8, payload: new Uint8Array([0x03, 0xe8]) });
  const parts: Uint8Array[] = [];
  const frames: Scenario["frames"] = [];
  let offset = 0;
  for (const raw of raws) {
    const bytes = frameBytes(masked ? { ...raw, maskKey: KEY } : raw);
    const payloadLength = typeof raw.payload === "string"
      ? utf8(raw.payload).length
      : raw.payload!.length;
    frames.push({
      start: offset,
      headerLength: bytes.length - payloadLength,
      length: bytes.length,
    });
    parts.push(bytes);
    offset += bytes.length;
  }
  return { bytes: concat(parts), frames, messages };
}

// Every boundary a frame can be cut at: inside the first two bytes, inside
// the extended length and the masking key, just after the header, one byte
// into the payload, the middle, one byte before the end, and the end.
function interestingOffsets(frames: Scenario["frames"]): number[] {
  const offsets: number[] = [];
  for (const { start, headerLength, length } of frames) {
    for (let i = 1; i <= headerLength + 1; i++) offsets.push(start + i);
    offsets.push(
      start + headerLength + Math.floor((length - headerLength) / 2),
      start + length - 1,
      start + length,
    );
  }
  return offsets;
}

async function receiveAll(
  role: "client" | "server",
  chunks: Uint8Array[],
): Promise<{ messages: (string | Uint8Array)[]; closeCode: number }> {
  const transport = scriptedTransport(chunks);
  const socket = new WebSocketConnection({
    role,
    transport,
    closeTimeoutMs: 50,
  });
  const messages = await Array.fromAsync(socket.readable);
  await socket.writable.close().catch(() => {});
  const { closeCode } = await socket.closed;
  return { messages, closeCode };
}

const SIZES = [0, 1, 125, 126, 127, 65535, 65536, 65550, 300_000, 1_100_000];

for (const role of ["server", "client"] as const) {
  const masked = role === "server";
  const label = masked ? "masked" : "unmasked";

  Deno.test(`${role} reads ${label} frames of every size split at every interesting boundary`, async () => {
    const { bytes, frames, messages } = scenario(SIZES, masked, 1);
    // All the cuts at once: most frames arrive in many small pieces.
    const all = await receiveAll(
      role,
      splitAt(bytes, interestingOffsets(frames)),
    );
    assertEquals(all.messages, messages);
    assertEquals(all.closeCode, 1000);
    // Each frame's cuts on their own: the rest arrives in large reads.
    for (const frame of frames) {
      const cuts = interestingOffsets([frame]);
      for (const cut of cuts) {
        const result = await receiveAll(role, splitAt(bytes, [cut]));
        assertEquals(result.messages, messages, `cut at ${cut}`);
        assertEquals(result.closeCode, 1000);
      }
    }
  });

  Deno.test(`${role} reads ${label} frames in random chunks and in one chunk`, async () => {
    const { bytes, messages } = scenario(SIZES, masked, 2);
    const random = seededRandom(3);
    for (const maxChunk of [7, 1000, 70_000, 400_000]) {
      const result = await receiveAll(
        role,
        randomChunks(bytes, random, maxChunk),
      );
      assertEquals(result.messages, messages, `chunks up to ${maxChunk}`);
    }
    assertEquals((await receiveAll(role, [bytes.slice()])).messages, messages);
  });

  Deno.test(`${role} reads small ${label} frames one byte at a time`, async () => {
    const { bytes, messages } = scenario([0, 1, 125, 126, 1000], masked, 4);
    const chunks = Array.from(bytes, (byte) => new Uint8Array([byte]));
    assertEquals((await receiveAll(role, chunks)).messages, messages);
  });
}

Deno.test("a stream of same-size frames is read in whole frames, every message intact", async () => {
  // 64 KiB messages back to back, as an echo benchmark sends them.
  const random = seededRandom(5);
  const payloads = Array.from({ length: 40 }, () => randomBytes(65536, random));
  const bytes = concat(
    payloads.map((payload) =>
      frameBytes({ opcode: 0x2, payload, maskKey: KEY })
    ),
  );
  // One chunk: the socket always has more bytes than a read takes, as
  // under load.
  const transport = scriptedTransport([bytes]);
  const socket = new WebSocketConnection({
    role: "server",
    transport,
    closeTimeoutMs: 50,
  });
  const reader = socket.readable.getReader();
  const received: Uint8Array[] = [];
  for (let i = 0; i < payloads.length; i++) {
    received.push((await reader.read()).value as Uint8Array);
  }
  assertEquals(received, payloads);
  socket.close();
  transport.close();
  await socket.closed;
  // Once a frame's size is known, every read's buffer ends between two
  // frames (so no frame is split between two buffers, then moved).
  const frameLength = 65536 + 14;
  // (After the first few reads, which learn the size.)
  const ends = transport.readEnds.filter((end) => end > 3 * frameLength);
  assert(
    ends.every((end) => end % frameLength === 0),
    `expected reads to end between frames of ${frameLength} bytes, found ends ${ends}`,
  );
});

Deno.test("after a short read the next one fills the tail of the buffer its messages view, and every message keeps its bytes", async () => {
  const random = seededRandom(8);
  for (const role of ["server", "client"] as const) {
    const maskKey = role === "server" ? KEY : undefined;
    const frame = (payload: Uint8Array) =>
      frameBytes({ opcode: 0x2, payload, maskKey });
    // Small frames one per read, then 64 KiB ones three and one at a time
    // (as a client reads an echo server's replies).
    const small = Array.from({ length: 40 }, () => randomBytes(100, random));
    const large = Array.from({ length: 16 }, () => randomBytes(65536, random));
    const chunks = small.map(frame);
    for (let i = 0; i < large.length; i += 4) {
      chunks.push(
        concat(large.slice(i, i + 3).map(frame)),
        frame(large[i + 3]),
      );
    }
    const transport = scriptedTransport(chunks);
    const socket = new WebSocketConnection({
      role,
      transport,
      closeTimeoutMs: 50,
    });
    const reader = socket.readable.getReader();
    // Every message is held until all were read, then checked: a read into
    // bytes a message views would show.
    const received: Uint8Array[] = [];
    for (let i = 0; i < small.length + large.length; i++) {
      received.push((await reader.read()).value as Uint8Array);
    }
    assertEquals(received, [...small, ...large], role);
    const buffers = new Set(
      received.slice(0, small.length).map((m) => m.buffer),
    );
    // A first read is 256 bytes: two of these frames fit in one buffer (a
    // fresh buffer per short read would make one buffer per message).
    assert(
      buffers.size <= small.length / 2,
      `${role}: expected short reads to share buffers, found ${buffers.size} buffers for ${small.length} messages`,
    );
    socket.close();
    transport.close();
    await socket.closed;
  }
});

Deno.test("a frame over maxMessageBytes fails with 1009 from its header, before its payload arrives", async () => {
  for (const cut of [2, 3, 5, 9]) {
    // A 64-bit length (1 MiB) and the masking key, split inside the header;
    // the payload never comes.
    const header = frameBytes({
      opcode: 0x2,
      maskKey: KEY,
      declaredLength: 1n << 20n,
    });
    const transport = scriptedTransport(splitAt(header, [cut]));
    const socket = new WebSocketConnection({
      role: "server",
      transport,
      maxMessageBytes: 1000,
      closeTimeoutMs: 50,
    });
    const error = await Array.fromAsync(socket.readable).then(
      () => undefined,
      (error) => error,
    );
    assertWebSocketError(error, 1009);
    assertEquals((await socket.closed).closeCode, 1009);
    // The Close 1009 went out.
    const frames = decodeAll("client", concat(transport.written));
    assertEquals(frames.at(-1)?.opcode, 0x8);
    assertEquals(
      frames.at(-1)?.payload.subarray(0, 2),
      new Uint8Array([3, 0xf1]),
    );
  }
});

Deno.test("an idle socket waits with a small read buffer, and reads grow while they fill", async () => {
  // A read that waits for the peer holds its buffer: with thousands of idle
  // sockets, its size is most of what each costs.
  const message = randomBytes(200_000, seededRandom(13));
  const transport = scriptedTransport([
    frameBytes({ opcode: 0x2, payload: message, maskKey: KEY }),
  ]);
  const socket = new WebSocketConnection({
    role: "server",
    transport,
    closeTimeoutMs: 50,
  });
  const reader = socket.readable.getReader();
  assertEquals(await reader.read(), { value: message, done: false });
  for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 0));
  const sizes = transport.readSizes;
  assert(
    sizes[0] <= 256,
    `expected a first read of at most 256 bytes, found ${sizes[0]}`,
  );
  assert(
    sizes.length <= 3,
    `expected the 200 KB message in two reads, then a wait, found reads of ${sizes}`,
  );
  // Idle again after the message: the waiting read is small again.
  assert(
    sizes.at(-1)! <= 8192,
    `expected the read after the message to be small, found ${sizes.at(-1)}`,
  );
  socket.close();
  transport.close();
  await socket.closed;
});

Deno.test("a large frame is allocated as its bytes arrive, not as its header announces", async () => {
  // 64 MiB announced, 10 bytes sent: the socket must not allocate 64 MiB.
  const header = frameBytes({
    opcode: 0x2,
    maskKey: KEY,
    declaredLength: 64n << 20n,
  });
  const transport = scriptedTransport([concat([header, new Uint8Array(10)])]);
  const socket = new WebSocketConnection({
    role: "server",
    transport,
    closeTimeoutMs: 50,
  });
  for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 0));
  assert(
    Math.max(...transport.readSizes) <= 1024 * 1024,
    `expected reads of at most 1 MiB, found ${
      Math.max(...transport.readSizes)
    }`,
  );
  socket.close();
  transport.close();
  await socket.closed;
});

Deno.test("invalid UTF-8 fails with 1007: in a large text frame read in pieces, and in a fragment before the final one arrives", async () => {
  const valid = utf8("ok ✓ ".repeat(40_000));
  const invalid = concat([valid, new Uint8Array([0xc3, 0x28])]);
  const single = frameBytes({ opcode: 0x1, payload: invalid, maskKey: KEY });
  const fragment = frameBytes({
    opcode: 0x1,
    fin: false,
    payload: concat([new Uint8Array([0xff]), valid]),
    maskKey: KEY,
  });
  for (const bytes of [single, fragment]) {
    for (const chunks of [[bytes], splitAt(bytes, [3, 100, 70_000])]) {
      // No more bytes come: the fragment case must fail without its end.
      const transport = scriptedTransport(chunks);
      const socket = new WebSocketConnection({
        role: "server",
        transport,
        closeTimeoutMs: 50,
      });
      const error = await Array.fromAsync(socket.readable).then(
        () => undefined,
        (error) => error,
      );
      assertWebSocketError(error, 1007);
      assertEquals((await socket.closed).closeCode, 1007);
    }
  }
});

function decodeAll(role: "client" | "server", bytes: Uint8Array): Frame[] {
  const frames: Frame[] = [];
  new FrameDecoder({ role }).decode(bytes.slice(), (frame) => {
    frames.push({ ...frame, payload: frame.payload.slice() });
  });
  return frames;
}

Deno.test("a server echoes large received messages as one chunk each, leaving the messages intact", async () => {
  const random = seededRandom(6);
  const payloads = [70_000, 65536, 200_000, 1_100_000].map((size) =>
    randomBytes(size, random)
  );
  const bytes = concat(
    payloads.map((payload) =>
      frameBytes({ opcode: 0x2, payload, maskKey: KEY })
    ),
  );
  const transport = scriptedTransport(randomChunks(bytes, random, 150_000));
  const socket = new WebSocketConnection({
    role: "server",
    transport,
    closeTimeoutMs: 50,
  });
  const reader = socket.readable.getReader();
  const writer = socket.writable.getWriter();
  const received: Uint8Array<ArrayBuffer>[] = [];
  for (let i = 0; i < payloads.length; i++) {
    const message = (await reader.read()).value as Uint8Array<ArrayBuffer>;
    received.push(message);
    await writer.write(message);
  }
  // A view that starts inside a message: its header must not overwrite
  // the message's bytes before it.
  const inner = received[0].subarray(100_000 - 30_000 - 100, 70_000);
  await writer.write(inner);
  const innerCopy = inner.slice();
  assertEquals(received, payloads);
  // Sends Close after the echoes and resolves once they are written.
  await writer.close();
  transport.close();
  await socket.closed;
  const echoed = decodeAll("client", concat(transport.written));
  assertEquals(
    echoed.slice(0, payloads.length + 1).map((frame) => frame.payload),
    [...payloads, innerCopy],
  );
  // Each received message left in one chunk: header and payload together.
  for (const payload of payloads) {
    assert(
      transport.written.some((chunk) =>
        chunk.length === payload.length + (payload.length < 65536 ? 4 : 10)
      ),
      `expected the ${payload.length}-byte echo as one chunk`,
    );
  }
});

Deno.test("messages after an inflated one in the same read keep their bytes after later reads", async () => {
  const random = seededRandom(7);
  const payload = randomBytes(1000, random);
  const first = concat([
    frameBytes({ opcode: 0x1, rsv1: true, payload: "x", maskKey: KEY }),
    frameBytes({ opcode: 0x2, payload, maskKey: KEY }),
  ]);
  // Later reads that would land where the first chunk was, were it reused.
  const later = Array.from(
    { length: 20 },
    () =>
      frameBytes({
        opcode: 0x2,
        payload: randomBytes(900, random),
        maskKey: KEY,
      }),
  );
  const transport = scriptedTransport([first, ...later]);
  const socket = new WebSocketConnection({
    role: "server",
    transport,
    closeTimeoutMs: 50,
    deflate: {
      inflater: {
        inflate: (bytes) =>
          new Promise((resolve) => setTimeout(() => resolve(bytes.slice()), 1)),
      },
      deflate: () => undefined,
    },
  });
  const reader = socket.readable.getReader();
  assertEquals((await reader.read()).value, "x");
  const message = (await reader.read()).value as Uint8Array;
  for (let i = 0; i < later.length; i++) await reader.read();
  assertEquals(message, payload);
  socket.close();
  transport.close();
  await socket.closed;
});
