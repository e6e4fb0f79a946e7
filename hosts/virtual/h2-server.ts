// The server side of one scripted HTTP/2 connection (RFC 9113), built on the core's own frame and
// HPACK codecs: it reads the client preface and SETTINGS, enforces the client's flow-control
// windows on what it sends, decodes requests, hands each whole request to the same ScriptedHandler
// as HTTP/1.1 does and turns the handler's HTTP/1.1 response text into HEADERS + DATA. A test double:
// strict where a client could get the protocol wrong, simple everywhere else. Pure JavaScript (no
// Node built-ins): it runs inside the XS engine too.
import {
  CLIENT_PREFACE,
  ErrorCode,
  Flags,
  FrameError,
  FrameReader,
  FrameType,
  Limits,
  Setting,
  dataFrame,
  dataPayload,
  decodeGoaway,
  decodePing,
  decodeRstStream,
  decodeSettings,
  decodeWindowUpdate,
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
import { HpackDecoder, HpackEncoder, HpackError, type HeaderField } from "../../modules/http/hpack";
import { HttpError, HttpParser } from "../../modules/http/parser";
import type { ParsedRequest, ScriptedHandler, ScriptedStream } from "./host";

/**
 * `createVirtualHost({ http2 })`. The settings are read when a connection starts; the fault knobs
 * (goAwayAfter, blackhole, ignorePings, resetStream, onFrame) are read live, so a test may flip them
 * on `host.http2` during a run.
 */
export interface Http2PeerOptions {
  /** SETTINGS_MAX_CONCURRENT_STREAMS we advertise and enforce (RST_STREAM(REFUSED_STREAM) beyond). Default 100. */
  maxConcurrentStreams?: number;
  /** SETTINGS_INITIAL_WINDOW_SIZE we advertise (our receive window per stream). Default 65535. */
  initialWindowSize?: number;
  /** SETTINGS_HEADER_TABLE_SIZE we advertise (our HPACK decoder's table, once the client ACKs). Default 4096. */
  headerTableSize?: number;
  /** SETTINGS_MAX_FRAME_SIZE we advertise and enforce on what we read. Default 16384. */
  maxFrameSize?: number;
  /**
   * After answering this many requests on a connection: GOAWAY(NO_ERROR) with last-stream-id = the
   * highest stream id seen; streams up to it are finished, later ones are ignored (not processed:
   * the client must retry them), and the socket closes once no stream is left.
   */
  goAwayAfter?: number;
  /**
   * A dead peer: once this returns true when a connection receives or would send bytes, that
   * connection reads and discards everything and sends nothing (no PING ACKs, no responses, no
   * close) until the client closes it, even after blackhole turns false again (its HPACK and frame
   * state would be out of step). New connections made while it is false work normally.
   */
  blackhole?: () => boolean;
  /** Do not answer PINGs. */
  ignorePings?: boolean;
  /** An error code: answer this request with RST_STREAM(code) instead of calling the handler. */
  resetStream?: (request: ParsedRequest) => number | undefined;
  /** Every frame the server reads from the client, with the connection's number (host.connections at connect). */
  onFrame?: (frame: Frame, connection: number) => void;
}

/** How the server reaches its socket (the virtual host provides it). */
export interface H2Link {
  /** Bytes to the client. */
  send(bytes: Uint8Array): void;
  /** Closes the socket cleanly once what was sent has been delivered. */
  close(): void;
  /** Closes it at once, the client's onClose getting error (a {drop:true} answer). */
  reset(error: string): void;
  /** A whole request, as text for host.requests. */
  record(text: string): void;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const EMPTY = new Uint8Array(0);
const PREFACE = Uint8Array.from(CLIENT_PREFACE, (c) => c.charCodeAt(0));

/** A header block (HEADERS + CONTINUATIONs) larger than this is a connection error. */
const MAX_HEADER_BLOCK = 64 * 1024;
/** Request body bytes kept per stream; more is RST_STREAM(ENHANCE_YOUR_CALM). */
const MAX_REQUEST_BODY = 4 * 1024 * 1024;
/** Response body bytes the handler's text may carry. */
const MAX_RESPONSE_BODY = 16 * 1024 * 1024;
/** Ids of streams we reset, remembered so that frames already in flight on them are ignored. */
const RESET_MEMORY = 64;
/** Connection-specific fields (RFC 9113 §8.2.2): never in an HTTP/2 message. */
const CONNECTION_FIELDS = ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"];
const REQUEST_PSEUDO = [":method", ":scheme", ":authority", ":path"];

interface Stream {
  id: number;
  /** The request is still arriving (the stream is open); false once the client's END_STREAM came. */
  receiving: boolean;
  method: string;
  path: string;
  authority: string | undefined;
  headers: HeaderField[];
  body: Uint8Array[];
  bodyLength: number;
  /** Our receive window (what the client may still send on it). */
  recvWindow: number;
  /** The client's window for what we send on it. */
  sendWindow: number;
  /** Response body waiting for windows; outAt: octets of out[0] already sent. */
  out: Uint8Array[];
  outAt: number;
  /** The response ends after out is sent. */
  endQueued: boolean;
  /** GOAWAY and close once this stream's response is out ({reply, thenClose}). */
  thenClose: boolean;
  /** A streaming answer's close function. */
  closer: (() => void) | undefined;
}

interface PendingBlock {
  streamId: number;
  parts: Uint8Array[];
  length: number;
  endStream: boolean;
}

function concat(parts: Uint8Array[], length: number): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(length);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Status and headers of an HTTP/1.1 response head (and, with body, the whole message de-framed). */
function parseResponse(text: string, noBody: boolean): { status: number; headers: Map<string, string>; body: Uint8Array; complete: boolean } {
  const parser = new HttpParser("response", { maxHeaderBytes: 64 * 1024 });
  parser.begin(MAX_RESPONSE_BODY, noBody);
  const bytes = encoder.encode(text);
  parser.push(bytes, 0, bytes.length);
  if (!parser.done) parser.end();
  if (!parser.headDone) throw new HttpError("protocol", "the scripted response has no complete head");
  return { status: parser.status, headers: parser.headers, body: parser.takeBody(), complete: parser.done };
}

export class H2ServerConnection {
  #options: Http2PeerOptions;
  #handler: ScriptedHandler;
  #link: H2Link;
  #id: number;
  #prefaceHave = 0;
  #settingsSeen = false;
  #reader: FrameReader;
  #decoder = new HpackDecoder({ maxTableSize: 4096, maxHeaderListBytes: 64 * 1024 });
  #encoder: HpackEncoder;
  #streams = new Map<number, Stream>();
  #recentlyReset: number[] = [];
  #block: PendingBlock | undefined;
  #highest = 0;
  /** Last-stream-id of the GOAWAY we sent; -1: none sent. */
  #goawayLast = -1;
  #clientGoaway = false;
  #closed = false;
  #dead = false;
  #answered = 0;
  #settingsAcked = false;
  #ourWindow: number;
  #ourTable: number;
  #maxStreams: number;
  #connRecv: number = Limits.DEFAULT_WINDOW;
  #connSend: number = Limits.DEFAULT_WINDOW;
  #peerInitialWindow: number = Limits.DEFAULT_WINDOW;
  #peerMaxFrame: number = Limits.DEFAULT_MAX_FRAME_SIZE;

  constructor(options: Http2PeerOptions, handler: ScriptedHandler, link: H2Link, id: number) {
    this.#options = options;
    this.#handler = handler;
    this.#link = link;
    this.#id = id;
    this.#ourWindow = options.initialWindowSize ?? Limits.DEFAULT_WINDOW;
    this.#ourTable = options.headerTableSize ?? 4096;
    this.#maxStreams = options.maxConcurrentStreams ?? 100;
    this.#reader = new FrameReader((frame) => this.#onFrame(frame), { maxFrameSize: options.maxFrameSize ?? Limits.DEFAULT_MAX_FRAME_SIZE });
    this.#encoder = new HpackEncoder();
  }

  /** Streams open on this connection (being received or answered). */
  get streams(): number {
    return this.#streams.size;
  }

  /** Bytes from the client. */
  receive(bytes: Uint8Array): void {
    if (this.#closed || this.#isDead()) return;
    let at = 0;
    if (this.#prefaceHave < PREFACE.length) {
      while (at < bytes.length && this.#prefaceHave < PREFACE.length) {
        if (bytes[at] !== PREFACE[this.#prefaceHave]) return this.#fail(ErrorCode.PROTOCOL_ERROR, "invalid connection preface");
        at++;
        this.#prefaceHave++;
      }
      if (this.#prefaceHave < PREFACE.length) return;
      this.#send(
        settingsFrame([
          [Setting.HEADER_TABLE_SIZE, this.#ourTable],
          [Setting.MAX_CONCURRENT_STREAMS, this.#maxStreams],
          [Setting.INITIAL_WINDOW_SIZE, this.#ourWindow],
          [Setting.MAX_FRAME_SIZE, this.#reader.maxFrameSize],
        ]),
      );
    }
    try {
      this.#reader.push(bytes, at);
    } catch (e) {
      if (!(e instanceof FrameError)) throw e;
      this.#fail(e.code, e.message);
    }
  }

  /** The client closed the socket (or the network went): every stream ends. */
  gone(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#endAll();
  }

  #isDead(): boolean {
    if (!this.#dead && this.#options.blackhole?.()) this.#dead = true;
    return this.#dead;
  }

  #send(bytes: Uint8Array): void {
    if (this.#closed || this.#isDead()) return;
    this.#link.send(bytes);
  }

  #endAll(): void {
    const streams = [...this.#streams.values()];
    this.#streams.clear();
    for (const s of streams) s.closer?.();
  }

  /** GOAWAY(code) and close: a connection error. */
  #fail(code: number, message: string): void {
    if (this.#closed) return;
    this.#goaway(code, message);
    this.#shut();
  }

  #goaway(code: number, message = ""): void {
    if (this.#goawayLast < 0) this.#goawayLast = this.#highest; // a later GOAWAY never raises it
    this.#send(goawayFrame(this.#goawayLast, code, encoder.encode(message)));
  }

  #shut(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#endAll();
    this.#link.close();
  }

  /** Once a GOAWAY went either way, the connection closes when its last stream is done. */
  #maybeFinish(): void {
    if (!this.#closed && (this.#goawayLast >= 0 || this.#clientGoaway) && this.#streams.size === 0) this.#shut();
  }

  #resetStream(id: number, code: number): void {
    this.#send(rstStreamFrame(id, code));
    const s = this.#streams.get(id);
    this.#streams.delete(id);
    this.#recentlyReset.push(id);
    if (this.#recentlyReset.length > RESET_MEMORY) this.#recentlyReset.shift();
    s?.closer?.();
    this.#maybeFinish();
  }

  #onFrame(frame: Frame): void {
    if (this.#closed || this.#dead) return;
    this.#options.onFrame?.(frame, this.#id);
    try {
      this.#frame(frame);
    } catch (e) {
      // A stream error ends only that stream; a connection error propagates out of the reader.
      if (e instanceof FrameError && e.streamId !== 0) this.#resetStream(e.streamId, e.code);
      else throw e;
    }
  }

  #frame(f: Frame): void {
    if (this.#block !== undefined && (f.type !== FrameType.CONTINUATION || f.streamId !== this.#block.streamId)) {
      throw new FrameError(ErrorCode.PROTOCOL_ERROR, `frame type ${f.type} on stream ${f.streamId} while the header block of stream ${this.#block.streamId} continues`);
    }
    if (!this.#settingsSeen) {
      if (f.type !== FrameType.SETTINGS || f.flags & Flags.ACK) throw new FrameError(ErrorCode.PROTOCOL_ERROR, `the client preface ends with frame type ${f.type}, not SETTINGS`);
      this.#settingsSeen = true;
    }
    switch (f.type) {
      case FrameType.SETTINGS:
        return this.#onSettings(f);
      case FrameType.HEADERS:
        return this.#onHeaders(f);
      case FrameType.CONTINUATION:
        return this.#onContinuation(f);
      case FrameType.DATA:
        return this.#onData(f);
      case FrameType.WINDOW_UPDATE:
        return this.#onWindowUpdate(f);
      case FrameType.RST_STREAM:
        return this.#onRstStream(f);
      case FrameType.PING: {
        const data = decodePing(f);
        if (!(f.flags & Flags.ACK) && !this.#options.ignorePings) this.#send(pingFrame(data, true));
        return;
      }
      case FrameType.GOAWAY:
        decodeGoaway(f);
        this.#clientGoaway = true;
        return this.#maybeFinish();
      case FrameType.PRIORITY:
        if (f.streamId === 0) throw new FrameError(ErrorCode.PROTOCOL_ERROR, "PRIORITY on stream 0");
        if (f.payload.length !== 5) throw new FrameError(ErrorCode.FRAME_SIZE_ERROR, `PRIORITY payload of ${f.payload.length} octets, not 5`, f.streamId);
        return;
      case FrameType.PUSH_PROMISE:
        throw new FrameError(ErrorCode.PROTOCOL_ERROR, "PUSH_PROMISE from a client");
      default:
        return; // unknown frame types are ignored (§4.1)
    }
  }

  #onSettings(f: Frame): void {
    const settings = decodeSettings(f);
    if (f.flags & Flags.ACK) {
      if (!this.#settingsAcked) {
        this.#settingsAcked = true;
        this.#decoder.setMaxTableSize(this.#ourTable);
      }
      return;
    }
    for (const [id, value] of settings) {
      if (id === Setting.HEADER_TABLE_SIZE) this.#encoder.setPeerMaxTableSize(value);
      else if (id === Setting.MAX_FRAME_SIZE) this.#peerMaxFrame = value;
      else if (id === Setting.INITIAL_WINDOW_SIZE) {
        const delta = value - this.#peerInitialWindow;
        this.#peerInitialWindow = value;
        for (const s of this.#streams.values()) {
          s.sendWindow += delta;
          if (s.sendWindow > Limits.MAX_WINDOW) throw new FrameError(ErrorCode.FLOW_CONTROL_ERROR, `SETTINGS_INITIAL_WINDOW_SIZE ${value} overflows the window of stream ${s.id}`);
        }
      }
    }
    this.#send(settingsAckFrame());
    this.#flush();
  }

  #onHeaders(f: Frame): void {
    const fragment = headersPayload(f);
    const id = f.streamId;
    if (id % 2 === 0) throw new FrameError(ErrorCode.PROTOCOL_ERROR, `HEADERS on stream ${id}: client streams are odd`);
    const existing = this.#streams.get(id);
    const refused = (this.#goawayLast >= 0 && id > this.#goawayLast) || this.#recentlyReset.includes(id);
    if (!existing && id <= this.#highest && !refused) throw new FrameError(ErrorCode.STREAM_CLOSED, `HEADERS on closed stream ${id}`);
    this.#block = { streamId: id, parts: [fragment], length: fragment.length, endStream: (f.flags & Flags.END_STREAM) !== 0 };
    if (f.flags & Flags.END_HEADERS) this.#endBlock();
  }

  #onContinuation(f: Frame): void {
    const block = this.#block;
    if (!block) throw new FrameError(ErrorCode.PROTOCOL_ERROR, `CONTINUATION on stream ${f.streamId} without HEADERS`);
    block.parts.push(f.payload);
    block.length += f.payload.length;
    if (block.length > MAX_HEADER_BLOCK) throw new FrameError(ErrorCode.ENHANCE_YOUR_CALM, `header block over ${MAX_HEADER_BLOCK} octets`);
    if (f.flags & Flags.END_HEADERS) this.#endBlock();
  }

  #endBlock(): void {
    const block = this.#block!;
    this.#block = undefined;
    const id = block.streamId;
    let fields: HeaderField[];
    let tooLarge = false;
    try {
      fields = this.#decoder.decode(concat(block.parts, block.length));
    } catch (e) {
      if (!(e instanceof HpackError)) throw e;
      if (e.fatal) throw new FrameError(ErrorCode.COMPRESSION_ERROR, e.message);
      fields = [];
      tooLarge = true;
    }
    const existing = this.#streams.get(id);
    if (existing) {
      // Trailers: they end the request; their fields are not kept.
      if (!existing.receiving) throw new FrameError(ErrorCode.STREAM_CLOSED, `HEADERS on half-closed stream ${id}`, id);
      if (!block.endStream) throw new FrameError(ErrorCode.PROTOCOL_ERROR, `trailers without END_STREAM on stream ${id}`, id);
      existing.receiving = false;
      return this.#complete(existing);
    }
    if (id <= this.#highest) return; // a stream we reset: its frames in flight are ignored
    this.#highest = id;
    if (this.#goawayLast >= 0 && id > this.#goawayLast) return; // after our GOAWAY: not processed
    if (this.#clientGoaway) return;
    if (tooLarge) throw new FrameError(ErrorCode.PROTOCOL_ERROR, `header list of stream ${id} is too large`, id);
    if (this.#streams.size >= this.#maxStreams) throw new FrameError(ErrorCode.REFUSED_STREAM, `more than ${this.#maxStreams} concurrent streams`, id);
    const s: Stream = {
      id,
      receiving: !block.endStream,
      method: "",
      path: "",
      authority: undefined,
      headers: [],
      body: [],
      bodyLength: 0,
      recvWindow: this.#settingsAcked ? this.#ourWindow : Math.max(this.#ourWindow, Limits.DEFAULT_WINDOW),
      sendWindow: this.#peerInitialWindow,
      out: [],
      outAt: 0,
      endQueued: false,
      thenClose: false,
      closer: undefined,
    };
    this.#readRequestFields(s, fields);
    this.#streams.set(id, s);
    if (!s.receiving) this.#complete(s);
  }

  /** RFC 9113 §8.2, §8.3.1: what makes a request malformed (a stream error PROTOCOL_ERROR). */
  #readRequestFields(s: Stream, fields: HeaderField[]): void {
    const bad = (why: string) => new FrameError(ErrorCode.PROTOCOL_ERROR, `malformed request on stream ${s.id}: ${why}`, s.id);
    const seen = new Set<string>();
    let regular = false;
    let scheme = "";
    for (const [name, value] of fields) {
      if (name !== name.toLowerCase()) throw bad(`upper-case field name "${name}"`);
      if (name.startsWith(":")) {
        if (regular) throw bad(`pseudo-header ${name} after regular fields`);
        if (!REQUEST_PSEUDO.includes(name)) throw bad(`pseudo-header ${name}`);
        if (seen.has(name)) throw bad(`repeated ${name}`);
        seen.add(name);
        if (name === ":method") s.method = value;
        else if (name === ":path") s.path = value;
        else if (name === ":scheme") scheme = value;
        else s.authority = value;
        continue;
      }
      regular = true;
      if (CONNECTION_FIELDS.includes(name)) throw bad(`connection-specific field "${name}"`);
      if (name === "te" && value !== "trailers") throw bad(`te: ${value}`);
      s.headers.push([name, value]);
    }
    if (!s.method || !scheme || !s.path) throw bad("missing :method, :scheme or :path");
  }

  #onData(f: Frame): void {
    const data = dataPayload(f);
    const id = f.streamId;
    const length = f.payload.length; // flow control counts the padding too
    this.#connRecv -= length;
    if (this.#connRecv < 0) throw new FrameError(ErrorCode.FLOW_CONTROL_ERROR, `DATA beyond the connection window by ${-this.#connRecv} octets`);
    if (length > 0) {
      this.#send(windowUpdateFrame(0, length));
      this.#connRecv += length;
    }
    const s = this.#streams.get(id);
    if (!s) {
      if (id > this.#highest) throw new FrameError(ErrorCode.PROTOCOL_ERROR, `DATA on idle stream ${id}`);
      if ((this.#goawayLast >= 0 && id > this.#goawayLast) || this.#clientGoaway || this.#recentlyReset.includes(id)) return;
      throw new FrameError(ErrorCode.STREAM_CLOSED, `DATA on closed stream ${id}`, id);
    }
    if (!s.receiving) throw new FrameError(ErrorCode.STREAM_CLOSED, `DATA on half-closed stream ${id}`, id);
    s.recvWindow -= length;
    if (s.recvWindow < 0) throw new FrameError(ErrorCode.FLOW_CONTROL_ERROR, `DATA beyond the window of stream ${id}`, id);
    s.bodyLength += data.length;
    if (s.bodyLength > MAX_REQUEST_BODY) throw new FrameError(ErrorCode.ENHANCE_YOUR_CALM, `request body over ${MAX_REQUEST_BODY} octets`, id);
    if (data.length > 0) s.body.push(data.slice());
    if (f.flags & Flags.END_STREAM) {
      s.receiving = false;
      this.#complete(s);
    } else if (length > 0) {
      this.#send(windowUpdateFrame(id, length));
      s.recvWindow += length;
    }
  }

  #onWindowUpdate(f: Frame): void {
    const increment = decodeWindowUpdate(f);
    if (f.streamId === 0) {
      this.#connSend += increment;
      if (this.#connSend > Limits.MAX_WINDOW) throw new FrameError(ErrorCode.FLOW_CONTROL_ERROR, "connection window over 2^31 − 1");
    } else {
      const s = this.#streams.get(f.streamId);
      if (!s) {
        if (f.streamId > this.#highest) throw new FrameError(ErrorCode.PROTOCOL_ERROR, `WINDOW_UPDATE on idle stream ${f.streamId}`);
        return; // closed: updates in flight are fine
      }
      s.sendWindow += increment;
      if (s.sendWindow > Limits.MAX_WINDOW) throw new FrameError(ErrorCode.FLOW_CONTROL_ERROR, `window of stream ${s.id} over 2^31 − 1`, s.id);
    }
    this.#flush();
  }

  #onRstStream(f: Frame): void {
    decodeRstStream(f);
    const s = this.#streams.get(f.streamId);
    if (!s) {
      if (f.streamId > this.#highest) throw new FrameError(ErrorCode.PROTOCOL_ERROR, `RST_STREAM on idle stream ${f.streamId}`);
      return;
    }
    this.#streams.delete(s.id);
    s.closer?.();
    this.#maybeFinish();
  }

  /** The whole request is in: record it, then answer it. */
  #complete(s: Stream): void {
    const contentLength = s.headers.find(([n]) => n === "content-length")?.[1];
    if (contentLength !== undefined && Number(contentLength) !== s.bodyLength) {
      throw new FrameError(ErrorCode.PROTOCOL_ERROR, `content-length ${contentLength} but ${s.bodyLength} octets of DATA on stream ${s.id}`, s.id);
    }
    const headers = new Map<string, string>();
    let raw = `${s.method} ${s.path} HTTP/2\r\n`;
    if (s.authority !== undefined) {
      headers.set("host", s.authority);
      raw += `host: ${s.authority}\r\n`;
    }
    for (const [name, value] of s.headers) {
      const before = headers.get(name);
      headers.set(name, before === undefined ? value : `${before}${name === "cookie" ? "; " : ", "}${value}`);
      raw += `${name}: ${value}\r\n`;
    }
    const body = decoder.decode(concat(s.body, s.bodyLength));
    s.body = [];
    raw += `\r\n${body}`;
    const request: ParsedRequest = { method: s.method, path: s.path, headers, body, raw };
    this.#link.record(raw);
    const code = this.#options.resetStream?.(request);
    if (code !== undefined) this.#resetStream(s.id, code);
    else this.#answer(s, request);
    this.#answered++;
    const after = this.#options.goAwayAfter;
    if (after !== undefined && this.#answered >= after && this.#goawayLast < 0 && !this.#closed) {
      this.#goaway(ErrorCode.NO_ERROR);
      this.#maybeFinish();
    }
  }

  #answer(s: Stream, request: ParsedRequest): void {
    const answer = this.#handler(request);
    if (typeof answer === "string") return this.#respond(s, answer, false);
    if ("reply" in answer) return this.#respond(s, answer.reply, true);
    if ("stream" in answer) return this.#stream(s, answer.stream);
    if ("drop" in answer) {
      this.#closed = true;
      this.#endAll();
      this.#link.reset("connection reset by peer (scripted)");
    }
    // hang: the stream stays open, unanswered
  }

  #sendHeaders(s: Stream, status: number, headers: Map<string, string>, endStream: boolean): void {
    const fields: [string, string][] = [[":status", String(status)]];
    for (const [name, value] of headers) if (!CONNECTION_FIELDS.includes(name)) fields.push([name, value]);
    this.#send(headersFrames(s.id, this.#encoder.encode(fields), { endStream, maxFrameSize: this.#peerMaxFrame }));
  }

  #respond(s: Stream, text: string, thenClose: boolean): void {
    let response: ReturnType<typeof parseResponse>;
    try {
      response = parseResponse(text, s.method === "HEAD");
      if (!response.complete) throw new HttpError("protocol", "the scripted response body is incomplete");
    } catch (e) {
      if (!(e instanceof HttpError)) throw e;
      return this.#resetStream(s.id, ErrorCode.INTERNAL_ERROR);
    }
    s.thenClose = thenClose;
    if (response.body.length === 0) {
      this.#sendHeaders(s, response.status, response.headers, true);
      return this.#finished(s);
    }
    this.#sendHeaders(s, response.status, response.headers, false);
    s.out.push(response.body);
    s.endQueued = true;
    this.#flush();
  }

  #stream(s: Stream, answer: ScriptedStream): void {
    let head: ReturnType<typeof parseResponse>;
    try {
      head = parseResponse(`${answer.head.replace(/(\r\n)+$/, "")}\r\n\r\n`, true);
    } catch (e) {
      if (!(e instanceof HttpError)) throw e;
      return this.#resetStream(s.id, ErrorCode.INTERNAL_ERROR);
    }
    this.#sendHeaders(s, head.status, head.headers, false);
    let done = false;
    const alive = () => !done && !this.#closed && this.#streams.get(s.id) === s;
    const write = (text: string) => {
      if (!alive()) return;
      const bytes = encoder.encode(text);
      if (bytes.length === 0) return;
      s.out.push(bytes);
      this.#flush();
    };
    const end = () => {
      if (!alive()) return;
      done = true;
      s.closer = undefined;
      s.endQueued = true;
      this.#flush();
    };
    const close = answer.open(write, end);
    if (!done) {
      s.closer = () => {
        if (done) return;
        done = true;
        close();
      };
      if (this.#closed || this.#streams.get(s.id) !== s) s.closer(); // gone while opening
    }
  }

  /** Sends what the windows allow, stream by stream in id order. */
  #flush(): void {
    for (const s of this.#streams.values()) {
      if (this.#closed) return;
      while (s.out.length > 0 && this.#connSend > 0 && s.sendWindow > 0) {
        const chunk = s.out[0];
        const n = Math.min(chunk.length - s.outAt, this.#connSend, s.sendWindow, this.#peerMaxFrame);
        const piece = chunk.subarray(s.outAt, s.outAt + n);
        s.outAt += n;
        if (s.outAt === chunk.length) {
          s.out.shift();
          s.outAt = 0;
        }
        this.#connSend -= n;
        s.sendWindow -= n;
        const last = s.out.length === 0 && s.endQueued;
        this.#send(dataFrame(s.id, piece, last));
        if (last) {
          this.#finished(s);
          break;
        }
      }
      if (s.out.length === 0 && s.endQueued && this.#streams.get(s.id) === s) {
        this.#send(dataFrame(s.id, EMPTY, true));
        this.#finished(s);
      }
    }
  }

  /** Our END_STREAM went out: the stream is closed. */
  #finished(s: Stream): void {
    this.#streams.delete(s.id);
    if (s.thenClose) {
      this.#goaway(ErrorCode.NO_ERROR);
      this.#shut();
    } else this.#maybeFinish();
  }
}
