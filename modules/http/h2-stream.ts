// One HTTP/2 stream seen from the client: the response's headers and body, and the receive side of
// flow control. The body is kept up to keepBody (the rest drained), or handed to the request's
// onData as it arrives; a paused consumer's DATA is held — at most its window, 16 KiB — and its
// window stays shut until it resumes, while the connection's keeps moving.
import { H2_LIMITS, type Exchange } from "./h2-parts";
import { Bytes } from "./parser";
import type { HttpResponse } from "./types";

export interface StreamHooks {
  /** The stream's window may open by this much (a WINDOW_UPDATE). */
  update(stream: H2Stream, increment: number): void;
  /** The response is complete. */
  complete(stream: H2Stream): void;
}

/** The response headers a streaming request keeps (what ApiClient and the watch read). */
const STREAM_HEADERS: readonly string[] = Object.freeze(["content-type", "date", "retry-after"]);

export class H2Stream {
  readonly id: number;
  readonly exchange: Exchange;
  readonly sentAt: number;
  /** Still in the session's table. */
  open = true;
  sendWindow: number;
  pendingBody: Uint8Array | undefined;
  recvWindow: number = H2_LIMITS.initialWindowSize;
  status = 0;
  headers = new Map<string, string>();
  #hooks: StreamHooks;
  #unacked = 0; // consumed since the last WINDOW_UPDATE
  #held: Uint8Array[] = [];
  #heldEnd = false;
  #body: Bytes;
  #bodyLength = 0;
  #keep: number;

  constructor(id: number, exchange: Exchange, sendWindow: number, maxBody: number, now: number, hooks: StreamHooks) {
    this.id = id;
    this.exchange = exchange;
    this.sendWindow = sendWindow;
    this.sentAt = now;
    this.#hooks = hooks;
    const request = exchange.request;
    this.pendingBody = request.body?.length ? request.body : undefined;
    this.#keep = request.onData ? 0 : request.keepBody ?? maxBody;
    this.#body = new Bytes(request.onData ? 0 : 256);
  }

  /** A streaming request (a watch): it waits for the peer by design, so no liveness PING for it. */
  get streaming(): boolean {
    return !!this.exchange.request.onData;
  }

  /**
   * A header block arrived. Returns false when it has no valid :status. Interim (1xx) responses are
   * skipped; trailers after the final headers add nothing.
   */
  headersArrived(fields: [string, string][]): boolean {
    if (this.status >= 200) return true;
    const status = Number(fields.find(([n]) => n === ":status")?.[1]);
    if (!(status >= 100 && status < 600)) return false;
    this.status = status;
    if (status < 200) return true;
    this.exchange.request.onHead?.(status);
    // A watch holds its response for minutes: of its headers only what the agent reads stays
    // (audit-id and API Priority and Fairness's UIDs are 36 characters each, and never read).
    const streaming = this.streaming;
    for (const [name, value] of fields) {
      if (name[0] === ":" || (streaming && STREAM_HEADERS.indexOf(name) < 0)) continue;
      const had = this.headers.get(name);
      this.headers.set(name, had === undefined ? value : `${had}, ${value}`);
    }
    return true;
  }

  /** DATA arrived: length counts padding (flow control), data is what it carries. */
  dataArrived(length: number, data: Uint8Array, end: boolean): void {
    this.recvWindow -= length;
    this.#unacked += length - data.length;
    if (this.exchange.request.flow?.paused || this.#held.length) {
      this.#held.push(data);
      this.#heldEnd = end;
      return;
    }
    this.#deliver(data, end);
  }

  /** A paused consumer resumed: hand over what was held, then open its window again. */
  release(): void {
    const flow = this.exchange.request.flow;
    while (this.#held.length && !flow?.paused && this.open) {
      const data = this.#held.shift()!;
      this.#deliver(data, this.#held.length === 0 && this.#heldEnd);
    }
  }

  #deliver(data: Uint8Array, end: boolean): void {
    this.#bodyLength += data.length;
    const sink = this.exchange.request.onData;
    if (sink) {
      if (data.length) sink(data);
    } else this.#body.append(data, 0, data.length, this.#keep);
    this.#unacked += data.length;
    if (end) return this.#hooks.complete(this);
    if (this.open && this.#unacked >= H2_LIMITS.initialWindowSize / 2) {
      this.#hooks.update(this, this.#unacked);
      this.recvWindow += this.#unacked;
      this.#unacked = 0;
    }
  }

  response(now: number): HttpResponse {
    const body = this.#body.take();
    return {
      status: this.status,
      headers: this.headers,
      body,
      bodyLength: this.#bodyLength,
      truncated: this.#bodyLength > body.length,
      elapsedMs: now - this.sentAt,
    };
  }
}
