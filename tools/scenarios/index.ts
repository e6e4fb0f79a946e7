// Named scenarios, each a deterministic run of the kubelet against the scripted API in virtual time.
// They run under Node (test/unit) and inside the real XS engine (test/xs); what both send must be
// identical byte for byte (the requests, and every byte written: HTTP/2 frames and HPACK included).
import type { KubeletOptions } from "../../modules/kubelet/kubelet";
import { rig, rigWork, type Rig } from "./harness";

export interface ScenarioResult {
  requests: string[];
  /** Every client write, as hex. */
  wire: string[];
  /** The virtual time (ms) at which the steady state began: registration done, Lease renewed once. */
  steadyFrom: number;
  /** Client bytes written before steadyFrom. */
  bytesBeforeSteady: number;
  renewals: number;
  renewalsBeforeSteady: number;
  led: string;
}

function outcome(r: Rig, steady: { bytes: number; renewals: number; at: number }): ScenarioResult {
  return {
    requests: r.host.requests,
    wire: rigWork(() => r.host.wire),
    steadyFrom: steady.at,
    bytesBeforeSteady: steady.bytes,
    renewals: r.kubelet.lease.renewals,
    renewalsBeforeSteady: steady.renewals,
    led: r.kubelet.led.state,
  };
}

const written = (r: Rig) => rigWork(() => r.host.wire.reduce((n, hex) => n + hex.length / 2, 0));

/** Boots, runs for ms of virtual time, stops; notes where the steady state began (after 30 s). */
async function runFor(ms: number, options: Partial<KubeletOptions> = {}): Promise<ScenarioResult> {
  const r = rig(options);
  r.kubelet.start();
  await r.time.advance(30_000);
  const steady = { bytes: written(r), renewals: r.kubelet.lease.renewals, at: r.time.now };
  await r.time.advance(ms - 30_000);
  await r.kubelet.stop();
  return outcome(r, steady);
}

export const scenarios: Record<string, () => Promise<ScenarioResult>> = {
  "steady state for ten minutes": () => runFor(600_000),
  "steady state for ten minutes over HTTP/1.1": () => runFor(600_000, { http: "http/1.1" }),
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
    return outcome(r, { bytes: 0, renewals: 0, at: 0 });
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
    return outcome(r, { bytes: 0, renewals: 0, at: 0 });
  },
};
