// A pod as the node runs it (PodRun, ContainerRun) and the status the kubelet writes for it: phase,
// conditions with transition times, containerStatuses. Pure functions of that state.
import { AGENT_VERSION } from "../version";
import { LogRing } from "./logs";
import { parseQuantity } from "../k8s/quantity";
import type { ContainerReading } from "../server/metrics";
import type { Workload, WorkloadRegistry } from "./workload";
import type { TimerId } from "../host";

export type State =
  | { waiting: { reason: string; message?: string } }
  | { running: { startedAt: string } }
  | { terminated: { exitCode: number; reason: string; message?: string; startedAt?: string; finishedAt: string; containerID?: string } };

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: any;
}

export interface ContainerRun {
  name: string;
  image: string;
  args: string[];
  env: EnvVar[];
  state: State;
  lastState: State | undefined;
  restartCount: number;
  containerID: string;
  started: boolean;
  workload: Workload | undefined;
  /** Its pending timers (each removes itself when it fires). */
  timers: Set<TimerId>;
  log: LogRing;
  previous: LogRing | undefined;
  /** Monotonic ms when the running instance started; for the backoff reset. */
  runningSince: number;
  backoffMs: number;
  restartTimer: TimerId | undefined;
  /** The instance number: callbacks of an older instance are ignored. */
  generation: number;
  /** Pins this instance claimed. */
  pins: number[];
  /** Milliseconds spent in this instance's workload code (start and callbacks), by host.monotonic. */
  cpuMs: number;
  /** An old boot's instance was lost (when it had started): restart it (restartCount + 1) on adoption. */
  lost: false | { startedAt?: string };
}

export interface PodRun {
  uid: string;
  namespace: string;
  name: string;
  restartPolicy: "Always" | "OnFailure" | "Never";
  memoryRequest: number;
  containers: ContainerRun[];
  /**
   * The trimmed object as last seen, as JSON text, for /pods: a string is one chunk, where the
   * parsed tree of a Pod the API server wrote (volumes, tolerations, every defaulted field) is a
   * hundred slots and more, held for the pod's life and read only by /pods.
   */
  objectJson: string;
  /** Its PodScheduled condition (the scheduler's), kept apart: every status write carries it. */
  scheduled: object | undefined;
  startTime: string;
  /** Admission said no: phase Failed with this reason and message. */
  rejected: { reason: string; message: string } | undefined;
  terminal: boolean;
  deleting: boolean;
  deleted: boolean;
  conditions: Map<string, { status: string; time: string; reason?: string; message?: string }>;
}

export const CONDITIONS: readonly string[] = Object.freeze(["PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready"]);

/**
 * What is kept of a pod object (for /pods and its PodScheduled condition): metadata without
 * managedFields and kubectl's last-applied copy of the spec, the spec, and of the status only the
 * scheduler's condition (the node reports the rest itself).
 */
export function trimmed(pod: any): any {
  const metadata = { ...(pod?.metadata ?? {}) };
  delete metadata.managedFields;
  if (metadata.annotations && "kubectl.kubernetes.io/last-applied-configuration" in metadata.annotations) {
    metadata.annotations = { ...metadata.annotations };
    delete metadata.annotations["kubectl.kubernetes.io/last-applied-configuration"];
  }
  const scheduled = Array.isArray(pod?.status?.conditions) ? pod.status.conditions.filter((c: any) => c?.type === "PodScheduled") : [];
  return { apiVersion: "v1", kind: "Pod", metadata, spec: pod?.spec ?? {}, status: { conditions: scheduled } };
}

/** A (re)list's pods in the order they are admitted: those that were running before (a reboot, a reconnect) first, then the oldest — who gets a slot. */
export function admissionOrder(items: any[]): any[] {
  const rank = (pod: any) => (Array.isArray(pod?.status?.containerStatuses) && pod.status.containerStatuses.some((s: any) => s?.containerID) ? 0 : 1);
  return items.slice().sort((a: any, b: any) => rank(a) - rank(b) || String(a?.metadata?.creationTimestamp ?? "").localeCompare(String(b?.metadata?.creationTimestamp ?? "")));
}

/** The pod's PodScheduled condition, a fresh object; undefined when it has none. */
export function scheduledOf(pod: any): object | undefined {
  const c = Array.isArray(pod?.status?.conditions) ? pod.status.conditions.find((x: any) => x?.type === "PodScheduled") : undefined;
  return c && typeof c === "object" ? { ...c } : undefined;
}

export function restartPolicyOf(pod: any): PodRun["restartPolicy"] {
  const p = pod?.spec?.restartPolicy;
  return p === "OnFailure" || p === "Never" ? p : "Always";
}


/** Sets a condition; its transition time moves only when its status does. */
export function setCondition(run: PodRun, type: string, status: string, now: string, reason?: string, message?: string): void {
  const old = run.conditions.get(type);
  if (old && old.status === status && old.reason === reason && old.message === message) return;
  run.conditions.set(type, { status, time: old && old.status === status ? old.time : now, reason, message });
}

export function podPhase(run: PodRun): string {
  if (run.rejected) return "Failed";
  const all = run.containers;
  if (run.terminal) return all.every((c) => "terminated" in c.state && c.state.terminated.exitCode === 0) ? "Succeeded" : "Failed";
  if (all.some((c) => "running" in c.state || c.lastState !== undefined || c.restartCount > 0)) return "Running";
  return "Pending";
}

/** The status the kubelet would write now (a fresh object), with the pod's UID as the precondition. */
export function podStatusBody(run: PodRun, address: string, registry: WorkloadRegistry): { metadata: { uid: string }; status: any } {
  const status: any = { phase: podPhase(run) };
  if (run.rejected) {
    status.reason = run.rejected.reason;
    status.message = run.rejected.message;
  } else {
    const scheduled = run.scheduled;
    const conditions: any[] = [];
    for (const type of CONDITIONS) {
      const c = run.conditions.get(type);
      if (!c) continue;
      const w: any = { type, status: c.status, lastProbeTime: null, lastTransitionTime: c.time };
      if (c.reason) w.reason = c.reason;
      if (c.message) w.message = c.message;
      conditions.push(w);
    }
    if (scheduled) conditions.push({ ...scheduled });
    status.conditions = conditions;
    status.containerStatuses = run.containers.map((c) => containerStatus(c, registry));
  }
  if (address) {
    status.hostIP = address;
    status.hostIPs = [{ ip: address }];
    if (!run.rejected) {
      status.podIP = address;
      status.podIPs = [{ ip: address }];
    }
  }
  status.startTime = run.startTime;
  return { metadata: { uid: run.uid }, status };
}

export function containerStatus(c: ContainerRun, registry: WorkloadRegistry): object {
  const known = registry.resolve(c.image);
  const s: any = {
    name: c.name,
    image: c.image,
    imageID: known ? `xs-kubelet.dev/${known.name}@builtin:${AGENT_VERSION}` : "",
    ready: "running" in c.state,
    started: "running" in c.state,
    restartCount: c.restartCount,
    state: JSON.parse(JSON.stringify(c.state)),
    lastState: c.lastState ? JSON.parse(JSON.stringify(c.lastState)) : {},
  };
  if (c.containerID) s.containerID = c.containerID;
  return s;
}

export function hex(bytes: Uint8Array): string {
  const digits = "0123456789abcdef";
  let out = "";
  for (const b of bytes) out += digits[b >> 4] + digits[b & 15];
  return out;
}

/** A pod first seen: its runtime record, containers from the spec and what the last status says of them. */
export function podRunFrom(pod: any, now: string, logBytes: number): PodRun {
  const meta = pod.metadata ?? {};
  const phase = pod?.status?.phase;
  const spec = pod.spec ?? {};
  const containers: any[] = Array.isArray(spec.containers) ? spec.containers : [];
  let memoryRequest = 0;
  for (const c of containers) {
    const q = c?.resources?.requests?.memory ?? c?.resources?.limits?.memory;
    if (typeof q === "string") memoryRequest += parseQuantity(q) ?? 0;
  }
  const run: PodRun = {
    uid: meta.uid,
    namespace: String(meta.namespace ?? "default"),
    name: String(meta.name ?? ""),
    restartPolicy: restartPolicyOf(pod),
    memoryRequest,
    containers: [],
    objectJson: JSON.stringify(trimmed(pod)),
    scheduled: scheduledOf(pod),
    startTime: typeof pod?.status?.startTime === "string" ? pod.status.startTime : now,
    rejected: undefined,
    terminal: phase === "Succeeded" || phase === "Failed",
    deleting: false,
    deleted: false,
    conditions: new Map(),
  };
  const prior = new Map<string, any>();
  for (const s of Array.isArray(pod?.status?.containerStatuses) ? pod.status.containerStatuses : []) if (typeof s?.name === "string") prior.set(s.name, s);
  for (const c of containers) {
    const old = prior.get(c?.name);
    const lostInstance = !!old?.containerID && !!old?.state?.running;
    run.containers.push({
      name: String(c?.name ?? ""),
      image: String(c?.image ?? ""),
      args: Array.isArray(c?.args) ? c.args.map(String) : Array.isArray(c?.command) ? c.command.slice(1).map(String) : [],
      env: Array.isArray(c?.env) ? c.env : [],
      state: old?.state && !lostInstance ? old.state : { waiting: { reason: "ContainerCreating" } },
      lastState: old?.lastState && Object.keys(old.lastState).length ? old.lastState : undefined,
      restartCount: typeof old?.restartCount === "number" ? old.restartCount : 0,
      containerID: typeof old?.containerID === "string" ? old.containerID : "",
      started: false,
      workload: undefined,
      timers: new Set(),
      log: new LogRing(logBytes),
      previous: undefined,
      runningSince: 0,
      backoffMs: 0,
      restartTimer: undefined,
      generation: 0,
      pins: [],
      cpuMs: 0,
      lost: lostInstance && { startedAt: typeof old.state.running.startedAt === "string" ? old.state.running.startedAt : undefined },
    });
  }
  return run;
}

/** The kubelet's crash-loop backoff. */
export const BACKOFF = Object.freeze({ initialMs: 10_000, maxMs: 300_000, resetAfterMs: 600_000 });

/** The wait before restarting an instance that ran ranMs (10 s doubling to 5 min; reset after 10 min of running). */
export function crashLoopWait(c: ContainerRun, ranMs: number): number {
  if (ranMs >= BACKOFF.resetAfterMs) c.backoffMs = 0;
  const wait = c.backoffMs;
  c.backoffMs = wait === 0 ? BACKOFF.initialMs : Math.min(BACKOFF.maxMs, wait * 2);
  return wait;
}

/** An instance of an earlier boot did not survive the agent (a reboot): as the kubelet after a restart. */
export function adoptLost(run: PodRun, c: ContainerRun, now: string): void {
  const startedAt = c.lost ? c.lost.startedAt : undefined;
  c.lost = false;
  c.lastState = { terminated: { exitCode: 255, reason: "Unknown", message: "the node's agent restarted; the container did not survive it", startedAt, finishedAt: now, containerID: c.containerID } };
  if (run.restartPolicy === "Never") {
    c.state = c.lastState;
    c.lastState = undefined;
    return;
  }
  c.restartCount++;
  c.state = { waiting: { reason: "ContainerCreating" } };
}

/** What a running instance the node stopped itself reports: it exits cleanly. */
export function stoppedState(c: ContainerRun, finishedAt: string): State {
  const startedAt = "running" in c.state ? c.state.running.startedAt : undefined;
  return { terminated: { exitCode: 0, reason: "Completed", startedAt, finishedAt, containerID: c.containerID } };
}

/** Admitted and not finished. */
export const isActive = (p: PodRun): boolean => !p.rejected && !p.terminal && !p.deleted;

/**
 * The kubelet's admission for a pod first seen (already in `runs`): init containers refused,
 * capacity.pods (OutOfpods) and memory requests (OutOfmemory) with the kubelet's messages.
 */
export function admissionProblem(run: PodRun, pod: any, runs: Iterable<PodRun>, maxPods: number, memory: number | undefined): { reason: string; message: string } | undefined {
  const spec = pod.spec ?? {};
  if (Array.isArray(spec.initContainers) && spec.initContainers.length) {
    return { reason: "UnsupportedPodSpec", message: "Pod was rejected: init containers are not supported on this node (it runs workloads, not containers)" };
  }
  if (!run.containers.length) return { reason: "UnsupportedPodSpec", message: "Pod was rejected: it has no containers" };
  let used = 0;
  let usedMemory = 0;
  for (const p of runs) {
    if (p === run || !isActive(p)) continue;
    used++;
    usedMemory += p.memoryRequest;
  }
  if (used + 1 > maxPods) {
    return { reason: "OutOfpods", message: `Pod was rejected: Node didn't have enough resource: pods, requested: 1, used: ${used}, capacity: ${maxPods}` };
  }
  if (memory !== undefined && run.memoryRequest > 0 && usedMemory + run.memoryRequest > memory) {
    return { reason: "OutOfmemory", message: `Pod was rejected: Node didn't have enough resource: memory, requested: ${Math.ceil(run.memoryRequest)}, used: ${Math.ceil(usedMemory)}, capacity: ${Math.floor(memory)}` };
  }
  return undefined;
}

/** /pods: the pods as v1 objects with the status this node reports. Fresh objects. */
export function podObjects(runs: Iterable<PodRun>, address: string, registry: WorkloadRegistry): object[] {
  const out: object[] = [];
  for (const run of runs) {
    const o = JSON.parse(run.objectJson);
    o.status = { ...(o.status ?? {}), ...podStatusBody(run, address, registry).status };
    out.push(o);
  }
  return out;
}

/**
 * Per running container, for /metrics/resource: the time spent in its workload's code, and the
 * bytes its log rings hold (what the heap is charged for it; the workload's few own objects are
 * not counted).
 */
export function containerReadings(runs: Iterable<PodRun>): ContainerReading[] {
  const out: ContainerReading[] = [];
  for (const run of runs) {
    for (const c of run.containers) {
      if (!("running" in c.state)) continue;
      const started = Date.parse(c.state.running.startedAt);
      out.push({
        namespace: run.namespace,
        pod: run.name,
        container: c.name,
        cpuSeconds: c.cpuMs / 1000,
        memoryWorkingSetBytes: c.log.bytes + (c.previous?.bytes ?? 0),
        startTimeSeconds: Number.isFinite(started) ? started / 1000 : 0,
      });
    }
  }
  return out;
}
