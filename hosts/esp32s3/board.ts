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
  // One device workload at a time.
  pods: 1,
  kubeletPort: 10250,
});
