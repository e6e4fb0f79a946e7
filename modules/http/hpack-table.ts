// The parts of HPACK (RFC 7541) both directions share: the static table, the bounded dynamic table,
// N-bit-prefix integers, Latin-1 strings and the error type. The decoder and encoder are in hpack.ts.
export class HpackError extends Error {
  fatal: boolean;
  constructor(message: string, fatal = true) {
    super(message);
    this.fatal = fatal;
  }
}

/** A decoded field: name (lower-case as the peer sent it, unchanged) and value. */
export type HeaderField = [name: string, value: string];


/** RFC 7541 §4.1: an entry's size is its name and value octets plus 32. */
export const ENTRY_OVERHEAD = 32;
/** The SETTINGS_HEADER_TABLE_SIZE both ends assume until SETTINGS say otherwise (RFC 9113 §6.5.2). */
export const DEFAULT_TABLE_SIZE = 4096;
/** Integers past this are rejected: no HPACK length or index needs more (and 2^31 fits a double exactly). */
export const MAX_INTEGER = 0x7fffffff;
/** A prefix plus 5 continuation octets carry 2^31 − 1 for any prefix width; more is padding or an attack. */
export const MAX_CONTINUATION = 5;

/** RFC 7541 Appendix A; index k is STATIC_TABLE[k − 1]. */
export const STATIC_TABLE: readonly (readonly [string, string])[] = Object.freeze(
  (
    [
      [":authority", ""], [":method", "GET"], [":method", "POST"], [":path", "/"], [":path", "/index.html"], // 1–5
      [":scheme", "http"], [":scheme", "https"], [":status", "200"], [":status", "204"], [":status", "206"], // 6–10
      [":status", "304"], [":status", "400"], [":status", "404"], [":status", "500"], ["accept-charset", ""], // 11–15
      ["accept-encoding", "gzip, deflate"], ["accept-language", ""], ["accept-ranges", ""], ["accept", ""], // 16–19
      ["access-control-allow-origin", ""], ["age", ""], ["allow", ""], ["authorization", ""], ["cache-control", ""], // 20–24
      ["content-disposition", ""], ["content-encoding", ""], ["content-language", ""], ["content-length", ""], // 25–28
      ["content-location", ""], ["content-range", ""], ["content-type", ""], ["cookie", ""], ["date", ""], ["etag", ""], // 29–34
      ["expect", ""], ["expires", ""], ["from", ""], ["host", ""], ["if-match", ""], ["if-modified-since", ""], // 35–40
      ["if-none-match", ""], ["if-range", ""], ["if-unmodified-since", ""], ["last-modified", ""], ["link", ""], // 41–45
      ["location", ""], ["max-forwards", ""], ["proxy-authenticate", ""], ["proxy-authorization", ""], ["range", ""], // 46–50
      ["referer", ""], ["refresh", ""], ["retry-after", ""], ["server", ""], ["set-cookie", ""], // 51–55
      ["strict-transport-security", ""], ["transfer-encoding", ""], ["user-agent", ""], ["vary", ""], ["via", ""], // 56–60
      ["www-authenticate", ""], // 61
    ] as [string, string][]
  ).map((entry) => Object.freeze(entry)),
);
export const STATIC_COUNT = STATIC_TABLE.length; // 61

/** Name → its lowest static index; entries sharing a name are adjacent, so exact matches scan on. */
export const STATIC_NAME_INDEX: Readonly<Record<string, number>> = (() => {
  const index: Record<string, number> = Object.create(null);
  for (let k = STATIC_COUNT; k >= 1; k--) index[STATIC_TABLE[k - 1][0]] = k;
  return Object.freeze(index);
})();

export interface Entry {
  name: string;
  value: string;
  nameOctets: number; // with UTF-8 text, string lengths are not octet counts
  size: number; // name + value octets + 32
}

/** STATIC_TABLE as table entries, so a decoded index needs no allocation. ASCII: chars are octets. */
export const STATIC_ENTRIES: readonly Entry[] = Object.freeze(
  STATIC_TABLE.map(([name, value]) => Object.freeze({ name, value, nameOctets: name.length, size: name.length + value.length + ENTRY_OVERHEAD })),
);


/** The encoder's lookups into its dynamic table; seqs: each entry's insertion number, newest first. */
interface TableIndex {
  byField: Map<string, number>;
  byName: Map<string, number>;
  seqs: number[];
}

/**
 * The dynamic table (RFC 7541 §2.3.2, §4): newest entry first, evicting the oldest. Bounded by
 * maxSize octets, hence at most maxSize / 32 entries (every entry costs at least 32).
 */
export class DynamicTable {
  #entries: Entry[] = [];
  // The encoder's lookups (indexed tables only), newest entry per field and per name: a renewal's
  // headers are all in the table, and scanning it field by field was most of the encoder's work in
  // XS. An entry's index is (insertions so far − its insertion number + 1). Bounded with the table.
  // A decoder only reads entries by index: it keeps none of this (the peer's table is mostly values
  // that never repeat, such as audit IDs, and the keys would double their strings).
  #index: TableIndex | undefined;
  #inserted = 0;
  size = 0;
  maxSize: number;
  /** indexed: keep the lookups find and findName need (the encoder's table). */
  constructor(maxSize: number, indexed = false) {
    this.maxSize = maxSize;
    this.#index = indexed ? { byField: new Map(), byName: new Map(), seqs: [] } : undefined;
  }
  get length(): number {
    return this.#entries.length;
  }
  /** 1-based, newest first; the caller checks the range. */
  at(index: number): Entry {
    return this.#entries[index - 1];
  }
  add(name: string, value: string, nameOctets: number, size: number): void {
    // §4.4: an entry larger than the table empties it and is not added.
    if (size > this.maxSize) {
      this.#evictTo(0);
      return;
    }
    this.#evictTo(this.maxSize - size);
    this.#entries.unshift({ name, value, nameOctets, size });
    const seq = ++this.#inserted;
    const index = this.#index;
    if (index) {
      index.seqs.unshift(seq);
      index.byField.set(`${name}\n${value}`, seq);
      index.byName.set(name, seq);
    }
    this.size += size;
  }
  setMaxSize(maxSize: number): void {
    this.maxSize = maxSize;
    this.#evictTo(maxSize);
  }
  /** 1-based index of the newest entry with this name and value, or 0 (indexed tables only). */
  find(name: string, value: string): number {
    return this.#indexOf(this.#lookups().byField.get(`${name}\n${value}`));
  }
  findName(name: string): number {
    return this.#indexOf(this.#lookups().byName.get(name));
  }
  #lookups(): TableIndex {
    if (!this.#index) throw new Error("DynamicTable: find needs a table made with indexed = true");
    return this.#index;
  }
  #indexOf(seq: number | undefined): number {
    return seq === undefined ? 0 : this.#inserted - seq + 1;
  }
  entries(): HeaderField[] {
    return this.#entries.map((e) => [e.name, e.value]);
  }
  #evictTo(limit: number): void {
    const index = this.#index;
    while (this.size > limit) {
      const e = this.#entries.pop()!;
      this.size -= e.size;
      if (!index) continue;
      const seq = index.seqs.pop()!;
      // Forget it only where it is still the newest (a newer duplicate keeps the key).
      const field = `${e.name}\n${e.value}`;
      if (index.byField.get(field) === seq) index.byField.delete(field);
      if (index.byName.get(e.name) === seq) index.byName.delete(e.name);
    }
  }
}

export function checkSize(what: string, n: number): number {
  if (!Number.isInteger(n) || n < 0 || n > MAX_INTEGER) throw new RangeError(`${what} must be an integer from 0 to 2^31 − 1, not ${n}`);
  return n;
}

/** One char per octet. Chunked: String.fromCharCode takes the octets as arguments. */
export function latin1Decode(bytes: Uint8Array): string {
  let s = "";
  for (let k = 0; k < bytes.length; k += 1024) s += String.fromCharCode.apply(null, bytes.subarray(k, k + 1024) as unknown as number[]);
  return s;
}

/** One octet per char; a char above U+00FF has no octet, so it is an error, not silently mangled. */
export function latin1Encode(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let k = 0; k < s.length; k++) {
    const c = s.charCodeAt(k);
    if (c > 0xff) throw new HpackError(`header string has U+${c.toString(16).toUpperCase().padStart(4, "0")} at ${k}: not an octet (pass encodeText for UTF-8)`);
    out[k] = c;
  }
  return out;
}

/**
 * Reads an N-bit-prefix integer (RFC 7541 §5.1) at block[pos]; the caller has checked pos < end.
 * Returns the value and leaves the position after it in cursor.pos.
 */
export function readInteger(block: Uint8Array, cursor: { pos: number }, end: number, prefixBits: number): number {
  const mask = (1 << prefixBits) - 1;
  let value = block[cursor.pos++] & mask;
  if (value < mask) return value;
  let scale = 1; // multiplication, not <<: the sum passes 32 bits before the range check catches it
  for (let count = 0; ; count++) {
    if (cursor.pos >= end) throw new HpackError("integer runs past the end of the header block");
    if (count === MAX_CONTINUATION) throw new HpackError(`integer has more than ${MAX_CONTINUATION} continuation octets`);
    const b = block[cursor.pos++];
    value += (b & 0x7f) * scale;
    scale *= 128;
    if (value > MAX_INTEGER) throw new HpackError("integer overflow: more than 2^31 − 1");
    if ((b & 0x80) === 0) return value;
  }
}

/** Octets writeInteger needs at most: the prefix octet and 5 continuation octets. */
export const MAX_INTEGER_OCTETS = 1 + MAX_CONTINUATION;

/** Writes value with an N-bit prefix into out at pos, first octet ORed with flags; returns the next pos. */
export function writeInteger(out: Uint8Array, pos: number, flags: number, prefixBits: number, value: number): number {
  const mask = (1 << prefixBits) - 1;
  if (value < mask) {
    out[pos++] = flags | value;
    return pos;
  }
  out[pos++] = flags | mask;
  value -= mask;
  while (value >= 128) {
    out[pos++] = (value % 128) | 0x80;
    value = Math.floor(value / 128);
  }
  out[pos++] = value;
  return pos;
}
