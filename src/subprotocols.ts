/**
 * Subprotocols in the opening handshake (RFC 6455 §4.1 client requirement
 * 10, §4.2.2 step 5.4 /subprotocol/): the checks of the list a client
 * offers, and the server's choice among the offered.
 *
 * @module
 */

import { isToken } from "./http_head.ts";

/**
 * Checks a subprotocol list the way the WHATWG `WebSocket` constructor does:
 * each a token (RFC 6455 §4.1, client requirement 10), no duplicates.
 * Throws a `SyntaxError` `DOMException` otherwise.
 *
 * @example
 * ```ts
 * import { validateProtocols } from "./subprotocols.ts";
 * import { assertThrows } from "@std/assert";
 *
 * validateProtocols(["chat", "superchat"]);
 * assertThrows(() => validateProtocols(["chat", "chat"]), DOMException);
 * ```
 *
 * @param protocols The subprotocols to offer.
 */
export function validateProtocols(protocols: readonly string[]): void {
  const seen = new Set<string>();
  for (const protocol of protocols) {
    if (typeof protocol !== "string" || !isToken(protocol)) {
      throw new DOMException(
        `expected each subprotocol to be an HTTP token, found ${
          JSON.stringify(protocol)
        }`,
        "SyntaxError",
      );
    }
    // RFC 6455 §4.1: "The elements that comprise this value MUST be ...
    // unique strings"; the WHATWG constructor compares them case-insensitively.
    const lower = protocol.toLowerCase();
    if (seen.has(lower)) {
      throw new DOMException(
        `expected unique subprotocols, found ${JSON.stringify(protocol)} twice`,
        "SyntaxError",
      );
    }
    seen.add(lower);
  }
}

/**
 * Chooses a subprotocol: either the list of those the server speaks (the
 * client's most preferred one that is in it wins) or a function that picks
 * one of the offered (or none).
 *
 * @example
 * ```ts
 * import type { ProtocolSelector } from "@wstream/wstream";
 *
 * const list: ProtocolSelector = ["chat.v2", "chat.v1"];
 * const byPath: ProtocolSelector = (offered, request) =>
 *   new URL(request.url).pathname === "/v2" ? offered.find((p) => p === "chat.v2") : undefined;
 * ```
 */
export type ProtocolSelector =
  | readonly string[]
  | ((
    offered: string[],
    request: Request,
  ) => string | null | undefined | Promise<string | null | undefined>);

/**
 * Applies a {@linkcode ProtocolSelector} to the subprotocols a client offered
 * (RFC 6455 §4.2.2, step 5.4 /subprotocol/). Returns "" when none is chosen;
 * a selector function that returns a protocol the client did not offer is a
 * programming error and throws a `TypeError`.
 *
 * @example
 * ```ts
 * import { selectSubprotocol } from "./subprotocols.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const request = new Request("http://localhost/");
 * assertEquals(await selectSubprotocol(["b", "a"], ["a", "b"], request), "b");
 * assertEquals(await selectSubprotocol(["x"], ["a"], request), "");
 * ```
 *
 * @param offered The client's subprotocols, in its order of preference.
 * @param selector The server's list or choice function.
 * @param request The request, for selector functions, or a function that
 * makes it (called only for a selector function).
 * @returns The chosen subprotocol or "": at once for a list, as a promise
 * for a selector function (rejected when it throws or picks wrongly).
 */
export function selectSubprotocol(
  offered: string[],
  selector: ProtocolSelector | undefined,
  request: Request | (() => Request),
): string | Promise<string> {
  if (selector === undefined || offered.length === 0) return "";
  if (typeof selector !== "function") {
    // A list needs no promise: the handshake goes on in the same turn.
    return offered.find((protocol) => selector.includes(protocol)) ?? "";
  }
  try {
    return checkSelected(
      offered,
      selector(
        [...offered],
        typeof request === "function" ? request() : request,
      ),
    );
  } catch (error) {
    return Promise.reject(error);
  }
}

async function checkSelected(
  offered: string[],
  selected: ReturnType<Exclude<ProtocolSelector, readonly string[]>>,
): Promise<string> {
  const chosen = await selected;
  if (chosen === null || chosen === undefined || chosen === "") return "";
  if (!offered.includes(chosen)) {
    throw new TypeError(
      `expected the protocols selector to return one of the offered ${
        offered.map((p) => JSON.stringify(p)).join(", ")
      } or undefined, found ${JSON.stringify(chosen)}`,
    );
  }
  return chosen;
}
