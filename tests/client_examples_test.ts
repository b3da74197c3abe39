import { assertEquals, assertMatch } from "@std/assert";
import { connect, serve } from "../mod.ts";
import { startPipeline } from "../examples/pipeline.ts";
import { within } from "./_socket_util.ts";
import { runScript, type ScriptOutput } from "./_deno_child.ts";

/** Runs an example to its end (killed by its PID after 20 s). */
function runExample(name: string, args: string[]): Promise<ScriptOutput> {
  return runScript(new URL(`../examples/${name}`, import.meta.url), args);
}

Deno.test("examples/echo_client.ts sends its arguments, prints the echoes and closes with 1000", async () => {
  const closes: number[] = [];
  await using server = serve(
    { port: 0, hostname: "127.0.0.1" },
    async (socket) => {
      await socket.readable.pipeTo(socket.writable);
      closes.push((await socket.closed).closeCode);
    },
  );
  const url = `ws://127.0.0.1:${server.addr.port}/`;
  const { code, stdout } = await runExample("echo_client.ts", [
    url,
    "hello",
    "grüße ✓",
  ]);
  assertEquals(code, 0);
  assertEquals(stdout.split("\n"), [
    `connected to ${url}`,
    "echo: hello",
    "echo: grüße ✓",
    "closed: 1000",
    "",
  ]);
  await server.shutdown();
  assertEquals(closes, [1000]);
});

Deno.test("examples/echo_client.ts exits with 1 and says why when nothing listens", async () => {
  const listener = Deno.listen({ port: 0, hostname: "127.0.0.1" });
  const { port } = listener.addr;
  listener.close(); // a port that was free a moment ago: refused
  const { code, stdout, stderr } = await runExample("echo_client.ts", [
    `ws://127.0.0.1:${port}/`,
  ]);
  assertEquals(code, 1);
  assertEquals(stdout, "");
  assertMatch(
    stderr,
    new RegExp(`^could not connect to ws://127\\.0\\.0\\.1:${port}/: .+`),
  );
});

Deno.test("examples/pipeline.ts answers each JSON line with one message, errors included, then closes cleanly", async () => {
  await using server = startPipeline({ port: 0 });
  const socket = await connect(`ws://127.0.0.1:${server.addr.port}/`);
  const writer = socket.writable.getWriter();
  await writer.write('{"b": 1, "a": [1, 2]}\n\n"text"\n');
  await writer.write("not json");
  await writer.write(new TextEncoder().encode("null\n42"));
  await writer.close();
  const replies = await within(
    5000,
    Array.fromAsync(socket.readable),
    "the pipeline's replies",
  );
  assertEquals(replies.length, 5);
  assertEquals(replies.slice(0, 2), [
    '{"type":"object","value":{"b":1,"a":[1,2]}}',
    '{"type":"string","value":"text"}',
  ]);
  assertMatch(replies[2] as string, /^\{"error":"not JSON: .+"\}$/);
  assertEquals(replies.slice(3), [
    '{"type":"null","value":null}',
    '{"type":"number","value":42}',
  ]);
  assertEquals((await socket.closed).closeCode, 1000);
});
