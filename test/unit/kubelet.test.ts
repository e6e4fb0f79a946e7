// The agent's behaviour against the scripted API in virtual time: fast, deterministic, every branch.
import assert from "node:assert/strict";
import { ConfigError, Kubelet } from "../../modules/kubelet/kubelet";
import { HEAP_ANNOTATION, NO_RUNTIME_TAINT } from "../../modules/k8s/bodies";
import { lines, rig } from "../../tools/scenarios/harness";
import { createVirtualHost, VirtualTime } from "../../hosts/virtual/host";

const LEASE = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/board-1";
const bodyOf = (raw: string) => JSON.parse(raw.slice(raw.indexOf("\r\n\r\n") + 4));
const headerOf = (raw: string, name: string) => new RegExp(`^${name}: (.*)$`, "mi").exec(raw)?.[1];
const renewals = (reqs: string[]) => reqs.filter((r) => r.startsWith(`PATCH ${LEASE} `));

describe("kubelet (scripted API, virtual time)", () => {
  it("boots: clock from GET /version, registers the Node, creates the Lease, renews every 10 s", async () => {
    const r = rig();
    r.kubelet.start();
    // Six renewals, 10 s + up to 4 % jitter apart after the create, end by 63.4 s; a seventh is not before 70 s.
    await r.time.advance(64_000);
    assert.deepEqual(lines(r.host).slice(0, 4), [
      "GET /version",
      "POST /api/v1/nodes",
      `GET ${LEASE}`,
      "POST /apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
    ]);
    const patches = renewals(r.host.requests);
    assert.equal(patches.length, 6, "one renewal per 10 s (+ ≤ 4 % jitter) after the create");
    const times = patches.map((p) => bodyOf(p).spec.renewTime as string);
    for (const t of times) assert.match(t, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    for (let i = 1; i < times.length; i++) assert.ok(times[i] > times[i - 1], "renewTime strictly increases");
    assert.equal(r.host.connections, 1, "every request on one keep-alive connection");
    assert.equal(r.kubelet.led.state, "healthy");
    await r.kubelet.stop();
  });

  it("registers a Node with identity, taint, conditions and the heap annotation", async () => {
    const r = rig();
    r.kubelet.start();
    await r.time.advance(1000);
    const node = bodyOf(r.host.requests[1]);
    assert.equal(node.metadata.name, "board-1");
    assert.deepEqual(node.metadata.labels, {
      "kubernetes.io/hostname": "board-1",
      "kubernetes.io/os": "moddable",
      "kubernetes.io/arch": "xtensa-lx7",
      "node.kubernetes.io/instance-type": "esp32-s3-r8",
      "xs-kubelet.dev/agent": "true",
    });
    assert.equal(node.metadata.annotations[HEAP_ANNOTATION], String(200 * 1024));
    assert.deepEqual(node.spec.taints, [NO_RUNTIME_TAINT]);
    assert.deepEqual(node.status.capacity, { cpu: "240m", pods: "4", memory: "256Ki" });
    assert.deepEqual(node.status.daemonEndpoints, { kubeletEndpoint: { Port: 10250 } });
    assert.deepEqual(node.status.addresses, [
      { type: "InternalIP", address: "192.0.2.10" },
      { type: "Hostname", address: "board-1" },
    ]);
    assert.match(node.status.nodeInfo.kubeletVersion, /^v1\.33\.\d+-xs-kubelet$/);
    assert.match(node.status.nodeInfo.machineID, /^[0-9a-f]{32}$/);
    assert.match(node.status.nodeInfo.bootID, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const ready = node.status.conditions.find((c: any) => c.type === "Ready");
    assert.deepEqual([ready.status, ready.reason, ready.message], ["True", "KubeletReady", "kubelet is posting ready status"]);
    assert.equal(node.status.conditions.length, 10);
    const lease = bodyOf(r.host.requests[3]);
    assert.deepEqual(lease.metadata.ownerReferences, [{ apiVersion: "v1", kind: "Node", name: "board-1", uid: "uid-1" }]);
    assert.equal(lease.spec.leaseDurationSeconds, 40);
    await r.kubelet.stop();
  });

  it("heartbeat only (pods: false, settings: false): capacity.pods 0 and no watch but the Node's", async () => {
    const r = rig({ pods: false, settings: false });
    r.kubelet.start();
    await r.time.advance(35_000);
    const node = bodyOf(r.host.requests[1]);
    assert.equal(node.status.capacity.pods, "0");
    const gets = lines(r.host).filter((l) => l.startsWith("GET "));
    assert.ok(gets.some((l) => l.startsWith("GET /api/v1/nodes?")), gets.join("\n"));
    assert.deepEqual(gets.filter((l) => /\/pods|\/configmaps/.test(l)), []);
    assert.ok(renewals(r.host.requests).length >= 3);
    await r.kubelet.stop();

    const full = rig();
    full.kubelet.start();
    await full.time.advance(35_000);
    const fullGets = lines(full.host).filter((l) => l.startsWith("GET "));
    assert.equal(fullGets.filter((l) => /\/pods\?|\/configmaps\?/.test(l)).length >= 3, true, fullGets.join("\n"));
    await full.kubelet.stop();
  });

  it("a new boot has a new bootID but the same machineID", async () => {
    const a = rig();
    const time = new VirtualTime();
    const other = new Kubelet({ nodeName: "board-1", server: { host: "192.0.2.1", port: 6443 }, ledFps: 0 }, createVirtualHost({ time, handler: a.api.handle, seed: 99 }));
    assert.notEqual(a.kubelet.identity.nodeInfo.bootID, other.identity.nodeInfo.bootID);
    assert.equal(a.kubelet.identity.nodeInfo.machineID, other.identity.nodeInfo.machineID);
  });

  it("sends the right Content-Type with each write", async () => {
    const r = rig();
    r.kubelet.start();
    await r.time.advance(12_000);
    r.heap = { free: 1024, total: 256 * 1024 };
    await r.time.advance(11_000);
    const type = (prefix: string) => r.host.requests.filter((q) => q.startsWith(prefix)).map((q) => headerOf(q, "Content-Type"));
    assert.deepEqual([...new Set(type("POST /api/v1/nodes "))], ["application/json"]);
    assert.deepEqual([...new Set(type(`PATCH ${LEASE} `))], ["application/merge-patch+json"]);
    assert.deepEqual([...new Set(type("PATCH /api/v1/nodes/board-1/status "))], ["application/strategic-merge-patch+json"]);
    assert.equal(headerOf(r.host.requests[0], "Content-Type"), undefined, "a GET has no body and no Content-Type");
    assert.equal(headerOf(r.host.requests[0], "Authorization"), "Bearer t0ken");
    await r.kubelet.stop();
  });

  it("flips MemoryPressure at once when the heap drops below 20 KiB; transition time only on flips", async () => {
    const r = rig();
    r.kubelet.start();
    await r.time.advance(20_000);
    const statusPushes = () => r.host.requests.filter((q) => q.startsWith("PATCH /api/v1/nodes/board-1/status "));
    assert.equal(statusPushes().length, 0, "nothing owed after registration");
    r.heap = { free: 19 * 1024, total: 256 * 1024 };
    await r.time.advance(10_500);
    assert.equal(statusPushes().length, 1, "a flip is pushed within one check interval");
    const push = bodyOf(statusPushes()[0]);
    const mp = push.status.conditions.find((c: any) => c.type === "MemoryPressure");
    assert.deepEqual([mp.status, mp.reason], ["True", "KubeletHasInsufficientMemory"]);
    assert.equal(push.metadata.annotations[HEAP_ANNOTATION], String(19 * 1024));
    const node = r.api.nodes.get("board-1");
    const stored = node.status.conditions.find((c: any) => c.type === "MemoryPressure");
    const ready = node.status.conditions.find((c: any) => c.type === "Ready");
    assert.equal(stored.status, "True");
    // Ready did not flip: its transition time is still the registration's.
    const registered = bodyOf(r.host.requests[1]).status.conditions.find((c: any) => c.type === "Ready");
    assert.equal(ready.lastTransitionTime, registered.lastTransitionTime);
    assert.notEqual(stored.lastTransitionTime, registered.lastTransitionTime);
    // A periodic push 5 min later: heartbeat moves, transition does not.
    await r.time.advance(300_000);
    const later = r.api.nodes.get("board-1").status.conditions.find((c: any) => c.type === "MemoryPressure");
    assert.equal(later.lastTransitionTime, stored.lastTransitionTime);
    assert.ok(later.lastHeartbeatTime > stored.lastHeartbeatTime);
    await r.kubelet.stop();
  });

  it("recreates a deleted Lease (404 on renewal)", async () => {
    const r = rig();
    r.kubelet.start();
    await r.time.advance(5000);
    r.api.leases.clear();
    await r.time.advance(11_000);
    assert.ok(r.api.leases.has("board-1"));
    assert.equal(r.api.leases.get("board-1").metadata.ownerReferences[0].uid, "uid-1");
    await r.kubelet.stop();
  });

  it("adopts an existing Node (409): labels, addresses, nodeInfo and capacity are reconciled", async () => {
    const r = rig({}, (p) => {
      p.api.nodes.set("board-1", {
        apiVersion: "v1",
        kind: "Node",
        metadata: { name: "board-1", uid: "old-uid", labels: { "kubernetes.io/arch": "wrong", keep: "me" } },
        status: { addresses: [{ type: "InternalIP", address: "10.9.9.9" }], nodeInfo: { bootID: "old" }, conditions: [{ type: "Ready", status: "Unknown", lastTransitionTime: "2026-01-01T00:00:00Z" }] },
      });
    });
    r.kubelet.start();
    await r.time.advance(3000);
    const node = r.api.nodes.get("board-1");
    assert.equal(node.metadata.labels["kubernetes.io/arch"], "xtensa-lx7");
    assert.equal(node.metadata.labels.keep, "me");
    assert.deepEqual(node.status.addresses, [
      { type: "InternalIP", address: "192.0.2.10" },
      { type: "Hostname", address: "board-1" },
    ]);
    assert.equal(node.status.nodeInfo.bootID, r.kubelet.identity.nodeInfo.bootID);
    const ready = node.status.conditions.find((c: any) => c.type === "Ready");
    assert.equal(ready.status, "True");
    assert.notEqual(ready.lastTransitionTime, "2026-01-01T00:00:00Z", "Unknown → True is a transition");
    assert.equal(r.api.leases.get("board-1").metadata.ownerReferences[0].uid, "old-uid");
    await r.kubelet.stop();
  });

  it("a rejected token is one clear error, backs off, shows Warning and never crashes", async () => {
    const r = rig({}, (p) => {
      p.api.token = "the-real-one";
    });
    r.kubelet.start();
    await r.time.advance(600_000);
    const errors = r.host.logs.filter((l) => l.startsWith("error:"));
    assert.equal(errors.length, 1, errors.join("\n"));
    assert.match(errors[0], /401 Unauthorized.*token or client certificate is not accepted/);
    assert.ok(r.host.requests.length < 15, `backed off: ${r.host.requests.length} requests in 10 minutes`);
    assert.equal(r.kubelet.led.state, "warning");
    assert.equal(r.kubelet.phase, "anchoring");
    // Fixing the credentials on the server side lets it through on the next attempt.
    r.api.token = undefined;
    await r.time.advance(300_000);
    assert.equal(r.kubelet.phase, "running");
    assert.equal(r.kubelet.led.state, "healthy");
    assert.ok(r.host.logs.some((l) => /works again/.test(l)));
    await r.kubelet.stop();
  });

  it("a status push rejected with 401 backs off like the Lease does (10 s doubling to 5 min), and the LED says so", async () => {
    const r = rig();
    r.kubelet.start();
    await r.time.advance(12_000);
    const at: number[] = []; // virtual time of each status push attempt
    const isPush = (q: { method: string; path: string }) => {
      const hit = q.method === "PATCH" && q.path.endsWith("/status");
      if (hit) at.push(r.time.now);
      return hit;
    };
    r.api.fail(isPush, { status: 401 }, 1000);
    r.heap = { free: 1000, total: 256 * 1024 };
    await r.time.advance(600_000);
    assert.ok(at.length >= 5 && at.length <= 8, `status push attempts in 10 minutes: ${at.length} (auth backoff 10 s → 5 min)`);
    // 10 s, 20 s, 40 s … doubling (± 10 % jitter) up to the 5-minute cap.
    const gaps = at.slice(1).map((t, i) => t - at[i]);
    assert.ok(gaps[0] >= 9000, `first retry after ${gaps[0]} ms`);
    for (let i = 1; i < gaps.length; i++) assert.ok(gaps[i] >= Math.min(1.6 * gaps[i - 1], 270_000), `gaps between attempts (ms): ${gaps.join(", ")}`);
    assert.ok(r.kubelet.lease.renewals > 55, "the Lease kept renewing meanwhile");
    assert.equal(r.kubelet.led.state, "warning", "the rejected status shows, although the Lease renews");
    assert.equal(r.host.logs.filter((l) => l.startsWith("error:")).length, 1, "one error line, not one per attempt");
    await r.kubelet.stop();
  });

  it("retries a flip whose push failed until it lands (B4)", async () => {
    const r = rig();
    r.kubelet.start();
    await r.time.advance(12_000);
    r.api.fail((q) => q.path.endsWith("/status"), { status: 503 }, 3);
    r.heap = { free: 1000, total: 256 * 1024 };
    await r.time.advance(30_000);
    const stored = r.api.nodes.get("board-1").status.conditions.find((c: any) => c.type === "MemoryPressure");
    assert.equal(stored.status, "True");
    assert.equal(r.kubelet.status.pending, false);
    await r.kubelet.stop();
  });

  it("pushes Ready at once on the first renewal after an outage (B2)", async () => {
    const r = rig();
    r.kubelet.start();
    await r.time.advance(15_000);
    r.offline = true;
    await r.time.advance(60_000);
    assert.equal(r.kubelet.led.state, "disconnected");
    // Meanwhile the node lifecycle controller gave up on the node.
    const node = r.api.nodes.get("board-1");
    node.status.conditions = node.status.conditions.map((c: any) => (c.type === "Ready" ? { ...c, status: "Unknown", reason: "NodeStatusUnknown" } : c));
    r.offline = false;
    const waited = await r.time.until(() => r.api.nodes.get("board-1").status.conditions.find((c: any) => c.type === "Ready").status === "True", 15_000, "Ready=True");
    assert.ok(waited <= 10_400, `Ready again ${waited} ms after the network came back`);
    assert.equal(r.kubelet.led.state, "healthy", r.host.logs.slice(-15).join("\n"));
    await r.kubelet.stop();
  });

  it("pushes Ready once the Lease exists when boot was held up past registering: the controller may have given up meanwhile", async () => {
    // Found by the bench's recovery step: an outage right after the Node was registered, before its
    // Lease was created. The Node carried Ready=True from its registration, the controller set it
    // Unknown while the Lease could not be made, and the agent, which had never renewed and so never
    // "recovered", did not push again: Ready stayed Unknown until the periodic report (minutes).
    const r = rig();
    r.api.fail((q) => q.method === "POST" && q.path.startsWith("/apis/coordination.k8s.io/"), { drop: true }, 1_000_000);
    r.kubelet.start();
    await r.time.until(() => r.api.nodes.has("board-1"), 10_000, "registered");
    await r.time.advance(45_000);
    assert.equal(r.kubelet.lease.renewals, 0, "no Lease yet");
    const node = r.api.nodes.get("board-1");
    node.status.conditions = node.status.conditions.map((c: any) => (c.type === "Ready" ? { ...c, status: "Unknown", reason: "NodeStatusUnknown" } : c));
    r.api.faults.length = 0;
    const back = r.time.now;
    await r.time.until(() => r.kubelet.lease.renewals > 0, 10_000, "the Lease created");
    const created = r.time.now - back;
    const waited = await r.time.until(() => r.api.nodes.get("board-1").status.conditions.find((c: any) => c.type === "Ready").status === "True", 15_000, "Ready=True");
    assert.ok(waited <= created + 1000, `Ready=True ${waited} ms after the return, the Lease created at ${created} ms`);
    await r.kubelet.stop();
  });

  it("drains big responses instead of failing (B3)", async () => {
    const r = rig({}, (p) => {
      p.api.nodePadding = 200_000;
    });
    r.kubelet.start();
    await r.time.advance(12_000);
    r.heap = { free: 1000, total: 256 * 1024 };
    await r.time.advance(11_000);
    assert.equal(r.kubelet.status.pushes, 1);
    assert.equal(r.kubelet.status.pending, false);
    assert.equal(r.host.logs.filter((l) => l.startsWith("warn")).length, 0, r.host.logs.join("\n"));
    await r.kubelet.stop();
  });

  it("anchors the clock when GET /version fails at first, and renewTime never goes backwards (B1)", async () => {
    const r = rig({}, (p) => {
      p.api.fail((q) => q.path === "/version", { status: 503 }, 2);
      p.api.fail((q) => q.path === "/version", { drop: true }, 1);
    });
    r.kubelet.start();
    await r.time.advance(30_000);
    assert.equal(r.kubelet.phase, "running");
    r.api.skewMs = -20_000; // the server's clock steps back
    await r.time.advance(40_000);
    const times = renewals(r.host.requests).map((p) => bodyOf(p).spec.renewTime as string);
    for (let i = 1; i < times.length; i++) assert.ok(times[i] > times[i - 1], `${times[i]} after ${times[i - 1]}`);
    assert.ok(r.kubelet.clock.anchors >= 2, "re-anchored from later responses");
    // The slip showed as Haunted=TimeSlipped in a status push.
    const pushes = r.host.requests.filter((q) => q.startsWith("PATCH /api/v1/nodes/board-1/status ")).map(bodyOf);
    const haunted = pushes.map((p) => p.status.conditions.find((c: any) => c.type === "Haunted").reason);
    assert.ok(haunted.includes("TimeSlipped"), haunted.join(","));
    await r.kubelet.stop();
  });

  it("follows a new address into the Node's InternalIP (B5)", async () => {
    const r = rig();
    r.kubelet.start();
    await r.time.advance(12_000);
    r.net.address = "192.0.2.77";
    await r.time.advance(11_000);
    assert.deepEqual(r.api.nodes.get("board-1").status.addresses[0], { type: "InternalIP", address: "192.0.2.77" });
    await r.kubelet.stop();
  });

  it("shuts down gracefully: Ready=False, then optionally deletes the Node and its Lease", async () => {
    const r = rig();
    r.kubelet.start();
    await r.time.advance(12_000);
    await r.kubelet.stop();
    const ready = r.api.nodes.get("board-1").status.conditions.find((c: any) => c.type === "Ready");
    assert.deepEqual([ready.status, ready.reason, ready.message], ["False", "KubeletNotReady", "node is shutting down"]);

    const d = rig();
    d.kubelet.start();
    await d.time.advance(12_000);
    await d.kubelet.stop({ decommission: true });
    assert.equal(d.api.nodes.has("board-1"), false);
    assert.equal(d.api.leases.has("board-1"), false);
    assert.equal(d.time.pendingTimers, 0, "no timer left running");
  });

  it("rejects a bad node name with a clear error", () => {
    const time = new VirtualTime();
    const host = createVirtualHost({ time, handler: () => "" });
    const make = (nodeName: string) => () => new Kubelet({ nodeName, server: { host: "192.0.2.1", port: 6443 } }, host);
    assert.throws(make("x".repeat(64)), (e: ConfigError) => /64 characters long; the limit is 63/.test(e.message));
    assert.throws(make("Board_1"), /upper-case/);
    assert.throws(make("board_1"), /not a DNS-1123 subdomain/);
    assert.throws(make(""), /node name is empty/);
    assert.doesNotThrow(make("x".repeat(63)));
    assert.throws(() => new Kubelet({ nodeName: "ok", server: { host: "300.1.1.1", port: 6443 } }, host), /not a valid IPv4 address/);
    assert.throws(() => new Kubelet({ nodeName: "ok", server: { host: "api.example", port: 70000 } }, host), /port "70000"/);
  });

  it("drives the LED: connecting, healthy with a flash per renewal, disconnected", async () => {
    const r = rig({ ledFps: 30 });
    r.offline = true;
    r.kubelet.start();
    await r.time.advance(2000);
    assert.equal(r.kubelet.led.state, "disconnected");
    r.offline = false;
    await r.time.advance(30_000);
    assert.equal(r.kubelet.led.state, "healthy");
    assert.ok(r.host.led.some(([red, green, blue]) => red > 0 && green > 0 && blue === 0), "a yellow activity flash was drawn");
    assert.ok(r.host.led.every((c) => c.every((v) => v <= 38)), "brightness cap");
    await r.kubelet.stop();
  });
});
