// Keeps the node's Lease in kube-node-lease renewed: every 0.25 × duration (10 s for 40 s) with up to
// 4 % jitter, measured after each renewal, as the kubelet does. A deleted Lease is created again; a
// failure is retried with the shared policy: quickly, an auth rejection or a refused server
// certificate slowly (picokubelet hammered 401s, B7).
import { ApiError, toApiError } from "../api/client";
import { HttpError } from "../http/parser";
import { DEFAULTS } from "../defaults";
import { leaseBody, leaseOwnerPatch, leaseRenewPatch } from "../k8s/bodies";
import { MERGE_PATCH, paths } from "../k8s/paths";
import { formatMicroTime } from "../time/clock";
import { TimerLoop } from "../util/loop";
import { RETRY } from "../defaults";
import { RetryPolicy } from "../util/retry";
import type { HostSocket } from "../host";
import type { AgentContext } from "./context";

/**
 * A failure that came over a live connection from something that answers for the API server while
 * it is away: a 5xx without a Retry-After (an HTTP/2 balancer or proxy whose backend is down, a
 * kube-apiserver whose etcd is) or a reset stream. The connection says nothing about the return —
 * it stays up throughout — so the probe asks over it instead (see #startProbe).
 */
function answeredForAnAbsentServer(err: unknown): boolean {
  if (err instanceof ApiError) return err.status >= 500 && err.retryAfterMs === undefined;
  return err instanceof HttpError && err.streamReset === true;
}

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
  /**
   * How late the last renewal landed: from when its timer was due (the interval after the renewal
   * before) to the API server's answer — timer lag plus the request's round trip. -1 when it was not
   * a scheduled renewal (the first, or one after a failure). Read by the fleet benchmark.
   */
  lastLatenessMs = -1;
  #dueAt = -1;
  /** Called after every successful renewal; `recovered` when the one before had failed. */
  onRenewed?: (recovered: boolean) => void;

  constructor(ctx: AgentContext) {
    this.#ctx = ctx;
    this.#loop = new TimerLoop(ctx.host, () => void this.renew());
    this.#retry = new RetryPolicy(ctx.host);
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
    this.#stopProbe();
  }

  #probeTimer: unknown;
  #probeSocket: HostSocket | undefined;
  /** A GET /readyz probe is on the wire (it ends by its answer or by the request timeout). */
  #probeAsking = false;
  #probeToken: object | undefined;
  #probeEvery: number = RETRY.probeMs;
  #probeTriggered = false;
  /** Probes made and those that found the API server (the log and tests read them). */
  probes = 0;

  /**
   * While renewals fail for want of a path to the API server: a TCP connect every ~second (see
   * RETRY.probeMs). While the connection to the API server stays up and what answers on it is not the
   * API server (answeredForAnAbsentServer), a GET /readyz over that connection instead — a few dozen
   * bytes, no handshake — and 200 means back: kube-apiserver says ready only with etcd behind it, and
   * a balancer answers for its backend. The same doubling applies when the renewal it triggers fails.
   */
  #startProbe(): void {
    if (this.#probeTimer !== undefined || this.#probeSocket || this.#probeAsking) return;
    const { host } = this.#ctx;
    this.#probeTimer = host.setTimer(() => {
      this.#probeTimer = undefined;
      if (!this.failing) return;
      this.probes++;
      let done = false;
      const mine = {};
      this.#probeToken = mine;
      const finish = (reachable: boolean) => {
        if (done || this.#probeToken !== mine) return; // over, or the probing was stopped meanwhile
        done = true;
        this.#probeAsking = false;
        this.#probeSocket?.close();
        this.#probeSocket = undefined;
        if (!this.failing) return;
        if (reachable && !this.renewing) {
          // Back: renew now. Should that renewal fail too, the next probes come less often.
          if (this.#probeTriggered) this.#probeEvery = Math.min(RETRY.probeMaxMs, this.#probeEvery * 2);
          this.#probeTriggered = true;
          this.#loop.schedule(0);
        } else this.#startProbe();
      };
      // Accepted and still open a moment later: a server waiting for our ClientHello. A proxy or
      // balancer with no server behind it accepts too, then closes at once — that is not back.
      let hold: unknown;
      const closed = () => {
        host.clearTimer(hold);
        finish(false);
      };
      const { api } = this.#ctx;
      if (api.connection.connected) {
        this.#probeAsking = true;
        void api.call("GET", "/readyz", { keepBody: 64 }).then(
          (res) => finish(res.status === 200),
          () => finish(false),
        );
        return;
      }
      try {
        this.#probeSocket = host.connect(
          { host: this.#ctx.api.server.host, port: this.#ctx.api.server.port },
          { onConnect: () => (hold = host.setTimer(() => finish(true), RETRY.probeHoldMs)), onData: () => undefined, onClose: closed },
        );
      } catch {
        finish(false);
      }
    }, this.#probeEvery * (0.5 + host.random()));
  }

  #stopProbe(): void {
    this.#probeToken = undefined;
    this.#probeAsking = false;
    this.#ctx.host.clearTimer(this.#probeTimer);
    this.#probeTimer = undefined;
    this.#probeSocket?.close();
    this.#probeSocket = undefined;
    this.#probeEvery = RETRY.probeMs;
    this.#probeTriggered = false;
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
      this.#dueAt = -1;
      const kind = this.#ctx.failure("renewing the Lease", err);
      const delay = this.#retry.next(kind, err);
      this.#loop.schedule(delay);
      // An answer for an absent server is probed only once the backoff waits longer than a probe
      // would: the first retries (100 ms doubling) stay as they are for a server's own passing 500.
      if (kind === "network" || (answeredForAnAbsentServer(err) && delay > RETRY.probeMs)) this.#startProbe();
      // A refused certificate: the TCP connect succeeds whatever certificate is behind it, so a probe
      // would only turn the certificate backoff into a full handshake every second or so.
      else if (kind === "certificate") this.#stopProbe();
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
    this.#stopProbe();
    this.renewals++;
    const now = host.monotonic();
    this.lastLatenessMs = this.#dueAt < 0 ? -1 : now - this.#dueAt;
    this.#retry.reset();
    this.#ctx.success("renewing the Lease");
    this.onRenewed?.(recovered);
    const next = this.intervalMs * (1 + DEFAULTS.renewJitter * host.random());
    this.#dueAt = now + next;
    this.#loop.schedule(next);
  }
}
