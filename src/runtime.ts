/**
 * The seam between wstream and the runtime it runs on. Everything that
 * differs between Deno, Node and Bun when a client connects (TCP, TLS, the
 * environment) goes through a {@linkcode Runtime}: Deno's uses `Deno.*`
 * (src/deno_runtime.ts), Node's and Bun's use `node:net` and `node:tls`
 * (src/node_runtime.ts). The rest of wstream uses web-standard APIs only
 * (and `node:zlib`, which all three have), so importing it touches no
 * `Deno` global.
 *
 * @module
 */

import type { Transport } from "./transport.ts";
import type { ByteConn } from "./handshake_io.ts";
import { denoRuntime } from "./deno_runtime.ts";
import { nodeRuntime } from "./node_runtime.ts";

/**
 * A connection a {@linkcode Runtime} opened: a byte transport the opening
 * handshake reads and writes directly, then the socket runs on.
 */
export type DialedConn = Transport & ByteConn;

/** How `startTls` checks the server. */
export interface TlsOptions {
  /** The server name to check the certificate against (and send as SNI). */
  hostname: string;
  /** Extra PEM root certificates to trust. */
  caCerts?: string[];
}

/**
 * What `connect()` needs from the runtime.
 *
 * @example
 * ```ts
 * import { currentRuntime } from "./runtime.ts";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(currentRuntime().name, "Deno");
 * ```
 */
export interface Runtime {
  /** The runtime's name, for error messages: "Deno" or "Node/Bun". */
  readonly name: string;
  /**
   * Opens a TCP connection; aborting `signal` closes it and rejects with
   * the signal's reason.
   */
  connectTcp(
    hostname: string,
    port: number,
    signal: AbortSignal,
  ): Promise<DialedConn>;
  /**
   * Starts TLS as the client on a connection `connectTcp` opened, which
   * is not to be used directly any more.
   */
  startTls(conn: DialedConn, options: TlsOptions): Promise<DialedConn>;
  /**
   * Whether a failure to connect cannot pass by itself (a missing
   * permission, a certificate the runtime refused).
   */
  isPermanentFailure(error: unknown): boolean;
  /**
   * Reads an environment variable, or `undefined` when it is not set or
   * may not be read (Deno without `--allow-env`).
   */
  env(name: string): string | undefined;
}

/**
 * Whether the code runs on Deno (which has `Deno.connect`).
 *
 * @example
 * ```ts
 * import { isDeno } from "./runtime.ts";
 * import { assert } from "@std/assert";
 *
 * assert(isDeno());
 * ```
 *
 * @returns `true` on Deno, `false` on Node and Bun.
 */
export function isDeno(): boolean {
  const deno = (globalThis as { Deno?: { connect?: unknown } }).Deno;
  return typeof deno?.connect === "function";
}

/**
 * The runtime the code runs on: Deno's when there is a `Deno` global,
 * otherwise Node's (which Bun implements too).
 *
 * @example
 * ```ts
 * import { currentRuntime } from "./runtime.ts";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(currentRuntime().env("WSTREAM_NOT_SET"), undefined);
 * ```
 *
 * @returns The runtime.
 */
export function currentRuntime(): Runtime {
  return isDeno() ? denoRuntime : nodeRuntime;
}

/**
 * Throws a `TypeError` that names the Deno-only entry point and what to use
 * instead, unless the code runs on Deno.
 *
 * @example
 * ```ts
 * import { requireDeno } from "./runtime.ts";
 *
 * requireDeno("serve()", "handleUpgrade() on a node:http server");
 * ```
 *
 * @param entryPoint What was called, e.g. `"serve()"`.
 * @param instead What works on Node and Bun.
 * @throws {TypeError} on Node and Bun.
 */
export function requireDeno(entryPoint: string, instead: string): void {
  if (isDeno()) return;
  throw new TypeError(
    `expected Deno for ${entryPoint}, found a runtime without the Deno global (Node or Bun): use ${instead} there`,
  );
}

// The first Bun whose node:http "upgrade" sockets carry bytes both ways:
// 1.3.14, 1.2.23 and 1.1.45 report writes done and send nothing
// (oven-sh/bun#9882, #35325), and parse the client's bytes after the 101 as
// a new HTTP request, answering 400 (#28157); nothing in JavaScript turns
// that parser off. 1.4.5 works.
const BUN_RAW_UPGRADE_SINCE = [1, 4] as const;

/**
 * Why the runtime's `node:http` `upgrade` sockets cannot carry a WebSocket,
 * or `undefined` when they can (Deno, Node, Bun >= 1.4).
 *
 * @example
 * ```ts
 * import { rawUpgradeUnsupported } from "./runtime.ts";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(rawUpgradeUnsupported(), undefined); // on Deno
 * ```
 *
 * @param bunVersion Bun's version (default: the running Bun's, if any).
 * @returns The reason, naming the version found and the one needed.
 */
export function rawUpgradeUnsupported(
  bunVersion: string | undefined =
    (globalThis as { Bun?: { version?: string } }).Bun?.version,
): string | undefined {
  if (bunVersion === undefined) return undefined;
  const [major, minor] = bunVersion.split(".").map(Number);
  const [needMajor, needMinor] = BUN_RAW_UPGRADE_SINCE;
  if (major > needMajor || (major === needMajor && minor >= needMinor)) {
    return undefined;
  }
  return `expected Bun ${needMajor}.${needMinor} or later for handleUpgrade(), found Bun ${bunVersion}, whose node:http upgrade sockets send nothing that is written to them; upgrade Bun`;
}
