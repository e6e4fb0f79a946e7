// Wall clock for a board without an RTC: anchored from the API server's HTTP `Date` header, carried
// forward on the monotonic clock, re-anchored from later responses, and never allowed to run backwards
// (the node lifecycle controller counts a Lease renewal only when renewTime is strictly later).

const MONTHS: readonly string[] = Object.freeze(["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]);

/** Parses an IMF-fixdate (RFC 9110 §5.6.7), e.g. "Sun, 06 Nov 1994 08:49:37 GMT"; NaN if malformed. */
export function parseHttpDate(value: string): number {
  const m = /^[A-Z][a-z]{2}, (\d{2}) ([A-Z][a-z]{2}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT$/.exec(value.trim());
  if (!m) return NaN;
  const month = MONTHS.indexOf(m[2]);
  if (month < 0) return NaN;
  return Date.UTC(Number(m[3]), month, Number(m[1]), Number(m[4]), Number(m[5]), Number(m[6]));
}

const pad = (n: number, width: number) => String(n).padStart(width, "0");

const DAYS: readonly string[] = Object.freeze(["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]);

/** IMF-fixdate (RFC 9110 §5.6.7), e.g. "Sun, 06 Nov 1994 08:49:37 GMT": the kubelet API's Date header. */
export function formatHttpDate(epochMs: number): string {
  const d = new Date(epochMs);
  return `${DAYS[d.getUTCDay()]}, ${pad(d.getUTCDate(), 2)} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()} ${pad(d.getUTCHours(), 2)}:${pad(d.getUTCMinutes(), 2)}:${pad(d.getUTCSeconds(), 2)} GMT`;
}

function utcParts(epochMs: number): string {
  const d = new Date(epochMs);
  return `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1, 2)}-${pad(d.getUTCDate(), 2)}T${pad(d.getUTCHours(), 2)}:${pad(d.getUTCMinutes(), 2)}:${pad(d.getUTCSeconds(), 2)}`;
}

/** RFC 3339 with exactly six fractional digits, as a Kubernetes MicroTime requires. */
export function formatMicroTime(epochMs: number): string {
  const ms = Math.floor(epochMs);
  const micros = Math.floor((epochMs - ms) * 1000);
  return `${utcParts(ms)}.${pad(((ms % 1000) + 1000) % 1000, 3)}${pad(micros, 3)}Z`;
}

/** RFC 3339 to the second, the form the API server stores for ordinary Time fields. */
export function formatTime(epochMs: number): string {
  return `${utcParts(Math.floor(epochMs))}Z`;
}

export interface ClockOptions {
  /** Monotonic milliseconds (host.monotonic). */
  monotonic: () => number;
  /** A re-anchor that moves the clock by more than this is a "slip" (Haunted). Default 5000 ms. */
  slipThresholdMs?: number;
  /**
   * A Date this far from the estimate (either way) is not followed on one answer's word: only when the
   * answers keep saying it for CONFIRM_AFTER_MS. Default 10 min. A few bad answers (a broken proxy, a
   * server's clock glitch) saying 2126 would otherwise move the clock there for good — it never runs
   * backwards — with every renewTime a century ahead and every credential "expired".
   */
  confirmStepMs?: number;
  /** Called with the new estimate whenever the anchor moves (to set the system clock). */
  onAnchor?: (epochMs: number) => void;
  /** A line for the log: a Date far off, held or followed. */
  onWarning?: (message: string) => void;
}

/** How far apart two answers' Dates may tell the same story (the header's 1 s resolution, round trips). */
const CONFIRM_AGREEMENT_MS = 5000;
/** A far step is followed once answers have said it this long, none in between disagreeing: six renewals. */
const CONFIRM_AFTER_MS = 60_000;

/** A span of time in words: "42 s", "17 min", "5 h", "36500 days". */
function span(ms: number): string {
  const s = Math.round(Math.abs(ms) / 1000);
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172_800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86_400)} days`;
}

export class WallClock {
  #monotonic: () => number;
  #offset: number | undefined; // wall = monotonic + offset
  #last = -Infinity;
  #slipThreshold: number;
  #onAnchor?: (epochMs: number) => void;
  #onWarning?: (message: string) => void;
  #confirmStep: number;
  /** A far step one answer claimed, waiting for a later answer to agree: wall − monotonic it implies, and when. */
  #doubted: { offset: number; at: number } | undefined;
  /** Set when a re-anchor moved the clock by more than the threshold; cleared by takeSlip(). */
  #slipped = false;
  /** How many times the Date header moved the estimate. */
  anchors = 0;
  /** How far the last re-anchor moved the clock, in ms (0 until one did). */
  lastCorrectionMs = 0;

  constructor(options: ClockOptions) {
    this.#monotonic = options.monotonic;
    this.#slipThreshold = options.slipThresholdMs ?? 5000;
    this.#onAnchor = options.onAnchor;
    this.#onWarning = options.onWarning;
    this.#confirmStep = options.confirmStepMs ?? 600_000;
  }

  get anchored(): boolean {
    return this.#offset !== undefined;
  }

  /**
   * Feeds the `Date` header of a response that arrived `rttMs` after its request was sent. The header
   * has one-second resolution and is stamped while the server handles the request, so the true time
   * at arrival lies within [date, date + 1 s + rtt]. Inside that window the estimate is left alone
   * (no jitter); outside it, the estimate moves to the nearest edge — at once when the edge is within
   * confirmStepMs, else only once later answers agree (see #confirmed). Returns false for a bad header.
   */
  observeDate(header: string | undefined, rttMs = 0): boolean {
    if (!header) return false;
    const date = parseHttpDate(header);
    if (!Number.isFinite(date)) return false;
    const mono = this.#monotonic();
    if (this.#offset === undefined) {
      this.#offset = date + 500 - mono; // middle of the one-second window
      this.anchors++;
      this.#onAnchor?.(this.now());
      return true;
    }
    const estimate = mono + this.#offset;
    const earliest = date;
    const latest = date + 1000 + Math.max(0, rttMs);
    let corrected = estimate;
    if (estimate < earliest) corrected = earliest;
    else if (estimate > latest) corrected = latest;
    if (Math.abs(corrected - estimate) > this.#confirmStep && !this.#confirmed(corrected - mono, mono, header, corrected - estimate)) return true;
    if (Math.abs(corrected - estimate) <= this.#confirmStep) this.#doubted = undefined;
    if (corrected !== estimate) {
      this.lastCorrectionMs = corrected - estimate;
      if (Math.abs(corrected - estimate) > this.#slipThreshold) this.#slipped = true;
      this.#offset = corrected - mono;
      this.anchors++;
      this.#onAnchor?.(this.now());
    }
    return true;
  }

  /**
   * A step beyond confirmStepMs: the first answer claiming it is doubted (held, logged once); one
   * CONFIRM_AFTER_MS later implying the same clock (within CONFIRM_AGREEMENT_MS) confirms it. An
   * answer within the bound in between clears the doubt (observeDate).
   */
  #confirmed(offset: number, mono: number, header: string, step: number): boolean {
    const doubted = this.#doubted;
    if (doubted && mono - doubted.at >= CONFIRM_AFTER_MS && Math.abs(offset - doubted.offset) <= CONFIRM_AGREEMENT_MS) {
      this.#doubted = undefined;
      this.#onWarning?.(`the API server's clock moved ${span(step)} ${step > 0 ? "ahead" : "back"} and stays there (Date: ${header}): following it${step < 0 ? "; the agent's clock holds until the server's passes it (it never runs backwards)" : ""}`);
      return true;
    }
    if (!doubted || Math.abs(offset - doubted.offset) > CONFIRM_AGREEMENT_MS) {
      if (!doubted) this.#onWarning?.(`the API server's Date header (${header}) is ${span(step)} ${step > 0 ? "ahead of" : "behind"} the agent's clock: not followed unless later answers agree`);
      this.#doubted = { offset, at: mono };
    }
    return false;
  }

  /** Epoch milliseconds; strictly increasing (by ≥ 1 ms) between calls. Throws before the first anchor. */
  now(): number {
    if (this.#offset === undefined) throw new Error("wall clock not anchored yet (no Date header seen)");
    let t = this.#monotonic() + this.#offset;
    // A backwards correction must not show: hold the clock just above the last value handed out.
    if (t <= this.#last) t = this.#last + 1;
    this.#last = t;
    return t;
  }

  /** True once after a re-anchor moved the clock by more than the slip threshold. */
  takeSlip(): boolean {
    const s = this.#slipped;
    this.#slipped = false;
    return s;
  }
}
