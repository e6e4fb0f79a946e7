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
import { describeError, type ApiClient } from "../api/client";
import type { WatchHandler } from "../api/watch";
import type { EventSpec, InvolvedObject } from "../k8s/events";
import type { Host, LogLevel } from "../host";
import type { LedOverlay } from "../led/patterns";
import type { ContainerReading } from "../server/metrics";
import { formatTime, type WallClock } from "../time/clock";
import type { FailureKind } from "../util/retry";
import { LogRing, answerLogs, type LogAnswer } from "./logs";
import { PodDevices } from "./devices";
import { instanceIO } from "./instance";
import { resolveEnv } from "./env";
import { PodStatusWriter } from "./status-writer";
import { objectNameProblem } from "../k8s/names";
import { adoptLost, admissionOrder, admissionProblem, containerReadings, crashLoopWait, stoppedState, hex, isActive, podObjects, podRunFrom, scheduledOf, setCondition, trimmed, type ContainerRun, type PodRun, type State } from "./model";
import { WorkloadError, type GpioPort, type Readings, type WorkloadRegistry } from "./workload";

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

/** Uids of pods ignored for their names, remembered so each is said once. */
const REFUSED_KEPT = 8;
/** A configuration error (configmap missing, bad args) is tried again this often. */
const CONFIG_RETRY_MS = 10_000;

export class PodManager implements WatchHandler {
  #ctx: PodContext;
  #registry: WorkloadRegistry;
  #options: Required<Omit<PodManagerOptions, "memoryBytes">> & { memoryBytes?: number };
  #pods = new Map<string, PodRun>();
  #writer: PodStatusWriter;
  #devices: PodDevices;
  /** Per workload, the node's defaults for its settings (the settings ConfigMaps). */
  workloadDefaults: Record<string, Record<string, string>> = {};
  /** Status writes and deletions sent (for the tests and /metrics). */
  stats = { statusWrites: 0, deletions: 0, rejected: 0, starts: 0 };

  constructor(ctx: PodContext, registry: WorkloadRegistry, options: PodManagerOptions) {
    this.#ctx = ctx;
    this.#registry = registry;
    this.#options = { maxPods: Math.max(0, options.maxPods | 0), memoryBytes: options.memoryBytes, logBytes: options.logBytes ?? 4096 };
    this.#writer = new PodStatusWriter(ctx, registry, (run, why) => this.#forget(run, why), this.stats);
    this.#devices = new PodDevices(ctx);
  }

  /** Status writes may go out (the node is registered). */
  start(): void {
    this.#writer.start();
  }

  /** The agent stops: every workload stops (the pods' status stays as the API server has it). */
  stop(): void {
    this.#writer.stop();
    for (const pod of this.#pods.values()) for (const c of pod.containers) this.#halt(pod, c);
  }

  /** Pods admitted and not finished. */
  get active(): number {
    let n = 0;
    for (const p of this.#pods.values()) if (isActive(p)) n++;
    return n;
  }

  // ——— the watch: the manager is the pods watch's handler (prototype methods, no closures to hold) ———
  /** Everything bound to this node now. */
  replaced(items: any[]): void {
    const seen = new Set<string>();
    for (const pod of admissionOrder(items)) {
      const uid = pod?.metadata?.uid;
      if (typeof uid !== "string") continue;
      seen.add(uid);
      this.#observe(pod);
    }
    for (const [uid, run] of [...this.#pods]) if (!seen.has(uid)) this.#forget(run, "gone from the API server");
  }

  added(pod: any): void {
    this.#observe(pod);
  }

  modified(pod: any): void {
    this.#observe(pod);
  }

  deleted(pod: any): void {
    const run = this.#pods.get(pod?.metadata?.uid);
    if (run) this.#forget(run, "deleted");
  }

  #observe(pod: any): void {
    const uid = pod?.metadata?.uid;
    if (typeof uid !== "string" || !uid) return;
    let run = this.#pods.get(uid);
    if (!run) {
      if (pod?.spec?.nodeName !== this.#ctx.nodeName) return;
      const problem = objectNameProblem("namespace", pod.metadata.namespace ?? "default", 63) ?? objectNameProblem("name", pod.metadata.name);
      if (problem) return this.#refuse(uid, problem);
      run = this.#admit(pod);
      if (!run) return;
    } else {
      run.objectJson = JSON.stringify(trimmed(pod));
      run.scheduled = scheduledOf(pod);
      this.#specChanged(run, pod);
    }
    if (pod?.metadata?.deletionTimestamp && !run.deleting) this.#terminate(run);
  }

  /** Pods ignored for a name the API server would never have stored, said once each (the last few, by uid). */
  #refused: string[] = [];
  #refuse(uid: string, problem: string): void {
    if (this.#refused.indexOf(uid) >= 0) return;
    this.#refused.push(uid);
    if (this.#refused.length > REFUSED_KEPT) this.#refused.shift();
    this.#ctx.log("warn", `a pod from the API server ignored: its ${problem} (the API server never stores such a name: a broken or hostile answer)`);
  }

  /** First sight of a pod: admission, then its containers start. */
  #admit(pod: any): PodRun | undefined {
    const meta = pod.metadata;
    const now = this.#now();
    const run = podRunFrom(pod, now, this.#options.logBytes);
    this.#pods.set(run.uid, run);
    this.#trimFinished();
    if (run.terminal || meta.deletionTimestamp) return run; // nothing to run: a finished pod, or one on its way out
    const problem = admissionProblem(run, pod, this.#pods.values(), this.#options.maxPods, this.#options.memoryBytes);
    if (problem) {
      run.rejected = problem;
      run.terminal = true;
      this.stats.rejected++;
      this.#ctx.log("warn", `pod ${run.namespace}/${run.name} rejected: ${problem.message}`);
      this.#event(run, "Warning", problem.reason, problem.message);
      this.#writer.mark(run);
      return run;
    }
    setCondition(run, "PodReadyToStartContainers", "True", this.#now());
    setCondition(run, "Initialized", "True", this.#now());
    for (const c of run.containers) {
      if (c.lost) adoptLost(run, c, now);
      if ("terminated" in c.state) continue; // finished before (restartPolicy Never / OnFailure with 0)
      void this.#startContainer(run, c);
    }
    this.#settle(run);
    this.#writer.mark(run);
    return run;
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
      if ("running" in c.state) c.lastState = stoppedState(c, this.#now());
      this.#halt(run, c);
      c.image = next.image;
      c.backoffMs = 0;
      if (c.started) c.restartCount++;
      c.state = { waiting: { reason: "ContainerCreating" } };
      void this.#startContainer(run, c);
      this.#settle(run);
      this.#writer.mark(run);
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
      this.#writer.mark(run);
      return;
    }
    let env: Record<string, string>;
    try {
      env = await resolveEnv(this.#ctx, run, c);
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
    const io = instanceIO({
      host,
      c,
      generation,
      args: c.args.slice(),
      env,
      nodeName: this.#ctx.nodeName,
      podName: run.name,
      defaults: { ...(this.workloadDefaults[kind.name] ?? {}) },
      devices: this.#devices.for(c, `${run.namespace}/${run.name}/${c.name}`),
      now: () => this.#now0(),
      exited: (code, reason, message) => this.#exited(run, c, generation, code, reason, message),
    });
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
      this.#devices.releasePins(c);
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
    this.#writer.mark(run);
  }

  #configError(run: PodRun, c: ContainerRun, err: WorkloadError): void {
    c.state = { waiting: { reason: err.reason, message: err.message } };
    this.#event(run, "Warning", "Failed", `Error: ${err.message}`, c.name);
    this.#writer.mark(run);
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
      this.#writer.mark(run);
      return;
    }
    c.lastState = terminated;
    const wait = crashLoopWait(c, ran);
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
    this.#writer.mark(run);
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
    this.#devices.releasePins(c);
    this.#devices.led(`${run.namespace}/${run.name}/${c.name}`, undefined);
    c.log.end();
  }

  #clearTimers(c: ContainerRun): void {
    for (const t of c.timers) this.#ctx.host.clearTimer(t);
    c.timers.clear();
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
    for (const type of ["ContainersReady", "Ready"]) setCondition(run, type, allReady && !run.terminal ? "True" : "False", this.#now(), allReady && !run.terminal ? undefined : reason, allReady && !run.terminal ? undefined : message);
    if (run.terminal) {
      for (const c of all) this.#halt(run, c);
      this.#trimFinished();
    }
  }

  // ——— deletion ———
  #terminate(run: PodRun): void {
    run.deleting = true;
    for (const c of run.containers) {
      if ("running" in c.state) {
        this.#event(run, "Normal", "Killing", `Stopping container ${c.name}`, c.name);
        const stopped = stoppedState(c, this.#now());
        this.#halt(run, c);
        c.generation++;
        c.state = stopped;
      } else {
        this.#halt(run, c);
        c.generation++;
        if (!("terminated" in c.state)) c.state = { terminated: { exitCode: 0, reason: "ContainerStatusUnknown", message: "The container was never started", finishedAt: this.#now() } };
      }
    }
    run.terminal = true;
    this.#settle(run);
    this.#writer.mark(run);
  }

  #forget(run: PodRun, why: string): void {
    for (const c of run.containers) this.#halt(run, c);
    run.deleted = true;
    this.#pods.delete(run.uid);
    this.#writer.drop(run);
    this.#ctx.log("info", `pod ${run.namespace}/${run.name} ${why}: forgotten`);
  }

  /** Finished pods keep their runtime (logs) while there is room: at most maxPods of them. */
  #trimFinished(): void {
    const finished = [...this.#pods.values()].filter((p) => p.terminal && !p.deleting && !this.#writer.owes(p));
    const extra = finished.length - Math.max(1, this.#options.maxPods);
    for (let i = 0; i < extra; i++) {
      const p = finished[i];
      for (const c of p.containers) {
        c.log = new LogRing(256);
        c.previous = undefined;
      }
    }
  }

  // ——— what the kubelet API serves ———
  /** /pods: the node's pods as v1 objects, with the status this node reports. Fresh objects. */
  pods(): object[] {
    return podObjects(this.#pods.values(), this.#ctx.address(), this.#registry);
  }

  /** Per running container, for /metrics/resource. */
  containers(): ContainerReading[] {
    return containerReadings(this.#pods.values());
  }

  /**
   * /containerLogs/<namespace>/<pod>/<container>: the text, or a stream (follow) that ends when the
   * instance ends; 400/404 with the kubelet's kind of message when there is nothing to read.
   */
  logs(namespace: string, pod: string, container: string, query: string): LogAnswer {
    let run: PodRun | undefined;
    for (const p of this.#pods.values()) if (p.namespace === namespace && p.name === pod) run = p;
    if (!run) return { status: 404, message: `pod ${namespace}/${pod} is not on this node` };
    const c = run.containers.find((x) => x.name === container);
    if (!c) return { status: 404, message: `container ${container} is not valid for pod ${pod}` };
    return answerLogs(c.log, c.previous, query, this.#ctx.clock.anchored ? this.#ctx.clock.now() : 0, { pod, container });
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
