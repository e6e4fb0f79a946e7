// core/v1 Events as the kubelet posts them (pkg/kubelet/events, client-go's recorder): in namespace
// default, about the Node — involvedObject.uid is the node's *name*, by the kubelet's convention,
// which is what `kubectl describe node` matches — from source kubelet on this host. A repeat is the
// same Event with count and lastTimestamp patched, as client-go's correlator does.
export type EventType = "Normal" | "Warning";

/** What an Event is about when it is not the Node: a pod (and one of its containers), as the kubelet's. */
export interface InvolvedObject {
  kind: "Pod";
  namespace: string;
  name: string;
  uid: string;
  /** "spec.containers{<name>}" for a container's events. */
  fieldPath?: string;
}

export interface EventSpec {
  type: EventType;
  reason: string;
  message: string;
  /** Absent: the Node. */
  about?: InvolvedObject;
}

export const EVENT_NAMESPACE = "default";

export const eventPaths = Object.freeze({
  events: (namespace = EVENT_NAMESPACE) => `/api/v1/namespaces/${namespace}/events`,
  event: (name: string, namespace = EVENT_NAMESPACE) => `/api/v1/namespaces/${namespace}/events/${name}`,
});

/** `<node>.<unix nanoseconds in hex>`, as client-go names them; seq keeps names apart within a ms. */
export function eventName(node: string, epochMs: number, seq: number): string {
  const nanos = BigInt(Math.floor(epochMs)) * BigInt(1_000_000) + BigInt(seq % 1_000_000);
  return `${node}.${nanos.toString(16)}`;
}

function involved(node: string, about: InvolvedObject | undefined) {
  if (!about) return { kind: "Node", name: node, uid: node, apiVersion: "v1" };
  const o: Record<string, string> = { kind: about.kind, namespace: about.namespace, name: about.name, uid: about.uid, apiVersion: "v1" };
  if (about.fieldPath) o.fieldPath = about.fieldPath;
  return o;
}

export function eventBody(node: string, name: string, spec: EventSpec, time: string, count = 1) {
  return {
    apiVersion: "v1",
    kind: "Event",
    metadata: { name, namespace: spec.about?.namespace ?? EVENT_NAMESPACE },
    involvedObject: involved(node, spec.about),
    reason: spec.reason,
    message: spec.message,
    type: spec.type,
    source: { component: "kubelet", host: node },
    firstTimestamp: time,
    lastTimestamp: time,
    count,
    reportingComponent: "kubelet",
    reportingInstance: node,
  };
}

/** A repeat: the count so far and when it last happened (strategic merge patch, as client-go). */
export function eventRepeatPatch(count: number, time: string) {
  return { count, lastTimestamp: time };
}

/** "Node <n> status is now: <reason>": the kubelet's message for a node condition's transition. */
export function nodeStatusEvent(node: string, reason: string): EventSpec {
  return { type: "Normal", reason, message: `Node ${node} status is now: ${reason}` };
}

/** The kubelet's event reasons for the standard conditions' statuses (pkg/kubelet/nodestatus). */
export function transitionReason(type: string, status: string): string | undefined {
  const t = status === "True";
  if (status !== "True" && status !== "False") return undefined;
  switch (type) {
    case "Ready":
      return t ? "NodeReady" : "NodeNotReady";
    case "MemoryPressure":
      return t ? "NodeHasInsufficientMemory" : "NodeHasSufficientMemory";
    case "DiskPressure":
      return t ? "NodeHasDiskPressure" : "NodeHasNoDiskPressure";
    case "PIDPressure":
      return t ? "NodeHasInsufficientPID" : "NodeHasSufficientPID";
    default:
      return undefined;
  }
}
