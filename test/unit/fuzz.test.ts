// Hostile input, fuzzed: everything the board parses from the network or the cluster gets generated
// and mutated inputs (fast-check) — the same parsers the firmware runs. For each: no exception but
// the parser's own escapes, its error names what was wrong, and what it keeps stays within its bounds.
// FUZZ_RUNS sets the inputs per parser (default 100 000; CI runs the default).
import assert from "node:assert/strict";
import fc from "fast-check";
import { FrameError, FrameReader, FrameType, decodeGoaway, decodePing, decodeRstStream, decodeSettings, decodeWindowUpdate, dataPayload, headersPayload, type Frame } from "../../modules/http/frames";
import { HpackDecoder, HpackEncoder, HpackError } from "../../modules/http/hpack";
import { HuffmanError } from "../../modules/http/huffman";
import { HttpError, HttpParser } from "../../modules/http/parser";
import { parseHttpDate } from "../../modules/time/clock";
import { SETTING_KEYS, firmwareSettings, parseMemoryValues, parseSettings } from "../../modules/settings/settings";

const RUNS = Number(process.env.FUZZ_RUNS ?? 100_000);
const enc = new TextEncoder();

/** A valid input, mutated: bytes flipped, inserted, deleted, the tail cut off. */
function mutated(seeds: Uint8Array[]): fc.Arbitrary<Uint8Array> {
  return fc
    .tuple(fc.constantFrom(...seeds), fc.array(fc.tuple(fc.nat(), fc.nat({ max: 255 }), fc.constantFrom("flip", "insert", "delete", "cut")), { maxLength: 6 }))
    .map(([seed, edits]) => {
      const bytes = Array.from(seed);
      for (const [at, value, op] of edits) {
        const i = bytes.length ? at % bytes.length : 0;
        if (op === "flip") bytes[i] = value;
        else if (op === "insert") bytes.splice(i, 0, value);
        else if (op === "delete") bytes.splice(i, 1);
        else bytes.length = i;
      }
      return Uint8Array.from(bytes);
    });
}

/** Feeds bytes in pieces split at the given points (what TCP does to a message). */
function pieces(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const at = [...new Set(cuts.map((c) => (bytes.length ? c % bytes.length : 0)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let from = 0;
  for (const c of at) {
    out.push(bytes.subarray(from, c));
    from = c;
  }
  out.push(bytes.subarray(from));
  return out;
}

const RESPONSES = [
  "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"kind\":\"x\"}\n",
  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nTrailer: x\r\n\r\n",
  "HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\nnot found",
  "HTTP/1.0 503 Service Unavailable\r\nRetry-After: 3\r\nContent-Length: 0\r\n\r\n",
].map((t) => enc.encode(t));
const REQUESTS = [
  "GET /containerLogs/default/hello/main?tailLines=2&follow=true HTTP/1.1\r\nHost: b:10250\r\nAuthorization: Bearer abc\r\n\r\n",
  "POST /metrics HTTP/1.1\r\nContent-Length: 3\r\nHost: b\r\n\r\nabc",
  "GET /healthz HTTP/1.0\r\n\r\n",
].map((t) => enc.encode(t));

function fuzzHttp(kind: "response" | "request", seeds: Uint8Array[]): void {
  const maxHeaderBytes = 1024;
  const keep = 64;
  fc.assert(
    fc.property(fc.oneof(mutated(seeds), fc.uint8Array({ maxLength: 400 })), fc.array(fc.nat(), { maxLength: 4 }), (bytes, cuts) => {
      const p = new HttpParser(kind, { maxHeaderBytes });
      p.begin(keep);
      try {
        for (const piece of pieces(bytes, cuts)) {
          let at = 0;
          while (at < piece.length && !p.done) at = p.push(piece, at, piece.length);
          if (p.done) break;
        }
        p.end();
        if (p.done) assert.ok(p.takeBody().length <= keep, "kept no more body than asked");
      } catch (err) {
        if (!(err instanceof HttpError)) throw err;
        assert.equal(err.kind, "protocol");
        assert.ok(err.message.length > 5, "the error says what was wrong");
      }
    }),
    { numRuns: RUNS },
  );
}

describe("fuzzed parsers (fast-check)", function () {
  this.timeout(600_000);

  it(`the HTTP/1.1 response parser: ${RUNS} inputs, only HttpError("protocol") escapes, body kept within keepBody`, () => fuzzHttp("response", RESPONSES));

  it(`the kubelet API's request parser: ${RUNS} inputs, the same`, () => fuzzHttp("request", REQUESTS));

  it(`HTTP/2 frames and their decoders: ${RUNS} inputs, only FrameError escapes, frames within the size limit`, () => {
    const seeds = [
      Uint8Array.of(0, 0, 6, FrameType.SETTINGS, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0xff, 0xff),
      Uint8Array.of(0, 0, 8, FrameType.GOAWAY, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0),
      Uint8Array.of(0, 0, 4, FrameType.WINDOW_UPDATE, 0, 0, 0, 0, 1, 0, 0, 0x10, 0),
      Uint8Array.of(0, 0, 5, FrameType.DATA, 0x9, 0, 0, 0, 1, 2, 0x61, 0x62, 0, 0),
      Uint8Array.of(0, 0, 8, FrameType.PING, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8),
    ];
    fc.assert(
      fc.property(fc.oneof(mutated(seeds), fc.uint8Array({ maxLength: 200 })), fc.array(fc.nat(), { maxLength: 3 }), (bytes, cuts) => {
        const frames: Frame[] = [];
        const reader = new FrameReader((f) => frames.push(f), { maxFrameSize: 16_384 });
        try {
          for (const piece of pieces(bytes, cuts)) reader.push(piece);
          for (const f of frames) {
            assert.ok(f.payload.length <= 16_384);
            if (f.type === FrameType.SETTINGS) decodeSettings(f);
            else if (f.type === FrameType.WINDOW_UPDATE) decodeWindowUpdate(f);
            else if (f.type === FrameType.GOAWAY) decodeGoaway(f);
            else if (f.type === FrameType.RST_STREAM) decodeRstStream(f);
            else if (f.type === FrameType.PING) decodePing(f);
            else if (f.type === FrameType.DATA) dataPayload(f);
            else if (f.type === FrameType.HEADERS) headersPayload(f);
          }
        } catch (err) {
          if (!(err instanceof FrameError)) throw err;
          assert.ok(err.message.length > 5);
        }
      }),
      { numRuns: RUNS },
    );
  });

  it(`HPACK with Huffman: ${RUNS} header blocks, only HpackError/HuffmanError escapes, the table within its size`, () => {
    const encoder = new HpackEncoder();
    const seeds = [
      encoder.encode([[":status", "200"], ["content-type", "application/json"], ["date", "Wed, 02 Dec 2026 06:00:00 GMT"], ["audit-id", "0b8e1f4e-0000-4c7b-9a7d-123456789abc"]]),
      encoder.encode([[":status", "404"], ["x-custom", "a".repeat(40)], ["set-cookie", "secret", true]]),
      new HpackEncoder({ maxTableSize: 256 }).encode([[":status", "503"], ["retry-after", "3"]]),
    ];
    fc.assert(
      fc.property(fc.oneof(mutated(seeds), fc.uint8Array({ maxLength: 120 })), (block) => {
        const decoder = new HpackDecoder({ maxTableSize: 4096, maxHeaderListBytes: 2048 });
        try {
          const fields = decoder.decode(block);
          let size = 0;
          for (const [name, value] of fields) size += name.length + value.length;
          assert.ok(size <= 2048 + 64, "the header list within its bound");
        } catch (err) {
          if (!(err instanceof HpackError) && !(err instanceof HuffmanError)) throw err;
          assert.ok(err.message.length > 5);
        }
        assert.ok(decoder.tableSize <= 4096);
      }),
      { numRuns: RUNS },
    );
  });

  it(`the Date header: ${RUNS} strings, a time or NaN, never an exception`, () => {
    const good = fc.date({ min: new Date(Date.UTC(1970, 0, 1)), max: new Date(Date.UTC(2100, 0, 1)), noInvalidDate: true }).map((d) => d.toUTCString());
    fc.assert(
      fc.property(fc.oneof(good, fc.string({ maxLength: 40 }), good.map((s) => s.replace(/\d/, "x"))), (text) => {
        const t = parseHttpDate(text);
        assert.ok(Number.isNaN(t) || Number.isFinite(t));
      }),
      { numRuns: RUNS },
    );
  });

  it(`settings ConfigMaps: ${RUNS} data maps, parsed or refused with errors naming the key, never an exception`, () => {
    const keys = Object.keys(SETTING_KEYS);
    const firmware = firmwareSettings({ ledBrightness: 38, statusReportSeconds: 300, conditionCheckSeconds: 10, logLevel: "info" });
    const value = fc.oneof(fc.string({ maxLength: 30 }), fc.integer({ min: -1000, max: 100_000 }).map(String), fc.constantFrom("", "0", "38", "1e309", "NaN", "debug", "0x10=255", "1023=7 5=9"));
    fc.assert(
      fc.property(fc.dictionary(fc.oneof(fc.constantFrom(...keys, "memory_values"), fc.string({ maxLength: 12 })), value, { maxKeys: 6 }), (data) => {
        const parsed = parseSettings(data, firmware);
        if ("errors" in parsed) {
          assert.ok(parsed.errors.length > 0);
          for (const e of parsed.errors) assert.ok(typeof e === "string" && e.length > 5);
        }
        const memory = parseMemoryValues(String(data.memory_values ?? ""));
        if ("writes" in memory) for (const [addr, byte] of memory.writes) assert.ok(addr >= 0 && addr < 1024 && byte >= 0 && byte <= 255);
      }),
      { numRuns: RUNS },
    );
  });
});
