// A container's environment as the kubelet resolves it: value (with $(VAR) expansion of earlier
// names), valueFrom.configMapKeyRef (read from the API: the Node authorizer lets a node read exactly
// the ConfigMaps its pods reference) and fieldRef; anything else is a clear configuration error.
import { describeError, toApiError, type ApiClient } from "../api/client";
import { objectNameProblem } from "../k8s/names";
import type { ContainerRun, PodRun } from "./model";
import { WorkloadError } from "./workload";

/** Kept of a ConfigMap read for env. */
const CONFIGMAP_BYTES = 16384;

/** Where the values come from. */
export interface EnvSource {
  api: ApiClient;
  nodeName: string;
  /** The node's address: status.hostIP and status.podIP. */
  address(): string;
}

export async function resolveEnv(where: EnvSource, run: PodRun, c: ContainerRun): Promise<Record<string, string>> {
  const env: Record<string, string> = {};
  const maps = new Map<string, Record<string, string> | null>();
  for (const e of c.env) {
    const name = String(e?.name ?? "");
    if (!name) continue;
    if (e.valueFrom === undefined) {
      env[name] = String(e.value ?? "").replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (all, v: string) => (v in env ? env[v] : all));
      continue;
    }
    const from = e.valueFrom;
    if (from.configMapKeyRef) {
      const ref = from.configMapKeyRef;
      const mapName = String(ref.name ?? "");
      if (!maps.has(mapName)) maps.set(mapName, await configMap(where.api, run.namespace, mapName));
      const data = maps.get(mapName);
      if (data === null) {
        if (ref.optional) continue;
        throw new WorkloadError(`configmap "${mapName}" not found`);
      }
      const value = data?.[String(ref.key)];
      if (value === undefined) {
        if (ref.optional) continue;
        throw new WorkloadError(`couldn't find key ${ref.key} in ConfigMap ${run.namespace}/${mapName}`);
      }
      env[name] = value;
    } else if (from.fieldRef) {
      const path = String(from.fieldRef.fieldPath ?? "");
      const v = field(where, run, path);
      if (v === undefined) throw new WorkloadError(`env ${name}: fieldRef ${path} is not supported on this node (metadata.name, metadata.namespace, metadata.uid, spec.nodeName, status.hostIP, status.podIP)`);
      env[name] = v;
    } else {
      const what = Object.keys(from)[0] ?? "valueFrom";
      throw new WorkloadError(`env ${name}: ${what} is not supported on this node (value, configMapKeyRef and fieldRef are)`);
    }
  }
  return env;
}

function field(where: EnvSource, run: PodRun, path: string): string | undefined {
  switch (path) {
    case "metadata.name":
      return run.name;
    case "metadata.namespace":
      return run.namespace;
    case "metadata.uid":
      return run.uid;
    case "spec.nodeName":
      return where.nodeName;
    case "status.hostIP":
    case "status.podIP":
      return where.address();
    default:
      return undefined;
  }
}

/** A ConfigMap's data; null when it does not exist. Throws when it cannot be read now. */
async function configMap(api: ApiClient, namespace: string, name: string): Promise<Record<string, string> | null> {
  // The name comes from the pod's spec: never a request path from a name the API server would refuse.
  const bad = objectNameProblem("configmap name", name);
  if (bad) throw new WorkloadError(bad);
  const path = `/api/v1/namespaces/${namespace}/configmaps/${name}`;
  const res = await api.call("GET", path, { keepBody: CONFIGMAP_BYTES });
  if (res.status === 404) return null;
  if (res.status !== 200) throw new WorkloadError(`configmap "${name}": ${describeError(toApiError("GET", path, res))}`);
  const data = res.json?.data;
  const out: Record<string, string> = {};
  if (data && typeof data === "object") for (const [k, v] of Object.entries(data)) if (typeof v === "string") out[k] = v;
  return out;
}
