// The board's status LED: one WS2812 on GPIO 21, GRB order (Waveshare ESP32-S3-ETH). Frames come
// from the core's LedEngine, already brightness-capped, so the driver's own scaling is turned off.
import NeoPixel from "neopixel";

export const LED_PIN = 21;

export class StatusLed {
  #pixel: NeoPixel | undefined;

  constructor(pin = LED_PIN) {
    try {
      this.#pixel = new NeoPixel({ length: 1, pin, order: "GRB" });
      this.#pixel.brightness = 255; // the SDK defaults to 64 (¼) on top of the engine's cap
    } catch (e) {
      trace(`WARN  status LED unavailable on GPIO ${pin}: ${(e as Error).message}\n`);
    }
  }

  show(r: number, g: number, b: number): void {
    const p = this.#pixel;
    if (!p) return;
    p.setPixel(0, p.makeRGB(r, g, b));
    p.update();
  }
}
