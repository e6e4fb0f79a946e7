// Pods on the node, against the scripted API in virtual time: what the status writes, deletions,
// events and logs look like for each part of a pod's life.
import assert from "node:assert/strict";
import { rig, type Rig } from "../../tools/scenarios/harness";
import { SimulatedGpio } from "../../hosts/virtual/gpio";
import { parseLogQuery, selectLines } from "../../modules/pods/logs";
import { workloadName } from "../../modules/pods/workload";
import { parseQuantity } from "../../modules/k8s/quantity";

let uid = 0;
function pod(name: string, containers: any[], extra: { restartPolicy?: string; namespace?: string; status?: any; initContainers?: any[] } = {}) {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: extra.namespace ?? "default", uid: `pod-uid-${++uid}`, creationTimestamp: "2026-11-21T12:00:00Z" },
    spec: { nodeName: "board-1", restartPolicy: extra.restartPolicy ?? "Always", containers, ...(extra.initContainers ? { initContainers: extra.initContainers } : {}) },
    status: extra.status ?? { phase: "Pending", conditions: [{ type: "PodScheduled", status: "True", lastTransitionTime: "2026-11-21T12:00:00Z" }] },
  };
}

const hello = (args: string[] = [], name = "hello") => ({ name, image: "xs-kubelet.dev/hello:0.1", args });
const stored = (r: Rig, name: string, ns = "default") => r.api.pods.get(`${ns}/${name}`);
const status = (r: Rig, name: string, ns = "default") => stored(r, name, ns)?.status;
const events = (r: Rig) => [...r.api.coreEvents.values()];

async function running(overrides: Parameters<typeof rig>[0] = {}, setup?: Parameters<typeof rig>[1]) {
  const r = rig(overrides, setup);
  r.kubelet.start();
  await r.time.advance(2_000);
  return r;
}

describe("pods", () => {
  it("runs hello: Running 1/1, conditions and containerStatuses as the kubelet writes them, lines in its log", async () => {
    const r = await running();
    r.api.put("pods", pod("hello", [hello()]));
    await r.time.until(() => status(r, "hello")?.phase === "Running", 5_000, "Running");
    await r.time.advance(3_500);
    const s = status(r, "hello");
    assert.equal(s.hostIP, "192.0.2.10");
    assert.equal(s.podIP, "192.0.2.10");
    assert.deepEqual(s.podIPs, [{ ip: "192.0.2.10" }]);
    assert.deepEqual(
      s.conditions.map((c: any) => [c.type, c.status]),
      [["PodReadyToStartContainers", "True"], ["Initialized", "True"], ["ContainersReady", "True"], ["Ready", "True"], ["PodScheduled", "True"]],
    );
    const [cs] = s.containerStatuses;
    assert.equal(cs.name, "hello");
    assert.equal(cs.ready, true);
    assert.equal(cs.started, true);
    assert.equal(cs.restartCount, 0);
    assert.match(cs.containerID, /^xs-kubelet:\/\/[0-9a-f]{16}$/);
    assert.match(cs.imageID, /^xs-kubelet\.dev\/hello@builtin:/);
    assert.ok(cs.state.running.startedAt);
    const logs = r.kubelet.pods.logs("default", "hello", "hello", "tailLines=2");
    assert.equal(logs.status, 200);
    assert.deepEqual(logs.text!.trim().split("\n"), ["hello from board-1 (3)", "hello from board-1 (4)"]);
    const reasons = events(r).filter((e) => e.involvedObject.kind === "Pod").map((e) => `${e.reason} ${e.involvedObject.fieldPath}`);
    assert.deepEqual(reasons, ["Created spec.containers{hello}", "Started spec.containers{hello}"]);
    // A few status writes, not one a line: the log does not touch the API.
    assert.ok(r.kubelet.pods.stats.statusWrites <= 3, `${r.kubelet.pods.stats.statusWrites} writes`);
    await r.kubelet.stop();
  });

  it("deletion: stops the container, reports it terminated, then DELETEs with grace 0 and the UID precondition", async () => {
    const r = await running();
    const p = r.api.put("pods", pod("hello", [hello()]));
    await r.time.until(() => status(r, "hello")?.phase === "Running", 5_000, "Running");
    r.api.put("pods", { ...stored(r, "hello"), metadata: { ...stored(r, "hello").metadata, deletionTimestamp: "2026-11-21T12:01:00Z", deletionGracePeriodSeconds: 30 } });
    const ms = await r.time.until(() => !stored(r, "hello"), 5_000, "deleted");
    assert.ok(ms < 1000, `gone after ${ms} ms`);
    const del = r.host.requests.find((q) => q.startsWith("DELETE /api/v1/namespaces/default/pods/hello "))!;
    assert.deepEqual(JSON.parse(del.slice(del.indexOf("\r\n\r\n") + 4)), { apiVersion: "v1", kind: "DeleteOptions", gracePeriodSeconds: 0, preconditions: { uid: p.metadata.uid } });
    const lastPatch = r.host.requests.filter((q) => q.startsWith("PATCH /api/v1/namespaces/default/pods/hello/status")).pop()!;
    const body = JSON.parse(lastPatch.slice(lastPatch.indexOf("\r\n\r\n") + 4));
    assert.equal(body.status.containerStatuses[0].state.terminated.exitCode, 0);
    assert.ok(events(r).some((e) => e.reason === "Killing" && e.message === "Stopping container hello"));
    const before = r.kubelet.pods.logs("default", "hello", "hello", "");
    assert.equal(before.status, 404);
    await r.kubelet.stop();
  });

  it("a Job's pod (restartPolicy Never) ends Succeeded, or Failed with its exit code", async () => {
    const r = await running();
    r.api.put("pods", pod("job-ok", [hello(["--count=3"])], { restartPolicy: "Never" }));
    r.api.put("pods", pod("job-bad", [hello(["--count=2", "--exit-code=3"])], { restartPolicy: "Never" }));
    await r.time.until(() => status(r, "job-ok")?.phase === "Succeeded" && status(r, "job-bad")?.phase === "Failed", 10_000, "finished");
    const ok = status(r, "job-ok").containerStatuses[0];
    assert.equal(ok.state.terminated.exitCode, 0);
    assert.equal(ok.state.terminated.reason, "Completed");
    assert.equal(ok.ready, false);
    const bad = status(r, "job-bad").containerStatuses[0];
    assert.equal(bad.state.terminated.exitCode, 3);
    assert.equal(bad.state.terminated.reason, "Error");
    assert.equal(status(r, "job-ok").conditions.find((c: any) => c.type === "Ready").reason, "PodCompleted");
    assert.equal(r.kubelet.pods.logs("default", "job-ok", "hello", "").text, "hello from board-1 (1/3)\nhello from board-1 (2/3)\nhello from board-1 (3/3)\n");
    assert.equal(r.kubelet.pods.active, 0);
    await r.kubelet.stop();
  });

  it("a crash-looping container backs off 10 s, 20 s, 40 s … (CrashLoopBackOff, BackOff) and keeps its previous log", async () => {
    const r = await running();
    r.api.put("pods", pod("crash", [hello(["--count=1", "--exit-code=2"], "c")]));
    const starts: number[] = [];
    let last = 0;
    const t0 = r.time.now;
    while (r.time.now - t0 < 80_000) {
      await r.time.advance(250);
      for (; last < r.kubelet.pods.stats.starts; last++) starts.push(r.time.now - t0);
    }
    // The first start, a restart at once, then +10 s, +20 s, +40 s.
    const gaps = starts.slice(1).map((t, i) => Math.round((t - starts[i]) / 1000));
    assert.deepEqual(gaps.slice(0, 4), [0, 10, 20, 40], `starts at ${starts.join(", ")} ms`);
    const cs = status(r, "crash").containerStatuses[0];
    assert.equal(status(r, "crash").phase, "Running");
    assert.equal(cs.lastState.terminated.exitCode, 2);
    assert.ok(cs.restartCount >= 4);
    const waiting = r.kubelet.pods.logs("default", "crash", "c", "previous=true");
    assert.equal(waiting.text, "hello from board-1 (1/1)\n");
    const backoff = events(r).find((e) => e.reason === "BackOff")!;
    assert.match(backoff.message, /^Back-off restarting failed container c in pod crash_default\(pod-uid-\d+\)$/);
    assert.ok(backoff.count >= 2, "repeats are one aggregated Event");
    await r.time.until(() => status(r, "crash").containerStatuses[0].state.waiting?.reason === "CrashLoopBackOff", 60_000, "CrashLoopBackOff");
    assert.match(status(r, "crash").containerStatuses[0].state.waiting.message, /^back-off \d+s restarting failed container=c pod=crash_default\(/);
    await r.kubelet.stop();
  });

  it("an image the node cannot run waits with ErrImageNeverPull and says which images it can; an Event too", async () => {
    const r = await running();
    r.api.put("pods", pod("nginx", [{ name: "web", image: "nginx:1.27" }]));
    await r.time.until(() => status(r, "nginx")?.containerStatuses?.[0]?.state?.waiting?.reason === "ErrImageNeverPull", 5_000, "waiting");
    const w = status(r, "nginx").containerStatuses[0].state.waiting;
    assert.match(w.message, /image "nginx:1\.27" is not a workload this node runs .*xs-kubelet\.dev\/hello/);
    assert.equal(status(r, "nginx").phase, "Pending");
    assert.ok(events(r).some((e) => e.reason === "ErrImageNeverPull" && e.type === "Warning"));
    await r.kubelet.stop();
  });

  it("admission: beyond capacity.pods is OutOfpods, beyond the memory OutOfmemory, init containers are refused", async () => {
    const r = await running({ identity: { pods: 2 } });
    r.api.put("pods", pod("a", [hello()]));
    r.api.put("pods", pod("b", [hello()]));
    await r.time.advance(1000);
    r.api.put("pods", pod("c", [hello()]));
    await r.time.until(() => status(r, "c")?.phase === "Failed", 5_000, "rejected");
    assert.equal(status(r, "c").reason, "OutOfpods");
    assert.equal(status(r, "c").message, "Pod was rejected: Node didn't have enough resource: pods, requested: 1, used: 2, capacity: 2");
    assert.equal(status(r, "a").phase, "Running");
    await r.kubelet.stop();

    const m = await running();
    m.api.put("pods", pod("big", [{ ...hello(), resources: { requests: { memory: "1Mi" } } }]));
    m.api.put("pods", pod("init", [hello()], { initContainers: [hello()] }));
    await m.time.until(() => status(m, "big")?.phase === "Failed" && status(m, "init")?.phase === "Failed", 5_000, "rejected");
    assert.equal(status(m, "big").reason, "OutOfmemory");
    assert.match(status(m, "big").message, /memory, requested: 1048576, used: 0, capacity: 262144$/);
    assert.equal(status(m, "init").reason, "UnsupportedPodSpec");
    await m.kubelet.stop();
  });

  it("env from a ConfigMap (configMapKeyRef) configures the workload; a missing one is CreateContainerConfigError until it appears", async () => {
    const r = await running();
    const env = [{ name: "MESSAGE", valueFrom: { configMapKeyRef: { name: "greeting", key: "text" } } }];
    r.api.put("pods", pod("cm", [{ ...hello(), env }]));
    await r.time.until(() => status(r, "cm")?.containerStatuses?.[0]?.state?.waiting?.reason === "CreateContainerConfigError", 5_000, "config error");
    assert.equal(status(r, "cm").containerStatuses[0].state.waiting.message, 'configmap "greeting" not found');
    r.api.put("configmaps", { metadata: { name: "greeting", namespace: "default" }, data: { text: "hi from a ConfigMap" } });
    await r.time.until(() => status(r, "cm")?.phase === "Running", 15_000, "Running");
    await r.time.advance(100);
    assert.equal(r.kubelet.pods.logs("default", "cm", "hello", "").text, "hi from a ConfigMap (1)\n");
    await r.kubelet.stop();
  });

  it("gpio drives allowed pins and refuses the others with a clear error; a pin held by one pod is refused to another", async () => {
    const gpio = new SimulatedGpio({ outputs: [4, 5], inputs: [6] });
    const r = await running({ gpio, identity: { pods: 4 } });
    r.api.put("pods", pod("blink", [{ name: "io", image: "xs-kubelet.dev/gpio", args: ["--outputs=4", "--blink=500ms", "--inputs=6"] }]));
    await r.time.until(() => status(r, "blink")?.phase === "Running", 5_000, "Running");
    gpio.set(6, 1);
    await r.time.advance(2_000);
    assert.ok(gpio.writes.filter((w) => w.pin === 4).length >= 4, JSON.stringify(gpio.writes));
    assert.deepEqual(r.kubelet.pods.logs("default", "blink", "io", "").text, "outputs 4 = 1, toggling every 500 ms\ninput 6 = 0\ninput 6 = 1\n");
    r.api.put("pods", pod("bad-pin", [{ name: "io", image: "xs-kubelet.dev/gpio", args: ["--outputs=48"] }]));
    r.api.put("pods", pod("taken", [{ name: "io", image: "xs-kubelet.dev/gpio", args: ["--outputs=4"] }]));
    await r.time.until(() => !!status(r, "bad-pin")?.containerStatuses?.[0]?.state?.waiting?.message && !!status(r, "taken")?.containerStatuses?.[0]?.state?.waiting?.message, 5_000, "refused");
    assert.deepEqual(status(r, "bad-pin").containerStatuses[0].state.waiting, { reason: "CreateContainerConfigError", message: "gpio: pin 48 may not be driven on this board (outputs allowed: 4, 5)" });
    assert.deepEqual(status(r, "taken").containerStatuses[0].state.waiting, { reason: "CreateContainerConfigError", message: "gpio: pin 4 is in use by default/blink/io" });
    await r.kubelet.stop();
  });

  it("the LED pod's colour shows while healthy, under failure patterns, and goes when the pod does", async () => {
    const r = await running();
    await r.time.advance(8_000);
    assert.equal(r.kubelet.led.state, "healthy");
    r.api.put("pods", pod("led", [{ name: "led", image: "xs-kubelet.dev/led", args: ["--color=#ff0000", "--pattern=solid"] }]));
    await r.time.until(() => status(r, "led")?.phase === "Running", 5_000, "Running");
    assert.deepEqual(r.kubelet.led.overlay?.rgb, [255, 0, 0]);
    assert.deepEqual(r.kubelet.led.frame(r.time.now + 500), [38, 0, 0]);
    r.api.put("pods", { ...stored(r, "led"), metadata: { ...stored(r, "led").metadata, deletionTimestamp: "2026-11-21T12:01:00Z" } });
    await r.time.until(() => !stored(r, "led"), 5_000, "deleted");
    assert.equal(r.kubelet.led.overlay, undefined);
    await r.kubelet.stop();
  });

  it("after a reboot: a pod that was running starts again with restartCount + 1 and lastState Unknown; one deleted meanwhile is finalized", async () => {
    const r = await running();
    r.api.put("pods", pod("keep", [hello()]));
    r.api.put("pods", pod("gone", [hello()]));
    await r.time.until(() => status(r, "keep")?.phase === "Running" && status(r, "gone")?.phase === "Running", 5_000, "Running");
    const oldID = status(r, "keep").containerStatuses[0].containerID;
    const oldStart = status(r, "keep").containerStatuses[0].state.running.startedAt;
    // The board loses power: no shutdown, no status. Meanwhile someone deletes "gone".
    r.kubelet.pods.stop();
    r.kubelet.podWatch.stop();
    const gone = stored(r, "gone");
    r.api.put("pods", { ...gone, metadata: { ...gone.metadata, deletionTimestamp: "2026-11-21T12:05:00Z" } });
    const b = rig({}, (p) => {
      for (const [k, v] of r.api.pods) p.api.pods.set(k, v);
    });
    b.kubelet.start();
    await b.time.until(() => status(b, "keep")?.containerStatuses?.[0]?.restartCount === 1 && !stored(b, "gone"), 10_000, "adopted");
    const cs = status(b, "keep").containerStatuses[0];
    assert.equal(cs.lastState.terminated.reason, "Unknown");
    assert.equal(cs.lastState.terminated.containerID, oldID);
    assert.equal(cs.lastState.terminated.startedAt, oldStart, "the lost instance keeps when it started");
    assert.notEqual(cs.containerID, oldID);
    assert.ok(cs.state.running);
    await b.kubelet.stop();
  });
});

describe("pods: parts", () => {
  it("log queries: tailLines, sinceSeconds, sinceTime, bad values named", () => {
    const lines = [1, 2, 3, 4].map((i) => ({ time: i * 1000, text: `l${i}` }));
    assert.deepEqual(selectLines(lines, parseLogQuery("tailLines=2", 0) as any).map((l) => l.text), ["l3", "l4"]);
    assert.deepEqual(selectLines(lines, parseLogQuery("sinceSeconds=2", 4000) as any).map((l) => l.text), ["l2", "l3", "l4"]);
    assert.deepEqual(selectLines(lines, parseLogQuery("sinceTime=1970-01-01T00:00:03Z", 0) as any).map((l) => l.text), ["l3", "l4"]);
    assert.equal(parseLogQuery("tailLines=x", 0), 'tailLines must be a non-negative integer, not "x"');
    assert.equal(parseLogQuery("sinceTime=yesterday", 0), 'sinceTime must be an RFC 3339 time, not "yesterday"');
  });

  it("image names and quantities", () => {
    assert.equal(workloadName("xs-kubelet.dev/hello"), "hello");
    assert.equal(workloadName("xs-kubelet.dev/led:0.1"), "led");
    assert.equal(workloadName("docker.io/library/nginx:1"), undefined);
    assert.equal(parseQuantity("64Mi"), 64 * 1024 * 1024);
    assert.equal(parseQuantity("1G"), 1e9);
    assert.equal(parseQuantity("129e6"), 129e6);
    assert.equal(parseQuantity("12x"), undefined);
  });
});
