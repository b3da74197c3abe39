/**
 * Compression engines for permessage-deflate (RFC 7692), side by side on
 * 16 KiB JSON-like text messages:
 *
 * - `CompressionStream("deflate-raw")` / `DecompressionStream`: one stream per
 *   message (they cannot sync-flush, so no context takeover, and they cannot
 *   set window bits);
 * - `node:zlib` streams (`createDeflateRaw` + `flush(Z_SYNC_FLUSH)`), one
 *   deflater and one inflater kept across messages (context takeover);
 * - `node:zlib` one-shot `deflateRawSync` / `inflateRawSync` with
 *   `finishFlush: Z_SYNC_FLUSH` (no context takeover);
 * - wstream's `createMessageDeflate` (what the connection uses).
 *
 * Run: `deno task bench bench/deflate_bench.ts`
 * (or `deno bench --import-map=import_map.npm.json -A bench/deflate_bench.ts`).
 *
 * @module
 */
import zlib from "node:zlib";
import { Buffer } from "node:buffer";
import { jsonLikeText } from "./_json_like_text.ts";
import { createMessageDeflate } from "../src/permessage_deflate_codec.ts";
import type { NegotiatedDeflate } from "../src/permessage_deflate.ts";

const DEFAULT_PARAMS: NegotiatedDeflate = {
  serverNoContextTakeover: false,
  clientNoContextTakeover: false,
  serverMaxWindowBits: 15,
  clientMaxWindowBits: 15,
};

// Distinct messages (a context-takeover deflater would otherwise match a
// repeated message against its own window and look unrealistically fast).
const messages = Array.from(
  { length: 64 },
  (_, i) => new TextEncoder().encode(jsonLikeText(16 * 1024, i + 1)),
);
let next = 0;
/** The next of the 64 distinct 16 KiB messages. */
function nextMessage(): Uint8Array<ArrayBuffer> {
  next = (next + 1) % messages.length;
  return messages[next];
}

const TRAILER = new Uint8Array([0x00, 0x00, 0xff, 0xff]);

async function collect(
  stream: ReadableStream<Uint8Array>,
): Promise<Uint8Array<ArrayBuffer>> {
  const chunks: Uint8Array[] = [];
  let length = 0;
  for await (const chunk of stream) {
    chunks.push(chunk);
    length += chunk.length;
  }
  const out = new Uint8Array(length);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

function webDeflate(
  data: Uint8Array<ArrayBuffer>,
): Promise<Uint8Array<ArrayBuffer>> {
  return collect(
    ReadableStream.from([data]).pipeThrough(
      new CompressionStream("deflate-raw"),
    ),
  );
}

function webInflate(
  data: Uint8Array<ArrayBuffer>,
): Promise<Uint8Array<ArrayBuffer>> {
  return collect(
    ReadableStream.from([data]).pipeThrough(
      new DecompressionStream("deflate-raw"),
    ),
  );
}

type ZlibStream = zlib.DeflateRaw | zlib.InflateRaw;

function zlibStreamRun(
  stream: ZlibStream,
  data: Uint8Array,
): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const onData = (chunk: Buffer) => chunks.push(chunk);
    stream.on("data", onData);
    stream.once("error", reject);
    stream.write(data);
    stream.flush(zlib.constants.Z_SYNC_FLUSH, () => {
      stream.off("data", onData);
      stream.off("error", reject);
      resolve(Buffer.concat(chunks));
    });
  });
}

const SYNC_FLUSH = { finishFlush: zlib.constants.Z_SYNC_FLUSH };

// Compressed forms of every message, for the inflate group.
const webCompressed: Uint8Array<ArrayBuffer>[] = [];
const syncCompressed: Uint8Array[] = [];
const takeoverCompressed: Uint8Array[] = [];
const takeoverDeflater = zlib.createDeflateRaw({ windowBits: 15 });
for (const m of messages) {
  webCompressed.push(await webDeflate(m));
  syncCompressed.push(
    Buffer.concat([zlib.deflateRawSync(m, SYNC_FLUSH), TRAILER]),
  );
  takeoverCompressed.push(await zlibStreamRun(takeoverDeflater, m));
}
takeoverDeflater.close();
const total = (list: Uint8Array[]) => list.reduce((n, b) => n + b.length, 0);
console.log(
  `64 distinct 16 KiB JSON-like messages (${total(messages)} B): ` +
    `CompressionStream per message ${total(webCompressed)} B, ` +
    `zlib per message ${total(syncCompressed) - 4 * messages.length} B, ` +
    `zlib context takeover ${total(takeoverCompressed)} B`,
);

Deno.bench("CompressionStream deflate-raw (per message)", {
  group: "deflate 16 KiB",
}, async () => {
  await webDeflate(nextMessage());
});

const zlibDeflater = zlib.createDeflateRaw({ windowBits: 15 });
Deno.bench("node:zlib stream + Z_SYNC_FLUSH (context takeover)", {
  group: "deflate 16 KiB",
  baseline: true,
}, async () => {
  await zlibStreamRun(zlibDeflater, nextMessage());
});

Deno.bench("node:zlib deflateRawSync (no context takeover)", {
  group: "deflate 16 KiB",
}, () => {
  zlib.deflateRawSync(nextMessage(), SYNC_FLUSH);
});

Deno.bench("DecompressionStream deflate-raw (per message)", {
  group: "inflate 16 KiB",
}, async () => {
  await webInflate(webCompressed[nextMessage() && next]);
});

// Context takeover: the 64 messages are one deflate stream, inflated in
// order by one inflater; a new inflater starts each round of 64.
let takeoverInflater = zlib.createInflateRaw({ windowBits: 15 });
let takeoverIndex = 0;
Deno.bench("node:zlib stream + Z_SYNC_FLUSH (context takeover)", {
  group: "inflate 16 KiB",
  baseline: true,
}, async () => {
  if (takeoverIndex === takeoverCompressed.length) {
    takeoverInflater.close();
    takeoverInflater = zlib.createInflateRaw({ windowBits: 15 });
    takeoverIndex = 0;
  }
  await zlibStreamRun(takeoverInflater, takeoverCompressed[takeoverIndex++]);
});

Deno.bench("node:zlib inflateRawSync (no context takeover)", {
  group: "inflate 16 KiB",
}, () => {
  zlib.inflateRawSync(syncCompressed[nextMessage() && next], SYNC_FLUSH);
});

// What the connection runs: wstream's codec, a client deflating and a server
// inflating each message (context takeover, the default), against the Web
// streams doing the same one message at a time.
const codecClient = createMessageDeflate(DEFAULT_PARAMS, "client", {
  threshold: 0,
});
const codecServer = createMessageDeflate(DEFAULT_PARAMS, "server");

Deno.bench("wstream createMessageDeflate (node:zlib, context takeover)", {
  group: "round trip 16 KiB",
  baseline: true,
}, async () => {
  const payload = await codecClient.deflate(nextMessage());
  await codecServer.inflater.inflate(payload!, true, 1 << 20);
});

Deno.bench("CompressionStream + DecompressionStream (per message)", {
  group: "round trip 16 KiB",
}, async () => {
  await webInflate(await webDeflate(nextMessage()));
});
