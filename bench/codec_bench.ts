// Codec throughput: FrameDecoder.decode and encodeFrame for 64 B, 16 KiB and
// 1 MiB payloads, masked and unmasked, each group beside a plain copy of the
// same bytes (Uint8Array.prototype.set) as the baseline, so `deno bench`
// prints the ratio.
//
// MB/s and frames/s: the last bench ("throughput report") times every bench
// above once more in its own loops (batches of calls lasting at least 5 ms,
// for 100 ms, median time per call) and prints a table per group: MB/s =
// wire bytes per call / time per call (10^6 bytes), frames/s = frames per
// call / time per call. `performance.now()` costs about 0.4 µs here, more
// than a 64 B decode, so the calls are timed in batches, not one by one;
// the figures therefore come from that loop, not from `deno bench`'s
// time/iter column (they agree to within run-to-run noise). Decoding an
// unmasked frame and encoding an unmasked one over 16 KiB hand out views of
// the payload (no copy), so their MB/s is a header rate, not a byte rate.
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

/** A bench, with what one call moves, for the throughput report. */
interface Measured {
  group: string;
  name: string;
  /** Wire bytes per call. */
  bytes: number;
  /** Frames per call (0: not a codec call, no frames/s). */
  frames: number;
  fn: () => unknown;
  isAsync: boolean;
}

const measured: Measured[] = [];

/** Deno.bench, also recorded for the throughput report. */
function bench(
  definition: {
    name: string;
    group: string;
    baseline?: boolean;
    bytes: number;
    frames: number;
    fn: () => void;
  } | {
    name: string;
    group: string;
    bytes: number;
    frames: number;
    fn: () => Promise<void>;
    isAsync: true;
  },
): void {
  const { name, group, fn } = definition;
  Deno.bench({
    name,
    group,
    baseline: "baseline" in definition ? definition.baseline : undefined,
    fn,
  });
  measured.push({
    group,
    name,
    bytes: definition.bytes,
    frames: definition.frames,
    fn,
    isAsync: "isAsync" in definition,
  });
}

function copyBench(group: string, bytes: number): void {
  const source = randomPayload(bytes);
  const target = new Uint8Array(bytes);
  bench({
    name: `copy ${bytes} bytes (Uint8Array.prototype.set)`,
    group,
    baseline: true,
    bytes,
    frames: 0,
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
    bench({
      name: `FrameDecoder.decode ${sizeName(size)} ${
        masked ? "masked" : "unmasked"
      }`,
      group,
      bytes: wire.length,
      frames: 1,
      fn() {
        decoder.decode(wire, keep);
      },
    });
  }

  // Encoding one frame per call.
  for (const masked of [false, true]) {
    const group = `encode ${sizeName(size)} ${masked ? "masked" : "unmasked"}`;
    const frame = binaryFrame(payload);
    const wireBytes = wireOf(payload, masked).length;
    copyBench(group, wireBytes);
    bench({
      name: `encodeFrame ${sizeName(size)} ${masked ? "masked" : "unmasked"}${
        !masked && size > 16 * 1024 ? " (payload not copied)" : ""
      }`,
      group,
      bytes: wireBytes,
      frames: 1,
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
  bench({
    name: `FrameDecoder.decode 1,000 × 64 B ${
      masked ? "masked" : "unmasked"
    } (${chunk.length} bytes)`,
    group,
    bytes: chunk.length,
    frames: FRAMES_PER_CHUNK,
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
  bench({
    name:
      "FrameDecoderStream, 1 MiB as 16 masked 64 KiB frames in 64 KiB chunks",
    group,
    bytes: wire.length,
    frames: 16,
    isAsync: true,
    async fn() {
      let count = 0;
      await ReadableStream.from(chunks)
        .pipeThrough(new FrameDecoderStream({ role: "server" }))
        .pipeTo(new WritableStream({ write: () => void count++ }));
      if (count !== 16) throw new Error(`decoded ${count} frames`);
    },
  });
  bench({
    name: "FrameEncoderStream → FrameDecoderStream, 16 masked 64 KiB frames",
    group,
    bytes: wire.length,
    frames: 16,
    isAsync: true,
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

/** Median time of one call in ms, from batches of calls of at least 5 ms. */
async function timePerCall(entry: Measured): Promise<number> {
  const run = async (calls: number): Promise<number> => {
    const started = performance.now();
    if (entry.isAsync) {
      for (let i = 0; i < calls; i++) await entry.fn();
    } else {
      for (let i = 0; i < calls; i++) entry.fn();
    }
    return performance.now() - started;
  };
  let calls = 1;
  while (await run(calls) < 5) calls *= 2;
  const samples: number[] = [];
  const until = performance.now() + 100;
  while (performance.now() < until || samples.length < 5) {
    samples.push(await run(calls) / calls);
  }
  samples.sort((a, b) => a - b);
  return samples[samples.length >> 1];
}

function formatRate(perSecond: number): string {
  return perSecond >= 100
    ? Math.round(perSecond).toLocaleString("en-US")
    : perSecond.toFixed(1);
}

// Last, so it runs after every bench above: prints MB/s and frames/s per
// group. Its own time/iter is the time of the report, not a measurement;
// `deno bench` calls it more than once even with n: 1, so it reports once.
let reported = false;
Deno.bench({
  name: "throughput report (MB/s and frames/s per group, printed below)",
  group: "throughput report",
  n: 1,
  warmup: 0,
  async fn() {
    if (reported) return;
    reported = true;
    const lines = [
      "",
      "codec throughput (MB = 10^6 bytes; time per call from the report's own timed loops)",
    ];
    let group = "";
    for (const entry of measured) {
      if (entry.group !== group) {
        group = entry.group;
        lines.push(`  ${group}`);
      }
      const ms = await timePerCall(entry);
      const seconds = ms / 1000;
      const mbs = entry.bytes / seconds / 1e6;
      const frames = entry.frames > 0
        ? `, ${formatRate(entry.frames / seconds)} frames/s`
        : "";
      lines.push(
        `    ${entry.name}: ${
          ms >= 0.001
            ? `${(ms * 1000).toFixed(2)} µs`
            : `${(ms * 1e6).toFixed(0)} ns`
        }/call, ${formatRate(mbs)} MB/s${frames}`,
      );
    }
    console.log(lines.join("\n"));
  },
});
