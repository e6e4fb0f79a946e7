// A host with virtual time and a scripted API server behind its sockets: for fast unit tests, the
// XS-vs-Node comparison, the bench and a virtual fleet. Pure JavaScript (no Node built-ins): the same
// file runs inside the XS engine.
import type { GpioPort, BoardFacts, ConnectTarget, HeapFigures, Host, HostSocket, Listener, ListenOptions, LogLevel, NetworkFacts, PeerInfo, ServerEvents, ServerSocket, SocketEvents, TlsOptions, XsHeapSample } from "../../modules/host";
import { ESP32S3_BOARD, ESP32S3_GPIO } from "../esp32s3/board";
import { SimulatedGpio } from "./gpio";
import { tapped } from "../log-tap";
import { H2ServerConnection, type Http2PeerOptions } from "./h2-server";

export type { Http2PeerOptions } from "./h2-server";

interface VTimer {
  at: number;
  seq: number;
  cb: () => void;
  /** Fired or cleared: a cleared one is skipped when it reaches the top of the heap. */
  done?: boolean;
}

const before = (a: VTimer, b: VTimer) => a.at < b.at || (a.at === b.at && a.seq < b.seq);

/** Deterministic PRNG (mulberry32), so jitter is the same on every run and every engine. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Lets every pending promise reaction run (several rounds: chains of awaits take several). */
export async function flushMicrotasks(rounds = 50): Promise<void> {
  for (let i = 0; i < rounds; i++) await Promise.resolve();
}

export class VirtualTime {
  now = 0;
  // A binary min-heap on (at, seq): the same order a scan would find, at O(log n) a timer, so a
  // virtual fleet of thousands of agents on one clock stays linear. Cleared timers are marked done and
  // skipped when they reach the top.
  #heap: VTimer[] = [];
  #live = 0;
  #seq = 0;
  #meter: <T>(work: () => T) => T;

  /** meter: runs the clock's own bookkeeping, so inside XS it is kept out of the agent's compute meter (as the scripted server's is). */
  constructor(meter?: <T>(work: () => T) => T) {
    this.#meter = meter ?? ((work) => work());
  }

  setTimer(cb: () => void, ms: number): VTimer {
    return this.#meter(() => this.#push(cb, ms));
  }

  #push(cb: () => void, ms: number): VTimer {
    const t = { at: this.now + Math.max(0, ms), seq: this.#seq++, cb };
    const h = this.#heap;
    h.push(t);
    for (let i = h.length - 1; i > 0; ) {
      const parent = (i - 1) >> 1;
      if (!before(h[i], h[parent])) break;
      [h[i], h[parent]] = [h[parent], h[i]];
      i = parent;
    }
    this.#live++;
    return t;
  }

  clearTimer(t: unknown): void {
    const timer = t as VTimer;
    if (!timer || typeof timer !== "object" || timer.done) return;
    timer.done = true;
    this.#live--;
  }

  get pendingTimers(): number {
    return this.#live;
  }

  /** The earliest live timer, without taking it. */
  #peek(): VTimer | undefined {
    const h = this.#heap;
    while (h.length && h[0].done) this.#pop();
    return h[0];
  }

  #pop(): VTimer {
    const h = this.#heap;
    const top = h[0];
    const last = h.pop()!;
    if (h.length) {
      h[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && before(h[l], h[m])) m = l;
        if (r < h.length && before(h[r], h[m])) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m], h[i]];
        i = m;
      }
    }
    return top;
  }

  /** Runs every timer due within ms, in order, letting promises settle between them. */
  async advance(ms: number): Promise<void> {
    const target = this.now + ms;
    await flushMicrotasks();
    for (;;) {
      const next = this.#meter(() => {
        const top = this.#peek();
        if (!top || top.at > target) return undefined;
        this.#pop();
        this.#live--;
        return top;
      });
      if (!next) break;
      next.done = true;
      this.now = next.at;
      next.cb();
      await flushMicrotasks();
    }
    this.now = target;
    await flushMicrotasks();
  }

  /** Advances until cond() holds (checking after every timer), or fails after maxMs. */
  async until(cond: () => boolean, maxMs: number, what = "condition"): Promise<number> {
    const start = this.now;
    await flushMicrotasks();
    while (!cond()) {
      if (this.now - start >= maxMs) throw new Error(`virtual time: ${what} not reached within ${maxMs} ms`);
      const nextAt = this.#peek()?.at ?? Infinity;
      await this.advance(Math.max(1, Math.min(nextAt, start + maxMs) - this.now));
    }
    return this.now - start;
  }
}

/**
 * A long-lived answer (a watch). head: an HTTP/1.1 status line and headers, no body (a trailing
 * blank line is optional). The host sends it, then calls open(write, end) at once: each write(text)
 * goes out as one chunk (HTTP/1.1: chunked encoding, the host adds Transfer-Encoding: chunked when
 * the head lacks it; HTTP/2: DATA frames within the client's flow-control windows; empty text is
 * skipped), end() finishes the response (the 0-length chunk / END_STREAM). open returns a close
 * function the host calls, at most once and never after end(), when the client goes away (socket
 * closed, dropped, network down, RST_STREAM). write and end are no-ops once either side ended.
 */
export interface ScriptedStream {
  head: string;
  open(write: (text: string) => void, end: () => void): () => void;
}

/**
 * What a handler answers: an HTTP/1.1 response text; {drop} closes the socket with an error; {hang}
 * never answers; {reply, thenClose} answers then closes (HTTP/2: GOAWAY(NO_ERROR) first); {stream}
 * streams (see ScriptedStream). On HTTP/2 the same text is parsed and sent as HEADERS + DATA.
 */
export type ScriptedAnswer = string | { drop: true } | { hang: true } | { reply: string; thenClose: true } | { stream: ScriptedStream };

/** Server side of one scripted connection: gets whole requests, answers with raw bytes. */
export type ScriptedHandler = (request: ParsedRequest) => ScriptedAnswer;

export interface ParsedRequest {
  method: string;
  path: string;
  headers: Map<string, string>;
  body: string;
  raw: string;
  /** What the connection was made with (no TLS runs here: the client certificate the agent would have shown). */
  tls?: TlsOptions;
}

export interface VirtualHostOptions {
  /** Pins for the gpio workload (default: the board's, simulated). */
  gpio?: GpioPort;
  /** What survives a "reboot" (a Map shared between two hosts in a test); absent: nothing persists. */
  store?: Map<string, Uint8Array>;
  time: VirtualTime;
  handler: ScriptedHandler;
  seed?: number;
  heap?: () => HeapFigures | undefined;
  /** A live-XS-heap sample, as a Moddable debug build takes one; absent: the host has none. */
  xsHeap?: () => XsHeapSample | undefined;
  network?: () => Partial<NetworkFacts>;
  log?: (level: LogLevel, message: string) => void;
  /** Split each response into pieces of this many bytes (exercises the parser). */
  chunkBytes?: number;
  /** Refuse connections while this returns true (network down). */
  offline?: () => boolean;
  /** The board it pretends to be; default the Waveshare ESP32-S3-ETH. */
  board?: BoardFacts;
  /**
   * Speak HTTP/2 to clients that offer "h2" in ConnectTarget.alpn (onConnect("h2")); default false:
   * every connection is HTTP/1.1 as before (onConnect("http/1.1") when ALPN was offered, onConnect()
   * when not). true = default settings; an object sets them and the faults (it becomes host.http2,
   * read live). With http2 on and no ALPN offered, a client that starts with the HTTP/2 preface
   * ("PRI ") gets HTTP/2 too (prior knowledge).
   */
  http2?: boolean | Http2PeerOptions;
  /**
   * Runs the server's side of each client write (parsing, the scripted API, encoding the answer):
   * inside XS it keeps that work out of the agent's compute meter, so the bench can tell the two
   * apart. Default: runs it.
   */
  serverMeter?: <T>(work: () => T) => T;
  /** Keep requests and wire (default true); off where memory is measured. */
  record?: boolean;
  /**
   * Keep only the last this many log lines and LED frames (default: every one). A soak runs for
   * virtual weeks: a test double that kept all of them would grow for reasons not the agent's.
   */
  history?: number;
  /** Counts the bytes the client writes and is delivered on its API connections (the virtual fleet's wire figure). */
  count?: { written: number; read: number };
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const CRLF = Uint8Array.of(13, 10);

function parseRequest(raw: string): ParsedRequest | undefined {
  const end = raw.indexOf("\r\n\r\n");
  if (end < 0) return undefined;
  const lines = raw.slice(0, end).split("\r\n");
  const [method, path] = lines[0].split(" ");
  const headers = new Map<string, string>();
  for (const l of lines.slice(1)) {
    const i = l.indexOf(":");
    headers.set(l.slice(0, i).toLowerCase(), l.slice(i + 1).trim());
  }
  const length = Number(headers.get("content-length") ?? 0);
  const bodyBytes = encoder.encode(raw.slice(end + 4));
  if (bodyBytes.length < length) return undefined;
  return { method, path, headers, body: decoder.decode(bodyBytes.slice(0, length)), raw: raw.slice(0, end + 4) + decoder.decode(bodyBytes.slice(0, length)) };
}

export interface VirtualHost extends Host {
  /**
   * Every request as sent, in order. HTTP/1.1: byte for byte (as text). HTTP/2: "METHOD path
   * HTTP/2\r\n", "host: <:authority>\r\n", then one "name: value\r\n" per regular header field as
   * received (lower-case), "\r\n" and the body.
   */
  readonly requests: string[];
  /** Every chunk the client wrote on any socket (both HTTP versions), as lower-case hex, in order. */
  readonly wire: string[];
  readonly logs: string[];
  readonly led: [number, number, number][];
  connections: number;
  /** The live HTTP/2 options (undefined when HTTP/2 is off): flip the fault knobs here during a run. */
  readonly http2: Http2PeerOptions | undefined;
  listen(options: ListenOptions, accept: (socket: ServerSocket, peer: PeerInfo) => ServerEvents): Listener;
  /**
   * Connects to a port this host listens on, as a client of the kubelet API would (no TLS: peer says
   * who the client is, default { address: "192.0.2.100" }, no certificate). Bytes go both ways through
   * microtasks, as on the client sockets. Refused (closed at once) when nothing listens on the port
   * or the listener already has maxConnections open.
   */
  dial(port: number, peer?: PeerInfo): VirtualClient;
}

/** The client end of a dial(). */
export interface VirtualClient {
  write(data: string | Uint8Array): void;
  /** Everything the server wrote so far, as UTF-8 text. */
  received(): string;
  /**
   * What the server wrote since the last take() (or since the start), as UTF-8 text, and forgets it:
   * received() starts after it too. For a connection kept open for a long time (the soak).
   */
  take(): string;
  /** The client closes its end (the server's onClose follows). */
  close(): void;
  /** The connection is over (either side closed it, or it was refused). */
  readonly closed: boolean;
  /** Nothing listened, or the listener was full. */
  readonly refused: boolean;
}

function hex(bytes: Uint8Array): string {
  const digits = "0123456789abcdef";
  let s = "";
  for (let k = 0; k < bytes.length; k++) s += digits[bytes[k] >> 4] + digits[bytes[k] & 15];
  return s;
}

export function createVirtualHost(options: VirtualHostOptions): VirtualHost {
  const random = seededRandom(options.seed ?? 1);
  const requests: string[] = [];
  const keep = options.record !== false;
  const logs: string[] = [];
  const led: [number, number, number][] = [];
  // The client's writes, kept as written and turned into hex only when host.wire is read: copying
  // or hex-encoding each write would show in XS's compute meter (the bench measures the scenarios).
  const unread: Uint8Array[] = [];
  const wire: string[] = [];
  const http2 = options.http2 === true ? {} : options.http2 || undefined;
  const later = (fn: () => void) => void Promise.resolve().then(fn);
  // The kubelet API's listeners, by port (listen and dial).
  const listening = new Map<number, { options: ListenOptions; accept: (socket: ServerSocket, peer: PeerInfo) => ServerEvents; open: number }>();
  const host: VirtualHost = {
    name: "scripted",
    board: options.board ?? ESP32S3_BOARD,
    requests,
    get wire() {
      for (const chunk of unread) wire.push(hex(chunk));
      unread.length = 0;
      return wire;
    },
    logs,
    led,
    connections: 0,
    http2,
    monotonic: () => options.time.now,
    setTimer: (cb, ms) => options.time.setTimer(cb, ms),
    clearTimer: (id) => options.time.clearTimer(id),
    random,
    randomBytes: (n) => {
      const b = new Uint8Array(n);
      for (let i = 0; i < n; i++) b[i] = Math.floor(random() * 256);
      return b;
    },
    utf8Encode: (text) => encoder.encode(text),
    utf8Decode: (bytes) => decoder.decode(bytes),
    // No keys, no crypto here: a signature-sized FNV stream of the data, the same in XS and Node.
    // The scripted API does not verify it; the real control plane checks the Node host's.
    sign: (_key, data) => {
      const out = new Uint8Array(256);
      let h = 0x811c9dc5;
      for (let i = 0; i < data.length; i++) h = Math.imul(h ^ data[i], 0x01000193) >>> 0;
      for (let i = 0; i < out.length; i++) out[i] = (h = Math.imul(h ^ i, 0x01000193) >>> 0) & 0xff;
      return out;
    },
    connect(target: ConnectTarget, events: SocketEvents): HostSocket {
      let open = true;
      let buffer = "";
      host.connections++;
      const id = host.connections;
      if (options.offline?.()) {
        later(() => events.onClose("connect ECONNREFUSED (scripted: network down)"));
        return { write() {}, close() {} };
      }
      const alpn = target.alpn && target.alpn.length > 0 ? target.alpn : undefined;
      const protocol = alpn === undefined ? undefined : http2 && alpn.includes("h2") ? "h2" : alpn.includes("http/1.1") ? "http/1.1" : "";
      later(() => {
        if (!open) return;
        if (protocol === undefined) events.onConnect();
        else events.onConnect(protocol);
      });

      const deliver = (bytes: Uint8Array) => {
        if (options.count) options.count.read += bytes.length;
        const step = options.chunkBytes ?? bytes.length;
        for (let i = 0; i < bytes.length; i += step) {
          const piece = bytes.slice(i, i + step);
          later(() => open && events.onData(piece));
        }
      };
      /** Ends the socket now, the client's onClose getting error; pending deliveries are lost. */
      const abort = (error: string) => {
        if (!open) return;
        open = false;
        endStream();
        peer?.gone();
        later(() => events.onClose(error));
      };

      // The scripted API sees which credentials the connection was made with (SelfSubjectReview).
      const handler: ScriptedHandler = (req) => options.handler(target.tls ? { ...req, tls: target.tls } : req);
      // HTTP/2: the scripted server, once negotiated (or on a prior-knowledge preface).
      let peer: H2ServerConnection | undefined;
      const startH2 = (h2: Http2PeerOptions) => {
        peer = new H2ServerConnection(
          h2,
          handler,
          {
            send(bytes) {
              if (!open) return;
              if (options.offline?.()) return abort("network down (scripted)");
              deliver(bytes);
            },
            close() {
              later(() => {
                if (!open) return;
                open = false;
                events.onClose();
              });
            },
            reset(error) {
              if (!open) return;
              open = false;
              later(() => events.onClose(error));
            },
            record: (text) => void (keep && requests.push(text)),
          },
          id,
        );
      };
      if (protocol === "h2") startH2(http2!);
      let first = true;

      // HTTP/1.1 streaming answers: while one is open, later answers on the connection wait.
      let streamClose: (() => void) | undefined;
      let streaming = false;
      const backlog: (() => void)[] = [];
      const output = (fn: () => void) => (streaming ? void backlog.push(fn) : fn());
      function endStream(): void {
        const close = streamClose;
        streamClose = undefined;
        close?.();
      }
      const startStream = (stream: ScriptedStream) => {
        streaming = true;
        let head = stream.head.replace(/(\r\n)+$/, "");
        if (!/\r\ntransfer-encoding:/i.test(head)) head += "\r\nTransfer-Encoding: chunked";
        deliver(encoder.encode(`${head}\r\n\r\n`));
        let done = false;
        const write = (text: string) => {
          if (done || !open) return;
          if (options.offline?.()) return abort("network down (scripted)");
          const body = encoder.encode(text);
          if (body.length === 0) return;
          const size = encoder.encode(`${body.length.toString(16)}\r\n`);
          const chunk = new Uint8Array(size.length + body.length + 2);
          chunk.set(size);
          chunk.set(body, size.length);
          chunk.set(CRLF, size.length + body.length);
          deliver(chunk);
        };
        const end = () => {
          if (done) return;
          done = true;
          streamClose = undefined;
          if (!open) return;
          deliver(encoder.encode("0\r\n\r\n"));
          streaming = false;
          while (!streaming && backlog.length > 0) backlog.shift()!();
        };
        const close = stream.open(write, end);
        if (!done) {
          streamClose = () => {
            if (done) return;
            done = true;
            close();
          };
          if (!open) endStream(); // the socket went while opening
        }
      };

      const meter = options.serverMeter ?? ((work) => work());
      return {
        write: (bytes) => meter(() => serve(bytes)),
        close() {
          open = false;
          endStream();
          peer?.gone();
        },
      };

      function serve(bytes: Uint8Array): void {
        if (!open) return;
        if (options.count) options.count.written += bytes.length;
        if (keep) unread.push(bytes); // kept, not copied (as Node's socket.write keeps it): do not reuse a written buffer
        if (options.offline?.()) {
          open = false;
          endStream();
          peer?.gone();
          later(() => events.onClose("network down (scripted)"));
          return;
        }
        if (first) {
          first = false;
          // Prior knowledge: an HTTP/2 preface on a connection that negotiated nothing.
          if (!peer && http2 && protocol === undefined && bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x52 && bytes[2] === 0x49 && bytes[3] === 0x20) startH2(http2);
        }
        if (peer) return peer.receive(bytes);
        buffer += decoder.decode(bytes);
        for (;;) {
          const req = parseRequest(buffer);
          if (!req) return;
          buffer = buffer.slice(req.raw.length);
          if (keep) requests.push(req.raw);
          let answer = handler(req);
          let thenClose = false;
          if (typeof answer === "object" && "reply" in answer) {
            thenClose = true;
            answer = answer.reply;
          }
          if (typeof answer !== "string") {
            if ("stream" in answer) {
              const stream = answer.stream;
              output(() => startStream(stream));
              continue;
            }
            if ("drop" in answer) {
              open = false;
              endStream();
              later(() => events.onClose("connection reset by peer (scripted)"));
            }
            return; // hang: never answer
          }
          const text = answer;
          output(() => {
            deliver(encoder.encode(text));
            if (thenClose) {
              later(() => {
                if (!open) return;
                open = false;
                events.onClose();
              });
            }
          });
        }
      }
    },
    listen(listenOptions: ListenOptions, accept: (socket: ServerSocket, peer: PeerInfo) => ServerEvents): Listener {
      let port = listenOptions.port;
      if (port === 0) for (port = 40000; listening.has(port); port++);
      if (listening.has(port)) throw new Error(`listen: port ${port} is in use (virtual)`);
      const entry = { options: listenOptions, accept, open: 0 };
      listening.set(port, entry);
      return {
        port,
        update(tls) {
          entry.options = { ...entry.options, tls };
        },
        close() {
          if (listening.get(port) === entry) listening.delete(port);
        },
      };
    },
    dial(port: number, peer?: PeerInfo): VirtualClient {
      const chunks: Uint8Array[] = [];
      let closed = false;
      let refused = false;
      let serverOpen = false;
      let events: ServerEvents | undefined;
      const entry = listening.get(port);
      const client: VirtualClient = {
        write(data) {
          if (closed || !serverOpen) return;
          const bytes = typeof data === "string" ? encoder.encode(data) : data.slice();
          later(() => void (serverOpen && events?.onData(bytes)));
        },
        take: () => {
          const text = client.received();
          chunks.length = 0;
          return text;
        },
        received: () => {
          let total = 0;
          for (const c of chunks) total += c.length;
          const all = new Uint8Array(total);
          let at = 0;
          for (const c of chunks) {
            all.set(c, at);
            at += c.length;
          }
          return decoder.decode(all);
        },
        close() {
          if (closed) return;
          closed = true;
          later(() => {
            if (!serverOpen) return;
            end();
            events?.onClose();
          });
        },
        get closed() {
          return closed;
        },
        get refused() {
          return refused;
        },
      };
      const end = () => {
        if (!serverOpen || !entry) return;
        serverOpen = false;
        entry.open--;
      };
      if (!entry || entry.open >= entry.options.maxConnections) {
        closed = true;
        refused = true;
        return client;
      }
      entry.open++;
      serverOpen = true;
      const socket: ServerSocket = {
        write(bytes) {
          if (!serverOpen) return;
          const copy = bytes.slice();
          later(() => void (!closed && chunks.push(copy)));
        },
        close() {
          if (!serverOpen) return;
          end(); // the server asked: no onClose callback
          later(() => void (closed = true));
        },
      };
      events = entry.accept(socket, peer ?? { address: "192.0.2.100" });
      return client;
    },
    heap: options.heap ?? (() => ({ free: 200 * 1024, total: 256 * 1024 })),
    xsHeap: options.xsHeap,
    network: () => ({ kind: "ethernet", connected: true, address: "192.0.2.10", mac: "02:00:00:aa:bb:cc", reconnects: 0, ...options.network?.() }),
    showLed: (r, g, b) => {
      led.push([r, g, b]);
      if (options.history !== undefined && led.length > options.history) led.shift();
    },
    gpio: options.gpio ?? new SimulatedGpio(ESP32S3_GPIO),
    store: options.store ? { read: (k) => options.store!.get(k)?.slice(), write: (k, b) => void options.store!.set(k, b.slice()) } : undefined,
    log: tapped((level, message) => {
      logs.push(`${level}: ${message}`);
      if (options.history !== undefined && logs.length > options.history) logs.shift();
      options.log?.(level, message);
    }),
  };
  return host;
}
