// Certificate rotation: the PKCS#10 request the core builds (checked by an independent parser and
// real signatures), and the rotation itself against the scripted API in virtual time — issued,
// denied, pending, interrupted, the serving certificate and an address change.
import "reflect-metadata";
import assert from "node:assert/strict";
import { generateKeyPairSync, webcrypto } from "node:crypto";
import * as x509 from "@peculiar/x509";
import { certificateFacts } from "../../modules/k8s/credentials";
import { canonicalIp, certificationRequest, certificationRequestInfo, signatureAlgorithmOf } from "../../modules/k8s/csr";
import { fromBase64, fromPem, toBase64, toPem } from "../../modules/k8s/der";
import { CLIENT_CERT_KEY, SERVING_CERT_KEY } from "../../modules/kubelet/kubelet";
import { PENDING_WARNING_MS } from "../../modules/kubelet/rotation";
import { createNodeHost } from "../../hosts/node/host";
import { scriptedNodeCertificate } from "../../hosts/virtual/scripted-api";
import { rig, type Rig } from "../../tools/scenarios/harness";
import { scenarios } from "../../tools/scenarios/index";

/** The scripted API's clock at the start of a run. */
const API_NOW = Date.UTC(2026, 10, 21, 12, 0, 0);
const MIN = 60_000;

function certRig(lifetimeMs: number, extra: Parameters<typeof rig>[0] = {}, policy: "issue" | "deny" | "pending" = "issue"): Rig & { store: Map<string, Uint8Array>; first: Uint8Array } {
  const store = (extra.store as Map<string, Uint8Array>) ?? new Map<string, Uint8Array>();
  const first = scriptedNodeCertificate("board-1", API_NOW - 1000, API_NOW - 1000 + lifetimeMs);
  const r = rig({ token: undefined, tls: { serverName: "192.0.2.1", verify: false, clientCertificate: first, clientKey: new Uint8Array([0x30, 0]) }, store, ...extra }, (p) => {
    p.api.csrPolicy = policy;
    p.api.csrLifetimeMs = lifetimeMs;
  });
  return Object.assign(r, { store, first });
}

const events = (r: Rig, reason: string) => [...r.api.coreEvents.values()].filter((e) => e.reason === reason);
const csrs = (r: Rig) => [...r.api.certificatesigningrequests.values()];

/** The longest gap between two successful renewals, from the Lease's renewTime history. */
function renewalGaps(r: Rig): number {
  const times = r.api.events("leases").map((e) => Date.parse(e.object.spec.renewTime));
  let worst = 0;
  for (let i = 1; i < times.length; i++) worst = Math.max(worst, times[i] - times[i - 1]);
  return worst;
}

describe("certificate rotation", () => {
  it("builds a PKCS#10 request an independent parser reads and whose signature verifies (RSA and EC P-256, SANs)", async () => {
    const host = createNodeHost({ log: () => undefined });
    for (const kind of ["rsa", "ec"] as const) {
      const { privateKey, publicKey } = kind === "rsa" ? generateKeyPairSync("rsa", { modulusLength: 2048 }) : generateKeyPairSync("ec", { namedCurve: "P-256" });
      const spki = new Uint8Array(publicKey.export({ type: "spki", format: "der" }));
      const algorithm = signatureAlgorithmOf(spki)!;
      assert.equal(algorithm, kind === "rsa" ? "rsa-pkcs1-sha256" : "ecdsa-p256-sha256");
      const info = certificationRequestInfo({ nodeName: "board-7", addresses: ["192.0.2.44", "2001:db8::7", "board-7.local"] }, spki);
      const der = certificationRequest(info, algorithm, await host.sign!(new Uint8Array(privateKey.export({ type: "pkcs8", format: "der" })), info));
      const csr = new x509.Pkcs10CertificateRequest(toPem(der, "CERTIFICATE REQUEST"));
      assert.equal(csr.subject, "O=system:nodes, CN=system:node:board-7");
      assert.equal(await csr.verify(webcrypto as any), true, `${kind} signature verifies`);
      const san = csr.getExtension("2.5.29.17") as x509.SubjectAlternativeNameExtension;
      assert.deepEqual(san.names.toJSON(), [
        { type: "ip", value: "192.0.2.44" },
        { type: "ip", value: "2001:db8::7" },
        { type: "dns", value: "board-7.local" },
      ]);
    }
    assert.equal(signatureAlgorithmOf(new Uint8Array([0x30, 0x00])), undefined);
    assert.equal(canonicalIp("2001:db8::7"), "2001:db8:0:0:0:0:0:7");
    assert.equal(canonicalIp("board"), undefined);
    assert.deepEqual(fromBase64(toBase64(Uint8Array.of(1, 2, 3, 4, 250))), Uint8Array.of(1, 2, 3, 4, 250));
    assert.equal(fromBase64("!!"), undefined);
    assert.equal(fromPem("no pem", "CERTIFICATE"), undefined);
  });

  it("reads a real certificate's key, subject and SANs", async () => {
    const alg = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };
    const keys = (await webcrypto.subtle.generateKey(alg, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
    const cert = await x509.X509CertificateGenerator.createSelfSigned(
      { serialNumber: "01", name: "O=system:nodes, CN=system:node:b", notBefore: new Date(API_NOW), notAfter: new Date(API_NOW + 3600_000), keys, signingAlgorithm: alg, extensions: [new x509.SubjectAlternativeNameExtension([{ type: "ip", value: "10.0.0.9" }, { type: "ip", value: "fe80::1" }, { type: "dns", value: "b.lan" }])] },
      webcrypto as any,
    );
    const facts = certificateFacts(new Uint8Array(cert.rawData))!;
    assert.equal(facts.commonName, "system:node:b");
    assert.deepEqual(facts.organizations, ["system:nodes"]);
    assert.deepEqual(facts.ipAddresses, ["10.0.0.9", "fe80:0:0:0:0:0:0:1"]);
    assert.deepEqual(facts.dnsNames, ["b.lan"]);
    assert.deepEqual(Buffer.from(facts.publicKeyInfo), Buffer.from(cert.publicKey.rawData));
  });

  it("renews the client certificate late in its life, moves to a fresh connection, keeps it only then — no missed renewal, working past the old one's expiry", async () => {
    const r = certRig(20 * MIN);
    r.kubelet.start();
    await r.time.advance(25 * MIN);
    const made = csrs(r);
    assert.equal(made.length, 1, "one CSR");
    assert.equal(made[0].spec.signerName, "kubernetes.io/kube-apiserver-client-kubelet");
    assert.deepEqual(made[0].spec.usages, ["digital signature", "key encipherment", "client auth"]);
    assert.equal(made[0].spec.username, "system:node:board-1", "asked for by the node itself");
    const asked = Date.parse(made[0].metadata.creationTimestamp) - (API_NOW - 1000);
    assert.ok(asked >= 0.7 * 20 * MIN && asked <= 0.9 * 20 * MIN + 15_000, `asked at ${asked / MIN} min of 20`);
    const kept = r.store.get(CLIENT_CERT_KEY);
    assert.ok(kept, "the new certificate is kept");
    assert.ok(certificateFacts(kept)!.validity.notAfter > certificateFacts(r.first)!.validity.notAfter);
    assert.equal(r.kubelet.rotators[0].rotations, 1);
    assert.equal(events(r, "CertificateRotated").length, 1);
    // The old certificate expired at 20 min: the scripted API refuses it since, yet renewals went on.
    assert.ok(renewalGaps(r) <= 11_000, `longest gap between renewals ${renewalGaps(r)} ms`);
    assert.equal(r.kubelet.lease.failing, false);
    assert.equal(r.kubelet.led.state, "healthy");
    assert.equal(events(r, "CredentialExpiring").length, 0);
    assert.ok(r.kubelet.podWatch.watching && r.kubelet.nodeWatch.watching, "the watches moved to the new connection");
    await r.kubelet.stop();
  });

  it("the same over HTTP/1.1: the probe on a fresh keep-alive connection, each watch's own connection moved too", async () => {
    const r = certRig(20 * MIN, { http: "http/1.1" });
    r.kubelet.start();
    await r.time.advance(25 * MIN);
    assert.equal(r.kubelet.rotators[0].rotations, 1);
    assert.equal(r.kubelet.api.protocol, "http/1.1");
    assert.ok(renewalGaps(r) <= 11_000, `longest gap between renewals ${renewalGaps(r)} ms`);
    assert.equal(r.kubelet.led.state, "healthy");
    assert.ok(r.kubelet.podWatch.watching, "the pod watch runs with the new certificate");
    await r.kubelet.stop();
  });

  it("the scenario the XS engine replays renews the certificate (test/xs compares it byte for byte)", async () => {
    const run = await scenarios["a client certificate renewed through the CSR API"]();
    assert.deepEqual(run.served, ["rotations 1, kept true"]);
    assert.ok(run.requests.some((r) => r.startsWith("POST /apis/certificates.k8s.io/v1/certificatesigningrequests ")));
    assert.ok(run.requests.some((r) => r.startsWith("POST /apis/authentication.k8s.io/v1/selfsubjectreviews ")));
  });

  it("a denied request: a Warning Event naming the CSR, the old certificate stays in use, the LED at Warning as expiry nears", async () => {
    const r = certRig(20 * MIN, {}, "deny");
    r.kubelet.start();
    await r.time.advance(18.5 * MIN);
    const denied = events(r, "CertificateRequestDenied");
    assert.equal(denied.length, 1);
    const name = csrs(r)[0].metadata.name;
    assert.match(denied[0].message, new RegExp(`^CSR ${name} was denied: ScriptedDenial: denied by the scripted approver; the client certificate in use stays valid until 2026-11-21T12:19:59Z; asking again at`));
    assert.equal(csrs(r).length, 1, "not asked again within the hour");
    assert.equal(r.store.get(CLIENT_CERT_KEY), undefined, "nothing kept");
    assert.equal(r.kubelet.led.state, "warning");
    const warning = events(r, "CredentialExpiring");
    assert.equal(warning.length, 1);
    assert.match(warning[0].message, /the last renewal failed \(CSR csr-\w+ was denied/);
    await r.kubelet.stop();
  });

  it("a request nobody approves: a Warning after a minute naming the binding, asked again after 15 minutes", async () => {
    const r = certRig(300 * MIN, {}, "pending");
    r.kubelet.start();
    while (csrs(r).length === 0) await r.time.advance(MIN);
    await r.time.advance(PENDING_WARNING_MS + 15_000);
    const pending = events(r, "CertificateApprovalPending");
    assert.equal(pending.length, 1);
    assert.match(pending[0].message, /selfnodeclient \(deploy\/node-cert-rotation\.yaml\)/);
    assert.equal(csrs(r).length, 1);
    await r.time.advance(16 * MIN);
    assert.ok(csrs(r).length >= 2, "asked again");
    assert.ok(events(r, "CertificateRotationFailed").some((e) => /nobody approved/.test(e.message)));
    await r.kubelet.stop();
  });

  it("a restart in the middle of a rotation starts from the certificate that worked and renews again", async () => {
    const store = new Map<string, Uint8Array>();
    const a = certRig(20 * MIN, { store }, "pending");
    a.kubelet.start();
    await a.time.advance(19 * MIN);
    assert.equal(csrs(a).length, 1, "a request is pending");
    await a.kubelet.stop();
    assert.equal(store.size, 0);
    // A fresh boot (a new scripted cluster, the same board): the provisioned certificate, then a rotation.
    const b = certRig(20 * MIN, { store });
    b.kubelet.start();
    await b.time.advance(20 * MIN);
    assert.equal(b.kubelet.rotators[0].rotations, 1);
    assert.ok(store.get(CLIENT_CERT_KEY));
    await b.kubelet.stop();
    // A third boot uses the kept certificate from the start: no new request.
    const c = certRig(20 * MIN, { store });
    c.kubelet.start();
    await c.time.advance(2 * MIN);
    assert.equal(csrs(c).length, 0);
    assert.ok(c.host.logs.some((l) => /using the client certificate this board renewed/.test(l)));
    assert.equal(c.kubelet.led.state, "healthy");
    await c.kubelet.stop();
  });

  it("the serving certificate: asked for early, an Event says how to approve it, served once issued; a new address asks again", async () => {
    const net = { address: "192.0.2.10" };
    const serving = scriptedNodeCertificate("board-1", API_NOW - 1000, API_NOW - 1000 + 60 * MIN, [[192, 0, 2, 10]]);
    const r = certRig(24 * 60 * MIN, { kubeletApi: { certificate: serving, key: new Uint8Array([0x30, 0]), port: 10250 } }, "pending");
    r.net.address = net.address;
    r.kubelet.start();
    await r.time.advance(43 * MIN);
    const [csr] = csrs(r);
    assert.equal(csr.spec.signerName, "kubernetes.io/kubelet-serving");
    assert.deepEqual(csr.spec.usages, ["digital signature", "key encipherment", "server auth"]);
    const needed = events(r, "CertificateApprovalNeeded");
    assert.equal(needed.length, 1);
    assert.match(needed[0].message, new RegExp(`kubectl certificate approve ${csr.metadata.name}, or npm run provision -- --approve-serving --node board-1`));
    assert.ok(r.api.issueCsr(csr.metadata.name));
    await r.time.advance(1000);
    const kept = r.store.get(SERVING_CERT_KEY)!;
    assert.deepEqual(certificateFacts(kept)!.ipAddresses, ["192.0.2.10"]);
    assert.equal(r.kubelet.rotators[1].rotations, 1);
    // DHCP hands out another address: the certificate no longer names the board.
    r.net.address = "192.0.2.77";
    await r.time.advance(15_000);
    const again = csrs(r).filter((c) => c.spec.signerName === "kubernetes.io/kubelet-serving");
    assert.equal(again.length, 2);
    assert.ok(r.host.logs.some((l) => /the board's address 192\.0\.2\.77 is not in it/.test(l)));
    assert.ok(r.api.issueCsr(again[1].metadata.name));
    await r.time.advance(1000);
    assert.deepEqual(certificateFacts(r.store.get(SERVING_CERT_KEY))!.ipAddresses, ["192.0.2.77"]);
    await r.kubelet.stop();
  });
});
