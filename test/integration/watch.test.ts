// The one connection against the real control plane: HTTP/2 by default (HTTP/1.1 when told), the
// Node watch that registers a deleted Node again, and an API server restart (GOAWAY, a new
// connection, the watch resumed) that the Lease rides out.
import assert from "node:assert/strict";
import { ESP32S3_BOARD } from "../../hosts/esp32s3/board";
import { createNodeHost } from "../../hosts/node/host";
import { Kubelet, type KubeletOptions } from "../../modules/kubelet/kubelet";
import type { Http2Connection } from "../../modules/http/h2";
import type { ControlPlane } from "../../tools/controlplane/launcher";
import { eventually } from "../support/api";
import { useCluster } from "../support/cluster";

describe("one connection to the real API server: HTTP/2, the Node watch, a restart", function () {
  this.timeout(120_000);
  let cp: ControlPlane;
  const running: Kubelet[] = [];
  const logs = new Map<string, string[]>();
  const start = (name: string, overrides: Partial<KubeletOptions> = {}) => {
    const lines: string[] = [];
    logs.set(name, lines);
    const host = createNodeHost({ log: (level, message) => void lines.push(`${level}: ${message}`), board: ESP32S3_BOARD });
    const k = new Kubelet({ nodeName: name, server: { host: cp.host, port: cp.port }, tls: { serverName: "localhost", ca: cp.caDer, verify: true }, token: cp.nodeCredentials(name).token, ...overrides }, host);
    running.push(k);
    k.start();
    return k;
  };
  const getNode = async (name: string) => JSON.parse(await cp.kubectl(["get", "node", name, "-o", "json"]));
  const renewTime = async (name: string) => JSON.parse(await cp.kubectl(["get", "lease", name, "-n", "kube-node-lease", "-o", "json"])).spec.renewTime as string;

  before(async function () {
    cp = await useCluster(this);
  });
  afterEach(async () => {
    for (const k of running.splice(0)) await k.stop();
  });

  it("speaks HTTP/2 to kube-apiserver by default, HTTP/1.1 when told; both Ready on one connection", async () => {
    const h2 = start("agent-13");
    const h1 = start("agent-14", { http: "http/1.1" });
    await Promise.all([h2.registered, h1.registered]);
    await eventually("renewals on both", 20_000, async () => h2.lease.renewals >= 2 && h1.lease.renewals >= 2);
    assert.equal(h2.api.protocol, "h2");
    assert.equal(h1.api.protocol, "http/1.1");
    assert.equal(h2.api.stats.connects, 1, "HTTP/2: requests and the four watches (Node, pods, two settings ConfigMaps) share one TLS connection");
    assert.equal(h1.api.stats.connects, 5, "HTTP/1.1: each of the four watches needs a connection of its own");
    assert.ok(h2.nodeWatch.watching && h1.nodeWatch.watching, "the Node watches are open");
    assert.ok(h2.podWatch.watching && h1.podWatch.watching, "the pods watches are open");
    for (const name of ["agent-13", "agent-14"]) assert.equal((await getNode(name)).status.conditions.find((c: any) => c.type === "Ready").status, "True");
  });

  it("a Node deleted with kubectl is registered again at once, through the Node watch", async () => {
    const k = start("agent-15");
    await k.registered;
    await eventually("the Node watch open", 10_000, async () => k.nodeWatch.watching);
    const before = (await getNode("agent-15")).metadata.uid;
    const t0 = Date.now();
    await cp.kubectl(["delete", "node", "agent-15", "--wait=false"]);
    const node = await eventually("agent-15 back with a new uid", 20_000, async () => {
      const n = await getNode("agent-15").catch(() => undefined);
      return n && n.metadata.uid !== before ? n : undefined;
    }, 200);
    console.log(`      registered again ${Date.now() - t0} ms after kubectl delete node`);
    assert.ok(logs.get("agent-15")!.some((l) => /Node agent-15 was deleted: registering it again/.test(l)));
    // Its Lease follows the new Node (the old one went with the old uid).
    await eventually("the Lease owned by the new Node", 30_000, async () => {
      const lease = JSON.parse(await cp.kubectl(["get", "lease", "agent-15", "-n", "kube-node-lease", "-o", "json"]).catch(() => "{}"));
      return lease.metadata?.ownerReferences?.[0]?.uid === node.metadata.uid;
    });
  });

  it("an API server restart: GOAWAY, a new connection, the watch resumes, and the Lease never lapses", async function () {
    this.timeout(180_000);
    const k = start("agent-16");
    await k.registered;
    await eventually("the Node watch open", 10_000, async () => k.nodeWatch.watching);
    const transport = k.api.connection as Http2Connection;
    const watchesBefore = k.nodeWatch.watches;
    const renewals = k.lease.renewals;
    const t0 = Date.now();
    await cp.restartApiServer();
    console.log(`      kube-apiserver restarted in ${Date.now() - t0} ms`);
    await eventually("renewing again, on a new connection", 40_000, async () => k.lease.renewals > renewals + 1 && k.nodeWatch.watching && k.nodeWatch.watches > watchesBefore);
    const lapse = Date.now() - Date.parse(await renewTime("agent-16"));
    assert.ok(lapse < 40_000, "the Lease is fresh");
    assert.equal((await getNode("agent-16")).status.conditions.find((c: any) => c.type === "Ready").status, "True");
    assert.ok(k.api.stats.connects >= 2, `reconnected (${k.api.stats.connects} connections)`);
    console.log(`      GOAWAYs seen: ${transport.goaways}, connections: ${k.api.stats.connects}, Node watch streams: ${k.nodeWatch.watches}`);
    // The resumed watch works: a deletion is noticed.
    await cp.kubectl(["delete", "node", "agent-16", "--wait=false"]);
    await eventually("agent-16 registered again after the restart", 20_000, async () => logs.get("agent-16")!.some((l) => /Node agent-16 was deleted/.test(l)));
  });
});
