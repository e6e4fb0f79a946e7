// Time to Ready, and back after an outage, against the real control plane: agents on the Node host,
// each behind its own fault proxy (tools/faults/proxy.ts). Ready is what the cluster says (the Node's
// Ready condition, polled every 50 ms as admin), not what the agent believes.
// - start to Ready: from kubelet.start() to Ready=True in the cluster;
// - after an outage past the grace period (every connection reset, new ones refused, until the node
//   lifecycle controller has marked the nodes Unknown and 10 s more): from the moment the proxies
//   accept connections again to Ready=True.
import { createNodeHost } from "../../hosts/node/host";
import { Kubelet } from "../../modules/kubelet/kubelet";
import type { ControlPlane } from "../controlplane/launcher";
import { startFaultProxy, type FaultProxy } from "../faults/proxy";
import { clusterRequest, fromKubeconfig } from "../kube/connection";
import { percentile } from "../util/stats";

export interface RecoveryResult {
  agents: number;
  outages: number;
  startToReadyMs: { p50: number; p99: number; samples: number };
  readyAfterApiReturnMs: { p50: number; p99: number; max: number; samples: number };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export const recoveryNames = (agents: number) => Array.from({ length: agents }, (_, i) => `bench-recovery-${i + 1}`);

export async function recoveryBenchmark(cp: ControlPlane, options: { agents?: number; outages?: number; progress?: (line: string) => void } = {}): Promise<RecoveryResult> {
  const agents = options.agents ?? 10;
  const outages = options.outages ?? 3;
  const progress = options.progress ?? (() => undefined);
  const names = recoveryNames(agents);
  const admin = fromKubeconfig(cp.kubeconfig);
  const readyOf = async (): Promise<Map<string, string>> => {
    const res = await clusterRequest(admin, "GET", "/api/v1/nodes");
    const out = new Map<string, string>();
    for (const n of JSON.parse(res.text).items ?? []) out.set(n.metadata.name, n.status?.conditions?.find((c: any) => c.type === "Ready")?.status ?? "");
    return out;
  };
  /** Polls until every named node's Ready is `want`, recording when each first got there (ms after `from`). */
  const until = async (want: string, from: number, limitMs: number): Promise<number[]> => {
    const at = new Map<string, number>();
    while (at.size < names.length) {
      if (Date.now() - from > limitMs) throw new Error(`recovery: ${names.length - at.size} nodes not Ready=${want} after ${limitMs / 1000} s`);
      const seen = await readyOf().catch(() => new Map<string, string>());
      for (const n of names) if (!at.has(n) && seen.get(n) === want) at.set(n, Date.now() - from);
      await sleep(50);
    }
    return [...at.values()];
  };
  const proxies: FaultProxy[] = [];
  const kubelets: Kubelet[] = [];
  try {
    for (const name of names) {
      const proxy = await startFaultProxy({ host: cp.host, port: cp.port });
      proxies.push(proxy);
      kubelets.push(
        new Kubelet(
          { nodeName: name, server: { host: "127.0.0.1", port: proxy.port }, tls: { serverName: "localhost", ca: cp.caDer, verify: true }, token: cp.nodeCredentials(name).token, ledFps: 0 },
          createNodeHost({ name, log: () => undefined }),
        ),
      );
    }
    const t0 = Date.now();
    for (const k of kubelets) k.start();
    const startToReady = await until("True", t0, 60_000);
    progress(`${agents} agents Ready, start to Ready p50 ${percentile(startToReady.sort((a, b) => a - b), 50)} ms`);
    // Ready=True comes with the registration, before the Lease exists: the outages begin once every
    // agent is renewing, so they measure a running node's return and not a boot's.
    for (const started = Date.now(); !kubelets.every((k) => k.lease.renewals > 0); await sleep(50)) {
      if (Date.now() - started > 60_000) throw new Error(`recovery: ${kubelets.filter((k) => k.lease.renewals === 0).length} agents not renewing after 60 s`);
    }
    const back: number[] = [];
    for (let o = 1; o <= outages; o++) {
      await Promise.all(proxies.map((p) => p.startOutage()));
      const down = Date.now();
      await until("Unknown", down, 120_000);
      progress(`outage ${o}/${outages}: nodes Unknown after ${((Date.now() - down) / 1000).toFixed(1)} s; 10 s more`);
      await sleep(10_000); // the agents' backoff has reached its cap: only the reconnect probe is quick
      await Promise.all(proxies.map((p) => p.endOutage()));
      const returned = Date.now();
      const times = await until("True", returned, 60_000);
      back.push(...times);
      progress(`outage ${o}/${outages}: Ready=True again after ${Math.min(...times)}–${Math.max(...times)} ms`);
      await sleep(3000);
    }
    const s = startToReady.sort((a, b) => a - b);
    const b = back.sort((x, y) => x - y);
    return {
      agents,
      outages,
      startToReadyMs: { p50: percentile(s, 50), p99: percentile(s, 99), samples: s.length },
      readyAfterApiReturnMs: { p50: percentile(b, 50), p99: percentile(b, 99), max: b[b.length - 1] ?? 0, samples: b.length },
    };
  } finally {
    await Promise.all(kubelets.map((k) => k.stop().catch(() => undefined)));
    await Promise.all(proxies.map((p) => p.close()));
  }
}
