// A 1 GiB message streamed from a file through our client to our server,
// which streams it into a file, each in its own process: the bytes arrive
// identical (SHA-256) and each process's peak RSS stays under 64 MiB, as
// issue 17 asks (printed too).
// STREAM_TEST_MIB sets another size (e.g. 64 for a quick run).

import { assert, assertEquals } from "@std/assert";
import { spawnScript } from "./_deno_child.ts";

const MIB = 1024 * 1024;
const SIZE_MIB = Number(Deno.env.get("STREAM_TEST_MIB") ?? 1024);
// Deno 2.9.6 alone takes most of the memory: a bare `deno run` is at
// ~29 MiB, and a bare file-to-TCP copy with one reused buffer peaks at
// ~46 MiB (the executable's code pages, V8's compilers and heap). What
// wstream adds is its modules (their source is kept in the V8 heap),
// WebCrypto for the handshake digest (~1 MiB) and a few 64 KiB chunks, never
// the message (see the README, "One large message"). These processes peak
// at 58-62 MiB for a 1 GiB message, also on a loaded machine, since no
// module they load imports a node: module (node:buffer alone cost ~3 MiB).
const PEAK_RSS_LIMIT = 64 * MIB;
const PEER = new URL("./_stream_file_peer.ts", import.meta.url);

// Writes `mib` MiB of pseudo-random bytes: one random MiB, each copy
// stamped with its index, so a lost, doubled or reordered MiB changes the
// hash.
async function writeSource(path: string, mib: number): Promise<void> {
  const block = new Uint8Array(MIB);
  for (let i = 0; i < MIB; i += 65536) {
    crypto.getRandomValues(block.subarray(i, i + 65536));
  }
  using file = await Deno.create(path);
  for (let i = 0; i < mib; i++) {
    new DataView(block.buffer).setUint32(0, i);
    let written = 0;
    while (written < MIB) written += await file.write(block.subarray(written));
  }
}

async function sha256(path: string): Promise<string> {
  const output = await new Deno.Command("sha256sum", { args: [path] }).output();
  assert(output.success, new TextDecoder().decode(output.stderr));
  return new TextDecoder().decode(output.stdout).split(" ")[0];
}

// The last JSON line a child printed.
async function lastLine(
  child: Deno.ChildProcess,
): Promise<Record<string, number>> {
  const output = await child.output();
  const stdout = new TextDecoder().decode(output.stdout).trim();
  assertEquals(
    output.code,
    0,
    `${stdout}\n${new TextDecoder().decode(output.stderr)}`,
  );
  return JSON.parse(stdout.split("\n").at(-1)!);
}

Deno.test({
  name:
    `a ${SIZE_MIB} MiB message streams file to file through two processes: same SHA-256, peak RSS under 64 MiB each`,
  sanitizeResources: false,
}, async () => {
  const dir = await Deno.makeTempDir({ prefix: "wstream-large-" });
  const source = `${dir}/source.bin`;
  const target = `${dir}/target.bin`;
  const children: Deno.ChildProcess[] = [];
  // Bounded: the children are killed (by PID) after 60 s.
  const killer = setTimeout(() => {
    for (const child of children) {
      try {
        child.kill("SIGKILL");
      } catch {
        // exited
      }
    }
  }, 60_000);
  try {
    await writeSource(source, SIZE_MIB);
    const server = spawnScript(PEER, ["server", target]);
    children.push(server);
    // The first line is the port; the rest is read by lastLine().
    const [portStream, rest] = server.stdout.tee();
    const portReader = portStream.pipeThrough(new TextDecoderStream())
      .getReader();
    let head = "";
    while (!head.includes("\n")) {
      const { value, done } = await portReader.read();
      assert(!done, "the server exited before listening");
      head += value;
    }
    portReader.cancel().catch(() => {});
    const { port } = JSON.parse(head.split("\n")[0]);
    const client = spawnScript(PEER, [
      "client",
      `ws://127.0.0.1:${port}/`,
      source,
    ]);
    children.push(client);
    const [clientResult, serverStatus, serverOut] = await Promise.all([
      lastLine(client),
      server.status,
      new Response(rest).text(),
      server.stderr.cancel(),
    ]);
    assertEquals(serverStatus.code, 0, serverOut);
    const serverResult = JSON.parse(serverOut.trim().split("\n").at(-1)!);
    assertEquals(clientResult.closeCode, 1000);
    assertEquals(serverResult.bytes, SIZE_MIB * MIB);
    const [sourceHash, targetHash] = await Promise.all([
      sha256(source),
      sha256(target),
    ]);
    assertEquals(targetHash, sourceHash);
    console.log(
      `peak RSS: client ${
        (clientResult.peakRss / MIB).toFixed(1)
      } MiB, server ${(serverResult.peakRss / MIB).toFixed(1)} MiB`,
    );
    assert(
      clientResult.peakRss < PEAK_RSS_LIMIT,
      `client peak RSS ${clientResult.peakRss} bytes`,
    );
    assert(
      serverResult.peakRss < PEAK_RSS_LIMIT,
      `server peak RSS ${serverResult.peakRss} bytes`,
    );
  } finally {
    clearTimeout(killer);
    await Deno.remove(dir, { recursive: true });
  }
});
