/**
 * A message sent as a stream whose source fails, on a socket subscribed to
 * a hub, over a real connection: the hub's messages held back while the
 * message went out in fragments (RFC 6455 §5.4) must not be sent between
 * its last fragment and the 1011 Close, nor after the Close (§5.5.1).
 */

import { assertEquals, assertInstanceOf } from "@std/assert";
import type { WebSocketConnection } from "../src/connection.ts";
import { Hub } from "../src/hub.ts";
import { serve } from "../src/server.ts";
import { WebSocketError } from "../src/websocket_error.ts";
import { describeFrames, rawClient } from "./_raw_ws_peer.ts";
import { utf8 } from "./_codec_util.ts";
import { maskedFrame, within } from "./_socket_util.ts";

Deno.test("a streamed message whose source fails: the hub's messages held meanwhile and those published before the 1011 Close are not sent between its fragments and the Close", async (t) => {
  for (const publishAfterFailure of [false, true]) {
    await t.step(
      publishAfterFailure
        ? "published after the write failed, before the Close left"
        : "published while the message was being sent",
      async () => {
        const hub = new Hub();
        const writeError = Promise.withResolvers<unknown>();
        await using server = serve(
          { port: 0, hostname: "127.0.0.1", onListen() {} },
          async (socket) => {
            hub.subscribe(socket, "news");
            let source!: ReadableStreamDefaultController<Uint8Array>;
            const stream = new ReadableStream<Uint8Array>({
              start(controller) {
                source = controller;
              },
            });
            source.enqueue(new Uint8Array(10));
            const writer = socket.writable.getWriter();
            const written = writer.write(stream);
            // The first fragment has gone out; the message is unfinished.
            await new Promise((resolve) => setTimeout(resolve, 10));
            if (!publishAfterFailure) hub.publish("news", "hub");
            source.error(new Error("disk error"));
            try {
              await written;
            } catch (error) {
              if (publishAfterFailure) hub.publish("news", "hub");
              writeError.resolve(error);
            }
          },
        );
        const client = await rawClient(server.addr.port);
        const frames = await client.frames;
        const error = await within(5000, writeError.promise, "the write");
        assertInstanceOf(error, WebSocketError);
        assertEquals((error as WebSocketError).closeCode, 1011);
        // RFC 6455 §5.4: nothing but the Close after the unfinished
        // message's first fragment; §5.5.1: nothing after the Close.
        assertEquals(describeFrames(frames), [
          "binary 10 fin=false",
          "close 1011",
        ]);
      },
    );
  }
});

Deno.test('an echo pipe with messages: "stream" whose forwarded message the peer\'s Close cuts: a hub message published as the pipe fails is not sent between its fragment and the 1011 Close', async () => {
  const hub = new Hub();
  const pipeError = Promise.withResolvers<unknown>();
  await using server = serve(
    { port: 0, hostname: "127.0.0.1", onListen() {}, messages: "stream" },
    async (socket) => {
      // (Hub's types take sockets of whole messages; it sends to any.)
      hub.subscribe(socket as unknown as WebSocketConnection, "news");
      try {
        await socket.readable.pipeTo(socket.writable);
      } catch (error) {
        hub.publish("news", "hub");
        pipeError.resolve(error);
      }
    },
  );
  const client = await rawClient(server.addr.port);
  // The first fragment of a text message, then (once it is forwarded) a
  // Close inside the message.
  await client.send(maskedFrame(0x1, utf8("a"), false));
  await new Promise((resolve) => setTimeout(resolve, 20));
  await client.send(maskedFrame(0x8, new Uint8Array([0x03, 0xe8])));
  const frames = await client.frames;
  const error = await within(5000, pipeError.promise, "the pipe");
  assertInstanceOf(error, WebSocketError);
  assertEquals((error as WebSocketError).closeCode, 1011);
  assertEquals(describeFrames(frames), ["text a fin=false", "close 1011"]);
});
