// The reference Prometheus text parser (github.com/prometheus/common/expfmt TextParser, built as the
// `promparse` command in tools/controlplane/metrics): what a kubelet's /metrics text must satisfy.
import { execFile } from "node:child_process";
import { ensureBuilt } from "../../tools/controlplane/build";

export interface PromSample {
  labels: Record<string, string>;
  /** A number, or "NaN", "+Inf", "-Inf"; for summaries and histograms the sum. */
  value: number | string;
  timestampMs: number | null;
  count?: number;
  quantiles?: Record<string, number | string>;
  buckets?: Record<string, number>;
}

export interface PromFamily {
  type: "counter" | "gauge" | "untyped" | "summary" | "histogram" | "gauge_histogram";
  help?: string;
  samples: PromSample[];
}

export type PromFamilies = Record<string, PromFamily>;

let bin: Promise<string> | undefined;

/** The path of the built promparse (building the metrics tools on first use: minutes, with progress). */
export function promparseBinary(log: (line: string) => void = (l) => process.stderr.write(`      ${l}\n`)): Promise<string> {
  bin ??= ensureBuilt(log, ["metrics"]).then((b) => b.bin("promparse"));
  return bin;
}

/** Parses Prometheus text; rejects with the parser's own message when the text is not valid. */
export async function promparse(text: string | Uint8Array): Promise<PromFamilies> {
  const file = await promparseBinary();
  return new Promise((resolve, reject) => {
    const child = execFile(file, [], { maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(Object.assign(new Error(stderr.trim() || err.message), { code: (err as NodeJS.ErrnoException).code }));
      else resolve(JSON.parse(stdout));
    });
    child.stdin!.end(text);
  });
}
