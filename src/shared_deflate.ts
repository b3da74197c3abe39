/**
 * What lets one compressed message be shared by many connections
 * (RFC 7692): which connections may take a message compressed on its own,
 * and the payload of a compressed message from zlib's sync-flushed output.
 *
 * @module
 */

import type { MessageDeflate } from "./socket_options.ts";

/**
 * A compressed message's payload from zlib's output after a sync flush:
 * without the `00 00 ff ff` that ends it (RFC 7692 §7.2.1), and a single
 * `0x00` when nothing is left (§7.2.3.6: an empty message flushed right
 * after another gives no output at all).
 *
 * @example
 * ```ts
 * import { withoutSyncFlushTail } from "./shared_deflate.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const output = new Uint8Array([0xf2, 0x00, 0x00, 0x00, 0xff, 0xff]);
 * assertEquals(withoutSyncFlushTail(output), new Uint8Array([0xf2, 0x00]));
 * ```
 *
 * @param output What the deflater wrote for one message.
 * @returns A view of `output`, or a new single zero byte.
 */
export function withoutSyncFlushTail(output: Uint8Array): Uint8Array {
  const end = output.length >= 4 && output[output.length - 4] === 0 &&
      output[output.length - 3] === 0 &&
      output[output.length - 2] === 0xff &&
      output[output.length - 1] === 0xff
    ? output.length - 4
    : output.length;
  return end === 0 ? new Uint8Array(1) : output.subarray(0, end);
}

// The window bits of the deflaters that keep no context between messages
// (no context takeover for their sender, RFC 7692 §7.1.1): a message
// compressed on its own with at most that window is valid on their
// connection, and their own later messages do not refer to it.
const sharedWindowBits = new WeakMap<MessageDeflate, number>();

/**
 * Records that `deflate`'s compressor keeps no context between messages
 * (no context takeover for its sender, RFC 7692 §7.1.1), so a message
 * compressed on its own with a window of at most `windowBits` may be sent
 * with it; `createMessageDeflate` calls it.
 *
 * @example
 * ```ts
 * import { allowSharedCompression, sharedDeflateWindowBits } from "./shared_deflate.ts";
 * import type { MessageDeflate } from "./socket_options.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const deflate: MessageDeflate = {
 *   inflater: { inflate: (payload) => Promise.resolve(payload) },
 *   deflate: () => undefined,
 * };
 * allowSharedCompression(deflate, 10);
 * assertEquals(sharedDeflateWindowBits(deflate), 10);
 * ```
 *
 * @param deflate A connection's permessage-deflate.
 * @param windowBits The window its receiver was agreed to take (8-15).
 */
export function allowSharedCompression(
  deflate: MessageDeflate,
  windowBits: number,
): void {
  sharedWindowBits.set(deflate, windowBits);
}

/**
 * The largest window a message compressed on its own (a fresh DEFLATE
 * stream) may use to be sent on a connection with this `deflate`, or 0
 * when none may: the connection's own compressor keeps its context across
 * messages (context takeover), and a message it did not compress would put
 * into the receiver's window bytes that are not in the sender's, so its
 * next messages would refer to the wrong bytes.
 *
 * @example
 * ```ts
 * import { acceptDeflateOffer } from "./permessage_deflate.ts";
 * import { createMessageDeflate } from "./permessage_deflate_codec.ts";
 * import { sharedDeflateWindowBits } from "./shared_deflate.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const shared = acceptDeflateOffer("permessage-deflate; server_no_context_takeover", {})!;
 * assertEquals(sharedDeflateWindowBits(createMessageDeflate(shared.params, "server")), 15);
 * const own = acceptDeflateOffer("permessage-deflate", {})!;
 * assertEquals(sharedDeflateWindowBits(createMessageDeflate(own.params, "server")), 0);
 * ```
 *
 * @param deflate A connection's permessage-deflate, if negotiated.
 * @returns Window bits (8-15), or 0.
 */
export function sharedDeflateWindowBits(
  deflate: MessageDeflate | undefined,
): number {
  return deflate === undefined ? 0 : sharedWindowBits.get(deflate) ?? 0;
}
