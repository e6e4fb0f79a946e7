// The Node host's listen: node:tls with a serving certificate made here (@peculiar/x509), client
// certificates requested but not required and reported only when they verify against clientCa, the
// bound port for port 0, maxConnections — and the kubelet API behind it, reached by a real node:https
// client with and without a client certificate.
import "reflect-metadata";
import assert from "node:assert/strict";
import { webcrypto } from "node:crypto";
import { request as httpsRequest, type RequestOptions } from "node:https";
import { connect as tlsConnect } from "node:tls";
import * as x509 from "@peculiar/x509";
import { createNodeHost, derToPem, type NodeListener } from "../../hosts/node/host";
import { KubeletAuth, type Review } from "../../modules/server/auth";
import { HttpServer, textResponse } from "../../modules/server/http-server";
import { createKubeletApi } from "../../modules/server/routes";

const alg = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };

interface Issued {
  der: Uint8Array;
  key: Uint8Array;
  cert: x509.X509Certificate;
  keys: webcrypto.CryptoKeyPair;
}

async function issue(subject: string, issuer: Issued | undefined, extensions: x509.Extension[]): Promise<Issued> {
  const keys = (await webcrypto.subtle.generateKey(alg, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.create(
    {
      serialNumber: Math.floor(Math.random() * 1e9).toString(16).padStart(8, "0"),
      subject,
      issuer: issuer ? issuer.cert.subject : subject,
      notBefore: new Date(Date.now() - 3600_000),
      notAfter: new Date(Date.now() + 24 * 3600_000),
      signingKey: issuer ? issuer.keys.privateKey : keys.privateKey,
      publicKey: keys.publicKey,
      signingAlgorithm: alg,
      extensions,
    },
    webcrypto as any,
  );
  return { der: new Uint8Array(cert.rawData), key: new Uint8Array(await webcrypto.subtle.exportKey("pkcs8", keys.privateKey)), cert, keys };
}

const caExtensions = () => [new x509.BasicConstraintsExtension(true, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.digitalSignature, true)];
const clientExtensions = () => [new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth])];

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function get(port: number, path: string, options: RequestOptions = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: "127.0.0.1", port, path, method: "GET", agent: false, ...options }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("the Node host's kubelet API listener", function () {
  this.timeout(20_000);
  let ca: Issued;
  let serving: Issued;
  let apiserver: Issued;
  let stranger: Issued;
  before(async () => {
    ca = await issue("CN=test-cluster-ca", undefined, caExtensions());
    const otherCa = await issue("CN=other-ca", undefined, caExtensions());
    serving = await issue("CN=system:node:board-1, O=system:nodes", ca, [
      new x509.SubjectAlternativeNameExtension([{ type: "ip", value: "127.0.0.1" }]),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
    ]);
    apiserver = await issue("CN=system:apiserver, O=system:masters, O=kube-apiserver", ca, clientExtensions());
    stranger = await issue("CN=mallory, O=system:masters", otherCa, clientExtensions());
  });

  const started: HttpServer[] = [];
  afterEach(() => {
    for (const s of started.splice(0)) s.close();
  });

  async function start(handler: ConstructorParameters<typeof HttpServer>[1], maxConnections?: number) {
    const host = createNodeHost({ log: () => {} });
    const server = new HttpServer(host, handler, { maxConnections });
    started.push(server);
    const listener = server.listen({ port: 0, tls: { certificate: serving.der, key: serving.key, clientCa: ca.der } }) as NodeListener;
    const port = await listener.ready;
    assert.ok(port > 0);
    assert.equal(listener.port, port);
    return port;
  }

  const caPem = () => derToPem(ca.der, "CERTIFICATE");
  const whoami = (r: { peer: { clientCertificate?: unknown; address: string } }) => textResponse(200, JSON.stringify(r.peer), false);

  it("serves HTTPS on the bound port; no client certificate → none in PeerInfo", async () => {
    const port = await start(whoami);
    const r = await get(port, "/", { ca: caPem() });
    assert.equal(r.status, 200);
    assert.equal(r.headers["content-length"], String(r.body.length));
    const peer = JSON.parse(r.body);
    assert.equal(peer.address, "127.0.0.1");
    assert.equal(peer.clientCertificate, undefined);
  });

  it("a client certificate the cluster CA signed → its CN and every O", async () => {
    const port = await start(whoami);
    const r = await get(port, "/", { ca: caPem(), cert: derToPem(apiserver.der, "CERTIFICATE"), key: derToPem(apiserver.key, "PRIVATE KEY") });
    assert.deepEqual(JSON.parse(r.body).clientCertificate, { commonName: "system:apiserver", organizations: ["system:masters", "kube-apiserver"] });
  });

  it("a client certificate another CA signed is not believed (the handshake still succeeds)", async () => {
    const port = await start(whoami);
    const r = await get(port, "/", { ca: caPem(), cert: derToPem(stranger.der, "CERTIFICATE"), key: derToPem(stranger.key, "PRIVATE KEY") });
    assert.equal(r.status, 200);
    assert.equal(JSON.parse(r.body).clientCertificate, undefined);
  });

  it("refuses connections beyond maxConnections at accept", async () => {
    const port = await start(whoami, 1);
    const open = () =>
      new Promise<{ ok: boolean; close: () => void }>((resolve) => {
        const s = tlsConnect({ host: "127.0.0.1", port, ca: caPem(), servername: undefined });
        s.once("secureConnect", () => resolve({ ok: true, close: () => s.destroy() }));
        s.once("error", () => resolve({ ok: false, close: () => s.destroy() }));
        s.once("close", () => resolve({ ok: false, close: () => {} }));
      });
    const first = await open();
    assert.equal(first.ok, true);
    const second = await open();
    assert.equal(second.ok, false);
    first.close();
    second.close();
  });

  it("the kubelet API end to end: /healthz anonymous, 401 without credentials, the API server's certificate allowed", async () => {
    const review: Review = async (kind, body: any) => ({ status: 201, json: { kind, status: { allowed: body.spec.user === "system:apiserver" } } });
    const host = createNodeHost({ log: () => {} });
    const auth = new KubeletAuth({ nodeName: "board-1", review, now: () => host.monotonic() });
    const server = new HttpServer(host, createKubeletApi({ pods: () => [] }, { auth }));
    started.push(server);
    const listener = server.listen({ port: 0, tls: { certificate: serving.der, key: serving.key, clientCa: ca.der } }) as NodeListener;
    const port = await listener.ready;
    assert.deepEqual(await get(port, "/healthz", { ca: caPem() }).then((r) => [r.status, r.body]), [200, "ok"]);
    assert.deepEqual(await get(port, "/pods", { ca: caPem() }).then((r) => [r.status, r.body]), [401, "Unauthorized"]);
    const cert = { cert: derToPem(apiserver.der, "CERTIFICATE"), key: derToPem(apiserver.key, "PRIVATE KEY") };
    const pods = await get(port, "/pods", { ca: caPem(), ...cert });
    assert.equal(pods.status, 200);
    assert.equal(pods.body, '{"kind":"PodList","apiVersion":"v1","metadata":{},"items":[]}');
    const forbidden = await get(port, "/pods", { ca: caPem(), cert: derToPem(stranger.der, "CERTIFICATE"), key: derToPem(stranger.key, "PRIVATE KEY") });
    assert.equal(forbidden.status, 401, "an unverified certificate authenticates no one");
  });
});
