// Pushes node status: conditions are evaluated every 10 s and PATCHed (strategic merge) at once when a
// status flips, every 5 min otherwise, and at once on the first renewal after an outage (the node
// lifecycle controller set Ready=Unknown and only the agent can set it back: picokubelet's B2). A
// push that failed stays pending and is retried with backoff until it lands (B4).
import { toApiError } from "../api/client";
import { CUSTOM_TYPES, STANDARD_TYPES, evaluateConditions, type ConditionInputs, ConditionTracker } from "../k8s/conditions";
import { statusPatch, type Address } from "../k8s/bodies";
import { STRATEGIC_MERGE_PATCH, paths } from "../k8s/paths";
import { formatTime } from "../time/clock";
import { Backoff } from "../util/backoff";
import { TimerLoop } from "../util/loop";
import type { AgentContext } from "../kubelet/context";

export const ALL_TYPES = [...STANDARD_TYPES, ...CUSTOM_TYPES];

export interface StatusExtras {
  addresses?: Address[];
  nodeInfo?: Record<string, string>;
  capacity?: Record<string, string>;
}

export class StatusReconciler {
  #ctx: AgentContext;
  #inputs: () => ConditionInputs;
  #loop: TimerLoop;
  #pushing: Promise<boolean> | undefined;
  #backoff: Backoff;
  #lastPushAt = -Infinity;
  /** A push is owed: a flip, a forced push, or one that failed. */
  #pending = false;
  #pendingWhy = "";
  #owed = 0; // bumps with every new reason to push, so a push only settles what it carried
  #extras: StatusExtras = {};
  readonly tracker = new ConditionTracker();
  pushes = 0;
  /** Called after each successful push (baselines for "since the last push" inputs). */
  onPushed?: () => void;
  /** Provides the annotations for each push (the heap figure). */
  annotations: () => Record<string, string> = () => ({});

  constructor(ctx: AgentContext, inputs: () => ConditionInputs) {
    this.#ctx = ctx;
    this.#inputs = inputs;
    this.#loop = new TimerLoop(ctx.host, () => void this.tick());
    this.#backoff = new Backoff({ initialMs: 1000, maxMs: ctx.options.conditionCheckSeconds * 1000 }, () => ctx.host.random());
  }

  /** Evaluates the conditions now; returns the types whose status flipped. */
  evaluate(): string[] {
    const flipped = this.tracker.update(evaluateConditions(this.#inputs()), formatTime(this.#ctx.clock.now()));
    if (flipped.length) this.#owe(`${flipped.map((t) => `${t}=${this.tracker.get(t)!.status}`).join(", ")}`);
    return flipped;
  }

  /** Owes a push, with extra status fields to carry (merged with any already owed). */
  request(why: string, extras: StatusExtras = {}): void {
    this.#extras = { ...this.#extras, ...extras };
    this.#owe(why);
  }

  #owe(why: string): void {
    this.#pendingWhy = this.#pending ? `${this.#pendingWhy}; ${why}` : why;
    this.#pending = true;
    this.#owed++;
  }

  /** The current conditions went out by other means (with the Node at registration). */
  markPushed(): void {
    this.#pending = false;
    this.#pendingWhy = "";
    this.#lastPushAt = this.#ctx.host.monotonic();
  }

  get pending(): boolean {
    return this.#pending;
  }

  start(): void {
    this.#loop.start(0);
  }

  stop(): void {
    this.#loop.stop();
  }

  /** One check: evaluate, push if owed or due, schedule the next check. */
  async tick(): Promise<void> {
    this.evaluate();
    const due = this.#ctx.host.monotonic() - this.#lastPushAt >= this.#ctx.options.statusReportSeconds * 1000;
    let next = this.#ctx.options.conditionCheckSeconds * 1000;
    if (this.#pending || due) {
      const ok = await this.push(this.#pending ? this.#pendingWhy : "periodic status report");
      if (!ok) next = this.#backoff.nextDelay();
    }
    this.#loop.schedule(next);
  }

  /** Pushes now (one push at a time; a caller arriving during a push waits for it). */
  async push(why: string): Promise<boolean> {
    while (this.#pushing) await this.#pushing;
    this.#pushing = this.#push(why);
    try {
      return await this.#pushing;
    } finally {
      this.#pushing = undefined;
    }
  }

  async #push(why: string): Promise<boolean> {
    const { api, nodeName, clock } = this.#ctx;
    const path = paths.nodeStatus(nodeName);
    const extras = this.#extras;
    const owed = this.#owed;
    const body = statusPatch(this.tracker.wire(formatTime(clock.now()), ALL_TYPES), this.annotations(), extras);
    try {
      const res = await api.call("PATCH", path, { body, contentType: STRATEGIC_MERGE_PATCH, keepBody: 2048 });
      if (res.status !== 200) throw toApiError("PATCH", path, res);
    } catch (err) {
      this.#ctx.failure("pushing node status", err);
      if (!this.#pending) this.#owe(why); // never lost: retried until it lands
      return false;
    }
    this.pushes++;
    this.#lastPushAt = this.#ctx.host.monotonic();
    if (this.#owed === owed) {
      this.#pending = false;
      this.#pendingWhy = "";
    }
    if (this.#extras === extras) this.#extras = {};
    this.#backoff.reset();
    this.#ctx.success("pushing node status");
    this.#ctx.log("debug", `status pushed (${why})`);
    this.onPushed?.();
    return true;
  }

  /** Before the first push after an outage: adopt what the server now says (the controller's Unknown). */
  async resyncFromServer(): Promise<void> {
    const { api, nodeName } = this.#ctx;
    const res = await api.call("GET", paths.node(nodeName), { keepBody: 65536 });
    if (res.status === 200 && res.json) this.tracker.seed(res.json.status?.conditions);
  }
}
