// The agent's named defaults, in one place: what the kubelet and client-go use unless a reason to
// differ is written next to the value. Options override them; nothing else repeats them.

export const DEFAULTS = Object.freeze({
  /** Lease duration (the kubelet's nodeLeaseDurationSeconds). */
  leaseDurationSeconds: 40,
  /** Renew every duration × this (the kubelet's renewIntervalFraction): 10 s for 40 s. */
  renewIntervalFraction: 0.25,
  /** Up to this fraction of the interval added at random to each renewal (the kubelet's 0.04). */
  renewJitter: 0.04,
  /** A status push at least this often when nothing flips (nodeStatusReportFrequency). */
  statusReportSeconds: 300,
  /** Conditions are evaluated this often (nodeStatusUpdateFrequency). */
  conditionCheckSeconds: 10,
  /** Per request, connect included, to the end of the response. */
  requestTimeoutMs: 15_000,
  /** LED frames per second when the host has an LED. */
  ledFps: 30,
});

/**
 * The one retry policy every loop uses (node, lease, status; later watches and pods), chosen by the
 * kind of failure: network and API errors retry fast and level off at 7 s; an auth rejection
 * (401/403) or a refused server certificate will not fix itself in a second, so each backs off to
 * 5 min (picokubelet hammered, B7).
 */
export const RETRY = Object.freeze({
  normal: Object.freeze({ initialMs: 100, maxMs: 7000 }),
  auth: Object.freeze({ initialMs: 10_000, maxMs: 300_000 }),
  /**
   * The API server's certificate refused (wrong CA, wrong name, expired): no more fixable in seconds
   * than a 401, and each try is a full handshake (about a second of the board's CPU), so it backs
   * off to the auth cap. It starts shorter than auth: a certificate that is wrong only for a moment
   * (a balancer's placeholder while its backend restarts, an impersonator that went away) must cost
   * no Lease — three tries fit in a 40 s Lease — and the Lease is back on the next try once it verifies.
   */
  certificate: Object.freeze({ initialMs: 5_000, maxMs: 300_000 }),
  /** ± fraction of each delay, at random, so a fleet does not retry in step. */
  jitter: 0.1,
  /**
   * While the API server cannot be reached: a plain TCP connect to it this often (× 0.5–1.5 at
   * random), and a renewal as soon as one succeeds — the node is back within about a second of the
   * API server's return instead of waiting out the backoff. Each probe-triggered renewal that still
   * fails doubles the probe interval, up to probeMaxMs (a balancer that accepts with no server behind).
   * Not after a refused certificate: a connect says nothing about the certificate (see lease.ts).
   */
  probeMs: 1000,
  probeMaxMs: 8000,
  /** A probe's connection counts only if it is still open this long after it was accepted (see lease.ts). */
  probeHoldMs: 250,
  /**
   * A Retry-After (429 from API Priority and Fairness, 503) is honoured — the next attempt waits at
   * least that long, plus the jitter — up to this cap: a broken or hostile server's
   * "Retry-After: 3600" must not silence the Lease (a 40 s lease leaves room for three more tries).
   */
  retryAfterMaxMs: 10_000,
});
