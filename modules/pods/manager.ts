// The pods bound to this node, run for real: the kubelet's pod workers, status manager and
// admission in one small class. It is the handler of the pods watch (fieldSelector
// spec.nodeName=<node>), so a relist after a reconnect or a reboot reconciles: pods gone from the
// list are stopped and forgotten, pods that were running before a reboot start again with their
// restartCount raised, pods deleted while the agent was away are finalized.
//
// Per pod it admits (capacity.pods and memory, as the kubelet's OutOfpods / OutOfmemory), runs each
// container's workload (workload.ts), applies restartPolicy with the kubelet's crash-loop backoff
// (10 s doubling to 5 min, reset after 10 min of running), and reports status the way the kubelet
// does — phase, the five conditions with transition times, containerStatuses — in coalesced
// merge-PATCHes of pods/<name>/status that wait while the Lease or the node status is on the wire.
// Deletion: a deletionTimestamp stops the containers, reports them terminated, then DELETEs the pod
// with gracePeriodSeconds 0 and a UID precondition (without it a pod stays Terminating forever).
//
// Memory: one runtime per pod (at most maxPods running, plus maxPods finished ones kept for their
// status and logs), each container with two LogRings of logBytes (the current and the previous
// instance), one trimmed copy of each pod object (managedFields dropped) for /pods.
import { describeError, toApiError, type ApiClient } from "../api/client";
import type { WatchHandler } from "../api/watch";
import type { EventSpec, InvolvedObject } from "../k8s/events";
import { MERGE_PATCH } from "../k8s/paths";
import { parseQuantity } from "../k8s/quantity";
import type { Host, LogLevel, TimerId } from "../host";
import type { LedOverlay } from "../led/patterns";
import type { ContainerReading } from "../server/metrics";
import { formatTime, type WallClock } from "../time/clock";
import { TimerLoop } from "../util/loop";
import { RetryPolicy, type FailureKind } from "../util/retry";
import { AGENT_VERSION } from "../version";
import { LogRing, parseLogQuery, renderLine, selectLines } from "./logs";
import { WorkloadError, type Devices, type GpioPort, type Readings, type Workload, type WorkloadRegistry } from "./workload";

export interface PodContext {
  host: Host;
  api: ApiClient;
  clock: WallClock;
  nodeName: string;
  log(level: LogLevel, message: string): void;
  failure(what: string, err: unknown): FailureKind;
  success(what: string): void;
  /** The heartbeat's own requests are on the wire: status writes wait. */
  busy(): boolean;
  /** Posts an Event (the agent's recorder). */
  record(spec: EventSpec): void;
  /** The pod LED layer (undefined: back to the status LED). */
  led(overlay: LedOverlay | undefined): void;
  /** The node's address: hostIP and podIP. */
  address(): string;
  /** Readings the host has beyond heap and uptime (RSSI, temperature). */
  readings(): Partial<Readings>;
  gpio: GpioPort | undefined;
}

export interface PodManagerOptions {
  /** capacity.pods: pods admitted at once. */
  maxPods: number;
  /** capacity.memory in bytes (undefined: no memory admission). */
  memoryBytes?: number;
  /** Per log ring (current and previous instance of each container). */
  logBytes?: number;
}

/** The kubelet's crash-loop backoff. */
export const BACKOFF = Object.freeze({ initialMs: 10_000, maxMs: 300_000, resetAfterMs: 600_000 });
/** A configuration error (configmap missing, bad args) is tried again this often. */
const CONFIG_RETRY_MS = 10_000;
/** Changes within this are one status write. */
const COALESCE_MS = 50;
/** While the heartbeat is on the wire, look again after this. */
const BUSY_WAIT_MS = 200;
/** Kept of a ConfigMap read for env (a node reads only what its pods reference). */
const CONFIGMAP_BYTES = 16384;

type State =
  | { waiting: { reason: string; message?: string } }
  | { running: { startedAt: string } }
  | { terminated: { exitCode: number; reason: string; message?: string; startedAt?: string; finishedAt: string; containerID?: string } };

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: any;
}

interface ContainerRun {
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
  /** An old boot's instance was lost: restart it (with restartCount + 1) on adoption. */
  lost: boolean;
}

interface PodRun {
  uid: string;
  namespace: string;
  name: string;
  restartPolicy: "Always" | "OnFailure" | "Never";
  memoryRequest: number;
  containers: ContainerRun[];
  /** The trimmed object as last seen (for /pods and PodScheduled). */
  object: any;
  startTime: string;
  /** Admission said no: phase Failed with this reason and message. */
  rejected: { reason: string; message: string } | undefined;
  terminal: boolean;
  deleting: boolean;
  deleted: boolean;
  conditions: Map<string, { status: string; time: string; reason?: string; message?: string }>;
  /** Status writes that failed in a row (for the retry policy). */
  writeFailures: number;
}

const CONDITIONS: readonly string[] = Object.freeze(["PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready"]);

/**
 * What is kept of a pod object (for /pods and its PodScheduled condition): metadata without
 * managedFields and kubectl's last-applied copy of the spec, the spec, and of the status only the
 * scheduler's condition (the node reports the rest itself).
 */
function trimmed(pod: any): any {
  const metadata = { ...(pod?.metadata ?? {}) };
  delete metadata.managedFields;
  if (metadata.annotations && "kubectl.kubernetes.io/last-applied-configuration" in metadata.annotations) {
    metadata.annotations = { ...metadata.annotations };
    delete metadata.annotations["kubectl.kubernetes.io/last-applied-configuration"];
  }
  const scheduled = Array.isArray(pod?.status?.conditions) ? pod.status.conditions.filter((c: any) => c?.type === "PodScheduled") : [];
  return { apiVersion: "v1", kind: "Pod", metadata, spec: pod?.spec ?? {}, status: { conditions: scheduled } };
}

function restartPolicyOf(pod: any): PodRun["restartPolicy"] {
  const p = pod?.spec?.restartPolicy;
  return p === "OnFailure" || p === "Never" ? p : "Always";
}

export class PodManager {
  #ctx: PodContext;
  #registry: WorkloadRegistry;
  #options: Required<Omit<PodManagerOptions, "memoryBytes">> & { memoryBytes?: number };
  #pods = new Map<string, PodRun>();
  #dirty = new Set<PodRun>();
  #loop: TimerLoop;
  #writing = false;
  #retry: RetryPolicy;
  #started = false;
  #pins = new Map<number, string>();
  #leds: { owner: string; overlay: LedOverlay }[] = [];
  #bootAt: number;
  /** Per workload, the node's defaults for its settings (the settings ConfigMaps). */
  workloadDefaults: Record<string, Record<string, string>> = {};
  /** Status writes and deletions sent (for the tests and /metrics). */
  stats = { statusWrites: 0, deletions: 0, rejected: 0, starts: 0 };

  constructor(ctx: PodContext, registry: WorkloadRegistry, options: PodManagerOptions) {
    this.#ctx = ctx;
    this.#registry = registry;
    this.#options = { maxPods: Math.max(0, options.maxPods | 0), memoryBytes: options.memoryBytes, logBytes: options.logBytes ?? 4096 };
    this.#loop = new TimerLoop(ctx.host, () => void this.#pump());
    this.#retry = new RetryPolicy(() => ctx.host.random());
    this.#bootAt = ctx.host.monotonic();
  }

  /** Status writes may go out (the node is registered). */
  start(): void {
    this.#started = true;
    this.#loop.start(0);
  }

  /** The agent stops: every workload stops (the pods' status stays as the API server has it). */
  stop(): void {
    this.#started = false;
    this.#loop.stop();
    for (const pod of this.#pods.values()) for (const c of pod.containers) this.#halt(pod, c);
  }

  /** Pods admitted and not finished. */
  get active(): number {
    let n = 0;
    for (const p of this.#pods.values()) if (!p.rejected && !p.terminal && !p.deleted) n++;
    return n;
  }

  // ——— the watch ———
  readonly handler: WatchHandler = {
    replaced: (items) => {
      const seen = new Set<string>();
      // Pods that were running before (a reboot, a reconnect) first, then the oldest: who gets a slot.
      const order = items.slice().sort((a: any, b: any) => this.#rank(a) - this.#rank(b) || String(a?.metadata?.creationTimestamp ?? "").localeCompare(String(b?.metadata?.creationTimestamp ?? "")));
      for (const pod of order) {
        const uid = pod?.metadata?.uid;
        if (typeof uid !== "string") continue;
        seen.add(uid);
        this.#observe(pod);
      }
      for (const [uid, run] of [...this.#pods]) if (!seen.has(uid)) this.#forget(run, "gone from the API server");
    },
    added: (pod) => this.#observe(pod),
    modified: (pod) => this.#observe(pod),
    deleted: (pod) => {
      const run = this.#pods.get(pod?.metadata?.uid);
      if (run) this.#forget(run, "deleted");
    },
  };

  #rank(pod: any): number {
    const statuses = pod?.status?.containerStatuses;
    return Array.isArray(statuses) && statuses.some((s: any) => s?.containerID) ? 0 : 1;
  }

  #observe(pod: any): void {
    const uid = pod?.metadata?.uid;
    if (typeof uid !== "string" || !uid) return;
    let run = this.#pods.get(uid);
    if (!run) {
      if (pod?.spec?.nodeName !== this.#ctx.nodeName) return;
      run = this.#admit(pod);
      if (!run) return;
    } else {
      run.object = trimmed(pod);
      this.#specChanged(run, pod);
    }
    if (pod?.metadata?.deletionTimestamp && !run.deleting) this.#terminate(run);
  }

  /** First sight of a pod: admission, then its containers start. */
  #admit(pod: any): PodRun | undefined {
    const meta = pod.metadata;
    const phase = pod?.status?.phase;
    const spec = pod.spec ?? {};
    const containers: any[] = Array.isArray(spec.containers) ? spec.containers : [];
    let memoryRequest = 0;
    for (const c of containers) {
      const q = c?.resources?.requests?.memory ?? c?.resources?.limits?.memory;
      if (typeof q === "string") memoryRequest += parseQuantity(q) ?? 0;
    }
    const now = this.#now();
    const run: PodRun = {
      uid: meta.uid,
      namespace: String(meta.namespace ?? "default"),
      name: String(meta.name ?? ""),
      restartPolicy: restartPolicyOf(pod),
      memoryRequest,
      containers: [],
      object: trimmed(pod),
      startTime: typeof pod?.status?.startTime === "string" ? pod.status.startTime : now,
      rejected: undefined,
      terminal: phase === "Succeeded" || phase === "Failed",
      deleting: false,
      deleted: false,
      conditions: new Map(),
      writeFailures: 0,
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
        log: new LogRing(this.#options.logBytes),
        previous: undefined,
        runningSince: 0,
        backoffMs: 0,
        restartTimer: undefined,
        generation: 0,
        pins: [],
        cpuMs: 0,
        lost: lostInstance,
      });
    }
    this.#pods.set(run.uid, run);
    this.#trimFinished();
    if (run.terminal || meta.deletionTimestamp) return run; // nothing to run: a finished pod, or one on its way out
    const problem = this.#admission(run, pod);
    if (problem) {
      run.rejected = problem;
      run.terminal = true;
      this.stats.rejected++;
      this.#ctx.log("warn", `pod ${run.namespace}/${run.name} rejected: ${problem.message}`);
      this.#event(run, "Warning", problem.reason, problem.message);
      this.#markDirty(run);
      return run;
    }
    this.#condition(run, "PodReadyToStartContainers", "True");
    this.#condition(run, "Initialized", "True");
    for (const c of run.containers) {
      if (c.lost) {
        // The instance did not survive the agent (a reboot): as the kubelet after a restart.
        const finishedAt = now;
        const startedAt = (c.state as any).running?.startedAt;
        c.lastState = { terminated: { exitCode: 255, reason: "Unknown", message: "the node's agent restarted; the container did not survive it", startedAt, finishedAt, containerID: c.containerID } };
        if (run.restartPolicy === "Never") {
          c.state = c.lastState;
          c.lastState = undefined;
          continue;
        }
        c.restartCount++;
        c.state = { waiting: { reason: "ContainerCreating" } };
      }
      if ("terminated" in c.state) continue; // finished before (restartPolicy Never / OnFailure with 0)
      void this.#startContainer(run, c);
    }
    this.#settle(run);
    this.#markDirty(run);
    return run;
  }

  #admission(run: PodRun, pod: any): { reason: string; message: string } | undefined {
    const spec = pod.spec ?? {};
    if (Array.isArray(spec.initContainers) && spec.initContainers.length) {
      return { reason: "UnsupportedPodSpec", message: "Pod was rejected: init containers are not supported on this node (it runs workloads, not containers)" };
    }
    if (!run.containers.length) return { reason: "UnsupportedPodSpec", message: "Pod was rejected: it has no containers" };
    const used = this.active - 1; // this pod is in the table already
    const capacity = this.#options.maxPods;
    if (used + 1 > capacity) {
      return { reason: "OutOfpods", message: `Pod was rejected: Node didn't have enough resource: pods, requested: 1, used: ${used}, capacity: ${capacity}` };
    }
    const memory = this.#options.memoryBytes;
    if (memory !== undefined && run.memoryRequest > 0) {
      let usedMemory = 0;
      for (const p of this.#pods.values()) if (p !== run && !p.rejected && !p.terminal && !p.deleted) usedMemory += p.memoryRequest;
      if (usedMemory + run.memoryRequest > memory) {
        return { reason: "OutOfmemory", message: `Pod was rejected: Node didn't have enough resource: memory, requested: ${Math.ceil(run.memoryRequest)}, used: ${Math.ceil(usedMemory)}, capacity: ${Math.floor(memory)}` };
      }
    }
    return undefined;
  }

  /** An update of a running pod: a changed image restarts its container (as the kubelet's spec hash). */
  #specChanged(run: PodRun, pod: any): void {
    if (run.terminal || run.deleting || run.rejected) return;
    const containers: any[] = Array.isArray(pod?.spec?.containers) ? pod.spec.containers : [];
    for (const c of run.containers) {
      const next = containers.find((x) => x?.name === c.name);
      if (!next || typeof next.image !== "string" || next.image === c.image) continue;
      this.#ctx.log("info", `pod ${run.namespace}/${run.name}: container ${c.name} image changed to ${next.image}: restarting it`);
      this.#event(run, "Normal", "Killing", `Container ${c.name} definition changed, will be restarted`, c.name);
      const wasRunning = "running" in c.state;
      this.#halt(run, c);
      if (wasRunning) c.lastState = { terminated: { exitCode: 0, reason: "Completed", startedAt: (c.state as any).running.startedAt, finishedAt: this.#now(), containerID: c.containerID } };
      c.image = next.image;
      c.backoffMs = 0;
      if (c.started) c.restartCount++;
      c.state = { waiting: { reason: "ContainerCreating" } };
      void this.#startContainer(run, c);
      this.#settle(run);
      this.#markDirty(run);
    }
  }

  // ——— containers ———
  async #startContainer(run: PodRun, c: ContainerRun): Promise<void> {
    if (run.deleting || run.deleted || !this.#pods.has(run.uid)) return;
    const generation = ++c.generation;
    const kind = this.#registry.resolve(c.image);
    if (!kind) {
      const message = this.#registry.unknown(c.image);
      c.state = { waiting: { reason: "ErrImageNeverPull", message } };
      this.#event(run, "Warning", "ErrImageNeverPull", message, c.name);
      this.#markDirty(run);
      return;
    }
    let env: Record<string, string>;
    try {
      env = await this.#resolveEnv(run, c);
    } catch (err) {
      if (generation !== c.generation || run.deleting) return;
      return this.#configError(run, c, err instanceof WorkloadError ? err : new WorkloadError(describeError(err)));
    }
    if (generation !== c.generation || run.deleting || run.deleted) return;
    const host = this.#ctx.host;
    c.containerID = `xs-kubelet://${hex(host.randomBytes(8))}`;
    if (c.started) {
      // A new instance: the last one's log becomes --previous.
      c.previous = c.log;
      c.log = new LogRing(this.#options.logBytes);
    }
    const startedAt = this.#now();
    this.#event(run, "Normal", "Created", `Created container: ${c.name}`, c.name);
    const owner = `${run.namespace}/${run.name}/${c.name}`;
    /** A timer of this instance: gone with it, never fires for a later one. */
    const later = (ms: number, fn: () => void) => {
      if (generation !== c.generation) return;
      const id = host.setTimer(() => {
        c.timers.delete(id);
        if (generation === c.generation) fn();
      }, Math.max(0, ms));
      c.timers.add(id);
    };
    const io = {
      args: c.args.slice(),
      env,
      nodeName: this.#ctx.nodeName,
      podName: run.name,
      defaults: { ...(this.workloadDefaults[kind.name] ?? {}) },
      devices: this.#devices(c, owner),
      log: (line: string) => {
        if (generation !== c.generation) return;
        c.log.append(this.#ctx.clock.anchored ? this.#ctx.clock.now() : 0, String(line));
      },
      exit: (code: number) => {
        if (generation !== c.generation) return;
        // Out of the workload's own call stack: it may exit from its start or a timer.
        later(0, () => this.#exited(run, c, generation, code));
      },
      every: (ms: number, fn: () => void) => {
        const tick = () => {
          this.#guard(run, c, generation, fn);
          later(ms, tick);
        };
        later(ms, tick);
      },
      after: (ms: number, fn: () => void) => later(ms, () => this.#guard(run, c, generation, fn)),
    };
    c.state = { running: { startedAt } };
    c.started = true;
    c.runningSince = host.monotonic();
    c.cpuMs = 0;
    try {
      c.workload = kind.start(io);
      c.cpuMs += host.monotonic() - c.runningSince;
    } catch (err) {
      if (generation !== c.generation) return;
      this.#clearTimers(c);
      this.#releasePins(c);
      if (err instanceof WorkloadError) {
        c.state = { waiting: { reason: "ContainerCreating" } };
        return this.#configError(run, c, err);
      }
      this.#ctx.log("error", `pod ${run.namespace}/${run.name}: container ${c.name} failed to start: ${describeError(err)}`);
      c.log.append(this.#now0(), `start failed: ${describeError(err)}`);
      return this.#exited(run, c, generation, 128, "StartError", describeError(err));
    }
    this.stats.starts++;
    this.#event(run, "Normal", "Started", `Started container ${c.name}`, c.name);
    this.#settle(run);
    this.#markDirty(run);
  }

  /** A workload's timer callback; a throw ends the instance (exit code 1), never the agent. */
  #guard(run: PodRun, c: ContainerRun, generation: number, fn: () => void): void {
    if (generation !== c.generation) return;
    const t0 = this.#ctx.host.monotonic();
    try {
      fn();
      c.cpuMs += this.#ctx.host.monotonic() - t0;
    } catch (err) {
      c.log.append(this.#now0(), `workload error: ${describeError(err)}`);
      this.#exited(run, c, generation, 1, "Error", describeError(err));
    }
  }

  #configError(run: PodRun, c: ContainerRun, err: WorkloadError): void {
    c.state = { waiting: { reason: err.reason, message: err.message } };
    this.#event(run, "Warning", "Failed", `Error: ${err.message}`, c.name);
    this.#markDirty(run);
    const generation = c.generation;
    c.restartTimer = this.#ctx.host.setTimer(() => {
      c.restartTimer = undefined;
      if (generation === c.generation) void this.#startContainer(run, c);
    }, CONFIG_RETRY_MS);
  }

  #exited(run: PodRun, c: ContainerRun, generation: number, code: number, reason?: string, message?: string): void {
    if (generation !== c.generation || !("running" in c.state)) return;
    const startedAt = c.state.running.startedAt;
    const ran = this.#ctx.host.monotonic() - c.runningSince;
    this.#halt(run, c);
    c.generation++;
    const terminated: State = { terminated: { exitCode: code, reason: reason ?? (code === 0 ? "Completed" : "Error"), startedAt, finishedAt: this.#now(), containerID: c.containerID } };
    if (message) (terminated as any).terminated.message = message;
    const restart = run.restartPolicy === "Always" || (run.restartPolicy === "OnFailure" && code !== 0);
    if (!restart || run.deleting) {
      c.state = terminated;
      this.#settle(run);
      this.#markDirty(run);
      return;
    }
    c.lastState = terminated;
    if (ran >= BACKOFF.resetAfterMs) c.backoffMs = 0;
    const wait = c.backoffMs;
    c.backoffMs = wait === 0 ? BACKOFF.initialMs : Math.min(BACKOFF.maxMs, wait * 2);
    c.restartCount++;
    if (wait === 0) {
      c.state = { waiting: { reason: "ContainerCreating" } };
      void this.#startContainer(run, c);
    } else {
      const secs = `${Math.round(wait / 1000)}s`;
      const who = `${run.name}_${run.namespace}(${run.uid})`;
      c.state = { waiting: { reason: "CrashLoopBackOff", message: `back-off ${secs} restarting failed container=${c.name} pod=${who}` } };
      this.#event(run, "Warning", "BackOff", `Back-off restarting failed container ${c.name} in pod ${who}`, c.name);
      const g = c.generation;
      c.restartTimer = this.#ctx.host.setTimer(() => {
        c.restartTimer = undefined;
        if (g !== c.generation || run.deleting) return;
        c.state = { waiting: { reason: "ContainerCreating" } };
        void this.#startContainer(run, c);
      }, wait);
    }
    this.#settle(run);
    this.#markDirty(run);
  }

  /** Stops an instance: its workload, timers, pins, LED layer; its log ends (followers told). */
  #halt(run: PodRun, c: ContainerRun): void {
    const w = c.workload;
    c.workload = undefined;
    if (w) {
      try {
        w.stop();
      } catch (err) {
        this.#ctx.log("warn", `pod ${run.namespace}/${run.name}: container ${c.name} failed to stop cleanly: ${describeError(err)}`);
      }
    }
    this.#clearTimers(c);
    if (c.restartTimer !== undefined) this.#ctx.host.clearTimer(c.restartTimer);
    c.restartTimer = undefined;
    this.#releasePins(c);
    this.#ledFor(`${run.namespace}/${run.name}/${c.name}`, undefined);
    c.log.end();
  }

  #clearTimers(c: ContainerRun): void {
    for (const t of c.timers) this.#ctx.host.clearTimer(t);
    c.timers.clear();
  }

  #releasePins(c: ContainerRun): void {
    for (const p of c.pins) this.#pins.delete(p);
    c.pins = [];
  }

  #devices(c: ContainerRun, owner: string): Devices {
    const ctx = this.#ctx;
    return {
      led: (overlay) => this.#ledFor(owner, overlay),
      gpio: ctx.gpio,
      readings: () => {
        const heap = ctx.host.heap();
        const net = ctx.host.network();
        return { heapFree: heap?.free, heapTotal: heap?.total, uptimeSeconds: (ctx.host.monotonic() - this.#bootAt) / 1000, network: net.kind, ...ctx.readings() };
      },
      claim: (pins, direction) => {
        for (const p of pins) {
          const holder = this.#pins.get(p);
          if (holder !== undefined && holder !== owner) return `pin ${p} is in use by ${holder}`;
        }
        for (const p of pins) {
          this.#pins.set(p, owner);
          c.pins.push(p);
        }
        void direction;
        return undefined;
      },
    };
  }

  /** The LED layers: the last one set shows; when it goes, the one before it. */
  #ledFor(owner: string, overlay: LedOverlay | undefined): void {
    const i = this.#leds.findIndex((l) => l.owner === owner);
    if (i >= 0) this.#leds.splice(i, 1);
    else if (!overlay) return;
    if (overlay) this.#leds.push({ owner, overlay });
    this.#ctx.led(this.#leds.length ? this.#leds[this.#leds.length - 1].overlay : undefined);
  }

  async #resolveEnv(run: PodRun, c: ContainerRun): Promise<Record<string, string>> {
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
        if (!maps.has(mapName)) maps.set(mapName, await this.#configMap(run.namespace, mapName));
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
        const v = this.#field(run, path);
        if (v === undefined) throw new WorkloadError(`env ${name}: fieldRef ${path} is not supported on this node (metadata.name, metadata.namespace, metadata.uid, spec.nodeName, status.hostIP, status.podIP)`);
        env[name] = v;
      } else {
        const what = Object.keys(from)[0] ?? "valueFrom";
        throw new WorkloadError(`env ${name}: ${what} is not supported on this node (value, configMapKeyRef and fieldRef are)`);
      }
    }
    return env;
  }

  #field(run: PodRun, path: string): string | undefined {
    switch (path) {
      case "metadata.name":
        return run.name;
      case "metadata.namespace":
        return run.namespace;
      case "metadata.uid":
        return run.uid;
      case "spec.nodeName":
        return this.#ctx.nodeName;
      case "status.hostIP":
      case "status.podIP":
        return this.#ctx.address();
      default:
        return undefined;
    }
  }

  /** A ConfigMap's data; null when it does not exist. Throws when it cannot be read now. */
  async #configMap(namespace: string, name: string): Promise<Record<string, string> | null> {
    const path = `/api/v1/namespaces/${namespace}/configmaps/${name}`;
    const res = await this.#ctx.api.call("GET", path, { keepBody: CONFIGMAP_BYTES });
    if (res.status === 404) return null;
    if (res.status !== 200) throw new WorkloadError(`configmap "${name}": ${describeError(toApiError("GET", path, res))}`);
    const data = res.json?.data;
    const out: Record<string, string> = {};
    if (data && typeof data === "object") for (const [k, v] of Object.entries(data)) if (typeof v === "string") out[k] = v;
    return out;
  }

  // ——— phase and conditions ———
  /** Recomputes the pod's phase-level facts after a container changed. */
  #settle(run: PodRun): void {
    if (run.rejected) return;
    const all = run.containers;
    const ready = all.filter((c) => "running" in c.state);
    const allReady = all.length > 0 && ready.length === all.length;
    const finished = all.every((c) => "terminated" in c.state && c.restartTimer === undefined);
    if (finished) run.terminal = true;
    const reason = run.terminal ? "PodCompleted" : "ContainersNotReady";
    const message = run.terminal ? undefined : `containers with unready status: [${all.filter((c) => !("running" in c.state)).map((c) => c.name).join(" ")}]`;
    for (const type of ["ContainersReady", "Ready"]) this.#condition(run, type, allReady && !run.terminal ? "True" : "False", allReady && !run.terminal ? undefined : reason, allReady && !run.terminal ? undefined : message);
    if (run.terminal) {
      for (const c of all) this.#halt(run, c);
      this.#trimFinished();
    }
  }

  #condition(run: PodRun, type: string, status: string, reason?: string, message?: string): void {
    const old = run.conditions.get(type);
    if (old && old.status === status && old.reason === reason && old.message === message) return;
    run.conditions.set(type, { status, time: old && old.status === status ? old.time : this.#now(), reason, message });
  }

  #phase(run: PodRun): string {
    if (run.rejected) return "Failed";
    const all = run.containers;
    if (run.terminal) return all.every((c) => "terminated" in c.state && c.state.terminated.exitCode === 0) ? "Succeeded" : "Failed";
    if (all.some((c) => "running" in c.state || c.lastState !== undefined || c.restartCount > 0)) return "Running";
    return "Pending";
  }

  /** The status the kubelet would write now (a fresh object). */
  #statusBody(run: PodRun): object {
    const address = this.#ctx.address();
    const status: any = { phase: this.#phase(run) };
    if (run.rejected) {
      status.reason = run.rejected.reason;
      status.message = run.rejected.message;
    } else {
      const scheduled = (run.object?.status?.conditions ?? []).find((c: any) => c?.type === "PodScheduled");
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
      status.containerStatuses = run.containers.map((c) => this.#containerStatus(c));
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

  #containerStatus(c: ContainerRun): object {
    const known = this.#registry.resolve(c.image);
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

  // ——— deletion ———
  #terminate(run: PodRun): void {
    run.deleting = true;
    for (const c of run.containers) {
      if ("running" in c.state) {
        this.#event(run, "Normal", "Killing", `Stopping container ${c.name}`, c.name);
        const startedAt = c.state.running.startedAt;
        this.#halt(run, c);
        c.generation++;
        c.state = { terminated: { exitCode: 0, reason: "Completed", startedAt, finishedAt: this.#now(), containerID: c.containerID } };
      } else {
        this.#halt(run, c);
        c.generation++;
        if (!("terminated" in c.state)) c.state = { terminated: { exitCode: 0, reason: "ContainerStatusUnknown", message: "The container was never started", finishedAt: this.#now() } };
      }
    }
    run.terminal = true;
    this.#settle(run);
    this.#markDirty(run);
  }

  #forget(run: PodRun, why: string): void {
    for (const c of run.containers) this.#halt(run, c);
    run.deleted = true;
    this.#pods.delete(run.uid);
    this.#dirty.delete(run);
    this.#ctx.log("info", `pod ${run.namespace}/${run.name} ${why}: forgotten`);
  }

  /** Finished pods keep their runtime (logs) while there is room: at most maxPods of them. */
  #trimFinished(): void {
    const finished = [...this.#pods.values()].filter((p) => p.terminal && !p.deleting && !this.#dirty.has(p));
    const extra = finished.length - Math.max(1, this.#options.maxPods);
    for (let i = 0; i < extra; i++) {
      const p = finished[i];
      for (const c of p.containers) {
        c.log = new LogRing(256);
        c.previous = undefined;
      }
    }
  }

  // ——— status writes ———
  #markDirty(run: PodRun): void {
    this.#dirty.add(run);
    if (!this.#writing) this.#loop.schedule(COALESCE_MS);
  }

  async #pump(): Promise<void> {
    if (!this.#started || this.#writing) return;
    const run = this.#dirty.values().next().value as PodRun | undefined;
    if (!run) return;
    if (this.#ctx.busy()) return this.#loop.schedule(BUSY_WAIT_MS);
    this.#writing = true;
    this.#dirty.delete(run);
    let next = 0;
    try {
      await this.#write(run);
      run.writeFailures = 0;
      this.#ctx.success("writing pod status");
    } catch (err) {
      this.#dirty.add(run);
      run.writeFailures++;
      next = this.#retry.next(this.#ctx.failure("writing pod status", err));
    } finally {
      this.#writing = false;
    }
    if (this.#dirty.size) this.#loop.schedule(next);
  }

  async #write(run: PodRun): Promise<void> {
    if (run.deleted) return;
    const api = this.#ctx.api;
    const base = `/api/v1/namespaces/${run.namespace}/pods/${run.name}`;
    const res = await api.call("PATCH", `${base}/status`, { body: this.#statusBody(run), contentType: MERGE_PATCH, keepBody: 1024, echoIgnored: true });
    this.stats.statusWrites++;
    if (res.status === 404 || res.status === 409 || res.status === 422) {
      // Gone, or a new pod with the same name (the UID precondition): this one is over.
      if (res.status !== 404) this.#ctx.log("warn", `pod ${run.namespace}/${run.name}: status not written: ${describeError(toApiError("PATCH", `${base}/status`, res))}`);
      this.#forget(run, res.status === 404 ? "gone" : "replaced");
      return;
    }
    if (res.status !== 200) throw toApiError("PATCH", `${base}/status`, res);
    if (!run.deleting) return;
    const del = await api.call("DELETE", base, { body: { apiVersion: "v1", kind: "DeleteOptions", gracePeriodSeconds: 0, preconditions: { uid: run.uid } }, keepBody: 1024, echoIgnored: true });
    if (del.status === 200 || del.status === 202 || del.status === 404 || del.status === 409) {
      this.stats.deletions++;
      this.#forget(run, "deleted (grace period 0 after its containers stopped)");
      return;
    }
    this.#dirty.add(run);
    throw toApiError("DELETE", base, del);
  }

  // ——— what the kubelet API serves ———
  /** /pods: the node's pods as v1 objects, with the status this node reports. Fresh objects. */
  pods(): object[] {
    const out: object[] = [];
    for (const run of this.#pods.values()) {
      const o = JSON.parse(JSON.stringify(run.object));
      const body: any = this.#statusBody(run);
      o.status = { ...(o.status ?? {}), ...body.status };
      out.push(o);
    }
    return out;
  }

  /**
   * Per running container, for /metrics/resource: the time spent in its workload's code, and the
   * bytes its log rings hold (what the heap is charged for it; the workload's few own objects are
   * not counted).
   */
  containers(): ContainerReading[] {
    const out: ContainerReading[] = [];
    for (const run of this.#pods.values()) {
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

  /**
   * /containerLogs/<namespace>/<pod>/<container>: the text, or a stream (follow) that ends when the
   * instance ends. status 400/404 with the kubelet's kind of message when there is nothing to read.
   */
  logs(namespace: string, pod: string, container: string, query: string): { status: number; message?: string; text?: string; follow?: (write: (text: string) => void, end: () => void) => () => void } {
    const now = this.#ctx.clock.anchored ? this.#ctx.clock.now() : 0;
    const q = parseLogQuery(query, now);
    if (typeof q === "string") return { status: 400, message: q };
    let run: PodRun | undefined;
    for (const p of this.#pods.values()) if (p.namespace === namespace && p.name === pod) run = p;
    if (!run) return { status: 404, message: `pod ${namespace}/${pod} is not on this node` };
    const c = run.containers.find((x) => x.name === container);
    if (!c) return { status: 404, message: `container ${container} is not valid for pod ${pod}` };
    const ring = q.previous ? c.previous : c.log;
    if (!ring) return { status: 400, message: q.previous ? `previous terminated container "${container}" in pod "${pod}" not found` : `container "${container}" in pod "${pod}" is waiting to start` };
    let text = "";
    for (const line of selectLines(ring.lines, q)) text += renderLine(line, q.timestamps);
    let budget = q.limitBytes;
    const cut = (s: string): string => {
      if (budget === undefined) return s;
      const piece = s.length > budget ? s.slice(0, budget) : s;
      budget -= piece.length;
      return piece;
    };
    text = cut(text);
    if (!q.follow || q.previous || ring.ended || budget === 0) return { status: 200, text };
    return {
      status: 200,
      text,
      follow: (write, end) => {
        const stop = ring.follow(
          (line) => {
            if (q.sinceMs !== undefined && line.time < q.sinceMs) return;
            const piece = cut(renderLine(line, q.timestamps));
            if (piece) write(piece);
            if (budget === 0) {
              stop();
              end();
            }
          },
          end,
        );
        return stop;
      },
    };
  }

  // ——— helpers ———
  #event(run: PodRun, type: "Normal" | "Warning", reason: string, message: string, container?: string): void {
    const about: InvolvedObject = { kind: "Pod", namespace: run.namespace, name: run.name, uid: run.uid };
    if (container) about.fieldPath = `spec.containers{${container}}`;
    this.#ctx.record({ type, reason, message, about });
  }

  #now(): string {
    return formatTime(this.#now0());
  }

  #now0(): number {
    return this.#ctx.clock.anchored ? this.#ctx.clock.now() : 0;
  }
}

function hex(bytes: Uint8Array): string {
  const digits = "0123456789abcdef";
  let out = "";
  for (const b of bytes) out += digits[b >> 4] + digits[b & 15];
  return out;
}
