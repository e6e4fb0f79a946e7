// What this host uses of the SDK's legacy network modules (8.2.3). Project-written: the SDK has no
// typings for `ethernet`, and its wifi.d.ts lacks the disconnect reason.

declare module "ethernet" {
  export type EthernetMessage = "start" | "connect" | "disconnect" | "gotIP";
  export default class Ethernet {
    /** With one argument the SDK takes it as the callback (modules/network/ethernet/esp32/ethernet.c, xs_ethernet_constructor). */
    constructor(onNotify?: (message: EthernetMessage) => void);
    close(): void;
    set onNotify(callback: ((message: EthernetMessage) => void) | undefined);
    /** Installs and starts the driver; throws "Ethernet.c Ethernet device not found". Idempotent once started. */
    static start(): void;
    static useDHCP(): void;
    static useStaticIP(address: string, netmask: string, gateway: string): void;
  }
}

declare module "wifi" {
  export type WiFiMessage = "start" | "connect" | "disconnect" | "gotIP" | "station_connect" | "station_disconnect";
  export interface WiFiConnectOptions {
    ssid: string;
    password?: string;
    bssid?: ArrayBuffer;
    channel?: number;
  }
  export default class WiFi {
    /** A dictionary connects at once; pass undefined to only listen. */
    constructor(dictionary: WiFiConnectOptions | undefined, onNotify?: (message: WiFiMessage, reason?: number) => void);
    close(): void;
    set onNotify(callback: ((message: WiFiMessage, reason?: number) => void) | undefined);
    /** Throws on bad arguments ("ssid too long - 32 bytes max", …) and "esp_wifi_connect failed". */
    static connect(dictionary?: WiFiConnectOptions): void;
    static disconnect(): void;
  }
}

declare module "net" {
  const Net: {
    get(what: "IP", nif?: "station" | "ap" | "ethernet"): string | undefined;
    get(what: "MAC", nif?: "station" | "ap" | "ethernet"): string | undefined;
    get(what: "SSID" | "BSSID"): string | undefined;
    get(what: "RSSI" | "CHANNEL"): number | undefined;
  };
  export default Net;
}
