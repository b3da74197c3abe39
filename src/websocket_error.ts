/**
 * The one error class wstream raises for anything that ends a WebSocket.
 *
 * @module
 */

/**
 * Options for {@linkcode WebSocketError}, as in the WHATWG WebSocketStream.
 *
 * @example
 * ```ts
 * import { type WebSocketCloseInfo, WebSocketError } from "@wstream/wstream";
 * import { assertEquals } from "@std/assert";
 *
 * const info: WebSocketCloseInfo = { closeCode: 4000, reason: "bye" };
 * const error = new WebSocketError("done", info);
 * assertEquals([error.closeCode, error.reason], [4000, "bye"]);
 * ```
 */
export interface WebSocketCloseInfo {
  /** The close code (RFC 6455 §7.4). */
  closeCode?: number;
  /** The close reason, at most 123 bytes of UTF-8. */
  reason?: string;
}

/**
 * An error that ends a WebSocket, with the close code that goes (or went)
 * with it. The codec streams throw it for every protocol violation, so
 * `error.closeCode` says which Close frame to send; `WebSocketStream` rejects
 * with it, matching the WHATWG `WebSocketError` (a `DOMException` with
 * `closeCode` and `reason`).
 *
 * Unlike the WHATWG constructor, it accepts any close code, because the codec
 * reports protocol failures (1002, 1007, 1009, ...) with it; the codes an
 * application may send (1000, 3000-4999) are checked where they are sent, by
 * `close()`.
 *
 * @example Tell a protocol error from a size limit
 * ```ts
 * import { WebSocketError } from "@wstream/wstream";
 * import { assertEquals } from "@std/assert";
 *
 * const error = new WebSocketError("expected a masked frame, found an unmasked one", {
 *   closeCode: 1002,
 * });
 * assertEquals(error.closeCode, 1002);
 * assertEquals(error.name, "WebSocketError");
 * ```
 */
export class WebSocketError extends DOMException {
  /** The close code (RFC 6455 §7.4), or `null` when there is none. */
  readonly closeCode: number | null;
  /** The close reason ("" when there is none). */
  readonly reason: string;

  /**
   * Creates an error.
   *
   * @param message What was expected and what was found.
   * @param init The close code and reason that go with it.
   */
  constructor(message = "", init: WebSocketCloseInfo = {}) {
    super(message, "WebSocketError");
    this.reason = init.reason ?? "";
    // As in WHATWG WebSocketStream: a reason without a code means 1000.
    this.closeCode = init.closeCode ??
      (this.reason === "" ? null : 1000);
  }
}
