// The HPACK Huffman code (RFC 7541 §5.2, Appendix B): encoding, its length, and a decoder that
// rejects what §5.2 says a decoder MUST treat as an error (EOS in the string, padding longer than
// 7 bits or not all ones). Pure and allocation-light: the only tables are frozen constants derived
// once from HUFFMAN_TABLE at module evaluation (so a preloaded XS image keeps them in flash).

export class HuffmanError extends Error {}

/**
 * RFC 7541 Appendix B, symbol by symbol: code (right-aligned, most significant bit first), then its
 * length in bits. Symbol 256 is EOS. Flat rather than 257 pairs: one frozen array, not 258 objects.
 */
export const HUFFMAN_TABLE: readonly number[] = Object.freeze([
0x1ff8, 13, 0x7fffd8, 23, 0xfffffe2, 28, 0xfffffe3, 28, 0xfffffe4, 28, 0xfffffe5, 28, 0xfffffe6, 28, 0xfffffe7, 28, // 0–7
  0xfffffe8, 28, 0xffffea, 24, 0x3ffffffc, 30, 0xfffffe9, 28, 0xfffffea, 28, 0x3ffffffd, 30, 0xfffffeb, 28, 0xfffffec, 28, // 8–15
  0xfffffed, 28, 0xfffffee, 28, 0xfffffef, 28, 0xffffff0, 28, 0xffffff1, 28, 0xffffff2, 28, 0x3ffffffe, 30, 0xffffff3, 28, // 16–23
  0xffffff4, 28, 0xffffff5, 28, 0xffffff6, 28, 0xffffff7, 28, 0xffffff8, 28, 0xffffff9, 28, 0xffffffa, 28, 0xffffffb, 28, // 24–31
  0x14, 6, 0x3f8, 10, 0x3f9, 10, 0xffa, 12, 0x1ff9, 13, 0x15, 6, 0xf8, 8, 0x7fa, 11, // 32–39
  0x3fa, 10, 0x3fb, 10, 0xf9, 8, 0x7fb, 11, 0xfa, 8, 0x16, 6, 0x17, 6, 0x18, 6, // 40–47
  0x0, 5, 0x1, 5, 0x2, 5, 0x19, 6, 0x1a, 6, 0x1b, 6, 0x1c, 6, 0x1d, 6, // 48–55
  0x1e, 6, 0x1f, 6, 0x5c, 7, 0xfb, 8, 0x7ffc, 15, 0x20, 6, 0xffb, 12, 0x3fc, 10, // 56–63
  0x1ffa, 13, 0x21, 6, 0x5d, 7, 0x5e, 7, 0x5f, 7, 0x60, 7, 0x61, 7, 0x62, 7, // 64–71
  0x63, 7, 0x64, 7, 0x65, 7, 0x66, 7, 0x67, 7, 0x68, 7, 0x69, 7, 0x6a, 7, // 72–79
  0x6b, 7, 0x6c, 7, 0x6d, 7, 0x6e, 7, 0x6f, 7, 0x70, 7, 0x71, 7, 0x72, 7, // 80–87
  0xfc, 8, 0x73, 7, 0xfd, 8, 0x1ffb, 13, 0x7fff0, 19, 0x1ffc, 13, 0x3ffc, 14, 0x22, 6, // 88–95
  0x7ffd, 15, 0x3, 5, 0x23, 6, 0x4, 5, 0x24, 6, 0x5, 5, 0x25, 6, 0x26, 6, // 96–103
  0x27, 6, 0x6, 5, 0x74, 7, 0x75, 7, 0x28, 6, 0x29, 6, 0x2a, 6, 0x7, 5, // 104–111
  0x2b, 6, 0x76, 7, 0x2c, 6, 0x8, 5, 0x9, 5, 0x2d, 6, 0x77, 7, 0x78, 7, // 112–119
  0x79, 7, 0x7a, 7, 0x7b, 7, 0x7ffe, 15, 0x7fc, 11, 0x3ffd, 14, 0x1ffd, 13, 0xffffffc, 28, // 120–127
  0xfffe6, 20, 0x3fffd2, 22, 0xfffe7, 20, 0xfffe8, 20, 0x3fffd3, 22, 0x3fffd4, 22, 0x3fffd5, 22, 0x7fffd9, 23, // 128–135
  0x3fffd6, 22, 0x7fffda, 23, 0x7fffdb, 23, 0x7fffdc, 23, 0x7fffdd, 23, 0x7fffde, 23, 0xffffeb, 24, 0x7fffdf, 23, // 136–143
  0xffffec, 24, 0xffffed, 24, 0x3fffd7, 22, 0x7fffe0, 23, 0xffffee, 24, 0x7fffe1, 23, 0x7fffe2, 23, 0x7fffe3, 23, // 144–151
  0x7fffe4, 23, 0x1fffdc, 21, 0x3fffd8, 22, 0x7fffe5, 23, 0x3fffd9, 22, 0x7fffe6, 23, 0x7fffe7, 23, 0xffffef, 24, // 152–159
  0x3fffda, 22, 0x1fffdd, 21, 0xfffe9, 20, 0x3fffdb, 22, 0x3fffdc, 22, 0x7fffe8, 23, 0x7fffe9, 23, 0x1fffde, 21, // 160–167
  0x7fffea, 23, 0x3fffdd, 22, 0x3fffde, 22, 0xfffff0, 24, 0x1fffdf, 21, 0x3fffdf, 22, 0x7fffeb, 23, 0x7fffec, 23, // 168–175
  0x1fffe0, 21, 0x1fffe1, 21, 0x3fffe0, 22, 0x1fffe2, 21, 0x7fffed, 23, 0x3fffe1, 22, 0x7fffee, 23, 0x7fffef, 23, // 176–183
  0xfffea, 20, 0x3fffe2, 22, 0x3fffe3, 22, 0x3fffe4, 22, 0x7ffff0, 23, 0x3fffe5, 22, 0x3fffe6, 22, 0x7ffff1, 23, // 184–191
  0x3ffffe0, 26, 0x3ffffe1, 26, 0xfffeb, 20, 0x7fff1, 19, 0x3fffe7, 22, 0x7ffff2, 23, 0x3fffe8, 22, 0x1ffffec, 25, // 192–199
  0x3ffffe2, 26, 0x3ffffe3, 26, 0x3ffffe4, 26, 0x7ffffde, 27, 0x7ffffdf, 27, 0x3ffffe5, 26, 0xfffff1, 24, 0x1ffffed, 25, // 200–207
  0x7fff2, 19, 0x1fffe3, 21, 0x3ffffe6, 26, 0x7ffffe0, 27, 0x7ffffe1, 27, 0x3ffffe7, 26, 0x7ffffe2, 27, 0xfffff2, 24, // 208–215
  0x1fffe4, 21, 0x1fffe5, 21, 0x3ffffe8, 26, 0x3ffffe9, 26, 0xffffffd, 28, 0x7ffffe3, 27, 0x7ffffe4, 27, 0x7ffffe5, 27, // 216–223
  0xfffec, 20, 0xfffff3, 24, 0xfffed, 20, 0x1fffe6, 21, 0x3fffe9, 22, 0x1fffe7, 21, 0x1fffe8, 21, 0x7ffff3, 23, // 224–231
  0x3fffea, 22, 0x3fffeb, 22, 0x1ffffee, 25, 0x1ffffef, 25, 0xfffff4, 24, 0xfffff5, 24, 0x3ffffea, 26, 0x7ffff4, 23, // 232–239
  0x3ffffeb, 26, 0x7ffffe6, 27, 0x3ffffec, 26, 0x3ffffed, 26, 0x7ffffe7, 27, 0x7ffffe8, 27, 0x7ffffe9, 27, 0x7ffffea, 27, // 240–247
  0x7ffffeb, 27, 0xffffffe, 28, 0x7ffffec, 27, 0x7ffffed, 27, 0x7ffffee, 27, 0x7ffffef, 27, 0x7fffff0, 27, 0x3ffffee, 26, // 248–255
  0x3fffffff, 30, // 256: EOS
]);

const EOS = 256;
const MAX_BITS = 30;

// Appendix B is a canonical code (codes of one length are consecutive, ordered by symbol), so a
// code is decoded from three small per-length tables: the first code of each length, how many
// codes have that length, and where they start in the symbols sorted by (length, symbol).
const { first: FIRST_CODE, count: CODE_COUNT, offset: CODE_OFFSET, symbols: SORTED_SYMBOLS } = (() => {
  const first: number[] = [];
  const count: number[] = [];
  const offset: number[] = [];
  const symbols: number[] = [];
  for (let bits = 0; bits <= MAX_BITS; bits++) {
    first.push(0);
    count.push(0);
    offset.push(symbols.length);
    for (let s = 0; s <= EOS; s++) {
      if (HUFFMAN_TABLE[2 * s + 1] !== bits) continue;
      if (count[bits] === 0) first[bits] = HUFFMAN_TABLE[2 * s];
      count[bits]++;
      symbols.push(s);
    }
  }
  const frozen = (xs: number[]): readonly number[] => Object.freeze(xs);
  return { first: frozen(first), count: frozen(count), offset: frozen(offset), symbols: frozen(symbols) };
})();

// Fast path: the 74 symbols with codes of 8 bits or fewer (digits, letters, common punctuation)
// are looked up from the next 8 bits at once. Entry = symbol * 16 + code length; 0 = a longer code.
const BYTE_LOOKUP: readonly number[] = (() => {
  const table: number[] = [];
  for (let k = 0; k < 256; k++) table.push(0);
  for (let s = 0; s < EOS; s++) {
    const bits = HUFFMAN_TABLE[2 * s + 1];
    if (bits > 8) continue;
    const base = HUFFMAN_TABLE[2 * s] << (8 - bits);
    for (let fill = 0; fill < 1 << (8 - bits); fill++) table[base | fill] = s * 16 + bits;
  }
  return Object.freeze(table);
})();

/** Octets the Huffman coding of bytes[start, end) takes, padding included. */
export function huffmanEncodedLength(bytes: Uint8Array, start = 0, end = bytes.length): number {
  let bits = 0;
  for (let k = start; k < end; k++) bits += HUFFMAN_TABLE[2 * bytes[k] + 1];
  return (bits + 7) >>> 3;
}

/**
 * Writes the Huffman coding of bytes[start, end) into out at offset, padded with the most
 * significant bits of EOS (ones); returns the offset after it. out must have
 * huffmanEncodedLength(bytes, start, end) octets free at offset.
 */
export function huffmanEncode(bytes: Uint8Array, out: Uint8Array, offset: number, start = 0, end = bytes.length): number {
  let acc = 0; // pending bits, right-aligned; fewer than 8 between symbols
  let pending = 0;
  let at = offset;
  for (let k = start; k < end; k++) {
    let code = HUFFMAN_TABLE[2 * bytes[k]];
    let bits = HUFFMAN_TABLE[2 * bytes[k] + 1];
    // Codes run to 30 bits; adding at most 24 at a time keeps acc within 31 bits.
    if (bits > 24) {
      acc = (acc << (bits - 16)) | (code >>> 16);
      pending += bits - 16;
      while (pending >= 8) {
        pending -= 8;
        out[at++] = acc >>> pending;
      }
      acc &= (1 << pending) - 1;
      code &= 0xffff;
      bits = 16;
    }
    acc = (acc << bits) | code;
    pending += bits;
    while (pending >= 8) {
      pending -= 8;
      out[at++] = acc >>> pending;
    }
    acc &= (1 << pending) - 1;
  }
  if (pending > 0) out[at++] = (acc << (8 - pending)) | (0xff >>> pending);
  return at;
}

/** The Huffman coding of bytes as a new array. */
export function huffmanEncodeBytes(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(huffmanEncodedLength(bytes));
  huffmanEncode(bytes, out, 0);
  return out;
}

/**
 * Decodes the Huffman string bytes[start, end). Throws HuffmanError on EOS in the input, padding
 * longer than 7 bits or not all ones (RFC 7541 §5.2), or output beyond maxOutput octets. The
 * result is at most min(maxOutput, 8/5 of the input) octets: the shortest code is 5 bits.
 */
export function huffmanDecode(bytes: Uint8Array, start: number, end: number, maxOutput: number): Uint8Array {
  const out = new Uint8Array(Math.max(0, Math.min(maxOutput, Math.floor(((end - start) * 8) / 5))));
  let n = 0;
  let acc = 0; // unread input bits, right-aligned: acc < 2 ** avail, avail < 16
  let avail = 0;
  let code = 0; // the bits of a code longer than 8 read so far (one bit at a time)
  let bits = 0;
  let k = start;
  for (;;) {
    if (avail < 8 && k < end) {
      acc = (acc << 8) | bytes[k++];
      avail += 8;
    }
    if (avail === 0) break;
    if (bits === 0 && avail >= 8) {
      const top = acc >>> (avail - 8);
      const entry = BYTE_LOOKUP[top];
      if (entry !== 0) {
        if (n >= out.length) throw new HuffmanError(`Huffman-decoded string is longer than ${maxOutput} octets`);
        out[n++] = entry >>> 4;
        avail -= entry & 15;
      } else {
        code = top;
        bits = 8;
        avail -= 8;
      }
      acc &= (1 << avail) - 1;
      continue;
    }
    // A code longer than 8 bits, or the last few bits of the input: one bit at a time.
    avail--;
    code = (code << 1) | ((acc >>> avail) & 1);
    acc &= (1 << avail) - 1;
    bits++;
    const index = code - FIRST_CODE[bits];
    if (bits >= 5 && index >= 0 && index < CODE_COUNT[bits]) {
      const symbol = SORTED_SYMBOLS[CODE_OFFSET[bits] + index];
      if (symbol === EOS) throw new HuffmanError("Huffman string contains EOS");
      if (n >= out.length) throw new HuffmanError(`Huffman-decoded string is longer than ${maxOutput} octets`);
      out[n++] = symbol;
      code = 0;
      bits = 0;
    }
  }
  // What is left is a prefix of no code: it must be padding, the start of EOS.
  if (bits > 7) throw new HuffmanError(`Huffman string padding is ${bits} bits (at most 7 allowed)`);
  if (code !== (1 << bits) - 1) throw new HuffmanError("Huffman string padding is not all ones");
  return n === out.length ? out : out.slice(0, n);
}
