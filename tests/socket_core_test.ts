// The sans-I/O socket core, in memory: bytes in, frames and events out, time
// as an input. No transport, no timers, no streams.

import { assert, assertEquals, assertInstanceOf } from "@std/assert";
import { Opcode } from "../src/frame.ts";
import { FrameDecoder } from "../src/frame_decoder.ts";
import type { Frame } from "../src/frame.ts";
import { encodeFrame } from "../src/frame_encoder.ts";
import type { Message } from "../src/message_assembler.ts";
import { createMessageDeflate } from "../src/permessage_deflate_codec.ts";
import { SocketCore, type SocketCoreInit } from "../src/socket_core.ts";
import type { TimerKind } from "../src/socket_core_host.ts";
import { WebSocketError } from "../src/websocket_error.ts";
import {
  assertWebSocketError,
  bytes,
  concat,
  frameBytes,
  type RawFrame,
  thrownBy,
  utf8,
} from "./_codec_util.ts";

const KEY = bytes(0x37, 0xfa, 0x21, 0x3d);

// What a client sends: `frame` masked with KEY.
function fromClient(frame: RawFrame): Uint8Array {
  return frameBytes({ ...frame, maskKey: KEY });
}

interface HarnessOptions
  extends Partial<Omit<SocketCoreInit, "sink" | "host">> {
  // Whether the host answers the peer's Close at once (an application that
  // is not writing); else the test answers.
  answerAtOnce?: boolean;
  // Whether the write queue is drained the moment the core asks: then
  // endWhenWritten ends the socket at once.
  drained?: boolean;
  // Whether the application has messages left to read when the socket
  // fails; else the host reports at once that it has read them all.
  unread?: boolean;
}

// A core with a recording sink and host, and a fake clock for its timers.
function harness(role: "client" | "server", options: HarnessOptions = {}) {
  const wire: Uint8Array[] = [];
  const events: string[] = [];
  const messages: Message[] = [];
  const errors: WebSocketError[] = [];
  // The errors `writable` failed with.
  const sendingStopped: WebSocketError[] = [];
  const timers = new Map<TimerKind, number>();
  const clock = { now: 0 };
  const pendingEnds: (() => void)[] = [];
  const { answerAtOnce = true, drained = true, unread = false, ...init } =
    options;
  const core: SocketCore = new SocketCore({
    role,
    ...init,
    sink: {
      sendFrame(opcode, payload, rsv1, fin = true) {
        // The write queue's job, done simply: masked by a client.
        wire.push(
          concat(
            encodeFrame({ opcode, payload, rsv1, fin }, role === "client"),
          ),
        );
        return false;
      },
    },
    host: {
      message(message) {
        messages.push(message);
        events.push(
          typeof message === "string"
            ? `message "${message}"`
            : `message ${message.length} bytes`,
        );
      },
      closeReceived(info) {
        events.push(`closeReceived ${info.closeCode} "${info.reason}"`);
        if (answerAtOnce && core.closeSent === undefined) core.close();
      },
      failed(error) {
        errors.push(error);
        events.push(`failed ${error.closeCode}`);
        if (!unread) core.messagesRead();
      },
      stopSending(error) {
        sendingStopped.push(error);
      },
      endWhenWritten(closeCode, reason, wasClean) {
        events.push(`endWhenWritten ${closeCode}`);
        const end = () => core.end(closeCode, reason, wasClean);
        if (drained) end();
        else pendingEnds.push(end);
      },
      ended(closeCode, reason, wasClean) {
        events.push(`ended ${closeCode} "${reason}" ${wasClean}`);
      },
      setTimer(kind, delayMs) {
        timers.set(kind, clock.now + delayMs);
      },
      clearTimer(kind) {
        timers.delete(kind);
      },
    },
  });
  // Moves the fake clock on by `ms`, firing the timers due on the way.
  function advance(ms: number): void {
    const until = clock.now + ms;
    while (true) {
      let next: [TimerKind, number] | undefined;
      for (const entry of timers) {
        if (entry[1] <= until && (!next || entry[1] < next[1])) next = entry;
      }
      if (!next) break;
      clock.now = next[1];
      timers.delete(next[0]);
      core.onTimer(next[0]);
    }
    clock.now = until;
  }
  // What the core wrote since the last call, as one byte string.
  function written(): Uint8Array {
    return concat(wire.splice(0));
  }
  return {
    core,
    events,
    messages,
    errors,
    sendingStopped,
    timers,
    advance,
    written,
    pendingEnds,
  };
}

// The frames a client wrote (masked), decoded as a server reads them.
function clientFrames(bytes: Uint8Array): Frame[] {
  const frames: Frame[] = [];
  new FrameDecoder({ role: "server" }).decode(bytes, (frame) => {
    frames.push({ ...frame, payload: frame.payload.slice() });
  });
  return frames;
}

// ---- the closing handshake (RFC 6455 §7) ----------------------------------

Deno.test("server, peer closes first: the Close is echoed byte for byte and the server ends the connection, clean", () => {
  const { core, events, written } = harness("server");
  const close = fromClient({
    opcode: Opcode.Close,
    payload: bytes(0x0f, 0xa0, 0x62, 0x79, 0x65),
  });
  assertEquals(core.receive(close), close.length);
  // Close 4000 "bye", unmasked, as received.
  assertEquals(written(), bytes(0x88, 0x05, 0x0f, 0xa0, 0x62, 0x79, 0x65));
  assertEquals(events, [
    'closeReceived 4000 "bye"',
    "endWhenWritten 4000",
    'ended 4000 "bye" true',
  ]);
  assert(core.ended);
});

Deno.test("server, we close first: Close 1000 goes out, the peer's answer completes the handshake", () => {
  const { core, events, timers, written } = harness("server");
  core.close({ closeCode: 1000, reason: "" });
  assertEquals(written(), bytes(0x88, 0x02, 0x03, 0xe8));
  // RFC 6455 §7.1.1: the wait for the peer's Close is bounded.
  assertEquals(timers.get("close"), 5000);
  assertEquals(core.sendable, false);
  const answer = fromClient({
    opcode: Opcode.Close,
    payload: bytes(0x03, 0xe8),
  });
  assertEquals(core.receive(answer), answer.length);
  assertEquals(written(), new Uint8Array(0));
  assertEquals(events, [
    'closeReceived 1000 ""',
    "endWhenWritten 1000",
    'ended 1000 "" true',
  ]);
  assertEquals(timers.size, 0);
});

Deno.test("client, we close first: a masked Close goes out; after the server's Close the client waits for the server to end TCP", () => {
  const { core, events, timers, written } = harness("client");
  core.close({ closeCode: 4001, reason: "done" });
  const sent = written();
  assertEquals(sent[0], 0x88);
  assertEquals(sent[1], 0x80 | 6); // masked (RFC 6455 §5.3), 6 bytes
  assertEquals(clientFrames(sent).map((frame) => frame.payload), [
    bytes(0x0f, 0xa1, ...utf8("done")),
  ]);
  core.receive(
    frameBytes({ opcode: Opcode.Close, payload: bytes(0x0f, 0xa1) }),
  );
  assertEquals(written(), new Uint8Array(0));
  assertEquals(events, ['closeReceived 4001 ""']);
  // RFC 6455 §7.1.1: the server ends TCP first; the client waits for it.
  assert(timers.has("close"));
  core.transportEnded();
  assertEquals(events.slice(1), ["endWhenWritten 4001", 'ended 4001 "" true']);
});

Deno.test("client, peer closes first: its code is echoed, masked, and the close timeout ends the wait for TCP, still clean", () => {
  const { core, events, advance, written } = harness("client", {
    closeTimeoutMs: 100,
  });
  core.receive(
    frameBytes({ opcode: Opcode.Close, payload: bytes(0x03, 0xe9) }),
  );
  assertEquals(clientFrames(written()).map((f) => [f.opcode, f.payload]), [
    [Opcode.Close, bytes(0x03, 0xe9)],
  ]);
  advance(99);
  assertEquals(events, ['closeReceived 1001 ""']);
  advance(1);
  assertEquals(events, ['closeReceived 1001 ""', 'ended 1001 "" true']);
});

Deno.test("a Close without a code is answered with an empty Close and reported as 1005", () => {
  const { core, events, written } = harness("server");
  core.receive(fromClient({ opcode: Opcode.Close }));
  assertEquals(written(), bytes(0x88, 0x00));
  assertEquals(events.at(-1), 'ended 1005 "" true');
});

Deno.test("our Close unanswered: the close timeout ends the socket with 1006, not clean", () => {
  const { core, events, advance } = harness("server", { closeTimeoutMs: 50 });
  core.close();
  advance(49);
  assertEquals(events, []);
  advance(1);
  assertEquals(events, ['ended 1006 "" false']);
});

Deno.test("the application answers the peer's Close late: waitForAnswer bounds the wait, then the Close is answered", () => {
  const { core, events, advance, written } = harness("server", {
    answerAtOnce: false,
    closeTimeoutMs: 30,
  });
  // A text message, then the Close, in one chunk.
  core.receive(concat([
    fromClient({ opcode: Opcode.Text, payload: "last" }),
    fromClient({ opcode: Opcode.Close, payload: bytes(0x03, 0xe8) }),
  ]));
  assertEquals(events, ['message "last"', 'closeReceived 1000 ""']);
  // The application may still send before it answers.
  core.send(Opcode.Text, utf8("reply"), false);
  core.waitForAnswer();
  advance(30);
  assertEquals(
    written(),
    concat([
      bytes(0x81, 0x05, ...utf8("reply")),
      bytes(0x88, 0x02, 0x03, 0xe8),
    ]),
  );
  assertEquals(events.slice(2), ["endWhenWritten 1000", 'ended 1000 "" true']);
});

Deno.test("nothing after the peer's Close is processed, not even bytes that are no frame", () => {
  const { core, events } = harness("server", { answerAtOnce: false });
  const chunk = concat([
    fromClient({ opcode: Opcode.Close, payload: bytes(0x03, 0xe8) }),
    fromClient({ opcode: Opcode.Text, payload: "after" }),
    bytes(0xff, 0xff, 0xff),
  ]);
  assertEquals(core.receive(chunk), chunk.length);
  assertEquals(core.receive(bytes(0x00)), 1);
  assertEquals(events, ['closeReceived 1000 ""']);
  // A server reads nothing more (RFC 6455 §7.1.1).
  assert(core.inputDone);
});

Deno.test("a FIN after the peer's Close still lets the Close be answered, then the socket ends clean", () => {
  const { core, events, written } = harness("client", { answerAtOnce: false });
  core.receive(
    frameBytes({ opcode: Opcode.Close, payload: bytes(0x03, 0xe8) }),
  );
  core.transportEnded();
  assertEquals(events, ['closeReceived 1000 ""']);
  core.close();
  assertEquals(clientFrames(written()).length, 1);
  assertEquals(events.slice(1), ["endWhenWritten 1000", 'ended 1000 "" true']);
});

// ---- ping and pong (RFC 6455 §5.5.2–3) --------------------------------------

Deno.test("a Ping is answered with a Pong carrying its payload, byte for byte", () => {
  const { core, written } = harness("server");
  core.receive(fromClient({ opcode: Opcode.Ping, payload: "are you there" }));
  assertEquals(written(), bytes(0x8a, 13, ...utf8("are you there")));
});

Deno.test("a Ping between the fragments of a message is answered at once, before the message completes", () => {
  const { core, events, messages, written } = harness("server");
  core.receive(fromClient({ opcode: Opcode.Text, fin: false, payload: "Hel" }));
  core.receive(fromClient({ opcode: Opcode.Ping, payload: "x" }));
  assertEquals(written(), bytes(0x8a, 0x01, 0x78));
  assertEquals(events, []);
  core.receive(fromClient({ opcode: Opcode.Continuation, payload: "lo" }));
  assertEquals(messages, ["Hello"]);
});

Deno.test("a client's Pong is masked; a Ping after our Close is not answered", () => {
  const { core, written } = harness("client");
  core.receive(frameBytes({ opcode: Opcode.Ping, payload: bytes(1, 2, 3) }));
  const pong = written();
  assertEquals(pong[0], 0x8a);
  assertEquals(clientFrames(pong)[0].payload, bytes(1, 2, 3));
  core.close();
  written();
  core.receive(frameBytes({ opcode: Opcode.Ping, payload: bytes(4) }));
  assertEquals(written(), new Uint8Array(0));
});

Deno.test("ping() refuses more than 125 bytes and sends nothing once closing", () => {
  const { core, written } = harness("server");
  assertInstanceOf(thrownBy(() => core.ping(new Uint8Array(126))), RangeError);
  core.ping(bytes(9));
  assertEquals(written(), bytes(0x89, 0x01, 0x09));
  core.close();
  written();
  core.ping(bytes(9));
  assertEquals(written(), new Uint8Array(0));
});

// ---- keep-alive, with time as an input ---------------------------------------

Deno.test("keep-alive: a Ping every interval, the next one counted from the Pong", () => {
  const { core, events, timers, advance, written } = harness("server", {
    pingIntervalMs: 1000,
    pongTimeoutMs: 300,
  });
  advance(999);
  assertEquals(written(), new Uint8Array(0));
  advance(1);
  assertEquals(written(), bytes(0x89, 0x00));
  assertEquals(timers.get("pong"), 1300);
  advance(200);
  core.receive(fromClient({ opcode: Opcode.Pong }));
  assertEquals(timers.has("pong"), false);
  // RFC 6455 §5.5.3: the Pong answered our Ping; the next comes an
  // interval after it.
  assertEquals(timers.get("ping"), 2200);
  advance(1000);
  assertEquals(written(), bytes(0x89, 0x00));
  assertEquals(events, []);
});

Deno.test("keep-alive: an unsolicited Pong changes nothing", () => {
  const { core, timers, advance } = harness("server", { pingIntervalMs: 1000 });
  advance(500);
  core.receive(fromClient({ opcode: Opcode.Pong, payload: "beat" }));
  assertEquals(timers.get("ping"), 1000);
});

Deno.test("keep-alive: a late Pong fails the socket with 1006, which is reported and never sent", () => {
  const { events, advance, written } = harness("server", {
    pingIntervalMs: 1000,
    pongTimeoutMs: 500,
  });
  advance(1000);
  written();
  advance(499);
  assertEquals(events, []);
  advance(1);
  assertEquals(written(), new Uint8Array(0));
  assertEquals(events, [
    "failed 1006",
    "endWhenWritten 1006",
    'ended 1006 "the peer stopped answering pings: no Pong within 500 ms" false',
  ]);
});

Deno.test("keep-alive stops once our Close is sent", () => {
  const { core, timers } = harness("server", { pingIntervalMs: 1000 });
  assert(timers.has("ping"));
  core.close();
  assertEquals([...timers.keys()], ["close"]);
});

// ---- failing the connection (RFC 6455 §7.1.7) ---------------------------------

Deno.test("fail with 1002: messages before the violation are handed out first, then a Close 1002 with the reason goes out", () => {
  const { core, events, written, advance } = harness("server");
  const chunk = concat([
    fromClient({ opcode: Opcode.Text, payload: "first" }),
    // An unmasked frame from a client (RFC 6455 §5.1).
    frameBytes({ opcode: Opcode.Text, payload: "bad" }),
  ]);
  const error = thrownBy(() => core.receive(chunk));
  assertWebSocketError(error, 1002);
  assertEquals(events, ['message "first"']);
  core.readFailed(error);
  // One task after the application has read them: the Close.
  advance(0);
  const reason = (error as WebSocketError).message;
  assertEquals(
    written(),
    concat([bytes(0x88, 2 + utf8(reason).length, 0x03, 0xea), utf8(reason)]),
  );
  assertEquals(events.slice(1), [
    "failed 1002",
    "endWhenWritten 1002",
    `ended 1002 "${reason}" false`,
  ]);
});

// The code of the Close frame a server wrote, and its reason.
function closeOf(wire: Uint8Array): [number, string] {
  assertEquals(wire[0], 0x88);
  const length = wire[1];
  assertEquals(wire.length, 2 + length);
  return [
    (wire[2] << 8) | wire[3],
    new TextDecoder().decode(wire.subarray(4)),
  ];
}

Deno.test("fail with 1007 for invalid UTF-8 and 1009 for a message over the limit", () => {
  const invalid = harness("server");
  const utf8Error = thrownBy(() =>
    invalid.core.receive(
      fromClient({ opcode: Opcode.Text, payload: bytes(0xc3, 0x28) }),
    )
  );
  assertWebSocketError(utf8Error, 1007);
  invalid.core.readFailed(utf8Error);
  invalid.advance(0);
  assertEquals(closeOf(invalid.written())[0], 1007);

  const large = harness("server", { maxMessageBytes: 4 });
  const sizeError = thrownBy(() =>
    large.core.receive(fromClient({ opcode: Opcode.Binary, payload: "12345" }))
  );
  assertWebSocketError(sizeError, 1009);
  large.core.readFailed(sizeError);
  large.advance(0);
  assertEquals(closeOf(large.written())[0], 1009);
  assertEquals(large.events[0], "failed 1009");
});

Deno.test("fail with 1011: a long reason is cut to 123 bytes at a character boundary", () => {
  const { core, events, written, pendingEnds, timers, advance } = harness(
    "server",
    { drained: false },
  );
  core.fail(
    new WebSocketError(`expected to cope, found ${"é".repeat(100)}`, {
      closeCode: 1011,
    }),
  );
  advance(0);
  const [code, reason] = closeOf(written());
  assertEquals(code, 1011);
  assert(utf8(reason).length <= 123);
  assert(reason.endsWith("é..."));
  assertEquals(events, ["failed 1011", "endWhenWritten 1011"]);
  // A second failure changes nothing; once the Close has left, the end.
  core.fail(new WebSocketError("again", { closeCode: 1002 }));
  assertEquals(written(), new Uint8Array(0));
  assertEquals(pendingEnds.length, 1);
  pendingEnds[0]();
  assertEquals(events.at(-1), `ended 1011 "${reason}" false`);
  assertEquals(timers.size, 0);
});

Deno.test("fail: the close timeout ends the socket when our Close cannot leave", () => {
  const { core, events, advance } = harness("server", {
    drained: false,
    closeTimeoutMs: 20,
  });
  core.fail(new WebSocketError("expected x, found y", { closeCode: 1002 }));
  advance(20);
  assertEquals(events.at(-1), 'ended 1002 "expected x, found y" false');
});

// ---- a failure waits for the application (RFC 6455 §7.1.7) ------------------

// A text "first", then an unmasked frame from a client (RFC 6455 §5.1);
// fresh each time, as the core unmasks what it receives in place.
function firstThenAViolation(): Uint8Array {
  return concat([
    fromClient({ opcode: Opcode.Text, payload: "first" }),
    frameBytes({ opcode: Opcode.Text, payload: "bad" }),
  ]);
}

Deno.test("a failure waits for the application to read: what it sends meanwhile goes first, our Close one task after it read the last message", () => {
  const { core, events, written, advance, timers, sendingStopped } = harness(
    "server",
    { unread: true },
  );
  core.readFailed(thrownBy(() => core.receive(firstThenAViolation())));
  assertEquals(events, ['message "first"', "failed 1002"]);
  // Held up to the close timeout while "first" waits to be read.
  assertEquals(written(), new Uint8Array(0));
  assertEquals(timers.get("close"), 5000);
  advance(4999);
  assertEquals(written(), new Uint8Array(0));
  assertEquals(sendingStopped, []);
  // The application reads it and answers within the same task.
  core.messagesRead();
  core.send(Opcode.Text, utf8("echo"), false);
  assertEquals(written(), bytes(0x81, 0x04, ...utf8("echo")));
  advance(0);
  assertEquals(sendingStopped.map((error) => error.closeCode), [1002]);
  assertEquals(closeOf(written())[0], 1002);
  assertEquals(events.slice(2), [
    "endWhenWritten 1002",
    `ended 1002 "${sendingStopped[0].message}" false`,
  ]);
});

Deno.test("a failure the application does not read is sent at the close timeout, and reading later keeps the wait to end", () => {
  const { core, events, written, advance, timers } = harness("server", {
    unread: true,
    drained: false,
    closeTimeoutMs: 100,
  });
  core.readFailed(thrownBy(() => core.receive(firstThenAViolation())));
  advance(99);
  assertEquals(written(), new Uint8Array(0));
  advance(1);
  assertEquals(closeOf(written())[0], 1002);
  assertEquals(events.at(-1), "endWhenWritten 1002");
  // The Close cannot leave; reading now does not restart anything.
  core.messagesRead();
  assertEquals(timers.get("close"), 200);
  advance(100);
  assertEquals(events.at(-1)?.startsWith("ended 1002"), true);
});

Deno.test("close() while a failure waits sends the failure's Close at once, not the code asked for", () => {
  const { core, written, sendingStopped } = harness("server", { unread: true });
  core.readFailed(thrownBy(() => core.receive(firstThenAViolation())));
  core.close({ closeCode: 4000, reason: "" });
  assertEquals(closeOf(written())[0], 1002);
  assertEquals(sendingStopped.length, 1);
  // Once: a second close sends nothing more.
  core.close();
  assertEquals(written(), new Uint8Array(0));
});

Deno.test("nothing is processed after a failure: a Ping is not answered, a Close not seen, bytes that are no frame ignored", () => {
  const { core, events, written } = harness("server", { unread: true });
  core.fail(new WebSocketError("expected x, found y", { closeCode: 1002 }));
  const ping = fromClient({ opcode: Opcode.Ping, payload: "p" });
  assertEquals(core.receive(ping), ping.length);
  const close = fromClient({ opcode: Opcode.Close, payload: bytes(3, 0xe8) });
  assertEquals(core.receive(close), close.length);
  assertEquals(core.receive(bytes(0xff, 0xff, 0xff)), 3);
  assertEquals(written(), new Uint8Array(0));
  assertEquals(core.closeReceived, undefined);
  assertEquals(events, ["failed 1002"]);
});

// A client's deflater (compressing every message) and a server's inflater,
// with context takeover.
function deflatePair() {
  const params = {
    serverNoContextTakeover: false,
    clientNoContextTakeover: false,
    serverMaxWindowBits: 15,
    clientMaxWindowBits: 15,
  };
  return {
    sender: createMessageDeflate(params, "client", { threshold: 0 }),
    receiver: createMessageDeflate(params, "server"),
  };
}

Deno.test("a failure while a message is inflated drops it and the rest of its chunk", async () => {
  const { sender, receiver } = deflatePair();
  const { core, events } = harness("server", {
    inflater: receiver.inflater,
    unread: true,
  });
  const compressed = await sender.deflate(utf8("squeezed"))!;
  const chunk = concat([
    fromClient({ opcode: Opcode.Text, rsv1: true, payload: compressed }),
    fromClient({ opcode: Opcode.Text, payload: "plain" }),
  ]);
  const inflating = core.receive(chunk);
  if (typeof inflating === "number") throw new Error("expected a promise");
  core.fail(new WebSocketError("expected x, found y", { closeCode: 1006 }));
  assertEquals(core.resumeReceive(await inflating), chunk.length);
  assertEquals(events, ["failed 1006"]);
  sender.close();
  receiver.close();
});

Deno.test("invalid UTF-8 early in a text frame fails before the frame is complete (RFC 6455 §8.1)", () => {
  const { core } = harness("server");
  const frame = fromClient({
    opcode: Opcode.Text,
    payload: concat([utf8("ok"), bytes(0xff), new Uint8Array(100)]),
  });
  // The header, "ok" and the invalid byte: 3 of the 103 payload bytes.
  const error = thrownBy(() => core.receive(frame.subarray(0, 8 + 3)));
  assertWebSocketError(error, 1007);
});

Deno.test("the transport ending without a Close is reported as 1006, with its cause; no Close is sent", () => {
  const { core, events, errors, written } = harness("server");
  const partial = fromClient({ opcode: Opcode.Binary, payload: "12345678" });
  // Part of a frame: nothing used yet, the bytes are passed again later.
  assertEquals(core.receive(partial.subarray(0, 9)), 0);
  core.transportEnded(new Error("connection reset"));
  assertEquals(written(), new Uint8Array(0));
  assertEquals(events, ["failed 1006", 'ended 1006 "" false']);
  // RFC 6455 §7.1.5: 1006; the bytes ended inside a frame, and it says so.
  assertEquals(
    errors[0].message,
    "the connection ended inside a frame: connection reset",
  );
});

Deno.test("the transport ending between frames is reported as ended without a Close frame, and writable fails with the same error", () => {
  const { core, events, errors, sendingStopped } = harness("server");
  const whole = fromClient({ opcode: Opcode.Binary, payload: "12345678" });
  assertEquals(core.receive(whole), whole.length);
  core.transportEnded();
  assertEquals(events, [
    "message 8 bytes",
    "failed 1006",
    'ended 1006 "" false',
  ]);
  assertEquals(errors[0].message, "the connection ended without a Close frame");
  assertEquals(sendingStopped, errors);
});

Deno.test("send() emits whole messages and fragments, and refuses data once our Close is sent", () => {
  const { core, written } = harness("server");
  core.send(Opcode.Text, utf8("Hel"), false, false);
  core.send(Opcode.Continuation, utf8("lo"), false, true);
  assertEquals(
    written(),
    bytes(0x01, 0x03, ...utf8("Hel"), 0x80, 0x02, ...utf8("lo")),
  );
  core.close();
  const error = thrownBy(() => core.send(Opcode.Binary, bytes(1), false));
  assertInstanceOf(error, TypeError);
});

Deno.test("a compressed message is handed back as a promise to await, and the frames after it follow in order", async () => {
  const { sender, receiver } = deflatePair();
  const { core, events } = harness("server", { inflater: receiver.inflater });
  const compressed = await sender.deflate(utf8("squeezed"))!;
  const chunk = concat([
    fromClient({ opcode: Opcode.Text, rsv1: true, payload: compressed }),
    fromClient({ opcode: Opcode.Text, payload: "plain" }),
    fromClient({ opcode: Opcode.Ping, payload: "p" }),
  ]);
  let used = core.receive(chunk);
  assertInstanceOf(used, Promise);
  assertEquals(events, []);
  while (typeof used !== "number") used = core.resumeReceive(await used);
  assertEquals(used, chunk.length);
  assertEquals(events, ['message "squeezed"', 'message "plain"']);
  sender.close();
  receiver.close();
});
