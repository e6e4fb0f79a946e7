// What a node needs beyond its own Node and Lease, for Events and its kubelet API, checked against
// the real authorizers for both identities a board can have: core/v1 events create and patch (in any
// namespace: Node events go to default, pod events to the pod's namespace), TokenReview and
// SubjectAccessReview create — and not more (no delete, get or list of events, no events.k8s.io).
import assert from "node:assert/strict";
import type { ControlPlane } from "../../tools/controlplane/launcher";
import { apiRequest } from "../support/api";
import { useCluster } from "../support/cluster";

const identities: { title: string; node: string; token: (cp: ControlPlane) => Promise<string>; user: (node: string) => string }[] = [
  { title: "a static system:node token (Node authorizer)", node: "agent-12", token: async (cp) => cp.nodeCredentials("agent-12").token, user: (n) => `system:node:${n}` },
  { title: "a ServiceAccount token bound to deploy/ roles (RBAC)", node: "sa-events-1", token: (cp) => cp.serviceAccountToken("sa-events-1", 3600), user: (n) => `system:serviceaccount:xs-kubelet:${n}` },
];

/** A Node event in default, as the kubelet posts it; or, with a namespace, one about a pod there. */
function nodeEvent(node: string, namespace = "default") {
  const involvedObject = namespace === "default" ? { kind: "Node", name: node, uid: node } : { kind: "Pod", namespace, name: "some-pod", uid: "00000000-0000-0000-0000-000000000001", apiVersion: "v1" };
  const now = new Date().toISOString().replace(/\.\d+Z$/, "Z");
  return {
    apiVersion: "v1",
    kind: "Event",
    metadata: { name: `${node}.${(BigInt(Date.now()) * 1_000_000n + BigInt(Math.floor(Math.random() * 1e6))).toString(16)}`, namespace },
    involvedObject,
    reason: "Starting",
    message: "Starting kubelet.",
    source: { component: "kubelet", host: node },
    firstTimestamp: now,
    lastTimestamp: now,
    count: 1,
    type: "Normal",
    reportingComponent: "kubelet",
    reportingInstance: node,
  };
}

describe("node permissions for Events and the kubelet API", function () {
  let cp: ControlPlane;
  before(async function () {
    cp = await useCluster(this);
    await cp.kubectl(["create", "namespace", "pod-events"]).catch(() => undefined);
  });

  for (const identity of identities) {
    describe(`with ${identity.title}`, () => {
      const me = identity.node;
      let token: string;
      const as = (method: string, path: string, body?: unknown, type?: string) => apiRequest(cp, token, method, path, body, type);
      before(async () => {
        token = await identity.token(cp);
      });

      it("may list and watch its own Node by name (the Node watch), not all nodes nor another's", async () => {
        const sel = (n: string) => `fieldSelector=${encodeURIComponent(`metadata.name=${n}`)}`;
        const own = await as("GET", `/api/v1/nodes?limit=1&${sel(me)}`);
        assert.equal(own.status, 200, own.body);
        const watch = await as("GET", `/api/v1/nodes?watch=1&timeoutSeconds=1&${sel(me)}`);
        assert.equal(watch.status, 200, watch.body);
        if (identity.title.includes("ServiceAccount")) {
          const all = await as("GET", "/api/v1/nodes");
          assert.equal(all.status, 403, all.body);
          const other = await as("GET", `/api/v1/nodes?${sel("agent-12")}`);
          assert.equal(other.status, 403, other.body);
        }
      });

      it("may create core/v1 Events in default (Node events) and in a pod's namespace, and patch them (aggregation)", async () => {
        for (const ns of ["default", "pod-events"]) {
          const event = nodeEvent(me, ns);
          const created = await as("POST", `/api/v1/namespaces/${ns}/events`, event);
          assert.equal(created.status, 201, created.body);
          const patched = await as(
            "PATCH",
            `/api/v1/namespaces/${ns}/events/${event.metadata.name}`,
            { count: 2, lastTimestamp: new Date().toISOString().replace(/\.\d+Z$/, "Z") },
            "application/strategic-merge-patch+json",
          );
          assert.equal(patched.status, 200, patched.body);
          assert.equal(patched.json().count, 2);
        }
      });

      it("may not delete, get or list Events, nor create events.k8s.io Events", async () => {
        const event = nodeEvent(me);
        assert.equal((await as("POST", "/api/v1/namespaces/default/events", event)).status, 201);
        const del = await as("DELETE", `/api/v1/namespaces/default/events/${event.metadata.name}`);
        assert.equal(del.status, 403, del.body);
        const get = await as("GET", `/api/v1/namespaces/default/events/${event.metadata.name}`);
        assert.equal(get.status, 403, get.body);
        const list = await as("GET", "/api/v1/namespaces/default/events");
        assert.equal(list.status, 403, list.body);
        const all = await as("DELETE", "/api/v1/namespaces/default/events");
        assert.equal(all.status, 403, all.body);
        const v1 = await as("POST", "/apis/events.k8s.io/v1/namespaces/default/events", {
          apiVersion: "events.k8s.io/v1",
          kind: "Event",
          metadata: { name: `${me}.events-k8s-io`, namespace: "default" },
          eventTime: new Date().toISOString().replace(/Z$/, "000Z"),
          reportingController: "kubelet",
          reportingInstance: me,
          action: "Starting",
          reason: "Starting",
          regarding: { kind: "Node", name: me },
          type: "Normal",
        });
        assert.equal(v1.status, 403, v1.body);
      });

      it("may create a TokenReview (authenticating a caller of its kubelet API)", async () => {
        const res = await as("POST", "/apis/authentication.k8s.io/v1/tokenreviews", { apiVersion: "authentication.k8s.io/v1", kind: "TokenReview", spec: { token } });
        assert.equal(res.status, 201, res.body);
        assert.equal(res.json().status.authenticated, true);
        assert.equal(res.json().status.user.username, identity.user(me));
      });

      it("may create a SubjectAccessReview (authorizing a caller of its kubelet API)", async () => {
        const res = await as("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", {
          apiVersion: "authorization.k8s.io/v1",
          kind: "SubjectAccessReview",
          spec: { user: "system:serviceaccount:kube-system:nobody", resourceAttributes: { verb: "get", resource: "nodes", subresource: "metrics", name: me } },
        });
        assert.equal(res.status, 201, res.body);
        assert.equal(res.json().status.allowed, false);
      });

      it("may not read RBAC objects nor approve CertificateSigningRequests", async () => {
        const list = await as("GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles");
        assert.equal(list.status, 403, list.body);
        const approve = await as("PUT", "/apis/certificates.k8s.io/v1/certificatesigningrequests/none/approval", { apiVersion: "certificates.k8s.io/v1", kind: "CertificateSigningRequest", metadata: { name: "none" } });
        assert.equal(approve.status, 403, approve.body);
      });
    });
  }
});
