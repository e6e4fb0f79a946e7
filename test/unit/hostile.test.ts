// Hostile answers (issue 13, "Hostile input"): the agent on the virtual host against the scripted API,
// with some of the API's answers replaced — a captive portal's page, a body that is not JSON or too
// big to keep, headers over the limit, no Date or one far off, names the API server never stores, a
// token refused at boot or revoked while running. For each: the log line names what was wrong, the
// LED says Warning where the agent is failing, the next attempt comes when the retry policy says
// (measured in virtual time against RETRY), and nothing is lost: once the answers are good again the
// Lease is renewed, and a condition flip made during the hostile period reaches the API server.
// The TLS items (a wrong CA, a wrong name, untrusted and expired client certificates, a revoked
// ServiceAccount token) need a real TLS stack and API server: test/integration/hostile.test.ts.
import assert from "node:assert/strict";
import { rig, type Rig } from "../../tools/scenarios/harness";
import { httpDate } from "../../hosts/virtual/scripted-api";
import type { ParsedRequest, ScriptedAnswer } from "../../hosts/virtual/host";
import { ConfigError, Kubelet, type KubeletOptions } from "../../modules/kubelet/kubelet";
import { createVirtualHost, VirtualTime } from "../../hosts/virtual/host";
import { RETRY } from "../../modules/defaults";
import type { BackoffOptions } from "../../modules/util/retry";

const LEASE_PATH = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/board-1";
const YEAR_MS = 365 * 86_400_000;

interface Seen {
  /** Virtual time the request reached the API. */
  t: number;
  /** The scripted API's true wall clock then (without any skew the test set). */
  wall: number;
  req: ParsedRequest;
}

interface HostileRig extends Rig {
  /** Every request the API saw, in order. */
  seen: Seen[];
  /** Replaces answers while set: return an answer to send instead, undefined for the API's own (real() is the API's own, made once). */
  hostile: ((req: ParsedRequest, real: () => ScriptedAnswer) => ScriptedAnswer | undefined) | undefined;
}

function hostileRig(overrides: Partial<KubeletOptions> = {}, setup?: (r: Omit<Rig, "kubelet" | "host">) => void): HostileRig {
  const extra = { seen: [] as Seen[], hostile: undefined as HostileRig["hostile"] };
  const r = rig(overrides, (p) => {
    const handle = p.api.handle;
    p.api.handle = (req) => {
      extra.seen.push({ t: p.time.now, wall: p.api.now() - p.api.skewMs, req });
      let own: ScriptedAnswer | undefined;
      const real = () => (own ??= handle(req));
      return extra.hostile?.(req, real) ?? real();
    };
    setup?.(p);
  });
  return Object.defineProperties(r, {
    seen: { value: extra.seen },
    hostile: { get: () => extra.hostile, set: (h: HostileRig["hostile"]) => void (extra.hostile = h) },
  }) as HostileRig;
}

/** A hostile rig, started, after `ms` of virtual time (registered and renewing by then when the answers are good). */
async function started(ms: number, overrides?: Partial<KubeletOptions>, setup?: (r: Omit<Rig, "kubelet" | "host">) => void): Promise<HostileRig> {
  const r = hostileRig(overrides, setup);
  r.kubelet.start();
  await r.time.advance(ms);
  return r;
}

const isRenewal = (q: ParsedRequest) => q.method === "PATCH" && q.path === LEASE_PATH;
const isPodList = (q: ParsedRequest) => q.method === "GET" && q.path.startsWith("/api/v1/pods?") && !q.path.includes("watch=1");
const timesOf = (r: HostileRig, match: (q: ParsedRequest) => boolean, from = 0) => r.seen.filter((s) => s.t >= from && match(s.req)).map((s) => s.t);
const gapsOf = (times: number[]) => times.slice(1).map((t, i) => t - times[i]);
const lines = (r: Rig, prefix: string) => r.host.logs.filter((l) => l.startsWith(prefix));
const condition = (r: Rig, type: string) => r.api.nodes.get("board-1").status.conditions.find((c: any) => c.type === type);
const renewTimeOf = (s: Seen) => Date.parse(JSON.parse(s.req.body).spec.renewTime);

/** An HTTP/1.1 answer (the virtual host frames it as HTTP/2 where HTTP/2 is spoken). */
function answer(status: string, headers: string[], body: string): string {
  return `HTTP/1.1 ${status}\r\n${[...headers, `Content-Length: ${Buffer.byteLength(body)}`].join("\r\n")}\r\n\r\n${body}`;
}

/** The same answer with its body rewritten (Content-Length follows). */
function rebody(text: ScriptedAnswer, body: (b: string) => string): ScriptedAnswer {
  if (typeof text !== "string") return text;
  const at = text.indexOf("\r\n\r\n");
  return `${text.slice(0, at).replace(/\r\nContent-Length: \d+/i, "")}\r\nContent-Length: ${Buffer.byteLength(body(text.slice(at + 4)))}\r\n\r\n${body(text.slice(at + 4))}`;
}

/** The same answer without its Date header (a watch's streamed head too). */
function undated(a: ScriptedAnswer): ScriptedAnswer {
  const strip = (head: string) => head.replace(/\r\nDate: [^\r]*/i, "");
  if (typeof a === "string") return strip(a);
  if ("stream" in a) return { stream: { head: strip(a.stream.head), open: a.stream.open } };
  return a;
}

/**
 * Each gap is the policy's delay for that attempt — initial × 2^n up to the cap — within the ±10 %
 * jitter (and a few ms for the answer to arrive).
 */
function assertBackoff(gaps: number[], policy: BackoffOptions, what: string): void {
  assert.ok(gaps.length >= 3, `${what}: only ${gaps.length} retries to judge (${gaps.join(", ")} ms)`);
  gaps.forEach((gap, n) => {
    const base = Math.min(policy.maxMs, policy.initialMs * 2 ** n);
    const lo = base * (1 - RETRY.jitter) - 5;
    const hi = base * (1 + RETRY.jitter) + 50;
    assert.ok(gap >= lo && gap <= hi, `${what}: retry ${n + 1} after ${gap} ms; the policy says ${base} ms ± 10 % (gaps: ${gaps.join(", ")} ms)`);
  });
}

/** Stops the agent while virtual time runs (a request stuck on a broken connection ends on its timer, as on a real host). */
async function stop(r: Rig): Promise<void> {
  const stopped = r.kubelet.stop();
  await r.time.advance(30_000);
  await stopped;
}

/**
 * After the hostile answers stop: renewing again within the normal policy's reach, the LED back at
 * healthy, and the flip made meanwhile (MemoryPressure=True) on the API server with nothing owed.
 */
async function assertNothingLost(r: HostileRig, within = RETRY.normal.maxMs * 1.1 + 10_500): Promise<void> {
  const renewals = r.kubelet.lease.renewals;
  await r.time.until(() => r.kubelet.lease.renewals > renewals && !r.kubelet.lease.failing, within, "a renewal after the hostile answers stopped");
  await r.time.until(() => condition(r, "MemoryPressure").status === "True" && !r.kubelet.status.pending, 11_000, "the flip made during the hostile period on the API server");
  assert.equal(r.kubelet.led.state, "healthy", r.host.logs.slice(-8).join("\n"));
}

let podUid = 0;
function pod(name: string, namespace = "default") {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace, uid: `pod-uid-${++podUid}`, creationTimestamp: "2026-11-21T12:00:00Z" },
    spec: { nodeName: "board-1", restartPolicy: "Always", containers: [{ name: "hello", image: "xs-kubelet.dev/hello:0.1", args: [] }] },
    status: { phase: "Pending" },
  };
}

describe("hostile answers (scripted API, virtual time)", () => {
  for (const http of ["h2", "http/1.1"] as const) {
    it(`a captive portal answers every request 200 text/html for a minute (${http}): no renewal or status push is taken as landed`, async () => {
      const r = await started(30_000, { http });
      const renewTime = r.api.leases.get("board-1").spec.renewTime;
      const from = r.time.now;
      r.hostile = () => answer("200 OK", ["Content-Type: text/html; charset=utf-8", `Date: ${httpDate(r.api.now())}`], "<html><body>Please log in to use the Wi-Fi.</body></html>");
      await r.time.advance(5000);
      r.heap = { free: 1000, total: 256 * 1024 }; // the flip that must not be lost
      await r.time.advance(55_000);
      // Before the fix a 200 was a 200: the portal "renewed" the Lease and "took" the flip, the LED stayed green.
      const line = `warn: renewing the Lease failed: PATCH ${LEASE_PATH}: 200: a text/html answer, not the API server's JSON (a captive portal or a proxy in the way?)`;
      assert.deepEqual(lines(r, "warn: renewing the Lease failed"), [line], "one line, naming the request and the content type");
      assert.ok(lines(r, "warn: pushing node status failed: PATCH /api/v1/nodes/board-1/status: 200: a text/html answer").length === 1);
      assert.equal(r.kubelet.lease.failing, true);
      assert.equal(r.api.leases.get("board-1").spec.renewTime, renewTime, "nothing reached the API server");
      assert.equal(r.kubelet.status.pending, true, "the flip is still owed");
      assert.equal(r.kubelet.led.state, "warning");
      // Not an auth failure and not the network: the normal policy, 100 ms doubling to 7 s.
      assertBackoff(gapsOf(timesOf(r, isRenewal, from)), RETRY.normal, "renewals behind the portal");
      r.hostile = undefined;
      await assertNothingLost(r);
      assert.ok(r.host.logs.some((l) => /renewing the Lease works again after \d+ failed attempts/.test(l)));
      await stop(r);
    });
  }

  it("a captive portal at boot: GET /version's page is not the API server reached; nothing is registered until the API answers", async () => {
    const r = hostileRig();
    r.hostile = () => answer("200 OK", ["Content-Type: text/html", `Date: ${httpDate(r.api.now())}`], "<html>portal</html>");
    r.kubelet.start();
    await r.time.advance(60_000);
    assert.deepEqual(lines(r, "warn: reading the clock"), ["warn: reading the clock from GET /version failed: GET /version: 200: a text/html answer, not the API server's JSON (a captive portal or a proxy in the way?)"]);
    assert.equal(lines(r, "info: API server reached").length, 0);
    assert.equal(r.kubelet.phase, "anchoring");
    assert.equal(r.api.nodes.size, 0);
    assert.equal(r.kubelet.led.state, "warning");
    assertBackoff(gapsOf(timesOf(r, (q) => q.path === "/version")), RETRY.normal, "GET /version behind the portal");
    r.hostile = undefined;
    await r.time.until(() => r.kubelet.phase === "running", 8000, "running once the API answers");
    await r.time.advance(11_000);
    assert.equal(r.kubelet.led.state, "healthy");
    await stop(r);
  });

  it("invalid JSON in a 201 and a 200 while registering: a clear error, retried, then the Node is adopted with the right uid", async () => {
    const r = hostileRig();
    r.hostile = (q, real) => {
      if (!(q.path === "/api/v1/nodes" && q.method === "POST") && !(q.path === "/api/v1/nodes/board-1" && q.method === "GET")) return undefined;
      // The API did create the Node; its answer is what comes back garbled: cut short, no uid in it.
      return rebody(real(), (b) => b.slice(0, 23));
    };
    r.kubelet.start();
    await r.time.advance(10_000);
    assert.deepEqual(lines(r, "warn: registering the Node failed"), ["warn: registering the Node failed: GET /api/v1/nodes/board-1: 200: the answer (23 bytes) is not valid JSON"]);
    assert.equal(r.kubelet.phase, "registering", "no Lease without the Node's uid to own it");
    assert.equal(r.api.leases.size, 0);
    assert.equal(r.kubelet.led.state, "warning");
    r.hostile = undefined;
    await r.time.until(() => r.kubelet.phase === "running", 8000, "running");
    // The retries were the normal policy's: POST (201, garbled), GET (garbled), then 409 → GET (garbled) …
    assertBackoff(gapsOf(timesOf(r, (q) => q.path === "/api/v1/nodes" && q.method === "POST")), RETRY.normal, "registration");
    assert.equal(r.api.leases.get("board-1").metadata.ownerReferences[0].uid, r.api.nodes.get("board-1").metadata.uid, "the Lease is owned by the Node that exists");
    assert.ok(r.host.logs.some((l) => /Node board-1 already existed: adopted it \(uid uid-1\)/.test(l)));
    await r.time.advance(12_000);
    assert.equal(r.kubelet.led.state, "healthy");
    await stop(r);
  });

  it("a renewal echo that is not JSON still counts: only its status is read (the API server answered 200, the write landed)", async () => {
    const r = await started(12_000);
    r.hostile = (q, real) => (isRenewal(q) ? rebody(real(), () => "{not json") : undefined);
    const before = r.kubelet.lease.renewals;
    await r.time.advance(31_000);
    assert.equal(r.kubelet.lease.renewals, before + 3);
    assert.equal(lines(r, "warn:").length, 0, r.host.logs.join("\n"));
    assert.equal(r.kubelet.led.state, "healthy");
    await stop(r);
  });

  for (const [title, body] of [
    ["not JSON", () => '{"kind":"PodList","items":[{"metad'],
    ["JSON that is not a list", () => "{}"],
    ["a list page over the 256 KiB bound", (b: string) => b.replace('"items":', `"padding":"${"x".repeat(300_000)}","items":`)],
  ] as const) {
    it(`the pods list answered with ${title}: a clear error, the running pod is not stopped, a pod added meanwhile runs after`, async () => {
      const r = await started(2000);
      r.api.put("pods", pod("running"));
      await r.time.until(() => r.api.pods.get("default/running")?.status?.phase === "Running", 5000, "the first pod Running");
      r.hostile = (q, real) => (isPodList(q) ? rebody(real(), body) : undefined);
      const from = r.time.now;
      // Forces a relist: the stream ends, and resuming it answers 410 Gone.
      r.api.fail((q) => q.path.startsWith("/api/v1/pods?") && q.path.includes("watch=1"), { status: 410 });
      r.api.endWatches();
      r.api.put("pods", pod("added-meanwhile"));
      r.heap = { free: 1000, total: 256 * 1024 };
      await r.time.advance(30_000);
      const failed = lines(r, "warn: watching pods on board-1 failed");
      assert.equal(failed.length, 1, failed.join("\n"));
      const expected =
        title === "not JSON"
          ? new RegExp(`failed: GET /api/v1/pods\\?limit=100&fieldSelector=spec\\.nodeName%3Dboard-1: 200: the answer \\(${(body as (b: string) => string)("").length} bytes\\) is not valid JSON$`)
          : title === "JSON that is not a list"
            ? /failed: GET \/api\/v1\/pods\?limit=100&fieldSelector=spec\.nodeName%3Dboard-1: 200: the answer is not a list \(no items or no resourceVersion\)$/
            : /failed: GET \/api\/v1\/pods\?limit=100&fieldSelector=spec\.nodeName%3Dboard-1: a list page of 30\d{4} bytes is more than the 262144 this agent keeps$/;
      assert.match(failed[0], expected);
      // "{}" used to read as an empty list: every pod on the node stopped as "gone from the API server".
      assert.equal(r.kubelet.pods.active, 1, "the running pod runs on");
      assert.equal(r.api.pods.get("default/running").status.phase, "Running");
      assert.equal(r.kubelet.led.state, "warning", "a watch that keeps failing shows, though the Lease renews");
      assert.ok(r.kubelet.lease.renewals >= 3 && !r.kubelet.lease.failing, "the Lease renewed throughout");
      // The normal policy's doubling, 100 ms → 7 s. The first 300 KB answer shares the HTTP/2 connection with
      // four watches and a status write: in virtual time its last frames land with the next timer (the
      // rig lets a bounded number of promise rounds run between timers), so that gap is not the policy's.
      const gaps = gapsOf(timesOf(r, isPodList, from));
      if (title.startsWith("a list page over")) assertBackoff(gaps.slice(1), { initialMs: RETRY.normal.initialMs * 2, maxMs: RETRY.normal.maxMs }, "relists");
      else assertBackoff(gaps, RETRY.normal, "relists");
      r.hostile = undefined;
      await r.time.until(() => r.api.pods.get("default/added-meanwhile")?.status?.phase === "Running", 12_000, "the pod added meanwhile Running");
      await assertNothingLost(r);
      await stop(r);
    });
  }

  for (const http of ["h2", "http/1.1"] as const) {
    it(`renewals answered with headers over the 8 KiB bound (${http}): named, retried on the normal policy, nothing lost`, async () => {
      const r = await started(30_000, { http });
      const from = r.time.now;
      r.hostile = (q, real) => {
        if (!isRenewal(q)) return undefined;
        const own = real() as string;
        return own.replace("\r\n", `\r\nX-Padding: ${"a".repeat(9000)}\r\n`);
      };
      r.heap = { free: 1000, total: 256 * 1024 };
      await r.time.advance(60_000);
      const failed = lines(r, "warn: renewing the Lease failed");
      assert.equal(failed.length, 1, failed.join("\n"));
      // HTTP/1.1: the parser's limit; HTTP/2: the HPACK decoder's (the header list the agent advertises).
      assert.match(failed[0], http === "h2" ? /COMPRESSION_ERROR: .*longer than 8192 octets/ : /: response headers exceed 8192 bytes$/);
      assert.equal(r.kubelet.led.state, "warning");
      assertBackoff(gapsOf(timesOf(r, isRenewal, from)), RETRY.normal, "renewals with oversized headers");
      r.hostile = undefined;
      await assertNothingLost(r);
      await stop(r);
    });
  }

  it("a renewal echo of 1 MiB is drained, not kept and not an error", async () => {
    const r = await started(12_000);
    r.hostile = (q, real) => (isRenewal(q) ? rebody(real(), (b) => b.replace('"spec":', `"padding":"${"y".repeat(1 << 20)}","spec":`)) : undefined);
    const before = r.kubelet.lease.renewals;
    const received = r.kubelet.api.stats.bytesReceived;
    const from = r.time.now;
    await r.time.advance(45_000);
    r.hostile = undefined;
    const padded = timesOf(r, isRenewal, from).length;
    await r.time.advance(6000); // the last megabyte's frames land with the next timer (see the list page above)
    assert.ok(padded >= 3, `${padded} renewals`);
    assert.equal(r.kubelet.lease.renewals, before + timesOf(r, isRenewal, from).length, "every one counted");
    assert.ok(r.kubelet.api.stats.bytesReceived - received > padded << 20, "every megabyte arrived (and was drained)");
    assert.equal(lines(r, "warn:").length, 0, r.host.logs.join("\n"));
    await stop(r);
  });

  it("no Date header at boot: named, retried on the normal policy, and running as soon as one comes", async () => {
    const r = hostileRig();
    r.hostile = (_q, real) => undated(real());
    r.kubelet.start();
    await r.time.advance(30_000);
    assert.deepEqual(lines(r, "warn: reading the clock"), ["warn: reading the clock from GET /version failed: GET /version: 200 without a usable Date header"]);
    assert.equal(r.kubelet.phase, "anchoring", "no Node is registered with a clock it cannot know");
    assert.equal(r.api.nodes.size, 0);
    assert.equal(r.kubelet.led.state, "warning");
    assertBackoff(gapsOf(timesOf(r, (q) => q.path === "/version")), RETRY.normal, "GET /version without a Date");
    r.hostile = undefined;
    await r.time.until(() => r.kubelet.phase === "running", 8000, "running");
    await stop(r);
  });

  it("no Date (or a malformed one) while running: the clock carries on from its anchor, renewTime stays true and strictly increasing", async () => {
    const r = await started(20_000);
    const from = r.time.now;
    let n = 0;
    r.hostile = (_q, real) => {
      const a = undated(real());
      return n++ % 2 && typeof a === "string" ? a.replace("\r\n", "\r\nDate: yesterday, about noon\r\n") : a;
    };
    r.heap = { free: 1000, total: 256 * 1024 };
    await r.time.advance(120_000);
    const sent = r.seen.filter((s) => s.t >= from && isRenewal(s.req));
    assert.ok(sent.length >= 11, `${sent.length} renewals in two minutes`);
    for (const s of sent) assert.ok(Math.abs(renewTimeOf(s) - s.wall) <= 1000, `renewTime ${new Date(renewTimeOf(s)).toISOString()} vs the true time ${new Date(s.wall).toISOString()}`);
    for (let i = 1; i < sent.length; i++) assert.ok(renewTimeOf(sent[i]) > renewTimeOf(sent[i - 1]));
    assert.equal(lines(r, "warn:").length, 0, "nothing failed: nothing to warn about");
    assert.equal(condition(r, "MemoryPressure").status, "True");
    assert.equal(r.kubelet.led.state, "healthy");
    await stop(r);
  });

  describe("a Date far in the past or the future", () => {
    const b64url = (s: string) => Buffer.from(s).toString("base64url");
    const API_NOW = Date.UTC(2026, 10, 21, 12, 0, 0);
    /** A ServiceAccount token valid for a year: a clock a century ahead would call it expired. */
    const token = `${b64url('{"alg":"RS256"}')}.${b64url(JSON.stringify({ iat: API_NOW / 1000 - 3600, exp: API_NOW / 1000 + 365 * 86_400 }))}.c2ln`;

    for (const [title, skewMs, words] of [
      ["a century ahead", 100 * YEAR_MS, "36500 days ahead of"],
      ["25 years behind", -25 * YEAR_MS, "9125 days behind"],
    ] as const) {
      it(`${title} for 30 s: one line, not followed — renewTime stays true, credentials are not judged by it`, async () => {
        const r = await started(20_000, { token });
        const from = r.time.now;
        r.api.skewMs = skewMs;
        await r.time.advance(30_000);
        r.api.skewMs = 0;
        await r.time.advance(60_000);
        const warned = lines(r, "warn:");
        assert.equal(warned.length, 1, warned.join("\n"));
        assert.match(warned[0], new RegExp(`^warn: the API server's Date header \\(\\w{3}, \\d\\d \\w{3} \\d{4} [\\d:]{8} GMT\\) is ${words} the agent's clock: not followed unless later answers agree$`));
        const sent = r.seen.filter((s) => s.t >= from && isRenewal(s.req));
        assert.ok(sent.length >= 8);
        for (const s of sent) assert.ok(Math.abs(renewTimeOf(s) - s.wall) <= 1500, `renewTime ${new Date(renewTimeOf(s)).toISOString()} vs the true ${new Date(s.wall).toISOString()}`);
        for (let i = 1; i < sent.length; i++) assert.ok(renewTimeOf(sent[i]) > renewTimeOf(sent[i - 1]));
        // Before: a century ahead moved the clock there for good — renewTime in 2126, the token "expired".
        assert.equal(lines(r, "error:").length, 0, r.host.logs.join("\n"));
        assert.equal([...r.api.coreEvents.values()].filter((e) => e.reason === "CredentialExpiring" || e.reason === "ClockSlipped").length, 0);
        assert.equal(condition(r, "Haunted").reason, "Calm");
        // Nothing failed, so the LED has nothing to warn of: the line above and the held clock are the answer.
        assert.equal(r.kubelet.led.state, "healthy");
        await stop(r);
      });
    }

    it("a century ahead for good: followed after a minute of agreeing answers, said, and renewTime only moves forward", async () => {
      const r = await started(20_000);
      r.api.skewMs = 100 * YEAR_MS;
      const stepped = r.time.now;
      await r.time.advance(120_000);
      const followed = lines(r, "warn: the API server's clock moved");
      assert.equal(followed.length, 1, r.host.logs.join("\n"));
      assert.match(followed[0], /moved 36500 days ahead and stays there \(Date: .* 2126 .*\): following it$/);
      const sent = r.seen.filter((s) => isRenewal(s.req));
      for (let i = 1; i < sent.length; i++) assert.ok(renewTimeOf(sent[i]) > renewTimeOf(sent[i - 1]), "strictly increasing: the lifecycle controller counts each");
      const late = sent.filter((s) => s.t >= stepped + 70_000);
      assert.ok(late.length >= 4 && late.every((s) => new Date(renewTimeOf(s)).getUTCFullYear() === 2126), "following the server once it insisted");
      const haunted = r.seen.filter((s) => s.req.method === "PATCH" && s.req.path === "/api/v1/nodes/board-1/status").map((s) => JSON.parse(s.req.body).status.conditions.find((c: any) => c.type === "Haunted")?.reason);
      assert.ok(haunted.includes("TimeSlipped"), `the step is visible on the Node: ${haunted.join(", ")}`);
      await stop(r);
    });

    it("25 years behind for good: followed without ever running backwards — every renewTime after the last", async () => {
      const r = await started(20_000);
      r.api.skewMs = -25 * YEAR_MS;
      await r.time.advance(120_000);
      assert.match(lines(r, "warn: the API server's clock moved").join("\n"), /moved 9125 days back and stays there .*: following it; the agent's clock holds until the server's passes it \(it never runs backwards\)$/);
      const sent = r.seen.filter((s) => isRenewal(s.req));
      assert.ok(sent.length >= 12);
      for (let i = 1; i < sent.length; i++) assert.ok(renewTimeOf(sent[i]) > renewTimeOf(sent[i - 1]));
      assert.equal(r.kubelet.lease.failing, false);
      await stop(r);
    });
  });

  describe("over-long names", () => {
    const host = createVirtualHost({ time: new VirtualTime(), handler: () => "" });
    const make = (options: Partial<KubeletOptions>) => () => new Kubelet({ nodeName: "ok", server: { host: "192.0.2.1", port: 6443 }, ...options }, host);

    it("in the configuration: a node name over 63 (and over 253) characters, a server name over 253: a clear ConfigError", () => {
      assert.throws(make({ nodeName: "n".repeat(254) }), (e: ConfigError) => e instanceof ConfigError && /^node name "n{20}…" is 254 characters long; the limit is 63$/.test(e.problems[0]));
      assert.throws(make({ nodeName: `${"a".repeat(63)}.${"b".repeat(10)}` }), /is 74 characters long; the limit is 63/);
      assert.throws(make({ server: { host: "h".repeat(300), port: 6443 } }), (e: ConfigError) => /^API server host "h{20}…" is 300 characters long; the limit is 253$/.test(e.problems[0]));
    });

    for (const http of ["h2", "http/1.1"] as const) {
      it(`in answers (${http}): pods whose names the API server never stores are ignored with one line each, the connection and the Lease unharmed`, async () => {
        const r = await started(12_000, { http });
        const bad = [
          ["p".repeat(300), "default", /its name "p{20}"… is 300 characters long; the limit is 253/],
          ["q".repeat(70_000), "default", /its name "q{20}"… is 70000 characters long; the limit is 253/],
          ["a/../../nodes/board-2", "default", /its name "a\/\.\.\/\.\.\/nodes\/board-2" is not a DNS-1123 subdomain/],
          ["ns-too-long", "n".repeat(64), /its namespace "n{20}"… is 64 characters long; the limit is 63/],
        ] as const;
        for (const [name, ns] of bad) r.api.put("pods", pod(name, ns));
        r.api.put("pods", pod("fine"));
        r.heap = { free: 1000, total: 256 * 1024 };
        await r.time.advance(60_000);
        const ignored = lines(r, "warn: a pod from the API server ignored");
        assert.equal(ignored.length, bad.length, ignored.map((l) => l.slice(0, 160)).join("\n"));
        for (const [, , why] of bad) assert.ok(ignored.some((l) => why.test(l)), `${why}\n${ignored.join("\n").slice(0, 2000)}`);
        assert.ok(ignored.every((l) => l.length < 300 && !l.includes("\n")), "short, one line");
        // No request path was built from them (before: a 70 KB :path made the server end the HTTP/2 connection, every watch and renewal with it).
        assert.ok(r.seen.every((s) => s.req.path.length < 1000 && !s.req.path.includes("nodes/board-2")));
        assert.equal(r.api.pods.get("default/fine").status.phase, "Running");
        assert.ok(r.kubelet.lease.renewals >= 7 && !r.kubelet.lease.failing);
        assert.equal(condition(r, "MemoryPressure").status, "True");
        await stop(r);
      });
    }

    it("in a pod's spec: a ConfigMap name no API server stores is a configuration error, not a request path", async () => {
      const r = await started(2000);
      const env = [{ name: "MESSAGE", valueFrom: { configMapKeyRef: { name: "../../../nodes/board-1", key: "text" } } }];
      r.api.put("pods", { ...pod("cm"), spec: { ...pod("cm").spec, containers: [{ name: "hello", image: "xs-kubelet.dev/hello:0.1", env }] } });
      const waiting = () => r.api.pods.get("default/cm")?.status?.containerStatuses?.[0]?.state?.waiting;
      await r.time.until(() => waiting()?.reason === "CreateContainerConfigError", 5000, "the configuration error");
      assert.equal(waiting().message, 'configmap name "../../../nodes/board-1" is not a DNS-1123 subdomain');
      assert.ok(r.seen.every((s) => !s.req.path.includes("/configmaps/..")), "never asked for");
      await stop(r);
    });
  });

  describe("401", () => {
    it("a bad token at boot: one error line, GET /version retried on the auth policy (10 s doubling to 5 min), Warning", async () => {
      const r = hostileRig({}, (p) => {
        p.api.token = "the-real-one";
      });
      r.kubelet.start();
      await r.time.advance(15 * 60_000);
      assert.deepEqual(lines(r, "error:"), ["error: reading the clock from GET /version failed: GET /version: 401 Unauthorized: Unauthorized — the token or client certificate is not accepted; check the credentials"]);
      assertBackoff(gapsOf(timesOf(r, (q) => q.path === "/version")), RETRY.auth, "GET /version with a bad token");
      assert.equal(r.kubelet.led.state, "warning");
      assert.equal(r.api.nodes.size, 0);
      await stop(r);
    });

    it("a token revoked while running: one error line per step, every loop on the auth policy, Warning; a new token and nothing is lost", async () => {
      const r = hostileRig({}, (p) => {
        p.api.token = "t0ken";
      });
      r.kubelet.start();
      await r.time.advance(30_000);
      const from = r.time.now;
      r.api.token = "after-the-revocation"; // every request is 401 from now on
      await r.time.advance(5000);
      r.heap = { free: 1000, total: 256 * 1024 };
      await r.time.advance(12 * 60_000);
      const errors = lines(r, "error:");
      assert.deepEqual(lines(r, "error: renewing the Lease"), [`error: renewing the Lease failed: PATCH ${LEASE_PATH}: 401 Unauthorized: Unauthorized — the token or client certificate is not accepted; check the credentials`]);
      assert.ok(errors.some((l) => l.startsWith("error: pushing node status failed: PATCH /api/v1/nodes/board-1/status: 401 Unauthorized")));
      assert.equal(new Set(errors).size, errors.length, `one line per step, not one per attempt:\n${errors.join("\n")}`);
      assert.ok(errors.length <= 7, `lease, status, four watches, events at most:\n${errors.join("\n")}`);
      assertBackoff(gapsOf(timesOf(r, isRenewal, from)), RETRY.auth, "renewals after the revocation");
      assertBackoff(gapsOf(timesOf(r, (q) => q.method === "PATCH" && q.path === "/api/v1/nodes/board-1/status", from)), RETRY.auth, "status pushes after the revocation");
      assert.ok(r.seen.filter((s) => s.t >= from).length < 80, `${r.seen.filter((s) => s.t >= from).length} requests in 12 minutes: not hammering`);
      assert.equal(r.kubelet.led.state, "warning");
      assert.equal(condition(r, "MemoryPressure").status, "False", "the flip is still owed");
      // A new token is provisioned (here: the server takes the old one again). The next attempt is at most 5 min away.
      r.api.token = undefined;
      await assertNothingLost(r, RETRY.auth.maxMs * 1.1 + 11_000);
      await stop(r);
    });
  });
});
