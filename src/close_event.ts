/**
 * The `CloseEvent` the WHATWG {@linkcode WebSocket} dispatches: the
 * runtime's own where it has one (Deno, Bun, Node >= 23), otherwise a class
 * with the same fields (Node 20 to 22 have `Event` and `MessageEvent` but no
 * `CloseEvent`).
 *
 * @module
 */

/** What a `CloseEvent` is made with. */
interface CloseEventFields extends EventInit {
  wasClean?: boolean;
  code?: number;
  reason?: string;
}

// The fallback, with the fields and defaults of the WHATWG CloseEvent.
class FallbackCloseEvent extends Event {
  readonly wasClean: boolean;
  readonly code: number;
  readonly reason: string;

  constructor(type: string, init: CloseEventFields = {}) {
    super(type, init);
    this.wasClean = init.wasClean ?? false;
    this.code = init.code ?? 0;
    this.reason = init.reason ?? "";
  }
}

/**
 * The runtime's `CloseEvent`, or a class with its fields where there is
 * none.
 *
 * @example
 * ```ts
 * import { RuntimeCloseEvent } from "./close_event.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const event = new RuntimeCloseEvent("close", { code: 1000, wasClean: true });
 * assertEquals([event.type, event.code, event.reason], ["close", 1000, ""]);
 * ```
 */
export const RuntimeCloseEvent: typeof CloseEvent =
  (globalThis as { CloseEvent?: typeof CloseEvent }).CloseEvent ??
    (FallbackCloseEvent as unknown as typeof CloseEvent);
