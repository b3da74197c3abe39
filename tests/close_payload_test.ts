import { assertEquals, assertThrows } from "@std/assert";
import { encodeClosePayload, parseClosePayload } from "../src/close_payload.ts";
import {
  assertWebSocketError,
  bytes,
  concat,
  hex,
  thrownBy,
  utf8,
} from "./_codec_util.ts";

function codeBytes(code: number): Uint8Array {
  return bytes(code >>> 8, code & 0xff);
}

Deno.test("parseClosePayload reads an empty payload as 1005 with no reason (RFC 6455 §7.1.5)", () => {
  assertEquals(parseClosePayload(new Uint8Array(0)), {
    closeCode: 1005,
    reason: "",
  });
});

Deno.test("parseClosePayload refuses a 1-byte payload with 1002", () => {
  for (const payload of [bytes(0x03), bytes(0xe8), bytes(0x00)]) {
    assertWebSocketError(
      thrownBy(() => parseClosePayload(payload)),
      1002,
      /1 byte/,
    );
  }
});

Deno.test("parseClosePayload reads a code alone and a code with a reason", () => {
  assertEquals(parseClosePayload(bytes(0x03, 0xe8)), {
    closeCode: 1000,
    reason: "",
  });
  assertEquals(parseClosePayload(bytes(0x03, 0xe8, 0x62, 0x79, 0x65)), {
    closeCode: 1000,
    reason: "bye",
  });
  assertEquals(parseClosePayload(concat([codeBytes(4999), utf8("κόσμε 𝄞")])), {
    closeCode: 4999,
    reason: "κόσμε 𝄞",
  });
});

Deno.test("parseClosePayload accepts a reason of 123 bytes (the most a control frame holds)", () => {
  const reason = "€".repeat(41); // 123 bytes
  assertEquals(parseClosePayload(concat([codeBytes(1000), utf8(reason)])), {
    closeCode: 1000,
    reason,
  });
});

const invalidCodes = [
  0,
  1,
  999,
  1004,
  1005,
  1006,
  1015,
  1016,
  1100,
  2000,
  2999,
  5000,
  65535,
];
const validCodes = [
  1000,
  1001,
  1002,
  1003,
  1007,
  1008,
  1009,
  1010,
  1011,
  1012,
  1013,
  1014,
  3000,
  3999,
  4000,
  4999,
];

Deno.test("parseClosePayload refuses codes that may not be sent with 1002 (RFC 6455 §7.4)", () => {
  for (const code of invalidCodes) {
    for (const reason of ["", "why"]) {
      const payload = concat([codeBytes(code), utf8(reason)]);
      assertWebSocketError(
        thrownBy(() => parseClosePayload(payload)),
        1002,
        new RegExp(`\\b${code}\\b`),
      );
    }
  }
});

Deno.test("parseClosePayload accepts codes 1000-1003, 1007-1014 and 3000-4999", () => {
  for (const code of validCodes) {
    assertEquals(parseClosePayload(codeBytes(code)), {
      closeCode: code,
      reason: "",
    });
    assertEquals(parseClosePayload(concat([codeBytes(code), utf8("ok")])), {
      closeCode: code,
      reason: "ok",
    });
  }
});

Deno.test("parseClosePayload refuses a reason that is not UTF-8 with 1007", () => {
  const invalid = [
    bytes(0xed, 0xa0, 0x80), // surrogate
    bytes(0xf4, 0x90, 0x80, 0x80), // above U+10FFFF
    bytes(0xc0, 0xaf), // overlong
    bytes(0x61, 0xe2, 0x82), // truncated
    bytes(0xff),
  ];
  for (const reason of invalid) {
    assertWebSocketError(
      thrownBy(() => parseClosePayload(concat([codeBytes(1000), reason]))),
      1007,
      /UTF-8[^]*reason|reason[^]*UTF-8/i,
    );
  }
});

Deno.test("parseClosePayload checks the code before the reason", () => {
  // An invalid code and an invalid reason: the code is the first problem.
  assertWebSocketError(
    thrownBy(() => parseClosePayload(bytes(0x03, 0xed, 0xff))),
    1002,
  );
});

Deno.test("encodeClosePayload writes the code big-endian and the reason as UTF-8", () => {
  assertEquals(hex(encodeClosePayload(1000, "bye")), "03 e8 62 79 65");
  assertEquals(hex(encodeClosePayload(1000)), "03 e8");
  assertEquals(hex(encodeClosePayload(4999, "")), "13 87");
  assertEquals(encodeClosePayload(), new Uint8Array(0));
});

Deno.test("encodeClosePayload round-trips through parseClosePayload", () => {
  for (const code of validCodes) {
    for (const reason of ["", "bye", "κόσμε 𝄞", "€".repeat(41)]) {
      assertEquals(parseClosePayload(encodeClosePayload(code, reason)), {
        closeCode: code,
        reason,
      });
    }
  }
  assertEquals(parseClosePayload(encodeClosePayload()), {
    closeCode: 1005,
    reason: "",
  });
});

Deno.test("encodeClosePayload refuses what a Close frame may not carry", () => {
  // A reason over 123 bytes would make the control frame over 125 bytes.
  assertThrows(
    () => encodeClosePayload(1000, "€".repeat(41) + "a"),
    RangeError,
    "123",
  );
  // Codes reserved for reporting, or unassigned, must not be sent.
  for (const code of invalidCodes) {
    assertThrows(() => encodeClosePayload(code), RangeError, `${code}`);
  }
  // A reason needs a code.
  assertThrows(() => encodeClosePayload(undefined, "why"), RangeError);
});
