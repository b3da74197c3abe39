// deno task start                      (then open the URL it prints)
// deno run -A examples/chat.ts --port 8080 --hostname 127.0.0.1
// deno run -A examples/chat.ts --port 8081 --redis redis://127.0.0.1:6379
//
// Chat rooms for browsers. One server on one port serves the page (through
// `fallback`) and the WebSocket at /ws?room=NAME; each room is a topic of a
// `Hub`, so every message is framed once and sent to every page in the
// room, and joins and leaves are announced. Open the URL in two tabs and
// talk to yourself; add ?room=NAME for another room. With --redis, every
// chat process on the same Redis is one chat: start two on two ports.
//
// The wire format is JSON text messages:
//   page → server  {"text": "hi"}
//   server → page  {"type": "welcome", "name": "guest 1", "room": "lobby",
//                   "online": 1}
//                  {"type": "join" | "leave", "name": "guest 2", "online": 2}
//   ("online" counts the pages in the room on the server that sent it.)
//                  {"type": "message", "name": "guest 1", "text": "hi"}

import { type Backplane, Hub, serve } from "../mod.ts";
import { redisBackplane } from "../src/redis_backplane.ts";

/** Options of {@linkcode startChat}. */
export interface ChatOptions {
  /** The port to listen on (default 8080; 0 picks a free one). */
  port?: number;
  /** The address to listen on (default "127.0.0.1"). */
  hostname?: string;
  /** Called once the server listens, with the page's URL. */
  onListen?: (url: string) => void;
  /** Aborting it shuts the server down (every page gets Close 1001). */
  signal?: AbortSignal;
  /** How long a closing page has to answer our Close (default 5000 ms). */
  closeTimeoutMs?: number;
  /** Shares the rooms with other chat processes (e.g. through Redis). */
  backplane?: Backplane;
  /** Added to guest names, to tell apart guests of several processes. */
  nameTag?: string;
}

/** A running chat server. */
export interface ChatServer extends AsyncDisposable {
  /** The page's URL, e.g. `http://127.0.0.1:8080/`. */
  readonly url: string;
  /** Stops accepting and closes every socket with 1001. */
  shutdown(): Promise<void>;
  /** Resolves when the server has stopped. */
  readonly finished: Promise<void>;
}

/** The longest chat line kept, in UTF-16 code units; longer ones are cut. */
const MAX_TEXT_LENGTH = 2000;
/** The longest room name kept; longer ones are cut. */
const MAX_ROOM_LENGTH = 100;

/** The room a URL asks for: its `room` parameter, "lobby" by default. */
function roomOf(url: URL): string {
  return url.searchParams.get("room")?.trim().slice(0, MAX_ROOM_LENGTH) ||
    "lobby";
}

/**
 * Starts the chat server.
 *
 * @example
 * ```ts ignore
 * await using chat = startChat({ port: 0 });
 * console.log(`open ${chat.url}`);
 * ```
 */
export function startChat(options: ChatOptions = {}): ChatServer {
  const hostname = options.hostname ?? "127.0.0.1";
  // Slow pages: the hub closes a page that stopped reading with 1013 (try
  // again later) once 1 MiB waits for it, instead of growing our memory.
  const hub = new Hub({ backplane: options.backplane });
  let guests = 0;

  // Everyone in the room, on every process, gets it.
  function broadcast(room: string, event: object) {
    hub.publish(room, JSON.stringify(event));
  }

  const server = serve({
    port: options.port ?? 8080,
    hostname,
    signal: options.signal,
    // Chat lines are short: refuse anything bigger than 64 KiB (1009).
    maxMessageBytes: 64 * 1024,
    closeTimeoutMs: options.closeTimeoutMs,
    // Pages that vanish without a Close (a closed laptop) are noticed.
    pingIntervalMs: 30_000,
    onListen: ({ port }) => options.onListen?.(pageUrl(hostname, port)),
    fallback: (request) => {
      const { pathname } = new URL(request.url);
      if (pathname !== "/" || request.method !== "GET") {
        return new Response("not found\n", { status: 404 });
      }
      return new Response(PAGE, {
        headers: { "content-type": "text/html; charset=utf-8" },
      });
    },
  }, async (socket, request) => {
    const url = new URL(request.url);
    if (url.pathname !== "/ws") {
      socket.close({ closeCode: 1008, reason: "the chat is at /ws" });
      return;
    }
    const room = roomOf(url);
    const name = `guest ${++guests}${options.nameTag ?? ""}`;
    const writer = socket.writable.getWriter();
    // "online" counts this server's pages in the room.
    const online = () => hub.subscriberCount(room);
    try {
      await writer.write(
        JSON.stringify({ type: "welcome", name, room, online: online() + 1 }),
      );
    } catch {
      return; // gone already
    }
    hub.subscribe(socket, room); // and unsubscribed when it closes
    broadcast(room, { type: "join", name, online: online() });
    try {
      for await (const data of socket.readable) {
        if (typeof data !== "string") continue; // the page sends text only
        let text: unknown;
        try {
          text = JSON.parse(data).text;
        } catch {
          continue; // not JSON: ignore it rather than fail the socket
        }
        if (typeof text !== "string" || text.trim() === "") continue;
        broadcast(room, {
          type: "message",
          name,
          text: text.trim().slice(0, MAX_TEXT_LENGTH),
        });
      }
    } catch {
      // The page went away without a clean close; announce it all the same.
    } finally {
      hub.unsubscribe(socket, room);
      broadcast(room, { type: "leave", name, online: online() });
      // Completes the close handshake (or ends a failed socket).
      await writer.close().catch(() => {});
    }
  });

  const shutdown = async () => {
    await server.shutdown();
    await hub.close();
  };
  return {
    url: pageUrl(hostname, server.addr.port),
    shutdown,
    finished: server.finished.then(() => hub.close()),
    [Symbol.asyncDispose]: shutdown,
  };
}

function pageUrl(hostname: string, port: number): string {
  const host = hostname.includes(":") ? `[${hostname}]` : hostname;
  // 0.0.0.0 listens everywhere, but a browser cannot open it.
  const shown = host === "0.0.0.0" || host === "[::]" ? "localhost" : host;
  return `http://${shown}:${port}/`;
}

/** Reads `--name value` or `--name=value` from args. */
function flag(args: string[], name: string): string | undefined {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === `--${name}`) return args[i + 1];
    if (args[i].startsWith(`--${name}=`)) {
      return args[i].slice(name.length + 3);
    }
  }
  return undefined;
}

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>wstream chat</title>
<style>
  * { box-sizing: border-box; }
  body { margin: 0; font: 16px/1.4 system-ui, sans-serif; background: #f4f5f7;
    color: #1d2330; display: flex; flex-direction: column; height: 100vh; }
  header { padding: 12px 20px; background: #263248; color: #fff;
    display: flex; justify-content: space-between; align-items: baseline; }
  header h1 { margin: 0; font-size: 20px; }
  #status { font-size: 14px; opacity: 0.85; }
  #log { flex: 1; overflow-y: auto; margin: 0; padding: 16px 20px;
    list-style: none; }
  #log li { margin: 6px 0; max-width: 42em; }
  #log li.message { background: #fff; padding: 8px 12px; border-radius: 8px;
    box-shadow: 0 1px 2px rgba(0,0,0,0.08); }
  #log li.mine { background: #dcebff; }
  #log li.notice { color: #667085; font-style: italic; font-size: 14px; }
  #log .name { font-weight: 600; margin-right: 8px; }
  form { display: flex; gap: 8px; padding: 12px 20px; background: #fff;
    border-top: 1px solid #dde1e7; }
  #text { flex: 1; padding: 10px 12px; font: inherit; border: 1px solid #c4cad4;
    border-radius: 6px; }
  button { padding: 10px 18px; font: inherit; border: 0; border-radius: 6px;
    background: #2f6fed; color: #fff; cursor: pointer; }
  button:disabled { background: #a9b4c6; cursor: default; }
</style>
</head>
<body>
<header><h1>wstream chat</h1><span id="status">connecting…</span></header>
<ul id="log"></ul>
<form id="form">
  <input id="text" autocomplete="off" placeholder="Say something" maxlength="${MAX_TEXT_LENGTH}" disabled>
  <button id="send" disabled>Send</button>
</form>
<script>
  const log = document.getElementById("log");
  const status = document.getElementById("status");
  const input = document.getElementById("text");
  const button = document.getElementById("send");
  let me = "";

  function add(className, name, text) {
    const item = document.createElement("li");
    item.className = className;
    if (name) {
      const who = document.createElement("span");
      who.className = "name";
      who.textContent = name;
      item.append(who);
    }
    item.append(text); // text, never HTML
    log.append(item);
    item.scrollIntoView({ block: "end" });
  }

  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const room = new URLSearchParams(location.search).get("room") || "lobby";
  const socket = new WebSocket(
    scheme + "//" + location.host + "/ws?room=" + encodeURIComponent(room));
  socket.onmessage = (event) => {
    const data = JSON.parse(event.data);
    if (data.type === "welcome") {
      me = data.name;
      document.querySelector("h1").textContent = "wstream chat · #" + data.room;
      input.disabled = button.disabled = false;
      input.focus();
    } else if (data.type === "message") {
      add(data.name === me ? "message mine" : "message", data.name, data.text);
    } else if (data.type === "join") {
      add("notice", "", data.name === me
        ? "You joined as " + me + "."
        : data.name + " joined.");
    } else if (data.type === "leave") {
      add("notice", "", data.name + " left.");
    }
    if ("online" in data) {
      status.textContent = me + " · " + data.online + " online";
    }
  };
  socket.onclose = (event) => {
    input.disabled = button.disabled = true;
    status.textContent = "disconnected";
    add("notice", "", "Disconnected (" + event.code +
      (event.reason ? ", " + event.reason : "") + ").");
  };
  document.getElementById("form").onsubmit = (event) => {
    event.preventDefault();
    if (input.value.trim() === "") return;
    socket.send(JSON.stringify({ text: input.value }));
    input.value = "";
  };
</script>
</body>
</html>
`;

if (import.meta.main) {
  const portText = flag(Deno.args, "port") ?? "8080";
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port > 65535) {
    console.error(
      `expected --port to be a number from 0 to 65535, found ${
        JSON.stringify(portText)
      }`,
    );
    Deno.exit(2);
  }
  // --redis URL: every chat process on that Redis shares the rooms.
  const redisUrl = flag(Deno.args, "redis");
  let backplane: Backplane | undefined;
  if (redisUrl !== undefined) {
    try {
      backplane = await redisBackplane({ url: redisUrl });
    } catch (error) {
      console.error((error as Error).message);
      Deno.exit(1);
    }
  }
  // Ctrl+C shuts down gracefully: every page gets Close 1001.
  const controller = new AbortController();
  const onInterrupt = () => controller.abort();
  Deno.addSignalListener("SIGINT", onInterrupt);
  const chat = startChat({
    port,
    hostname: flag(Deno.args, "hostname") ?? "127.0.0.1",
    signal: controller.signal,
    backplane,
    // Guests of several processes are told apart by their server's port.
    nameTag: backplane ? ` (:${port})` : undefined,
    onListen: (url) => console.log(`wstream chat: open ${url} in two tabs`),
  });
  await chat.finished;
  Deno.removeSignalListener("SIGINT", onInterrupt);
}
