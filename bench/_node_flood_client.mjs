// One client of bench/node_flood.ts, run by Node: opens a connection to the
// echo server at URL, writes COUNT binary messages of SIZE bytes as fast as
// the mode allows, reads their COUNT echoes, and prints one JSON line with
// `msgs_per_s` over that time.
//
//   node _node_flood_client.mjs ws <ws/index.js> URL COUNT SIZE
//       npm ws: send() COUNT times, no callback
//   node _node_flood_client.mjs unawaited <mod.js> URL COUNT SIZE
//       wstream connect(): writer.write() COUNT times, none awaited
//   node _node_flood_client.mjs ready <mod.js> URL COUNT SIZE
//       wstream connect(): awaits writer.ready while desiredSize <= 0

const [mode, modulePath, url, countArg, sizeArg] = process.argv.slice(2);
const count = Number(countArg);
const payload = new Uint8Array(Number(sizeArg)).fill(7);
const module = await import(modulePath);
let elapsedMs;

if (mode === "ws") {
  const ws = new module.default(url, { perMessageDeflate: false });
  await new Promise((resolve, reject) => {
    ws.on("open", resolve);
    ws.on("error", reject);
  });
  let received = 0;
  const echoed = new Promise((resolve) =>
    ws.on("message", () => ++received === count && resolve())
  );
  const start = performance.now();
  for (let i = 0; i < count; i++) ws.send(payload);
  await echoed;
  elapsedMs = performance.now() - start;
  ws.close();
} else {
  const socket = await module.connect(url, { proxy: false });
  const writer = socket.writable.getWriter();
  const reader = socket.readable.getReader();
  const start = performance.now();
  const echoed = (async () => {
    for (let received = 0; received < count; received++) {
      if ((await reader.read()).done) throw new Error(`ended at ${received}`);
    }
  })();
  let last;
  for (let i = 0; i < count; i++) {
    if (mode === "ready" && writer.desiredSize <= 0) await writer.ready;
    last = writer.write(payload);
  }
  await echoed;
  elapsedMs = performance.now() - start;
  await last;
  reader.releaseLock();
  await writer.close();
  await socket.closed;
}
console.log(
  JSON.stringify({ msgs_per_s: Math.round(count / (elapsedMs / 1000)) }),
);
