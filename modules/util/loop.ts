// A reconciler's timer: one pending run at a time, nothing after stop().
import type { Host } from "../host";

export class TimerLoop {
  #host: Host;
  #run: () => void;
  #timer: unknown;
  #running = false;

  constructor(host: Host, run: () => void) {
    this.#host = host;
    this.#run = run;
  }

  start(firstInMs: number): void {
    this.#running = true;
    this.schedule(firstInMs);
  }

  stop(): void {
    this.#running = false;
    this.#host.clearTimer(this.#timer);
  }

  /** (Re)schedules the next run; ignored once stopped. */
  schedule(ms: number): void {
    if (!this.#running) return;
    this.#host.clearTimer(this.#timer);
    this.#timer = this.#host.setTimer(this.#run, ms);
  }
}
