// A Deno server or client must not load Deno's Node compatibility layer
// before it needs it: one static `node:` import costs every process several
// MiB of RSS (node:buffer ~3.5 MiB, node:zlib ~8 MiB, measured against a
// bare `deno run`; issue 17's streaming targets are a few MiB wide). Node
// modules are imported on first use (node:net for the Node runtime, node:zlib
// for permessage-deflate). This walks the modules each entry point loads
// when it is evaluated: static imports, not type-only or dynamic ones.

import { assert, assertEquals } from "@std/assert";

const IMPORT_MAP = new URL("../import_map.npm.json", import.meta.url).pathname;

interface InfoDependency {
  code?: { specifier: string };
  isDynamic?: boolean;
}
interface InfoModule {
  specifier: string;
  dependencies?: InfoDependency[];
}

// The specifiers that evaluating `entry` loads.
async function loadedModules(entry: URL): Promise<string[]> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", `--import-map=${IMPORT_MAP}`, entry.href],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert(output.success, new TextDecoder().decode(output.stderr));
  const info = JSON.parse(new TextDecoder().decode(output.stdout));
  const modules = new Map<string, InfoModule>(
    info.modules.map((module: InfoModule) => [module.specifier, module]),
  );
  const loaded = new Set<string>();
  const pending: string[] = [info.roots[0]];
  while (pending.length > 0) {
    const specifier = pending.pop()!;
    if (loaded.has(specifier)) continue;
    loaded.add(specifier);
    for (const dependency of modules.get(specifier)?.dependencies ?? []) {
      if (dependency.code && !dependency.isDynamic) {
        pending.push(dependency.code.specifier);
      }
    }
  }
  return [...loaded];
}

for (const entry of ["src/server.ts", "src/client.ts", "mod.ts"]) {
  Deno.test(`${entry} loads no node: module when evaluated`, async () => {
    const loaded = await loadedModules(
      new URL(`../${entry}`, import.meta.url),
    );
    // The walk found the library's modules: the graph is not empty.
    assert(
      loaded.some((specifier) => specifier.endsWith("/src/socket_core.ts")),
      `expected ${entry} to load socket_core.ts, found ${loaded.length} modules`,
    );
    assertEquals(
      loaded.filter((specifier) => specifier.startsWith("node:")),
      [],
    );
  });
}

Deno.test("a hub's shared compression waits for node:zlib, loaded on first use, and sends uncompressed meanwhile", async () => {
  // A fresh process: in this one other tests have loaded node:zlib.
  const program = `
    import { PreparedMessage } from "./src/prepared_message.ts";
    import { loadZlib } from "./src/zlib_module.ts";
    const message = new PreparedMessage("again and again ".repeat(100));
    const before = message.compressedPayload(15);
    await loadZlib();
    const after = message.compressedPayload(15);
    console.log(JSON.stringify([before === undefined, after?.length]));
  `;
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["eval", `--import-map=${IMPORT_MAP}`, program],
    cwd: new URL("..", import.meta.url).pathname,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert(output.success, new TextDecoder().decode(output.stderr));
  const [uncompressedBefore, lengthAfter] = JSON.parse(
    new TextDecoder().decode(output.stdout),
  );
  assertEquals(uncompressedBefore, true);
  assert(lengthAfter > 0 && lengthAfter < 1600, `compressed: ${lengthAfter}`);
});
