// One HTTP/2 connection (RFC 9113) over one host socket: the preface and SETTINGS, a stream per
// request, HPACK, flow control both ways, PING liveness, GOAWAY, RST_STREAM. The transport (h2.ts)
// owns the queue and decides when to open a new session; this file only speaks the protocol.
// Memory, bounded by what we advertise (H2_LIMITS): one frame of at most 16 KiB in the reader, the
// HPACK tables (4 KiB each way), per stream the kept body (keepBody) or, for a paused watch, at most
// its receive window (16 KiB); at most 8 streams at once; a header block of at most 16 KiB.
import type { ConnectTarget, Host, HostSocket, SocketEvents } from "../host";
import {
  ErrorCode, Flags, FrameError, FrameReader, FrameType, Limits, Setting, clientPreface, dataFrame, dataPayload, decodeGoaway, decodePing,
  decodeRstStream, decodeSettings, decodeWindowUpdate, errorCodeName, goawayFrame, headersFrames, headersPayload, pingFrame, rstStreamFrame,
  settingsAckFrame, settingsFrame, windowUpdateFrame, type Frame,
} from "./frames";
import { FrameWriter, H2_LIMITS, HeaderBlock, Http2Unsupported, Liveness, requestFields, shouldIndex, type Exchange } from "./h2-parts";
import { H2Stream, type StreamHooks } from "./h2-stream";
import { HpackDecoder, HpackEncoder, HpackError } from "./hpack";
import { HttpError, socketClosedError } from "./parser";
import type { HttpStats } from "./types";

export interface SessionEvents {
  /** TLS is up and the preface is out: streams may be opened. */
  ready(): void;
  /** A stream ended (a slot is free), or the session wants no more streams (GOAWAY). */
  changed(): void;
  /** These were not processed by the server (REFUSED_STREAM, above a GOAWAY's last stream): send again. */
  retry(exchanges: Exchange[]): void;
  /** The peer does not speak HTTP/2; the queue may go out over HTTP/1.1. */
  unsupported(error: Http2Unsupported): void;
  /** The socket is gone (error: why, when it failed). */
  closed(error: HttpError | undefined, wasReady: boolean): void;
}

export interface SessionOptions {
  maxBody: number;
  authority: string;
  maxHeaderBytes: number;
}

export class Http2Session {
  #host: Host;
  #target: ConnectTarget;
  #options: SessionOptions;
  #events: SessionEvents;
  #stats: HttpStats;
  #socket: HostSocket | undefined;
  #handler: SocketEvents;
  #reader: FrameReader;
  #writer: FrameWriter;
  #live: Liveness;
  #hooks: StreamHooks;
  #encoder = new HpackEncoder({ maxTableSize: H2_LIMITS.headerTableSize, shouldIndex });
  #decoder: HpackDecoder;
  #streams = new Map<number, H2Stream>();
  #nextId = 1;
  #open = false;
  #closed = false;
  #first: number[] | undefined = []; // the peer's first bytes, until its SETTINGS arrived
  #continuation: HeaderBlock | undefined;
  // the peer's settings and our windows
  #peerWindow: number = Limits.DEFAULT_WINDOW;
  #peerMaxFrame: number = Limits.DEFAULT_MAX_FRAME_SIZE;
  #peerMaxStreams = 100;
  #connSendWindow: number = Limits.DEFAULT_WINDOW;
  #connRecvWindow: number = Limits.DEFAULT_WINDOW;
  #connUnacked = 0;
  /** GOAWAY received: no new streams; the session closes once its streams are done. */
  goingAway = false;

  constructor(host: Host, target: ConnectTarget, options: SessionOptions, stats: HttpStats, events: SessionEvents) {
    this.#host = host;
    this.#target = target;
    this.#options = options;
    this.#stats = stats;
    this.#events = events;
    this.#decoder = new HpackDecoder({ maxTableSize: H2_LIMITS.headerTableSize, maxHeaderListBytes: options.maxHeaderBytes, decodeText: (b) => host.utf8Decode(b) });
    this.#reader = new FrameReader((f) => this.#onFrame(f), { maxFrameSize: H2_LIMITS.maxFrameSize });
    this.#writer = new FrameWriter(() => (this.#closed ? undefined : this.#socket), stats, (m) => this.#lost(`connection to ${this.#where()} lost: ${m}`));
    this.#live = new Liveness(host, (f) => this.#writer.queue(f), () => this.#waiting(), (m) => this.#lost(`the API server at ${this.#where()} gave ${m}`));
    this.#hooks = {
      update: (stream, increment) => this.#writer.queue(windowUpdateFrame(stream.id, increment)),
      complete: (stream) => this.#complete(stream),
    };
    this.#handler = { onConnect: (p) => this.#onConnect(p), onData: (b) => this.#onData(b), onClose: (e) => this.#onClose(e) };
  }

  connect(): void {
    this.#stats.connects++;
    // Indirect, so the socket can be handed to HTTP/1.1 with its callbacks (ALPN said http/1.1).
    const events: SocketEvents = {
      onConnect: (p) => this.#handler.onConnect(p),
      onData: (b) => this.#handler.onData(b),
      onClose: (e) => this.#handler.onClose(e),
    };
    try {
      this.#socket = this.#host.connect(this.#target, events);
    } catch (err) {
      this.#lost(`cannot connect to ${this.#where()}: ${(err as Error).message}`);
    }
  }

  get ready(): boolean {
    return this.#open && !this.#closed && !this.goingAway;
  }

  /** Can another stream be opened now? */
  get hasRoom(): boolean {
    return this.ready && this.#streams.size < Math.min(this.#peerMaxStreams, H2_LIMITS.maxConcurrentStreams) && this.#nextId <= Limits.MAX_STREAM_ID;
  }

  #where(): string {
    return `${this.#target.host}:${this.#target.port}`;
  }

  #waiting(): boolean {
    for (const s of this.#streams.values()) if (!s.streaming) return true;
    return false;
  }

  #onConnect(protocol?: string): void {
    if (this.#closed) return;
    if (protocol !== undefined && protocol !== "h2") {
      // The server chose HTTP/1.1 (or nothing) by ALPN: hand the TLS connection over as it is.
      const error = new Http2Unsupported(`the API server at ${this.#where()} chose ${protocol ? `"${protocol}"` : "no protocol"} by ALPN, not h2`);
      const socket = this.#socket!;
      error.handover = { socket, rebind: (events) => (this.#handler = events) };
      this.#closed = true;
      this.#socket = undefined;
      this.#live.stop();
      this.#events.unsupported(error);
      return;
    }
    this.#open = true;
    this.#live.heard();
    this.#writer.queue(clientPreface());
    this.#writer.queue(
      settingsFrame([
        [Setting.HEADER_TABLE_SIZE, H2_LIMITS.headerTableSize],
        [Setting.ENABLE_PUSH, 0],
        [Setting.INITIAL_WINDOW_SIZE, H2_LIMITS.initialWindowSize],
        [Setting.MAX_FRAME_SIZE, H2_LIMITS.maxFrameSize],
        [Setting.MAX_HEADER_LIST_SIZE, H2_LIMITS.maxHeaderListSize],
      ]),
    );
    this.#live.arm(H2_LIMITS.idlePingMs);
    this.#events.ready();
  }

  /** Opens a stream for the exchange; the caller checked hasRoom. */
  start(exchange: Exchange): void {
    const id = this.#nextId;
    this.#nextId += 2;
    const { request } = exchange;
    const stream = new H2Stream(id, exchange, this.#peerWindow, this.#options.maxBody, this.#host.monotonic(), this.#hooks);
    const fields = requestFields(request, this.#target.tls ? "https" : "http", this.#options.authority, stream.pendingBody?.length);
    this.#streams.set(id, stream);
    this.#stats.requests++;
    this.#writer.queue(headersFrames(id, this.#encoder.encode(fields), { endStream: !stream.pendingBody, maxFrameSize: this.#peerMaxFrame }));
    if (stream.pendingBody) this.#sendBody(stream);
    request.flow?.onResume(() => stream.release());
    request.cancel?.onCancel(() => this.#reset(stream, ErrorCode.CANCEL, new HttpError("cancelled", "request cancelled")));
    if (!stream.streaming) this.#live.arm(H2_LIMITS.pingAfterMs);
  }

  /** A request timed out: give its stream up, and find out whether the connection still lives. */
  timedOut(exchange: Exchange, error: HttpError): boolean {
    for (const stream of this.#streams.values()) {
      if (stream.exchange !== exchange) continue;
      this.#reset(stream, ErrorCode.CANCEL, error);
      this.#live.probe();
      return true;
    }
    return false;
  }

  /** Ends a stream from our side (a timeout, a cancel): RST_STREAM, and the exchange fails. */
  #reset(stream: H2Stream, code: number, error: Error): void {
    if (!stream.open) return;
    this.#finish(stream);
    if (this.#open && !this.#closed) this.#writer.queue(rstStreamFrame(stream.id, code));
    stream.exchange.reject(error);
  }

  #finish(stream: H2Stream): void {
    stream.open = false;
    this.#streams.delete(stream.id);
    stream.exchange.request.cancel?.onCancel(undefined);
    stream.exchange.request.flow?.onResume(undefined);
    if (this.goingAway && this.#streams.size === 0) this.close();
    this.#events.changed();
  }

  #complete(stream: H2Stream): void {
    if (!stream.open) return;
    this.#finish(stream);
    stream.exchange.resolve(stream.response(this.#host.monotonic()));
  }

  /** Sends as much of a request body as the windows allow; the rest waits for WINDOW_UPDATE. */
  #sendBody(stream: H2Stream): void {
    let body = stream.pendingBody;
    while (body && body.length) {
      const n = Math.min(body.length, stream.sendWindow, this.#connSendWindow, this.#peerMaxFrame);
      if (n <= 0) break;
      const last = n === body.length;
      this.#writer.queue(dataFrame(stream.id, body.subarray(0, n), last));
      stream.sendWindow -= n;
      this.#connSendWindow -= n;
      body = last ? undefined : body.subarray(n);
    }
    stream.pendingBody = body;
  }

  #sendPendingBodies(): void {
    for (const s of this.#streams.values()) if (s.pendingBody) this.#sendBody(s);
  }

  #onData(bytes: Uint8Array): void {
    if (this.#closed) return;
    this.#stats.bytesReceived += bytes.length;
    this.#live.heard();
    const first = this.#first;
    if (first && first.length < 5) {
      for (let i = 0; i < bytes.length && first.length < 5; i++) first.push(bytes[i]);
      if (first.length === 5 && String.fromCharCode(...first) === "HTTP/") return this.#abandon();
    }
    try {
      this.#reader.push(bytes);
    } catch (err) {
      this.#connectionError(err);
    }
  }

  #onFrame(frame: Frame): void {
    if (this.#first) {
      // §3.4: the server's preface is a SETTINGS frame.
      if (frame.type !== FrameType.SETTINGS || frame.flags & Flags.ACK) throw new FrameError(ErrorCode.PROTOCOL_ERROR, `the server's first frame is type ${frame.type}, not SETTINGS`);
      this.#first = undefined;
    }
    if (this.#continuation && frame.type !== FrameType.CONTINUATION) throw new FrameError(ErrorCode.PROTOCOL_ERROR, "a header block was interrupted");
    switch (frame.type) {
      case FrameType.DATA:
        return this.#onDataFrame(frame);
      case FrameType.HEADERS: {
        const end = (frame.flags & Flags.END_STREAM) !== 0;
        const part = headersPayload(frame);
        if (frame.flags & Flags.END_HEADERS) return this.#onHeaders(frame.streamId, part, end);
        this.#continuation = new HeaderBlock(frame.streamId, end, part, H2_LIMITS.maxHeaderListSize * 2);
        return;
      }
      case FrameType.CONTINUATION:
        return this.#onContinuation(frame);
      case FrameType.SETTINGS:
        return this.#onSettings(frame);
      case FrameType.WINDOW_UPDATE:
        return this.#onWindowUpdate(frame);
      case FrameType.PING: {
        const data = decodePing(frame);
        if (frame.flags & Flags.ACK) this.#live.answered();
        else this.#writer.queue(pingFrame(data, true));
        return;
      }
      case FrameType.RST_STREAM:
        return this.#onReset(frame);
      case FrameType.GOAWAY:
        return this.#onGoaway(frame);
      case FrameType.PUSH_PROMISE:
        throw new FrameError(ErrorCode.PROTOCOL_ERROR, "PUSH_PROMISE although push is disabled");
      default:
        return; // PRIORITY and unknown types are ignored (§5.5)
    }
  }

  #onContinuation(frame: Frame): void {
    const c = this.#continuation;
    if (!c || c.id !== frame.streamId) throw new FrameError(ErrorCode.PROTOCOL_ERROR, "CONTINUATION without HEADERS");
    c.add(frame.payload);
    if (!(frame.flags & Flags.END_HEADERS)) return;
    this.#continuation = undefined;
    this.#onHeaders(c.id, c.join(), c.end);
  }

  #onSettings(frame: Frame): void {
    const settings = decodeSettings(frame);
    if (frame.flags & Flags.ACK) return;
    for (const [id, value] of settings) {
      if (id === Setting.HEADER_TABLE_SIZE) this.#encoder.setPeerMaxTableSize(value);
      else if (id === Setting.MAX_FRAME_SIZE) this.#peerMaxFrame = value;
      else if (id === Setting.MAX_CONCURRENT_STREAMS) this.#peerMaxStreams = value;
      else if (id === Setting.INITIAL_WINDOW_SIZE) {
        const delta = value - this.#peerWindow;
        this.#peerWindow = value;
        for (const s of this.#streams.values()) {
          s.sendWindow += delta;
          if (s.sendWindow > Limits.MAX_WINDOW) throw new FrameError(ErrorCode.FLOW_CONTROL_ERROR, "a stream window above 2^31 − 1");
        }
      }
    }
    this.#writer.queue(settingsAckFrame());
    this.#sendPendingBodies();
    this.#events.changed();
  }

  #onWindowUpdate(frame: Frame): void {
    const increment = decodeWindowUpdate(frame);
    if (frame.streamId === 0) {
      this.#connSendWindow += increment;
      if (this.#connSendWindow > Limits.MAX_WINDOW) throw new FrameError(ErrorCode.FLOW_CONTROL_ERROR, "the connection window above 2^31 − 1");
      return this.#sendPendingBodies();
    }
    const stream = this.#streams.get(frame.streamId);
    if (!stream) return;
    stream.sendWindow += increment;
    if (stream.sendWindow > Limits.MAX_WINDOW) return this.#reset(stream, ErrorCode.FLOW_CONTROL_ERROR, new HttpError("protocol", "the server overflowed a stream window"));
    if (stream.pendingBody) this.#sendBody(stream);
  }

  #onReset(frame: Frame): void {
    const code = decodeRstStream(frame);
    const stream = this.#streams.get(frame.streamId);
    if (!stream) return;
    this.#finish(stream);
    if (code === ErrorCode.REFUSED_STREAM) {
      // §8.7: not processed; safe to send again.
      stream.exchange.retry = true;
      this.#events.retry([stream.exchange]);
    } else stream.exchange.reject(new HttpError("protocol", `the API server reset the stream (${errorCodeName(code)})`, true));
  }

  #onGoaway(frame: Frame): void {
    const { lastStreamId, errorCode, debugData } = decodeGoaway(frame);
    this.goingAway = true;
    const retry: Exchange[] = [];
    const why = debugData.length ? `: ${this.#host.utf8Decode(debugData).slice(0, 80)}` : "";
    for (const s of [...this.#streams.values()]) {
      // Above lastStreamId: never processed, so safe to send again; at or below it, an error
      // GOAWAY means the server will not finish them either.
      if (s.id <= lastStreamId && errorCode === ErrorCode.NO_ERROR) continue;
      s.open = false;
      this.#streams.delete(s.id);
      if (s.id > lastStreamId) {
        s.exchange.retry = true;
        retry.push(s.exchange);
      } else s.exchange.reject(new HttpError("network", `the API server closed the connection (GOAWAY ${errorCodeName(errorCode)}${why})`));
    }
    this.#events.retry(retry);
    if (this.#streams.size === 0) this.close();
    else this.#events.changed();
  }

  #onHeaders(id: number, block: Uint8Array, end: boolean): void {
    let fields: [string, string][];
    try {
      fields = this.#decoder.decode(block); // always, even for a stream we gave up: HPACK state
    } catch (err) {
      if (!(err instanceof HpackError) || err.fatal) throw new FrameError(ErrorCode.COMPRESSION_ERROR, (err as Error).message);
      const stream = this.#streams.get(id);
      if (stream) this.#reset(stream, ErrorCode.PROTOCOL_ERROR, new HttpError("protocol", `response headers exceed ${this.#options.maxHeaderBytes} bytes`));
      return;
    }
    const stream = this.#streams.get(id);
    if (!stream) return;
    if (!stream.headersArrived(fields)) return this.#reset(stream, ErrorCode.PROTOCOL_ERROR, new HttpError("protocol", "a response without a valid :status"));
    if (end) this.#complete(stream);
  }

  #onDataFrame(frame: Frame): void {
    const length = frame.payload.length; // padding counts for flow control
    if (length > this.#connRecvWindow) throw new FrameError(ErrorCode.FLOW_CONTROL_ERROR, "the server overran the connection window");
    this.#connRecvWindow -= length;
    // The connection window is replenished whatever a stream does with its bytes: a paused watch
    // shuts its own window, never the renewals'.
    this.#connUnacked += length;
    if (this.#connUnacked >= H2_LIMITS.connectionUpdateAt) {
      this.#writer.queue(windowUpdateFrame(0, this.#connUnacked));
      this.#connRecvWindow += this.#connUnacked;
      this.#connUnacked = 0;
    }
    const stream = this.#streams.get(frame.streamId);
    if (!stream) return;
    if (length > stream.recvWindow) return this.#reset(stream, ErrorCode.FLOW_CONTROL_ERROR, new HttpError("protocol", "the server overran a stream window"));
    if (stream.status < 200) return this.#reset(stream, ErrorCode.PROTOCOL_ERROR, new HttpError("protocol", "DATA before the response headers"));
    stream.dataArrived(length, dataPayload(frame), (frame.flags & Flags.END_STREAM) !== 0);
  }

  #connectionError(err: unknown): void {
    if (this.#first && String.fromCharCode(...this.#first).startsWith("HTTP/")) return this.#abandon();
    if (this.#open && !this.#closed) {
      this.#writer.queue(goawayFrame(0, err instanceof FrameError ? err.code : ErrorCode.PROTOCOL_ERROR));
      this.#writer.flush();
    }
    this.#fail(new HttpError("protocol", `HTTP/2 with ${this.#where()} broke: ${(err as Error).message}`));
  }

  /** The server answered the preface in HTTP/1.1: nothing reached it as HTTP/2, all may go again. */
  #abandon(): void {
    const error = new Http2Unsupported(`the API server at ${this.#where()} answered the HTTP/2 preface in HTTP/1.1`);
    const exchanges = [...this.#streams.values()].map((s) => s.exchange);
    this.#streams.clear();
    this.#teardown();
    for (const e of exchanges) e.reject(error);
    this.#events.unsupported(error);
  }

  #onClose(error?: string): void {
    if (this.#closed) return;
    this.#socket = undefined;
    this.#fail(socketClosedError(this.#where(), this.#open, error));
  }

  #lost(message: string): void {
    this.#fail(new HttpError("network", message));
  }

  #fail(error: HttpError | undefined): void {
    if (this.#closed) return;
    const wasReady = this.#open;
    const streams = [...this.#streams.values()];
    this.#streams.clear();
    this.#teardown();
    for (const s of streams) {
      s.open = false;
      s.exchange.request.cancel?.onCancel(undefined);
      s.exchange.request.flow?.onResume(undefined);
      s.exchange.reject(error ?? new HttpError("network", "connection closed by the agent"));
    }
    this.#events.closed(error, wasReady);
  }

  #teardown(): void {
    this.#closed = true;
    this.#open = false;
    this.#live.stop();
    const socket = this.#socket;
    this.#socket = undefined;
    try {
      socket?.close();
    } catch {
      // already gone
    }
  }

  /** Closes the socket (GOAWAY first when idle); streams still open fail. */
  close(): void {
    if (this.#closed) return;
    if (this.#open && this.#streams.size === 0) {
      this.#writer.queue(goawayFrame(0, ErrorCode.NO_ERROR));
      this.#writer.flush();
    }
    this.#fail(undefined);
  }
}
