/**
 * A small raw DEFLATE decoder (RFC 1951, after zlib's puff.c) for the
 * conformance peer. Unlike zlib it reports the largest back-reference
 * distance used, so a test can check that a sender kept to the LZ77 window
 * agreed in permessage-deflate (RFC 7692 §7.1.2), and it refuses any
 * distance reaching before the history it is given (no context takeover).
 *
 * @module
 */

const LENGTH_BASE = [
  3,
  4,
  5,
  6,
  7,
  8,
  9,
  10,
  11,
  13,
  15,
  17,
  19,
  23,
  27,
  31,
  35,
  43,
  51,
  59,
  67,
  83,
  99,
  115,
  131,
  163,
  195,
  227,
  258,
];
const LENGTH_EXTRA = [
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  1,
  1,
  1,
  1,
  2,
  2,
  2,
  2,
  3,
  3,
  3,
  3,
  4,
  4,
  4,
  4,
  5,
  5,
  5,
  5,
  0,
];
const DISTANCE_BASE = [
  1,
  2,
  3,
  4,
  5,
  7,
  9,
  13,
  17,
  25,
  33,
  49,
  65,
  97,
  129,
  193,
  257,
  385,
  513,
  769,
  1025,
  1537,
  2049,
  3073,
  4097,
  6145,
  8193,
  12289,
  16385,
  24577,
];
const DISTANCE_EXTRA = [
  0,
  0,
  0,
  0,
  1,
  1,
  2,
  2,
  3,
  3,
  4,
  4,
  5,
  5,
  6,
  6,
  7,
  7,
  8,
  8,
  9,
  9,
  10,
  10,
  11,
  11,
  12,
  12,
  13,
  13,
];
const CODE_LENGTH_ORDER = [
  16,
  17,
  18,
  0,
  8,
  7,
  9,
  6,
  10,
  5,
  11,
  4,
  12,
  3,
  13,
  2,
  14,
  1,
  15,
];

interface Huffman {
  count: Uint16Array;
  symbol: Uint16Array;
}

function huffman(lengths: ArrayLike<number>): Huffman {
  const count = new Uint16Array(16);
  const symbol = new Uint16Array(lengths.length);
  for (let s = 0; s < lengths.length; s++) count[lengths[s]]++;
  const offsets = new Uint16Array(16);
  for (let len = 1; len < 15; len++) {
    offsets[len + 1] = offsets[len] + count[len];
  }
  for (let s = 0; s < lengths.length; s++) {
    if (lengths[s] !== 0) symbol[offsets[lengths[s]]++] = s;
  }
  count[0] = 0;
  return { count, symbol };
}

/** What {@linkcode inflateRaw} found. */
export interface Inflated {
  /** The bytes after the history. */
  output: Uint8Array;
  /** The largest back-reference distance used (0 when none). */
  maxDistance: number;
}

/**
 * Decodes raw DEFLATE `input` until it ends (at a block boundary) or a
 * final block ends. `history` is the window the sender may refer back to
 * (empty when it may not).
 *
 * @throws {Error} for invalid data or a distance past the history.
 */
export function inflateRaw(
  input: Uint8Array,
  history: Uint8Array = new Uint8Array(0),
): Inflated {
  let out = new Uint8Array(Math.max(1024, history.length + input.length * 4));
  out.set(history);
  let outLength = history.length;
  let position = 0;
  let bitBuffer = 0;
  let bitCount = 0;
  let maxDistance = 0;

  const need = (n: number) => {
    if (outLength + n > out.length) {
      const grown = new Uint8Array(Math.max(out.length * 2, outLength + n));
      grown.set(out.subarray(0, outLength));
      out = grown;
    }
  };
  const bits = (n: number): number => {
    while (bitCount < n) {
      if (position >= input.length) throw new Error("inflate: out of input");
      bitBuffer |= input[position++] << bitCount;
      bitCount += 8;
    }
    const value = bitBuffer & ((1 << n) - 1);
    bitBuffer >>>= n;
    bitCount -= n;
    return value;
  };
  const decode = (h: Huffman): number => {
    let code = 0;
    let first = 0;
    let index = 0;
    for (let len = 1; len <= 15; len++) {
      code |= bits(1);
      const count = h.count[len];
      if (code - count < first) return h.symbol[index + (code - first)];
      index += count;
      first += count;
      first <<= 1;
      code <<= 1;
    }
    throw new Error("inflate: bad Huffman code");
  };
  const codes = (lengthCode: Huffman, distanceCode: Huffman) => {
    while (true) {
      const symbol = decode(lengthCode);
      if (symbol < 256) {
        need(1);
        out[outLength++] = symbol;
      } else if (symbol === 256) {
        return;
      } else {
        const index = symbol - 257;
        if (index >= 29) throw new Error("inflate: bad length symbol");
        const length = LENGTH_BASE[index] + bits(LENGTH_EXTRA[index]);
        const distanceSymbol = decode(distanceCode);
        if (distanceSymbol >= 30) {
          throw new Error("inflate: bad distance symbol");
        }
        const distance = DISTANCE_BASE[distanceSymbol] +
          bits(DISTANCE_EXTRA[distanceSymbol]);
        if (distance > outLength) {
          throw new Error(
            `inflate: distance ${distance} reaches before the ${outLength} bytes available`,
          );
        }
        maxDistance = Math.max(maxDistance, distance);
        need(length);
        for (let i = 0; i < length; i++) {
          out[outLength] = out[outLength - distance];
          outLength++;
        }
      }
    }
  };

  const fixedLengths = new Uint8Array(288);
  fixedLengths.fill(8, 0, 144);
  fixedLengths.fill(9, 144, 256);
  fixedLengths.fill(7, 256, 280);
  fixedLengths.fill(8, 280, 288);
  const fixedLength = huffman(fixedLengths);
  const fixedDistance = huffman(new Uint8Array(30).fill(5));

  while (position < input.length || bitCount >= 3) {
    // A sync flush ends with an empty stored block at a byte boundary:
    // the input may end after any block.
    if (position >= input.length && bitBuffer === 0) break;
    const final = bits(1);
    const type = bits(2);
    if (type === 0) {
      bitBuffer = 0;
      bitCount = 0;
      if (position + 4 > input.length) throw new Error("inflate: short stored");
      const length = input[position] | input[position + 1] << 8;
      const check = input[position + 2] | input[position + 3] << 8;
      if ((length ^ 0xffff) !== check) {
        throw new Error("inflate: stored length check failed");
      }
      position += 4;
      if (position + length > input.length) {
        throw new Error("inflate: short stored block");
      }
      need(length);
      out.set(input.subarray(position, position + length), outLength);
      outLength += length;
      position += length;
    } else if (type === 1) {
      codes(fixedLength, fixedDistance);
    } else if (type === 2) {
      const literalCount = bits(5) + 257;
      const distanceCount = bits(5) + 1;
      const codeLengthCount = bits(4) + 4;
      const lengths = new Uint8Array(19);
      for (let i = 0; i < codeLengthCount; i++) {
        lengths[CODE_LENGTH_ORDER[i]] = bits(3);
      }
      const lengthCode = huffman(lengths);
      const all = new Uint8Array(literalCount + distanceCount);
      for (let i = 0; i < all.length;) {
        const symbol = decode(lengthCode);
        if (symbol < 16) {
          all[i++] = symbol;
          continue;
        }
        let repeat: number;
        let value = 0;
        if (symbol === 16) {
          if (i === 0) throw new Error("inflate: repeat with no first length");
          value = all[i - 1];
          repeat = 3 + bits(2);
        } else if (symbol === 17) repeat = 3 + bits(3);
        else repeat = 11 + bits(7);
        if (i + repeat > all.length) {
          throw new Error("inflate: too many lengths");
        }
        all.fill(value, i, i + repeat);
        i += repeat;
      }
      codes(
        huffman(all.subarray(0, literalCount)),
        huffman(all.subarray(literalCount)),
      );
    } else {
      throw new Error("inflate: invalid block type 3");
    }
    if (final) break;
  }
  return { output: out.slice(history.length, outLength), maxDistance };
}
