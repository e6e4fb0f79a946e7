// The node agent: validates its configuration, anchors the clock, registers the Node (reconciling an
// existing one), keeps the Lease and the status, drives the LED, and shuts down gracefully. It owns
// the shared state; the reconcilers each do one job on their own timer.
import { ApiClient, ApiError, describeError, metadataFromPrefix, toApiError } from "../api/client";
import { HttpError } from "../api/http";
import type { Host, LogLevel, TlsOptions } from "../host";
import { HEAP_ANNOTATION, addressesFor, labelsPatch, nodeBody, type Address } from "../k8s/bodies";
import { nodeNameProblem, portProblem, serverHostProblem } from "../k8s/names";
import { MERGE_PATCH, paths } from "../k8s/paths";
import { LedFrames } from "../led/frames";
import { LedEngine, type LedState } from "../led/patterns";
import { LeaseReconciler } from "../reconcilers/lease";
import { ALL_TYPES, StatusReconciler } from "../reconcilers/status";
import { WallClock, formatTime } from "../time/clock";
import { Backoff } from "../util/backoff";
import { AGENT_VERSION } from "../version";
import type { AgentContext, AgentOptions } from "./context";
import { BOARD_DEFAULTS, bootIdFrom, buildIdentity, type IdentityConfig, type NodeIdentity } from "./identity";

export interface KubeletOptions {
  nodeName: string;
  server: { host: string; port: number };
  /** TLS to the API server; omitted only for plain-HTTP test servers. */
  tls?: TlsOptions;
  token?: string;
  identity?: Partial<Omit<IdentityConfig, "name">>;
  leaseDurationSeconds?: number;
  statusReportSeconds?: number;
  conditionCheckSeconds?: number;
  /** LED frames per second when the host has an LED; 0 turns the frame timer off. */
  ledFps?: number;
  requestTimeoutMs?: number;
}

export class ConfigError extends Error {
  problems: string[];
  constructor(problems: string[]) {
    super(`invalid configuration: ${problems.join("; ")}`);
    this.problems = problems;
  }
}

/** Every problem with the options, in words a user can act on; empty when they are fine. */
export function configProblems(options: KubeletOptions): string[] {
  const problems: string[] = [];
  const name = nodeNameProblem(options.nodeName);
  if (name) problems.push(name);
  const host = serverHostProblem(options.server?.host);
  if (host) problems.push(host);
  const port = portProblem(options.server?.port);
  if (port) problems.push(port);
  if (options.tls && options.tls.verify && !options.tls.ca) problems.push("TLS verification is on but no cluster CA was given");
  if (options.tls && !options.tls.serverName) problems.push("TLS needs a server name to verify the API server's certificate");
  const lease = options.leaseDurationSeconds ?? 40;
  if (!(Number.isFinite(lease) && lease >= 4)) problems.push(`lease duration ${lease} s is too short (at least 4 s)`);
  return problems;
}

export type KubeletPhase = "booting" | "anchoring" | "registering" | "running" | "stopping" | "stopped";

export interface KubeletSnapshot {
  phase: KubeletPhase;
  led: LedState;
  nodeName: string;
  renewals: number;
  statusPushes: number;
  lastError: string;
  /** Wall-clock time of the last successful renewal, RFC 3339. */
  lastRenewTime: string;
  conditions: { type: string; status: string; reason: string }[];
  bytesSent: number;
  bytesReceived: number;
  connects: number;
}

export class Kubelet {
  readonly host: Host;
  readonly led = new LedEngine();
  readonly clock: WallClock;
  readonly api: ApiClient;
  readonly lease: LeaseReconciler;
  readonly status: StatusReconciler;
  readonly identity: NodeIdentity;
  phase: KubeletPhase = "booting";
  #options: KubeletOptions;
  #ctx: AgentContext;
  #bootAt: number;
  #stopped = false;
  #wake: (() => void) | undefined;
  #frames: LedFrames | undefined;
  // error bookkeeping: one log line per distinct failure, not one per retry
  #lastError = "";
  #lastErrorKind: "auth" | "network" | "api" | "" = "";
  #errorRepeats = 0;
  #apiErrorStreak = 0;
  // baselines for the "since the last status push" condition inputs
  #reconnectsAtPush: number;
  #bssidAtPush: string | undefined;
  #slipped = false;
  #pushedAddress = "";
  #started: Promise<void> | undefined;
  #registered!: () => void;
  /** Resolves once the Node is registered and the Lease exists. */
  readonly registered: Promise<void>;

  constructor(options: KubeletOptions, host: Host) {
    const problems = configProblems(options);
    if (problems.length) throw new ConfigError(problems);
    this.host = host;
    this.#options = options;
    this.#bootAt = host.monotonic();
    this.registered = new Promise((r) => (this.#registered = r));
    this.clock = new WallClock({
      monotonic: () => host.monotonic(),
      onAnchor: (t) => host.setSystemTime?.(t),
    });
    const agent: AgentOptions = {
      leaseDurationSeconds: options.leaseDurationSeconds ?? 40,
      statusReportSeconds: options.statusReportSeconds ?? 300,
      conditionCheckSeconds: options.conditionCheckSeconds ?? 10,
    };
    this.api = new ApiClient({
      host,
      server: options.server,
      tls: options.tls,
      token: options.token,
      clock: this.clock,
      userAgent: `xs-kubelet/${AGENT_VERSION} (${host.name})`,
      timeoutMs: options.requestTimeoutMs,
    });
    const heap = host.heap();
    const net = host.network();
    this.identity = buildIdentity(
      { name: options.nodeName, ...BOARD_DEFAULTS, osImage: "Moddable SDK", kernelVersion: "unknown", ...options.identity },
      net.mac,
      bootIdFrom(host.randomBytes(16)),
      heap?.total,
    );
    this.#reconnectsAtPush = net.reconnects;
    this.#bssidAtPush = net.bssid;
    this.#ctx = {
      host,
      api: this.api,
      clock: this.clock,
      options: agent,
      nodeName: options.nodeName,
      nodeUid: "",
      log: (level, message) => this.#log(level, message),
      failure: (what, err) => this.#failure(what, err),
      success: (what) => this.#success(what),
    };
    this.lease = new LeaseReconciler(this.#ctx);
    this.status = new StatusReconciler(this.#ctx, () => this.#conditionInputs());
    this.status.annotations = () => this.#annotations();
    this.status.onPushed = () => {
      const n = host.network();
      this.#reconnectsAtPush = n.reconnects;
      this.#bssidAtPush = n.bssid;
      this.#slipped = false;
    };
    this.lease.onRenewed = (recovered) => {
      if (this.lease.renewals > 1) this.led.activity(host.monotonic());
      if (recovered) void this.#recover();
      this.#updateLed();
    };
  }

  /** Starts the agent; returns at once. Failures are retried with backoff, never thrown. */
  start(): void {
    if (this.#started) return;
    this.#log("info", `xs-kubelet ${AGENT_VERSION} starting as node "${this.#options.nodeName}" on ${this.host.name}; API server ${this.#options.server.host}:${this.#options.server.port}`);
    if (this.#options.tls && !this.#options.tls.verify) {
      this.#log("warn", "TLS VERIFICATION IS OFF (verify: false): anyone on the network path can impersonate the API server and take this node's credentials");
    }
    if (!this.#options.token && !this.#options.tls?.clientCertificate) this.#log("warn", "no credentials configured (no token, no client certificate): the API server will treat this agent as anonymous");
    const fps = this.#options.ledFps ?? 30;
    const show = this.host.showLed;
    if (show && fps > 0) {
      this.#frames = new LedFrames(this.led, this.host, (r, g, b) => show.call(this.host, r, g, b), Math.round(1000 / fps));
      this.#frames.start();
    }
    this.#started = this.#bootstrap().catch((err) => {
      // Only a bug gets here; say so and stay up rather than crash-loop.
      this.#log("error", `internal error during bootstrap: ${describeError(err)}`);
      this.#updateLed("warning");
    });
  }

  async #bootstrap(): Promise<void> {
    this.phase = "anchoring";
    this.#updateLed();
    await this.#retry("reading the clock from GET /version", async () => {
      const res = await this.api.call("GET", paths.version, { keepBody: 1024 });
      if (!this.clock.anchored) throw new Error(`GET /version: ${res.status} without a usable Date header`);
      if (res.status === 401 || res.status === 403) throw toApiError("GET", paths.version, res);
    });
    this.phase = "registering";
    this.#updateLed();
    await this.#retry("registering the Node", () => this.#register());
    await this.#retry("creating the Lease", () => this.lease.ensure());
    if (this.#stopped) return;
    this.phase = "running";
    this.#registered();
    this.lease.start();
    this.status.start();
    this.#updateLed();
  }

  /** Runs step until it works (or the agent stops), with 100 ms → 7 s backoff (auth: 10 s → 5 min). */
  async #retry(what: string, step: () => Promise<void>): Promise<void> {
    const backoff = new Backoff({ initialMs: 100, maxMs: 7000 }, () => this.host.random());
    const authBackoff = new Backoff({ initialMs: 10_000, maxMs: 300_000 }, () => this.host.random());
    while (!this.#stopped) {
      try {
        await step();
        this.#success(what);
        return;
      } catch (err) {
        const auth = this.#failure(what, err);
        await this.#sleep((auth ? authBackoff : backoff).nextDelay());
      }
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = this.host.setTimer(() => {
        this.#wake = undefined;
        resolve();
      }, ms);
      this.#wake = () => {
        this.host.clearTimer(timer);
        this.#wake = undefined;
        resolve();
      };
    });
  }

  async #register(): Promise<void> {
    const net = this.host.network();
    const addresses = addressesFor(this.#options.nodeName, net.address);
    this.status.evaluate();
    const body = nodeBody(this.identity, addresses, this.status.tracker.wire(formatTime(this.clock.now()), ALL_TYPES), this.#annotations());
    const res = await this.api.call("POST", paths.nodes, { body, keepBody: 16384 });
    if (res.status === 201) {
      this.#ctx.nodeUid = metadataFromPrefix(res, (b) => this.host.utf8Decode(b)).uid ?? "";
      this.#pushedAddress = net.address;
      this.#log("info", `Node ${this.#options.nodeName} registered`);
      // Conditions went out with the Node; the status loop owes nothing yet.
      this.status.markPushed();
      if (!this.#ctx.nodeUid) await this.#readUid();
      return;
    }
    if (res.status !== 409) throw toApiError("POST", paths.nodes, res);
    await this.#reconcileExisting(addresses);
  }

  async #readUid(): Promise<void> {
    const path = paths.node(this.#options.nodeName);
    const got = await this.api.call("GET", path, { keepBody: 4096 });
    const uid = got.status === 200 ? metadataFromPrefix(got, (b) => this.host.utf8Decode(b)).uid : undefined;
    if (!uid) throw toApiError("GET", path, got);
    this.#ctx.nodeUid = uid;
  }

  /** 409: the Node exists (a reboot, or made by hand). Adopt it and bring it in line (picokubelet's B5). */
  async #reconcileExisting(addresses: Address[]): Promise<void> {
    const path = paths.node(this.#options.nodeName);
    const got = await this.api.call("GET", path, { keepBody: 65536 });
    const uid = got.status === 200 ? metadataFromPrefix(got, (b) => this.host.utf8Decode(b)).uid : undefined;
    if (!uid) throw toApiError("GET", path, got);
    this.#ctx.nodeUid = uid;
    // A Node too big to keep whole (huge managedFields) cannot be compared: then every label and
    // condition is simply sent again.
    const node = got.json ?? { metadata: {} };
    this.status.tracker.seed(node.status?.conditions);
    const labels = node.metadata.labels ?? {};
    const wrong: Record<string, string> = {};
    for (const [k, v] of Object.entries(this.identity.labels)) if (labels[k] !== v) wrong[k] = v;
    if (Object.keys(wrong).length) {
      const res = await this.api.call("PATCH", path, { body: labelsPatch(wrong), contentType: MERGE_PATCH, keepBody: 2048 });
      if (res.status !== 200) throw toApiError("PATCH", path, res);
    }
    // Status fields the agent owns always go out once after a 409: a new bootID, perhaps a new IP.
    this.status.request("reconciling the existing Node", {
      addresses,
      nodeInfo: this.identity.nodeInfo,
      capacity: this.identity.capacity,
    });
    this.#pushedAddress = addresses[0]?.type === "InternalIP" ? addresses[0].address : "";
    this.#log("info", `Node ${this.#options.nodeName} already existed: adopted it (uid ${this.#ctx.nodeUid})`);
  }

  /** After an outage: read the controller's verdict, then tell it the truth at once. */
  async #recover(): Promise<void> {
    try {
      await this.status.resyncFromServer();
    } catch {
      // the push below still goes out; only transition times may be off
    }
    this.status.request("first renewal after an outage");
    this.status.evaluate();
    await this.status.push("first renewal after an outage");
  }

  #conditionInputs() {
    const net = this.host.network();
    const heap = this.host.heap();
    if (this.clock.takeSlip()) this.#slipped = true;
    // The InternalIP follows the address (a DHCP change, a move from Wi-Fi to Ethernet).
    if (this.phase === "running" && net.address && net.address !== this.#pushedAddress) {
      this.#pushedAddress = net.address;
      this.status.request(`address is now ${net.address}`, { addresses: addressesFor(this.#options.nodeName, net.address) });
    }
    return {
      heapFree: heap?.free,
      heapTotal: heap?.total,
      uptimeSeconds: (this.host.monotonic() - this.#bootAt) / 1000,
      reconnects: Math.max(0, net.reconnects - this.#reconnectsAtPush),
      renewals: this.lease.renewals,
      bssidChanged: net.bssid !== undefined && this.#bssidAtPush !== undefined && net.bssid !== this.#bssidAtPush,
      clockSlipped: this.#slipped,
      network: net.kind,
      shuttingDown: this.phase === "stopping" || this.phase === "stopped",
    };
  }

  #annotations(): Record<string, string> {
    const heap = this.host.heap();
    return heap ? { [HEAP_ANNOTATION]: String(heap.free) } : {};
  }

  /**
   * Graceful shutdown: Ready=False ("node is shutting down") is pushed; with decommission the Node is
   * deleted too (its Lease goes with it through the ownerReference).
   */
  async stop(options: { decommission?: boolean } = {}): Promise<void> {
    if (this.phase === "stopped") return;
    const wasRunning = this.phase === "running";
    this.#stopped = true;
    this.#wake?.();
    this.lease.stop();
    this.status.stop();
    this.phase = "stopping";
    if (wasRunning) {
      this.status.evaluate();
      const ok = await this.status.push("node is shutting down");
      if (ok) this.#log("info", "reported Ready=False: node is shutting down");
      if (options.decommission) {
        const path = paths.node(this.#options.nodeName);
        try {
          const res = await this.api.call("DELETE", path, { keepBody: 2048 });
          if (res.status !== 200 && res.status !== 202 && res.status !== 404) throw toApiError("DELETE", path, res);
          this.#log("info", `Node ${this.#options.nodeName} deleted (decommissioned); its Lease goes with it`);
        } catch (err) {
          const hint =
            err instanceof ApiError && err.status === 403
              ? ` — a system:node identity may not delete its own Node; run "kubectl delete node ${this.#options.nodeName}", or use the ServiceAccount identity from deploy/, which may`
              : "";
          this.#log("error", `decommission failed: ${describeError(err)}${hint}`);
        }
      }
    }
    await this.#started;
    this.api.close();
    this.phase = "stopped";
    this.#frames?.stop();
    this.led.setState("off", this.host.monotonic());
    this.host.showLed?.(0, 0, 0);
  }

  #updateLed(force?: LedState): void {
    const now = this.host.monotonic();
    let state: LedState;
    if (force) state = force;
    else if (this.phase === "stopping" || this.phase === "stopped") state = "off";
    else if (this.#lastErrorKind === "auth") state = "warning";
    else if (this.#lastErrorKind === "network" || !this.host.network().connected) state = "disconnected";
    else if (this.#apiErrorStreak >= 3) state = "warning";
    else if (this.phase === "running" && this.lease.renewals > 0 && !this.lease.failing) state = "healthy";
    else state = "connecting";
    this.led.setState(state, now);
  }

  #failure(what: string, err: unknown): boolean {
    const auth = err instanceof ApiError && (err.status === 401 || err.status === 403);
    const network = err instanceof HttpError && err.kind !== "protocol";
    this.#lastErrorKind = auth ? "auth" : network ? "network" : "api";
    if (!auth && !network) this.#apiErrorStreak++;
    const line = `${what} failed: ${describeError(err)}${auth && (err as ApiError).status === 401 ? " — the token or client certificate is not accepted; check the credentials" : ""}`;
    if (line !== this.#lastError) {
      this.#lastError = line;
      this.#errorRepeats = 1;
      this.#log(auth ? "error" : "warn", line);
    } else if (++this.#errorRepeats % 30 === 0) {
      this.#log("warn", `still failing after ${this.#errorRepeats} attempts: ${line}`);
    }
    this.#updateLed();
    return auth;
  }

  #success(what: string): void {
    if (this.#lastError) {
      this.#log("info", `${what} works again${this.#errorRepeats > 1 ? ` after ${this.#errorRepeats} failed attempts` : ""}`);
    }
    this.#lastError = "";
    this.#lastErrorKind = "";
    this.#errorRepeats = 0;
    this.#apiErrorStreak = 0;
    this.#updateLed();
  }

  #log(level: LogLevel, message: string): void {
    this.host.log(level, message);
  }

  snapshot(): KubeletSnapshot {
    const stats = this.api.connection.stats;
    return {
      phase: this.phase,
      led: this.led.state,
      nodeName: this.#options.nodeName,
      renewals: this.lease.renewals,
      statusPushes: this.status.pushes,
      lastError: this.#lastError,
      lastRenewTime: this.lease.lastRenewTime,
      conditions: ALL_TYPES.map((type) => {
        const c = this.status.tracker.get(type);
        return { type, status: c?.status ?? "Unknown", reason: c?.reason ?? "" };
      }),
      bytesSent: stats.bytesSent,
      bytesReceived: stats.bytesReceived,
      connects: stats.connects,
    };
  }
}
