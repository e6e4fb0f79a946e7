// What a node may do with pods, against the real authorizers, for both identities a board can have:
// watch the pods bound to it, write their status and delete them — and not another node's; read the
// ConfigMaps its pods reference (system:node: the Node authorizer; ServiceAccount: only where
// xs-kubelet:pod-config-reader is bound, see deploy/xs-kubelet.yaml).
import assert from "node:assert/strict";
import type { ControlPlane } from "../../tools/controlplane/launcher";
import { apiRequest, eventually } from "../support/api";
import { useCluster } from "../support/cluster";

const NS = "pod-permissions";

const identities: { title: string; node: string; other: string; token: (cp: ControlPlane) => Promise<string>; nodeAuthorizer: boolean }[] = [
  { title: "a static system:node token (Node authorizer, NodeRestriction)", node: "agent-21", other: "agent-22", token: async (cp) => cp.nodeCredentials("agent-21").token, nodeAuthorizer: true },
  { title: "a ServiceAccount token bound to deploy/ roles (RBAC, xs-kubelet-own-pods)", node: "sa-pods-1", other: "sa-pods-2", token: (cp) => cp.serviceAccountToken("sa-pods-1", 3600), nodeAuthorizer: false },
];

function podOn(name: string, node: string, configMap?: string) {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: NS },
    spec: {
      nodeName: node,
      automountServiceAccountToken: false,
      tolerations: [{ key: "xs-kubelet.dev/no-container-runtime", operator: "Exists", effect: "NoSchedule" }],
      containers: [
        {
          name: "c",
          image: "xs-kubelet.dev/hello:0.1",
          env: configMap ? [{ name: "MESSAGE", valueFrom: { configMapKeyRef: { name: configMap, key: "text" } } }] : [],
        },
      ],
    },
  };
}

describe("node permissions for pods", function () {
  let cp: ControlPlane;
  before(async function () {
    cp = await useCluster(this);
    await cp.kubectl(["create", "namespace", NS]).catch(() => undefined);
  });
  after(async () => {
    await cp.kubectl(["delete", "namespace", NS, "--wait=false"]).catch(() => undefined);
  });

  for (const identity of identities) {
    describe(`with ${identity.title}`, () => {
      const me = identity.node;
      let token: string;
      const as = (method: string, path: string, body?: unknown, type?: string) => apiRequest(cp, token, method, path, body, type);
      const mine = `${me}-pod`;
      const theirs = `${identity.other}-pod`;
      before(async () => {
        token = await identity.token(cp);
        await cp.kubectl(["apply", "-f", "-"], {
          input: [
            JSON.stringify({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: `${me}-cm`, namespace: NS }, data: { text: "mine" } }),
            JSON.stringify({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: `${identity.other}-cm`, namespace: NS }, data: { text: "theirs" } }),
            JSON.stringify(podOn(mine, me, `${me}-cm`)),
            JSON.stringify(podOn(theirs, identity.other, `${identity.other}-cm`)),
          ].join("\n"),
        });
      });

      it("may list and watch the pods bound to it (fieldSelector spec.nodeName)", async () => {
        const list = await as("GET", `/api/v1/pods?fieldSelector=${encodeURIComponent(`spec.nodeName=${me}`)}`);
        assert.equal(list.status, 200, list.body);
        assert.deepEqual(list.json().items.map((p: any) => p.metadata.name), [mine]);
      });

      it("may write its own pods' status and delete them; not another node's", async () => {
        const patch = { status: { phase: "Running", conditions: [{ type: "Ready", status: "True" }] } };
        const ok = await as("PATCH", `/api/v1/namespaces/${NS}/pods/${mine}/status`, patch, "application/merge-patch+json");
        assert.equal(ok.status, 200, ok.body);
        // The admission policy (ServiceAccount) takes effect asynchronously: wait for the refusal.
        const denied = await eventually("the refusal of another node's pod", 30_000, async () => {
          const r = await as("PATCH", `/api/v1/namespaces/${NS}/pods/${theirs}/status`, patch, "application/merge-patch+json");
          return r.status === 403 ? r : undefined;
        });
        assert.match(denied.body, identity.nodeAuthorizer ? /can only (update|patch)|not allowed|forbidden/i : /may only write the status of, and delete, pods bound to its own node/);
        const delTheirs = await as("DELETE", `/api/v1/namespaces/${NS}/pods/${theirs}`, { apiVersion: "v1", kind: "DeleteOptions", gracePeriodSeconds: 0 });
        assert.equal(delTheirs.status, 403, delTheirs.body);
        const uid = JSON.parse(await cp.kubectl(["get", "pod", mine, "-n", NS, "-o", "json"])).metadata.uid;
        const delMine = await as("DELETE", `/api/v1/namespaces/${NS}/pods/${mine}`, { apiVersion: "v1", kind: "DeleteOptions", gracePeriodSeconds: 0, preconditions: { uid } });
        assert.equal(delMine.status, 200, delMine.body);
      });

      it(identity.nodeAuthorizer ? "may read the ConfigMaps its pods reference, and no other" : "reads no ConfigMap unless xs-kubelet:pod-config-reader is bound in that namespace", async () => {
        // Recreate the pod that references the ConfigMap (the previous test deleted it).
        await cp.kubectl(["apply", "-f", "-"], { input: JSON.stringify(podOn(`${mine}-2`, me, `${me}-cm`)) });
        const read = () => as("GET", `/api/v1/namespaces/${NS}/configmaps/${me}-cm`);
        const other = await as("GET", `/api/v1/namespaces/${NS}/configmaps/${identity.other}-cm`);
        assert.equal(other.status, 403, other.body);
        if (identity.nodeAuthorizer) {
          const r = await eventually("the Node authorizer's graph to learn the pod", 30_000, async () => ((await read()).status === 200 ? read() : undefined));
          assert.equal(r.json().data.text, "mine");
          return;
        }
        assert.equal((await read()).status, 403);
        await cp.kubectl(["create", "rolebinding", `${me}-config`, "-n", NS, "--clusterrole=xs-kubelet:pod-config-reader", `--serviceaccount=xs-kubelet:${me}`]);
        const r = await eventually("the RoleBinding to take effect", 30_000, async () => ((await read()).status === 200 ? read() : undefined));
        assert.equal(r.json().data.text, "mine");
      });
    });
  }
});
