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

export function instanceIO(p: InstanceParts): WorkloadIO {
  const { host, c, generation } = p;
  /** A workload's timer callback; a throw ends the instance (exit code 1), never the agent. */
  const guard = (fn: () => void) => {
    if (generation !== c.generation) return;
    const t0 = host.monotonic();
    try {
      fn();
      c.cpuMs += host.monotonic() - t0;
    } catch (err) {
      c.log.append(p.now(), `workload error: ${describeError(err)}`);
      p.exited(1, "Error", describeError(err));
    }
  };
  const later = (ms: number, fn: () => void) => {
    if (generation !== c.generation) return;
    const id = host.setTimer(() => {
      c.timers.delete(id);
      if (generation === c.generation) fn();
    }, Math.max(0, ms));
    c.timers.add(id);
  };
  return {
    args: p.args,
    env: p.env,
    nodeName: p.nodeName,
    podName: p.podName,
    defaults: p.defaults,
    devices: p.devices,
    log: (line: string) => {
      if (generation === c.generation) c.log.append(p.now(), String(line));
    },
    // Out of the workload's own call stack: it may exit from its start or a timer.
    exit: (code: number) => later(0, () => p.exited(code)),
    every: (ms: number, fn: () => void) => {
      const tick = () => {
        guard(fn);
        later(ms, tick);
      };
      later(ms, tick);
    },
    after: (ms: number, fn: () => void) => later(ms, () => guard(fn)),
  };
}
