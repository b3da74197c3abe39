/**
 * Clients the adapter tests (upgrade(), handleUpgrade()) echo through: npm
 * `ws` and Deno's built-in WebSocket, each sending messages, reading one
 * reply per message, then closing. Bounded in time.
 *
 * @module
 */

// A test-only peer from npm, so it is not in deno.json's imports.
// deno-lint-ignore no-import-prefix
import { WebSocket as WsWebSocket } from "npm:ws@8.23.0";
import { within } from "./_socket_util.ts";

/** What an echo client saw. */
export interface EchoResult {
  received: (string | Uint8Array)[];
  protocol: string;
  closeCode: number;
}

/** Echoes through npm `ws` and closes with 1000. */
export function wsEcho(
  url: string,
  messages: (string | Uint8Array)[],
  protocols: string[] = [],
): Promise<EchoResult> {
  const socket = new WsWebSocket(url, protocols);
  const received: (string | Uint8Array)[] = [];
  return within(
    5000,
    new Promise<EchoResult>((resolve, reject) => {
      socket.on("error", reject);
      socket.on("open", () => {
        for (const message of messages) socket.send(message);
      });
      socket.on("message", (data: Uint8Array, isBinary: boolean) => {
        received.push(
          isBinary ? new Uint8Array(data) : new TextDecoder().decode(data),
        );
        if (received.length === messages.length) socket.close(1000);
      });
      socket.on(
        "close",
        (code: number) =>
          resolve({ received, protocol: socket.protocol, closeCode: code }),
      );
    }),
    "the npm ws echo",
  );
}

/** Echoes through Deno's built-in WebSocket and closes with 1000. */
export function builtinEcho(
  url: string,
  messages: (string | Uint8Array)[],
  protocols: string[] = [],
): Promise<EchoResult> {
  const socket = new WebSocket(url, protocols);
  socket.binaryType = "arraybuffer";
  const received: (string | Uint8Array)[] = [];
  return within(
    5000,
    new Promise<EchoResult>((resolve, reject) => {
      socket.onerror = () => reject(new Error(`could not open ${url}`));
      socket.onopen = () => {
        for (const message of messages) socket.send(message);
      };
      socket.onmessage = (event) => {
        received.push(
          typeof event.data === "string"
            ? event.data
            : new Uint8Array(event.data),
        );
        if (received.length === messages.length) socket.close(1000);
      };
      socket.onclose = (event) =>
        resolve({ received, protocol: socket.protocol, closeCode: event.code });
    }),
    "the built-in WebSocket echo",
  );
}
