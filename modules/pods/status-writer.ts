// The pods' status writes, as the kubelet's status manager: a merge-PATCH of pods/<name>/status
// per pod whose status changed (changes within COALESCE_MS are one write), one at a time, never
// while the Lease or the node status is on the wire, retried with the shared policy; for a pod
// being deleted whose containers stopped, then the DELETE with grace period 0 and its UID.
import { describeError, toApiError, type ApiClient } from "../api/client";
import type { Host, LogLevel } from "../host";
import { MERGE_PATCH } from "../k8s/paths";
import { TimerLoop } from "../util/loop";
import { RetryPolicy, type FailureKind } from "../util/retry";
import { podStatusBody, type PodRun } from "./model";
import type { WorkloadRegistry } from "./workload";

/** Changes within this are one status write. */
const COALESCE_MS = 50;
/** While the heartbeat is on the wire, look again after this. */
const BUSY_WAIT_MS = 200;

export interface WriterContext {
  host: Host;
  api: ApiClient;
  log(level: LogLevel, message: string): void;
  failure(what: string, err: unknown): FailureKind;
  success(what: string): void;
  busy(): boolean;
  address(): string;
}

export class PodStatusWriter {
  #ctx: WriterContext;
  #registry: WorkloadRegistry;
  #forget: (run: PodRun, why: string) => void;
  #stats: { statusWrites: number; deletions: number };
  #dirty = new Set<PodRun>();
  #loop: TimerLoop;
  #writing = false;
  #retry: RetryPolicy;
  #started = false;

  constructor(ctx: WriterContext, registry: WorkloadRegistry, forget: (run: PodRun, why: string) => void, stats: { statusWrites: number; deletions: number }) {
    this.#ctx = ctx;
    this.#registry = registry;
    this.#forget = forget;
    this.#stats = stats;
    this.#loop = new TimerLoop(ctx.host, () => void this.#pump());
    this.#retry = new RetryPolicy(ctx.host);
  }

  start(): void {
    this.#started = true;
    this.#loop.start(0);
  }

  stop(): void {
    this.#started = false;
    this.#loop.stop();
  }

  /** A write owed for this pod? */
  owes(run: PodRun): boolean {
    return this.#dirty.has(run);
  }

  /** The pod is forgotten: nothing more is written for it. */
  drop(run: PodRun): void {
    this.#dirty.delete(run);
  }

  /** The pod's status changed: written within COALESCE_MS, behind the heartbeat. */
  mark(run: PodRun): void {
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
      this.#ctx.success("writing pod status");
    } catch (err) {
      this.#dirty.add(run);
      next = this.#retry.next(this.#ctx.failure("writing pod status", err), err);
    } finally {
      this.#writing = false;
    }
    if (this.#dirty.size) this.#loop.schedule(next);
  }

  async #write(run: PodRun): Promise<void> {
    if (run.deleted) return;
    const api = this.#ctx.api;
    const base = `/api/v1/namespaces/${run.namespace}/pods/${run.name}`;
    const res = await api.call("PATCH", `${base}/status`, { body: podStatusBody(run, this.#ctx.address(), this.#registry), contentType: MERGE_PATCH, keepBody: 1024, echoIgnored: true });
    this.#stats.statusWrites++;
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
      this.#stats.deletions++;
      this.#forget(run, "deleted (grace period 0 after its containers stopped)");
      return;
    }
    this.#dirty.add(run);
    throw toApiError("DELETE", base, del);
  }
}
