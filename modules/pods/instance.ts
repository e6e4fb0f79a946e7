// One instance of a container, as its workload sees it: the I/O it is handed and the timers it may
// set. An instance is its generation — c.generation moves on when the instance ends — so a timer,
// a log line or an exit from an instance that is over does nothing, and a timer still pending is
// cleared with the instance (c.timers), never firing for the next one.
import { describeError } from "../api/client";
import type { Host } from "../host";
import type { ContainerRun } from "./model";
import type { Devices, WorkloadIO } from "./workload";

export interface InstanceParts {
  host: Host;
  c: ContainerRun;
  generation: number;
  args: string[];
  env: Record<string, string>;
  nodeName: string;
  podName: string;
  defaults: Record<string, string>;
  devices: Devices;
  /** Wall-clock ms for a log line (0 before the clock is anchored). */
  now(): number;
  /** The instance is over: the workload exited (outside its own call stack) or a callback threw. */
  exited(code: number, reason?: string, message?: string): void;
}

/**
 * A class, not an object literal of closures: its methods are on the prototype (in flash on the
 * board), so a running instance costs its fields and its pending timers' callbacks only.
 */
class InstanceIO implements WorkloadIO {
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly nodeName: string;
  readonly podName: string;
  readonly defaults: Readonly<Record<string, string>>;
  readonly devices: Devices;
  #p: InstanceParts;

  constructor(p: InstanceParts) {
    this.#p = p;
    this.args = p.args;
    this.env = p.env;
    this.nodeName = p.nodeName;
    this.podName = p.podName;
    this.defaults = p.defaults;
    this.devices = p.devices;
  }

  get #current(): boolean {
    return this.#p.generation === this.#p.c.generation;
  }

  /** A workload's timer callback; a throw ends the instance (exit code 1), never the agent. */
  #guard(fn: () => void): void {
    if (!this.#current) return;
    const { host, c } = this.#p;
    const t0 = host.monotonic();
    try {
      fn();
      c.cpuMs += host.monotonic() - t0;
    } catch (err) {
      c.log.append(this.#p.now(), `workload error: ${describeError(err)}`);
      this.#p.exited(1, "Error", describeError(err));
    }
  }

  #later(ms: number, fn: () => void): void {
    if (!this.#current) return;
    const { host, c } = this.#p;
    const id = host.setTimer(() => {
      c.timers.delete(id);
      if (this.#current) fn();
    }, Math.max(0, ms));
    c.timers.add(id);
  }

  log(line: string): void {
    if (this.#current) this.#p.c.log.append(this.#p.now(), String(line));
  }

  /** Out of the workload's own call stack: it may exit from its start or a timer. */
  exit(code: number): void {
    this.#later(0, () => this.#p.exited(code));
  }

  every(ms: number, fn: () => void): void {
    const tick = () => {
      this.#guard(fn);
      this.#later(ms, tick);
    };
    this.#later(ms, tick);
  }

  after(ms: number, fn: () => void): void {
    this.#later(ms, () => this.#guard(fn));
  }
}

export function instanceIO(p: InstanceParts): WorkloadIO {
  return new InstanceIO(p);
}
