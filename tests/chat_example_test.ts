import { assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import { startChat } from "../examples/chat.ts";
import { connect } from "../mod.ts";
import { type ChatPage, logLines, logShows } from "./_chat_page.ts";
import {
  chromiumAvailable,
  launchChromium,
  requirePeer,
} from "./interop/_peers.ts";
import { within } from "./_socket_util.ts";

/** The page's `document`, as seen by the functions given to `evaluate`. */
declare const document: {
  querySelectorAll(selector: string): ArrayLike<unknown>;
  getElementById(id: string): { textContent: string | null } | null;
};

const hasChromium = await chromiumAvailable();

Deno.test("examples/chat.ts serves its page and the WebSocket on one port, and refuses other paths", async () => {
  await using chat = startChat({ port: 0 });
  assertMatch(chat.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
  const page = await fetch(chat.url);
  assertEquals(page.status, 200);
  assertStringIncludes(await page.text(), "<title>wstream chat</title>");
  const missing = await fetch(new URL("/nope", chat.url));
  assertEquals(missing.status, 404);
  await missing.body?.cancel();

  const wsUrl = chat.url.replace("http:", "ws:");
  const wrongPath = await connect(wsUrl + "elsewhere");
  await wrongPath.readable.pipeTo(new WritableStream());
  await wrongPath.writable.close();
  assertEquals(await wrongPath.closed, {
    closeCode: 1008,
    reason: "the chat is at /ws",
    wasClean: true,
  });
});

Deno.test("examples/chat.ts broadcasts messages, joins and leaves to wstream clients", async () => {
  await using chat = startChat({ port: 0 });
  const wsUrl = chat.url.replace("http:", "ws:") + "ws";
  const alice = await connect(wsUrl);
  const aliceEvents = alice.readable.getReader();
  const next = async (reader: ReadableStreamDefaultReader<unknown>) =>
    JSON.parse(
      (await within(5000, reader.read(), "a chat event")).value as string,
    );
  assertEquals(await next(aliceEvents), {
    type: "welcome",
    name: "guest 1",
    room: "lobby",
    online: 1,
  });
  assertEquals(await next(aliceEvents), {
    type: "join",
    name: "guest 1",
    online: 1,
  });

  const bob = await connect(wsUrl);
  const bobEvents = bob.readable.getReader();
  assertEquals((await next(bobEvents)).type, "welcome");
  assertEquals(await next(aliceEvents), {
    type: "join",
    name: "guest 2",
    online: 2,
  });

  const bobWriter = bob.writable.getWriter();
  await bobWriter.write(JSON.stringify({ text: "  hi alice  " }));
  await bobWriter.write("not json is ignored");
  await bobWriter.write(JSON.stringify({ text: "   " })); // blank: ignored
  const expected = { type: "message", name: "guest 2", text: "hi alice" };
  assertEquals(await next(aliceEvents), expected);
  assertEquals((await next(bobEvents)).type, "join"); // bob's own join
  assertEquals(await next(bobEvents), expected);

  await bobWriter.close();
  await bobEvents.cancel();
  assertEquals((await bob.closed).closeCode, 1000);
  assertEquals(await next(aliceEvents), {
    type: "leave",
    name: "guest 2",
    online: 1,
  });

  await chat.shutdown();
  assertEquals((await within(5000, aliceEvents.read(), "the end")).done, true);
  assertEquals((await alice.closed).closeCode, 1001);
});

Deno.test("examples/chat.ts drops a page that stops reading and announces its leave; the others keep chatting", async () => {
  await using chat = startChat({ port: 0, closeTimeoutMs: 200 });
  const wsUrl = chat.url.replace("http:", "ws:") + "ws";
  // The sleeper never reads: its TCP buffers fill, then the server's queue.
  const sleeper = await connect(wsUrl, { closeTimeoutMs: 200 });
  const talker = await connect(wsUrl);
  const events = talker.readable.getReader();
  const writer = talker.writable.getWriter();
  // Random text, so permessage-deflate cannot shrink it.
  const randomText = () =>
    Array.from(
      crypto.getRandomValues(new Uint8Array(1200)),
      (byte) => byte.toString(36),
    ).join("").slice(0, 2000);
  let leave: unknown;
  // The talker reads its own broadcasts back, 20 at a time, so only the
  // sleeper falls behind. At most 20 MB; the sleeper goes long before.
  for (let round = 0; round < 500 && leave === undefined; round++) {
    for (let i = 0; i < 20; i++) {
      await writer.write(JSON.stringify({ text: randomText() }));
    }
    let echoed = 0;
    while (echoed < 20) {
      const { value, done } = await within(
        10_000,
        events.read(),
        "the talker's broadcasts",
      );
      if (done) throw new Error("the talker's socket ended");
      const event = JSON.parse(value as string);
      if (event.type === "message") echoed++;
      if (event.type === "leave") leave = event;
    }
  }
  assertEquals(leave, { type: "leave", name: "guest 1", online: 1 });

  await sleeper.readable.cancel();
  const sleeperEnd = await within(10_000, sleeper.closed, "the sleeper's end");
  assertEquals(sleeperEnd.wasClean, false); // it never answered in time
  await writer.close();
  await events.cancel();
  assertEquals((await talker.closed).closeCode, 1000);
});

Deno.test("examples/chat.ts in headless Chromium: a message typed in one page appears in the other", async () => {
  if (!requirePeer("chromium", hasChromium, "apt-get install chromium")) {
    return;
  }
  await using chat = startChat({ port: 0 });
  await using browser = await launchChromium();
  const shots = await Deno.makeTempDir({ prefix: "wstream-chat-" });

  const alice = await browser.newPage() as ChatPage;
  await alice.setViewportSize({ width: 720, height: 480 });
  await alice.goto(chat.url);
  await logShows(alice, "You joined as guest 1.");

  const bob = await browser.newPage() as ChatPage;
  await bob.setViewportSize({ width: 720, height: 480 });
  await bob.goto(chat.url);
  await logShows(bob, "You joined as guest 2.");
  await logShows(alice, "guest 2 joined.");

  await alice.fill("#text", "Hello from Alice <b>not bold</b>");
  await alice.press("#text", "Enter");
  await logShows(bob, "Hello from Alice <b>not bold</b>");
  await bob.fill("#text", "Grüße, Alice! Bob here");
  await bob.click("#send");
  await logShows(alice, "Bob here");

  // The message is shown as text, never parsed as HTML.
  assertEquals(
    await bob.evaluate(() => document.querySelectorAll("#log b").length, 0),
    0,
  );
  const screenshot = `${shots}/chat.png`;
  await alice.screenshot({ path: screenshot });
  console.log(`chat screenshot: ${screenshot}`);

  await bob.close();
  await logShows(alice, "guest 2 left.");
  assertEquals(await logLines(alice), [
    "You joined as guest 1.",
    "guest 2 joined.",
    "guest 1Hello from Alice <b>not bold</b>",
    "guest 2Grüße, Alice! Bob here",
    "guest 2 left.",
  ]);
  assertEquals(
    await alice.evaluate(
      () => document.getElementById("status")?.textContent,
      0,
    ),
    "guest 1 · 1 online",
  );
  await alice.close();
});
