// Codec throughput: FrameDecoder.decode and encodeFrame for 64 B, 16 KiB and
// 1 MiB payloads, masked and unmasked, each group beside a plain copy of the
// same bytes (Uint8Array.prototype.set) as the baseline, so `deno bench`
// prints the ratio. Throughput = bytes per iteration / time per iteration;
// frames/s for the many-frames group = 1,000 / time per iteration.
//
// Run: deno task bench (or deno bench --import-map=import_map.npm.json -A bench/codec_bench.ts)

import { FrameDecoder, FrameDecoderStream } from "../src/frame_decoder.ts";
import { encodeFrame, FrameEncoderStream } from "../src/frame_encoder.ts";
import { type Frame, Opcode } from "../src/frame.ts";

const KEY = new Uint8Array([0x37, 0xfa, 0x21, 0x3d]);

function randomPayload(size: number): Uint8Array {
  const payload = new Uint8Array(size);
  for (let offset = 0; offset < size; offset += 65536) {
    crypto.getRandomValues(payload.subarray(offset, offset + 65536));
  }
  return payload;
}

function binaryFrame(payload: Uint8Array): Frame {
  return { fin: true, rsv1: false, opcode: Opcode.Binary, payload };
}

/** The wire bytes of one binary frame, masked with KEY or unmasked. */
function wireOf(payload: Uint8Array, masked: boolean): Uint8Array {
  const lengthBytes = payload.length < 126 ? 0 : payload.length < 65536 ? 2 : 8;
  const headerLength = 2 + lengthBytes + (masked ? 4 : 0);
  const wire = new Uint8Array(headerLength + payload.length);
  wire[0] = 0x82;
  const maskBit = masked ? 0x80 : 0;
  const view = new DataView(wire.buffer);
  if (lengthBytes === 0) {
    wire[1] = maskBit | payload.length;
  } else if (lengthBytes === 2) {
    wire[1] = maskBit | 126;
    view.setUint16(2, payload.length);
  } else {
    wire[1] = maskBit | 127;
    view.setBigUint64(2, BigInt(payload.length));
  }
  if (masked) wire.set(KEY, headerLength - 4);
  for (let i = 0; i < payload.length; i++) {
    wire[headerLength + i] = masked ? payload[i] ^ KEY[i & 3] : payload[i];
  }
  return wire;
}

function sizeName(size: number): string {
  return size >= 1 << 20
    ? `${size >> 20} MiB`
    : size >= 1024
    ? `${size >> 10} KiB`
    : `${size} B`;
}

// Keeps results alive so the work is not optimized away.
let _sink: unknown;
const keep = (frame: Frame) => {
  _sink = frame;
};

function copyBench(group: string, bytes: number): void {
  const source = randomPayload(bytes);
  const target = new Uint8Array(bytes);
  Deno.bench({
    name: `copy ${bytes} bytes (Uint8Array.prototype.set)`,
    group,
    baseline: true,
    fn() {
      target.set(source);
      _sink = target;
    },
  });
}

for (const size of [64, 16 * 1024, 1024 * 1024]) {
  const payload = randomPayload(size);

  // Decoding one frame per call. A masked frame is unmasked in place, so
  // every iteration flips the payload between two states: same work.
  for (const masked of [false, true]) {
    const group = `decode ${sizeName(size)} ${masked ? "masked" : "unmasked"}`;
    const wire = wireOf(payload, masked);
    const decoder = new FrameDecoder({ role: masked ? "server" : "client" });
    copyBench(group, wire.length);
    Deno.bench({
      name: `FrameDecoder.decode ${sizeName(size)} ${
        masked ? "masked" : "unmasked"
      }`,
      group,
      fn() {
        decoder.decode(wire, keep);
      },
    });
  }

  // Encoding one frame per call.
  for (const masked of [false, true]) {
    const group = `encode ${sizeName(size)} ${masked ? "masked" : "unmasked"}`;
    const frame = binaryFrame(payload);
    copyBench(group, wireOf(payload, masked).length);
    Deno.bench({
      name: `encodeFrame ${sizeName(size)} ${masked ? "masked" : "unmasked"}${
        !masked && size > 16 * 1024 ? " (payload not copied)" : ""
      }`,
      group,
      fn() {
        _sink = encodeFrame(frame, masked);
      },
    });
  }
}

// Many small frames per chunk: frames/s = 1,000 / time per iteration.
const FRAMES_PER_CHUNK = 1000;
for (const masked of [false, true]) {
  const group = `decode 1,000 × 64 B frames per chunk, ${
    masked ? "masked" : "unmasked"
  }`;
  const frames: Uint8Array[] = [];
  for (let i = 0; i < FRAMES_PER_CHUNK; i++) {
    frames.push(wireOf(randomPayload(64), masked));
  }
  const chunk = new Uint8Array(frames.reduce((n, f) => n + f.length, 0));
  let offset = 0;
  for (const frame of frames) {
    chunk.set(frame, offset);
    offset += frame.length;
  }
  const decoder = new FrameDecoder({ role: masked ? "server" : "client" });
  copyBench(group, chunk.length);
  Deno.bench({
    name: `FrameDecoder.decode 1,000 × 64 B ${
      masked ? "masked" : "unmasked"
    } (${chunk.length} bytes)`,
    group,
    fn() {
      let count = 0;
      decoder.decode(chunk, () => count++);
      if (count !== FRAMES_PER_CHUNK) {
        throw new Error(`decoded ${count} frames`);
      }
    },
  });
}

// The stream wrappers once: 1 MiB of 64 KiB frames through
// FrameEncoderStream (client, masked) → FrameDecoderStream (server), and
// through FrameDecoderStream alone from 64 KiB chunks.
{
  const group = "streams, 1 MiB masked";
  const payloads = Array.from({ length: 16 }, () => randomPayload(65536));
  const wire = new Uint8Array(16 * (65536 + 14));
  payloads.forEach((payload, i) =>
    wire.set(wireOf(payload, true), i * (65536 + 14))
  );
  // Unmasked in place on every pass, like the one-frame benches above.
  const chunks: Uint8Array[] = [];
  for (let offset = 0; offset < wire.length; offset += 65536) {
    chunks.push(wire.subarray(offset, offset + 65536));
  }
  copyBench(group, wire.length);
  Deno.bench({
    name:
      "FrameDecoderStream, 1 MiB as 16 masked 64 KiB frames in 64 KiB chunks",
    group,
    async fn() {
      let count = 0;
      await ReadableStream.from(chunks)
        .pipeThrough(new FrameDecoderStream({ role: "server" }))
        .pipeTo(new WritableStream({ write: () => void count++ }));
      if (count !== 16) throw new Error(`decoded ${count} frames`);
    },
  });
  Deno.bench({
    name: "FrameEncoderStream → FrameDecoderStream, 16 masked 64 KiB frames",
    group,
    async fn() {
      let count = 0;
      await ReadableStream.from(payloads.map(binaryFrame))
        .pipeThrough(new FrameEncoderStream({ role: "client" }))
        .pipeThrough(new FrameDecoderStream({ role: "server" }))
        .pipeTo(new WritableStream({ write: () => void count++ }));
      if (count !== 16) throw new Error(`decoded ${count} frames`);
    },
  });
}
