/**
 * Builds wstream for Node (≥ 20) and Bun: one ESM file, `mod.js`, with
 * the `@std` modules it uses inlined and `node:*` built-ins left as
 * imports, its type declarations (`mod.d.ts` and `src/*.d.ts`, see
 * scripts/node_declarations.ts), plus a `package.json` that marks it as
 * ESM and points at both. Node 20 cannot run
 * TypeScript (it has no `--experimental-strip-types`), so this is what the
 * runtime tests (tests/runtimes_test.ts) run on Node and Bun.
 *
 * Run: `deno task build:node [outDir]` (default `dist/node`, git-ignored).
 * The code is made with `deno bundle` (esbuild inside Deno, which fetches
 * esbuild's binary itself); the declarations with npm `typescript`, run by
 * Node, so the build needs `node` and `npm` on PATH.
 *
 * @module
 */

import { emitDeclarations } from "./node_declarations.ts";

const ROOT = new URL("../", import.meta.url);

/** Where `deno task build:node` writes when given no directory. */
export const DEFAULT_OUT_DIR: string = new URL("dist/node/", ROOT).pathname;

/**
 * Bundles mod.ts into `outDir/mod.js`, emits its declarations beside it
 * and writes `outDir/package.json`.
 *
 * @param outDir The directory to write (made if missing).
 * @returns The path of `mod.js`.
 */
export async function buildNode(outDir: string = DEFAULT_OUT_DIR): Promise<
  string
> {
  await Deno.mkdir(outDir, { recursive: true });
  const dir = outDir.replace(/\/$/, "");
  const output = `${dir}/mod.js`;
  const { success, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [
      "bundle",
      "--quiet",
      `--import-map=${new URL("import_map.npm.json", ROOT).pathname}`,
      // node: built-ins stay imports (Node, Bun and Deno all have them).
      "--platform=deno",
      "--format=esm",
      `--output=${output}`,
      new URL("mod.ts", ROOT).pathname,
    ],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!success) {
    throw new Error(
      `expected deno bundle to build ${output}, found it failing: ${
        new TextDecoder().decode(stderr).trim()
      }`,
    );
  }
  await emitDeclarations(dir);
  const config = JSON.parse(
    await Deno.readTextFile(new URL("deno.json", ROOT)),
  ) as { name: string; version: string; license: string };
  const packageJson = {
    name: config.name,
    version: config.version,
    license: config.license,
    type: "module",
    types: "./mod.d.ts",
    exports: { ".": { types: "./mod.d.ts", default: "./mod.js" } },
    engines: { node: ">=20" },
  };
  await Deno.writeTextFile(
    `${dir}/package.json`,
    JSON.stringify(packageJson, null, 2) + "\n",
  );
  return output;
}

if (import.meta.main) {
  const output = await buildNode(Deno.args[0]);
  console.log(`built ${output}`);
}
