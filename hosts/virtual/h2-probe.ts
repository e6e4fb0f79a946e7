// A minimal hand-driven HTTP/2 client for tests of the scripted server (and anything else behind a
// Host socket): every frame is sent on request, every frame received is kept, nothing is automatic
// except decoding header blocks (HPACK state must follow the server's) and, by default, ACKing the
// server's SETTINGS. Independent of the core's HTTP/2 client on purpose. Pure JavaScript.
import {
  ErrorCode,
  Flags,
  FrameReader,
  FrameType,
  clientPreface,
  dataFrame,
  decodeGoaway,
  decodeRstStream,
  decodeSettings,
  encodeFrame,
  goawayFrame,
  headersFrames,
  pingFrame,
  rstStreamFrame,
  settingsAckFrame,
  settingsFrame,
  windowUpdateFrame,
  type Frame,
  type Goaway,
} from "../../modules/http/frames";
import { HpackDecoder, HpackEncoder, type HeaderField } from "../../modules/http/hpack";
import type { Host, HostSocket } from "../../modules/host";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export interface ProbeStream {
  id: number;
  /** The response's header fields (pseudo-headers included), once they came. */
  headers: HeaderField[] | undefined;
  status: number | undefined;
  /** DATA payloads in order. */
  data: Uint8Array[];
  /** END_STREAM came. */
  ended: boolean;
  /** RST_STREAM's error code, if the server reset it. */
  reset: number | undefined;
}

export interface ProbeOptions {
  host?: string;
  port?: number;
  /** Offered ALPN protocols; default ["h2", "http/1.1"]. */
  alpn?: string[];
  /** ACK the server's SETTINGS as they come. Default true. */
  ackSettings?: boolean;
}

export interface RequestOptions {
  /** Default "192.0.2.1:6443"; null leaves :authority out. */
  authority?: string | null;
  headers?: [string, string][];
  /** DATA after the HEADERS (one frame). */
  body?: string | Uint8Array;
  /** END_STREAM on the last frame. Default true. */
  end?: boolean;
  /** Stream id; default the next odd one. */
  id?: number;
}

export class H2Probe {
  /** Every frame received, in order. */
  readonly frames: Frame[] = [];
  readonly streams = new Map<number, ProbeStream>();
  /** onConnect's protocol argument ("none" until connected; undefined when called without one). */
  protocol: string | undefined = "none";
  connected = false;
  /** onClose came: true, or its error message. */
  closed: boolean | string = false;
  /** The server's SETTINGS, as received (non-ACK frames), and how many ACKs of ours came. */
  readonly settings: [number, number][][] = [];
  settingsAcks = 0;
  /** PING ACKs received (their data). */
  readonly pingAcks: Uint8Array[] = [];
  readonly goaways: Goaway[] = [];
  readonly socket: HostSocket;
  #reader: FrameReader;
  #encoder = new HpackEncoder();
  #decoder = new HpackDecoder();
  #block: { id: number; parts: Uint8Array[]; endStream: boolean } | undefined;
  #nextId = 1;
  #ackSettings: boolean;

  constructor(host: Host, options: ProbeOptions = {}) {
    this.#ackSettings = options.ackSettings ?? true;
    this.#reader = new FrameReader((f) => this.#onFrame(f), { maxFrameSize: 1 << 20 });
    this.socket = host.connect(
      { host: options.host ?? "192.0.2.1", port: options.port ?? 6443, alpn: options.alpn ?? ["h2", "http/1.1"] },
      {
        onConnect: (...args: [string?]) => {
          this.connected = true;
          this.protocol = args.length === 0 ? undefined : args[0];
        },
        onData: (bytes) => this.#reader.push(bytes),
        onClose: (error) => {
          this.closed = error ?? true;
        },
      },
    );
  }

  write(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  /** The preface and our SETTINGS. */
  start(settings: [number, number][] = []): void {
    const preface = clientPreface();
    const frame = settingsFrame(settings);
    const out = new Uint8Array(preface.length + frame.length);
    out.set(preface);
    out.set(frame, preface.length);
    this.write(out);
  }

  /** Builds (does not send) a request's HEADERS (+ DATA); returns the bytes and the stream id. */
  requestBytes(method: string, path: string, options: RequestOptions = {}): { id: number; bytes: Uint8Array } {
    const id = options.id ?? this.#nextId;
    this.#nextId = Math.max(this.#nextId, id + 2);
    const fields: [string, string][] = [[":method", method], [":scheme", "https"]];
    const authority = options.authority === undefined ? "192.0.2.1:6443" : options.authority;
    if (authority !== null) fields.push([":authority", authority]);
    fields.push([":path", path]);
    const body = typeof options.body === "string" ? encoder.encode(options.body) : options.body;
    if (body) fields.push(["content-length", String(body.length)]);
    fields.push(...(options.headers ?? []));
    const end = options.end ?? true;
    const headers = headersFrames(id, this.#encoder.encode(fields), { endStream: end && !body });
    const data = body ? dataFrame(id, body, end) : new Uint8Array(0);
    const bytes = new Uint8Array(headers.length + data.length);
    bytes.set(headers);
    bytes.set(data, headers.length);
    this.#stream(id);
    return { id, bytes };
  }

  /** Sends a request; returns its stream id. */
  request(method: string, path: string, options: RequestOptions = {}): number {
    const { id, bytes } = this.requestBytes(method, path, options);
    this.write(bytes);
    return id;
  }

  data(id: number, body: string | Uint8Array, end = false): void {
    this.write(dataFrame(id, typeof body === "string" ? encoder.encode(body) : body, end));
  }

  windowUpdate(id: number, increment: number): void {
    this.write(windowUpdateFrame(id, increment));
  }

  ping(data = Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8)): void {
    this.write(pingFrame(data));
  }

  rst(id: number, code: number = ErrorCode.CANCEL): void {
    this.write(rstStreamFrame(id, code));
  }

  goaway(code: number = ErrorCode.NO_ERROR): void {
    this.write(goawayFrame(0, code));
  }

  /** A raw frame (for malformed input). */
  frame(type: number, flags: number, streamId: number, payload?: Uint8Array): void {
    this.write(encodeFrame(type, flags, streamId, payload));
  }

  close(): void {
    this.socket.close();
  }

  /** A stream's DATA so far, as text. */
  text(id: number): string {
    const s = this.streams.get(id);
    if (!s) return "";
    let length = 0;
    for (const d of s.data) length += d.length;
    const all = new Uint8Array(length);
    let at = 0;
    for (const d of s.data) {
      all.set(d, at);
      at += d.length;
    }
    return decoder.decode(all);
  }

  /** A response header (not a pseudo-header) of a stream. */
  header(id: number, name: string): string | undefined {
    return this.streams.get(id)?.headers?.find(([n]) => n === name)?.[1];
  }

  /** Frames of one type received (and optionally on one stream). */
  received(type: number, streamId?: number): Frame[] {
    return this.frames.filter((f) => f.type === type && (streamId === undefined || f.streamId === streamId));
  }

  #stream(id: number): ProbeStream {
    let s = this.streams.get(id);
    if (!s) {
      s = { id, headers: undefined, status: undefined, data: [], ended: false, reset: undefined };
      this.streams.set(id, s);
    }
    return s;
  }

  #onFrame(f: Frame): void {
    this.frames.push(f);
    switch (f.type) {
      case FrameType.SETTINGS:
        if (f.flags & Flags.ACK) this.settingsAcks++;
        else {
          this.settings.push(decodeSettings(f));
          if (this.#ackSettings) this.write(settingsAckFrame());
        }
        return;
      case FrameType.PING:
        if (f.flags & Flags.ACK) this.pingAcks.push(f.payload);
        return;
      case FrameType.GOAWAY:
        this.goaways.push(decodeGoaway(f));
        return;
      case FrameType.RST_STREAM:
        this.#stream(f.streamId).reset = decodeRstStream(f);
        return;
      case FrameType.HEADERS: {
        let payload = f.payload;
        if (f.flags & Flags.PADDED) payload = payload.subarray(1, payload.length - payload[0]);
        if (f.flags & Flags.PRIORITY) payload = payload.subarray(5);
        this.#block = { id: f.streamId, parts: [payload], endStream: (f.flags & Flags.END_STREAM) !== 0 };
        if (f.flags & Flags.END_HEADERS) this.#endBlock();
        return;
      }
      case FrameType.CONTINUATION:
        this.#block!.parts.push(f.payload);
        if (f.flags & Flags.END_HEADERS) this.#endBlock();
        return;
      case FrameType.DATA: {
        const s = this.#stream(f.streamId);
        let payload = f.payload;
        if (f.flags & Flags.PADDED) payload = payload.subarray(1, payload.length - payload[0]);
        if (payload.length > 0) s.data.push(payload);
        if (f.flags & Flags.END_STREAM) s.ended = true;
        return;
      }
    }
  }

  #endBlock(): void {
    const block = this.#block!;
    this.#block = undefined;
    let length = 0;
    for (const p of block.parts) length += p.length;
    const all = new Uint8Array(length);
    let at = 0;
    for (const p of block.parts) {
      all.set(p, at);
      at += p.length;
    }
    const fields = this.#decoder.decode(all);
    const s = this.#stream(block.id);
    if (s.headers === undefined) {
      s.headers = fields;
      s.status = Number(fields.find(([n]) => n === ":status")?.[1]);
    }
    if (block.endStream) s.ended = true;
  }
}
