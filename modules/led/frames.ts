// Draws an LedEngine's frames on a timer, sending a color only when it changed (each write is an
// RMT transfer on the board).
import type { LedEngine } from "./patterns";

export interface FrameTimers {
  monotonic(): number;
  setTimer(callback: () => void, ms: number): unknown;
  clearTimer(id: unknown): void;
}

export class LedFrames {
  #engine: LedEngine;
  #timers: FrameTimers;
  #show: (r: number, g: number, b: number) => void;
  #intervalMs: number;
  #timer: unknown;
  #last = "";
  #running = false;

  constructor(engine: LedEngine, timers: FrameTimers, show: (r: number, g: number, b: number) => void, intervalMs: number) {
    this.#engine = engine;
    this.#timers = timers;
    this.#show = show;
    this.#intervalMs = intervalMs;
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#tick();
  }

  stop(): void {
    this.#running = false;
    this.#timers.clearTimer(this.#timer);
  }

  #tick = (): void => {
    if (!this.#running) return;
    const [r, g, b] = this.#engine.frame(this.#timers.monotonic());
    const key = `${r},${g},${b}`;
    if (key !== this.#last) {
      this.#last = key;
      this.#show(r, g, b);
    }
    this.#timer = this.#timers.setTimer(this.#tick, this.#intervalMs);
  };
}
