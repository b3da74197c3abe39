import { assert, assertEquals, assertMatch } from "@std/assert";
import { connect, serve } from "../mod.ts";
import { parseCliArgs } from "../src/cli.ts";
import { within } from "./_socket_util.ts";
import { runScript, type ScriptOutput, spawnScript } from "./_deno_child.ts";

const CLI = new URL("../src/cli.ts", import.meta.url);

function spawnCli(args: string[]): Deno.ChildProcess {
  return spawnScript(CLI, args, { stdin: "piped" });
}

/** Runs the CLI with input on stdin; kills its PID after 20 s. */
function runCli(
  args: string[],
  input: string | Uint8Array = "",
): Promise<ScriptOutput> {
  return runScript(CLI, args, { input });
}

Deno.test("parseCliArgs reads every option and says what is wrong", () => {
  const options = parseCliArgs([
    "--protocol",
    "a",
    "--protocol=b",
    "--header",
    "Authorization: Bearer x:y",
    "--binary",
    "--no-compression",
    "ws://h/p",
  ]);
  assertEquals(options.protocols, ["a", "b"]);
  assertEquals(options.headers, [["Authorization", "Bearer x:y"]]);
  assertEquals([options.binary, options.compression], [true, false]);
  assertEquals(options.url, "ws://h/p");
  const server = parseCliArgs(["--listen", "0", "--broadcast"]);
  assertEquals([server.listen, server.broadcast, server.hostname], [
    0,
    true,
    "127.0.0.1",
  ]);
  const failures: Array<[string[], RegExp]> = [
    [[], /expected a ws:\/\/ or wss:\/\/ URL to connect to, or --listen/],
    [["--listen", "http"], /expected --listen to be a port .* "http"/],
    [["--header", "novalue", "ws://h/"], /expected --header "Name: value"/],
    [["--protocol"], /expected a value after --protocol/],
    [["--nope", "ws://h/"], /unknown option --nope/],
    [["ws://a/", "ws://b/"], /expected one URL/],
    [["ws://a/", "--listen", "1"], /either a URL or --listen/],
  ];
  for (const [args, message] of failures) {
    let error: unknown;
    try {
      parseCliArgs(args);
    } catch (caught) {
      error = caught;
    }
    assert(error instanceof TypeError, `no TypeError for ${args}`);
    assertMatch((error as TypeError).message, message);
  }
});

Deno.test("cli sends each stdin line, prints each message, and closes with 1000 at the end of stdin", async () => {
  const seen: Array<{
    protocol: string;
    header: string | null;
    messages: Array<string | number[]>;
  }> = [];
  await using server = serve({
    port: 0,
    hostname: "127.0.0.1",
    protocols: ["chat"],
  }, async (socket, request) => {
    const record = {
      protocol: socket.protocol,
      header: request.headers.get("x-token"),
      messages: [] as Array<string | number[]>,
    };
    seen.push(record);
    const writer = socket.writable.getWriter();
    for await (const message of socket.readable) {
      record.messages.push(
        typeof message === "string" ? message : [...message],
      );
      await writer.write(
        typeof message === "string" ? message.toUpperCase() : message,
      );
    }
    await writer.close();
  });
  const url = `ws://127.0.0.1:${server.addr.port}/room`;

  const text = await runCli(
    ["--protocol", "chat", "--header", "X-Token: secret", url],
    "hello\r\nwörld ✓\n\nlast line without newline",
  );
  assertEquals(text.code, 0, text.stderr);
  assertEquals(
    text.stdout,
    "HELLO\nWÖRLD ✓\n\nLAST LINE WITHOUT NEWLINE\n",
  );
  assertEquals(text.stderr.split("\n"), [
    `connected to ${url} (protocol: chat, extensions: permessage-deflate)`,
    "closed: 1000 (normal closure)",
    "",
  ]);

  const binary = await runCli(["--binary", "--no-compression", url], "ab\n");
  assertEquals(binary.code, 0, binary.stderr);
  assertEquals(binary.stdout, "ab\n"); // raw bytes, then a newline
  assertMatch(binary.stderr, /^connected to \S+\n/); // no extensions

  assertEquals(seen, [
    {
      protocol: "chat",
      header: "secret",
      messages: ["hello", "wörld ✓", "", "last line without newline"],
    },
    { protocol: "", header: null, messages: [[97, 98]] },
  ]);
});

Deno.test("cli reports the server's close code and reason, and exits 1 unless it is normal", async () => {
  await using server = serve(
    { port: 0, hostname: "127.0.0.1" },
    async (socket) => {
      const writer = socket.writable.getWriter();
      await writer.write("welcome");
      writer.releaseLock();
      socket.close({ closeCode: 4000, reason: "room closed" });
      await socket.closed;
    },
  );
  const child = spawnCli([`ws://127.0.0.1:${server.addr.port}/`]);
  // stdin stays open, as at a terminal: the server's Close ends the client.
  const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
  const output = await child.output().finally(() => clearTimeout(timer));
  assertEquals(new TextDecoder().decode(output.stdout), "welcome\n");
  assertMatch(
    new TextDecoder().decode(output.stderr),
    /\nclosed: 4000 "room closed"\n$/,
  );
  assertEquals(output.code, 1);
});

Deno.test("cli explains a refused connection and a failed handshake, with exit status 1", async () => {
  const listener = Deno.listen({ port: 0, hostname: "127.0.0.1" });
  const { port } = listener.addr;
  listener.close(); // free a moment ago: nothing listens there now
  const refused = await runCli([`ws://127.0.0.1:${port}/`]);
  assertEquals(refused.code, 1);
  assertEquals(refused.stdout, "");
  assertMatch(
    refused.stderr,
    new RegExp(
      `^error: connection refused by ws://127\\.0\\.0\\.1:${port}/: is a WebSocket server listening there\\?`,
    ),
  );

  // An HTTP server that is not a WebSocket server.
  const http = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen: () => {} },
    () => new Response("no WebSocket here", { status: 404 }),
  );
  try {
    const failed = await runCli([`ws://127.0.0.1:${http.addr.port}/`]);
    assertEquals(failed.code, 1);
    assertMatch(
      failed.stderr,
      /^error: could not open a WebSocket to ws:\/\/127\.0\.0\.1:\d+\/: .*404/,
    );
  } finally {
    await http.shutdown();
  }

  const usage = await runCli(["--listen"]);
  assertEquals(usage.code, 2);
  assertEquals(
    usage.stderr,
    "error: expected a value after --listen, found nothing\n",
  );
  const help = await runCli(["--help"]);
  assertEquals(help.code, 0);
  assertMatch(help.stdout, /^Usage:\n/);
});

/** Starts `cli --listen 0 …` and resolves with its URL once it listens. */
async function startCliServer(args: string[]) {
  const child = spawnCli(["--listen", "0", ...args]);
  const killer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  const stderr = child.stderr.pipeThrough(new TextDecoderStream());
  const reader = stderr.getReader();
  let log = "";
  while (!log.includes("\n")) {
    const { value, done } = await within(20_000, reader.read(), "listening");
    if (done) break;
    log += value;
  }
  const url = /ws:\/\/\S+\//.exec(log)?.[0];
  if (url === undefined) throw new Error(`no URL in ${JSON.stringify(log)}`);
  return {
    url,
    async stop() {
      child.kill("SIGINT");
      while (true) {
        const { value, done } = await reader.read();
        if (done) break;
        log += value;
      }
      const status = await child.status;
      clearTimeout(killer);
      await child.stdout.cancel();
      await child.stdin.close();
      return { code: status.code, log };
    },
  };
}

Deno.test("cli --listen echoes to a client and logs each connection; Ctrl+C stops it with status 0", async () => {
  const server = await startCliServer(["--protocol", "chat"]);
  assertMatch(server.url, /^ws:\/\/127\.0\.0\.1:\d+\/$/);
  const socket = await connect(server.url + "path", { protocols: ["chat"] });
  assertEquals(socket.protocol, "chat");
  const writer = socket.writable.getWriter();
  await writer.write("echo me");
  await writer.write(new Uint8Array([1, 2, 3]));
  await writer.close();
  assertEquals(await Array.fromAsync(socket.readable), [
    "echo me",
    new Uint8Array([1, 2, 3]),
  ]);
  assertEquals((await socket.closed).closeCode, 1000);
  const { code, log } = await server.stop();
  assertEquals(code, 0);
  assertEquals(log.split("\n").slice(1), [
    "[1] connected: /path (protocol: chat, extensions: permessage-deflate)",
    "[1] closed: 1000 (normal closure)",
    "stopped",
    "",
  ]);
});

Deno.test("cli --listen --broadcast sends each message to every client; stopping it closes them with 1001", async () => {
  const server = await startCliServer(["--broadcast"]);
  const alice = await connect(server.url);
  const bob = await connect(server.url);
  const aliceReader = alice.readable.getReader();
  const bobReader = bob.readable.getReader();
  const aliceWriter = alice.writable.getWriter();
  // Bob may not be registered yet when the server logged nothing for him:
  // wait until a probe from Bob comes back to him.
  const bobWriter = bob.writable.getWriter();
  await bobWriter.write("bob here");
  assertEquals(
    (await within(5000, bobReader.read(), "probe")).value,
    "bob here",
  );
  assertEquals(
    (await within(5000, aliceReader.read(), "probe")).value,
    "bob here",
  );
  await aliceWriter.write("hi all");
  assertEquals((await within(5000, aliceReader.read(), "own")).value, "hi all");
  assertEquals((await within(5000, bobReader.read(), "bcast")).value, "hi all");

  // The server's Close 1001 ends both readables; closing the writables
  // answers it, which lets the server finish its closing handshakes.
  const stopping = server.stop();
  assertEquals((await within(5000, aliceReader.read(), "end")).done, true);
  assertEquals((await within(5000, bobReader.read(), "end")).done, true);
  await aliceWriter.close().catch(() => {});
  await bobWriter.close().catch(() => {});
  assertEquals((await alice.closed).closeCode, 1001);
  assertEquals((await bob.closed).closeCode, 1001);
  const { code, log } = await within(5000, stopping, "the server stopping");
  assertEquals(code, 0);
  assertMatch(
    log,
    /\n\[1\] closed: 1001 \(going away\) "server shutting down"\n/,
  );
});
