// HTTP/1.1 over one persistent connection (keep-alive): requests are queued and sent one at a time,
// the connection is reopened when it drops, and every response is read to its end — Content-Length,
// chunked or until close — while only the first `keepBody` bytes are kept. A response bigger than the
// caller needs is drained, not treated as a failure (picokubelet's B3), and memory per response is
// bounded by maxHeaderBytes + keepBody whatever the server sends.
import type { ConnectTarget, Host, HostSocket } from "../host";

export type HttpErrorKind = "network" | "timeout" | "protocol";

export class HttpError extends Error {
  kind: HttpErrorKind;
  constructor(kind: HttpErrorKind, message: string) {
    super(message);
    this.kind = kind;
  }
}

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

const CR = 13;
const LF = 10;

// Parser phases (plain numbers: no TypeScript-only runtime constructs in the core).
const Phase = {
  Head: 0,
  Body: 1, // Content-Length or until close
  ChunkSize: 2,
  ChunkData: 3,
  ChunkDataEnd: 4,
  Trailers: 5,
} as const;

/** Growable byte buffer with a hard cap, reused across responses. */
class Bytes {
  buf: Uint8Array;
  length = 0;
  constructor(initial: number) {
    this.buf = new Uint8Array(initial);
  }
  append(src: Uint8Array, start: number, end: number, cap: number): number {
    const n = Math.min(end - start, cap - this.length);
    if (n <= 0) return 0;
    if (this.length + n > this.buf.length) {
      const grown = new Uint8Array(Math.min(cap, Math.max(this.buf.length * 2, this.length + n)));
      grown.set(this.buf.subarray(0, this.length));
      this.buf = grown;
    }
    this.buf.set(src.subarray(start, start + n), this.length);
    this.length += n;
    return n;
  }
  take(): Uint8Array {
    const out = this.buf.slice(0, this.length);
    this.length = 0;
    return out;
  }
}

export class HttpConnection {
  #host: Host;
  #target: ConnectTarget;
  #timeoutMs: number;
  #maxHeader: number;
  #maxBody: number;
  #hostHeader: string;
  #queue: Pending[] = [];
  #current: Pending | undefined;
  #socket: HostSocket | undefined;
  #open = false;
  #reused = false; // the current request went out on a connection that had served one before
  #timer: unknown;
  #sentAt = 0;
  // response parser state
  #phase: number = Phase.Head;
  #head = new Bytes(512);
  #body = new Bytes(256);
  #status = 0;
  #headers = new Map<string, string>();
  #remaining = 0; // bytes left in Content-Length body or current chunk
  #untilClose = false;
  #bodyLength = 0;
  #keep = 0;
  #closeAfter = false;
  #line = new Bytes(64); // chunk-size and trailer lines
  #gotBytes = false;
  stats: HttpStats = { connects: 0, requests: 0, bytesSent: 0, bytesReceived: 0 };

  constructor(host: Host, target: ConnectTarget, options: HttpConnectionOptions = {}) {
    this.#host = host;
    this.#target = target;
    this.#timeoutMs = options.timeoutMs ?? 15_000;
    this.#maxHeader = options.maxHeaderBytes ?? 8192;
    this.#maxBody = options.maxBody ?? 65536;
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
    this.#phase = Phase.Head;
    this.#head.length = 0;
    this.#body.length = 0;
    this.#line.length = 0;
    this.#status = 0;
    this.#headers = new Map();
    this.#remaining = 0;
    this.#untilClose = false;
    this.#bodyLength = 0;
    this.#closeAfter = false;
    this.#gotBytes = false;
    this.#keep = this.#current?.request.keepBody ?? this.#maxBody;
  }

  #receive(bytes: Uint8Array): void {
    if (!this.#current) {
      // Nothing was asked: a server closing an idle connection may say why (408); drop it.
      this.#dropSocket();
      return;
    }
    this.#gotBytes = true;
    let i = 0;
    const n = bytes.length;
    while (i < n && this.#current) {
      switch (this.#phase) {
        case Phase.Head: {
          const start = i;
          let end = -1;
          for (; i < n; i++) {
            if (bytes[i] === LF && this.#endsHead(bytes, start, i)) {
              end = ++i;
              break;
            }
          }
          const stop = end < 0 ? n : end;
          if (this.#head.append(bytes, start, stop, this.#maxHeader) < stop - start) {
            return this.#fail(new HttpError("protocol", `response headers exceed ${this.#maxHeader} bytes`));
          }
          if (end >= 0 && !this.#parseHead()) return;
          break;
        }
        case Phase.Body: {
          const take = this.#untilClose ? n - i : Math.min(this.#remaining, n - i);
          this.#bodyBytes(bytes, i, i + take);
          i += take;
          if (!this.#untilClose) {
            this.#remaining -= take;
            if (this.#remaining === 0) this.#complete();
          }
          break;
        }
        case Phase.ChunkSize:
        case Phase.Trailers: {
          const start = i;
          while (i < n && bytes[i] !== LF) i++;
          if (this.#line.append(bytes, start, i, 256) < i - start) {
            return this.#fail(new HttpError("protocol", "malformed chunked encoding (line too long)"));
          }
          if (i < n) {
            i++; // LF
            const line = this.#latin1(this.#line.buf, 0, this.#line.length).replace(/\r$/, "");
            this.#line.length = 0;
            if (this.#phase === Phase.Trailers) {
              if (line === "") this.#complete();
            } else {
              const size = parseInt(line.split(";")[0].trim(), 16);
              if (!Number.isFinite(size) || size < 0 || !/^[0-9a-fA-F]+/.test(line.trim())) {
                return this.#fail(new HttpError("protocol", `malformed chunk size "${line.slice(0, 20)}"`));
              }
              if (size === 0) this.#phase = Phase.Trailers;
              else {
                this.#remaining = size;
                this.#phase = Phase.ChunkData;
              }
            }
          }
          break;
        }
        case Phase.ChunkData: {
          const take = Math.min(this.#remaining, n - i);
          this.#bodyBytes(bytes, i, i + take);
          i += take;
          this.#remaining -= take;
          if (this.#remaining === 0) {
            this.#phase = Phase.ChunkDataEnd;
            this.#remaining = 2;
          }
          break;
        }
        case Phase.ChunkDataEnd: {
          // the CRLF after chunk data
          while (i < n && this.#remaining > 0) {
            i++;
            this.#remaining--;
          }
          if (this.#remaining === 0) this.#phase = Phase.ChunkSize;
          break;
        }
      }
    }
    if (!this.#current && i < n) {
      // Bytes after a complete response with nothing asked: a protocol violation; start afresh.
      this.#dropSocket();
    }
  }

  #endsHead(bytes: Uint8Array, start: number, i: number): boolean {
    // LF at i ends the head when preceded by CRLF (or LF): look back across the chunk boundary too.
    const at = (k: number): number => {
      if (k >= start) return bytes[k];
      const h = this.#head.length + (k - start);
      return h >= 0 ? this.#head.buf[h] : -1;
    };
    return (at(i - 1) === CR && at(i - 2) === LF) || at(i - 1) === LF;
  }

  #latin1(buf: Uint8Array, start: number, end: number): string {
    let s = "";
    for (let k = start; k < end; k++) s += String.fromCharCode(buf[k]);
    return s;
  }

  #parseHead(): boolean {
    const text = this.#latin1(this.#head.buf, 0, this.#head.length);
    const lines = text.split(/\r?\n/);
    const m = /^HTTP\/1\.([01]) (\d{3})/.exec(lines[0]);
    if (!m) {
      this.#fail(new HttpError("protocol", `not an HTTP/1.x response: "${lines[0].slice(0, 40)}"`));
      return false;
    }
    this.#status = Number(m[2]);
    for (let k = 1; k < lines.length; k++) {
      const colon = lines[k].indexOf(":");
      if (colon > 0) this.#headers.set(lines[k].slice(0, colon).trim().toLowerCase(), lines[k].slice(colon + 1).trim());
    }
    const connection = (this.#headers.get("connection") ?? "").toLowerCase();
    this.#closeAfter = connection.includes("close") || (m[1] === "0" && !connection.includes("keep-alive"));
    if (this.#status >= 100 && this.#status < 200) {
      // Interim response (100 Continue): the real one follows.
      this.#head.length = 0;
      this.#headers = new Map();
      return true;
    }
    const method = this.#current!.request.method;
    const te = (this.#headers.get("transfer-encoding") ?? "").toLowerCase();
    const cl = this.#headers.get("content-length");
    if (method === "HEAD" || this.#status === 204 || this.#status === 304) {
      this.#complete();
    } else if (te.includes("chunked")) {
      this.#phase = Phase.ChunkSize;
    } else if (cl !== undefined) {
      const length = Number(cl);
      if (!Number.isInteger(length) || length < 0) {
        this.#fail(new HttpError("protocol", `bad Content-Length "${cl}"`));
        return false;
      }
      this.#remaining = length;
      this.#phase = Phase.Body;
      if (length === 0) this.#complete();
    } else {
      this.#untilClose = true;
      this.#closeAfter = true;
      this.#phase = Phase.Body;
    }
    return true;
  }

  #bodyBytes(bytes: Uint8Array, start: number, end: number): void {
    this.#bodyLength += end - start;
    this.#body.append(bytes, start, end, this.#keep);
  }

  #complete(): void {
    const pending = this.#current!;
    this.#current = undefined;
    this.#host.clearTimer(this.#timer);
    const response: HttpResponse = {
      status: this.#status,
      headers: this.#headers,
      body: this.#body.take(),
      bodyLength: this.#bodyLength,
      truncated: false,
      elapsedMs: this.#host.monotonic() - this.#sentAt,
    };
    response.truncated = response.bodyLength > response.body.length;
    if (this.#closeAfter) this.#dropSocket();
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
    if (this.#phase === Phase.Body && this.#untilClose) return this.#complete();
    // A keep-alive connection the server closed while idle fails the first request sent on it: that
    // request never reached the server, so it is safe to send once more on a fresh connection.
    if (this.#reused && !this.#gotBytes && !pending.retried) {
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
