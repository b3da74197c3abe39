/**
 * The {@linkcode Runtime} on Deno: `Deno.connect`, `Deno.startTls` and
 * `Deno.env`. The only client file that calls `Deno.*`.
 *
 * @module
 */

import type { DialedConn, Runtime, TlsOptions } from "./runtime.ts";

/**
 * Connects with `Deno.connect` and `Deno.startTls`, reads `Deno.env` when
 * `--allow-env` permits (never prompting).
 *
 * @example
 * ```ts
 * import { denoRuntime } from "./deno_runtime.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const conn = await denoRuntime.connectTcp(
 *   "127.0.0.1",
 *   listener.addr.port,
 *   new AbortController().signal,
 * );
 * const accepted = await listener.accept();
 * await conn.write(new Uint8Array([1]));
 * assertEquals(await accepted.read(new Uint8Array(1)), 1);
 * conn.close();
 * accepted.close();
 * listener.close();
 * ```
 */
export const denoRuntime: Runtime = {
  name: "Deno",

  connectTcp(
    hostname: string,
    port: number,
    signal: AbortSignal,
  ): Promise<DialedConn> {
    return Deno.connect({ hostname, port, signal });
  },

  startTls(conn: DialedConn, options: TlsOptions): Promise<DialedConn> {
    return Deno.startTls(conn as Deno.TcpConn, {
      hostname: options.hostname,
      caCerts: options.caCerts,
    });
  },

  isPermanentFailure(error: unknown): boolean {
    return error instanceof Deno.errors.NotCapable ||
      error instanceof Deno.errors.PermissionDenied ||
      error instanceof Deno.errors.InvalidData;
  },

  env(name: string): string | undefined {
    // querySync never prompts: without permission, the variable is unset.
    const permission = Deno.permissions.querySync({
      name: "env",
      variable: name,
    });
    return permission.state === "granted" ? Deno.env.get(name) : undefined;
  },
};
