import { assert, assertEquals } from "@std/assert";
import {
  type Message,
  MessageAssembler,
  type MessageAssemblerOptions,
  MessageAssemblerStream,
  type MessageInflater,
} from "../src/message_assembler.ts";
import { FrameDecoder, FrameDecoderStream } from "../src/frame_decoder.ts";
import type { Frame, Opcode } from "../src/frame.ts";
import { WebSocketError } from "../src/websocket_error.ts";
import {
  assertBytesEqual,
  assertWebSocketError,
  bytes,
  concat,
  frameBytes,
  hex,
  randomBytes,
  seededRandom,
  thrownBy,
  utf8,
} from "./_codec_util.ts";

function frame(
  opcode: number,
  payload: Uint8Array | string = new Uint8Array(0),
  fin = true,
  rsv1 = false,
): Frame {
  return {
    fin,
    rsv1,
    opcode: opcode as Opcode,
    payload: typeof payload === "string" ? utf8(payload) : payload,
  };
}

const TEXT = 0x1, BINARY = 0x2, CONTINUATION = 0x0;
const CLOSE = 0x8, PING = 0x9, PONG = 0xa;

/** What happened while frames were written one by one into the stream. */
interface DriveResult {
  messages: Message[];
  /** Each control frame with the index of the frame being written then. */
  controls: { frame: Frame; duringFrame: number }[];
  /** The error the stream raised, if any. */
  error: unknown;
  /** The index of the frame whose write failed, or -1. */
  errorAtFrame: number;
  /** Whether the readable side ended (closed or errored). */
  readableDone: boolean;
}

/**
 * Writes `frames` into a MessageAssemblerStream one at a time, waiting for
 * each write, so the frame that raises an error is known exactly.
 */
async function drive(
  frames: readonly Frame[],
  options: MessageAssemblerOptions = {},
): Promise<DriveResult> {
  let current = -1;
  const result: DriveResult = {
    messages: [],
    controls: [],
    error: undefined,
    errorAtFrame: -1,
    readableDone: false,
  };
  const stream = new MessageAssemblerStream({
    ...options,
    onControlFrame: (f) =>
      result.controls.push({ frame: f, duringFrame: current }),
  });
  const reader = stream.readable.getReader();
  const reading = (async () => {
    try {
      while (true) {
        const { done, value } = await reader.read();
        if (done) break;
        result.messages.push(value);
      }
    } catch {
      // The writer side sees the same error.
    }
    result.readableDone = true;
  })();
  const writer = stream.writable.getWriter();
  for (current = 0; current < frames.length; current++) {
    try {
      await writer.write(frames[current]);
    } catch (error) {
      result.error = error;
      result.errorAtFrame = current;
      break;
    }
  }
  if (result.errorAtFrame === -1 && !result.readableDone) {
    await writer.close().catch(() => {});
  }
  await reading;
  return result;
}

async function assembled(
  frames: readonly Frame[],
  options?: MessageAssemblerOptions,
): Promise<Message[]> {
  const result = await drive(frames, options);
  if (result.error !== undefined) throw result.error;
  return result.messages;
}

Deno.test("MessageAssemblerStream delivers single-frame text as string and binary as Uint8Array", async () => {
  const payload = randomBytes(300, seededRandom(1));
  const messages = await assembled([
    frame(TEXT, "Hello"),
    frame(BINARY, payload),
    frame(TEXT, ""),
    frame(BINARY),
  ]);
  assertEquals(messages.length, 4);
  assertEquals(messages[0], "Hello");
  assert(messages[1] instanceof Uint8Array);
  assertBytesEqual(messages[1] as Uint8Array, payload);
  assertEquals(messages[2], "");
  assertEquals(messages[3], new Uint8Array(0));
});

Deno.test("MessageAssemblerStream joins the fragmented RFC 6455 §5.7 example", async () => {
  assertEquals(
    await assembled([frame(TEXT, "Hel", false), frame(CONTINUATION, "lo")]),
    ["Hello"],
  );
});

Deno.test("MessageAssemblerStream joins fragments of every size, empty ones included", async () => {
  const rng = seededRandom(2);
  const payload = randomBytes(70000, rng);
  const sizes = [0, 1, 0, 125, 126, 65535, 3000, 0];
  const frames: Frame[] = [];
  let offset = 0;
  for (let i = 0; i < sizes.length; i++) {
    frames.push(
      frame(
        i === 0 ? BINARY : CONTINUATION,
        payload.subarray(offset, offset + sizes[i]),
        false,
      ),
    );
    offset += sizes[i];
  }
  frames.push(frame(CONTINUATION, payload.subarray(offset)));
  const messages = await assembled(frames);
  assertEquals(messages.length, 1);
  assertBytesEqual(messages[0] as Uint8Array, payload);
  // A fragmented empty text message is "".
  assertEquals(
    await assembled([
      frame(TEXT, "", false),
      frame(CONTINUATION, "", false),
      frame(CONTINUATION),
    ]),
    [""],
  );
});

Deno.test("MessageAssemblerStream keeps messages apart: one message's buffer is not the next one's", async () => {
  const a = randomBytes(5000, seededRandom(3));
  const b = randomBytes(5000, seededRandom(4));
  const messages = await assembled([
    frame(BINARY, a.subarray(0, 2500), false),
    frame(CONTINUATION, a.subarray(2500)),
    frame(BINARY, b.subarray(0, 100), false),
    frame(CONTINUATION, b.subarray(100)),
    frame(TEXT, "x", false),
    frame(CONTINUATION, "y"),
    frame(TEXT, "z", false),
    frame(CONTINUATION, ""),
  ]);
  assertBytesEqual(messages[0] as Uint8Array, a);
  assertBytesEqual(messages[1] as Uint8Array, b);
  assertEquals(messages.slice(2), ["xy", "z"]);
});

Deno.test("MessageAssembler joins 65,536 fragments of 64 bytes (4 MiB, Autobahn 9.x limits)", () => {
  const assembler = new MessageAssembler();
  const payload = randomBytes(64 * 65536, seededRandom(5));
  let message: Message | undefined | Promise<Message | undefined>;
  for (let i = 0; i < 65536; i++) {
    message = assembler.push(
      frame(
        i === 0 ? BINARY : CONTINUATION,
        payload.subarray(i * 64, i * 64 + 64),
        i === 65535,
      ),
    );
    if (i < 65535) assertEquals(message, undefined);
  }
  assert(message instanceof Uint8Array);
  assertBytesEqual(message as Uint8Array, payload);
});

Deno.test("MessageAssemblerStream hands control frames between fragments to onControlFrame before the message completes", async () => {
  const result = await drive([
    frame(TEXT, "Hel", false),
    frame(PING, "ping"),
    frame(CONTINUATION, "l", false),
    frame(PONG, ""),
    frame(CONTINUATION, "o"),
  ]);
  assertEquals(result.error, undefined);
  assertEquals(result.messages, ["Hello"]);
  assertEquals(
    result.controls.map((
      { frame, duringFrame },
    ) => [frame.opcode, hex(frame.payload), duringFrame]),
    [[PING, hex(utf8("ping")), 1], [PONG, "", 3]],
  );
});

Deno.test("MessageAssemblerStream passes a Close frame on and then closes its readable", async () => {
  const result = await drive([
    frame(TEXT, "last", false),
    frame(CONTINUATION, " words"),
    frame(CLOSE, bytes(0x03, 0xe8, 0x62, 0x79, 0x65)),
    frame(TEXT, "after close"),
  ]);
  assertEquals(result.messages, ["last words"]);
  assertEquals(result.controls.length, 1);
  assertEquals(result.controls[0].frame.opcode, CLOSE);
  assertEquals(hex(result.controls[0].frame.payload), "03 e8 62 79 65");
  assertEquals(result.controls[0].duringFrame, 2);
  assert(result.readableDone, "the readable side closed");
  // Nothing after the Close frame is delivered.
  assert(!result.messages.includes("after close"));
});

Deno.test("MessageAssemblerStream closes its readable on a Close frame in the middle of a fragmented message", async () => {
  const result = await drive([frame(TEXT, "half", false), frame(CLOSE)]);
  assertEquals(result.messages, []);
  assertEquals(result.controls.map((c) => c.frame.opcode), [CLOSE]);
  assert(result.readableDone);
});

// Invalid sequences of frames and the close code each must produce.
const invalidSequences: {
  name: string;
  frames: Frame[];
  options?: MessageAssemblerOptions;
  errorAtFrame: number;
  closeCode: number;
  message: RegExp;
}[] = [
  {
    name: "a continuation with nothing to continue",
    frames: [frame(CONTINUATION, "x")],
    errorAtFrame: 0,
    closeCode: 1002,
    message: /continuation/i,
  },
  {
    name: "a non-final continuation with nothing to continue",
    frames: [frame(CONTINUATION, "x", false), frame(CONTINUATION, "y")],
    errorAtFrame: 0,
    closeCode: 1002,
    message: /continuation/i,
  },
  {
    name: "a continuation after a completed message",
    frames: [
      frame(TEXT, "a", false),
      frame(CONTINUATION, "b"),
      frame(CONTINUATION, "c"),
    ],
    errorAtFrame: 2,
    closeCode: 1002,
    message: /continuation/i,
  },
  {
    name: "a new text frame inside a fragmented text message",
    frames: [
      frame(TEXT, "a", false),
      frame(TEXT, "b"),
      frame(CONTINUATION, "c"),
    ],
    errorAtFrame: 1,
    closeCode: 1002,
    message: /continuation[^]*text|text[^]*continuation/i,
  },
  {
    name: "a new binary frame inside a fragmented text message",
    frames: [frame(TEXT, "a", false), frame(PING), frame(BINARY, "b", false)],
    errorAtFrame: 2,
    closeCode: 1002,
    message: /continuation[^]*binary|binary[^]*continuation/i,
  },
  {
    name: "a new text frame inside a fragmented binary message",
    frames: [
      frame(BINARY, "a", false),
      frame(CONTINUATION, "b", false),
      frame(TEXT, "c"),
    ],
    errorAtFrame: 2,
    closeCode: 1002,
    message: /continuation/i,
  },
  {
    name: "RSV1 set with no extension to give it a meaning",
    frames: [frame(TEXT, "a", true, true)],
    errorAtFrame: 0,
    closeCode: 1002,
    message: /RSV1/,
  },
  {
    name: "a single-frame message of maxMessageBytes + 1",
    frames: [frame(BINARY, new Uint8Array(11))],
    options: { maxMessageBytes: 10 },
    errorAtFrame: 0,
    closeCode: 1009,
    message: /10[^]*11/,
  },
  {
    name: "a single-frame text message of maxMessageBytes + 1",
    frames: [frame(TEXT, "hello world")],
    options: { maxMessageBytes: 10 },
    errorAtFrame: 0,
    closeCode: 1009,
    message: /10[^]*11/,
  },
  {
    name: "a fragmented message passing maxMessageBytes before its final frame",
    frames: [
      frame(BINARY, new Uint8Array(4), false),
      frame(CONTINUATION, new Uint8Array(4), false),
      frame(CONTINUATION, new Uint8Array(4), false),
      frame(CONTINUATION, new Uint8Array(4), false),
      frame(CONTINUATION),
    ],
    options: { maxMessageBytes: 10 },
    errorAtFrame: 2,
    closeCode: 1009,
    message: /10[^]*12/,
  },
  {
    name:
      "a fragmented text message passing maxMessageBytes with a Ping between",
    frames: [
      frame(TEXT, "abcdefgh", false),
      frame(PING),
      frame(CONTINUATION, "ijk", false),
      frame(CONTINUATION, "l"),
    ],
    options: { maxMessageBytes: 10 },
    errorAtFrame: 2,
    closeCode: 1009,
    message: /10[^]*11/,
  },
  {
    name: "a Close frame with a 1-byte payload",
    frames: [frame(CLOSE, bytes(0x03))],
    errorAtFrame: 0,
    closeCode: 1002,
    message: /1 byte/,
  },
  {
    name: "a Close frame with code 1005",
    frames: [frame(CLOSE, bytes(0x03, 0xed))],
    errorAtFrame: 0,
    closeCode: 1002,
    message: /1005/,
  },
  {
    name: "a Close frame whose reason is not UTF-8",
    frames: [frame(CLOSE, bytes(0x03, 0xe8, 0xed, 0xa0, 0x80))],
    errorAtFrame: 0,
    closeCode: 1007,
    message: /UTF-8/,
  },
];

for (const input of invalidSequences) {
  Deno.test(`MessageAssemblerStream refuses ${input.name} with ${input.closeCode}`, async () => {
    const result = await drive(input.frames, input.options);
    assertWebSocketError(result.error, input.closeCode, input.message);
    assertEquals(
      result.errorAtFrame,
      input.errorAtFrame,
      "the frame that fails",
    );
    assert(result.readableDone, "the readable side ended");
    assert(
      !result.controls.some((c) => c.frame.opcode === CLOSE),
      "an invalid Close frame does not reach onControlFrame",
    );
  });
}

Deno.test("MessageAssemblerStream accepts messages of exactly maxMessageBytes", async () => {
  const options = { maxMessageBytes: 10 };
  assertEquals(await assembled([frame(TEXT, "0123456789")], options), [
    "0123456789",
  ]);
  assertEquals(
    await assembled(
      [
        frame(TEXT, "01234", false),
        frame(PING, "not counted"),
        frame(CONTINUATION, "56789"),
      ],
      options,
    ),
    ["0123456789"],
  );
  // The limit is per message, not per connection.
  assertEquals(
    await assembled([
      frame(BINARY, new Uint8Array(10)),
      frame(BINARY, new Uint8Array(10)),
    ], options),
    [new Uint8Array(10), new Uint8Array(10)],
  );
});

Deno.test("MessageAssemblerStream errors its readable when the frames end inside a fragmented message", async () => {
  const stream = ReadableStream.from([frame(TEXT, "unfinished", false)])
    .pipeThrough(
      new MessageAssemblerStream(),
    );
  let error: unknown;
  try {
    await Array.fromAsync(stream);
  } catch (thrown) {
    error = thrown;
  }
  // 1006: the frames stopped without a Close frame (RFC 6455 §7.1.5).
  assertWebSocketError(error, 1006, /fragment/i);
});

// UTF-8 (RFC 3629, RFC 6455 §8.1).
const validUtf8: [string, Uint8Array][] = [
  ["1 byte: U+0041", bytes(0x41)],
  ["1 byte: U+007F", bytes(0x7f)],
  ["2 bytes: U+0080", bytes(0xc2, 0x80)],
  ["2 bytes: U+00E9", bytes(0xc3, 0xa9)],
  ["2 bytes: U+07FF", bytes(0xdf, 0xbf)],
  ["3 bytes: U+0800", bytes(0xe0, 0xa0, 0x80)],
  ["3 bytes: U+20AC", bytes(0xe2, 0x82, 0xac)],
  ["3 bytes: U+D7FF (below the surrogates)", bytes(0xed, 0x9f, 0xbf)],
  ["3 bytes: U+E000 (above the surrogates)", bytes(0xee, 0x80, 0x80)],
  ["3 bytes: U+FFFD", bytes(0xef, 0xbf, 0xbd)],
  ["3 bytes: U+FFFF", bytes(0xef, 0xbf, 0xbf)],
  ["4 bytes: U+10000", bytes(0xf0, 0x90, 0x80, 0x80)],
  ["4 bytes: U+1D11E", bytes(0xf0, 0x9d, 0x84, 0x9e)],
  ["4 bytes: U+10FFFF", bytes(0xf4, 0x8f, 0xbf, 0xbf)],
  ["a leading BOM is kept", bytes(0xef, 0xbb, 0xbf, 0x61)],
  ["mixed", utf8("Hello-µ@ßöäüàá-UTF-8!! κόσμε 𝄞")],
];

// Each invalid sequence with the index of the byte at which it can no longer
// become valid (`null`: only the end of the message makes it invalid).
const invalidUtf8: [string, Uint8Array, number | null][] = [
  ["overlong 2-byte NUL (C0 80)", bytes(0xc0, 0x80), 0],
  ["overlong 2-byte (C1 BF)", bytes(0xc1, 0xbf), 0],
  ["overlong 3-byte (E0 80 80)", bytes(0xe0, 0x80, 0x80), 1],
  ["overlong 3-byte U+07FF (E0 9F BF)", bytes(0xe0, 0x9f, 0xbf), 1],
  ["overlong 4-byte (F0 80 80 80)", bytes(0xf0, 0x80, 0x80, 0x80), 1],
  ["overlong 4-byte U+FFFF (F0 8F BF BF)", bytes(0xf0, 0x8f, 0xbf, 0xbf), 1],
  ["surrogate U+D800 (ED A0 80)", bytes(0xed, 0xa0, 0x80), 1],
  ["surrogate U+DFFF (ED BF BF)", bytes(0xed, 0xbf, 0xbf), 1],
  [
    "surrogate pair (ED A0 80 ED B0 80)",
    bytes(0xed, 0xa0, 0x80, 0xed, 0xb0, 0x80),
    1,
  ],
  ["above U+10FFFF (F4 90 80 80)", bytes(0xf4, 0x90, 0x80, 0x80), 1],
  ["lead byte F5", bytes(0xf5, 0x80, 0x80, 0x80), 0],
  ["byte FE", bytes(0xfe), 0],
  ["byte FF", bytes(0xff), 0],
  ["lone continuation byte", bytes(0x41, 0x80), 1],
  ["missing continuation (C3 41)", bytes(0xc3, 0x41), 1],
  ["missing continuation (E2 82 41)", bytes(0xe2, 0x82, 0x41), 2],
  [
    "invalid after valid text",
    concat([utf8("κόσμε"), bytes(0xed, 0xa0, 0x80), utf8("edited")]),
    11,
  ],
  ["truncated 2-byte sequence at the end (C3)", bytes(0x41, 0xc3), null],
  ["truncated 3-byte sequence at the end (E2 82)", bytes(0xe2, 0x82), null],
  [
    "truncated 4-byte sequence at the end (F0 9D 84)",
    bytes(0xf0, 0x9d, 0x84),
    null,
  ],
];

Deno.test("MessageAssemblerStream accepts valid 1- to 4-byte UTF-8, whole and split at every byte", async () => {
  const decoder = new TextDecoder("utf-8", { ignoreBOM: true });
  for (const [name, data] of validUtf8) {
    const expected = decoder.decode(data);
    assertEquals(await assembled([frame(TEXT, data)]), [expected], name);
    // Two fragments, split at every byte: a code point split across
    // fragments is fine.
    for (let split = 0; split <= data.length; split++) {
      assertEquals(
        await assembled([
          frame(TEXT, data.subarray(0, split), false),
          frame(CONTINUATION, data.subarray(split)),
        ]),
        [expected],
        `${name}, split at ${split}`,
      );
    }
    // One byte per fragment, with a Ping in the middle of the first code point.
    const frames = Array.from(
      data,
      (b, i) => frame(i === 0 ? TEXT : CONTINUATION, bytes(b), false),
    );
    frames.splice(1, 0, frame(PING));
    frames.push(frame(CONTINUATION));
    assertEquals(await assembled(frames), [expected], `${name}, byte by byte`);
  }
});

Deno.test("MessageAssemblerStream refuses invalid UTF-8 in a single-frame text message with 1007", async () => {
  for (const [name, data] of invalidUtf8) {
    const result = await drive([frame(TEXT, data)]);
    try {
      assertWebSocketError(result.error, 1007, /UTF-8/);
    } catch (error) {
      throw new Error(`${name}: ${error}`);
    }
  }
});

Deno.test("MessageAssemblerStream fails invalid UTF-8 in the fragment where it becomes invalid, before the final fragment", async () => {
  for (const [name, data, invalidAt] of invalidUtf8) {
    // One byte per fragment, then an empty final fragment.
    const frames = Array.from(
      data,
      (b, i) => frame(i === 0 ? TEXT : CONTINUATION, bytes(b), false),
    );
    frames.push(frame(CONTINUATION));
    const result = await drive(frames);
    try {
      assertWebSocketError(result.error, 1007, /UTF-8/);
      assertEquals(
        result.errorAtFrame,
        invalidAt ?? data.length,
        "the fragment that fails",
      );
    } catch (error) {
      throw new Error(`${name}: ${error}`);
    }
  }
});

Deno.test("MessageAssemblerStream fails Autobahn-style fragmented invalid UTF-8 early (cases 6.4.x)", async () => {
  const cases: [Uint8Array[], number][] = [
    // 6.4.1: the second fragment is invalid; the third never needs to come.
    [[utf8("κόσμε"), bytes(0xf4, 0x90, 0x80, 0x80), utf8("edited")], 1],
    // 6.4.2: the invalid byte is the first of the second fragment.
    [[
      concat([utf8("κόσμε"), bytes(0xf4)]),
      bytes(0x90, 0x80, 0x80),
      utf8("edited"),
    ], 1],
    // 6.4.3/6.4.4 style: the sequence becomes invalid inside the first fragment.
    [[
      concat([utf8("κόσμε"), bytes(0xf4, 0x90)]),
      bytes(0x80, 0x80),
      utf8("edited"),
    ], 0],
  ];
  for (const [fragments, failing] of cases) {
    const frames = fragments.map((payload, i) =>
      frame(i === 0 ? TEXT : CONTINUATION, payload, i === fragments.length - 1)
    );
    const result = await drive(frames);
    assertWebSocketError(result.error, 1007);
    assertEquals(result.errorAtFrame, failing);
  }
});

Deno.test("MessageAssemblerStream does not validate binary messages as UTF-8", async () => {
  const data = bytes(0xed, 0xa0, 0x80, 0xff, 0xc0);
  const messages = await assembled([
    frame(BINARY, data),
    frame(BINARY, data.subarray(0, 2), false),
    frame(CONTINUATION, data.subarray(2)),
  ]);
  assertEquals(messages, [data, data]);
});

Deno.test("MessageAssemblerStream validates each text message on its own", async () => {
  // A truncated sequence at the end of one message is not completed by the
  // next message.
  const result = await drive([
    frame(TEXT, bytes(0x41, 0xe2, 0x82), false),
    frame(CONTINUATION, bytes(0xac)),
    frame(TEXT, bytes(0xe2), false),
    frame(CONTINUATION, bytes(0x82), true),
    frame(TEXT, bytes(0xac)),
  ]);
  assertEquals(result.messages, ["A€"]);
  assertWebSocketError(result.error, 1007);
  assertEquals(result.errorAtFrame, 3);
});

Deno.test("MessageAssembler.push returns the message its final frame completes", () => {
  const controls: Frame[] = [];
  const assembler = new MessageAssembler({
    onControlFrame: (f) => controls.push(f),
  });
  assertEquals(assembler.push(frame(TEXT, "a", false)), undefined);
  assertEquals(assembler.push(frame(PING, "p")), undefined);
  assertEquals(controls.length, 1);
  assertEquals(assembler.push(frame(CONTINUATION, "b")), "ab");
  assertWebSocketError(
    thrownBy(() => assembler.push(frame(CONTINUATION, "c"))),
    1002,
  );
});

// A fake inflater: "compressed" payloads are the bytes XORed with 0x55, so a
// message only reads right if every frame went through it.
function fakeInflater(
  calls: { fin: boolean; maxBytes: number }[],
): MessageInflater {
  let total = 0;
  return {
    inflate(payload, fin, maxBytes) {
      calls.push({ fin, maxBytes });
      total += payload.length;
      if (total > maxBytes) {
        return Promise.reject(
          new WebSocketError(
            `expected at most ${maxBytes} inflated bytes, found ${total}`,
            { closeCode: 1009 },
          ),
        );
      }
      if (fin) total = 0;
      return Promise.resolve(payload.map((b) => b ^ 0x55));
    },
  };
}

function scramble(text: string): Uint8Array {
  return utf8(text).map((b) => b ^ 0x55);
}

Deno.test("MessageAssemblerStream inflates every frame of a message whose first frame has RSV1", async () => {
  const calls: { fin: boolean; maxBytes: number }[] = [];
  const result = await drive([
    frame(TEXT, scramble("Hel"), false, true),
    frame(PING, "p"),
    frame(CONTINUATION, scramble("lo")),
    frame(TEXT, "plain"),
    frame(BINARY, scramble("bin"), true, true),
  ], { inflater: fakeInflater(calls), maxMessageBytes: 1000 });
  assertEquals(result.error, undefined);
  assertEquals(result.messages, ["Hello", "plain", utf8("bin")]);
  assertEquals(calls, [
    { fin: false, maxBytes: 1000 },
    { fin: true, maxBytes: 1000 },
    { fin: true, maxBytes: 1000 },
  ]);
  assertEquals(result.controls.map((c) => c.duringFrame), [1]);
});

Deno.test("MessageAssemblerStream validates inflated text as UTF-8 and passes inflater errors on", async () => {
  const invalid = await drive([
    frame(TEXT, bytes(0xed ^ 0x55, 0xa0 ^ 0x55), false, true),
    frame(CONTINUATION, scramble("x")),
  ], { inflater: fakeInflater([]) });
  assertWebSocketError(invalid.error, 1007);
  assertEquals(invalid.errorAtFrame, 0);
  const tooBig = await drive([
    frame(BINARY, new Uint8Array(8), false, true),
    frame(CONTINUATION, new Uint8Array(8), false),
    frame(CONTINUATION),
  ], { inflater: fakeInflater([]), maxMessageBytes: 10 });
  assertWebSocketError(tooBig.error, 1009);
  assertEquals(tooBig.errorAtFrame, 1);
});

Deno.test("FrameDecoderStream → MessageAssemblerStream decodes the RFC 6455 §5.7 examples into messages", async () => {
  const wire = concat([
    bytes(0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58),
    frameBytes({
      opcode: TEXT,
      fin: false,
      payload: "Hel",
      maskKey: bytes(1, 2, 3, 4),
    }),
    bytes(0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58),
    frameBytes({
      opcode: CONTINUATION,
      payload: "lo",
      maskKey: bytes(5, 6, 7, 8),
    }),
    frameBytes({
      opcode: CLOSE,
      payload: bytes(0x03, 0xe8),
      maskKey: bytes(9, 9, 9, 9),
    }),
  ]);
  const controls: Frame[] = [];
  const messages = await Array.fromAsync(
    ReadableStream.from(Array.from(wire, (b) => bytes(b)))
      .pipeThrough(new FrameDecoderStream({ role: "server" }))
      .pipeThrough(
        new MessageAssemblerStream({ onControlFrame: (f) => controls.push(f) }),
      ),
  );
  assertEquals(messages, ["Hello", "Hello"]);
  assertEquals(controls.map((f) => f.opcode), [PONG, CLOSE]);
});

Deno.test("random bytes through FrameDecoder and MessageAssembler only ever fail with a WebSocketError", () => {
  // Bad input must never crash with anything else (RangeError, TypeError):
  // every failure carries the close code to send.
  const rng = seededRandom(0xf022);
  const interesting = [
    0x00,
    0x01,
    0x02,
    0x08,
    0x09,
    0x0a,
    0x80,
    0x81,
    0x82,
    0x88,
    0x89,
    0x8a,
  ];
  const codes = new Map<number, number>();
  let messages = 0;
  for (let run = 0; run < 3000; run++) {
    const role = run % 2 === 0 ? "client" : "server";
    // Mostly well-formed headers with random flags, lengths and payloads.
    const parts: Uint8Array[] = [];
    for (let f = 0; f < 1 + Math.floor(rng() * 6); f++) {
      const first = rng() < 0.8
        ? interesting[Math.floor(rng() * interesting.length)] |
          (rng() < 0.05 ? 0x40 : 0)
        : Math.floor(rng() * 256);
      const length = rng() < 0.9
        ? Math.floor(rng() * 20)
        : Math.floor(rng() * 300);
      const payload = rng() < 0.5
        ? utf8("héllo wörld €𝄞".slice(0, length))
        : randomBytes(length, rng);
      const wire = frameBytes({
        opcode: first & 0x0f,
        fin: (first & 0x80) !== 0,
        rsv1: (first & 0x40) !== 0,
        payload,
        maskKey: (role === "server") !== (rng() < 0.03)
          ? randomBytes(4, rng)
          : undefined,
      });
      wire[0] = first;
      parts.push(wire);
    }
    const input = concat(parts);
    if (rng() < 0.2) {
      input[Math.floor(rng() * input.length)] = Math.floor(rng() * 256);
    }
    const decoder = new FrameDecoder({ role, maxFrameBytes: 250 });
    const assembler = new MessageAssembler({ maxMessageBytes: 400 });
    try {
      for (let offset = 0; offset < input.length;) {
        const size = 1 + Math.floor(rng() * 40);
        decoder.decode(input.slice(offset, offset + size), (f) => {
          if (assembler.push(f) !== undefined) messages++;
        });
        offset += size;
      }
    } catch (error) {
      if (!(error instanceof WebSocketError)) throw error;
      assert(
        error.closeCode === 1002 || error.closeCode === 1007 ||
          error.closeCode === 1009,
        `unexpected close code ${error.closeCode}: ${error.message}`,
      );
      const code = error.closeCode ?? 0;
      codes.set(code, (codes.get(code) ?? 0) + 1);
    }
  }
  // The inputs reach every kind of failure, and many are valid.
  assertEquals([...codes.keys()].sort(), [1002, 1007, 1009]);
  assert(messages > 200, `${messages} messages`);
});

Deno.test("MessageAssembler.pushPartial fails invalid UTF-8 inside one frame before the frame is complete (Autobahn 6.4.3, 6.4.4)", () => {
  const payload = concat([
    utf8("κόσμε"),
    bytes(0xf4, 0x90, 0x80, 0x80),
    utf8("edited"),
  ]);
  const kosme = utf8("κόσμε").length;
  // 6.4.3: the valid part, then the invalid code point; 6.4.4: the valid
  // part and F4 (still valid), then 90.
  for (const cut of [kosme, kosme + 1]) {
    const assembler = new MessageAssembler();
    assembler.pushPartial(frame(TEXT, payload.subarray(0, cut)));
    assertWebSocketError(
      thrownBy(() =>
        assembler.pushPartial(frame(TEXT, payload.subarray(cut, kosme + 2)))
      ),
      1007,
      /UTF-8/,
    );
  }
});

Deno.test("MessageAssembler.pushPartial: the frame's push validates the rest, a code point may straddle them", () => {
  const text = "Hello, wörld ✓ 😀 κόσμε";
  const payload = utf8(text);
  for (let cut = 0; cut <= payload.length; cut++) {
    // A single-frame message, and the first and last frames of a
    // fragmented one, each arriving in two pieces.
    const assembler = new MessageAssembler();
    if (cut > 0) assembler.pushPartial(frame(TEXT, payload.subarray(0, cut)));
    assertEquals(assembler.push(frame(TEXT, payload)), text);
    if (cut > 0) {
      assembler.pushPartial(frame(TEXT, payload.subarray(0, cut), false));
    }
    assertEquals(assembler.push(frame(TEXT, payload, false)), undefined);
    if (cut > 0) {
      assembler.pushPartial(frame(CONTINUATION, payload.subarray(0, cut)));
    }
    assertEquals(assembler.push(frame(CONTINUATION, payload)), text + text);
  }
  // A code point cut at the end of the frame is invalid at its push.
  const assembler = new MessageAssembler();
  assembler.pushPartial(frame(TEXT, bytes(0x41, 0xe2)));
  assertWebSocketError(
    thrownBy(() => assembler.push(frame(TEXT, bytes(0x41, 0xe2, 0x82)))),
    1007,
  );
});

Deno.test("MessageAssembler.pushPartial leaves binary, compressed and control frames alone", () => {
  const invalid = bytes(0xff, 0xfe);
  const assembler = new MessageAssembler({
    inflater: { inflate: (payload) => Promise.resolve(payload) },
  });
  assembler.pushPartial(frame(BINARY, invalid));
  assertEquals(assembler.push(frame(BINARY, invalid)), invalid);
  // Compressed text is validated once inflated, not on the wire.
  assembler.pushPartial(frame(TEXT, invalid, true, true));
  assembler.pushPartial(frame(0x9, invalid));
  assertEquals(assembler.push(frame(BINARY, invalid, false)), undefined);
  assembler.pushPartial(frame(CONTINUATION, invalid));
  assertEquals(
    assembler.push(frame(CONTINUATION, invalid)),
    bytes(0xff, 0xfe, 0xff, 0xfe),
  );
});
