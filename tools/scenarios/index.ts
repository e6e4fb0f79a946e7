// Named scenarios, each a deterministic run of the kubelet against the scripted API in virtual time.
// They run under Node (test/unit) and inside the real XS engine (test/xs); the requests both produce
// must be identical byte for byte.
import { rig, type Rig } from "./harness";

export interface ScenarioResult {
  requests: string[];
  renewals: number;
  led: string;
}

const outcome = (r: Rig): ScenarioResult => ({ requests: r.host.requests, renewals: r.kubelet.lease.renewals, led: r.kubelet.led.state });

/** Boots, runs for ms of virtual time, stops. */
async function runFor(ms: number): Promise<ScenarioResult> {
  const r = rig();
  r.kubelet.start();
  await r.time.advance(ms);
  await r.kubelet.stop();
  return outcome(r);
}

export const scenarios: Record<string, () => Promise<ScenarioResult>> = {
  "steady state for ten minutes": () => runFor(600_000),
  "boot, register, renew for a minute": () => runFor(60_000),
  async "existing node, memory pressure, lease deleted"() {
    const r = rig({}, (p) => {
      p.api.nodes.set("board-1", { apiVersion: "v1", kind: "Node", metadata: { name: "board-1", uid: "old-uid", labels: { stale: "x" } }, status: { conditions: [] } });
    });
    r.kubelet.start();
    await r.time.advance(25_000);
    r.heap = { free: 10 * 1024, total: 256 * 1024 };
    await r.time.advance(11_000);
    r.api.leases.clear();
    await r.time.advance(11_000);
    await r.kubelet.stop({ decommission: true });
    return outcome(r);
  },
  async "outage and recovery, chunked responses"() {
    const r = rig({}, (p) => {
      p.api.chunked = true;
    });
    r.kubelet.start();
    await r.time.advance(15_000);
    r.offline = true;
    await r.time.advance(60_000);
    r.offline = false;
    await r.time.advance(15_000);
    await r.kubelet.stop();
    return outcome(r);
  },
};
