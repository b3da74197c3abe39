/**
 * A WebSocket message as a stream of its payload: what `readable` yields in
 * the `messages: "stream"` mode, and what `writable` accepts to send one
 * message in fragments.
 *
 * @module
 */

import type { Message } from "./message_assembler.ts";

/**
 * One message as it arrives (or as it is sent): its type, and its payload as
 * a stream, text as strings and binary as bytes.
 *
 * Receiving (`messages: "stream"` on `connect()`, `serve()` or
 * `handleUpgrade()`): `readable` yields a `MessageStream` as soon as a
 * message's first frame arrives, and its `stream` gets the payload as the
 * frames arrive (text decoded as it comes, invalid UTF-8 failing the socket
 * with 1007). Reading is flow-controlled down to TCP: while the stream is
 * not read, the socket reads nothing more. Messages follow one another on
 * a connection, so the next message comes once this one has ended. Read
 * each stream to its end, or cancel it: the rest of the message is then
 * read and dropped. Reading the next message from `readable` before the
 * current stream has ended drops the rest of the current one too, and
 * errors its stream with a `TypeError` saying so (a consumer still reading
 * it learns that data is missing). If the connection fails or the peer
 * closes inside a message, its stream errors. `maxMessageBytes` still
 * applies to each message (1009 beyond): raise it to receive larger ones.
 * A binary message's `stream` is a byte stream: read it with
 * `getReader({ mode: "byob" })` and the payload is copied straight into
 * your buffer, so a message of any size passes through one buffer you
 * reuse (a default reader gets a new chunk per frame).
 *
 * Sending: write one to `writable` (or just a `ReadableStream` or `Blob`).
 *
 * An echo, `socket.readable.pipeTo(socket.writable)` on a socket without
 * compression, runs inside the socket: each frame received goes back out
 * as a fragment of the same message as it arrives, and no `MessageStream`
 * is made.
 *
 * @example Receive each message as a stream, and echo it as one
 * ```ts
 * import { connect, serve } from "@wstream/wstream";
 * import { assertEquals } from "@std/assert";
 *
 * await using server = serve(
 *   { port: 0, hostname: "127.0.0.1", messages: "stream" },
 *   // Each message goes back as a stream, never held whole.
 *   (socket) => socket.readable.pipeTo(socket.writable),
 * );
 * const socket = await connect(`ws://127.0.0.1:${server.addr.port}/`, {
 *   messages: "stream",
 * });
 * const writer = socket.writable.getWriter();
 * await writer.write(ReadableStream.from(["Hel", "lo"]));
 * const reader = socket.readable.getReader();
 * const message = (await reader.read()).value!;
 * if (message.type !== "text") throw new Error("expected a text message");
 * assertEquals((await Array.fromAsync(message.stream)).join(""), "Hello");
 * await writer.close();
 * ```
 */
export type MessageStream =
  | { readonly type: "text"; readonly stream: ReadableStream<string> }
  | { readonly type: "binary"; readonly stream: ReadableStream<Uint8Array> };

/**
 * What a socket's `readable` yields for the given options: a
 * {@linkcode MessageStream} with `messages: "stream"`, else a whole
 * `Message` (text as `string`, binary as `Uint8Array`).
 *
 * @example
 * ```ts
 * import type { Message, MessageOf, MessageStream } from "@wstream/wstream";
 *
 * const whole: MessageOf<{ maxMessageBytes: 1024 }> = "text" satisfies Message;
 * const streamed: MessageOf<{ messages: "stream" }> = {
 *   type: "binary",
 *   stream: ReadableStream.from([new Uint8Array([1])]),
 * } satisfies MessageStream;
 * ```
 */
export type MessageOf<Options> = Options extends { messages: "stream" }
  ? MessageStream
  : Message;
