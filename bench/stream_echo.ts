/**
 * One large message echoed through wstream, as a stream and whole, each
 * side in its own process: throughput (MB/s, both directions' payload over
 * the round trip) and peak RSS (VmHWM) of client and server.
 *
 *     flock /tmp/wstream-bench.lock deno task bench:stream [MiB]   # default 256
 *
 * Stream: the client writes a byte `ReadableStream` (which the socket
 * reads into its own buffers, as it reads a file's `readable`), the server
 * (`messages: "stream"`) pipes `readable` to `writable`, the client reads
 * the echo with a BYOB reader into one buffer. Whole: the client writes one
 * `Uint8Array`, the server (maxMessageBytes raised) echoes it whole.
 * Compression off.
 *
 * @module
 */

// Each child loads only its side of the library, as a user's program would
// (the other side's modules cost RSS too); the parent loads neither.
type ClientModule = typeof import("../src/client.ts");
type ServerModule = typeof import("../src/server.ts");

const MIB = 1024 * 1024;
const IMPORT_MAP = new URL("../import_map.npm.json", import.meta.url).pathname;

function peakRss(): number {
  const status = Deno.readTextFileSync("/proc/self/status");
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

async function runServer(mode: string): Promise<void> {
  const { serve }: ServerModule = await import("../src/server.ts");
  const server = serve({
    port: 0,
    hostname: "127.0.0.1",
    compression: false,
    messages: mode === "stream" ? "stream" : "whole",
    maxMessageBytes: 2 ** 31,
    maxFrameBytes: 2 ** 31,
    onListen: ({ port }) => console.log(JSON.stringify({ port })),
  }, (socket) => socket.readable.pipeTo(socket.writable));
  // Ends when the parent closes stdin (read plainly: a stream pipe would
  // add its own machinery to the RSS measured).
  const scratch = new Uint8Array(64);
  while (await Deno.stdin.read(scratch) !== null) { /* until closed */ }
  await server.shutdown();
  console.log(JSON.stringify({ peakRss: peakRss() }));
}

async function runClient(url: string, mode: string, mib: number) {
  const { connect }: ClientModule = await import("../src/client.ts");
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
    // A byte stream: the socket reads it into its own buffers (BYOB), as
    // it reads a file's `readable`.
    const sending = writer.write(
      new ReadableStream({
        type: "bytes",
        pull(controller) {
          if (sent === total) {
            controller.close();
            controller.byobRequest?.respond(0);
            return;
          }
          const view = controller.byobRequest!.view!;
          const offset = sent % MIB;
          const count = Math.min(view.byteLength, MIB - offset, total - sent);
          new Uint8Array(view.buffer, view.byteOffset, count)
            .set(block.subarray(offset, offset + count));
          controller.byobRequest!.respond(count);
          sent += count;
        },
      }, { highWaterMark: 0 }),
    );
    const { value } = await socket.readable.getReader().read();
    if (value?.type !== "binary") throw new Error("expected a binary echo");
    // Read into one buffer of our own (BYOB): no chunk per frame.
    const echo = value.stream.getReader({ mode: "byob" });
    let buffer = new Uint8Array(65536);
    while (true) {
      const { value: bytes, done } = await echo.read(buffer);
      if (done) break;
      received += bytes.length;
      buffer = new Uint8Array(bytes.buffer);
    }
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

async function measure(mode: string, mib: number): Promise<LargeMessageRow> {
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

/** One mode's figures: MB/s and each side's peak RSS (bytes). */
export interface LargeMessageRow {
  mode: string;
  mbPerSecond: number;
  clientRss: number;
  serverRss: number;
}

/**
 * Echoes one `mib` MiB message whole, then as a stream, each side in its
 * own process, and prints a table and the stream/whole ratios.
 *
 * @param mib The message's size in MiB.
 * @returns The two rows, whole first.
 */
export async function largeMessageRows(
  mib: number,
): Promise<LargeMessageRow[]> {
  console.log(`\none ${mib} MiB message echoed (compression off)\n`);
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
    }x MB/s (target >= 0.8), ` +
      `${(stream.serverRss / whole.serverRss).toFixed(3)}x server RSS, ` +
      `${
        (stream.clientRss / whole.clientRss).toFixed(3)
      }x client RSS (targets <= 0.125)`,
  );
  return rows;
}

if (import.meta.main) {
  if (Deno.args[0] === "server") await runServer(Deno.args[1]);
  else if (Deno.args[0] === "client") {
    await runClient(Deno.args[1], Deno.args[2], Number(Deno.args[3]));
  } else await largeMessageRows(Number(Deno.args[0] ?? 256));
}
