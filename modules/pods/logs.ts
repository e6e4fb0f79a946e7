// A container's log: a bounded ring of lines with their wall-clock times, and the kubelet API's
// /containerLogs query on it (pkg/kubelet/server: tailLines, limitBytes, timestamps, sinceSeconds,
// sinceTime, previous, follow). Memory: at most maxBytes of text per ring (each line's text counts,
// with its time), the oldest lines go first and are counted; a line longer than maxLineChars is cut.
// One ring per running container and one for its previous instance.
import { formatTime } from "../time/clock";

export interface LogLine {
  /** Wall-clock epoch ms. */
  time: number;
  text: string;
}

export class LogRing {
  readonly maxBytes: number;
  readonly maxLineChars: number;
  /**
   * The lines as one string, "<epoch ms>\t<text>\n" each: one chunk-heap string per ring and no
   * object per line (measured in the simulator, an object per line cost ~10 slots a line). Queries
   * split it; the log is written far more often than it is read.
   */
  #text = "";
  #followers: { line(l: LogLine): void; end(): void }[] = [];
  #ended = false;

  constructor(maxBytes: number, maxLineChars = 512) {
    this.maxBytes = Math.max(256, maxBytes);
    this.maxLineChars = Math.max(16, Math.min(maxLineChars, this.maxBytes - 32));
  }

  get lines(): LogLine[] {
    const out: LogLine[] = [];
    let at = 0;
    const text = this.#text;
    while (at < text.length) {
      const tab = text.indexOf("\t", at);
      const nl = text.indexOf("\n", tab);
      out.push({ time: Number(text.slice(at, tab)), text: text.slice(tab + 1, nl) });
      at = nl + 1;
    }
    return out;
  }

  /** Characters held (what the ring costs, near enough: its text is ASCII in the usual case). */
  get bytes(): number {
    return this.#text.length;
  }

  get ended(): boolean {
    return this.#ended;
  }

  append(time: number, text: string): void {
    if (this.#ended) return;
    let t = text.indexOf("\n") >= 0 || text.indexOf("\t") >= 0 ? text.replace(/\r?\n|\t/g, " ") : text;
    if (t.length > this.maxLineChars) t = `${t.slice(0, this.maxLineChars - 1)}…`;
    const ms = Math.floor(time);
    let all = this.#text + `${ms}\t${t}\n`;
    if (all.length > this.maxBytes) {
      // Drop whole lines from the front until it fits.
      let cut = 0;
      while (all.length - cut > this.maxBytes) {
        cut = all.indexOf("\n", cut) + 1;
      }
      all = all.slice(cut);
    }
    this.#text = all;
    if (!this.#followers.length) return;
    const line = { time: ms, text: t };
    for (const f of this.#followers.slice()) {
      try {
        f.line(line);
      } catch {
        // a follower's failure is its own
      }
    }
  }

  /** Every later line goes to line(); end() when the container's instance ends. Returns the unsubscribe. */
  follow(line: (l: LogLine) => void, end: () => void): () => void {
    const f = { line, end };
    if (this.#ended) {
      end();
      return () => undefined;
    }
    this.#followers.push(f);
    return () => {
      const i = this.#followers.indexOf(f);
      if (i >= 0) this.#followers.splice(i, 1);
    };
  }

  /** The instance ended: followers are told, no more lines. */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    const followers = this.#followers;
    this.#followers = [];
    for (const f of followers) {
      try {
        f.end();
      } catch {
        // as above
      }
    }
  }
}

export interface LogQuery {
  follow: boolean;
  previous: boolean;
  timestamps: boolean;
  tailLines?: number;
  limitBytes?: number;
  /** Lines at or after this wall-clock epoch ms. */
  sinceMs?: number;
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s.replace(/\+/g, " "));
  } catch {
    return s;
  }
}

const flag = (v: string) => v === "" || v === "true" || v === "1";

/** RFC 3339 (…Z or ±hh:mm, fractions allowed) → epoch ms; undefined when it is not one. */
export function parseTime(text: string): number | undefined {
  if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$/.test(text)) return undefined;
  // Date.parse takes at most milliseconds on every engine: drop the digits beyond them.
  const t = Date.parse(text.replace(/(\.\d{3})\d+/, "$1"));
  return Number.isFinite(t) ? t : undefined;
}

/** The query string of /containerLogs; a string: what was wrong with it (answered 400). */
export function parseLogQuery(query: string, now: number): LogQuery | string {
  const q: LogQuery = { follow: false, previous: false, timestamps: false };
  for (const part of query.split("&")) {
    if (!part) continue;
    const eq = part.indexOf("=");
    const key = decode(eq < 0 ? part : part.slice(0, eq));
    const value = eq < 0 ? "" : decode(part.slice(eq + 1));
    switch (key) {
      case "follow":
        q.follow = flag(value);
        break;
      case "previous":
        q.previous = flag(value);
        break;
      case "timestamps":
        q.timestamps = flag(value);
        break;
      case "tailLines":
      case "limitBytes":
      case "sinceSeconds": {
        if (!/^[0-9]{1,12}$/.test(value)) return `${key} must be a non-negative integer, not "${value.slice(0, 40)}"`;
        const n = Number(value);
        if (key === "tailLines") q.tailLines = n;
        else if (key === "limitBytes") {
          if (n < 1) return "limitBytes must be at least 1";
          q.limitBytes = n;
        } else {
          if (n < 1) return "sinceSeconds must be at least 1";
          q.sinceMs = now - n * 1000;
        }
        break;
      }
      case "sinceTime": {
        const t = parseTime(value);
        if (t === undefined) return `sinceTime must be an RFC 3339 time, not "${value.slice(0, 40)}"`;
        q.sinceMs = t;
        break;
      }
      default:
        break; // container, insecureSkipTLSVerifyBackend …: not the node's business
    }
  }
  return q;
}

/** The kubelet's timestamp prefix: RFC 3339 with nanoseconds. */
export function logTimestamp(ms: number): string {
  const whole = formatTime(ms); // …:SSZ
  const frac = String(Math.floor(ms) % 1000).padStart(3, "0");
  return `${whole.slice(0, -1)}.${frac}000000Z`;
}

export function renderLine(line: LogLine, timestamps: boolean): string {
  return timestamps ? `${logTimestamp(line.time)} ${line.text}\n` : `${line.text}\n`;
}

/** What a query selects of the lines there are now (since, then tail). */
export function selectLines(lines: readonly LogLine[], q: LogQuery): LogLine[] {
  let out = q.sinceMs === undefined ? lines.slice() : lines.filter((l) => l.time >= q.sinceMs!);
  if (q.tailLines !== undefined) out = q.tailLines === 0 ? [] : out.slice(-q.tailLines);
  return out;
}

/** What /containerLogs answers: text now, and for follow a stream of later lines. */
export interface LogAnswer {
  status: number;
  message?: string;
  text?: string;
  follow?: (write: (text: string) => void, end: () => void) => () => void;
}

/** The kubelet's answer to a /containerLogs query on a container's current and previous log. */
export function answerLogs(current: LogRing, previous: LogRing | undefined, query: string, now: number, names: { pod: string; container: string }): LogAnswer {
  const { pod, container } = names;
  const q = parseLogQuery(query, now);
  if (typeof q === "string") return { status: 400, message: q };
  const ring = q.previous ? previous : current;
  if (!ring) return { status: 400, message: `previous terminated container "${container}" in pod "${pod}" not found` };
  let text = "";
  for (const line of selectLines(ring.lines, q)) text += renderLine(line, q.timestamps);
  let budget = q.limitBytes;
  const cut = (s: string): string => {
    if (budget === undefined) return s;
    const piece = s.length > budget ? s.slice(0, budget) : s;
    budget -= piece.length;
    return piece;
  };
  text = cut(text);
  if (!q.follow || q.previous || ring.ended || budget === 0) return { status: 200, text };
  return {
    status: 200,
    text,
    follow: (write, end) => {
      const stop = ring.follow(
        (line) => {
          if (q.sinceMs !== undefined && line.time < q.sinceMs) return;
          const piece = cut(renderLine(line, q.timestamps));
          if (piece) write(piece);
          if (budget === 0) {
            stop();
            end();
          }
        },
        end,
      );
      return stop;
    },
  };
}
