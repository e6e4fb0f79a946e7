// What the cluster saw of a node, every second: Ready when it was not True, and each new renewTime
// of its Lease — the evidence that no renewal was missed while something else went on.
import { clusterRequest, type ClusterConnection } from "./connection";

/** What the cluster saw of a node every second: Ready, and each new renewTime of its Lease. */
export class Watchdog {
  readyNotTrue: string[] = [];
  renewTimes: number[] = [];
  #timer: ReturnType<typeof setInterval>;
  constructor(admin: ClusterConnection, name: string) {
    this.#timer = setInterval(async () => {
      try {
        const node = JSON.parse((await clusterRequest(admin, "GET", `/api/v1/nodes/${name}`)).text);
        const ready = node.status?.conditions?.find((c: any) => c.type === "Ready");
        if (ready && ready.status !== "True") this.readyNotTrue.push(`${new Date().toISOString()} ${ready.status} ${ready.reason}`);
        const lease = JSON.parse((await clusterRequest(admin, "GET", `/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/${name}`)).text);
        const t = Date.parse(lease.spec?.renewTime ?? "");
        if (t && t !== this.renewTimes[this.renewTimes.length - 1]) this.renewTimes.push(t);
      } catch {
        // the next sample
      }
    }, 1000);
  }
  stop(): void {
    clearInterval(this.#timer);
  }
  /** The longest gap between two renewals the cluster saw (ms). */
  get worstGap(): number {
    let worst = 0;
    for (let i = 1; i < this.renewTimes.length; i++) worst = Math.max(worst, this.renewTimes[i] - this.renewTimes[i - 1]);
    return worst;
  }
}

