import { assert, assertEquals, assertRejects } from "@std/assert";
import { WebSocketConnection } from "../src/connection.ts";
import { WebSocketError } from "../src/websocket_error.ts";
import { memoryTransportPair } from "./_memory_transport.ts";

function socketPair(
  options: { closeTimeoutMs?: number; maxMessageBytes?: number } = {},
) {
  const [clientEnd, serverEnd] = memoryTransportPair();
  const client = new WebSocketConnection({
    role: "client",
    transport: clientEnd,
    ...options,
  });
  const server = new WebSocketConnection({
    role: "server",
    transport: serverEnd,
    ...options,
  });
  return { client, server, clientEnd, serverEnd };
}

Deno.test("a piped server echoes text and binary, then the client's close completes", async () => {
  const { client, server } = socketPair();
  const echo = server.readable.pipeTo(server.writable);
  const writer = client.writable.getWriter();
  const reader = client.readable.getReader();
  await writer.write("héllo");
  await writer.write(new Uint8Array([1, 2, 3]));
  assertEquals((await reader.read()).value, "héllo");
  assertEquals((await reader.read()).value, new Uint8Array([1, 2, 3]));
  await writer.close();
  assertEquals((await reader.read()).done, true);
  await echo;
  assertEquals(await client.closed, {
    closeCode: 1000,
    reason: "",
    wasClean: true,
  });
  assertEquals(await server.closed, {
    closeCode: 1000,
    reason: "",
    wasClean: true,
  });
});

Deno.test("close() with a code and reason reaches the peer, which echoes it", async () => {
  const { client, server } = socketPair();
  server.close({ closeCode: 4000, reason: "bye" });
  const messages = await Array.fromAsync(client.readable);
  assertEquals(messages, []);
  assertEquals(await client.closed, {
    closeCode: 4000,
    reason: "bye",
    wasClean: true,
  });
  assertEquals(await server.closed, {
    closeCode: 4000,
    reason: "bye",
    wasClean: true,
  });
});

Deno.test("a message over maxMessageBytes fails the receiver with 1009", async () => {
  const [clientEnd, serverEnd] = memoryTransportPair();
  const client = new WebSocketConnection({
    role: "client",
    transport: clientEnd,
  });
  const server = new WebSocketConnection({
    role: "server",
    transport: serverEnd,
    maxMessageBytes: 10,
  });
  const writer = client.writable.getWriter();
  await writer.write("this is longer than ten bytes");
  const error = await assertRejects(
    () => Array.fromAsync(server.readable),
    WebSocketError,
  );
  assertEquals(error.closeCode, 1009);
  assertEquals((await server.closed).closeCode, 1009);
  const clientResult = await client.closed;
  assertEquals(clientResult.closeCode, 1009);
  assert(clientResult.reason.includes("at most 10 bytes"), clientResult.reason);
});
