// deno run -A examples/echo_server.ts --port 9001
// (without access to JSR, pass the npm import map:
// deno run --import-map=import_map.npm.json -A examples/echo_server.ts --port 9001)
//
// A WebSocket echo server: every message comes back as it was sent, until
// the client closes. Try it with a browser console:
//   const ws = new WebSocket("ws://127.0.0.1:9001/");
//   ws.onmessage = (e) => console.log(e.data); ws.onopen = () => ws.send("hi");

import { serve } from "../mod.ts";

function parsePort(args: string[]): number {
  const index = args.findIndex((arg) =>
    arg === "--port" || arg.startsWith("--port=")
  );
  if (index < 0) return 9001;
  const text = args[index].includes("=")
    ? args[index].split("=")[1]
    : args[index + 1];
  const port = Number(text);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(
      `expected --port to be a number from 0 to 65535, found ${
        JSON.stringify(text)
      }`,
    );
    Deno.exit(2);
  }
  return port;
}

const hostnameIndex = Deno.args.indexOf("--hostname");
const hostname = hostnameIndex >= 0
  ? Deno.args[hostnameIndex + 1]
  : "127.0.0.1";

// Ctrl+C shuts down gracefully: every client gets Close 1001.
const controller = new AbortController();
const onInterrupt = () => controller.abort();
Deno.addSignalListener("SIGINT", onInterrupt);

const server = serve({
  port: parsePort(Deno.args),
  hostname,
  signal: controller.signal,
  onListen: ({ hostname, port }) =>
    console.log(`echo server on ws://${hostname}:${port}/`),
  fallback: () =>
    new Response("wstream echo server: connect with a WebSocket\n"),
}, (socket) => socket.readable.pipeTo(socket.writable));

await server.finished;
Deno.removeSignalListener("SIGINT", onInterrupt);
