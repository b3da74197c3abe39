import {
  assert,
  assertEquals,
  assertInstanceOf,
  assertRejects,
  assertThrows,
} from "@std/assert";
import zlib from "node:zlib";
import {
  acceptDeflateOffer,
  acceptDeflateResponse,
  createDeflateOffer,
  type NegotiatedDeflate,
  type PerMessageDeflateOptions,
  resolveCompression,
} from "../src/permessage_deflate.ts";
import { createMessageDeflate } from "../src/permessage_deflate_codec.ts";
import type { MessageInflater } from "../src/message_assembler.ts";
import { WebSocketError } from "../src/websocket_error.ts";

const DEFAULT_PARAMS: NegotiatedDeflate = {
  serverNoContextTakeover: false,
  clientNoContextTakeover: false,
  serverMaxWindowBits: 15,
  clientMaxWindowBits: 15,
};
const NO_TAKEOVER: NegotiatedDeflate = {
  ...DEFAULT_PARAMS,
  serverNoContextTakeover: true,
  clientNoContextTakeover: true,
};
const TAIL = new Uint8Array([0x00, 0x00, 0xff, 0xff]);
const SYNC_FLUSH = { finishFlush: zlib.constants.Z_SYNC_FLUSH };

/** Deterministic bytes: `compressible` repeats words, otherwise noise. */
function sample(length: number, seed: number, compressible = true): Uint8Array {
  let state = seed >>> 0 || 1;
  const random = () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return state >>> 0;
  };
  const bytes = new Uint8Array(length);
  if (!compressible) {
    for (let i = 0; i < length; i++) bytes[i] = random() & 0xff;
    return bytes;
  }
  const words = ['{"id":', '"name":"', "alpha", "bravo", '",', "}", "42", " "];
  const encoder = new TextEncoder();
  let offset = 0;
  while (offset < length) {
    const word = encoder.encode(words[random() % words.length]);
    bytes.set(word.subarray(0, length - offset), offset);
    offset += word.length;
  }
  return bytes;
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const result = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    result.set(chunk, offset);
    offset += chunk.length;
  }
  return result;
}

function withTail(payload: Uint8Array): Uint8Array {
  return concat([payload, TAIL]);
}

/** Inflates a compressed payload split into `pieces` frames. */
async function inflateInPieces(
  inflater: MessageInflater,
  payload: Uint8Array,
  pieces: number,
  maxBytes = 1 << 30,
): Promise<Uint8Array> {
  const size = Math.max(1, Math.ceil(payload.length / pieces));
  const outputs: Uint8Array[] = [];
  for (
    let offset = 0;
    offset < payload.length || offset === 0;
    offset += size
  ) {
    const end = Math.min(payload.length, offset + size);
    outputs.push(
      await inflater.inflate(
        payload.subarray(offset, end),
        end === payload.length,
        maxBytes,
      ),
    );
    if (payload.length === 0) break;
  }
  return concat(outputs);
}

// ---------------------------------------------------------------- negotiation

type Offer = {
  serverNoContextTakeover: boolean;
  clientNoContextTakeover: boolean;
  serverMaxWindowBits?: number;
  clientMaxWindowBits?: number | true;
};

function offerHeader(offer: Offer): string {
  const parts = ["permessage-deflate"];
  if (offer.serverNoContextTakeover) parts.push("server_no_context_takeover");
  if (offer.clientNoContextTakeover) parts.push("client_no_context_takeover");
  if (offer.serverMaxWindowBits !== undefined) {
    parts.push(`server_max_window_bits=${offer.serverMaxWindowBits}`);
  }
  if (offer.clientMaxWindowBits === true) parts.push("client_max_window_bits");
  else if (offer.clientMaxWindowBits !== undefined) {
    parts.push(`client_max_window_bits=${offer.clientMaxWindowBits}`);
  }
  return parts.join("; ");
}

function* allOffers(): Generator<Offer> {
  const bits = [undefined, 8, 9, 10, 11, 12, 13, 14, 15];
  for (const serverNoContextTakeover of [false, true]) {
    for (const clientNoContextTakeover of [false, true]) {
      for (const serverMaxWindowBits of bits) {
        for (const clientMaxWindowBits of [...bits, true as const]) {
          yield {
            serverNoContextTakeover,
            clientNoContextTakeover,
            serverMaxWindowBits,
            clientMaxWindowBits,
          };
        }
      }
    }
  }
}

Deno.test("acceptDeflateOffer() accepts every valid combination of the four parameters (RFC 7692 §7.1)", () => {
  let count = 0;
  for (const offer of allOffers()) {
    const header = offerHeader(offer);
    const accepted = acceptDeflateOffer(header, {})!;
    assert(accepted, `declined ${header}`);
    const expected: NegotiatedDeflate = {
      serverNoContextTakeover: offer.serverNoContextTakeover,
      clientNoContextTakeover: offer.clientNoContextTakeover,
      serverMaxWindowBits: offer.serverMaxWindowBits ?? 15,
      clientMaxWindowBits: typeof offer.clientMaxWindowBits === "number"
        ? offer.clientMaxWindowBits
        : 15,
    };
    assertEquals(accepted.params, expected, header);
    // The response answers exactly what was asked (a bare
    // client_max_window_bits needs no answer).
    assertEquals(
      accepted.response,
      offerHeader({
        ...offer,
        clientMaxWindowBits: offer.clientMaxWindowBits === true
          ? undefined
          : offer.clientMaxWindowBits,
      }),
      header,
    );
    // A client accepts the response and agrees on the parameters.
    assertEquals(
      acceptDeflateResponse(accepted.response, {}),
      expected,
      header,
    );
    count++;
  }
  assertEquals(count, 360);
});

Deno.test("client and server agree for every combination of options on both sides", () => {
  const optionSets: PerMessageDeflateOptions[] = [];
  for (const serverNoContextTakeover of [false, true]) {
    for (const clientNoContextTakeover of [false, true]) {
      for (const serverMaxWindowBits of [undefined, 8, 12, 15]) {
        for (const clientMaxWindowBits of [undefined, 8, 12, 15]) {
          optionSets.push({
            serverNoContextTakeover,
            clientNoContextTakeover,
            serverMaxWindowBits,
            clientMaxWindowBits,
          });
        }
      }
    }
  }
  for (const clientOptions of optionSets) {
    const offer = createDeflateOffer(clientOptions);
    for (const serverOptions of optionSets) {
      const label = `${offer} / server ${JSON.stringify(serverOptions)}`;
      const accepted = acceptDeflateOffer(offer, serverOptions)!;
      assert(accepted, label); // our offer always has client_max_window_bits
      const { params } = accepted;
      assertEquals(
        acceptDeflateResponse(accepted.response, clientOptions),
        params,
        label,
      );
      // Each side's requirements hold in what was agreed.
      const limit = (a?: number, b?: number) => Math.min(a ?? 15, b ?? 15);
      assertEquals(
        params.serverNoContextTakeover,
        !!(clientOptions.serverNoContextTakeover ||
          serverOptions.serverNoContextTakeover),
        label,
      );
      assertEquals(
        params.clientNoContextTakeover,
        !!(clientOptions.clientNoContextTakeover ||
          serverOptions.clientNoContextTakeover),
        label,
      );
      assertEquals(
        params.serverMaxWindowBits,
        limit(
          clientOptions.serverMaxWindowBits,
          serverOptions.serverMaxWindowBits,
        ),
        label,
      );
      assertEquals(
        params.clientMaxWindowBits,
        limit(
          clientOptions.clientMaxWindowBits,
          serverOptions.clientMaxWindowBits,
        ),
        label,
      );
    }
  }
});

Deno.test("createDeflateOffer() offers client_max_window_bits like browsers", () => {
  assertEquals(
    createDeflateOffer({}),
    "permessage-deflate; client_max_window_bits",
  );
  assertEquals(
    createDeflateOffer({
      serverNoContextTakeover: true,
      clientNoContextTakeover: true,
      serverMaxWindowBits: 9,
      clientMaxWindowBits: 8,
      threshold: 0,
    }),
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9; client_max_window_bits=8",
  );
  // Chrome's offer is accepted with nothing to answer.
  assertEquals(
    acceptDeflateOffer("permessage-deflate; client_max_window_bits", {})
      ?.response,
    "permessage-deflate",
  );
});

Deno.test("acceptDeflateOffer() declines offers with unknown, duplicate or invalid parameters (RFC 7692 §5.1, §7.1)", () => {
  const declined = [
    "permessage-deflate; foo",
    "permessage-deflate; foo=1",
    "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
    "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
    "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
    "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
    "permessage-deflate; server_no_context_takeover=1",
    'permessage-deflate; client_no_context_takeover="x"',
    "permessage-deflate; server_max_window_bits",
    "permessage-deflate; server_max_window_bits=7",
    "permessage-deflate; server_max_window_bits=16",
    "permessage-deflate; server_max_window_bits=08",
    "permessage-deflate; server_max_window_bits=010",
    "permessage-deflate; server_max_window_bits=ten",
    "permessage-deflate; server_max_window_bits=-9",
    "permessage-deflate; client_max_window_bits=7",
    "permessage-deflate; client_max_window_bits=16",
    "permessage-deflate; client_max_window_bits=1.0",
    "x-webkit-deflate-frame",
    "",
    // Not even the grammar: the header is declined as a whole.
    "permessage-deflate; client_max_window_bits=",
    'permessage-deflate; a="b c"',
  ];
  for (const header of declined) {
    assertEquals(acceptDeflateOffer(header, {}), undefined, header);
  }
});

Deno.test("acceptDeflateOffer() accepts the first acceptable offer of several", () => {
  const accepted = acceptDeflateOffer(
    "x-foo; bar, permessage-deflate; server_max_window_bits=16, permessage-deflate; client_no_context_takeover, permessage-deflate",
    {},
  );
  assertEquals(
    accepted?.response,
    "permessage-deflate; client_no_context_takeover",
  );
  // Quoted values are values (RFC 6455 §9.1).
  assertEquals(
    acceptDeflateOffer('permessage-deflate; server_max_window_bits="10"', {})
      ?.response,
    "permessage-deflate; server_max_window_bits=10",
  );
});

Deno.test("acceptDeflateOffer() applies the server's options", () => {
  const table: [string, PerMessageDeflateOptions, string | undefined][] = [
    [
      "permessage-deflate",
      { serverNoContextTakeover: true },
      "permessage-deflate; server_no_context_takeover",
    ],
    [
      "permessage-deflate",
      { clientNoContextTakeover: true },
      "permessage-deflate; client_no_context_takeover",
    ],
    [
      "permessage-deflate",
      { serverMaxWindowBits: 10 },
      "permessage-deflate; server_max_window_bits=10",
    ],
    ["permessage-deflate; server_max_window_bits=12", {
      serverMaxWindowBits: 10,
    }, "permessage-deflate; server_max_window_bits=10"],
    ["permessage-deflate; server_max_window_bits=9", {
      serverMaxWindowBits: 10,
    }, "permessage-deflate; server_max_window_bits=9"],
    [
      "permessage-deflate; client_max_window_bits",
      { clientMaxWindowBits: 10 },
      "permessage-deflate; client_max_window_bits=10",
    ],
    ["permessage-deflate; client_max_window_bits=9", {
      clientMaxWindowBits: 10,
    }, "permessage-deflate; client_max_window_bits=9"],
    ["permessage-deflate; client_max_window_bits=12", {
      clientMaxWindowBits: 10,
    }, "permessage-deflate; client_max_window_bits=10"],
    // RFC 7692 §7.1.2.2: the server cannot limit a client that did not offer
    // client_max_window_bits, so it declines.
    ["permessage-deflate", { clientMaxWindowBits: 10 }, undefined],
    ["permessage-deflate", { clientMaxWindowBits: 15 }, "permessage-deflate"],
  ];
  for (const [offer, options, response] of table) {
    assertEquals(
      acceptDeflateOffer(offer, options)?.response,
      response,
      `${offer} ${JSON.stringify(options)}`,
    );
  }
});

Deno.test("acceptDeflateResponse() rejects responses a client cannot accept, saying why", () => {
  const table: [string, PerMessageDeflateOptions, string][] = [
    [
      "",
      {},
      "expected exactly one permessage-deflate (the only extension offered), found none",
    ],
    ["x-foo", {}, "found x-foo"],
    [
      "permessage-deflate, permessage-deflate",
      {},
      "found permessage-deflate, permessage-deflate",
    ],
    ["permessage-deflate, x-foo", {}, "found permessage-deflate, x-foo"],
    ["permessage-deflate;", {}, "expected a parameter name"],
    ["permessage-deflate; foo", {}, "unknown parameter foo"],
    [
      "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
      {},
      "server_no_context_takeover appears twice",
    ],
    [
      "permessage-deflate; client_max_window_bits=10; client_max_window_bits=10",
      {},
      "client_max_window_bits appears twice",
    ],
    [
      "permessage-deflate; client_no_context_takeover=true",
      {},
      "client_no_context_takeover takes no value",
    ],
    [
      "permessage-deflate; client_max_window_bits",
      {},
      "client_max_window_bits needs a value from 8 to 15, found none",
    ],
    [
      "permessage-deflate; server_max_window_bits",
      {},
      "server_max_window_bits needs a value",
    ],
    [
      "permessage-deflate; server_max_window_bits=7",
      {},
      'server_max_window_bits must be an integer from 8 to 15 without leading zeros, found "7"',
    ],
    ["permessage-deflate; client_max_window_bits=16", {}, 'found "16"'],
    ["permessage-deflate; client_max_window_bits=09", {}, 'found "09"'],
    [
      "permessage-deflate",
      { serverNoContextTakeover: true },
      "server_no_context_takeover was offered but the response does not include it",
    ],
    [
      "permessage-deflate",
      { serverMaxWindowBits: 10 },
      "server_max_window_bits=10 was offered but the response does not include server_max_window_bits",
    ],
    ["permessage-deflate; server_max_window_bits=11", {
      serverMaxWindowBits: 10,
    }, "server_max_window_bits=11 is larger than the 10 offered"],
    ["permessage-deflate; client_max_window_bits=11", {
      clientMaxWindowBits: 10,
    }, "client_max_window_bits=11 is larger than the 10 offered"],
  ];
  for (const [response, options, message] of table) {
    assertThrows(
      () => acceptDeflateResponse(response, options),
      Error,
      message,
    );
  }
});

Deno.test("acceptDeflateResponse() accepts what the server may choose", () => {
  assertEquals(acceptDeflateResponse("permessage-deflate", {}), DEFAULT_PARAMS);
  // The server may impose what the client did not ask for.
  assertEquals(
    acceptDeflateResponse(
      "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9; client_max_window_bits=8",
      {},
    ),
    {
      serverNoContextTakeover: true,
      clientNoContextTakeover: true,
      serverMaxWindowBits: 9,
      clientMaxWindowBits: 8,
    },
  );
  // The client's own limits hold even when the response leaves them out.
  assertEquals(
    acceptDeflateResponse("permessage-deflate", {
      clientNoContextTakeover: true,
      clientMaxWindowBits: 11,
    }),
    {
      ...DEFAULT_PARAMS,
      clientNoContextTakeover: true,
      clientMaxWindowBits: 11,
    },
  );
  assertEquals(
    acceptDeflateResponse("permessage-deflate; server_max_window_bits=9", {
      serverMaxWindowBits: 10,
    }).serverMaxWindowBits,
    9,
  );
});

Deno.test("options out of range throw a RangeError", () => {
  const bad: PerMessageDeflateOptions[] = [
    { serverMaxWindowBits: 7 },
    { serverMaxWindowBits: 16 },
    { clientMaxWindowBits: 12.5 },
    { threshold: -1 },
    { threshold: NaN },
    { level: 10 },
  ];
  for (const options of bad) {
    assertThrows(() => createDeflateOffer(options), RangeError);
    assertThrows(
      () => acceptDeflateOffer("permessage-deflate", options),
      RangeError,
    );
    assertThrows(() => resolveCompression(options), RangeError);
  }
  assertEquals(resolveCompression(true), {});
  assertEquals(resolveCompression(false), undefined);
});

// ------------------------------------------------------------------ data path

const SIZES = [0, 1, 100, 1023, 1024, 4096, 65535, 65536, 100_000, 1 << 20];

for (const params of [DEFAULT_PARAMS, NO_TAKEOVER]) {
  const takeover = params === DEFAULT_PARAMS
    ? "with context takeover"
    : "without context takeover";
  for (
    const [sender, receiver] of [["client", "server"], [
      "server",
      "client",
    ]] as const
  ) {
    Deno.test(`round trip ${sender} → ${receiver} ${takeover}, sizes 0..1 MiB, whole and fragmented`, async () => {
      const from = createMessageDeflate(params, sender, { threshold: 0 });
      const to = createMessageDeflate(params, receiver, { threshold: 0 });
      let seed = 1;
      for (const size of SIZES) {
        for (const compressible of [true, false]) {
          const message = sample(size, seed++, compressible);
          const payload = (await from.deflate(message))!;
          assert(payload !== undefined);
          assertEquals(
            await to.inflater.inflate(payload, true, 1 << 30),
            message,
            `${size}`,
          );
          // The same message again, its compressed payload spread over many
          // frames (RFC 7692 §6.1: only the first frame has RSV1, the
          // payload is split anywhere).
          const again = (await from.deflate(message))!;
          assert(again !== undefined);
          const pieces = size < 1000 ? again.length : 97;
          assertEquals(
            await inflateInPieces(to.inflater, again, pieces),
            message,
            `${size} fragmented`,
          );
        }
      }
    });
  }
}

Deno.test("an empty message deflates to the single byte 00 (RFC 7692 §7.2.3.6)", async () => {
  const { deflate } = createMessageDeflate(DEFAULT_PARAMS, "server", {
    threshold: 0,
  });
  assertEquals(await deflate(new Uint8Array()), new Uint8Array([0x00]));
  const { inflater } = createMessageDeflate(DEFAULT_PARAMS, "client");
  assertEquals(
    await inflater.inflate(new Uint8Array([0x00]), true, 0),
    new Uint8Array(),
  );
  assertEquals(
    await inflater.inflate(new Uint8Array(), true, 0),
    new Uint8Array(),
  );
});

Deno.test("the RFC 7692 §7.2.3 examples inflate, and 'Hello' deflates as in §7.2.3.1", async () => {
  const hello = new TextEncoder().encode("Hello");
  const { inflater } = createMessageDeflate(DEFAULT_PARAMS, "client");
  // §7.2.3.1, a message compressed with one compressed block.
  const oneBlock = new Uint8Array([0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
  assertEquals(await inflater.inflate(oneBlock, true, 5), hello);
  // §7.2.3.1, fragmented: 0xf2 0x48 0xcd, then 0xc9 0xc9 0x07 0x00.
  const { inflater: second } = createMessageDeflate(DEFAULT_PARAMS, "client");
  const first = await second.inflate(oneBlock.subarray(0, 3), false, 5);
  const rest = await second.inflate(oneBlock.subarray(3), true, 5);
  assertEquals(concat([first, rest]), hello);
  // §7.2.3.2, the same message sent again with context takeover (a back
  // reference into the previous message).
  assertEquals(
    await inflater.inflate(
      new Uint8Array([0xf2, 0x00, 0x11, 0x00, 0x00]),
      true,
      5,
    ),
    hello,
  );
  // §7.2.3.3, an uncompressed (stored) DEFLATE block.
  const { inflater: fresh } = createMessageDeflate(DEFAULT_PARAMS, "client");
  assertEquals(
    await fresh.inflate(
      new Uint8Array([
        0x00,
        0x05,
        0x00,
        0xfa,
        0xff,
        0x48,
        0x65,
        0x6c,
        0x6c,
        0x6f,
        0x00,
      ]),
      true,
      5,
    ),
    hello,
  );
  // §7.2.3.4, a block with BFINAL set, then another message.
  assertEquals(
    await fresh.inflate(
      new Uint8Array([0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00]),
      true,
      5,
    ),
    hello,
  );
  assertEquals(await fresh.inflate(oneBlock, true, 5), hello);
});

Deno.test("context takeover: a repeated message shrinks with it and not without it", async () => {
  const message = sample(4000, 7, false);
  const withTakeover = createMessageDeflate(DEFAULT_PARAMS, "client", {
    threshold: 0,
  });
  const first = (await withTakeover.deflate(message))!;
  const second = (await withTakeover.deflate(message))!;
  assert(first.length > 3000, `${first.length}`);
  assert(second.length < 100, `a back reference, found ${second.length} bytes`);

  const withoutTakeover = createMessageDeflate(NO_TAKEOVER, "client", {
    threshold: 0,
  });
  const a = (await withoutTakeover.deflate(message))!;
  const b = (await withoutTakeover.deflate(message))!;
  assertEquals(a, b);
  // Each message inflates on its own.
  assertEquals(
    new Uint8Array(zlib.inflateRawSync(withTail(b), SYNC_FLUSH)),
    message,
  );
});

Deno.test("the peer's no_context_takeover resets the inflater per message", async () => {
  // Data whose second message refers back into the first only inflates with
  // takeover; a stream that starts over each message inflates either way.
  const message = sample(2000, 9);
  const peer = zlib.createDeflateRaw({ flush: zlib.constants.Z_SYNC_FLUSH });
  const deflatePeer = (data: Uint8Array) =>
    new Promise<Uint8Array>((resolve) => {
      const chunks: Uint8Array[] = [];
      const onData = (chunk: Uint8Array) => chunks.push(chunk);
      peer.on("data", onData);
      peer.write(data, () => {
        peer.off("data", onData);
        resolve(concat(chunks).subarray(0, -4));
      });
    });
  const first = await deflatePeer(message);
  const second = await deflatePeer(message);
  peer.close();
  const takeover = createMessageDeflate(DEFAULT_PARAMS, "server");
  assertEquals(await takeover.inflater.inflate(first, true, 1 << 20), message);
  assertEquals(await takeover.inflater.inflate(second, true, 1 << 20), message);
  // A receiver that agreed the client resets would fail on the back
  // reference: it never saw the first message's window.
  const reset = createMessageDeflate(NO_TAKEOVER, "server");
  assertEquals(await reset.inflater.inflate(first, true, 1 << 20), message);
  const error = await assertRejects(
    () => reset.inflater.inflate(second, true, 1 << 20),
    WebSocketError,
    "does not inflate",
  );
  assertEquals(error.closeCode, 1002);
});

Deno.test("interop with node:zlib at the byte level, both directions", async () => {
  for (const size of [0, 1, 1000, 50_000, 300_000]) {
    const message = sample(size, size + 3);
    // zlib → our inflater (peer deflates without takeover, trailing 4 bytes
    // removed as RFC 7692 §7.2.1 says).
    const fromZlib = zlib.deflateRawSync(message, SYNC_FLUSH);
    assertEquals([...fromZlib.subarray(-4)], [0, 0, 0xff, 0xff]);
    const { inflater } = createMessageDeflate(NO_TAKEOVER, "client");
    assertEquals(
      await inflater.inflate(fromZlib.subarray(0, -4), true, 1 << 20),
      message,
    );
    // Our deflater → zlib (with the tail put back, RFC 7692 §7.2.2).
    const ours = createMessageDeflate(NO_TAKEOVER, "client", { threshold: 0 });
    const payload = (await ours.deflate(message))!;
    assertEquals(
      new Uint8Array(zlib.inflateRawSync(withTail(payload), SYNC_FLUSH)),
      message,
    );
    // Same compressor settings, same bytes.
    assertEquals(payload, new Uint8Array(fromZlib.subarray(0, -4)));
  }
});

Deno.test("messages below the threshold go uncompressed (default 1024 bytes)", async () => {
  const deflate = createMessageDeflate(DEFAULT_PARAMS, "server");
  assertEquals(deflate.deflate(new Uint8Array(1023)), undefined);
  assert((await deflate.deflate(new Uint8Array(1024))) instanceof Uint8Array);
  const custom = createMessageDeflate(DEFAULT_PARAMS, "server", {
    threshold: 10,
  });
  assertEquals(custom.deflate(new Uint8Array(9)), undefined);
  assert((await custom.deflate(new Uint8Array(10))) instanceof Uint8Array);
});

function paramsWithWindow(
  role: "client" | "server",
  bits: number,
): NegotiatedDeflate {
  return role === "client"
    ? { ...DEFAULT_PARAMS, clientMaxWindowBits: bits }
    : { ...DEFAULT_PARAMS, serverMaxWindowBits: bits };
}

Deno.test("the window bits agreed for a sender bound its back references (RFC 7692 §7.1.2)", async () => {
  for (const role of ["client", "server"] as const) {
    const receiver = role === "client" ? "server" : "client";
    for (let bits = 9; bits <= 15; bits++) {
      // Incompressible blocks one window and a bit long, three times: only a
      // compressor with a larger window can refer back to the previous copy.
      const block = sample((1 << bits) + 100, bits, false);
      const message = concat([block, block, block]);
      const ours = createMessageDeflate(paramsWithWindow(role, bits), role, {
        threshold: 0,
      });
      const payload = (await ours.deflate(message))!;
      assert(
        payload.length > message.length * 0.99,
        `${role} ${bits} bits: ${payload.length} of ${message.length} bytes`,
      );
      if (bits < 15) {
        const wider = createMessageDeflate(
          paramsWithWindow(role, bits + 1),
          role,
          { threshold: 0 },
        );
        const widerPayload = (await wider.deflate(message))!;
        assert(
          widerPayload.length < block.length * 1.5,
          `${role} ${bits + 1} bits: ${widerPayload.length} bytes`,
        );
      }
      // What the sender produced inflates at the receiver and in zlib.
      const peer = createMessageDeflate(paramsWithWindow(role, bits), receiver);
      assertEquals(
        await peer.inflater.inflate(payload, true, 1 << 20),
        message,
      );
      assertEquals(
        new Uint8Array(
          zlib.inflateRawSync(withTail(payload), {
            ...SYNC_FLUSH,
            windowBits: bits,
          }),
        ),
        message,
      );
    }
    // 8 bits: zlib cannot deflate raw with a 256-byte window, so the
    // deflater uses only distance-1 matches (Z_RLE): runs still compress, a
    // block repeated 50 bytes later does not.
    const eight = createMessageDeflate(paramsWithWindow(role, 8), role, {
      threshold: 0,
    });
    const zeros = new Uint8Array(10_000);
    const zerosPayload = (await eight.deflate(zeros))!;
    assert(zerosPayload.length < 100, `${zerosPayload.length}`);
    const repeated = concat(
      Array.from({ length: 20 }, () => sample(50, 1, false)),
    );
    const repeatedPayload = (await eight.deflate(repeated))!;
    // Literals only (about 5.6 bits each for 50 distinct bytes), where a
    // 9-bit window would match the repeats.
    assert(repeatedPayload.length > 600, `${repeatedPayload.length}`);
    const nine = createMessageDeflate(paramsWithWindow(role, 9), role, {
      threshold: 0,
    });
    const ninePayload = (await nine.deflate(repeated))!;
    assert(ninePayload.length < 300, `${ninePayload.length}`);
    const peer = createMessageDeflate(paramsWithWindow(role, 8), receiver);
    assertEquals(
      await peer.inflater.inflate(zerosPayload, true, 1 << 20),
      zeros,
    );
    assertEquals(
      await peer.inflater.inflate(repeatedPayload, true, 1 << 20),
      repeated,
    );
  }
});

Deno.test("corrupt DEFLATE data fails with 1002 and a clear message (RFC 7692 §8)", async () => {
  const { inflater } = createMessageDeflate(DEFAULT_PARAMS, "client");
  const error = await assertRejects(
    () =>
      inflater.inflate(new Uint8Array([0xff, 0xff, 0xff, 0xff]), true, 1 << 20),
    WebSocketError,
    "Invalid permessage-deflate data: the compressed message does not inflate",
  );
  assertEquals(error.closeCode, 1002);
  // The inflater stays failed.
  await assertRejects(
    () => inflater.inflate(new Uint8Array([0x00]), true, 1 << 20),
    WebSocketError,
  );
});

Deno.test("the inflated size counts against maxBytes across fragments", async () => {
  const message = sample(10_000, 5);
  const { deflate } = createMessageDeflate(DEFAULT_PARAMS, "client", {
    threshold: 0,
  });
  const payload = (await deflate(message))!;
  const exact = createMessageDeflate(DEFAULT_PARAMS, "server");
  assertEquals(
    await inflateInPieces(exact.inflater, payload, 10, 10_000),
    message,
  );
  const tight = createMessageDeflate(DEFAULT_PARAMS, "server");
  const error = await assertRejects(
    () => inflateInPieces(tight.inflater, payload, 10, 9_999),
    WebSocketError,
    "inflates to more than maxMessageBytes (9999 bytes)",
  );
  assertEquals(error.closeCode, 1009);
});

Deno.test("a compression bomb fails with 1009 without being inflated", async () => {
  // 16 MiB of zeros deflate to about 16 KiB; 64 copies of that sync-flushed
  // segment are one valid DEFLATE stream of 1 GiB of zeros.
  const segment = zlib.deflateRawSync(new Uint8Array(16 << 20), SYNC_FLUSH);
  const bomb = concat(Array.from({ length: 64 }, () => segment));
  assert(bomb.length < 2 << 20, `${bomb.length}`);
  const before = Deno.memoryUsage().rss;
  const { inflater } = createMessageDeflate(DEFAULT_PARAMS, "client");
  // As one frame, and as many.
  const error = await assertRejects(
    () => inflater.inflate(bomb, true, 1 << 20),
    WebSocketError,
    "inflates to more than maxMessageBytes (1048576 bytes)",
  );
  assertEquals(error.closeCode, 1009);
  const { inflater: fragmented } = createMessageDeflate(
    DEFAULT_PARAMS,
    "client",
  );
  await assertRejects(
    () => inflateInPieces(fragmented, bomb, 64, 1 << 20),
    WebSocketError,
    "maxMessageBytes",
  );
  // Inflating the bomb would take 1 GiB; stopping at the limit takes a few.
  const grown = Deno.memoryUsage().rss - before;
  assert(grown < 128 << 20, `memory grew by ${grown} bytes`);
  assertInstanceOf(error, WebSocketError);
});

Deno.test("concurrent calls are serialized, so misuse cannot interleave them", async () => {
  const client = createMessageDeflate(DEFAULT_PARAMS, "client", {
    threshold: 0,
  });
  const server = createMessageDeflate(DEFAULT_PARAMS, "server");
  const messages = Array.from(
    { length: 20 },
    (_, i) => sample(5000 + i, i + 1),
  );
  // Not awaited one by one: all twenty deflates are in flight at once.
  const payloads = await Promise.all(messages.map((m) => client.deflate(m)!));
  const pieces = payloads.flatMap((payload) => [
    { payload: payload.subarray(0, 10), fin: false },
    { payload: payload.subarray(10), fin: true },
  ]);
  const outputs = await Promise.all(
    pieces.map(({ payload, fin }) =>
      server.inflater.inflate(payload, fin, 1 << 20)
    ),
  );
  for (let i = 0; i < messages.length; i++) {
    assertEquals(concat([outputs[2 * i], outputs[2 * i + 1]]), messages[i]);
  }
});

Deno.test("close() frees zlib now: calls in flight and later reject with 1006", async () => {
  const deflate = createMessageDeflate(DEFAULT_PARAMS, "server", {
    threshold: 0,
  });
  const segment = zlib.deflateRawSync(new Uint8Array(16 << 20), SYNC_FLUSH);
  const big = concat(Array.from({ length: 8 }, () => segment));
  const inflating = deflate.inflater.inflate(big, true, 1 << 30);
  const deflating = deflate.deflate(sample(1 << 20, 3))!;
  deflate.close();
  for (const pending of [inflating, deflating]) {
    const error = await assertRejects(
      () => pending,
      WebSocketError,
      "permessage-deflate was closed",
    );
    assertEquals(error.closeCode, 1006);
  }
  await assertRejects(
    () => deflate.inflater.inflate(new Uint8Array([0]), true, 10),
    WebSocketError,
    "closed",
  );
  await assertRejects(
    async () => await deflate.deflate(new Uint8Array(10)),
    WebSocketError,
    "closed",
  );
  // Closing twice, or an unused codec, is fine.
  deflate.close();
  createMessageDeflate(DEFAULT_PARAMS, "client").close();
});

Deno.test("inflated messages are plain Uint8Arrays that keep no large zlib buffer alive", async () => {
  const client = createMessageDeflate(DEFAULT_PARAMS, "client", {
    threshold: 0,
  });
  const server = createMessageDeflate(DEFAULT_PARAMS, "server");
  for (const size of [10, 5000, 40_000, 200_000]) {
    const message = sample(size, size);
    const inflated = await server.inflater.inflate(
      (await client.deflate(message))!,
      true,
      1 << 20,
    );
    assertEquals(Object.getPrototypeOf(inflated), Uint8Array.prototype);
    assertEquals(inflated, message);
    assert(
      inflated.buffer.byteLength <= Math.max(2 * size, 64 * 1024),
      `${size} bytes kept ${inflated.buffer.byteLength} alive`,
    );
  }
});
