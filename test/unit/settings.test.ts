// Settings from ConfigMaps: the parsers (k3s-pico-node's memory_values syntax, bounded settings),
// fuzzed; the controller against the scripted API (two ConfigMaps merged, applied, rejected,
// fallen back from, persisted and restored before the network).
import assert from "node:assert/strict";
import { rig, type Rig } from "../../tools/scenarios/harness";
import { DEFAULTS_CONFIGMAP, SETTINGS_ANNOTATION, nodeConfigMap } from "../../modules/settings/controller";
import { firmwareSettings, parseMemoryValues, parseSettings, SETTING_KEYS } from "../../modules/settings/settings";

const FIRMWARE = firmwareSettings({ ledBrightness: 38, statusReportSeconds: 300, conditionCheckSeconds: 10, logLevel: "debug" });
const cm = (name: string, data: Record<string, string>) => ({ metadata: { name, namespace: "xs-kubelet" }, data });
const events = (r: Rig, reason: string) => [...r.api.coreEvents.values()].filter((e) => e.reason === reason);

describe("settings: parsers", () => {
  it("memory_values in k3s-pico-node's syntax: decimal or 0x hex, whitespace, a trailing comma", () => {
    assert.deepEqual(parseMemoryValues("0=0x42,1=0x43,2=0xFF"), { writes: [[0, 0x42], [1, 0x43], [2, 0xff]] });
    assert.deepEqual(parseMemoryValues(" 10 = 255 , 0x3ff=0x0a,"), { writes: [[10, 255], [1023, 10]] });
    assert.deepEqual(parseMemoryValues(""), { writes: [] });
  });

  it("names each bad entry and why", () => {
    const r = parseMemoryValues("0=0x42,1024=1,5=0x100,7,x=1,3=0x1g,,4=1,4=2");
    assert.deepEqual((r as { errors: string[] }).errors, [
      'memory_values entry 2 "1024=1": offset 1024 is outside 0–1023',
      'memory_values entry 3 "5=0x100": value 256 is not a byte (0x00–0xFF)',
      'memory_values entry 4 "7": not offset=value',
      'memory_values entry 5 "x=1": offset "x" is not a decimal or 0x-hex number',
      'memory_values entry 6 "3=0x1g": value "0x1g" is not a decimal or 0x-hex number',
      "memory_values entry 7 is empty",
      'memory_values entry 9 "4=2": offset 4 is given twice',
    ]);
  });

  it("settings: bounds, unknown keys reported, credentials refused, any bad value changes nothing", () => {
    const ok = parseSettings({ led_brightness: "20", status_report_seconds: "60", log_level: "warn", hello_interval: "2s", colour_of_sky: "blue", memory_values: "0=1" }, FIRMWARE);
    assert.ok(!("errors" in ok));
    assert.equal(ok.settings.ledBrightness, 20);
    assert.equal(ok.settings.statusReportSeconds, 60);
    assert.equal(ok.settings.logLevel, "warn");
    assert.deepEqual(ok.settings.workloadDefaults, { hello: { interval: "2s" } });
    assert.equal(ok.settings.memory[0], 1);
    assert.deepEqual(ok.unknown, ["colour_of_sky"]);
    const bad = parseSettings({ led_brightness: "300", status_report_seconds: "2", wifi_password: "hunter2", api_token: "x", memory_values: "0=1" }, FIRMWARE);
    assert.deepEqual((bad as { errors: string[] }).errors, [
      "api_token: looks like a credential; secrets are never taken from a ConfigMap (they stay in the board's Preferences)",
      "led_brightness: 300 is outside 0–255",
      "status_report_seconds: 2 s is outside 10–3600 s",
      "wifi_password: looks like a credential; secrets are never taken from a ConfigMap (they stay in the board's Preferences)",
    ]);
  });

  it("fuzz: generated and mutated inputs never throw, and every rejection names a key or an entry", () => {
    let seed = 12345;
    const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    const pick = <T>(xs: readonly T[]) => xs[Math.floor(rand() * xs.length)];
    const alphabet = "0123456789abcdefxX=, \t\n-+.#;:\u00e9\u0000";
    const keys = [...Object.keys(SETTING_KEYS), "memory_values", "token", "k", ""];
    const good = "0=0x42,1=0x43,2=0xFF,1023=255";
    for (let i = 0; i < 3000; i++) {
      // Mutations of a valid memory_values, and random strings.
      let text = good.split("");
      for (let m = Math.floor(rand() * 4); m > 0; m--) {
        const at = Math.floor(rand() * (text.length + 1));
        const op = rand();
        if (op < 0.4) text.splice(at, 1);
        else if (op < 0.8) text.splice(at, 0, pick(alphabet.split("")));
        else text = text.concat(text.slice(0, at));
      }
      const mutated = rand() < 0.7 ? text.join("") : Array.from({ length: Math.floor(rand() * 40) }, () => pick(alphabet.split(""))).join("");
      const m = parseMemoryValues(mutated);
      if ("errors" in m) for (const e of m.errors) assert.match(e, /^memory_values/, e);
      else for (const [o, v] of m.writes) assert.ok(o >= 0 && o < 1024 && v >= 0 && v <= 255);
      const data: Record<string, string> = {};
      for (let k = Math.floor(rand() * 5); k > 0; k--) data[pick(keys)] = rand() < 0.5 ? mutated : String(Math.floor(rand() * 5000) - 100);
      const s = parseSettings(data, FIRMWARE);
      if ("errors" in s) for (const e of s.errors) assert.ok(Object.keys(data).some((key) => e.startsWith(key)), `${e} names no key of ${JSON.stringify(data)}`);
    }
    assert.deepEqual(parseMemoryValues("1=1,".repeat(5000)), { errors: ["memory_values is 20000 characters; at most 16384"] });
  });
});

describe("settings: from the cluster (scripted API, virtual time)", () => {
  async function running(store?: Map<string, Uint8Array>) {
    const r = rig({ store });
    r.kubelet.start();
    await r.time.advance(3_000);
    return r;
  }

  it("applies the merged ConfigMaps within a moment: the node's keys win; Event, annotation, memory", async () => {
    const r = await running();
    r.api.put("configmaps", cm(DEFAULTS_CONFIGMAP, { led_brightness: "20", status_report_seconds: "120", memory_values: "0=1" }));
    r.api.put("configmaps", cm(nodeConfigMap("board-1"), { led_brightness: "10", memory_values: "0=0x42,1=0x43,2=0xFF" }));
    const ms = await r.time.until(() => r.kubelet.led.cap === 10, 2_000, "applied");
    assert.ok(ms < 1000, `applied ${ms} ms after the write`);
    assert.deepEqual([...r.kubelet.settings.current.memory.slice(0, 4)], [0x42, 0x43, 0xff, 0]);
    await r.time.advance(2_000);
    const applied = events(r, "SettingsApplied");
    assert.equal(applied.length, 1, JSON.stringify(applied.map((e) => e.message)));
    assert.match(applied[0].message, /^xs-kubelet-defaults@\d+,xs-kubelet-node-board-1@\d+: led_brightness 38 → 10, status_report_seconds 300 → 120, memory: 3 bytes changed$/);
    assert.match(r.api.nodes.get("board-1").metadata.annotations[SETTINGS_ANNOTATION], /^xs-kubelet-defaults@\d+,xs-kubelet-node-board-1@\d+$/);
    await r.kubelet.stop();
  });

  it("a bad entry is SettingsRejected naming it, and nothing changes; fixing it applies", async () => {
    const r = await running();
    r.api.put("configmaps", cm(nodeConfigMap("board-1"), { led_brightness: "12", memory_values: "0=0x42" }));
    await r.time.until(() => r.kubelet.led.cap === 12, 2_000, "applied");
    r.api.put("configmaps", cm(nodeConfigMap("board-1"), { led_brightness: "5", memory_values: "0=0x41,1=0x1FF" }));
    await r.time.until(() => events(r, "SettingsRejected").length === 1, 3_000, "rejected");
    assert.match(events(r, "SettingsRejected")[0].message, /memory_values entry 2 "1=0x1FF": value 511 is not a byte \(0x00–0xFF\); nothing changed$/);
    assert.equal(r.kubelet.led.cap, 12, "nothing changed");
    assert.equal(r.kubelet.settings.current.memory[0], 0x42);
    r.api.put("configmaps", cm(nodeConfigMap("board-1"), { led_brightness: "5", memory_values: "0=0x41,1=0x1F" }));
    await r.time.until(() => r.kubelet.led.cap === 5, 2_000, "fixed");
    assert.deepEqual([...r.kubelet.settings.current.memory.slice(0, 2)], [0x41, 0x1f]);
    await r.kubelet.stop();
  });

  it("deleting the node's ConfigMap falls back to the defaults, deleting both to the firmware's settings", async () => {
    const r = await running();
    r.api.put("configmaps", cm(DEFAULTS_CONFIGMAP, { led_brightness: "20" }));
    r.api.put("configmaps", cm(nodeConfigMap("board-1"), { led_brightness: "10" }));
    await r.time.until(() => r.kubelet.led.cap === 10, 2_000, "node's");
    r.api.remove("configmaps", "xs-kubelet", nodeConfigMap("board-1"));
    await r.time.until(() => r.kubelet.led.cap === 20, 2_000, "defaults");
    r.api.remove("configmaps", "xs-kubelet", DEFAULTS_CONFIGMAP);
    await r.time.until(() => r.kubelet.led.cap === 38, 2_000, "firmware");
    assert.equal(r.kubelet.settings.origin, "firmware");
    await r.kubelet.stop();
  });

  it("the last good settings are persisted and apply at the next boot before any request, even offline", async () => {
    const store = new Map<string, Uint8Array>();
    const r = await running(store);
    r.api.put("configmaps", cm(nodeConfigMap("board-1"), { led_brightness: "7", condition_check_seconds: "30", memory_values: "5=0x05" }));
    await r.time.until(() => r.kubelet.led.cap === 7, 2_000, "applied");
    await r.kubelet.stop();
    const b = rig({ store }, (p) => {
      p.offline = true;
    });
    // Constructed, not started: no request yet.
    assert.equal(b.host.requests.length, 0);
    assert.equal(b.kubelet.led.cap, 7);
    assert.equal(b.kubelet.settings.current.memory[5], 5);
    assert.equal(b.kubelet.settings.current.conditionCheckSeconds, 30);
    assert.match(b.kubelet.settings.origin, /^persisted:xs-kubelet-node-board-1@\d+$/);
  });

  it("hello's default interval comes from the settings; a pod's own args still win", async () => {
    const r = await running();
    r.api.put("configmaps", cm(DEFAULTS_CONFIGMAP, { hello_interval: "5s" }));
    await r.time.until(() => r.kubelet.settings.current.workloadDefaults.hello?.interval === "5s", 2_000, "applied");
    const pod = (name: string, args: string[]) => ({ metadata: { name, namespace: "default", uid: `uid-${name}` }, spec: { nodeName: "board-1", containers: [{ name: "c", image: "xs-kubelet.dev/hello", args }] }, status: { phase: "Pending" } });
    r.api.put("pods", pod("slow", []));
    r.api.put("pods", pod("fast", ["--interval=1s"]));
    await r.time.advance(10_500);
    const lines = (name: string) => r.kubelet.pods.logs("default", name, "c", "").text!.trim().split("\n").length;
    assert.equal(lines("slow"), 3, "a line at once, then every 5 s");
    assert.equal(lines("fast"), 11);
    await r.kubelet.stop();
  });
});
