// HTTP/1.1 over one persistent connection (keep-alive): requests are queued and sent one at a time,
// the connection is reopened when it drops, and every response is read to its end — Content-Length,
// chunked or until close — while only the first `keepBody` bytes are kept. A response bigger than the
// caller needs is drained, not treated as a failure (picokubelet's B3), and memory per response is
// bounded by maxHeaderBytes + keepBody whatever the server sends.
import { DEFAULTS } from "../defaults";
import type { ConnectTarget, Host, HostSocket } from "../host";
import { HttpError, HttpParser } from "./parser";

export { HttpError, type HttpErrorKind } from "./parser";

export interface HttpRequest {
  method: string;
  path: string;
  /** Extra header lines; Host and Content-Length are added here. */
  headers?: [string, string][];
  body?: Uint8Array;
  /** Bytes of the response body to keep (default: options.maxBody); the rest is drained. */
  keepBody?: number;
}

export interface HttpResponse {
  status: number;
  /** Lower-case names. */
  headers: Map<string, string>;
  /** Up to keepBody bytes of the body. */
  body: Uint8Array;
  /** Total body bytes the server sent (after de-chunking). */
  bodyLength: number;
  truncated: boolean;
  /** Milliseconds from sending the request to the end of the response. */
  elapsedMs: number;
}

export interface HttpConnectionOptions {
  /** Per request, from dequeue (connect included) to the end of the response. Default 15 s. */
  timeoutMs?: number;
  /** Default 8 KiB: status line and headers together. */
  maxHeaderBytes?: number;
  /** Default body bytes kept per response: 64 KiB. */
  maxBody?: number;
  /** The Host header value; defaults to host[:port]. */
  hostHeader?: string;
}

export interface HttpStats {
  connects: number;
  requests: number;
  bytesSent: number;
  bytesReceived: number;
}

interface Pending {
  request: HttpRequest;
  resolve: (r: HttpResponse) => void;
  reject: (e: Error) => void;
  retried: boolean;
}

export class HttpConnection {
  #host: Host;
  #target: ConnectTarget;
  #timeoutMs: number;
  #maxBody: number;
  #hostHeader: string;
  #queue: Pending[] = [];
  #current: Pending | undefined;
  #socket: HostSocket | undefined;
  #open = false;
  #reused = false; // the current request went out on a connection that had served one before
  #timer: unknown;
  #sentAt = 0;
  #parser: HttpParser;
  stats: HttpStats = { connects: 0, requests: 0, bytesSent: 0, bytesReceived: 0 };

  constructor(host: Host, target: ConnectTarget, options: HttpConnectionOptions = {}) {
    this.#host = host;
    this.#target = target;
    this.#timeoutMs = options.timeoutMs ?? DEFAULTS.requestTimeoutMs;
    this.#maxBody = options.maxBody ?? 65536;
    this.#parser = new HttpParser("response", { maxHeaderBytes: options.maxHeaderBytes });
    const defaultPort = target.tls ? 443 : 80;
    this.#hostHeader = options.hostHeader ?? (target.port === defaultPort ? target.host : `${target.host}:${target.port}`);
  }

  request(request: HttpRequest): Promise<HttpResponse> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ request, resolve, reject, retried: false });
      this.#pump();
    });
  }

  /** Closes the connection; queued requests fail. */
  close(): void {
    const failed = [...(this.#current ? [this.#current] : []), ...this.#queue];
    this.#current = undefined;
    this.#queue = [];
    this.#dropSocket();
    for (const p of failed) p.reject(new HttpError("network", "connection closed by the agent"));
  }

  get connected(): boolean {
    return this.#open;
  }

  #pump(): void {
    if (this.#current || this.#queue.length === 0) return;
    this.#current = this.#queue.shift()!;
    this.#timer = this.#host.setTimer(() => this.#fail(new HttpError("timeout", `no complete response within ${this.#timeoutMs / 1000} s`)), this.#timeoutMs);
    if (this.#open) {
      this.#reused = true;
      this.#send();
    } else if (!this.#socket) {
      this.#connect();
    }
  }

  #connect(): void {
    this.#reused = false;
    this.stats.connects++;
    let socket: HostSocket | undefined;
    const events = {
      onConnect: () => {
        if (this.#socket !== socket) return;
        this.#open = true;
        if (this.#current) this.#send();
      },
      onData: (bytes: Uint8Array) => {
        if (this.#socket !== socket) return;
        this.stats.bytesReceived += bytes.length;
        this.#receive(bytes);
      },
      onClose: (error?: string) => {
        if (this.#socket !== socket) return;
        this.#onSocketClosed(error);
      },
    };
    try {
      socket = this.#host.connect(this.#target, events);
      this.#socket = socket;
    } catch (err) {
      this.#fail(new HttpError("network", `cannot connect to ${this.#target.host}:${this.#target.port}: ${(err as Error).message}`));
    }
  }

  #send(): void {
    const { request } = this.#current!;
    let head = `${request.method} ${request.path} HTTP/1.1\r\nHost: ${this.#hostHeader}\r\n`;
    for (const [name, value] of request.headers ?? []) head += `${name}: ${value}\r\n`;
    if (request.body) head += `Content-Length: ${request.body.length}\r\n`;
    head += "\r\n";
    const headBytes = this.#host.utf8Encode(head);
    let bytes = headBytes;
    if (request.body?.length) {
      // One write, so the request usually leaves in one TLS record.
      bytes = new Uint8Array(headBytes.length + request.body.length);
      bytes.set(headBytes);
      bytes.set(request.body, headBytes.length);
    }
    this.#resetParser();
    this.#sentAt = this.#host.monotonic();
    this.stats.requests++;
    this.stats.bytesSent += bytes.length;
    try {
      this.#socket!.write(bytes);
    } catch (err) {
      this.#onSocketClosed((err as Error).message);
    }
  }

  #resetParser(): void {
    const request = this.#current?.request;
    this.#parser.begin(request?.keepBody ?? this.#maxBody, request?.method === "HEAD");
  }

  #receive(bytes: Uint8Array): void {
    if (!this.#current) {
      // Nothing was asked: a server closing an idle connection may say why (408); drop it.
      this.#dropSocket();
      return;
    }
    let i = 0;
    try {
      i = this.#parser.push(bytes, 0, bytes.length);
    } catch (err) {
      return this.#fail(err as HttpError);
    }
    if (this.#parser.done) this.#complete();
    if (i < bytes.length) {
      // Bytes after a complete response with nothing asked: a protocol violation; start afresh.
      this.#dropSocket();
    }
  }

  #complete(): void {
    const pending = this.#current!;
    this.#current = undefined;
    this.#host.clearTimer(this.#timer);
    const parser = this.#parser;
    const body = parser.takeBody();
    const response: HttpResponse = {
      status: parser.status,
      headers: parser.headers,
      body,
      bodyLength: parser.bodyLength,
      truncated: parser.bodyLength > body.length,
      elapsedMs: this.#host.monotonic() - this.#sentAt,
    };
    if (parser.closeAfter) this.#dropSocket();
    pending.resolve(response);
    // Deferred, so bytes still unparsed in this read are never taken for the next response.
    Promise.resolve().then(() => this.#pump());
  }

  #onSocketClosed(error?: string): void {
    const wasOpen = this.#open;
    this.#socket = undefined;
    this.#open = false;
    const pending = this.#current;
    if (!pending) return;
    if (this.#parser.end()) return this.#complete();
    // A keep-alive connection the server closed while idle fails the first request sent on it: that
    // request never reached the server, so it is safe to send once more on a fresh connection.
    if (this.#reused && !this.#parser.started && !pending.retried) {
      pending.retried = true;
      this.#connect();
      return;
    }
    const where = `${this.#target.host}:${this.#target.port}`;
    this.#fail(new HttpError("network", wasOpen ? `connection to ${where} lost${error ? `: ${error}` : ""}` : `cannot connect to ${where}${error ? `: ${error}` : ""}`));
  }

  #fail(error: HttpError): void {
    const pending = this.#current;
    this.#current = undefined;
    this.#host.clearTimer(this.#timer);
    this.#dropSocket();
    pending?.reject(error);
    Promise.resolve().then(() => this.#pump());
  }

  #dropSocket(): void {
    const socket = this.#socket;
    this.#socket = undefined;
    this.#open = false;
    if (socket) {
      try {
        socket.close();
      } catch {
        // already gone
      }
    }
  }
}
