// V8 keeps each module's source text in its heap, one byte a character
// while every character is Latin-1 and two bytes as soon as one is not (an
// en dash or an arrow in a comment doubled ~86 KB of a client's heap). The
// CLI's usage text may use one: the CLI is not loaded by a client or server.

import { assertEquals } from "@std/assert";

const SRC = new URL("../src/", import.meta.url);
const EXEMPT = new Set(["cli_args.ts", "cli.ts"]);

Deno.test("every src/ module a socket loads is Latin-1, so V8 stores its source one byte a character", async () => {
  const outside: string[] = [];
  for await (const entry of Deno.readDir(SRC)) {
    if (!entry.name.endsWith(".ts") || EXEMPT.has(entry.name)) continue;
    const text = await Deno.readTextFile(new URL(entry.name, SRC));
    const lines = text.split("\n");
    lines.forEach((line, index) => {
      const found = [...line].find((char) => char.codePointAt(0)! > 0xff);
      if (found) outside.push(`${entry.name}:${index + 1}: ${found}`);
    });
  }
  assertEquals(
    outside,
    [],
    "characters outside Latin-1 (use ASCII: - -> ... >=)",
  );
});
