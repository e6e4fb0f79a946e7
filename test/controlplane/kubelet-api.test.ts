// The cluster's side of the kubelet API, against the real control plane: kubelet serving certificates
// from the CSR API, kube-apiserver reaching a kubelet the way kubeadm and k3s clusters do (verifying
// its certificate against the cluster CA, with a system:masters client certificate, InternalIP
// first), and metrics-server behind the aggregation layer scraping /metrics/resource for
// `kubectl top node`. The kubelet here is a small HTTPS stand-in (test/support/fake-kubelet.ts);
// the agent's own kubelet API server is tested elsewhere.
import "reflect-metadata";
import assert from "node:assert/strict";
import { webcrypto, X509Certificate, createPrivateKey } from "node:crypto";
import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as x509 from "@peculiar/x509";
import { repoRoot } from "../../tools/controlplane/build";
import { endpointAddress, type ControlPlane, type MetricsServer } from "../../tools/controlplane/launcher";
import { eventually } from "../support/api";
import { useCluster } from "../support/cluster";
import { registerFakeNode, startFakeKubelet, type FakeKubelet } from "../support/fake-kubelet";
import { promparse } from "../support/promparse";

const deleteNode = (cp: ControlPlane, name: string) => cp.kubectl(["delete", "node", name, "--ignore-not-found", "--wait=false"]).catch(() => undefined);

describe("the cluster towards kubelets", function () {
  this.timeout(120_000);
  let cp: ControlPlane;
  before(async function () {
    cp = await useCluster(this);
  });

  describe("kubelet serving certificates (nodeServingCertificate, signer kubernetes.io/kubelet-serving)", () => {
    it("are RSA-2048 for system:node:<name> in system:nodes, with IP and DNS SANs, server auth only, signed by the cluster CA after an approval", async () => {
      const issued = await cp.nodeServingCertificate("serving-cert-1", ["127.0.0.1", "serving-cert-1", "serving-cert-1.example.test", "10.0.0.7"]);
      const cert = new X509Certificate(Buffer.from(issued.certificate));
      assert.match(cert.subject, /^CN=system:node:serving-cert-1$/m);
      assert.match(cert.subject, /^O=system:nodes$/m);
      assert.ok(cert.verify(new X509Certificate(cp.caPem).publicKey), "signed by the cluster CA");
      assert.equal(cert.issuer, new X509Certificate(cp.caPem).subject);
      const sans = (cert.subjectAltName ?? "").split(", ").sort();
      assert.deepEqual(sans, ["DNS:serving-cert-1", "DNS:serving-cert-1.example.test", "IP Address:10.0.0.7", "IP Address:127.0.0.1"]);
      assert.deepEqual(cert.keyUsage, ["1.3.6.1.5.5.7.3.1"], "extended key usage: server auth only");
      const parsed = new x509.X509Certificate(issued.certificate);
      const ku = parsed.getExtension(x509.KeyUsagesExtension);
      assert.ok(ku, "has a key usage extension");
      assert.equal(ku.usages, x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment);
      const key = createPrivateKey({ key: Buffer.from(issued.key), format: "der", type: "pkcs8" });
      assert.equal(key.asymmetricKeyType, "rsa");
      assert.equal(key.asymmetricKeyDetails?.modulusLength, 2048);
      assert.ok(cert.checkPrivateKey(key), "the key belongs to the certificate");

      const csr = JSON.parse(await cp.kubectl(["get", "csr", issued.csrName, "-o", "json"]));
      assert.equal(csr.spec.signerName, "kubernetes.io/kubelet-serving");
      assert.deepEqual([...csr.spec.usages].sort(), ["digital signature", "key encipherment", "server auth"]);
      assert.equal(csr.status.conditions.find((c: any) => c.type === "Approved")?.status, "True");
    });

    it("npm run provision -- --serving writes serving.der, serving-key.der, the simulator's servingCert/servingKey and the NVS rows", async function () {
      this.timeout(60_000);
      const out = mkdtempSync(join(tmpdir(), "xs-kubelet-serving-"));
      try {
        const cli = (args: string[]) =>
          new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
            execFile(process.execPath, ["--import", "tsx", join(repoRoot, "tools/provision/provision.ts"), ...args], (err, stdout, stderr) => resolve({ code: err ? Number((err as any).code) : 0, stdout, stderr }));
          });
        const bad = await cli(["--kubeconfig", cp.kubeconfig, "--node", "serving-cli-1", "--serving"]);
        assert.equal(bad.code, 1);
        assert.match(bad.stderr, /--serving needs at least one --serving-address/);
        const r = await cli(["--kubeconfig", cp.kubeconfig, "--node", "serving-cli-1", "--serving", "--serving-address", "192.168.1.50", "--serving-address", "serving-cli-1.lan", "--out", out]);
        assert.equal(r.code, 0, r.stderr);
        assert.deepEqual(readdirSync(out).sort(), ["README.txt", "ca.der", "client-key.der", "client.der", "modpreferences.json", "nvs.csv", "serving-key.der", "serving.der"]);
        const serving = new X509Certificate(readFileSync(join(out, "serving.der")));
        assert.match(serving.subject, /^CN=system:node:serving-cli-1$/m);
        assert.deepEqual((serving.subjectAltName ?? "").split(", ").sort(), ["DNS:serving-cli-1.lan", "IP Address:192.168.1.50"]);
        assert.ok(serving.checkPrivateKey(createPrivateKey({ key: readFileSync(join(out, "serving-key.der")), format: "der", type: "pkcs8" })));
        const prefs = JSON.parse(readFileSync(join(out, "modpreferences.json"), "utf8"))["xs-kubelet"];
        assert.deepEqual(Uint8Array.from(prefs.servingCert.buffer.split(",").map(Number)), new Uint8Array(serving.raw));
        assert.deepEqual(Uint8Array.from(prefs.servingKey.buffer.split(",").map(Number)), new Uint8Array(readFileSync(join(out, "serving-key.der"))));
        const csv = readFileSync(join(out, "nvs.csv"), "utf8").trim().split("\n");
        assert.ok(csv.includes("servingCert,file,binary,serving.der"), csv.join("\n"));
        assert.ok(csv.includes("servingKey,file,binary,serving-key.der"), csv.join("\n"));
        for (const key of Object.keys(prefs)) assert.ok(key.length <= 15, `preference key too long for NVS: ${key}`);
      } finally {
        rmSync(out, { recursive: true, force: true });
      }
    });

    it("are not requested for a name that is no valid node name, nor without an address", async () => {
      await assert.rejects(cp.nodeServingCertificate("Not_A_Node", ["127.0.0.1"]), /upper-case|DNS-1123|invalid/i);
      await assert.rejects(cp.nodeServingCertificate("no-addresses-1", []), /at least one address/);
    });
  });

  describe("kube-apiserver → kubelet", () => {
    const fakes: FakeKubelet[] = [];
    const nodes: string[] = [];
    after(async () => {
      for (const f of fakes) await f.close();
      for (const n of nodes) await deleteNode(cp, n);
      await cp.kubectl(["delete", "pod", "kubelet-api-logs-1", "-n", "default", "--ignore-not-found", "--grace-period=0", "--force"]).catch(() => undefined);
    });

    async function fakeWithServingCertificate(name: string, host: string) {
      const serving = await cp.nodeServingCertificate(name, [host, name]);
      const fake = await startFakeKubelet({
        certificate: serving.certificate,
        key: serving.key,
        clientCaPem: cp.caPem,
        host,
        handler: (req, res) => {
          if (req.url === "/healthz") return void res.writeHead(200, { "Content-Type": "text/plain" }).end("ok");
          if (req.url?.startsWith("/containerLogs/default/kubelet-api-logs-1/c?") || req.url === "/containerLogs/default/kubelet-api-logs-1/c") {
            return void res.writeHead(200, { "Content-Type": "text/plain" }).end("hello from the fake kubelet\n");
          }
          res.writeHead(404).end();
        },
      });
      fakes.push(fake);
      nodes.push(name);
      await registerFakeNode(cp, name, fake.port, { internalIP: host });
      return fake;
    }

    function assertApiServerClient(fake: FakeKubelet, path: string): void {
      const call = fake.calls.find((c) => c.path.startsWith(path));
      assert.ok(call, `the request for ${path} reached the kubelet`);
      assert.ok(call.clientCertificate, "kube-apiserver presented a client certificate");
      assert.match(call.clientCertificate.subject, /CN=kube-apiserver-kubelet-client/);
      assert.match(call.clientCertificate.subject, /O=system:masters/);
      assert.equal(call.clientCertificate.authorized, true, "signed by the cluster CA");
    }

    it("kubectl logs: verifies the kubelet's serving certificate against the cluster CA, presents kube-apiserver-kubelet-client (system:masters), dials the InternalIP (127.0.0.1), not the Hostname", async () => {
      const fake = await fakeWithServingCertificate("kubelet-api-logs-1", "127.0.0.1");
      await cp.kubectl(["create", "-f", "-"], {
        input: JSON.stringify({
          apiVersion: "v1",
          kind: "Pod",
          metadata: { name: "kubelet-api-logs-1", namespace: "default" },
          spec: { nodeName: "kubelet-api-logs-1", containers: [{ name: "c", image: "none.invalid/none" }] },
        }),
      });
      assert.equal(await cp.kubectl(["logs", "kubelet-api-logs-1", "-n", "default", "-c", "c"]), "hello from the fake kubelet\n");
      assertApiServerClient(fake, "/containerLogs/default/kubelet-api-logs-1/c");
    });

    it("nodes/<name>/proxy: the same, at a global unicast InternalIP (kube-apiserver refuses to proxy to a loopback node address)", async function () {
      const host = endpointAddress();
      if (!host || host.includes(":")) return this.skip(); // needs an IPv4 address of this machine that is not loopback
      const fake = await fakeWithServingCertificate("kubelet-api-proxy-1", host);
      assert.equal(await cp.kubectl(["get", "--raw", "/api/v1/nodes/kubelet-api-proxy-1/proxy/healthz"]), "ok");
      assertApiServerClient(fake, "/healthz");
    });

    it("refuses a kubelet whose serving certificate the cluster CA did not sign", async () => {
      const name = "kubelet-api-selfsigned-1";
      const alg = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };
      const keys = (await webcrypto.subtle.generateKey(alg, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
      const selfSigned = await x509.X509CertificateGenerator.createSelfSigned(
        {
          serialNumber: "01",
          name: `CN=system:node:${name}, O=system:nodes`,
          notBefore: new Date(Date.now() - 3600_000),
          notAfter: new Date(Date.now() + 24 * 3600_000),
          keys,
          signingAlgorithm: alg,
          extensions: [new x509.SubjectAlternativeNameExtension([{ type: "ip", value: "127.0.0.1" }]), new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth])],
        },
        webcrypto as any,
      );
      const fake = await startFakeKubelet({
        certificate: new Uint8Array(selfSigned.rawData),
        key: new Uint8Array(await webcrypto.subtle.exportKey("pkcs8", keys.privateKey)),
        handler: (_req, res) => void res.writeHead(200).end("ok"),
      });
      fakes.push(fake);
      nodes.push(name);
      await registerFakeNode(cp, name, fake.port);
      await cp.kubectl(["create", "-f", "-"], {
        input: JSON.stringify({ apiVersion: "v1", kind: "Pod", metadata: { name, namespace: "default" }, spec: { nodeName: name, containers: [{ name: "c", image: "none.invalid/none" }] } }),
      });
      try {
        await assert.rejects(cp.kubectl(["logs", name, "-n", "default", "-c", "c"]), /x509: certificate signed by unknown authority|failed to verify certificate/);
        assert.equal(fake.calls.length, 0, "no request got past the TLS handshake");
      } finally {
        await cp.kubectl(["delete", "pod", name, "-n", "default", "--grace-period=0", "--force"]).catch(() => undefined);
      }
    });
  });

  describe("metrics-server (APIService v1beta1.metrics.k8s.io) and kubectl top node", function () {
    this.timeout(180_000);
    const selector = "xs-kubelet.dev/metrics-test=true";
    let ms: MetricsServer;
    const fakes: FakeKubelet[] = [];
    const nodes: string[] = [];

    before(async function () {
      this.timeout(0); // the first run builds metrics-server (minutes; it shows progress)
      try {
        // Only this suite's nodes: the shared cluster's agents are not for metrics-server to scrape.
        ms = await cp.startMetricsServer({ nodeSelector: selector });
      } catch (err) {
        if (/non-loopback address/.test((err as Error).message)) {
          console.warn(`      skipped: ${(err as Error).message}`);
          return this.skip();
        }
        throw err;
      }
    });
    after(async function () {
      this.timeout(30_000);
      for (const f of fakes) await f.close();
      for (const n of nodes) await deleteNode(cp, n);
      await cp.stopMetricsServer();
    });

    it("is Available through the aggregation layer, serving its certificate for metrics-server.kube-system.svc", async () => {
      const svc = JSON.parse(await cp.kubectl(["get", "apiservice", "v1beta1.metrics.k8s.io", "-o", "json"]));
      const available = svc.status.conditions.find((c: any) => c.type === "Available");
      assert.equal(available?.status, "True", JSON.stringify(available));
      assert.equal(svc.spec.insecureSkipTLSVerify, undefined, "verified with caBundle, not insecureSkipTLSVerify");
      const resources = JSON.parse(await cp.kubectl(["get", "--raw", "/apis/metrics.k8s.io/v1beta1"]));
      assert.deepEqual(resources.resources.map((r: any) => r.name).sort(), ["nodes", "pods"]);
      assert.match(ms.version, /^v0\.\d+\.\d+$/);
    });

    it("scrapes /metrics/resource at the node's InternalIP and daemonEndpoints port with its ServiceAccount token, and kubectl top node shows the figures", async () => {
      const name = "kubelet-api-metrics-1";
      const serving = await cp.nodeServingCertificate(name, ["127.0.0.1"]);
      const started = Date.now();
      const reviewed = new Map<string, { user: string; allowed: boolean }>();
      const bodies: string[] = [];
      // As the kubelet authorizes /metrics/*: TokenReview, then a SubjectAccessReview of get nodes/metrics.
      const review = async (token: string) => {
        let r = reviewed.get(token);
        if (!r) {
          const tr = JSON.parse(await cp.kubectl(["create", "-o", "json", "-f", "-"], { input: JSON.stringify({ apiVersion: "authentication.k8s.io/v1", kind: "TokenReview", spec: { token } }) }));
          if (!tr.status.authenticated) return undefined;
          const sar = JSON.parse(
            await cp.kubectl(["create", "-o", "json", "-f", "-"], {
              input: JSON.stringify({
                apiVersion: "authorization.k8s.io/v1",
                kind: "SubjectAccessReview",
                spec: { user: tr.status.user.username, groups: tr.status.user.groups, uid: tr.status.user.uid, resourceAttributes: { verb: "get", resource: "nodes", subresource: "metrics", name } },
              }),
            }),
          );
          r = { user: tr.status.user.username, allowed: sar.status.allowed === true };
          reviewed.set(token, r);
        }
        return r;
      };
      const fake = await startFakeKubelet({
        certificate: serving.certificate,
        key: serving.key,
        clientCaPem: cp.caPem,
        handler: async (req, res) => {
          const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? "")?.[1];
          if (!token) return void res.writeHead(401, { "Content-Type": "text/plain" }).end("Unauthorized");
          const who = await review(token);
          if (!who) return void res.writeHead(401, { "Content-Type": "text/plain" }).end("Unauthorized");
          if (!who.allowed) return void res.writeHead(403, { "Content-Type": "text/plain" }).end(`Forbidden (user=${who.user}, verb=get, resource=nodes, subresource=metrics)`);
          if (req.url !== "/metrics/resource") return void res.writeHead(404).end();
          // 0.25 core busy since the start, against the same clock as the timestamps: a 250m rate.
          const ms = Date.now();
          const cpu = 12.5 + (0.25 * (ms - started)) / 1000;
          const body =
            "# HELP node_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the node in core-seconds\n" +
            "# TYPE node_cpu_usage_seconds_total counter\n" +
            `node_cpu_usage_seconds_total ${cpu} ${ms}\n` +
            "# HELP node_memory_working_set_bytes [STABLE] Current working set of the node in bytes\n" +
            "# TYPE node_memory_working_set_bytes gauge\n" +
            `node_memory_working_set_bytes 1.2e+07 ${ms}\n`;
          bodies.push(body);
          res.writeHead(200, { "Content-Type": "text/plain; version=0.0.4" }).end(body);
        },
      });
      fakes.push(fake);
      nodes.push(name);
      await registerFakeNode(cp, name, fake.port, { labels: { "xs-kubelet.dev/metrics-test": "true" } });

      const top = await eventually(
        `kubectl top node ${name}`,
        90_000,
        async () => {
          const out = await cp.kubectl(["top", "node", name, "--no-headers"]);
          return out.trim() ? out.trim() : undefined;
        },
        2000,
      );
      // NAME CPU(cores) CPU(%) MEMORY(bytes) MEMORY(%): 250m of 1 core, 1.2e7 B = 11Mi of 64Mi.
      const [shownName, cpu, cpuPct, mem, memPct] = top.split(/\s+/);
      assert.equal(shownName, name);
      assert.equal(cpu, "250m", top);
      assert.equal(cpuPct, "25%", top);
      assert.equal(mem, "11Mi", top);
      assert.equal(memPct, "17%", top);

      const scrapes = fake.calls.filter((c) => c.path === "/metrics/resource");
      assert.ok(scrapes.length >= 2, "CPU is a rate: at least two scrapes");
      for (const c of scrapes) assert.match(c.authorization ?? "", /^Bearer .+/);
      assert.deepEqual([...new Set([...reviewed.values()].map((r) => `${r.user} allowed=${r.allowed}`))], ["system:serviceaccount:kube-system:metrics-server allowed=true"]);

      // What was served is valid Prometheus text, as the reference parser reads it.
      const families = await promparse(bodies[0]);
      assert.equal(families.node_cpu_usage_seconds_total.type, "counter");
      assert.equal(families.node_memory_working_set_bytes.type, "gauge");
      assert.equal(families.node_memory_working_set_bytes.samples[0].value, 12_000_000);
      assert.equal(typeof families.node_cpu_usage_seconds_total.samples[0].timestampMs, "number");
    });
  });

  describe("promparse (github.com/prometheus/common/expfmt TextParser)", function () {
    this.timeout(0); // may build the metrics tools first

    it("prints families with type, help, labels, values and timestamps", async () => {
      const families = await promparse(
        [
          "# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the container in core-seconds",
          "# TYPE container_cpu_usage_seconds_total counter",
          'container_cpu_usage_seconds_total{container="c",namespace="ns",pod="p"} 1.5 1633253809720',
          "# TYPE up gauge",
          "up 1",
          "# TYPE odd gauge",
          "odd NaN",
          "",
        ].join("\n"),
      );
      assert.deepEqual(families.container_cpu_usage_seconds_total, {
        type: "counter",
        help: "[STABLE] Cumulative cpu time consumed by the container in core-seconds",
        samples: [{ labels: { container: "c", namespace: "ns", pod: "p" }, value: 1.5, timestampMs: 1633253809720 }],
      });
      assert.deepEqual(families.up.samples, [{ labels: {}, value: 1, timestampMs: null }]);
      assert.equal(families.odd.samples[0].value, "NaN");
    });

    it("fails with the parser's message on text that is not the exposition format", async () => {
      await assert.rejects(promparse('up{job=unquoted} 1\n'), /text format parsing error in line 1: expected '"' at start of label value/);
      await assert.rejects(promparse("# TYPE up gauge\n# TYPE up counter\nup 1\n"), /second TYPE line for metric name "up"/);
    });
  });
});
