// `npm run cluster` leaves nothing behind: after Ctrl-C, and even after SIGKILL of the launcher, every
// component process is gone and the API server's port can be bound again.
import assert from "node:assert/strict";
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { ensureBuilt, repoRoot } from "../../tools/controlplane/build";
import { eventually } from "../support/api";
import { sharedCluster } from "../support/cluster";

/** Control-plane components under pid (tethered components exec in place: direct children). */
function componentsOf(pid: number): number[] {
  const kids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      if (ppid === pid && /^(etcd|kube-)/.test(name)) kids.push(Number(entry));
    } catch {
      // raced with an exiting process
    }
  }
  return kids;
}

function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

function nameOf(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
  } catch {
    return "?";
  }
}

const portFree = (port: number) =>
  new Promise<boolean>((resolve) => {
    const srv = createServer();
    srv.once("error", () => resolve(false));
    srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
  });

let launched: ChildProcess | undefined;

async function startCluster(): Promise<{ child: ChildProcess; port: number; dir: string; components: number[] }> {
  const child = spawn(process.execPath, ["--import", "tsx", join(repoRoot, "tools/controlplane/cluster.ts"), "--node", "shutdown-1"], {
    cwd: repoRoot,
    stdio: ["ignore", "pipe", "pipe"],
  });
  launched = child;
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  await eventually("npm run cluster to say it is ready", 120_000, async () => {
    if (child.exitCode !== null) throw new Error(`cluster exited early:\n${out}`);
    return out.includes("Ctrl-C stops everything");
  });
  const port = Number(/running at https:\/\/127\.0\.0\.1:(\d+)/.exec(out)![1]);
  const dir = /kubeconfig:\s+(\S+)\/admin\.kubeconfig/.exec(out)![1];
  assert.match(out, /kubectl get nodes -o wide/);
  const components = componentsOf(child.pid!);
  assert.equal(components.length, 4, `etcd, apiserver, controller-manager, scheduler under the launcher; got ${components}`);
  return { child, port, dir, components };
}

describe("control plane shutdown", function () {
  this.timeout(180_000);
  afterEach(() => {
    if (launched && launched.exitCode === null && launched.signalCode === null) launched.kill("SIGKILL");
  });
  before(async function () {
    this.timeout(0);
    await sharedCluster(); // makes sure the binaries are built before the timed part
  });

  it("Ctrl-C stops every component, frees the port and removes the temp dir", async () => {
    const { child, port, dir, components } = await startCluster();
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    child.kill("SIGINT");
    assert.equal(await exited, 0);
    for (const pid of components) assert.equal(alive(pid), false, `component ${pid} survived Ctrl-C`);
    assert.equal(await portFree(port), true, `port ${port} still bound`);
    assert.equal(existsSync(dir), false, `${dir} left behind`);
  });

  // The parent-death signal is a thread's: set on one OS thread and exec'd from another, it is lost,
  // and the component outlives a SIGKILLed launcher (1 of 100 tethers did so before tether stayed on
  // one thread; etcd survived a SIGKILLed launcher in CI). 600 runs find that with p ≈ 0.998.
  it("every tethered program runs with SIGKILL as its parent-death signal (600 of 600)", async () => {
    const tether = (await ensureBuilt(() => {})).bin("tether");
    const run = () =>
      new Promise<string>((resolve, reject) =>
        execFile(tether, [tether, "-pdeathsig"], (err, stdout) => (err ? reject(err) : resolve(stdout.trim()))),
      );
    const seen = new Map<string, number>();
    for (let batch = 0; batch < 60; batch++) {
      for (const sig of await Promise.all(Array.from({ length: 10 }, run))) seen.set(sig, (seen.get(sig) ?? 0) + 1);
    }
    assert.deepEqual([...seen], [["9", 600]], `parent-death signals seen (signal, runs): ${JSON.stringify([...seen])}`);
  });

  it("a SIGKILLed launcher still takes every component with it", async () => {
    const { child, port, components } = await startCluster();
    child.kill("SIGKILL");
    const names = new Map(components.map((pid) => [pid, nameOf(pid)]));
    const survivors = () => components.filter(alive).map((pid) => `${names.get(pid)} (${pid})`);
    await eventually("every component to exit after SIGKILL", 30_000, async () => {
      const left = survivors();
      if (left.length) throw new Error(`still running: ${left.join(", ")}`);
      return true;
    });
    assert.equal(await eventually(`port ${port} to be free`, 10_000, () => portFree(port)), true);
  });
});
