// The Kubernetes API client: JSON over the one keep-alive connection, bearer-token auth, the wall
// clock fed from every response's Date header, and errors that name the request, the status and the
// API's own Status.message in one line.
import type { Host, TlsOptions } from "../host";
import { HttpConnection, HttpError, type HttpResponse } from "../http/connection";
import type { WallClock } from "../time/clock";
import type { FailureKind } from "../util/retry";

export class ApiError extends Error {
  method: string;
  path: string;
  status: number;
  /** Status.reason from the API server (Forbidden, NotFound, AlreadyExists, Conflict, …). */
  reason: string;
  constructor(method: string, path: string, status: number, reason: string, apiMessage: string) {
    super(`${method} ${path}: ${status}${reason ? ` ${reason}` : ""}${apiMessage ? `: ${apiMessage}` : ""}`);
    this.method = method;
    this.path = path;
    this.status = status;
    this.reason = reason;
  }
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
}

export class ApiClient {
  #options: ApiClientOptions;
  readonly connection: HttpConnection;
  #baseHeaders: [string, string][];

  constructor(options: ApiClientOptions) {
    this.#options = options;
    this.connection = new HttpConnection(
      options.host,
      { host: options.server.host, port: options.server.port, tls: options.tls },
      { timeoutMs: options.timeoutMs, maxBody: options.maxBody },
    );
    this.#baseHeaders = [
      ["User-Agent", options.userAgent],
      ["Accept", "application/json"],
    ];
    if (options.token) this.#baseHeaders.push(["Authorization", `Bearer ${options.token}`]);
  }

  /** Sends one request; resolves with any HTTP status, rejects only when no response arrived. */
  async call<T = any>(method: string, path: string, options: CallOptions = {}): Promise<ApiResult<T>> {
    const headers = this.#baseHeaders.slice();
    let body: Uint8Array | undefined;
    if (options.body !== undefined) {
      headers.push(["Content-Type", options.contentType ?? "application/json"]);
      body = this.#options.host.utf8Encode(typeof options.body === "string" ? options.body : JSON.stringify(options.body));
    }
    const response = await this.connection.request({ method, path, headers, body, keepBody: options.keepBody });
    this.#options.clock.observeDate(response.headers.get("date"), response.elapsedMs);
    const result: ApiResult<T> = { status: response.status, response };
    const type = response.headers.get("content-type") ?? "";
    if (!response.truncated && response.body.length > 0 && type.startsWith("application/json")) {
      try {
        result.json = JSON.parse(this.#options.host.utf8Decode(response.body));
      } catch {
        // leave json undefined: callers that need it treat it as missing
      }
    }
    return result;
  }

  close(): void {
    this.connection.close();
  }
}

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

export function toApiError(method: string, path: string, result: ApiResult): ApiError {
  const status = result.json && result.json.kind === "Status" ? result.json : undefined;
  const reason = status?.reason ?? STATUS_TEXT[result.status] ?? "";
  const message = status?.message ?? "";
  return new ApiError(method, path, result.status, reason, message);
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
  if (err instanceof HttpError && err.kind !== "protocol") return "network";
  return "api";
}

/** One line for a log: what failed and why, never a token. */
export function describeError(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
