// Certificates that renew themselves, against the real control plane: agents start from node
// certificates of 45 s (signed with the cluster CA's key: the CSR API gives nothing under 10 minutes)
// and renew them through the CSR API — the client certificate approved by kube-controller-manager
// (deploy/node-cert-rotation.yaml, as kubeadm binds it), the serving certificate by a person
// (`npm run provision -- --approve-serving`) or denied. The four agents run side by side.
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import { createNodeHost, derToPem } from "../../hosts/node/host";
import { certificateFacts } from "../../modules/k8s/credentials";
import { CLIENT_CERT_KEY, Kubelet, SERVING_CERT_KEY } from "../../modules/kubelet/kubelet";
import type { ControlPlane } from "../../tools/controlplane/launcher";
import { clusterRequest, fromKubeconfig, type ClusterConnection } from "../../tools/kube/connection";
import { adminApi, approvePendingServing } from "../../tools/provision/provision";
import { eventually } from "../support/api";
import { useCluster } from "../support/cluster";
import { Watchdog } from "../../tools/kube/watchdog";

const LIFETIME = 45;
const NS = "rotation-test";

interface Agent {
  name: string;
  kubelet: Kubelet;
  logs: string[];
  stateDir: string;
  notAfter: number;
}

describe("certificate rotation against the real control plane", function () {
  this.timeout(180_000);
  let cp: ControlPlane;
  let admin: ClusterConnection;
  const agents: Agent[] = [];
  const dogs: Watchdog[] = [];
  const dirs: string[] = [];

  async function agent(name: string, options: { client: { certificate: Uint8Array; key: Uint8Array }; serving?: { certificate: Uint8Array; key: Uint8Array }; stateDir?: string; onLog?: (line: string, a: Agent) => void }): Promise<Agent> {
    const stateDir = options.stateDir ?? mkdtempSync(join(tmpdir(), `xs-kubelet-${name}-`));
    if (!options.stateDir) dirs.push(stateDir);
    const logs: string[] = [];
    let self: Agent | undefined;
    const host = createNodeHost({
      stateDir,
      log: (level, message) => {
        const line = `${level} ${message}`;
        logs.push(line);
        if (self) options.onLog?.(line, self);
      },
    });
    const kubelet = new Kubelet(
      {
        nodeName: name,
        server: { host: cp.host, port: cp.port },
        tls: { serverName: "localhost", ca: cp.caDer, verify: true, clientCertificate: options.client.certificate, clientKey: options.client.key },
        kubeletApi: options.serving ? { certificate: options.serving.certificate, key: options.serving.key, clientCa: cp.caDer, port: 0 } : undefined,
      },
      host,
    );
    self = { name, kubelet, logs, stateDir, notAfter: certificateFacts(options.serving?.certificate ?? options.client.certificate)!.validity.notAfter };
    agents.push(self);
    kubelet.start();
    await kubelet.registered;
    return self;
  }

  /** The certificate a TLS client gets from the agent's kubelet API now. */
  function servedCertificate(a: Agent): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const port = a.kubelet.identity.daemonEndpoints.kubeletEndpoint.Port;
      // Whatever it serves, expired or not: the test compares the bytes.
      const s = tlsConnect({ host: "127.0.0.1", port, rejectUnauthorized: false }, () => {
        resolve(s.getPeerCertificate().raw);
        s.end();
      });
      s.on("error", reject);
    });
  }

  const events = async (name: string, reason: string) => JSON.parse((await clusterRequest(admin, "GET", `/api/v1/namespaces/default/events?fieldSelector=${encodeURIComponent(`involvedObject.name=${name},reason=${reason}`)}`)).text).items as any[];

  let plain: Promise<Agent>;
  let restarted: Promise<{ first: Agent; second: Agent; keptAfterStop: boolean }>;
  let approved: Promise<{ a: Agent; original: Buffer; renewed: Buffer; logs: { before: string; beforeWasOld: boolean; after: string; afterExpiry: string } }>;
  let denied: Promise<{ a: Agent; original: Buffer; event: any; stillServed: Buffer; expiring: any }>;

  before(async function () {
    cp = await useCluster(this);
    admin = fromKubeconfig(cp.kubeconfig);
    await cp.kubectl(["create", "namespace", NS]).catch(() => undefined);
    const [c27, c28, c29, c30] = await Promise.all(["agent-27", "agent-28", "agent-29", "agent-30"].map((n) => cp.mintNodeCertificate(n, { lifetimeSeconds: n === "agent-27" || n === "agent-28" ? LIFETIME : 3600 })));
    const [s29, s30] = await Promise.all(["agent-29", "agent-30"].map((n) => cp.mintNodeCertificate(n, { lifetimeSeconds: LIFETIME, addresses: ["127.0.0.1", n] })));
    for (const n of ["agent-27", "agent-28"]) dogs.push(new Watchdog(admin, n));
    plain = agent("agent-27", { client: c27 });
    // Power lost (stop) the moment the CSR exists: nothing is kept, the next boot starts from what worked.
    let stopped: Promise<void> | undefined;
    restarted = agent("agent-28", {
      client: c28,
      onLog: (line, a) => {
        if (!stopped && /CSR \S+ \(kubernetes\.io\/kube-apiserver-client-kubelet\) created/.test(line)) stopped = a.kubelet.stop();
      },
    }).then(async (first) => {
      await eventually("agent-28 stopped mid-rotation", 60_000, async () => stopped && (await stopped.then(() => true)));
      const keptAfterStop = existsSync(join(first.stateDir, CLIENT_CERT_KEY));
      const second = await agent("agent-28", { client: c28, stateDir: first.stateDir });
      return { first, second, keptAfterStop };
    });
    const logs = () => cp.kubectl(["-n", NS, "logs", "hello", "--tail=1"]);
    approved = agent("agent-29", {
      client: c29,
      serving: s29,
      onLog: (line) => {
        if (/CSR \S+ \(kubernetes\.io\/kubelet-serving\) created/.test(line)) void approvePendingServing(adminApi(admin), "agent-29");
      },
    }).then(async (a) => {
      const original = await servedCertificate(a);
      await cp.kubectl(["-n", NS, "apply", "-f", "-"], { input: JSON.stringify({ apiVersion: "v1", kind: "Pod", metadata: { name: "hello", namespace: NS }, spec: { nodeName: "agent-29", automountServiceAccountToken: false, containers: [{ name: "c", image: "xs-kubelet.dev/hello:0.1" }] } }) });
      const before = await eventually("a log line through the old certificate", 30_000, async () => {
        const text = await logs();
        return /hello from agent-29/.test(text) && text;
      });
      const beforeWasOld = a.kubelet.rotators[1].rotations === 0;
      await eventually("agent-29's serving certificate renewed", 60_000, async () => a.kubelet.rotators[1].rotations === 1);
      const renewed = await servedCertificate(a);
      const after = await logs();
      await eventually("past the old serving certificate's expiry", 60_000, async () => Date.now() > a.notAfter + 2000);
      return { a, original, renewed, logs: { before, beforeWasOld, after, afterExpiry: await logs() } };
    });
    denied = agent("agent-30", {
      client: c30,
      serving: s30,
      onLog: (line) => {
        const m = /CSR (\S+) \(kubernetes\.io\/kubelet-serving\) created/.exec(line);
        if (!m) return;
        void (async () => {
          const csr = JSON.parse((await clusterRequest(admin, "GET", `/apis/certificates.k8s.io/v1/certificatesigningrequests/${m[1]}`)).text);
          csr.status = { conditions: [{ type: "Denied", status: "True", reason: "TestDenial", message: "denied by the rotation test" }] };
          await clusterRequest(admin, "PUT", `/apis/certificates.k8s.io/v1/certificatesigningrequests/${m[1]}/approval`, { body: csr });
        })();
      },
    }).then(async (a) => {
      const original = await servedCertificate(a);
      const [event] = await eventually("CertificateRequestDenied", 60_000, async () => {
        const list = await events("agent-30", "CertificateRequestDenied");
        return list.length ? list : undefined;
      });
      const stillServed = await servedCertificate(a);
      await eventually("LED Warning as expiry nears", 40_000, async () => a.kubelet.led.state === "warning");
      const [expiring] = await eventually("CredentialExpiring", 20_000, async () => {
        const list = await events("agent-30", "CredentialExpiring");
        return list.length ? list : undefined;
      });
      return { a, original, event, stillServed, expiring };
    });
  });

  after(async () => {
    for (const d of dogs) d.stop();
    await Promise.all(agents.map((a) => a.kubelet.stop()));
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
    await cp.kubectl(["delete", "namespace", NS, "--wait=false"]).catch(() => undefined);
  });

  it("renews its 45 s client certificate through a CSR kube-controller-manager approves, stays Ready with no missed renewal, and keeps working past the old one's expiry", async () => {
    const a = await plain;
    await eventually("agent-27 rotated", 60_000, async () => a.kubelet.rotators[0].rotations === 1);
    const csrName = a.kubelet.rotators[0].csrName;
    const csr = JSON.parse((await clusterRequest(admin, "GET", `/apis/certificates.k8s.io/v1/certificatesigningrequests/${csrName}`)).text);
    assert.equal(csr.spec.username, "system:node:agent-27", "asked for by the node itself");
    assert.equal(csr.spec.signerName, "kubernetes.io/kube-apiserver-client-kubelet");
    assert.equal(csr.status.conditions.find((c: any) => c.type === "Approved")?.reason, "AutoApproved", "approved by kube-controller-manager");
    const kept = readFileSync(join(a.stateDir, CLIENT_CERT_KEY));
    assert.ok(new X509Certificate(kept).verify(new X509Certificate(cp.caPem).publicKey), "the kept certificate is the cluster CA's");
    assert.equal(Buffer.from(csr.status.certificate, "base64").toString(), derToPem(kept, "CERTIFICATE"));
    // Past the old certificate's notAfter by more than a renewal interval: still renewing, still Ready.
    const dog = dogs[0];
    const pastExpiry = a.notAfter + 12_000;
    await eventually("a renewal after the old certificate expired", 60_000, async () => dog.renewTimes.some((t) => t > pastExpiry));
    assert.deepEqual(dog.readyNotTrue, [], "Ready stayed True");
    assert.ok(dog.worstGap <= 12_000, `the longest gap between renewals was ${dog.worstGap} ms (interval 10 s)`);
    assert.equal(a.kubelet.led.state, "healthy");
    assert.ok(a.logs.some((l) => /^info the client certificate renewed through CSR csr-\w+: in use now, valid until/.test(l)), a.logs.join("\n"));
    const rotated = await events("agent-27", "CertificateRotated");
    assert.equal(rotated.length, 1);
    console.log(`      agent-27: ${csrName} approved and in use; longest renewal gap ${dog.worstGap} ms over ${dog.renewTimes.length} renewals; signing took ${Math.round(a.kubelet.rotators[0].signMs)} ms (node:crypto)`);
  });

  it("a restart in the middle of a rotation: nothing half-kept, the next boot renews from the certificate that worked", async () => {
    const { first, second, keptAfterStop } = await restarted;
    assert.equal(first.kubelet.rotators[0].rotations, 0);
    assert.equal(keptAfterStop, false, "the interrupted rotation kept nothing");
    assert.ok(second.logs.every((l) => !/using the client certificate this board renewed/.test(l)), "the second boot started from the provisioned certificate");
    await eventually("agent-28 rotated after the restart", 60_000, async () => second.kubelet.rotators[0].rotations === 1);
    assert.ok(readFileSync(join(second.stateDir, CLIENT_CERT_KEY)).length > 0);
    const dog = dogs[1];
    await eventually("agent-28 renewing after the old certificate expired", 60_000, async () => dog.renewTimes.some((t) => t > second.notAfter + 12_000));
    assert.equal(second.kubelet.lease.failing, false);
    const node = JSON.parse((await clusterRequest(admin, "GET", "/api/v1/nodes/agent-28")).text);
    assert.equal(node.status.conditions.find((c: any) => c.type === "Ready").status, "True");
  });

  it("the serving certificate: renewed after `provision --approve-serving`, served from the next handshake, `kubectl logs` working across the switch and past the old one's expiry", async () => {
    const { a, original, renewed, logs } = await approved;
    assert.ok(logs.beforeWasOld, "the first kubectl logs went through the old certificate");
    assert.match(logs.before, /hello from agent-29/);
    const needed = await events("agent-29", "CertificateApprovalNeeded");
    assert.match(needed[0]?.message ?? "", /^CSR csr-\w+ asks for a new kubelet serving certificate \(kubernetes\.io\/kubelet-serving\); clusters do not approve these by themselves: kubectl certificate approve csr-\w+/);
    assert.notDeepEqual(renewed, original, "a new certificate from the next handshake");
    assert.deepEqual(renewed, readFileSync(join(a.stateDir, SERVING_CERT_KEY)));
    assert.ok(new X509Certificate(renewed).verify(new X509Certificate(cp.caPem).publicKey));
    assert.deepEqual((new X509Certificate(renewed).subjectAltName ?? "").split(", ").sort(), ["DNS:agent-29", "IP Address:127.0.0.1"]);
    const csr = JSON.parse((await clusterRequest(admin, "GET", `/apis/certificates.k8s.io/v1/certificatesigningrequests/${a.kubelet.rotators[1].csrName}`)).text);
    assert.equal(csr.status.conditions[0].reason, "XsKubeletProvision", "approved by provision --approve-serving");
    assert.match(logs.after, /hello from agent-29/, "kubectl logs after the switch");
    assert.match(logs.afterExpiry, /hello from agent-29/, "kubectl logs after the old certificate expired");
  });

  it("a denied serving CSR: a Warning Event naming it, the old certificate still served, the LED at Warning as expiry nears", async () => {
    const { a, original, event, stillServed, expiring } = await denied;
    const name = a.kubelet.rotators[1].csrName;
    assert.match(event.message, new RegExp(`^CSR ${name} was denied: TestDenial: denied by the rotation test; the kubelet API's serving certificate in use stays valid until \\S+; asking again at`));
    assert.ok(a.logs.some((l) => l.includes(`CSR ${name} was denied`)), "and a log line");
    assert.deepEqual(stillServed, original, "still the old certificate");
    assert.equal(event.type, "Warning");
    assert.match(expiring.message, /the kubelet API's serving certificate (expires|expired) at .*; the last renewal failed \(CSR csr-\w+ was denied/);
  });
});
