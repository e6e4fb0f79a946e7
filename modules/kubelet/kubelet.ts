// The composition root: validates the options, builds the parts (clock, API client, health ledger,
// the node, Lease and status reconcilers, LED), runs the boot sequence, wires what one reconciler's
// outcome means for another, and stops gracefully. The reconcilers each do one job on their own timer.
import { ApiClient, describeError, foreignAnswer, notTheApiServer, toApiError } from "../api/client";
import { Watcher, type WatchHandler } from "../api/watch";
import { EventRecorder } from "../events/recorder";
import { nodeStatusEvent, transitionReason } from "../k8s/events";
import { DEFAULTS } from "../defaults";
import type { Host, LogLevel } from "../host";
import { bootIdFrom, buildIdentity, type NodeIdentity } from "../k8s/identity";
import { paths } from "../k8s/paths";
import { LedFrames } from "../led/frames";
import { LedEngine, type LedState } from "../led/patterns";
import type { AgentContext } from "../reconcilers/context";
import { LeaseReconciler } from "../reconcilers/lease";
import { NodeReconciler } from "../reconcilers/node";
import { ALL_TYPES, StatusReconciler } from "../reconcilers/status";
import { WallClock } from "../time/clock";
import { RetryPolicy } from "../util/retry";
import { AGENT_VERSION } from "../version";
import { KubeletApiServer } from "./api-server";
import { HealthLedger } from "./health";
import { PodManager } from "../pods/manager";
import { BUILTIN_WORKLOADS } from "../pods/builtin";
import type { CertificateRotator } from "./rotation";
import { AgentCredentials, CLIENT_CERT_KEY, SERVING_CERT_KEY, switchClientCertificate, withKeptCertificates } from "./credentials";
import { WorkloadRegistry } from "../pods/workload";
import { DEFAULTS_CONFIGMAP, SETTINGS_ANNOTATION, SETTINGS_NAMESPACE, SettingsController, nodeConfigMap } from "../settings/controller";
import { firmwareSettings, type DeviceSettings } from "../settings/settings";

const LEVELS: readonly LogLevel[] = Object.freeze(["debug", "info", "warn", "error"]);

import { ConfigError, configProblems, type KubeletOptions } from "./options";

export { ConfigError, configProblems, CLIENT_CERT_KEY, SERVING_CERT_KEY, type KubeletOptions };

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
  /** "h2" or "http/1.1": what the agent speaks to the API server now. */
  protocol: string;
  /** Pods admitted and not finished. */
  pods: number;
}

export class Kubelet {
  readonly host: Host;
  readonly led = new LedEngine();
  readonly clock: WallClock;
  readonly api: ApiClient;
  readonly node: NodeReconciler;
  readonly lease: LeaseReconciler;
  readonly status: StatusReconciler;
  readonly identity: NodeIdentity;
  /** The Node object itself, watched: deleted by someone, it is registered again at once. */
  readonly nodeWatch: Watcher;
  /** The kubelet's Events (Starting, NodeReady, Rebooted …), queued, aggregated, rate-limited. */
  readonly events: EventRecorder;
  /** The pods bound to this node, run as device workloads. */
  readonly pods: PodManager;
  /** Those pods, watched over the one connection (fieldSelector spec.nodeName). */
  readonly podWatch: Watcher;
  /** Device settings and memory from the ConfigMaps xs-kubelet/xs-kubelet-defaults and xs-kubelet-node-<name>. */
  readonly settings: SettingsController;
  readonly settingsWatches: Watcher[];
  /** The kubelet API on :10250 (or the host's port); undefined when not configured or the host cannot listen. */
  readonly apiServer: KubeletApiServer | undefined;
  phase: KubeletPhase = "booting";
  #network: string;
  #reregistering = false;
  #options: KubeletOptions;
  #health: HealthLedger;
  #stopped = false;
  /** The agent's credentials: when they expire, which the board renews (client certificate, token, serving certificate). */
  readonly credentials: AgentCredentials;
  /** The certificates the board renews itself (credentials.rotators). */
  readonly rotators: CertificateRotator[];
  /** The lowest level passed to the host (log_level setting; "debug": all, the host decides). */
  #logLevel: LogLevel = "debug";
  #wake: (() => void) | undefined;
  #frames: LedFrames | undefined;
  #started: Promise<void> | undefined;
  #registered!: () => void;
  /** Resolves once the Node is registered and the Lease exists. */
  readonly registered: Promise<void>;

  constructor(options: KubeletOptions, host: Host) {
    const problems = configProblems(options);
    if (problems.length) throw new ConfigError(problems);
    this.host = host;
    // A certificate the board renewed before this boot (kept in Host.store) replaces the provisioned one.
    options = withKeptCertificates(options, host.store?.read, (level, message) => this.#log(level, message));
    this.#options = options;
    this.registered = new Promise((r) => (this.#registered = r));
    this.#health = new HealthLedger((level, message) => this.#log(level, message));
    this.clock = new WallClock({
      monotonic: () => host.monotonic(),
      onAnchor: (t) => host.setSystemTime?.(t),
      onWarning: (message) => this.#log("warn", message),
    });
    this.api = new ApiClient({
      host,
      server: options.server,
      tls: options.tls,
      token: options.token,
      clock: this.clock,
      userAgent: `xs-kubelet/${AGENT_VERSION} (${host.name})`,
      timeoutMs: options.requestTimeoutMs,
      http: options.http,
      protobufEchoes: options.protobufEchoes,
      onResponse: (seconds) => this.apiServer?.metrics.observe(seconds),
      onFallback: (why) => this.#log("info", `${why}: using HTTP/1.1 (watches then need a connection each)`),
    });
    this.identity = buildIdentity({ name: options.nodeName, ...host.board, ...(options.pods === false ? { pods: 0 } : {}), ...options.identity }, host.network().mac, bootIdFrom(host.randomBytes(16)), host.heap()?.total);
    const ctx: AgentContext = {
      host,
      api: this.api,
      clock: this.clock,
      options: {
        leaseDurationSeconds: options.leaseDurationSeconds ?? DEFAULTS.leaseDurationSeconds,
        statusReportSeconds: options.statusReportSeconds ?? DEFAULTS.statusReportSeconds,
        conditionCheckSeconds: options.conditionCheckSeconds ?? DEFAULTS.conditionCheckSeconds,
      },
      nodeName: options.nodeName,
      nodeUid: "",
      log: (level, message) => this.#log(level, message),
      failure: (what, err) => {
        const kind = this.#health.failure(what, err);
        this.apiServer?.failed(kind);
        if (kind === "auth" && this.#health.repeats(what) === 1) this.events.record({ type: "Warning", reason: "CredentialsRejected", message: `${what}: the API server rejected the agent's credentials` });
        this.#updateLed();
        return kind;
      },
      success: (what) => {
        if (this.#health.success(what)) this.#updateLed();
      },
      unreachable: () => this.lease?.failing === true,
    };
    this.lease = new LeaseReconciler(ctx);
    this.status = new StatusReconciler(ctx, {
      renewals: () => this.lease.renewals,
      shuttingDown: () => this.phase === "stopping" || this.phase === "stopped",
      annotations: (): Record<string, string> => (this.settingsWatches?.length ? { [SETTINGS_ANNOTATION]: this.settings.annotation() } : {}),
    });
    this.node = new NodeReconciler(ctx, this.identity, this.status.port());
    this.events = new EventRecorder({ ...ctx, busy: () => this.lease.renewing || this.status.busy });
    const bootAt = host.monotonic();
    this.credentials = new AgentCredentials(ctx, options, {
      record: (spec) => this.events.record(spec),
      useClientCertificate: async (certificate) => {
        this.#options = { ...this.#options, tls: await switchClientCertificate(this.api, this.#options.nodeName, this.#options.tls!, certificate) };
        this.nodeWatch.reconnect();
        this.podWatch.reconnect();
        for (const w of this.settingsWatches) w.reconnect();
      },
      useServingCertificate: (certificate) => {
        if (!this.apiServer) throw new Error("the kubelet API is not served");
        this.apiServer.useCertificate(certificate);
      },
      address: () => host.network().address,
    });
    this.rotators = this.credentials.rotators;
    this.pods = new PodManager(
      {
        ...ctx,
        busy: () => this.lease.renewing || this.status.busy,
        record: (spec) => this.events.record(spec),
        led: (overlay) => this.led.setOverlay(overlay, host.monotonic()),
        address: () => host.network().address,
        readings: () => host.readings?.() ?? {},
        gpio: host.gpio,
      },
      new WorkloadRegistry(BUILTIN_WORKLOADS.slice()),
      { maxPods: Number(this.identity.capacity.pods), memoryBytes: host.heap()?.total, logBytes: options.podLogBytes },
    );
    this.podWatch = new Watcher(ctx, `pods on ${options.nodeName}`, { path: paths.pods, fieldSelector: `spec.nodeName=${options.nodeName}` }, this.pods);
    const firmware = firmwareSettings({ ledBrightness: this.led.cap, statusReportSeconds: ctx.options.statusReportSeconds, conditionCheckSeconds: ctx.options.conditionCheckSeconds, logLevel: "debug" });
    this.settings = new SettingsController({ host, nodeName: options.nodeName, log: (l, m) => this.#log(l, m), record: (spec) => this.events.record(spec) }, firmware, (s) => this.#applySettings(s, ctx));
    const cmPath = `/api/v1/namespaces/${SETTINGS_NAMESPACE}/configmaps`;
    const settingsWatch = (name: string, handler: WatchHandler) => new Watcher(ctx, `ConfigMap ${SETTINGS_NAMESPACE}/${name}`, { path: cmPath, fieldSelector: `metadata.name=${name}`, pageSize: 1, maxEventBytes: 24 * 1024, maxListBytes: 32 * 1024 }, handler);
    this.settingsWatches = options.settings === false ? [] : [settingsWatch(DEFAULTS_CONFIGMAP, this.settings.defaultsHandler), settingsWatch(nodeConfigMap(options.nodeName), this.settings.nodeHandler)];
    // Like the first renewal after an outage: at once, unless a Retry-After still holds pushes back.
    this.settings.onApplied = () => void this.status.pushUnlessHeld("settings applied");
    // Before anything reaches the network: the last settings the cluster gave this node.
    this.settings.restore();
    this.apiServer =
      options.kubeletApi && host.listen
        ? new KubeletApiServer(host, this.api, this.clock, options.nodeName, options.kubeletApi, { renewals: () => this.lease.renewals, watchEvents: () => this.nodeWatch.events + this.podWatch.events, bootAt, pods: this.pods, memory: () => this.settings.current.memory, credentials: this.credentials.list }, (m) => this.#log("warn", m))
        : undefined;
    const name = options.nodeName;
    this.#network = host.network().kind;
    // The kubelet's own events for its conditions (pkg/kubelet/nodestatus), and the board's.
    this.node.onRegistered = () => {
      for (const type of ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"]) {
        const reason = transitionReason(type, this.status.tracker.get(type)?.status ?? "");
        if (reason) this.events.record(nodeStatusEvent(name, reason));
      }
    };
    this.node.onRebooted = (bootId) => this.events.record({ type: "Warning", reason: "Rebooted", message: `Node ${name} has been rebooted, boot id: ${bootId}` });
    this.status.onTransition = (type, status, reason) => {
      const kubelet = transitionReason(type, status);
      if (kubelet) this.events.record(nodeStatusEvent(name, kubelet));
      else if (type === "Haunted" && status === "True" && reason === "TimeSlipped") {
        this.events.record({ type: "Warning", reason: "ClockSlipped", message: "the wall clock stepped by more than 5 s when re-anchored from the API server's Date header" });
      }
    };
    const gone = (why: string) => void this.#reregister(why);
    this.nodeWatch = new Watcher(ctx, `Node ${options.nodeName}`, { path: paths.nodes, fieldSelector: `metadata.name=${options.nodeName}`, metadataOnly: true }, {
      replaced: (items) => {
        if (items.length === 0) gone(`Node ${options.nodeName} is gone (deleted while the watch was down)`);
      },
      added: () => undefined,
      modified: () => undefined,
      deleted: () => gone(`Node ${options.nodeName} was deleted`),
    });
    this.lease.onRenewed = (recovered) => {
      if (this.lease.renewals > 1) this.led.activity(host.monotonic());
      this.credentials.check();
      this.#updateLed();
      const net = host.network();
      if (net.kind !== this.#network) {
        this.events.record({ type: "Normal", reason: "NetworkChanged", message: `the board moved from ${this.#network} to ${net.kind}${net.address ? ` (${net.address})` : ""}` });
        this.#network = net.kind;
      }
      if (recovered) {
        void this.#recover();
        this.nodeWatch.retryNow();
        this.podWatch.retryNow();
        for (const w of this.settingsWatches) w.retryNow();
      }
      this.#updateLed();
    };
  }

  /** Starts the agent; returns at once. Failures are retried with backoff, never thrown. */
  start(): void {
    if (this.#started) return;
    this.events.record({ type: "Normal", reason: "Starting", message: "Starting kubelet." });
    this.#log("info", `xs-kubelet ${AGENT_VERSION} starting as node "${this.#options.nodeName}" on ${this.host.name}; API server ${this.#options.server.host}:${this.#options.server.port}`);
    if (this.#options.tls && !this.#options.tls.verify) {
      this.#log("warn", "TLS VERIFICATION IS OFF (verify: false): anyone on the network path can impersonate the API server and take this node's credentials");
    }
    if (!this.#options.token && !this.#options.tls?.clientCertificate) this.#log("warn", "no credentials configured (no token, no client certificate): the API server will treat this agent as anonymous");
    const fps = this.#options.ledFps ?? DEFAULTS.ledFps;
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

  /** Listens before registering, so the Node advertises the port actually bound. */
  async #serve(): Promise<void> {
    if (!this.#options.kubeletApi) return;
    if (!this.apiServer) return this.#log("warn", `the kubelet API is configured, but the ${this.host.name} host cannot listen yet: not served`);
    try {
      const port = await this.apiServer.listen();
      this.identity.daemonEndpoints.kubeletEndpoint.Port = port;
      this.#log("info", `kubelet API listening on :${port} (HTTPS)`);
    } catch (err) {
      this.#log("error", `the kubelet API cannot listen: ${describeError(err)}; the node runs on without it`);
    }
  }

  async #bootstrap(): Promise<void> {
    await this.#serve();
    this.phase = "anchoring";
    this.#updateLed();
    await this.#retry("reading the clock from GET /version", async () => {
      const res = await this.api.call("GET", paths.version, { keepBody: 1024 });
      // A captive portal answers GET /version too: that is not the API server reached.
      if (foreignAnswer(res)) throw notTheApiServer("GET", paths.version, res);
      if (!this.clock.anchored) throw new Error(`GET /version: ${res.status} without a usable Date header`);
      if (res.status === 401 || res.status === 403) throw toApiError("GET", paths.version, res);
    });
    this.#log("info", `API server reached over ${this.api.protocol === "h2" ? "HTTP/2 (one connection for every request and watch)" : "HTTP/1.1"}`);
    this.phase = "registering";
    this.#updateLed();
    await this.#retry("registering the Node", () => this.node.register());
    const heldUp = await this.#retry("creating the Lease", () => this.lease.ensure());
    if (this.#stopped) return;
    this.phase = "running";
    this.#registered();
    this.lease.start();
    this.status.start();
    // Held up after registering: the Node has carried the registration's Ready=True with no Lease
    // behind it, and the node lifecycle controller may have marked it Unknown meanwhile. The Lease
    // never failed a renewal, so nothing else would count this as a recovery: say so now.
    if (heldUp > 0) void this.#recover();
    this.nodeWatch.start();
    if (this.#options.pods !== false) {
      this.pods.start();
      this.podWatch.start();
    }
    for (const w of this.settingsWatches) w.start();
    this.events.start();
    this.#updateLed();
  }

  /** Someone deleted the Node (its Lease goes with it): this board is still here, so say so again. */
  async #reregister(why: string): Promise<void> {
    if (this.#reregistering || this.phase !== "running") return;
    this.#reregistering = true;
    this.#log("warn", `${why}: registering it again`);
    try {
      await this.#retry("registering the Node", () => this.node.register());
      await this.#retry("creating the Lease", () => this.lease.ensure());
    } finally {
      this.#reregistering = false;
    }
  }

  /** Runs a boot step until it works (or the agent stops), waiting as the retry policy says; returns how many attempts failed. */
  async #retry(what: string, step: () => Promise<void>): Promise<number> {
    const retry = new RetryPolicy(this.host);
    let failed = 0;
    while (!this.#stopped) {
      try {
        await step();
        if (this.#health.success(what)) this.#updateLed();
        return failed;
      } catch (err) {
        failed++;
        const kind = this.#health.failure(what, err);
        this.#updateLed();
        await this.#sleep(retry.next(kind, err));
      }
    }
    return failed;
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

  /** The first renewal after an outage: read the controller's verdict, then tell it the truth at once. */
  async #recover(): Promise<void> {
    try {
      await this.node.resync();
    } catch {
      // the push below still goes out; only transition times may be off
    }
    await this.status.pushUnlessHeld("first renewal after an outage");
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
    this.nodeWatch.stop();
    this.podWatch.stop();
    this.pods.stop();
    for (const w of this.settingsWatches) w.stop();
    this.settings.stop();
    this.credentials.stop();
    this.events.stop();
    this.apiServer?.close();
    this.lease.stop();
    this.status.stop();
    this.phase = "stopping";
    if (wasRunning) {
      if (await this.status.pushNow("node is shutting down")) this.#log("info", "reported Ready=False: node is shutting down");
      if (options.decommission) await this.node.decommission();
    }
    await this.#started;
    this.api.close();
    this.phase = "stopped";
    this.#frames?.stop();
    this.led.setState("off", this.host.monotonic());
    this.host.showLed?.(0, 0, 0);
  }

  #updateLed(force?: LedState): void {
    const state =
      force ??
      this.#health.led({
        stopping: this.phase === "stopping" || this.phase === "stopped",
        connected: this.host.network().connected,
        healthy: this.phase === "running" && this.lease.renewals > 0 && !this.lease.failing,
      });
    this.led.setState(state === "healthy" && this.credentials.expiring.size ? "warning" : state, this.host.monotonic());
  }

  #applySettings(s: DeviceSettings, ctx: AgentContext): void {
    this.led.cap = s.ledBrightness;
    ctx.options.statusReportSeconds = s.statusReportSeconds;
    ctx.options.conditionCheckSeconds = s.conditionCheckSeconds;
    this.#logLevel = s.logLevel;
    this.pods.workloadDefaults = s.workloadDefaults;
  }

  #log(level: LogLevel, message: string): void {
    if (LEVELS.indexOf(level) < LEVELS.indexOf(this.#logLevel)) return;
    this.host.log(level, message);
  }

  snapshot(): KubeletSnapshot {
    const stats = this.api.stats;
    return {
      phase: this.phase,
      led: this.led.state,
      nodeName: this.#options.nodeName,
      renewals: this.lease.renewals,
      statusPushes: this.status.pushes,
      lastError: this.#health.lastError,
      lastRenewTime: this.lease.lastRenewTime,
      conditions: ALL_TYPES.map((type) => {
        const c = this.status.tracker.get(type);
        return { type, status: c?.status ?? "Unknown", reason: c?.reason ?? "" };
      }),
      bytesSent: stats.bytesSent,
      bytesReceived: stats.bytesReceived,
      connects: stats.connects,
      protocol: this.api.protocol,
      pods: this.pods.active,
    };
  }
}
