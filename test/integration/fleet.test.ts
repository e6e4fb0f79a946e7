// The fleet tool against the real control plane: five boards from one process, each with its own
// Node, Lease, token and kubelet API port, through one counting proxy; every one renews on time
// and the figures the benchmark reports are there and plausible.
import assert from "node:assert/strict";
import type { ControlPlane } from "../../tools/controlplane/launcher";
import { fleetRow, localTarget, runFleetStep } from "../../tools/fleet/fleet";
import { clusterRequest, fromKubeconfig } from "../../tools/kube/connection";
import { FLEET_TEST_NODES, useCluster } from "../support/cluster";

describe("the fleet tool, against the real control plane", function () {
  this.timeout(120_000);
  let cp: ControlPlane;
  before(async function () {
    cp = await useCluster(this);
  });

  it("five boards register, renew on time through one counting proxy, and stop cleanly", async () => {
    const lines: string[] = [];
    const step = await runFleetStep(await localTarget(cp, FLEET_TEST_NODES), { count: FLEET_TEST_NODES.length, prefix: "test-fleet", windowSeconds: 25, progress: (l) => lines.push(l) });
    console.log(`      ${fleetRow(step).join(" | ")}`);
    assert.equal(step.readyAtEnd, 5, lines.join("\n"));
    assert.equal(step.failures, 0);
    // ~2 renewals each in 25 s at the 10 s interval; the lateness on an idle machine far under a second.
    assert.ok(step.renewals >= 8, `${step.renewals} renewals`);
    assert.ok(step.latenessMs.p99 < 1000, `p99 ${step.latenessMs.p99} ms`);
    assert.ok(step.bytesPerAgentPerMinute.up > 200 && step.bytesPerAgentPerMinute.down > 200, JSON.stringify(step.bytesPerAgentPerMinute));
    assert.equal(step.handshakesPerAgentPerHour, 0, "no new TLS connection in steady state");
    assert.ok(step.cpuPercent.apiserver !== undefined && step.rssBytes.etcd! > 1e6, "the control plane's processes were read");
    const admin = fromKubeconfig(cp.kubeconfig);
    const node = JSON.parse((await clusterRequest(admin, "GET", "/api/v1/nodes/test-fleet-3")).text);
    assert.ok(node.status.daemonEndpoints.kubeletEndpoint.Port > 0, "its own kubelet API port");
  });
});
