// The kubelet API's HTTP/1.1 server over host.listen (the API server's proxy, metrics-server and
// Prometheus all speak HTTP/1.1 to kubelets; no h2 is offered). Keep-alive, one request at a time
// per connection (pipelined requests wait their turn, bounded), every response framed by
// Content-Length. Whatever a client sends, the work is a bounded amount per byte, memory per
// connection is bounded by the limits below, and nothing it does can throw out of a callback: a
// hostile peer costs the agent at most its bytes, never its Lease renewals.
import type { Host, Listener, ListenOptions, PeerInfo, ServerEvents, ServerSocket, TimerId } from "../host";
import { REASONS, textResponse, type HttpServerStats, type RequestHandler, type ServerRequest, type ServerResponse } from "./http-messages";
import { Bytes, HttpError, HttpParser, parseTarget } from "../http/parser";
import { formatHttpDate } from "../time/clock";

export const SERVER_DEFAULTS = Object.freeze({
  /** Request line and headers together: a kubelet request is a few hundred bytes (a token ~1 KiB). */
  maxHeaderBytes: 8192,
  /** Kept request body: every route is a GET; 16 KiB leaves room for a later POST, not an upload. */
  maxBodyBytes: 16384,
  /** Connections at once (refused at accept beyond): the board's heap holds two of these, and its
   * TLS stack one handshake at a time; the API server and one scraper fit. */
  maxConnections: 2,
  /** A request must arrive whole within this of its first byte (slowloris): 408, then close. */
  requestTimeoutMs: 10_000,
  /** An idle keep-alive connection closes after this (frees one of the two slots). */
  idleTimeoutMs: 30_000,
  /** A handler answering later than this gets a 503 (and the connection closes). The API server's
   * own --kubelet-timeout is 5 s; a TokenReview + SubjectAccessReview fit well within 10 s. */
  handlerTimeoutMs: 10_000,
  /** Bytes of pipelined requests kept while one is being answered; more → close after the answer. */
  maxPendingBytes: 8192,
});

export interface HttpServerOptions {
  maxHeaderBytes?: number;
  maxBodyBytes?: number;
  maxConnections?: number;
  requestTimeoutMs?: number;
  idleTimeoutMs?: number;
  handlerTimeoutMs?: number;
  maxPendingBytes?: number;
  /** Epoch ms for the Date header (the agent's wall clock); undefined (or absent): no Date header. */
  date?: () => number | undefined;
}

export { REASONS, textResponse, type HttpServerStats, type RequestHandler, type ServerRequest, type ServerResponse } from "./http-messages";

// Connection phases (plain numbers, as everywhere in the core).
const Phase = Object.freeze({ Idle: 0, Reading: 1, Handling: 2, Closed: 3, Streaming: 4 });

interface Limits {
  maxHeaderBytes: number;
  maxBodyBytes: number;
  maxConnections: number;
  requestTimeoutMs: number;
  idleTimeoutMs: number;
  handlerTimeoutMs: number;
  maxPendingBytes: number;
}

export class HttpServer {
  #host: Host;
  #handler: RequestHandler;
  #limits: Limits;
  #date: (() => number | undefined) | undefined;
  #connections = new Set<ServerConnection>();
  #listener: Listener | undefined;
  stats: HttpServerStats = { accepted: 0, refused: 0, responses: 0, rejected: 0, bytesReceived: 0, bytesSent: 0 };

  constructor(host: Host, handler: RequestHandler, options: HttpServerOptions = {}) {
    this.#host = host;
    this.#handler = handler;
    this.#limits = {
      maxHeaderBytes: options.maxHeaderBytes ?? SERVER_DEFAULTS.maxHeaderBytes,
      maxBodyBytes: options.maxBodyBytes ?? SERVER_DEFAULTS.maxBodyBytes,
      maxConnections: options.maxConnections ?? SERVER_DEFAULTS.maxConnections,
      requestTimeoutMs: options.requestTimeoutMs ?? SERVER_DEFAULTS.requestTimeoutMs,
      idleTimeoutMs: options.idleTimeoutMs ?? SERVER_DEFAULTS.idleTimeoutMs,
      handlerTimeoutMs: options.handlerTimeoutMs ?? SERVER_DEFAULTS.handlerTimeoutMs,
      maxPendingBytes: options.maxPendingBytes ?? SERVER_DEFAULTS.maxPendingBytes,
    };
    this.#date = options.date;
  }

  /** Starts listening through host.listen (maxConnections from the options). Throws where the host cannot serve. */
  listen(options: { port: number; tls: ListenOptions["tls"] }): Listener {
    if (!this.#host.listen) throw new Error(`the ${this.#host.name} host cannot listen`);
    if (this.#listener) throw new Error("the kubelet API server is already listening");
    this.#listener = this.#host.listen({ port: options.port, tls: options.tls, maxConnections: this.#limits.maxConnections }, this.accept);
    return this.#listener;
  }

  /** Open connections. */
  get connections(): number {
    return this.#connections.size;
  }

  /** The host's accept callback (tests and hosts without listen may call it directly). */
  accept = (socket: ServerSocket, peer: PeerInfo): ServerEvents => {
    if (this.#connections.size >= this.#limits.maxConnections) {
      // The host should have refused it; a second line of defence keeps the bound whatever it did.
      this.stats.refused++;
      try {
        socket.close();
      } catch {
        // nothing to do: the socket is gone either way
      }
      return { onData() {}, onClose() {} };
    }
    this.stats.accepted++;
    const c = new ServerConnection(this, socket, peer);
    this.#connections.add(c);
    return { onData: (bytes) => c.data(bytes), onClose: () => c.gone() };
  };

  /** Stops listening and closes every connection. */
  close(): void {
    this.#listener?.close();
    this.#listener = undefined;
    for (const c of [...this.#connections]) c.close();
  }

  // ——— for the connections (not part of the API) ———
  get host(): Host {
    return this.#host;
  }
  get limits(): Limits {
    return this.#limits;
  }
  get handler(): RequestHandler {
    return this.#handler;
  }
  date(): string | undefined {
    try {
      const ms = this.#date?.();
      return ms === undefined || !Number.isFinite(ms) ? undefined : formatHttpDate(ms);
    } catch {
      return undefined; // the wall clock is not anchored yet
    }
  }
  forget(c: ServerConnection): void {
    this.#connections.delete(c);
  }
}

class ServerConnection {
  #server: HttpServer;
  #socket: ServerSocket;
  #peer: PeerInfo;
  #parser: HttpParser;
  #phase: number = Phase.Idle;
  #timer: TimerId | undefined;
  /** Bytes that arrived while a request was being answered (pipelining), bounded by maxPendingBytes. */
  #pending: Bytes;
  #overflow = false;
  #resuming = false;
  #headChecked = false;
  #continued = false;
  /** Which request an answer belongs to: a late one (after a timeout) is dropped. */
  #seq = 0;
  #method = "";
  #closeAfter = false;
  /** A streamed response's cancel (the client went first). */
  #cancelStream: (() => void) | undefined;

  constructor(server: HttpServer, socket: ServerSocket, peer: PeerInfo) {
    this.#server = server;
    this.#socket = socket;
    this.#peer = peer;
    this.#parser = new HttpParser("request", { maxHeaderBytes: server.limits.maxHeaderBytes });
    this.#pending = new Bytes(0);
    this.#begin();
  }

  data(bytes: Uint8Array): void {
    try {
      if (this.#phase === Phase.Closed) return;
      this.#server.stats.bytesReceived += bytes.length;
      if (this.#phase === Phase.Streaming) return; // nothing more is read on a streaming connection
      if (this.#phase === Phase.Handling || this.#resuming) this.#hold(bytes, 0, bytes.length);
      else this.#feed(bytes, 0, bytes.length);
    } catch (err) {
      this.#internal(err);
    }
  }

  /** The host says the connection ended. */
  gone(): void {
    if (this.#phase === Phase.Closed) return;
    this.#phase = Phase.Closed;
    this.#clearTimer();
    this.#server.forget(this);
    const cancel = this.#cancelStream;
    this.#cancelStream = undefined;
    try {
      cancel?.();
    } catch {
      // the stream's source is past caring
    }
  }

  /** Ends the connection from this side. */
  close(): void {
    if (this.#phase === Phase.Closed) return;
    this.gone();
    try {
      this.#socket.close();
    } catch {
      // already gone
    }
  }

  /** Ready for the next request: idle until its first byte. */
  #begin(): void {
    this.#parser.begin(this.#server.limits.maxBodyBytes);
    this.#phase = Phase.Idle;
    this.#headChecked = false;
    this.#continued = false;
    this.#arm(this.#server.limits.idleTimeoutMs, () => this.close());
  }

  #hold(bytes: Uint8Array, start: number, end: number): void {
    if (this.#overflow) return;
    const limit = this.#server.limits.maxPendingBytes;
    if (this.#pending.append(bytes, start, end, limit) < end - start) this.#overflow = true;
  }

  #feed(bytes: Uint8Array, start: number, end: number): void {
    if (start >= end) return;
    const limits = this.#server.limits;
    if (this.#phase === Phase.Idle) {
      this.#phase = Phase.Reading;
      this.#arm(limits.requestTimeoutMs, () => this.#refuse(408, `request not received within ${limits.requestTimeoutMs / 1000} s`));
    }
    const parser = this.#parser;
    let used: number;
    try {
      used = parser.push(bytes, start, end);
    } catch (err) {
      const message = err instanceof HttpError ? err.message : "malformed request";
      return this.#refuse(/headers exceed/.test(message) ? 431 : 400, message);
    }
    if (parser.headDone && !this.#headChecked) {
      this.#headChecked = true;
      const problem = this.#checkHead();
      if (problem) return this.#refuse(problem.status, problem.message);
    }
    if (parser.bodyLength > limits.maxBodyBytes) return this.#refuse(413, `request body exceeds ${limits.maxBodyBytes} bytes`);
    if (!parser.done) return;
    if (used < end) this.#hold(bytes, used, end);
    this.#dispatch();
  }

  /** What the head alone decides: framing the server will not read, a body too big, 100-continue. */
  #checkHead(): { status: number; message: string } | undefined {
    const headers = this.#parser.headers;
    const te = headers.get("transfer-encoding");
    const cl = headers.get("content-length");
    if (te !== undefined) {
      // Chunked request bodies are read (within maxBodyBytes); any other coding is not.
      if (te.toLowerCase() !== "chunked") return { status: 501, message: `unsupported Transfer-Encoding "${te.slice(0, 40)}"` };
      if (cl !== undefined) return { status: 400, message: "both Transfer-Encoding and Content-Length" };
    }
    if (cl !== undefined && Number(cl) > this.#server.limits.maxBodyBytes) return { status: 413, message: `request body exceeds ${this.#server.limits.maxBodyBytes} bytes` };
    const target = parseTarget(this.#parser.target);
    if (typeof target === "string") return { status: 400, message: target };
    if (!this.#parser.done && !this.#continued && (headers.get("expect") ?? "").toLowerCase() === "100-continue") {
      this.#continued = true;
      this.#write(this.#server.host.utf8Encode("HTTP/1.1 100 Continue\r\n\r\n"));
    }
    return undefined;
  }

  #dispatch(): void {
    const parser = this.#parser;
    const target = parseTarget(parser.target) as { path: string; query: string }; // checked with the head
    this.#phase = Phase.Handling;
    this.#method = parser.method;
    this.#closeAfter = parser.closeAfter;
    const seq = ++this.#seq;
    const request: ServerRequest = { method: parser.method, target: parser.target, path: target.path, query: target.query, headers: parser.headers, body: parser.takeBody(), peer: this.#peer };
    const limits = this.#server.limits;
    this.#arm(limits.handlerTimeoutMs, () => this.#refuse(503, `the handler did not answer within ${limits.handlerTimeoutMs / 1000} s`));
    let answer: ServerResponse | Promise<ServerResponse>;
    try {
      answer = this.#server.handler(request);
    } catch (err) {
      return this.#failed(seq, err);
    }
    Promise.resolve(answer).then(
      (response) => this.#answered(seq, response),
      (err) => this.#failed(seq, err),
    );
  }

  #failed(seq: number, err: unknown): void {
    if (seq !== this.#seq || this.#phase !== Phase.Handling) return;
    this.#server.stats.rejected++;
    this.#server.host.log("warn", `kubelet API: ${this.#method} handler failed: ${err instanceof Error ? err.message : String(err)}`);
    this.#answered(seq, textResponse(500, "Internal Server Error"));
  }

  #answered(seq: number, response: ServerResponse): void {
    try {
      if (seq !== this.#seq || this.#phase !== Phase.Handling) return;
      this.#clearTimer();
      let close = this.#closeAfter || this.#overflow;
      let bytes: Uint8Array;
      try {
        bytes = this.#encode(response, close);
      } catch (err) {
        this.#server.stats.rejected++;
        this.#server.host.log("warn", `kubelet API: ${this.#method}: unusable response: ${err instanceof Error ? err.message : String(err)}`);
        close = true;
        bytes = this.#encode(textResponse(500, "Internal Server Error"), true);
      }
      this.#server.stats.responses++;
      if (response.stream && this.#method !== "HEAD" && response.status === 200) return this.#startStream(response);
      this.#write(bytes);
      if (close) return this.close();
      this.#begin();
      if (this.#pending.length > 0) this.#resume();
    } catch (err) {
      this.#internal(err);
    }
  }

  /** Head and first chunk now, then a chunk per write() until end(); the connection closes after. */
  #startStream(response: ServerResponse): void {
    const host = this.#server.host;
    let text = `HTTP/1.1 200 OK\r\n`;
    for (const [name, value] of response.headers ?? []) {
      if (/[\r\n:]/.test(name) || /[\r\n]/.test(value)) throw new Error(`header "${name.slice(0, 40)}" holds a line break`);
      text += `${name}: ${value}\r\n`;
    }
    const date = this.#server.date();
    if (date) text += `Date: ${date}\r\n`;
    text += "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    this.#phase = Phase.Streaming;
    this.#write(host.utf8Encode(text));
    const chunk = (piece: string | Uint8Array) => {
      if (this.#phase !== Phase.Streaming) return;
      const bytes = typeof piece === "string" ? host.utf8Encode(piece) : piece;
      if (!bytes.length) return;
      const head = host.utf8Encode(`${bytes.length.toString(16)}\r\n`);
      const out = new Uint8Array(head.length + bytes.length + 2);
      out.set(head);
      out.set(bytes, head.length);
      out[out.length - 2] = 13;
      out[out.length - 1] = 10;
      this.#write(out);
    };
    if (response.body !== undefined) chunk(response.body);
    let ended = false;
    const end = () => {
      if (ended || this.#phase !== Phase.Streaming) return;
      ended = true;
      this.#cancelStream = undefined;
      this.#write(host.utf8Encode("0\r\n\r\n"));
      this.close();
    };
    try {
      const cancel = response.stream!((t) => chunk(t), end);
      if (ended || this.#phase !== Phase.Streaming) cancel();
      else this.#cancelStream = cancel;
    } catch (err) {
      this.#internal(err);
    }
  }

  /** Pipelined bytes: parsed on a fresh timer turn, so a burst of requests yields to the agent's timers. */
  #resume(): void {
    this.#resuming = true;
    this.#server.host.setTimer(() => {
      try {
        this.#resuming = false;
        if (this.#phase === Phase.Closed) return;
        const bytes = this.#pending.take();
        this.#feed(bytes, 0, bytes.length);
      } catch (err) {
        this.#internal(err);
      }
    }, 0);
  }

  /** The server answers itself (malformed, too big, too slow) and closes. */
  #refuse(status: number, message: string): void {
    if (this.#phase === Phase.Closed) return;
    this.#clearTimer();
    this.#seq++; // a handler still running answers no one
    this.#server.stats.rejected++;
    this.#server.stats.responses++;
    this.#write(this.#encode(textResponse(status, message), true, false));
    this.close();
  }

  #encode(response: ServerResponse, close: boolean, head = this.#method === "HEAD"): Uint8Array {
    const host = this.#server.host;
    const status = response.status | 0;
    if (status < 100 || status > 599) throw new Error(`status ${response.status}`);
    const body = response.body === undefined ? new Uint8Array(0) : typeof response.body === "string" ? host.utf8Encode(response.body) : response.body;
    let text = `HTTP/1.1 ${status} ${REASONS[status] ?? "Unknown"}\r\n`;
    for (const [name, value] of response.headers ?? []) {
      if (/[\r\n:]/.test(name) || /[\r\n]/.test(value)) throw new Error(`header "${name.slice(0, 40)}" holds a line break`);
      text += `${name}: ${value}\r\n`;
    }
    const date = this.#server.date();
    if (date) text += `Date: ${date}\r\n`;
    text += `Content-Length: ${body.length}\r\n`;
    if (close) text += "Connection: close\r\n";
    text += "\r\n";
    const headBytes = host.utf8Encode(text);
    if (head || body.length === 0) return headBytes;
    const out = new Uint8Array(headBytes.length + body.length);
    out.set(headBytes);
    out.set(body, headBytes.length);
    return out;
  }

  #write(bytes: Uint8Array): void {
    if (this.#phase === Phase.Closed) return;
    this.#server.stats.bytesSent += bytes.length;
    this.#socket.write(bytes);
  }

  /** A bug of ours, not the client's: logged, the connection closed, the agent unharmed. */
  #internal(err: unknown): void {
    try {
      this.#server.host.log("error", `kubelet API: connection failed: ${err instanceof Error ? err.message : String(err)}`);
    } catch {
      // logging must not throw either
    }
    this.close();
  }

  #arm(ms: number, fire: () => void): void {
    this.#clearTimer();
    this.#timer = this.#server.host.setTimer(() => {
      this.#timer = undefined;
      try {
        fire();
      } catch (err) {
        this.#internal(err);
      }
    }, ms);
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) this.#server.host.clearTimer(this.#timer);
    this.#timer = undefined;
  }
}
