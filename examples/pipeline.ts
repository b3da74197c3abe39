// deno run -A examples/pipeline.ts --port 9002
// (without access to JSR, add --import-map=import_map.npm.json after `run`)
//
// The design in one line: a socket is a pair of Web Streams, so a server is
// a pipe through transforms.
//
//   socket.readable
//     .pipeThrough(jsonLinesStream())   // text messages → parsed JSON values
//     .pipeThrough(describeStream())    // values → new values
//     .pipeThrough(jsonStringifyStream())
//     .pipeTo(socket.writable);         // back out, one message per value
//
// Each text message may hold several JSON lines (NDJSON); every line comes
// back as its own compact message, with its type added. A line that is not
// JSON comes back as {"error": …} and the socket stays open. Backpressure
// flows through the whole pipe: a client that stops reading stops the
// server reading from it, and the close handshake goes through it as well.
//
// Try it with the echo client:
//   deno run -A examples/echo_client.ts ws://127.0.0.1:9002/ '{"b":1,
//   "a": [1, 2]}' 'not json'

import { serve, type WebSocketServer } from "../mod.ts";

/** A parsed line, or the reason it could not be parsed. */
export type JsonLine = { value: unknown } | { error: string };

/**
 * Splits each text message into lines and parses each non-blank line as
 * JSON. Binary messages are decoded as UTF-8 first.
 */
export function jsonLinesStream(): TransformStream<
  string | Uint8Array,
  JsonLine
> {
  const decoder = new TextDecoder();
  return new TransformStream({
    transform(message, controller) {
      const text = typeof message === "string"
        ? message
        : decoder.decode(message);
      for (const line of text.split("\n")) {
        if (line.trim() === "") continue;
        try {
          controller.enqueue({ value: JSON.parse(line) });
        } catch (error) {
          controller.enqueue({ error: (error as Error).message });
        }
      }
    },
  });
}

/** Wraps every value with its JSON type; passes errors through. */
export function describeStream(): TransformStream<JsonLine, object> {
  return new TransformStream({
    transform(line, controller) {
      if ("error" in line) {
        controller.enqueue({ error: `not JSON: ${line.error}` });
        return;
      }
      const { value } = line;
      const type = value === null
        ? "null"
        : Array.isArray(value)
        ? "array"
        : typeof value;
      controller.enqueue({ type, value });
    },
  });
}

/** Serialises each value as one compact JSON text message. */
export function jsonStringifyStream(): TransformStream<object, string> {
  return new TransformStream({
    transform(value, controller) {
      controller.enqueue(JSON.stringify(value));
    },
  });
}

/** Starts the pipeline server on hostname:port (port 0 picks a free one). */
export function startPipeline(
  options: { port?: number; hostname?: string; signal?: AbortSignal } = {},
): WebSocketServer {
  return serve({
    port: options.port ?? 9002,
    hostname: options.hostname ?? "127.0.0.1",
    signal: options.signal,
  }, async (socket) => {
    await socket.readable
      .pipeThrough(jsonLinesStream())
      .pipeThrough(describeStream())
      .pipeThrough(jsonStringifyStream())
      .pipeTo(socket.writable);
  });
}

if (import.meta.main) {
  const index = Deno.args.indexOf("--port");
  const port = index >= 0 ? Number(Deno.args[index + 1]) : 9002;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(
      `expected --port to be a number from 0 to 65535, found ${
        JSON.stringify(Deno.args[index + 1])
      }`,
    );
    Deno.exit(2);
  }
  const controller = new AbortController();
  Deno.addSignalListener("SIGINT", () => controller.abort());
  const server = startPipeline({ port, signal: controller.signal });
  console.log(`pipeline server on ws://127.0.0.1:${server.addr.port}/`);
  await server.finished;
  Deno.exit(0);
}
