/**
 * Test helper: run a Deno script of this repository (an example, the CLI, a
 * measurement) as a child process with the repository's import map, and
 * kill it by its PID when it outlives its time.
 *
 * @module
 */

const IMPORT_MAP = new URL("../import_map.npm.json", import.meta.url).pathname;
const decoder = new TextDecoder();

/** How a script's child process is started. */
export interface ScriptSpawnOptions {
  /** "piped" to write to it; default "null". */
  stdin?: "piped" | "null";
  /** Default "piped". */
  stderr?: "piped" | "inherit";
  /** Extra flags for `deno run`, e.g. `--v8-flags=--expose-gc`. */
  denoFlags?: string[];
}

/** Starts `deno run -A` on `script` (a URL or path) with `args`. */
export function spawnScript(
  script: URL | string,
  args: string[],
  options: ScriptSpawnOptions = {},
): Deno.ChildProcess {
  const path = script instanceof URL ? script.pathname : script;
  return new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      `--import-map=${IMPORT_MAP}`,
      "-A",
      ...options.denoFlags ?? [],
      path,
      ...args,
    ],
    stdin: options.stdin ?? "null",
    stdout: "piped",
    stderr: options.stderr ?? "piped",
  }).spawn();
}

/** What a finished script printed, and its exit code. */
export interface ScriptOutput {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `script` to its end, with `input` on its stdin when given (else no
 * stdin); kills it after `timeoutMs`.
 */
export async function runScript(
  script: URL | string,
  args: string[],
  options: {
    input?: string | Uint8Array;
    timeoutMs?: number;
    denoFlags?: string[];
  } = {},
): Promise<ScriptOutput> {
  const { input, timeoutMs = 20_000, denoFlags } = options;
  const child = spawnScript(script, args, {
    stdin: input === undefined ? "null" : "piped",
    denoFlags,
  });
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  try {
    if (input !== undefined) {
      const writer = child.stdin.getWriter();
      // The script may exit without reading its input.
      await writer.write(
        typeof input === "string" ? new TextEncoder().encode(input) : input,
      ).catch(() => {});
      await writer.close().catch(() => {});
    }
    const output = await child.output();
    return {
      code: output.code,
      stdout: decoder.decode(output.stdout),
      stderr: decoder.decode(output.stderr),
    };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Reads `child`'s stdout until `pattern` matches what it printed (within
 * `timeoutMs`), then keeps draining it so the child never blocks on a full
 * pipe. Returns the match and a promise of the end of the output.
 */
export async function waitForOutput(
  child: Deno.ChildProcess,
  pattern: RegExp,
  timeoutMs = 30_000,
): Promise<{ match: RegExpMatchArray; drained: Promise<void> }> {
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new Error(
            `the child did not print ${pattern} within ${timeoutMs} ms`,
          ),
        ),
      timeoutMs,
    );
  });
  const found = (async () => {
    while (true) {
      const { value, done } = await lines.read();
      if (done) {
        throw new Error(`the child ended before printing ${pattern}: ${text}`);
      }
      text += value;
      const match = text.match(pattern);
      if (match) return match;
    }
  })();
  try {
    const match = await Promise.race([found, timeout]);
    const drained = (async () => {
      while (!(await lines.read()).done) { /* drain */ }
    })();
    return { match, drained };
  } finally {
    clearTimeout(timer);
  }
}
