// The core scenarios tests/runtimes_test.ts runs on Node and Bun, on the
// build of wstream (scripts/build_npm.ts): plain JavaScript, since Node 20
// cannot run TypeScript. It reports what it observed as one JSON line per
// scenario on stdout; the Deno test asserts on those lines and on what its
// own peer saw.
//
//   node core_scenarios.mjs client <mod.js> <ws-url>   # connect(), WebSocketStream
//   node core_scenarios.mjs server <mod.js>            # handleUpgrade on node:http
//   node core_scenarios.mjs codec <mod.js>             # the codec streams
//   node core_scenarios.mjs network <mod.js> <json>    # wss:, proxies, failures
//
// Every mode ends by itself within its time limit.

import { createServer } from "node:http";

const [mode, modPath, url] = process.argv.slice(2);
const wstream = await import(new URL(modPath, `file://${process.cwd()}/`).href);
const TIME_LIMIT_MS = 20_000;
const limit = setTimeout(() => {
  console.error(
    `core_scenarios ${mode}: still running after ${TIME_LIMIT_MS} ms`,
  );
  process.exit(2);
}, TIME_LIMIT_MS);

function report(value) {
  process.stdout.write(JSON.stringify(value) + "\n");
}

// What the reader gets: its messages, then how it ended.
async function readAll(readable, count) {
  const reader = readable.getReader();
  const messages = [];
  try {
    while (messages.length < count) {
      const { value, done } = await reader.read();
      if (done) break;
      messages.push(value);
    }
    return { messages };
  } catch (error) {
    return { messages, error: String(error?.message ?? error) };
  } finally {
    reader.releaseLock();
  }
}

// Messages of 1 to 9,000 bytes, each filled from its index.
function burst() {
  return Array.from({ length: 2000 }, (_, i) => {
    const bytes = new Uint8Array(1 + (i * 7919) % 9000);
    for (let j = 0; j < bytes.length; j++) bytes[j] = (i + j * 31) & 0xff;
    return bytes;
  });
}

function sameBytes(a, b) {
  return a instanceof Uint8Array && a.length === b.length &&
    a.every((byte, i) => byte === b[i]);
}

function shown(message) {
  return typeof message === "string" ? message : [...message];
}

async function clientScenarios() {
  const { connect, WebSocketStream } = wstream;

  // Echo: a text and a binary message, then the close handshake.
  {
    const socket = await connect(`${url}echo`, { proxy: false });
    const writer = socket.writable.getWriter();
    await writer.write("héllo");
    await writer.write(new Uint8Array([0, 1, 2, 250]));
    const { messages } = await readAll(socket.readable, 2);
    await writer.close();
    const closed = await socket.closed;
    report({ scenario: "echo", messages: messages.map(shown), closed });
  }

  // permessage-deflate: a compressible message both ways.
  {
    const socket = await connect(`${url}deflate`, { proxy: false });
    const writer = socket.writable.getWriter();
    const text = "abcd".repeat(25_000);
    await writer.write(text);
    const { messages } = await readAll(socket.readable, 1);
    await writer.close();
    await socket.closed;
    report({
      scenario: "deflate",
      extensions: socket.extensions,
      echoedIntact: messages[0] === text,
    });
  }

  // Close handshake started here, with a code and a reason.
  {
    const socket = await connect(`${url}close`, { proxy: false });
    socket.close({ closeCode: 4000, reason: "bye" });
    report({ scenario: "close", closed: await socket.closed });
  }

  // A message over maxMessageBytes: 1009, reading fails.
  {
    const socket = await connect(`${url}big`, {
      proxy: false,
      maxMessageBytes: 1024,
    });
    const { messages, error } = await readAll(socket.readable, 1);
    report({
      scenario: "limit",
      received: messages.length,
      error,
      closed: await socket.closed,
    });
  }

  // 2,000 messages of mixed sizes written without waiting: the frames are
  // masked into pooled buffers, reused once the runtime says a write is
  // done, so a runtime that still held them would corrupt later messages.
  {
    const socket = await connect(`${url}echo`, { proxy: false });
    const writer = socket.writable.getWriter();
    const sent = burst();
    const writes = sent.map((message) => writer.write(message));
    const { messages } = await readAll(socket.readable, sent.length);
    await Promise.all(writes);
    await writer.close();
    await socket.closed;
    report({
      scenario: "burst",
      count: messages.length,
      intact: messages.every((message, i) => sameBytes(message, sent[i])),
    });
  }

  // WebSocketStream, the WHATWG shape (which Node does not have).
  {
    const stream = new WebSocketStream(`${url}echo`);
    const { readable, writable, extensions } = await stream.opened;
    const writer = writable.getWriter();
    await writer.write("through WebSocketStream");
    const { messages } = await readAll(readable, 1);
    stream.close({ closeCode: 1000, reason: "done" });
    report({
      scenario: "websocketstream",
      messages: messages.map(shown),
      extensions,
      closed: await stream.closed,
    });
  }
}

// The WHATWG WebSocket class and reconnecting(), one echo each.
async function whatwgScenarios() {
  const { reconnecting, WebSocket } = wstream;
  const socket = new WebSocket(`${url}echo`);
  socket.binaryType = "arraybuffer";
  const events = [];
  await new Promise((resolve, reject) => {
    socket.onopen = () => {
      events.push("open");
      socket.send(new Uint8Array([7, 7]));
    };
    socket.onmessage = (event) => {
      events.push(["message", [...new Uint8Array(event.data)]]);
      socket.close(4002, "whatwg");
    };
    socket.onerror = () => reject(new Error("the WebSocket failed"));
    socket.onclose = (event) => {
      events.push(["close", event.code, event.reason, event.wasClean]);
      resolve();
    };
  });
  report({ scenario: "websocket", events });

  for await (
    const reconnected of reconnecting(`${url}echo`, { proxy: false })
  ) {
    const writer = reconnected.writable.getWriter();
    await writer.write("again");
    const { messages } = await readAll(reconnected.readable, 1);
    await writer.close();
    report({
      scenario: "reconnecting",
      messages,
      closed: await reconnected.closed,
    });
    break; // ends reconnecting()
  }
}

// Echo on handleUpgrade, with limits; reports each socket's end and how many
// bytes its TCP connection carried. Ends when stdin does.
async function serverScenarios() {
  const { handleUpgrade } = wstream;
  const server = createServer((_request, response) => response.end("page"));
  server.on("upgrade", (request, socket, head) => {
    const path = request.url;
    handleUpgrade(
      request,
      socket,
      head,
      { maxMessageBytes: 200_000 },
      async (ws) => {
        await ws.readable.pipeTo(ws.writable).catch(() => {});
        const closed = await ws.closed;
        report({
          event: "closed",
          path,
          extensions: ws.extensions,
          closed,
          bytesRead: socket.bytesRead,
        });
      },
    );
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  report({ event: "listening", port: server.address().port });
  process.stdin.resume();
  await new Promise((resolve) => process.stdin.on("end", resolve));
  server.close();
  server.closeAllConnections?.();
}

// The codec streams alone: client frames through the encoder, decoder and
// assembler (a fragmented text message with a ping inside, and a binary one).
async function codecScenarios() {
  const {
    FrameDecoderStream,
    FrameEncoderStream,
    MessageAssemblerStream,
    Opcode,
  } = wstream;
  const utf8 = (text) => new TextEncoder().encode(text);
  const frames = [
    { fin: false, rsv1: false, opcode: Opcode.Text, payload: utf8("frag") },
    { fin: true, rsv1: false, opcode: Opcode.Ping, payload: utf8("p") },
    {
      fin: true,
      rsv1: false,
      opcode: Opcode.Continuation,
      payload: utf8("mented"),
    },
    {
      fin: true,
      rsv1: false,
      opcode: Opcode.Binary,
      payload: new Uint8Array([9, 8, 7]),
    },
  ];
  const controlFrames = [];
  const wire = [];
  const messages = [];
  // Not ReadableStream.from: Bun 1.1 lacks it.
  await new ReadableStream({
    start(controller) {
      for (const frame of frames) controller.enqueue(frame);
      controller.close();
    },
  })
    .pipeThrough(new FrameEncoderStream({ role: "client" }))
    .pipeThrough(
      new TransformStream({
        transform(chunk, controller) {
          wire.push(...chunk);
          controller.enqueue(chunk);
        },
      }),
    )
    .pipeThrough(new FrameDecoderStream({ role: "server" }))
    .pipeThrough(
      new MessageAssemblerStream({
        onControlFrame: (frame) => controlFrames.push(frame.opcode),
      }),
    )
    .pipeTo(
      new WritableStream({
        write: (message) => void messages.push(shown(message)),
      }),
    );
  // RFC 6455 §5.3: a client masks every frame (the MASK bit of byte 1).
  report({
    scenario: "codec",
    messages,
    controlFrames,
    firstFrameMasked: (wire[1] & 0x80) !== 0,
  });
}

// Echoes one text message on an open socket and closes it.
async function echoOnce(socket, text) {
  const writer = socket.writable.getWriter();
  await writer.write(text);
  const { messages } = await readAll(socket.readable, 1);
  await writer.close();
  return { echoed: messages[0], closed: await socket.closed };
}

// What a rejected promise was rejected with.
async function failure(promise) {
  try {
    await promise;
    return { settled: "resolved" };
  } catch (error) {
    return {
      settled: "rejected",
      handshakeError: error instanceof wstream.WebSocketHandshakeError,
      message: String(error?.message ?? error),
      transient: error?.transient,
    };
  }
}

function thrown(run) {
  try {
    run();
    return { settled: "returned" };
  } catch (error) {
    return {
      settled: "threw",
      name: error?.name,
      message: String(error?.message),
    };
  }
}

// TLS (node:tls), HTTP CONNECT proxies (from the option and from
// HTTP_PROXY in process.env), and the failures connect() reports. The JSON
// argument has wssUrl, caCert, proxyUrl, plainUrl, refusedUrl and silentUrl
// (a server that accepts and never answers).
async function networkScenarios(config) {
  const { connect, serve, upgrade } = wstream;
  const { wssUrl, caCert, proxyUrl, plainUrl, refusedUrl, silentUrl } = config;
  report({
    scenario: "wss",
    ...await echoOnce(
      await connect(wssUrl, { caCerts: [caCert], proxy: false }),
      "over tls",
    ),
  });
  report({
    scenario: "untrusted certificate",
    ...await failure(connect(wssUrl, { proxy: false })),
  });
  // No proxy option: HTTP_PROXY (set by the test) applies to ws: URLs.
  report({
    scenario: "proxy from HTTP_PROXY",
    ...await echoOnce(await connect(plainUrl), "via env proxy"),
  });
  report({
    scenario: "wss through proxy",
    ...await echoOnce(
      await connect(wssUrl, { proxy: proxyUrl, caCerts: [caCert] }),
      "tls in tunnel",
    ),
  });
  report({
    scenario: "refused",
    ...await failure(connect(refusedUrl, { proxy: false })),
  });
  report({
    scenario: "silent server",
    ...await failure(
      connect(silentUrl, { proxy: false, handshakeTimeoutMs: 300 }),
    ),
  });
  report({
    scenario: "deno only",
    serve: thrown(() => serve({ port: 0 }, () => {})),
    upgrade: thrown(() =>
      upgrade(
        new Request("http://localhost/", {
          headers: {
            connection: "Upgrade",
            upgrade: "websocket",
            "sec-websocket-version": "13",
            "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
          },
        }),
      )
    ),
  });
}

try {
  if (mode === "client") {
    await clientScenarios();
    await whatwgScenarios();
  } else if (mode === "network") await networkScenarios(JSON.parse(url));
  else if (mode === "server") await serverScenarios();
  else if (mode === "codec") await codecScenarios();
  else {throw new Error(
      `expected the mode client, server or codec, found ${mode}`,
    );}
} catch (error) {
  console.error(`core_scenarios ${mode} failed:`, error);
  process.exitCode = 1;
} finally {
  clearTimeout(limit);
}
