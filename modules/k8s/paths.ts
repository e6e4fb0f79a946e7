// API paths the agent uses.
export const NODE_LEASE_NAMESPACE = "kube-node-lease";

export const paths = Object.freeze({
  version: "/version",
  nodes: "/api/v1/nodes",
  pods: "/api/v1/pods",
  node: (name: string) => `/api/v1/nodes/${name}`,
  nodeStatus: (name: string) => `/api/v1/nodes/${name}/status`,
  leases: `/apis/coordination.k8s.io/v1/namespaces/${NODE_LEASE_NAMESPACE}/leases`,
  lease: (name: string) => `/apis/coordination.k8s.io/v1/namespaces/${NODE_LEASE_NAMESPACE}/leases/${name}`,
});

export const MERGE_PATCH = "application/merge-patch+json";
export const STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json";
