// HTTP/2 to the API server: every request and watch multiplexed on one TLS connection, as client-go
// does. Requests wait in a queue until the session has a free stream; a session the server sends
// GOAWAY on finishes its streams while a new one takes the queue (nothing is lost: streams the
// server did not process go out again); per-request timeouts reset one stream, not the connection.
import { DEFAULTS } from "../defaults";
import type { ConnectTarget, Host } from "../host";
import { Http2Unsupported, type Exchange } from "./h2-parts";
import { Http2Session, type SessionEvents } from "./h2-session";
import { HttpError } from "./parser";
import { authority, type HttpConnectionOptions, type HttpRequest, type HttpResponse, type HttpStats, type HttpTransport } from "./types";

export { H2_LIMITS, Http2Unsupported, StreamFlow } from "./h2-parts";

/**
 * A request from its call to its answer. A class, so that settling it (which clears its timer) is
 * two prototype methods rather than two closures per request: a watch is one for minutes.
 */
class Waiting implements Exchange {
  readonly request: HttpRequest;
  timer: unknown = undefined;
  session: Http2Session | undefined = undefined;
  retry?: boolean;
  #host: Host;
  #resolve: (response: HttpResponse) => void;
  #reject: (error: Error) => void;

  constructor(host: Host, request: HttpRequest, resolve: (response: HttpResponse) => void, reject: (error: Error) => void) {
    this.#host = host;
    this.request = request;
    this.#resolve = resolve;
    this.#reject = reject;
  }

  resolve(response: HttpResponse): void {
    this.#host.clearTimer(this.timer);
    this.#resolve(response);
  }

  reject(error: Error): void {
    this.#host.clearTimer(this.timer);
    this.#reject(error);
  }
}

export class Http2Connection implements HttpTransport {
  readonly protocol = "h2";
  #host: Host;
  #target: ConnectTarget;
  #timeoutMs: number;
  #maxBody: number;
  #maxHeader: number;
  #authority: string;
  #queue: Waiting[] = [];
  #session: Http2Session | undefined;
  #closing = false;
  stats: HttpStats = { connects: 0, requests: 0, bytesSent: 0, bytesReceived: 0 };
  /** GOAWAYs the server sent (it restarts or rebalances): counted, each one a reconnect. */
  goaways = 0;

  constructor(host: Host, target: ConnectTarget, options: HttpConnectionOptions = {}) {
    this.#host = host;
    this.#target = target;
    this.#timeoutMs = options.timeoutMs ?? DEFAULTS.requestTimeoutMs;
    this.#maxBody = options.maxBody ?? 65536;
    this.#maxHeader = options.maxHeaderBytes ?? 8192;
    this.#authority = options.hostHeader ?? authority(target.host, target.port, !!target.tls);
  }

  get connected(): boolean {
    return !!this.#session?.ready;
  }

  request(request: HttpRequest): Promise<HttpResponse> {
    return new Promise((resolve, reject) => {
      if (request.cancel?.cancelled) return reject(new HttpError("cancelled", "request cancelled"));
      const timeoutMs = request.timeoutMs ?? this.#timeoutMs;
      const waiting = new Waiting(this.#host, request, resolve, reject);
      waiting.timer = this.#host.setTimer(() => this.#timedOut(waiting, new HttpError("timeout", `no complete response within ${timeoutMs / 1000} s`)), timeoutMs);
      this.#enqueue(waiting, false);
      this.#pump();
    });
  }

  /** Queued requests are cancelled here; once on a stream, the session resets it. */
  #enqueue(waiting: Waiting, front: boolean): void {
    waiting.session = undefined;
    waiting.request.cancel?.onCancel(() => this.#dequeue(waiting, new HttpError("cancelled", "request cancelled")));
    if (front) this.#queue.unshift(waiting);
    else this.#queue.push(waiting);
  }

  #timedOut(waiting: Waiting, error: HttpError): void {
    if (waiting.session?.timedOut(waiting, error)) return;
    this.#dequeue(waiting, error);
  }

  #dequeue(waiting: Waiting, error: HttpError): void {
    const i = this.#queue.indexOf(waiting);
    if (i < 0) return;
    this.#queue.splice(i, 1);
    waiting.reject(error);
  }

  #pump(): void {
    if (this.#closing || this.#queue.length === 0) return;
    let session = this.#session;
    if (!session || session.goingAway) session = this.#open();
    while (this.#queue.length && session.hasRoom) {
      const waiting = this.#queue.shift()!;
      waiting.session = session;
      session.start(waiting);
    }
  }

  #open(): Http2Session {
    const events: SessionEvents = {
      ready: () => this.#pump(),
      changed: () => this.#pump(),
      retry: (exchanges) => {
        if (session.goingAway) this.goaways++;
        for (const e of exchanges.reverse()) this.#enqueue(e as Waiting, true);
        Promise.resolve().then(() => this.#pump());
      },
      unsupported: (error) => {
        if (this.#session === session) this.#session = undefined;
        // Nothing reached the server as HTTP/2: every queued request may go out over HTTP/1.1.
        const queued = this.#queue.splice(0);
        if (!queued.length) return error.handover?.socket.close();
        // The socket (when there is one to hand over) goes with the first only.
        queued[0].reject(error);
        for (const w of queued.slice(1)) w.reject(new Http2Unsupported(error.message));
      },
      closed: (error, wasReady) => {
        if (this.#session === session) this.#session = undefined;
        if (!wasReady && error) {
          // Never connected: what waits for this session fails now, as over HTTP/1.1.
          for (const w of this.#queue.splice(0)) w.reject(error);
          return;
        }
        Promise.resolve().then(() => this.#pump());
      },
    };
    const session = new Http2Session(this.#host, this.#target, { maxBody: this.#maxBody, authority: this.#authority, maxHeaderBytes: this.#maxHeader }, this.stats, events);
    this.#session = session;
    session.connect();
    return session;
  }

  /** Closes the connection; requests in flight and queued fail. */
  close(): void {
    this.#closing = true;
    for (const w of this.#queue.splice(0)) w.reject(new HttpError("network", "connection closed by the agent"));
    this.#session?.close();
    this.#session = undefined;
    this.#closing = false;
  }
}

export function isHttp2Unsupported(err: unknown): err is Http2Unsupported {
  return err instanceof Http2Unsupported;
}
