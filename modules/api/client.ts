// The Kubernetes API client: JSON over one connection — HTTP/2 when the server speaks it (every
// request and watch multiplexed), else HTTP/1.1 keep-alive — bearer-token auth, the wall clock fed
// from every response's Date header, and errors that name the request, the status and the API's
// own Status.message in one line.
import type { ConnectTarget, Host, TlsOptions } from "../host";
import { HttpConnection, HttpError } from "../http/connection";
import { Http2Connection, isHttp2Unsupported, type Http2Unsupported, type StreamFlow } from "../http/h2";
import type { CancelToken, HttpRequest, HttpResponse, HttpStats, HttpTransport } from "../http/types";
import { PROTOBUF, protobufStatus } from "../k8s/protobuf";
import { parseHttpDate, type WallClock } from "../time/clock";
import type { FailureKind } from "../util/retry";

export class ApiError extends Error {
  method: string;
  path: string;
  status: number;
  /** Status.reason from the API server (Forbidden, NotFound, AlreadyExists, Conflict, …). */
  reason: string;
  /** The answer's Retry-After (429 from API Priority and Fairness, 503 …), in ms; absent when it had none or a malformed one. */
  retryAfterMs?: number;
  constructor(method: string, path: string, status: number, reason: string, apiMessage: string, retryAfterMs?: number) {
    super(`${method} ${path}: ${status}${reason ? ` ${reason}` : ""}${apiMessage ? `: ${apiMessage}` : ""}${retryAfterMs !== undefined ? ` (retry after ${retryAfterMs / 1000} s)` : ""}`);
    this.method = method;
    this.path = path;
    this.status = status;
    this.reason = reason;
    if (retryAfterMs !== undefined) this.retryAfterMs = retryAfterMs;
  }
}

/**
 * Retry-After (RFC 9110 §10.2.3): delay-seconds, or an HTTP-date read against the same answer's Date
 * header (so the board's own clock does not matter). ms, or undefined when absent or malformed.
 */
export function retryAfterMs(value: string | undefined, date: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (/^\d{1,9}$/.test(v)) return Number(v) * 1000;
  const at = parseHttpDate(v);
  const now = date === undefined ? NaN : parseHttpDate(date);
  return Number.isFinite(at) && Number.isFinite(now) ? Math.max(0, at - now) : undefined;
}

export interface ApiResult<T = any> {
  status: number;
  /** Parsed body, when it was JSON and kept whole. */
  json?: T;
  response: HttpResponse;
}

export interface CallOptions {
  body?: unknown;
  contentType?: string;
  /** Bytes of the response body worth keeping; writes whose echo the agent ignores pass 0. */
  keepBody?: number;
  /**
   * Only the status matters (a renewal, a status push): the echo may come as protobuf, about half
   * the bytes of JSON. An error Status is still read, from either encoding.
   */
  echoIgnored?: boolean;
}

export interface StreamOptions {
  /** Ends the response early (the watch is no longer wanted). */
  cancel?: CancelToken;
  /** Pause and resume delivery (HTTP/2 only: the stream's window closes, the connection's does not). */
  flow?: StreamFlow;
  /** The whole response may take this long; a watch asks the server to end it sooner. */
  timeoutMs: number;
  /** The status, as soon as the response head arrives. */
  onHead?: (status: number) => void;
}

export interface ApiClientOptions {
  host: Host;
  server: { host: string; port: number };
  tls?: TlsOptions;
  token?: string;
  clock: WallClock;
  userAgent: string;
  timeoutMs?: number;
  maxBody?: number;
  http?: HttpVersion;
  /** Told once when "auto" found the server without HTTP/2 and moved to HTTP/1.1. */
  onFallback?: (why: string) => void;
  /** Ask for protobuf where the echo is ignored (CallOptions.echoIgnored). Default true. */
  protobufEchoes?: boolean;
  /** Each response's duration, in seconds (the kubelet API's request-duration histogram). */
  onResponse?: (seconds: number) => void;
}

export type HttpVersion = "auto" | "h2" | "http/1.1";

export class ApiClient {
  #options: ApiClientOptions;
  #target: ConnectTarget;
  #transport: HttpTransport;
  #http: HttpVersion;
  #baseHeaders: [string, string][];
  #retired: HttpStats = { connects: 0, requests: 0, bytesSent: 0, bytesReceived: 0 };
  /** Over HTTP/1.1 a watch needs a connection of its own (bounded by the watches the agent runs). */
  #streams = new Set<HttpConnection>();
  /** Connections switchCredentials replaced, until RETIRE_AFTER_MS has passed. */
  #retiring = new Set<HttpTransport>();

  constructor(options: ApiClientOptions) {
    this.#options = options;
    this.#http = options.http ?? "auto";
    this.#target = { host: options.server.host, port: options.server.port, tls: options.tls };
    // HTTP/2 needs TLS to be negotiated (ALPN); without TLS only an explicit "h2" speaks it (tests).
    const h2 = this.#http === "h2" || (this.#http === "auto" && !!options.tls);
    this.#transport = h2
      ? new Http2Connection(options.host, { ...this.#target, alpn: options.tls ? (this.#http === "auto" ? ["h2", "http/1.1"] : ["h2"]) : undefined }, this.#connectionOptions())
      : this.#http1();
    this.#baseHeaders = [
      ["User-Agent", options.userAgent],
      ["Accept", "application/json"],
    ];
    if (options.token) this.#baseHeaders.push(["Authorization", `Bearer ${options.token}`]);
    this.#protobufHeaders = this.#baseHeaders.map(([n, v]) => [n, n === "Accept" ? `${PROTOBUF}, application/json` : v]);
    // Requests without a body share these lists (#headers): nothing may change them.
    Object.freeze(this.#baseHeaders);
    Object.freeze(this.#protobufHeaders);
  }

  #protobufHeaders: [string, string][];

  #connectionOptions() {
    return { timeoutMs: this.#options.timeoutMs, maxBody: this.#options.maxBody };
  }

  #http1(): HttpConnection {
    return new HttpConnection(this.#options.host, this.#target, this.#connectionOptions());
  }

  /** The API server's address (host, port), as configured. */
  get server(): { host: string; port: number } {
    return this.#options.server;
  }

  /** The connection requests go over now. */
  get connection(): HttpTransport {
    return this.#transport;
  }

  /** "h2" or "http/1.1". */
  get protocol(): string {
    return this.#transport.protocol;
  }

  /** Everything sent and received, over every connection this client has had. */
  get stats(): HttpStats {
    const total = { ...this.#retired };
    for (const t of [this.#transport, ...this.#streams, ...this.#retiring]) {
      total.connects += t.stats.connects;
      total.requests += t.stats.requests;
      total.bytesSent += t.stats.bytesSent;
      total.bytesReceived += t.stats.bytesReceived;
    }
    return total;
  }

  #retire(stats: HttpStats): void {
    this.#retired.connects += stats.connects;
    this.#retired.requests += stats.requests;
    this.#retired.bytesSent += stats.bytesSent;
    this.#retired.bytesReceived += stats.bytesReceived;
  }

  #headers(options: CallOptions): { headers: [string, string][]; body?: Uint8Array } {
    const base = options.echoIgnored && this.#options.protobufEchoes !== false ? this.#protobufHeaders : this.#baseHeaders;
    // Without a body the shared (frozen) list goes as it is: a watch holds its request for minutes,
    // and a copy of the list is ten slots and a chunk of its own per open stream.
    if (options.body === undefined) return { headers: base };
    const headers = [...base, ["Content-Type", options.contentType ?? "application/json"] as [string, string]];
    return { headers, body: this.#options.host.utf8Encode(typeof options.body === "string" ? options.body : JSON.stringify(options.body)) };
  }

  /**
   * Sends one request; resolves with any HTTP status, rejects when no response arrived — or when a
   * write was answered 2xx by something that is not the API server (foreignAnswer: a captive
   * portal's page, a proxy's): taken as landed, that write (a renewal, a status push) would be lost.
   */
  async call<T = any>(method: string, path: string, options: CallOptions = {}): Promise<ApiResult<T>> {
    const { headers, body } = this.#headers(options);
    const response = await this.#send({ method, path, headers, body, keepBody: options.keepBody });
    const result = this.#result<T>(response);
    if (method !== "GET" && foreignAnswer(result)) throw notTheApiServer(method, path, result);
    return result;
  }

  /**
   * A long-lived response (a watch): its body goes to onData as it arrives. Resolves when the
   * server ends it (the status tells whether it was ever a stream), rejects when it broke.
   */
  stream(path: string, onData: (bytes: Uint8Array) => void, options: StreamOptions): Promise<ApiResult> {
    const { headers } = this.#headers({});
    const request: HttpRequest = { method: "GET", path, headers, onData, onHead: options.onHead, timeoutMs: options.timeoutMs, cancel: options.cancel, flow: options.flow, keepBody: 0 };
    return this.#send(request).then((response) => this.#result(response));
  }

  /**
   * Written with then(), not async: a watch's request is in flight for minutes, and a suspended
   * async function keeps its frame (a chunk of about a kilobyte in XS) for all that time; one
   * closure is a dozen slots.
   */
  #send(request: HttpRequest, attempt = 0): Promise<HttpResponse> {
    const transport = request.onData && this.#transport.protocol !== "h2" ? this.#http1() : this.#transport;
    if (transport === this.#transport) return transport.request(request).catch((err) => this.#again(err, request, attempt));
    // A watch over HTTP/1.1: a connection of its own, closed when the watch ends.
    this.#streams.add(transport as HttpConnection);
    const done = () => {
      if (this.#streams.delete(transport as HttpConnection)) {
        transport.close();
        this.#retire(transport.stats);
      }
    };
    return transport.request(request).then(
      (response) => {
        done();
        return response;
      },
      (err) => {
        done();
        return this.#again(err, request, attempt);
      },
    );
  }

  /** Nothing reached the server as HTTP/2: the same request goes out again over HTTP/1.1 (once). */
  #again(err: unknown, request: HttpRequest, attempt: number): Promise<HttpResponse> {
    if (!isHttp2Unsupported(err) || this.#http !== "auto" || attempt > 0) throw err;
    this.#fallBack(err);
    return this.#send(request, 1);
  }

  #fallBack(err: Http2Unsupported): void {
    const handover = err.handover;
    err.handover = undefined;
    if (this.#transport.protocol === "h2") {
      const old = this.#transport;
      old.close();
      this.#retire(old.stats);
      const h1 = this.#http1();
      this.#transport = h1;
      if (handover) h1.adopt(handover.socket, handover.rebind);
      this.#options.onFallback?.(err.message);
    } else handover?.socket.close();
  }

  #result<T>(response: HttpResponse): ApiResult<T> {
    this.#options.clock.observeDate(response.headers.get("date"), response.elapsedMs);
    this.#options.onResponse?.(response.elapsedMs / 1000);
    const result: ApiResult<T> = { status: response.status, response };
    const type = response.headers.get("content-type") ?? "";
    if (!response.truncated && response.body.length > 0 && type.startsWith("application/json")) {
      try {
        result.json = JSON.parse(this.#options.host.utf8Decode(response.body));
      } catch {
        // leave json undefined: callers that need it treat it as missing
      }
    } else if (!response.truncated && (response.status < 200 || response.status > 299) && type.startsWith(PROTOBUF)) {
      result.json = protobufStatus(response.body, (b) => this.#options.host.utf8Decode(b)) as T | undefined;
    }
    return result;
  }

  /**
   * Moves to new TLS credentials (a renewed client certificate): a fresh connection made with them
   * must answer `probe` first — the request goes over it alone — and only then do requests use it;
   * the old connection closes a moment later (what was in flight on it finishes). When the probe
   * fails or throws, nothing changes and the old credentials stay in use.
   */
  async switchCredentials(tls: TlsOptions, probe: { method: string; path: string; body: unknown }, accept: (result: ApiResult) => boolean): Promise<ApiResult> {
    const target: ConnectTarget = { ...this.#target, tls };
    const h2 = this.#transport.protocol === "h2";
    const fresh: HttpTransport = h2
      ? new Http2Connection(this.#options.host, { ...target, alpn: this.#http === "auto" ? ["h2", "http/1.1"] : ["h2"] }, this.#connectionOptions())
      : new HttpConnection(this.#options.host, target, this.#connectionOptions());
    let result: ApiResult;
    try {
      const { headers, body } = this.#headers({ body: probe.body });
      result = this.#result(await fresh.request({ method: probe.method, path: probe.path, headers, body, keepBody: 4096 }));
    } catch (err) {
      fresh.close();
      this.#retire(fresh.stats);
      throw err;
    }
    if (!accept(result)) {
      fresh.close();
      this.#retire(fresh.stats);
      return result;
    }
    const old = this.#transport;
    this.#target = target;
    this.#options.tls = tls;
    this.#transport = fresh;
    this.#retiring.add(old);
    this.#options.host.setTimer(() => {
      if (!this.#retiring.delete(old)) return;
      old.close();
      this.#retire(old.stats);
    }, RETIRE_AFTER_MS);
    return result;
  }

  close(): void {
    this.#transport.close();
    for (const s of this.#streams) s.close();
    for (const t of this.#retiring) t.close();
  }
}

/** How long a connection replaced by switchCredentials lives on for what was in flight on it. */
export const RETIRE_AFTER_MS = 5000;

/**
 * uid and resourceVersion of an object whose body was too big to keep whole. The API server writes
 * metadata first and uid early in it, so the kept prefix holds them even when managedFields make the
 * object many kilobytes long.
 */
export function metadataFromPrefix(result: ApiResult, decode: (b: Uint8Array) => string): { uid?: string; resourceVersion?: string } {
  if (result.json) return { uid: result.json.metadata?.uid, resourceVersion: result.json.metadata?.resourceVersion };
  const text = decode(result.response.body);
  return {
    uid: /"uid":"([0-9a-zA-Z-]+)"/.exec(text)?.[1],
    resourceVersion: /"resourceVersion":"(\d+)"/.exec(text)?.[1],
  };
}

/**
 * A 2xx in a Content-Type kube-apiserver never answers with (it sends JSON, or protobuf when asked):
 * the media type, or "none"; undefined for the API server's own. A captive portal's login page or a
 * proxy's answers text/html, and the agent must not take it for the API server's word.
 */
export function foreignAnswer(result: ApiResult): string | undefined {
  if (result.status < 200 || result.status > 299) return undefined;
  const type = (result.response.headers.get("content-type") ?? "").split(";")[0].trim().toLowerCase();
  return type === "application/json" || type === PROTOBUF ? undefined : type || "none";
}

/** The error for a foreignAnswer: one line naming the request, the status and the Content-Type. */
export function notTheApiServer(method: string, path: string, result: ApiResult): ApiError {
  return new ApiError(method, path, result.status, "", foreignMessage(foreignAnswer(result)));
}

function foreignMessage(type: string | undefined): string {
  return `${type === undefined || type === "none" ? "an answer without a Content-Type" : `a ${type} answer`}, not the API server's JSON (a captive portal or a proxy in the way?)`;
}

export function toApiError(method: string, path: string, result: ApiResult): ApiError {
  const status = result.json && result.json.kind === "Status" ? result.json : undefined;
  const reason = status?.reason ?? STATUS_TEXT[result.status] ?? "";
  // A 2xx the caller cannot use: say why, not just "200".
  const message = status?.message ?? (result.status >= 200 && result.status < 300 && result.response ? unusable(result) : "");
  const headers = result.response?.headers;
  return new ApiError(method, path, result.status, reason, message, headers ? retryAfterMs(headers.get("retry-after"), headers.get("date")) : undefined);
}

/** Why a 2xx answer's body could not be used (the caller needed something from it). */
function unusable(result: ApiResult): string {
  const foreign = foreignAnswer(result);
  if (foreign) return foreignMessage(foreign);
  const r = result.response;
  if (r.truncated) return `the answer's ${r.bodyLength} bytes are more than the ${r.body.length} kept`;
  if (result.json === undefined) return r.bodyLength ? `the answer (${r.bodyLength} bytes) is not valid JSON` : "the answer is empty";
  return "the answer lacks what the agent needs from it";
}

const STATUS_TEXT: Readonly<Record<number, string>> = Object.freeze({
  400: "BadRequest",
  401: "Unauthorized",
  403: "Forbidden",
  404: "NotFound",
  409: "Conflict",
  422: "Invalid",
  429: "TooManyRequests",
  500: "InternalError",
  503: "ServiceUnavailable",
});

/** Which retry policy a failure calls for. */
export function failureKind(err: unknown): FailureKind {
  if (err instanceof ApiError && (err.status === 401 || err.status === 403)) return "auth";
  if (err instanceof HttpError && err.kind === "certificate") return "certificate";
  if (err instanceof HttpError && err.kind !== "protocol") return "network";
  return "api";
}

/** One line for a log: what failed and why, never a token. */
export function describeError(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
