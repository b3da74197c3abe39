// deno task start                      (then open the URL it prints)
// deno run -A examples/chat.ts --port 8080 --hostname 127.0.0.1
//
// A chat room for browsers. One server on one port serves the page (through
// `fallback`) and the WebSocket at /ws; every message is broadcast to every
// connected page, and joins and leaves are announced. Open the URL in two
// tabs and talk to yourself.
//
// The wire format is JSON text messages:
//   page → server  {"text": "hi"}
//   server → page  {"type": "welcome", "name": "guest 1", "online": 1}
//                  {"type": "join" | "leave", "name": "guest 2", "online": 2}
//                  {"type": "message", "name": "guest 1", "text": "hi"}

import { serve, type WebSocketConnection } from "../mod.ts";

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
  const members = new Map<
    WritableStreamDefaultWriter<string>,
    { name: string; socket: WebSocketConnection }
  >();
  let guests = 0;

  /** Sends event to one page. A page that stopped reading is disconnected
   * (1013, try again later) instead of growing our memory without bound. */
  function send(writer: WritableStreamDefaultWriter<string>, event: object) {
    const member = members.get(writer);
    if (member === undefined) return;
    if ((writer.desiredSize ?? 0) < 0) {
      // Its handler below announces the leave once the socket has closed.
      try {
        member.socket.close({ closeCode: 1013, reason: "too slow" });
      } catch {
        // Closing already.
      }
      return;
    }
    writer.write(JSON.stringify(event)).catch(() => {
      // The socket failed; its handler below notices and says goodbye.
    });
  }

  function broadcast(event: object) {
    for (const writer of [...members.keys()]) send(writer, event);
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
    if (new URL(request.url).pathname !== "/ws") {
      socket.close({ closeCode: 1008, reason: "the chat is at /ws" });
      return;
    }
    const name = `guest ${++guests}`;
    const writer = socket.writable.getWriter();
    members.set(writer, { name, socket });
    send(writer, { type: "welcome", name, online: members.size });
    broadcast({ type: "join", name, online: members.size });
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
        broadcast({
          type: "message",
          name,
          text: text.trim().slice(0, MAX_TEXT_LENGTH),
        });
      }
    } catch {
      // The page went away without a clean close; announce it all the same.
    } finally {
      const wasMember = members.delete(writer);
      if (wasMember) {
        broadcast({ type: "leave", name, online: members.size });
      }
      // Completes the close handshake (or ends a failed socket).
      await writer.close().catch(() => {});
    }
  });

  return {
    url: pageUrl(hostname, server.addr.port),
    shutdown: () => server.shutdown(),
    finished: server.finished,
    [Symbol.asyncDispose]: () => server.shutdown(),
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
  const socket = new WebSocket(scheme + "//" + location.host + "/ws");
  socket.onmessage = (event) => {
    const data = JSON.parse(event.data);
    if (data.type === "welcome") {
      me = data.name;
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
  // Ctrl+C shuts down gracefully: every page gets Close 1001.
  const controller = new AbortController();
  const onInterrupt = () => controller.abort();
  Deno.addSignalListener("SIGINT", onInterrupt);
  const chat = startChat({
    port,
    hostname: flag(Deno.args, "hostname") ?? "127.0.0.1",
    signal: controller.signal,
    onListen: (url) => console.log(`wstream chat: open ${url} in two tabs`),
  });
  await chat.finished;
  Deno.removeSignalListener("SIGINT", onInterrupt);
}
