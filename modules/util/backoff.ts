// Exponential backoff with jitter, the one place retry timing is decided.

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  factor?: number;
  /** Fraction of the delay added at random (0.1 → up to +10 %). */
  jitter?: number;
}

export class Backoff {
  #options: Required<BackoffOptions>;
  #next: number;
  #random: () => number;
  /** Failures since the last reset. */
  failures = 0;

  constructor(options: BackoffOptions, random: () => number) {
    this.#options = { factor: 2, jitter: 0.1, ...options };
    this.#next = options.initialMs;
    this.#random = random;
  }

  /** The delay before the next attempt; each call grows the one after it. */
  nextDelay(): number {
    const base = this.#next;
    this.failures++;
    this.#next = Math.min(this.#options.maxMs, base * this.#options.factor);
    return Math.round(base * (1 + this.#options.jitter * this.#random()));
  }

  reset(): void {
    this.#next = this.#options.initialMs;
    this.failures = 0;
  }
}
