// What both HTTP versions offer the API client: one request at a time from the caller's view, any
// number in flight underneath (HTTP/2 multiplexes them on one connection; HTTP/1.1 queues them).

export interface HttpRequest {
  method: string;
  path: string;
  /** Extra header fields; Host / :authority and Content-Length are added by the connection. */
  headers?: [string, string][];
  body?: Uint8Array;
  /** Bytes of the response body to keep (default: the connection's maxBody); the rest is drained. */
  keepBody?: number;
  /**
   * A long-lived response (a watch): body bytes are handed over as they arrive, nothing is kept.
   * The bytes are only valid during the call.
   */
  onData?: (bytes: Uint8Array) => void;
  /** The final status arrived (before the body): a watch learns early that its stream is open. */
  onHead?: (status: number) => void;
  /** Per-request timeout in ms (default: the connection's); a watch sets its own, longer one. */
  timeoutMs?: number;
  /** Lets the caller end the request early (a watch that is no longer wanted). */
  cancel?: CancelToken;
  /** Pause and resume delivery of a long-lived response (HTTP/2: its stream's window shuts). */
  flow?: { readonly paused: boolean; onResume(run: (() => void) | undefined): void };
}

export interface HttpResponse {
  status: number;
  /** Lower-case names; no HTTP/2 pseudo-headers. */
  headers: Map<string, string>;
  /** Up to keepBody bytes of the body (empty for a streaming request). */
  body: Uint8Array;
  /** Total body bytes the server sent (after de-chunking). */
  bodyLength: number;
  truncated: boolean;
  /** Milliseconds from sending the request to the end of the response. */
  elapsedMs: number;
}

export interface HttpStats {
  /** Connections opened (TLS handshakes, where TLS is on). */
  connects: number;
  requests: number;
  bytesSent: number;
  bytesReceived: number;
}

export interface HttpConnectionOptions {
  /** Per request, from dequeue (connect included) to the end of the response. Default 15 s. */
  timeoutMs?: number;
  /** Default 8 KiB: status line (or :status) and headers together. */
  maxHeaderBytes?: number;
  /** Default body bytes kept per response: 64 KiB. */
  maxBody?: number;
  /** The Host header (:authority) value; defaults to host[:port]. */
  hostHeader?: string;
}

/** One HTTP version's client over the host's sockets. */
export interface HttpTransport {
  /** "http/1.1" or "h2". */
  readonly protocol: string;
  request(request: HttpRequest): Promise<HttpResponse>;
  /** Closes the connection; requests in flight fail. */
  close(): void;
  readonly connected: boolean;
  readonly stats: HttpStats;
}

/** Cancels a request: the connection fails it with HttpError("cancelled") and frees its stream. */
export class CancelToken {
  cancelled = false;
  #onCancel: (() => void) | undefined;

  cancel(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    const run = this.#onCancel;
    this.#onCancel = undefined;
    run?.();
  }

  /** The connection registers what cancelling means (RST_STREAM, or closing an HTTP/1.1 socket). */
  onCancel(run: (() => void) | undefined): void {
    this.#onCancel = run;
  }
}

/** The default Host header / :authority for a target. */
export function authority(host: string, port: number, tls: boolean): string {
  const name = host.includes(":") ? `[${host}]` : host;
  return port === (tls ? 443 : 80) ? name : `${name}:${port}`;
}
