// Exponential backoff with jitter — the one formula for every retry loop, the board's network manager
// included — and the retry policy built from it: how long an API loop waits after a failure depends
// only on the kind of failure (see RETRY in defaults.ts).
import { RETRY } from "../defaults";

/**
 * auth: the API server rejected the credentials (401/403); certificate: the agent rejected the API
 * server's certificate; network: no answer; api: any other error.
 */
export type FailureKind = "auth" | "certificate" | "network" | "api";

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  /** ± fraction of each delay, at random (0.1 → 90 % to 110 %). */
  jitter?: number;
}

/** Delay before retry number `attempt` (0-based): initial·2^attempt capped at max, ± jitter. */
export function backoffDelay(attempt: number, initialMs: number, maxMs: number, jitter: number, random: number): number {
  const base = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
  return Math.round(base * (1 - jitter + 2 * jitter * random));
}

/** Exponential backoff: each failure doubles the next delay, up to a cap; a success resets it. */
export class Backoff {
  #options: BackoffOptions;
  #random: () => number;
  /** Failures since the last reset. */
  failures = 0;

  constructor(options: BackoffOptions, random: () => number) {
    this.#options = options;
    this.#random = random;
  }

  /** The delay before the next attempt; each call grows the one after it. */
  nextDelay(): number {
    const { initialMs, maxMs, jitter = RETRY.jitter } = this.#options;
    return backoffDelay(this.failures++, initialMs, maxMs, jitter, this.#random());
  }

  reset(): void {
    this.failures = 0;
  }
}

/** The wait a failure's Retry-After asks for (an ApiError's retryAfterMs), capped at RETRY.retryAfterMaxMs; 0 when it asks none. */
export function retryAfterFloor(err: unknown): number {
  const after = err !== null && typeof err === "object" ? (err as { retryAfterMs?: unknown }).retryAfterMs : undefined;
  return typeof after === "number" && after > 0 ? Math.min(after, RETRY.retryAfterMaxMs) : 0;
}

/** One loop's retry state: a fast backoff for network and API errors, slow ones for auth and certificates. */
export class RetryPolicy {
  // Failures since the last success, per backoff (network and API errors; auth; certificates):
  // three numbers rather than three Backoff objects, as every loop and watch has a policy.
  #normal = 0;
  #auth = 0;
  #certificate = 0;
  #source: { random(): number };

  /** source: where the jitter comes from (the host). */
  constructor(source: { random(): number }) {
    this.#source = source;
  }

  /**
   * The delay before retrying after a failure of this kind; at least the failure's Retry-After
   * (an ApiError's retryAfterMs), capped at RETRY.retryAfterMaxMs, with the usual jitter on top.
   */
  next(kind: FailureKind, err?: unknown): number {
    let attempt: number;
    let options: BackoffOptions;
    if (kind === "auth") {
      attempt = this.#auth++;
      options = RETRY.auth;
    } else if (kind === "certificate") {
      attempt = this.#certificate++;
      options = RETRY.certificate;
    } else {
      attempt = this.#normal++;
      options = RETRY.normal;
    }
    const delay = backoffDelay(attempt, options.initialMs, options.maxMs, options.jitter ?? RETRY.jitter, this.#source.random());
    const floor = retryAfterFloor(err);
    if (floor === 0) return delay;
    return Math.max(delay, Math.round(floor * (1 + RETRY.jitter * this.#source.random())));
  }

  /** After a success: the next failure starts from the shortest delay again. */
  reset(): void {
    this.#normal = 0;
    this.#auth = 0;
    this.#certificate = 0;
  }
}
