// What a pod's containers may touch of the board, shared out among them: the GPIO pins (each
// held by one container at a time), the LED layer (the last one set shows; when it goes, the one
// before it), and the readings the telemetry workload logs.
import type { GpioPort, Host } from "../host";
import type { LedOverlay } from "../led/patterns";
import type { ContainerRun } from "./model";
import type { Devices, Readings } from "./workload";

export interface DeviceSource {
  host: Host;
  gpio: GpioPort | undefined;
  /** Readings the host has beyond heap and uptime. */
  readings(): Partial<Readings>;
  /** Shows the pod LED layer (undefined: back to the status LED). */
  led(overlay: LedOverlay | undefined): void;
}

export class PodDevices {
  #src: DeviceSource;
  #bootAt: number;
  /** Pin → the container holding it ("ns/pod/container"). */
  #pins = new Map<number, string>();
  #leds: { owner: string; overlay: LedOverlay }[] = [];

  constructor(src: DeviceSource) {
    this.#src = src;
    this.#bootAt = src.host.monotonic();
  }

  /** A container's view of the devices; owner names it in "pin in use" messages. */
  for(c: ContainerRun, owner: string): Devices {
    const src = this.#src;
    return {
      led: (overlay) => this.led(owner, overlay),
      gpio: src.gpio,
      readings: () => {
        const heap = src.host.heap();
        const net = src.host.network();
        return { heapFree: heap?.free, heapTotal: heap?.total, uptimeSeconds: (src.host.monotonic() - this.#bootAt) / 1000, network: net.kind, ...src.readings() };
      },
      claim: (pins) => {
        for (const p of pins) {
          const holder = this.#pins.get(p);
          if (holder !== undefined && holder !== owner) return `pin ${p} is in use by ${holder}`;
        }
        for (const p of pins) {
          this.#pins.set(p, owner);
          c.pins.push(p);
        }
        return undefined;
      },
    };
  }

  releasePins(c: ContainerRun): void {
    for (const p of c.pins) this.#pins.delete(p);
    c.pins = [];
  }

  /** Sets (or, undefined, removes) one owner's LED layer. */
  led(owner: string, overlay: LedOverlay | undefined): void {
    const i = this.#leds.findIndex((l) => l.owner === owner);
    if (i >= 0) this.#leds.splice(i, 1);
    else if (!overlay) return;
    if (overlay) this.#leds.push({ owner, overlay });
    this.#src.led(this.#leds.length ? this.#leds[this.#leds.length - 1].overlay : undefined);
  }
}
