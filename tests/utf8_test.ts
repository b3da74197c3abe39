import { assertEquals } from "@std/assert";
import { decodeUtf8, Utf8Validator } from "../src/utf8.ts";
import {
  assertWebSocketError,
  bytes,
  concat,
  randomBytes,
  seededRandom,
  thrownBy,
  utf8,
} from "./_codec_util.ts";

// The piece in which a text split into `pieces` stops being valid UTF-8:
// its index, `pieces.length` when only the end is missing, or -1 when the
// text is valid.
function failingPiece(
  pieces: readonly Uint8Array[],
  push: (piece: Uint8Array, final: boolean) => void,
): number {
  for (let index = 0; index < pieces.length; index++) {
    try {
      push(pieces[index], index === pieces.length - 1);
    } catch {
      return index;
    }
  }
  return -1;
}

// The reference: the WHATWG streaming decoder reports an error in the
// piece holding the first byte that no continuation could make valid.
function referencePiece(pieces: readonly Uint8Array[]): number {
  const decoder = new TextDecoder("utf-8", { fatal: true });
  return failingPiece(
    pieces,
    (piece, final) => decoder.decode(piece, { stream: !final }),
  );
}

function validatorPiece(pieces: readonly Uint8Array[]): number {
  const validator = new Utf8Validator();
  return failingPiece(pieces, (piece, final) => validator.push(piece, final));
}

function splitAt(data: Uint8Array, cuts: number[]): Uint8Array[] {
  const pieces: Uint8Array[] = [];
  let from = 0;
  for (const cut of [...cuts, data.length]) {
    pieces.push(data.subarray(from, cut));
    from = cut;
  }
  return pieces;
}

// Valid text with 1- to 4-byte characters, and the sequences that are
// invalid at their first, second, third or fourth byte (Unicode Table 3-7).
const samples: Uint8Array[] = [
  utf8("Hello, wörld ✓ 😀 κόσμε 漢字"),
  concat([utf8("κόσμε"), bytes(0xf4, 0x90, 0x80, 0x80), utf8("edited")]),
  concat([utf8("κόσμε"), bytes(0xf4, 0x8f, 0xbf, 0xbf), utf8("ok")]),
  concat([utf8("abc"), bytes(0xed, 0xa0, 0x80)]), // a surrogate
  concat([utf8("abc"), bytes(0xe0, 0x9f, 0xbf)]), // overlong
  concat([utf8("abc"), bytes(0xf0, 0x8f, 0xbf, 0xbf)]), // overlong
  concat([utf8("abc"), bytes(0xc0, 0xaf)]),
  concat([utf8("abc"), bytes(0xc2)]), // truncated at the end
  concat([utf8("abc"), bytes(0xf0, 0x90, 0x80)]), // truncated at the end
  concat([utf8("abc"), bytes(0xe2, 0x82, 0x41)]), // cut short by ASCII
  concat([utf8("é"), bytes(0x80)]), // one continuation too many
  bytes(0xf8, 0x88, 0x80, 0x80, 0x80),
  bytes(0xff),
  new Uint8Array(0),
];

Deno.test("Utf8Validator fails in the same piece as the WHATWG streaming decoder, for every split in two and three", () => {
  for (const sample of samples) {
    for (let first = 0; first <= sample.length; first++) {
      assertEquals(
        validatorPiece(splitAt(sample, [first])),
        referencePiece(splitAt(sample, [first])),
        `${sample} cut at ${first}`,
      );
      for (let second = first; second <= sample.length; second++) {
        const pieces = splitAt(sample, [first, second]);
        assertEquals(
          validatorPiece(pieces),
          referencePiece(pieces),
          `${sample} cut at ${first} and ${second}`,
        );
      }
    }
  }
});

Deno.test("Utf8Validator agrees with the WHATWG streaming decoder on random bytes in random pieces", () => {
  const random = seededRandom(19);
  for (let run = 0; run < 2000; run++) {
    // Mostly valid text with a few random bytes mixed in.
    const text = utf8(
      Array.from(
        { length: 1 + Math.floor(random() * 12) },
        () => ["a", "é", "✓", "😀", "κ"][Math.floor(random() * 5)],
      ).join(""),
    );
    const noise = randomBytes(Math.floor(random() * 3), random);
    const data = concat([text, noise, text]);
    const cuts = Array.from(
      { length: Math.floor(random() * 4) },
      () => Math.floor(random() * (data.length + 1)),
    ).sort((a, b) => a - b);
    const pieces = splitAt(data, cuts);
    assertEquals(validatorPiece(pieces), referencePiece(pieces), `${data}`);
  }
});

Deno.test("Utf8Validator fails at the first invalid byte of a cut code point, not when more bytes come", () => {
  const validator = new Utf8Validator();
  // "κόσμε" and F4: still a valid beginning (F4 80..8F follows).
  validator.push(concat([utf8("κόσμε"), bytes(0xf4)]), false);
  // 90 after F4 would be above U+10FFFF.
  assertWebSocketError(
    thrownBy(() => validator.push(bytes(0x90), false)),
    1007,
    /UTF-8/,
  );
  // After a failure (or reset()) it starts a new text.
  validator.push(utf8("fine"), true);
});

Deno.test("Utf8Validator.reset forgets a code point cut at the end of a text", () => {
  const validator = new Utf8Validator();
  validator.push(bytes(0xe2, 0x82), false);
  validator.reset();
  validator.push(utf8("a"), true);
});

Deno.test("decodeUtf8 keeps a leading BOM and refuses invalid bytes with 1007", () => {
  assertEquals(decodeUtf8(bytes(0xef, 0xbb, 0xbf, 0x41)), "\uFEFFA");
  assertWebSocketError(thrownBy(() => decodeUtf8(bytes(0xc3, 0x28))), 1007);
});
