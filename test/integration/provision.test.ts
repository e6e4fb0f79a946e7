// `npm run provision` against the real control plane: the CSR path yields a working system:node
// identity (RSA, as the board's TLS needs), the token path a working least-privilege one, and the
// files the simulator and the board load have the shape the firmware reads.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { X509Certificate, createPrivateKey } from "node:crypto";
import { Kubelet } from "../../modules/kubelet/kubelet";
import { createNodeHost } from "../../hosts/node/host";
import { fromKubeconfig } from "../../tools/kube/connection";
import { adminApi, nodeClientCertificate, serviceAccountToken, writeOutputs } from "../../tools/provision/provision";
import { repoRoot } from "../../tools/controlplane/build";
import type { ControlPlane } from "../../tools/controlplane/launcher";
import { apiRequest, eventually } from "../support/api";
import { useCluster } from "../support/cluster";

describe("provisioning (npm run provision)", function () {
  this.timeout(90_000);
  let cp: ControlPlane;
  let out: string;
  before(async function () {
    cp = await useCluster(this);
    out = mkdtempSync(join(tmpdir(), "xs-kubelet-provision-"));
  });
  after(() => rmSync(out, { recursive: true, force: true }));

  async function joins(name: string, credentials: { token?: string; clientCertificate?: Uint8Array; clientKey?: Uint8Array }): Promise<void> {
    const k = new Kubelet({ nodeName: name, server: { host: cp.host, port: cp.port }, tls: { serverName: "localhost", ca: cp.caDer, verify: true, ...credentials }, token: credentials.token }, createNodeHost({ log: () => undefined }));
    k.start();
    try {
      await k.registered;
      await eventually(`${name} Ready`, 20_000, async () => {
        const n = JSON.parse(await cp.kubectl(["get", "node", name, "-o", "json"]));
        return n.status.conditions.find((c: any) => c.type === "Ready").status === "True";
      });
    } finally {
      await k.stop();
    }
  }

  it("--cert: an approved RSA certificate for system:node:<name> that the API server accepts as that node", async () => {
    const api = adminApi(fromKubeconfig(cp.kubeconfig));
    const issued = await nodeClientCertificate(api, "cert-board-1");
    const cert = new X509Certificate(Buffer.from(issued.certificate));
    assert.match(cert.subject, /CN=system:node:cert-board-1/);
    assert.match(cert.subject, /O=system:nodes/);
    assert.equal(createPrivateKey({ key: Buffer.from(issued.key), format: "der", type: "pkcs8" }).asymmetricKeyType, "rsa");
    assert.ok(cert.verify(new X509Certificate(cp.caPem).publicKey), "signed by the cluster CA");
    await joins("cert-board-1", { clientCertificate: issued.certificate, clientKey: issued.key });
    const csrs = await cp.kubectl(["get", "csr", issued.csrName, "-o", "jsonpath={.status.conditions[0].type}"]);
    assert.equal(csrs, "Approved");

    const files = writeOutputs({ node: "cert-board-1", host: "192.168.1.10", port: 6443, serverName: "192.168.1.10", ca: cp.caDer, certificate: issued }, out);
    assert.deepEqual(files.sort(), ["README.txt", "ca.der", "client-key.der", "client.der", "modpreferences.json", "nvs.csv"]);
    const prefs = JSON.parse(readFileSync(join(out, "modpreferences.json"), "utf8"))["xs-kubelet"];
    assert.equal(prefs.node, "cert-board-1");
    assert.equal(prefs.port, 6443);
    assert.deepEqual(Uint8Array.from(prefs.ca.buffer.split(",").map(Number)), cp.caDer);
    assert.equal(prefs.token, undefined);
    const csv = readFileSync(join(out, "nvs.csv"), "utf8").trim().split("\n");
    assert.deepEqual(csv.slice(0, 3), ["key,type,encoding,value", "xs-kubelet,namespace,,", "node,data,string,cert-board-1"]);
    assert.ok(csv.includes("clientKey,file,binary,client-key.der"));
    for (const row of csv.slice(2)) assert.ok(row.split(",")[0].length <= 15, `NVS key too long: ${row}`);
  });

  it("--token: a ServiceAccount bound to deploy/'s roles, and its token works for the node only", async () => {
    const api = adminApi(fromKubeconfig(cp.kubeconfig));
    const token = await serviceAccountToken(api, "token-board-1", 3600);
    await joins("token-board-1", { token });
    const other = await apiRequest(cp, token, "PATCH", "/api/v1/nodes/agent-2", { metadata: { labels: { x: "y" } } }, "application/merge-patch+json");
    assert.equal(other.status, 403);
  });

  it("says what is wrong with bad arguments", async () => {
    const run = (args: string[]) =>
      new Promise<{ code: number | null; stderr: string }>((resolve) => {
        execFile(process.execPath, ["--import", "tsx", join(repoRoot, "tools/provision/provision.ts"), ...args], (err, _stdout, stderr) => resolve({ code: err ? (err as any).code : 0, stderr }));
      });
    const r = await run(["--node", "Bad_Name"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /--kubeconfig is required; node name "Bad_Name" has upper-case letters/);
  });
});
