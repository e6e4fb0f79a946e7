// The Waveshare ESP32-S3-ETH board: NeoPixel status LED, W5500 Ethernet first with Wi-Fi as the
// fallback (NetworkManager), and the system clock set from the API server's Date header (no RTC).
import Net from "net";
import Time from "time";
import type { NetworkFacts } from "../../modules/host";
import type { Board } from "../moddable/app";
import { ESP32S3_BOARD } from "./board";
import * as runtime from "../moddable/runtime";
import { StatusLed } from "./led";
import { NetworkManager } from "./network";
import { ModdableEthernet, ModdableWifi, boardMac } from "./network-moddable";
import { probeW5500OverSpi } from "./w5500-spi";
import { BoardGpio } from "./gpio";

export function createBoard(): Board {
  const led = new StatusLed();
  let network: NetworkManager | undefined;
  return {
    name: "esp32s3",
    facts: ESP32S3_BOARD,
    gpio: new BoardGpio(),
    showLed: (r, g, b) => led.show(r, g, b),
    startNetwork(config, log) {
      if (network) return;
      network = new NetworkManager(
        {
          timers: { set: runtime.setTimer, clear: runtime.clearTimer },
          random: runtime.random,
          ethernet: new ModdableEthernet(),
          probe: () => probeW5500OverSpi(),
          wifi: new ModdableWifi(),
          mac: boardMac,
          log,
        },
        { wifi: config.wifi },
      );
      network.start();
    },
    network(): NetworkFacts {
      return network?.facts() ?? { kind: "ethernet", connected: false, address: "", mac: "", reconnects: 0 };
    },
    dnsServers() {
      try {
        // Net.get("DNS") (esp32 only) lists the servers DHCP gave the active interface.
        const dns = (Net.get as (what: string) => unknown)("DNS");
        return Array.isArray(dns) ? dns.filter((s): s is string => typeof s === "string" && s !== "0.0.0.0") : [];
      } catch {
        return [];
      }
    },
    setSystemTime(epochMs) {
      // Certificate dates are checked against this clock on the next TLS handshake.
      Time.set(Math.floor(epochMs / 1000));
    },
  };
}
