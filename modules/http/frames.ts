// HTTP/2 framing (RFC 9113 §4, §6): frame builders, an incremental frame reader with a hard size cap,
// and payload decoders that check what §6 says a receiver MUST check. Pure: bytes in, bytes out; the
// connection decides what a FrameError means (code, and streamId 0 = connection error).

/** Frame types (RFC 9113 §6). */
export const FrameType = Object.freeze({
  DATA: 0x0,
  HEADERS: 0x1,
  PRIORITY: 0x2,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PUSH_PROMISE: 0x5,
  PING: 0x6,
  GOAWAY: 0x7,
  WINDOW_UPDATE: 0x8,
  CONTINUATION: 0x9,
});

/** Frame flags; ACK shares END_STREAM's bit (SETTINGS and PING have no END_STREAM). */
export const Flags = Object.freeze({
  END_STREAM: 0x1,
  ACK: 0x1,
  END_HEADERS: 0x4,
  PADDED: 0x8,
  PRIORITY: 0x20,
});

/** Error codes (RFC 9113 §7). */
export const ErrorCode = Object.freeze({
  NO_ERROR: 0x0,
  PROTOCOL_ERROR: 0x1,
  INTERNAL_ERROR: 0x2,
  FLOW_CONTROL_ERROR: 0x3,
  SETTINGS_TIMEOUT: 0x4,
  STREAM_CLOSED: 0x5,
  FRAME_SIZE_ERROR: 0x6,
  REFUSED_STREAM: 0x7,
  CANCEL: 0x8,
  COMPRESSION_ERROR: 0x9,
  CONNECT_ERROR: 0xa,
  ENHANCE_YOUR_CALM: 0xb,
  INADEQUATE_SECURITY: 0xc,
  HTTP_1_1_REQUIRED: 0xd,
});

/** Indexed by code: the codes are 0 to 13 without gaps. */
const ERROR_NAMES: readonly string[] = (() => {
  const names: string[] = [];
  for (const [name, code] of Object.entries(ErrorCode)) names[code] = name;
  return Object.freeze(names);
})();

/** "PROTOCOL_ERROR", or "0x1f (unknown)" for a code RFC 9113 does not define (§7: not an error in itself). */
export function errorCodeName(code: number): string {
  const name = Number.isInteger(code) && code >= 0 ? ERROR_NAMES[code] : undefined;
  return name ?? `0x${code.toString(16)} (unknown)`;
}

/** Setting identifiers (RFC 9113 §6.5.2; 8 from RFC 8441, 9 from RFC 9218). */
export const Setting = Object.freeze({
  HEADER_TABLE_SIZE: 0x1,
  ENABLE_PUSH: 0x2,
  MAX_CONCURRENT_STREAMS: 0x3,
  INITIAL_WINDOW_SIZE: 0x4,
  MAX_FRAME_SIZE: 0x5,
  MAX_HEADER_LIST_SIZE: 0x6,
  ENABLE_CONNECT_PROTOCOL: 0x8,
  NO_RFC7540_PRIORITIES: 0x9,
});

/** Protocol defaults and limits (RFC 9113 §4.2, §6.5.2, §6.9). */
export const Limits = Object.freeze({
  FRAME_HEADER: 9,
  DEFAULT_MAX_FRAME_SIZE: 16384,
  MAX_FRAME_SIZE: 16777215, // 2^24 − 1: the length field's range
  DEFAULT_WINDOW: 65535,
  MAX_WINDOW: 0x7fffffff,
  MAX_STREAM_ID: 0x7fffffff,
});

/** The client connection preface (RFC 9113 §3.4), sent before the client's SETTINGS. */
export const CLIENT_PREFACE = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

export function clientPreface(): Uint8Array {
  return Uint8Array.from(CLIENT_PREFACE, (c) => c.charCodeAt(0));
}

export class FrameError extends Error {
  /** An ErrorCode value for RST_STREAM or GOAWAY. */
  code: number;
  /** 0: a connection error (GOAWAY); else a stream error on this stream (RST_STREAM). */
  streamId: number;
  constructor(code: number, message: string, streamId = 0) {
    super(`${errorCodeName(code)}: ${message}`);
    this.code = code;
    this.streamId = streamId;
  }
}

export interface Frame {
  type: number;
  flags: number;
  /** Reserved bit cleared (§4.1: ignored on receipt). */
  streamId: number;
  payload: Uint8Array;
}

function checkStreamId(streamId: number): void {
  if (!Number.isInteger(streamId) || streamId < 0 || streamId > Limits.MAX_STREAM_ID) throw new RangeError(`stream id ${streamId} is not 0 to 2^31 − 1`);
}

function writeHeader(out: Uint8Array, at: number, length: number, type: number, flags: number, streamId: number): void {
  out[at] = length >>> 16;
  out[at + 1] = length >>> 8;
  out[at + 2] = length;
  out[at + 3] = type;
  out[at + 4] = flags;
  out[at + 5] = streamId >>> 24;
  out[at + 6] = streamId >>> 16;
  out[at + 7] = streamId >>> 8;
  out[at + 8] = streamId;
}

/** One frame: the 9-octet header (§4.1) and the payload, in a new array. */
export function encodeFrame(type: number, flags: number, streamId: number, payload: Uint8Array = new Uint8Array(0)): Uint8Array {
  checkStreamId(streamId);
  if (payload.length > Limits.MAX_FRAME_SIZE) throw new RangeError(`frame payload of ${payload.length} octets exceeds 2^24 − 1`);
  const out = new Uint8Array(Limits.FRAME_HEADER + payload.length);
  writeHeader(out, 0, payload.length, type & 0xff, flags & 0xff, streamId);
  out.set(payload, Limits.FRAME_HEADER);
  return out;
}

function uint32(out: Uint8Array, at: number, value: number): void {
  out[at] = value >>> 24;
  out[at + 1] = value >>> 16;
  out[at + 2] = value >>> 8;
  out[at + 3] = value;
}

function readUint32(bytes: Uint8Array, at: number): number {
  return ((bytes[at] << 24) | (bytes[at + 1] << 16) | (bytes[at + 2] << 8) | bytes[at + 3]) >>> 0;
}

/** SETTINGS (§6.5) with [identifier, value] pairs, in order. */
export function settingsFrame(settings: readonly (readonly [number, number])[]): Uint8Array {
  const payload = new Uint8Array(6 * settings.length);
  settings.forEach(([id, value], k) => {
    if (!Number.isInteger(id) || id < 0 || id > 0xffff) throw new RangeError(`setting id ${id} is not 16 bits`);
    if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) throw new RangeError(`setting ${id} value ${value} is not 32 bits`);
    payload[6 * k] = id >>> 8;
    payload[6 * k + 1] = id;
    uint32(payload, 6 * k + 2, value);
  });
  return encodeFrame(FrameType.SETTINGS, 0, 0, payload);
}

export function settingsAckFrame(): Uint8Array {
  return encodeFrame(FrameType.SETTINGS, Flags.ACK, 0);
}

/** WINDOW_UPDATE (§6.9); streamId 0 for the connection window. */
export function windowUpdateFrame(streamId: number, increment: number): Uint8Array {
  if (!Number.isInteger(increment) || increment < 1 || increment > Limits.MAX_WINDOW) throw new RangeError(`window increment ${increment} is not 1 to 2^31 − 1`);
  const payload = new Uint8Array(4);
  uint32(payload, 0, increment);
  return encodeFrame(FrameType.WINDOW_UPDATE, 0, streamId, payload);
}

export function rstStreamFrame(streamId: number, errorCode: number): Uint8Array {
  if (streamId === 0) throw new RangeError("RST_STREAM needs a stream id");
  const payload = new Uint8Array(4);
  uint32(payload, 0, errorCode);
  return encodeFrame(FrameType.RST_STREAM, 0, streamId, payload);
}

/** PING (§6.7) with its 8 opaque octets; ack = true echoes a received PING's data. */
export function pingFrame(data: Uint8Array, ack = false): Uint8Array {
  if (data.length !== 8) throw new RangeError(`PING data is ${data.length} octets, not 8`);
  return encodeFrame(FrameType.PING, ack ? Flags.ACK : 0, 0, data);
}

/** GOAWAY (§6.8): the last stream id we processed, an error code, optional debug data. */
export function goawayFrame(lastStreamId: number, errorCode: number, debugData: Uint8Array = new Uint8Array(0)): Uint8Array {
  checkStreamId(lastStreamId);
  const payload = new Uint8Array(8 + debugData.length);
  uint32(payload, 0, lastStreamId);
  uint32(payload, 4, errorCode);
  payload.set(debugData, 8);
  return encodeFrame(FrameType.GOAWAY, 0, 0, payload);
}

export interface HeadersOptions {
  endStream?: boolean;
  /** The peer's SETTINGS_MAX_FRAME_SIZE; a longer block continues in CONTINUATION frames. Default 16384. */
  maxFrameSize?: number;
}

/**
 * HEADERS (§6.2) carrying a whole header block, followed by CONTINUATION frames (§6.10) when the
 * block exceeds maxFrameSize, all in one array: they must reach the socket back to back.
 */
export function headersFrames(streamId: number, block: Uint8Array, options: HeadersOptions = {}): Uint8Array {
  if (streamId === 0) throw new RangeError("HEADERS needs a stream id");
  checkStreamId(streamId);
  const max = options.maxFrameSize ?? Limits.DEFAULT_MAX_FRAME_SIZE;
  if (!Number.isInteger(max) || max < Limits.DEFAULT_MAX_FRAME_SIZE || max > Limits.MAX_FRAME_SIZE) throw new RangeError(`max frame size ${max} is not 16384 to 2^24 − 1`);
  const count = Math.max(1, Math.ceil(block.length / max));
  const out = new Uint8Array(count * Limits.FRAME_HEADER + block.length);
  let at = 0;
  for (let k = 0; k < count; k++) {
    const from = k * max;
    const length = Math.min(max, block.length - from);
    let flags = k === count - 1 ? Flags.END_HEADERS : 0;
    if (k === 0 && options.endStream) flags |= Flags.END_STREAM;
    writeHeader(out, at, length, k === 0 ? FrameType.HEADERS : FrameType.CONTINUATION, flags, streamId);
    out.set(block.subarray(from, from + length), at + Limits.FRAME_HEADER);
    at += Limits.FRAME_HEADER + length;
  }
  return out;
}

/** DATA (§6.1). The caller keeps data within the peer's max frame size and flow-control windows. */
export function dataFrame(streamId: number, data: Uint8Array, endStream = false): Uint8Array {
  if (streamId === 0) throw new RangeError("DATA needs a stream id");
  return encodeFrame(FrameType.DATA, endStream ? Flags.END_STREAM : 0, streamId, data);
}

export interface FrameReaderOptions {
  /** Our SETTINGS_MAX_FRAME_SIZE: a longer frame is a FRAME_SIZE_ERROR. Default 16384. */
  maxFrameSize?: number;
}

/**
 * Splits a byte stream (after the connection preface) into frames, whatever sizes the chunks
 * come in. Buffers at most one frame: a 9-octet header and a payload ≤ maxFrameSize, checked
 * from the header before any payload is kept. Each frame's payload is its own copy.
 */
export class FrameReader {
  #onFrame: (frame: Frame) => void;
  #max: number;
  #header = new Uint8Array(Limits.FRAME_HEADER);
  #headerHave = 0;
  #payload: Uint8Array | undefined; // the frame being read, once its header is complete
  #payloadHave = 0;
  #type = 0;
  #flags = 0;
  #streamId = 0;
  #failed: FrameError | undefined;

  constructor(onFrame: (frame: Frame) => void, options: FrameReaderOptions = {}) {
    this.#onFrame = onFrame;
    this.#max = Limits.DEFAULT_MAX_FRAME_SIZE;
    this.maxFrameSize = options.maxFrameSize ?? Limits.DEFAULT_MAX_FRAME_SIZE;
  }

  get maxFrameSize(): number {
    return this.#max;
  }
  /** Raise it once the peer has acknowledged a larger SETTINGS_MAX_FRAME_SIZE. */
  set maxFrameSize(size: number) {
    if (!Number.isInteger(size) || size < Limits.DEFAULT_MAX_FRAME_SIZE || size > Limits.MAX_FRAME_SIZE) throw new RangeError(`max frame size ${size} is not 16384 to 2^24 − 1`);
    this.#max = size;
  }

  /** Octets held for an incomplete frame. */
  get buffered(): number {
    return this.#headerHave + this.#payloadHave;
  }

  /**
   * Consumes bytes[start, end), calling onFrame for each completed frame in order. Throws
   * FrameError(FRAME_SIZE_ERROR) for an oversize frame; after that every push throws it again.
   * An exception from onFrame propagates; the bytes after that frame are not consumed.
   */
  push(bytes: Uint8Array, start = 0, end = bytes.length): void {
    if (this.#failed) throw this.#failed;
    let at = start;
    while (at < end) {
      if (this.#payload === undefined) {
        const n = Math.min(Limits.FRAME_HEADER - this.#headerHave, end - at);
        this.#header.set(bytes.subarray(at, at + n), this.#headerHave);
        this.#headerHave += n;
        at += n;
        if (this.#headerHave < Limits.FRAME_HEADER) return;
        const h = this.#header;
        const length = (h[0] << 16) | (h[1] << 8) | h[2];
        if (length > this.#max) {
          this.#failed = new FrameError(ErrorCode.FRAME_SIZE_ERROR, `frame of ${length} octets (type ${h[3]}) exceeds SETTINGS_MAX_FRAME_SIZE ${this.#max}`);
          throw this.#failed;
        }
        this.#type = h[3];
        this.#flags = h[4];
        this.#streamId = readUint32(h, 5) & 0x7fffffff;
        this.#payload = new Uint8Array(length);
        this.#payloadHave = 0;
      }
      const payload = this.#payload;
      const n = Math.min(payload.length - this.#payloadHave, end - at);
      if (n > 0) {
        payload.set(bytes.subarray(at, at + n), this.#payloadHave);
        this.#payloadHave += n;
        at += n;
      }
      if (this.#payloadHave < payload.length) return;
      // Reset before the callback so a throw from it leaves the reader at a frame boundary.
      this.#payload = undefined;
      this.#headerHave = 0;
      this.#payloadHave = 0;
      this.#onFrame({ type: this.#type, flags: this.#flags, streamId: this.#streamId, payload });
    }
  }
}

function expectType(frame: Frame, type: number, name: string): void {
  if (frame.type !== type) throw new RangeError(`not a ${name} frame (type ${frame.type})`);
}

/** A SETTINGS frame's [identifier, value] pairs in order, unknown identifiers dropped (§6.5.2: ignored). */
export function decodeSettings(frame: Frame): [number, number][] {
  expectType(frame, FrameType.SETTINGS, "SETTINGS");
  const payload = frame.payload;
  if (frame.streamId !== 0) throw new FrameError(ErrorCode.PROTOCOL_ERROR, `SETTINGS on stream ${frame.streamId}`);
  if (frame.flags & Flags.ACK) {
    if (payload.length !== 0) throw new FrameError(ErrorCode.FRAME_SIZE_ERROR, `SETTINGS ack with a ${payload.length}-octet payload`);
    return [];
  }
  if (payload.length % 6 !== 0) throw new FrameError(ErrorCode.FRAME_SIZE_ERROR, `SETTINGS payload of ${payload.length} octets is not a multiple of 6`);
  const settings: [number, number][] = [];
  for (let at = 0; at < payload.length; at += 6) {
    const id = (payload[at] << 8) | payload[at + 1];
    const value = readUint32(payload, at + 2);
    switch (id) {
      case Setting.ENABLE_PUSH:
      case Setting.ENABLE_CONNECT_PROTOCOL:
      case Setting.NO_RFC7540_PRIORITIES:
        if (value > 1) throw new FrameError(ErrorCode.PROTOCOL_ERROR, `setting ${id} must be 0 or 1, not ${value}`);
        break;
      case Setting.INITIAL_WINDOW_SIZE:
        if (value > Limits.MAX_WINDOW) throw new FrameError(ErrorCode.FLOW_CONTROL_ERROR, `SETTINGS_INITIAL_WINDOW_SIZE ${value} exceeds 2^31 − 1`);
        break;
      case Setting.MAX_FRAME_SIZE:
        if (value < Limits.DEFAULT_MAX_FRAME_SIZE || value > Limits.MAX_FRAME_SIZE) throw new FrameError(ErrorCode.PROTOCOL_ERROR, `SETTINGS_MAX_FRAME_SIZE ${value} is not 16384 to 16777215`);
        break;
      case Setting.HEADER_TABLE_SIZE:
      case Setting.MAX_CONCURRENT_STREAMS:
      case Setting.MAX_HEADER_LIST_SIZE:
        break;
      default:
        continue;
    }
    settings.push([id, value]);
  }
  return settings;
}

/** A WINDOW_UPDATE's increment (§6.9): 0 is a PROTOCOL_ERROR, a stream error on a stream. */
export function decodeWindowUpdate(frame: Frame): number {
  expectType(frame, FrameType.WINDOW_UPDATE, "WINDOW_UPDATE");
  if (frame.payload.length !== 4) throw new FrameError(ErrorCode.FRAME_SIZE_ERROR, `WINDOW_UPDATE payload of ${frame.payload.length} octets, not 4`);
  const increment = readUint32(frame.payload, 0) & 0x7fffffff;
  if (increment === 0) throw new FrameError(ErrorCode.PROTOCOL_ERROR, "WINDOW_UPDATE with increment 0", frame.streamId);
  return increment;
}

export interface Goaway {
  lastStreamId: number;
  errorCode: number;
  debugData: Uint8Array;
}

export function decodeGoaway(frame: Frame): Goaway {
  expectType(frame, FrameType.GOAWAY, "GOAWAY");
  if (frame.streamId !== 0) throw new FrameError(ErrorCode.PROTOCOL_ERROR, `GOAWAY on stream ${frame.streamId}`);
  if (frame.payload.length < 8) throw new FrameError(ErrorCode.FRAME_SIZE_ERROR, `GOAWAY payload of ${frame.payload.length} octets, fewer than 8`);
  return {
    lastStreamId: readUint32(frame.payload, 0) & 0x7fffffff,
    errorCode: readUint32(frame.payload, 4),
    debugData: frame.payload.subarray(8),
  };
}

/** A RST_STREAM's error code (§6.4). */
export function decodeRstStream(frame: Frame): number {
  expectType(frame, FrameType.RST_STREAM, "RST_STREAM");
  if (frame.streamId === 0) throw new FrameError(ErrorCode.PROTOCOL_ERROR, "RST_STREAM on stream 0");
  if (frame.payload.length !== 4) throw new FrameError(ErrorCode.FRAME_SIZE_ERROR, `RST_STREAM payload of ${frame.payload.length} octets, not 4`);
  return readUint32(frame.payload, 0);
}

/** A PING's 8 octets (§6.7). */
export function decodePing(frame: Frame): Uint8Array {
  expectType(frame, FrameType.PING, "PING");
  if (frame.streamId !== 0) throw new FrameError(ErrorCode.PROTOCOL_ERROR, `PING on stream ${frame.streamId}`);
  if (frame.payload.length !== 8) throw new FrameError(ErrorCode.FRAME_SIZE_ERROR, `PING payload of ${frame.payload.length} octets, not 8`);
  return frame.payload;
}

/**
 * §6.1/§6.2: the payload without the Pad Length octet, the padding, and `fixed` octets of fields
 * after Pad Length (HEADERS' priority). Too short for those fields: FRAME_SIZE_ERROR (§4.2);
 * padding longer than what remains: PROTOCOL_ERROR.
 */
function content(frame: Frame, name: string, fixed: number): Uint8Array {
  const payload = frame.payload;
  const padded = (frame.flags & Flags.PADDED) !== 0;
  const head = (padded ? 1 : 0) + fixed;
  if (payload.length < head) throw new FrameError(ErrorCode.FRAME_SIZE_ERROR, `${name} payload of ${payload.length} octets is too short for its ${head}-octet fields`);
  const padding = padded ? payload[0] : 0;
  if (padding > payload.length - head) throw new FrameError(ErrorCode.PROTOCOL_ERROR, `${name} padding of ${padding} octets exceeds the ${payload.length - head} octets left`);
  return payload.subarray(head, payload.length - padding);
}

/**
 * A DATA frame's data (§6.1), padding removed. Flow control counts the whole frame.payload.length,
 * padding included, not this.
 */
export function dataPayload(frame: Frame): Uint8Array {
  expectType(frame, FrameType.DATA, "DATA");
  if (frame.streamId === 0) throw new FrameError(ErrorCode.PROTOCOL_ERROR, "DATA on stream 0");
  return content(frame, "DATA", 0);
}

/** A HEADERS frame's header block fragment (§6.2): padding and the PRIORITY flag's 5 octets removed. */
export function headersPayload(frame: Frame): Uint8Array {
  expectType(frame, FrameType.HEADERS, "HEADERS");
  if (frame.streamId === 0) throw new FrameError(ErrorCode.PROTOCOL_ERROR, "HEADERS on stream 0");
  return content(frame, "HEADERS", frame.flags & Flags.PRIORITY ? 5 : 0);
}
