/**
 * One large message echoed through wstream, as a stream and whole, each
 * side in its own process: throughput (MB/s, both directions' payload over
 * the round trip) and peak RSS (VmHWM) of client and server.
 *
 *     flock /tmp/wstream-bench.lock deno task bench:stream [MiB]   # default 256
 *
 * Stream: client writes a `ReadableStream` of 64 KiB chunks, the server
 * (`messages: "stream"`) pipes `readable` to `writable`, the client reads
 * the echo as a stream. Whole: the client writes one `Uint8Array`, the
 * server (maxMessageBytes raised) echoes it whole. Compression off.
 *
 * @module
 */

import { connect } from "../src/client.ts";
import { serve } from "../src/server.ts";

const MIB = 1024 * 1024;
const IMPORT_MAP = new URL("../import_map.npm.json", import.meta.url).pathname;

function peakRss(): number {
  const status = Deno.readTextFileSync("/proc/self/status");
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

async function runServer(mode: string): Promise<void> {
  const server = serve({
    port: 0,
    hostname: "127.0.0.1",
    compression: false,
    messages: mode === "stream" ? "stream" : "whole",
    maxMessageBytes: 2 ** 31,
    maxFrameBytes: 2 ** 31,
    onListen: ({ port }) => console.log(JSON.stringify({ port })),
  }, (socket) => socket.readable.pipeTo(socket.writable));
  // Ends when the parent closes stdin.
  await Deno.stdin.readable.pipeTo(new WritableStream());
  await server.shutdown();
  console.log(JSON.stringify({ peakRss: peakRss() }));
}

async function runClient(url: string, mode: string, mib: number) {
  const block = new Uint8Array(MIB);
  for (let i = 0; i < MIB; i += 65536) {
    crypto.getRandomValues(block.subarray(i, i + 65536));
  }
  const total = mib * MIB;
  const started = performance.now();
  let received = 0;
  if (mode === "stream") {
    const socket = await connect(url, {
      compression: false,
      messages: "stream",
      // The limit applies to streamed messages too.
      maxMessageBytes: 2 ** 31,
    });
    const writer = socket.writable.getWriter();
    let sent = 0;
    const sending = writer.write(
      new ReadableStream<Uint8Array>({
        pull(controller) {
          if (sent === total) return controller.close();
          const offset = sent % MIB;
          controller.enqueue(block.slice(offset, offset + 65536));
          sent += 65536;
        },
      }, { highWaterMark: 0 }),
    );
    const { value } = await socket.readable.getReader().read();
    for await (const chunk of value!.stream) received += chunk.length;
    await sending;
    await writer.close();
  } else {
    const socket = await connect(url, {
      compression: false,
      maxMessageBytes: 2 ** 31,
      maxFrameBytes: 2 ** 31,
    });
    const message = new Uint8Array(total);
    for (let i = 0; i < mib; i++) message.set(block, i * MIB);
    const writer = socket.writable.getWriter();
    const sending = writer.write(message);
    const { value } = await socket.readable.getReader().read();
    received = (value as Uint8Array).length;
    await sending;
    await writer.close();
  }
  const seconds = (performance.now() - started) / 1000;
  if (received !== total) throw new Error(`echoed ${received} of ${total}`);
  console.log(JSON.stringify({
    mbPerSecond: 2 * total / 1e6 / seconds,
    peakRss: peakRss(),
  }));
}

function child(args: string[]): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      `--import-map=${IMPORT_MAP}`,
      new URL(import.meta.url).pathname,
      ...args,
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
}

async function measure(mode: string, mib: number) {
  const server = child(["server", mode]);
  const lines = server.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  while (!out.includes("\n")) out += (await lines.read()).value ?? "";
  const { port } = JSON.parse(out.split("\n")[0]);
  out = out.slice(out.indexOf("\n") + 1);
  const client = child([
    "client",
    `ws://127.0.0.1:${port}/`,
    mode,
    String(mib),
  ]);
  await client.stdin.close();
  const clientOut = new TextDecoder().decode((await client.output()).stdout);
  await server.stdin.close();
  while (true) {
    const { value, done } = await lines.read();
    if (done) break;
    out += value;
  }
  await server.status;
  const c = JSON.parse(clientOut.trim().split("\n").at(-1)!);
  const s = JSON.parse(out.trim().split("\n").at(-1)!);
  return {
    mode,
    mbPerSecond: c.mbPerSecond,
    clientRss: c.peakRss,
    serverRss: s.peakRss,
  };
}

if (Deno.args[0] === "server") await runServer(Deno.args[1]);
else if (Deno.args[0] === "client") {
  await runClient(Deno.args[1], Deno.args[2], Number(Deno.args[3]));
} else {
  const mib = Number(Deno.args[0] ?? 256);
  console.log(`one ${mib} MiB message echoed (compression off)`);
  console.log("mode    MB/s   client peak RSS   server peak RSS");
  const rows = [];
  for (const mode of ["whole", "stream"]) {
    const row = await measure(mode, mib);
    rows.push(row);
    console.log(
      `${mode.padEnd(7)} ${row.mbPerSecond.toFixed(0).padStart(5)}   ${
        (row.clientRss / MIB).toFixed(1).padStart(9)
      } MiB     ${(row.serverRss / MIB).toFixed(1).padStart(9)} MiB`,
    );
  }
  const [whole, stream] = rows;
  console.log(
    `stream/whole: ${
      (stream.mbPerSecond / whole.mbPerSecond).toFixed(2)
    }x MB/s, ` +
      `${(stream.serverRss / whole.serverRss).toFixed(2)}x server RSS, ` +
      `${(stream.clientRss / whole.clientRss).toFixed(2)}x client RSS`,
  );
}
