import { assert, assertEquals } from "@std/assert";
import {
  FrameDecoder,
  type FrameDecoderOptions,
  FrameDecoderStream,
} from "../src/frame_decoder.ts";
import type { Frame } from "../src/frame.ts";
import {
  assertFramesEqual,
  assertWebSocketError,
  bytes,
  concat,
  type ExpectedFrame,
  frameBytes,
  randomBytes,
  randomChunks,
  rejectionOf,
  seededRandom,
  thrownBy,
  utf8,
} from "./_codec_util.ts";

/** Decodes `chunks` with one FrameDecoder. Chunks are copied first, because
 * a decoder may unmask in place (payloads may be views of the chunk). */
function decodeChunks(
  chunks: readonly Uint8Array[],
  options: FrameDecoderOptions,
): Frame[] {
  const decoder = new FrameDecoder(options);
  const frames: Frame[] = [];
  for (const chunk of chunks) {
    decoder.decode(chunk.slice(), (frame) => frames.push(frame));
  }
  return frames;
}

function decodeStream(
  chunks: readonly Uint8Array[],
  options: FrameDecoderOptions,
): Promise<Frame[]> {
  return Array.fromAsync(
    ReadableStream.from(chunks.map((chunk) => chunk.slice())).pipeThrough(
      new FrameDecoderStream(options),
    ),
  );
}

function frame(
  opcode: number,
  payload: Uint8Array | string,
  fin = true,
  rsv1 = false,
): ExpectedFrame {
  return {
    fin,
    rsv1,
    opcode,
    payload: typeof payload === "string" ? utf8(payload) : payload,
  };
}

// The examples of RFC 6455 §5.7, byte for byte.
const rfcKey = bytes(0x37, 0xfa, 0x21, 0x3d);
const random = seededRandom(0x5eed);
const payload256 = randomBytes(256, random);
const payload64k = randomBytes(65536, random);

interface Example {
  name: string;
  role: "client" | "server";
  wire: Uint8Array;
  frames: ExpectedFrame[];
}

const rfcExamples: Example[] = [
  {
    name: "single-frame unmasked text message",
    role: "client",
    wire: bytes(0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f),
    frames: [frame(0x1, "Hello")],
  },
  {
    name: "single-frame masked text message",
    role: "server",
    wire: bytes(
      0x81,
      0x85,
      0x37,
      0xfa,
      0x21,
      0x3d,
      0x7f,
      0x9f,
      0x4d,
      0x51,
      0x58,
    ),
    frames: [frame(0x1, "Hello")],
  },
  {
    name: "fragmented unmasked text message",
    role: "client",
    wire: bytes(0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f),
    frames: [frame(0x1, "Hel", false), frame(0x0, "lo")],
  },
  {
    name: "unmasked Ping",
    role: "client",
    wire: bytes(0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f),
    frames: [frame(0x9, "Hello")],
  },
  {
    name: "masked Pong",
    role: "server",
    wire: bytes(
      0x8a,
      0x85,
      0x37,
      0xfa,
      0x21,
      0x3d,
      0x7f,
      0x9f,
      0x4d,
      0x51,
      0x58,
    ),
    frames: [frame(0xa, "Hello")],
  },
  {
    name: "256 bytes binary message in a single unmasked frame",
    role: "client",
    wire: concat([bytes(0x82, 0x7e, 0x01, 0x00), payload256]),
    frames: [frame(0x2, payload256)],
  },
  {
    name: "64KiB binary message in a single unmasked frame",
    role: "client",
    wire: concat([
      bytes(0x82, 0x7f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00),
      payload64k,
    ]),
    frames: [frame(0x2, payload64k)],
  },
];

for (const example of rfcExamples) {
  Deno.test(`FrameDecoder decodes RFC 6455 §5.7 example: ${example.name}`, () => {
    assertFramesEqual(decodeChunks([example.wire], example), example.frames);
  });
}

Deno.test("FrameDecoder: the reference builder reproduces the RFC 6455 §5.7 masked example", () => {
  // Guards the helper the other tests rely on.
  assertEquals(
    frameBytes({ opcode: 0x1, payload: "Hello", maskKey: rfcKey }),
    rfcExamples[1].wire,
  );
});

Deno.test("FrameDecoderStream decodes every RFC 6455 §5.7 example one byte at a time", async () => {
  for (const example of rfcExamples) {
    if (example.wire.length > 1000) continue; // the 64 KiB one is below
    const chunks = Array.from(example.wire, (b) => bytes(b));
    assertFramesEqual(await decodeStream(chunks, example), example.frames);
  }
});

// Valid inputs for the split-point tests: every length form, empty payloads,
// the largest control frame, RSV1 when allowed, and sequences of frames.
const smallRandom = seededRandom(42);
const p125 = randomBytes(125, smallRandom);
const p126 = randomBytes(126, smallRandom);
const p127 = randomBytes(127, smallRandom);
const p300 = randomBytes(300, smallRandom);
const key2 = bytes(0x00, 0xff, 0x80, 0x01);

const validInputs: Example[] = [
  ...rfcExamples.filter((example) => example.wire.length < 1000),
  {
    name: "empty text frame",
    role: "client",
    wire: bytes(0x81, 0x00),
    frames: [frame(0x1, "")],
  },
  {
    name: "empty masked binary frame",
    role: "server",
    wire: frameBytes({ opcode: 0x2, maskKey: key2 }),
    frames: [frame(0x2, new Uint8Array(0))],
  },
  {
    name: "125-byte Ping (largest control frame)",
    role: "client",
    wire: frameBytes({ opcode: 0x9, payload: p125 }),
    frames: [frame(0x9, p125)],
  },
  {
    name: "masked 125-byte Close",
    role: "server",
    wire: frameBytes({ opcode: 0x8, payload: p125, maskKey: key2 }),
    frames: [frame(0x8, p125)],
  },
  {
    name: "126 bytes (16-bit length)",
    role: "client",
    wire: frameBytes({ opcode: 0x2, payload: p126 }),
    frames: [frame(0x2, p126)],
  },
  {
    name: "masked 127 bytes (16-bit length)",
    role: "server",
    wire: frameBytes({ opcode: 0x2, payload: p127, maskKey: rfcKey }),
    frames: [frame(0x2, p127)],
  },
  {
    name: "RSV1 with allowRsv1",
    role: "client",
    wire: frameBytes({ opcode: 0x1, rsv1: true, payload: "compressed?" }),
    frames: [frame(0x1, "compressed?", true, true)],
  },
  {
    name: "fragments with a Ping and a Pong between them, and a Close",
    role: "server",
    wire: concat([
      frameBytes({ opcode: 0x2, fin: false, payload: p300, maskKey: key2 }),
      frameBytes({ opcode: 0x9, payload: "ping", maskKey: rfcKey }),
      frameBytes({ opcode: 0x0, fin: false, payload: "", maskKey: key2 }),
      frameBytes({ opcode: 0xa, payload: "", maskKey: key2 }),
      frameBytes({ opcode: 0x0, payload: p126, maskKey: rfcKey }),
      frameBytes({ opcode: 0x8, payload: bytes(0x03, 0xe8), maskKey: key2 }),
    ]),
    frames: [
      frame(0x2, p300, false),
      frame(0x9, "ping"),
      frame(0x0, "", false),
      frame(0xa, ""),
      frame(0x0, p126),
      frame(0x8, bytes(0x03, 0xe8)),
    ],
  },
];

function optionsFor(example: Example): FrameDecoderOptions {
  return { role: example.role, allowRsv1: example.name.startsWith("RSV1") };
}

type ChunksDecoder = (
  chunks: readonly Uint8Array[],
  options: FrameDecoderOptions,
) => Frame[];

/** Asserts that `decode` gets every valid input's frames from the input cut
 * in two at every byte boundary. */
function assertDecodesEverySplitInTwo(decode: ChunksDecoder): void {
  for (const example of validInputs) {
    const { wire } = example;
    for (let split = 0; split <= wire.length; split++) {
      const chunks = [wire.subarray(0, split), wire.subarray(split)];
      try {
        assertFramesEqual(decode(chunks, optionsFor(example)), example.frames);
      } catch (error) {
        throw new Error(`${example.name}, split at ${split}: ${error}`);
      }
    }
  }
}

/** Asserts that `decode` gets every valid input's frames from the input fed
 * one byte at a time. */
function assertDecodesByteByByte(decode: ChunksDecoder): void {
  for (const example of validInputs) {
    const chunks = Array.from(example.wire, (b) => bytes(b));
    try {
      assertFramesEqual(decode(chunks, optionsFor(example)), example.frames);
    } catch (error) {
      throw new Error(`${example.name}: ${error}`);
    }
  }
}

Deno.test("FrameDecoder decodes every valid input split in two at every byte boundary", () => {
  assertDecodesEverySplitInTwo(decodeChunks);
});

Deno.test("FrameDecoder decodes every valid input one byte at a time", () => {
  assertDecodesByteByByte(decodeChunks);
});

Deno.test("FrameDecoder decodes every valid input split in three at every pair of boundaries", () => {
  // Small inputs only: quadratic in the input length.
  for (const example of validInputs) {
    const { wire } = example;
    if (wire.length > 40) continue;
    for (let a = 0; a <= wire.length; a++) {
      for (let b = a; b <= wire.length; b++) {
        const chunks = [
          wire.subarray(0, a),
          wire.subarray(a, b),
          wire.subarray(b),
        ];
        assertFramesEqual(
          decodeChunks(chunks, optionsFor(example)),
          example.frames,
        );
      }
    }
  }
});

Deno.test("FrameDecoder decodes the 64 KiB example at split points around the header and at random ones", () => {
  const example = rfcExamples[6];
  const splits = new Set<number>();
  for (let i = 0; i <= 20; i++) splits.add(i);
  const splitRandom = seededRandom(7);
  for (let i = 0; i < 40; i++) {
    splits.add(Math.floor(splitRandom() * (example.wire.length + 1)));
  }
  for (let i = example.wire.length - 5; i <= example.wire.length; i++) {
    splits.add(i);
  }
  for (const split of splits) {
    const chunks = [
      example.wire.subarray(0, split),
      example.wire.subarray(split),
    ];
    assertFramesEqual(decodeChunks(chunks, example), example.frames);
  }
});

Deno.test("FrameDecoder decodes a 64 KiB frame delivered one byte at a time", () => {
  const example = rfcExamples[6];
  const decoder = new FrameDecoder({ role: "client" });
  const frames: Frame[] = [];
  for (let i = 0; i < example.wire.length; i++) {
    decoder.decode(example.wire.subarray(i, i + 1), (f) => frames.push(f));
  }
  assertFramesEqual(frames, example.frames);
});

Deno.test("FrameDecoder decodes many frames per chunk, and frames straddling chunks", () => {
  const manyRandom = seededRandom(1234);
  const sizes = [0, 1, 2, 3, 4, 5, 64, 125, 126, 127, 1000, 65535, 65536];
  for (const role of ["client", "server"] as const) {
    const expected: ExpectedFrame[] = [];
    const wires: Uint8Array[] = [];
    for (let i = 0; i < 1000; i++) {
      const size = i % 50 === 0
        ? sizes[Math.floor(manyRandom() * sizes.length)]
        : Math.floor(manyRandom() * 130);
      const payload = randomBytes(size, manyRandom);
      const opcode = i % 7 === 3 && size <= 125 ? 0x9 : 0x2;
      expected.push(frame(opcode, payload));
      wires.push(frameBytes({
        opcode,
        payload,
        maskKey: role === "server" ? randomBytes(4, manyRandom) : undefined,
      }));
    }
    const wire = concat(wires);
    // All in one chunk.
    assertFramesEqual(decodeChunks([wire], { role }), expected);
    // Random chunk sizes, small and large.
    for (const maxChunk of [3, 100, 5000, 100000]) {
      const chunks = randomChunks(wire, manyRandom, maxChunk);
      assertFramesEqual(decodeChunks(chunks, { role }), expected);
    }
  }
});

Deno.test("FrameDecoder payloads stay intact after later chunks are decoded", () => {
  // The stream hands frames out before the next chunk is decoded; a decoder
  // that reused a buffer for partial frames would corrupt earlier payloads.
  const first = randomBytes(1000, seededRandom(9));
  const second = randomBytes(1000, seededRandom(10));
  const wire = concat([
    frameBytes({ opcode: 0x2, payload: first, maskKey: rfcKey }),
    frameBytes({ opcode: 0x2, payload: second, maskKey: key2 }),
  ]);
  const chunks = [
    wire.subarray(0, 500),
    wire.subarray(500, 1500),
    wire.subarray(1500),
  ];
  assertFramesEqual(decodeChunks(chunks, { role: "server" }), [
    frame(0x2, first),
    frame(0x2, second),
  ]);
});

Deno.test("FrameDecoder keeps each decoder's masking key while another decoder reads headers", () => {
  // Decoders share the place a header's key is read into: a payload that
  // continues in a later chunk must be unmasked with its own frame's key.
  const first = randomBytes(300, seededRandom(11));
  const second = randomBytes(300, seededRandom(12));
  const wireA = frameBytes({ opcode: 0x2, payload: first, maskKey: rfcKey });
  const wireB = frameBytes({ opcode: 0x2, payload: second, maskKey: key2 });
  const a = new FrameDecoder({ role: "server" });
  const b = new FrameDecoder({ role: "server" });
  const framesA: Frame[] = [];
  const framesB: Frame[] = [];
  a.decode(wireA.slice(0, 100), (frame) => framesA.push(frame));
  b.decode(wireB.slice(0, 100), (frame) => framesB.push(frame));
  a.decode(wireA.slice(100), (frame) => framesA.push(frame));
  b.decode(wireB.slice(100), (frame) => framesB.push(frame));
  assertFramesEqual(framesA, [frame(0x2, first)]);
  assertFramesEqual(framesB, [frame(0x2, second)]);
});

Deno.test("FrameDecoder accepts a frame of exactly maxFrameBytes", () => {
  const payload = randomBytes(1000, seededRandom(3));
  const frames = decodeChunks([frameBytes({ opcode: 0x2, payload })], {
    role: "client",
    maxFrameBytes: 1000,
  });
  assertFramesEqual(frames, [frame(0x2, payload)]);
});

// Invalid inputs: the bytes of a frame header (plus, where any, a payload)
// and the close code each must produce. Every rule here can be seen in the
// header, so the decoder must fail without the payload.
interface InvalidInput {
  name: string;
  options: FrameDecoderOptions;
  header: Uint8Array;
  payload?: Uint8Array;
  closeCode: number;
  message: RegExp;
}

function opcodePattern(opcode: number): RegExp {
  return new RegExp(
    `opcode[^]*(?:\\b${opcode}\\b|0x0?${opcode.toString(16)}\\b)`,
    "i",
  );
}

const invalidInputs: InvalidInput[] = [
  ...[3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf].map((opcode) => ({
    name: `reserved opcode ${opcode}`,
    options: { role: "client" as const },
    header: bytes(0x80 | opcode, 0x00),
    closeCode: 1002,
    message: opcodePattern(opcode),
  })),
  ...[3, 0xb].map((opcode) => ({
    name: `reserved opcode ${opcode}, masked, to a server`,
    options: { role: "server" as const },
    header: frameBytes({ opcode, maskKey: rfcKey, declaredLength: 4n }),
    payload: bytes(1, 2, 3, 4),
    closeCode: 1002,
    message: opcodePattern(opcode),
  })),
  {
    name: "RSV1 without an extension",
    options: { role: "client" },
    header: frameBytes({ opcode: 0x1, rsv1: true, declaredLength: 2n }),
    payload: utf8("hi"),
    closeCode: 1002,
    message: /RSV1|reserved bit/i,
  },
  {
    name: "RSV2 without an extension",
    options: { role: "client" },
    header: frameBytes({ opcode: 0x1, rsv2: true, declaredLength: 2n }),
    payload: utf8("hi"),
    closeCode: 1002,
    message: /RSV2|reserved bit/i,
  },
  {
    name: "RSV3 without an extension",
    options: { role: "client" },
    header: frameBytes({ opcode: 0x1, rsv3: true, declaredLength: 2n }),
    payload: utf8("hi"),
    closeCode: 1002,
    message: /RSV3|reserved bit/i,
  },
  {
    name: "RSV2 even with allowRsv1",
    options: { role: "client", allowRsv1: true },
    header: frameBytes({ opcode: 0x2, rsv2: true, declaredLength: 0n }),
    closeCode: 1002,
    message: /RSV2|reserved bit/i,
  },
  {
    name: "RSV3 even with allowRsv1",
    options: { role: "client", allowRsv1: true },
    header: frameBytes({ opcode: 0x2, rsv3: true, declaredLength: 0n }),
    closeCode: 1002,
    message: /RSV3|reserved bit/i,
  },
  {
    name: "RSV1 on a continuation frame, even with allowRsv1 (RFC 7692 §6)",
    options: { role: "client", allowRsv1: true },
    header: frameBytes({ opcode: 0x0, rsv1: true, declaredLength: 0n }),
    closeCode: 1002,
    message: /RSV1/,
  },
  {
    name: "RSV1 on a Ping, even with allowRsv1 (RFC 7692 §6)",
    options: { role: "client", allowRsv1: true },
    header: frameBytes({ opcode: 0x9, rsv1: true, declaredLength: 0n }),
    closeCode: 1002,
    message: /RSV1/,
  },
  {
    name: "fragmented Ping (FIN clear)",
    options: { role: "client" },
    header: bytes(0x09, 0x00),
    closeCode: 1002,
    message: /fragment|FIN/i,
  },
  {
    name: "fragmented Close (FIN clear)",
    options: { role: "client" },
    header: bytes(0x08, 0x02),
    payload: bytes(0x03, 0xe8),
    closeCode: 1002,
    message: /fragment|FIN/i,
  },
  {
    name: "Ping of 126 bytes",
    options: { role: "client" },
    header: bytes(0x89, 0x7e, 0x00, 0x7e),
    payload: new Uint8Array(126),
    closeCode: 1002,
    message: /125/,
  },
  {
    name: "Pong with a 64-bit length",
    options: { role: "client" },
    header: frameBytes({ opcode: 0xa, declaredLength: 65536n }),
    closeCode: 1002,
    message: /125/,
  },
  {
    name: "64-bit length with the most significant bit set",
    options: { role: "client" },
    header: bytes(0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0x01),
    closeCode: 1002,
    message: /length/i,
  },
  {
    name: "64-bit length of all ones",
    options: { role: "client" },
    header: bytes(0x82, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff),
    closeCode: 1002,
    message: /length/i,
  },
  {
    name: "unmasked frame to a server",
    options: { role: "server" },
    header: bytes(0x81, 0x05),
    payload: utf8("Hello"),
    closeCode: 1002,
    message: /mask/i,
  },
  {
    name: "unmasked Close to a server",
    options: { role: "server" },
    header: bytes(0x88, 0x00),
    closeCode: 1002,
    message: /mask/i,
  },
  {
    name: "masked frame to a client",
    options: { role: "client" },
    header: bytes(0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d),
    payload: bytes(0x7f, 0x9f, 0x4d, 0x51, 0x58),
    closeCode: 1002,
    message: /mask/i,
  },
  {
    name: "frame of maxFrameBytes + 1 (16-bit length)",
    options: { role: "client", maxFrameBytes: 1000 },
    header: bytes(0x82, 0x7e, 0x03, 0xe9),
    payload: new Uint8Array(1001),
    closeCode: 1009,
    message: /1001[^]*1000|1000[^]*1001/,
  },
  {
    name: "masked frame of maxFrameBytes + 1 to a server",
    options: { role: "server", maxFrameBytes: 100 },
    header: frameBytes({ opcode: 0x2, maskKey: rfcKey, declaredLength: 101n }),
    payload: new Uint8Array(101),
    closeCode: 1009,
    message: /101[^]*100|100[^]*101/,
  },
  {
    name: "continuation frame over maxFrameBytes",
    options: { role: "client", maxFrameBytes: 10 },
    header: frameBytes({ opcode: 0x0, declaredLength: 11n }),
    closeCode: 1009,
    message: /11[^]*10|10[^]*11/,
  },
  {
    name: "1 TiB frame under the default maxFrameBytes",
    options: { role: "client" },
    header: frameBytes({ opcode: 0x2, declaredLength: 1n << 40n }),
    closeCode: 1009,
    message: /1099511627776|limit|maxFrameBytes|too (big|large)/i,
  },
  {
    name: "64 MiB + 1 frame under the default maxFrameBytes",
    options: { role: "client" },
    header: frameBytes({
      opcode: 0x2,
      declaredLength: 64n * 1024n * 1024n + 1n,
    }),
    closeCode: 1009,
    message: /67108865|67108864|limit|maxFrameBytes|too (big|large)/i,
  },
];

for (const input of invalidInputs) {
  Deno.test(`FrameDecoder refuses ${input.name} with ${input.closeCode}`, () => {
    // The whole frame in one chunk.
    const whole = concat([input.header, input.payload ?? new Uint8Array(0)]);
    assertWebSocketError(
      thrownBy(() =>
        new FrameDecoder(input.options).decode(whole.slice(), () => {})
      ),
      input.closeCode,
      input.message,
    );
    // Only the header: the error must come before any payload is buffered.
    const frames: Frame[] = [];
    assertWebSocketError(
      thrownBy(() =>
        new FrameDecoder(input.options).decode(
          input.header.slice(),
          (f) => frames.push(f),
        )
      ),
      input.closeCode,
      input.message,
    );
    assertEquals(frames.length, 0);
    // The header one byte at a time, after a valid frame.
    const decoder = new FrameDecoder(input.options);
    const valid = frameBytes({
      opcode: 0x9,
      payload: "ok",
      maskKey: input.options.role === "server" ? rfcKey : undefined,
    });
    const before: Frame[] = [];
    decoder.decode(valid, (f) => before.push(f));
    assertEquals(before.length, 1);
    let error: unknown;
    for (let i = 0; i < input.header.length && error === undefined; i++) {
      try {
        decoder.decode(input.header.slice(i, i + 1), () => {});
      } catch (thrown) {
        error = thrown;
      }
    }
    assertWebSocketError(error, input.closeCode, input.message);
  });
}

Deno.test("FrameDecoder accepts RSV1 only with allowRsv1", () => {
  const wire = frameBytes({ opcode: 0x2, rsv1: true, payload: "x" });
  assertWebSocketError(
    thrownBy(() => decodeChunks([wire], { role: "client" })),
    1002,
  );
  assertFramesEqual(decodeChunks([wire], { role: "client", allowRsv1: true }), [
    frame(0x2, "x", true, true),
  ]);
});

Deno.test("FrameDecoder refuses a frame too big from its first header bytes, before buffering anything", () => {
  // 2^53 bytes would never be allocated; the decoder must refuse it from the
  // 10 header bytes alone.
  const header = frameBytes({ opcode: 0x2, declaredLength: 1n << 53n });
  const error = thrownBy(() =>
    new FrameDecoder({ role: "client", maxFrameBytes: 1 << 20 }).decode(
      header,
      () => {},
    )
  );
  assertWebSocketError(error, 1009);
});

Deno.test("FrameDecoderStream errors its readable with the WebSocketError", async () => {
  const error = await rejectionOf(
    decodeStream([bytes(0x81, 0x02, 0x68), bytes(0x69, 0x83, 0x00)], {
      role: "client",
    }),
  );
  assertWebSocketError(error, 1002, opcodePattern(3));
});

Deno.test("FrameDecoderStream decodes the 64 KiB RFC example in random chunks", async () => {
  const example = rfcExamples[6];
  const chunks = randomChunks(example.wire, seededRandom(77), 4096);
  assert(chunks.length > 10);
  assertFramesEqual(await decodeStream(chunks, example), example.frames);
});

Deno.test("FrameDecoderStream errors when the bytes end inside a frame", async () => {
  // A header alone, and a frame missing its last byte.
  for (
    const wire of [
      bytes(0x82, 0x7e, 0x01),
      bytes(0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c),
    ]
  ) {
    const error = await rejectionOf(decodeStream([wire], { role: "client" }));
    // 1006: the connection ended without a Close frame (RFC 6455 §7.1.5).
    assertWebSocketError(error, 1006, /inside a frame/);
  }
});

// decodeInPlace leaves an incomplete frame to its caller, who passes it again
// with more bytes after it (as the socket's read loop does).
function decodeInPlaceChunks(
  chunks: readonly Uint8Array[],
  options: FrameDecoderOptions,
): Frame[] {
  const decoder = new FrameDecoder(options);
  const frames: Frame[] = [];
  let rest: Uint8Array = new Uint8Array(0);
  for (const chunk of chunks) {
    const bytes = concat([rest, chunk]);
    const used = decoder.decodeInPlace(bytes, (frame) => frames.push(frame));
    rest = bytes.subarray(used);
    // The bytes so far end inside a frame exactly when some are left.
    assertEquals(decoder.hasPartialFrame, rest.length > 0);
    const known = decoder.incompleteFrameBytes;
    if (rest.length === 0) assertEquals(known, 0);
    else if (known > 0) assert(known > rest.length);
  }
  assertEquals(rest.length, 0);
  return frames;
}

Deno.test("FrameDecoder.decodeInPlace decodes every valid input split in two at every byte boundary, and one byte at a time", () => {
  assertDecodesEverySplitInTwo(decodeInPlaceChunks);
  assertDecodesByteByByte(decodeInPlaceChunks);
});

Deno.test("FrameDecoder.decodeInPlace knows an incomplete frame's size from its header and reports the last frame's", () => {
  const decoder = new FrameDecoder({ role: "server" });
  const key = bytes(1, 2, 3, 4);
  const first = frameBytes({
    opcode: 0x2,
    payload: new Uint8Array(300),
    maskKey: key,
  });
  const second = frameBytes({
    opcode: 0x2,
    payload: new Uint8Array(70_000),
    maskKey: key,
  });
  const wire = concat([first, second]);
  // The second frame's header cut after its first byte: size unknown.
  assertEquals(
    decoder.decodeInPlace(wire.subarray(0, first.length + 1), () => {}),
    first.length,
  );
  assertEquals(decoder.incompleteFrameBytes, 0);
  assertEquals(decoder.lastFrameBytes, first.length);
  // Its whole header: size known, nothing more used.
  const frames: Frame[] = [];
  assertEquals(
    decoder.decodeInPlace(
      wire.subarray(first.length, first.length + 14),
      (f) => frames.push(f),
    ),
    0,
  );
  assertEquals(decoder.incompleteFrameBytes, second.length);
  assertEquals(frames.length, 0);
});

for (const input of invalidInputs) {
  Deno.test(`FrameDecoder.decodeInPlace refuses ${input.name} with ${input.closeCode} from the header alone`, () => {
    assertWebSocketError(
      thrownBy(() =>
        new FrameDecoder(input.options).decodeInPlace(
          input.header.slice(),
          () => {},
        )
      ),
      input.closeCode,
      input.message,
    );
  });
}

Deno.test("FrameDecoder.decodeInPlace hands out an incomplete frame's payload as it arrives, unmasked, each byte once", () => {
  const random = seededRandom(6455);
  for (const masked of [false, true]) {
    for (let run = 0; run < 50; run++) {
      const payload = randomBytes(1 + Math.floor(random() * 3000), random);
      const wire = frameBytes({
        opcode: 0x1,
        fin: false,
        payload,
        maskKey: masked ? randomBytes(4, random) : undefined,
      });
      const decoder = new FrameDecoder({
        role: masked ? "server" : "client",
      });
      const partials: Uint8Array[] = [];
      const frames: Frame[] = [];
      let rest: Uint8Array = new Uint8Array(0);
      for (const chunk of randomChunks(wire, random, 700)) {
        // The socket passes the incomplete frame again with more bytes.
        const bytes = concat([rest, chunk]);
        const used = decoder.decodeInPlace(bytes, (f) => frames.push(f));
        rest = bytes.subarray(used);
        const partial = decoder.partialFrame;
        if (partial !== undefined) {
          assertEquals([partial.opcode, partial.fin], [0x1, false]);
          partials.push(partial.payload.slice());
        }
      }
      assertEquals(frames.length, 1);
      assertEquals(frames[0].payload, payload);
      // What arrived before the frame was complete, in order, each byte
      // once: a prefix of the payload.
      const early = concat(partials);
      assert(early.length < payload.length);
      assertEquals(early, payload.subarray(0, early.length));
    }
  }
});

Deno.test("FrameDecoder.partialFrame is undefined when no payload bytes of an incomplete frame arrived", () => {
  const decoder = new FrameDecoder({ role: "client" });
  const wire = frameBytes({ opcode: 0x1, payload: "Hello" });
  // A whole frame, then only a header.
  decoder.decodeInPlace(wire.slice(), () => {});
  assertEquals(decoder.partialFrame, undefined);
  decoder.decodeInPlace(wire.slice(0, 2), () => {});
  assertEquals(decoder.partialFrame, undefined);
  // Two payload bytes, then the same two again (nothing new).
  decoder.decodeInPlace(wire.slice(0, 4), () => {});
  assertEquals(decoder.partialFrame?.payload, utf8("He"));
  decoder.decodeInPlace(wire.slice(0, 4), () => {});
  assertEquals(decoder.partialFrame, undefined);
});
