// Settings from ConfigMaps against the real control plane: applied within 1 s of kubectl apply
// (SettingsApplied, the Node annotation, /device/memory through the node proxy), a bad entry
// rejected with nothing changed, the defaults reaching three nodes within 2 s with a per-node key
// winning, the last good settings in force at a restart with the API server unreachable, and the
// RBAC of deploy/node-settings.yaml for both identities.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createNodeHost } from "../../hosts/node/host";
import { Kubelet } from "../../modules/kubelet/kubelet";
import { SETTINGS_ANNOTATION } from "../../modules/settings/controller";
import { endpointAddress, type ControlPlane } from "../../tools/controlplane/launcher";
import { apiRequest, eventually } from "../support/api";
import { useCluster } from "../support/cluster";

const NODES = ["agent-24", "agent-25", "agent-26"];
const NS = "xs-kubelet";
const cmYaml = (name: string, data: Record<string, string>) => JSON.stringify({ apiVersion: "v1", kind: "ConfigMap", metadata: { name, namespace: NS }, data });

describe("settings from ConfigMaps, against the real control plane", function () {
  this.timeout(180_000);
  let cp: ControlPlane;
  const agents = new Map<string, Kubelet>();
  const stateDirs = new Map<string, string>();
  const address = endpointAddress();

  function agent(name: string, server?: { host: string; port: number }, serving?: { certificate: Uint8Array; key: Uint8Array }): Kubelet {
    const host = createNodeHost({
      log: () => undefined,
      stateDir: stateDirs.get(name),
      ...(serving && address ? { listenAddress: address, network: () => ({ address }) } : {}),
    });
    return new Kubelet(
      {
        nodeName: name,
        server: server ?? { host: cp.host, port: cp.port },
        tls: { serverName: "localhost", ca: cp.caDer, verify: true },
        token: cp.nodeCredentials(name).token,
        kubeletApi: serving ? { certificate: serving.certificate, key: serving.key, clientCa: cp.caDer, port: 0 } : undefined,
      },
      host,
    );
  }

  before(async function () {
    cp = await useCluster(this);
    for (const n of NODES) stateDirs.set(n, mkdtempSync(join(tmpdir(), `xs-kubelet-state-${n}-`)));
    const serving = address ? await cp.nodeServingCertificate(NODES[0], [address, NODES[0]]) : undefined;
    for (const n of NODES) {
      const k = agent(n, undefined, n === NODES[0] ? serving : undefined);
      agents.set(n, k);
      k.start();
    }
    await Promise.all([...agents.values()].map((k) => k.registered));
    // The settings watches are open once each listed.
    await eventually("settings watches", 20_000, async () => [...agents.values()].every((k) => k.settingsWatches.every((w) => w.watching)));
  });
  after(async () => {
    for (const k of agents.values()) await k.stop();
    await cp.kubectl(["delete", "configmap", "-n", NS, "xs-kubelet-defaults", ...NODES.map((n) => `xs-kubelet-node-${n}`), "--ignore-not-found"]).catch(() => undefined);
    for (const d of stateDirs.values()) rmSync(d, { recursive: true, force: true });
  });

  const events = async (node: string, reason: string) =>
    JSON.parse(await cp.kubectl(["get", "events", "-n", "default", "--field-selector", `involvedObject.name=${node},reason=${reason}`, "-o", "json"])).items;

  it("kubectl apply → applied within 1 s: SettingsApplied, the Node's annotation, /device/memory starts 42 43 ff", async function () {
    const me = NODES[0];
    const k = agents.get(me)!;
    const t0 = Date.now();
    await cp.kubectl(["apply", "-f", "-"], { input: `${cmYaml("xs-kubelet-defaults", { led_brightness: "30" })}\n${cmYaml(`xs-kubelet-node-${me}`, { led_brightness: "20", memory_values: "0=0x42,1=0x43,2=0xFF" })}` });
    await eventually("applied", 5_000, async () => k.led.cap === 20 && k.settings.current.memory[2] === 0xff, 20);
    const ms = Date.now() - t0;
    console.log(`      applied ${ms} ms after kubectl apply began (its own run included)`);
    assert.ok(ms < 1000, `applied after ${ms} ms`);
    const applied = await eventually("SettingsApplied", 10_000, async () => (await events(me, "SettingsApplied"))[0]);
    assert.match(applied.message, /^xs-kubelet-defaults@\d+,xs-kubelet-node-agent-24@\d+: led_brightness 38 → 20, memory: 3 bytes changed$/);
    assert.equal(applied.source.component, "kubelet");
    const annotation = await eventually("the annotation", 10_000, async () => JSON.parse(await cp.kubectl(["get", "node", me, "-o", "json"])).metadata.annotations?.[SETTINGS_ANNOTATION]);
    assert.match(annotation, /^xs-kubelet-defaults@\d+,xs-kubelet-node-agent-24@\d+$/);
    if (!address) {
      console.warn("      /device/memory not read through the node proxy: this machine has no non-loopback address");
      return;
    }
    const raw = await new Promise<Buffer>((resolve, reject) =>
      execFile(cp.bin("kubectl"), ["--kubeconfig", cp.kubeconfig, "get", "--raw", `/api/v1/nodes/${me}/proxy/device/memory`], { encoding: "buffer" }, (err, stdout) => (err ? reject(err) : resolve(stdout))),
    );
    assert.equal(raw.length, 1024);
    assert.deepEqual([...raw.subarray(0, 4)], [0x42, 0x43, 0xff, 0]);
  });

  it("a bad memory entry or an out-of-bounds interval is SettingsRejected naming it; nothing changes; fixing it applies", async () => {
    const me = NODES[0];
    const k = agents.get(me)!;
    await cp.kubectl(["apply", "-f", "-"], { input: cmYaml(`xs-kubelet-node-${me}`, { led_brightness: "10", status_report_seconds: "5", memory_values: "0=0x41,1=0x1FF" }) });
    const rejected = await eventually("SettingsRejected", 10_000, async () => (await events(me, "SettingsRejected"))[0]);
    assert.equal(rejected.type, "Warning");
    assert.match(rejected.message, /memory_values entry 2 "1=0x1FF": value 511 is not a byte \(0x00–0xFF\); status_report_seconds: 5 s is outside 10–3600 s; nothing changed$/);
    assert.equal(k.led.cap, 20, "nothing changed");
    assert.equal(k.settings.current.memory[0], 0x42);
    await cp.kubectl(["apply", "-f", "-"], { input: cmYaml(`xs-kubelet-node-${me}`, { led_brightness: "10", status_report_seconds: "60", memory_values: "0=0x41,1=0x1F" }) });
    await eventually("fixed", 5_000, async () => k.led.cap === 10 && k.settings.current.memory[1] === 0x1f, 20);
    assert.equal(k.settings.current.statusReportSeconds, 60);
  });

  it("a change of the defaults reaches three nodes within 2 s; a per-node key wins", async () => {
    await cp.kubectl(["apply", "-f", "-"], { input: cmYaml(`xs-kubelet-node-${NODES[1]}`, { led_brightness: "5" }) });
    await eventually("node key", 5_000, async () => agents.get(NODES[1])!.led.cap === 5, 20);
    const t0 = Date.now();
    await cp.kubectl(["apply", "-f", "-"], { input: cmYaml("xs-kubelet-defaults", { led_brightness: "33", hello_interval: "3s" }) });
    await eventually("every node", 5_000, async () => [...agents.values()].every((k) => k.settings.current.workloadDefaults.hello?.interval === "3s"), 20);
    const ms = Date.now() - t0;
    console.log(`      the defaults reached ${NODES.length} nodes ${ms} ms after kubectl apply began`);
    assert.ok(ms < 2000, `${ms} ms`);
    assert.equal(agents.get(NODES[1])!.led.cap, 5, "the node's own key wins");
    assert.equal(agents.get(NODES[2])!.led.cap, 33, "the defaults' where the node has none");
    assert.equal(agents.get(NODES[0])!.led.cap, 10);
  });

  it("restarted with the API server unreachable, the last good settings are in force before the network comes up", async () => {
    const me = NODES[2];
    await agents.get(me)!.stop();
    // A port nothing listens on: every connect fails.
    const k = agent(me, { host: "127.0.0.1", port: 9 });
    agents.set(me, k);
    assert.equal(k.led.cap, 33, "before start()");
    assert.equal(k.settings.current.workloadDefaults.hello?.interval, "3s");
    assert.match(k.settings.origin, /^persisted:xs-kubelet-defaults@\d+$/);
    k.start();
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(k.lease.renewals, 0, "the API server was never reached");
    assert.equal(k.led.cap, 33);
  });

  it("RBAC: a node reads its own settings ConfigMap and the defaults, not another node's (both identities)", async () => {
    const sa = "sa-settings-1";
    const saToken = await cp.serviceAccountToken(sa, 3600);
    await cp.kubectl(["apply", "-f", "-"], { input: `${cmYaml(`xs-kubelet-node-${sa}`, { led_brightness: "1" })}\n${cmYaml(`xs-kubelet-node-${NODES[1]}`, { led_brightness: "5" })}` });
    for (const [who, token, own] of [[NODES[0], cp.nodeCredentials(NODES[0]).token, NODES[0]], [sa, saToken, sa]] as const) {
      const get = (name: string) => apiRequest(cp, token, "GET", `/api/v1/namespaces/${NS}/configmaps/${name}`);
      assert.equal((await get(`xs-kubelet-node-${own}`)).status, 200, `${who}: own`);
      assert.equal((await get("xs-kubelet-defaults")).status, 200, `${who}: defaults`);
      const other = await get(`xs-kubelet-node-${NODES[1]}`);
      assert.equal(other.status, 403, `${who}: another node's: ${other.body}`);
      const watch = await apiRequest(cp, token, "GET", `/api/v1/namespaces/${NS}/configmaps?fieldSelector=${encodeURIComponent(`metadata.name=xs-kubelet-node-${own}`)}`);
      assert.equal(watch.status, 200, `${who}: list by name`);
      const all = await apiRequest(cp, token, "GET", `/api/v1/namespaces/${NS}/configmaps`);
      assert.equal(all.status, 403, `${who}: list all`);
    }
    await cp.kubectl(["delete", "configmap", "-n", NS, `xs-kubelet-node-${sa}`, "--ignore-not-found"]);
  });
});
