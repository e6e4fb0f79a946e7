// The Host pieces every Moddable build shares (board and simulator): timers, monotonic time,
// randomness, UTF-8, heap figures from instrumentation, and the console log.
/// <reference path="./types/ssl-server.d.ts" />
import Timer from "timer";
import Time from "time";
import Instrumentation from "instrumentation";
import Debug from "debug";
import RNG from "rng";
import config from "mc/config";
import type { HeapFigures, LogLevel, TimerId, XsHeapSample } from "../../modules/host";

/** Milliseconds spent running the agent's callbacks: XS runs on one core, so this is its CPU time. */
let busyMs = 0;

let depth = 0;

/** Runs fn and counts the time it took as the agent's (timers, socket callbacks; nested calls once). */
export function busy<T>(fn: () => T): T {
  if (depth > 0) return fn();
  const start = Time.ticks;
  depth++;
  try {
    return fn();
  } finally {
    depth--;
    const took = Time.ticks - start;
    if (took > 0) busyMs += took;
  }
}

/** Timer callbacks run from C: a throw there would abort the program, so it is logged instead. */
export function setTimer(callback: () => void, ms: number): TimerId {
  return Timer.set(() => {
    try {
      busy(callback);
    } catch (e) {
      log("error", `uncaught in a timer callback: ${(e as Error)?.message ?? e}`);
    }
  }, Math.max(0, ms));
}

/**
 * CPU seconds (time in the agent's callbacks; ms resolution) and XS memory in use: the live heap
 * of the last sample where there is one (kubectl top then agrees with /metrics and the screen),
 * else what the heaps hold now.
 */
export function usage(): { cpuSeconds: number; memoryBytes: number } | undefined {
  const memory = lastSample ? lastSample.slotBytes + lastSample.chunkBytes : xsHeapUsed();
  return memory === undefined ? undefined : { cpuSeconds: busyMs / 1000, memoryBytes: memory };
}

export function clearTimer(id: TimerId): void {
  if (id !== undefined) Timer.clear(id as Timer);
}

// Time.ticks is a millisecond counter that may wrap on the board; a step backwards is absorbed
// so the monotonic clock never goes backwards (at worst it stands still for one reading).
let lastTicks = Time.ticks;
let base = 0;
export function monotonic(): number {
  const now = Time.ticks;
  if (now < lastTicks) base += lastTicks - now;
  lastTicks = now;
  return base + now;
}

export function random(): number {
  return Math.random();
}

/** From the SDK's RNG, the one TLS uses (seeded from the hardware RNG on the board; see hosts/sim for mcsim). */
export function randomBytes(length: number): Uint8Array {
  return new Uint8Array(RNG.get(length));
}

export function utf8Encode(text: string): Uint8Array {
  return new Uint8Array(ArrayBuffer.fromString(text));
}

export function utf8Decode(bytes: Uint8Array): string {
  const whole = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength;
  return String.fromArrayBuffer((whole ? bytes.buffer : bytes.slice().buffer) as ArrayBuffer);
}

function instrument(name: Parameters<typeof Instrumentation.map>[0]): number | undefined {
  try {
    const index = Instrumentation.map(name);
    return index === undefined ? undefined : Instrumentation.get(index);
  } catch {
    return undefined;
  }
}

/**
 * Free = what ESP-IDF can still allocate (the XS heaps, TLS buffers and sockets all come from
 * it); total = free + what XS holds now. Instrumentation exists only in debug (-d) and
 * instrumented (-i) builds: a release build reports undefined, and so does the simulator, whose
 * "System Free Memory" is always 0.
 */
export function heap(): HeapFigures | undefined {
  const free = instrument("System Free Memory");
  const chunk = instrument("XS Chunk Heap Used");
  const slot = instrument("XS Slot Heap Used");
  if (!free || chunk === undefined || slot === undefined) return undefined;
  return { free, total: free + chunk + slot };
}

// Bytes of one txSlot, which JS cannot see: 16 on the board's 32-bit XS, 32 on a 64-bit PC
// (mc/config xsSlotSize, set per platform in the manifest).
const SLOT_SIZE = Number((config as Record<string, unknown>).xsSlotSize) || 16;
let lastSample: XsHeapSample | undefined;
/** Slots + chunks in use just before the last sample's collection: live data and the garbage since the previous collection. */
export let usedBeforeSample: number | undefined;

/**
 * The live XS heap, sampled: a collection first, then what instrumentation says the slot and
 * chunk heaps hold (right after a sweep that is live data only; at any other moment it includes
 * the garbage since the last one, which is what the simulator's screen showed before). Debug
 * builds only (Debug.gc and instrumentation); undefined elsewhere. The sample is kept: xsHeap()
 * returns it, so everything that shows the heap shows this figure.
 */
export function sampleXsHeap(): XsHeapSample | undefined {
  usedBeforeSample = xsHeapUsed();
  try {
    Debug.gc();
  } catch {
    return undefined;
  }
  const chunkBytes = instrument("XS Chunk Heap Used");
  const slotBytes = instrument("XS Slot Heap Used");
  if (chunkBytes === undefined || slotBytes === undefined) return undefined;
  lastSample = { slotBytes, chunkBytes, slotSize: SLOT_SIZE };
  return lastSample;
}

let triedSample = false;

/**
 * The last sample (the first read takes one); undefined where the build has no instrumentation,
 * which is found once: the screen reads this every second and must not force a collection each time.
 */
export function xsHeap(): XsHeapSample | undefined {
  if (!lastSample && !triedSample) {
    triedSample = true;
    sampleXsHeap();
  }
  return lastSample;
}

/** XS heap in use (chunks + slots), where instrumentation exists. */
export function xsHeapUsed(): number | undefined {
  const chunk = instrument("XS Chunk Heap Used");
  const slot = instrument("XS Slot Heap Used");
  return chunk === undefined || slot === undefined ? undefined : chunk + slot;
}

const LEVELS: Record<LogLevel, string> = { debug: "DEBUG", info: "INFO ", warn: "WARN ", error: "ERROR" };
let debugEnabled = false;

export function enableDebugLog(on: boolean): void {
  debugEnabled = on;
}

/** One line per message on the console (serial on the board, stdout in mcsim). Never give it a secret. */
export function log(level: LogLevel, message: string): void {
  if (level === "debug" && !debugEnabled) return;
  trace(`${LEVELS[level]} ${message}\n`);
}
