// A refused server certificate (issue 13, "Hostile input"): the host's TLS rejects the API server's
// certificate (another CA, a name it lacks, expired) and says so through the host contract
// (CERTIFICATE_REJECTED). The agent on the virtual host against the scripted API, in virtual time:
// one line naming the cause and what to check, the LED on Warning (the network works; the peer is
// not who the agent trusts), the certificate backoff (RETRY.certificate), no reachability probe
// turning it into a handshake a second — and nothing lost once the certificate verifies again.
// The real TLS stacks' side (node:tls's errors, against the real control plane) is
// test/integration/hostile.test.ts.
import assert from "node:assert/strict";
import { rig, type Rig } from "../../tools/scenarios/harness";
import { CERTIFICATE_REJECTED } from "../../modules/host";
import { RETRY } from "../../modules/defaults";
import { HttpError } from "../../modules/http/parser";

const LEASE_PATH = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/board-1";
const REASON = "it does not name api.cluster.example; the server presented CN=impostor (impostor.example), issued by CN=another-ca";
const LINE = `error: renewing the Lease failed: the API server's certificate (192.0.2.1:6443) was rejected: ${REASON} — check the CA bundle and the server name in the config`;

interface CertRig extends Rig {
  /** While set, every TLS connect ends with CERTIFICATE_REJECTED + this (as a host's TLS would say it). */
  rejecting: string | undefined;
  /** Virtual time of each refused handshake. */
  refused: number[];
  /** Each renewal attempt: when it was made, and the kind of error it failed with ("" when it worked). */
  renewals: { t: number; failed: string }[];
}

function certRig(http: "h2" | "http/1.1" = "h2"): CertRig {
  const r = rig({ http, tls: { serverName: "api.cluster.example", ca: Uint8Array.of(0x30, 0), verify: true } }) as CertRig;
  r.rejecting = undefined;
  r.refused = [];
  r.renewals = [];
  const connect = r.host.connect.bind(r.host);
  r.host.connect = (target, events) => {
    // The API connection carries TLS; the Lease's probe is a bare TCP connect, which succeeds
    // whatever certificate the server would present.
    if (!target.tls || r.rejecting === undefined) return connect(target, events);
    r.refused.push(r.time.now);
    let open = true;
    const why = r.rejecting;
    void Promise.resolve().then(() => open && events.onClose(CERTIFICATE_REJECTED + why));
    return { write() {}, close: () => void (open = false) };
  };
  const call = r.kubelet.api.call.bind(r.kubelet.api);
  r.kubelet.api.call = (method, path, options) => {
    if (method !== "PATCH" || path !== LEASE_PATH) return call(method, path, options);
    const attempt = { t: r.time.now, failed: "" };
    r.renewals.push(attempt);
    return call(method, path, options).catch((err) => {
      attempt.failed = err instanceof HttpError ? err.kind : "other";
      throw err;
    });
  };
  return r;
}

const condition = (r: Rig, type: string) => r.api.nodes.get("board-1").status.conditions.find((c: any) => c.type === type);
const renewTime = (r: Rig) => Date.parse(r.api.leases.get("board-1").spec.renewTime);

async function stop(r: Rig): Promise<void> {
  const stopped = r.kubelet.stop();
  await r.time.advance(30_000);
  await stopped;
}

describe("a refused server certificate (virtual host, virtual time)", () => {
  for (const http of ["h2", "http/1.1"] as const) {
    it(`refused for 12 minutes (${http}): one line naming it, Warning, the certificate backoff, no probe hammer; nothing lost once it verifies`, async () => {
      const r = certRig(http);
      r.kubelet.start();
      await r.time.advance(30_000);
      assert.equal(r.kubelet.led.state, "healthy");
      // The API server comes back with a certificate the agent refuses: the live connection drops first.
      r.rejecting = REASON;
      r.api.fail((q) => q.method === "PATCH" && q.path === LEASE_PATH, { drop: true });
      await r.time.until(() => r.renewals.filter((a) => a.failed).length >= 2, 15_000, "the dropped renewal and the next one");
      const probes = r.kubelet.lease.probes;
      await r.time.advance(5000);
      r.heap = { free: 1000, total: 256 * 1024 }; // the flip that must not be lost
      await r.time.advance(12 * 60_000);

      const refused = r.renewals.filter((a) => a.failed === "certificate").map((a) => a.t);
      assert.deepEqual(r.host.logs.filter((l) => l.startsWith("error: renewing the Lease failed")), [LINE], "one line, naming the cause and what to check");
      assert.equal(r.kubelet.led.state, "warning", "the network works; the peer is not who the agent trusts");
      // Before: a network error — the normal policy (100 ms doubling to 7 s, ~100 handshakes by the
      // Lease alone in 12 minutes) and Disconnected.
      const gaps = refused.slice(1).map((t, i) => t - refused[i]);
      assert.ok(gaps.length >= 6, `gaps ${gaps.join(", ")} ms`);
      gaps.forEach((gap, n) => {
        const base = Math.min(RETRY.certificate.maxMs, RETRY.certificate.initialMs * 2 ** n);
        assert.ok(gap >= base * (1 - RETRY.jitter) - 5 && gap <= base * (1 + RETRY.jitter) + 50, `retry ${n + 1} after ${gap} ms; the policy says ${base} ms ± 10 % (gaps: ${gaps.join(", ")} ms)`);
      });
      assert.equal(r.kubelet.lease.probes, probes, "no TCP probe while the certificate is refused: each would trigger a full handshake");
      // Each loop (the Lease, the status, the watches, the events) on that policy tries about eight
      // times in 12 minutes: the whole agent fewer than one loop alone on the network policy's 7 s cap.
      process.stdout.write(`      ${r.refused.length} refused handshakes in 12 minutes, ${refused.length} of them for the Lease\n`);
      assert.ok(r.refused.length < (12 * 60_000) / RETRY.normal.maxMs, `${r.refused.length} handshakes`);
      assert.equal(r.kubelet.status.pending, true, "the flip is owed");
      assert.equal(condition(r, "MemoryPressure").status, "False");

      r.rejecting = undefined;
      const verified = r.time.now;
      await r.time.until(() => !r.kubelet.lease.failing, RETRY.certificate.maxMs * (1 + RETRY.jitter) + 1000, "a renewal once the certificate verifies");
      assert.equal(r.renewals.find((a) => a.t >= verified)?.failed, "", "the Lease's next try verifies and renews");
      await r.time.until(() => condition(r, "MemoryPressure").status === "True" && !r.kubelet.status.pending, 11_000, "the flip on the API server");
      await r.time.advance(11_000);
      assert.equal(r.kubelet.led.state, "healthy", r.host.logs.slice(-8).join("\n"));
      assert.ok(r.host.logs.some((l) => /^info: renewing the Lease works again after \d+ failed attempts$/.test(l)));
      await stop(r);
    });
  }

  it("refused for 3 s (an impersonator, a balancer's placeholder): the Lease is renewed on the first retry and never lapses", async () => {
    const r = certRig();
    r.kubelet.start();
    await r.time.advance(30_000);
    const last = renewTime(r);
    r.rejecting = REASON;
    r.api.fail((q) => q.method === "PATCH" && q.path === LEASE_PATH, { drop: true });
    await r.time.until(() => r.renewals.filter((a) => a.failed).length >= 2, 15_000, "the dropped renewal and the next one");
    const first = r.time.now;
    await r.time.advance(3000);
    r.rejecting = undefined;
    await r.time.until(() => !r.kubelet.lease.failing, 10_000, "renewed again");
    assert.ok(r.time.now - first <= RETRY.certificate.initialMs * (1 + RETRY.jitter) + 50, `renewed ${r.time.now - first} ms after the first refusal`);
    assert.ok(renewTime(r) - last < 40_000 - 10_000, "the Lease (40 s) never came near lapsing");
    await r.time.advance(11_000);
    assert.equal(r.kubelet.led.state, "healthy");
    await stop(r);
  });

  it("refused at boot: GET /version on the certificate backoff, Warning, nothing registered until it verifies", async () => {
    const r = certRig();
    r.rejecting = REASON;
    r.kubelet.start();
    await r.time.advance(60_000);
    assert.deepEqual(
      r.host.logs.filter((l) => /^(warn|error):/.test(l)),
      [`error: reading the clock from GET /version failed: the API server's certificate (192.0.2.1:6443) was rejected: ${REASON} — check the CA bundle and the server name in the config`],
    );
    // 0, 5, 15, 35 s: four tries in a minute (the network policy makes a dozen).
    assert.equal(r.refused.length, 4, `handshakes at ${r.refused.join(", ")} ms`);
    assert.equal(r.kubelet.phase, "anchoring");
    assert.equal(r.kubelet.led.state, "warning");
    assert.equal(r.api.nodes.size, 0);
    r.rejecting = undefined;
    await r.time.until(() => r.kubelet.phase === "running", RETRY.certificate.initialMs * 8 * (1 + RETRY.jitter) + 1000, "running once it verifies");
    await stop(r);
  });
});
