// deno run -A examples/echo_client.ts ws://127.0.0.1:9001/ hello "second message"
// (start a server first: deno run -A examples/echo_server.ts --port 9001;
// without access to JSR, add --import-map=import_map.npm.json after `run`)
//
// A WebSocket client: connects, sends each argument after the URL as a text
// message (or three sample messages), prints every echo, then closes with
// 1000 and prints how the connection ended.

import { connect } from "../mod.ts";

const [url = "ws://127.0.0.1:9001/", ...rest] = Deno.args;
const messages = rest.length > 0 ? rest : ["hello", "from", "wstream"];

let socket;
try {
  socket = await connect(url, { handshakeTimeoutMs: 5000 });
} catch (error) {
  console.error(`could not connect to ${url}: ${(error as Error).message}`);
  Deno.exit(1);
}
console.log(`connected to ${url}`);

const writer = socket.writable.getWriter();
const reader = socket.readable.getReader();
for (const message of messages) {
  await writer.write(message);
  const { value, done } = await reader.read();
  if (done) break; // the server closed early; `closed` says why
  console.log(`echo: ${value}`);
}
reader.releaseLock();
// Closing the writable sends Close 1000 and waits for the server's Close.
await writer.close().catch(() => {});
const { closeCode, reason } = await socket.closed;
console.log(`closed: ${closeCode}${reason ? ` ${reason}` : ""}`);
