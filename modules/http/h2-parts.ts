// The pieces of an HTTP/2 session that stand on their own: what we advertise, the errors, a
// stream's flow control seen from its consumer, the frame writer and the liveness check.
import type { Host, HostSocket, SocketEvents } from "../host";
import { ErrorCode, FrameError, pingFrame } from "./frames";
import { DEFAULT_UNINDEXED } from "./hpack";
import { HttpError } from "./parser";
import type { HttpRequest, HttpResponse, HttpStats } from "./types";

/** What we advertise and hold to, and why. */
export const H2_LIMITS = Object.freeze({
  /** SETTINGS_HEADER_TABLE_SIZE: the API server's response headers repeat; 4 KiB indexes them all. */
  headerTableSize: 4096,
  /** SETTINGS_INITIAL_WINDOW_SIZE: per stream, the most a paused watch can make us hold. */
  initialWindowSize: 16384,
  /** SETTINGS_MAX_FRAME_SIZE: the protocol minimum, so the reader buffers at most 16 KiB. */
  maxFrameSize: 16384,
  /** SETTINGS_MAX_HEADER_LIST_SIZE: as HTTP/1.1's header limit. */
  maxHeaderListSize: 8192,
  /** Streams we open at once: a handful of requests plus the watches. */
  maxConcurrentStreams: 8,
  /** Replenish the connection window once this much was consumed (half the default window). */
  connectionUpdateAt: 32768,
  /**
   * A PING when a request has heard nothing for this long … The API server answers a renewal in
   * milliseconds; a connection left silently dead under it (a path gone, a TLS record whose length
   * a flipped bit made long) should cost the Lease seconds, not ten. 46 bytes each way, TLS included.
   */
  pingAfterMs: 1000,
  /** … or when the connection has been silent this long; */
  idlePingMs: 30_000,
  /**
   * … and nothing at all heard for this long after it: the connection is dead. Anything counts, not
   * only the answer (frames queued ahead of it at a busy server), so only true silence drops one.
   */
  pingTimeoutMs: 2000,
  /**
   * A check whose timer fired this much late found the host busy (a fleet's event loop, a board
   * busy in a handshake): bytes may be waiting unread behind it (timers run before socket
   * callbacks), so before "dead" it looks once more after the host's pending I/O has run.
   */
  lateCheckMs: 250,
});

/** The peer does not speak HTTP/2: safe to send the same requests over HTTP/1.1. */
export class Http2Unsupported extends HttpError {
  /** When the server chose http/1.1 by ALPN, the TLS connection itself can carry HTTP/1.1. */
  handover?: { socket: HostSocket; rebind(events: SocketEvents): void };
  constructor(message: string) {
    super("protocol", message);
  }
}

/** Pause and resume a long-lived response: a paused stream's window closes, not the connection's. */
export class StreamFlow {
  paused = false;
  #resume: (() => void) | undefined;
  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
    this.#resume?.();
  }
  /** The session registers what resuming means (deliver what was held, open the window). */
  onResume(run: (() => void) | undefined): void {
    this.#resume = run;
  }
}

/** A request and what to do with its outcome, as the transport hands it to a session. */
export interface Exchange {
  request: HttpRequest;
  resolve(response: HttpResponse): void;
  reject(error: Error): void;
  /** Set when the request may go out again as it is (refused, or above a GOAWAY's last stream). */
  retry?: boolean;
}

/** Frames written in one turn leave together: one socket write, usually one TLS record. */
export class FrameWriter {
  #out: Uint8Array[] = [];
  #bytes = 0;
  #queued = false;
  #socket: () => HostSocket | undefined;
  #stats: HttpStats;
  #broken: (message: string) => void;

  constructor(socket: () => HostSocket | undefined, stats: HttpStats, broken: (message: string) => void) {
    this.#socket = socket;
    this.#stats = stats;
    this.#broken = broken;
  }

  queue(bytes: Uint8Array): void {
    this.#out.push(bytes);
    this.#bytes += bytes.length;
    if (this.#queued) return;
    this.#queued = true;
    Promise.resolve().then(() => this.flush());
  }

  flush(): void {
    this.#queued = false;
    const socket = this.#socket();
    if (!this.#out.length || !socket) return;
    let bytes = this.#out[0];
    if (this.#out.length > 1) {
      bytes = new Uint8Array(this.#bytes);
      let at = 0;
      for (const part of this.#out) {
        bytes.set(part, at);
        at += part.length;
      }
    }
    this.#out = [];
    this.#bytes = 0;
    this.#stats.bytesSent += bytes.length;
    try {
      socket.write(bytes);
    } catch (err) {
      this.#broken((err as Error).message);
    }
  }
}

/**
 * Is the peer still there? A PING goes out when a request has heard nothing for pingAfterMs, or
 * the connection has been silent for idlePingMs; nothing heard for pingTimeoutMs after it means
 * dead. So a dead peer is noticed within 3 s of a request waiting on it, and within 32 s when idle.
 * One timer, re-armed lazily: frames arriving cost no timer work.
 */
export class Liveness {
  #host: Host;
  #send: (frame: Uint8Array) => void;
  #dead: (message: string) => void;
  #waiting: () => boolean;
  #lastHeard = 0;
  #pingSentAt = -1;
  #timer: unknown;
  #dueAt = 0;
  #seq = 0;
  #stopped = false;
  #rechecked = false;

  constructor(host: Host, send: (frame: Uint8Array) => void, waiting: () => boolean, dead: (message: string) => void) {
    this.#host = host;
    this.#send = send;
    this.#waiting = waiting;
    this.#dead = dead;
  }

  /** A frame arrived. */
  heard(): void {
    this.#lastHeard = this.#host.monotonic();
  }

  /** The PING was answered. */
  answered(): void {
    this.#pingSentAt = -1;
  }

  /** Something now waits for the peer: check again within ms (sooner than planned, if need be). */
  arm(ms: number): void {
    if (this.#stopped) return;
    const due = this.#host.monotonic() + ms;
    if (this.#timer !== undefined) {
      if (this.#dueAt <= due) return;
      this.#host.clearTimer(this.#timer);
    }
    this.#dueAt = due;
    this.#timer = this.#host.setTimer(() => {
      this.#timer = undefined;
      this.#check();
    }, ms);
  }

  /** Ask now (a request timed out), unless a PING is already out. */
  probe(): void {
    if (this.#pingSentAt < 0) this.#ping();
  }

  stop(): void {
    this.#stopped = true;
    this.#host.clearTimer(this.#timer);
    this.#timer = undefined;
  }

  #check(): void {
    const now = this.#host.monotonic();
    const late = now - this.#dueAt >= H2_LIMITS.lateCheckMs;
    if (this.#pingSentAt >= 0) {
      const quiet = now - Math.max(this.#pingSentAt, this.#lastHeard);
      if (quiet >= H2_LIMITS.pingTimeoutMs && late && !this.#rechecked) {
        // A zero-delay timer runs after the I/O the host has pending: what arrived meanwhile is heard first.
        this.#rechecked = true;
        this.#dueAt = now;
        this.#timer = this.#host.setTimer(() => {
          this.#timer = undefined;
          this.#check();
        }, 0);
        return;
      }
      this.#rechecked = false;
      if (quiet >= H2_LIMITS.pingTimeoutMs) return this.#dead(`no answer to a PING, nor anything else, within ${H2_LIMITS.pingTimeoutMs / 1000} s: the connection is dead`);
      return this.arm(H2_LIMITS.pingTimeoutMs - quiet);
    }
    const threshold = this.#waiting() ? H2_LIMITS.pingAfterMs : H2_LIMITS.idlePingMs;
    const silent = now - this.#lastHeard;
    if (silent >= threshold) this.#ping();
    else this.arm(threshold - silent);
  }

  #ping(): void {
    this.#pingSentAt = this.#host.monotonic();
    const data = new Uint8Array(8);
    data[7] = ++this.#seq & 0xff;
    this.#send(pingFrame(data));
    this.#host.clearTimer(this.#timer);
    this.#timer = undefined;
    this.arm(H2_LIMITS.pingTimeoutMs);
  }
}

/** A header block split over HEADERS and CONTINUATION frames, joined; at most `limit` octets. */
export class HeaderBlock {
  readonly id: number;
  readonly end: boolean;
  #parts: Uint8Array[] = [];
  #length = 0;
  #limit: number;

  constructor(id: number, end: boolean, first: Uint8Array, limit: number) {
    this.id = id;
    this.end = end;
    this.#limit = limit;
    this.add(first);
  }

  add(part: Uint8Array): void {
    this.#parts.push(part);
    this.#length += part.length;
    if (this.#length > this.#limit) throw new FrameError(ErrorCode.ENHANCE_YOUR_CALM, `a header block of over ${this.#limit} octets`);
  }

  join(): Uint8Array {
    const block = new Uint8Array(this.#length);
    let at = 0;
    for (const p of this.#parts) {
      block.set(p, at);
      at += p.length;
    }
    return block;
  }
}

/** Request header fields that mean nothing in HTTP/2 (RFC 9113 §8.2.2). */
const CONNECTION_FIELDS: readonly string[] = Object.freeze(["host", "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"]);

/** A request's header list: the pseudo-headers first, names lower-cased, connection fields dropped. */
export function requestFields(request: HttpRequest, scheme: string, authority: string, bodyLength: number | undefined): [string, string][] {
  const fields: [string, string][] = [[":method", request.method], [":scheme", scheme], [":authority", authority], [":path", request.path]];
  for (const [name, value] of request.headers ?? []) {
    const lower = name.toLowerCase();
    if (!CONNECTION_FIELDS.includes(lower)) fields.push([lower, value]);
  }
  if (bodyLength !== undefined) fields.push(["content-length", String(bodyLength)]);
  return fields;
}

/**
 * What the agent's encoder indexes: every field but those whose values never repeat — the usual
 * ones, and a watch's :path, new each time (its resourceVersion and timeoutSeconds). Indexed, each
 * would sit in both ends' tables (ours in the agent's heap) and evict what does repeat, such as the
 * Lease's path.
 */
export function shouldIndex(name: string, value: string): boolean {
  if (name === ":path") return value.indexOf("watch=1") < 0;
  return DEFAULT_UNINDEXED.indexOf(name) < 0;
}
