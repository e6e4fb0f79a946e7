// The soak (issue 13): ONE agent inside the real XS engine (@agoric/xsnap 0.15.0), in virtual time, for
// 100,000 Lease renewals (about 11.8 days), with status pushes (MemoryPressure flips), events on its
// Node watch (edits by someone else) and /metrics requests served on its kubelet API interleaved. At
// every checkpoint the worker collects garbage and reports the live slots and the live bytes (a
// snapshot's size); the agent's share of the compute meter (the scripted server's kept apart) is
// divided by the renewals in the chunk. The heap after GC must not grow and the compute per renewal
// must stay flat: judgeSoak says when either did.
//
// Run: test/xs/soak.test.ts (in `npm test`; XS_SOAK=full for FULL_SOAK), or
// `node --import tsx tools/xs/soak.ts [--full]`.
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { bundleForXs } from "./bundle";
import type { SoakCounts, SoakMix } from "./soak-entry";

export interface SoakPlan {
  /** Lease renewals in all (the warm-up chunk included). */
  renewals: number;
  /** Equal chunks of renewals; the first is the warm-up, the end of each a checkpoint. */
  checkpoints: number;
  /** Renewals per XS delivery (each delivery stays far below the crank's meter limit). */
  step: number;
  /** How often (in 10 s cycles) a MemoryPressure flip, a Node edit and a scrape come. */
  mix: SoakMix;
}

/**
 * What `npm test` runs, sized to its budget (about 4 min on a 2-core machine). A cycle of 10 s
 * renews once: about 129,000 meter units (agent 65,000, scripted server 64,000), and XS runs 70–100
 * million units a second on one core — so 100,000 renewals alone take about three minutes. A flip
 * (the push, its echo on the Node watch, the Event it records) costs ~300,000 units, an edit
 * ~127,000, a scrape ~58,000: all of them in every cycle is ~630,000 a cycle, 6.3·10^10 units for
 * 100,000 of each, 11–12 min of CPU (FULL_SOAK, by hand). So every cycle renews, one in 16 flips
 * and one in 16 edits, one in 8 scrapes: ~162,000 units a renewal (agent 86,000), 3.3 min of CPU.
 */
export const CI_SOAK: SoakPlan = { renewals: 100_000, checkpoints: 10, step: 500, mix: { flip: 16, edit: 16, scrape: 8 } };
/** 100,000 of each (renewals, pushes, Node edits, served requests): `--full`, by hand. */
export const FULL_SOAK: SoakPlan = { renewals: 100_000, checkpoints: 10, step: 250, mix: { flip: 1, edit: 1, scrape: 1 } };

/** One checkpoint as the driver reports it (tools/xs/soak-driver.ts); checkpoint 0 is the boot. */
export interface SoakLine {
  checkpoint: number;
  counts: SoakCounts;
  renewalsInChunk: number;
  /** Meter units over the chunk: the agent's, and the scripted server's (and the rig's). */
  agentCompute: number;
  serverCompute: number;
  /** Live XS slots after a full collection. */
  slots: number;
  /** Live bytes: the size of a snapshot of the machine (after a collection: slots, chunks, keys). */
  bytes: number;
  /** Of which chunks (strings, array items, code …). */
  chunkBytes: number;
  /** Property names XS has interned (never freed). */
  keys: number;
  /** Since the end of the boot. */
  wallMs: number;
}

/** What the judge looks at, one per checkpoint: the boot's, the warm-up's end, then every chunk's end. */
export interface SoakPoint {
  renewals: number;
  slots: number;
  bytes: number;
  /** Property names XS has interned. */
  keys: number;
  /** The agent's compute per renewal over the chunk that ended here. */
  agentPerRenewal: number;
}

export const SOAK_LIMITS = Object.freeze({
  /**
   * Live slots may end this many above the end of the warm-up. XS counts live slots exactly (the
   * sweep counts them: no allocation granularity in this figure) and the run is deterministic, but a
   * checkpoint catches the bounded tables at different points of their churn: the scripted server's
   * last 200 events per kind, each holding a Node or Lease whose slots depend on what changed it; the
   * virtual clock's cleared timers waiting for their time; the HPACK tables' entries; the event
   * recorder's queue. Observed spread: under 500 slots of ~42,000. 1,000 is 2.4 % of the heap, and
   * a leak of one object per 90 renewals (or per 6 pushes, or per 6 scrapes) goes over it.
   */
  slots: 1000,
  /**
   * Live bytes (a snapshot's size) may end this many above the end of the warm-up: the same churn,
   * in bytes (strings of varying length in those tables). XS keeps strings and array items in chunks,
   * not slots, so a leak of strings or numbers into an array shows here only. The space XS has
   * allocated from the system (meterUsage.allocate) would not do: it grows in 4 MiB increments.
   */
  bytes: 64 * 1024,
  /**
   * Interned property names may end this many above the warm-up's. XS never frees a key; after the
   * warm-up every path the soak drives has run, so a new one is mostly a name made up at run time
   * (from data: a label, an annotation, a header) — each one a leak for good on the board. A few
   * allow a rare path first taken late (a timeout, a retry).
   */
  keys: 8,
  /**
   * The warm-up fills the bounded tables (the booted agent's ~26,000 slots become ~42,000); a heap
   * that more than triples in it is a leak already, no need to wait for the end of the run.
   */
  warmup: 3,
  /** The last chunk's agent compute per renewal may be this much over the first after the warm-up. */
  compute: 0.05,
});

export type SoakLimits = { slots: number; bytes: number; keys: number; warmup: number; compute: number };

export interface SoakVerdict {
  failures: string[];
  /** Live slots and bytes at the end minus at the end of the warm-up. */
  slotRise: number;
  byteRise: number;
  keyRise: number;
  /** The last chunk's agent compute per renewal over the first post-warm-up chunk's, minus 1 (NaN: not judged, too few chunks). */
  computeChange: number;
}

/** Rose at every checkpoint: a trend, however small each step (at least three steps). */
const rising = (values: number[]) => values.length >= 4 && values.slice(1).every((v, i) => v > values[i]);

/**
 * The soak's judge (pure). points[0] is the boot; points[1] the end of the warm-up chunk: its live
 * slots and bytes are the heap reference; the chunk ending at points[2] is the first after the
 * warm-up: its compute per renewal is the compute reference (the warm-up chunk still fills bounded
 * tables). Fails when the warm-up more than triples (limits.warmup) the booted heap; when the live
 * slots or bytes end more than limits.slots / limits.bytes above the reference, or rose at every
 * checkpoint after it; when the interned keys end more than limits.keys above it; when the last chunk's compute per renewal is more than limits.compute over
 * the reference. A run stopped early (runaway) is judged on what it has.
 */
export function judgeSoak(points: readonly SoakPoint[], limits: SoakLimits = SOAK_LIMITS): SoakVerdict {
  if (points.length < 2) return { failures: [`${points.length} checkpoints: the judge needs the boot's and the warm-up's at least`], slotRise: NaN, byteRise: NaN, keyRise: NaN, computeChange: NaN };
  const failures: string[] = [];
  const [boot, first] = points;
  const last = points[points.length - 1];
  const after = points.slice(1);
  if (!(first.slots <= limits.warmup * boot.slots && first.bytes <= limits.warmup * boot.bytes)) {
    failures.push(`the warm-up took the heap from ${boot.slots} live slots, ${kib(boot.bytes)} (booted) to ${first.slots}, ${kib(first.bytes)} at ${first.renewals} renewals: more than ×${limits.warmup}`);
  }
  const slotRise = last.slots - first.slots;
  if (!(slotRise <= limits.slots)) failures.push(`live slots after GC grew by ${slotRise} (${first.slots} after the warm-up at ${first.renewals} renewals, ${last.slots} at ${last.renewals}): over the ${limits.slots} allowed`);
  if (rising(after.map((p) => p.slots))) failures.push(`live slots after GC rose at every one of the ${after.length - 1} checkpoints after the warm-up (${after.map((p) => p.slots).join(" → ")}): a trend`);
  const byteRise = last.bytes - first.bytes;
  if (!(byteRise <= limits.bytes)) failures.push(`live bytes after GC grew by ${kib(byteRise)} (${kib(first.bytes)} after the warm-up at ${first.renewals} renewals, ${kib(last.bytes)} at ${last.renewals}): over the ${kib(limits.bytes)} allowed`);
  if (rising(after.map((p) => p.bytes))) failures.push(`live bytes after GC rose at every one of the ${after.length - 1} checkpoints after the warm-up (${after.map((p) => p.bytes).join(" → ")}): a trend`);
  const keyRise = last.keys - first.keys;
  if (!(keyRise <= limits.keys)) failures.push(`XS interned ${keyRise} more property names after the warm-up (${first.keys} → ${last.keys}; it never frees them): over the ${limits.keys} allowed`);
  let computeChange = NaN;
  if (points.length >= 4) {
    computeChange = last.agentPerRenewal / points[2].agentPerRenewal - 1;
    if (!(computeChange <= limits.compute)) {
      failures.push(`agent compute per renewal went from ${Math.round(points[2].agentPerRenewal)} (first chunk after the warm-up) to ${Math.round(last.agentPerRenewal)} (last): ${(computeChange * 100).toFixed(1)} %, over the ${limits.compute * 100} % allowed`);
    }
  }
  return { failures, slotRise, byteRise, keyRise, computeChange };
}

const kib = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`;

/**
 * A heap so far gone that the rest of the run cannot change the verdict: the warm-up over its
 * bound, or live slots or bytes ten tolerances above the warm-up's. A leaking agent's collections
 * get slower with every chunk (the meter does not count them, the wall clock does): the soak stops
 * there and fails at once instead of running into the test's timeout.
 */
export function runaway(points: readonly SoakPoint[], limits: SoakLimits = SOAK_LIMITS): boolean {
  if (points.length < 2) return false;
  const [boot, first] = points;
  const last = points[points.length - 1];
  return first.slots > limits.warmup * boot.slots || first.bytes > limits.warmup * boot.bytes || last.slots - first.slots > 10 * limits.slots || last.bytes - first.bytes > 10 * limits.bytes;
}

export const pointOf = (line: SoakLine): SoakPoint => ({ renewals: line.counts.renewals, slots: line.slots, bytes: line.bytes, keys: line.keys, agentPerRenewal: line.agentCompute / line.renewalsInChunk });

export const SOAK_HEADER = "checkpoint  renewals  pushes  watch events  node edits   served  live slots  live KiB  keys  agent/renewal  server/renewal  wall s";

/** A row of the table (checkpoint 0: the boot, its compute per renewal is the boot's). */
export function soakRow(line: SoakLine): string {
  const c = line.counts;
  const cell = (v: number | string, w: number) => String(v).padStart(w);
  return [
    cell(line.checkpoint === 0 ? "boot" : line.checkpoint, 10),
    cell(c.renewals, 9),
    cell(c.pushes, 7),
    cell(c.watchEvents, 13),
    cell(c.edits, 11),
    cell(c.served, 8),
    cell(line.slots, 11),
    cell((line.bytes / 1024).toFixed(1), 9),
    cell(line.keys, 5),
    cell(Math.round(line.agentCompute / Math.max(1, line.renewalsInChunk)), 14),
    cell(Math.round(line.serverCompute / Math.max(1, line.renewalsInChunk)), 15),
    cell((line.wallMs / 1000).toFixed(1), 7),
  ].join(" ");
}

/** +12 / -3 / +0.05 */
export const signed = (n: number, digits = 0) => `${n >= 0 ? "+" : ""}${n.toFixed(digits)}`;

/**
 * Runs the plan in one xsnap worker (a separate process); onLine gets each checkpoint as it comes
 * and may answer false to stop the run there (the lines so far are the result; stopped is true).
 */
export async function runSoak(plan: SoakPlan, onLine: (line: SoakLine) => boolean | void = () => undefined): Promise<{ lines: SoakLine[]; stopped: boolean }> {
  const bundle = await bundleForXs("./soak-entry.ts");
  try {
    const per = plan.renewals / plan.checkpoints;
    const checkpoints = Array.from({ length: plan.checkpoints }, (_, i) => Math.round(per * (i + 1)));
    const args = ["--import", "tsx", fileURLToPath(new URL("./soak-driver.ts", import.meta.url)), bundle.file, JSON.stringify({ checkpoints, step: plan.step, mix: plan.mix })];
    return await new Promise<{ lines: SoakLine[]; stopped: boolean }>((resolve, reject) => {
      const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] });
      const lines: SoakLine[] = [];
      let stopped = false;
      let pending = "";
      let stderr = "";
      child.stdout.setEncoding("utf8");
      child.stdout.on("data", (text: string) => {
        pending += text;
        for (let nl = pending.indexOf("\n"); nl >= 0; nl = pending.indexOf("\n")) {
          const row = pending.slice(0, nl).trim();
          pending = pending.slice(nl + 1);
          if (!row.startsWith("{") || stopped) continue; // anything the engine printed
          const line = JSON.parse(row) as SoakLine;
          lines.push(line);
          if (onLine(line) === false) {
            stopped = true;
            child.kill(); // the driver's worker goes with it (xsnap's child, on its pipe closing)
          }
        }
      });
      child.stderr.setEncoding("utf8");
      child.stderr.on("data", (text: string) => void (stderr += text));
      child.on("error", reject);
      child.on("close", (code) => {
        if (stopped) resolve({ lines, stopped });
        else if (code !== 0) reject(new Error(`the soak's xsnap driver failed (exit ${code}): ${stderr.trim().slice(-4000)}`));
        else if (lines.length !== plan.checkpoints + 1) reject(new Error(`the soak reported ${lines.length} of ${plan.checkpoints + 1} checkpoints`));
        else resolve({ lines, stopped });
      });
    });
  } finally {
    bundle.dispose();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const plan = process.argv.includes("--full") ? FULL_SOAK : CI_SOAK;
  console.log(`soak: ${plan.renewals} renewals in ${plan.checkpoints} chunks, mix ${JSON.stringify(plan.mix)}`);
  console.log(SOAK_HEADER);
  const seen: SoakLine[] = [];
  const { lines, stopped } = await runSoak(plan, (line) => {
    console.log(soakRow(line));
    seen.push(line);
    return !runaway(seen.map(pointOf));
  });
  if (stopped) console.log(`stopped after checkpoint ${lines.length - 1}: the heap ran away`);
  const verdict = judgeSoak(lines.map(pointOf));
  console.log(`after the warm-up: live slots ${signed(verdict.slotRise)}, live bytes ${signed(verdict.byteRise / 1024, 1)} KiB, keys ${signed(verdict.keyRise)}, agent compute per renewal ${signed(verdict.computeChange * 100, 2)} %`);
  for (const f of verdict.failures) console.log(`FAIL: ${f}`);
  process.exitCode = verdict.failures.length ? 1 : 0;
}
