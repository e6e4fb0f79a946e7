// The kubelet's Events against the real control plane, read back the way a person does: kubectl
// describe node, and the Event objects themselves.
import assert from "node:assert/strict";
import { ESP32S3_BOARD } from "../../hosts/esp32s3/board";
import { createNodeHost } from "../../hosts/node/host";
import type { HeapFigures } from "../../modules/host";
import { Kubelet } from "../../modules/kubelet/kubelet";
import type { ControlPlane } from "../../tools/controlplane/launcher";
import { eventually } from "../support/api";
import { useCluster } from "../support/cluster";

describe("Events against the real control plane", function () {
  this.timeout(120_000);
  let cp: ControlPlane;
  const running: Kubelet[] = [];
  const start = (name: string, heap?: () => HeapFigures) => {
    const host = createNodeHost({ log: () => undefined, board: ESP32S3_BOARD, heap: heap ?? (() => ({ free: 256 * 1024, total: 320 * 1024 })) });
    const k = new Kubelet({ nodeName: name, server: { host: cp.host, port: cp.port }, tls: { serverName: "localhost", ca: cp.caDer, verify: true }, token: cp.nodeCredentials(name).token }, host);
    running.push(k);
    k.start();
    return k;
  };
  const events = async (name: string) =>
    JSON.parse(await cp.kubectl(["get", "events", "-n", "default", "--field-selector", `involvedObject.name=${name}`, "-o", "json"])).items as any[];

  before(async function () {
    cp = await useCluster(this);
  });
  afterEach(async () => {
    for (const k of running.splice(0)) await k.stop();
  });

  it("kubectl describe node shows Starting and NodeReady from kubelet; a memory flip; a reboot", async () => {
    let heap = { free: 256 * 1024, total: 320 * 1024 };
    const first = start("agent-17", () => heap);
    await first.registered;
    const described = await eventually("Starting and NodeReady in kubectl describe node", 20_000, async () => {
      const out = await cp.kubectl(["describe", "node", "agent-17"]);
      return /Normal\s+Starting\s+.*kubelet\s+Starting kubelet\./.test(out) && /Normal\s+NodeReady\s+.*kubelet\s+Node agent-17 status is now: NodeReady/.test(out) ? out : undefined;
    });
    assert.match(described, /NodeHasSufficientMemory/);
    heap = { free: 10 * 1024, total: 320 * 1024 };
    await eventually("NodeHasInsufficientMemory", 30_000, async () => (await events("agent-17")).some((e) => e.reason === "NodeHasInsufficientMemory" && e.source.component === "kubelet"));
    await first.stop();
    running.splice(running.indexOf(first), 1);
    // The board reboots: a new bootID, the same Node.
    const second = start("agent-17");
    await second.registered;
    const rebooted = await eventually("Rebooted", 20_000, async () => (await events("agent-17")).find((e) => e.reason === "Rebooted"));
    assert.equal(rebooted.type, "Warning");
    assert.equal(rebooted.message, `Node agent-17 has been rebooted, boot id: ${second.identity.nodeInfo.bootID}`);
    assert.deepEqual([rebooted.involvedObject.kind, rebooted.involvedObject.uid, rebooted.source.host], ["Node", "agent-17", "agent-17"]);
  });

  it("1000 repeats of one failure are one Event with count 1000", async () => {
    const k = start("agent-18");
    await k.registered;
    for (let i = 0; i < 1000; i++) k.events.record({ type: "Warning", reason: "SensorFailed", message: "the temperature sensor does not answer" });
    const failed = await eventually("one aggregated Event", 30_000, async () => {
      const all = (await events("agent-18")).filter((e) => e.reason === "SensorFailed");
      return all.length === 1 && all[0].count === 1000 ? all : undefined;
    });
    assert.equal(failed[0].firstTimestamp <= failed[0].lastTimestamp, true);
    assert.ok(k.events.posted + k.events.patched <= 10, `${k.events.posted} posted, ${k.events.patched} patched`);
  });
});
