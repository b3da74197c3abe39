import { assert, assertEquals } from "@std/assert";
import { encodeFrame, FrameEncoderStream } from "../src/frame_encoder.ts";
import { FrameDecoder, FrameDecoderStream } from "../src/frame_decoder.ts";
import type { Frame, Opcode } from "../src/frame.ts";
import {
  assertBytesEqual,
  assertFramesEqual,
  bytes,
  concat,
  frameBytes,
  hex,
  randomBytes,
  rechunkStream,
  seededRandom,
  utf8,
} from "./_codec_util.ts";

function frame(
  opcode: number,
  payload: Uint8Array | string,
  fin = true,
  rsv1 = false,
): Frame {
  return {
    fin,
    rsv1,
    opcode: opcode as Opcode,
    payload: typeof payload === "string" ? utf8(payload) : payload,
  };
}

function decodeOne(wire: Uint8Array, role: "client" | "server"): Frame[] {
  const frames: Frame[] = [];
  new FrameDecoder({ role, allowRsv1: true }).decode(
    wire.slice(),
    (f) => frames.push(f),
  );
  return frames;
}

const random = seededRandom(0xe2c0de);
const payload256 = randomBytes(256, random);
const payload64k = randomBytes(65536, random);

// The unmasked examples of RFC 6455 §5.7, byte for byte.
const unmaskedExamples: { name: string; frame: Frame; wire: Uint8Array }[] = [
  {
    name: "single-frame unmasked text message",
    frame: frame(0x1, "Hello"),
    wire: bytes(0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f),
  },
  {
    name: "first fragment of an unmasked text message",
    frame: frame(0x1, "Hel", false),
    wire: bytes(0x01, 0x03, 0x48, 0x65, 0x6c),
  },
  {
    name: "last fragment of an unmasked text message",
    frame: frame(0x0, "lo"),
    wire: bytes(0x80, 0x02, 0x6c, 0x6f),
  },
  {
    name: "unmasked Ping",
    frame: frame(0x9, "Hello"),
    wire: bytes(0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f),
  },
  {
    name: "256 bytes binary message in a single unmasked frame",
    frame: frame(0x2, payload256),
    wire: concat([bytes(0x82, 0x7e, 0x01, 0x00), payload256]),
  },
  {
    name: "64KiB binary message in a single unmasked frame",
    frame: frame(0x2, payload64k),
    wire: concat([
      bytes(0x82, 0x7f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00),
      payload64k,
    ]),
  },
];

for (const example of unmaskedExamples) {
  Deno.test(`encodeFrame produces RFC 6455 §5.7 example: ${example.name}`, () => {
    assertBytesEqual(concat(encodeFrame(example.frame, false)), example.wire);
  });
}

// The masked examples of RFC 6455 §5.7: the encoder picks its own key, so
// the header must match except for the key, and the payload must be the
// frame's payload masked with that key.
const maskedExamples: { name: string; frame: Frame; wire: Uint8Array }[] = [
  {
    name: "single-frame masked text message",
    frame: frame(0x1, "Hello"),
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
  },
  {
    name: "masked Pong",
    frame: frame(0xa, "Hello"),
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
  },
];

for (const example of maskedExamples) {
  Deno.test(`encodeFrame masks RFC 6455 §5.7 example: ${example.name}`, () => {
    const chunks = encodeFrame(example.frame, true);
    assertEquals(chunks.length, 1, "a small frame leaves as one chunk");
    const wire = chunks[0];
    assertEquals(wire.length, example.wire.length);
    assertEquals(hex(wire.subarray(0, 2)), hex(example.wire.subarray(0, 2)));
    const key = wire.subarray(2, 6);
    const unmasked = wire.subarray(6).map((b, i) => b ^ key[i & 3]);
    assertBytesEqual(unmasked, example.frame.payload);
    // With the example's key, our reference builder gives the example's bytes,
    // and the encoder's bytes are that same construction with its own key.
    assertBytesEqual(
      wire,
      frameBytes({
        opcode: example.frame.opcode,
        payload: example.frame.payload,
        maskKey: key.slice(),
      }),
    );
    assertFramesEqual(decodeOne(wire, "server"), [example.frame]);
  });
}

Deno.test("encodeFrame picks a fresh masking key for every frame", () => {
  const keys = new Set<string>();
  for (let i = 0; i < 20; i++) {
    const wire = concat(encodeFrame(frame(0x1, "Hello"), true));
    keys.add(hex(wire.subarray(2, 6)));
  }
  // 20 random 32-bit keys collide with probability < 1e-7.
  assertEquals(keys.size, 20);
});

Deno.test("encodeFrame leaves the caller's payload untouched when masking", () => {
  const payload = randomBytes(70000, seededRandom(5));
  const copy = payload.slice();
  for (const size of [0, 5, 125, 126, 70000]) {
    encodeFrame(frame(0x2, payload.subarray(0, size)), true);
  }
  assertBytesEqual(payload, copy);
});

Deno.test("encodeFrame uses the minimal length form at each boundary (RFC 6455 §5.2)", () => {
  const cases: [number, string][] = [
    [0, "82 00"],
    [1, "82 01"],
    [125, "82 7d"],
    [126, "82 7e 00 7e"],
    [127, "82 7e 00 7f"],
    [65535, "82 7e ff ff"],
    [65536, "82 7f 00 00 00 00 00 01 00 00"],
    [1 << 20, "82 7f 00 00 00 00 00 10 00 00"],
  ];
  for (const [size, header] of cases) {
    const payload = randomBytes(size, random);
    const wire = concat(encodeFrame(frame(0x2, payload), false));
    const headerLength = header.split(" ").length;
    assertEquals(hex(wire.subarray(0, headerLength)), header, `${size} bytes`);
    assertBytesEqual(wire.subarray(headerLength), payload);
    // Masked: the same header with the mask bit, then a 4-byte key.
    const masked = concat(encodeFrame(frame(0x2, payload), true));
    const maskedHeader = header.split(" ").map((h, i) =>
      i === 1 ? (parseInt(h, 16) | 0x80).toString(16) : h
    ).join(" ");
    assertEquals(
      hex(masked.subarray(0, headerLength)),
      maskedHeader,
      `${size} bytes masked`,
    );
    assertEquals(masked.length, wire.length + 4);
  }
});

Deno.test("encodeFrame sets FIN, RSV1 and the opcode from the frame", () => {
  assertEquals(hex(concat(encodeFrame(frame(0x1, "", false), false))), "01 00");
  assertEquals(hex(concat(encodeFrame(frame(0x0, "", true), false))), "80 00");
  assertEquals(
    hex(concat(encodeFrame(frame(0x1, "", true, true), false))),
    "c1 00",
  );
  assertEquals(
    hex(concat(encodeFrame(frame(0x8, bytes(3, 0xe8)), false))),
    "88 02 03 e8",
  );
});

Deno.test("encodeFrame sends a large unmasked payload without copying it", () => {
  const payload = randomBytes(1 << 20, random);
  const chunks = encodeFrame(frame(0x2, payload), false);
  assertEquals(chunks.length, 2);
  assertEquals(hex(chunks[0]), "82 7f 00 00 00 00 00 10 00 00");
  assert(
    chunks[1].buffer === payload.buffer,
    "the payload chunk is a view of the payload",
  );
  assertEquals(chunks[1].byteOffset, payload.byteOffset);
  assertEquals(chunks[1].length, payload.length);
});

Deno.test("encodeFrame sends a small frame as one chunk", () => {
  for (const mask of [false, true]) {
    assertEquals(encodeFrame(frame(0x1, "Hello"), mask).length, 1);
    assertEquals(encodeFrame(frame(0x9, ""), mask).length, 1);
  }
});

Deno.test("decode(encode(frame)) is the frame, masked and unmasked, for every opcode and flag", () => {
  const frames: Frame[] = [];
  for (const opcode of [0x0, 0x1, 0x2]) {
    for (const fin of [false, true]) {
      // RFC 7692 §6: RSV1 only on the first frame of a message.
      for (const rsv1 of opcode === 0x0 ? [false] : [false, true]) {
        frames.push(frame(opcode, randomBytes(200, random), fin, rsv1));
      }
    }
  }
  for (const opcode of [0x8, 0x9, 0xa]) {
    frames.push(frame(opcode, randomBytes(125, random)));
    frames.push(frame(opcode, new Uint8Array(0)));
  }
  for (const f of frames) {
    assertFramesEqual(decodeOne(concat(encodeFrame(f, true)), "server"), [f]);
    assertFramesEqual(decodeOne(concat(encodeFrame(f, false)), "client"), [f]);
  }
});

// Round trips through the streams: client role encodes (masked) and server
// role decodes, and the reverse unmasked, with random re-chunking between.
const roundTripSizes = [0, 1, 125, 126, 127, 65535, 65536, 1 << 20];

for (
  const [encoderRole, decoderRole] of [["client", "server"], [
    "server",
    "client",
  ]] as const
) {
  const masked = encoderRole === "client";
  Deno.test(
    `FrameEncoderStream → FrameDecoderStream round trip, ${encoderRole} to ${decoderRole} (${
      masked ? "masked" : "unmasked"
    }), random payloads and chunking`,
    async () => {
      const seed = masked ? 101 : 202;
      const rng = seededRandom(seed);
      const frames: Frame[] = [];
      for (const size of roundTripSizes) {
        frames.push(frame(0x2, randomBytes(size, rng)));
        if (size < 1 << 20) {
          frames.push(frame(0x1, randomBytes(size, rng), false, true));
        }
      }
      frames.push(
        frame(0x9, randomBytes(125, rng)),
        frame(0x8, bytes(0x03, 0xe8)),
      );
      const sent = frames.map((f) => ({ ...f, payload: f.payload.slice() }));
      const wireChunks: Uint8Array[] = [];
      const received = await Array.fromAsync(
        ReadableStream.from(frames)
          .pipeThrough(new FrameEncoderStream({ role: encoderRole }))
          .pipeThrough(
            new TransformStream<Uint8Array, Uint8Array>({
              transform(chunk, controller) {
                wireChunks.push(chunk.slice(0, 2));
                controller.enqueue(chunk);
              },
            }),
          )
          .pipeThrough(rechunkStream(rng, 70000))
          .pipeThrough(
            new FrameDecoderStream({ role: decoderRole, allowRsv1: true }),
          ),
      );
      assertFramesEqual(received, sent);
      // The encoder did not touch the payloads it was given.
      assertFramesEqual(frames, sent);
      // The first chunk starts a frame: its mask bit matches the role.
      assertEquals((wireChunks[0][1] & 0x80) !== 0, masked);
    },
  );
}

Deno.test("FrameEncoderStream in the client role masks every frame, the server role none", async () => {
  for (const role of ["client", "server"] as const) {
    const wire = concat(
      await Array.fromAsync(
        ReadableStream.from([
          frame(0x1, "a"),
          frame(0x9, ""),
          frame(0x2, new Uint8Array(300)),
        ])
          .pipeThrough(new FrameEncoderStream({ role })),
      ),
    );
    // Walk the headers.
    let offset = 0;
    let count = 0;
    while (offset < wire.length) {
      const maskBit = (wire[offset + 1] & 0x80) !== 0;
      assertEquals(maskBit, role === "client");
      let length = wire[offset + 1] & 0x7f;
      let headerLength = 2;
      if (length === 126) {
        length = (wire[offset + 2] << 8) | wire[offset + 3];
        headerLength = 4;
      }
      offset += headerLength + (maskBit ? 4 : 0) + length;
      count++;
    }
    assertEquals(offset, wire.length);
    assertEquals(count, 3);
  }
});
