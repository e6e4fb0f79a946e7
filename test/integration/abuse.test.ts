// The kubelet API under abuse, against the real control plane: while its port takes slowloris
// connections, oversized headers, a pile of idle TCP connections and garbage instead of TLS, the
// agent's Lease must go on being renewed on time and its node stay Ready; once the abuse stops, the
// API server reaches the kubelet API again. The Node host's listener (node:tls) carries the core's
// HTTP server here; the board's own listener is abused the same way with `npm run faults:abuse`
// (tools/faults/abuse.ts), run against the simulator by hand (it needs the Moddable SDK).
import assert from "node:assert/strict";
import { createNodeHost } from "../../hosts/node/host";
import { Kubelet } from "../../modules/kubelet/kubelet";
import { endpointAddress, type ControlPlane } from "../../tools/controlplane/launcher";
import { fromKubeconfig } from "../../tools/kube/connection";
import { eventually } from "../support/api";
import { useCluster } from "../support/cluster";
import { Watchdog } from "../../tools/kube/watchdog";
import { abuseKubeletApi } from "../../tools/faults/abuse";

const NAME = "agent-32";
const ABUSE_MS = 30_000;

describe("the kubelet API under abuse", function () {
  this.timeout(120_000);
  let cp: ControlPlane;
  let kubelet: Kubelet | undefined;
  let address = "";

  before(async function () {
    cp = await useCluster(this);
    // The node proxy refuses loopback node addresses: the agent listens on this machine's own.
    address = endpointAddress() ?? "";
    if (!address) {
      console.warn("      skipped: this machine has no non-loopback address, and the node proxy refuses loopback node addresses");
      return this.skip();
    }
    const serving = await cp.nodeServingCertificate(NAME, [address]);
    kubelet = new Kubelet(
      { nodeName: NAME, server: { host: cp.host, port: cp.port }, tls: { serverName: "localhost", ca: cp.caDer, verify: true }, token: cp.nodeCredentials(NAME).token, kubeletApi: { certificate: serving.certificate, key: serving.key, clientCa: cp.caDer, port: 0 }, settings: false },
      createNodeHost({ log: () => undefined, listenAddress: address, network: () => ({ address }) }),
    );
    kubelet.start();
    await kubelet.registered;
  });
  after(() => kubelet?.stop());

  it(`slowloris, oversized headers, 200 idle connections and garbage TLS for ${ABUSE_MS / 1000} s: renewals on time, Ready throughout, the API reachable after`, async () => {
    const port = kubelet!.identity.daemonEndpoints.kubeletEndpoint.Port;
    const host = address;
    const dog = new Watchdog(fromKubeconfig(cp.kubeconfig), NAME);
    const counts = await abuseKubeletApi({ host, port }, ABUSE_MS);
    dog.stop();
    console.log(`      ${JSON.stringify(counts)}; ${dog.renewTimes.length} renewals seen, longest gap ${dog.worstGap} ms`);
    assert.deepEqual(dog.readyNotTrue, [], "Ready stayed True");
    assert.ok(dog.renewTimes.length >= 2, "renewals were seen");
    assert.ok(dog.worstGap <= 12_000, `the longest gap between renewals was ${dog.worstGap} ms (interval 10 s)`);
    let last = "";
    const reached = await eventually("the API server reaches the kubelet API again", 30_000, async () => {
      last = (await cp.kubectl(["get", "--raw", `/api/v1/nodes/${NAME}/proxy/healthz`]).catch((e: Error) => e.message)).trim();
      return last === "ok";
    }).catch(() => false);
    assert.ok(reached, `kubectl get --raw …/proxy/healthz: ${last}`);
  });
});
