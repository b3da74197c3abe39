/**
 * `node:zlib`, imported on first use and shared by permessage-deflate's
 * codec and the hub's shared compression. A static import would load
 * Deno's Node compatibility layer into every process that imports the
 * library (about 8 MiB of RSS), also those whose sockets never compress.
 *
 * @module
 */

/** The `node:zlib` module. */
export type ZlibModule = typeof import("node:zlib");

let loaded: ZlibModule | undefined;
let loading: Promise<ZlibModule> | undefined;

/**
 * `node:zlib` if it has been loaded, else `undefined` (then
 * {@linkcode loadZlib} loads it).
 *
 * @example
 * ```ts
 * import { loadedZlib, loadZlib } from "./zlib_module.ts";
 * import { assert } from "@std/assert";
 *
 * await loadZlib();
 * assert(loadedZlib() !== undefined);
 * ```
 *
 * @returns The module, or `undefined` while it is not loaded.
 */
export function loadedZlib(): ZlibModule | undefined {
  return loaded;
}

/**
 * Loads `node:zlib` (once: later calls return the same promise).
 *
 * @example
 * ```ts
 * import { loadZlib } from "./zlib_module.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const zlib = await loadZlib();
 * assertEquals(typeof zlib.deflateRawSync, "function");
 * ```
 *
 * @returns The module, once loaded.
 */
export function loadZlib(): Promise<ZlibModule> {
  return loading ??= import("node:zlib").then((module) => loaded = module);
}
