// The fault campaign's Retry-After gate (tools/faults/campaign.ts): which requests are "the same
// request" and when a next try came too early. The campaign fails on what these find, so they are
// tested against the records the HTTP/2 fault proxy keeps.
import assert from "node:assert/strict";
import { requestKey, retryAfterViolations } from "../../tools/faults/campaign";
import type { RequestRecord } from "../../tools/faults/h2-proxy";
import { DRIVE_FAULTS, DRIVE_H2_FAULTS, parseFaultList } from "../../tools/faults/drive";

let stream = 1;
const rec = (at: number, method: string, path: string, by: RequestRecord["by"] = "apiserver", status = 200): RequestRecord => ({
  at,
  method,
  path,
  watch: /[?&]watch=(1|true)/.test(path),
  status,
  by,
  session: 1,
  stream: (stream += 2),
  certificate: 1,
});

const LEASE = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1";
const PODS_WATCH = "/api/v1/pods?fieldSelector=spec.nodeName%3Dn1&resourceVersion=10&watch=true&timeoutSeconds=300";

describe("fault campaign: the Retry-After gate", () => {
  it("one request is its method, path and selectors; resourceVersion and timeouts do not make another", () => {
    assert.equal(requestKey(rec(0, "GET", PODS_WATCH)), requestKey(rec(0, "GET", "/api/v1/pods?watch=true&resourceVersion=99&fieldSelector=spec.nodeName%3Dn1")));
    assert.notEqual(requestKey(rec(0, "GET", PODS_WATCH)), requestKey(rec(0, "GET", "/api/v1/pods?fieldSelector=spec.nodeName%3Dn1")), "a list is not its watch");
    assert.notEqual(requestKey(rec(0, "GET", PODS_WATCH)), requestKey(rec(0, "GET", "/api/v1/pods?fieldSelector=spec.nodeName%3Dn2&watch=true")));
    assert.notEqual(requestKey(rec(0, "PATCH", LEASE)), requestKey(rec(0, "GET", LEASE)));
  });

  it("a next try inside the Retry-After is a violation, named; one after it, or another request, is not", () => {
    const refused = rec(1000, "PATCH", LEASE, "proxy", 429);
    const records = [refused, rec(1500, "PATCH", "/api/v1/nodes/n1/status"), rec(1600, "GET", LEASE), rec(3999, "PATCH", LEASE)];
    const early = retryAfterViolations(records, [{ record: refused, ms: 3000 }]);
    assert.equal(early.checked, 1);
    assert.deepEqual(early.violations, [`PATCH ${LEASE} tried again 2999 ms after a 429 with Retry-After 3 s`]);
    const late = retryAfterViolations([refused, rec(1500, "PATCH", "/api/v1/nodes/n1/status"), rec(4000, "PATCH", LEASE)], [{ record: refused, ms: 3000 }]);
    assert.deepEqual(late, { checked: 1, violations: [] });
  });

  it("only the next try counts, and an answer never tried again is not checked", () => {
    const first = rec(0, "GET", PODS_WATCH, "proxy", 503);
    const second = rec(2100, "GET", PODS_WATCH.replace("resourceVersion=10", "resourceVersion=12"), "proxy", 503);
    const records = [first, second, rec(2200, "GET", PODS_WATCH)];
    const r = retryAfterViolations(records, [
      { record: first, ms: 2000 },
      { record: second, ms: 2000 },
    ]);
    assert.equal(r.checked, 2);
    assert.deepEqual(r.violations, [`GET /api/v1/pods?fieldSelector=spec.nodeName%3Dn1&watch=true tried again 100 ms after a 503 with Retry-After 2 s`]);
    assert.deepEqual(retryAfterViolations([rec(0, "POST", "/api/v1/namespaces/default/events", "proxy", 429)], [{ record: rec(5, "POST", "/x", "proxy", 429), ms: 1000 }]), { checked: 0, violations: [] });
  });
});

describe("npm run faults:drive: the fault list", () => {
  it("takes the proxy's faults by name, in order, and names what is not one", () => {
    assert.deepEqual(parseFaultList("corrupt, reset,refuse"), ["corrupt", "reset", "refuse"]);
    assert.deepEqual(Object.keys(DRIVE_FAULTS).sort(), ["blackhole", "corrupt", "drip", "refuse", "reset", "stall", "truncate"]);
    assert.throws(() => parseFaultList("reset,gremlins"), /--faults: "gremlins" is not a fault \(one of corrupt, truncate, reset, drip, blackhole, stall, refuse\)/);
    assert.throws(() => parseFaultList(" , "), /names no fault/);
    const h2 = Object.keys(DRIVE_H2_FAULTS);
    assert.deepEqual(parseFaultList("impersonator,429", h2), ["impersonator", "429"]);
    assert.throws(() => parseFaultList("corrupt", h2), /"corrupt" is not a fault \(one of 429, 500, 503, goaway/);
    // Every fault must end well inside a 40 s lease, or the node may rightly go Unknown (status
    // faults wait up to 30 s for their requests but hold nothing: a renewal answered 429 tries
    // again after its Retry-After).
    for (const f of Object.values(DRIVE_FAULTS)) assert.ok((f.ms ?? 0) <= 20_000, f.kind);
    for (const f of Object.values(DRIVE_H2_FAULTS)) if (f.kind !== "status") assert.ok(("ms" in f ? f.ms ?? 0 : 0) + (f.kind === "new-cert" ? f.untrustedMs ?? 0 : 0) <= 20_000, f.kind);
  });
});
