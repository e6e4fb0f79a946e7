import assert from "node:assert/strict";
import type { NetworkFacts } from "../../modules/host";
import {
  NetworkManager, backoffDelay, offsetMac,
  type EthernetDriver, type EthernetEvent, type NetworkOptions, type WifiDriver, type WifiEvent,
} from "../../hosts/esp32s3/network";
import { probeW5500 } from "../../hosts/esp32s3/w5500";
import { W5500Model } from "../support/w5500-model";

class VirtualTimers {
  now = 0;
  private next = 1;
  private pending = new Map<number, { at: number; callback: () => void }>();
  set = (callback: () => void, ms: number): unknown => {
    const id = this.next++;
    this.pending.set(id, { at: this.now + ms, callback });
    return id;
  };
  clear = (id: unknown): void => { this.pending.delete(id as number); };
  advance(ms: number): void {
    const end = this.now + ms;
    for (;;) {
      let due: [number, { at: number; callback: () => void }] | undefined;
      for (const entry of this.pending) if (entry[1].at <= end && (!due || entry[1].at < due[1].at)) due = entry;
      if (!due) break;
      this.pending.delete(due[0]);
      this.now = due[1].at;
      due[1].callback();
    }
    this.now = end;
  }
}

class FakeEthernet implements EthernetDriver {
  present = true;
  starts = 0;
  addr = "";
  private onEvent: ((event: EthernetEvent) => void) | undefined;
  start(onEvent: (event: EthernetEvent) => void): void {
    this.starts++;
    if (!this.present) throw new Error("Ethernet.c Ethernet device not found");
    this.onEvent = onEvent;
  }
  stop(): void { this.onEvent = undefined; }
  address(): string { return this.addr; }
  linkUp(): void { this.onEvent?.("link-up"); }
  linkDown(): void { this.addr = ""; this.onEvent?.("link-down"); }
  gotIp(address: string): void { this.addr = address; this.onEvent?.("got-ip"); }
}

class FakeWifi implements WifiDriver {
  connects: { at: number; ssid: string; password: string }[] = [];
  disconnects = 0;
  addr = "";
  ap = "";
  throwOnConnect: string | undefined;
  private onEvent: ((event: WifiEvent) => void) | undefined;
  constructor(private timers: VirtualTimers) {}
  connect(ssid: string, password: string, onEvent: (event: WifiEvent) => void): void {
    this.connects.push({ at: this.timers.now, ssid, password });
    if (this.throwOnConnect) throw new Error(this.throwOnConnect);
    this.onEvent = onEvent;
  }
  disconnect(): void { this.disconnects++; this.addr = ""; this.onEvent = undefined; }
  address(): string { return this.addr; }
  bssid(): string { return this.ap; }
  up(address: string, bssid = "AA:BB:CC:00:00:01"): void {
    this.addr = address;
    this.ap = bssid;
    this.onEvent?.({ type: "associated" });
    this.onEvent?.({ type: "got-ip" });
  }
  drop(reason: "auth" | "other" = "other"): void { this.addr = ""; this.onEvent?.({ type: "disconnected", reason }); }
}

function rig(opts: { chip?: W5500Model | "none"; wifi?: boolean; options?: NetworkOptions; ethernet?: boolean } = {}) {
  const timers = new VirtualTimers();
  const chip = opts.chip === "none" ? undefined : opts.chip ?? new W5500Model({ link: true });
  const ethernet = new FakeEthernet();
  const wifi = new FakeWifi(timers);
  let probes = 0;
  const logs: string[] = [];
  const changes: NetworkFacts[] = [];
  const manager = new NetworkManager({
    timers, random: () => 0.5, // jitter centred: delays are exact
    ethernet: opts.ethernet === false ? undefined : ethernet,
    probe: chip ? () => { probes++; return probeW5500(chip.transfer); } : undefined,
    wifi,
    mac: () => "24:0A:C4:00:00:01",
    log: (level, message) => logs.push(`${level} ${message}`),
  }, { wifi: opts.wifi === false ? undefined : { ssid: "lab", password: "secret" }, ...opts.options });
  manager.onChange = (facts) => changes.push(facts);
  return { timers, chip, ethernet, wifi, manager, logs, changes, probes: () => probes };
}

describe("network manager", () => {
  it("Ethernet first: probe, start, DHCP → facts", () => {
    const r = rig();
    r.manager.start();
    assert.equal(r.probes(), 1);
    assert.equal(r.ethernet.starts, 1);
    assert.equal(r.manager.status().state, "starting");
    assert.equal(r.manager.facts().connected, false);
    r.ethernet.linkUp();
    r.timers.advance(2_000);
    r.ethernet.gotIp("192.168.1.50");
    assert.deepEqual(r.manager.facts(), { kind: "ethernet", connected: true, address: "192.168.1.50", mac: "24:0a:c4:00:00:01", reconnects: 0 });
    assert.equal(r.changes.length, 1);
    assert.equal(r.manager.status().state, "ethernet");
    r.timers.advance(120_000);
    assert.equal(r.wifi.connects.length, 0, "Wi-Fi never started");
  });

  it("chip absent → Wi-Fi at once, Ethernet re-probed in the background", () => {
    const r = rig({ chip: new W5500Model({ absent: "pulled-up" }) });
    r.manager.start();
    assert.equal(r.ethernet.starts, 0);
    assert.equal(r.wifi.connects.length, 1);
    assert.deepEqual(r.wifi.connects[0], { at: 0, ssid: "lab", password: "secret" });
    r.wifi.up("10.0.0.7");
    assert.deepEqual(r.manager.facts(), { kind: "wifi", connected: true, address: "10.0.0.7", mac: "24:0a:c4:00:00:01", reconnects: 0, bssid: "aa:bb:cc:00:00:01" });
    assert.match(r.manager.status().ethernet.probe!.diagnostic, /^W5500 not found: VERSIONR read 0xff/);
    r.timers.advance(1_000);
    assert.equal(r.probes(), 2);
    r.timers.advance(2_000);
    assert.equal(r.probes(), 3);
  });

  it("cable unplugged → Wi-Fi; cable back → Ethernet; cable pulled → Wi-Fi again", () => {
    const r = rig({ chip: new W5500Model({ link: false }) });
    r.manager.start();
    assert.equal(r.ethernet.starts, 1, "the driver runs so that it reports the link later");
    r.timers.advance(2_999);
    assert.equal(r.wifi.connects.length, 0, "auto-negotiation gets its moment");
    r.timers.advance(1);
    assert.equal(r.wifi.connects.length, 1);
    assert.match(r.manager.status().ethernet.lastError!, /cable unplugged/);
    r.wifi.up("10.0.0.7");
    assert.equal(r.manager.facts().kind, "wifi");

    r.ethernet.linkUp();
    assert.equal(r.manager.facts().kind, "wifi", "still Wi-Fi until Ethernet has an address");
    assert.equal(r.wifi.disconnects, 0);
    r.ethernet.gotIp("192.168.1.50");
    assert.equal(r.manager.facts().kind, "ethernet");
    assert.equal(r.manager.facts().address, "192.168.1.50");
    assert.equal(r.wifi.disconnects, 1, "Wi-Fi left so that Ethernet carries the traffic");
    assert.deepEqual(r.changes.map((f) => `${f.kind} ${f.address}`), ["wifi 10.0.0.7", "ethernet 192.168.1.50"]);
    assert.equal(r.manager.facts().reconnects, 0, "a voluntary switch is not a drop");

    r.ethernet.linkDown();
    assert.equal(r.manager.facts().connected, false);
    assert.equal(r.manager.facts().reconnects, 1);
    r.timers.advance(3_000);
    assert.equal(r.wifi.connects.length, 2);
    r.wifi.up("10.0.0.7");
    assert.equal(r.manager.facts().kind, "wifi");
  });

  it("DHCP timeout → Wi-Fi; a late lease moves back to Ethernet", () => {
    const r = rig();
    r.manager.start();
    r.ethernet.linkUp();
    r.timers.advance(14_999);
    assert.equal(r.wifi.connects.length, 0);
    r.timers.advance(1);
    assert.equal(r.wifi.connects.length, 1);
    assert.match(r.manager.status().ethernet.lastError!, /no DHCP lease after 15 s/);
    r.wifi.up("10.0.0.7");
    r.timers.advance(40_000);
    r.ethernet.gotIp("192.168.1.50");
    assert.equal(r.manager.facts().kind, "ethernet");
    assert.equal(r.wifi.disconnects, 1);
  });

  it("Wi-Fi drop → reconnect with exponential backoff, counted", () => {
    const r = rig({ chip: new W5500Model({ absent: "pulled-down" }) });
    r.manager.start();
    r.wifi.up("10.0.0.7");
    r.timers.advance(5_000);
    r.wifi.drop();
    assert.equal(r.manager.facts().reconnects, 1);
    assert.equal(r.manager.facts().connected, false);
    // Each attempt fails at once; the next one comes after 1, 2, 4 … 60 s (random 0.5 = no jitter).
    const gaps = [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000];
    gaps.forEach((gap, i) => {
      const count = r.wifi.connects.length;
      r.timers.advance(gap - 1);
      assert.equal(r.wifi.connects.length, count, `not before ${gap} ms`);
      r.timers.advance(1);
      assert.equal(r.wifi.connects.length, count + 1, `after ${gap} ms`);
      if (i < gaps.length - 1) r.wifi.drop(); // the last attempt succeeds below
    });
    r.wifi.up("10.0.0.9");
    assert.equal(r.manager.facts().address, "10.0.0.9");
    assert.equal(r.manager.facts().reconnects, 1, "failed attempts are not reconnects; the drop is");
    r.wifi.drop();
    assert.equal(r.manager.facts().reconnects, 2);
    const before = r.wifi.connects.length;
    r.timers.advance(1_000);
    assert.equal(r.wifi.connects.length, before + 1, "backoff restarts at 1 s after a good connection");
  });

  it("jitter stays within ±20 %", () => {
    assert.equal(backoffDelay(0, 1_000, 60_000, 0.2, 0), 800);
    assert.equal(backoffDelay(0, 1_000, 60_000, 0.2, 0.999999), 1_200);
    assert.equal(backoffDelay(3, 1_000, 60_000, 0.2, 0.5), 8_000);
    assert.equal(backoffDelay(50, 1_000, 60_000, 0.2, 0.5), 60_000);
  });

  it("BSSID change is recorded", () => {
    const r = rig({ chip: "none", ethernet: false });
    r.manager.start();
    r.wifi.up("10.0.0.7", "aa:aa:aa:aa:aa:01");
    r.wifi.drop();
    r.timers.advance(1_000);
    r.wifi.up("10.0.0.7", "AA:AA:AA:AA:AA:02");
    assert.equal(r.manager.facts().bssid, "aa:aa:aa:aa:aa:02");
    assert.equal(r.manager.status().bssidChanges, 1);
    assert.equal(r.changes.at(-1)!.bssid, "aa:aa:aa:aa:aa:02");
    assert.ok(r.logs.some((l) => /access point changed aa:aa:aa:aa:aa:01 -> aa:aa:aa:aa:aa:02/.test(l)));
  });

  it("address change → onChange with the new address (event and poll)", () => {
    const r = rig();
    r.manager.start();
    r.ethernet.gotIp("192.168.1.50");
    r.ethernet.gotIp("192.168.1.51"); // a renewed lease announced by the driver
    assert.equal(r.changes.at(-1)!.address, "192.168.1.51");
    r.ethernet.addr = "192.168.1.52"; // changed silently
    r.timers.advance(10_000);
    assert.equal(r.changes.at(-1)!.address, "192.168.1.52");
    assert.equal(r.manager.facts().address, "192.168.1.52");
    assert.deepEqual(r.changes.map((f) => f.address), ["192.168.1.50", "192.168.1.51", "192.168.1.52"]);
  });

  it("a gotIP without an address (the SDK's IPv6 cross-talk) is ignored", () => {
    const r = rig();
    r.manager.start();
    r.ethernet.gotIp("");
    assert.equal(r.manager.facts().connected, false);
    assert.equal(r.changes.length, 0);
  });

  it("bad Wi-Fi password → clear error, backoff continues, no crash loop", () => {
    const r = rig({ chip: new W5500Model({ absent: "pulled-up" }) });
    r.manager.start();
    for (let t = 0; t < 600; t++) { // ten minutes of a rejecting access point
      if (r.wifi.connects.length > 0 && r.wifi.addr === "") r.wifi.drop("auth");
      r.timers.advance(1_000);
    }
    const status = r.manager.status();
    assert.equal(status.state, "down");
    assert.match(status.error!, /password rejected by "lab"/);
    assert.match(status.error!, /W5500 not found/);
    assert.ok(r.wifi.connects.length >= 10 && r.wifi.connects.length <= 16, `attempts: ${r.wifi.connects.length}`);
    assert.equal(r.manager.facts().reconnects, 0);
    const count = r.wifi.connects.length;
    while (r.wifi.connects.length === count) r.timers.advance(1_000);
    r.wifi.up("10.0.0.7"); // password fixed on the access point
    assert.equal(r.manager.status().state, "wifi");
    assert.equal(r.manager.status().error, undefined);
  });

  it("Wi-Fi connect that throws or never answers → backoff, not a crash", () => {
    const r = rig({ chip: "none", ethernet: false, options: { wifiConnectTimeoutMs: 20_000 } });
    r.wifi.throwOnConnect = "ssid too long - 32 bytes max";
    r.manager.start();
    assert.match(r.manager.status().error!, /cannot start a connection to "lab": ssid too long/);
    r.wifi.throwOnConnect = undefined;
    r.timers.advance(1_000);
    assert.equal(r.wifi.connects.length, 2);
    r.timers.advance(20_000); // silence
    assert.match(r.manager.status().wifi.lastError!, /no connection to "lab" after 20 s/);
    assert.equal(r.wifi.disconnects, 1);
    r.timers.advance(2_000);
    assert.equal(r.wifi.connects.length, 3);
  });

  it("no Wi-Fi configured and no Ethernet → clear error, keeps retrying Ethernet", () => {
    const chip = new W5500Model({ absent: "pulled-up" });
    const r = rig({ chip, wifi: false });
    r.manager.start();
    const status = r.manager.status();
    assert.equal(status.state, "down");
    assert.equal(status.error, "W5500 not found: VERSIONR read 0xff (no chip, chip held in reset, or MISO floating); no Wi-Fi configured");
    r.timers.advance(10 * 60_000);
    const probes = r.probes();
    assert.ok(probes >= 12 && probes <= 16, `probes: ${probes}`);
    assert.equal(r.wifi.connects.length, 0);
    chip.absent = undefined; // the chip answers (reseated module, power back)
    r.timers.advance(60_000);
    assert.equal(r.ethernet.starts, 1);
    r.ethernet.gotIp("192.168.1.50");
    assert.equal(r.manager.status().state, "ethernet");
  });

  it("Ethernet.start() failing after a good probe is retried a few times, then given up", () => {
    const r = rig({ wifi: false, options: { maxEthernetStartFailures: 3 } });
    r.ethernet.present = false;
    r.manager.start();
    r.timers.advance(10 * 60_000);
    assert.equal(r.ethernet.starts, 3);
    assert.equal(r.manager.status().ethernet.phase, "failed");
    assert.match(r.manager.status().error!, /Ethernet driver did not start: Ethernet.c Ethernet device not found/);
  });

  it("without a probe, Ethernet.start() decides", () => {
    const r = rig({ chip: "none" });
    r.ethernet.present = false;
    r.manager.start();
    assert.equal(r.ethernet.starts, 1);
    assert.equal(r.wifi.connects.length, 1, "no grace when the driver did not start");
  });

  it("stale Wi-Fi events after leaving Wi-Fi are ignored", () => {
    const r = rig({ chip: new W5500Model({ link: false }) });
    let stale: ((e: WifiEvent) => void) | undefined;
    const connect = r.wifi.connect.bind(r.wifi);
    r.wifi.connect = (ssid, password, onEvent) => { stale = onEvent; connect(ssid, password, onEvent); };
    r.manager.start();
    r.timers.advance(3_000);
    r.wifi.up("10.0.0.7");
    r.ethernet.gotIp("192.168.1.50");
    assert.equal(r.manager.facts().kind, "ethernet");
    assert.ok(stale);
    stale({ type: "disconnected", reason: "other" }); // the SDK's "disconnect" for our own WiFi.disconnect()
    stale({ type: "got-ip" });
    assert.equal(r.manager.facts().reconnects, 0);
    assert.equal(r.manager.facts().kind, "ethernet");
    r.timers.advance(120_000);
    assert.equal(r.wifi.connects.length, 1, "no reconnect scheduled by a stale event");
  });

  it("stop() clears every timer and leaves Wi-Fi", () => {
    const r = rig({ chip: new W5500Model({ absent: "pulled-up" }) });
    r.manager.start();
    r.wifi.up("10.0.0.7");
    r.manager.stop();
    assert.equal(r.wifi.disconnects, 1);
    const probes = r.probes();
    r.timers.advance(10 * 60_000);
    assert.equal(r.probes(), probes);
    assert.equal(r.wifi.connects.length, 1);
  });
});

describe("offsetMac", () => {
  it("derives the base MAC from the Ethernet MAC with carry", () => {
    assert.equal(offsetMac("24:0A:C4:00:01:03", -3), "24:0a:c4:00:01:00");
    assert.equal(offsetMac("24:0a:c4:00:01:01", -3), "24:0a:c4:00:00:fe");
    assert.equal(offsetMac("ff:ff:ff:ff:ff:ff", 1), "00:00:00:00:00:00");
    assert.equal(offsetMac("nonsense", 1), "");
  });
});
