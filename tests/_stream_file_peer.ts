/**
 * A child process for the large-message test: `server <file>` accepts one
 * WebSocket in the `messages: "stream"` mode and streams its first message
 * into `file`; `client <url> <file>` streams `file` to `url` as one message.
 * Each prints one JSON line at the end with its peak RSS (VmHWM, bytes).
 *
 * @module
 */

import { connect } from "../src/client.ts";
import { serve } from "../src/server.ts";

function peakRss(): number {
  const status = Deno.readTextFileSync("/proc/self/status");
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

const [role, ...args] = Deno.args;
if (role === "server") {
  const [path] = args;
  const done = Promise.withResolvers<number>();
  const server = serve({
    port: 0,
    hostname: "127.0.0.1",
    messages: "stream",
    // 64 KiB file chunks compress at zlib's speed, not the network's.
    compression: false,
    maxMessageBytes: 2 ** 31,
    onListen: ({ port }) => console.log(JSON.stringify({ port })),
  }, async (socket) => {
    const reader = socket.readable.getReader();
    const { value: message } = await reader.read();
    const file = await Deno.create(path);
    let bytes = 0;
    await message!.stream
      .pipeThrough(
        new TransformStream<string | Uint8Array, Uint8Array>({
          transform(chunk, controller) {
            bytes += chunk.length;
            controller.enqueue(chunk as Uint8Array);
          },
        }),
      )
      .pipeTo(file.writable);
    reader.releaseLock();
    socket.close();
    await socket.closed;
    done.resolve(bytes);
  });
  const bytes = await done.promise;
  await server.shutdown();
  console.log(JSON.stringify({ bytes, peakRss: peakRss() }));
} else {
  const [url, path] = args;
  const socket = await connect(url, { compression: false });
  const file = await Deno.open(path);
  const writer = socket.writable.getWriter();
  await writer.write(file.readable);
  await writer.close();
  const closed = await socket.closed;
  console.log(
    JSON.stringify({ closeCode: closed.closeCode, peakRss: peakRss() }),
  );
}
