// Pods on the agent, against the real control plane and kubectl: the README's four commands
// (apply, get -o wide, logs -f, delete), a Job that completes, an image the node cannot run, a
// crash loop with --previous, a pod deleted while the agent was stopped, and OutOfpods.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createNodeHost } from "../../hosts/node/host";
import { Kubelet } from "../../modules/kubelet/kubelet";
import { repoRoot } from "../../tools/controlplane/build";
import type { ControlPlane } from "../../tools/controlplane/launcher";
import { eventually } from "../support/api";
import { useCluster } from "../support/cluster";

const NAME = "agent-23";
const NS = "pods-test";

function onNode(yamlFile: string): string {
  // The examples select any xs-kubelet node; pin them to this test's agent (other suites run agents too).
  return readFileSync(join(repoRoot, "deploy/examples", yamlFile), "utf8").replace(/\n(\s+)nodeSelector:\n\s+xs-kubelet\.dev\/agent: "true"/g, `\n$1nodeSelector:\n$1  kubernetes.io/hostname: ${NAME}`);
}

const hello = (name: string, args: string[], restartPolicy = "Always", image = "xs-kubelet.dev/hello:0.1") => ({
  apiVersion: "v1",
  kind: "Pod",
  metadata: { name, namespace: NS },
  spec: { nodeName: NAME, restartPolicy, automountServiceAccountToken: false, containers: [{ name: "c", image, args }] },
});

describe("pods on the agent, through the real control plane and kubectl", function () {
  this.timeout(180_000);
  let cp: ControlPlane;
  let kubelet: Kubelet | undefined;
  const k = (args: string[], input?: string) => cp.kubectl(["-n", NS, ...args], input === undefined ? undefined : { input });
  const pod = async (name: string) => JSON.parse(await k(["get", "pod", name, "-o", "json"]));

  function agent(): Kubelet {
    const host = createNodeHost({ log: () => undefined });
    const serving = servingCert!;
    return new Kubelet(
      {
        nodeName: NAME,
        server: { host: cp.host, port: cp.port },
        tls: { serverName: "localhost", ca: cp.caDer, verify: true },
        token: cp.nodeCredentials(NAME).token,
        kubeletApi: { certificate: serving.certificate, key: serving.key, clientCa: cp.caDer, port: 0 },
      },
      host,
    );
  }
  let servingCert: { certificate: Uint8Array; key: Uint8Array } | undefined;

  before(async function () {
    cp = await useCluster(this);
    await cp.kubectl(["create", "namespace", NS]).catch(() => undefined);
    servingCert = await cp.nodeServingCertificate(NAME, ["127.0.0.1", NAME]);
    kubelet = agent();
    kubelet.start();
    await kubelet.registered;
  });
  after(async () => {
    await kubelet?.stop();
    await cp.kubectl(["delete", "namespace", NS, "--wait=false"]).catch(() => undefined);
  });

  it("kubectl apply hello-pod.yaml → 1/1 Running with the node's IP; logs --tail=3, -f (a new line within 2 s); delete → gone in seconds", async () => {
    await k(["apply", "-f", "-"], onNode("hello-pod.yaml"));
    await eventually("hello Running", 60_000, async () => (await pod("hello")).status.phase === "Running");
    const wide = await k(["get", "pod", "hello", "-o", "wide", "--no-headers"]);
    const node = JSON.parse(await cp.kubectl(["get", "node", NAME, "-o", "json"]));
    const ip = node.status.addresses.find((a: any) => a.type === "InternalIP").address;
    console.log(`      $ kubectl get pod hello -o wide\n      ${wide.trim()}`);
    assert.match(wide, new RegExp(`^hello\\s+1/1\\s+Running\\s+0\\s+\\S+\\s+${ip.replace(/\./g, "\\.")}\\s+${NAME}\\s`));
    await eventually("three lines", 10_000, async () => (await k(["logs", "hello"])).trim().split("\n").length >= 3);
    const tail = (await k(["logs", "hello", "--tail=3"])).trim().split("\n");
    assert.equal(tail.length, 3);
    for (const line of tail) assert.match(line, new RegExp(`^hello from ${NAME} \\(\\d+\\)$`));

    // kubectl logs -f: the lines so far, then each new one as it is written.
    const follow = spawn(cp.bin("kubectl"), ["--kubeconfig", cp.kubeconfig, "-n", NS, "logs", "-f", "--tail=1", "hello"]);
    const arrivals: number[] = [];
    follow.stdout.setEncoding("utf8");
    follow.stdout.on("data", (d: string) => {
      for (const _ of d.split("\n").filter(Boolean)) arrivals.push(Date.now());
    });
    try {
      await eventually("two followed lines", 15_000, async () => arrivals.length >= 3, 100);
      assert.ok(arrivals[2] - arrivals[1] <= 2000, `a new line ${arrivals[2] - arrivals[1]} ms after the previous one`);
    } finally {
      follow.kill();
    }

    const t0 = Date.now();
    await k(["delete", "pod", "hello", "--timeout=30s"]);
    const took = Date.now() - t0;
    console.log(`      kubectl delete pod hello: ${took} ms`);
    assert.ok(took < 10_000, `deleted in ${took} ms`);
  });

  it("a Job completes (kubectl wait --for=condition=complete)", async () => {
    await k(["apply", "-f", "-"], onNode("job.yaml"));
    await k(["wait", "--for=condition=complete", "job/hello-job", "--timeout=60s"]).catch(async (err) => {
      throw new Error(`${err.message}\n${await k(["get", "job,pods", "-o", "yaml"])}`);
    });
    const pods = JSON.parse(await k(["get", "pods", "-l", "job-name=hello-job", "-o", "json"])).items;
    assert.ok(pods.some((p: any) => p.status.phase === "Succeeded" && p.status.containerStatuses[0].state.terminated.exitCode === 0));
  });

  it("an image the node cannot run: the container waits with ErrImageNeverPull, and an Event says why", async () => {
    await k(["apply", "-f", "-"], JSON.stringify(hello("nginx", [], "Always", "nginx:1.27")));
    const waiting = await eventually("waiting reason", 30_000, async () => (await pod("nginx")).status.containerStatuses?.[0]?.state?.waiting);
    assert.equal(waiting.reason, "ErrImageNeverPull");
    assert.match(waiting.message, /is not a workload this node runs/);
    const events = await eventually("the Event", 30_000, async () => {
      const list = JSON.parse(await k(["get", "events", "--field-selector", "involvedObject.name=nginx", "-o", "json"])).items;
      return list.find((e: any) => e.reason === "ErrImageNeverPull");
    });
    assert.equal(events.source.component, "kubelet");
    assert.equal(events.involvedObject.fieldPath, "spec.containers{c}");
  });

  it("a crash-looping container backs off as the kubelet's (CrashLoopBackOff) and kubectl logs --previous reads the last run", async () => {
    await k(["apply", "-f", "-"], JSON.stringify(hello("crash", ["--count=1", "--exit-code=3", "--message=about to fail"])));
    const cs = await eventually("CrashLoopBackOff", 60_000, async () => {
      const s = (await pod("crash")).status.containerStatuses?.[0];
      return s?.state?.waiting?.reason === "CrashLoopBackOff" && s.restartCount >= 1 ? s : undefined;
    });
    assert.equal(cs.lastState.terminated.exitCode, 3);
    assert.match(cs.state.waiting.message, /^back-off \d+s restarting failed container=c pod=crash_pods-test\(/);
    assert.equal((await k(["logs", "crash", "--previous"])).trim(), "about to fail (1/1)");
    const backoff = await eventually("BackOff event", 30_000, async () => JSON.parse(await k(["get", "events", "--field-selector", "involvedObject.name=crash,reason=BackOff", "-o", "json"])).items[0]);
    assert.equal(backoff.type, "Warning");
  });

  it("a pod deleted while the agent is stopped is gone after it restarts", async () => {
    await k(["apply", "-f", "-"], JSON.stringify(hello("orphan", [])));
    await eventually("orphan Running", 30_000, async () => (await pod("orphan")).status.phase === "Running");
    await kubelet!.stop();
    await k(["delete", "pod", "orphan", "--wait=false"]);
    assert.ok((await pod("orphan")).metadata.deletionTimestamp, "Terminating while no agent runs");
    kubelet = agent();
    kubelet.start();
    await eventually("orphan gone", 30_000, async () => !(await k(["get", "pods", "-o", "name"])).includes("pod/orphan"));
  });

  it("the 11th pod on a 10-pod node is rejected with OutOfpods", async () => {
    const node = JSON.parse(await cp.kubectl(["get", "node", NAME, "-o", "json"]));
    assert.equal(node.status.capacity.pods, "10");
    // Whatever runs already (the crash loop, the waiting nginx) counts; fill up to ten.
    const active = kubelet!.pods.active;
    const names: string[] = [];
    for (let i = 0; i < 10 - active; i++) names.push(`fill-${i}`);
    await k(["apply", "-f", "-"], names.map((n) => JSON.stringify(hello(n, ["--interval=10s"]))).join("\n"));
    await eventually("all admitted", 60_000, async () => kubelet!.pods.active === 10);
    await k(["apply", "-f", "-"], JSON.stringify(hello("eleventh", [])));
    const status = await eventually("eleventh rejected", 30_000, async () => {
      const s = (await pod("eleventh")).status;
      return s.phase === "Failed" ? s : undefined;
    });
    assert.equal(status.reason, "OutOfpods");
    assert.equal(status.message, "Pod was rejected: Node didn't have enough resource: pods, requested: 1, used: 10, capacity: 10");
    const wide = await k(["get", "pod", "eleventh", "--no-headers"]);
    assert.match(wide, /OutOfpods/);
  });
});
