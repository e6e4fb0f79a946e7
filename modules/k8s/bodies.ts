// Request bodies, as pure functions of state: what the wire-format tests pin down. Every object in a
// body is made fresh: XS's JSON.stringify marks each object it visits, and a module-level constant
// lives in the read-only heap once the manifest preloads its module — stringifying it throws
// "read only value" on the board and in the simulator (seen), never under Node or plain XS.
import type { NodeIdentity } from "./identity";
import type { WireCondition } from "./conditions";
import { NODE_LEASE_NAMESPACE } from "./paths";

export const HEAP_ANNOTATION = "xs-kubelet.dev/heap-bytes-free";

/**
 * Registered with the Node: keeps DaemonSets and ordinary pods off a board that runs no containers
 * (picokubelet's B10); pods meant for the board tolerate it.
 */
export const NO_RUNTIME_TAINT = Object.freeze({ key: "xs-kubelet.dev/no-container-runtime", value: "true", effect: "NoSchedule" });

export interface Address {
  type: "InternalIP" | "Hostname";
  address: string;
}

export function addressesFor(name: string, ip: string): Address[] {
  const out: Address[] = [];
  if (ip) out.push({ type: "InternalIP", address: ip });
  out.push({ type: "Hostname", address: name });
  return out;
}

export function nodeBody(identity: NodeIdentity, addresses: Address[], conditions: WireCondition[], annotations: Record<string, string>) {
  return {
    apiVersion: "v1",
    kind: "Node",
    metadata: { name: identity.name, labels: identity.labels, annotations },
    spec: { taints: [{ ...NO_RUNTIME_TAINT }] },
    status: {
      capacity: identity.capacity,
      allocatable: identity.capacity,
      conditions,
      addresses,
      daemonEndpoints: identity.daemonEndpoints,
      nodeInfo: identity.nodeInfo,
    },
  };
}

export function leaseBody(name: string, durationSeconds: number, renewTime: string, nodeUid: string) {
  return {
    apiVersion: "coordination.k8s.io/v1",
    kind: "Lease",
    metadata: {
      name,
      namespace: NODE_LEASE_NAMESPACE,
      // Deleted with its Node by the garbage collector (picokubelet's B6).
      ownerReferences: [{ apiVersion: "v1", kind: "Node", name, uid: nodeUid }],
    },
    spec: { holderIdentity: name, leaseDurationSeconds: durationSeconds, renewTime },
  };
}

/**
 * A renewal is a JSON merge patch of renewTime alone: ~60 bytes instead of the ~450 of a PUT. The
 * node is the only writer of its Lease, so a resourceVersion precondition buys nothing, and a patch
 * cannot clobber what others add to the object; a 404 means "create it again".
 */
export function leaseRenewPatch(renewTime: string) {
  return { spec: { renewTime } };
}

export function leaseOwnerPatch(name: string, nodeUid: string, durationSeconds: number) {
  return {
    metadata: { ownerReferences: [{ apiVersion: "v1", kind: "Node", name, uid: nodeUid }] },
    spec: { holderIdentity: name, leaseDurationSeconds: durationSeconds },
  };
}

/**
 * The periodic / on-flip status push: a strategic merge patch, so conditions merge by type. The heap
 * annotation rides along (the status subresource keeps metadata changes), saving a second request.
 */
export function statusPatch(conditions: WireCondition[], annotations: Record<string, string>, extra: { addresses?: Address[]; nodeInfo?: Record<string, string>; capacity?: Record<string, string>; daemonEndpoints?: NodeIdentity["daemonEndpoints"] } = {}) {
  const status: Record<string, unknown> = { conditions };
  if (extra.addresses) {
    // Strategic merge would merge addresses by type; the replace directive makes the list exactly
    // the node's current addresses (an old InternalIP must not linger after a DHCP change).
    status.addresses = [{ $patch: "replace" }, ...extra.addresses];
  }
  if (extra.capacity) {
    status.capacity = extra.capacity;
    status.allocatable = extra.capacity;
  }
  if (extra.nodeInfo) status.nodeInfo = extra.nodeInfo;
  if (extra.daemonEndpoints) status.daemonEndpoints = extra.daemonEndpoints;
  return { metadata: { annotations }, status };
}

export function labelsPatch(labels: Record<string, string>) {
  return { metadata: { labels } };
}
