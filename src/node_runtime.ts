/**
 * The {@linkcode Runtime} on Node and Bun: `node:net` and `node:tls`
 * sockets, read and written through a {@linkcode NodeSocketTransport}, and
 * `process.env`.
 *
 * @module
 */

import type net from "node:net";
import type { DialedConn, Runtime, TlsOptions } from "./runtime.ts";
import { NodeSocketTransport } from "./node_socket_transport.ts";

// node:net and node:tls are loaded on first use: a program on Deno, which
// dials with Deno.connect, never pays for them (several MiB of RSS).
let netModule: Promise<typeof import("node:net")> | undefined;
let tlsModule: Promise<typeof import("node:tls")> | undefined;

type ProcessGlobal = {
  process?: { env?: Record<string, string | undefined> };
};

/**
 * Connects with `net.connect` and `tls.connect`; reads `process.env`.
 * Works on Deno too (its `node:net`), which is how it is tested there.
 *
 * @example
 * ```ts
 * import { nodeRuntime } from "./node_runtime.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const conn = await nodeRuntime.connectTcp(
 *   "127.0.0.1",
 *   listener.addr.port,
 *   new AbortController().signal,
 * );
 * const accepted = await listener.accept();
 * await conn.write(new Uint8Array([1]));
 * assertEquals(await accepted.read(new Uint8Array(1)), 1);
 * conn.close();
 * accepted.close();
 * listener.close();
 * ```
 */
export const nodeRuntime: Runtime = {
  name: "Node/Bun",

  async connectTcp(
    hostname: string,
    port: number,
    signal: AbortSignal,
  ): Promise<DialedConn> {
    signal.throwIfAborted();
    const net = await (netModule ??= import("node:net"));
    signal.throwIfAborted();
    const socket = net.connect({ host: hostname, port });
    await settled(socket, "connect", signal);
    return new NodeSocketTransport(socket);
  },

  async startTls(conn: DialedConn, options: TlsOptions): Promise<DialedConn> {
    if (!(conn instanceof NodeSocketTransport)) {
      throw new TypeError(
        "expected a connection that connectTcp() of the Node runtime opened, found another kind",
      );
    }
    const [net, tls] = await Promise.all([
      netModule ??= import("node:net"),
      tlsModule ??= import("node:tls"),
    ]);
    const raw = conn.release() as net.Socket;
    const socket = tls.connect({
      socket: raw,
      // SNI takes a host name, never an IP address (RFC 6066 §3).
      servername: net.isIP(options.hostname) ? undefined : options.hostname,
      // The certificate is still checked against this name.
      checkServerIdentity: (_servername, certificate) =>
        tls.checkServerIdentity(options.hostname, certificate),
      ca: options.caCerts
        ? [...tls.rootCertificates, ...options.caCerts]
        : undefined,
    });
    // An error of the TCP socket under TLS ends the TLS socket, whose
    // listeners report it (an error with no listener would crash).
    raw.on("error", (error) => socket.destroy(error));
    // connect() closes the transport itself when its signal aborts.
    await settled(socket, "secureConnect");
    return new NodeSocketTransport(socket);
  },

  isPermanentFailure(): boolean {
    // Node and Bun have no permissions; certificate errors are recognized
    // by connect() from their messages, as on Deno.
    return false;
  },

  env(name: string): string | undefined {
    return (globalThis as ProcessGlobal).process?.env?.[name];
  },
};

// Resolves when `socket` emits `event`; rejects on its `error`, or when
// `signal` aborts (destroying the socket).
function settled(
  socket: net.Socket,
  event: string,
  signal?: AbortSignal,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const onEvent = () => {
      cleanUp();
      resolve();
    };
    const onError = (error: Error) => {
      cleanUp();
      socket.destroy();
      reject(error);
    };
    const onAbort = () => onError(signal!.reason);
    const cleanUp = () => {
      socket.removeListener(event, onEvent);
      socket.removeListener("error", onError);
      signal?.removeEventListener("abort", onAbort);
    };
    socket.once(event, onEvent);
    socket.once("error", onError);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
