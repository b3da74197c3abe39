/**
 * Type declarations (`.d.ts`) for the Node build, so Node and Bun users of
 * TypeScript get wstream's types: npm `typescript`'s `tsc` (run by Node)
 * emits them from the sources, then three rewrites make them work without
 * Deno: relative `.ts` specifiers become `.js` (what a Node consumer's
 * `tsc` resolves to the `.d.ts` beside it), each file that names a
 * `Deno.X` type imports the subsets of scripts/deno_types_for_node.d.ts as
 * `Deno`, and the `@std` modules, used only inside function bodies, are
 * declared as untyped modules for the emit (a declaration that needed one
 * fails the build).
 *
 * `tsc` and `@types/node` come from npm, installed once into
 * `$XDG_CACHE_HOME/wstream-tsc` (default `~/.cache/wstream-tsc`).
 *
 * @module
 */

import { cacheDir, installFromNpm } from "./npm_cache.ts";

/** The npm packages that make the declarations (and check them in tests). */
export const TYPESCRIPT_PACKAGES: readonly string[] = [
  "typescript@5.9.3",
  "@types/node@20.19.43",
];

const ROOT = new URL("../", import.meta.url);
const decoder = new TextDecoder();

/** Where `tsc` and `@types/node` are. */
export interface TypeScriptTools {
  /** The path of `tsc`'s script, run with `node`. */
  tsc: string;
  /** The directory holding `@types/node`, for `typeRoots`. */
  typeRoots: string;
}

/**
 * Finds `tsc` in the cache, installing it from npm the first time.
 *
 * @returns The paths of `tsc` and of the `@types` directory.
 * @throws {Error} when npm cannot install them.
 */
export async function findTypeScript(): Promise<TypeScriptTools> {
  const prefix = cacheDir("wstream-tsc");
  const tools = {
    tsc: `${prefix}/node_modules/typescript/bin/tsc`,
    typeRoots: `${prefix}/node_modules/@types`,
  };
  const installed = await Promise.all(
    TYPESCRIPT_PACKAGES.map((spec) =>
      installedVersion(prefix, spec.slice(0, spec.lastIndexOf("@")))
    ),
  );
  const current = TYPESCRIPT_PACKAGES.every((spec, i) =>
    spec.endsWith(`@${installed[i]}`)
  );
  if (current) return tools;
  const failure = await installFromNpm(prefix, [...TYPESCRIPT_PACKAGES]);
  if (failure) throw new Error(failure);
  return tools;
}

async function installedVersion(
  prefix: string,
  name: string,
): Promise<string | undefined> {
  try {
    const manifest = await Deno.readTextFile(
      `${prefix}/node_modules/${name}/package.json`,
    );
    return (JSON.parse(manifest) as { version?: string }).version;
  } catch {
    return undefined;
  }
}

/**
 * Runs `node tsc args…`.
 *
 * @param tools Where `tsc` is.
 * @param args `tsc`'s arguments.
 * @param cwd The directory to run it in (the paths it prints are relative
 * to it).
 * @returns Whether it succeeded, and what it printed.
 */
export async function runTsc(
  tools: TypeScriptTools,
  args: string[],
  cwd?: string,
): Promise<{ success: boolean; output: string }> {
  const { success, stdout, stderr } = await new Deno.Command("node", {
    args: [tools.tsc, ...args],
    cwd,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    success,
    output: (decoder.decode(stdout) + decoder.decode(stderr)).trim(),
  };
}

/**
 * Emits the declarations of `mod.ts` and of every module it reaches into
 * `outDir` (`mod.d.ts`, `src/*.d.ts`, `deno_types.d.ts`).
 *
 * @param outDir The build's directory, without a trailing slash.
 * @returns The path of `mod.d.ts`.
 * @throws {Error} when `tsc` reports an error, or a declaration imports a
 * package other than a `node:` built-in.
 */
export async function emitDeclarations(outDir: string): Promise<string> {
  const tools = await findTypeScript();
  const work = await Deno.makeTempDir({ prefix: "wstream-dts-" });
  try {
    // The Deno namespace and Deno's web types, as `deno check` sees them.
    const denoTypes = await new Deno.Command(Deno.execPath(), {
      args: ["types"],
      stdout: "piped",
    }).output();
    await Deno.writeFile(`${work}/lib.deno.d.ts`, denoTypes.stdout);
    await Deno.writeTextFile(`${work}/imports.d.ts`, await untypedImports());
    const tsconfig = {
      compilerOptions: {
        target: "ES2022",
        module: "NodeNext",
        moduleResolution: "NodeNext",
        lib: ["ES2023"],
        types: ["node"],
        typeRoots: [tools.typeRoots],
        strict: true,
        declaration: true,
        emitDeclarationOnly: true,
        allowImportingTsExtensions: true,
        // lib.deno.d.ts and @types/node both declare web globals.
        skipLibCheck: true,
        rootDir: ROOT.pathname,
        outDir,
      },
      files: [
        new URL("mod.ts", ROOT).pathname,
        `${work}/lib.deno.d.ts`,
        `${work}/imports.d.ts`,
      ],
    };
    await Deno.writeTextFile(
      `${work}/tsconfig.json`,
      JSON.stringify(tsconfig, null, 2),
    );
    const { success, output } = await runTsc(tools, [
      "-p",
      `${work}/tsconfig.json`,
    ]);
    if (!success) {
      throw new Error(
        `expected tsc to emit wstream's declarations, found errors:\n${output}`,
      );
    }
  } finally {
    await Deno.remove(work, { recursive: true });
  }
  const shims = await Promise.all(SHIMS.map(readShim));
  for await (const path of declarationFiles(outDir)) {
    const depth = path.slice(outDir.length + 1).split("/").length - 1;
    const text = await Deno.readTextFile(path);
    await Deno.writeTextFile(
      path,
      forNode(text, path, "../".repeat(depth) || "./", shims),
    );
  }
  for (const shim of SHIMS) {
    await Deno.copyFile(shim.source, `${outDir}/${shim.name}.d.ts`);
  }
  return `${outDir}/mod.d.ts`;
}

// `declare module "…";` for each specifier of the import map: tsc then
// treats them as untyped, which only bodies of functions may use.
async function untypedImports(): Promise<string> {
  const { imports } = JSON.parse(
    await Deno.readTextFile(new URL("import_map.npm.json", ROOT)),
  ) as { imports: Record<string, string> };
  return Object.keys(imports)
    .filter((specifier) => !specifier.endsWith("/"))
    .map((specifier) => `declare module "${specifier}";\n`)
    .join("");
}

interface Shim {
  /** The file, copied beside the declarations as `name.d.ts`. */
  source: URL;
  name: string;
  /**
   * How declarations use it: `"Deno"` for `Deno.X` names (imported as that
   * namespace), `"global"` for global names it replaces.
   */
  kind: "Deno" | "global";
}

// Types Node lacks: the subsets the declarations use instead.
const SHIMS: Shim[] = [
  {
    source: new URL("deno_types_for_node.d.ts", import.meta.url),
    name: "deno_types",
    kind: "Deno",
  },
  {
    source: new URL("web_types_for_node.d.ts", import.meta.url),
    name: "web_types",
    kind: "global",
  },
];

async function readShim(shim: Shim): Promise<Shim & { names: Set<string> }> {
  const text = await Deno.readTextFile(shim.source);
  const names = [...text.matchAll(/^export (?:interface|type) (\w+)/gm)];
  return { ...shim, names: new Set(names.map((match) => match[1])) };
}

async function* declarationFiles(dir: string): AsyncGenerator<string> {
  for await (const entry of Deno.readDir(dir)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) yield* declarationFiles(path);
    else if (entry.name.endsWith(".d.ts")) yield path;
  }
}

// A line of code, not of a JSDoc or line comment (whose examples mention
// Deno and packages freely).
function isCode(line: string): boolean {
  return !/^\s*(\*|\/\*|\/\/)/.test(line);
}

/**
 * One declaration file made fit for Node: `.ts` specifiers become `.js`,
 * the shims' types are imported from `root` (the build's directory,
 * relative to the file).
 */
function forNode(
  text: string,
  path: string,
  root: string,
  shims: Array<Shim & { names: Set<string> }>,
): string {
  const [denoTypes, webTypes] = shims;
  let namesDeno = false;
  const webNames = new Set<string>();
  const lines = text.split("\n").map((line) => {
    if (!isCode(line)) return line;
    for (const [, name] of line.matchAll(/\bDeno\.(\w+)/g)) {
      if (!denoTypes.names.has(name)) {
        throw new Error(
          `expected the Deno types of ${path} in ${denoTypes.source.pathname}, found Deno.${name} missing there`,
        );
      }
      namesDeno = true;
    }
    for (const [name] of line.matchAll(/(?<![.\w])[A-Z]\w*/g)) {
      if (webTypes.names.has(name)) webNames.add(name);
    }
    for (const [, specifier] of line.matchAll(/(?:from |import\()"([^"]+)"/g)) {
      if (!specifier.startsWith(".") && !specifier.startsWith("node:")) {
        throw new Error(
          `expected ${path} to import only wstream's modules and node: built-ins, found "${specifier}"`,
        );
      }
    }
    return line.replace(/((?:from |import\()"\.{1,2}\/[^"]*)\.ts"/g, '$1.js"');
  });
  if (webNames.size > 0) {
    lines.unshift(
      `import type { ${
        [...webNames].sort().join(", ")
      } } from "${root}${webTypes.name}.js";`,
    );
  }
  if (namesDeno) {
    lines.unshift(`import type * as Deno from "${root}${denoTypes.name}.js";`);
  }
  return lines.join("\n");
}
