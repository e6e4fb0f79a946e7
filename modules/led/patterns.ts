// The status LED as a pure function of state and time: the host draws whatever frame() returns.
// Unlike picokubelet (whose LED never shows failure once green, B11), Warning and Disconnected are
// visible at any time.

export type LedState = "selftest" | "booting" | "connecting" | "healthy" | "warning" | "disconnected" | "off";

export type Rgb = [number, number, number];

/** picokubelet's cap: 38/255 ≈ 15 % per channel. */
export const BRIGHTNESS_CAP = 38;

export const SELFTEST_STEP_MS = 200;
export const CONNECTING_PERIOD_MS = 667;
export const HEALTHY_PERIOD_MS = 3000;
export const DISCONNECTED_PERIOD_MS = 2000;
export const WARNING_PERIOD_MS = 1000;
export const ACTIVITY_MS = 100;

export const LED_MEANINGS: Readonly<Record<LedState, string>> = Object.freeze({
  selftest: "red → green → blue → off at power-on: the LED works",
  booting: "dim white: firmware up, bringing the network up",
  connecting: "blue breathing, fast: reaching the API server, registering",
  healthy: "green breathing, slow: the Lease is being renewed; a yellow blink on every renewal",
  warning: "amber blinking: the API server rejects the agent (401/403) or keeps failing, or the configuration is invalid",
  disconnected: "red breathing: no network or API server unreachable",
  off: "off",
});

/** A pod's colour and pattern (the LED workload): drawn while the node is healthy, under every other state. */
export interface LedOverlay {
  /** Full-scale colour; the brightness cap applies. */
  rgb: Rgb;
  pattern: "solid" | "blink" | "breathe" | "rainbow";
  periodMs: number;
}

/** Hue (0–1) → full-saturation RGB, 0–1 per channel. */
function hue(h: number): [number, number, number] {
  const x = (((h % 1) + 1) % 1) * 6;
  const c = (k: number) => Math.max(0, Math.min(1, Math.abs(((x + k) % 6) - 3) - 1));
  return [c(0), c(4), c(2)];
}

/** 0 → 1 → 0 over one period, sine-shaped. */
function breathe(t: number, period: number): number {
  const phase = (((t % period) + period) % period) / period;
  return (1 - Math.cos(2 * Math.PI * phase)) / 2;
}

export class LedEngine {
  #state: LedState = "off";
  #since = 0;
  #flashUntil = -1;
  #cap: number;
  #overlay: LedOverlay | undefined;
  #overlaySince = 0;

  constructor(cap = BRIGHTNESS_CAP) {
    this.#cap = Math.max(0, Math.min(255, Math.round(cap)));
  }

  /** The brightness cap per channel (the led_brightness setting). */
  get cap(): number {
    return this.#cap;
  }

  set cap(cap: number) {
    this.#cap = Math.max(0, Math.min(255, Math.round(cap)));
  }

  get state(): LedState {
    return this.#state;
  }

  setState(state: LedState, now: number): void {
    if (state === this.#state) return;
    this.#state = state;
    this.#since = now;
  }

  /** The pod layer (undefined: none); shown only while the state is healthy. */
  setOverlay(overlay: LedOverlay | undefined, now: number): void {
    this.#overlay = overlay;
    this.#overlaySince = now;
  }

  get overlay(): LedOverlay | undefined {
    return this.#overlay;
  }

  /** A short yellow flash over the current pattern (a Lease renewal). */
  activity(now: number): void {
    this.#flashUntil = now + ACTIVITY_MS;
  }

  frame(now: number): Rgb {
    const cap = this.#cap;
    if (now < this.#flashUntil && this.#state !== "selftest") return [cap, cap, 0];
    const t = now - this.#since;
    const level = (x: number) => Math.round(cap * x);
    switch (this.#state) {
      case "selftest": {
        const step = Math.floor(t / SELFTEST_STEP_MS);
        return step === 0 ? [cap, 0, 0] : step === 1 ? [0, cap, 0] : step === 2 ? [0, 0, cap] : [0, 0, 0];
      }
      case "booting":
        return [level(0.5), level(0.5), level(0.5)];
      case "connecting":
        return [0, 0, level(breathe(t, CONNECTING_PERIOD_MS))];
      case "healthy": {
        const o = this.#overlay;
        if (o) return this.#overlayFrame(o, now - this.#overlaySince);
        return [0, level(breathe(t, HEALTHY_PERIOD_MS)), 0];
      }
      case "warning":
        return t % WARNING_PERIOD_MS < WARNING_PERIOD_MS / 2 ? [cap, level(0.45), 0] : [0, 0, 0];
      case "disconnected":
        return [level(0.1 + 0.9 * breathe(t, DISCONNECTED_PERIOD_MS)), 0, 0];
      default:
        return [0, 0, 0];
    }
  }

  #overlayFrame(o: LedOverlay, t: number): Rgb {
    const cap = this.#cap / 255;
    const scale = (rgb: [number, number, number], k: number): Rgb => [Math.round(rgb[0] * cap * k), Math.round(rgb[1] * cap * k), Math.round(rgb[2] * cap * k)];
    const full: [number, number, number] = [o.rgb[0], o.rgb[1], o.rgb[2]];
    const period = Math.max(100, o.periodMs);
    switch (o.pattern) {
      case "blink":
        return t % period < period / 2 ? scale(full, 1) : [0, 0, 0];
      case "breathe":
        return scale(full, breathe(t, period));
      case "rainbow": {
        const [r, g, b] = hue(t / period);
        return scale([r * 255, g * 255, b * 255], 1);
      }
      default:
        return scale(full, 1);
    }
  }

  /** How long the self-test takes. */
  static readonly SELFTEST_MS = 4 * SELFTEST_STEP_MS;
}
