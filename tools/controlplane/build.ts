// Builds the real Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler, kubectl) from Go modules into a git-ignored cache, and — on demand — the metrics
// test tools (metrics-server, promparse). Each group is cached on its own: a build is reused until
// one of its go.mod, go.sum, main packages, this file or the Go version changes; the first build
// takes minutes and says so.
import { spawn, execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
export const repoRoot = join(here, "..", "..");

/**
 * controlplane: what every control plane needs (npm start, the tests).
 * metrics: metrics-server and promparse, built only when asked for (a separate Go module and cache).
 */
export type BuildGroup = "controlplane" | "metrics";

interface Target {
  name: string; // binary name
  group: BuildGroup;
  module: string; // module directory under tools/controlplane
  pkg: string; // package path inside the module
  kubeVersion?: boolean; // stamp the Kubernetes version into the binary
  clientGoVersion?: () => string; // stamp only client-go's version (what metrics-server's Makefile does)
}

export const targets = [
  { name: "pki", group: "controlplane", module: "util", pkg: "./cmd/pki" },
  { name: "tether", group: "controlplane", module: "util", pkg: "./cmd/tether" },
  { name: "etcd", group: "controlplane", module: "etcd", pkg: "." },
  { name: "kube-apiserver", group: "controlplane", module: "k8s", pkg: "./cmd/kube-apiserver", kubeVersion: true },
  { name: "kube-controller-manager", group: "controlplane", module: "k8s", pkg: "./cmd/kube-controller-manager", kubeVersion: true },
  { name: "kube-scheduler", group: "controlplane", module: "k8s", pkg: "./cmd/kube-scheduler", kubeVersion: true },
  { name: "kubectl", group: "controlplane", module: "k8s", pkg: "./cmd/kubectl", kubeVersion: true },
  { name: "metrics-server", group: "metrics", module: "metrics", pkg: "./cmd/metrics-server", clientGoVersion: () => metricsServerVersion() },
  { name: "promparse", group: "metrics", module: "metrics", pkg: "./cmd/promparse" },
] as const satisfies readonly Target[];

const GROUP_MODULES: Record<BuildGroup, string[]> = { controlplane: ["util", "etcd", "k8s"], metrics: ["metrics"] };

export type BinaryName = (typeof targets)[number]["name"];

/** The version a go.mod requires of a module, e.g. requiredVersion("k8s", "k8s.io/kubernetes"). */
export function requiredVersion(module: string, path: string): string {
  const gomod = readFileSync(join(here, module, "go.mod"), "utf8");
  const m = gomod.match(new RegExp(`^\\s*(?:require\\s+)?${path.replace(/\./g, "\\.")}\\s+(v\\S+)`, "m"));
  if (!m) throw new Error(`tools/controlplane/${module}/go.mod does not require ${path}`);
  return m[1];
}

export const kubernetesVersion = (): string => requiredVersion("k8s", "k8s.io/kubernetes");
export const etcdVersion = (): string => requiredVersion("etcd", "go.etcd.io/etcd/server/v3");
export const metricsServerVersion = (): string => requiredVersion("metrics", "sigs.k8s.io/metrics-server");
export const prometheusCommonVersion = (): string => requiredVersion("metrics", "github.com/prometheus/common");

const goEnv = (): NodeJS.ProcessEnv => ({
  ...process.env,
  CGO_ENABLED: "0",
  GOTOOLCHAIN: "local", // never download a toolchain: only the module proxy is reachable
  GOFLAGS: "-mod=readonly -buildvcs=false -trimpath",
});

function goVersion(): string {
  try {
    return execFileSync("go", ["version"], { env: goEnv(), encoding: "utf8" }).trim();
  } catch (err) {
    throw new Error(`the Go toolchain is needed to build the control plane and 'go version' failed: ${(err as Error).message}`);
  }
}

function filesOf(dir: string): string[] {
  return readdirSync(dir).flatMap((entry) => {
    const p = join(dir, entry);
    return statSync(p).isDirectory() ? filesOf(p) : /(\.go|go\.mod|go\.sum)$/.test(entry) ? [p] : [];
  });
}

/** Cache key of a group: the Go version plus every go.mod, go.sum and main package of its modules. */
function cacheKey(group: BuildGroup, go: string): string {
  const h = createHash("sha256").update(go).update(readFileSync(fileURLToPath(import.meta.url)));
  for (const module of GROUP_MODULES[group]) {
    for (const f of filesOf(join(here, module)).sort()) h.update(relative(here, f)).update(readFileSync(f));
  }
  return h.digest("hex").slice(0, 16);
}

/** The cache entry a group's build lives in: `<key>` for the control plane (as before), `<group>-<key>` otherwise. */
const entryName = (group: BuildGroup, key: string): string => (group === "controlplane" ? key : `${group}-${key}`);
const entryGroup = (entry: string): BuildGroup | undefined =>
  /^[0-9a-f]{16}$/.test(entry) ? "controlplane" : /^metrics-[0-9a-f]{16}$/.test(entry) ? "metrics" : undefined;

export function cacheDir(): string {
  return join(repoRoot, ".cache", "controlplane");
}

/** Temp dirs of running control planes (launcher.ts): each has owner.pid and, in `builds`, the bin dirs it runs from. */
export const CONTROL_PLANE_DIR_PREFIX = "xs-kubelet-cp-";
export const BUILDS_IN_USE_FILE = "builds";

/** Cache entries a live control plane (of any process) still runs binaries from: never removed under it. */
function entriesInUse(): Set<string> {
  const inUse = new Set<string>();
  for (const entry of readdirSync(tmpdir())) {
    if (!entry.startsWith(CONTROL_PLANE_DIR_PREFIX)) continue;
    try {
      const dir = join(tmpdir(), entry);
      process.kill(Number(readFileSync(join(dir, "owner.pid"), "utf8")), 0);
      for (const bin of readFileSync(join(dir, BUILDS_IN_USE_FILE), "utf8").split("\n").filter(Boolean)) inUse.add(relative(cacheDir(), dirname(bin)));
    } catch {
      // not a live control plane, or one that records no builds
    }
  }
  return inUse;
}

export interface Built {
  /** The control plane's binaries. */
  binDir: string;
  /** Path of a binary; one of a group that was not asked for (ensureBuilt's groups) does not exist. */
  bin: (name: BinaryName) => string;
  /** The groups built (or found in the cache) by this call. */
  groups: BuildGroup[];
  kubernetesVersion: string;
  etcdVersion: string;
  metricsServerVersion: string;
}

function ldflags(target: Target): string {
  const flags = ["-s", "-w"];
  if (target.clientGoVersion) {
    const v = target.clientGoVersion();
    const [, major, minor] = v.match(/^v(\d+)\.(\d+)/) ?? [];
    flags.push(`-X k8s.io/client-go/pkg/version.gitVersion=${v}`, `-X k8s.io/client-go/pkg/version.gitMajor=${major}`, `-X k8s.io/client-go/pkg/version.gitMinor=${minor}`, "-X k8s.io/client-go/pkg/version.gitTreeState=clean");
  }
  if (target.kubeVersion) {
    const v = kubernetesVersion();
    const [, major, minor] = v.match(/^v(\d+)\.(\d+)/) ?? [];
    for (const pkg of ["k8s.io/component-base/version", "k8s.io/client-go/pkg/version"]) {
      flags.push(
        `-X ${pkg}.gitVersion=${v}`,
        `-X ${pkg}.gitMajor=${major}`,
        `-X ${pkg}.gitMinor=${minor}`,
        `-X ${pkg}.gitTreeState=clean`,
      );
    }
  }
  return flags.join(" ");
}

const fmtElapsed = (ms: number): string => {
  const s = Math.round(ms / 1000);
  return s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s` : `${s}s`;
};

function goBuild(target: Target, out: string, log: (line: string) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    log(`[controlplane] building ${target.name} …`);
    const child = spawn("go", ["build", "-ldflags", ldflags(target), "-o", out, target.pkg], {
      cwd: join(here, target.module),
      env: goEnv(),
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stderr += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const ticker = setInterval(() => log(`[controlplane]   ${target.name}: still building, ${fmtElapsed(Date.now() - started)}`), 20_000);
    const stop = () => child.kill("SIGTERM");
    process.once("SIGINT", stop);
    child.on("error", (err) => {
      clearInterval(ticker);
      reject(new Error(`could not run 'go build' for ${target.name}: ${err.message}`));
    });
    child.on("close", (code, signal) => {
      clearInterval(ticker);
      process.removeListener("SIGINT", stop);
      if (code === 0) {
        log(`[controlplane]   ${target.name}: built in ${fmtElapsed(Date.now() - started)}`);
        resolve();
      } else {
        reject(new Error(`go build of ${target.name} failed (${signal ?? `exit ${code}`}):\n${stderr.trim().split("\n").slice(-30).join("\n")}`));
      }
    });
  });
}

/**
 * Returns the built control plane (and the other groups asked for), building first what the cache
 * has no build of for the current sources and Go version. Safe to call from several processes: a
 * build lands in its final directory by one rename, so a reader never sees half of it.
 */
export async function ensureBuilt(log: (line: string) => void = (l) => console.error(l), groups: BuildGroup[] = ["controlplane"]): Promise<Built> {
  const go = goVersion();
  const wanted = [...new Set(groups)];
  const dirs = new Map<BuildGroup, string>();
  for (const group of ["controlplane", "metrics"] as const) dirs.set(group, join(cacheDir(), entryName(group, cacheKey(group, go)), "bin"));
  const groupOf = new Map<string, BuildGroup>(targets.map((t) => [t.name, t.group]));
  const result: Built = {
    binDir: dirs.get("controlplane")!,
    bin: (name) => join(dirs.get(groupOf.get(name)!)!, name),
    groups: wanted,
    kubernetesVersion: kubernetesVersion(),
    etcdVersion: etcdVersion(),
    metricsServerVersion: metricsServerVersion(),
  };
  for (const group of wanted) {
    const binDir = dirs.get(group)!;
    // One build per directory in this process, however many callers ask at once.
    let building = inProcess.get(binDir);
    if (!building) {
      building = buildGroup(group, binDir, go, result, log).finally(() => inProcess.delete(binDir));
      inProcess.set(binDir, building);
    }
    await building;
  }
  return result;
}

const inProcess = new Map<string, Promise<void>>();

async function buildGroup(group: BuildGroup, binDir: string, go: string, result: Built, log: (line: string) => void): Promise<void> {
  const groupTargets = targets.filter((t) => t.group === group);
  if (groupTargets.every((t) => existsSync(join(binDir, t.name)))) return;

  const entry = dirname(binDir).split("/").pop()!;
  const staging = join(cacheDir(), `${entry}.building-${process.pid}`);
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });
  const started = Date.now();
  if (group === "controlplane") {
    log(`[controlplane] building Kubernetes ${result.kubernetesVersion} and etcd ${result.etcdVersion} from Go modules into ${relative(repoRoot, binDir)}`);
    log(`[controlplane] a cold build downloads the modules and compiles for several minutes; later runs reuse it`);
  } else {
    log(`[controlplane] building metrics-server ${result.metricsServerVersion} and promparse (prometheus/common ${prometheusCommonVersion()}) from Go modules into ${relative(repoRoot, binDir)}`);
    log(`[controlplane] a cold build takes a few minutes (measured: about 3 on 2 cores); later runs reuse it`);
  }
  try {
    for (const target of groupTargets) await goBuild(target, join(staging, target.name), log);
    const versions = group === "controlplane" ? `kubernetes ${result.kubernetesVersion}\netcd ${result.etcdVersion}\n` : `metrics-server ${result.metricsServerVersion}\nprometheus/common ${prometheusCommonVersion()}\n`;
    writeFileSync(join(staging, "BUILD-INFO"), `${go}\n${versions}`);
    mkdirSync(dirname(binDir), { recursive: true });
    try {
      renameSync(staging, binDir);
    } catch (err) {
      // Another process finished the same build first: use theirs.
      if (!groupTargets.every((t) => existsSync(join(binDir, t.name)))) throw err;
      rmSync(staging, { recursive: true, force: true });
    }
  } catch (err) {
    rmSync(staging, { recursive: true, force: true });
    throw err;
  }
  // Old builds of the same group are dead weight (a control plane is ~300 MB, metrics ~80 MB),
  // unless a running control plane still uses one: that goes at a later build.
  const inUse = entriesInUse();
  for (const old of readdirSync(cacheDir())) {
    if (old !== entry && entryGroup(old) === group && !inUse.has(old)) rmSync(join(cacheDir(), old), { recursive: true, force: true });
  }
  log(`[controlplane] ${group === "controlplane" ? "control plane" : "metrics tools"} built in ${fmtElapsed(Date.now() - started)}`);
}

// `npm run controlplane:build` builds every group (CI warms its cache with it); `-- --only controlplane` just the control plane.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const only = process.argv.indexOf("--only");
  const groups = (only >= 0 ? [process.argv[only + 1]] : ["controlplane", "metrics"]) as BuildGroup[];
  for (const g of groups) if (!(g in GROUP_MODULES)) throw new Error(`unknown build group "${g}" (controlplane, metrics)`);
  ensureBuilt(undefined, groups)
    .then((b) => console.log(`[controlplane] binaries in ${[...new Set(b.groups.map((g) => dirname(b.bin(targets.find((t) => t.group === g)!.name))))].join(", ")}`))
    .catch((err: Error) => {
      console.error(`[controlplane] ${err.message}`);
      process.exit(1);
    });
}
