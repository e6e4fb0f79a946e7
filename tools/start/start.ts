// `npm start`: a simulated board joins a cluster and you watch it the way kubectl sees it.
// With no options it starts the local control plane (the embedded default); --kubeconfig or
// --server/--ca/--token join an existing cluster instead. Ctrl-C shuts down gracefully.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { repoRoot } from "../controlplane/build";
import { parseArgs } from "node:util";
import { ConfigError, Kubelet, configProblems, type KubeletOptions } from "../../modules/kubelet/kubelet";
import type { LogLevel } from "../../modules/host";
import { LED_MEANINGS } from "../../modules/led/patterns";
import { createNodeHost } from "../../hosts/node/host";
import type { ControlPlane } from "../controlplane/launcher";
import { clusterRequest, fromKubeconfig, parseServer, readCa, type ClusterConnection } from "../kube/connection";

const USAGE = `usage: npm start -- [options]
  (no options)              start a local Kubernetes control plane and join it
  --node NAME               node name (default xs-node-1)
  --kubeconfig FILE         join the cluster of this kubeconfig's current context
  --server URL --ca FILE (--token TOKEN | --token-file FILE)
                            join an existing cluster with a bearer token
  --server-name NAME        name to verify in the API server's certificate (default: the host)
  --grace SECONDS           local control plane: node-monitor-grace-period (default 50)
  --decommission            delete the Node on exit (its Lease goes with it)
  --insecure-skip-tls-verify  do not verify the API server (never do this outside a lab)
  --plain                   the agent alone: its log lines, no live view (and no requests of the view's own)`;

function fail(message: string): never {
  console.error(`xs-kubelet: ${message}\n\n${USAGE}`);
  process.exit(2);
}

let values: Record<string, string | boolean | undefined>;
try {
  ({ values } = parseArgs({
    options: {
      node: { type: "string", default: "xs-node-1" },
      kubeconfig: { type: "string" },
      server: { type: "string" },
      "server-name": { type: "string" },
      ca: { type: "string" },
      token: { type: "string" },
      "token-file": { type: "string" },
      grace: { type: "string" },
      decommission: { type: "boolean" },
      "insecure-skip-tls-verify": { type: "boolean" },
      plain: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  }));
} catch (err) {
  fail((err as Error).message);
}
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}
const nodeName = values.node as string;

let cluster: ControlPlane | undefined;
let conn: ClusterConnection;
try {
  if (values.kubeconfig) {
    conn = fromKubeconfig(values.kubeconfig as string);
  } else if (values.server) {
    if (!values.ca && !values["insecure-skip-tls-verify"]) fail("--server needs --ca (the cluster CA), or the explicit --insecure-skip-tls-verify");
    const token = values.token ?? (values["token-file"] ? readFileSync(values["token-file"] as string, "utf8").trim() : undefined);
    if (!token) fail("--server needs --token or --token-file");
    const { host, port } = parseServer(values.server as string);
    conn = { host, port, serverName: host, caDer: values.ca ? readCa(values.ca as string) : undefined, token: token as string, verify: true };
  } else {
    const problem = configProblems({ nodeName, server: { host: "127.0.0.1", port: 1 } })[0];
    if (problem) fail(problem);
    const { startControlPlane } = await import("../controlplane/launcher");
    const grace = values.grace === undefined ? undefined : Number(values.grace);
    if (grace !== undefined && !(grace > 2)) fail(`--grace must be a number of seconds above 2, got "${values.grace}"`);
    console.log("Starting a local Kubernetes control plane (the first run builds it from Go modules: minutes) …");
    cluster = await startControlPlane({ nodes: [nodeName], nodeMonitorGracePeriodSeconds: grace });
    conn = { host: cluster.host, port: cluster.port, serverName: cluster.host, caDer: cluster.caDer, token: cluster.nodeCredentials(nodeName).token, verify: true };
  }
} catch (err) {
  fail((err as Error).message);
}
if (values["server-name"]) conn.serverName = values["server-name"] as string;
if (values["insecure-skip-tls-verify"]) conn.verify = false;

// The live view keeps the last log lines; plain mode (or no terminal) prints them as they come and
// makes no request of its own: what reaches the API server is the agent's traffic only.
const live = !values.plain && process.stdout.isTTY;
const recent: string[] = [];
const log = (level: LogLevel, message: string) => {
  if (level === "debug" && !process.env.XS_KUBELET_DEBUG) return;
  const line = `${new Date().toISOString().slice(11, 19)} ${level.padEnd(5)} ${message}`;
  if (live) {
    recent.push(line);
    if (recent.length > 8) recent.shift();
  } else console.log(line);
};
let ledRgb: [number, number, number] = [0, 0, 0];
// The local control plane reaches the kubelet API through its node proxy, which refuses loopback
// node addresses: where this machine has another address, the agent listens on and advertises it.
const apiAddress = cluster ? (await import("../controlplane/launcher")).endpointAddress() : undefined;
// The last good settings and the device memory survive a restart, as on the board.
const host = createNodeHost({
  name: "node",
  log,
  showLed: (r, g, b) => (ledRgb = [r, g, b]),
  stateDir: join(repoRoot, ".cache", "state", nodeName),
  ...(apiAddress ? { listenAddress: apiAddress, network: () => ({ address: apiAddress }) } : {}),
});

const options: KubeletOptions = {
  nodeName,
  server: { host: conn.host, port: conn.port },
  tls: { serverName: conn.serverName, ca: conn.caDer, verify: conn.verify, clientCertificate: conn.clientCertificate, clientKey: conn.clientKey },
  token: conn.token,
  identity: { osImage: `xs-kubelet simulated board (Node.js ${process.version})` },
};
// The local control plane: the kubelet API too (kubectl logs, kubectl top), with a serving
// certificate from the CSR API. Joining another cluster: `npm run provision -- --serving` gets one.
if (cluster) {
  try {
    const serving = await cluster.nodeServingCertificate(nodeName, [apiAddress ?? "127.0.0.1", nodeName]);
    options.kubeletApi = { certificate: serving.certificate, key: serving.key, clientCa: cluster.caDer, port: 0 };
  } catch (err) {
    log("warn", `no kubelet API (kubectl logs will not work): ${(err as Error).message}`);
  }
}
let kubelet: Kubelet;
try {
  kubelet = new Kubelet(options, host);
} catch (err) {
  if (err instanceof ConfigError) {
    await cluster?.stop();
    fail(err.message);
  }
  throw err;
}
kubelet.start();

// What `kubectl get nodes -o wide` prints, from the API server's own Table rendering.
let table = "";
async function fetchTable(): Promise<void> {
  const res = await clusterRequest(conn, "GET", `/api/v1/nodes/${nodeName}`, { accept: "application/json;as=Table;v=v1;g=meta.k8s.io" }).catch(() => undefined);
  if (!res) return;
  if (res.status !== 200) return void (table = `(node not visible yet: HTTP ${res.status})`);
  const t = res.json;
  const cols: string[] = t.columnDefinitions.map((c: any) => c.name.toUpperCase().replace(/ /g, "-"));
  const rows: string[][] = [cols, ...t.rows.map((r: any) => r.cells.map(String))];
  const widths = cols.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  const next = rows.map((r) => r.map((c, i) => c.padEnd(widths[i])).join("   ").trimEnd()).join("\n");
  table = next;
}
const tableTimer = live ? setInterval(() => void fetchTable(), 2000) : undefined;

function render(): void {
  const s = kubelet.snapshot();
  const [r, g, b] = ledRgb;
  const scale = (v: number) => Math.min(255, Math.round((v / 38) * 255));
  const dot = `\x1b[38;2;${scale(r)};${scale(g)};${scale(b)}m●●\x1b[0m`;
  const ready = s.conditions.find((c) => c.type === "Ready");
  const mem = s.conditions.find((c) => c.type === "MemoryPressure");
  const out = [
    `\x1b[H\x1b[2J xs-kubelet — simulated Waveshare ESP32-S3-ETH   (Ctrl-C: graceful shutdown)`,
    "",
    `  LED ${dot}  ${s.led.padEnd(12)} ${LED_MEANINGS[s.led]}`,
    `  node ${s.nodeName}   phase ${s.phase}   server ${conn.host}:${conn.port}`,
    `  Lease renewals ${s.renewals} (last ${s.lastRenewTime || "—"})   status pushes ${s.statusPushes}   Ready ${ready?.status}   MemoryPressure ${mem?.status}`,
    `  wire: ${s.protocol}, ${s.bytesSent} B sent, ${s.bytesReceived} B received on ${s.connects} TLS connection(s)   pods running ${s.pods}`,
    s.lastError ? `  \x1b[33m${s.lastError}\x1b[0m` : "",
    "",
    "  $ kubectl get nodes -o wide",
    ...(table || "  (waiting for the node)").split("\n").map((l) => `  ${l}`),
    "",
    ...recent.map((l) => `  ${l}`),
  ];
  process.stdout.write(out.join("\n") + "\n");
}
const renderTimer = live ? setInterval(render, 250) : undefined;

if (cluster) {
  console.log(`\nIn another terminal:\n  export KUBECONFIG=${cluster.kubeconfig}\n  ${cluster.bin("kubectl")} get nodes -o wide\n  ${cluster.bin("kubectl")} apply -f deploy/examples/hello-pod.yaml && ${cluster.bin("kubectl")} logs -f hello\n`);
}

let stopping = false;
async function shutdown(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  if (tableTimer) clearInterval(tableTimer);
  if (renderTimer) clearInterval(renderTimer);
  console.log(`\n${signal}: shutting down gracefully …`);
  await kubelet.stop({ decommission: Boolean(values.decommission) });
  for (const line of recent.slice(-3)) console.log(line);
  await cluster?.stop();
  console.log("stopped");
  process.exit(0);
}
process.on("SIGINT", () => void shutdown("SIGINT"));
process.on("SIGTERM", () => void shutdown("SIGTERM"));
