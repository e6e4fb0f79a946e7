// `npm run cluster`: a local, real Kubernetes control plane until Ctrl-C.
//   npm run cluster -- [--grace SECONDS] [--node NAME]... [--bind ADDRESS] [--san HOST]... [--metrics-server]
import { parseArgs } from "node:util";
import { startControlPlane } from "./launcher";

const { values } = parseArgs({
  options: {
    grace: { type: "string" },
    node: { type: "string", multiple: true },
    bind: { type: "string" },
    san: { type: "string", multiple: true },
    "metrics-server": { type: "boolean" },
    help: { type: "boolean", short: "h" },
  },
});
if (values.help) {
  console.log(`usage: npm run cluster -- [--grace SECONDS] [--node NAME]... [--bind ADDRESS] [--san HOST]... [--metrics-server]
  --grace   node-monitor-grace-period of the node lifecycle controller (default 50, as upstream)
  --node    mint a static system:node:<NAME> token for this node name (repeatable; default xs-node-1)
  --bind    address the API server listens on (default 127.0.0.1; a LAN address lets a board reach it)
  --san     extra name or IP in the serving certificate (repeatable)
  --metrics-server  also run metrics-server behind the APIService v1beta1.metrics.k8s.io (kubectl top node;
            built on first use, a few minutes)`);
  process.exit(0);
}
const grace = values.grace === undefined ? undefined : Number(values.grace);
if (grace !== undefined && !(Number.isInteger(grace) && grace > 2)) {
  console.error(`--grace must be a whole number of seconds above 2, got "${values.grace}"`);
  process.exit(2);
}

const nodes = values.node ?? ["xs-node-1"];
const cp = await startControlPlane({ nodes, nodeMonitorGracePeriodSeconds: grace, bindAddress: values.bind, extraSANs: values.san, metricsServer: values["metrics-server"] });
let stopping = false;
const shutdown = async (signal: string) => {
  if (stopping) return;
  stopping = true;
  console.log(`\n${signal}: stopping the control plane …`);
  await cp.stop();
  console.log("stopped; no process or port left behind");
  process.exit(0);
};
process.on("SIGINT", () => void shutdown("SIGINT"));
process.on("SIGTERM", () => void shutdown("SIGTERM"));

console.log(`
Kubernetes ${cp.kubernetesVersion} (etcd ${cp.etcdVersion}) is running at ${cp.server}

  kubeconfig:  ${cp.kubeconfig}
  cluster CA:  ${cp.dir}/pki/ca.crt (DER: ${cp.dir}/pki/ca.der)
  kubectl:     ${cp.bin("kubectl")}

Paste into another terminal:

  export KUBECONFIG=${cp.kubeconfig}
  alias kubectl=${cp.bin("kubectl")}
  kubectl get nodes -o wide

Node credentials (static bearer tokens, user system:node:<name>, group system:nodes):
${nodes.map((n) => `  ${n}: ${cp.nodeCredentials(n).token}`).join("\n")}

Ctrl-C stops everything.`);
