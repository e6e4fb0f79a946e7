// Device glue: the W5500 probe over the SDK's ECMA-419 SPI (`embedded:io/spi`, available on esp32
// in 8.2.3: modules/io/spi/manifest.json maps it for every device platform). Run it BEFORE
// `Ethernet.start()`: the SDK's Ethernet driver initialises SPI2 itself with ESP_ERROR_CHECK, which
// aborts (reboots) if the bus is still held — so the SPI is always closed before returning.
//
// The manifest must include $(MODDABLE)/modules/io/spi/manifest.json (and the digital one when
// `resetPin` is used). Without them, pass no probe to the network manager: it then tries
// Ethernet.start() directly and falls back on its "device not found" exception.

import SPI from "embedded:io/spi";
import Digital from "embedded:io/digital";
import { probeW5500, type SpiTransfer, type W5500Probe } from "./w5500";

export interface W5500SpiPins {
  clock: number;
  mosi: number;
  miso: number;
  select: number;
  /** ESP-IDF spi_host_device_t: SPI2_HOST = 1 (what the SDK's W5500 driver uses), SPI3_HOST = 2. */
  port: number;
  /** Probe clock. Slow on purpose: presence is the question, not throughput. */
  hz: number;
  /**
   * W5500 RSTn. When set, the pin is driven high (out of reset) before probing, then released to
   * the pull-up. Needed only if the board leaves RSTn low at boot; the SDK driver's `power_pin`
   * pulses it later anyway.
   */
  resetPin?: number;
}

/** Waveshare ESP32-S3-ETH (kubernetes.md §6). */
export const WAVESHARE_ESP32S3_ETH: W5500SpiPins = {
  clock: 13, mosi: 11, miso: 12, select: 14, port: 1, hz: 1_000_000,
};

/** Wraps an open SPI as one-frame-per-chip-select transfers. */
export function spiTransfer(spi: SPI): SpiTransfer {
  return (tx) => {
    const buffer = Uint8Array.from(tx); // transfer() works in place
    spi.transfer(buffer);
    // The SDK asserts CS when the device becomes active and releases it only when another device
    // takes the bus or on flush(true). A W5500 frame ends when CS goes high, so release it here.
    spi.flush(true);
    return buffer;
  };
}

/**
 * Opens the bus, probes, closes. Never throws: an SPI that cannot be opened (pins in use, bus
 * already taken) is reported as "not found" with the reason.
 * `delay` is a blocking wait (Timer.delay on the device), used only with `resetPin`.
 */
export function probeW5500OverSpi(pins: W5500SpiPins = WAVESHARE_ESP32S3_ETH, delay?: (ms: number) => void): W5500Probe {
  let reset: Digital | undefined;
  let spi: SPI | undefined;
  try {
    if (pins.resetPin !== undefined) {
      reset = new Digital({ pin: pins.resetPin, mode: Digital.Output, initialValue: 1 });
      delay?.(2); // the datasheet asks for about 1 ms after reset for the PLL to lock
    }
    spi = new SPI({
      clock: pins.clock, out: pins.mosi, in: pins.miso, select: pins.select, active: 0,
      hz: pins.hz, mode: 0, port: pins.port,
    });
    return probeW5500(spiTransfer(spi));
  } catch (e) {
    return {
      present: false, version: -1, link: false, speedMbps: 0, fullDuplex: false,
      diagnostic: `W5500 probe skipped: cannot open SPI: ${(e as Error).message}`,
    };
  } finally {
    try { spi?.close(); } catch { /* closing twice or after a failed open is harmless */ }
    try { reset?.close(); } catch { /* ditto */ }
  }
}
