// The soak's XS side, run by tools/xs/soak.ts in its own process (@agoric/xsnap needs SES globals
// that must not leak into the caller): one xsnap worker, one agent (tools/xs/soak-entry.ts), driven
// checkpoint by checkpoint. Each checkpoint is several deliveries of at most `step` renewals (so no
// delivery comes near the crank's meter limit), then gc(), the live slots and a snapshot's size (the
// live bytes, the interned keys). Prints one JSON line per checkpoint on stdout as it goes (a SoakLine,
// tools/xs/soak.ts), so the caller can show progress.
import "@endo/init";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import { type } from "node:os";
import { xsnap, type MeterUsage } from "@agoric/xsnap";
import type { SoakCounts, SoakMix } from "./soak-entry";

const [bundleFile, planJson] = process.argv.slice(2);
const plan: { checkpoints: number[]; step: number; mix: SoakMix } = JSON.parse(planJson);

/**
 * The per-delivery meter limit: a step of `plan.step` renewals with its pushes, events and scrapes
 * is a few hundred million units; the limit is there to stop a runaway, below 2^31 because XS hands
 * the meter to JavaScript (resetMeter, for the server's share) as a signed 32-bit integer.
 */
const METER_LIMIT = 2_000_000_000;

let reply: SoakCounts | undefined;
const worker = await xsnap({
  os: type(),
  spawn: spawn as any,
  fs: { ...fs.promises, createReadStream: fs.createReadStream } as any,
  name: "xs-kubelet-soak",
  stderr: "inherit",
  stdout: "inherit",
  meteringLimit: METER_LIMIT,
  handleCommand: async (message: Uint8Array) => {
    reply = JSON.parse(new TextDecoder().decode(message));
    return new Uint8Array();
  },
});

// Stopped early by the caller (a runaway heap, tools/xs/soak.ts): the worker goes too, mid-delivery.
process.on("SIGTERM", () => {
  void worker.terminate().catch(() => undefined);
  process.exit(143);
});

/** A command to the entry (tools/xs/soak-entry.ts: start, run, gc), with XS's meters for it. */
async function command(op: string, ...args: number[]): Promise<MeterUsage> {
  return (await worker.issueStringCommand(JSON.stringify({ op, args }))).meterUsage;
}

async function deliver(op: string, ...args: number[]): Promise<{ counts: SoakCounts; compute: number }> {
  reply = undefined;
  const meterUsage = await command(op, ...args);
  const counts = reply as SoakCounts | undefined;
  if (!counts) throw new Error(`${op}(${args}): no report inside the delivery (the agent's work did not settle)`);
  if (!counts.ok) throw new Error(`${op}(${args}): ${counts.error}`);
  return { counts, compute: meterUsage.compute ?? NaN };
}

/**
 * The live heap: the size of a snapshot of the machine, which XS writes after a full collection —
 * the live slots, the chunks they reference (strings, array items, closures' code) exactly measured,
 * and the key table — with its sections apart. Live slots alone miss a leak of strings or numbers
 * kept in an array (array items are chunk memory in XS, not slots); this does not. Keys are property
 * names XS interned: it never frees them, so a name made up at run time is a leak of its own.
 */
async function liveHeap(): Promise<{ bytes: number; chunkBytes: number; keys: number }> {
  const parts: Uint8Array[] = [];
  for await (const chunk of worker.makeSnapshotStream("soak checkpoint")) parts.push(chunk);
  const all = Buffer.concat(parts);
  // "XS_M" after the total size, then sections: a big-endian size (its 8-byte head included), a tag.
  const sections = new Map<string, number>();
  for (let at = 8; at + 8 <= all.length; ) {
    const size = all.readUInt32BE(at);
    sections.set(all.toString("latin1", at + 4, at + 8), size - 8);
    if (size < 8) break;
    at += size;
  }
  return { bytes: all.length, chunkBytes: sections.get("BLOC") ?? NaN, keys: (sections.get("KEYS") ?? NaN) / 8 };
}

const out = (value: unknown) => process.stdout.write(`${JSON.stringify(value)}\n`);
try {
  await worker.evaluate(fs.readFileSync(bundleFile, "utf8"));
  const boot = await deliver("start", plan.mix.flip, plan.mix.edit, plan.mix.scrape);
  const booted = await command("gc");
  out({ checkpoint: 0, counts: boot.counts, renewalsInChunk: boot.counts.renewals, agentCompute: boot.compute - boot.counts.serverCompute, serverCompute: boot.counts.serverCompute, slots: booted.currentHeapCount, ...(await liveHeap()), wallMs: 0 });
  const t0 = Date.now();
  let counts = boot.counts;
  for (const [i, target] of plan.checkpoints.entries()) {
    let agent = 0;
    let server = 0;
    const from = counts.renewals;
    while (counts.renewals < target) {
      const next = Math.min(target, counts.renewals + plan.step);
      // A cycle renews about once; twice as many cycles as renewals means the agent stopped renewing.
      const step = await deliver("run", next, 2 * (next - counts.renewals) + 10);
      if (step.counts.renewals < next) throw new Error(`the agent renewed ${step.counts.renewals - counts.renewals} times in ${step.counts.cycles - counts.cycles} cycles of 10 s`);
      agent += step.compute - step.counts.serverCompute;
      server += step.counts.serverCompute;
      counts = step.counts;
    }
    // A full collection, then the slots still live, then the live bytes and keys.
    const heap = await command("gc");
    out({ checkpoint: i + 1, counts, renewalsInChunk: counts.renewals - from, agentCompute: agent, serverCompute: server, slots: heap.currentHeapCount, ...(await liveHeap()), wallMs: Date.now() - t0 });
  }
} finally {
  await worker.close();
}
