// The agent's own kubelet API, reached the way a cluster reaches a kubelet: kube-apiserver's node
// proxy (its client certificate, the serving certificate verified against the cluster CA),
// Prometheus' own text parser on /metrics, the kubelet's 401 and 403, and metrics-server for
// kubectl top node. The node proxy refuses loopback node addresses, so the agent advertises and
// listens on this machine's own address (skipped, saying why, where there is none).
import assert from "node:assert/strict";
import { request } from "node:https";
import { createNodeHost, derToPem } from "../../hosts/node/host";
import { Kubelet } from "../../modules/kubelet/kubelet";
import { endpointAddress, type ControlPlane } from "../../tools/controlplane/launcher";
import { eventually } from "../support/api";
import { useCluster } from "../support/cluster";
import { promparse } from "../support/promparse";

const NAME = "agent-19";
const LABEL = "xs-kubelet.dev/metrics-test";

function get(port: number, host: string, ca: Uint8Array, path: string, token?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path, ca: derToPem(ca, "CERTIFICATE"), servername: undefined, checkServerIdentity: () => undefined, headers: token ? { Authorization: `Bearer ${token}` } : {} }, (res) => {
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("the agent's kubelet API through the real kube-apiserver", function () {
  this.timeout(180_000);
  let cp: ControlPlane;
  let kubelet: Kubelet | undefined;
  let address: string | undefined;

  before(async function () {
    cp = await useCluster(this);
    address = endpointAddress();
    if (!address) {
      console.warn("      skipped: this machine has no non-loopback address, and the node proxy refuses loopback node addresses");
      return this.skip();
    }
    const serving = await cp.nodeServingCertificate(NAME, [address, NAME]);
    const host = createNodeHost({ log: () => undefined, listenAddress: address, network: () => ({ address: address! }) });
    kubelet = new Kubelet(
      {
        nodeName: NAME,
        server: { host: cp.host, port: cp.port },
        tls: { serverName: "localhost", ca: cp.caDer, verify: true },
        token: cp.nodeCredentials(NAME).token,
        identity: { labels: { [LABEL]: "true" } },
        kubeletApi: { certificate: serving.certificate, key: serving.key, clientCa: cp.caDer, port: 0 },
      },
      host,
    );
    kubelet.start();
    await kubelet.registered;
  });
  after(async () => {
    await kubelet?.stop();
    await cp.stopMetricsServer().catch(() => undefined);
  });

  it("kubectl get --raw …/proxy/healthz answers ok; the Node advertises the port the agent bound", async () => {
    const node = JSON.parse(await cp.kubectl(["get", "node", NAME, "-o", "json"]));
    assert.notEqual(node.status.daemonEndpoints.kubeletEndpoint.Port, 10250, "the port bound (0 asked: any free one)");
    assert.equal(node.status.addresses[0].address, address);
    assert.equal(await cp.kubectl(["get", "--raw", `/api/v1/nodes/${NAME}/proxy/healthz`]), "ok");
  });

  it("/metrics parses with Prometheus' text parser and carries the agent's figures", async () => {
    await eventually("a few renewals", 30_000, async () => kubelet!.lease.renewals >= 2);
    const text = await cp.kubectl(["get", "--raw", `/api/v1/nodes/${NAME}/proxy/metrics`]);
    const families = await promparse(text);
    for (const name of ["xs_kubelet_lease_renewals_total", "xs_kubelet_failures_total", "xs_kubelet_api_request_duration_seconds", "xs_kubelet_api_bytes_total", "xs_kubelet_tls_handshakes_total", "xs_kubelet_heap_bytes", "xs_kubelet_uptime_seconds", "xs_kubelet_clock_offset_seconds", "xs_kubelet_credential_expiry_seconds"]) {
      assert.ok(families[name], `${name} in /metrics`);
    }
    assert.ok(Number(families.xs_kubelet_lease_renewals_total.samples[0].value) >= 2);
    assert.equal(families.xs_kubelet_api_request_duration_seconds.type.toLowerCase(), "histogram");
    // The serving certificate from the CSR API: a year (the controller-manager's signing duration), less a little.
    const serving = families.xs_kubelet_credential_expiry_seconds.samples.find((x: any) => x.labels?.credential === "serving-certificate");
    assert.ok(serving && Number(serving.value) > 300 * 86400, `serving certificate: ${serving?.value} s left`);
    const resource = await promparse(await cp.kubectl(["get", "--raw", `/api/v1/nodes/${NAME}/proxy/metrics/resource`]));
    assert.ok(Number(resource.node_cpu_usage_seconds_total.samples[0].value) > 0);
    assert.ok(resource.node_memory_working_set_bytes.samples[0].timestampMs! > 0);
  });

  it("without credentials 401 (but /healthz); a node token without nodes/proxy on it 403", async () => {
    const port = JSON.parse(await cp.kubectl(["get", "node", NAME, "-o", "json"])).status.daemonEndpoints.kubeletEndpoint.Port;
    assert.equal((await get(port, address!, cp.caDer, "/healthz")).body, "ok");
    for (const path of ["/metrics", "/pods", "/metrics/resource", "/stats/summary", "/spec"]) assert.equal((await get(port, address!, cp.caDer, path)).status, 401, path);
    // Another node's identity may not read this node's kubelet.
    const denied = await get(port, address!, cp.caDer, "/metrics", cp.nodeCredentials("agent-20").token);
    assert.equal(denied.status, 403);
    assert.match(denied.body, /^Forbidden \(user=system:node:agent-20, verb=get, resource=nodes, subresource\(s\)=\[metrics\]\)/);
  });

  it("metrics-server accepts /metrics/resource: kubectl top node shows the board", async function () {
    try {
      await cp.startMetricsServer({ nodeSelector: `${LABEL}=true` });
    } catch (err) {
      if (/non-loopback address/.test((err as Error).message)) return this.skip();
      throw err;
    }
    const line = await eventually("kubectl top node", 90_000, async () => {
      const out = await cp.kubectl(["top", "node", NAME, "--no-headers"]).catch(() => "");
      return out.startsWith(NAME) ? out.trim() : undefined;
    }, 2000);
    console.log(`      $ kubectl top node ${NAME}\n      ${line}`);
    assert.match(line, new RegExp(`^${NAME}\\s+\\d+m\\s+\\d+%\\s+\\d+Mi\\s+`));
  });

  it("metrics-server reads the container series too: kubectl top pod shows a pod running on the node", async function () {
    const pod = { apiVersion: "v1", kind: "Pod", metadata: { name: "top-me", namespace: "default" }, spec: { nodeName: NAME, automountServiceAccountToken: false, containers: [{ name: "c", image: "xs-kubelet.dev/hello", args: ["--interval=200ms"] }] } };
    await cp.kubectl(["apply", "-f", "-"], { input: JSON.stringify(pod) });
    try {
      const line = await eventually("kubectl top pod", 120_000, async () => {
        const out = await cp.kubectl(["top", "pod", "top-me", "-n", "default", "--no-headers"]).catch(() => "");
        return out.startsWith("top-me") ? out.trim() : undefined;
      }, 3000);
      console.log(`      $ kubectl top pod top-me\n      ${line}`);
      assert.match(line, /^top-me\s+\d+m\s+\d+Mi$/);
    } finally {
      await cp.kubectl(["delete", "pod", "top-me", "-n", "default", "--wait=false"]).catch(() => undefined);
    }
  });
});
