/**
 * The Node build's type declarations (scripts/node_declarations.ts) as a
 * Node user of TypeScript meets them: npm `tsc`, run by Node, checks
 * tests/runtimes/typed_consumer.ts against the build installed as the
 * package `@wstream/wstream`, in a typical Node project (`@types/node`, no
 * DOM library) and in one with the DOM library; the JavaScript it emits then
 * runs on Node. Locally a missing Node skips with one line; under CI=true
 * it fails.
 *
 * @module
 */

import { assertEquals } from "@std/assert";
import { buildNode } from "../scripts/build_npm.ts";
import { findTypeScript, runTsc } from "../scripts/node_declarations.ts";
import { requirePeer } from "./interop/_peers.ts";

const CONSUMER = new URL("runtimes/typed_consumer.ts", import.meta.url);

async function nodeAvailable(): Promise<boolean> {
  try {
    return (await new Deno.Command("node", { args: ["--version"] }).output())
      .success;
  } catch {
    return false;
  }
}

// One build for all the tests of this file, into a temporary directory.
let built: Promise<string> | undefined;
function buildOnce(): Promise<string> {
  return built ??= Deno.makeTempDir({ prefix: "wstream-node-" }).then(
    async (dir) => (await buildNode(dir), dir),
  );
}

/**
 * A Node project in a temporary directory: the consumer, and the build
 * linked as `node_modules/@wstream/wstream`.
 */
async function consumerProject(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "wstream-consumer-" });
  await Deno.mkdir(`${dir}/node_modules/@wstream`, { recursive: true });
  await Deno.symlink(await buildOnce(), `${dir}/node_modules/@wstream/wstream`);
  await Deno.writeTextFile(`${dir}/package.json`, '{ "type": "module" }\n');
  await Deno.copyFile(CONSUMER, `${dir}/consumer.ts`);
  return dir;
}

/**
 * Runs `body` in a fresh consumer project, removed afterwards; skips (or,
 * under CI, fails) when Node is missing.
 */
async function inConsumerProject(
  body: (dir: string) => Promise<void>,
): Promise<void> {
  if (!requirePeer("Node", await nodeAvailable(), "Node.js 20 or later")) {
    return;
  }
  const dir = await consumerProject();
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Writes a tsconfig.json for `lib` and runs tsc on it. */
async function typeCheck(
  dir: string,
  lib: string[],
  emit: boolean,
): Promise<{ success: boolean; output: string }> {
  const tools = await findTypeScript();
  const tsconfig = {
    compilerOptions: {
      target: "ES2022",
      module: "NodeNext",
      moduleResolution: "NodeNext",
      lib,
      types: ["node"],
      typeRoots: [tools.typeRoots],
      strict: true,
      // The package's own declarations are checked too.
      skipLibCheck: false,
      ...(emit ? { outDir: "out" } : { noEmit: true }),
    },
    files: ["consumer.ts"],
  };
  await Deno.writeTextFile(`${dir}/tsconfig.json`, JSON.stringify(tsconfig));
  return await runTsc(tools, ["-p", "tsconfig.json"], dir);
}

Deno.test("Node build: its declarations type-check a Node project without the DOM library, and the checked code runs on Node", () =>
  inConsumerProject(async (dir) => {
    const checked = await typeCheck(dir, ["ES2022"], true);
    assertEquals(checked.output, "", "tsc reported errors");
    assertEquals(checked.success, true);
    const run = await new Deno.Command("node", {
      args: [`${dir}/out/consumer.js`],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const decoder = new TextDecoder();
    assertEquals(run.success, true, decoder.decode(run.stderr));
    assertEquals(JSON.parse(decoder.decode(run.stdout)), {
      protocol: "echo",
      echoed: "typed",
      closeCode: 1000,
      whatwgClose: [1000, "done", true],
    });
  }));

Deno.test("Node build: its declarations type-check a project with the DOM library", () =>
  inConsumerProject(async (dir) => {
    const checked = await typeCheck(dir, ["ES2022", "DOM"], false);
    assertEquals(checked.output, "", "tsc reported errors");
    assertEquals(checked.success, true);
  }));

Deno.test("Node build: tsc reports a misuse the declarations refuse", () =>
  inConsumerProject(async (dir) => {
    // Without its @ts-expect-error line, the misuse is an error again.
    const source = await Deno.readTextFile(`${dir}/consumer.ts`);
    await Deno.writeTextFile(
      `${dir}/consumer.ts`,
      source.replace("// @ts-expect-error: the subprotocol is a string.\n", ""),
    );
    const checked = await typeCheck(dir, ["ES2022"], false);
    assertEquals(checked.success, false);
    assertEquals(
      checked.output.replace(/\(\d+,\d+\)/, "(line)"),
      "consumer.ts(line): error TS2322: Type 'string' is not assignable to type 'number'.",
    );
  }));
