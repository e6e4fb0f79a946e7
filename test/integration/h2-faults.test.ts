// HTTP-level faults against the real API server (issue 13): the agent reaches kube-apiserver through
// the TLS-terminating HTTP/2 fault proxy (tools/faults/h2-proxy.ts), which answers 429/500/503 itself,
// sends GOAWAY, resets the watch streams, stalls a stream with a full window (both directions), stops
// answering PINGs, and comes back with a new serving certificate (and, once, first with an
// impersonator's). For each: no crash, the Lease keeps being renewed (the real Lease's renewTime, read
// from the cluster), Ready never leaves True, Retry-After is honoured (by the Lease and by the
// watches) and the backoff grows with its jitter, the watches come back and lose no ConfigMap change
// (the agent ends on the last resourceVersion), and the time from the fault's end to the next good
// renewal is printed.
//
// Timing. The shared control plane's grace period is 15 s (not upstream's 50 s), so the agent renews
// every 1.5 s here (a 6 s Lease): the room a fault has before the node would go Unknown — grace minus
// one interval, minus the node controller's 2 s monitor period — is then ~11.5 s, which the slowest
// recovery must fit in: a dead session found by the agent's own PING (H2_LIMITS.pingAfterMs of a
// request waiting, then pingTimeoutMs for an answer; 5 s + 5 s when this was written) plus a renewal.
//
// H2_FAULTS_VERBOSE=1 prints the agent's log lines and the proxy's requests after every test (always
// after a failed one).
//
// Identity: a ServiceAccount token (bearer, forwarded by the proxy as it came): every static-token
// node name of test/support/cluster.ts is some other suite's already.
import assert from "node:assert/strict";
import { constants as H2 } from "node:http2";
import { join } from "node:path";
import { createNodeHost } from "../../hosts/node/host";
import { Kubelet } from "../../modules/kubelet/kubelet";
import { nodeConfigMap, SETTINGS_NAMESPACE } from "../../modules/settings/controller";
import { DEFAULTS, RETRY } from "../../modules/defaults";
import { H2_LIMITS } from "../../modules/http/h2-parts";
import type { ControlPlane } from "../../tools/controlplane/launcher";
import { LEASE_RENEWAL, startH2FaultProxy, type H2FaultProxy, type H2FaultResult, type RequestRecord } from "../../tools/faults/h2-proxy";
import { clusterRequest, fromKubeconfig, type ClusterConnection } from "../../tools/kube/connection";
import { eventually } from "../support/api";
import { TEST_GRACE_SECONDS, useCluster } from "../support/cluster";

const NAME = "sa-h2-faults";
const CM = nodeConfigMap(NAME);
const CM_PATH = `/api/v1/namespaces/${SETTINGS_NAMESPACE}/configmaps`;
const LEASE_SECONDS = 6;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const isRenewal = (r: RequestRecord) => r.method === LEASE_RENEWAL.method && LEASE_RENEWAL.path!.test(r.path);

describe("HTTP/2 faults through a TLS-terminating proxy, against the real API server", function () {
  this.timeout(60_000);
  let cp: ControlPlane;
  let admin: ClusterConnection;
  let proxy: H2FaultProxy;
  let kubelet: Kubelet;
  let brightness = 40;
  // What is watched and kept, bounded: renewals the agent saw succeed, the Lease's renewTime changes as
  // the cluster has them, Ready as the cluster says it, crashes, the agent's last log lines.
  const renewedAt: number[] = [];
  /** The renewals that ended a run of failures. */
  const recoveredAt: number[] = [];
  const leaseChanges: number[] = [];
  const notReady: string[] = [];
  const crashes: string[] = [];
  const logTail: string[] = [];
  let monitor: ReturnType<typeof setInterval> | undefined;
  const keep = (list: unknown[], max: number) => list.length > max && list.splice(0, list.length - max);
  const onCrash = (what: string) => (err: unknown) => void crashes.push(`${what}: ${err instanceof Error ? err.stack : String(err)}`);
  const onRejection = onCrash("unhandled rejection");
  const onException = onCrash("uncaught exception");

  /** Sets this node's settings ConfigMap (created on first use); resolves with its resourceVersion. */
  async function setSettings(data: Record<string, string>): Promise<string> {
    const body = { apiVersion: "v1", kind: "ConfigMap", metadata: { name: CM, namespace: SETTINGS_NAMESPACE }, data };
    let res = await clusterRequest(admin, "PUT", `${CM_PATH}/${CM}`, { body });
    if (res.status === 404) res = await clusterRequest(admin, "POST", CM_PATH, { body });
    assert.ok(res.status === 200 || res.status === 201, `setting ${CM}: ${res.status} ${res.text.slice(0, 200)}`);
    return res.json.metadata.resourceVersion;
  }

  /** The agent applied exactly this version of its ConfigMap (not an older one that happens to match). */
  const applied = (value: number, rv: string) => kubelet.led.cap === value && kubelet.settings.origin.split(",").includes(`${CM}@${rv}`);

  async function appliedWithin(value: number, rv: string, ms: number, since: number): Promise<number> {
    await eventually(`led_brightness ${value} from ${CM}@${rv} applied (the agent has ${kubelet.led.cap} from ${kubelet.settings.origin})`, ms, async () => applied(value, rv), 20);
    return Date.now() - since;
  }

  const watchesOpen = () => kubelet.nodeWatch.watching && kubelet.podWatch.watching && kubelet.settingsWatches.every((w) => w.watching);

  /**
   * ms from the fault's end to the first good renewal after the agent's last failure (0 when it was
   * renewing again before the fault was over); for a fault that broke no renewal, to the next one.
   */
  async function recovery(result: H2FaultResult, what: string): Promise<number> {
    await eventually(`renewing again after ${what}`, 20_000, async () => !kubelet.lease.failing, 10);
    const broke = recoveredAt.filter((t) => t > result.startedAt);
    const at = broke.length ? broke[broke.length - 1] : await eventually(`a renewal after ${what}`, 20_000, async () => renewedAt.find((t) => t > result.endedAt), 10);
    return Math.max(0, at - result.endedAt);
  }

  /** The longest the cluster saw the Lease unrenewed between two moments (its renewTime changes, polled). */
  function longestLeaseGap(from: number, to: number): number {
    const marks = [from, ...leaseChanges.filter((t) => t > from && t < to), to];
    let worst = 0;
    for (let i = 1; i < marks.length; i++) worst = Math.max(worst, marks[i] - marks[i - 1]);
    return worst;
  }

  before(async function () {
    cp = await useCluster(this);
    admin = fromKubeconfig(cp.kubeconfig);
    process.on("unhandledRejection", onRejection);
    process.on("uncaughtException", onException);
    const token = await cp.serviceAccountToken(NAME, 3600);
    proxy = await startH2FaultProxy({ upstream: { host: cp.host, port: cp.port }, pkiDir: join(cp.dir, "pki") });
    brightness = 40;
    const rv = await setSettings({ led_brightness: String(brightness) });
    kubelet = new Kubelet(
      { nodeName: NAME, server: { host: "127.0.0.1", port: proxy.port }, tls: { serverName: "localhost", ca: cp.caDer, verify: true }, token, leaseDurationSeconds: LEASE_SECONDS },
      createNodeHost({
        log: (level, message) => {
          logTail.push(`${new Date().toISOString()} ${level} ${message}`);
          keep(logTail, 300);
        },
      }),
    );
    const onRenewed = kubelet.lease.onRenewed;
    kubelet.lease.onRenewed = (recovered) => {
      renewedAt.push(Date.now());
      keep(renewedAt, 500);
      if (recovered) recoveredAt.push(Date.now());
      keep(recoveredAt, 500);
      onRenewed?.(recovered);
    };
    kubelet.start();
    await kubelet.registered;
    let lastRenewTime = "";
    let polling = false;
    monitor = setInterval(() => {
      if (polling) return; // one poll at a time: a slow API server must not pile them up
      polling = true;
      void Promise.all([clusterRequest(admin, "GET", `/api/v1/nodes/${NAME}`), clusterRequest(admin, "GET", `/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/${NAME}`)])
        .then(([node, lease]) => {
          const ready = node.json?.status?.conditions?.find((c: any) => c.type === "Ready")?.status;
          if (ready !== "True" && leaseChanges.length) notReady.push(`${new Date().toISOString()} Ready=${ready}`);
          keep(notReady, 20);
          const renewTime = lease.json?.spec?.renewTime ?? "";
          if (renewTime && renewTime !== lastRenewTime) {
            lastRenewTime = renewTime;
            leaseChanges.push(Date.now());
            keep(leaseChanges, 500);
          }
        })
        .catch(() => undefined)
        .finally(() => (polling = false));
    }, 250);
    await eventually("Ready=True", 30_000, async () => leaseChanges.length > 0 && JSON.parse((await clusterRequest(admin, "GET", `/api/v1/nodes/${NAME}`)).text).status?.conditions?.some((c: any) => c.type === "Ready" && c.status === "True"));
    await eventually("every watch open", 20_000, async () => watchesOpen());
    await appliedWithin(brightness, rv, 10_000, Date.now());
    notReady.length = 0;
  });

  after(async () => {
    if (monitor) clearInterval(monitor);
    await kubelet?.stop({ decommission: true }).catch(() => undefined);
    await proxy?.close();
    if (admin) await clusterRequest(admin, "DELETE", `${CM_PATH}/${CM}`).catch(() => undefined);
    process.off("unhandledRejection", onRejection);
    process.off("uncaughtException", onException);
  });

  let testStart = 0;
  beforeEach(async function () {
    // Each fault starts from a healthy agent: renewing, every watch open.
    await eventually("renewing and watching before the fault", 20_000, async () => !kubelet.lease.failing && watchesOpen(), 50);
    testStart = Date.now();
  });

  /** What every fault must leave: no crash, Ready never anything but True, the agent running and renewing. */
  async function assertHealthy(): Promise<void> {
    assert.deepEqual(crashes, [], "no uncaught exception, no unhandled rejection");
    assert.deepEqual(notReady, [], `Ready stayed True in the cluster (grace ${TEST_GRACE_SECONDS} s)`);
    assert.equal(kubelet.phase, "running");
    // A fault over in a moment may leave no renewal inside the test yet: the next is due within an interval.
    await eventually("a renewal since the test began", 2 * kubelet.lease.intervalMs + 1000, async () => renewedAt.some((t) => t > testStart), 20);
    await eventually("the cluster's Lease renewed since the test began", 2 * kubelet.lease.intervalMs + 1000, async () => leaseChanges.some((t) => t > testStart), 20);
    assert.ok(!kubelet.lease.failing, "renewing at the end");
    assert.deepEqual(crashes, [], "no uncaught exception, no unhandled rejection");
  }

  afterEach(function () {
    if (this.currentTest?.state === "failed" || process.env.H2_FAULTS_VERBOSE) {
      console.log(`      --- the agent's last log lines:\n${logTail.filter((l) => l >= new Date(testStart).toISOString()).slice(-60).map((l) => `      ${l}`).join("\n")}`);
      console.log(`      --- the proxy's last requests:\n${proxy.requests().filter((r) => r.at >= testStart).slice(-40).map((r) => `      ${new Date(r.at).toISOString()} s${r.session}/${r.stream} c${r.certificate} ${r.method} ${r.path.slice(0, 160)} → ${r.status} (${r.by})`).join("\n")}`);
    }
    crashes.length = 0;
    notReady.length = 0;
  });

  /** The Lease PATCHes the proxy saw since `since`, oldest first. */
  const renewalsSeen = (since: number) => proxy.requests().filter((r) => isRenewal(r) && r.at >= since);

  for (const { status, retryAfterSeconds, count } of [
    { status: 429 as const, retryAfterSeconds: 3, count: 1 },
    { status: 503 as const, retryAfterSeconds: 2, count: 2 },
  ]) {
    it(`${status} with Retry-After: ${retryAfterSeconds} on ${count} renewal${count > 1 ? "s" : ""}: no retry before ${retryAfterSeconds} s (plus at most the 10 % jitter), then renewing again`, async () => {
      const result = await proxy.inject({ kind: "status", status, retryAfterSeconds, count, match: LEASE_RENEWAL, ms: 20_000 });
      assert.equal(result.hits, count, "the proxy answered the renewals itself");
      await eventually("the renewal after the last refused one", 15_000, async () => renewalsSeen(result.startedAt).some((r) => r.by === "apiserver" && r.status === 200), 20);
      const all = renewalsSeen(result.startedAt);
      const refused = all.filter((r) => r.by === "proxy");
      assert.equal(refused.length, count);
      const delays: number[] = [];
      for (const r of refused) {
        const next = all.find((n) => n.at > r.at)!;
        delays.push(next.at - r.at);
      }
      const floor = retryAfterSeconds * 1000;
      for (const d of delays) {
        assert.ok(d >= floor, `a retry ${d} ms after a ${status} with Retry-After: ${retryAfterSeconds}`);
        // RetryPolicy: the Retry-After × (1 + jitter·random), and timer and round-trip slack.
        assert.ok(d <= floor * (1 + RETRY.jitter) + 400, `a retry ${d} ms after a ${status} with Retry-After: ${retryAfterSeconds} (at most ${floor * (1 + RETRY.jitter)} ms expected)`);
      }
      // "The API accepts again" once the last Retry-After has passed: from then to the next good renewal.
      const acceptsAgain = refused[refused.length - 1].at + floor;
      const back = await recovery({ ...result, endedAt: acceptsAgain }, `the ${status}s`);
      console.log(`      ${status} × ${count}: retries ${delays.join(", ")} ms after each (Retry-After ${floor} ms); renewed ${back} ms after the Retry-After ran out`);
      assert.ok(back <= 2000, `${back} ms`);
      await assertHealthy();
    });
  }

  it("500 three times: the retries back off (100, 200, 400 ms ± 10 % jitter), then renewing again", async () => {
    const result = await proxy.inject({ kind: "status", status: 500, count: 3, match: LEASE_RENEWAL, ms: 20_000 });
    assert.equal(result.hits, 3);
    await eventually("a good renewal after the 500s", 10_000, async () => renewalsSeen(result.startedAt).some((r) => r.by === "apiserver" && r.status === 200), 20);
    const all = renewalsSeen(result.startedAt);
    const refused = all.filter((r) => r.by === "proxy");
    const delays = refused.map((r) => all.find((n) => n.at > r.at)!.at - r.at);
    for (const [i, d] of delays.entries()) {
      const base = RETRY.normal.initialMs * 2 ** i;
      assert.ok(d >= base * (1 - RETRY.jitter) && d <= base * (1 + RETRY.jitter) + 150, `retry ${i + 1} came ${d} ms after the 500 (${base} ms ± ${RETRY.jitter * 100} % expected)`);
    }
    const back = await recovery(result, "the 500s");
    console.log(`      500 × 3: retries ${delays.join(", ")} ms after each; renewed ${back} ms after the last 500`);
    assert.ok(back <= 2000, `${back} ms`);
    await assertHealthy();
  });

  it("GOAWAY: new requests go over a new connection at once; the watches finish on the old one, resume, and lose no change", async () => {
    const before = proxy.requests().at(-1)!.session;
    const accepted = proxy.accepted;
    const fault = proxy.inject({ kind: "goaway", ms: 2000 });
    await sleep(300);
    // During the grace: the watches are still on the old connection, which still carries their events.
    brightness++;
    const during = brightness;
    const rvDuring = await setSettings({ led_brightness: String(during) });
    const t = Date.now();
    const duringMs = await appliedWithin(during, rvDuring, 1700, t);
    const result = await fault;
    assert.equal(result.hits, 1);
    brightness++;
    const rvAfter = await setSettings({ led_brightness: String(brightness) });
    const afterMs = await appliedWithin(brightness, rvAfter, 10_000, result.endedAt);
    const back = await recovery(result, "GOAWAY");
    const reqs = proxy.requests().filter((r) => r.at > result.startedAt + 50);
    assert.ok(proxy.accepted > accepted, "a new connection");
    assert.deepEqual(
      reqs.filter((r) => r.session === before).map((r) => `${r.method} ${r.path}`),
      [],
      "no new stream on the connection that sent GOAWAY",
    );
    assert.ok(reqs.some((r) => isRenewal(r) && r.status === 200 && r.session !== before && r.at < result.endedAt), "renewed over the new connection during the grace");
    const resumed = reqs.filter((r) => r.watch && r.path.includes(encodeURIComponent(`metadata.name=${CM}`)));
    console.log(
      `      GOAWAY: change during the grace applied in ${duringMs} ms, the one after the close in ${afterMs} ms; next good renewal ${back} ms after the close; ` +
        `the node's settings watch came back with resourceVersion=${/resourceVersion=([^&]*)/.exec(resumed[0]?.path ?? "")?.[1] || "(none: relisted)"}`,
    );
    await assertHealthy();
  });

  for (const code of [H2.NGHTTP2_INTERNAL_ERROR, H2.NGHTTP2_CANCEL]) {
    it(`RST_STREAM(${code === H2.NGHTTP2_CANCEL ? "CANCEL" : "INTERNAL_ERROR"}) on every watch: each comes back from its resourceVersion, no change lost`, async () => {
      const result = await proxy.inject({ kind: "rst-watch", code });
      assert.equal(result.hits, 2 + kubelet.settingsWatches.length, "the Node, pod and settings watches were reset");
      // Made while the watches are down or coming back: only a resumed watch (or a relist) brings it.
      brightness++;
      const rv = await setSettings({ led_brightness: String(brightness) });
      const ms = await appliedWithin(brightness, rv, 10_000, result.endedAt);
      await eventually("every watch open again", 10_000, async () => watchesOpen(), 20);
      const rewatched = proxy.requests().filter((r) => r.watch && r.at > result.startedAt);
      const lists = proxy.requests().filter((r) => !r.watch && r.method === "GET" && r.at > result.startedAt && /[?&]limit=/.test(r.path));
      assert.ok(rewatched.length >= result.hits, `${rewatched.length} watches opened again`);
      assert.ok(rewatched.every((r) => /resourceVersion=[^&]+/.test(r.path)) || lists.length > 0, "resumed from a resourceVersion, or relisted");
      const firstBack = Math.min(...rewatched.map((r) => r.at)) - result.endedAt;
      console.log(`      RST_STREAM(${code}): ${result.hits} watches reset, the first back after ${firstBack} ms, ${lists.length} relists; the change made after the reset applied ${ms} ms after it`);
      await assertHealthy();
    });
  }

  it("429 with Retry-After on the watches' new requests, while the Lease recovers from a failure: each watch waits out its own Retry-After", async () => {
    const retryAfterSeconds = 4;
    const watches = 2 + kubelet.settingsWatches.length;
    // Each watch's next request is refused with a Retry-After, once; the renewal fails once (a 500)
    // and works on its retry — a recovery, which the agent answers by waking waiting watches.
    const limited = proxy.inject({ kind: "status", status: 429, retryAfterSeconds, count: watches, match: { method: "GET", path: /[?&]watch=(1|true)(&|$)/ }, ms: 15_000 });
    const reset = await proxy.inject({ kind: "rst-watch" });
    assert.equal(reset.hits, watches);
    const leaseFailed = proxy.inject({ kind: "status", status: 500, count: 1, match: LEASE_RENEWAL, ms: 10_000 });
    brightness++;
    const rv = await setSettings({ led_brightness: String(brightness) });
    const result = await limited;
    assert.equal(result.hits, watches, "every watch's new request was refused once");
    assert.equal((await leaseFailed).hits, 1);
    const ms = await appliedWithin(brightness, rv, 15_000, result.endedAt);
    await eventually("every watch open again", 10_000, async () => watchesOpen(), 20);
    // One watch is its path and selector; its attempts after the reset, in order.
    const key = (r: RequestRecord) => `${r.path.split("?")[0]} ${/fieldSelector=[^&]*/.exec(r.path)?.[0]}`;
    const attempts = proxy.requests().filter((r) => r.watch && r.at > reset.startedAt);
    const waited: string[] = [];
    const early: string[] = [];
    for (const refused of attempts.filter((r) => r.by === "proxy")) {
      const next = attempts.find((r) => r.at > refused.at && key(r) === key(refused));
      assert.ok(next, `${key(refused)} tried again`);
      const d = next.at - refused.at;
      waited.push(`${d}`);
      if (d < retryAfterSeconds * 1000) early.push(`${key(refused)} after ${d} ms`);
    }
    const recoveredAt = renewalsSeen(reset.startedAt).find((r) => r.by === "apiserver" && r.status === 200 && r.at > result.startedAt)?.at ?? 0;
    console.log(`      429 (Retry-After ${retryAfterSeconds} s) on ${watches} watch requests: retried ${waited.join(", ")} ms after; the Lease recovered ${recoveredAt ? recoveredAt - reset.startedAt : "?"} ms after the reset; the change applied ${ms} ms after the last 429`);
    assert.deepEqual(early, [], `watches that did not wait out their Retry-After of ${retryAfterSeconds} s`);
    await assertHealthy();
  });

  it("a watch stalled with kube-apiserver's window full (down): renewals go on, the backlog arrives when it flows again, the last change wins", async () => {
    // The agent cannot tell a stalled watch from a quiet one (no per-stream liveness; bookmarks come
    // about once a minute): what it must do is keep the rest of the connection working and take the
    // backlog whole when the stream moves again.
    const stallMs = 6000;
    const fault = proxy.inject({ kind: "stall-window", direction: "down", ms: stallMs, match: { path: new RegExp(`configmaps\\?.*${encodeURIComponent(`metadata.name=${CM}`)}`) } });
    await sleep(100);
    // More than the proxy's upstream window (16 KiB) and its read buffer (16 KiB): 8 events of ~6 KiB.
    let rv = "";
    for (let i = 0; i < 8; i++) {
      brightness++;
      rv = await setSettings({ led_brightness: String(brightness), padding: `${i}`.repeat(6000) });
    }
    await sleep(500);
    assert.ok(!applied(brightness, rv), "nothing of the stalled stream reached the agent");
    const result = await fault;
    assert.equal(result.hits, 1, "one watch stalled");
    assert.equal(result.windowFull, true, "kube-apiserver's window on the stalled stream reached 0");
    const renewedDuring = renewedAt.filter((t) => t > result.startedAt && t < result.endedAt).length;
    assert.ok(renewedDuring >= 2, `${renewedDuring} renewals during the ${stallMs} ms stall`);
    const ms = await appliedWithin(brightness, rv, 10_000, result.endedAt);
    const back = await recovery(result, "the stall");
    console.log(`      stall (down) ${stallMs} ms: ${renewedDuring} renewals during it; the last of 8 changes applied ${ms} ms after the stream flowed again; next renewal ${back} ms after`);
    await setSettings({ led_brightness: String(brightness) }); // the padding goes
    await assertHealthy();
  });

  it("the agent's send window shut (up: SETTINGS_INITIAL_WINDOW_SIZE 0): the renewal's body waits, then leaves as the window reopens", async () => {
    const stallMs = 3000;
    // Begin just after a renewal, so the next one is sure to fall into the stall.
    const last = renewedAt.at(-1)!;
    await eventually("a fresh renewal", 5000, async () => renewedAt.at(-1)! > last, 10);
    const result = await proxy.inject({ kind: "stall-window", direction: "up", ms: stallMs });
    assert.equal(result.windowFull, true, "a request body waited for window");
    const stuck = renewalsSeen(result.startedAt).filter((r) => r.at < result.endedAt);
    assert.ok(stuck.length >= 1, "a renewal's HEADERS arrived during the stall");
    assert.ok(!renewedAt.some((t) => t > result.startedAt + 200 && t < result.endedAt), "no renewal completed while the window was shut");
    const back = await recovery(result, "the window reopened");
    const gap = longestLeaseGap(result.startedAt - 2000, Date.now());
    console.log(`      stall (up) ${stallMs} ms: ${stuck.length} renewal(s) held, renewed ${back} ms after the window reopened; the cluster saw the Lease unrenewed for at most ${gap} ms`);
    assert.ok(back <= 1000, `${back} ms`);
    await assertHealthy();
  });

  it("PINGs never answered (a silent session, TCP up): the agent finds it dead, renews over a new connection in time, the watches follow", async function () {
    this.timeout(90_000);
    const silentMs = 14_000;
    const accepted = proxy.accepted;
    const began = Date.now();
    const fault = proxy.inject({ kind: "ping-unanswered", ms: silentMs });
    await sleep(200);
    brightness++;
    const rv = await setSettings({ led_brightness: String(brightness) });
    await eventually("a new connection", silentMs, async () => proxy.accepted > accepted, 20);
    const movedMs = Date.now() - began;
    // Found dead and left within the agent's own liveness bound: the next renewal, a PING after it waited
    // pingAfterMs, pingTimeoutMs for an answer (and a little for the timers).
    const bound = kubelet.lease.intervalMs * (1 + DEFAULTS.renewJitter) + H2_LIMITS.pingAfterMs + H2_LIMITS.pingTimeoutMs + 1000;
    assert.ok(movedMs <= bound, `the silent session was left after ${movedMs} ms (at most ${bound} ms expected)`);
    const ms = await appliedWithin(brightness, rv, silentMs, began);
    const result = await fault;
    assert.equal(result.hits, 1);
    const recovered = recoveredAt.find((at) => at > result.startedAt && at < result.endedAt);
    assert.ok(recovered, "a renewal failed on the silent session, and one over the new connection worked before the silence was over");
    const firstGood = recovered - result.startedAt;
    const gap = longestLeaseGap(result.startedAt - 2000, result.endedAt + 1000);
    const back = await recovery(result, "the silence");
    console.log(`      silent session ${silentMs} ms: a new connection ${movedMs} ms in (liveness: PING after ${H2_LIMITS.pingAfterMs} ms, ${H2_LIMITS.pingTimeoutMs} ms for it), renewing again ${firstGood} ms in, the change applied ${ms} ms in; the cluster saw the Lease unrenewed for at most ${gap} ms (grace ${TEST_GRACE_SECONDS} s); ${back === 0 ? "recovered before the fault was over" : `renewing ${back} ms after the fault's end`}`);
    assert.ok(gap < TEST_GRACE_SECONDS * 1000, `${gap} ms without a renewal`);
    await assertHealthy();
  });

  it("a new serving certificate (same CA) and the live connection closed: the agent verifies it, reconnects, and its watches lose no change", async () => {
    const failures = proxy.handshakeFailures;
    const generation = proxy.certificate.generation;
    const fault = proxy.inject({ kind: "new-cert", ms: 500 });
    brightness++;
    const rv = await setSettings({ led_brightness: String(brightness) });
    const result = await fault;
    assert.equal(result.hits, 1);
    assert.equal(proxy.certificate.generation, generation + 1);
    const ms = await appliedWithin(brightness, rv, 10_000, result.endedAt);
    const back = await recovery(result, "the new certificate");
    const renewal = renewalsSeen(result.endedAt).find((r) => r.status === 200);
    assert.equal(renewal?.certificate, generation + 1, "renewed over a connection with the new certificate");
    assert.equal(proxy.handshakeFailures, failures, "no handshake failed");
    await eventually("every watch open again", 10_000, async () => watchesOpen(), 20);
    assert.ok(proxy.requests().filter((r) => r.watch && r.at > result.startedAt).every((r) => r.certificate === generation + 1));
    console.log(`      new certificate: renewed ${back} ms after the old connection closed, over the new one; the change made meanwhile applied ${ms} ms after`);
    await assertHealthy();
  });

  it("an impersonator's certificate first (same names, another CA): the agent refuses it and sends nothing, then takes the good new one", async () => {
    const untrustedMs = 3000;
    const generation = proxy.certificate.generation;
    const result = await proxy.inject({ kind: "new-cert", ms: 300, untrustedMs });
    assert.ok((result.refused ?? 0) >= 1, "the agent tried, and refused the impersonator's certificate");
    assert.deepEqual(
      proxy.requests().filter((r) => r.certificate === 0).map((r) => `${r.method} ${r.path}`),
      [],
      "no request (no token) went over a connection with the untrusted certificate",
    );
    const back = await recovery(result, "the good certificate's return");
    const renewal = renewalsSeen(result.endedAt).find((r) => r.status === 200);
    assert.equal(renewal?.certificate, generation + 1);
    brightness++;
    const rv = await setSettings({ led_brightness: String(brightness) });
    const ms = await appliedWithin(brightness, rv, 10_000, Date.now());
    const gap = longestLeaseGap(result.startedAt - 2000, Date.now());
    console.log(
      `      impersonator for ${untrustedMs} ms: ${result.refused} connections refused (the agent ended each before a stream); renewed ${back} ms after the good certificate returned ` +
        `(2 s target ${back <= 2000 ? "met" : "missed"}); the cluster saw the Lease unrenewed for at most ${gap} ms; a change after it applied in ${ms} ms`,
    );
    // Said as a refused certificate (Warning meanwhile), not a network error.
    const refusal = logTail.find((l) => l >= new Date(result.startedAt).toISOString() && / error .* failed: the API server's certificate \(127\.0\.0\.1:\d+\) was rejected: .+ — check the CA bundle and the server name in the config$/.test(l));
    assert.ok(refusal, `a line naming the refused certificate:\n${logTail.slice(-20).join("\n")}`);
    // The certificate policy's first step (5 s) after each loop's refusal — the reachability probe
    // is not used for it (its TCP connect succeeds whatever the certificate) — so the Lease is back
    // at most one step after the impersonator's start: within a step of the good certificate's return.
    assert.ok(back <= RETRY.certificate.initialMs * (1 + RETRY.jitter) + 500, `${back} ms`);
    await assertHealthy();
  });
});
