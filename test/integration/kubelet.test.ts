// The agent on the Node host against the real control plane: the API server, the node lifecycle
// controller, the garbage collector and kubectl are the judges. Defaults stay 10 s / 40 s.
import assert from "node:assert/strict";
import { Kubelet, type KubeletOptions } from "../../modules/kubelet/kubelet";
import type { HeapFigures } from "../../modules/host";
import { ESP32S3_BOARD } from "../../hosts/esp32s3/board";
import { createNodeHost } from "../../hosts/node/host";
import type { ControlPlane } from "../../tools/controlplane/launcher";
import { eventually } from "../support/api";
import { TEST_GRACE_SECONDS, useCluster } from "../support/cluster";

interface Agent {
  kubelet: Kubelet;
  heap: HeapFigures;
  logs: string[];
}

function agent(cp: ControlPlane, name: string, overrides: Partial<KubeletOptions> = {}): Agent {
  const a: Agent = { heap: { free: 256 * 1024, total: 320 * 1024 }, logs: [] } as unknown as Agent;
  const host = createNodeHost({
    heap: () => a.heap,
    log: (level, message) => void a.logs.push(`${level}: ${message}`),
    showLed: () => undefined,
    board: ESP32S3_BOARD, // a simulated board: the labels it must correct on a pre-existing Node are the board's
  });
  a.kubelet = new Kubelet(
    {
      nodeName: name,
      server: { host: cp.host, port: cp.port },
      tls: { serverName: "localhost", ca: cp.caDer, verify: true },
      token: cp.nodeCredentials(name).token,
      identity: { osImage: "xs-kubelet test board", kernelVersion: "test-kernel 1.0" },
      ...overrides,
    },
    host,
  );
  return a;
}

const getNode = async (cp: ControlPlane, name: string) => JSON.parse(await cp.kubectl(["get", "node", name, "-o", "json"]));
const getLease = async (cp: ControlPlane, name: string) => JSON.parse(await cp.kubectl(["get", "lease", name, "-n", "kube-node-lease", "-o", "json"]));
const condition = (node: any, type: string) => node.status.conditions.find((c: any) => c.type === type);
const hasTaint = (node: any, key: string) => (node.spec.taints ?? []).some((t: any) => t.key === key);

describe("kubelet on the Node host against the real control plane", function () {
  this.timeout(120_000);
  let cp: ControlPlane;
  const running: Agent[] = [];
  const start = (name: string, overrides?: Partial<KubeletOptions>) => {
    const a = agent(cp, name, overrides);
    running.push(a);
    a.kubelet.start();
    return a;
  };

  before(async function () {
    cp = await useCluster(this);
  });
  afterEach(async () => {
    for (const a of running.splice(0)) await a.kubelet.stop();
  });

  it("joins: kubectl get nodes -o wide shows it Ready with nodeInfo; describe shows the Lease", async () => {
    const a = start("agent-3");
    await a.kubelet.registered;
    const wide = await eventually("agent-3 Ready in kubectl get nodes", 30_000, async () => {
      const out = await cp.kubectl(["get", "node", "agent-3", "-o", "wide"]);
      return /agent-3\s+Ready\s/.test(out) ? out : undefined;
    });
    const [header, row] = wide.trim().split("\n");
    const cols = header.split(/\s{2,}/);
    const cells = row.split(/\s{2,}/);
    const cell = (name: string) => cells[cols.indexOf(name)];
    assert.equal(cell("VERSION"), a.kubelet.identity.nodeInfo.kubeletVersion);
    assert.equal(cell("INTERNAL-IP"), "127.0.0.1");
    assert.equal(cell("OS-IMAGE"), "xs-kubelet test board");
    assert.equal(cell("KERNEL-VERSION"), "test-kernel 1.0");
    assert.equal(cell("CONTAINER-RUNTIME"), a.kubelet.identity.nodeInfo.containerRuntimeVersion);
    const describe = await cp.kubectl(["describe", "node", "agent-3"]);
    assert.match(describe, /Lease:\s+HolderIdentity:\s+agent-3/);
    assert.match(describe, /RenewTime:\s+\w+/);
    assert.match(describe, /xs-kubelet.dev\/heap-bytes-free: 262144/);
    // The controller lifted the not-ready taint TaintNodesAtCreation put on; the board's own stays.
    const node = await eventually("not-ready taint lifted", 20_000, async () => {
      const n = await getNode(cp, "agent-3");
      return hasTaint(n, "node.kubernetes.io/not-ready") ? undefined : n;
    });
    assert.ok(hasTaint(node, "xs-kubelet.dev/no-container-runtime"));
  });

  it("renews the Lease every 10 s with a six-digit MicroTime that only moves forward", async function () {
    this.timeout(60_000);
    const a = start("agent-4");
    await a.kubelet.registered;
    const seen: string[] = [];
    await eventually("three renewals", 40_000, async () => {
      const t = (await getLease(cp, "agent-4")).spec.renewTime as string;
      if (seen[seen.length - 1] !== t) seen.push(t);
      return seen.length >= 3;
    }, 1000);
    for (const t of seen) assert.match(t, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    const gaps = seen.slice(1).map((t, i) => Date.parse(t) - Date.parse(seen[i]));
    for (const g of gaps) assert.ok(g >= 9_500 && g <= 11_500, `renewal gap ${g} ms`);
    const lease = await getLease(cp, "agent-4");
    assert.equal(lease.spec.leaseDurationSeconds, 40);
    assert.equal(lease.spec.holderIdentity, "agent-4");
  });

  it("flips MemoryPressure when the heap drops below 20 KiB; the taint follows; transition times only on flips", async function () {
    this.timeout(90_000);
    const a = start("agent-5");
    await a.kubelet.registered;
    const before = await getNode(cp, "agent-5");
    const readyBefore = condition(before, "Ready");
    a.heap = { free: 12 * 1024, total: 320 * 1024 };
    const node = await eventually("MemoryPressure=True and the memory-pressure taint", 40_000, async () => {
      const n = await getNode(cp, "agent-5");
      return condition(n, "MemoryPressure").status === "True" && hasTaint(n, "node.kubernetes.io/memory-pressure") ? n : undefined;
    });
    const mp = condition(node, "MemoryPressure");
    assert.equal(mp.reason, "KubeletHasInsufficientMemory");
    assert.equal(condition(node, "Peckish").reason, "Hungry");
    assert.equal(condition(node, "Ready").lastTransitionTime, readyBefore.lastTransitionTime, "Ready did not flip");
    assert.ok(mp.lastTransitionTime >= readyBefore.lastTransitionTime);
    assert.equal(node.metadata.annotations["xs-kubelet.dev/heap-bytes-free"], String(12 * 1024));
    // Heartbeats advance with each push; transition stays.
    a.heap = { free: 11 * 1024, total: 320 * 1024 };
    await a.kubelet.status.push("test: one more heartbeat");
    const after = await getNode(cp, "agent-5");
    assert.equal(condition(after, "MemoryPressure").lastTransitionTime, mp.lastTransitionTime);
    assert.ok(condition(after, "MemoryPressure").lastHeartbeatTime >= mp.lastHeartbeatTime);
  });

  it("stopped: the lifecycle controller marks it Unknown; restarted: Ready=True within one renewal interval", async function () {
    this.timeout((TEST_GRACE_SECONDS + 90) * 1000);
    const first = agent(cp, "agent-6");
    first.kubelet.start();
    await first.kubelet.registered;
    await first.kubelet.stop();
    await eventually("Ready=Unknown from the node lifecycle controller", (TEST_GRACE_SECONDS + 40) * 1000, async () => {
      const n = await getNode(cp, "agent-6");
      return condition(n, "Ready").status === "Unknown" && hasTaint(n, "node.kubernetes.io/unreachable");
    });
    const t0 = Date.now();
    const second = start("agent-6");
    await eventually("Ready=True again", 30_000, async () => condition(await getNode(cp, "agent-6"), "Ready").status === "True", 200);
    const ms = Date.now() - t0;
    console.log(`      Ready=True ${ms} ms after the agent started again (renewal interval: 10000 ms)`);
    assert.ok(ms < 10_000, `took ${ms} ms`);
    const node = await getNode(cp, "agent-6");
    assert.notEqual(node.status.nodeInfo.bootID, first.kubelet.identity.nodeInfo.bootID, "a new boot is visible");
    assert.equal(node.status.nodeInfo.bootID, second.kubelet.identity.nodeInfo.bootID);
  });

  it("recreates a Lease deleted with kubectl", async function () {
    this.timeout(60_000);
    const a = start("agent-7");
    await a.kubelet.registered;
    await cp.kubectl(["delete", "lease", "agent-7", "-n", "kube-node-lease"]);
    const lease = await eventually("the Lease back", 30_000, async () => getLease(cp, "agent-7").catch(() => undefined), 500);
    const node = await getNode(cp, "agent-7");
    assert.deepEqual(lease.metadata.ownerReferences.map((o: any) => [o.kind, o.name, o.uid]), [["Node", "agent-7", node.metadata.uid]]);
  });

  it("adopts a pre-existing Node (409) and reconciles it", async () => {
    await cp.kubectl(["create", "-f", "-"], {
      input: JSON.stringify({ apiVersion: "v1", kind: "Node", metadata: { name: "agent-8", labels: { "kubernetes.io/arch": "amd64", team: "blue" } } }),
    });
    const a = start("agent-8");
    await a.kubelet.registered;
    const node = await eventually("reconciled", 20_000, async () => {
      const n = await getNode(cp, "agent-8");
      return n.status.nodeInfo?.bootID === a.kubelet.identity.nodeInfo.bootID ? n : undefined;
    });
    assert.equal(node.metadata.labels["kubernetes.io/arch"], "xtensa-lx7");
    assert.equal(node.metadata.labels.team, "blue");
    assert.equal(node.status.addresses.find((x: any) => x.type === "InternalIP").address, "127.0.0.1");
    assert.equal(condition(node, "Ready").status, "True");
    assert.ok(a.logs.some((l) => /already existed: adopted it/.test(l)));
  });

  it("a bad token: one clear error, backoff, LED Warning, no crash", async function () {
    this.timeout(60_000);
    const a = start("agent-9", { token: "not-the-token" });
    await new Promise((r) => setTimeout(r, 25_000));
    const errors = a.logs.filter((l) => l.startsWith("error:"));
    assert.equal(errors.length, 1, a.logs.join("\n"));
    assert.match(errors[0], /401 Unauthorized/);
    assert.equal(a.kubelet.led.state, "warning");
    assert.ok(a.kubelet.api.connection.stats.requests <= 3, `backed off: ${a.kubelet.api.connection.stats.requests} requests in 25 s`);
    await assert.rejects(getNode(cp, "agent-9"));
  });

  it("decommission with a system:node identity is refused by the API and says what to do instead", async function () {
    this.timeout(60_000);
    const a = agent(cp, "agent-10");
    a.kubelet.start();
    await a.kubelet.registered;
    await a.kubelet.stop({ decommission: true });
    const error = a.logs.find((l) => l.startsWith("error: decommission failed"));
    assert.match(error ?? "", /403 Forbidden.*may not delete its own Node; run "kubectl delete node agent-10"/);
    // Deleting it as an admin takes the Lease with it (garbage collector, ownerReference).
    await cp.kubectl(["delete", "node", "agent-10"]);
    await eventually("the Lease gone", 40_000, async () => getLease(cp, "agent-10").then(() => false, () => true));
  });

  it("reports the exact condition strings the kubelet uses", async () => {
    const a = start("agent-11");
    await a.kubelet.registered;
    const node = await getNode(cp, "agent-11");
    const pick = (t: string) => {
      const c = condition(node, t);
      return [c.status, c.reason, c.message];
    };
    assert.deepEqual(pick("Ready"), ["True", "KubeletReady", "kubelet is posting ready status"]);
    assert.deepEqual(pick("MemoryPressure"), ["False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"]);
    assert.deepEqual(pick("DiskPressure"), ["False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"]);
    assert.deepEqual(pick("PIDPressure"), ["False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"]);
    assert.deepEqual(pick("Caffeinated"), ["True", "FreshlyBrewed", "fresh out of the bootloader"]);
    assert.deepEqual(pick("Existential"), ["False", "Innocent", "still believes in pods"]);
    assert.deepEqual(pick("Vibes"), ["True", "Immaculate", "freshly booted, heap abundant"]);
    assert.deepEqual(pick("Haunted"), ["False", "Calm", "no ghosts this interval"]);
    await a.kubelet.stop();
    running.splice(running.indexOf(a), 1);
    const down = condition(await getNode(cp, "agent-11"), "Ready");
    assert.deepEqual([down.status, down.reason, down.message], ["False", "KubeletNotReady", "node is shutting down"]);
  });

  it("works the same with a least-privilege ServiceAccount token, which may also decommission", async function () {
    this.timeout(60_000);
    const token = await cp.serviceAccountToken("sa-board-1", 3600);
    const host = createNodeHost({ log: () => undefined });
    const k = new Kubelet({ nodeName: "sa-board-1", server: { host: cp.host, port: cp.port }, tls: { serverName: "127.0.0.1", ca: cp.caDer, verify: true }, token }, host);
    k.start();
    try {
      await k.registered;
      await eventually("a renewal", 15_000, async () => k.lease.renewals >= 1);
      assert.equal(condition(await getNode(cp, "sa-board-1"), "Ready").status, "True");
    } finally {
      await k.stop({ decommission: true });
    }
    // The ServiceAccount identity from deploy/ may decommission its Node; the Lease follows it.
    await assert.rejects(getNode(cp, "sa-board-1"), /not found/);
    await eventually("the Lease gone", 40_000, async () => getLease(cp, "sa-board-1").then(() => false, () => true));
  });
});
