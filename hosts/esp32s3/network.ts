// The board's network manager: W5500 Ethernet first, Wi-Fi as the fallback, and back to Ethernet
// whenever its link returns (picokubelet decided once per boot: its defect B9). It owns the choice;
// the SDK's drivers, timers and the W5500 probe are injected, so the whole policy runs in tests.
//
// Why Wi-Fi is disconnected once Ethernet is up: ESP-IDF routes through the station netif by
// preference while both have addresses, so "on Ethernet" must mean "Wi-Fi off".

import type { NetworkFacts, NetworkKind, LogLevel } from "../../modules/host";
import { backoffDelay } from "../../modules/util/retry";
import type { W5500Probe } from "./w5500";

export type EthernetEvent = "link-up" | "link-down" | "got-ip";

export interface EthernetDriver {
  /** Starts the driver (once); throws when the chip is not found. Events arrive later. */
  start(onEvent: (event: EthernetEvent) => void): void;
  /** Stops listening. (The SDK cannot stop its driver once started.) */
  stop(): void;
  /** IPv4 address, "" while none. */
  address(): string;
}

export type WifiDisconnectReason = "auth" | "other";

export type WifiEvent =
  | { type: "associated" }
  | { type: "got-ip" }
  | { type: "disconnected"; reason: WifiDisconnectReason };

export interface WifiDriver {
  /** Starts one connection attempt; may throw (bad arguments, radio failure). */
  connect(ssid: string, password: string, onEvent: (event: WifiEvent) => void): void;
  disconnect(): void;
  /** IPv4 address of the station, "" while none. */
  address(): string;
  /** BSSID of the access point, "aa:bb:cc:dd:ee:ff", "" when unknown. */
  bssid(): string;
}

export interface Timers {
  set(callback: () => void, ms: number): unknown;
  clear(id: unknown): void;
}

export interface NetworkDeps {
  timers: Timers;
  /** Uniform in [0, 1), for jitter. */
  random(): number;
  /** Absent when the board has no Ethernet at all. */
  ethernet?: EthernetDriver;
  /** Presence/link probe run before the Ethernet driver owns the bus; absent = try start() directly. */
  probe?: () => W5500Probe;
  wifi?: WifiDriver;
  /** The MAC that names the board, lower-case; read until it is known, then kept for the boot. */
  mac?: () => string;
  log?: (level: LogLevel, message: string) => void;
}

export interface NetworkOptions {
  wifi?: { ssid: string; password?: string };
  /** Wait for a DHCP lease after link-up before falling back to Wi-Fi. */
  dhcpTimeoutMs?: number;
  /** Wait for the link (auto-negotiation, a cable re-seated) before falling back to Wi-Fi. */
  linkWaitMs?: number;
  /** One Wi-Fi attempt may take this long before it counts as failed. */
  wifiConnectTimeoutMs?: number;
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /** ± fraction applied to each backoff delay. */
  jitter?: number;
  /** How often the address of the active interface is re-read (DHCP may change it silently). */
  addressPollMs?: number;
  /** Ethernet.start() failures after a positive probe before giving up on Ethernet (each one leaks a netif in the SDK). */
  maxEthernetStartFailures?: number;
}

export type NetworkState = "starting" | "ethernet" | "wifi" | "down";

export interface NetworkStatus {
  state: NetworkState;
  /** Why there is no network (undefined while connected). */
  error?: string;
  ethernet: {
    phase: EthernetPhase;
    link: boolean;
    address: string;
    probe?: W5500Probe;
    lastError?: string;
  };
  wifi: {
    configured: boolean;
    phase: WifiPhase;
    address: string;
    bssid: string;
    attempts: number;
    lastError?: string;
  };
  reconnects: number;
  bssidChanges: number;
}

export type EthernetPhase = "none" | "idle" | "absent" | "failed" | "started";
export type WifiPhase = "off" | "connecting" | "associated" | "up" | "backoff";

// The link's retries (Wi-Fi joins, Ethernet restarts) use the core's backoff formula, with their own
// bounds: 1 s → 60 s, ± 20 %.
export { backoffDelay };

/** Adds `delta` to a MAC as a 48-bit number (ESP-IDF derives interface MACs from the base MAC that way). */
export function offsetMac(mac: string, delta: number): string {
  const parts = mac.split(/[:-]/);
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{2}$/.test(p))) return "";
  let value = 0;
  for (const p of parts) value = value * 256 + parseInt(p, 16);
  value = (value + delta + 2 ** 48) % 2 ** 48;
  const out: string[] = [];
  for (let i = 0; i < 6; i++) { out.unshift((value % 256).toString(16).padStart(2, "0")); value = Math.floor(value / 256); }
  return out.join(":");
}

export class NetworkManager {
  /** Called after every change of kind, connection, address or BSSID. */
  onChange: ((facts: NetworkFacts) => void) | undefined;

  private readonly deps: NetworkDeps;
  private readonly o: Required<Omit<NetworkOptions, "wifi">>;
  private readonly wifiConfig: { ssid: string; password: string } | undefined;

  private started = false;
  private everConnected = false;
  private reconnects = 0;
  private bssidChanges = 0;
  private mac = "";

  private eth: NetworkStatus["ethernet"] & { attempts: number; startFailures: number; retry?: unknown } =
    { phase: "idle", link: false, address: "", attempts: 0, startFailures: 0 };
  /** While set, Ethernet is given time (link or DHCP) before Wi-Fi is started. */
  private grace: { timer: unknown; why: string } | undefined;

  private wifi: { phase: WifiPhase; address: string; bssid: string; attempts: number; lastError?: string; timer?: unknown; generation: number } =
    { phase: "off", address: "", bssid: "", attempts: 0, generation: 0 };

  private pollTimer: unknown;
  private lastKey: string | undefined;

  constructor(deps: NetworkDeps, options: NetworkOptions = {}) {
    this.deps = deps;
    this.o = {
      dhcpTimeoutMs: options.dhcpTimeoutMs ?? 15_000,
      linkWaitMs: options.linkWaitMs ?? 3_000,
      wifiConnectTimeoutMs: options.wifiConnectTimeoutMs ?? 30_000,
      backoffInitialMs: options.backoffInitialMs ?? 1_000,
      backoffMaxMs: options.backoffMaxMs ?? 60_000,
      jitter: options.jitter ?? 0.2,
      addressPollMs: options.addressPollMs ?? 10_000,
      maxEthernetStartFailures: options.maxEthernetStartFailures ?? 5,
    };
    const w = options.wifi;
    this.wifiConfig = w && w.ssid && deps.wifi ? { ssid: w.ssid, password: w.password ?? "" } : undefined;
    if (!deps.ethernet) this.eth.phase = "none";
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    if (this.eth.phase !== "none") this.tryEthernet();
    this.schedulePoll();
    this.evaluate();
  }

  /** Stops timers and Wi-Fi (for shutdown and tests); Ethernet stays as the SDK leaves it. */
  stop(): void {
    this.started = false;
    this.endGrace();
    if (this.eth.retry !== undefined) this.deps.timers.clear(this.eth.retry);
    this.eth.retry = undefined;
    if (this.pollTimer !== undefined) this.deps.timers.clear(this.pollTimer);
    this.pollTimer = undefined;
    this.stopWifi();
    this.deps.ethernet?.stop();
  }

  facts(): NetworkFacts {
    const ethUp = this.ethUp();
    const wifiUp = !ethUp && this.wifi.phase === "up";
    const kind: NetworkKind = ethUp ? "ethernet"
      : this.wifi.phase !== "off" || this.eth.phase === "none" ? "wifi" : "ethernet";
    const facts: NetworkFacts = {
      kind,
      connected: ethUp || wifiUp,
      address: ethUp ? this.eth.address : wifiUp ? this.wifi.address : "",
      mac: this.readMac(),
      reconnects: this.reconnects,
    };
    if (wifiUp && this.wifi.bssid) facts.bssid = this.wifi.bssid;
    return facts;
  }

  status(): NetworkStatus {
    const facts = this.facts();
    const state: NetworkState = facts.connected ? facts.kind as "ethernet" | "wifi"
      : this.everConnected || this.eth.lastError || this.wifi.lastError || this.eth.phase === "none" && !this.wifiConfig ? "down" : "starting";
    const status: NetworkStatus = {
      state,
      ethernet: { phase: this.eth.phase, link: this.eth.link, address: this.eth.address },
      wifi: {
        configured: this.wifiConfig !== undefined, phase: this.wifi.phase, address: this.wifi.address,
        bssid: this.wifi.bssid, attempts: this.wifi.attempts,
      },
      reconnects: this.reconnects,
      bssidChanges: this.bssidChanges,
    };
    if (this.eth.probe) status.ethernet.probe = this.eth.probe;
    if (this.eth.lastError) status.ethernet.lastError = this.eth.lastError;
    if (this.wifi.lastError) status.wifi.lastError = this.wifi.lastError;
    if (!facts.connected) status.error = this.explain();
    return status;
  }

  /** Re-reads addresses now (also done every addressPollMs). */
  refresh(): void {
    if (this.ethUp()) {
      const address = this.deps.ethernet!.address();
      if (address === "") this.ethernetLost("Ethernet lost its IPv4 address", false);
      else this.eth.address = address;
    }
    if (this.wifi.phase === "up") {
      const address = this.deps.wifi!.address();
      if (address !== "") {
        this.wifi.address = address;
        this.noteBssid();
      } else {
        // Lost the lease without a "disconnect": treat it as a drop.
        this.reconnects++;
        this.safeDisconnect();
        this.wifi.attempts = 0;
        this.wifiFailed(`Wi-Fi: lost the address on "${this.wifiConfig!.ssid}"`);
      }
    }
    this.evaluate();
  }

  // ---- Ethernet -------------------------------------------------------------------------------

  private ethUp(): boolean {
    return this.eth.phase === "started" && this.eth.link && this.eth.address !== "";
  }

  private tryEthernet(): void {
    this.eth.retry = undefined;
    const ethernet = this.deps.ethernet!;
    let probe: W5500Probe | undefined;
    if (this.deps.probe) {
      try {
        probe = this.deps.probe();
      } catch (e) {
        probe = { present: false, version: -1, link: false, speedMbps: 0, fullDuplex: false, diagnostic: `W5500 probe failed: ${(e as Error).message}` };
      }
      // Re-probes of an absent chip repeat forever: log only what changed.
      if (probe.diagnostic !== this.eth.probe?.diagnostic) this.log(probe.present ? "info" : "warn", probe.diagnostic);
      this.eth.probe = probe;
      if (!probe.present) {
        this.eth.phase = "absent";
        this.eth.lastError = probe.diagnostic;
        this.scheduleEthernetRetry();
        return;
      }
    }
    try {
      ethernet.start((event) => this.onEthernet(event));
    } catch (e) {
      const message = `Ethernet driver did not start: ${(e as Error).message}`;
      this.log("warn", message);
      this.eth.lastError = message;
      this.eth.startFailures++;
      if (this.eth.startFailures >= this.o.maxEthernetStartFailures) {
        this.eth.phase = "failed";
        this.log("error", `giving up on Ethernet after ${this.eth.startFailures} driver start failures`);
      } else {
        this.eth.phase = "absent";
        this.scheduleEthernetRetry();
      }
      return;
    }
    this.eth.phase = "started";
    this.eth.attempts = 0;
    this.eth.lastError = undefined;
    // With link already up, only DHCP is left to wait for; otherwise give auto-negotiation a moment.
    this.eth.link = probe?.link ?? false;
    if (this.eth.link) this.beginGrace(this.o.dhcpTimeoutMs, "DHCP");
    else this.beginGrace(this.o.linkWaitMs, "link");
  }

  private scheduleEthernetRetry(): void {
    const delay = this.nextDelay(this.eth.attempts++);
    this.eth.retry = this.deps.timers.set(() => {
      if (!this.started) return;
      this.tryEthernet();
      this.evaluate();
    }, delay);
  }

  private onEthernet(event: EthernetEvent): void {
    if (!this.started || this.eth.phase !== "started") return;
    switch (event) {
      case "link-up":
        if (!this.eth.link) this.log("info", "Ethernet link up");
        this.eth.link = true;
        if (!this.ethUp()) this.beginGrace(this.o.dhcpTimeoutMs, "DHCP");
        break;
      case "link-down":
        if (this.ethUp()) this.ethernetLost("Ethernet link down", true);
        else {
          this.eth.link = false;
          this.eth.address = "";
        }
        break;
      case "got-ip": {
        // The SDK also signals "gotIP" on IPv6 events of other interfaces: trust the address only.
        const address = this.deps.ethernet!.address();
        if (address === "") return;
        this.eth.link = true;
        if (address !== this.eth.address) this.log("info", `Ethernet address ${address}`);
        this.eth.address = address;
        this.endGrace();
        break;
      }
    }
    this.evaluate();
  }

  private ethernetLost(why: string, linkLost: boolean): void {
    this.reconnects++;
    this.log("warn", why);
    this.eth.address = "";
    if (linkLost) this.eth.link = false;
    this.beginGrace(this.eth.link ? this.o.dhcpTimeoutMs : this.o.linkWaitMs, this.eth.link ? "DHCP" : "link");
  }

  private beginGrace(ms: number, why: string): void {
    this.endGrace();
    const timer = this.deps.timers.set(() => {
      if (this.grace?.timer !== timer) return;
      this.grace = undefined;
      if (!this.ethUp()) {
        const message = why === "DHCP"
          ? `Ethernet link up but no DHCP lease after ${this.o.dhcpTimeoutMs / 1000} s`
          : "Ethernet cable unplugged (no link)";
        this.eth.lastError = message;
        this.log("warn", message + (this.wifiConfig ? "; using Wi-Fi until Ethernet is back" : ""));
      }
      this.evaluate();
    }, ms);
    this.grace = { timer, why };
  }

  private endGrace(): void {
    if (this.grace) this.deps.timers.clear(this.grace.timer);
    this.grace = undefined;
  }

  // ---- Wi-Fi ----------------------------------------------------------------------------------

  private connectWifi(): void {
    const { ssid, password } = this.wifiConfig!;
    const generation = ++this.wifi.generation;
    this.wifi.phase = "connecting";
    this.log("info", `Wi-Fi: connecting to "${ssid}"`);
    // Armed first: a driver that answers synchronously clears it in onWifi.
    this.setWifiTimer(() => {
      this.safeDisconnect();
      this.wifiFailed(`Wi-Fi: no connection to "${ssid}" after ${this.o.wifiConnectTimeoutMs / 1000} s`);
      this.evaluate();
    }, this.o.wifiConnectTimeoutMs);
    try {
      this.deps.wifi!.connect(ssid, password, (event) => this.onWifi(generation, event));
    } catch (e) {
      this.wifiFailed(`Wi-Fi: cannot start a connection to "${ssid}": ${(e as Error).message}`);
    }
  }

  private onWifi(generation: number, event: WifiEvent): void {
    if (!this.started || generation !== this.wifi.generation || this.wifi.phase === "off" || this.wifi.phase === "backoff") return;
    const ssid = this.wifiConfig!.ssid;
    switch (event.type) {
      case "associated":
        if (this.wifi.phase === "connecting") this.wifi.phase = "associated";
        break;
      case "got-ip": {
        const address = this.deps.wifi!.address();
        if (address === "") return; // see onEthernet: "gotIP" can come from the other interface
        this.clearWifiTimer();
        if (this.wifi.phase !== "up" || address !== this.wifi.address) this.log("info", `Wi-Fi: connected to "${ssid}", address ${address}`);
        this.wifi.phase = "up";
        this.wifi.address = address;
        this.wifi.attempts = 0;
        this.wifi.lastError = undefined;
        this.noteBssid();
        break;
      }
      case "disconnected": {
        const wasUp = this.wifi.phase === "up";
        this.wifi.address = "";
        if (wasUp) {
          this.reconnects++;
          this.wifi.attempts = 0; // a drop after a good connection retries quickly
        }
        const message = event.reason === "auth" ? `Wi-Fi: password rejected by "${ssid}"`
          : wasUp ? `Wi-Fi: connection to "${ssid}" lost` : `Wi-Fi: cannot connect to "${ssid}"`;
        this.wifiFailed(message);
        break;
      }
    }
    this.evaluate();
  }

  private wifiFailed(message: string): void {
    this.clearWifiTimer();
    this.wifi.lastError = message;
    this.wifi.address = "";
    this.wifi.phase = "backoff";
    const delay = this.nextDelay(this.wifi.attempts++);
    this.log("warn", `${message}; retrying in ${(delay / 1000).toFixed(1)} s`);
    this.setWifiTimer(() => {
      this.wifi.phase = "off";
      this.evaluate(); // reconnects unless Ethernet took over meanwhile
    }, delay);
  }

  private stopWifi(): void {
    if (this.wifi.phase === "off" && this.wifi.timer === undefined) return;
    this.clearWifiTimer();
    this.wifi.generation++;
    const wasActive = this.wifi.phase !== "off" && this.wifi.phase !== "backoff";
    this.wifi.phase = "off";
    this.wifi.address = "";
    this.wifi.attempts = 0;
    if (wasActive) this.safeDisconnect();
  }

  private safeDisconnect(): void {
    try { this.deps.wifi!.disconnect(); } catch (e) { this.log("warn", `Wi-Fi disconnect failed: ${(e as Error).message}`); }
  }

  private noteBssid(): void {
    const bssid = this.deps.wifi!.bssid().toLowerCase();
    if (!bssid) return;
    if (this.wifi.bssid && bssid !== this.wifi.bssid) {
      this.bssidChanges++;
      this.log("info", `Wi-Fi: access point changed ${this.wifi.bssid} -> ${bssid}`);
    }
    this.wifi.bssid = bssid;
  }

  private setWifiTimer(callback: () => void, ms: number): void {
    this.clearWifiTimer();
    const timer = this.deps.timers.set(() => {
      if (this.wifi.timer !== timer) return;
      this.wifi.timer = undefined;
      if (this.started) callback();
    }, ms);
    this.wifi.timer = timer;
  }

  private clearWifiTimer(): void {
    if (this.wifi.timer !== undefined) this.deps.timers.clear(this.wifi.timer);
    this.wifi.timer = undefined;
  }

  // ---- Policy ---------------------------------------------------------------------------------

  private evaluate(): void {
    if (!this.started) return;
    if (this.ethUp()) {
      if (this.wifi.phase !== "off") {
        this.log("info", "Ethernet is up: leaving Wi-Fi");
        this.stopWifi();
      }
    } else if (this.wifiConfig && !this.grace && this.wifi.phase === "off") {
      this.connectWifi();
    }
    this.emitIfChanged();
  }

  private emitIfChanged(): void {
    const facts = this.facts();
    // While down, which interface is being tried is not news; a loss of connection is.
    const key = facts.connected ? `${facts.kind} ${facts.address} ${facts.bssid ?? ""}` : "down";
    if (key === (this.lastKey ?? "down")) return;
    this.lastKey = key;
    if (facts.connected) {
      this.everConnected = true;
      this.log("info", `network: ${facts.kind} ${facts.address}`);
    }
    else this.log("warn", `network down: ${this.explain()}`);
    try { this.onChange?.(facts); } catch (e) { this.log("error", `network onChange threw: ${(e as Error).message}`); }
  }

  private explain(): string {
    const parts: string[] = [];
    switch (this.eth.phase) {
      case "none": parts.push("no Ethernet on this build"); break;
      case "idle": parts.push("Ethernet not tried yet"); break;
      case "absent": parts.push(this.eth.lastError ?? "W5500 not found"); break;
      case "failed": parts.push(this.eth.lastError ?? "Ethernet driver failed"); break;
      case "started":
        parts.push(this.grace ? `waiting for Ethernet ${this.grace.why}` : this.eth.lastError ?? (this.eth.link ? "Ethernet waiting for DHCP" : "Ethernet cable unplugged"));
        break;
    }
    if (!this.wifiConfig) parts.push(this.deps.wifi ? "no Wi-Fi configured" : "no Wi-Fi on this build");
    else if (this.wifi.lastError) parts.push(this.wifi.lastError);
    else if (this.wifi.phase !== "off") parts.push(`Wi-Fi connecting to "${this.wifiConfig.ssid}"`);
    return parts.join("; ");
  }

  private schedulePoll(): void {
    this.pollTimer = this.deps.timers.set(() => {
      if (!this.started) return;
      this.refresh();
      this.schedulePoll();
    }, this.o.addressPollMs);
  }

  private nextDelay(attempt: number): number {
    return backoffDelay(attempt, this.o.backoffInitialMs, this.o.backoffMaxMs, this.o.jitter, this.deps.random());
  }

  private readMac(): string {
    // Only once an interface is up: before that the SDK may have no netif to ask.
    if (!this.mac && this.deps.mac && (this.ethUp() || this.wifi.phase === "up")) {
      try { this.mac = this.deps.mac().toLowerCase(); } catch { /* not known yet */ }
    }
    return this.mac;
  }

  private log(level: LogLevel, message: string): void {
    this.deps.log?.(level, message);
  }
}
