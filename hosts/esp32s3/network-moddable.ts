// Thin adapters from the SDK's legacy `ethernet`, `wifi` and `net` modules (8.2.3, esp32) to the
// network manager's driver interfaces. No policy here: network.ts decides.
//
// The legacy Ethernet module and ECMA-419 `embedded:network/interface/ethernet` share native
// functions; this project uses the legacy one. The manifest must bring in the W5500 variant of
// the ethernet module (manifest.json_w5500's modules and `defines.ethernet`) and drop the stock
// setup/network and setup/ethernet modules, so that nothing else starts a network.

import Ethernet, { type EthernetMessage } from "ethernet";
import WiFi, { type WiFiMessage } from "wifi";
import Net from "net";
import { offsetMac, type EthernetDriver, type EthernetEvent, type WifiDriver, type WifiEvent } from "./network";

export class ModdableEthernet implements EthernetDriver {
  private monitor: Ethernet | undefined;
  private onEvent: ((event: EthernetEvent) => void) | undefined;

  start(onEvent: (event: EthernetEvent) => void): void {
    this.onEvent = onEvent;
    // Listen before starting: the driver posts "connect" as soon as the PHY reports link.
    this.monitor ??= new Ethernet((message: EthernetMessage) => this.deliver(message));
    try {
      Ethernet.start(); // throws "Ethernet.c Ethernet device not found"
    } catch (e) {
      this.stop();
      throw e;
    }
  }

  stop(): void {
    this.onEvent = undefined;
    this.monitor?.close();
    this.monitor = undefined;
  }

  address(): string {
    return Net.get("IP", "ethernet") ?? "";
  }

  private deliver(message: EthernetMessage): void {
    // "lostIP" is never sent by the esp32 driver; address loss shows up in the manager's poll.
    const event: EthernetEvent | undefined = message === "connect" ? "link-up"
      : message === "disconnect" ? "link-down"
      : message === "gotIP" ? "got-ip" : undefined;
    if (event) this.onEvent?.(event);
  }
}

export class ModdableWifi implements WifiDriver {
  private monitor: WiFi | undefined;
  private onEvent: ((event: WifiEvent) => void) | undefined;

  connect(ssid: string, password: string, onEvent: (event: WifiEvent) => void): void {
    this.onEvent = onEvent;
    // One long-lived listener; connections are made with the static connect().
    this.monitor ??= new WiFi(undefined, (message: WiFiMessage, reason?: number) => this.deliver(message, reason));
    // The SDK makes up to 5 attempts itself before its single "disconnect".
    WiFi.connect(password ? { ssid, password } : { ssid });
  }

  disconnect(): void {
    // Drop the events of the attempt being abandoned (its own "disconnect" arrives later).
    this.onEvent = undefined;
    WiFi.disconnect();
  }

  address(): string {
    return Net.get("IP", "station") ?? "";
  }

  bssid(): string {
    return (Net.get("BSSID") ?? "").toLowerCase();
  }

  private deliver(message: WiFiMessage, reason?: number): void {
    const onEvent = this.onEvent;
    if (!onEvent) return;
    if (message === "connect") onEvent({ type: "associated" });
    else if (message === "gotIP") onEvent({ type: "got-ip" });
    else if (message === "disconnect") onEvent({ type: "disconnected", reason: reason === -1 ? "auth" : "other" });
  }
}

/**
 * The board's identity MAC: the base (station) MAC. ESP-IDF gives Ethernet base+3 when the chip
 * has four universal MACs (the ESP32-S3 default), so either interface yields the same name.
 */
export function boardMac(): string {
  const ethernet = Net.get("MAC", "ethernet");
  if (ethernet) return offsetMac(ethernet, -3);
  return (Net.get("MAC", "station") ?? "").toLowerCase();
}
