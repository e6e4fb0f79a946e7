// HTTP/2 framing: builders and the incremental reader round-trip, whatever the chunking; oversize
// frames are refused before they are buffered; SETTINGS, WINDOW_UPDATE, GOAWAY, RST_STREAM and
// PING payloads are checked as RFC 9113 §6 requires; CONTINUATION splitting and padding.
import assert from "node:assert/strict";
import {
  CLIENT_PREFACE,
  ErrorCode,
  Flags,
  FrameError,
  FrameReader,
  FrameType,
  Setting,
  clientPreface,
  dataFrame,
  dataPayload,
  decodeGoaway,
  decodePing,
  decodeRstStream,
  decodeSettings,
  decodeWindowUpdate,
  encodeFrame,
  errorCodeName,
  goawayFrame,
  headersFrames,
  headersPayload,
  pingFrame,
  rstStreamFrame,
  settingsAckFrame,
  settingsFrame,
  windowUpdateFrame,
  type Frame,
} from "../../modules/http/frames";
import { HpackDecoder, HpackEncoder } from "../../modules/http/hpack";

const toHex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const bytes = (...xs: number[]) => Uint8Array.from(xs);
const text = (s: string) => new TextEncoder().encode(s);

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Reads a whole byte string into frames, pushed in pieces of the given sizes (cycled). */
function readAll(stream: Uint8Array, pieces: number[] = [stream.length], options = {}): Frame[] {
  const frames: Frame[] = [];
  const reader = new FrameReader((f) => frames.push(f), options);
  let at = 0;
  for (let k = 0; at < stream.length; k++) {
    const n = Math.max(1, pieces[k % pieces.length]);
    reader.push(stream.subarray(at, at + n));
    at += n;
  }
  assert.equal(reader.buffered, 0, "nothing left over");
  return frames;
}

const frameOf = (type: number, flags: number, streamId: number, payload: Uint8Array): Frame => ({ type, flags, streamId, payload });

function expectFrameError(fn: () => unknown, code: number, pattern: RegExp, streamId = 0) {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof FrameError, `FrameError, not ${String(e)}`);
    assert.equal(e.code, code, `${errorCodeName(code)}, not ${errorCodeName(e.code)}: ${e.message}`);
    assert.equal(e.streamId, streamId);
    assert.match(e.message, pattern);
    return true;
  });
}

describe("HTTP/2 frames", () => {
  it("has frozen constants of plain numbers and names error codes", () => {
    for (const table of [FrameType, Flags, ErrorCode, Setting]) {
      assert.ok(Object.isFrozen(table));
      for (const v of Object.values(table)) assert.equal(typeof v, "number");
    }
    assert.equal(ErrorCode.HTTP_1_1_REQUIRED, 0xd);
    assert.equal(errorCodeName(0), "NO_ERROR");
    assert.equal(errorCodeName(ErrorCode.FRAME_SIZE_ERROR), "FRAME_SIZE_ERROR");
    assert.equal(errorCodeName(0xd), "HTTP_1_1_REQUIRED");
    assert.equal(errorCodeName(0x1f), "0x1f (unknown)");
    assert.equal(toHex(clientPreface()), toHex(text(CLIENT_PREFACE)));
    assert.equal(clientPreface().length, 24);
  });

  it("encodes the 9-octet header (RFC 9113 §4.1)", () => {
    assert.equal(toHex(encodeFrame(FrameType.HEADERS, Flags.END_HEADERS | Flags.END_STREAM, 0x7fffffff, bytes(1, 2, 3))), "000003" + "01" + "05" + "7fffffff" + "010203");
    assert.equal(toHex(settingsAckFrame()), "000000040100000000");
    assert.equal(toHex(settingsFrame([[Setting.MAX_CONCURRENT_STREAMS, 100], [Setting.INITIAL_WINDOW_SIZE, 65535]])), "00000c040000000000" + "000300000064" + "00040000ffff");
    assert.equal(toHex(windowUpdateFrame(3, 0x7fffffff)), "000004080000000003" + "7fffffff");
    assert.equal(toHex(rstStreamFrame(5, ErrorCode.CANCEL)), "000004030000000005" + "00000008");
    assert.equal(toHex(goawayFrame(7, ErrorCode.PROTOCOL_ERROR, text("hi"))), "00000a070000000000" + "00000007" + "00000001" + "6869");
    assert.equal(toHex(pingFrame(bytes(1, 2, 3, 4, 5, 6, 7, 8), true)), "000008060100000000" + "0102030405060708");
    assert.equal(toHex(dataFrame(1, text("ok"), true)), "000002000100000001" + "6f6b");
    assert.throws(() => encodeFrame(0, 0, 2 ** 31, bytes()), RangeError);
    assert.throws(() => windowUpdateFrame(0, 0), RangeError);
    assert.throws(() => pingFrame(bytes(1)), RangeError);
    assert.throws(() => rstStreamFrame(0, 0), RangeError);
    assert.throws(() => dataFrame(0, bytes()), RangeError);
  });

  it("reads back every builder's frame, whole or one octet at a time, and decodes the payloads", () => {
    const stream = concat([
      settingsFrame([[Setting.HEADER_TABLE_SIZE, 0], [Setting.ENABLE_PUSH, 0], [Setting.MAX_FRAME_SIZE, 16777215]]),
      settingsAckFrame(),
      windowUpdateFrame(0, 1 << 20),
      pingFrame(text("12345678")),
      headersFrames(1, text("block"), { endStream: true }),
      dataFrame(3, new Uint8Array(16384)),
      dataFrame(3, bytes(), true),
      rstStreamFrame(3, ErrorCode.REFUSED_STREAM),
      goawayFrame(3, ErrorCode.ENHANCE_YOUR_CALM, text("calm")),
    ]);
    for (const pieces of [[stream.length], [1], [2, 3, 5, 7, 11, 13], [9], [8, 10], [4096]]) {
      const frames = readAll(stream, pieces);
      assert.deepEqual(
        frames.map((f) => [f.type, f.flags, f.streamId, f.payload.length]),
        [
          [FrameType.SETTINGS, 0, 0, 18],
          [FrameType.SETTINGS, Flags.ACK, 0, 0],
          [FrameType.WINDOW_UPDATE, 0, 0, 4],
          [FrameType.PING, 0, 0, 8],
          [FrameType.HEADERS, Flags.END_STREAM | Flags.END_HEADERS, 1, 5],
          [FrameType.DATA, 0, 3, 16384],
          [FrameType.DATA, Flags.END_STREAM, 3, 0],
          [FrameType.RST_STREAM, 0, 3, 4],
          [FrameType.GOAWAY, 0, 0, 12],
        ],
        `pieces ${pieces}`,
      );
      assert.deepEqual(decodeSettings(frames[0]), [[Setting.HEADER_TABLE_SIZE, 0], [Setting.ENABLE_PUSH, 0], [Setting.MAX_FRAME_SIZE, 16777215]]);
      assert.deepEqual(decodeSettings(frames[1]), []);
      assert.equal(decodeWindowUpdate(frames[2]), 1 << 20);
      assert.equal(new TextDecoder().decode(decodePing(frames[3])), "12345678");
      assert.equal(new TextDecoder().decode(headersPayload(frames[4])), "block");
      assert.equal(dataPayload(frames[5]).length, 16384);
      assert.equal(decodeRstStream(frames[7]), ErrorCode.REFUSED_STREAM);
      const goaway = decodeGoaway(frames[8]);
      assert.equal(goaway.lastStreamId, 3);
      assert.equal(goaway.errorCode, ErrorCode.ENHANCE_YOUR_CALM);
      assert.equal(new TextDecoder().decode(goaway.debugData), "calm");
    }
  });

  it("gives each frame its own payload copy and ignores the reserved bit", () => {
    const chunk = encodeFrame(FrameType.DATA, 0, 1, text("abc"));
    chunk[5] |= 0x80; // R bit
    const frames: Frame[] = [];
    new FrameReader((f) => frames.push(f)).push(chunk);
    chunk.fill(0);
    assert.equal(frames[0].streamId, 1);
    assert.equal(new TextDecoder().decode(frames[0].payload), "abc");
  });

  it("refuses a frame over SETTINGS_MAX_FRAME_SIZE from its header, before buffering it, and stays failed", () => {
    const reader = new FrameReader(() => assert.fail("no frame"));
    const header = encodeFrame(FrameType.DATA, 0, 1, new Uint8Array(16385)).subarray(0, 9);
    reader.push(header.subarray(0, 8));
    expectFrameError(() => reader.push(concat([header.subarray(8), new Uint8Array(100)])), ErrorCode.FRAME_SIZE_ERROR, /frame of 16385 octets \(type 0\) exceeds SETTINGS_MAX_FRAME_SIZE 16384/);
    assert.ok(reader.buffered <= 9, "the payload was never buffered");
    expectFrameError(() => reader.push(bytes(0)), ErrorCode.FRAME_SIZE_ERROR, /16385/);
    // 2^24 − 1 octets announced: refused just the same, and nothing near that is allocated.
    expectFrameError(() => new FrameReader(() => {}).push(bytes(0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 1)), ErrorCode.FRAME_SIZE_ERROR, /16777215/);
  });

  it("accepts larger frames once maxFrameSize is raised, buffering at most one frame", () => {
    const big = dataFrame(1, new Uint8Array(20000).fill(7));
    const frames: Frame[] = [];
    const reader = new FrameReader((f) => frames.push(f), { maxFrameSize: 32768 });
    let most = 0;
    for (let at = 0; at < big.length; at += 1000) {
      reader.push(big, at, Math.min(big.length, at + 1000));
      most = Math.max(most, reader.buffered);
    }
    assert.equal(frames.length, 1);
    assert.equal(frames[0].payload.length, 20000);
    assert.ok(most <= 9 + 20000);
    assert.throws(() => (reader.maxFrameSize = 16383), RangeError);
    assert.throws(() => new FrameReader(() => {}, { maxFrameSize: 2 ** 24 }), RangeError);
  });

  it("leaves the reader at a frame boundary when the callback throws", () => {
    const seen: number[] = [];
    const reader = new FrameReader((f) => {
      seen.push(f.streamId);
      if (f.streamId === 1) throw new Error("stream 1 rejected");
    });
    const stream = concat([dataFrame(1, text("a")), dataFrame(3, text("b"))]);
    assert.throws(() => reader.push(stream), /stream 1 rejected/);
    assert.equal(reader.buffered, 0);
    reader.push(stream.subarray(10));
    assert.deepEqual(seen, [1, 3]);
  });

  describe("SETTINGS validation (RFC 9113 §6.5)", () => {
    const settings = (payload: Uint8Array, flags = 0, streamId = 0) => decodeSettings(frameOf(FrameType.SETTINGS, flags, streamId, payload));
    const one = (id: number, value: number) => settingsFrame([[id, value]]).subarray(9);

    it("needs a multiple of 6 octets, stream 0, and an empty ack", () => {
      expectFrameError(() => settings(new Uint8Array(5)), ErrorCode.FRAME_SIZE_ERROR, /5 octets is not a multiple of 6/);
      expectFrameError(() => settings(new Uint8Array(13)), ErrorCode.FRAME_SIZE_ERROR, /multiple of 6/);
      expectFrameError(() => settings(new Uint8Array(0), 0, 1), ErrorCode.PROTOCOL_ERROR, /SETTINGS on stream 1/);
      expectFrameError(() => settings(new Uint8Array(6), Flags.ACK), ErrorCode.FRAME_SIZE_ERROR, /ack with a 6-octet payload/);
      assert.deepEqual(settings(new Uint8Array(0)), []);
    });
    it("checks ENABLE_PUSH, INITIAL_WINDOW_SIZE and MAX_FRAME_SIZE ranges", () => {
      expectFrameError(() => settings(one(Setting.ENABLE_PUSH, 2)), ErrorCode.PROTOCOL_ERROR, /setting 2 must be 0 or 1, not 2/);
      assert.deepEqual(settings(one(Setting.ENABLE_PUSH, 1)), [[Setting.ENABLE_PUSH, 1]]);
      expectFrameError(() => settings(one(Setting.INITIAL_WINDOW_SIZE, 2 ** 31)), ErrorCode.FLOW_CONTROL_ERROR, /INITIAL_WINDOW_SIZE 2147483648/);
      assert.deepEqual(settings(one(Setting.INITIAL_WINDOW_SIZE, 2 ** 31 - 1)), [[Setting.INITIAL_WINDOW_SIZE, 2 ** 31 - 1]]);
      expectFrameError(() => settings(one(Setting.MAX_FRAME_SIZE, 16383)), ErrorCode.PROTOCOL_ERROR, /MAX_FRAME_SIZE 16383 is not 16384 to 16777215/);
      expectFrameError(() => settings(one(Setting.MAX_FRAME_SIZE, 16777216)), ErrorCode.PROTOCOL_ERROR, /MAX_FRAME_SIZE 16777216/);
      assert.deepEqual(settings(one(Setting.MAX_FRAME_SIZE, 16384)), [[Setting.MAX_FRAME_SIZE, 16384]]);
      assert.deepEqual(settings(one(Setting.HEADER_TABLE_SIZE, 0xffffffff)), [[Setting.HEADER_TABLE_SIZE, 0xffffffff]], "32-bit values read unsigned");
    });
    it("ignores unknown identifiers and keeps the order of the rest", () => {
      const payload = settingsFrame([[0x99, 5], [Setting.MAX_HEADER_LIST_SIZE, 8192], [0, 1], [Setting.MAX_CONCURRENT_STREAMS, 10]]).subarray(9);
      assert.deepEqual(settings(payload), [[Setting.MAX_HEADER_LIST_SIZE, 8192], [Setting.MAX_CONCURRENT_STREAMS, 10]]);
    });
  });

  it("checks WINDOW_UPDATE, GOAWAY, RST_STREAM and PING payloads", () => {
    const wu = (payload: Uint8Array, streamId = 0) => decodeWindowUpdate(frameOf(FrameType.WINDOW_UPDATE, 0, streamId, payload));
    expectFrameError(() => wu(bytes(0, 0, 0, 0)), ErrorCode.PROTOCOL_ERROR, /increment 0/);
    expectFrameError(() => wu(bytes(0x80, 0, 0, 0), 5), ErrorCode.PROTOCOL_ERROR, /increment 0/, 5);
    expectFrameError(() => wu(bytes(0, 0, 1)), ErrorCode.FRAME_SIZE_ERROR, /3 octets, not 4/);
    assert.equal(wu(bytes(0xff, 0xff, 0xff, 0xff)), 0x7fffffff, "reserved bit ignored");
    expectFrameError(() => decodeGoaway(frameOf(FrameType.GOAWAY, 0, 0, new Uint8Array(7))), ErrorCode.FRAME_SIZE_ERROR, /fewer than 8/);
    expectFrameError(() => decodeGoaway(frameOf(FrameType.GOAWAY, 0, 1, new Uint8Array(8))), ErrorCode.PROTOCOL_ERROR, /GOAWAY on stream 1/);
    expectFrameError(() => decodeRstStream(frameOf(FrameType.RST_STREAM, 0, 0, new Uint8Array(4))), ErrorCode.PROTOCOL_ERROR, /stream 0/);
    expectFrameError(() => decodeRstStream(frameOf(FrameType.RST_STREAM, 0, 1, new Uint8Array(5))), ErrorCode.FRAME_SIZE_ERROR, /5 octets/);
    expectFrameError(() => decodePing(frameOf(FrameType.PING, 0, 0, new Uint8Array(7))), ErrorCode.FRAME_SIZE_ERROR, /7 octets, not 8/);
    expectFrameError(() => decodePing(frameOf(FrameType.PING, 0, 3, new Uint8Array(8))), ErrorCode.PROTOCOL_ERROR, /PING on stream 3/);
    assert.throws(() => decodePing(frameOf(FrameType.DATA, 0, 0, new Uint8Array(8))), RangeError);
  });

  describe("HEADERS and CONTINUATION (RFC 9113 §6.2, §6.10)", () => {
    const block = Uint8Array.from({ length: 40000 }, (_, k) => k % 251);

    it("splits a block over the peer's max frame size, END_HEADERS on the last frame only", () => {
      const frames = readAll(headersFrames(5, block, { endStream: true }), [777]);
      assert.deepEqual(
        frames.map((f) => [f.type, f.flags, f.streamId, f.payload.length]),
        [
          [FrameType.HEADERS, Flags.END_STREAM, 5, 16384],
          [FrameType.CONTINUATION, 0, 5, 16384],
          [FrameType.CONTINUATION, Flags.END_HEADERS, 5, 40000 - 2 * 16384],
        ],
      );
      assert.deepEqual(concat([headersPayload(frames[0]), ...frames.slice(1).map((f) => f.payload)]), block);
      const wide = readAll(headersFrames(5, block, { maxFrameSize: 65536 }), [1 << 16], { maxFrameSize: 65536 });
      assert.deepEqual(wide.map((f) => [f.type, f.flags, f.payload.length]), [[FrameType.HEADERS, Flags.END_HEADERS, 40000]]);
    });
    it("keeps a block of exactly max frame size, or an empty one, in one HEADERS", () => {
      const exact = readAll(headersFrames(1, block.subarray(0, 16384)));
      assert.deepEqual(exact.map((f) => [f.type, f.flags, f.payload.length]), [[FrameType.HEADERS, Flags.END_HEADERS, 16384]]);
      const empty = readAll(headersFrames(1, new Uint8Array(0), { endStream: true }));
      assert.deepEqual(empty.map((f) => [f.type, f.flags, f.payload.length]), [[FrameType.HEADERS, Flags.END_HEADERS | Flags.END_STREAM, 0]]);
      assert.throws(() => headersFrames(0, block), RangeError);
      assert.throws(() => headersFrames(1, block, { maxFrameSize: 100 }), RangeError);
    });
    it("carries an HPACK block through frames and back", () => {
      const fields: [string, string][] = [[":method", "GET"], [":path", "/api/v1/pods?watch=1"], ["x-long", "z".repeat(30000)]];
      const encoded = new HpackEncoder({ huffman: false }).encode(fields);
      const frames = readAll(headersFrames(1, encoded), [1500]);
      assert.equal(frames.length, 2);
      const joined = concat([headersPayload(frames[0]), frames[1].payload]);
      assert.deepEqual(new HpackDecoder({ maxHeaderListBytes: 65536 }).decode(joined), fields);
    });
  });

  describe("padding (RFC 9113 §6.1, §6.2)", () => {
    it("removes DATA padding", () => {
      const padded = frameOf(FrameType.DATA, Flags.PADDED, 1, concat([bytes(3), text("abc"), bytes(0, 0, 0)]));
      assert.equal(new TextDecoder().decode(dataPayload(padded)), "abc");
      assert.equal(dataPayload(frameOf(FrameType.DATA, Flags.PADDED, 1, bytes(0))).length, 0, "pad length 0, no data");
      assert.equal(dataPayload(frameOf(FrameType.DATA, Flags.PADDED, 1, bytes(2, 0, 0))).length, 0, "all padding");
      assert.equal(new TextDecoder().decode(dataPayload(frameOf(FrameType.DATA, 0, 1, text("plain")))), "plain");
    });
    it("rejects padding as long as the payload, a PADDED frame with no Pad Length, and DATA on stream 0", () => {
      expectFrameError(() => dataPayload(frameOf(FrameType.DATA, Flags.PADDED, 1, bytes(3, 0, 0))), ErrorCode.PROTOCOL_ERROR, /padding of 3 octets exceeds the 2 octets left/);
      expectFrameError(() => dataPayload(frameOf(FrameType.DATA, Flags.PADDED, 1, bytes())), ErrorCode.FRAME_SIZE_ERROR, /too short/);
      expectFrameError(() => dataPayload(frameOf(FrameType.DATA, 0, 0, bytes())), ErrorCode.PROTOCOL_ERROR, /DATA on stream 0/);
    });
    it("removes HEADERS padding and the PRIORITY flag's 5 octets", () => {
      const priority = bytes(0x80, 0, 0, 3, 15); // exclusive, depends on 3, weight 16
      const both = frameOf(FrameType.HEADERS, Flags.PADDED | Flags.PRIORITY | Flags.END_HEADERS, 1, concat([bytes(2), priority, text("hb"), bytes(0, 0)]));
      assert.equal(new TextDecoder().decode(headersPayload(both)), "hb");
      const priorityOnly = frameOf(FrameType.HEADERS, Flags.PRIORITY, 1, concat([priority, text("hb")]));
      assert.equal(new TextDecoder().decode(headersPayload(priorityOnly)), "hb");
      const paddedOnly = frameOf(FrameType.HEADERS, Flags.PADDED, 1, concat([bytes(1), text("hb"), bytes(0)]));
      assert.equal(new TextDecoder().decode(headersPayload(paddedOnly)), "hb");
      expectFrameError(() => headersPayload(frameOf(FrameType.HEADERS, Flags.PRIORITY, 1, bytes(0, 0, 0, 1))), ErrorCode.FRAME_SIZE_ERROR, /4 octets is too short for its 5-octet fields/);
      expectFrameError(() => headersPayload(frameOf(FrameType.HEADERS, Flags.PADDED | Flags.PRIORITY, 1, concat([bytes(3), priority, bytes(0, 0)]))), ErrorCode.PROTOCOL_ERROR, /padding of 3 octets exceeds the 2 octets left/);
      expectFrameError(() => headersPayload(frameOf(FrameType.HEADERS, 0, 0, bytes())), ErrorCode.PROTOCOL_ERROR, /HEADERS on stream 0/);
    });
  });
});
