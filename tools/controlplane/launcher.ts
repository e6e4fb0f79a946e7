// Starts a real, throw-away Kubernetes control plane on 127.0.0.1: etcd, kube-apiserver (Node + RBAC
// authorization, NodeRestriction), kube-controller-manager (node lifecycle, service accounts, CSR
// signing/approval, garbage collection, …) and kube-scheduler, each on a free port in a temp dir;
// metrics-server behind the aggregation layer on request. kube-apiserver reaches kubelets the way
// kubeadm and k3s clusters do: verifying their serving certificates against the cluster CA, with a
// client certificate of its own, preferring InternalIP.
// Every process it starts dies with it: on stop(), on exit, on Ctrl-C, and even on SIGKILL (tether).
import { spawn, execFile, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { appendFileSync, createWriteStream, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { createServer } from "node:net";
import { request as httpsRequest } from "node:https";
import { networkInterfaces, tmpdir } from "node:os";
import { checkServerIdentity, type PeerCertificate } from "node:tls";
import { dirname, join } from "node:path";
import { renderNodeRbac, renderRotationRbac, renderSettingsRbac } from "../../deploy/render";
import { BUILDS_IN_USE_FILE, CONTROL_PLANE_DIR_PREFIX, ensureBuilt, type Built, type BinaryName } from "./build";
import type { MintOptions } from "./mint";

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
  /**
   * Also start metrics-server (built on first use) behind the APIService v1beta1.metrics.k8s.io, so
   * `kubectl top node` works for nodes that serve /metrics/resource. Same as startMetricsServer().
   */
  metricsServer?: boolean;
}

export interface MetricsServerOptions {
  /** Scrape only the nodes this label selector matches (metrics-server --node-selector); all nodes by default. */
  nodeSelector?: string;
}

export interface MetricsServer {
  /** Where metrics-server serves, as its Endpoints say: https://<address>:<port>. */
  url: string;
  /** A non-loopback address of this machine (Endpoints may not hold a loopback one). */
  address: string;
  port: number;
  version: string;
  nodeSelector?: string;
  /** The kubeconfig it runs with: the ServiceAccount kube-system/metrics-server, upstream's RBAC. */
  kubeconfig: string;
  logFile: string;
}

export interface ServingCertificate {
  /** DER */
  certificate: Uint8Array;
  /** PKCS#8 DER (RSA-2048) */
  key: Uint8Array;
  csrName: string;
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
  /** Path of a built binary (kubectl, …; metrics-server and promparse once startMetricsServer or ensureBuilt(…, ["metrics"]) built them). */
  bin(name: BinaryName): string;
  /**
   * A kubelet serving certificate for node `name` through the CSR API (signer
   * kubernetes.io/kubelet-serving), requested and approved as admin: RSA-2048, CN=system:node:<name>,
   * O=system:nodes, the addresses (IPs and DNS names) as SANs, signed by the cluster CA — what
   * kube-apiserver (--kubelet-certificate-authority) and metrics-server verify.
   */
  nodeServingCertificate(name: string, addresses: string[]): Promise<ServingCertificate>;
  /**
   * A node certificate signed straight with the cluster CA's key, for lifetimes shorter than the CSR
   * API's 10-minute minimum (tests of rotation): a client certificate, or a serving one with addresses.
   */
  mintNodeCertificate(name: string, options: MintOptions): Promise<{ certificate: Uint8Array; key: Uint8Array }>;
  /**
   * Starts metrics-server (idempotent; building it first if needed) and waits until the APIService
   * v1beta1.metrics.k8s.io is Available. Rejects when this machine has no non-loopback address.
   */
  startMetricsServer(options?: MetricsServerOptions): Promise<MetricsServer>;
  /** Removes the APIService (so discovery stays whole) and stops metrics-server. Idempotent. */
  stopMetricsServer(): Promise<void>;
  /** Stops every process, waits for them to exit, removes the temp dir. Idempotent. */
  stop(): Promise<void>;
  /**
   * Stops kube-apiserver gracefully (SIGTERM: it sends GOAWAY on its HTTP/2 connections and closes
   * them), waits downMs, starts it again on the same port, and waits for /readyz. With
   * newServingCertificate it comes back with a new serving certificate (new key, same CA and names).
   */
  restartApiServer(downMs?: number, options?: { newServingCertificate?: boolean }): Promise<void>;
  /** Stops etcd (SIGTERM), waits downMs, starts it again on its data and ports, and waits for its health. */
  restartEtcd(downMs?: number): Promise<void>;
  /** Process ids of the components running now (tether execs them, so these are etcd's, kube-apiserver's …): the fleet benchmark reads their CPU and memory. */
  pids(): Partial<Record<(typeof COMPONENTS)[number], number>>;
}

const COMPONENTS = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "metrics-server"] as const;

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
  // Jobs complete on boards (deploy/examples/job.yaml): the controller counts their pods' phases.
  "job-controller",
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

const DIR_PREFIX = CONTROL_PLANE_DIR_PREFIX;

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

/**
 * An address of this machine that an Endpoints object may hold (not loopback, link-local or
 * unspecified): kube-apiserver's aggregator dials it to reach metrics-server. IPv4 first.
 */
export function endpointAddress(): string | undefined {
  const all = Object.values(networkInterfaces()).flatMap((list) => list ?? []).filter((a) => !a.internal);
  const v4 = all.find((a) => a.family === "IPv4" && !a.address.startsWith("169.254.") && !a.address.startsWith("127."));
  const v6 = all.find((a) => a.family === "IPv6" && !/^fe[89ab]/i.test(a.address) && a.address !== "::1" && !a.address.startsWith("::ffff:"));
  return v4?.address ?? v6?.address;
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

/** GET url; with ca, the server must present a certificate of that CA for the URL's host, or for serverName when given. */
function httpsStatus(url: string, ca: string | undefined, timeoutMs = 2000, serverName?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const identity = serverName ? { servername: serverName, checkServerIdentity: (_host: string, cert: PeerCertificate) => checkServerIdentity(serverName, cert) } : {};
    const req = httpsRequest(url, { ca, rejectUnauthorized: ca !== undefined, timeout: timeoutMs, ...identity }, (res) => {
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
  // So that a rebuild in another process does not delete the binaries this control plane runs.
  writeFileSync(join(dir, BUILDS_IN_USE_FILE), `${built.binDir}\n`);
  const pki = join(dir, "pki");
  const logs = join(dir, "logs");
  mkdirSync(logs);
  const host = options.bindAddress ?? "127.0.0.1";
  // optional: a component whose death does not fail the control plane (metrics-server).
  const started: { name: string; child: ChildProcess; logFile: string; optional?: boolean }[] = [];
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

  const startComponent = (name: (typeof COMPONENTS)[number], args: string[], optional = false, binary = built.bin(name)): ChildProcess => {
    const logFile = join(logs, `${name}.log`);
    const out = createWriteStream(logFile);
    // tether makes the component die with this process even when this process is SIGKILLed.
    const child = spawn(built.bin("tether"), [binary, ...args], {
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
    started.push({ name, child, logFile, optional });
    return child;
  };

  const isDead = (s: { child: ChildProcess }) => s.child.exitCode !== null || s.child.signalCode !== null;
  /** SIGTERM (as a service manager stops it), downMs, then the same command again, in its place in the stop order. */
  const restartComponent = async (name: (typeof COMPONENTS)[number], args: string[], downMs: number, between?: () => Promise<void>): Promise<void> => {
    const i = started.findIndex((s) => s.name === name);
    const { child } = started[i];
    const exited = new Promise<void>((r) => (isDead(started[i]) ? r() : child.once("exit", () => r())));
    child.kill("SIGTERM");
    // kube-apiserver 1.33 does its graceful part (GOAWAY, listener closed, requests drained) within
    // a second of SIGTERM, logs "apiserver is exiting", and then here never exits (parked on a
    // futex); a service manager would kill it in the end, and so do we, sooner.
    const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(timer);
    await sleep(downMs);
    await between?.();
    startComponent(name, args);
    started.splice(i, 1, started.pop()!);
  };
  const fail = async (what: string): Promise<never> => {
    const dead = started.find((s) => !s.optional && isDead(s));
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
      if (started.some((s) => !s.optional && isDead(s))) return fail(`${what} never happened`);
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

    const etcdArgs = [
      "--name=xs-kubelet",
      `--data-dir=${join(dir, "etcd")}`,
      `--listen-client-urls=http://127.0.0.1:${etcdClient}`,
      `--advertise-client-urls=http://127.0.0.1:${etcdClient}`,
      `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-cluster=xs-kubelet=http://127.0.0.1:${etcdPeer}`,
      "--unsafe-no-fsync", // throw-away data: durability only costs time here
      "--log-level=warn",
    ];
    startComponent("etcd", etcdArgs);
    const etcdHealthy = async () => (await fetch(`http://127.0.0.1:${etcdClient}/health`, { signal: AbortSignal.timeout(2000) })).ok;
    await waitFor("etcd health", 30_000, etcdHealthy);

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
      // Towards kubelets (logs, exec, nodes/<n>/proxy) as kubeadm and k3s set it up: verify the
      // node's serving certificate (kubernetes.io/kubelet-serving, signed with this CA) and present
      // a system:masters client certificate; InternalIP first, as k3s orders it.
      `--kubelet-certificate-authority=${caFile}`,
      `--kubelet-client-certificate=${join(pki, "apiserver-kubelet-client.crt")}`,
      `--kubelet-client-key=${join(pki, "apiserver-kubelet-client.key")}`,
      "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
      // The aggregation layer (metrics-server's APIService), as kubeadm configures it, plus endpoint
      // routing: there is no kube-proxy to carry a ClusterIP.
      `--requestheader-client-ca-file=${join(pki, "front-proxy-ca.crt")}`,
      "--requestheader-allowed-names=front-proxy-client",
      "--requestheader-extra-headers-prefix=X-Remote-Extra-",
      "--requestheader-group-headers=X-Remote-Group",
      "--requestheader-username-headers=X-Remote-User",
      `--proxy-client-cert-file=${join(pki, "front-proxy-client.crt")}`,
      `--proxy-client-key-file=${join(pki, "front-proxy-client.key")}`,
      "--enable-aggregator-routing=true",
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
    // The nodes' settings ConfigMaps (deploy/node-settings.yaml), as `npm run provision` grants them.
    // Thousands of nodes (a fleet) mean thousands of objects, one request each: four kubectl at once, 250 nodes apiece.
    const nodes = options.nodes ?? [];
    const chunks = Array.from({ length: Math.ceil(nodes.length / 250) }, (_, i) => nodes.slice(i * 250, (i + 1) * 250));
    if (chunks.length) await kubectl(["apply", "-f", "-"], { input: renderSettingsRbac(chunks.shift()!) });
    for (let i = 0; i < chunks.length; i += 4) await Promise.all(chunks.slice(i, i + 4).map((c) => kubectl(["apply", "-f", "-"], { input: renderSettingsRbac(c) })));
    // Nodes renew their own client certificates (deploy/node-cert-rotation.yaml), as on kubeadm clusters.
    await kubectl(["apply", "-f", "-"], { input: renderRotationRbac() });

    const caPem = readFileSync(caFile, "utf8");
    const caDer = new Uint8Array(readFileSync(join(pki, "ca.der")));

    let metricsServer: Promise<MetricsServer> | undefined;
    const stopMetricsServer = async (): Promise<void> => {
      const running = metricsServer;
      metricsServer = undefined;
      if (!running) return;
      await running.catch(() => undefined);
      // The APIService first: an unavailable aggregated API stalls namespace deletion and the
      // garbage collector's discovery.
      await kubectl(["delete", "apiservice", "v1beta1.metrics.k8s.io", "--ignore-not-found"]).catch(() => undefined);
      await kubectl(["delete", "-n", "kube-system", "service/metrics-server", "endpoints/metrics-server", "--ignore-not-found"]).catch(() => undefined);
      const i = started.findIndex((s) => s.name === "metrics-server");
      if (i < 0) return;
      const [{ child }] = started.splice(i, 1);
      if (isDead({ child })) return;
      const exited = new Promise<void>((r) => child.once("exit", () => r()));
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(timer);
      live.delete(child);
    };
    const launchMetricsServer = async (opts: MetricsServerOptions): Promise<MetricsServer> => {
      const address = endpointAddress();
      if (!address) {
        throw new Error("control plane: metrics-server needs a non-loopback address of this machine for its Endpoints (the API rejects loopback, link-local and unspecified endpoint IPs), and none was found");
      }
      const metricsBuilt = await ensureBuilt(log, ["metrics"]);
      appendFileSync(join(dir, BUILDS_IN_USE_FILE), `${dirname(metricsBuilt.bin("metrics-server"))}\n`);
      const port = await freePort(address);
      const manifest = readFileSync(new URL("./metrics/metrics-server.yaml", import.meta.url), "utf8")
        .replaceAll("ENDPOINT_IP", address)
        .replaceAll("ENDPOINT_PORT", String(port))
        .replaceAll("CA_BUNDLE", Buffer.from(caPem).toString("base64"));
      const docs = manifest.split(/^---$/m);
      const apiService = docs.filter((d) => /^kind: APIService$/m.test(d));
      // RBAC, ServiceAccount, Service and Endpoints now; the APIService once metrics-server answers.
      await kubectl(["apply", "-f", "-"], { input: docs.filter((d) => !apiService.includes(d)).join("---") });
      const token = (await kubectl(["create", "token", "metrics-server", "-n", "kube-system", "--duration=8760h"])).trim();
      const msKubeconfig = join(dir, "metrics-server.kubeconfig");
      writeFileSync(msKubeconfig, kubeconfigYaml(server, caFile, { token }), { mode: 0o600 });
      log(`[controlplane] starting metrics-server ${metricsBuilt.metricsServerVersion} at https://${address.includes(":") ? `[${address}]` : address}:${port}`);
      const child = startComponent(
        "metrics-server",
        [
          `--secure-port=${port}`,
          `--bind-address=${address}`,
          `--tls-cert-file=${join(pki, "metrics-server.crt")}`,
          `--tls-private-key-file=${join(pki, "metrics-server.key")}`,
          `--cert-dir=${join(dir, "metrics-server-certs")}`,
          `--kubeconfig=${msKubeconfig}`,
          `--authentication-kubeconfig=${msKubeconfig}`,
          `--authorization-kubeconfig=${msKubeconfig}`,
          "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
          "--kubelet-use-node-status-port", // the node's daemonEndpoints port, as upstream's manifest says
          `--kubelet-certificate-authority=${caFile}`,
          "--kubelet-request-timeout=5s",
          "--metric-resolution=10s",
          ...(opts.nodeSelector ? [`--node-selector=${opts.nodeSelector}`] : []),
          "--v=1",
        ],
        true,
        metricsBuilt.bin("metrics-server"),
      );
      const entry = started.find((s) => s.child === child)!;
      const url = `https://${address.includes(":") ? `[${address}]` : address}:${port}`;
      const waitMs = async (what: string, timeoutMs: number, probe: () => Promise<boolean>): Promise<void> => {
        for (const deadline = Date.now() + timeoutMs; ; await sleep(250)) {
          if (isDead(entry)) throw new Error(`control plane: metrics-server exited (${child.signalCode ?? `code ${child.exitCode}`}) before ${what}; last lines of its log:\n${tail(entry.logFile)}`);
          if (await probe().catch(() => false)) return;
          if (Date.now() > deadline) throw new Error(`control plane: timed out after ${timeoutMs / 1000}s waiting for ${what}; last lines of metrics-server's log:\n${tail(entry.logFile)}`);
        }
      };
      // As the aggregator checks it: the cluster CA, the name metrics-server.kube-system.svc.
      await waitMs("metrics-server /livez", 60_000, async () => (await httpsStatus(`${url}/livez`, caPem, 2000, "metrics-server.kube-system.svc")).status === 200);
      await kubectl(["apply", "-f", "-"], { input: apiService.join("---") });
      await waitMs("APIService v1beta1.metrics.k8s.io Available", 60_000, async () => {
        const status = await kubectl(["get", "apiservice", "v1beta1.metrics.k8s.io", "-o", "jsonpath={.status.conditions[?(@.type==\"Available\")].status}"]);
        return status.trim() === "True";
      });
      log(`[controlplane] metrics-server ready: APIService v1beta1.metrics.k8s.io is Available`);
      return { url, address, port, version: metricsBuilt.metricsServerVersion, nodeSelector: opts.nodeSelector, kubeconfig: msKubeconfig, logFile: entry.logFile };
    };
    const startMetricsServer = async (opts: MetricsServerOptions = {}): Promise<MetricsServer> => {
      if (metricsServer) {
        const running = await metricsServer;
        if ((running.nodeSelector ?? "") !== (opts.nodeSelector ?? "")) {
          throw new Error(`control plane: metrics-server already runs with node selector "${running.nodeSelector ?? ""}"; stopMetricsServer() first`);
        }
        return running;
      }
      const starting = launchMetricsServer(opts);
      metricsServer = starting;
      try {
        return await starting;
      } catch (err) {
        await stopMetricsServer().catch(() => undefined);
        throw err;
      }
    };
    if (options.metricsServer) await startMetricsServer();
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
      startMetricsServer,
      stopMetricsServer,
      async nodeServingCertificate(name: string, addresses: string[]): Promise<ServingCertificate> {
        const [{ nodeServingCertificate }, { fromKubeconfig }] = await Promise.all([import("../provision/provision"), import("../kube/connection")]);
        const { certificate, key, csrName } = await nodeServingCertificate(fromKubeconfig(kubeconfig), name, { addresses });
        return { certificate, key, csrName };
      },
      async mintNodeCertificate(name, opts) {
        const { mintNodeCertificate } = await import("./mint");
        return mintNodeCertificate(pki, name, opts);
      },
      pids() {
        const out: Partial<Record<(typeof COMPONENTS)[number], number>> = {};
        for (const s of started) if (!isDead(s) && s.child.pid !== undefined) out[s.name as (typeof COMPONENTS)[number]] = s.child.pid;
        return out;
      },
      async restartApiServer(downMs = 0, restartOptions: { newServingCertificate?: boolean } = {}): Promise<void> {
        await restartComponent("kube-apiserver", apiserverArgs, downMs, async () => {
          if (restartOptions.newServingCertificate) await (await import("./mint")).reissueServingCertificate(pki, sans);
        });
        await waitFor("kube-apiserver /readyz after a restart", 90_000, async () => (await httpsStatus(`${server}/readyz`, caPem)).status === 200);
      },
      async restartEtcd(downMs = 0): Promise<void> {
        await restartComponent("etcd", etcdArgs, downMs);
        await waitFor("etcd health after a restart", 30_000, etcdHealthy);
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


