// Hostile TLS and credentials (issue 13, "Hostile input" and "Security"), on the Node host against the
// real control plane: the agent given another CA, a server name the API server's certificate does not
// carry, a client certificate from an untrusted CA, an expired one, a ServiceAccount token revoked
// while the agent runs, and a certificate identity whose RBAC was removed. Each: a clear line, no
// crash, the retry policy its failure calls for, no Node made on a connection that failed closed.
// A refused server certificate in virtual time (its backoff over minutes, the recovery): test/unit/certificate.test.ts.
// Answer-level hostile input (captive portals, bad JSON, Dates …) is test/unit/hostile.test.ts.
//
// Covered elsewhere, not repeated here: a token the API server does not know at boot
// (test/integration/kubelet.test.ts, "a bad token"), an impersonating certificate from another CA
// appearing while the agent runs (test/integration/h2-faults.test.ts).
//
// "A revoked client certificate": kube-apiserver checks no CRL and no OCSP — a client certificate
// signed by its client CA authenticates until its notAfter, whatever happened to the key. What can
// take a certificate's power away is (a) its expiry, (b) the CA: one the API server does not trust
// authenticates no one, and (c) authorization: the identity it names losing its RBAC bindings. The
// Node authorizer grants system:node:<name> its rights by name, with nothing to remove, so (c) is
// shown with a certificate naming a ServiceAccount user whose bindings (deploy/node-rbac.yaml) are
// deleted — that is what revoking a certificate's rights means in Kubernetes.
import "reflect-metadata";
import assert from "node:assert/strict";
import { createPrivateKey, generateKeyPairSync, randomBytes, webcrypto } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as x509 from "@peculiar/x509";
import { createNodeHost } from "../../hosts/node/host";
import { Kubelet, type KubeletOptions } from "../../modules/kubelet/kubelet";
import { RETRY } from "../../modules/defaults";
import type { ControlPlane } from "../../tools/controlplane/launcher";
import { eventually } from "../support/api";
import { useCluster } from "../support/cluster";
import { registerSecret } from "../support/secrets";

x509.cryptoProvider.set(webcrypto as any);

const LEASES = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases";
const ecdsa = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };
const rsa = { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" };
type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

interface Agent {
  name: string;
  kubelet: Kubelet;
  logs: string[];
  /** Wall-clock ms of each request the agent made, by "METHOD path" (the path without its query). */
  calls: { at: number; what: string }[];
}

/** A self-signed P-256 CA that is not the cluster's (its key and certificate). */
async function otherCa(): Promise<{ cert: x509.X509Certificate; keys: CryptoKeyPair }> {
  const keys = (await webcrypto.subtle.generateKey(ecdsa, true, ["sign", "verify"])) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: "01",
    name: "CN=not-the-cluster-ca",
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 3600_000),
    keys,
    signingAlgorithm: ecdsa,
    extensions: [new x509.BasicConstraintsExtension(true, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true)],
  });
  return { cert, keys };
}

/** A client certificate (RSA-2048, client auth) for `subject`, signed by `issuer`. */
async function clientCertificate(subject: string, issuer: { name: x509.Name | string; key: CryptoKey }): Promise<{ certificate: Uint8Array; key: Uint8Array }> {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const pub = await webcrypto.subtle.importKey("spki", publicKey.export({ type: "spki", format: "der" }), rsa, true, ["verify"]);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomBytes(8).toString("hex").replace(/^[89a-f]/, "1"),
    subject,
    issuer: issuer.name,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 3600_000),
    signingKey: issuer.key,
    publicKey: pub,
    signingAlgorithm: ecdsa,
    extensions: [
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
      new x509.BasicConstraintsExtension(false, undefined, true),
    ],
  });
  const key = new Uint8Array(privateKey.export({ type: "pkcs8", format: "der" }));
  registerSecret(key, `the key of the test certificate for ${subject}`);
  return { certificate: new Uint8Array(cert.rawData), key };
}

/**
 * The gaps between attempts follow the policy — initial × 2^n up to the cap — within its jitter and a
 * generous allowance for a shared machine's timers and the request itself.
 */
function assertBackoff(times: number[], policy: { initialMs: number; maxMs: number }, what: string): void {
  const gaps = times.slice(1).map((t, i) => t - times[i]);
  assert.ok(gaps.length >= 2, `${what}: ${gaps.length} retries to judge`);
  gaps.forEach((gap, n) => {
    const base = Math.min(policy.maxMs, policy.initialMs * 2 ** n);
    assert.ok(gap >= base * 0.85 && gap <= base * 1.15 + 3000, `${what}: retry ${n + 1} after ${gap} ms, the policy says ${base} ms ± 10 % (gaps: ${gaps.join(", ")} ms)`);
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("hostile TLS and credentials against the real control plane", function () {
  this.timeout(150_000);
  let cp: ControlPlane;
  const running: Agent[] = [];

  function start(name: string, options: Partial<KubeletOptions>): Agent {
    const logs: string[] = [];
    const host = createNodeHost({ log: (level, message) => void logs.push(`${level}: ${message}`), showLed: () => undefined });
    const kubelet = new Kubelet({ nodeName: name, server: { host: cp.host, port: cp.port }, tls: { serverName: "localhost", ca: cp.caDer, verify: true }, settings: false, ...options }, host);
    const a: Agent = { name, kubelet, logs, calls: [] };
    // Only watched, not changed: when each request left, to measure the backoff in real time.
    const call = kubelet.api.call.bind(kubelet.api);
    kubelet.api.call = (method, path, opts) => {
      a.calls.push({ at: Date.now(), what: `${method} ${path.split("?")[0]}` });
      return call(method, path, opts);
    };
    running.push(a);
    kubelet.start();
    return a;
  }
  const timesOf = (a: Agent, what: string) => a.calls.filter((c) => c.what === what).map((c) => c.at);
  const nodeExists = (name: string) => cp.kubectl(["get", "node", name, "-o", "name"]).then(() => true, () => false);

  before(async function () {
    cp = await useCluster(this);
  });
  afterEach(async () => {
    for (const a of running.splice(0)) await a.kubelet.stop();
  });

  it("another CA, or a server name the certificate lacks: fails closed — one line naming the certificate problem, Warning, the certificate policy, no Node, no crash", async function () {
    this.timeout(90_000);
    const { cert } = await otherCa();
    // Valid tokens both: had TLS let them through, these agents would have registered.
    const [caToken, nameToken] = await Promise.all([cp.serviceAccountToken("sa-hostile-ca", 600), cp.serviceAccountToken("sa-hostile-name", 600)]);
    const wrongCa = start("sa-hostile-ca", { token: caToken, tls: { serverName: "localhost", ca: new Uint8Array(cert.rawData), verify: true } });
    const wrongName = start("sa-hostile-name", { token: nameToken, tls: { serverName: "api.wrong.example", ca: cp.caDer, verify: true } });
    await sleep(25_000);
    for (const [a, problem] of [
      [wrongCa, /was rejected: (self[- ]signed certificate in certificate chain \(SELF_SIGNED_CERT_IN_CHAIN\)|unable to get local issuer certificate \(UNABLE_TO_GET_ISSUER_CERT_LOCALLY\)|unable to verify the first certificate \(UNABLE_TO_VERIFY_LEAF_SIGNATURE\)); /],
      [wrongName, /was rejected: Hostname\/IP does not match certificate's altnames: Host: api\.wrong\.example\. is not in the cert's altnames: .*DNS:localhost.* \(ERR_TLS_CERT_ALTNAME_INVALID\); /],
    ] as const) {
      const failed = a.logs.filter((l) => /^(warn|error):/.test(l));
      assert.equal(failed.length, 1, `${a.name}: one line, not one per attempt:\n${a.logs.join("\n")}`);
      // node:tls's verdict, marked as a refused certificate by the Node host (CERTIFICATE_REJECTED),
      // with what the server presented and what to check.
      assert.match(failed[0], /^error: reading the clock from GET \/version failed: the API server's certificate \(127\.0\.0\.1:\d+\) was rejected: /);
      assert.match(failed[0], problem);
      assert.match(failed[0], /; the server presented CN=[^,]+, issued by .+, valid .+ to .+ — check the CA bundle and the server name in the config$/);
      assert.equal(a.kubelet.phase, "anchoring", "never past the first request");
      assert.equal(await nodeExists(a.name), false, `${a.name}: no Node`);
      // The network works; the peer is not who the agent trusts: Warning, and the certificate policy
      // (5 s doubling to 5 min: tries at 0, 5 and 15 s), one handshake each.
      assert.equal(a.kubelet.led.state, "warning");
      assertBackoff(timesOf(a, "GET /version"), RETRY.certificate, `${a.name}: GET /version`);
      assert.equal(a.kubelet.api.stats.connects, 3, `${a.name}: handshakes in 25 s`);
    }
  });

  it("client certificates from an untrusted CA and past their notAfter: 401 at the first request, one line, the auth policy, Warning", async function () {
    this.timeout(90_000);
    const ca = await otherCa();
    const untrusted = await clientCertificate("O=system:nodes, CN=system:node:hostile-cert-1", { name: ca.cert.subjectName, key: ca.keys.privateKey });
    const expired = await cp.mintNodeCertificate("hostile-cert-2", { lifetimeSeconds: 2 });
    await sleep(3000); // past its notAfter
    const agents = [
      start("hostile-cert-1", { tls: { serverName: "localhost", ca: cp.caDer, verify: true, clientCertificate: untrusted.certificate, clientKey: untrusted.key } }),
      start("hostile-cert-2", { tls: { serverName: "localhost", ca: cp.caDer, verify: true, clientCertificate: expired.certificate, clientKey: expired.key } }),
    ];
    await sleep(35_000);
    for (const a of agents) {
      // kube-apiserver asks for a client certificate but does not require one: the handshake succeeds,
      // and its authenticator refuses the certificate (untrusted, or expired) on every request.
      const errors = a.logs.filter((l) => l.startsWith("error:"));
      assert.deepEqual(errors, ["error: reading the clock from GET /version failed: GET /version: 401 Unauthorized: Unauthorized — the token or client certificate is not accepted; check the credentials"], a.logs.join("\n"));
      assert.equal(a.kubelet.led.state, "warning");
      assertBackoff(timesOf(a, "GET /version"), RETRY.auth, `${a.name}: GET /version`);
      assert.equal(await nodeExists(a.name), false);
    }
  });

  it("a ServiceAccount token revoked while running (its ServiceAccount deleted): 401, one line per step, every loop on the auth policy, Warning, no crash", async function () {
    this.timeout(120_000);
    const name = "sa-hostile-revoked";
    const token = await cp.serviceAccountToken(name, 600);
    const a = start(name, { token });
    await a.kubelet.registered;
    await eventually("a renewal", 15_000, async () => a.kubelet.lease.renewals >= 1);
    const revokedAt = Date.now();
    await cp.kubectl(["delete", "serviceaccount", name, "-n", "xs-kubelet"]);
    await eventually("the Lease refused", 30_000, async () => a.kubelet.lease.failing, 200);
    await sleep(40_000);
    const errors = a.logs.filter((l) => l.startsWith("error:"));
    const lease = errors.filter((l) => l.startsWith("error: renewing the Lease failed"));
    assert.deepEqual(lease, [`error: renewing the Lease failed: PATCH ${LEASES}/${name}: 401 Unauthorized: Unauthorized — the token or client certificate is not accepted; check the credentials`], a.logs.join("\n"));
    assert.equal(new Set(errors).size, errors.length, `one line per step, not one per attempt:\n${errors.join("\n")}`);
    assert.ok(errors.length <= 5, `the Lease, the status, the Node and pod watches, the events, at most:\n${errors.join("\n")}`);
    assertBackoff(timesOf(a, `PATCH ${LEASES}/${name}`).filter((t) => t > revokedAt), RETRY.auth, "renewals after the revocation");
    assert.equal(a.kubelet.led.state, "warning");
    assert.equal(a.kubelet.phase, "running", "still running, retrying: it did not crash or stop");
  });

  it("a client certificate whose identity lost its RBAC bindings (what revoking a certificate can mean here): 403, one line, the auth policy, Warning", async function () {
    this.timeout(120_000);
    const name = "sa-hostile-rbac";
    await cp.serviceAccountToken(name, 600); // the ServiceAccount and its bindings, from deploy/node-rbac.yaml
    const pki = join(cp.dir, "pki");
    const caKey = await webcrypto.subtle.importKey("pkcs8", createPrivateKey(readFileSync(join(pki, "ca.key"), "utf8")).export({ type: "pkcs8", format: "der" }), ecdsa, false, ["sign"]);
    // Signed by the cluster CA: a valid certificate naming the ServiceAccount's user, so its RBAC applies.
    const cert = await clientCertificate(`O=system:serviceaccounts, CN=system:serviceaccount:xs-kubelet:${name}`, { name: new x509.X509Certificate(readFileSync(join(pki, "ca.crt"), "utf8")).subjectName, key: caKey });
    const a = start(name, { tls: { serverName: "localhost", ca: cp.caDer, verify: true, clientCertificate: cert.certificate, clientKey: cert.key } });
    await a.kubelet.registered;
    await eventually("a renewal", 15_000, async () => a.kubelet.lease.renewals >= 1);
    const removedAt = Date.now();
    await cp.kubectl(["delete", "rolebinding", `xs-kubelet:node:${name}`, "-n", "kube-node-lease"]);
    await cp.kubectl(["delete", "clusterrolebinding", `xs-kubelet:node:${name}`]);
    await eventually("the Lease refused", 30_000, async () => a.kubelet.lease.failing, 200);
    await sleep(40_000);
    const lease = a.logs.filter((l) => l.startsWith("error: renewing the Lease failed"));
    assert.equal(lease.length, 1, a.logs.join("\n"));
    assert.match(lease[0], new RegExp(`^error: renewing the Lease failed: PATCH ${LEASES}/${name}: 403 Forbidden: leases\\.coordination\\.k8s\\.io "${name}" is forbidden: User "system:serviceaccount:xs-kubelet:${name}" cannot patch resource "leases"`));
    assertBackoff(timesOf(a, `PATCH ${LEASES}/${name}`).filter((t) => t > removedAt), RETRY.auth, "renewals after the bindings went");
    assert.equal(a.kubelet.led.state, "warning");
    assert.equal(a.kubelet.phase, "running");
  });
});
