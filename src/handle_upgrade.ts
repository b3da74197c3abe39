/**
 * `handleUpgrade()`: wstream's own handshake checks and codec on the raw
 * socket of a `node:http` server's `upgrade` event (Express, Fastify, Koa...
 * under Deno), with permessage-deflate, limits and the close handshake as
 * in `serve()`.
 *
 * @module
 */

import { rawUpgradeUnsupported } from "./runtime.ts";
import { closeQuietly } from "./handshake_io.ts";
import {
  type HandshakeOptions,
  HandshakeResponder,
  type HandshakeState,
} from "./handshake_responder.ts";
import { headFromFields, type HttpHead } from "./http_head.ts";
import {
  type NodeSocket,
  NodeSocketTransport,
} from "./node_socket_transport.ts";
import { runHandler, type WebSocketHandler } from "./socket_handler.ts";
import type { MessageOf } from "./message_stream.ts";

/**
 * The part of a `node:http` `IncomingMessage` that {@linkcode handleUpgrade}
 * reads: the request line and the header fields as sent.
 */
export interface UpgradeRequest {
  /** The method, e.g. `GET`. */
  method?: string;
  /** The request target, e.g. `/chat?room=1`. */
  url?: string;
  /** The HTTP version, e.g. `1.1`. */
  httpVersion: string;
  /** Names and values in turn, as sent. */
  rawHeaders: string[];
}

/** The part of a `node:net` `Socket` that {@linkcode handleUpgrade} uses. */
export interface UpgradeSocket extends NodeSocket {
  /** Whether our direction can still be written. */
  readonly writable: boolean;
  /** The bytes written to it so far (0 before anyone answered). */
  readonly bytesWritten?: number;
  /** The local address, for a request without Host. */
  readonly localAddress?: string;
  /** The local port. */
  readonly localPort?: number;
  /** Set on a TLS socket. */
  readonly encrypted?: boolean;
}

// Sockets handed to handleUpgrade() already: a second call must not touch
// them.
const taken = new WeakSet<object>();

/**
 * Answers a `node:http` server's `upgrade` event with wstream: the request
 * is checked as `serve()` checks it (RFC 6455 §4.2.1: the same 400, 405,
 * 426 and 403 answers), then `handler` gets a
 * {@linkcode WebSocketConnection} running wstream's codec on the raw socket
 * (`head`, the bytes read after the request head, are its first bytes).
 *
 * It never throws or rejects, so it cannot crash the host server: misuse
 * (a socket that has ended, one something was written to already, a second
 * call for one socket) is logged with `console.error` and the socket
 * destroyed (except on a second call, which leaves it to the first).
 *
 * @example Express and a WebSocket on one port (under Deno)
 * ```ts
 * import { connect, handleUpgrade } from "@wstream/wstream";
 * import { createServer } from "node:http";
 * import { assertEquals } from "@std/assert";
 *
 * const server = createServer((_request, response) => response.end("page"));
 * server.on("upgrade", (request, socket, head) =>
 *   handleUpgrade(request, socket, head, {}, (socket) =>
 *     socket.readable.pipeTo(socket.writable)));
 * await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
 * const { port } = server.address() as { port: number };
 * const client = await connect(`ws://127.0.0.1:${port}/`);
 * const writer = client.writable.getWriter();
 * await writer.write("hello");
 * const reader = client.readable.getReader();
 * assertEquals((await reader.read()).value, "hello");
 * reader.releaseLock();
 * await writer.close();
 * await client.closed;
 * await new Promise((resolve) => server.close(resolve));
 * ```
 *
 * @param request The `IncomingMessage` of the `upgrade` event.
 * @param socket The socket of the `upgrade` event.
 * @param head The bytes of the `upgrade` event (read after the head).
 * @typeParam Options The options' type: `messages: "stream"` in it makes
 * the socket's `readable` yield {@linkcode MessageStream}s.
 * @param options The handshake policy and socket options.
 * @param handler Called with the accepted socket and a `Request` made from
 * the upgrade request.
 * @returns When the socket has ended and the handler has returned, or the
 * request was refused.
 */
export async function handleUpgrade<Options extends HandshakeOptions>(
  request: UpgradeRequest,
  socket: UpgradeSocket,
  head: Uint8Array,
  options: Options,
  handler: WebSocketHandler<MessageOf<Options>>,
): Promise<void> {
  const misuse = checkSocket(socket);
  if (misuse !== undefined) {
    console.error(`wstream: handleUpgrade(): ${misuse}`);
    return;
  }
  taken.add(socket);
  let transport: NodeSocketTransport | undefined;
  try {
    transport = new NodeSocketTransport(socket);
    const responder = new HandshakeResponder(options, {
      scheme: socket.encrypted ? "https" : "http",
      hostname: socket.localAddress ?? "localhost",
      port: socket.localPort ?? 80,
    });
    const state: HandshakeState = { timedOut: false };
    const upgraded = await responder.answer(
      transport,
      requestHead(request),
      // Node may reuse the memory behind `head`; the socket unmasks in place.
      head.length > 0 ? head.slice() : new Uint8Array(0),
      state,
    );
    if (upgraded) {
      await new Promise<void>((done) =>
        runHandler(handler as WebSocketHandler, state, () => false, done)
      );
    }
  } catch (error) {
    console.error("wstream: handleUpgrade() failed:", error);
    if (transport) closeQuietly(transport);
    else socket.destroy();
  }
}

// What is wrong with the socket, or undefined when it can be upgraded.
function checkSocket(socket: UpgradeSocket): string | undefined {
  if (typeof socket?.write !== "function" || typeof socket.on !== "function") {
    return `expected the socket of the "upgrade" event, found ${
      Object.prototype.toString.call(socket)
    }`;
  }
  const unsupported = rawUpgradeUnsupported();
  if (unsupported !== undefined) {
    socket.destroy();
    return unsupported;
  }
  if (taken.has(socket)) {
    return "expected one call per socket, found a second call for a socket it upgraded (or refused) already";
  }
  if (socket.destroyed || !socket.writable) {
    socket.destroy();
    return "expected an open socket, found one that has ended (the client left, or the socket was closed before the upgrade)";
  }
  if ((socket.bytesWritten ?? 0) > 0) {
    socket.destroy();
    return `expected a socket nothing was written to, found ${socket.bytesWritten} bytes sent already (did the framework answer the request?); the socket is closed`;
  }
  return undefined;
}

// The request head as node:http parsed it, for the same checks as serve().
function requestHead(request: UpgradeRequest): HttpHead {
  const fields: [string, string][] = [];
  const raw = request.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) fields.push([raw[i], raw[i + 1]]);
  return headFromFields(
    `${request.method} ${request.url} HTTP/${request.httpVersion}`,
    fields,
  );
}
