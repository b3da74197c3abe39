/**
 * The extension step of the opening handshake (RFC 6455 §9): what the client
 * offers in `Sec-WebSocket-Extensions`, what the server accepts, and what
 * the client makes of the server's answer. The only extension wstream
 * speaks is permessage-deflate (RFC 7692); until it is wired in here, no
 * extension is offered or accepted and messages go uncompressed.
 *
 * @module
 */

import type { MessageDeflate } from "./socket_options.ts";
import {
  acceptDeflateOffer,
  acceptDeflateResponse,
  createDeflateOffer,
  type PerMessageDeflateOptions,
  resolveCompression,
} from "./permessage_deflate.ts";
import { createMessageDeflate } from "./permessage_deflate_codec.ts";
import { WebSocketError } from "./websocket_error.ts";

/**
 * Options of the extension step, shared by `connect()` and `serve()`.
 *
 * @example
 * ```ts
 * import type { ExtensionOptions } from "@wstream/wstream";
 *
 * const off: ExtensionOptions = { compression: false };
 * const tuned: ExtensionOptions = { compression: { threshold: 4096, level: 1 } };
 * ```
 */
export interface ExtensionOptions {
  /**
   * permessage-deflate (RFC 7692): on by default (`true`), off with
   * `false`, or tuned with {@linkcode PerMessageDeflateOptions}. A client
   * offers it; a server accepts a client's offer.
   */
  compression?: boolean | PerMessageDeflateOptions;
}

/** What the extension step agreed on. */
export interface NegotiatedExtensions {
  /** The `Sec-WebSocket-Extensions` value in force ("" when none). */
  extensions: string;
  /** Set when permessage-deflate was agreed. */
  deflate?: MessageDeflate;
}

/**
 * The client's `Sec-WebSocket-Extensions` offer (RFC 6455 §4.1, client
 * requirement 11), or "" to offer none. Throws a `RangeError` for
 * compression options out of range, before anything is sent.
 *
 * @example
 * ```ts
 * import { createExtensionOffer } from "./handshake_extensions.ts";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(createExtensionOffer({}), "permessage-deflate; client_max_window_bits");
 * assertEquals(createExtensionOffer({ compression: false }), "");
 * ```
 *
 * @param options The client's options.
 * @returns The offer.
 */
export function createExtensionOffer(options: ExtensionOptions): string {
  const deflate = resolveCompression(options.compression);
  return deflate === undefined ? "" : createDeflateOffer(deflate);
}

/**
 * The server's side (RFC 6455 §9.1): accepts what it supports from the
 * client's offer and says so in its response value. An offer it cannot
 * accept is declined (the connection goes uncompressed), never refused.
 *
 * @example
 * ```ts
 * import { negotiateServerExtensions } from "./handshake_extensions.ts";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(negotiateServerExtensions("x-unknown", {}).extensions, "");
 * assertEquals(
 *   negotiateServerExtensions("permessage-deflate", {}).extensions,
 *   "permessage-deflate",
 * );
 * ```
 *
 * @param offer The client's `Sec-WebSocket-Extensions` ("" when none).
 * @param options The server's options.
 * @returns The response value and the deflate codec when agreed.
 */
export function negotiateServerExtensions(
  offer: string,
  options: ExtensionOptions,
): NegotiatedExtensions {
  const deflate = resolveCompression(options.compression);
  if (deflate === undefined || offer === "") return { extensions: "" };
  const accepted = acceptDeflateOffer(offer, deflate);
  if (accepted === undefined) return { extensions: "" };
  return {
    extensions: accepted.response,
    deflate: createMessageDeflate(accepted.params, "server", deflate),
  };
}

/**
 * The client's side: turns the server's accepted extensions (already
 * checked to be among those offered) into the codec to use. Throws a
 * `WebSocketError` (1006) when the parameters are unacceptable (RFC 7692
 * §5.1: the client fails the connection).
 *
 * @example
 * ```ts
 * import { negotiateClientExtensions } from "./handshake_extensions.ts";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(negotiateClientExtensions("", "", {}), { extensions: "" });
 * ```
 *
 * @param response The server's `Sec-WebSocket-Extensions` ("" when none).
 * @param offer What the client offered.
 * @param options The client's options.
 * @returns The extensions in force and the deflate codec when agreed.
 */
export function negotiateClientExtensions(
  response: string,
  offer: string,
  options: ExtensionOptions,
): NegotiatedExtensions {
  if (response === "") return { extensions: "" };
  const deflate = resolveCompression(options.compression);
  if (deflate === undefined || offer === "") {
    // validateServerResponse refuses unoffered extensions before this.
    throw new WebSocketError(
      `opening handshake failed: expected no Sec-WebSocket-Extensions (none was offered), found ${
        JSON.stringify(response)
      }`,
      { closeCode: 1006 },
    );
  }
  let params;
  try {
    params = acceptDeflateResponse(response, deflate);
  } catch (error) {
    throw new WebSocketError(
      `opening handshake failed: ${(error as Error).message}`,
      { closeCode: 1006 },
    );
  }
  return {
    extensions: response,
    deflate: createMessageDeflate(params, "client", deflate),
  };
}
