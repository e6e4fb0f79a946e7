// Pushes node status: conditions are evaluated every 10 s and PATCHed (strategic merge) at once when a
// status flips, every 5 min otherwise, and at once on the first renewal after an outage (the node
// lifecycle controller set Ready=Unknown and only the agent can set it back: picokubelet's B2). A
// push that failed stays pending and is retried with the shared retry policy until it lands (B4) —
// slowly after a 401/403, like every other loop. The baselines "since the last push" are its own.
import { toApiError } from "../api/client";
import { addressesFor, statusPatch, HEAP_ANNOTATION, type Address } from "../k8s/bodies";
import { CUSTOM_TYPES, STANDARD_TYPES, evaluateConditions, type ConditionInputs, ConditionTracker, type WireCondition } from "../k8s/conditions";
import { STRATEGIC_MERGE_PATCH, paths } from "../k8s/paths";
import { formatTime } from "../time/clock";
import { TimerLoop } from "../util/loop";
import { RetryPolicy, retryAfterFloor, type FailureKind } from "../util/retry";
import type { NetworkFacts } from "../host";
import type { AgentContext } from "./context";
import type { NodeStatusPort } from "./node";

export const ALL_TYPES: readonly string[] = Object.freeze([...STANDARD_TYPES, ...CUSTOM_TYPES]);

export interface StatusExtras {
  addresses?: Address[];
  nodeInfo?: Record<string, string>;
  capacity?: Record<string, string>;
  /** The kubelet API's port (it may differ from the last boot's on a host that picks one). */
  daemonEndpoints?: { kubeletEndpoint: { Port: number } };
}

/** What the conditions depend on beyond the host: shared state the kubelet owns. */
export interface StatusSources {
  /** Lifetime Lease renewals (Existential). */
  renewals(): number;
  shuttingDown(): boolean;
  /** More annotations to carry on every push (the settings' origin). */
  annotations?(): Record<string, string>;
}

export class StatusReconciler {
  #ctx: AgentContext;
  #sources: StatusSources;
  #loop: TimerLoop;
  #retry: RetryPolicy;
  /** The last push's failure: its kind picks the backoff, its error's Retry-After (if any) the floor. */
  #failure: { kind: FailureKind; err: unknown } = { kind: "api", err: undefined };
  /** Until when the API server's last Retry-After holds pushes back (monotonic ms; 0: it does not). */
  #heldUntil = 0;
  #pushing: Promise<boolean> | undefined;
  #lastPushAt = -Infinity;
  #bootAt: number;
  /** A push is owed: a flip, a forced push, or one that failed. */
  #pending = false;
  #pendingWhy = "";
  #owed = 0; // bumps with every new reason to push, so a push only settles what it carried
  #extras: StatusExtras = {};
  // baselines for the "since the last push" inputs, and the InternalIP last sent
  #reconnectsAtPush: number;
  #bssidAtPush: string | undefined;
  #slipped = false;
  #address = "";
  readonly tracker = new ConditionTracker();
  pushes = 0;

  constructor(ctx: AgentContext, sources: StatusSources) {
    this.#ctx = ctx;
    this.#sources = sources;
    this.#loop = new TimerLoop(ctx.host, () => void this.tick());
    this.#retry = new RetryPolicy(ctx.host);
    this.#bootAt = ctx.host.monotonic();
    const net = ctx.host.network();
    this.#reconnectsAtPush = net.reconnects;
    this.#bssidAtPush = net.bssid;
  }

  #inputs(net: NetworkFacts): ConditionInputs {
    const { host, clock } = this.#ctx;
    const heap = host.heap();
    if (clock.takeSlip()) this.#slipped = true;
    return {
      heapFree: heap?.free,
      heapTotal: heap?.total,
      uptimeSeconds: (host.monotonic() - this.#bootAt) / 1000,
      reconnects: Math.max(0, net.reconnects - this.#reconnectsAtPush),
      renewals: this.#sources.renewals(),
      bssidChanged: net.bssid !== undefined && this.#bssidAtPush !== undefined && net.bssid !== this.#bssidAtPush,
      clockSlipped: this.#slipped,
      network: net.kind,
      shuttingDown: this.#sources.shuttingDown(),
    };
  }

  /** The heap figure rides along with every push (the status subresource keeps metadata changes). */
  annotations(): Record<string, string> {
    const heap = this.#ctx.host.heap();
    const extra = this.#sources.annotations?.() ?? {};
    return heap ? { ...extra, [HEAP_ANNOTATION]: String(heap.free) } : { ...extra };
  }

  /** Evaluates the conditions now; returns the types whose status flipped. */
  evaluate(net = this.#ctx.host.network()): string[] {
    const tracker = this.tracker;
    const before = this.onTransition ? ALL_TYPES.map((t) => tracker.get(t)?.status) : undefined;
    const flipped = tracker.update(evaluateConditions(this.#inputs(net)), formatTime(this.#ctx.clock.now()));
    if (!flipped.length) return flipped;
    this.#owe(`${flipped.map((t) => `${t}=${tracker.get(t)!.status}`).join(", ")}`);
    if (before) {
      // Only a condition that existed changes (as the kubelet's events): the first evaluation is none.
      for (const t of flipped) {
        const from = before[ALL_TYPES.indexOf(t)];
        const c = tracker.get(t)!;
        if (from !== undefined) this.onTransition!(t, c.status, c.reason);
      }
    }
    return flipped;
  }

  /** A condition changed status (type, new status, reason): the kubelet records an Event. */
  onTransition?: (type: string, status: string, reason: string) => void;

  /** A status push is on the wire (Events wait for it). */
  get busy(): boolean {
    return this.#pushing !== undefined;
  }

  /** Owes a push, with extra status fields to carry (merged with any already owed). */
  request(why: string, extras: StatusExtras = {}): void {
    this.#extras = { ...this.#extras, ...extras };
    if (extras.addresses) this.#address = extras.addresses[0]?.type === "InternalIP" ? extras.addresses[0].address : "";
    this.#owe(why);
  }

  #owe(why: string): void {
    this.#pendingWhy = this.#pending ? `${this.#pendingWhy}; ${why}` : why;
    this.#pending = true;
    this.#owed++;
  }

  /** The current conditions and this address went out by other means (with the Node at registration). */
  markPushed(address: string): void {
    this.#pending = false;
    this.#pendingWhy = "";
    this.#address = address;
    this.#lastPushAt = this.#ctx.host.monotonic();
  }

  /** What the node reconciler needs of the status. */
  port(): NodeStatusPort {
    return {
      conditions: () => {
        this.evaluate();
        return this.#wire();
      },
      annotations: () => this.annotations(),
      sentWithNode: (address) => this.markPushed(address),
      seed: (conditions) => this.tracker.seed(conditions as WireCondition[] | undefined),
      owe: (why, extras) => this.request(why, extras),
    };
  }

  #wire(): WireCondition[] {
    return this.tracker.wire(formatTime(this.#ctx.clock.now()), ALL_TYPES);
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

  /** The InternalIP follows the address (a DHCP change, a move from Wi-Fi to Ethernet). */
  #followAddress(address: string): void {
    if (address && address !== this.#address) this.request(`address is now ${address}`, { addresses: addressesFor(this.#ctx.nodeName, address) });
  }

  /** One check: evaluate, push if owed or due, schedule the next check. */
  async tick(): Promise<void> {
    const net = this.#ctx.host.network();
    this.evaluate(net);
    this.#followAddress(net.address);
    const due = this.#ctx.host.monotonic() - this.#lastPushAt >= this.#ctx.options.statusReportSeconds * 1000;
    let next = this.#ctx.options.conditionCheckSeconds * 1000;
    const held = this.#heldUntil - this.#ctx.host.monotonic();
    if ((this.#pending || due) && held > 0) {
      // Told Retry-After: the push waits for its end (flips were evaluated and stay owed).
      next = Math.min(next, held);
    } else if (this.#pending || due) {
      const ok = await this.push(this.#pending ? this.#pendingWhy : "periodic status report");
      if (!ok) next = this.#retry.next(this.#failure.kind, this.#failure.err);
    }
    this.#loop.schedule(next);
  }

  /**
   * After an outage (a renewal worked again) or new settings: pushes at once, unless the last push was told
   * Retry-After and its time is not up — then the push is owed and the loop's retry, which waits
   * it out, sends it.
   */
  async pushUnlessHeld(why: string): Promise<boolean> {
    if (this.#ctx.host.monotonic() < this.#heldUntil) {
      this.request(why);
      return false;
    }
    return this.pushNow(why);
  }

  /** Evaluates and pushes at once, whatever is owed, Retry-After or not (at shutdown). */
  async pushNow(why: string): Promise<boolean> {
    this.request(why);
    this.evaluate();
    return this.push(why);
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
    const { api, nodeName, host } = this.#ctx;
    const path = paths.nodeStatus(nodeName);
    const extras = this.#extras;
    const owed = this.#owed;
    const body = statusPatch(this.#wire(), this.annotations(), extras);
    try {
      const res = await api.call("PATCH", path, { body, contentType: STRATEGIC_MERGE_PATCH, keepBody: 2048, echoIgnored: true });
      if (res.status !== 200) throw toApiError("PATCH", path, res);
    } catch (err) {
      this.#failure = { kind: this.#ctx.failure("pushing node status", err), err };
      const held = retryAfterFloor(err);
      this.#heldUntil = held ? host.monotonic() + held : 0;
      if (!this.#pending) this.#owe(why); // never lost: retried until it lands
      return false;
    }
    this.pushes++;
    this.#lastPushAt = host.monotonic();
    if (this.#owed === owed) {
      this.#pending = false;
      this.#pendingWhy = "";
    }
    if (this.#extras === extras) this.#extras = {};
    this.#retry.reset();
    this.#ctx.success("pushing node status");
    this.#ctx.log("debug", `status pushed (${why})`);
    const net = host.network();
    this.#reconnectsAtPush = net.reconnects;
    this.#bssidAtPush = net.bssid;
    this.#slipped = false;
    return true;
  }
}
