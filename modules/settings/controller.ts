// Settings from the cluster: two ConfigMaps in namespace xs-kubelet — the fleet's defaults
// (xs-kubelet-defaults) and this node's (xs-kubelet-node-<name>) — watched over the one connection,
// merged key by key (the node's winning), validated as a whole and applied within a moment of the
// watch event. A rejected merge changes nothing and says why (Event SettingsRejected); an applied
// one says what changed (SettingsApplied), is persisted through the host's store and applies at the
// next boot before the network is up. Deleting the node's ConfigMap falls back to the defaults,
// deleting both to the firmware's settings.
import type { WatchHandler } from "../api/watch";
import type { EventSpec } from "../k8s/events";
import type { Host, LogLevel } from "../host";
import { describeChanges, MEMORY_SIZE, parseSettings, type DeviceSettings } from "./settings";

export const SETTINGS_NAMESPACE = "xs-kubelet";
export const DEFAULTS_CONFIGMAP = "xs-kubelet-defaults";
export const nodeConfigMap = (node: string) => `xs-kubelet-node-${node}`;
/** On the Node: which ConfigMaps (and resourceVersions) the applied settings came from. */
export const SETTINGS_ANNOTATION = "xs-kubelet.dev/settings";

/** Keys of the host's store. */
const STORE_SETTINGS = "settings";
const STORE_MEMORY = "memory";
/** Watch events within this are one evaluation. */
const SETTLE_MS = 20;

interface Source {
  data: Record<string, string>;
  resourceVersion: string;
}

export interface SettingsContext {
  host: Host;
  nodeName: string;
  log(level: LogLevel, message: string): void;
  record(spec: EventSpec): void;
}

/**
 * The settings the host kept from the last time they were applied, validated again; undefined when
 * there are none (or they no longer pass, which is said). For the firmware too: it applies the LED
 * cap before the network is up, before there is an agent.
 */
export function loadPersisted(host: Pick<Host, "store" | "utf8Decode">, firmware: DeviceSettings, warn: (message: string) => void): { settings: DeviceSettings; origin: string } | undefined {
  const store = host.store;
  if (!store) return undefined;
  try {
    const raw = store.read(STORE_SETTINGS);
    if (!raw) return undefined;
    const saved = JSON.parse(host.utf8Decode(raw));
    const data: Record<string, string> = saved && typeof saved.data === "object" && saved.data ? saved.data : {};
    const parsed = parseSettings(data, firmware);
    if ("errors" in parsed) {
      warn(`persisted settings no longer valid, using the firmware's: ${parsed.errors[0]}`);
      return undefined;
    }
    const memory = store.read(STORE_MEMORY);
    if (memory && memory.byteLength === MEMORY_SIZE) parsed.settings.memory.set(memory);
    return { settings: parsed.settings, origin: typeof saved.origin === "string" ? saved.origin : "?" };
  } catch (err) {
    warn(`persisted settings unreadable, using the firmware's: ${String((err as Error)?.message ?? err)}`);
    return undefined;
  }
}

export class SettingsController {
  #ctx: SettingsContext;
  #firmware: DeviceSettings;
  #apply: (s: DeviceSettings) => void;
  #defaults: Source | undefined;
  #node: Source | undefined;
  #listed = { defaults: false, node: false };
  #timer: unknown;
  #lastRejected = "";
  /** The settings in force. */
  current: DeviceSettings;
  /** Where they came from: "xs-kubelet-defaults@12,xs-kubelet-node-b@34", "firmware", or "persisted:…". */
  origin = "firmware";
  /** Called after settings were applied from the cluster (the Node's annotation follows). */
  onApplied: (() => void) | undefined;

  constructor(ctx: SettingsContext, firmware: DeviceSettings, apply: (s: DeviceSettings) => void) {
    this.#ctx = ctx;
    this.#firmware = firmware;
    this.#apply = apply;
    this.current = firmware;
  }

  /**
   * At boot, before the network: the last settings applied from the cluster, if the host kept them
   * (and they still pass validation).
   */
  restore(): void {
    const loaded = loadPersisted(this.#ctx.host, this.#firmware, (m) => this.#ctx.log("warn", m));
    if (!loaded) return;
    this.current = loaded.settings;
    this.origin = `persisted:${loaded.origin}`;
    this.#apply(this.current);
    this.#ctx.log("info", `settings from the last boot applied (${loaded.origin})`);
  }

  /** The annotation value on the Node. */
  annotation(): string {
    return this.origin;
  }

  readonly defaultsHandler: WatchHandler = new SourceHandler(this, "defaults");
  readonly nodeHandler: WatchHandler = new SourceHandler(this, "node");

  /**
   * One ConfigMap's watch saw it (o) or saw it gone (undefined); listing: it came from a (re)list.
   * For SourceHandler: not a part of the controller's use.
   */
  sourceSeen(which: "defaults" | "node", o: any, listing: boolean): void {
    if (listing) this.#listed[which] = true;
    let source: Source | undefined;
    if (o !== undefined) {
      const data: Record<string, string> = {};
      const d = o?.data;
      if (d && typeof d === "object") for (const [k, v] of Object.entries(d)) if (typeof v === "string") data[k] = v;
      source = { data, resourceVersion: String(o?.metadata?.resourceVersion ?? "") };
    }
    if (which === "defaults") this.#defaults = source;
    else this.#node = source;
    this.#schedule();
  }

  #schedule(): void {
    const host = this.#ctx.host;
    host.clearTimer(this.#timer);
    this.#timer = host.setTimer(() => this.evaluate(), SETTLE_MS);
  }

  /** Merges, validates and applies what the watches hold (after both listed once). */
  evaluate(): void {
    if (!this.#listed.defaults || !this.#listed.node) return;
    const data: Record<string, string> = { ...(this.#defaults?.data ?? {}), ...(this.#node?.data ?? {}) };
    const from: string[] = [];
    if (this.#defaults) from.push(`${DEFAULTS_CONFIGMAP}@${this.#defaults.resourceVersion}`);
    if (this.#node) from.push(`${nodeConfigMap(this.#ctx.nodeName)}@${this.#node.resourceVersion}`);
    const origin = from.length ? from.join(",") : "firmware";
    const parsed = parseSettings(data, this.#firmware);
    if ("errors" in parsed) {
      const why = parsed.errors.join("; ");
      if (why === this.#lastRejected) return; // said once per distinct problem
      this.#lastRejected = why;
      this.#ctx.log("warn", `settings from ${origin} rejected, nothing changed: ${why}`);
      this.#ctx.record({ type: "Warning", reason: "SettingsRejected", message: `${origin}: ${why}; nothing changed` });
      return;
    }
    this.#lastRejected = "";
    const changes = describeChanges(this.current, parsed.settings);
    const unknown = parsed.unknown.length ? `; unknown keys left alone: ${parsed.unknown.join(", ")}` : "";
    if (!changes.length && origin === this.origin) return;
    this.current = parsed.settings;
    this.origin = origin;
    this.#apply(parsed.settings);
    this.#persist(data);
    const what = changes.length ? changes.join(", ") : "no value changed";
    this.#ctx.log("info", `settings applied from ${origin}: ${what}${unknown}`);
    this.#ctx.record({ type: unknown ? "Warning" : "Normal", reason: "SettingsApplied", message: `${origin}: ${what}${unknown}` });
    this.onApplied?.();
  }

  #persist(data: Record<string, string>): void {
    const store = this.#ctx.host.store;
    if (!store) return;
    try {
      // memory_values stays out of the text (it may be long); the region itself is kept as bytes.
      const { memory_values: _m, ...rest } = data;
      store.write(STORE_SETTINGS, this.#ctx.host.utf8Encode(JSON.stringify({ origin: this.origin, data: rest })));
      store.write(STORE_MEMORY, this.current.memory.slice());
    } catch (err) {
      this.#ctx.log("warn", `settings applied but not persisted: ${String((err as Error)?.message ?? err)}`);
    }
  }

  stop(): void {
    this.#ctx.host.clearTimer(this.#timer);
  }
}

/** A settings ConfigMap's watch handler: four prototype methods over the controller, no closures. */
class SourceHandler implements WatchHandler {
  #controller: SettingsController;
  #which: "defaults" | "node";

  constructor(controller: SettingsController, which: "defaults" | "node") {
    this.#controller = controller;
    this.#which = which;
  }

  replaced(items: any[]): void {
    this.#controller.sourceSeen(this.#which, items.length ? items[0] : undefined, true);
  }

  added(o: any): void {
    this.#controller.sourceSeen(this.#which, o, false);
  }

  modified(o: any): void {
    this.#controller.sourceSeen(this.#which, o, false);
  }

  deleted(): void {
    this.#controller.sourceSeen(this.#which, undefined, false);
  }
}
