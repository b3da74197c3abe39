// A Node user's TypeScript file: tests/node_declarations_test.ts type-checks
// it with npm `tsc` against the declarations of the Node build (imported as
// the package "@wstream/wstream"), then runs what tsc emits on Node. It
// echoes one message through handleUpgrade() on node:http and connect(),
// opens and closes a WHATWG WebSocket, and prints what it saw as one JSON
// line. The `@ts-expect-error` lines are misuses the declarations must
// refuse: were a type `any`, tsc would report the directive unused.

import { createServer } from "node:http";
import {
  CloseCode,
  connect,
  handleUpgrade,
  type Message,
  serve,
  type Socket,
  WebSocket,
  WebSocketStream,
} from "@wstream/wstream";

const server = createServer((_request, response) => response.end("page"));
server.on("upgrade", (request, socket, head) => {
  // node:http's IncomingMessage, Duplex and Buffer fit handleUpgrade().
  void handleUpgrade(request, socket, head, { protocols: ["echo"] }, (ws) => {
    const wrapped: Socket = ws;
    return wrapped.readable.pipeTo(wrapped.writable);
  });
  // @ts-expect-error: handleUpgrade() needs a handler.
  void handleUpgrade(request, socket, head, {});
});
await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
const { port } = server.address() as { port: number };
const url = `ws://127.0.0.1:${port}/`;

const client = await connect(url, { protocols: ["echo"] });
const protocol: string = client.protocol;
// @ts-expect-error: the subprotocol is a string.
const wrongProtocol: number = client.protocol;
void wrongProtocol;
const writer = client.writable.getWriter();
await writer.write("typed");
const reader = client.readable.getReader();
const echoed: Message | undefined = (await reader.read()).value;
reader.releaseLock();
await writer.close();
const { closeCode } = await client.closed;

const whatwg = new WebSocket(url, "echo");
const whatwgClose = await new Promise<[number, string, boolean]>((resolve) => {
  whatwg.onopen = () => whatwg.close(CloseCode.NormalClosure, "done");
  // A CloseEvent without TypeScript's DOM library.
  whatwg.onclose = (event) =>
    resolve([event.code, event.reason, event.wasClean]);
});
// @ts-expect-error: send() takes text or bytes.
void (() => whatwg.send(42));

// Deno-only entry points type-check too (they throw on Node when called).
export function denoOnly(): void {
  serve({ port: 0, onListen: (addr) => console.log(addr.port) }, () => {});
  void new WebSocketStream(url).opened.then(({ readable }) => readable);
}

server.close();
console.log(JSON.stringify({ protocol, echoed, closeCode, whatwgClose }));
