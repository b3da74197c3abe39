/**
 * Measures what a message of many tiny fragments costs our end, run by
 * limits_test.ts in its own process with `--v8-flags=--expose-gc` so the
 * retained heap can be read after a full collection (peak heap numbers in
 * a test process are mostly garbage).
 *
 * Usage: deno run -A --v8-flags=--expose-gc _fragment_memory.ts <server|client> <count>
 * Prints one JSON line: { retainedBytes, seconds }.
 *
 * @module
 */

import {
  type Case,
  closeNormally,
  expectMessage,
  expectPong,
  runAgainstClient,
  runAgainstServer,
} from "./_cases.ts";
import { OP } from "./_raw_peer.ts";

const role = Deno.args[0] === "client" ? "client" : "server";
const count = Number(Deno.args[1] ?? "1000000");
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error("run with --v8-flags=--expose-gc");

function heapAfterGc(): number {
  gc!();
  gc!();
  return Deno.memoryUsage().heapUsed;
}

let result = { retainedBytes: 0, seconds: 0 };

const testCase: Case = {
  id: "L3",
  title: `${count} one-byte fragments`,
  async run(peer, ours) {
    // Each fragment: FIN/opcode, length 1 (with the mask bit and a zero key
    // from a client, which leaves the byte as it is), one payload byte.
    const frameBytes = peer.masks ? 7 : 3;
    const all = new Uint8Array(count * frameBytes);
    for (let i = 0, at = 0; i < count; i++, at += frameBytes) {
      all[at] = (i === count - 1 ? 0x80 : 0) | (i === 0 ? OP.binary : 0);
      all[at + 1] = peer.masks ? 0x81 : 0x01;
      all[at + frameBytes - 1] = i & 0xff;
    }
    const expected = new Uint8Array(count).map((_, i) => i & 0xff);
    const allButLast = all.subarray(0, all.length - frameBytes);
    const baseline = heapAfterGc();
    const started = performance.now();
    await peer.send(allButLast, { chunkBytes: 64 * 1024 });
    // The pong comes once every fragment before the ping was processed.
    await peer.sendFrames([{ opcode: OP.ping, payload: "marker" }]);
    await expectPong(peer, "marker");
    const retained = heapAfterGc() - baseline;
    await peer.send(all.subarray(all.length - frameBytes));
    await expectMessage(peer, OP.binary, expected, 60_000);
    result = {
      retainedBytes: retained,
      seconds: (performance.now() - started) / 1000,
    };
    await closeNormally(peer, ours);
  },
};

if (role === "server") await runAgainstServer(testCase);
else await runAgainstClient(testCase);
console.log(JSON.stringify(result));
