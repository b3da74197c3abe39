/**
 * Tools from npm that the build and the tests run outside Deno (Bun, tsc),
 * each installed once with npm into its own directory under
 * `$XDG_CACHE_HOME` (default `~/.cache`), never into the repository.
 *
 * @module
 */

/**
 * The cache directory (`$XDG_CACHE_HOME`, default `~/.cache`) joined with
 * `name`.
 *
 * @example
 * ```ts
 * import { cacheDir } from "./npm_cache.ts";
 * import { assert } from "@std/assert";
 *
 * assert(cacheDir("wstream-bun").endsWith("/wstream-bun"));
 * ```
 *
 * @param name The directory's name.
 * @returns Its path.
 */
export function cacheDir(name: string): string {
  const home = Deno.env.get("HOME") ?? Deno.cwd();
  return `${Deno.env.get("XDG_CACHE_HOME") ?? `${home}/.cache`}/${name}`;
}

/**
 * Runs `npm install --prefix prefix packages…` (no package.json is written).
 *
 * @example
 * ```ts ignore
 * import { installFromNpm } from "./npm_cache.ts";
 *
 * const failure = await installFromNpm("/tmp/tools", ["typescript@5.9.3"]);
 * if (failure) throw new Error(failure);
 * ```
 *
 * @param prefix The directory whose `node_modules` gets the packages.
 * @param packages npm specifiers, e.g. `"bun@1"`.
 * @returns `undefined` once installed, else npm's last line of error.
 */
export async function installFromNpm(
  prefix: string,
  packages: string[],
): Promise<string | undefined> {
  const install = await new Deno.Command("npm", {
    args: [
      "install",
      "--prefix",
      prefix,
      "--no-save",
      "--no-audit",
      "--no-fund",
      ...packages,
    ],
    stdout: "null",
    stderr: "piped",
  }).output().catch((error: Error) => ({
    success: false,
    stderr: new TextEncoder().encode(error.message),
  }));
  if (install.success) return undefined;
  return `expected npm to install ${packages.join(" ")} into ${prefix}: ${
    new TextDecoder().decode(install.stderr).trim().split("\n").at(-1)
  }`;
}
