/**
 * A child process for the large-message test: `server <file>` accepts one
 * WebSocket in the `messages: "stream"` mode and streams its first message
 * into `file`; `client <url> <file>` streams `file` to `url` as one message.
 * Each prints one JSON line at the end with its peak RSS (VmHWM, bytes).
 *
 * @module
 */

function peakRss(): number {
  const status = Deno.readTextFileSync("/proc/self/status");
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

const [role, ...args] = Deno.args;
// Each role loads only its side of the library, as a user's program would
// (the other side's modules cost a few MiB of RSS).
if (role === "server") {
  const { serve } = await import("../src/server.ts");
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
    if (message?.type !== "binary") {
      throw new Error(`expected a binary message, found ${message?.type}`);
    }
    // A BYOB reader: the socket copies each payload straight into this one
    // buffer, so no chunk per frame waits for the garbage collector.
    using file = await Deno.create(path);
    const payload = message.stream.getReader({ mode: "byob" });
    let buffer = new Uint8Array(64 * 1024);
    let bytes = 0;
    while (true) {
      const { value, done } = await payload.read(buffer);
      if (done) break;
      for (let written = 0; written < value.length;) {
        written += await file.write(value.subarray(written));
      }
      bytes += value.length;
      buffer = new Uint8Array(value.buffer);
    }
    reader.releaseLock();
    socket.close();
    await socket.closed;
    done.resolve(bytes);
  });
  const bytes = await done.promise;
  await server.shutdown();
  console.log(JSON.stringify({ bytes, peakRss: peakRss() }));
} else {
  const { connect } = await import("../src/client.ts");
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
