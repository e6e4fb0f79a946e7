// A fleet of simulated boards in one Node.js process: N real agents (the same core as the board, on
// the Node host, run from one bundle of their sources: agents.ts), each with its own Node, Lease,
// identity, kubelet API port and simulated GPIO, against the local control plane or any cluster a
// kubeconfig names. All of them reach the API server through one counting TCP proxy (TLS passes
// through untouched), so the bytes and handshakes are what N boards would put on the network. What a step measures, in a steady-state window after
// every agent is Ready: renewal lateness (the Lease reconciler's own figure: from when a renewal was
// due to the API server's answer), agent memory per board (RSS after a collection, minus the
// process before any agent), agent, kube-apiserver and etcd CPU and memory, bytes per board per
// minute, TLS handshakes per board per hour.
import { readFileSync } from "node:fs";
import type { Kubelet, KubeletOptions } from "../../modules/kubelet/kubelet";
import { agentCode } from "./agents";
import type { ControlPlane } from "../controlplane/launcher";
import { startCountingProxy, diffCounts, type CountingProxy } from "../bench/proxy";
import type { ClusterConnection } from "../kube/connection";
import { percentile } from "../util/stats";

export interface FleetTarget {
  /** Where the agents connect (through the proxy) and how they verify it. */
  conn: ClusterConnection;
  /** One agent's identity: token or client certificate (serving certificate for the kubelet API, where available). */
  identity(name: string): Promise<Pick<KubeletOptions, "token" | "kubeletApi"> & { clientCertificate?: Uint8Array; clientKey?: Uint8Array }>;
  /** The local control plane, when the fleet started one: its processes are measured too. */
  cp?: ControlPlane;
}

export interface FleetStep {
  count: number;
  /** Agents Ready (their Lease renewed since start) when the window opened / closed. */
  ready: number;
  readyAtEnd: number;
  /** From an agent's start to its registration (Node created, Lease renewed), ms. */
  registeredMs: { p50: number; p99: number };
  /** Seconds from the first agent's start to the last one's registration. */
  rampSeconds: number;
  windowSeconds: number;
  renewals: number;
  /** Renewals that failed inside the window. */
  failures: number;
  latenessMs: { p50: number; p99: number; max: number };
  /** Agent process: resident memory per board (after a collection), V8 heap + external per board. */
  memoryPerAgentBytes: { rss: number; heap: number };
  /** Percent of one core over the window. */
  cpuPercent: { agents: number; apiserver?: number; etcd?: number };
  /** Resident memory at the window's end, bytes. */
  rssBytes: { agents: number; apiserver?: number; etcd?: number };
  bytesPerAgentPerMinute: { up: number; down: number };
  handshakesPerAgentPerHour: number;
}

export interface FleetOptions {
  count: number;
  /** Steady-state window, seconds (default 60: six renewals per board at the default 10 s interval). */
  windowSeconds?: number;
  /** Agents started per second (default 40): a fleet powering up at once is the herd the API server sees after an outage; this is a staggered start. */
  rampPerSecond?: number;
  prefix?: string;
  progress?: (line: string) => void;
  /** Set to stop early (Ctrl-C): the step ends, agents stop, what was measured is returned. */
  signal?: AbortSignal;
  /** After the window, the agents still running: the API server's return (tools/fleet/return.ts). */
  afterWindow?: (kubelets: Kubelet[], proxy: CountingProxy) => Promise<void>;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
/** A fixed heap reading: the agents share one V8 heap, whose swings would flip every board's MemoryPressure at once. One function for all (the harness's, not a board's, so not a closure each in the heap measured per board). */
const FIXED_HEAP = () => ({ free: 256 * 1024, total: 320 * 1024 });
const gc = () => (globalThis as { gc?: () => void }).gc?.();

/** CPU seconds (user + system) and resident bytes of a process, from /proc (Linux only; undefined elsewhere or when gone). */
export function procStat(pid: number): { cpuSeconds: number; rssBytes: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14, 15)
    const rssPages = Number(fields[21]); // field 24
    return { cpuSeconds: ticks / 100, rssBytes: rssPages * 4096 };
  } catch {
    return undefined;
  }
}

/** Names of agents in a fleet: prefix-1 … prefix-N. */
export const fleetNames = (count: number, prefix = "fleet") => Array.from({ length: count }, (_, i) => `${prefix}-${i + 1}`);

/** Runs one step: starts `count` agents, waits for them, measures a window, stops them. */
export async function runFleetStep(target: FleetTarget, options: FleetOptions): Promise<FleetStep> {
  const { count, prefix = "fleet" } = options;
  const progress = options.progress ?? (() => undefined);
  const windowSeconds = options.windowSeconds ?? 60;
  const ramp = options.rampPerSecond ?? 40;
  const names = fleetNames(count, prefix);
  const proxy: CountingProxy = await startCountingProxy({ host: target.conn.host, port: target.conn.port });
  const kubelets: Kubelet[] = [];
  const registeredMs: number[] = [];
  const lateness: number[] = [];
  let measuring = false;
  let failures = 0;
  let warnings = 0;
  // Every warning by kind (board names and numbers taken out): the step's end says what went wrong, not only the first ten.
  const kinds = new Map<string, number>();
  const stopped = () => options.signal?.aborted === true;
  const { createNodeHost, Kubelet } = await agentCode(); // loaded before the memory baseline
  gc();
  const before = process.memoryUsage();
  const began = Date.now();
  try {
    for (const [i, name] of names.entries()) {
      if (stopped()) break;
      const id = await target.identity(name);
      const host = createNodeHost({
        name,
        heap: FIXED_HEAP,
        mac: `02:f1:ee:${((i >> 16) & 255).toString(16).padStart(2, "0")}:${((i >> 8) & 255).toString(16).padStart(2, "0")}:${(i & 255).toString(16).padStart(2, "0")}`,
        log: (level, message) => {
          if (level !== "warn" && level !== "error") return;
          const kind = `${level}: ${message.split(name).join("<board>").replace(/\d+/g, "N")}`.slice(0, 200);
          if (kinds.size < 50 || kinds.has(kind)) kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
          if (++warnings <= 10) progress(`${name}: ${level}: ${message}`);
          else if (warnings === 11) progress("(further agent warnings are counted, not shown)");
        },
      });
      const kubelet = new Kubelet(
        {
          nodeName: name,
          server: { host: "127.0.0.1", port: proxy.port },
          tls: { serverName: target.conn.serverName, ca: target.conn.caDer, verify: target.conn.verify, clientCertificate: id.clientCertificate, clientKey: id.clientKey },
          token: id.token,
          kubeletApi: id.kubeletApi,
          ledFps: 0,
        },
        host,
      );
      const onRenewed = kubelet.lease.onRenewed;
      kubelet.lease.onRenewed = (recovered) => {
        onRenewed?.(recovered);
        if (!measuring) return;
        if (recovered) failures++;
        if (kubelet.lease.lastLatenessMs >= 0) lateness.push(Math.round(kubelet.lease.lastLatenessMs));
      };
      const t0 = Date.now();
      kubelet.start();
      kubelet.registered.then(
        () => registeredMs.push(Date.now() - t0),
        () => undefined,
      );
      kubelets.push(kubelet);
      // Staggered: at `ramp` agents a second, with progress every second's worth.
      const due = began + ((i + 1) * 1000) / ramp;
      if (due > Date.now()) await sleep(due - Date.now());
      if ((i + 1) % ramp === 0 || i + 1 === count) progress(`${i + 1}/${count} started, ${registeredMs.length} registered`);
    }
    for (const deadline = Date.now() + 120_000; registeredMs.length < kubelets.length && Date.now() < deadline && !stopped(); await sleep(500)) {
      if (Math.floor(Date.now() / 5000) !== Math.floor((Date.now() - 500) / 5000)) progress(`${registeredMs.length}/${count} registered`);
    }
    const rampSeconds = (Date.now() - began) / 1000;
    const ready = kubelets.filter((k) => k.lease.renewals > 0 && !k.lease.failing).length;
    progress(`${ready}/${count} renewing after ${rampSeconds.toFixed(1)} s; measuring ${windowSeconds} s`);
    // Let the registration burst drain (each board's watches LIST once) before the window opens.
    await sleep(Math.min(10_000, 2000 + count * 5));
    gc();
    const mem = process.memoryUsage();
    const from = proxy.snapshot();
    const cpu0 = process.cpuUsage();
    const api0 = target.cp?.pids ? procStat(target.cp.pids()["kube-apiserver"] ?? 0) : undefined;
    const etcd0 = target.cp?.pids ? procStat(target.cp.pids().etcd ?? 0) : undefined;
    const w0 = Date.now();
    measuring = true;
    for (let s = 0; s < windowSeconds && !stopped(); s += 5) {
      await sleep(Math.min(5, windowSeconds - s) * 1000);
      const sorted = lateness.slice().sort((a, b) => a - b);
      progress(`window ${Math.min(s + 5, windowSeconds)}/${windowSeconds} s: ${lateness.length} renewals, lateness p50 ${percentile(sorted, 50)} ms, p99 ${percentile(sorted, 99)} ms, ${failures} failed`);
    }
    measuring = false;
    const seconds = (Date.now() - w0) / 1000;
    const wire = diffCounts(from, proxy.snapshot());
    const cpu = process.cpuUsage(cpu0);
    const api1 = target.cp?.pids ? procStat(target.cp.pids()["kube-apiserver"] ?? 0) : undefined;
    const etcd1 = target.cp?.pids ? procStat(target.cp.pids().etcd ?? 0) : undefined;
    if (options.afterWindow && !stopped()) await options.afterWindow(kubelets, proxy);
    const sorted = lateness.slice().sort((a, b) => a - b);
    const regSorted = registeredMs.slice().sort((a, b) => a - b);
    const share = (a?: { cpuSeconds: number }, b?: { cpuSeconds: number }) => (a && b ? Math.round((100 * (b.cpuSeconds - a.cpuSeconds)) / seconds) : undefined);
    const n = kubelets.length || 1;
    return {
      count: kubelets.length,
      ready,
      readyAtEnd: kubelets.filter((k) => !k.lease.failing && k.lease.renewals > 0).length,
      registeredMs: { p50: percentile(regSorted, 50), p99: percentile(regSorted, 99) },
      rampSeconds: Math.round(rampSeconds * 10) / 10,
      windowSeconds: Math.round(seconds),
      renewals: lateness.length,
      failures,
      latenessMs: { p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted[sorted.length - 1] ?? 0 },
      memoryPerAgentBytes: { rss: Math.round((mem.rss - before.rss) / n), heap: Math.round((mem.heapUsed + mem.external - before.heapUsed - before.external) / n) },
      cpuPercent: { agents: Math.round((cpu.user + cpu.system) / 1e4 / seconds), apiserver: share(api0, api1), etcd: share(etcd0, etcd1) },
      rssBytes: { agents: process.memoryUsage().rss, apiserver: api1?.rssBytes, etcd: etcd1?.rssBytes },
      bytesPerAgentPerMinute: { up: Math.round(wire.up / n / (seconds / 60)), down: Math.round(wire.down / n / (seconds / 60)) },
      handshakesPerAgentPerHour: Math.round(((wire.connections / n) * 3600 * 100) / seconds) / 100,
    };
  } finally {
    if (warnings) progress(`${warnings} agent warnings; the most common:\n${[...kinds].sort((a, b) => b[1] - a[1]).slice(0, 8).map(([k, c]) => `  ${c} × ${k}`).join("\n")}`);
    progress(`stopping ${kubelets.length} agents`);
    await Promise.all(kubelets.map((k) => k.stop().catch(() => undefined)));
    await proxy.close();
  }
}

/** The step's figures as one table row (the CLI's summary and BENCHMARKS.md share it). */
export const FLEET_COLUMNS = ["agents", "Ready", "lateness p50/p99/max ms", "failed", "MB RSS/board", "KB heap/board", "CPU % agents/apiserver/etcd", "MB RSS apiserver/etcd", "B/board/min up/down", "handshakes/board/h"];
export function fleetRow(s: FleetStep): string[] {
  const mb = (b?: number) => (b === undefined ? "–" : (b / 1e6).toFixed(b < 1e7 ? 2 : 0));
  const opt = (v?: number) => (v === undefined ? "–" : String(v));
  return [
    String(s.count),
    `${s.readyAtEnd}`,
    `${s.latenessMs.p50} / ${s.latenessMs.p99} / ${s.latenessMs.max}`,
    String(s.failures),
    mb(s.memoryPerAgentBytes.rss),
    (s.memoryPerAgentBytes.heap / 1024).toFixed(0),
    `${s.cpuPercent.agents} / ${opt(s.cpuPercent.apiserver)} / ${opt(s.cpuPercent.etcd)}`,
    `${mb(s.rssBytes.apiserver)} / ${mb(s.rssBytes.etcd)}`,
    `${s.bytesPerAgentPerMinute.up} / ${s.bytesPerAgentPerMinute.down}`,
    String(s.handshakesPerAgentPerHour),
  ];
}

/** What most likely limits the step: the busiest of the three, by CPU. */
export function limiter(s: FleetStep): string {
  if (s.cpuPercent.apiserver === undefined) return `the agents used ${s.cpuPercent.agents} % of a core; the control plane's processes are not visible from here (a remote cluster)`;
  const parts: [string, number][] = [
    ["the agents (one Node.js process, one core at most)", s.cpuPercent.agents],
    ["kube-apiserver", s.cpuPercent.apiserver ?? 0],
    ["etcd", s.cpuPercent.etcd ?? 0],
  ];
  parts.sort((a, b) => b[1] - a[1]);
  return `${parts[0][0]} (${parts[0][1]} % of a core; ${parts
    .slice(1)
    .map(([w, c]) => `${w.split(" (")[0]} ${c} %`)
    .join(", ")})`;
}

/**
 * The local control plane as a fleet's target: each board a static token (system:node:<name>) and a
 * serving certificate for its kubelet API (own port), all certifying one RSA key — a key generation
 * each would add ~0.1 s per board to the start.
 */
export async function localTarget(cp: ControlPlane, names: string[]): Promise<FleetTarget> {
  const key = (await cp.mintNodeCertificate(names[0], { lifetimeSeconds: 86_400, addresses: ["127.0.0.1"] })).key;
  return {
    conn: { host: cp.host, port: cp.port, serverName: "localhost", caDer: cp.caDer, verify: true },
    cp,
    identity: async (name) => {
      const serving = await cp.mintNodeCertificate(name, { lifetimeSeconds: 86_400, addresses: ["127.0.0.1"], key });
      return { token: cp.nodeCredentials(name).token, kubeletApi: { certificate: serving.certificate, key: serving.key, clientCa: cp.caDer, port: 0 } };
    },
  };
}
