// The test control plane is real: the API server answers, the node lifecycle controller acts, and the
// Node authorizer, NodeRestriction and RBAC really forbid what a node must not do.
import assert from "node:assert/strict";
import type { ControlPlane } from "../../tools/controlplane/launcher";
import { apiRequest, eventually } from "../support/api";
import { TEST_GRACE_SECONDS, useCluster } from "../support/cluster";

const LEASES = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases";

const nodeObject = (name: string) => ({
  apiVersion: "v1",
  kind: "Node",
  metadata: { name, labels: { "kubernetes.io/hostname": name } },
  status: {
    conditions: [
      {
        type: "Ready",
        status: "True",
        reason: "KubeletReady",
        message: "kubelet is posting ready status",
        lastHeartbeatTime: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
        lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
      },
    ],
  },
});

const leaseObject = (name: string) => ({
  apiVersion: "coordination.k8s.io/v1",
  kind: "Lease",
  metadata: { name, namespace: "kube-node-lease" },
  spec: { holderIdentity: name, leaseDurationSeconds: 40, renewTime: new Date().toISOString().replace(/Z$/, "000Z") },
});

describe("control plane", function () {
  let cp: ControlPlane;
  before(async function () {
    cp = await useCluster(this);
  });

  it("answers /readyz through the built kubectl", async () => {
    assert.equal((await cp.kubectl(["get", "--raw", "/readyz"])).trim(), "ok");
  });

  it("reports the version it was built as, on client and server", async () => {
    const v = JSON.parse(await cp.kubectl(["version", "-o", "json"]));
    assert.equal(v.serverVersion.gitVersion, cp.kubernetesVersion);
    assert.equal(v.clientVersion.gitVersion, cp.kubernetesVersion);
    assert.match(cp.kubernetesVersion, /^v1\.33\.\d+$/);
  });

  it("serves the chain k3s serves: a leaf and a self-signed P-256 CA without Authority Key Identifier", async () => {
    const { X509Certificate } = await import("node:crypto");
    const ca = new X509Certificate(cp.caPem);
    assert.equal(ca.ca, true);
    assert.equal(ca.issuer, ca.subject);
    assert.equal(ca.publicKey.asymmetricKeyDetails?.namedCurve, "prime256v1");
    // Node exposes no extension list; the DER must not contain the AKI OID 2.5.29.35 (06 03 55 1d 23).
    assert.equal(Buffer.from(cp.caDer).includes(Buffer.from([0x06, 0x03, 0x55, 0x1d, 0x23])), false);
    const { connect } = await import("node:tls");
    const chain = await new Promise<Buffer[]>((resolve, reject) => {
      const socket = connect({ host: cp.host, port: cp.port, ca: cp.caPem, servername: "localhost" }, () => {
        const certs: Buffer[] = [];
        let c: any = socket.getPeerCertificate(true);
        while (c && c.raw && !certs.some((r) => r.equals(c.raw))) {
          certs.push(c.raw);
          c = c.issuerCertificate;
        }
        socket.end();
        resolve(certs);
      });
      socket.on("error", reject);
    });
    assert.equal(chain.length, 2, "leaf + CA");
    assert.ok(chain[1].equals(Buffer.from(cp.caDer)), "the second certificate is the cluster CA itself");
  });

  it("runs the node lifecycle controller: a Node that stops reporting becomes Unknown and unreachable", async function () {
    this.timeout((TEST_GRACE_SECONDS + 45) * 1000);
    const name = "lifecycle-1";
    await cp.kubectl(["create", "-f", "-"], { input: JSON.stringify(nodeObject(name)) });
    try {
      const node = await eventually(`Node ${name} to turn Unknown`, (TEST_GRACE_SECONDS + 40) * 1000, async () => {
        const n = JSON.parse(await cp.kubectl(["get", "node", name, "-o", "json"]));
        const ready = n.status.conditions.find((c: any) => c.type === "Ready");
        const tainted = (n.spec.taints ?? []).some((t: any) => t.key === "node.kubernetes.io/unreachable" && t.effect === "NoSchedule");
        return ready?.status === "Unknown" && tainted ? n : undefined;
      });
      const ready = node.status.conditions.find((c: any) => c.type === "Ready");
      assert.equal(ready.reason, "NodeStatusUnknown");
      assert.equal(ready.message, "Kubelet stopped posting node status.");
    } finally {
      await cp.kubectl(["delete", "node", name, "--wait=false"]);
    }
  });

  // The same checks for both ways a board can authenticate.
  const identities: { title: string; node: string; token: (cp: ControlPlane) => Promise<string> }[] = [
    { title: "a static system:node token", node: "agent-1", token: async (cp) => cp.nodeCredentials("agent-1").token },
    { title: "a ServiceAccount token bound to deploy/ roles", node: "sa-agent-1", token: (cp) => cp.serviceAccountToken("sa-agent-1", 3600) },
  ];

  for (const identity of identities) {
    describe(`authorization with ${identity.title}`, function () {
      const me = identity.node;
      const other = "agent-2";
      let token: string;
      const as = (method: string, path: string, body?: unknown, type?: string) => apiRequest(cp, token, method, path, body, type);

      before(async function () {
        token = await identity.token(cp);
        // The neighbour's objects exist, so a refusal below is authorization, not "not found".
        for (const body of [nodeObject(other), leaseObject(other)]) {
          await cp.kubectl(["apply", "-f", "-"], { input: JSON.stringify(body) });
        }
        await cp.kubectl(["create", "namespace", "doomed"]).catch(() => undefined);
      });

      after(async () => {
        await cp.kubectl(["delete", "lease", me, "-n", "kube-node-lease", "--ignore-not-found"]);
        await cp.kubectl(["delete", "node", me, "--ignore-not-found", "--wait=false"]);
      });

      it("may create, patch and update the status of its own Node", async () => {
        const created = await as("POST", "/api/v1/nodes", nodeObject(me));
        assert.equal(created.status, 201, created.body);
        const labelled = await as("PATCH", `/api/v1/nodes/${me}`, { metadata: { labels: { "node.kubernetes.io/instance-type": "esp32-s3-r8" } } }, "application/merge-patch+json");
        assert.equal(labelled.status, 200, labelled.body);
        const status = await as(
          "PATCH",
          `/api/v1/nodes/${me}/status`,
          { status: { conditions: [{ type: "Ready", status: "True", reason: "KubeletReady", message: "kubelet is posting ready status" }] } },
          "application/strategic-merge-patch+json",
        );
        assert.equal(status.status, 200, status.body);
      });

      it("may create and renew its own Lease", async () => {
        const created = await as("POST", LEASES, leaseObject(me));
        assert.equal(created.status, 201, created.body);
        const renewed = await as("PATCH", `${LEASES}/${me}`, { spec: { renewTime: new Date().toISOString().replace(/Z$/, "000Z") } }, "application/merge-patch+json");
        assert.equal(renewed.status, 200, renewed.body);
      });

      it("may not patch another Node or its Lease", async () => {
        const node = await as("PATCH", `/api/v1/nodes/${other}`, { metadata: { labels: { evil: "yes" } } }, "application/merge-patch+json");
        assert.equal(node.status, 403, node.body);
        const status = await as("PATCH", `/api/v1/nodes/${other}/status`, { status: {} }, "application/merge-patch+json");
        assert.equal(status.status, 403, status.body);
        const lease = await as("PATCH", `${LEASES}/${other}`, { spec: { holderIdentity: me } }, "application/merge-patch+json");
        assert.equal(lease.status, 403, lease.body);
      });

      it("may not create a Node or Lease under another name", async () => {
        const node = await as("POST", "/api/v1/nodes", nodeObject(`${me}-impostor`));
        assert.equal(node.status, 403, node.body);
        const lease = await as("POST", LEASES, leaseObject(`${me}-impostor`));
        assert.equal(lease.status, 403, lease.body);
      });

      it("may not read Secrets or delete a namespace", async () => {
        const secrets = await as("GET", "/api/v1/namespaces/kube-system/secrets");
        assert.equal(secrets.status, 403, secrets.body);
        const ns = await as("DELETE", "/api/v1/namespaces/doomed");
        assert.equal(ns.status, 403, ns.body);
      });

      it("is rejected with 401 when the token is wrong", async () => {
        const res = await apiRequest(cp, `${token}x`, "GET", `/api/v1/nodes/${me}`);
        assert.equal(res.status, 401);
      });
    });
  }
});
