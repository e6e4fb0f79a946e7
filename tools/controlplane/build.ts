// Builds the real Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler, kubectl) from Go modules into a git-ignored cache. A build is reused until go.mod,
// go.sum, a main package or the Go version changes; the first build takes minutes and says so.
import { spawn, execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
export const repoRoot = join(here, "..", "..");

interface Target {
  name: string; // binary name
  module: string; // module directory under tools/controlplane
  pkg: string; // package path inside the module
  kubeVersion?: boolean; // stamp the Kubernetes version into the binary
}

export const targets: Target[] = [
  { name: "pki", module: "util", pkg: "./cmd/pki" },
  { name: "tether", module: "util", pkg: "./cmd/tether" },
  { name: "etcd", module: "etcd", pkg: "." },
  { name: "kube-apiserver", module: "k8s", pkg: "./cmd/kube-apiserver", kubeVersion: true },
  { name: "kube-controller-manager", module: "k8s", pkg: "./cmd/kube-controller-manager", kubeVersion: true },
  { name: "kube-scheduler", module: "k8s", pkg: "./cmd/kube-scheduler", kubeVersion: true },
  { name: "kubectl", module: "k8s", pkg: "./cmd/kubectl", kubeVersion: true },
];

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

/** Cache key: the Go version plus every go.mod, go.sum and main package that goes into the binaries. */
function cacheKey(): string {
  const h = createHash("sha256").update(goVersion()).update(readFileSync(fileURLToPath(import.meta.url)));
  for (const module of ["util", "etcd", "k8s"]) {
    for (const f of filesOf(join(here, module)).sort()) h.update(relative(here, f)).update(readFileSync(f));
  }
  return h.digest("hex").slice(0, 16);
}

export function cacheDir(): string {
  return join(repoRoot, ".cache", "controlplane");
}

export interface Built {
  binDir: string;
  bin: (name: BinaryName) => string;
  kubernetesVersion: string;
  etcdVersion: string;
}

function ldflags(target: Target): string {
  const flags = ["-s", "-w"];
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
 * Returns the built control plane, building it first when the cache has no build for the current
 * sources and Go version. Safe to call from several processes: a build lands in its final directory
 * by one rename, so a reader never sees half of it.
 */
export async function ensureBuilt(log: (line: string) => void = (l) => console.error(l)): Promise<Built> {
  const key = cacheKey();
  const binDir = join(cacheDir(), key, "bin");
  const result: Built = {
    binDir,
    bin: (name) => join(binDir, name),
    kubernetesVersion: kubernetesVersion(),
    etcdVersion: etcdVersion(),
  };
  if (targets.every((t) => existsSync(join(binDir, t.name)))) return result;

  const staging = join(cacheDir(), `${key}.building-${process.pid}`);
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });
  const started = Date.now();
  log(`[controlplane] building Kubernetes ${result.kubernetesVersion} and etcd ${result.etcdVersion} from Go modules into ${relative(repoRoot, binDir)}`);
  log(`[controlplane] a cold build downloads the modules and compiles for several minutes; later runs reuse it`);
  try {
    for (const target of targets) await goBuild(target, join(staging, target.name), log);
    writeFileSync(join(staging, "BUILD-INFO"), `${goVersion()}\nkubernetes ${result.kubernetesVersion}\netcd ${result.etcdVersion}\n`);
    mkdirSync(dirname(binDir), { recursive: true });
    try {
      renameSync(staging, binDir);
    } catch (err) {
      // Another process finished the same build first: use theirs.
      if (!targets.every((t) => existsSync(join(binDir, t.name)))) throw err;
      rmSync(staging, { recursive: true, force: true });
    }
  } catch (err) {
    rmSync(staging, { recursive: true, force: true });
    throw err;
  }
  // Old builds are dead weight (each is ~300 MB).
  for (const entry of readdirSync(cacheDir())) {
    if (entry !== key && !entry.includes(".building-")) rmSync(join(cacheDir(), entry), { recursive: true, force: true });
  }
  log(`[controlplane] control plane built in ${fmtElapsed(Date.now() - started)}`);
  return result;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  ensureBuilt()
    .then((b) => console.log(`[controlplane] binaries in ${b.binDir}`))
    .catch((err: Error) => {
      console.error(`[controlplane] ${err.message}`);
      process.exit(1);
    });
}
