/**
 * permessage-deflate (RFC 7692): its options and the negotiation of its four
 * parameters (§7.1), as pure code without sockets.
 *
 * A client sends {@linkcode createDeflateOffer} and checks the answer with
 * {@linkcode acceptDeflateResponse}; a server answers an offer with
 * {@linkcode acceptDeflateOffer}. Both sides then build the data path with
 * `createMessageDeflate` (in `permessage_deflate_codec.ts`) from the agreed
 * {@linkcode NegotiatedDeflate}.
 *
 * @module
 */

import { type ExtensionParam, parseExtensions } from "./extension_header.ts";

/** The extension token (RFC 7692 §5). */
export const PERMESSAGE_DEFLATE = "permessage-deflate";

/**
 * Options of permessage-deflate, taken by `connect()` and `serve()` as
 * `compression` (`true`, the default, means `{}`; `false` turns it off).
 *
 * On a client the parameters are what it offers (and requires); on a server
 * they are what it requires of every offer it accepts.
 *
 * @example Compress only messages of 4 KiB and more, without context takeover
 * ```ts
 * import type { PerMessageDeflateOptions } from "@wstream/wstream";
 *
 * const compression: PerMessageDeflateOptions = {
 *   threshold: 4096,
 *   serverNoContextTakeover: true,
 *   clientNoContextTakeover: true,
 * };
 * ```
 */
export interface PerMessageDeflateOptions {
  /**
   * The server compresses each message on its own (RFC 7692 §7.1.1.1),
   * saving it the memory of a compression context between messages.
   * Client: offers `server_no_context_takeover` and fails the connection if
   * the server does not agree. Server: always answers with it.
   */
  serverNoContextTakeover?: boolean;
  /**
   * The client compresses each message on its own (RFC 7692 §7.1.1.2).
   * Client: offers `client_no_context_takeover` (and does so whatever the
   * answer). Server: always answers with it, so clients must.
   */
  clientNoContextTakeover?: boolean;
  /**
   * The largest LZ77 window, in bits (8-15), the server may compress with
   * (RFC 7692 §7.1.2.1). Client: offers `server_max_window_bits` and fails
   * the connection on an answer without it or with a larger value. Server:
   * compresses with at most this window. Default 15.
   */
  serverMaxWindowBits?: number;
  /**
   * The largest LZ77 window, in bits (8-15), the client may compress with
   * (RFC 7692 §7.1.2.2). Client: offers `client_max_window_bits` with this
   * value (without a value, as browsers do, when unset). Server: answers
   * with at most this value, and declines offers without
   * `client_max_window_bits` when it is below 15. Default 15.
   */
  clientMaxWindowBits?: number;
  /**
   * Messages shorter than this many bytes are sent uncompressed, where
   * compression saves little and costs time. Default 1024.
   */
  threshold?: number;
  /** The zlib compression level, 0 (none) to 9 (smallest). Default 6. */
  level?: number;
}

/**
 * The parameters both ends agreed on (plain data, RFC 7692 §7.1). A window
 * of 15 bits means no limit was negotiated.
 *
 * @example
 * ```ts
 * import type { NegotiatedDeflate } from "./permessage_deflate.ts";
 *
 * const browserDefault: NegotiatedDeflate = {
 *   serverNoContextTakeover: false,
 *   clientNoContextTakeover: false,
 *   serverMaxWindowBits: 15,
 *   clientMaxWindowBits: 15,
 * };
 * ```
 */
export interface NegotiatedDeflate {
  /** The server compresses every message with a fresh context. */
  serverNoContextTakeover: boolean;
  /** The client compresses every message with a fresh context. */
  clientNoContextTakeover: boolean;
  /** The largest window (8-15 bits) the server compresses with. */
  serverMaxWindowBits: number;
  /** The largest window (8-15 bits) the client compresses with. */
  clientMaxWindowBits: number;
}

/**
 * Turns the `compression` option of `connect()` / `serve()` into options,
 * or `undefined` when compression is off.
 *
 * @example
 * ```ts
 * import { resolveCompression } from "./permessage_deflate.ts";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(resolveCompression(undefined), {});
 * assertEquals(resolveCompression(false), undefined);
 * assertEquals(resolveCompression({ threshold: 0 }), { threshold: 0 });
 * ```
 *
 * @param compression The option as the user gave it (default `true`).
 * @returns The options, checked, or `undefined` for `false`.
 * @throws {RangeError} When an option is out of range.
 */
export function resolveCompression(
  compression: boolean | PerMessageDeflateOptions | undefined,
): PerMessageDeflateOptions | undefined {
  if (compression === false) return undefined;
  const options = compression === true || compression === undefined
    ? {}
    : compression;
  checkDeflateOptions(options);
  return options;
}

/**
 * Checks permessage-deflate options: window bits are integers from 8 to 15
 * (RFC 7692 §7.1.2), the threshold is at least 0 and the level is 0 to 9.
 *
 * @example
 * ```ts
 * import { checkDeflateOptions } from "./permessage_deflate.ts";
 * import { assertThrows } from "@std/assert";
 *
 * checkDeflateOptions({ serverMaxWindowBits: 10, level: 9 });
 * assertThrows(() => checkDeflateOptions({ clientMaxWindowBits: 16 }), RangeError);
 * ```
 *
 * @param options The options to check.
 * @throws {RangeError} When an option is out of range.
 */
export function checkDeflateOptions(options: PerMessageDeflateOptions): void {
  for (const key of ["serverMaxWindowBits", "clientMaxWindowBits"] as const) {
    const bits = options[key];
    if (
      bits !== undefined && (!Number.isInteger(bits) || bits < 8 || bits > 15)
    ) {
      throw new RangeError(
        `Invalid permessage-deflate option ${key}: expected an integer from 8 to 15, found ${bits}`,
      );
    }
  }
  const { threshold, level } = options;
  if (threshold !== undefined && !(threshold >= 0)) {
    throw new RangeError(
      `Invalid permessage-deflate option threshold: expected a number of bytes >= 0, found ${threshold}`,
    );
  }
  if (
    level !== undefined && (!Number.isInteger(level) || level < 0 || level > 9)
  ) {
    throw new RangeError(
      `Invalid permessage-deflate option level: expected an integer from 0 to 9, found ${level}`,
    );
  }
}

/**
 * Builds the `Sec-WebSocket-Extensions` offer a client sends (RFC 7692 §5).
 * Like browsers, it always offers `client_max_window_bits`, so that a
 * server may limit the client's window.
 *
 * @example
 * ```ts
 * import { createDeflateOffer } from "./permessage_deflate.ts";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(createDeflateOffer({}), "permessage-deflate; client_max_window_bits");
 * assertEquals(
 *   createDeflateOffer({ serverNoContextTakeover: true, clientMaxWindowBits: 10 }),
 *   "permessage-deflate; server_no_context_takeover; client_max_window_bits=10",
 * );
 * ```
 *
 * @param options What to offer.
 * @returns The header value.
 * @throws {RangeError} When an option is out of range.
 */
export function createDeflateOffer(options: PerMessageDeflateOptions): string {
  checkDeflateOptions(options);
  const parts = [PERMESSAGE_DEFLATE];
  if (options.serverNoContextTakeover) parts.push("server_no_context_takeover");
  if (options.clientNoContextTakeover) parts.push("client_no_context_takeover");
  if (options.serverMaxWindowBits !== undefined) {
    parts.push(`server_max_window_bits=${options.serverMaxWindowBits}`);
  }
  parts.push(
    options.clientMaxWindowBits === undefined
      ? "client_max_window_bits"
      : `client_max_window_bits=${options.clientMaxWindowBits}`,
  );
  return parts.join("; ");
}

/** The parameters of one offer or response, as written. */
interface DeflateParams {
  serverNoContextTakeover: boolean;
  clientNoContextTakeover: boolean;
  serverMaxWindowBits?: number;
  /** `true`: present without a value (allowed in an offer only). */
  clientMaxWindowBits?: number | true;
}

// RFC 7692 §7.1.2: "a decimal integer value without leading zeroes between
// 8 to 15, inclusive".
const WINDOW_BITS = /^(?:[89]|1[0-5])$/;

/** Reads the parameters of one permessage-deflate element; throws Error on any it cannot accept. */
function readParams(params: ExtensionParam[], what: string): DeflateParams {
  const result: DeflateParams = {
    serverNoContextTakeover: false,
    clientNoContextTakeover: false,
  };
  const seen = new Set<string>();
  for (const [name, value] of params) {
    // RFC 7692 §7.1: an offer or response with a parameter twice is invalid.
    if (seen.has(name)) {
      throw new Error(
        `Invalid permessage-deflate ${what}: parameter ${name} appears twice`,
      );
    }
    seen.add(name);
    switch (name) {
      case "server_no_context_takeover":
      case "client_no_context_takeover":
        // RFC 7692 §7.1.1: these parameters have no value.
        if (value !== true) {
          throw new Error(
            `Invalid permessage-deflate ${what}: ${name} takes no value, found "${value}"`,
          );
        }
        if (name === "server_no_context_takeover") {
          result.serverNoContextTakeover = true;
        } else {
          result.clientNoContextTakeover = true;
        }
        break;
      case "server_max_window_bits":
      case "client_max_window_bits": {
        // RFC 7692 §7.1.2.2: only an offer's client_max_window_bits may come
        // without a value.
        if (value === true) {
          if (name === "client_max_window_bits" && what === "offer") {
            result.clientMaxWindowBits = true;
            break;
          }
          throw new Error(
            `Invalid permessage-deflate ${what}: ${name} needs a value from 8 to 15, found none`,
          );
        }
        if (!WINDOW_BITS.test(value)) {
          throw new Error(
            `Invalid permessage-deflate ${what}: ${name} must be an integer from 8 to 15 without leading zeros, found "${value}"`,
          );
        }
        if (name === "server_max_window_bits") {
          result.serverMaxWindowBits = Number(value);
        } else {
          result.clientMaxWindowBits = Number(value);
        }
        break;
      }
      default:
        // RFC 7692 §7.1: unknown parameters make an offer or response invalid.
        throw new Error(
          `Invalid permessage-deflate ${what}: unknown parameter ${name}`,
        );
    }
  }
  return result;
}

/**
 * Answers a client's `Sec-WebSocket-Extensions` offers as a server (RFC 7692
 * §5, §7.1): accepts the first permessage-deflate offer it can, and declines
 * offers with unknown, duplicate or invalid parameters, or (when
 * `clientMaxWindowBits` is set below 15) without `client_max_window_bits`.
 * A header that does not parse at all is declined as a whole.
 *
 * @example
 * ```ts
 * import { acceptDeflateOffer } from "./permessage_deflate.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const accepted = acceptDeflateOffer(
 *   "permessage-deflate; server_max_window_bits=10; client_max_window_bits, permessage-deflate",
 *   {},
 * );
 * assertEquals(accepted?.response, "permessage-deflate; server_max_window_bits=10");
 * assertEquals(accepted?.params.serverMaxWindowBits, 10);
 * assertEquals(acceptDeflateOffer("permessage-deflate; foo", {}), undefined);
 * ```
 *
 * @param headerValue The request's `Sec-WebSocket-Extensions` value (all
 * its lines joined with `, `).
 * @param options The server's requirements.
 * @returns The response header value and the agreed parameters, or
 * `undefined` when no offer is acceptable (the connection then goes
 * uncompressed).
 * @throws {RangeError} When an option is out of range.
 */
export function acceptDeflateOffer(
  headerValue: string,
  options: PerMessageDeflateOptions,
): { response: string; params: NegotiatedDeflate } | undefined {
  checkDeflateOptions(options);
  let extensions;
  try {
    extensions = parseExtensions(headerValue);
  } catch {
    return undefined;
  }
  for (const extension of extensions) {
    if (extension.name !== PERMESSAGE_DEFLATE) continue;
    let offer: DeflateParams;
    try {
      offer = readParams(extension.params, "offer");
    } catch {
      continue; // RFC 7692 §5.1: decline an offer with invalid parameters
    }
    const wantedClientBits = options.clientMaxWindowBits ?? 15;
    // RFC 7692 §7.1.2.2: without client_max_window_bits in the offer the
    // server cannot limit the client's window.
    if (offer.clientMaxWindowBits === undefined && wantedClientBits < 15) {
      continue;
    }
    const params: NegotiatedDeflate = {
      serverNoContextTakeover: offer.serverNoContextTakeover ||
        (options.serverNoContextTakeover ?? false),
      clientNoContextTakeover: offer.clientNoContextTakeover ||
        (options.clientNoContextTakeover ?? false),
      serverMaxWindowBits: Math.min(
        offer.serverMaxWindowBits ?? 15,
        options.serverMaxWindowBits ?? 15,
      ),
      clientMaxWindowBits: Math.min(
        typeof offer.clientMaxWindowBits === "number"
          ? offer.clientMaxWindowBits
          : 15,
        wantedClientBits,
      ),
    };
    const parts = [PERMESSAGE_DEFLATE];
    // RFC 7692 §7.1.1.1: an accepted server_no_context_takeover is echoed.
    if (params.serverNoContextTakeover) {
      parts.push("server_no_context_takeover");
    }
    if (params.clientNoContextTakeover) {
      parts.push("client_no_context_takeover");
    }
    // RFC 7692 §7.1.2.1: an offered server_max_window_bits must be answered
    // with the same or a smaller value.
    if (
      offer.serverMaxWindowBits !== undefined || params.serverMaxWindowBits < 15
    ) {
      parts.push(`server_max_window_bits=${params.serverMaxWindowBits}`);
    }
    if (
      typeof offer.clientMaxWindowBits === "number" ||
      params.clientMaxWindowBits < 15
    ) {
      parts.push(`client_max_window_bits=${params.clientMaxWindowBits}`);
    }
    return { response: parts.join("; "), params };
  }
  return undefined;
}

/**
 * Checks a server's `Sec-WebSocket-Extensions` response to the offer
 * {@linkcode createDeflateOffer} made with the same `options` (RFC 7692
 * §5, §7.1), as a client. Call it only when the response has the header;
 * without it the connection goes uncompressed.
 *
 * @example
 * ```ts
 * import { acceptDeflateResponse } from "./permessage_deflate.ts";
 * import { assertEquals, assertThrows } from "@std/assert";
 *
 * const params = acceptDeflateResponse(
 *   "permessage-deflate; client_max_window_bits=12",
 *   {},
 * );
 * assertEquals(params.clientMaxWindowBits, 12);
 * assertThrows(
 *   () => acceptDeflateResponse("permessage-deflate; server_max_window_bits=16", {}),
 *   Error,
 *   "server_max_window_bits must be an integer from 8 to 15",
 * );
 * ```
 *
 * @param headerValue The response's `Sec-WebSocket-Extensions` value.
 * @param options The options the offer was made with.
 * @returns The agreed parameters.
 * @throws {Error} When the client must fail the connection (RFC 7692 §5.1):
 * the message says what was wrong with the response.
 */
export function acceptDeflateResponse(
  headerValue: string,
  options: PerMessageDeflateOptions,
): NegotiatedDeflate {
  checkDeflateOptions(options);
  let extensions;
  try {
    extensions = parseExtensions(headerValue);
  } catch (error) {
    throw new Error((error as Error).message, { cause: error });
  }
  // RFC 6455 §9.1: the server may only answer with extensions the client
  // offered, and RFC 7692 §5: with one permessage-deflate element.
  const names = extensions.map((extension) => extension.name);
  if (names.length !== 1 || names[0] !== PERMESSAGE_DEFLATE) {
    throw new Error(
      `Invalid Sec-WebSocket-Extensions response "${headerValue}": expected exactly one ${PERMESSAGE_DEFLATE} (the only extension offered), found ${
        names.length === 0 ? "none" : names.join(", ")
      }`,
    );
  }
  const response = readParams(extensions[0].params, "response");
  if (options.serverNoContextTakeover && !response.serverNoContextTakeover) {
    throw new Error(
      "Invalid permessage-deflate response: server_no_context_takeover was offered but the response does not include it (RFC 7692 §7.1.1.1)",
    );
  }
  if (options.serverMaxWindowBits !== undefined) {
    if (response.serverMaxWindowBits === undefined) {
      throw new Error(
        `Invalid permessage-deflate response: server_max_window_bits=${options.serverMaxWindowBits} was offered but the response does not include server_max_window_bits (RFC 7692 §7.1.2.1)`,
      );
    }
    if (response.serverMaxWindowBits > options.serverMaxWindowBits) {
      throw new Error(
        `Invalid permessage-deflate response: server_max_window_bits=${response.serverMaxWindowBits} is larger than the ${options.serverMaxWindowBits} offered (RFC 7692 §7.1.2.1)`,
      );
    }
  }
  // The offer always carries client_max_window_bits (see createDeflateOffer),
  // so a response may include it, but not above an offered value.
  const clientBits = response.clientMaxWindowBits as number | undefined;
  if (
    clientBits !== undefined && options.clientMaxWindowBits !== undefined &&
    clientBits > options.clientMaxWindowBits
  ) {
    throw new Error(
      `Invalid permessage-deflate response: client_max_window_bits=${clientBits} is larger than the ${options.clientMaxWindowBits} offered (RFC 7692 §7.1.2.2)`,
    );
  }
  return {
    serverNoContextTakeover: response.serverNoContextTakeover,
    // RFC 7692 §7.1.1.2: an offered client_no_context_takeover binds the
    // client whatever the response says.
    clientNoContextTakeover: response.clientNoContextTakeover ||
      (options.clientNoContextTakeover ?? false),
    serverMaxWindowBits: response.serverMaxWindowBits ?? 15,
    clientMaxWindowBits: clientBits ?? options.clientMaxWindowBits ?? 15,
  };
}
