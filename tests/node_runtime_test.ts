import { assertEquals, assertRejects, assertThrows } from "@std/assert";
import { nodeRuntime } from "../src/node_runtime.ts";
import type { NodeSocketTransport } from "../src/node_socket_transport.ts";
import {
  currentRuntime,
  isDeno,
  rawUpgradeUnsupported,
  requireDeno,
} from "../src/runtime.ts";
import { within } from "./_socket_util.ts";

// The Node runtime runs on Deno's node:net too, so its edges are tested
// here; tests/runtimes_test.ts runs it on Node and Bun.

Deno.test("currentRuntime() is Deno's on Deno; requireDeno() passes", () => {
  assertEquals(isDeno(), true);
  assertEquals(currentRuntime().name, "Deno");
  requireDeno("serve()", "handleUpgrade()");
});

Deno.test("node runtime: connectTcp() with an aborted signal rejects with its reason, before connecting", async () => {
  const controller = new AbortController();
  const reason = new Error("given up");
  controller.abort(reason);
  const error = await assertRejects(() =>
    nodeRuntime.connectTcp("127.0.0.1", 9, controller.signal)
  );
  assertEquals(error, reason);
});

Deno.test("node runtime: a refused connection rejects (no crash from the socket's error)", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  await assertRejects(
    () =>
      nodeRuntime.connectTcp("127.0.0.1", port, new AbortController().signal),
    Error,
    "ECONNREFUSED",
  );
});

Deno.test("node runtime: startTls() refuses a connection it did not open", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: listener.addr.port,
  });
  const accepted = await listener.accept();
  try {
    await assertRejects(
      () => nodeRuntime.startTls(conn, { hostname: "localhost" }),
      TypeError,
      "expected a connection that connectTcp() of the Node runtime opened",
    );
  } finally {
    conn.close();
    accepted.close();
    listener.close();
  }
});

Deno.test("NodeSocketTransport.release() refuses while read bytes wait, then hands the socket back", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conn = await nodeRuntime.connectTcp(
    "127.0.0.1",
    listener.addr.port,
    new AbortController().signal,
  ) as NodeSocketTransport;
  const accepted = await listener.accept();
  try {
    await accepted.write(new Uint8Array([1, 2, 3]));
    // Read one byte: the other two wait in the transport.
    assertEquals(await within(3000, conn.read(new Uint8Array(1)), "a read"), 1);
    assertThrows(() => conn.release(), TypeError, "found 2 unread bytes");
    const rest = new Uint8Array(2);
    assertEquals(await conn.read(rest), 2);
    assertEquals(rest, new Uint8Array([2, 3]));
    const socket = conn.release();
    // Released: bytes now go to whoever listens on the socket, not to the
    // transport.
    const received = new Promise<Uint8Array>((resolve) =>
      socket.on("data", (chunk: Uint8Array) => resolve(chunk))
    );
    await accepted.write(new Uint8Array([4]));
    assertEquals([...await within(3000, received, "data on the socket")], [4]);
    socket.destroy();
  } finally {
    accepted.close();
    listener.close();
  }
});

Deno.test("rawUpgradeUnsupported() refuses Bun before 1.4 (its upgrade sockets send nothing), by version", () => {
  assertEquals(rawUpgradeUnsupported(), undefined);
  assertEquals(rawUpgradeUnsupported("1.4.5"), undefined);
  assertEquals(rawUpgradeUnsupported("2.0.0"), undefined);
  for (const version of ["1.3.14", "1.2.23", "1.1.45", "0.9.0"]) {
    const reason = rawUpgradeUnsupported(version);
    assertEquals(
      reason?.startsWith(
        `expected Bun 1.4 or later for handleUpgrade(), found Bun ${version}`,
      ),
      true,
      reason,
    );
  }
});
