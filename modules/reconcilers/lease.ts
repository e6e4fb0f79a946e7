// Keeps the node's Lease in kube-node-lease renewed: every 0.25 × duration (10 s for 40 s) with up to
// 4 % jitter, measured after each renewal, as the kubelet does. A deleted Lease is created again; a
// failure is retried with the shared policy: quickly, an auth rejection slowly (picokubelet hammered
// 401s, B7).
import { toApiError } from "../api/client";
import { DEFAULTS } from "../defaults";
import { leaseBody, leaseOwnerPatch, leaseRenewPatch } from "../k8s/bodies";
import { MERGE_PATCH, paths } from "../k8s/paths";
import { formatMicroTime } from "../time/clock";
import { TimerLoop } from "../util/loop";
import { RetryPolicy } from "../util/retry";
import type { AgentContext } from "./context";

export class LeaseReconciler {
  #ctx: AgentContext;
  #loop: TimerLoop;
  #created = false;
  #retry: RetryPolicy;
  /** Lifetime successful renewals (Existential counts them). */
  renewals = 0;
  /** The renewTime of the last renewal the API server accepted (RFC 3339, six digits). */
  lastRenewTime = "";
  /** Did the last attempt fail? */
  failing = false;
  /** Called after every successful renewal; `recovered` when the one before had failed. */
  onRenewed?: (recovered: boolean) => void;

  constructor(ctx: AgentContext) {
    this.#ctx = ctx;
    this.#loop = new TimerLoop(ctx.host, () => void this.renew());
    this.#retry = new RetryPolicy(() => ctx.host.random());
  }

  get intervalMs(): number {
    return this.#ctx.options.leaseDurationSeconds * 1000 * DEFAULTS.renewIntervalFraction;
  }

  /**
   * Makes sure the Lease exists and is owned by the current Node object (GET, then create or fix).
   * A Lease created here carries a fresh renewTime, so it counts as a renewal.
   */
  async ensure(): Promise<void> {
    const { api, options, nodeName } = this.#ctx;
    const got = await api.call("GET", paths.lease(nodeName), { keepBody: 4096 });
    if (got.status === 404) return this.#create();
    if (got.status !== 200) throw toApiError("GET", paths.lease(nodeName), got);
    const owners: any[] = got.json?.metadata?.ownerReferences ?? [];
    if (!owners.some((o) => o.kind === "Node" && o.uid === this.#ctx.nodeUid)) {
      const path = paths.lease(nodeName);
      const res = await api.call("PATCH", path, { body: leaseOwnerPatch(nodeName, this.#ctx.nodeUid, options.leaseDurationSeconds), contentType: MERGE_PATCH, keepBody: 2048 });
      if (res.status !== 200) throw toApiError("PATCH", path, res);
    }
  }

  async #create(): Promise<void> {
    const { api, options, nodeName, clock } = this.#ctx;
    const renewTime = formatMicroTime(clock.now());
    const body = leaseBody(nodeName, options.leaseDurationSeconds, renewTime, this.#ctx.nodeUid);
    const res = await api.call("POST", paths.leases, { body, keepBody: 2048 });
    if (res.status === 409) return; // created meanwhile (a retried request): it exists, which is all we need
    if (res.status !== 201) throw toApiError("POST", paths.leases, res);
    this.lastRenewTime = renewTime;
    this.#ctx.log("info", `Lease kube-node-lease/${nodeName} created`);
    this.#created = true;
  }

  /** Starts renewing: at once, unless ensure() just created the Lease with a fresh renewTime. */
  start(): void {
    const fresh = this.#created;
    this.#created = false;
    this.#loop.start(0);
    if (fresh) this.#succeeded();
  }

  stop(): void {
    this.#loop.stop();
  }

  /** A renewal is on the wire (Events wait for it). */
  renewing = false;

  /** One renewal attempt; schedules the next. */
  async renew(): Promise<boolean> {
    const { api, nodeName, clock } = this.#ctx;
    const path = paths.lease(nodeName);
    this.renewing = true;
    try {
      const renewTime = formatMicroTime(clock.now());
      const res = await api.call("PATCH", path, { body: leaseRenewPatch(renewTime), contentType: MERGE_PATCH, keepBody: 2048, echoIgnored: true });
      if (res.status === 200) this.lastRenewTime = renewTime;
      else if (res.status === 404) {
        await this.#create();
        this.#created = false;
      } else if (res.status !== 200) throw toApiError("PATCH", path, res);
    } catch (err) {
      this.renewing = false;
      this.failing = true;
      this.#loop.schedule(this.#retry.next(this.#ctx.failure("renewing the Lease", err)));
      return false;
    }
    this.renewing = false;
    this.#succeeded();
    return true;
  }

  #succeeded(): void {
    const { host } = this.#ctx;
    const recovered = this.failing;
    this.failing = false;
    this.renewals++;
    this.#retry.reset();
    this.#ctx.success("renewing the Lease");
    this.onRenewed?.(recovered);
    this.#loop.schedule(this.intervalMs * (1 + DEFAULTS.renewJitter * host.random()));
  }
}
