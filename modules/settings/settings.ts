// Device settings from ConfigMap data: what each key means, its bounds, and k3s-pico-node's
// memory_values syntax. Pure functions: they never throw, whatever the data — a rejection names the
// key (or the memory_values entry) and what was wrong with it, and a ConfigMap with any bad value
// changes nothing.
import type { LogLevel } from "../host";

/** The device memory region k3s-pico-node's memory_values write into: 1 KiB. */
export const MEMORY_SIZE = 1024;
/** memory_values longer than this is refused before it is parsed (1024 "1023=0xFF," entries fit). */
const MAX_MEMORY_TEXT = 16384;
/** Any one value longer than this is refused (a colour, a number, a level: short). */
const MAX_VALUE = 256;

export const LOG_LEVELS: readonly LogLevel[] = Object.freeze(["debug", "info", "warn", "error"]);

export interface DeviceSettings {
  /** Brightness cap of the status LED, per channel, 0–255. */
  ledBrightness: number;
  statusReportSeconds: number;
  conditionCheckSeconds: number;
  logLevel: LogLevel;
  /** Defaults for the built-in workloads, by workload ("hello": {interval: "2s"}). */
  workloadDefaults: Record<string, Record<string, string>>;
  /** The 1 KiB region: zeros, then memory_values written in. */
  memory: Uint8Array;
}

/** The firmware's settings: what applies when no ConfigMap says otherwise. */
export function firmwareSettings(defaults: { ledBrightness: number; statusReportSeconds: number; conditionCheckSeconds: number; logLevel: LogLevel }): DeviceSettings {
  return { ...defaults, workloadDefaults: {}, memory: new Uint8Array(MEMORY_SIZE) };
}

interface KeySpec {
  /** Bounds and meaning, for the README and the rejection messages. */
  help: string;
  /** The value, or a sentence saying what is wrong with it. */
  parse(value: string): string | { ok: number | string };
  set(s: DeviceSettings, value: number | string): void;
}

function intIn(min: number, max: number, unit = "") {
  return (value: string): string | { ok: number } => {
    const v = value.trim();
    if (!/^[0-9]{1,9}$/.test(v)) return `"${clip(value)}" is not a whole number`;
    const n = Number(v);
    if (n < min || n > max) return `${n}${unit} is outside ${min}–${max}${unit}`;
    return { ok: n };
  };
}

function durationIn(minMs: number, maxMs: number) {
  return (value: string): string | { ok: string } => {
    const m = /^([0-9]{1,7}(?:\.[0-9]{1,3})?)(ms|s|m|h)?$/.exec(value.trim());
    if (!m) return `"${clip(value)}" is not a duration (500ms, 1s, 2m)`;
    const unit = m[2] ?? "s";
    const ms = Number(m[1]) * (unit === "ms" ? 1 : unit === "s" ? 1000 : unit === "m" ? 60_000 : 3_600_000);
    if (ms < minMs || ms > maxMs) return `${value.trim()} is outside ${minMs} ms – ${maxMs / 1000} s`;
    return { ok: value.trim() };
  };
}

function oneOf(options: readonly string[]) {
  return (value: string): string | { ok: string } => {
    const v = value.trim();
    return options.includes(v) ? { ok: v } : `"${clip(value)}" is not one of ${options.join(", ")}`;
  };
}

function colour(value: string): string | { ok: string } {
  const v = value.trim().toLowerCase();
  if (/^#?[0-9a-f]{6}$/.test(v) || /^[a-z]{3,10}$/.test(v)) return { ok: v };
  return `"${clip(value)}" is not #rrggbb or a colour name`;
}

function clip(s: string): string {
  return s.length > 40 ? `${s.slice(0, 40)}…` : s;
}

const workloadDefault = (workload: string, key: string) => (s: DeviceSettings, v: number | string) => {
  (s.workloadDefaults[workload] ??= {})[key] = String(v);
};

const key = (help: string, parse: KeySpec["parse"], set: KeySpec["set"]): KeySpec => Object.freeze({ help, parse, set });

/** Every key a settings ConfigMap may hold (memory_values is parsed apart). */
export const SETTING_KEYS: Readonly<Record<string, KeySpec>> = Object.freeze({
  led_brightness: key("status LED brightness cap per channel, 0–255 (firmware: 38)", intIn(0, 255), (s, v) => void (s.ledBrightness = v as number)),
  status_report_seconds: key("node status pushed at least this often, 10–3600 s (firmware: 300)", intIn(10, 3600, " s"), (s, v) => void (s.statusReportSeconds = v as number)),
  condition_check_seconds: key("conditions evaluated this often, 5–300 s (firmware: 10)", intIn(5, 300, " s"), (s, v) => void (s.conditionCheckSeconds = v as number)),
  log_level: key("debug, info, warn or error (firmware: info)", oneOf(LOG_LEVELS), (s, v) => void (s.logLevel = v as LogLevel)),
  hello_interval: key("the hello workload's default --interval, 100ms–1h", durationIn(100, 3_600_000), workloadDefault("hello", "interval")),
  hello_message: key("the hello workload's default --message", (v) => ({ ok: v }), workloadDefault("hello", "message")),
  telemetry_interval: key("the telemetry workload's default --interval, 1s–1h", durationIn(1000, 3_600_000), workloadDefault("telemetry", "interval")),
  led_color: key("the led workload's default --color", colour, workloadDefault("led", "color")),
  led_pattern: key("the led workload's default --pattern: solid, blink, breathe, rainbow", oneOf(Object.freeze(["solid", "blink", "breathe", "rainbow"])), workloadDefault("led", "pattern")),
});

/** Keys that look like credentials: never taken from a ConfigMap, whatever they hold. */
function secretLooking(key: string): boolean {
  return /(token|passw|secret|credential|private|psk|_key$|^key$|apikey|api_key|cert)/i.test(key);
}

/** k3s-pico-node's memory_values: "0=0x42,1=0x43,2=0xFF" (decimal or 0x hex, both sides). */
export function parseMemoryValues(text: string): { writes: [number, number][] } | { errors: string[] } {
  if (text.length > MAX_MEMORY_TEXT) return { errors: [`memory_values is ${text.length} characters; at most ${MAX_MEMORY_TEXT}`] };
  const errors: string[] = [];
  const writes: [number, number][] = [];
  const seen = new Set<number>();
  if (text.trim() === "") return { writes };
  const entries = text.split(",");
  for (let i = 0; i < entries.length; i++) {
    const raw = entries[i];
    const entry = raw.trim();
    const where = `memory_values entry ${i + 1} "${clip(entry)}"`;
    if (entry === "") {
      // A trailing comma is harmless; an empty entry in the middle is a typo worth naming.
      if (i === entries.length - 1) continue;
      errors.push(`memory_values entry ${i + 1} is empty`);
      continue;
    }
    const eq = entry.indexOf("=");
    if (eq < 0 || entry.indexOf("=", eq + 1) >= 0) {
      errors.push(`${where}: not offset=value`);
      continue;
    }
    const offset = number(entry.slice(0, eq).trim());
    const value = number(entry.slice(eq + 1).trim());
    if (offset === undefined) {
      errors.push(`${where}: offset "${clip(entry.slice(0, eq).trim())}" is not a decimal or 0x-hex number`);
      continue;
    }
    if (value === undefined) {
      errors.push(`${where}: value "${clip(entry.slice(eq + 1).trim())}" is not a decimal or 0x-hex number`);
      continue;
    }
    if (offset < 0 || offset >= MEMORY_SIZE) {
      errors.push(`${where}: offset ${offset} is outside 0–${MEMORY_SIZE - 1}`);
      continue;
    }
    if (value < 0 || value > 255) {
      errors.push(`${where}: value ${value} is not a byte (0x00–0xFF)`);
      continue;
    }
    if (seen.has(offset)) {
      errors.push(`${where}: offset ${offset} is given twice`);
      continue;
    }
    seen.add(offset);
    writes.push([offset, value]);
    if (errors.length >= 8) break; // enough to act on; the rest can wait for the next try
  }
  return errors.length ? { errors } : { writes };
}

function number(s: string): number | undefined {
  if (/^[0-9]{1,6}$/.test(s)) return Number(s);
  if (/^0[xX][0-9a-fA-F]{1,6}$/.test(s)) return parseInt(s.slice(2), 16);
  return undefined;
}

export interface ParsedSettings {
  settings: DeviceSettings;
  /** Keys no setting has: reported, and otherwise left alone. */
  unknown: string[];
}

/**
 * Settings from the merged ConfigMap data over the firmware's: the result, or every problem found
 * (each naming its key). Never throws.
 */
export function parseSettings(data: Readonly<Record<string, string>>, firmware: DeviceSettings): ParsedSettings | { errors: string[] } {
  const errors: string[] = [];
  const unknown: string[] = [];
  const s: DeviceSettings = { ...firmware, workloadDefaults: {}, memory: new Uint8Array(MEMORY_SIZE) };
  for (const [w, d] of Object.entries(firmware.workloadDefaults)) s.workloadDefaults[w] = { ...d };
  s.memory.set(firmware.memory);
  try {
    for (const key of Object.keys(data).sort()) {
      const value = data[key];
      if (typeof value !== "string") {
        errors.push(`${key}: not a string`);
        continue;
      }
      if (key === "memory_values") {
        const parsed = parseMemoryValues(value);
        if ("errors" in parsed) errors.push(...parsed.errors);
        else {
          s.memory.fill(0);
          for (const [offset, byte] of parsed.writes) s.memory[offset] = byte;
        }
        continue;
      }
      const spec = Object.prototype.hasOwnProperty.call(SETTING_KEYS, key) ? SETTING_KEYS[key] : undefined;
      if (!spec) {
        if (secretLooking(key)) errors.push(`${key}: looks like a credential; secrets are never taken from a ConfigMap (they stay in the board's Preferences)`);
        else unknown.push(key);
        continue;
      }
      if (value.length > MAX_VALUE) {
        errors.push(`${key}: ${value.length} characters; at most ${MAX_VALUE}`);
        continue;
      }
      const r = spec.parse(value);
      if (typeof r === "string") errors.push(`${key}: ${r}`);
      else spec.set(s, r.ok);
    }
  } catch (err) {
    errors.push(`settings could not be read: ${String((err as Error)?.message ?? err)}`);
  }
  return errors.length ? { errors } : { settings: s, unknown };
}

/** What differs between two settings, as "key old → new" phrases (memory: how many bytes changed). */
export function describeChanges(before: DeviceSettings, after: DeviceSettings): string[] {
  const out: string[] = [];
  const scalar = (name: string, a: unknown, b: unknown) => {
    if (a !== b) out.push(`${name} ${a} → ${b}`);
  };
  scalar("led_brightness", before.ledBrightness, after.ledBrightness);
  scalar("status_report_seconds", before.statusReportSeconds, after.statusReportSeconds);
  scalar("condition_check_seconds", before.conditionCheckSeconds, after.conditionCheckSeconds);
  scalar("log_level", before.logLevel, after.logLevel);
  const workloads = new Set([...Object.keys(before.workloadDefaults), ...Object.keys(after.workloadDefaults)]);
  for (const w of [...workloads].sort()) {
    const a = before.workloadDefaults[w] ?? {};
    const b = after.workloadDefaults[w] ?? {};
    for (const k of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) scalar(`${w}_${k}`, a[k] ?? "(default)", b[k] ?? "(default)");
  }
  let bytes = 0;
  for (let i = 0; i < MEMORY_SIZE; i++) if (before.memory[i] !== after.memory[i]) bytes++;
  if (bytes) out.push(`memory: ${bytes} byte${bytes === 1 ? "" : "s"} changed`);
  return out;
}
