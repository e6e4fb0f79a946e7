// The workloads every host runs (images xs-kubelet.dev/<name>): on the board against its devices,
// on the Node host and in the simulator against simulated ones. Each reads its settings from args
// (--key=value) and env (KEY), checks them all before it starts, and holds nothing but timers and
// the pins it claimed.
import type { Rgb } from "../led/patterns";
import { WorkloadError, duration, integer, settings, type Workload, type WorkloadIO, type WorkloadKind } from "./workload";

const NAMED_COLOURS: Readonly<Record<string, string>> = Object.freeze({
  red: "ff0000",
  green: "00ff00",
  blue: "0000ff",
  white: "ffffff",
  yellow: "ffff00",
  cyan: "00ffff",
  magenta: "ff00ff",
  orange: "ff8000",
  purple: "8000ff",
  pink: "ff4080",
});

export function parseColour(text: string): Rgb {
  const v = text.trim().toLowerCase();
  const hex = NAMED_COLOURS[v] ?? (/^#?[0-9a-f]{6}$/.test(v) ? v.replace("#", "") : undefined);
  if (hex === undefined) throw new WorkloadError(`led: colour "${text.slice(0, 40)}" is not #rrggbb or one of ${Object.keys(NAMED_COLOURS).join(", ")}`);
  return [parseInt(hex.slice(0, 2), 16), parseInt(hex.slice(2, 4), 16), parseInt(hex.slice(4, 6), 16)];
}

/** hello: a line every interval; with --count=N it exits after N lines with --exit-code (a Job). */
const hello: WorkloadKind = Object.freeze({
  name: "hello",
  summary: "logs a line every --interval (default 1s); --count=N exits after N lines with --exit-code (default 0)",
  start(io: WorkloadIO): Workload {
    const s = settings(io, { message: `hello from ${io.nodeName}`, interval: "1s", count: "0", "exit-code": "0" }, "hello");
    const every = duration(s.interval, "hello --interval", 100, 3_600_000);
    const count = integer(s.count, "hello --count", 0, 1_000_000_000);
    const code = integer(s["exit-code"], "hello --exit-code", 0, 255);
    let n = 0;
    const line = () => {
      n++;
      io.log(`${s.message} (${n}${count ? `/${count}` : ""})`);
      if (count && n >= count) io.exit(code);
    };
    line();
    if (!count || n < count) io.every(every, line);
    return { stop() {} };
  },
});

/** led: the pod's colour and pattern on the status LED while the node is healthy. */
const led: WorkloadKind = Object.freeze({
  name: "led",
  summary: "shows --color (#rrggbb or a name) as --pattern solid|blink|breathe|rainbow with --period, while the node is healthy",
  start(io: WorkloadIO): Workload {
    const s = settings(io, { color: "purple", pattern: "breathe", period: "2s" }, "led");
    const rgb = parseColour(s.color);
    const pattern = s.pattern;
    if (pattern !== "solid" && pattern !== "blink" && pattern !== "breathe" && pattern !== "rainbow") throw new WorkloadError(`led: --pattern "${pattern.slice(0, 40)}" is not solid, blink, breathe or rainbow`);
    const periodMs = duration(s.period, "led --period", 100, 60_000);
    io.devices.led({ rgb, pattern, periodMs });
    io.log(`LED: ${pattern} #${rgb.map((c) => c.toString(16).padStart(2, "0")).join("")} every ${periodMs} ms (under the status LED's failure patterns)`);
    return {
      stop() {
        io.devices.led(undefined);
      },
    };
  },
});

/** Pins from "4,5" or "4 5". */
function pins(text: string, what: string): number[] {
  if (!text.trim()) return [];
  const out: number[] = [];
  for (const p of text.split(/[ ,]+/)) {
    if (!p) continue;
    out.push(integer(p, what, 0, 255));
  }
  return out;
}

/**
 * gpio: drives --outputs (constant --level, or toggling every --blink) and logs --inputs when they
 * change (polled every --interval). Only pins on the board's allow-lists, and only pins no other
 * pod holds.
 */
const gpio: WorkloadKind = Object.freeze({
  name: "gpio",
  summary: "drives --outputs=<pins> at --level 0|1 (or toggles them every --blink), logs --inputs=<pins> on change (polled every --interval)",
  start(io: WorkloadIO): Workload {
    const s = settings(io, { outputs: "", inputs: "", level: "1", blink: "", interval: "100ms" }, "gpio");
    const port = io.devices.gpio;
    if (!port) throw new WorkloadError("gpio: this host has no GPIO");
    const outs = pins(s.outputs, "gpio --outputs");
    const ins = pins(s.inputs, "gpio --inputs");
    if (!outs.length && !ins.length) throw new WorkloadError("gpio: give --outputs and/or --inputs");
    for (const p of outs) if (!port.outputs.includes(p)) throw new WorkloadError(`gpio: pin ${p} may not be driven on this board (outputs allowed: ${port.outputs.join(", ")})`);
    for (const p of ins) if (!port.inputs.includes(p)) throw new WorkloadError(`gpio: pin ${p} may not be read on this board (inputs allowed: ${port.inputs.join(", ")})`);
    const level = integer(s.level, "gpio --level", 0, 1) as 0 | 1;
    const blink = s.blink ? duration(s.blink, "gpio --blink", 50, 3_600_000) : 0;
    const poll = duration(s.interval, "gpio --interval", 20, 60_000);
    const busyOut = io.devices.claim(outs, "output");
    if (busyOut) throw new WorkloadError(`gpio: ${busyOut}`);
    const busyIn = io.devices.claim(ins, "input");
    if (busyIn) throw new WorkloadError(`gpio: ${busyIn}`);
    let value: 0 | 1 = level;
    for (const p of outs) port.write(p, value);
    if (outs.length) io.log(`outputs ${outs.join(", ")} = ${value}${blink ? `, toggling every ${blink} ms` : ""}`);
    if (blink) {
      io.every(blink, () => {
        value = value ? 0 : 1;
        for (const p of outs) port.write(p, value);
      });
    }
    const last = new Map<number, number>();
    const sample = () => {
      for (const p of ins) {
        const v = port.read(p);
        if (last.get(p) !== v) {
          last.set(p, v);
          io.log(`input ${p} = ${v}`);
        }
      }
    };
    if (ins.length) {
      sample();
      io.every(poll, sample);
    }
    return {
      stop() {
        for (const p of outs) port.release(p);
        for (const p of ins) port.release(p);
      },
    };
  },
});

/** telemetry: a reading every --interval: heap, uptime, RSSI and temperature where there are such. */
const telemetry: WorkloadKind = Object.freeze({
  name: "telemetry",
  summary: "logs heap, uptime, network, RSSI and the chip's temperature (where the host has them) every --interval (default 10s)",
  start(io: WorkloadIO): Workload {
    const s = settings(io, { interval: "10s" }, "telemetry");
    const every = duration(s.interval, "telemetry --interval", 1000, 3_600_000);
    const read = () => {
      const r = io.devices.readings();
      const parts = [`uptime=${Math.floor(r.uptimeSeconds)}s`];
      if (r.heapFree !== undefined) parts.push(`heap_free=${r.heapFree}`);
      if (r.heapTotal !== undefined) parts.push(`heap_total=${r.heapTotal}`);
      parts.push(`network=${r.network}`);
      if (r.rssi !== undefined) parts.push(`rssi=${r.rssi}dBm`);
      if (r.temperatureC !== undefined) parts.push(`temperature=${r.temperatureC.toFixed(1)}C`);
      io.log(parts.join(" "));
    };
    read();
    io.every(every, read);
    return { stop() {} };
  },
});

export const BUILTIN_WORKLOADS: readonly WorkloadKind[] = Object.freeze([hello, led, gpio, telemetry]);
