// Simulated pins for hosts without real ones (the Node host, the virtual host, the simulator): the
// board's allow-lists, levels kept in a table. An input reads what set() last gave it (a test, or
// the simulator's screen), else the level last written to that pin, else 0.
import type { GpioPort } from "../../modules/host";

export class SimulatedGpio implements GpioPort {
  readonly outputs: readonly number[];
  readonly inputs: readonly number[];
  /** Every write, in order (bounded: the last 256), for tests and displays. */
  readonly writes: { pin: number; value: 0 | 1 }[] = [];
  #levels = new Map<number, 0 | 1>();
  #driven = new Map<number, 0 | 1>();
  #onChange: ((pin: number, value: 0 | 1) => void) | undefined;

  constructor(pins: { outputs: readonly number[]; inputs: readonly number[] }, onChange?: (pin: number, value: 0 | 1) => void) {
    this.outputs = Object.freeze(pins.outputs.slice());
    this.inputs = Object.freeze(pins.inputs.slice());
    this.#onChange = onChange;
  }

  write(pin: number, value: 0 | 1): void {
    if (!this.outputs.includes(pin)) throw new Error(`pin ${pin} is not an output on this board`);
    const v: 0 | 1 = value ? 1 : 0;
    if (this.#levels.get(pin) === v) return;
    this.#levels.set(pin, v);
    this.writes.push({ pin, value: v });
    if (this.writes.length > 256) this.writes.shift();
    this.#onChange?.(pin, v);
  }

  read(pin: number): 0 | 1 {
    if (!this.inputs.includes(pin)) throw new Error(`pin ${pin} is not an input on this board`);
    return this.#driven.get(pin) ?? this.#levels.get(pin) ?? 0;
  }

  release(pin: number): void {
    this.#levels.delete(pin);
  }

  /** Drives an input from outside (a test; the simulator's screen). */
  set(pin: number, value: 0 | 1): void {
    this.#driven.set(pin, value ? 1 : 0);
  }

  level(pin: number): 0 | 1 | undefined {
    return this.#levels.get(pin);
  }
}
