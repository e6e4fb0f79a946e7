// The fleet in virtual time: N agents, each on its own virtual host (its own sockets, store and
// GPIO), all against one scripted API on one virtual clock — deterministic, and far beyond what one
// control plane on this machine takes. What it measures: bytes each board writes and reads per minute
// (before TLS: the virtual host has none), renewals and their lateness in virtual time (timer order
// and the scripted API's answers; no network, so ~0 unless the agents fall behind themselves), the
// Node.js memory per agent, and the wall-clock cost of simulating a board-minute.
import type { Kubelet } from "../../modules/kubelet/kubelet";
import { agentCode } from "./agents";
import { percentile } from "../util/stats";

export interface VirtualFleetStep {
  count: number;
  minutes: number;
  renewals: number;
  /** Renewals the agents' Lease reconcilers counted per board per minute (6 at the default 10 s). */
  renewalsPerBoardPerMinute: number;
  latenessMs: { p50: number; p99: number; max: number };
  /** Bytes the agents wrote and read, per board per minute, over the whole run (boot included). */
  bytesPerAgentPerMinute: { written: number; read: number };
  /** V8 heap + external per agent after a collection, all agents running (scripted API's objects included). */
  memoryPerAgentBytes: number;
  /** Wall-clock milliseconds to simulate one board-minute (this machine). */
  wallMsPerBoardMinute: number;
  notRenewing: number;
}

const gc = () => (globalThis as { gc?: () => void }).gc?.();

export async function runVirtualFleet(options: { count: number; minutes: number; progress?: (line: string) => void }): Promise<VirtualFleetStep> {
  const { count, minutes } = options;
  const progress = options.progress ?? (() => undefined);
  const { createVirtualHost, FakeApi, Kubelet, VirtualTime } = await agentCode(); // the same bundle as the real fleet's (agents.ts)
  const time = new VirtualTime();
  const api = new FakeApi(time);
  gc();
  const before = process.memoryUsage();
  const wall0 = performance.now();
  const kubelets: Kubelet[] = [];
  const counters: { written: number; read: number }[] = [];
  const lateness: number[] = [];
  for (let i = 0; i < count; i++) {
    const counter = { written: 0, read: 0 };
    counters.push(counter);
    const host = createVirtualHost({
      time,
      handler: api.handle,
      http2: true,
      record: false,
      seed: i + 1,
      heap: () => ({ free: 200 * 1024, total: 256 * 1024 }),
      count: counter,
    });
    const kubelet = new Kubelet({ nodeName: `vboard-${i + 1}`, server: { host: "192.0.2.1", port: 6443 }, token: "t0ken", ledFps: 0, http: "h2" }, host);
    const onRenewed = kubelet.lease.onRenewed;
    kubelet.lease.onRenewed = (recovered) => {
      onRenewed?.(recovered);
      if (kubelet.lease.lastLatenessMs >= 0) lateness.push(kubelet.lease.lastLatenessMs);
    };
    kubelets.push(kubelet);
  }
  // Boards power up over the first ten virtual seconds, as a rack does.
  for (const [i, k] of kubelets.entries()) time.setTimer(() => k.start(), Math.floor((i * 10_000) / count));
  let measured = 0;
  for (let m = 0; m < minutes; m++) {
    await time.advance(60_000);
    if (m === 0) {
      gc();
      const mem = process.memoryUsage();
      measured = Math.round((mem.heapUsed + mem.external - before.heapUsed - before.external) / count);
    }
    progress(`virtual minute ${m + 1}/${minutes}: ${count} boards, ${lateness.length} renewals, ${Math.round(performance.now() - wall0)} ms wall`);
  }
  const wall = performance.now() - wall0;
  const notRenewing = kubelets.filter((k) => k.lease.failing || k.lease.renewals === 0).length;
  const renewals = kubelets.reduce((n, k) => n + k.lease.renewals, 0);
  await Promise.all(kubelets.map((k) => k.stop()));
  await time.advance(1000);
  const sorted = lateness.sort((a, b) => a - b);
  const sum = (key: "written" | "read") => counters.reduce((n, c) => n + c[key], 0);
  return {
    count,
    minutes,
    renewals,
    renewalsPerBoardPerMinute: Math.round((100 * renewals) / count / minutes) / 100,
    latenessMs: { p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted[sorted.length - 1] ?? 0 },
    bytesPerAgentPerMinute: { written: Math.round(sum("written") / count / minutes), read: Math.round(sum("read") / count / minutes) },
    memoryPerAgentBytes: measured,
    wallMsPerBoardMinute: Math.round((1000 * wall) / count / minutes) / 1000,
    notRenewing,
  };
}

export const VIRTUAL_COLUMNS = ["boards", "virtual min", "renewals/board/min", "lateness p50/p99/max ms", "B/board/min written/read (before TLS)", "KB heap/board", "wall ms per board-minute", "not renewing"];
export function virtualRow(s: VirtualFleetStep): string[] {
  return [
    String(s.count),
    String(s.minutes),
    String(s.renewalsPerBoardPerMinute),
    `${s.latenessMs.p50} / ${s.latenessMs.p99} / ${s.latenessMs.max}`,
    `${s.bytesPerAgentPerMinute.written} / ${s.bytesPerAgentPerMinute.read}`,
    (s.memoryPerAgentBytes / 1024).toFixed(1),
    String(s.wallMsPerBoardMinute),
    String(s.notRenewing),
  ];
}
