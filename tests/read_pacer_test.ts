import { assert, assertEquals } from "@std/assert";
import { ReadPacer } from "../src/read_pacer.ts";

// Ends the current round: its closing microtask was queued before this.
const nextMicrotask = () => Promise.resolve();

Deno.test("read pacer: a round admits its share at once, the rest wait", async () => {
  const pacer = new ReadPacer(2);
  assertEquals(pacer.admit(), undefined);
  assertEquals(pacer.admit(), undefined);
  const third = pacer.admit();
  const fourth = pacer.admit();
  assert(third instanceof Promise, "the third read waits");
  assert(fourth instanceof Promise, "the fourth read waits");
  await third;
  await fourth;
});

Deno.test("read pacer: below the share of a round, nothing ever waits", async () => {
  const pacer = new ReadPacer(3);
  for (let round = 0; round < 5; round++) {
    for (let read = 0; read < 3; read++) {
      assertEquals(pacer.admit(), undefined, `round ${round}, read ${read}`);
    }
    await nextMicrotask();
  }
});

Deno.test("read pacer: waiting reads go first in the next round, in arrival order", async () => {
  const pacer = new ReadPacer(2);
  const order: string[] = [];
  pacer.admit();
  pacer.admit();
  pacer.admit()!.then(() => order.push("a"));
  pacer.admit()!.then(() => order.push("b"));
  pacer.admit()!.then(() => order.push("c"));
  await nextMicrotask();
  // A new round: "a" and "b" take its two places, so the new read waits
  // (behind "c").
  const late = pacer.admit();
  if (late === undefined) {
    throw new Error(
      "expected a read of the new round to wait, found it admitted at once",
    );
  }
  late.then(() => order.push("late"));
  await nextMicrotask();
  assertEquals(order, ["a", "b"]);
  await late;
  assertEquals(order, ["a", "b", "c", "late"]);
});

Deno.test("read pacer: reads waiting are admitted by a timer when no read completes", async () => {
  const pacer = new ReadPacer(1);
  pacer.admit();
  const waiting = [pacer.admit()!, pacer.admit()!, pacer.admit()!];
  const admitted: number[] = [];
  waiting.forEach((turn, i) => turn.then(() => admitted.push(i)));
  // One a round: the first timer round admits only the first.
  await waiting[0];
  assertEquals(admitted, [0]);
  await Promise.all(waiting);
  assertEquals(admitted, [0, 1, 2]);
});
