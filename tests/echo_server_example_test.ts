import { assertEquals, assertMatch } from "@std/assert";
import { within } from "./_socket_util.ts";
import { spawnScript } from "./_deno_child.ts";

Deno.test("examples/echo_server.ts echoes until the client closes, and stops on SIGINT", async () => {
  const child = spawnScript(
    new URL("../examples/echo_server.ts", import.meta.url),
    ["--port", "0"],
    { stderr: "inherit" },
  );
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  try {
    const { value } = await within(
      20_000,
      lines.read(),
      "the example starting",
    );
    assertMatch(value ?? "", /^echo server on ws:\/\/127\.0\.0\.1:\d+\/\n/);
    const url = /ws:\/\/\S+/.exec(value!)![0];
    const ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    const received: unknown[] = [];
    const closed = new Promise<CloseEvent>((resolve) => ws.onclose = resolve);
    ws.onopen = () => {
      ws.send("text ✓");
      ws.send(new Uint8Array([1, 2, 3]));
    };
    ws.onmessage = (event) => {
      received.push(
        typeof event.data === "string"
          ? event.data
          : [...new Uint8Array(event.data)],
      );
      if (received.length === 2) ws.close(1000, "bye");
    };
    const event = await within(5000, closed, "the echo exchange");
    assertEquals(received, ["text ✓", [1, 2, 3]]);
    assertEquals([event.code, event.reason, event.wasClean], [
      1000,
      "bye",
      true,
    ]);
  } finally {
    child.kill("SIGINT");
    const status = await within(5000, child.status, "the example exiting");
    await lines.cancel();
    assertEquals(status.success, true);
  }
});
