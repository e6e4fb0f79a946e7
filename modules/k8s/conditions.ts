// Node conditions: the standard five with the kubelet's canonical strings, picokubelet's custom ones
// with its exact rules (heap % against the host's real heap total), and a tracker that keeps
// lastTransitionTime honest: it changes only when a condition's status changes.

export type ConditionStatus = "True" | "False" | "Unknown";

export interface ConditionValue {
  type: string;
  status: ConditionStatus;
  reason: string;
  message: string;
}

export interface WireCondition extends ConditionValue {
  lastHeartbeatTime: string;
  lastTransitionTime: string;
}

export interface ConditionInputs {
  /** Free heap bytes; undefined where the build cannot measure it. */
  heapFree?: number;
  heapTotal?: number;
  uptimeSeconds: number;
  /** Network reconnects since the last successful status push. */
  reconnects: number;
  /** Lifetime successful Lease renewals. */
  renewals: number;
  bssidChanged: boolean;
  clockSlipped: boolean;
  /** "ethernet", "wifi" or "host", for NetworkUnavailable's message. */
  network: string;
  shuttingDown: boolean;
}

export const MEMORY_PRESSURE_BYTES = 20 * 1024;

export const STANDARD_TYPES: readonly string[] = Object.freeze(["Ready", "MemoryPressure", "DiskPressure", "PIDPressure", "NetworkUnavailable"]);
export const CUSTOM_TYPES: readonly string[] = Object.freeze(["Vibes", "Caffeinated", "Existential", "Peckish", "Haunted"]);

const c = (type: string, status: ConditionStatus, reason: string, message: string): ConditionValue => ({ type, status, reason, message });

export function heapPercentFree(inputs: ConditionInputs): number | undefined {
  if (inputs.heapFree === undefined || !inputs.heapTotal) return undefined;
  return (inputs.heapFree / inputs.heapTotal) * 100;
}

/** Every condition for the given inputs, first matching rule winning, in a fixed order. */
export function evaluateConditions(inputs: ConditionInputs): ConditionValue[] {
  const free = inputs.heapFree;
  const pct = heapPercentFree(inputs);
  const starving = free !== undefined && free < MEMORY_PRESSURE_BYTES;
  const out: ConditionValue[] = [];

  out.push(
    inputs.shuttingDown
      ? c("Ready", "False", "KubeletNotReady", "node is shutting down")
      : c("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
  );
  out.push(
    free === undefined
      ? c("MemoryPressure", "Unknown", "HeapFigureUnavailable", "this build cannot measure its heap (instrumentation is only in debug builds)")
      : starving
        ? c("MemoryPressure", "True", "KubeletHasInsufficientMemory", "kubelet has insufficient memory available")
        : c("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
  );
  out.push(c("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"));
  out.push(c("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"));
  out.push(c("NetworkUnavailable", "False", "NetworkIsUp", `reaching the API server over ${inputs.network}`));

  // picokubelet's custom conditions, exactly as it evaluates them.
  const r = inputs.reconnects;
  let vibes: ConditionValue;
  if (r >= 3) vibes = c("Vibes", "False", "Cursed", "wifi keeps doing the thing");
  else if (pct !== undefined && pct < 30) vibes = c("Vibes", "False", "Off", "heap is hostile");
  else if (pct !== undefined && pct > 70 && r === 0 && inputs.uptimeSeconds < 600) vibes = c("Vibes", "True", "Immaculate", "freshly booted, heap abundant");
  else if (pct !== undefined && pct > 50 && r === 0) vibes = c("Vibes", "True", "Cromulent", "perfectly cromulent");
  else vibes = c("Vibes", "Unknown", "Dissociating", "vibes indeterminate");
  out.push(vibes);

  out.push(
    inputs.uptimeSeconds < 600
      ? c("Caffeinated", "True", "FreshlyBrewed", "fresh out of the bootloader")
      : c("Caffeinated", "False", "Decaf", "running on fumes and conviction"),
  );

  const n = inputs.renewals;
  out.push(
    n >= 10000
      ? c("Existential", "True", "Transcendent", "the lease is the self")
      : n >= 1000
        ? c("Existential", "True", "Accepting", "this is fine, mostly")
        : n >= 100
          ? c("Existential", "True", "Questioning", "is this all there is")
          : c("Existential", "False", "Innocent", "still believes in pods"),
  );

  let peckish: ConditionValue;
  if (starving) peckish = c("Peckish", "True", "Hungry", "would eat a byte right now");
  else if (pct === undefined) peckish = c("Peckish", "Unknown", "HeapFigureUnavailable", "cannot tell how hungry it is");
  else if (pct > 60) peckish = c("Peckish", "False", "Sated", "heap is plenty");
  else if (pct > 40) peckish = c("Peckish", "True", "CouldGoForASnack", "could go for a snack");
  else peckish = c("Peckish", "True", "Hungry", "would eat a byte right now");
  out.push(peckish);

  out.push(
    inputs.bssidChanged
      ? c("Haunted", "True", "NewGhost", "associated to a different bssid")
      : inputs.clockSlipped
        ? c("Haunted", "True", "TimeSlipped", "wall clock disagrees with monotonic")
        : c("Haunted", "False", "Calm", "no ghosts this interval"),
  );
  return out;
}

interface Tracked extends ConditionValue {
  lastTransitionTime: string;
}

export class ConditionTracker {
  #current = new Map<string, Tracked>();

  /**
   * Seeds from conditions stored on the Node (a restart, a 409, or after an outage during which the
   * node lifecycle controller set Unknown), so transition times survive and flips are real flips.
   */
  seed(stored: { type: string; status: string; reason?: string; message?: string; lastTransitionTime?: string }[] | undefined): void {
    for (const s of stored ?? []) {
      if (!s || typeof s.type !== "string") continue;
      const status = s.status === "True" || s.status === "False" ? s.status : "Unknown";
      this.#current.set(s.type, {
        type: s.type,
        status,
        reason: s.reason ?? "",
        message: s.message ?? "",
        lastTransitionTime: s.lastTransitionTime ?? "",
      });
    }
  }

  /** Applies fresh values; returns the types whose status changed (unseen types count as changed). */
  update(values: ConditionValue[], nowTime: string): string[] {
    const flipped: string[] = [];
    for (const v of values) {
      const prev = this.#current.get(v.type);
      if (!prev || prev.status !== v.status) {
        flipped.push(v.type);
        // Spelled out, not { ...v, lastTransitionTime }: V8 gives each object so spread a hidden class
        // of its own (about 250 bytes each, kept as long as the condition), and only these five are wanted.
        this.#current.set(v.type, { type: v.type, status: v.status, reason: v.reason, message: v.message, lastTransitionTime: nowTime });
      } else {
        prev.reason = v.reason;
        prev.message = v.message;
        prev.lastTransitionTime ||= nowTime;
      }
    }
    return flipped;
  }

  get(type: string): Tracked | undefined {
    return this.#current.get(type);
  }

  /** The conditions as the API wants them, each with this push's heartbeat. */
  wire(heartbeatTime: string, types: readonly string[]): WireCondition[] {
    const out: WireCondition[] = [];
    for (const type of types) {
      const t = this.#current.get(type);
      if (t) out.push({ type, status: t.status, lastHeartbeatTime: heartbeatTime, lastTransitionTime: t.lastTransitionTime, reason: t.reason, message: t.message });
    }
    return out;
  }
}
