// A host with virtual time and a scripted API server behind its sockets: for fast unit tests, the
// XS-vs-Node comparison, the bench and a virtual fleet. Pure JavaScript (no Node built-ins): the same
// file runs inside the XS engine.
import type { BoardFacts, ConnectTarget, HeapFigures, Host, HostSocket, LogLevel, NetworkFacts, SocketEvents } from "../../modules/host";
import { ESP32S3_BOARD } from "../esp32s3/board";

interface VTimer {
  at: number;
  seq: number;
  cb: () => void;
}

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
  #timers: VTimer[] = [];
  #seq = 0;

  setTimer(cb: () => void, ms: number): VTimer {
    const t = { at: this.now + Math.max(0, ms), seq: this.#seq++, cb };
    this.#timers.push(t);
    return t;
  }

  clearTimer(t: unknown): void {
    const i = this.#timers.indexOf(t as VTimer);
    if (i >= 0) this.#timers.splice(i, 1);
  }

  get pendingTimers(): number {
    return this.#timers.length;
  }

  /** Runs every timer due within ms, in order, letting promises settle between them. */
  async advance(ms: number): Promise<void> {
    const target = this.now + ms;
    await flushMicrotasks();
    for (;;) {
      let next: VTimer | undefined;
      for (const t of this.#timers) if (t.at <= target && (!next || t.at < next.at || (t.at === next.at && t.seq < next.seq))) next = t;
      if (!next) break;
      this.#timers.splice(this.#timers.indexOf(next), 1);
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
      let nextAt = Infinity;
      for (const t of this.#timers) nextAt = Math.min(nextAt, t.at);
      await this.advance(Math.max(1, Math.min(nextAt, start + maxMs) - this.now));
    }
    return this.now - start;
  }
}

/** Server side of one scripted connection: gets whole requests, answers with raw bytes. */
export type ScriptedHandler = (request: ParsedRequest) => string | { drop: true } | { hang: true } | { reply: string; thenClose: true };

export interface ParsedRequest {
  method: string;
  path: string;
  headers: Map<string, string>;
  body: string;
  raw: string;
}

export interface VirtualHostOptions {
  time: VirtualTime;
  handler: ScriptedHandler;
  seed?: number;
  heap?: () => HeapFigures | undefined;
  network?: () => Partial<NetworkFacts>;
  log?: (level: LogLevel, message: string) => void;
  /** Split each response into pieces of this many bytes (exercises the parser). */
  chunkBytes?: number;
  /** Refuse connections while this returns true (network down). */
  offline?: () => boolean;
  /** The board it pretends to be; default the Waveshare ESP32-S3-ETH. */
  board?: BoardFacts;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

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
  /** Every request as sent, byte for byte (as text), in order. */
  readonly requests: string[];
  readonly logs: string[];
  readonly led: [number, number, number][];
  connections: number;
}

export function createVirtualHost(options: VirtualHostOptions): VirtualHost {
  const random = seededRandom(options.seed ?? 1);
  const requests: string[] = [];
  const logs: string[] = [];
  const led: [number, number, number][] = [];
  const later = (fn: () => void) => void Promise.resolve().then(fn);
  const host: VirtualHost = {
    name: "scripted",
    board: options.board ?? ESP32S3_BOARD,
    requests,
    logs,
    led,
    connections: 0,
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
    connect(_target: ConnectTarget, events: SocketEvents): HostSocket {
      let open = true;
      let buffer = "";
      host.connections++;
      if (options.offline?.()) {
        later(() => events.onClose("connect ECONNREFUSED (scripted: network down)"));
        return { write() {}, close() {} };
      }
      later(() => open && events.onConnect());
      return {
        write(bytes) {
          if (!open) return;
          if (options.offline?.()) {
            open = false;
            later(() => events.onClose("network down (scripted)"));
            return;
          }
          buffer += decoder.decode(bytes);
          for (;;) {
            const req = parseRequest(buffer);
            if (!req) return;
            buffer = buffer.slice(req.raw.length);
            requests.push(req.raw);
            let answer = options.handler(req);
            let thenClose = false;
            if (typeof answer === "object" && "reply" in answer) {
              thenClose = true;
              answer = answer.reply;
            }
            if (typeof answer !== "string") {
              if ("drop" in answer) {
                open = false;
                later(() => events.onClose("connection reset by peer (scripted)"));
              }
              return; // hang: never answer
            }
            const bytes = encoder.encode(answer);
            const step = options.chunkBytes ?? bytes.length;
            for (let i = 0; i < bytes.length; i += step) {
              const piece = bytes.slice(i, i + step);
              later(() => open && events.onData(piece));
            }
            if (thenClose) {
              later(() => {
                if (!open) return;
                open = false;
                events.onClose();
              });
            }
          }
        },
        close() {
          open = false;
        },
      };
    },
    heap: options.heap ?? (() => ({ free: 200 * 1024, total: 256 * 1024 })),
    network: () => ({ kind: "ethernet", connected: true, address: "192.0.2.10", mac: "02:00:00:aa:bb:cc", reconnects: 0, ...options.network?.() }),
    showLed: (r, g, b) => void led.push([r, g, b]),
    log: (level, message) => {
      logs.push(`${level}: ${message}`);
      options.log?.(level, message);
    },
  };
  return host;
}
