// Starts a real, throw-away Kubernetes control plane on 127.0.0.1: etcd, kube-apiserver (Node + RBAC
// authorization, NodeRestriction), kube-controller-manager (node lifecycle, service accounts, CSR
// signing/approval, garbage collection, …) and kube-scheduler, each on a free port in a temp dir.
// Every process it starts dies with it: on stop(), on exit, on Ctrl-C, and even on SIGKILL (tether).
import { spawn, execFile, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createWriteStream, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { createServer } from "node:net";
import { request as httpsRequest } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { renderNodeRbac } from "../../deploy/render";
import { ensureBuilt, type Built, type BinaryName } from "./build";

export interface ControlPlaneOptions {
  /** Node names that get a static bearer token (system:node:<name>, group system:nodes). */
  nodes?: string[];
  /** kube-controller-manager --node-monitor-grace-period, seconds (upstream default 50). */
  nodeMonitorGracePeriodSeconds?: number;
  /** Extra SANs (hosts or IPs) for the serving certificate, e.g. a LAN address for a real board. */
  extraSANs?: string[];
  /** Address the API server listens on; 127.0.0.1 unless a real board must reach it. */
  bindAddress?: string;
  /** Progress and diagnostics. */
  log?: (line: string) => void;
  /** Keep the temp dir after stop (logs, PKI) for post-mortems. */
  keepDir?: boolean;
}

export interface NodeCredentials {
  user: string;
  groups: string[];
  token: string;
}

export interface ControlPlane {
  /** https://127.0.0.1:<port> */
  server: string;
  host: string;
  port: number;
  /** The cluster CA that signs the serving certificate. */
  caPem: string;
  caDer: Uint8Array;
  /** Admin kubeconfig (system:masters client certificate). */
  kubeconfig: string;
  dir: string;
  kubernetesVersion: string;
  etcdVersion: string;
  /** Static-token credentials of a node named in options.nodes. */
  nodeCredentials(name: string): NodeCredentials;
  /**
   * Creates (idempotently) the ServiceAccount xs-kubelet/<name> bound to the least-privilege roles in
   * deploy/ and returns a token for it from the TokenRequest API.
   */
  serviceAccountToken(name: string, durationSeconds?: number): Promise<string>;
  /** Runs the built kubectl against this cluster as admin; resolves with stdout. */
  kubectl(args: string[], options?: { input?: string; token?: string }): Promise<string>;
  /** Path of a built binary (kubectl, …). */
  bin(name: BinaryName): string;
  /** Stops every process, waits for them to exit, removes the temp dir. Idempotent. */
  stop(): Promise<void>;
  /**
   * Stops kube-apiserver gracefully (SIGTERM: it sends GOAWAY on its HTTP/2 connections and closes
   * them), waits downMs, starts it again on the same port, and waits for /readyz.
   */
  restartApiServer(downMs?: number): Promise<void>;
}

const COMPONENTS = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"] as const;

const CONTROLLERS = [
  "node-lifecycle-controller",
  "taint-eviction-controller",
  "serviceaccount-controller",
  "serviceaccount-token-controller",
  "root-ca-certificate-publisher-controller",
  "garbage-collector-controller",
  "namespace-controller",
  "certificatesigningrequest-signing-controller",
  "certificatesigningrequest-approving-controller",
  "certificatesigningrequest-cleaner-controller",
  "pod-garbage-collector-controller",
  "replicaset-controller",
  "deployment-controller",
  "daemonset-controller",
];

/** Every live process started by any control plane of this Node process: killed on exit, whatever happens. */
const live = new Set<ChildProcess>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const child of live) child.kill("SIGKILL");
  });
}

const DIR_PREFIX = "xs-kubelet-cp-";

/** Removes temp dirs of control planes whose launcher died without cleaning up (e.g. SIGKILL). */
function sweepAbandonedDirs(): void {
  for (const entry of readdirSync(tmpdir())) {
    if (!entry.startsWith(DIR_PREFIX)) continue;
    const dir = join(tmpdir(), entry);
    try {
      const owner = Number(readFileSync(join(dir, "owner.pid"), "utf8"));
      process.kill(owner, 0); // throws ESRCH when the owner is gone
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EPERM") rmSync(dir, { recursive: true, force: true });
    }
  }
}

export async function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, host, () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

function run(file: string, args: string[], options: { input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(file, args, { env: options.env, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) {
        const name = file.split("/").pop();
        reject(Object.assign(new Error(`${name} ${args.join(" ")}: ${stderr.trim() || err.message}`), { stderr, stdout }));
      } else resolve(stdout);
    });
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}

function kubeconfigYaml(server: string, caFile: string, user: { certFile?: string; keyFile?: string; token?: string }): string {
  const auth = user.token
    ? `    token: ${user.token}\n`
    : `    client-certificate: ${user.certFile}\n    client-key: ${user.keyFile}\n`;
  return `apiVersion: v1
kind: Config
clusters:
- name: xs-kubelet-local
  cluster:
    server: ${server}
    certificate-authority: ${caFile}
users:
- name: user
  user:
${auth}contexts:
- name: xs-kubelet-local
  context:
    cluster: xs-kubelet-local
    user: user
current-context: xs-kubelet-local
`;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function httpsStatus(url: string, ca: string | undefined, timeoutMs = 2000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { ca, rejectUnauthorized: ca !== undefined, timeout: timeoutMs }, (res) => {
      let body = "";
      res.on("data", (d: Buffer) => (body += d.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
    req.end();
  });
}

function tail(file: string, lines = 25): string {
  try {
    return readFileSync(file, "utf8").trim().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

export async function startControlPlane(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const log = options.log ?? ((line: string) => console.error(line));
  const built: Built = await ensureBuilt(log);
  installExitHook();

  sweepAbandonedDirs();
  const dir = mkdtempSync(join(tmpdir(), DIR_PREFIX));
  writeFileSync(join(dir, "owner.pid"), String(process.pid));
  const pki = join(dir, "pki");
  const logs = join(dir, "logs");
  mkdirSync(logs);
  const host = options.bindAddress ?? "127.0.0.1";
  const started: { name: string; child: ChildProcess; logFile: string }[] = [];
  let stopping: Promise<void> | undefined;

  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      // Reverse start order: clients first, etcd last.
      for (const { child } of [...started].reverse()) {
        if (child.exitCode !== null || child.signalCode !== null) continue;
        const exited = new Promise<void>((r) => child.once("exit", () => r()));
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
        await exited;
        clearTimeout(timer);
        live.delete(child);
      }
      if (!options.keepDir) rmSync(dir, { recursive: true, force: true });
    })();
    return stopping;
  };

  const startComponent = (name: (typeof COMPONENTS)[number], args: string[]): ChildProcess => {
    const logFile = join(logs, `${name}.log`);
    const out = createWriteStream(logFile);
    // tether makes the component die with this process even when this process is SIGKILLed.
    const child = spawn(built.bin("tether"), [built.bin(name), ...args], {
      cwd: dir,
      stdio: ["ignore", "pipe", "pipe"],
      // Own process group: a terminal's Ctrl-C reaches the launcher, which stops the components
      // after its clients are done (a node agent still pushes "shutting down" first).
      detached: true,
    });
    child.stdout!.pipe(out);
    child.stderr!.pipe(out);
    live.add(child);
    child.once("exit", () => live.delete(child));
    started.push({ name, child, logFile });
    return child;
  };

  const fail = async (what: string): Promise<never> => {
    const dead = started.find((s) => s.child.exitCode !== null || s.child.signalCode !== null);
    const detail = dead
      ? `${dead.name} exited (${dead.child.signalCode ?? `code ${dead.child.exitCode}`}); last lines of its log:\n${tail(dead.logFile)}`
      : `logs in ${logs}`;
    const keep = options.keepDir;
    options.keepDir = true; // keep logs for a failed start
    await stop();
    options.keepDir = keep;
    throw new Error(`control plane: ${what}: ${detail}`);
  };

  const waitFor = async (what: string, timeoutMs: number, probe: () => Promise<boolean>): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (started.some((s) => s.child.exitCode !== null || s.child.signalCode !== null)) return fail(`${what} never happened`);
      try {
        if (await probe()) return;
      } catch {
        // not up yet
      }
      await sleep(250);
    }
    return fail(`timed out after ${timeoutMs / 1000}s waiting for ${what}`);
  };

  try {
    // PKI like k3s's: Go-made P-256 CA without AKI; the serving chain is leaf + CA.
    const sans = ["127.0.0.1", "localhost", ...(options.extraSANs ?? []), ...(host !== "127.0.0.1" && host !== "0.0.0.0" ? [host] : [])];
    await run(built.bin("pki"), ["-dir", pki, "-san", sans.join(",")]);

    const nodeTokens = new Map<string, NodeCredentials>();
    for (const name of options.nodes ?? []) {
      nodeTokens.set(name, { user: `system:node:${name}`, groups: ["system:nodes"], token: randomBytes(16).toString("base64url") });
    }
    const tokenFile = join(pki, "tokens.csv");
    writeFileSync(
      tokenFile,
      [...nodeTokens.entries()].map(([name, c]) => `${c.token},${c.user},node-${name},"${c.groups.join(",")}"\n`).join(""),
      { mode: 0o600 },
    );

    const [etcdClient, etcdPeer, apiPort, cmPort, schedPort] = await Promise.all([freePort(), freePort(), freePort(host === "0.0.0.0" ? "0.0.0.0" : host), freePort(), freePort()]);
    const loopback = host === "0.0.0.0" ? "127.0.0.1" : host;
    const server = `https://${loopback}:${apiPort}`;
    log(`[controlplane] starting etcd ${built.etcdVersion} and Kubernetes ${built.kubernetesVersion} in ${dir}`);

    startComponent("etcd", [
      "--name=xs-kubelet",
      `--data-dir=${join(dir, "etcd")}`,
      `--listen-client-urls=http://127.0.0.1:${etcdClient}`,
      `--advertise-client-urls=http://127.0.0.1:${etcdClient}`,
      `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-cluster=xs-kubelet=http://127.0.0.1:${etcdPeer}`,
      "--unsafe-no-fsync", // throw-away data: durability only costs time here
      "--log-level=warn",
    ]);
    await waitFor("etcd health", 30_000, async () => {
      const res = await fetch(`http://127.0.0.1:${etcdClient}/health`);
      return res.ok;
    });

    const caFile = join(pki, "ca.crt");
    const apiserverArgs = [
      `--etcd-servers=http://127.0.0.1:${etcdClient}`,
      `--bind-address=${host}`,
      `--advertise-address=${loopback === "127.0.0.1" ? "127.0.0.1" : loopback}`,
      `--secure-port=${apiPort}`,
      `--cert-dir=${join(dir, "apiserver-certs")}`,
      `--tls-cert-file=${join(pki, "apiserver.crt")}`,
      `--tls-private-key-file=${join(pki, "apiserver.key")}`,
      `--client-ca-file=${caFile}`,
      `--token-auth-file=${tokenFile}`,
      "--authorization-mode=Node,RBAC",
      "--enable-admission-plugins=NodeRestriction",
      `--service-account-issuer=https://kubernetes.default.svc.cluster.local`,
      `--service-account-key-file=${join(pki, "sa.pub")}`,
      `--service-account-signing-key-file=${join(pki, "sa.key")}`,
      "--service-account-max-token-expiration=8760h",
      "--service-cluster-ip-range=10.43.0.0/16",
      "--endpoint-reconciler-type=none", // one loopback apiserver: no kubernetes Endpoints to keep
      "--profiling=false",
      "--v=1",
    ];
    startComponent("kube-apiserver", apiserverArgs);
    await waitFor("kube-apiserver /readyz", 90_000, async () => (await httpsStatus(`${server}/readyz`, readFileSync(caFile, "utf8"))).status === 200);

    const kubeconfig = join(dir, "admin.kubeconfig");
    writeFileSync(kubeconfig, kubeconfigYaml(server, caFile, { certFile: join(pki, "admin.crt"), keyFile: join(pki, "admin.key") }), { mode: 0o600 });
    const cmKubeconfig = join(dir, "controller-manager.kubeconfig");
    writeFileSync(cmKubeconfig, kubeconfigYaml(server, caFile, { certFile: join(pki, "controller-manager.crt"), keyFile: join(pki, "controller-manager.key") }));
    const schedKubeconfig = join(dir, "scheduler.kubeconfig");
    writeFileSync(schedKubeconfig, kubeconfigYaml(server, caFile, { certFile: join(pki, "scheduler.crt"), keyFile: join(pki, "scheduler.key") }));

    const grace = options.nodeMonitorGracePeriodSeconds ?? 50;
    startComponent("kube-controller-manager", [
      `--kubeconfig=${cmKubeconfig}`,
      `--authentication-kubeconfig=${cmKubeconfig}`,
      `--authorization-kubeconfig=${cmKubeconfig}`,
      "--leader-elect=false",
      // Each controller acts as its own ServiceAccount with its bootstrap role, as kubeadm sets it up.
      "--use-service-account-credentials=true",
      `--controllers=${CONTROLLERS.join(",")}`,
      "--node-monitor-period=2s",
      `--node-monitor-grace-period=${grace}s`,
      `--cluster-signing-cert-file=${caFile}`,
      `--cluster-signing-key-file=${join(pki, "ca.key")}`,
      `--service-account-private-key-file=${join(pki, "sa.key")}`,
      `--root-ca-file=${caFile}`,
      "--bind-address=127.0.0.1",
      `--secure-port=${cmPort}`,
      `--cert-dir=${join(dir, "controller-manager-certs")}`,
      "--v=1",
    ]);
    startComponent("kube-scheduler", [
      `--kubeconfig=${schedKubeconfig}`,
      `--authentication-kubeconfig=${schedKubeconfig}`,
      `--authorization-kubeconfig=${schedKubeconfig}`,
      "--leader-elect=false",
      "--bind-address=127.0.0.1",
      `--secure-port=${schedPort}`,
      `--cert-dir=${join(dir, "scheduler-certs")}`,
      "--v=1",
    ]);

    const kubectl = (args: string[], opts: { input?: string; token?: string } = {}): Promise<string> => {
      const auth = opts.token ? [`--server=${server}`, `--certificate-authority=${caFile}`, `--token=${opts.token}`, "--kubeconfig=/dev/null"] : [`--kubeconfig=${kubeconfig}`];
      return run(built.bin("kubectl"), [...auth, ...args], { input: opts.input, env: { PATH: process.env.PATH, HOME: dir } });
    };

    // The controller manager is working once the serviceaccount controller has made `default`,
    // the scheduler once its own health endpoint answers.
    await waitFor("kube-controller-manager (default ServiceAccount)", 60_000, async () => {
      await kubectl(["get", "serviceaccount", "default", "-n", "default", "-o", "name"]);
      return true;
    });
    await waitFor("kube-scheduler /healthz", 60_000, async () => (await httpsStatus(`https://127.0.0.1:${schedPort}/healthz`, undefined)).status === 200);

    const caPem = readFileSync(caFile, "utf8");
    const caDer = new Uint8Array(readFileSync(join(pki, "ca.der")));
    log(`[controlplane] ready at ${server}`);

    return {
      server,
      host: loopback,
      port: apiPort,
      caPem,
      caDer,
      kubeconfig,
      dir,
      kubernetesVersion: built.kubernetesVersion,
      etcdVersion: built.etcdVersion,
      bin: built.bin,
      kubectl,
      stop,
      async restartApiServer(downMs = 0): Promise<void> {
        const i = started.findIndex((s) => s.name === "kube-apiserver");
        const { child } = started[i];
        started.splice(i, 1);
        const exited = new Promise<void>((r) => (child.exitCode !== null || child.signalCode !== null ? r() : child.once("exit", () => r())));
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
        await exited;
        clearTimeout(timer);
        await sleep(downMs);
        startComponent("kube-apiserver", apiserverArgs);
        await waitFor("kube-apiserver /readyz after a restart", 90_000, async () => (await httpsStatus(`${server}/readyz`, caPem)).status === 200);
      },
      nodeCredentials(name: string): NodeCredentials {
        const c = nodeTokens.get(name);
        if (!c) throw new Error(`control plane: no static token for node "${name}"; pass it in options.nodes at start`);
        return c;
      },
      async serviceAccountToken(name: string, durationSeconds = 24 * 3600): Promise<string> {
        await kubectl(["apply", "-f", "-"], { input: renderNodeRbac(name) });
        const token = (await kubectl(["create", "token", name, "-n", SERVICE_ACCOUNT_NAMESPACE, `--duration=${durationSeconds}s`])).trim();
        // A new admission policy takes effect asynchronously: wait until it refuses an impostor
        // (a server-side dry run, so nothing is created), or tests would race it.
        const impostor = JSON.stringify({ apiVersion: "v1", kind: "Node", metadata: { name: `${name}-policy-probe` } });
        for (const deadline = Date.now() + 30_000; ; await sleep(250)) {
          const refused = await kubectl(["create", "-f", "-", "--dry-run=server", "-o", "name"], { input: impostor, token }).then(
            () => false,
            (err: Error) => /may only create the Node and the Lease named after itself/.test(err.message),
          );
          if (refused) return token;
          if (Date.now() > deadline) throw new Error("control plane: the xs-kubelet admission policy did not take effect within 30 s");
        }
      },
    };
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
}

export const SERVICE_ACCOUNT_NAMESPACE = "xs-kubelet";


