// HPACK (RFC 7541), the header compression of HTTP/2: a decoder for the peer's header blocks and an
// encoder for ours, each with its own bounded dynamic table. Pure: header blocks in and out as
// Uint8Array, no I/O.
//
// Strings: HPACK carries octets. By default a header string is one char per octet (Latin-1), which
// is what HTTP field values effectively are (RFC 9110 §5.5: obs-text is opaque octets); pass
// decodeText / encodeText for UTF-8. Table sizes always count octets (RFC 7541 §4.1).
//
// Errors: every malformed input raises HpackError naming what was wrong. An error with fatal = true
// leaves the dynamic table out of step with the peer's, so the connection must end with
// COMPRESSION_ERROR (RFC 9113 §4.3) and the decoder refuses further blocks; fatal = false (a header
// list over maxHeaderListBytes) loses only that block: the table was kept in step.
import {
  DEFAULT_TABLE_SIZE, DynamicTable, ENTRY_OVERHEAD, HpackError, MAX_INTEGER_OCTETS, STATIC_COUNT, STATIC_ENTRIES, STATIC_NAME_INDEX, STATIC_TABLE,
  checkSize, latin1Decode, latin1Encode, readInteger, writeInteger, type Entry, type HeaderField,
} from "./hpack-table";
import { HuffmanError, huffmanDecode, huffmanEncode, huffmanEncodedLength } from "./huffman";

export { DEFAULT_TABLE_SIZE, HpackError, STATIC_TABLE, latin1Decode, latin1Encode, type HeaderField } from "./hpack-table";

/** A field to encode; sensitive = true sends it as a literal never indexed (RFC 7541 §6.2.3). */
export type EncoderField = readonly [name: string, value: string, sensitive?: boolean];

const DEFAULT_MAX_HEADER_LIST = 16384;

/** Names whose values rarely repeat: indexing them would only evict entries that do. */
export const DEFAULT_UNINDEXED: readonly string[] = Object.freeze(["content-length", "date", "etag", "if-modified-since", "if-none-match", "last-modified"]);

export interface HpackDecoderOptions {
  /**
   * The SETTINGS_HEADER_TABLE_SIZE in effect for the peer's encoder: the most its dynamic table size
   * updates may ask for, and the table's size until they do. Default 4096 (the protocol default,
   * in effect until the peer acknowledges ours: then call setMaxTableSize).
   */
  maxTableSize?: number;
  /** Per header block: the sum over fields of name + value octets + 32 (RFC 9113 §6.5.2). Default 16 KiB. */
  maxHeaderListBytes?: number;
  /** Field octets → string; default Latin-1. */
  decodeText?: (bytes: Uint8Array) => string;
}

/**
 * Decodes complete header blocks (HEADERS plus its CONTINUATIONs, joined) from one peer. Memory:
 * the dynamic table ≤ maxTableSize octets; per block, the fields kept ≤ maxHeaderListBytes plus one
 * string being decoded (≤ maxHeaderListBytes octets: a longer one could never fit the list).
 */
export class HpackDecoder {
  #table: DynamicTable;
  #limit: number; // our SETTINGS_HEADER_TABLE_SIZE: the bound on size updates
  #updateRequired = false; // we lowered #limit below the table's size: the next block must say so
  #maxList: number;
  #decodeText: (bytes: Uint8Array) => string;
  #failed: string | undefined;
  #cursor = { pos: 0 };
  #stringOctets = 0; // octet length of the last string read

  constructor(options: HpackDecoderOptions = {}) {
    this.#limit = checkSize("maxTableSize", options.maxTableSize ?? DEFAULT_TABLE_SIZE);
    this.#table = new DynamicTable(this.#limit);
    this.#maxList = checkSize("maxHeaderListBytes", options.maxHeaderListBytes ?? DEFAULT_MAX_HEADER_LIST);
    this.#decodeText = options.decodeText ?? latin1Decode;
  }

  /** Octets in the dynamic table (RFC 7541 §4.1). */
  get tableSize(): number {
    return this.#table.size;
  }
  /** The table's current maximum: the last size update, or maxTableSize before any. */
  get tableMaxSize(): number {
    return this.#table.maxSize;
  }
  /** Dynamic table contents, newest first (index 62 first). */
  tableEntries(): HeaderField[] {
    return this.#table.entries();
  }

  /**
   * Our advertised SETTINGS_HEADER_TABLE_SIZE changed (call when the peer acknowledges it). Lowered
   * below the table's size, the peer's next block must start with a size update within it.
   */
  setMaxTableSize(size: number): void {
    this.#limit = checkSize("maxTableSize", size);
    if (size < this.#table.maxSize) this.#updateRequired = true;
  }

  /** Decodes one complete header block block[start, end) into its fields, in order. */
  decode(block: Uint8Array, start = 0, end = block.length): HeaderField[] {
    if (!(start >= 0 && start <= end && end <= block.length)) throw new RangeError(`block range ${start}..${end} is not within 0..${block.length}`);
    if (this.#failed !== undefined) throw new HpackError(`decoder unusable after an earlier error (${this.#failed})`);
    try {
      return this.#decode(block, start, end);
    } catch (e) {
      if (e instanceof HpackError && !e.fatal) throw e;
      this.#failed = e instanceof Error ? e.message : String(e);
      throw e instanceof HpackError ? e : new HpackError(this.#failed);
    }
  }

  #decode(block: Uint8Array, start: number, end: number): HeaderField[] {
    const table = this.#table;
    const cursor = this.#cursor;
    cursor.pos = start;
    const fields: HeaderField[] = [];
    let listBytes = 0;
    let overflow = false; // past maxHeaderListBytes: keep decoding for the table's sake, keep no fields
    let fieldSeen = false;
    while (cursor.pos < end) {
      const first = block[cursor.pos];
      if ((first & 0xe0) === 0x20) {
        // §6.3 dynamic table size update: only before the first field (§4.2).
        if (fieldSeen) throw new HpackError("dynamic table size update after a header field");
        const size = readInteger(block, cursor, end, 5);
        if (size > this.#limit) throw new HpackError(`dynamic table size update to ${size} exceeds SETTINGS_HEADER_TABLE_SIZE ${this.#limit}`);
        table.setMaxSize(size);
        this.#updateRequired = false;
        continue;
      }
      if (this.#updateRequired) throw new HpackError(`header block does not start with a dynamic table size update (SETTINGS_HEADER_TABLE_SIZE lowered to ${this.#limit})`);
      fieldSeen = true;
      let name: string;
      let nameOctets: number;
      let value: string;
      if (first & 0x80) {
        // §6.1 indexed field.
        const index = readInteger(block, cursor, end, 7);
        if (index === 0) throw new HpackError("indexed header field with index 0");
        const entry = this.#entry(index);
        name = entry.name;
        value = entry.value;
        listBytes += entry.size;
      } else {
        // §6.2 literals: with incremental indexing (01, 6-bit index), without (0000) or never
        // indexed (0001), 4-bit index. Index 0 = the name follows as a string.
        const indexing = (first & 0x40) !== 0;
        const index = readInteger(block, cursor, end, indexing ? 6 : 4);
        if (index === 0) {
          name = this.#readString(block, end, "name");
          nameOctets = this.#stringOctets;
        } else {
          const entry = this.#entry(index);
          name = entry.name;
          nameOctets = entry.nameOctets;
        }
        value = this.#readString(block, end, "value");
        const size = nameOctets + this.#stringOctets + ENTRY_OVERHEAD;
        if (indexing) table.add(name, value, nameOctets, size);
        listBytes += size;
      }
      if (listBytes > this.#maxList) overflow = true;
      if (!overflow) fields.push([name, value]);
    }
    if (this.#updateRequired) throw new HpackError(`header block does not start with a dynamic table size update (SETTINGS_HEADER_TABLE_SIZE lowered to ${this.#limit})`);
    if (overflow) {
      fields.length = 0;
      throw new HpackError(`header list of ${listBytes} octets is larger than maxHeaderListBytes ${this.#maxList}`, false);
    }
    return fields;
  }

  #entry(index: number): Entry {
    if (index <= STATIC_COUNT) return STATIC_ENTRIES[index - 1];
    if (index - STATIC_COUNT > this.#table.length) {
      throw new HpackError(`header index ${index} out of range (61 static + ${this.#table.length} dynamic entries)`);
    }
    return this.#table.at(index - STATIC_COUNT);
  }

  /** §5.2 string literal: H bit, 7-bit-prefix length, octets (Huffman-coded if H). */
  #readString(block: Uint8Array, end: number, what: string): string {
    const cursor = this.#cursor;
    if (cursor.pos >= end) throw new HpackError(`header block ends before the ${what} string`);
    const huffman = (block[cursor.pos] & 0x80) !== 0;
    const length = readInteger(block, cursor, end, 7);
    const at = cursor.pos;
    if (length > end - at) throw new HpackError(`${what} string of ${length} octets runs past the end of the header block (${end - at} left)`);
    let octets: Uint8Array;
    if (huffman) {
      try {
        octets = huffmanDecode(block, at, at + length, this.#maxList);
      } catch (e) {
        if (e instanceof HuffmanError) throw new HpackError(`${what} string: ${e.message}`);
        throw e;
      }
    } else {
      if (length > this.#maxList) throw new HpackError(`${what} string of ${length} octets is larger than maxHeaderListBytes ${this.#maxList}`);
      octets = block.subarray(at, at + length);
    }
    cursor.pos = at + length;
    this.#stringOctets = octets.length;
    return this.#decodeText(octets);
  }
}

export interface HpackEncoderOptions {
  /** Our bound on the encoder's dynamic table; the table is min(this, the peer's SETTINGS_HEADER_TABLE_SIZE). Default 4096. */
  maxTableSize?: number;
  /** String → field octets; default Latin-1 (a char above U+00FF is an error). */
  encodeText?: (s: string) => Uint8Array;
  /**
   * Whether a field that is not sensitive enters the dynamic table (literal with incremental
   * indexing). Default: all but a few names whose values rarely repeat (content-length, date, …).
   */
  shouldIndex?: (name: string, value: string) => boolean;
  /** Huffman-code string literals when shorter. Default true. */
  huffman?: boolean;
}

/**
 * Encodes header lists for one peer. Repeated fields enter the dynamic table, so a request that
 * repeats the previous one's headers costs about one octet per field. Memory: the dynamic table
 * ≤ min(maxTableSize, peer's SETTINGS_HEADER_TABLE_SIZE) octets; per call, the field octets and
 * one output buffer of at most their size plus 18 octets per field.
 */
export class HpackEncoder {
  #table: DynamicTable;
  #ours: number;
  #target: number; // min(ours, peer's setting): the size the next block announces
  #lowest: number; // the smallest target since the last block (§4.2: it must be signalled too)
  #encodeText: (s: string) => Uint8Array;
  #shouldIndex: (name: string, value: string) => boolean;
  #huffman: boolean;

  constructor(options: HpackEncoderOptions = {}) {
    this.#ours = checkSize("maxTableSize", options.maxTableSize ?? DEFAULT_TABLE_SIZE);
    // The peer's decoder starts at the protocol default; a smaller choice of ours is announced.
    this.#table = new DynamicTable(DEFAULT_TABLE_SIZE, true);
    this.#target = this.#lowest = Math.min(this.#ours, DEFAULT_TABLE_SIZE);
    this.#encodeText = options.encodeText ?? latin1Encode;
    this.#shouldIndex = options.shouldIndex ?? ((name) => !DEFAULT_UNINDEXED.includes(name));
    this.#huffman = options.huffman ?? true;
  }

  get tableSize(): number {
    return this.#table.size;
  }
  /** The size the peer's decoder has been told (after the next block: the pending target). */
  get tableMaxSize(): number {
    return this.#table.maxSize;
  }
  tableEntries(): HeaderField[] {
    return this.#table.entries();
  }

  /** The peer's SETTINGS_HEADER_TABLE_SIZE (on receiving its SETTINGS). */
  setPeerMaxTableSize(size: number): void {
    // Any 32-bit value is a valid setting; ours (≤ 2^31 − 1) bounds what is used of it.
    if (!Number.isInteger(size) || size < 0 || size > 0xffffffff) throw new RangeError(`peer SETTINGS_HEADER_TABLE_SIZE ${size} is not 32 bits`);
    this.#target = Math.min(this.#ours, size);
    this.#lowest = Math.min(this.#lowest, this.#target);
  }

  /**
   * Encodes one header list into a header block. Names are lower-cased (RFC 9113 §8.2.1 requires
   * lower case). Every string is converted before the table changes, so a throw leaves it intact.
   */
  encode(fields: readonly EncoderField[]): Uint8Array {
    const names: string[] = [];
    const exactAtStart: number[] = [];
    const nameOctets: (Uint8Array | undefined)[] = [];
    const valueOctets: (Uint8Array | undefined)[] = [];
    let bound = 2 * MAX_INTEGER_OCTETS; // two size updates
    for (const [name, value, sensitive] of fields) {
      const lower = name.toLowerCase();
      names.push(lower);
      // A field the tables already hold exactly costs one index: its strings need no converting
      // (in steady state that is nearly every field, and converting is most of the work in XS).
      const exact = sensitive === true ? 0 : this.#findExact(STATIC_NAME_INDEX[lower] ?? 0, lower, value);
      exactAtStart.push(exact);
      if (exact !== 0) {
        nameOctets.push(undefined);
        valueOctets.push(undefined);
        bound += 3 * MAX_INTEGER_OCTETS + 3 * (lower.length + value.length); // in case this block evicts it
        continue;
      }
      const n = this.#encodeText(lower);
      const v = this.#encodeText(value);
      nameOctets.push(n);
      valueOctets.push(v);
      bound += 3 * MAX_INTEGER_OCTETS + n.length + v.length;
    }
    const out = new Uint8Array(bound);
    let pos = 0;
    const table = this.#table;
    let changed = false; // do the indexes found before the block still hold?
    if (this.#lowest < table.maxSize) {
      pos = writeInteger(out, pos, 0x20, 5, this.#lowest);
      table.setMaxSize(this.#lowest);
      changed = true;
    }
    if (this.#target !== table.maxSize) {
      pos = writeInteger(out, pos, 0x20, 5, this.#target);
      table.setMaxSize(this.#target);
      changed = true;
    }
    this.#lowest = this.#target;

    for (let k = 0; k < fields.length; k++) {
      const name = names[k];
      const value = fields[k][1];
      const sensitive = fields[k][2] === true;
      const staticName = STATIC_NAME_INDEX[name] ?? 0;
      if (!sensitive) {
        const exact = changed ? this.#findExact(staticName, name, value) : exactAtStart[k];
        if (exact !== 0) {
          pos = writeInteger(out, pos, 0x80, 7, exact);
          continue;
        }
      }
      let nameIndex = staticName;
      if (nameIndex === 0) {
        const dynamic = table.findName(name);
        if (dynamic !== 0) nameIndex = STATIC_COUNT + dynamic;
      }
      // Held exactly before this block, evicted by it: converted now (it converted once before, so
      // it cannot throw, and the 3-octets-a-character bound above covers it).
      const nOctets = (nameOctets[k] ??= this.#encodeText(name));
      const vOctets = (valueOctets[k] ??= this.#encodeText(value));
      const size = nOctets.length + vOctets.length + ENTRY_OVERHEAD;
      // An entry over half the table would evict most of what repeats, for one field.
      const indexing = !sensitive && size <= table.maxSize / 2 && this.#shouldIndex(name, value);
      if (indexing) pos = writeInteger(out, pos, 0x40, 6, nameIndex);
      else pos = writeInteger(out, pos, sensitive ? 0x10 : 0x00, 4, nameIndex);
      if (nameIndex === 0) pos = this.#writeString(out, pos, nOctets);
      pos = this.#writeString(out, pos, vOctets);
      if (indexing) {
        table.add(name, value, nOctets.length, size);
        changed = true;
      }
    }
    return out.slice(0, pos);
  }

  #findExact(staticName: number, name: string, value: string): number {
    if (staticName !== 0) {
      for (let k = staticName; k <= STATIC_COUNT && STATIC_TABLE[k - 1][0] === name; k++) if (STATIC_TABLE[k - 1][1] === value) return k;
    }
    const dynamic = this.#table.find(name, value);
    return dynamic === 0 ? 0 : STATIC_COUNT + dynamic;
  }

  #writeString(out: Uint8Array, pos: number, octets: Uint8Array): number {
    const coded = this.#huffman ? huffmanEncodedLength(octets) : octets.length;
    if (coded < octets.length) {
      pos = writeInteger(out, pos, 0x80, 7, coded);
      return huffmanEncode(octets, out, pos);
    }
    pos = writeInteger(out, pos, 0x00, 7, octets.length);
    out.set(octets, pos);
    return pos + octets.length;
  }
}

/** RFC 7541 §5.1 integer encoding, for tests and diagnostics: value with an N-bit prefix and first-octet flags. */
export function encodeInteger(value: number, prefixBits: number, flags = 0): Uint8Array {
  const out = new Uint8Array(MAX_INTEGER_OCTETS);
  return out.slice(0, writeInteger(out, 0, flags, prefixBits, checkSize("integer", value)));
}

/** RFC 7541 §5.1 integer decoding of bytes[start, end): the value and the octets it took. */
export function decodeInteger(bytes: Uint8Array, prefixBits: number, start = 0, end = bytes.length): { value: number; length: number } {
  if (start >= end) throw new HpackError("integer runs past the end of the header block");
  const cursor = { pos: start };
  const value = readInteger(bytes, cursor, end, prefixBits);
  return { value, length: cursor.pos - start };
}
