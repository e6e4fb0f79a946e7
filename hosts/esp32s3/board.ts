// What the Waveshare ESP32-S3-ETH is, as its Node reports it. Plain data, no device imports: the
// virtual host (tests, bench, a virtual fleet) describes the same board with it.
import type { BoardFacts } from "../../modules/host";

export const ESP32S3_BOARD: Readonly<BoardFacts> = Object.freeze({
  arch: "xtensa-lx7",
  os: "moddable",
  instanceType: "esp32-s3-r8",
  osImage: "Moddable SDK on ESP32-S3 (Waveshare ESP32-S3-ETH)",
  kernelVersion: "ESP-IDF / FreeRTOS",
  // Two 240 MHz cores, but the agent runs on one XS machine: a quarter of one core is what it offers.
  cpu: "240m",
  // Pods at once, from what a running pod costs (README, "Pods on the node": measured after a
  // collection in the simulator, ~6.6 KB of 32-bit slots and ~12.6 KB of chunks each) against the
  // heap the manifest gives XS on the board (16384 slots = 256 KiB, 256 KiB of chunks) less what
  // the agent itself holds (~118 KB of slots, ~100 KB of chunks), with room left for TLS.
  pods: 4,
  kubeletPort: 10250,
});

/**
 * The pins a pod may use on the Waveshare ESP32-S3-ETH: every GPIO on its headers except the W5500's
 * SPI and control lines (GPIO 9–14), the WS2812 (21), USB (19, 20), the strapping pins (0, 3, 45,
 * 46) and the octal PSRAM's (33–37, not broken out on the R8). Outputs and inputs alike.
 */
export const ESP32S3_GPIO: Readonly<{ outputs: readonly number[]; inputs: readonly number[] }> = Object.freeze({
  outputs: Object.freeze([1, 2, 4, 5, 6, 7, 8, 15, 16, 17, 18, 38, 39, 40, 41, 42, 47, 48]),
  inputs: Object.freeze([1, 2, 4, 5, 6, 7, 8, 15, 16, 17, 18, 38, 39, 40, 41, 42, 47, 48]),
});
