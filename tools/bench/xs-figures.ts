// The agent's cost inside the real XS engine (@agoric/xsnap): compute meter units per renewal, status
// push, watch event, served request and boot, and live slots after a collection. Deterministic (the
// scenarios run in virtual time with seeded jitter; the meter counts XS's own operations), so the
// figures are the same on every machine and a committed baseline can gate them: test/xs/baseline.test.ts
// fails when one grows by more than 10 %. `npm run bench:baseline` rewrites bench/baseline.json —
// commit it with the reason in the message.
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { bundleScenarios, type XsRun } from "../xs/bundle";

export interface XsFigures {
  /** Meter units per steady-state renewal over h2 (status checks and the watches included). */
  computePerRenewal: number;
  computePerRenewalH1: number;
  /** Per Node status push (a MemoryPressure flip), the push's echo on the agent's Node watch included. */
  computePerStatusPush: number;
  /** Per event on the agent's Node watch (an edit by someone else). */
  computePerWatchEvent: number;
  /** Per /metrics request served on the kubelet API (auth cached, render, HTTP/1.1; TLS not included). */
  computePerServedRequest: number;
  /** From power-up to the Node registered and the Lease renewed once. */
  computePerBoot: number;
  /** Live XS slots a minute into a run, h2 (the scripted server's objects included: only differences are the agent's alone). */
  slotsRunningH2: number;
  slotsRunningH1: number;
  /** Live slots per running hello pod (four pods minus none, a minute in). */
  slotsPerPod: number;
}

export const BASELINE_FILE = fileURLToPath(new URL("../../bench/baseline.json", import.meta.url));
/** A figure may grow this much over the committed baseline before CI fails. */
export const BASELINE_TOLERANCE = 0.1;

export async function xsFigures(progress: (line: string) => void = () => undefined): Promise<XsFigures> {
  const xs = await bundleScenarios();
  try {
    const agent = (run: XsRun) => run.compute - (run.reply.serverCompute ?? 0);
    const runs: Record<string, XsRun> = {};
    for (const name of [
      "boot, register, renew for a minute",
      "steady state for ten minutes",
      "steady state for ten minutes over HTTP/1.1",
      "two minutes, no churn",
      "two minutes, 6 MemoryPressure flips",
      "two minutes, 30 edits of the Node",
      "a minute with the kubelet API open, not scraped",
      "a minute with the kubelet API open, /metrics scraped 10 times",
      "boot to registered",
    ]) {
      progress(`XS: ${name}`);
      const run = await xs.run(name);
      if (!run.reply.ok) throw new Error(`XS scenario "${name}": ${run.reply.error}`);
      runs[name] = run;
    }
    const r = (name: string) => runs[name].reply.result!;
    const per = (a: string, b: string, count: (n: string) => number) => Math.round((agent(runs[a]) - agent(runs[b])) / (count(a) - count(b)));
    const renewals = (n: string) => r(n).renewals;
    progress("XS: live slots (h2, HTTP/1.1, four pods)");
    const h2 = await xs.heap("h2");
    const h1 = await xs.heap("http/1.1");
    const pods = await xs.heap("h2+4pods");
    // HTTP/1.1 has no one-minute run of its own: its ten minutes minus the h2 minute's boot is the
    // closest like-for-like, so it is per renewal over ten minutes, boot included.
    return {
      computePerRenewal: per("steady state for ten minutes", "boot, register, renew for a minute", renewals),
      computePerRenewalH1: Math.round(agent(runs["steady state for ten minutes over HTTP/1.1"]) / renewals("steady state for ten minutes over HTTP/1.1")),
      computePerStatusPush: per("two minutes, 6 MemoryPressure flips", "two minutes, no churn", (n) => r(n).pushes!),
      computePerWatchEvent: per("two minutes, 30 edits of the Node", "two minutes, no churn", (n) => r(n).watchEvents!),
      computePerServedRequest: Math.round((agent(runs["a minute with the kubelet API open, /metrics scraped 10 times"]) - agent(runs["a minute with the kubelet API open, not scraped"])) / 10),
      computePerBoot: agent(runs["boot to registered"]),
      slotsRunningH2: h2.running,
      slotsRunningH1: h1.running,
      slotsPerPod: Math.round((pods.running - h2.running) / 4),
    };
  } finally {
    xs.dispose();
  }
}

export function readBaseline(): { figures: XsFigures; date: string } {
  return JSON.parse(readFileSync(BASELINE_FILE, "utf8"));
}

/** Lines for the figures against the baseline; `grown` lists the ones past the tolerance. */
export function compareToBaseline(now: XsFigures, base: XsFigures): { lines: string[]; grown: string[]; shrunk: string[] } {
  const lines: string[] = [];
  const grown: string[] = [];
  const shrunk: string[] = [];
  for (const key of Object.keys(base) as (keyof XsFigures)[]) {
    const ratio = now[key] / base[key];
    const change = `${ratio >= 1 ? "+" : ""}${((ratio - 1) * 100).toFixed(1)} %`;
    lines.push(`${key.padEnd(24)} ${String(now[key]).padStart(9)}  baseline ${String(base[key]).padStart(9)}  ${change}`);
    if (!(ratio <= 1 + BASELINE_TOLERANCE)) grown.push(`${key} ${now[key]} is ${change} over the baseline ${base[key]}`);
    else if (ratio < 1 - BASELINE_TOLERANCE) shrunk.push(key);
  }
  for (const key of Object.keys(now)) if (!(key in base)) grown.push(`${key} has no baseline: run npm run bench:baseline`);
  return { lines, grown, shrunk };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const figures = await xsFigures((l) => console.log(`[xs] ${l}`));
  if (process.argv.includes("--update")) {
    writeFileSync(BASELINE_FILE, `${JSON.stringify({ date: new Date().toISOString().slice(0, 10), engine: "@agoric/xsnap 0.15.0 (XS meters)", figures }, null, 2)}\n`);
    console.log(`wrote ${BASELINE_FILE}: commit it, saying why the figures moved`);
  }
  console.log(JSON.stringify(figures, null, 2));
}
