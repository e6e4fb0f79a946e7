// A small metrics registry and the Prometheus text exposition format 0.0.4. Every series is
// registered up front (a fixed, bounded set: no label values ever come from a request), values are
// plain numbers updated in place, and a scrape renders the whole registry as one string. Numbers are
// written as Go's strconv.FormatFloat(v, 'g', -1, 64) writes them (client_golang, so the kubelet),
// e.g. 1.616273408e+09: what the cluster's scrapers already see from real kubelets.

/** The exposition format's Content-Type (the kubelet's and client_golang's). */
export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

export type MetricType = "counter" | "gauge" | "histogram";

/** One series' labels: name → value (a fixed value, chosen by the code, never by a request). */
export type Labels = Readonly<Record<string, string>>;

export interface RegistryOptions {
  /** Series in all (each label set of a family counts one): registration beyond it throws. 64: the
   * agent registers a few (its own fixed set is AgentMetrics), and a scrape stays a few KiB. */
  maxSeries?: number;
  /** Collect hooks (called at scrape time): 16. */
  maxHooks?: number;
}

/** A counter or a gauge series. */
export interface ValueHandle {
  readonly value: number;
  /** Adds n (default 1). A counter ignores a negative n (counters only go up). */
  inc(n?: number): void;
  /** Sets the value (a counter mirroring a total kept elsewhere, a gauge); timestampMs: written after
   * the value (milliseconds since the epoch), undefined for none. */
  set(value: number, timestampMs?: number): void;
}

export interface GaugeHandle extends ValueHandle {
  dec(n?: number): void;
}

export interface HistogramHandle {
  /** Counts v into every bucket whose upper bound is ≥ v, and into _sum and _count. */
  observe(v: number): void;
  readonly count: number;
  readonly sum: number;
}

interface Series {
  labels: string; // rendered {a="b",…} or ""
  key: string; // canonical label text, to refuse a duplicate
  value: number;
  timestampMs: number | undefined;
  counts?: number[]; // histograms: per bucket (not cumulative)
  sum: number;
  count: number;
}

interface Family {
  name: string;
  help: string;
  type: MetricType;
  buckets?: number[];
  series: Series[];
}

// Checked with regexps made per call: a RegExp at module level cannot be preloaded into flash (xsl
// refuses it), and these run only when a series is registered.
const isName = (s: string) => /^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(s);
const isLabel = (s: string) => /^[a-zA-Z_][a-zA-Z0-9_]*$/.test(s);

/** Buckets for request durations in seconds: 5 ms … 10 s (client_golang's DefBuckets). */
export const DURATION_BUCKETS: readonly number[] = Object.freeze([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]);

/** A label value in the text format: backslash, double quote and newline escaped. */
export function escapeLabelValue(value: string): string {
  return value.replace(/[\\"\n]/g, (c) => (c === "\n" ? "\\n" : `\\${c}`));
}

/** HELP text: backslash and newline escaped (a double quote stays). */
export function escapeHelp(text: string): string {
  return text.replace(/[\\\n]/g, (c) => (c === "\n" ? "\\n" : "\\\\"));
}

/** Go's strconv.FormatFloat(v, 'g', -1, 64): the shortest digits that read back as v, in exponent
 * form when the decimal exponent is < -4 or ≥ 6 (Go's rule for the shortest precision), e.g.
 * 1616273408 → "1.616273408e+09", 0.005 → "0.005", 1e-5 → "1e-05". */
export function formatFloat(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  if (v === 0) return Object.is(v, -0) ? "-0" : "0";
  const sign = v < 0 ? "-" : "";
  // toExponential() without an argument gives the shortest digits that read back as v.
  const e = Math.abs(v).toExponential();
  const at = e.indexOf("e");
  const digits = e.slice(0, at).replace(".", "");
  const exp = Number(e.slice(at + 1));
  if (exp < -4 || exp >= 6) {
    const mantissa = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    const abs = Math.abs(exp);
    return `${sign}${mantissa}e${exp < 0 ? "-" : "+"}${abs < 10 ? "0" : ""}${abs}`;
  }
  if (exp < 0) return `${sign}0.${"0".repeat(-exp - 1)}${digits}`;
  if (digits.length <= exp + 1) return `${sign}${digits}${"0".repeat(exp + 1 - digits.length)}`;
  return `${sign}${digits.slice(0, exp + 1)}.${digits.slice(exp + 1)}`;
}

/** One sample line: name{labels} value [timestampMs]. labels: already rendered ("" or {…}). */
export function sampleLine(name: string, labels: string, value: number, timestampMs?: number): string {
  return `${name}${labels} ${formatFloat(value)}${timestampMs === undefined ? "" : ` ${Math.round(timestampMs)}`}\n`;
}

/** # HELP and # TYPE lines of a family. */
export function familyHead(name: string, help: string, type: MetricType): string {
  return `# HELP ${name} ${escapeHelp(help)}\n# TYPE ${name} ${type}\n`;
}

function renderLabels(labels: Labels | undefined): { text: string; key: string } {
  if (!labels) return { text: "", key: "" };
  const names = Object.keys(labels);
  if (names.length === 0) return { text: "", key: "" };
  const parts: string[] = [];
  for (const n of names) {
    if (!isLabel(n) || n.startsWith("__") || n === "le") throw new Error(`metrics: bad label name "${n}"`);
    parts.push(`${n}="${escapeLabelValue(String(labels[n]))}"`);
  }
  return { text: `{${parts.join(",")}}`, key: parts.slice().sort().join(",") };
}

export class MetricsRegistry {
  #families: Family[] = [];
  #byName = new Map<string, Family>();
  #hooks: (() => void)[] = [];
  #seriesCount = 0;
  #maxSeries: number;
  #maxHooks: number;
  /** Collect hooks that threw (they are skipped for that scrape, not fatal). */
  hookFailures = 0;

  constructor(options: RegistryOptions = {}) {
    this.#maxSeries = options.maxSeries ?? 64;
    this.#maxHooks = options.maxHooks ?? 16;
  }

  /** A counter series; a second call with the same name and other labels adds a series to the family. */
  counter(name: string, help: string, labels?: Labels): ValueHandle {
    return new Counter(this.#series(name, help, "counter", labels));
  }

  gauge(name: string, help: string, labels?: Labels): GaugeHandle {
    return new Gauge(this.#series(name, help, "gauge", labels));
  }

  /** A histogram series with fixed, increasing, finite upper bounds (+Inf is implied). */
  histogram(name: string, help: string, buckets: readonly number[] = DURATION_BUCKETS, labels?: Labels): HistogramHandle {
    for (let i = 0; i < buckets.length; i++) {
      if (!Number.isFinite(buckets[i]) || (i > 0 && buckets[i] <= buckets[i - 1])) throw new Error(`metrics: ${name}: buckets must be finite and increasing`);
    }
    const s = this.#series(name, help, "histogram", labels, buckets);
    const bounds = this.#byName.get(name)!.buckets!;
    s.counts = new Array(bounds.length).fill(0);
    return new Histogram(s, bounds);
  }

  /** A function called at every scrape before rendering (to refresh gauges from their sources). */
  collect(hook: () => void): void {
    if (this.#hooks.length >= this.#maxHooks) throw new Error(`metrics: more than ${this.#maxHooks} collect hooks`);
    this.#hooks.push(hook);
  }

  /** Runs the collect hooks and renders every family in the text format, in registration order. */
  render(): string {
    for (const hook of this.#hooks) {
      try {
        hook();
      } catch {
        this.hookFailures++;
      }
    }
    const out: string[] = [];
    for (const f of this.#families) {
      out.push(familyHead(f.name, f.help, f.type));
      for (const s of f.series) {
        if (f.type !== "histogram") {
          out.push(sampleLine(f.name, s.labels, s.value, s.timestampMs));
          continue;
        }
        const bounds = f.buckets!;
        const inner = s.labels ? `${s.labels.slice(0, -1)},` : "{";
        let cumulative = 0;
        for (let i = 0; i < bounds.length; i++) {
          cumulative += s.counts![i];
          out.push(sampleLine(`${f.name}_bucket`, `${inner}le="${formatFloat(bounds[i])}"}`, cumulative));
        }
        out.push(sampleLine(`${f.name}_bucket`, `${inner}le="+Inf"}`, s.count));
        out.push(sampleLine(`${f.name}_sum`, s.labels, s.sum));
        out.push(sampleLine(`${f.name}_count`, s.labels, s.count));
      }
    }
    return out.join("");
  }

  #series(name: string, help: string, type: MetricType, labels: Labels | undefined, buckets?: readonly number[]): Series {
    if (!isName(name)) throw new Error(`metrics: bad metric name "${name}"`);
    const rendered = renderLabels(labels);
    let family = this.#byName.get(name);
    if (family) {
      if (family.type !== type) throw new Error(`metrics: ${name} is a ${family.type}, not a ${type}`);
      if (family.series.some((s) => s.key === rendered.key)) throw new Error(`metrics: ${name}${rendered.text} registered twice`);
      if (buckets && (buckets.length !== family.buckets!.length || buckets.some((b, i) => b !== family!.buckets![i]))) throw new Error(`metrics: ${name}: every series of a histogram has the same buckets`);
    }
    if (this.#seriesCount >= this.#maxSeries) throw new Error(`metrics: more than ${this.#maxSeries} series`);
    const s: Series = { labels: rendered.text, key: rendered.key, value: 0, timestampMs: undefined, counts: undefined, sum: 0, count: 0 };
    if (family) family.series.push(s);
    else {
      // Most families have one series: an array literal of one, not [] grown by a push (V8 gives that room for 17).
      family = { name, help, type, buckets: buckets ? buckets.slice() : undefined, series: [s] };
      this.#byName.set(name, family);
      this.#families.push(family);
    }
    this.#seriesCount++;
    return s;
  }
}

// The handles are small class instances over their series, not object literals of closures: a
// literal with a getter is a dictionary-mode object in V8 with three closures beside it (about
// 480 bytes a handle against 40), and in XS each closure is a function object of its own.

class Counter implements ValueHandle {
  protected series: Series;
  constructor(series: Series) {
    this.series = series;
  }
  get value(): number {
    return this.series.value;
  }
  inc(n = 1): void {
    if (!(n >= 0)) return; // counters only go up
    this.series.value += n;
  }
  set(value: number, timestampMs?: number): void {
    this.series.value = value;
    this.series.timestampMs = timestampMs;
  }
}

class Gauge extends Counter implements GaugeHandle {
  override inc(n = 1): void {
    this.series.value += n;
  }
  dec(n = 1): void {
    this.series.value -= n;
  }
}

class Histogram implements HistogramHandle {
  #s: Series;
  #bounds: readonly number[];
  constructor(series: Series, bounds: readonly number[]) {
    this.#s = series;
    this.#bounds = bounds;
  }
  observe(v: number): void {
    if (Number.isNaN(v)) return;
    const s = this.#s;
    const bounds = this.#bounds;
    for (let i = 0; i < bounds.length; i++) {
      if (v <= bounds[i]) {
        s.counts![i]++;
        break;
      }
    }
    s.sum += v;
    s.count++;
  }
  get count(): number {
    return this.#s.count;
  }
  get sum(): number {
    return this.#s.sum;
  }
}

/**
 * The live XS heap (hosts that sample it: Moddable debug builds), registered only there so that no
 * other host shows a false 0. Slot bytes are the build's: 16-byte slots on the board, 32 in a 64-bit
 * simulator.
 */
export function registerXsHeap(registry: MetricsRegistry): { slots: GaugeHandle; chunks: GaugeHandle } {
  const help = "The XS heap's live bytes at the agent's last sample after a collection (the figure the simulator's screen shows).";
  return { slots: registry.gauge("xs_kubelet_xs_heap_live_bytes", help, { heap: "slots" }), chunks: registry.gauge("xs_kubelet_xs_heap_live_bytes", help, { heap: "chunks" }) };
}

/** What /metrics/resource reports: the node's CPU (core-seconds) and working set, and when they were read. */
export interface ResourceReading {
  cpuSeconds: number;
  memoryWorkingSetBytes: number;
  /** Milliseconds since the epoch (the agent's wall clock). */
  timestampMs: number;
  /** The running containers (pods' workloads), as the kubelet's container series. */
  containers?: ContainerReading[];
}

export interface ContainerReading {
  namespace: string;
  pod: string;
  container: string;
  cpuSeconds: number;
  memoryWorkingSetBytes: number;
  /** When the instance started, epoch seconds. */
  startTimeSeconds: number;
}

/**
 * /metrics/resource as the kubelet writes its node part (pkg/kubelet/metrics/collectors/
 * resource_metrics.go; STABLE metrics get the "[STABLE] " help prefix from component-base).
 * metrics-server drops a node whose CPU, memory or timestamp is 0: the source must not report 0.
 */
export function resourceMetricsText(r: ResourceReading): string {
  let text =
    familyHead("node_cpu_usage_seconds_total", "[STABLE] Cumulative cpu time consumed by the node in core-seconds", "counter") +
    sampleLine("node_cpu_usage_seconds_total", "", r.cpuSeconds, r.timestampMs) +
    familyHead("node_memory_working_set_bytes", "[STABLE] Current working set of the node in bytes", "gauge") +
    sampleLine("node_memory_working_set_bytes", "", r.memoryWorkingSetBytes, r.timestampMs);
  const containers = r.containers ?? [];
  if (!containers.length) return text;
  const labels = (c: ContainerReading) => `{container="${escapeLabelValue(c.container)}",namespace="${escapeLabelValue(c.namespace)}",pod="${escapeLabelValue(c.pod)}"}`;
  text += familyHead("container_cpu_usage_seconds_total", "[STABLE] Cumulative cpu time consumed by the container in core-seconds", "counter");
  for (const c of containers) text += sampleLine("container_cpu_usage_seconds_total", labels(c), c.cpuSeconds, r.timestampMs);
  text += familyHead("container_memory_working_set_bytes", "[STABLE] Current working set of the container in bytes", "gauge");
  for (const c of containers) text += sampleLine("container_memory_working_set_bytes", labels(c), c.memoryWorkingSetBytes, r.timestampMs);
  text += familyHead("container_start_time_seconds", "[STABLE] Start time of the container since unix epoch in seconds", "gauge");
  for (const c of containers) text += sampleLine("container_start_time_seconds", labels(c), c.startTimeSeconds, r.timestampMs);
  return text;
}
