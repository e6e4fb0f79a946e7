// What a fleet does to a returning API server: with every board renewing in steady state,
// kube-apiserver is restarted (SIGTERM, down a while, started again on the same etcd), and the step
// measures the herd it meets when it is back — connections accepted per second at the counting
// proxy (each a TLS handshake), kube-apiserver's CPU, and per board the time from /readyz answering
// again to its first renewal after the restart. Local control plane only (it restarts a process).
import type { Kubelet } from "../../modules/kubelet/kubelet";
import type { CountingProxy } from "../bench/proxy";
import type { ControlPlane } from "../controlplane/launcher";
import { clusterRequest, fromKubeconfig } from "../kube/connection";
import { percentile } from "../util/stats";
import { procStat } from "./fleet";

export interface ReturnResult {
  count: number;
  downMs: number;
  /** From SIGTERM to the API server answering a read again (direct, polled every 50 ms). */
  unavailableMs: number;
  /** From then to /readyz answering. */
  readyzAfterMs: number;
  /** Boards whose renewal failed during the restart (the rest renewed just before it and just after). */
  broke: number;
  /** Per board that broke, from the API server's return to its first good renewal after the failure (0: before the harness saw it back). */
  renewedAfterReturnMs: { p50: number; p99: number; max: number };
  /** That renewal: when its request began after the return (0: before), and how long the API server took to answer it. */
  askedAfterReturnMs: { p50: number; p99: number };
  answeredInMs: { p50: number; p99: number };
  /** Boards renewing before the harness's own read saw the API server back (its 50 ms polling). */
  beforeReturn: number;
  /** Boards that broke and had not renewed 60 s after the return. */
  notBack: number;
  /** Connections the proxy accepted from SIGTERM to the last board's return: reconnect probes (a TCP connect, closed) and TLS connections. */
  connections: number;
  /** The most in one second while kube-apiserver was down (probes, refused behind the proxy) and after its return (probes and handshakes). */
  probesPeakPerSecond: number;
  connectionsPeakPerSecond: number;
  /** kube-apiserver's CPU over the 10 s after /readyz answered (% of one core). */
  apiserverCpuPercent?: number;
  /** Nodes the cluster did not show Ready=True 20 s after the return. */
  notReadyInCluster: number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function apiServerReturn(cp: ControlPlane, kubelets: Kubelet[], proxy: CountingProxy, options: { downMs: number; progress?: (line: string) => void }): Promise<ReturnResult> {
  const progress = options.progress ?? (() => undefined);
  const n = kubelets.length;
  // Per board: whether a renewal failed since SIGTERM, and when the first renewal after that failure went through.
  const broke = new Array<boolean>(n).fill(false);
  const renewedAt = new Array<number>(n).fill(0);
  // And when that renewal's request began: a board that asked at once but waited long for the answer
  // is held up by the API server, one that asked late by its own backoff.
  const askedAt = new Array<number>(n).fill(0);
  const began = Date.now();
  const wrapped = kubelets.map((k, i) => {
    const { lease } = k;
    const before = lease.onRenewed;
    const renew = lease.renew;
    lease.onRenewed = (recovered) => {
      before?.(recovered);
      if (recovered) broke[i] = true;
    };
    lease.renew = async () => {
      const start = Date.now();
      const ok = await renew.call(lease);
      if (!ok) broke[i] = true;
      else if (broke[i] && !renewedAt[i]) {
        renewedAt[i] = Date.now();
        askedAt[i] = start;
      }
      return ok;
    };
    return () => {
      lease.renew = renew;
      lease.onRenewed = before;
    };
  });
  const watcher = setInterval(() => {
    for (const [i, k] of kubelets.entries()) if (k.lease.failing) broke[i] = true;
  }, 50);
  // The proxy's accepted connections, every 250 ms, for the herd's peak rate.
  const samples: { at: number; connections: number }[] = [{ at: began, connections: proxy.snapshot().connections }];
  const sampler = setInterval(() => samples.push({ at: Date.now(), connections: proxy.snapshot().connections }), 250);
  const pending = () => broke.some((b, i) => b && !renewedAt[i]);
  // When the API server answers again: a read every 50 ms, direct (not through the proxy), from its
  // first failure on. kube-apiserver serves well before /readyz says it is ready.
  const admin = fromKubeconfig(cp.kubeconfig);
  let restarted = false;
  let downSeen = false;
  let servingAt = 0;
  const watchServing = (async () => {
    while (!servingAt) {
      const t = Date.now();
      const ok = await clusterRequest(admin, "GET", "/version", { timeoutMs: 1000 }).then((r) => r.status === 200, () => false);
      if (!ok) downSeen = true;
      else if (downSeen) servingAt = t;
      else if (restarted) servingAt = t; // never seen down from here: serving by the time the restart returned
      await sleep(50);
    }
  })();
  try {
    progress(`kube-apiserver restarting, down ${options.downMs} ms, with ${n} boards renewing`);
    await cp.restartApiServer(options.downMs);
    const readyz = Date.now();
    restarted = true;
    await watchServing;
    const returned = Math.min(servingAt, readyz);
    const api = cp.pids()["kube-apiserver"];
    const api0 = api ? procStat(api) : undefined;
    const api10 = sleep(10_000).then(() => (api ? procStat(api) : undefined));
    progress(`kube-apiserver answers ${((returned - began) / 1000).toFixed(1)} s after SIGTERM, /readyz at ${((readyz - began) / 1000).toFixed(1)} s; ${broke.filter(Boolean).length} boards have missed a renewal`);
    for (let t = 0; (pending() || Date.now() - returned < 12_000) && Date.now() - returned < 60_000; t++) {
      await sleep(100);
      if (t % 50 === 49) progress(`${renewedAt.filter((r) => r > 0).length}/${broke.filter(Boolean).length} boards that missed a renewal are renewing again`);
    }
    const lastBack = Math.max(0, ...renewedAt);
    const api1 = await api10;
    const wait20 = returned + 20_000 - Date.now();
    if (wait20 > 0) await sleep(wait20);
    const names = new Set(kubelets.map((k) => k.snapshot().nodeName));
    const list = JSON.parse((await clusterRequest(fromKubeconfig(cp.kubeconfig), "GET", "/api/v1/nodes", { timeoutMs: 30_000 })).text);
    let notReady = 0;
    for (const node of list.items ?? []) if (names.has(node.metadata.name) && node.status?.conditions?.find((c: any) => c.type === "Ready")?.status !== "True") notReady++;
    const back = renewedAt.filter((r) => r > 0).map((r) => Math.max(0, r - returned)).sort((a, b) => a - b);
    const asked = askedAt.filter((r) => r > 0).map((r) => Math.max(0, r - returned)).sort((a, b) => a - b);
    const took = renewedAt.flatMap((r, i) => (r > 0 ? [r - askedAt[i]] : [])).sort((a, b) => a - b);
    const inRange = samples.filter((x) => x.at <= Math.max(lastBack, returned) + 250);
    /** The most connections accepted in any one second between from and to. */
    const peak = (from: number, to: number) => {
      const xs = inRange.filter((x) => x.at >= from && x.at <= to);
      let most = 0;
      for (const x of xs) most = Math.max(most, x.connections - (xs.find((y) => y.at >= x.at - 1000) ?? x).connections);
      return most;
    };
    return {
      count: n,
      downMs: options.downMs,
      unavailableMs: returned - began,
      readyzAfterMs: readyz - returned,
      broke: broke.filter(Boolean).length,
      renewedAfterReturnMs: { p50: percentile(back, 50), p99: percentile(back, 99), max: back[back.length - 1] ?? 0 },
      askedAfterReturnMs: { p50: percentile(asked, 50), p99: percentile(asked, 99) },
      answeredInMs: { p50: percentile(took, 50), p99: percentile(took, 99) },
      beforeReturn: renewedAt.filter((r) => r > 0 && r < returned).length,
      notBack: broke.filter((b, i) => b && !renewedAt[i]).length,
      connections: inRange[inRange.length - 1].connections - samples[0].connections,
      probesPeakPerSecond: peak(began, returned),
      connectionsPeakPerSecond: peak(returned - 1000, Math.max(lastBack, returned) + 250),
      apiserverCpuPercent: api0 && api1 ? Math.round((100 * (api1.cpuSeconds - api0.cpuSeconds)) / 10) : undefined,
      notReadyInCluster: notReady,
    };
  } finally {
    clearInterval(sampler);
    clearInterval(watcher);
    for (const unwrap of wrapped) unwrap();
  }
}

/** The result as one table row (the CLI's summary and BENCHMARKS.md share it). */
export const RETURN_COLUMNS = ["boards", "down / unavailable / readyz s", "missed a renewal", "renewing again after the return p50/p99/max ms", "its request sent after / answered in p50, p99 ms", "not back", "connections (peak/s down, back)", "apiserver CPU % (10 s after)", "not Ready in the cluster at +20 s"];
export function returnRow(r: ReturnResult): string[] {
  return [
    String(r.count),
    `${(r.downMs / 1000).toFixed(0)} / ${(r.unavailableMs / 1000).toFixed(1)} / +${(r.readyzAfterMs / 1000).toFixed(1)}`,
    String(r.broke),
    `${r.renewedAfterReturnMs.p50} / ${r.renewedAfterReturnMs.p99} / ${r.renewedAfterReturnMs.max}${r.beforeReturn ? ` (${r.beforeReturn} at 0)` : ""}`,
    `${r.askedAfterReturnMs.p50} / ${r.answeredInMs.p50}, ${r.askedAfterReturnMs.p99} / ${r.answeredInMs.p99}`,
    String(r.notBack),
    `${r.connections} (${r.probesPeakPerSecond}, ${r.connectionsPeakPerSecond})`,
    r.apiserverCpuPercent === undefined ? "–" : String(r.apiserverCpuPercent),
    String(r.notReadyInCluster),
  ];
}
