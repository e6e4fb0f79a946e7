// The firmware's sequence, shared by the board and the simulator: LED self-test → Booting →
// configuration → network → the kubelet core. A board supplies only what differs (LED, network,
// clock, display). Nothing here throws out: a bad configuration shows Warning and is re-checked.
import type { BoardFacts, GpioPort, Host, LogLevel, NetworkFacts } from "../../modules/host";
import { Kubelet, type KubeletSnapshot } from "../../modules/kubelet/kubelet";
import { LedFrames } from "../../modules/led/frames";
import { LedEngine, LED_MEANINGS, type LedState } from "../../modules/led/patterns";
import { AGENT_VERSION } from "../../modules/version";
import { DEFAULTS } from "../../modules/defaults";
import { loadPersisted } from "../../modules/settings/controller";
import { firmwareSettings } from "../../modules/settings/settings";
import { describeConfig, loadConfig, preferenceStore, type FirmwareConfig } from "./config";
import * as runtime from "./runtime";
import config from "mc/config";
import { createConnector } from "./transport";
import { createListen } from "./listener";
import { signWithKey } from "ssl/cert";

export interface Board {
  /** "esp32s3", "sim": shown in the User-Agent and logs. */
  readonly name: string;
  /** What the board is: the Node's labels, capacity and nodeInfo come from it. */
  readonly facts: BoardFacts;
  showLed?(r: number, g: number, b: number): void;
  /** Brings the network up (once); progress is read through network(). */
  startNetwork(config: FirmwareConfig, log: (level: LogLevel, message: string) => void): void;
  network(): NetworkFacts;
  /** DNS servers for API server names that are not IPv4 literals. */
  dnsServers(): string[];
  setSystemTime?(epochMs: number): void;
  /** The pins pods may drive and read (the gpio workload). */
  readonly gpio?: GpioPort;
  /** Readings beyond heap and uptime (RSSI on Wi-Fi, the chip's temperature). */
  readings?(): { rssi?: number; temperatureC?: number };
  /** Called about once a second with the agent's state (the simulator draws it). */
  show?(view: FirmwareView): void;
}

export interface FirmwareView {
  stage: "selftest" | "booting" | "config" | "network" | "agent";
  led: LedState;
  /** One line on what the firmware waits for or what is wrong. */
  status: string;
  network: NetworkFacts;
  snapshot?: KubeletSnapshot;
}

const CONFIG_RECHECK_MS = 30_000;
const FRAME_MS = 33;
const NETWORK_PATIENCE_MS = 20_000;
/** Seconds between samples of the live XS heap (one collection each; XS collects far more often on its own). */
const HEAP_SAMPLE_S = 10;

export function runFirmware(board: Board): void {
  try {
    new Firmware(board).start();
  } catch (e) {
    // Only a bug gets here; stay alive (no crash loop) and say so.
    runtime.log("error", `firmware failed to start: ${(e as Error)?.message ?? e}`);
  }
}

class Firmware {
  #board: Board;
  #led = new LedEngine();
  #frames: LedFrames | undefined;
  #stage: FirmwareView["stage"] = "selftest";
  #status = "LED self-test";
  #kubelet: Kubelet | undefined;
  #config: FirmwareConfig | undefined;

  constructor(board: Board) {
    this.#board = board;
  }

  /**
   * The live XS heap, sampled every HEAP_SAMPLE_S (mc/config heapProbe=N: every N s, and each sample
   * logged — how the README's memory figures are measured in the simulator). One collection a
   * sample; the screen, /metrics and kubectl top read the last one, so they show the same figure.
   * Builds without instrumentation (release) take none.
   */
  #startHeapSampler(): void {
    const probe = Number((config as Record<string, unknown>).heapProbe ?? 0);
    const every = probe >= 1 ? probe : HEAP_SAMPLE_S;
    if (!runtime.sampleXsHeap()) {
      if (probe >= 1) runtime.log("info", "heap after GC: no instrumentation in this build");
      return;
    }
    const tick = () => {
      const h = runtime.sampleXsHeap();
      if (h && probe >= 1) runtime.log("info", `heap after GC: slots ${h.slotBytes} B, chunks ${h.chunkBytes} B (${h.slotSize}-byte slots; ${runtime.usedBeforeSample ?? "?"} B in use before the collection), pods ${this.#kubelet?.pods.active ?? 0}`);
      runtime.setTimer(tick, every * 1000);
    };
    runtime.setTimer(tick, every * 1000);
  }

  start(): void {
    runtime.log("info", `xs-kubelet ${AGENT_VERSION} firmware on ${this.#board.name}`);
    // The last settings from the cluster, before the network is up: the LED's brightness cap now
    // (the agent applies the rest when it starts).
    const kept = loadPersisted({ store: preferenceStore, utf8Decode: runtime.utf8Decode }, firmwareSettings({ ledBrightness: this.#led.cap, statusReportSeconds: DEFAULTS.statusReportSeconds, conditionCheckSeconds: DEFAULTS.conditionCheckSeconds, logLevel: "debug" }), (m) => runtime.log("warn", m));
    if (kept) this.#led.cap = kept.settings.ledBrightness;
    this.#startHeapSampler();
    this.#setLed("selftest");
    const show = this.#board.showLed;
    if (show) {
      this.#frames = new LedFrames(this.#led, runtime, (r, g, b) => show.call(this.#board, r, g, b), FRAME_MS);
      this.#frames.start();
    }
    this.#viewLoop();
    runtime.setTimer(() => this.#configure(), LedEngine.SELFTEST_MS);
  }

  #configure(): void {
    this.#stage = "booting";
    this.#setLed("booting");
    const config = loadConfig();
    runtime.enableDebugLog(config.debug);
    if (config.problems.length) {
      this.#stage = "config";
      this.#status = `configuration: ${config.problems[0]}`;
      runtime.log("error", `cannot start: the configuration is incomplete or invalid (${config.problems.length} problem${config.problems.length > 1 ? "s" : ""}):`);
      for (const p of config.problems) runtime.log("error", `  - ${p}`);
      runtime.log("error", `LED: ${LED_MEANINGS.warning}. Checking the preferences again in ${CONFIG_RECHECK_MS / 1000} s.`);
      this.#setLed("warning");
      runtime.setTimer(() => this.#configure(), CONFIG_RECHECK_MS);
      return;
    }
    this.#config = config;
    runtime.log("info", `configuration: ${describeConfig(config)}`);
    this.#stage = "network";
    this.#status = "bringing the network up";
    this.#board.startNetwork(config, runtime.log);
    this.#waitForNetwork(runtime.monotonic());
  }

  /** The Node's identity comes from the MAC, which is known once an interface is up. */
  #waitForNetwork(since: number): void {
    const facts = this.#board.network();
    if (facts.connected && facts.mac) return this.#startAgent();
    if (runtime.monotonic() - since > NETWORK_PATIENCE_MS) {
      this.#setLed("disconnected");
      this.#status = "no network yet";
    }
    runtime.setTimer(() => this.#waitForNetwork(since), 250);
  }

  #startAgent(): void {
    const board = this.#board;
    const host: Host = {
      name: board.name,
      board: board.facts,
      monotonic: runtime.monotonic,
      setTimer: runtime.setTimer,
      clearTimer: runtime.clearTimer,
      random: runtime.random,
      randomBytes: runtime.randomBytes,
      utf8Encode: runtime.utf8Encode,
      utf8Decode: runtime.utf8Decode,
      connect: createConnector({ dnsServers: () => board.dnsServers(), log: runtime.log }),
      listen: createListen(runtime.log),
      sign: signWithKey,
      heap: runtime.heap,
      usage: runtime.usage,
      xsHeap: runtime.xsHeap,
      network: () => board.network(),
      showLed: board.showLed ? (r, g, b) => board.showLed!(r, g, b) : undefined,
      setSystemTime: board.setSystemTime ? (ms) => board.setSystemTime!(ms) : undefined,
      gpio: board.gpio,
      store: preferenceStore,
      readings: board.readings ? () => board.readings!() : undefined,
      log: runtime.log,
    };
    // The kubelet drives the LED from here on.
    this.#frames?.stop();
    try {
      const options = this.#config!.kubelet;
      this.#kubelet = new Kubelet(options, host);
      this.#stage = "agent";
      this.#kubelet.start();
    } catch (e) {
      this.#stage = "config";
      this.#status = `cannot start the agent: ${(e as Error)?.message ?? e}`;
      runtime.log("error", this.#status);
      this.#setLed("warning");
      this.#frames?.start();
    }
  }

  #setLed(state: LedState): void {
    this.#led.setState(state, runtime.monotonic());
  }

  #viewLoop(): void {
    const show = this.#board.show;
    if (!show) return;
    const tick = () => {
      const snapshot = this.#kubelet?.snapshot();
      let status = this.#status;
      if (snapshot) status = snapshot.lastError || `${snapshot.phase}`;
      show.call(this.#board, {
        stage: this.#stage,
        led: snapshot ? snapshot.led : this.#led.state,
        status,
        network: this.#board.network(),
        snapshot,
      });
      runtime.setTimer(tick, 1000);
    };
    tick();
  }
}
