// deploy/xs-kubelet.yaml plus deploy/node-rbac.yaml for one node: that node's least-privilege
// ServiceAccount identity, as the launcher (tests) and `npm run provision` apply it.
import { readFileSync } from "node:fs";
import { nodeNameProblem } from "../modules/k8s/names";

const file = (name: string) => readFileSync(new URL(`./${name}`, import.meta.url), "utf8");

export function renderNodeRbac(node: string): string {
  const problem = nodeNameProblem(node);
  if (problem) throw new Error(problem);
  return `${file("xs-kubelet.yaml")}\n---\n${file("node-rbac.yaml").replaceAll("NODE_NAME", node)}\n---\n${file("node-settings.yaml").replaceAll("NODE_NAME", node)}`;
}

/** The settings ConfigMaps' RBAC for nodes (both identities), with the namespace: what a node with a system:node identity needs. */
export function renderSettingsRbac(nodes: string[]): string {
  for (const node of nodes) {
    const problem = nodeNameProblem(node);
    if (problem) throw new Error(problem);
  }
  const namespace = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: xs-kubelet\n";
  return [namespace, ...nodes.map((n) => file("node-settings.yaml").replaceAll("NODE_NAME", n))].join("\n---\n");
}

/** deploy/node-cert-rotation.yaml: nodes may have their own client certificate renewals approved. */
export function renderRotationRbac(): string {
  return file("node-cert-rotation.yaml");
}
