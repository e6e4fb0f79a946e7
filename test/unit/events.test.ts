// The kubelet's Events against the scripted API in virtual time: what it posts and when, their shape,
// aggregation of repeats, the bounded queue, the rate limit, and nothing lost silently.
import assert from "node:assert/strict";
import { rig } from "../../tools/scenarios/harness";

const EVENTS = "/api/v1/namespaces/default/events";
const bodyOf = (raw: string) => JSON.parse(raw.slice(raw.indexOf("\r\n\r\n") + 4));
const posted = (reqs: string[]) => reqs.filter((q) => q.startsWith(`POST ${EVENTS} `)).map(bodyOf);
const reasons = (reqs: string[]) => posted(reqs).map((e) => e.reason);

describe("events (scripted API, virtual time)", () => {
  it("posts Starting and the node's conditions at registration, in the kubelet's shape", async () => {
    const r = rig();
    r.kubelet.start();
    await r.time.advance(5000);
    assert.deepEqual(reasons(r.host.requests), ["Starting", "NodeHasSufficientMemory", "NodeHasNoDiskPressure", "NodeHasSufficientPID", "NodeReady"]);
    const [starting, , , , ready] = posted(r.host.requests);
    assert.match(starting.metadata.name, /^board-1\.[0-9a-f]+$/);
    assert.equal(starting.metadata.namespace, "default");
    assert.deepEqual(starting.involvedObject, { kind: "Node", name: "board-1", uid: "board-1", apiVersion: "v1" });
    assert.deepEqual(starting.source, { component: "kubelet", host: "board-1" });
    assert.deepEqual([starting.type, starting.message, starting.count, starting.reportingComponent, starting.reportingInstance], ["Normal", "Starting kubelet.", 1, "kubelet", "board-1"]);
    assert.equal(starting.firstTimestamp, starting.lastTimestamp);
    assert.equal(ready.message, "Node board-1 status is now: NodeReady");
    assert.equal(r.api.coreEvents.size, 5);
    // After the Lease: the registration's requests come first.
    const first = r.host.requests.findIndex((q) => q.startsWith(`POST ${EVENTS} `));
    assert.ok(r.host.requests.slice(0, first).some((q) => q.startsWith("POST /apis/coordination.k8s.io/")), "the Lease was created before any event");
    await r.kubelet.stop();
  });

  it("a condition that flips is an event; the first evaluation is none", async () => {
    const r = rig();
    r.kubelet.start();
    await r.time.advance(12_000);
    r.heap = { free: 1000, total: 256 * 1024 };
    await r.time.advance(11_000);
    assert.ok(reasons(r.host.requests).includes("NodeHasInsufficientMemory"));
    await r.kubelet.stop();
  });

  it("an adopted Node with another boot's bootID: Rebooted (Warning)", async () => {
    const r = rig({}, (p) => {
      p.api.nodes.set("board-1", { apiVersion: "v1", kind: "Node", metadata: { name: "board-1", uid: "old-uid" }, status: { nodeInfo: { bootID: "an-older-boot" }, conditions: [] } });
    });
    r.kubelet.start();
    await r.time.advance(5000);
    const rebooted = posted(r.host.requests).find((e) => e.reason === "Rebooted");
    assert.ok(rebooted, reasons(r.host.requests).join(", "));
    assert.equal(rebooted.type, "Warning");
    assert.equal(rebooted.message, `Node board-1 has been rebooted, boot id: ${r.kubelet.identity.nodeInfo.bootID}`);
    await r.kubelet.stop();
  });

  it("1000 repeats are one Event with count 1000, in a handful of requests", async () => {
    const r = rig();
    r.kubelet.start();
    await r.time.advance(5000);
    const before = r.host.requests.length;
    for (let i = 0; i < 1000; i++) r.kubelet.events.record({ type: "Warning", reason: "TooHot", message: "the board is too hot" });
    await r.time.advance(120_000);
    const hot = [...r.api.coreEvents.values()].filter((e) => e.reason === "TooHot");
    assert.equal(hot.length, 1);
    assert.equal(hot[0].count, 1000);
    const requests = r.host.requests.slice(before).filter((q) => q.includes(`${EVENTS}`));
    assert.ok(requests.length <= 3, `${requests.length} event requests`);
    await r.kubelet.stop();
  });

  it("is rate-limited and bounded: a burst, then one every 30 s; a full queue drops its oldest, counted", async () => {
    const r = rig();
    r.kubelet.start();
    await r.time.advance(300_000); // the registration's five events are out; the bucket refills to 10
    const before = posted(r.host.requests).length;
    for (let i = 0; i < 50; i++) r.kubelet.events.record({ type: "Normal", reason: `Distinct${i}`, message: `event ${i}` });
    assert.equal(r.kubelet.events.pending, 32, "the queue holds 32");
    assert.equal(r.kubelet.events.dropped, 18, "the oldest 18 were dropped and counted");
    await r.time.advance(1000);
    const burst = posted(r.host.requests).length - before;
    assert.ok(burst >= 9 && burst <= 11, `a burst of about 10: ${burst}`);
    await r.time.advance(60_000);
    assert.ok(posted(r.host.requests).length - before - burst <= 3, "then about one every 30 s");
    await r.kubelet.stop();
  });

  it("rate-limits per involved object: a chatty pod's events do not hold back the Node's", async () => {
    const r = rig();
    r.kubelet.start();
    await r.time.advance(300_000);
    const about = { kind: "Pod" as const, namespace: "default", name: "chatty", uid: "uid-chatty" };
    for (let i = 0; i < 20; i++) r.kubelet.events.record({ type: "Normal", reason: `Pod${i}`, message: `pod event ${i}`, about });
    r.kubelet.events.record({ type: "Warning", reason: "NodeThing", message: "about the node" });
    await r.time.advance(2000);
    const all = [...r.api.coreEvents.values()];
    assert.ok(all.some((e) => e.reason === "NodeThing" && e.involvedObject.kind === "Node"), "the Node's event went out in the pod's burst");
    assert.equal(all.filter((e) => e.involvedObject.uid === "uid-chatty").length, 10, "the pod had its own burst of 10");
    assert.ok(all.filter((e) => e.involvedObject.uid === "uid-chatty").every((e) => e.metadata.name.startsWith("chatty.")), "named after the pod");
    await r.kubelet.stop();
  });

  it("offline too long: events are dropped after 10 minutes, said once, never buffered without bound", async () => {
    const r = rig();
    r.kubelet.start();
    await r.time.advance(12_000);
    r.offline = true;
    for (let i = 0; i < 5; i++) r.kubelet.events.record({ type: "Normal", reason: `Offline${i}`, message: "while offline" });
    await r.time.advance(11 * 60_000);
    assert.equal(r.kubelet.events.pending, 0);
    assert.ok(r.kubelet.events.dropped >= 5);
    assert.equal(r.host.logs.filter((l) => /dropped \d+ events? that could not be sent/.test(l)).length, 1, r.host.logs.join("\n"));
    r.offline = false;
    await r.kubelet.stop();
  });
});
