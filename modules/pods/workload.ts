// What a pod's container runs on the board: a workload, chosen by the container's image. The pod
// manager knows workloads only through this interface and a registry from image names to kinds, so
// a new kind (next: a JavaScript program from a ConfigMap, run in an XS Compartment) is one more
// registry entry and no change to the manager.
//
// A workload is cooperative: it runs on the agent's one thread through timers the manager gives it
// (every timer is cleared when the container stops), writes its log one line at a time, and ends by
// calling exit(code). Its configuration comes from args ("--key=value") and env (resolved by the
// manager, configMapKeyRef included); a bad one throws WorkloadError before anything runs.
import type { GpioPort } from "../host";
import type { LedOverlay } from "../led/patterns";

export type { GpioPort };

/** The images this project defines: xs-kubelet.dev/<name>[:tag]. */
export const IMAGE_DOMAIN = "xs-kubelet.dev";

export class WorkloadError extends Error {
  /** The container's waiting reason (CreateContainerConfigError for a bad configuration). */
  readonly reason: string;
  constructor(message: string, reason = "CreateContainerConfigError") {
    super(message);
    this.reason = reason;
  }
}

export interface Readings {
  heapFree?: number;
  heapTotal?: number;
  uptimeSeconds: number;
  /** dBm, Wi-Fi only. */
  rssi?: number;
  /** °C, where the platform has a sensor. */
  temperatureC?: number;
  network: string;
}

/** What a running container may touch of the board. */
export interface Devices {
  /** The pod's LED layer: shown while the node is healthy, under every failure pattern. */
  led(overlay: LedOverlay | undefined): void;
  gpio: GpioPort | undefined;
  readings(): Readings;
  /** Claims pins for this container; a string: why not (in use by another pod, not allowed). */
  claim(pins: number[], direction: "output" | "input"): string | undefined;
}

export interface WorkloadIO {
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly nodeName: string;
  readonly podName: string;
  /** The node's defaults for this workload's settings (the settings ConfigMaps: hello_interval …). */
  readonly defaults?: Readonly<Record<string, string>>;
  log(line: string): void;
  /** The workload is done; the container terminates with this exit code. */
  exit(code: number): void;
  /** Repeating and one-shot timers, all cleared when the container stops. */
  every(ms: number, run: () => void): void;
  after(ms: number, run: () => void): void;
  readonly devices: Devices;
}

export interface Workload {
  /** The container is being stopped (deletion, restart): release what it holds. Timers go anyway. */
  stop(): void;
}

export interface WorkloadKind {
  /** The image name without the domain and tag ("hello"). */
  readonly name: string;
  /** One line for the README and the error an unknown image gets. */
  readonly summary: string;
  start(io: WorkloadIO): Workload;
}

/** "xs-kubelet.dev/hello:1" → "hello"; undefined when the image is not one of the project's. */
export function workloadName(image: string): string | undefined {
  const at = image.indexOf("@");
  const ref = at >= 0 ? image.slice(0, at) : image;
  const slash = ref.lastIndexOf("/");
  const colon = ref.lastIndexOf(":");
  const repo = colon > slash ? ref.slice(0, colon) : ref;
  if (!repo.startsWith(`${IMAGE_DOMAIN}/`)) return undefined;
  const name = repo.slice(IMAGE_DOMAIN.length + 1);
  return /^[a-z0-9][a-z0-9-]*$/.test(name) ? name : undefined;
}

export class WorkloadRegistry {
  #kinds = new Map<string, WorkloadKind>();

  constructor(kinds: WorkloadKind[]) {
    for (const k of kinds) this.#kinds.set(k.name, k);
  }

  resolve(image: string): WorkloadKind | undefined {
    const name = workloadName(image);
    return name === undefined ? undefined : this.#kinds.get(name);
  }

  get names(): string[] {
    return [...this.#kinds.keys()];
  }

  /** Why an image does not run here, in words a user can act on. */
  unknown(image: string): string {
    const list = this.names.map((n) => `${IMAGE_DOMAIN}/${n}`).join(", ");
    return `image "${image}" is not a workload this node runs (it runs no containers): use one of ${list}`;
  }
}

/**
 * A workload's settings: its defaults, the node's defaults (settings), env (KEY_NAME), args
 * (--key-name=value), each winning over the one before; every key
 * checked against the ones it knows — an unknown one is an error, not silently ignored.
 */
export function settings(io: WorkloadIO, known: Record<string, string>, workload: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, def] of Object.entries(known)) out[key] = io.defaults?.[key] ?? def;
  const envKey = (k: string) => k.toUpperCase().replace(/-/g, "_");
  for (const key of Object.keys(known)) {
    const v = io.env[envKey(key)];
    if (v !== undefined) out[key] = v;
  }
  for (const arg of io.args) {
    const m = /^--([a-z][a-z0-9-]*)(?:=(.*))?$/.exec(arg);
    if (!m) throw new WorkloadError(`${workload}: argument "${arg.slice(0, 60)}" is not --key=value`);
    if (!(m[1] in known)) throw new WorkloadError(`${workload}: unknown argument --${m[1]} (known: ${Object.keys(known).map((k) => `--${k}`).join(", ")})`);
    out[m[1]] = m[2] ?? "true";
  }
  return out;
}

/** "1s", "500ms", "2m", or plain seconds → ms, within [min, max]; a WorkloadError otherwise. */
export function duration(value: string, what: string, minMs: number, maxMs: number): number {
  const m = /^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)?$/.exec(value.trim());
  if (!m) throw new WorkloadError(`${what}: "${value.slice(0, 40)}" is not a duration (e.g. 500ms, 1s, 2m)`);
  const unit = m[2] ?? "s";
  const ms = Number(m[1]) * (unit === "ms" ? 1 : unit === "s" ? 1000 : unit === "m" ? 60_000 : 3_600_000);
  if (!(ms >= minMs && ms <= maxMs)) throw new WorkloadError(`${what}: ${value} is outside ${minMs} ms … ${maxMs / 1000} s`);
  return Math.round(ms);
}

export function integer(value: string, what: string, min: number, max: number): number {
  if (!/^-?[0-9]+$/.test(value.trim())) throw new WorkloadError(`${what}: "${value.slice(0, 40)}" is not an integer`);
  const n = Number(value);
  if (n < min || n > max) throw new WorkloadError(`${what}: ${n} is outside ${min} … ${max}`);
  return n;
}
