/**
 * The web types that wstream's declarations name and that Node's own types
 * (`@types/node`) lack: they are in TypeScript's `DOM` library, which a
 * Node project usually leaves out. The Node build
 * (scripts/node_declarations.ts) copies this file next to the declarations
 * as `web_types.d.ts` and makes each declaration file that names one of
 * them import it from there; each is the DOM type or a structural subset
 * of it, so DOM values fit.
 *
 * @module
 */

/** Bytes: an `ArrayBuffer` or a view of one (as the DOM's `BufferSource`). */
export type BufferSource = ArrayBufferView | ArrayBuffer;

/** Headers as `fetch` takes them (as the DOM's `HeadersInit`). */
export type HeadersInit = [string, string][] | Record<string, string> | Headers;

/** The event of a closed WebSocket (a subset of the DOM's `CloseEvent`). */
export interface CloseEvent extends Event {
  /** The close code. */
  readonly code: number;
  /** The close reason. */
  readonly reason: string;
  /** Whether the closing handshake completed. */
  readonly wasClean: boolean;
}
