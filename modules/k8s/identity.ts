// Who the node is: name, labels, capacity, nodeInfo. machineID and systemUUID are stable (derived from
// the MAC), bootID is fresh every boot so a reboot is visible (picokubelet's B5).
import type { BoardFacts } from "../host";
import { KUBELET_VERSION, AGENT_VERSION } from "../version";

/** What the Node says about itself: the host's facts about the board, the name and extra labels. */
export interface IdentityConfig extends BoardFacts {
  name: string;
  /** Extra labels; only prefixes NodeRestriction lets a node set on itself are accepted. */
  labels?: Record<string, string>;
}

export interface NodeIdentity {
  name: string;
  labels: Record<string, string>;
  capacity: Record<string, string>;
  nodeInfo: Record<string, string>;
  daemonEndpoints: { kubeletEndpoint: { Port: number } };
}

/** The label every xs-kubelet node carries, "true": nodeSelector of the examples. */
export const AGENT_LABEL = "xs-kubelet.dev/agent";

/** kubernetes.io labels NodeRestriction lets a node set on itself. */
const NODE_LABELS: readonly string[] = Object.freeze(["kubernetes.io/hostname", "kubernetes.io/os", "kubernetes.io/arch", "beta.kubernetes.io/os", "beta.kubernetes.io/arch", "node.kubernetes.io/instance-type", "beta.kubernetes.io/instance-type", "topology.kubernetes.io/zone", "topology.kubernetes.io/region", "failure-domain.beta.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/region"]);

/** Label keys a node may set on itself under NodeRestriction. */
export function labelAllowed(key: string): boolean {
  const slash = key.indexOf("/");
  if (slash < 0) return true; // unprefixed labels are the user's
  const prefix = key.slice(0, slash);
  if (NODE_LABELS.includes(key)) return true;
  if (prefix === "kubelet.kubernetes.io" || prefix.endsWith(".kubelet.kubernetes.io")) return true;
  if (prefix === "node.kubernetes.io" || prefix.endsWith(".node.kubernetes.io")) return true;
  return !(prefix === "kubernetes.io" || prefix.endsWith(".kubernetes.io") || prefix === "k8s.io" || prefix.endsWith(".k8s.io"));
}

/** FNV-1a over the text with a seed: four of them make a stable 128-bit id from a MAC. */
function fnv32(text: string, seed: number): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

const hex32 = (n: number) => n.toString(16).padStart(8, "0");

export function machineIdFromMac(mac: string): string {
  const key = `xs-kubelet:${mac.toLowerCase()}`;
  return [1, 2, 3, 4].map((seed) => hex32(fnv32(key, seed))).join("");
}

function formatUuid(hex: string): string {
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

/** A name-based UUID (version 8, RFC 9562 custom) for systemUUID. */
export function systemUuidFromMac(mac: string): string {
  const h = machineIdFromMac(mac).split("");
  h[12] = "8";
  h[16] = ((parseInt(h[16], 16) & 0x3) | 0x8).toString(16);
  return formatUuid(h.join(""));
}

/** A random (version 4) UUID from host randomness: a new one every boot. */
export function bootIdFrom(bytes: Uint8Array): string {
  const b = bytes.slice(0, 16);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  let hex = "";
  for (const x of b) hex += x.toString(16).padStart(2, "0");
  return formatUuid(hex);
}

export function buildIdentity(config: IdentityConfig, mac: string, bootId: string, memoryBytes: number | undefined): NodeIdentity {
  const labels: Record<string, string> = {
    "kubernetes.io/hostname": config.name,
    "kubernetes.io/os": config.os,
    "kubernetes.io/arch": config.arch,
    "node.kubernetes.io/instance-type": config.instanceType,
    // What pods meant for these nodes select (deploy/examples): every host sets it, and a node may
    // set it on itself under NodeRestriction (not a kubernetes.io or k8s.io label).
    [AGENT_LABEL]: "true",
  };
  for (const [k, v] of Object.entries(config.labels ?? {})) {
    if (!labelAllowed(k)) throw new Error(`label "${k}" cannot be set by a node on itself (NodeRestriction); use kubelet.kubernetes.io/ or node.kubernetes.io/, or an unprefixed key`);
    labels[k] = v;
  }
  const capacity: Record<string, string> = { cpu: config.cpu, pods: String(config.pods) };
  if (memoryBytes !== undefined) capacity.memory = `${Math.floor(memoryBytes / 1024)}Ki`;
  return {
    name: config.name,
    labels,
    capacity,
    nodeInfo: {
      machineID: machineIdFromMac(mac),
      systemUUID: systemUuidFromMac(mac),
      bootID: bootId,
      kernelVersion: config.kernelVersion,
      osImage: config.osImage,
      containerRuntimeVersion: `xs-kubelet://${AGENT_VERSION}`,
      kubeletVersion: KUBELET_VERSION,
      kubeProxyVersion: "",
      operatingSystem: config.os,
      architecture: config.arch,
    },
    daemonEndpoints: { kubeletEndpoint: { Port: config.kubeletPort } },
  };
}
