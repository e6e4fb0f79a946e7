// Credential expiry: read from the certificate's DER and the token's claims, judged by the wall
// clock anchored from the API server, exported on /metrics, warned about (Event, LED) when close.
import "reflect-metadata";
import assert from "node:assert/strict";
import { webcrypto } from "node:crypto";
import * as x509 from "@peculiar/x509";
import { certificateValidity, expiringSoon, tokenValidity } from "../../modules/k8s/credentials";
import { rig } from "../../tools/scenarios/harness";

const b64url = (s: string) => Buffer.from(s).toString("base64url");
const jwt = (claims: object) => `${b64url('{"alg":"RS256"}')}.${b64url(JSON.stringify(claims))}.c2ln`;
/** The scripted API's clock at the start of a run. */
const API_NOW = Date.UTC(2026, 10, 21, 12, 0, 0);

describe("credentials", () => {
  it("reads a certificate's validity from its DER (UTCTime and GeneralizedTime) and a JWT's exp/iat", async () => {
    const alg = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };
    const keys = (await webcrypto.subtle.generateKey(alg, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
    for (const [from, to] of [[Date.UTC(2026, 0, 1), Date.UTC(2027, 0, 1)], [Date.UTC(2026, 0, 1), Date.UTC(2051, 5, 1)]]) {
      const cert = await x509.X509CertificateGenerator.createSelfSigned({ serialNumber: "01", name: "CN=t", notBefore: new Date(from), notAfter: new Date(to), keys, signingAlgorithm: alg }, webcrypto as any);
      assert.deepEqual(certificateValidity(new Uint8Array(cert.rawData)), { notBefore: from, notAfter: to });
    }
    assert.equal(certificateValidity(new Uint8Array([0x30, 0x03, 0x02, 0x01])), undefined);
    assert.deepEqual(tokenValidity(jwt({ iat: 1000, exp: 2000 })), { notBefore: 1_000_000, notAfter: 2_000_000 });
    assert.equal(tokenValidity("static-token"), undefined);
    assert.equal(tokenValidity("a.!!!.c"), undefined);
    assert.equal(expiringSoon({ notBefore: 0, notAfter: 100 }, 79), false);
    assert.equal(expiringSoon({ notBefore: 0, notAfter: 100 }, 80), true);
  });

  it("a token close to expiry: the metric, one CredentialExpiring Event, the LED at Warning; a fresh one: none", async () => {
    const soon = rig({ token: jwt({ iat: (API_NOW - 9 * 3600_000) / 1000, exp: (API_NOW + 3600_000) / 1000 }), kubeletApi: { certificate: new Uint8Array([0x30, 0]), key: new Uint8Array([0x30, 0]), port: 10250 } });
    soon.kubelet.start();
    await soon.time.advance(35_000);
    assert.equal(soon.kubelet.led.state, "warning");
    const events = [...soon.api.coreEvents.values()].filter((e) => e.reason === "CredentialExpiring");
    assert.equal(events.length, 1);
    assert.match(events[0].message, /^the ServiceAccount token expires at 2026-11-21T13:00:00Z \(judged by the wall clock anchored from the API server's Date header\)/);
    const metrics = soon.kubelet.apiServer!.render();
    const seconds = Number(/xs_kubelet_credential_expiry_seconds\{credential="token"\} (-?\d+)/.exec(metrics)?.[1]);
    assert.ok(seconds > 3500 && seconds <= 3600 - 30, `${seconds} s left`);
    await soon.kubelet.stop();

    const fresh = rig({ token: jwt({ iat: API_NOW / 1000, exp: (API_NOW + 365 * 86400_000) / 1000 }) });
    fresh.kubelet.start();
    await fresh.time.advance(35_000);
    assert.equal(fresh.kubelet.led.state, "healthy");
    assert.equal([...fresh.api.coreEvents.values()].filter((e) => e.reason === "CredentialExpiring").length, 0);
    await fresh.kubelet.stop();
  });
});
