/**
 * Finds Bun for the benchmarks' outside reference rows: `$BUN` if set,
 * otherwise npm's `bun@1` package, installed once with npm into
 * `$XDG_CACHE_HOME/wstream-bun` (default `~/.cache/wstream-bun`), never
 * into the repository. The package's postinstall script puts the binary for
 * this platform at `node_modules/bun/bin/bun.exe` (the file is a placeholder
 * until then).
 *
 * @module
 */

import { cacheDir, installFromNpm } from "../scripts/npm_cache.ts";

/** The version range of npm `bun` the benchmarks run. */
export const BUN_VERSION = "1";

async function runs(path: string): Promise<boolean> {
  try {
    const { success } = await new Deno.Command(path, {
      args: ["--version"],
      stdout: "null",
      stderr: "null",
    }).output();
    return success;
  } catch {
    return false;
  }
}

/**
 * The path of a Bun binary that runs, or why there is none (the row is then
 * skipped with that reason).
 */
export async function findBun(): Promise<{ path: string } | { skip: string }> {
  const fromEnv = Deno.env.get("BUN");
  if (fromEnv) {
    return await runs(fromEnv)
      ? { path: fromEnv }
      : { skip: `BUN=${fromEnv} does not run` };
  }
  const prefix = cacheDir("wstream-bun");
  const path = `${prefix}/node_modules/bun/bin/bun.exe`;
  if (await runs(path)) return { path };
  console.error(`installing npm bun@${BUN_VERSION} into ${prefix}`);
  const failure = await installFromNpm(prefix, [`bun@${BUN_VERSION}`]);
  if (failure) return { skip: failure };
  return await runs(path) ? { path } : {
    skip:
      `expected npm bun's postinstall script to put Bun at ${path}; it does not run (were install scripts disabled?)`,
  };
}
