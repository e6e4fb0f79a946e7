// The metrics registry and the Prometheus text format 0.0.4, byte for byte: numbers as Go writes
// them, escaping, histograms, timestamps, and /metrics/resource as the kubelet writes its node part.
import assert from "node:assert/strict";
import type { XsHeapSample } from "../../modules/host";
import { rig } from "../../tools/scenarios/harness";
import { AGENT, AgentMetrics } from "../../modules/server/agent-metrics";
import { DURATION_BUCKETS, METRICS_CONTENT_TYPE, MetricsRegistry, escapeHelp, escapeLabelValue, formatFloat, resourceMetricsText } from "../../modules/server/metrics";

describe("metrics", () => {
  it("formats numbers as Go's strconv.FormatFloat(v, 'g', -1, 64)", () => {
    const cases: [number, string][] = [
      [0, "0"],
      [1, "1"],
      [-1, "-1"],
      [42, "42"],
      [100000, "100000"],
      [999999, "999999"],
      [1e6, "1e+06"],
      [1234567, "1.234567e+06"],
      [1616273408, "1.616273408e+09"],
      [357.35491, "357.35491"],
      [0.005, "0.005"],
      [0.0001, "0.0001"],
      [0.00001, "1e-05"],
      [1.5e-7, "1.5e-07"],
      [2.5, "2.5"],
      [1e21, "1e+21"],
      [1.7976931348623157e308, "1.7976931348623157e+308"],
      [-0.25, "-0.25"],
      [-123456789, "-1.23456789e+08"],
      [0.1 + 0.2, "0.30000000000000004"],
      [Infinity, "+Inf"],
      [-Infinity, "-Inf"],
      [NaN, "NaN"],
    ];
    for (const [v, s] of cases) assert.equal(formatFloat(v), s, String(v));
  });

  it("escapes label values (\\, \", newline) and help (\\, newline)", () => {
    assert.equal(escapeLabelValue('a\\b"c\nd'), 'a\\\\b\\"c\\nd');
    assert.equal(escapeHelp('say "hi"\\\nbye'), 'say "hi"\\\\\\nbye');
  });

  it("renders counters, gauges and labelled series with HELP and TYPE once per family", () => {
    const r = new MetricsRegistry();
    const renewals = r.counter("xs_renewals_total", "Lease renewals.");
    const auth = r.counter("xs_failures_total", "Failures by kind.", { kind: "auth" });
    const net = r.counter("xs_failures_total", "Failures by kind.", { kind: "net\"work\n" });
    const heap = r.gauge("xs_heap_bytes", "Heap.\nSecond line \\ here", { state: "free" });
    renewals.inc();
    renewals.inc(2);
    renewals.inc(-5); // counters only go up
    auth.set(7);
    net.inc();
    heap.set(204800);
    heap.dec(800);
    assert.equal(
      r.render(),
      "# HELP xs_renewals_total Lease renewals.\n" +
        "# TYPE xs_renewals_total counter\n" +
        "xs_renewals_total 3\n" +
        "# HELP xs_failures_total Failures by kind.\n" +
        "# TYPE xs_failures_total counter\n" +
        'xs_failures_total{kind="auth"} 7\n' +
        'xs_failures_total{kind="net\\"work\\n"} 1\n' +
        "# HELP xs_heap_bytes Heap.\\nSecond line \\\\ here\n" +
        "# TYPE xs_heap_bytes gauge\n" +
        'xs_heap_bytes{state="free"} 204000\n',
    );
  });

  it("renders histograms: cumulative buckets with le, +Inf, _sum and _count", () => {
    const r = new MetricsRegistry();
    const h = r.histogram("xs_duration_seconds", "Durations.", [0.005, 0.1, 1]);
    const l = r.histogram("xs_labelled_seconds", "Labelled.", [0.5], { route: "pods" });
    for (const v of [0.001, 0.005, 0.05, 0.5, 3]) h.observe(v);
    l.observe(0.25);
    assert.equal(h.count, 5);
    assert.equal(
      r.render(),
      "# HELP xs_duration_seconds Durations.\n" +
        "# TYPE xs_duration_seconds histogram\n" +
        'xs_duration_seconds_bucket{le="0.005"} 2\n' +
        'xs_duration_seconds_bucket{le="0.1"} 3\n' +
        'xs_duration_seconds_bucket{le="1"} 4\n' +
        'xs_duration_seconds_bucket{le="+Inf"} 5\n' +
        "xs_duration_seconds_sum 3.556\n" +
        "xs_duration_seconds_count 5\n" +
        "# HELP xs_labelled_seconds Labelled.\n" +
        "# TYPE xs_labelled_seconds histogram\n" +
        'xs_labelled_seconds_bucket{route="pods",le="0.5"} 1\n' +
        'xs_labelled_seconds_bucket{route="pods",le="+Inf"} 1\n' +
        'xs_labelled_seconds_sum{route="pods"} 0.25\n' +
        'xs_labelled_seconds_count{route="pods"} 1\n',
    );
  });

  it("writes millisecond timestamps where a value was set with one", () => {
    const r = new MetricsRegistry();
    r.gauge("g", "G.").set(1.5, 1633253809720.4);
    assert.equal(r.render(), "# HELP g G.\n# TYPE g gauge\ng 1.5 1633253809720\n");
  });

  it("runs collect hooks at scrape time; one that throws is skipped and counted", () => {
    const r = new MetricsRegistry();
    const up = r.gauge("up_seconds", "Up.");
    let now = 10;
    r.collect(() => up.set(now));
    r.collect(() => {
      throw new Error("broken source");
    });
    assert.match(r.render(), /^up_seconds 10$/m);
    now = 20;
    assert.match(r.render(), /^up_seconds 20$/m);
    assert.equal(r.hookFailures, 2);
  });

  it("refuses what would make the set unbounded or ambiguous", () => {
    const r = new MetricsRegistry({ maxSeries: 3, maxHooks: 1 });
    r.counter("a_total", "A.", { k: "1" });
    assert.throws(() => r.counter("a_total", "A.", { k: "1" }), /registered twice/);
    assert.throws(() => r.gauge("a_total", "A."), /is a counter/);
    assert.throws(() => r.counter("bad-name", "B."), /bad metric name/);
    assert.throws(() => r.counter("b", "B.", { __x: "1" }), /bad label name/);
    assert.throws(() => r.counter("b", "B.", { le: "1" }), /bad label name/);
    assert.throws(() => r.histogram("h", "H.", [1, 1]), /increasing/);
    r.histogram("h", "H.", [1], { a: "1" });
    assert.throws(() => r.histogram("h", "H.", [2], { a: "2" }), /same buckets/);
    r.counter("c", "C.");
    assert.throws(() => r.counter("d", "D."), /more than 3 series/);
    r.collect(() => {});
    assert.throws(() => r.collect(() => {}), /more than 1 collect hooks/);
  });

  it("the agent's own series, all at zero until the lead wires them", () => {
    const m = new AgentMetrics();
    m.inc(AGENT.leaseRenewals);
    m.failed("network");
    m.failed("network");
    m.inc(AGENT.failuresApi, -1); // counters only go up
    m.observe(0.2);
    m.set(AGENT.apiBytesSent, 1234);
    m.set(AGENT.heapFree, 150_000);
    m.set(AGENT.clockOffsetSeconds, -0.5);
    const text = m.render();
    for (const line of [
      "# TYPE xs_kubelet_lease_renewals_total counter",
      "xs_kubelet_lease_renewals_total 1",
      'xs_kubelet_failures_total{kind="auth"} 0',
      'xs_kubelet_failures_total{kind="certificate"} 0',
      'xs_kubelet_failures_total{kind="network"} 2',
      'xs_kubelet_failures_total{kind="api"} 0',
      "# TYPE xs_kubelet_api_request_duration_seconds histogram",
      'xs_kubelet_api_request_duration_seconds_bucket{le="0.005"} 0',
      'xs_kubelet_api_request_duration_seconds_bucket{le="0.25"} 1',
      'xs_kubelet_api_request_duration_seconds_bucket{le="10"} 1',
      'xs_kubelet_api_request_duration_seconds_bucket{le="+Inf"} 1',
      'xs_kubelet_api_bytes_total{direction="sent"} 1234',
      'xs_kubelet_api_bytes_total{direction="received"} 0',
      "xs_kubelet_tls_handshakes_total 0",
      "xs_kubelet_network_reconnects_total 0",
      'xs_kubelet_heap_bytes{state="free"} 150000',
      'xs_kubelet_heap_bytes{state="total"} 0',
      "# TYPE xs_kubelet_uptime_seconds gauge",
      "xs_kubelet_clock_offset_seconds -0.5",
      "xs_kubelet_watch_events_total 0",
      "xs_kubelet_http2_goaways_total 0",
    ]) {
      assert.ok(text.split("\n").includes(line), line);
    }
    assert.equal(text.split("\n").filter((l) => l.startsWith("# TYPE")).length, 11);
    assert.equal(DURATION_BUCKETS.length, 11);
    assert.equal(m.observed, 1);
  });

  it("the agent's series render as the registry renders the same series, byte for byte", () => {
    const m = new AgentMetrics();
    const r = new MetricsRegistry();
    const failures = "Failures of the agent's requests to the API server, by the kind of failure (the retry policy's kinds).";
    const bytes = "Bytes exchanged with the API server, over every connection.";
    const heap = "The agent's heap in bytes.";
    r.counter("xs_kubelet_lease_renewals_total", "Lease renewals the API server accepted.").set(7);
    for (const kind of ["auth", "certificate", "network", "api"] as const) r.counter("xs_kubelet_failures_total", failures, { kind }).set(kind === "api" ? 3 : 0);
    const h = r.histogram("xs_kubelet_api_request_duration_seconds", "Duration of the agent's requests to the API server, in seconds.", DURATION_BUCKETS);
    r.counter("xs_kubelet_api_bytes_total", bytes, { direction: "sent" }).set(1.616273408e9);
    r.counter("xs_kubelet_api_bytes_total", bytes, { direction: "received" });
    r.counter("xs_kubelet_tls_handshakes_total", "TLS handshakes with the API server (each costs the board about a second).").set(2);
    r.counter("xs_kubelet_network_reconnects_total", "Network reconnects (Wi-Fi drops, Ethernet link losses) since the host started.");
    r.gauge("xs_kubelet_heap_bytes", heap, { state: "free" }).set(1e-5);
    r.gauge("xs_kubelet_heap_bytes", heap, { state: "total" });
    r.gauge("xs_kubelet_uptime_seconds", "Seconds since the agent started.").set(95.5);
    r.gauge("xs_kubelet_clock_offset_seconds", "How far the last Date header moved the agent's wall clock, in seconds.").set(-0.25);
    r.counter("xs_kubelet_watch_events_total", "Watch events received.");
    r.counter("xs_kubelet_http2_goaways_total", "HTTP/2 GOAWAY frames received from the API server.").set(1);
    for (const d of [0.001, 0.2, 0.2, 3, 11, NaN]) {
      h.observe(d);
      m.observe(d);
    }
    m.set(AGENT.leaseRenewals, 7);
    for (let i = 0; i < 3; i++) m.failed("api");
    m.set(AGENT.apiBytesSent, 1.616273408e9);
    m.set(AGENT.tlsHandshakes, 2);
    m.set(AGENT.heapFree, 1e-5);
    m.set(AGENT.uptimeSeconds, 95.5);
    m.set(AGENT.clockOffsetSeconds, -0.25);
    m.set(AGENT.http2Goaways, 1);
    assert.equal(m.render(), r.render());
  });

  it("/metrics/resource: the kubelet's node lines, exactly", () => {
    assert.equal(METRICS_CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8");
    assert.equal(
      resourceMetricsText({ cpuSeconds: 357.35491, memoryWorkingSetBytes: 1616273408, timestampMs: 1633253809720 }),
      "# HELP node_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the node in core-seconds\n" +
        "# TYPE node_cpu_usage_seconds_total counter\n" +
        "node_cpu_usage_seconds_total 357.35491 1633253809720\n" +
        "# HELP node_memory_working_set_bytes [STABLE] Current working set of the node in bytes\n" +
        "# TYPE node_memory_working_set_bytes gauge\n" +
        "node_memory_working_set_bytes 1.616273408e+09 1633253809720\n",
    );
  });

  it("the live XS heap: /metrics shows the host's last sample as it is taken; no series where the host has none", async () => {
    const api = { certificate: new Uint8Array([0x30, 0]), key: new Uint8Array([0x30, 0]), port: 10250 };
    let sample: XsHeapSample | undefined;
    const r = rig({ kubeletApi: api, xsHeap: () => sample });
    const live = () => [...r.kubelet.apiServer!.render().matchAll(/^xs_kubelet_xs_heap_live_bytes\{heap="(\w+)"\} (\d+)$/gm)].map((m) => `${m[1]}=${m[2]}`);
    // Before the first sample the series hold 0: the Moddable host samples on first read, so only
    // a host without instrumentation answers undefined, and it registers no series (next rig).
    assert.deepEqual(live(), ["slots=0", "chunks=0"]);
    sample = { slotBytes: 160_064, chunkBytes: 71_520, slotSize: 32 };
    assert.deepEqual(live(), ["slots=160064", "chunks=71520"]);
    sample = { slotBytes: 150_016, chunkBytes: 70_000, slotSize: 32 };
    assert.deepEqual(live(), ["slots=150016", "chunks=70000"]);
    assert.match(r.kubelet.apiServer!.render(), /^# TYPE xs_kubelet_xs_heap_live_bytes gauge$/m);

    const none = rig({ kubeletApi: api });
    assert.doesNotMatch(none.kubelet.apiServer!.render(), /xs_kubelet_xs_heap/);
  });
});
