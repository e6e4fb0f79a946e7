// Coming back after an outage: while the API server cannot be reached the agent probes it with a
// plain TCP connect about once a second (jittered) and renews as soon as one succeeds — within ~1 s
// of its return instead of up to the 7 s backoff — yet a path that accepts connections and fails
// every request (a balancer with no server behind) is probed less and less often.
import assert from "node:assert/strict";
import { rig } from "../../tools/scenarios/harness";

describe("recovery after an outage", () => {
  it("renews within 2 s of the API server's return, whatever the backoff had reached", async () => {
    const delays: number[] = [];
    for (let run = 0; run < 20; run++) {
      const r = rig({}, (p) => {
        p.api.epochStart += run * 7919; // other jitter each run
      });
      r.kubelet.start();
      await r.time.advance(20_000 + run * 333);
      r.offline = true;
      await r.time.advance(45_000 + run * 1_777);
      assert.equal(r.kubelet.lease.failing, true, "the outage was noticed");
      r.offline = false;
      const back = r.time.now;
      while (r.kubelet.lease.failing && r.time.now - back < 30_000) await r.time.advance(20);
      delays.push(r.time.now - back);
      assert.ok(r.kubelet.lease.probes > 0);
      await r.kubelet.stop();
    }
    delays.sort((a, b) => a - b);
    process.stdout.write(`      first renewal after the return: p50 ${delays[10]} ms, max ${delays[19]} ms over 20 outages (virtual time)\n`);
    assert.ok(delays[19] <= 2000, `worst ${delays[19]} ms`);
  });

  it("behind a balancer whose API server is away (503s over a live connection): renews within 2 s of the return, asking GET /readyz over that connection", async () => {
    const delays: number[] = [];
    let readyz = 0;
    for (let run = 0; run < 10; run++) {
      const r = rig({}, (p) => {
        p.api.epochStart += run * 7919;
      });
      r.kubelet.start();
      await r.time.advance(20_000 + run * 333);
      const connects = r.kubelet.api.stats.connects;
      const from = r.host.requests.length;
      // The balancer answers every request itself, over the connection the agent already has.
      r.api.fail(() => true, { status: 503 }, 1_000_000);
      await r.time.advance(45_000 + run * 1_777);
      assert.equal(r.kubelet.lease.failing, true, "the outage was noticed");
      r.api.faults.length = 0;
      const back = r.time.now;
      while (r.kubelet.lease.failing && r.time.now - back < 30_000) await r.time.advance(20);
      delays.push(r.time.now - back);
      readyz += r.host.requests.slice(from).filter((q) => q.startsWith("GET /readyz")).length;
      assert.equal(r.kubelet.api.stats.connects, connects, "no new connection: the probe asks over the one that stayed up");
      await r.kubelet.stop();
    }
    delays.sort((a, b) => a - b);
    process.stdout.write(`      first renewal after the return: p50 ${delays[5]} ms, max ${delays[9]} ms over 10 outages of 45-61 s behind a balancer (virtual time); ${readyz} GET /readyz in all\n`);
    assert.ok(delays[9] <= 2000, `worst ${delays[9]} ms`);
  });

  it("while the Lease cannot reach the API server the watches wait for it: the return meets the renewal first, then the relists", async () => {
    const r = rig();
    r.kubelet.start();
    await r.time.advance(20_000);
    // Every connection accepted and dropped (a balancer with no server behind), so every attempt is seen.
    const watchGets = (from: number) => r.host.requests.slice(from).filter((q) => q.startsWith("GET ") && !q.startsWith("GET /apis/coordination.k8s.io/")).length;
    r.api.fail(() => true, { drop: true }, 1_000_000);
    await r.time.until(() => r.kubelet.lease.failing, 15_000, "the outage noticed");
    await r.time.advance(7_000); // the watches' last attempts of their own
    const during = r.host.requests.length;
    await r.time.advance(60_000);
    // Each watch's own backoff (100 ms doubling to 7 s) would make about eight attempts a minute.
    const held = watchGets(during);
    process.stdout.write(`      ${held} watch requests in a minute of the Lease failing (four watches)\n`);
    assert.ok(held <= 4, `${held} watch requests while the Lease was failing`);
    r.api.faults.length = 0;
    const back = r.host.requests.length;
    await r.time.until(() => !r.kubelet.lease.failing, 10_000, "the renewal after the return");
    await r.time.until(() => r.kubelet.nodeWatch.watching && r.kubelet.podWatch.watching, 5_000, "the watches back");
    const after = r.host.requests.slice(back);
    const firstRenewal = after.findIndex((q) => q.startsWith("PATCH /apis/coordination.k8s.io/"));
    const firstWatch = after.findIndex((q) => q.startsWith("GET ") && !q.startsWith("GET /apis/coordination.k8s.io/"));
    assert.ok(firstRenewal >= 0 && firstWatch > firstRenewal, `the renewal first (request ${firstRenewal}), the watches after (request ${firstWatch})`);
    await r.kubelet.stop();
  });

  it("a path that accepts connections but answers nothing useful is probed less and less often", async () => {
    const r = rig();
    r.kubelet.start();
    await r.time.advance(20_000);
    const renewals = () => r.host.requests.filter((q) => q.startsWith("PATCH /apis/coordination.k8s.io/")).length;
    const before = renewals();
    r.api.fail(() => true, { drop: true }, 10_000);
    await r.time.advance(120_000);
    const attempts = renewals() - before;
    // The backoff alone (100 ms doubling to 7 s) makes ~22 attempts in two minutes; probe-triggered
    // renewals back off to one per 4–12 s, so the total stays of that order (31 when measured).
    process.stdout.write(`      ${attempts} renewal attempts in two minutes of a path that accepts and drops, ${r.kubelet.lease.probes} probes\n`);
    assert.ok(attempts < 40, `${attempts} renewal attempts in two minutes of a dead path`);
    r.api.faults.length = 0;
    await r.time.advance(15_000);
    assert.equal(r.kubelet.lease.failing, false);
    await r.kubelet.stop();
  });
});

describe("Retry-After", () => {
  const leasePatch = (q: { method: string; path: string }) => q.method === "PATCH" && q.path.startsWith("/apis/coordination.k8s.io/");
  /** A 429 on the next renewal; how long until the renewal after it. */
  async function waitAfter429(retryAfter: string): Promise<number> {
    const r = rig();
    r.kubelet.start();
    await r.time.advance(25_000);
    r.api.fail(leasePatch, { status: 429, retryAfter });
    await r.time.until(() => r.kubelet.lease.failing, 15_000, "the 429");
    const failedAt = r.time.now;
    await r.time.until(() => !r.kubelet.lease.failing, 30_000, "the renewal after it");
    await r.kubelet.stop();
    return r.time.now - failedAt;
  }

  it("a 429's Retry-After sets the floor of the next renewal's delay, capped so it cannot starve the Lease", async () => {
    const three = await waitAfter429("3");
    assert.ok(three >= 3000 && three <= 3300 + 50, `Retry-After: 3 → ${three} ms`);
    const hostile = await waitAfter429("3600");
    assert.ok(hostile >= 10_000 && hostile <= 11_000 + 50, `Retry-After: 3600 → ${hostile} ms (cap 10 s)`);
    const garbage = await waitAfter429("soon, maybe");
    assert.ok(garbage < 1000, `a malformed Retry-After is ignored: ${garbage} ms`);
  });

  it("a watch told Retry-After waits it out, even when the Lease recovers meanwhile and wakes the others", async () => {
    // API Priority and Fairness throttles watches apart from the Lease: its recovery says the path
    // is back, not that the watches may come.
    const r = rig();
    r.kubelet.start();
    await r.time.advance(25_000);
    const watchGet = (q: { method: string; path: string }) => q.method === "GET" && q.path.includes("watch=");
    // Every attempt of the Node watch, when it came (a fault that never matches, consulted first).
    const nodeWatch: number[] = [];
    r.api.fail((q) => {
      if (watchGet(q) && q.path.startsWith("/api/v1/nodes")) nodeWatch.push(r.time.now);
      return false;
    }, { status: 500 }, Infinity);
    r.api.fail(watchGet, { status: 429, retryAfter: "5" }, 4);
    r.api.fail(leasePatch, { status: 500 });
    await r.time.until(() => r.kubelet.lease.failing, 15_000, "the Lease's 500");
    // The watches end now and get their 429 while the Lease waits out its 100 ms backoff.
    r.api.endWatches();
    await r.time.until(() => !r.kubelet.lease.failing, 15_000, "the Lease's recovery");
    await r.time.advance(8000);
    assert.ok(nodeWatch.length >= 2, `the Node watch tried again: ${nodeWatch}`);
    assert.ok(nodeWatch[1] - nodeWatch[0] >= 5000, `the Node watch came back ${nodeWatch[1] - nodeWatch[0]} ms after its Retry-After: 5 (the Lease recovered in between)`);
    await r.kubelet.stop();
  });

  it("reads delay-seconds and an HTTP-date against the answer's own Date", async () => {
    const { retryAfterMs } = await import("../../modules/api/client");
    assert.equal(retryAfterMs("1", undefined), 1000);
    assert.equal(retryAfterMs(" 120 ", undefined), 120_000);
    assert.equal(retryAfterMs("Wed, 02 Dec 2026 12:00:05 GMT", "Wed, 02 Dec 2026 12:00:00 GMT"), 5000);
    assert.equal(retryAfterMs("Wed, 02 Dec 2026 11:00:00 GMT", "Wed, 02 Dec 2026 12:00:00 GMT"), 0, "a date in the past: retry now");
    assert.equal(retryAfterMs("Wed, 02 Dec 2026 12:00:05 GMT", undefined), undefined, "no Date to read it against");
    for (const bad of ["-1", "1.5", "", "99999999999", "tomorrow"]) assert.equal(retryAfterMs(bad, "Wed, 02 Dec 2026 12:00:00 GMT"), undefined, bad);
    assert.equal(retryAfterMs(undefined, undefined), undefined);
  });
});

describe("Retry-After holds every sender", () => {
  const statusPatch = (q: { method: string; path: string }) => q.method === "PATCH" && q.path.startsWith("/api/v1/nodes/board-1/status");
  const eventPost = (q: { method: string; path: string }) => q.method === "POST" && q.path.includes("/events");
  /** Every request matching, when it came (a fault that never matches, consulted first). */
  function seen(r: ReturnType<typeof rig>, match: (q: { method: string; path: string }) => boolean): number[] {
    const at: number[] = [];
    r.api.fail((q) => {
      if (match(q)) at.push(r.time.now);
      return false;
    }, { status: 500 }, Infinity);
    return at;
  }

  it("the Event recorder told Retry-After holds its next POST until the time is up, even when a new event is recorded", async () => {
    const r = rig();
    const posts = seen(r, eventPost);
    r.kubelet.start();
    await r.time.advance(25_000);
    r.api.fail(eventPost, { status: 429, retryAfter: "5" });
    const from = posts.length;
    r.kubelet.events.record({ type: "Normal", reason: "Probe1", message: "one" });
    await r.time.until(() => posts.length > from, 5_000, "the 429'd POST");
    const failedAt = posts[from];
    await r.time.advance(1_000);
    r.kubelet.events.record({ type: "Normal", reason: "Probe2", message: "two" });
    await r.time.until(() => posts.length > from + 1, 15_000, "the POST after it");
    assert.ok(posts[from + 1] - failedAt >= 5000, `the next Event POST came ${posts[from + 1] - failedAt} ms after a Retry-After: 5`);
    await r.kubelet.stop();
  });

  it("settings applied inside a status push's Retry-After do not push before the time is up", async () => {
    const r = rig();
    const pushes = seen(r, statusPatch);
    r.kubelet.start();
    await r.time.advance(25_000);
    r.api.fail(statusPatch, { status: 429, retryAfter: "8" });
    const from = pushes.length;
    void r.kubelet.status.pushUnlessHeld("test push");
    await r.time.until(() => pushes.length > from, 5_000, "the 429'd push");
    const failedAt = pushes[from];
    r.api.put("configmaps", { metadata: { name: "xs-kubelet-node-board-1", namespace: "xs-kubelet" }, data: { led_brightness: "12" } });
    await r.time.until(() => r.kubelet.led.cap === 12, 3_000, "settings applied");
    await r.time.until(() => pushes.length > from + 1, 20_000, "the push after it");
    assert.ok(pushes[from + 1] - failedAt >= 8000, `a status push came ${pushes[from + 1] - failedAt} ms after a Retry-After: 8`);
    await r.kubelet.stop();
  });

  it("the status loop's periodic check inside a Retry-After waits it out instead of pushing", async () => {
    const r = rig({ conditionCheckSeconds: 1 });
    const pushes = seen(r, statusPatch);
    r.kubelet.start();
    await r.time.advance(25_000);
    r.api.fail(statusPatch, { status: 429, retryAfter: "8" });
    const from = pushes.length;
    void r.kubelet.status.pushUnlessHeld("test push");
    await r.time.until(() => pushes.length > from, 5_000, "the 429'd push");
    const failedAt = pushes[from];
    await r.time.until(() => pushes.length > from + 1, 20_000, "the push after it");
    assert.ok(pushes[from + 1] - failedAt >= 8000, `the check pushed ${pushes[from + 1] - failedAt} ms after a Retry-After: 8`);
    await r.kubelet.stop();
  });
});
