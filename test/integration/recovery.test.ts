// Back fast after an outage, against the real control plane: the agent reaches kube-apiserver
// through a fault proxy that resets every live connection and refuses new ones. A short outage
// (shorter than the lease duration minus a renewal interval) must not turn the node Unknown; after a
// long one (past the grace period: Unknown, as it should be), Ready=True must be back within 2 s of
// the proxy accepting connections again — the reconnect probe, not the backoff, decides.
import assert from "node:assert/strict";
import { createNodeHost } from "../../hosts/node/host";
import { Kubelet } from "../../modules/kubelet/kubelet";
import type { ControlPlane } from "../../tools/controlplane/launcher";
import { startFaultProxy, type FaultProxy } from "../../tools/faults/proxy";
import { clusterRequest, fromKubeconfig, type ClusterConnection } from "../../tools/kube/connection";
import { eventually } from "../support/api";
import { TEST_GRACE_SECONDS, useCluster } from "../support/cluster";

const NAME = "agent-31";

describe("recovery after an outage, through a fault proxy", function () {
  this.timeout(180_000);
  let cp: ControlPlane;
  let admin: ClusterConnection;
  let proxy: FaultProxy;
  let kubelet: Kubelet;

  const ready = async () => {
    const node = JSON.parse((await clusterRequest(admin, "GET", `/api/v1/nodes/${NAME}`)).text);
    return node.status?.conditions?.find((c: any) => c.type === "Ready")?.status as string | undefined;
  };

  before(async function () {
    cp = await useCluster(this);
    admin = fromKubeconfig(cp.kubeconfig);
    proxy = await startFaultProxy({ host: cp.host, port: cp.port });
    kubelet = new Kubelet(
      { nodeName: NAME, server: { host: "127.0.0.1", port: proxy.port }, tls: { serverName: "localhost", ca: cp.caDer, verify: true }, token: cp.nodeCredentials(NAME).token, settings: false },
      createNodeHost({ log: () => undefined }),
    );
    kubelet.start();
    await kubelet.registered;
    await eventually("Ready=True", 30_000, async () => (await ready()) === "True");
  });
  after(async () => {
    await kubelet?.stop();
    await proxy?.close();
  });

  it("a 5 s outage: Ready never leaves True", async () => {
    const seen = new Set<string>();
    const watch = setInterval(() => void ready().then((s) => s && seen.add(s), () => undefined), 200);
    await proxy.startOutage();
    await new Promise((r) => setTimeout(r, 5_000));
    await proxy.endOutage();
    await eventually("renewing again", 10_000, async () => !kubelet.lease.failing, 100);
    await new Promise((r) => setTimeout(r, 2_000));
    clearInterval(watch);
    assert.deepEqual([...seen], ["True"]);
  });

  it(`an outage past the grace period (${TEST_GRACE_SECONDS} s): Unknown, then Ready=True within 2 s of the proxy's return`, async () => {
    await proxy.startOutage();
    await eventually("Ready=Unknown from the node lifecycle controller", 60_000, async () => (await ready()) === "Unknown", 500);
    await new Promise((r) => setTimeout(r, 10_000)); // the backoff has long reached its cap
    const probesBefore = kubelet.lease.probes;
    await proxy.endOutage();
    const back = Date.now();
    await eventually("Ready=True again", 30_000, async () => (await ready()) === "True", 50);
    const ms = Date.now() - back;
    console.log(`      Ready=True ${ms} ms after the proxy accepted connections again (${kubelet.lease.probes - probesBefore} probes after the return)`);
    assert.ok(ms <= 2000, `${ms} ms`);
  });
});
