// HTTP/1.1 over one persistent connection (keep-alive): requests are queued and sent one at a time,
// the connection is reopened when it drops, and every response is read to its end — Content-Length,
// chunked or until close — while only the first `keepBody` bytes are kept. A response bigger than the
// caller needs is drained, not treated as a failure (picokubelet's B3), and memory per response is
// bounded by maxHeaderBytes + keepBody whatever the server sends.
import { DEFAULTS } from "../defaults";
import type { ConnectTarget, Host, HostSocket, SocketEvents } from "../host";
import { HttpError, HttpParser, socketClosedError } from "./parser";
import { authority, type HttpConnectionOptions, type HttpRequest, type HttpResponse, type HttpStats, type HttpTransport } from "./types";

export { HttpError, type HttpErrorKind } from "./parser";
export type { HttpConnectionOptions, HttpRequest, HttpResponse, HttpStats } from "./types";

interface Pending {
  request: HttpRequest;
  resolve: (r: HttpResponse) => void;
  reject: (e: Error) => void;
  retried: boolean;
  headSeen?: boolean;
}

export class HttpConnection implements HttpTransport {
  readonly protocol = "http/1.1";
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
    this.#hostHeader = options.hostHeader ?? authority(target.host, target.port, !!target.tls);
  }

  request(request: HttpRequest): Promise<HttpResponse> {
    return new Promise((resolve, reject) => {
      const pending: Pending = { request, resolve, reject, retried: false };
      if (request.cancel?.cancelled) return reject(new HttpError("cancelled", "request cancelled"));
      request.cancel?.onCancel(() => this.#cancel(pending));
      this.#queue.push(pending);
      this.#pump();
    });
  }

  /** A queued request leaves the queue; the one on the wire takes the connection with it. */
  #cancel(pending: Pending): void {
    const error = new HttpError("cancelled", "request cancelled");
    if (this.#current === pending) return this.#fail(error);
    const i = this.#queue.indexOf(pending);
    if (i >= 0) {
      this.#queue.splice(i, 1);
      pending.reject(error);
    }
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

  /**
   * Takes over a TLS connection that is already up (the server chose http/1.1 by ALPN on a
   * connection opened for HTTP/2): no second handshake (it was counted where it was made).
   */
  adopt(socket: HostSocket, rebind: (events: SocketEvents) => void): void {
    if (this.#socket) return socket.close();
    this.#reused = false;
    this.#socket = socket;
    this.#open = true;
    rebind(this.#events({ socket }));
    if (this.#current) this.#send();
    else this.#pump();
    this.#reused = false; // the first request on this connection
  }

  #pump(): void {
    if (this.#current || this.#queue.length === 0) return;
    this.#current = this.#queue.shift()!;
    const timeoutMs = this.#current.request.timeoutMs ?? this.#timeoutMs;
    this.#timer = this.#host.setTimer(() => this.#fail(new HttpError("timeout", `no complete response within ${timeoutMs / 1000} s`)), timeoutMs);
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
    const holder: { socket?: HostSocket } = {};
    try {
      this.#socket = holder.socket = this.#host.connect(this.#target, this.#events(holder));
    } catch (err) {
      this.#fail(new HttpError("network", `cannot connect to ${this.#target.host}:${this.#target.port}: ${(err as Error).message}`));
    }
  }

  /** Socket callbacks that only act while holder.socket is the current one. */
  #events(holder: { socket?: HostSocket }): SocketEvents {
    return {
      onConnect: () => {
        if (this.#socket !== holder.socket) return;
        this.#open = true;
        if (this.#current) this.#send();
      },
      onData: (bytes: Uint8Array) => {
        if (this.#socket !== holder.socket) return;
        this.stats.bytesReceived += bytes.length;
        this.#receive(bytes);
      },
      onClose: (error?: string) => {
        if (this.#socket !== holder.socket) return;
        this.#onSocketClosed(error);
      },
    };
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
    this.#parser.begin(request?.keepBody ?? this.#maxBody, request?.method === "HEAD", request?.onData);
  }

  #receive(bytes: Uint8Array): void {
    if (!this.#current) {
      // Nothing was asked: a server closing an idle connection may say why (408); drop it.
      this.#dropSocket();
      return;
    }
    const pending = this.#current;
    let i = 0;
    try {
      i = this.#parser.push(bytes, 0, bytes.length);
    } catch (err) {
      return this.#fail(err as HttpError);
    }
    // The body's sink (a watch) may have ended the request itself: cancelled, the socket dropped.
    if (this.#current !== pending) return;
    if (!pending.headSeen && this.#parser.headDone) {
      pending.headSeen = true;
      pending.request.onHead?.(this.#parser.status);
    }
    if (this.#parser.done && this.#current === pending) this.#complete();
    if (i < bytes.length) {
      // Bytes after a complete response with nothing asked: a protocol violation; start afresh.
      this.#dropSocket();
    }
  }

  #complete(): void {
    const pending = this.#current!;
    this.#current = undefined;
    this.#host.clearTimer(this.#timer);
    pending.request.cancel?.onCancel(undefined);
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
    this.#fail(socketClosedError(`${this.#target.host}:${this.#target.port}`, wasOpen, error));
  }

  #fail(error: HttpError): void {
    const pending = this.#current;
    this.#current = undefined;
    this.#host.clearTimer(this.#timer);
    this.#dropSocket();
    pending?.request.cancel?.onCancel(undefined);
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
