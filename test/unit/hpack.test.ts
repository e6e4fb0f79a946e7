// HPACK and its Huffman code against every example of RFC 7541 Appendix C, encoder/decoder round
// trips (the two dynamic tables stay equal), table size updates, and every decoder error path.
import assert from "node:assert/strict";
import { HUFFMAN_TABLE, HuffmanError, huffmanDecode, huffmanEncode, huffmanEncodeBytes, huffmanEncodedLength } from "../../modules/http/huffman";
import { DynamicTable } from "../../modules/http/hpack-table";
import { HpackDecoder, HpackEncoder, HpackError, STATIC_TABLE, decodeInteger, encodeInteger, latin1Decode, type EncoderField, type HeaderField } from "../../modules/http/hpack";

const hex = (s: string) => {
  const clean = s.replace(/\s+/g, "");
  assert.equal(clean.length % 2, 0, "even hex digits");
  return Uint8Array.from(clean.match(/../g) ?? [], (h) => parseInt(h, 16));
};
const toHex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const octets = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));

/** A seeded PRNG (mulberry32): the same cases on every run. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { next, int: (n: number) => Math.floor(next() * n), pick: <T>(xs: readonly T[]) => xs[Math.floor(next() * xs.length)] };
}

function expectHpackError(fn: () => unknown, pattern: RegExp, fatal = true) {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof HpackError, `HpackError, not ${String(e)}`);
    assert.match(e.message, pattern);
    assert.equal(e.fatal, fatal, `fatal ${fatal} for "${e.message}"`);
    return true;
  });
}

// RFC 7541 C.4 / C.6 strings and their Huffman codings (also in golang.org/x/net/http2/hpack's tests).
const HUFFMAN_VECTORS: [string, string][] = [
  ["www.example.com", "f1e3 c2e5 f23a 6ba0 ab90 f4ff"],
  ["no-cache", "a8eb 1064 9cbf"],
  ["custom-key", "25a8 49e9 5ba9 7d7f"],
  ["custom-value", "25a8 49e9 5bb8 e8b4 bf"],
  ["302", "6402"],
  ["307", "640e ff"],
  ["private", "aec3 771a 4b"],
  ["Mon, 21 Oct 2013 20:13:21 GMT", "d07a be94 1054 d444 a820 0595 040b 8166 e082 a62d 1bff"],
  ["Mon, 21 Oct 2013 20:13:22 GMT", "d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff"],
  ["https://www.example.com", "9d29 ad17 1863 c78f 0b97 c8e9 ae82 ae43 d3"],
  ["gzip", "9bd9 ab"],
  ["foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1", "94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07"],
];

describe("HPACK Huffman code (RFC 7541 §5.2, Appendix B)", () => {
  it("is Appendix B: 257 codes, canonical, complete, with the spot values of the RFC", () => {
    assert.equal(HUFFMAN_TABLE.length, 2 * 257);
    assert.ok(Object.isFrozen(HUFFMAN_TABLE));
    // Canonical: ordered by (length, symbol), each code is the previous plus one, shifted to its length.
    const order = Array.from({ length: 257 }, (_, s) => s).sort((a, b) => HUFFMAN_TABLE[2 * a + 1] - HUFFMAN_TABLE[2 * b + 1] || a - b);
    let code = 0;
    let bits = HUFFMAN_TABLE[2 * order[0] + 1];
    let kraft = 0;
    for (const s of order) {
      const len = HUFFMAN_TABLE[2 * s + 1];
      code <<= len - bits;
      bits = len;
      assert.equal(HUFFMAN_TABLE[2 * s], code, `symbol ${s}`);
      assert.ok(code < 2 ** len);
      kraft += 2 ** -len;
      code++;
    }
    assert.equal(kraft, 1, "a complete prefix code");
    const spot: [number, number, number][] = [
      [0, 0x1ff8, 13],
      [32, 0x14, 6], // ' '
      [48, 0x0, 5], // '0'
      [97, 0x3, 5], // 'a'
      [122, 0x7b, 7], // 'z'
      [127, 0xffffffc, 28],
      [128, 0xfffe6, 20],
      [255, 0x3ffffee, 26],
      [256, 0x3fffffff, 30], // EOS
    ];
    for (const [s, c, len] of spot) assert.deepEqual([HUFFMAN_TABLE[2 * s], HUFFMAN_TABLE[2 * s + 1]], [c, len], `symbol ${s}`);
  });

  it("encodes and decodes the Appendix C strings exactly", () => {
    for (const [text, coded] of HUFFMAN_VECTORS) {
      assert.equal(toHex(huffmanEncodeBytes(octets(text))), toHex(hex(coded)), text);
      assert.equal(huffmanEncodedLength(octets(text)), hex(coded).length, text);
      const bytes = hex(coded);
      assert.equal(latin1Decode(huffmanDecode(bytes, 0, bytes.length, 1000)), text);
    }
  });

  it("round-trips every octet, at any offset, including 30-bit codes", () => {
    const r = prng(7);
    for (let round = 0; round < 50; round++) {
      const input = Uint8Array.from({ length: r.int(80) }, () => (round === 0 ? 10 : r.int(256)));
      const out = new Uint8Array(3 + huffmanEncodedLength(input));
      assert.equal(huffmanEncode(input, out, 3), out.length);
      assert.deepEqual(huffmanDecode(out, 3, out.length, input.length), input);
    }
    const all = Uint8Array.from({ length: 256 }, (_, k) => k);
    const coded = huffmanEncodeBytes(all);
    assert.deepEqual(huffmanDecode(coded, 0, coded.length, 256), all);
  });

  it("rejects padding over 7 bits, padding that is not all ones, EOS, and output beyond maxOutput", () => {
    const bad: [string, RegExp][] = [
      ["ff", /padding is 8 bits/],
      ["1fff", /padding is 11 bits/], // "a" then a whole octet of padding
      ["1fffff", /padding is 19 bits/],
      ["1fffffff", /padding is 27 bits/],
      ["00", /not all ones/], // "0" then 000
      ["52bc30ffffffff", /EOS|padding/], // padding ends inside a code
      ["ffffffff", /EOS/],
      ["fffffffffc", /EOS/], // EOS, then "?"
      ["ff9fffffff", /EOS|padding/],
    ];
    for (const [h, pattern] of bad) {
      const bytes = hex(h);
      assert.throws(() => huffmanDecode(bytes, 0, bytes.length, 100), (e: unknown) => e instanceof HuffmanError && pattern.test(e.message), h);
    }
    const zeros = hex("0001"); // "000" and one bit of padding
    assert.deepEqual(huffmanDecode(zeros, 0, 2, 3), octets("000"));
    assert.throws(() => huffmanDecode(zeros, 0, 2, 2), /longer than 2 octets/);
    assert.deepEqual(huffmanDecode(zeros, 1, 1, 0), new Uint8Array(0), "an empty string");
  });
});

describe("HPACK integers (RFC 7541 §5.1, C.1)", () => {
  it("C.1.1 encodes 10 with a 5-bit prefix as 0a", () => {
    assert.equal(toHex(encodeInteger(10, 5)), "0a");
    assert.deepEqual(decodeInteger(hex("0a"), 5), { value: 10, length: 1 });
  });
  it("C.1.2 encodes 1337 with a 5-bit prefix as 1f 9a 0a", () => {
    assert.equal(toHex(encodeInteger(1337, 5)), "1f9a0a");
    assert.deepEqual(decodeInteger(hex("1f9a0a"), 5), { value: 1337, length: 3 });
    assert.deepEqual(decodeInteger(hex("ff9a0a"), 5), { value: 1337, length: 3 }, "bits above the prefix are not the integer's");
  });
  it("C.1.3 encodes 42 at an octet boundary (8-bit prefix) as 2a", () => {
    assert.equal(toHex(encodeInteger(42, 8)), "2a");
    assert.deepEqual(decodeInteger(hex("2a"), 8), { value: 42, length: 1 });
  });
  it("round-trips the edges of every prefix and rejects overflow, long encodings and truncation", () => {
    for (const prefix of [4, 5, 6, 7, 8]) {
      for (const v of [0, 2 ** prefix - 2, 2 ** prefix - 1, 2 ** prefix, 127 + 2 ** prefix, 0x7fffffff]) {
        const enc = encodeInteger(v, prefix, prefix < 8 ? 0x100 - (1 << prefix) : 0);
        assert.ok(enc.length <= 6);
        assert.deepEqual(decodeInteger(enc, prefix), { value: v, length: enc.length }, `${v} with ${prefix}-bit prefix`);
      }
    }
    expectHpackError(() => decodeInteger(hex("1f ff ff ff ff 0f"), 5), /overflow/);
    expectHpackError(() => decodeInteger(hex("1f e1 ff ff ff 07"), 5), /overflow/); // 2^31
    assert.equal(decodeInteger(hex("1f e0 ff ff ff 07"), 5).value, 0x7fffffff);
    expectHpackError(() => decodeInteger(hex("1f 80 80 80 80 80 00"), 5), /more than 5 continuation/);
    expectHpackError(() => decodeInteger(hex("1f 9a"), 5), /past the end/);
    expectHpackError(() => decodeInteger(hex(""), 5), /past the end/);
  });
});

type Step = { block: string; headers: HeaderField[]; table: HeaderField[]; size: number };

function decodeSeries(maxTableSize: number, steps: Step[]) {
  const d = new HpackDecoder({ maxTableSize });
  steps.forEach((step, k) => {
    assert.deepEqual(d.decode(hex(step.block)), step.headers, `block ${k + 1}`);
    assert.deepEqual(d.tableEntries(), step.table, `table after block ${k + 1}`);
    assert.equal(d.tableSize, step.size, `table size after block ${k + 1}`);
  });
}

// RFC 7541 Appendix C.3–C.6, hex exactly as printed there.
const C3: Step[] = [
  {
    block: "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
    headers: [[":method", "GET"], [":scheme", "http"], [":path", "/"], [":authority", "www.example.com"]],
    table: [[":authority", "www.example.com"]],
    size: 57,
  },
  {
    block: "8286 84be 5808 6e6f 2d63 6163 6865",
    headers: [[":method", "GET"], [":scheme", "http"], [":path", "/"], [":authority", "www.example.com"], ["cache-control", "no-cache"]],
    table: [["cache-control", "no-cache"], [":authority", "www.example.com"]],
    size: 110,
  },
  {
    block: "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
    headers: [[":method", "GET"], [":scheme", "https"], [":path", "/index.html"], [":authority", "www.example.com"], ["custom-key", "custom-value"]],
    table: [["custom-key", "custom-value"], ["cache-control", "no-cache"], [":authority", "www.example.com"]],
    size: 164,
  },
];
const C4: Step[] = [
  { ...C3[0], block: "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff" },
  { ...C3[1], block: "8286 84be 5886 a8eb 1064 9cbf" },
  { ...C3[2], block: "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf" },
];
const date1: HeaderField = ["date", "Mon, 21 Oct 2013 20:13:21 GMT"];
const date2: HeaderField = ["date", "Mon, 21 Oct 2013 20:13:22 GMT"];
const location: HeaderField = ["location", "https://www.example.com"];
const cookie: HeaderField = ["set-cookie", "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"];
const C5: Step[] = [
  {
    block: `4803 3330 3258 0770 7269 7661 7465 611d
            4d6f 6e2c 2032 3120 4f63 7420 3230 3133
            2032 303a 3133 3a32 3120 474d 546e 1768
            7474 7073 3a2f 2f77 7777 2e65 7861 6d70
            6c65 2e63 6f6d`,
    headers: [[":status", "302"], ["cache-control", "private"], date1, location],
    table: [location, date1, ["cache-control", "private"], [":status", "302"]],
    size: 222,
  },
  {
    block: "4803 3330 37c1 c0bf",
    headers: [[":status", "307"], ["cache-control", "private"], date1, location],
    table: [[":status", "307"], location, date1, ["cache-control", "private"]],
    size: 222,
  },
  {
    block: `88c1 611d 4d6f 6e2c 2032 3120 4f63 7420
            3230 3133 2032 303a 3133 3a32 3220 474d
            54c0 5a04 677a 6970 7738 666f 6f3d 4153
            444a 4b48 514b 425a 584f 5157 454f 5049
            5541 5851 5745 4f49 553b 206d 6178 2d61
            6765 3d33 3630 303b 2076 6572 7369 6f6e
            3d31`,
    headers: [[":status", "200"], ["cache-control", "private"], date2, location, ["content-encoding", "gzip"], cookie],
    table: [cookie, ["content-encoding", "gzip"], date2],
    size: 215,
  },
];
const C6: Step[] = [
  {
    ...C5[0],
    block: `4882 6402 5885 aec3 771a 4b61 96d0 7abe
            9410 54d4 44a8 2005 9504 0b81 66e0 82a6
            2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8
            e9ae 82ae 43d3`,
  },
  { ...C5[1], block: "4883 640e ffc1 c0bf" },
  {
    ...C5[2],
    block: `88c1 6196 d07a be94 1054 d444 a820 0595
            040b 8166 e084 a62d 1bff c05a 839b d9ab
            77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b
            3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
            9587 3160 65c0 03ed 4ee5 b106 3d50 07`,
  },
];

describe("HpackDecoder (RFC 7541 Appendix C)", () => {
  it("C.2.1 literal field with indexing", () => {
    const d = new HpackDecoder();
    assert.deepEqual(d.decode(hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572")), [["custom-key", "custom-header"]]);
    assert.deepEqual(d.tableEntries(), [["custom-key", "custom-header"]]);
    assert.equal(d.tableSize, 55);
  });
  it("C.2.2 literal field without indexing", () => {
    const d = new HpackDecoder();
    assert.deepEqual(d.decode(hex("040c 2f73 616d 706c 652f 7061 7468")), [[":path", "/sample/path"]]);
    assert.deepEqual(d.tableEntries(), []);
    assert.equal(d.tableSize, 0);
  });
  it("C.2.3 literal field never indexed", () => {
    const d = new HpackDecoder();
    assert.deepEqual(d.decode(hex("1008 7061 7373 776f 7264 0673 6563 7265 74")), [["password", "secret"]]);
    assert.deepEqual(d.tableEntries(), []);
  });
  it("C.2.4 indexed field", () => {
    const d = new HpackDecoder();
    assert.deepEqual(d.decode(hex("82")), [[":method", "GET"]]);
    assert.deepEqual(d.tableEntries(), []);
  });
  it("C.3 requests without Huffman coding", () => decodeSeries(4096, C3));
  it("C.4 requests with Huffman coding", () => decodeSeries(4096, C4));
  it("C.5 responses without Huffman coding, 256-octet table (evictions)", () => decodeSeries(256, C5));
  it("C.6 responses with Huffman coding, 256-octet table (evictions)", () => decodeSeries(256, C6));

  it("has RFC 7541 Appendix A's static table, frozen", () => {
    assert.equal(STATIC_TABLE.length, 61);
    assert.ok(Object.isFrozen(STATIC_TABLE) && STATIC_TABLE.every((e) => Object.isFrozen(e)));
    assert.deepEqual(STATIC_TABLE[0], [":authority", ""]);
    assert.deepEqual(STATIC_TABLE[15], ["accept-encoding", "gzip, deflate"]);
    assert.deepEqual(STATIC_TABLE[22], ["authorization", ""]);
    assert.deepEqual(STATIC_TABLE[60], ["www-authenticate", ""]);
  });
});

describe("HPACK dynamic table", () => {
  it("an entry larger than the table empties it, lookups included (§4.4); only an indexed table looks up", () => {
    const t = new DynamicTable(100, true);
    t.add("a", "1", 1, 34);
    t.add("b", "2", 1, 34);
    assert.equal(t.find("a", "1"), 2);
    assert.equal(t.findName("b"), 1);
    t.add("c", "x".repeat(80), 1, 113);
    assert.equal(t.length, 0);
    assert.equal(t.size, 0);
    assert.equal(t.find("a", "1"), 0, "no stale index into an empty table");
    assert.equal(t.findName("b"), 0);
    t.add("a", "1", 1, 34);
    assert.equal(t.find("a", "1"), 1);
    const decoderSide = new DynamicTable(100);
    decoderSide.add("a", "1", 1, 34);
    assert.deepEqual(decoderSide.at(1), { name: "a", value: "1", nameOctets: 1, size: 34 });
    assert.throws(() => decoderSide.find("a", "1"), /indexed = true/);
  });
});

describe("HpackEncoder", () => {
  const withoutHuffman = (steps: Step[]) => {
    const e = new HpackEncoder({ huffman: false });
    for (const step of steps) assert.equal(toHex(e.encode(step.headers)), toHex(hex(step.block)));
  };
  it("reproduces C.3 byte for byte (without Huffman)", () => withoutHuffman(C3));
  it("reproduces C.4 byte for byte (Huffman when shorter)", () => {
    const e = new HpackEncoder();
    for (const step of C4) assert.equal(toHex(e.encode(step.headers)), toHex(hex(step.block)));
  });
  it("reproduces C.5 after announcing its 256-octet table", () => {
    const e = new HpackEncoder({ maxTableSize: 256, huffman: false, shouldIndex: () => true });
    const d = new HpackDecoder();
    C5.forEach((step, k) => {
      const block = e.encode(step.headers);
      // 256 as a size update: 001 11111, then 256 − 31 = 225 = e1 01.
      assert.equal(toHex(block), (k === 0 ? "3fe101" : "") + toHex(hex(step.block)), `response ${k + 1}`);
      assert.deepEqual(d.decode(block), step.headers);
      assert.deepEqual(e.tableEntries(), step.table);
      assert.equal(e.tableSize, step.size);
    });
    assert.equal(d.tableMaxSize, 256);
  });

  it("shrinks a repeated request to one octet per field", () => {
    const token = "Bearer " + "a-long-opaque-token-part.".repeat(28);
    const request: EncoderField[] = [
      [":method", "PUT"],
      [":scheme", "https"],
      [":authority", "192.0.2.1:6443"],
      [":path", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/esp32-node"],
      ["Authorization", token],
      ["accept", "application/json"],
      ["content-type", "application/json"],
      ["user-agent", "xs-kubelet/0.1.0"],
    ];
    const e = new HpackEncoder();
    const d = new HpackDecoder();
    const first = e.encode(request);
    const second = e.encode(request);
    assert.ok(first.length > token.length / 2, `first block ${first.length} octets`);
    assert.equal(second.length, request.length, `second block: ${toHex(second)}`);
    assert.ok(second.every((b) => b & 0x80), "all indexed");
    const expected = request.map(([n, v]) => [n.toLowerCase(), v]);
    assert.deepEqual(d.decode(first), expected, "names lower-cased");
    assert.deepEqual(d.decode(second), expected);
  });

  it("never indexes a sensitive field, in either table", () => {
    const e = new HpackEncoder();
    const d = new HpackDecoder();
    const fields: EncoderField[] = [["authorization", "Bearer secret-token", true]];
    const a = e.encode(fields);
    const b = e.encode(fields);
    assert.equal(toHex(a), toHex(b), "no shrinking: nothing was indexed");
    // 0001 1111 then 23 − 15 = 8: never indexed, name = static 23 (authorization).
    assert.equal(toHex(a.subarray(0, 2)), "1f08");
    assert.deepEqual(e.tableEntries(), []);
    assert.deepEqual(d.decode(a), [["authorization", "Bearer secret-token"]]);
    assert.deepEqual(d.tableEntries(), []);
    // The same value unmarked is indexed; marked again, it is not sent as that index.
    e.encode([["authorization", "Bearer secret-token"]]);
    assert.equal(e.tableEntries().length, 1);
    assert.equal(toHex(e.encode(fields).subarray(0, 2)), "1f08");
  });

  it("does not index values that rarely repeat, or fields over half the table", () => {
    const e = new HpackEncoder({ maxTableSize: 200 });
    e.encode([["content-length", "12"], ["x-big", "v".repeat(100)], ["x-small", "v"]]);
    assert.deepEqual(e.tableEntries(), [["x-small", "v"]]);
  });

  it("signals table size changes at the start of the next block: the smallest, then the final", () => {
    const e = new HpackEncoder();
    const d = new HpackDecoder();
    assert.deepEqual(d.decode(e.encode([["x-a", "1"]])), [["x-a", "1"]]);
    e.setPeerMaxTableSize(100);
    e.setPeerMaxTableSize(2000);
    d.setMaxTableSize(2000);
    const block = e.encode([["x-a", "1"]]);
    // 100 = 3f 45; 2000 = 3f b1 0f; then x-a: 1 is still in the table (36 octets ≤ 100): be.
    assert.equal(toHex(block), "3f45" + "3fb10f" + "be");
    assert.deepEqual(d.decode(block), [["x-a", "1"]]);
    assert.equal(d.tableMaxSize, 2000);
    e.setPeerMaxTableSize(0);
    d.setMaxTableSize(0);
    assert.equal(toHex(e.encode([])), "20");
    assert.equal(e.tableSize, 0);
    assert.equal(toHex(e.encode([])), "", "only once");
    const small = new HpackEncoder({ maxTableSize: 64 });
    assert.equal(toHex(small.encode([])), "3f21", "our own bound below the default is announced");
    small.setPeerMaxTableSize(0xffffffff);
    assert.equal(toHex(small.encode([])), "", "the peer allowing more changes nothing: ours is the bound");
  });

  it("round-trips random header lists over random table sizes, the two tables equal after each block", () => {
    const r = prng(20240607);
    const names = ["content-type", "accept", ":path", ":authority", "user-agent", "x-request-id", "cookie", "authorization", "etag", "x-ü", "X-Mixed-Case", "content-length"];
    const values = ["", "application/json", "/api/v1/nodes", "gzip, deflate", "a".repeat(300), "ÿ\u0080\u00fe binary", "GET", "x"];
    const randomValue = () => (r.next() < 0.6 ? r.pick(values) : Array.from({ length: r.int(40) }, () => String.fromCharCode(r.next() < 0.8 ? 32 + r.int(95) : r.int(256))).join(""));
    for (let conn = 0; conn < 40; conn++) {
      const e = new HpackEncoder({ maxTableSize: r.pick([0, 64, 256, 1024, 4096]), huffman: r.next() < 0.8 });
      const d = new HpackDecoder({ maxHeaderListBytes: 1 << 20 });
      for (let block = 0; block < 25; block++) {
        if (r.next() < 0.15) {
          const peer = r.pick([0, 50, 256, 4096, 65536]);
          e.setPeerMaxTableSize(peer);
          d.setMaxTableSize(peer);
        }
        const fields: EncoderField[] = Array.from({ length: r.int(12) }, () => [r.pick(names), randomValue(), r.next() < 0.1]);
        const encoded = e.encode(fields);
        assert.deepEqual(
          d.decode(encoded),
          fields.map(([n, v]) => [n.toLowerCase(), v]),
          `connection ${conn} block ${block}`,
        );
        assert.deepEqual(d.tableEntries(), e.tableEntries());
        assert.equal(d.tableSize, e.tableSize);
        assert.ok(e.tableSize <= e.tableMaxSize);
      }
    }
  });

  it("carries UTF-8 with encodeText/decodeText, sizing the tables in octets", () => {
    const e = new HpackEncoder({ encodeText: (s) => new TextEncoder().encode(s) });
    const d = new HpackDecoder({ decodeText: (b) => new TextDecoder().decode(b) });
    const fields: EncoderField[] = [["x-name", "häßlich ☃"]];
    assert.deepEqual(d.decode(e.encode(fields)), fields);
    assert.equal(e.tableSize, 6 + 13 + 32);
    assert.equal(d.tableSize, e.tableSize);
    assert.deepEqual(d.decode(e.encode(fields)), fields);
  });

  it("refuses a non-octet char by default and leaves its table untouched", () => {
    const e = new HpackEncoder();
    assert.throws(() => e.encode([["x-a", "1"], ["x-b", "☃"]]), (err: unknown) => err instanceof HpackError && /U\+2603/.test(err.message));
    assert.deepEqual(e.tableEntries(), []);
  });
});

describe("HpackDecoder errors", () => {
  it("names a truncated block: integer, string length, string octets, missing value", () => {
    expectHpackError(() => new HpackDecoder().decode(hex("1f")), /integer runs past the end/);
    expectHpackError(() => new HpackDecoder().decode(hex("41")), /ends before the value string/);
    expectHpackError(() => new HpackDecoder().decode(hex("40")), /ends before the name string/);
    expectHpackError(() => new HpackDecoder().decode(hex("41 0f 7777 772e")), /value string of 15 octets runs past the end of the header block \(4 left\)/);
    expectHpackError(() => new HpackDecoder().decode(hex("41 7f")), /integer runs past the end/);
    // Every proper prefix of C.3's third request that cuts a field is rejected, never misread.
    const full = hex(C3[2].block);
    const boundaries = new Set([0, 1, 2, 3, 4, full.length]);
    for (let cut = 1; cut < full.length; cut++) {
      const d = new HpackDecoder();
      d.decode(hex(C3[0].block));
      d.decode(hex(C3[1].block));
      if (boundaries.has(cut)) d.decode(full.subarray(0, cut));
      else expectHpackError(() => d.decode(full.subarray(0, cut)), /past the end|ends before/);
    }
  });

  it("names a bad index", () => {
    expectHpackError(() => new HpackDecoder().decode(hex("80")), /index 0/);
    expectHpackError(() => new HpackDecoder().decode(hex("be")), /index 62 out of range \(61 static \+ 0 dynamic entries\)/);
    expectHpackError(() => new HpackDecoder().decode(hex("7f00 0178")), /index 63 out of range/);
    expectHpackError(() => new HpackDecoder().decode(hex("0f 30 01 78")), /index 63 out of range/);
    const d = new HpackDecoder();
    d.decode(hex(C3[0].block));
    assert.deepEqual(d.decode(hex("be")), [[":authority", "www.example.com"]]);
    expectHpackError(() => d.decode(hex("bf")), /index 63 out of range \(61 static \+ 1 dynamic entries\)/);
  });

  it("names integer overflow and over-long integers", () => {
    expectHpackError(() => new HpackDecoder().decode(hex("ff ff ff ff ff 0f")), /integer overflow/);
    expectHpackError(() => new HpackDecoder().decode(hex("ff 80 80 80 80 80 01")), /more than 5 continuation octets/);
    expectHpackError(() => new HpackDecoder().decode(hex("41 ff ff ff ff 07")), /past the end/);
  });

  it("names bad Huffman in a string: padding, EOS", () => {
    expectHpackError(() => new HpackDecoder().decode(hex("41 81 ff")), /value string: Huffman string padding is 8 bits/);
    expectHpackError(() => new HpackDecoder().decode(hex("41 81 00")), /value string: Huffman string padding is not all ones/);
    expectHpackError(() => new HpackDecoder().decode(hex("40 84 ffffffff 00")), /name string: Huffman string contains EOS/);
  });

  it("rejects a header list over maxHeaderListBytes without losing step with the encoder", () => {
    const e = new HpackEncoder();
    const d = new HpackDecoder({ maxHeaderListBytes: 200 });
    const big: EncoderField[] = [["x-one", "a".repeat(60)], ["x-two", "b".repeat(60)], ["x-three", "c".repeat(60)]];
    expectHpackError(() => d.decode(e.encode(big)), /header list of 2\d\d octets is larger than maxHeaderListBytes 200/, false);
    assert.deepEqual(d.tableEntries(), e.tableEntries(), "the table took the block's insertions");
    assert.deepEqual(d.decode(e.encode(big.slice(0, 2))), big.slice(0, 2), "usable after: those fields are indexed now");
    // One string longer than the whole list can never fit: that one is fatal (it is not decoded).
    const d2 = new HpackDecoder({ maxHeaderListBytes: 200 });
    expectHpackError(() => d2.decode(new HpackEncoder({ huffman: false }).encode([["x", "v".repeat(300)]])), /value string of 300 octets is larger than maxHeaderListBytes 200/);
    const d3 = new HpackDecoder({ maxHeaderListBytes: 200 });
    expectHpackError(() => d3.decode(new HpackEncoder().encode([["x", "v".repeat(300)]])), /longer than 200 octets/);
  });

  it("checks table size updates: within our setting, only at the start, and required after we lower it", () => {
    expectHpackError(() => new HpackDecoder().decode(hex("3fe21f")), /size update to 4097 exceeds SETTINGS_HEADER_TABLE_SIZE 4096/);
    expectHpackError(() => new HpackDecoder({ maxTableSize: 256 }).decode(hex("3fe201")), /size update to 257 exceeds SETTINGS_HEADER_TABLE_SIZE 256/);
    expectHpackError(() => new HpackDecoder().decode(hex("82 20")), /size update after a header field/);
    const d = new HpackDecoder();
    d.decode(hex(C3[0].block));
    assert.deepEqual(d.decode(hex("20 3fe11f 82")), [[":method", "GET"]], "two updates: to 0 (evicting), then 4096");
    assert.deepEqual(d.tableEntries(), []);
    d.setMaxTableSize(100);
    expectHpackError(() => d.decode(hex("82")), /does not start with a dynamic table size update \(SETTINGS_HEADER_TABLE_SIZE lowered to 100\)/);
    const d2 = new HpackDecoder();
    d2.setMaxTableSize(100);
    assert.deepEqual(d2.decode(hex("3f45 82")), [[":method", "GET"]]);
    assert.equal(d2.tableMaxSize, 100);
    d2.setMaxTableSize(4096);
    assert.deepEqual(d2.decode(hex("82")), [[":method", "GET"]], "raising it needs no update");
  });

  it("refuses every block after a fatal error", () => {
    const d = new HpackDecoder();
    expectHpackError(() => d.decode(hex("80")), /index 0/);
    expectHpackError(() => d.decode(hex("82")), /unusable after an earlier error \(indexed header field with index 0\)/);
  });
});
