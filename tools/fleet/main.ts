// `npm run fleet -- --count N`: N simulated boards join a cluster from one Node.js process, and the
// summary says what they cost it. With no --kubeconfig it starts the local control plane; with one,
// it joins that cluster (a client certificate per board through the CSR API, approved with the
// kubeconfig's rights, and the settings RBAC of deploy/), so a user can load-test their own control
// plane before buying boards. --virtual runs the same agents on the virtual host against the
// scripted API in virtual time (tools/fleet/virtual.ts). Ctrl-C stops cleanly.
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { renderSettingsRbac } from "../../deploy/render";
import type { ControlPlane } from "../controlplane/launcher";
import { clusterRequest, fromKubeconfig } from "../kube/connection";
import { adminApi, applyNodeRbac, nodeClientCertificate } from "../provision/provision";
import { FLEET_COLUMNS, fleetNames, fleetRow, limiter, localTarget, runFleetStep, type FleetStep, type FleetTarget } from "./fleet";
import { table } from "../util/table";
import type { Kubelet } from "../../modules/kubelet/kubelet";
import type { CountingProxy } from "../bench/proxy";
import { apiServerReturn, RETURN_COLUMNS, returnRow, type ReturnResult } from "./return";

const USAGE = `usage: npm run fleet -- [options]
  --count N            boards (default 10)
  --sweep N,N,…        one step per count, on one control plane, until p99 lateness reaches 1 s
  --window SECONDS     steady-state window per step (default 60)
  --ramp N             boards started per second (default 40)
  --kubeconfig FILE    join this cluster instead of a local control plane (needs rights to
                       approve CSRs and to apply deploy/node-settings.yaml); Nodes are deleted
                       at the end unless --keep-nodes
  --prefix NAME        node names NAME-1 … NAME-N (default fleet)
  --restart-apiserver SECONDS
                       after each step's window, restart the local kube-apiserver (down SECONDS)
                       and measure the herd that meets it on its return (local control plane only)
  --virtual            virtual time and the scripted API instead (no cluster; --minutes M, default 10)
  --json FILE          write the steps as JSON too`;

const OPTIONS = {
  count: { type: "string", default: "10" },
  sweep: { type: "string" },
  window: { type: "string", default: "60" },
  ramp: { type: "string", default: "40" },
  kubeconfig: { type: "string" },
  prefix: { type: "string", default: "fleet" },
  "restart-apiserver": { type: "string" },
  "keep-nodes": { type: "boolean" },
  virtual: { type: "boolean" },
  minutes: { type: "string", default: "10" },
  json: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;
const { values } = (() => {
  try {
    return parseArgs({ options: OPTIONS });
  } catch (err) {
    console.error(`fleet: ${(err as Error).message}\n\n${USAGE}`);
    process.exit(2);
  }
})();
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}
const positive = (what: string, v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`fleet: ${what} must be a whole number above 0, got "${v}"\n\n${USAGE}`);
    process.exit(2);
  }
  return n;
};
const counts = (values.sweep ?? values.count!).split(",").map((v) => positive(values.sweep ? "--sweep" : "--count", v.trim()));
const log = (line: string) => console.log(`[fleet] ${line}`);
const restartDownMs = values["restart-apiserver"] === undefined ? undefined : positive("--restart-apiserver", values["restart-apiserver"]) * 1000;
if (restartDownMs !== undefined && values.kubeconfig) {
  console.error(`fleet: --restart-apiserver restarts the local control plane's kube-apiserver; it cannot be used with --kubeconfig\n\n${USAGE}`);
  process.exit(2);
}

if (values.virtual) {
  const { runVirtualFleet, VIRTUAL_COLUMNS, virtualRow } = await import("./virtual");
  const rows = [];
  for (const count of counts) rows.push(await runVirtualFleet({ count, minutes: positive("--minutes", values.minutes!), progress: log }));
  console.log(`\n${table(VIRTUAL_COLUMNS, rows.map(virtualRow))}`);
  if (values.json) writeFileSync(values.json, JSON.stringify(rows, null, 2));
  process.exit(0);
}

const abort = new AbortController();
process.on("SIGINT", () => {
  if (abort.signal.aborted) process.exit(130);
  log("stopping (Ctrl-C again to quit at once)");
  abort.abort();
});

let cp: ControlPlane | undefined;
let target: FleetTarget;
const max = Math.max(...counts);
const names = fleetNames(max, values.prefix);
if (values.kubeconfig) {
  const conn = fromKubeconfig(values.kubeconfig);
  const api = adminApi(conn);
  target = {
    conn,
    identity: async (name) => {
      await applyNodeRbac(api, name, renderSettingsRbac([name]));
      const issued = await nodeClientCertificate(api, name);
      return { clientCertificate: issued.certificate, clientKey: issued.key };
    },
  };
} else {
  const { startControlPlane } = await import("../controlplane/launcher");
  log(`starting the local control plane with ${max} node identities`);
  const started = Date.now();
  cp = await startControlPlane({ nodes: names, log: (l) => log(l) });
  log(`control plane ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  target = await localTarget(cp, names);
}

const steps: FleetStep[] = [];
const returns: ReturnResult[] = [];
try {
  for (const count of counts) {
    if (abort.signal.aborted) break;
    log(`— ${count} boards —`);
    const afterWindow = restartDownMs === undefined || !cp ? undefined : async (kubelets: Kubelet[], proxy: CountingProxy) => void returns.push(await apiServerReturn(cp!, kubelets, proxy, { downMs: restartDownMs, progress: log }));
    const step = await runFleetStep(target, { count, windowSeconds: positive("--window", values.window!), rampPerSecond: positive("--ramp", values.ramp!), prefix: values.prefix, progress: log, signal: abort.signal, afterWindow });
    steps.push(step);
    log(`${count} boards: lateness p99 ${step.latenessMs.p99} ms; busiest: ${limiter(step)}`);
    if (values.sweep && (step.latenessMs.p99 >= 1000 || step.readyAtEnd < step.count)) {
      log(`stopping the sweep: at ${count} boards ${step.latenessMs.p99 >= 1000 ? `p99 lateness is ${step.latenessMs.p99} ms` : `${step.count - step.readyAtEnd} boards are not renewing`}`);
      break;
    }
    await new Promise((r) => setTimeout(r, 3000));
  }
} finally {
  if (values.kubeconfig && !values["keep-nodes"]) {
    const conn = fromKubeconfig(values.kubeconfig);
    log(`deleting the fleet's Nodes (${values.prefix}-1 … ${values.prefix}-${max})`);
    for (const name of names) await clusterRequest(conn, "DELETE", `/api/v1/nodes/${name}`).catch(() => undefined);
  }
  await cp?.stop();
}

console.log(`\n${table(FLEET_COLUMNS, steps.map(fleetRow))}`);
if (returns.length) console.log(`\nkube-apiserver restarted after each window:\n${table(RETURN_COLUMNS, returns.map(returnRow))}`);
const under = steps.filter((s) => s.latenessMs.p99 < 1000 && s.readyAtEnd === s.count).map((s) => s.count);
console.log(`\nlargest fleet with p99 renewal lateness under 1 s: ${under.length ? Math.max(...under) : "none"} (${cp ? "local control plane, this machine" : values.kubeconfig})`);
if (values.json) writeFileSync(values.json, JSON.stringify(returns.length ? { steps, returns } : steps, null, 2));
process.exit(0);
