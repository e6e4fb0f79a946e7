// The board's pins for pods (the gpio workload), through the SDK's ECMA-419 Digital: a pin is
// opened on first use in the direction asked, reopened when the direction changes, and closed on
// release (on esp32 close() resets it: input, pull-up). Only pins on ESP32S3_GPIO's allow-lists.
import Digital from "embedded:io/digital";
import type { GpioPort } from "../../modules/host";
import { ESP32S3_GPIO } from "./board";

export class BoardGpio implements GpioPort {
  readonly outputs = ESP32S3_GPIO.outputs;
  readonly inputs = ESP32S3_GPIO.inputs;
  #open = new Map<number, { io: Digital; output: boolean }>();

  #pin(pin: number, output: boolean): Digital {
    const allowed = output ? this.outputs : this.inputs;
    if (!allowed.includes(pin)) throw new Error(`pin ${pin} is not ${output ? "an output" : "an input"} on this board`);
    const open = this.#open.get(pin);
    if (open && open.output === output) return open.io;
    if (open) open.io.close();
    const io = new Digital({ pin, mode: output ? Digital.Output : Digital.Input });
    this.#open.set(pin, { io, output });
    return io;
  }

  write(pin: number, value: 0 | 1): void {
    this.#pin(pin, true).write(value ? 1 : 0);
  }

  read(pin: number): 0 | 1 {
    return this.#pin(pin, false).read() ? 1 : 0;
  }

  release(pin: number): void {
    const open = this.#open.get(pin);
    if (!open) return;
    this.#open.delete(pin);
    open.io.close();
  }
}
