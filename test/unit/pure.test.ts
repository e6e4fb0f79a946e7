// Pure pieces of the core: clock and time formats, condition rules, LED patterns, identity.
import assert from "node:assert/strict";
import { WallClock, formatMicroTime, formatTime, parseHttpDate } from "../../modules/time/clock";
import { ConditionTracker, evaluateConditions, type ConditionInputs } from "../../modules/k8s/conditions";
import { BRIGHTNESS_CAP, LedEngine } from "../../modules/led/patterns";
import { bootIdFrom, buildIdentity, labelAllowed, machineIdFromMac, systemUuidFromMac } from "../../modules/k8s/identity";
import { NO_RUNTIME_TAINT, addressesFor, labelsPatch, leaseBody, leaseOwnerPatch, leaseRenewPatch, nodeBody, statusPatch } from "../../modules/k8s/bodies";
import { ALL_TYPES } from "../../modules/reconcilers/status";
import { ESP32S3_BOARD } from "../../hosts/esp32s3/board";

describe("time", () => {
  it("formats MicroTime with exactly six fractional digits and Time to the second", () => {
    const t = Date.UTC(2026, 4, 2, 16, 13, 2, 5);
    assert.equal(formatMicroTime(t), "2026-05-02T16:13:02.005000Z");
    assert.equal(formatMicroTime(t + 0.25), "2026-05-02T16:13:02.005250Z");
    assert.equal(formatTime(t), "2026-05-02T16:13:02Z");
  });

  it("parses IMF-fixdate and refuses anything else", () => {
    assert.equal(parseHttpDate("Sun, 06 Nov 1994 08:49:37 GMT"), Date.UTC(1994, 10, 6, 8, 49, 37));
    assert.ok(Number.isNaN(parseHttpDate("Sunday, 06-Nov-94 08:49:37 GMT")));
    assert.ok(Number.isNaN(parseHttpDate("Sun, 06 Foo 1994 08:49:37 GMT")));
  });

  it("anchors from Date, ignores in-window jitter, corrects outside it, never runs backwards", () => {
    let mono = 1000;
    const clock = new WallClock({ monotonic: () => mono });
    assert.throws(() => clock.now(), /not anchored/);
    assert.equal(clock.observeDate("garbage"), false);
    clock.observeDate("Sat, 21 Nov 2026 12:00:00 GMT");
    const base = Date.UTC(2026, 10, 21, 12, 0, 0);
    assert.equal(clock.now(), base + 500);
    mono += 10_000;
    clock.observeDate("Sat, 21 Nov 2026 12:00:10 GMT", 50); // inside [date, date+1s+rtt]
    assert.equal(clock.anchors, 1);
    const before = clock.now();
    clock.observeDate("Sat, 21 Nov 2026 11:59:00 GMT"); // the server stepped back a minute
    assert.equal(clock.takeSlip(), true);
    assert.equal(clock.takeSlip(), false);
    const after = clock.now();
    assert.ok(after > before, "held just above the last value");
    mono += 5000;
    assert.ok(clock.now() > after);
  });
});

const inputs = (over: Partial<ConditionInputs> = {}): ConditionInputs => ({
  heapFree: 80_000,
  heapTotal: 100_000,
  uptimeSeconds: 60,
  reconnects: 0,
  renewals: 0,
  bssidChanged: false,
  clockSlipped: false,
  network: "ethernet",
  shuttingDown: false,
  ...over,
});
const of = (i: ConditionInputs, type: string) => {
  const c = evaluateConditions(i).find((x) => x.type === type)!;
  return `${c.status} ${c.reason}`;
};

describe("conditions (picokubelet's rules, first match wins)", () => {
  it("Vibes", () => {
    assert.equal(of(inputs({ reconnects: 3, heapFree: 90_000 }), "Vibes"), "False Cursed");
    assert.equal(of(inputs({ heapFree: 29_000 }), "Vibes"), "False Off");
    assert.equal(of(inputs({ heapFree: 71_000 }), "Vibes"), "True Immaculate");
    assert.equal(of(inputs({ heapFree: 71_000, uptimeSeconds: 600 }), "Vibes"), "True Cromulent");
    assert.equal(of(inputs({ heapFree: 51_000, reconnects: 1 }), "Vibes"), "Unknown Dissociating");
    assert.equal(of(inputs({ heapFree: 50_000 }), "Vibes"), "Unknown Dissociating");
  });
  it("Caffeinated, Existential", () => {
    assert.equal(of(inputs({ uptimeSeconds: 599 }), "Caffeinated"), "True FreshlyBrewed");
    assert.equal(of(inputs({ uptimeSeconds: 600 }), "Caffeinated"), "False Decaf");
    assert.equal(of(inputs({ renewals: 99 }), "Existential"), "False Innocent");
    assert.equal(of(inputs({ renewals: 100 }), "Existential"), "True Questioning");
    assert.equal(of(inputs({ renewals: 1000 }), "Existential"), "True Accepting");
    assert.equal(of(inputs({ renewals: 10000 }), "Existential"), "True Transcendent");
  });
  it("Peckish and MemoryPressure against the real heap total", () => {
    assert.equal(of(inputs({ heapFree: 20 * 1024 - 1, heapTotal: 40 * 1024 }), "Peckish"), "True Hungry");
    assert.equal(of(inputs({ heapFree: 20 * 1024 - 1, heapTotal: 40 * 1024 }), "MemoryPressure"), "True KubeletHasInsufficientMemory");
    assert.equal(of(inputs({ heapFree: 20 * 1024, heapTotal: 40 * 1024 }), "MemoryPressure"), "False KubeletHasSufficientMemory");
    assert.equal(of(inputs({ heapFree: 61_000 }), "Peckish"), "False Sated");
    assert.equal(of(inputs({ heapFree: 41_000 }), "Peckish"), "True CouldGoForASnack");
    assert.equal(of(inputs({ heapFree: 40_000 }), "Peckish"), "True Hungry");
    assert.equal(of(inputs({ heapFree: undefined }), "MemoryPressure"), "Unknown HeapFigureUnavailable");
  });
  it("Haunted", () => {
    assert.equal(of(inputs({ bssidChanged: true, clockSlipped: true }), "Haunted"), "True NewGhost");
    assert.equal(of(inputs({ clockSlipped: true }), "Haunted"), "True TimeSlipped");
    assert.equal(of(inputs(), "Haunted"), "False Calm");
  });
  it("the tracker flips only on status changes and keeps transition times", () => {
    const t = new ConditionTracker();
    t.seed([{ type: "Ready", status: "True", lastTransitionTime: "2026-01-01T00:00:00Z" }]);
    const first = t.update(evaluateConditions(inputs()), "2026-11-21T12:00:00Z");
    assert.ok(!first.includes("Ready"), "seeded Ready=True is no flip");
    assert.ok(first.includes("Vibes"), "unseen custom conditions start as a flip");
    assert.equal(t.get("Ready")!.lastTransitionTime, "2026-01-01T00:00:00Z");
    const second = t.update(evaluateConditions(inputs({ heapFree: 71_500 })), "2026-11-21T12:00:10Z");
    assert.deepEqual(second, [], "a reason change alone is not a flip");
    assert.deepEqual(t.update(evaluateConditions(inputs({ shuttingDown: true })), "2026-11-21T12:00:20Z"), ["Ready"]);
    assert.equal(t.get("Ready")!.lastTransitionTime, "2026-11-21T12:00:20Z");
  });
});

describe("LED patterns", () => {
  it("self-test runs red, green, blue, off at 200 ms each", () => {
    const led = new LedEngine();
    led.setState("selftest", 0);
    assert.deepEqual([0, 200, 400, 600].map((t) => led.frame(t + 10)), [[38, 0, 0], [0, 38, 0], [0, 0, 38], [0, 0, 0]]);
  });
  it("healthy breathes green over 3 s, connecting blue over 667 ms, capped", () => {
    const led = new LedEngine();
    led.setState("healthy", 0);
    assert.deepEqual(led.frame(0), [0, 0, 0]);
    assert.deepEqual(led.frame(1500), [0, BRIGHTNESS_CAP, 0]);
    led.setState("connecting", 0);
    assert.equal(led.frame(333)[2], 38);
  });
  it("shows failure even after success: warning blinks amber, disconnected breathes red", () => {
    const led = new LedEngine();
    led.setState("healthy", 0);
    led.setState("warning", 1000);
    assert.deepEqual(led.frame(1100), [38, 17, 0]);
    assert.deepEqual(led.frame(1600), [0, 0, 0]);
    led.setState("disconnected", 0);
    assert.ok(led.frame(1000)[0] > 30 && led.frame(0)[0] > 0);
  });
  it("flashes yellow for 100 ms on activity", () => {
    const led = new LedEngine();
    led.setState("healthy", 0);
    led.activity(5000);
    assert.deepEqual(led.frame(5050), [38, 38, 0]);
    assert.notDeepEqual(led.frame(5101), [38, 38, 0]);
  });
});

describe("identity", () => {
  it("derives stable ids from the MAC and random boot ids", () => {
    assert.equal(machineIdFromMac("AA:BB:CC:00:11:22"), machineIdFromMac("aa:bb:cc:00:11:22"));
    assert.notEqual(machineIdFromMac("aa:bb:cc:00:11:22"), machineIdFromMac("aa:bb:cc:00:11:23"));
    assert.match(systemUuidFromMac("aa:bb:cc:00:11:22"), /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.equal(bootIdFrom(new Uint8Array(16)), "00000000-0000-4000-8000-000000000000");
  });
  it("allows only labels NodeRestriction lets a node set on itself", () => {
    for (const ok of ["kubernetes.io/hostname", "node.kubernetes.io/instance-type", "kubelet.kubernetes.io/x", "sub.node.kubernetes.io/y", "example.com/z", "plain"]) assert.ok(labelAllowed(ok), ok);
    for (const bad of ["node-role.kubernetes.io/worker", "kubernetes.io/other", "foo.k8s.io/bar"]) assert.ok(!labelAllowed(bad), bad);
  });
});

describe("request bodies", () => {
  // A frozen object inside a body is a module-level constant: preloaded into flash on the board, it
  // makes XS's JSON.stringify throw "read only value". Every body must be built of fresh objects.
  const frozenInside = (value: unknown, path = "body"): string[] => {
    if (typeof value !== "object" || value === null) return [];
    const here = Object.isFrozen(value) ? [path] : [];
    return [...here, ...Object.entries(value).flatMap(([k, v]) => frozenInside(v, `${path}.${k}`))];
  };

  it("hold no frozen (module-level) object", () => {
    const identity = buildIdentity({ name: "board-1", ...ESP32S3_BOARD }, "02:00:00:aa:bb:cc", bootIdFrom(new Uint8Array(16)), 256 * 1024);
    const tracker = new ConditionTracker();
    tracker.update(evaluateConditions({ heapFree: 100_000, heapTotal: 256 * 1024, uptimeSeconds: 1, reconnects: 0, renewals: 1, bssidChanged: false, clockSlipped: false, network: "ethernet", shuttingDown: false } as ConditionInputs), "2026-01-01T00:00:00Z");
    const conditions = tracker.wire("2026-01-01T00:00:00Z", ALL_TYPES);
    const addresses = addressesFor("board-1", "192.0.2.10");
    const bodies = {
      node: nodeBody(identity, addresses, conditions, { a: "b" }),
      lease: leaseBody("board-1", 40, "2026-01-01T00:00:00.000000Z", "uid"),
      renew: leaseRenewPatch("2026-01-01T00:00:00.000000Z"),
      owner: leaseOwnerPatch("board-1", "uid", 40),
      status: statusPatch(conditions, { a: "b" }, { addresses, nodeInfo: identity.nodeInfo, capacity: identity.capacity, daemonEndpoints: identity.daemonEndpoints }),
      labels: labelsPatch(identity.labels),
    };
    assert.deepEqual(frozenInside(bodies), []);
    // and the check itself sees a frozen constant where one is
    assert.deepEqual(frozenInside({ spec: { taints: [NO_RUNTIME_TAINT] } }), ["body.spec.taints.0"]);
  });
});
