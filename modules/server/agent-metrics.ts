// The agent's own /metrics series: a fixed set (AGENT) whose names, help and labels live in a frozen
// table at module level — in flash on the board, where the module is preloaded — and whose values
// are one Float64Array. The general registry (metrics.ts) keeps the series that vary.
import type { FailureKind } from "../util/retry";
import { DURATION_BUCKETS, familyHead, formatFloat, sampleLine, type MetricType } from "./metrics";

/** The agent's own series (AgentMetrics), by index. */
export const AGENT = Object.freeze({
  leaseRenewals: 0,
  failuresAuth: 1,
  failuresCertificate: 2,
  failuresNetwork: 3,
  failuresApi: 4,
  apiBytesSent: 5,
  apiBytesReceived: 6,
  tlsHandshakes: 7,
  networkReconnects: 8,
  heapFree: 9,
  heapTotal: 10,
  uptimeSeconds: 11,
  clockOffsetSeconds: 12,
  watchEvents: 13,
  http2Goaways: 14,
});

const FAILURE_SERIES: Readonly<Record<FailureKind, number>> = Object.freeze({ auth: AGENT.failuresAuth, certificate: AGENT.failuresCertificate, network: AGENT.failuresNetwork, api: AGENT.failuresApi });

const FAILURES_HELP = "Failures of the agent's requests to the API server, by the kind of failure (the retry policy's kinds).";
const BYTES_HELP = "Bytes exchanged with the API server, over every connection.";
const HEAP_HELP = "The agent's heap in bytes.";
const DURATION_NAME = "xs_kubelet_api_request_duration_seconds";

/**
 * Each series of AGENT, in that order: family name, help, type, rendered labels. A frozen table at
 * module level — in flash on the board, where the module is preloaded — so a running agent keeps
 * only the values (one Float64Array); the request-duration histogram follows the failures.
 */
const AGENT_SERIES: readonly (readonly [string, string, MetricType, string])[] = Object.freeze([
  Object.freeze(["xs_kubelet_lease_renewals_total", "Lease renewals the API server accepted.", "counter", ""] as const),
  Object.freeze(["xs_kubelet_failures_total", FAILURES_HELP, "counter", '{kind="auth"}'] as const),
  Object.freeze(["xs_kubelet_failures_total", FAILURES_HELP, "counter", '{kind="certificate"}'] as const),
  Object.freeze(["xs_kubelet_failures_total", FAILURES_HELP, "counter", '{kind="network"}'] as const),
  Object.freeze(["xs_kubelet_failures_total", FAILURES_HELP, "counter", '{kind="api"}'] as const),
  Object.freeze(["xs_kubelet_api_bytes_total", BYTES_HELP, "counter", '{direction="sent"}'] as const),
  Object.freeze(["xs_kubelet_api_bytes_total", BYTES_HELP, "counter", '{direction="received"}'] as const),
  Object.freeze(["xs_kubelet_tls_handshakes_total", "TLS handshakes with the API server (each costs the board about a second).", "counter", ""] as const),
  Object.freeze(["xs_kubelet_network_reconnects_total", "Network reconnects (Wi-Fi drops, Ethernet link losses) since the host started.", "counter", ""] as const),
  Object.freeze(["xs_kubelet_heap_bytes", HEAP_HELP, "gauge", '{state="free"}'] as const),
  Object.freeze(["xs_kubelet_heap_bytes", HEAP_HELP, "gauge", '{state="total"}'] as const),
  Object.freeze(["xs_kubelet_uptime_seconds", "Seconds since the agent started.", "gauge", ""] as const),
  Object.freeze(["xs_kubelet_clock_offset_seconds", "How far the last Date header moved the agent's wall clock, in seconds.", "gauge", ""] as const),
  Object.freeze(["xs_kubelet_watch_events_total", "Watch events received.", "counter", ""] as const),
  Object.freeze(["xs_kubelet_http2_goaways_total", "HTTP/2 GOAWAY frames received from the API server.", "counter", ""] as const),
]);

/**
 * The agent's own figures: a fixed set of series (AGENT) whose names, help and labels live in a
 * frozen module-level table, and whose values are one Float64Array — the series, then the request
 * durations' bucket counts, their sum and count. Measured in xsnap, the same figures as registry
 * series (an object, a handle and a family each) were about 330 slots and 4.6 KB of chunks; this is
 * a dozen slots and 240 bytes. The wiring (api-server.ts) sets the gauges from their sources before
 * each render; counters are counted where they happen.
 */
export class AgentMetrics {
  readonly #v = new Float64Array(AGENT_SERIES.length + DURATION_BUCKETS.length + 2);

  get(series: number): number {
    return this.#v[series];
  }

  set(series: number, value: number): void {
    this.#v[series] = value;
  }

  /** Adds n (default 1) to a series; counters ignore a negative n. */
  inc(series: number, n = 1): void {
    if (n >= 0) this.#v[series] += n;
  }

  /** One failure of the agent's requests, of its kind. */
  failed(kind: FailureKind): void {
    this.#v[FAILURE_SERIES[kind]]++;
  }

  /** One request's duration in seconds, into the histogram. */
  observe(seconds: number): void {
    if (Number.isNaN(seconds)) return;
    const v = this.#v;
    const at = AGENT_SERIES.length;
    for (let i = 0; i < DURATION_BUCKETS.length; i++) {
      if (seconds <= DURATION_BUCKETS[i]) {
        v[at + i]++;
        break;
      }
    }
    v[at + DURATION_BUCKETS.length] += seconds;
    v[at + DURATION_BUCKETS.length + 1]++;
  }

  /** Requests observed (the histogram's count). */
  get observed(): number {
    return this.#v[AGENT_SERIES.length + DURATION_BUCKETS.length + 1];
  }

  /** The series in the text format, as MetricsRegistry renders its own. */
  render(): string {
    const v = this.#v;
    let out = "";
    let family = "";
    for (let i = 0; i < AGENT_SERIES.length; i++) {
      const [name, help, type, labels] = AGENT_SERIES[i];
      if (name !== family) out += familyHead(name, help, type);
      family = name;
      out += sampleLine(name, labels, v[i]);
      if (i === AGENT.failuresApi) out += this.#histogram();
    }
    return out;
  }

  #histogram(): string {
    const v = this.#v;
    const at = AGENT_SERIES.length;
    let out = familyHead(DURATION_NAME, "Duration of the agent's requests to the API server, in seconds.", "histogram");
    let cumulative = 0;
    for (let i = 0; i < DURATION_BUCKETS.length; i++) {
      cumulative += v[at + i];
      out += sampleLine(`${DURATION_NAME}_bucket`, `{le="${formatFloat(DURATION_BUCKETS[i])}"}`, cumulative);
    }
    const count = v[at + DURATION_BUCKETS.length + 1];
    out += sampleLine(`${DURATION_NAME}_bucket`, '{le="+Inf"}', count);
    out += sampleLine(`${DURATION_NAME}_sum`, "", v[at + DURATION_BUCKETS.length]);
    out += sampleLine(`${DURATION_NAME}_count`, "", count);
    return out;
  }
}
