// The health ledger: each step that can fail (registering, renewing, pushing status …) has at most
// one standing failure. A failure is logged once, not on every retry (a reminder every 30 attempts),
// its recovery once; the LED state is derived from what stands.
import { describeError, failureKind } from "../api/client";
import type { LogLevel } from "../host";
import type { LedState } from "../led/patterns";
import type { FailureKind } from "../util/retry";

interface Standing {
  kind: FailureKind;
  line: string;
  repeats: number;
}

const REMIND_EVERY = 30;
/** API errors (not auth, not network) in a row on one step before the LED shows Warning. */
const API_ERRORS_FOR_WARNING = 3;

/** The credentials, or the API server's certificate, were refused: retrying alone will not fix it. */
const needsPerson = (kind: FailureKind) => kind === "auth" || kind === "certificate";

/** What to check, appended to the failure's line where the failure itself does not say. */
function hint(kind: FailureKind, err: unknown): string {
  if (kind === "certificate") return " — check the CA bundle and the server name in the config";
  return kind === "auth" && (err as { status?: number }).status === 401 ? " — the token or client certificate is not accepted; check the credentials" : "";
}

export interface LedInputs {
  /** Stopping or stopped: the LED goes dark. */
  stopping: boolean;
  /** The host has a link and an address. */
  connected: boolean;
  /** Running, with a Lease renewed and the last renewal good. */
  healthy: boolean;
}

export class HealthLedger {
  #log: (level: LogLevel, message: string) => void;
  // bounded by the number of distinct steps (a handful), keyed by the step's name
  #standing = new Map<string, Standing>();
  #last = "";

  constructor(log: (level: LogLevel, message: string) => void) {
    this.#log = log;
  }

  failure(what: string, err: unknown): FailureKind {
    const kind = failureKind(err);
    const line = `${what} failed: ${describeError(err)}${hint(kind, err)}`;
    const standing = this.#standing.get(what);
    if (!standing || standing.line !== line) {
      this.#standing.set(what, { kind, line, repeats: 1 });
      this.#log(needsPerson(kind) ? "error" : "warn", line);
    } else if (++standing.repeats % REMIND_EVERY === 0) {
      this.#log("warn", `still failing after ${standing.repeats} attempts: ${line}`);
    }
    this.#last = what;
    return kind;
  }

  /** Clears the step's standing failure; true when there was one (the LED may change). */
  success(what: string): boolean {
    if (this.#standing.size === 0) return false; // the steady state: nothing to look up
    const standing = this.#standing.get(what);
    if (!standing) return false;
    this.#standing.delete(what);
    this.#log("info", `${what} works again${standing.repeats > 1 ? ` after ${standing.repeats} failed attempts` : ""}`);
    return true;
  }

  /** Failed attempts in a row of a step (0 when it stands well). */
  repeats(what: string): number {
    return this.#standing.get(what)?.repeats ?? 0;
  }

  /** The most recent failure still standing, as logged ("" when all is well). */
  get lastError(): string {
    const last = this.#standing.get(this.#last);
    if (last) return last.line;
    let line = "";
    for (const s of this.#standing.values()) line = s.line;
    return line;
  }

  #any(test: (s: Standing) => boolean): boolean {
    for (const s of this.#standing.values()) if (test(s)) return true;
    return false;
  }

  led(inputs: LedInputs): LedState {
    if (inputs.stopping) return "off";
    if (this.#standing.size === 0) return !inputs.connected ? "disconnected" : inputs.healthy ? "healthy" : "connecting";
    // The network works but a person must act (credentials, or the CA and server name): Warning.
    if (this.#any((s) => needsPerson(s.kind))) return "warning";
    if (this.#any((s) => s.kind === "network") || !inputs.connected) return "disconnected";
    if (this.#any((s) => s.kind === "api" && s.repeats >= API_ERRORS_FOR_WARNING)) return "warning";
    return inputs.healthy ? "healthy" : "connecting";
  }
}
