// An incremental HTTP/1.x message parser: fed bytes in whatever pieces the socket delivers, it reads
// a status line (responses) or a request line (requests), the headers, and a body framed by
// Content-Length, chunked encoding or (responses only) the end of the connection. Pure: no I/O, no
// timers, so the client connection and the kubelet API server share it. Memory per message is
// bounded by maxHeaderBytes + keepBody whatever the peer sends; body bytes beyond keepBody are
// counted and dropped (drained), never buffered.

import { certificateRejection } from "../host";

/**
 * network: no answer or the connection broke; certificate: the host's TLS refused the server's
 * certificate (CERTIFICATE_REJECTED); timeout; protocol: the peer broke HTTP; cancelled: by the caller.
 */
export type HttpErrorKind = "network" | "certificate" | "timeout" | "protocol" | "cancelled";

export class HttpError extends Error {
  kind: HttpErrorKind;
  /** The peer reset this request's HTTP/2 stream (not REFUSED_STREAM, which is retried): the connection itself lives on. */
  streamReset?: true;
  constructor(kind: HttpErrorKind, message: string, streamReset = false) {
    super(message);
    this.kind = kind;
    if (streamReset) this.streamReset = true;
  }
}

/** What a client socket's onClose(error) means for the requests on it, naming `where` it went. */
export function socketClosedError(where: string, wasOpen: boolean, error?: string): HttpError {
  const reason = certificateRejection(error);
  if (reason !== undefined) return new HttpError("certificate", `the API server's certificate (${where}) was rejected: ${reason}`);
  return new HttpError("network", `${wasOpen ? `connection to ${where} lost` : `cannot connect to ${where}`}${error ? `: ${error}` : ""}`);
}

export type MessageKind = "response" | "request";

export interface ParserLimits {
  /** Start line and headers together. Default 8 KiB. */
  maxHeaderBytes?: number;
}

const CR = 13;
const LF = 10;
/** A chunk-size or trailer line longer than this is malformed. */
const MAX_LINE = 256;

// Parser phases (plain numbers: no TypeScript-only runtime constructs in the core).
const Phase = Object.freeze({
  Head: 0,
  Body: 1, // Content-Length or until close
  ChunkSize: 2,
  ChunkData: 3,
  ChunkDataEnd: 4,
  Trailers: 5,
  Done: 6,
});

/** Growable byte buffer with a hard cap, reused across messages. */
/** The buffer of every Bytes made with no room: append replaces it before writing, so it is never written. */
const NO_BYTES = new Uint8Array(0);

export class Bytes {
  buf: Uint8Array;
  length = 0;
  constructor(initial: number) {
    this.buf = initial > 0 ? new Uint8Array(initial) : NO_BYTES;
  }
  /** Appends up to cap total bytes; returns how many were taken. */
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

export function latin1(buf: Uint8Array, start: number, end: number): string {
  let s = "";
  for (let k = start; k < end; k++) s += String.fromCharCode(buf[k]);
  return s;
}

export class HttpParser {
  readonly kind: MessageKind;
  #maxHeader: number;
  #phase: number = Phase.Done;
  #head = new Bytes(512);
  #body = new Bytes(256);
  #line = new Bytes(64); // chunk-size and trailer lines
  #remaining = 0; // bytes left in a Content-Length body or the current chunk
  #keep = 0;
  #noBody = false;
  #sink: ((bytes: Uint8Array) => void) | undefined;
  /** Responses: the status code. */
  status = 0;
  /** Requests: method and target. */
  method = "";
  target = "";
  /** Lower-case names. */
  headers = new Map<string, string>();
  /** Total body bytes the peer sent (after de-chunking). */
  bodyLength = 0;
  /** The body runs until the connection ends (a response without framing). */
  untilClose = false;
  /** The peer asked to close the connection after this message (or spoke HTTP/1.0). */
  closeAfter = false;
  /** Any byte of this message arrived. */
  started = false;

  constructor(kind: MessageKind, limits: ParserLimits = {}) {
    this.kind = kind;
    this.#maxHeader = limits.maxHeaderBytes ?? 8192;
  }

  /**
   * Starts a new message. keepBody: body bytes to keep (the rest is drained). noBody: the message
   * has no body whatever its headers say (the response to a HEAD request). sink: body bytes go to
   * it as they arrive instead of being kept (a watch).
   */
  begin(keepBody: number, noBody = false, sink?: (bytes: Uint8Array) => void): void {
    this.#sink = sink;
    this.#phase = Phase.Head;
    this.#head.length = 0;
    this.#body.length = 0;
    this.#line.length = 0;
    this.#remaining = 0;
    this.#keep = keepBody;
    this.#noBody = noBody;
    this.status = 0;
    this.method = "";
    this.target = "";
    this.headers = new Map();
    this.bodyLength = 0;
    this.untilClose = false;
    this.closeAfter = false;
    this.started = false;
  }

  /** The message is complete (and takeBody() may be called). */
  get done(): boolean {
    return this.#phase === Phase.Done;
  }

  /** The head has been read (status or request line and headers). */
  get headDone(): boolean {
    return this.#phase !== Phase.Head;
  }

  /** Is the parser in the middle of a body that ends with the connection? */
  get awaitingClose(): boolean {
    return this.#phase === Phase.Body && this.untilClose;
  }

  /** The connection ended: true when that completed an until-close body. */
  end(): boolean {
    if (!this.awaitingClose) return false;
    this.#phase = Phase.Done;
    return true;
  }

  /** The kept body bytes (up to keepBody); empties the buffer. */
  takeBody(): Uint8Array {
    return this.#body.take();
  }

  /**
   * Consumes bytes[start, end) until the message is complete; returns the index of the first byte
   * not consumed (end, unless the message completed earlier). Throws HttpError("protocol") on a
   * malformed or oversized message.
   */
  push(bytes: Uint8Array, start: number, end: number): number {
    let i = start;
    if (i < end) this.started = true;
    while (i < end && this.#phase !== Phase.Done) {
      switch (this.#phase) {
        case Phase.Head: {
          const from = i;
          let stop = -1;
          for (; i < end; i++) {
            if (bytes[i] === LF && this.#endsHead(bytes, from, i)) {
              stop = ++i;
              break;
            }
          }
          const last = stop < 0 ? end : stop;
          if (this.#head.append(bytes, from, last, this.#maxHeader) < last - from) {
            throw new HttpError("protocol", `${this.kind} headers exceed ${this.#maxHeader} bytes`);
          }
          if (stop >= 0) this.#parseHead();
          break;
        }
        case Phase.Body: {
          const take = this.untilClose ? end - i : Math.min(this.#remaining, end - i);
          this.#bodyBytes(bytes, i, i + take);
          i += take;
          if (!this.untilClose) {
            this.#remaining -= take;
            if (this.#remaining === 0) this.#phase = Phase.Done;
          }
          break;
        }
        case Phase.ChunkSize:
        case Phase.Trailers: {
          const from = i;
          while (i < end && bytes[i] !== LF) i++;
          if (this.#line.append(bytes, from, i, MAX_LINE) < i - from) {
            throw new HttpError("protocol", "malformed chunked encoding (line too long)");
          }
          if (i < end) {
            i++; // LF
            const line = latin1(this.#line.buf, 0, this.#line.length).replace(/\r$/, "");
            this.#line.length = 0;
            if (this.#phase === Phase.Trailers) {
              if (line === "") this.#phase = Phase.Done;
            } else {
              const size = parseInt(line.split(";")[0].trim(), 16);
              if (!Number.isFinite(size) || size < 0 || !/^[0-9a-fA-F]+/.test(line.trim())) {
                throw new HttpError("protocol", `malformed chunk size "${line.slice(0, 20)}"`);
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
          const take = Math.min(this.#remaining, end - i);
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
          while (i < end && this.#remaining > 0) {
            i++;
            this.#remaining--;
          }
          if (this.#remaining === 0) this.#phase = Phase.ChunkSize;
          break;
        }
      }
    }
    return i;
  }

  #endsHead(bytes: Uint8Array, start: number, i: number): boolean {
    // LF at i ends the head when preceded by CRLF (or LF): look back across the piece boundary too.
    const at = (k: number): number => {
      if (k >= start) return bytes[k];
      const h = this.#head.length + (k - start);
      return h >= 0 ? this.#head.buf[h] : -1;
    };
    return (at(i - 1) === CR && at(i - 2) === LF) || at(i - 1) === LF;
  }

  #parseHead(): void {
    const text = latin1(this.#head.buf, 0, this.#head.length);
    const lines = text.split(/\r?\n/);
    let minor: string;
    if (this.kind === "response") {
      const m = /^HTTP\/1\.([01]) (\d{3})/.exec(lines[0]);
      if (!m) throw new HttpError("protocol", `not an HTTP/1.x response: "${lines[0].slice(0, 40)}"`);
      minor = m[1];
      this.status = Number(m[2]);
    } else {
      const m = /^([A-Z]+) (\S+) HTTP\/1\.([01])$/.exec(lines[0]);
      if (!m) throw new HttpError("protocol", `not an HTTP/1.x request line: "${lines[0].slice(0, 40)}"`);
      this.method = m[1];
      this.target = m[2];
      minor = m[3];
    }
    for (let k = 1; k < lines.length; k++) {
      const colon = lines[k].indexOf(":");
      if (colon > 0) this.headers.set(lines[k].slice(0, colon).trim().toLowerCase(), lines[k].slice(colon + 1).trim());
    }
    const connection = (this.headers.get("connection") ?? "").toLowerCase();
    this.closeAfter = connection.includes("close") || (minor === "0" && !connection.includes("keep-alive"));
    if (this.kind === "response" && this.status >= 100 && this.status < 200) {
      // Interim response (100 Continue): the real one follows.
      this.#head.length = 0;
      this.headers = new Map();
      return;
    }
    const te = (this.headers.get("transfer-encoding") ?? "").toLowerCase();
    const cl = this.headers.get("content-length");
    if (this.#noBody || this.status === 204 || this.status === 304) {
      this.#phase = Phase.Done;
    } else if (te.includes("chunked")) {
      this.#phase = Phase.ChunkSize;
    } else if (cl !== undefined) {
      const length = Number(cl);
      if (!Number.isInteger(length) || length < 0) throw new HttpError("protocol", `bad Content-Length "${cl}"`);
      this.#remaining = length;
      this.#phase = length === 0 ? Phase.Done : Phase.Body;
    } else if (this.kind === "response") {
      this.untilClose = true;
      this.closeAfter = true;
      this.#phase = Phase.Body;
    } else {
      this.#phase = Phase.Done; // a request without framing has no body (RFC 9112 §6.3)
    }
  }

  #bodyBytes(bytes: Uint8Array, start: number, end: number): void {
    this.bodyLength += end - start;
    if (this.#sink) {
      if (end > start) this.#sink(bytes.subarray(start, end));
    } else this.#body.append(bytes, start, end, this.#keep);
  }
}

/** Splits and checks a request-target: the decoded path and the raw query, or a reason it is refused. */
export function parseTarget(target: string): { path: string; query: string } | string {
  let t = target;
  if (!t.startsWith("/")) {
    // absolute-form (RFC 9112 §3.2.2): what follows the authority
    const m = /^https?:\/\/[^/?#]*(.*)$/i.exec(t);
    if (!m) return "request target is not a path";
    t = m[1] || "/";
    if (!t.startsWith("/")) t = `/${t}`;
  }
  const hash = t.indexOf("#");
  if (hash >= 0) t = t.slice(0, hash);
  const q = t.indexOf("?");
  const rawPath = q >= 0 ? t.slice(0, q) : t;
  const query = q >= 0 ? t.slice(q + 1) : "";
  let path: string;
  try {
    path = rawPath.includes("%") ? decodeURIComponent(rawPath) : rawPath;
  } catch {
    return "malformed percent-encoding in the path";
  }
  // Routing and authorization look at the same string: no segment may step elsewhere.
  if (/(^|\/)\.\.?(\/|$)/.test(path)) return "path has . or .. segments";
  if (path.indexOf("\u0000") >= 0) return "path holds a NUL";
  return { path, query };
}
