// One real control plane per test run, started on first use and shared by every suite that needs it.
import { createPrivateKey } from "node:crypto";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { startControlPlane, type ControlPlane } from "../../tools/controlplane/launcher";
import { registerSecret } from "./secrets";

/** Node names that get a static system:node token; suites pick theirs from here. */
export const TEST_NODES = Array.from({ length: 32 }, (_, i) => `agent-${i + 1}`);
/** The fleet test's boards (tools/fleet: prefix "test-fleet"). */
export const FLEET_TEST_NODES = Array.from({ length: 5 }, (_, i) => `test-fleet-${i + 1}`);

/** Short, so lifecycle tests finish quickly, yet longer than the agent's 10 s renew interval. */
export const TEST_GRACE_SECONDS = 15;

let cluster: Promise<ControlPlane> | undefined;

export function sharedCluster(): Promise<ControlPlane> {
  cluster ??= startControlPlane({
    nodes: [...TEST_NODES, ...FLEET_TEST_NODES],
    nodeMonitorGracePeriodSeconds: TEST_GRACE_SECONDS,
    log: (line) => process.stderr.write(`      ${line}\n`),
  }).then(watchForSecrets);
  return cluster;
}

/** Every credential the control plane hands out is one the suite's log scan looks for. */
function watchForSecrets(cp: ControlPlane): ControlPlane {
  for (const n of [...TEST_NODES, ...FLEET_TEST_NODES]) registerSecret(cp.nodeCredentials(n).token, `the static token of ${n}`);
  const pki = join(cp.dir, "pki");
  for (const f of readdirSync(pki).filter((f) => f.endsWith(".key"))) {
    registerSecret(new Uint8Array(createPrivateKey(readFileSync(join(pki, f), "utf8")).export({ type: "pkcs8", format: "der" })), `the control plane's ${f}`);
  }
  const { serviceAccountToken, mintNodeCertificate, nodeServingCertificate } = cp;
  return Object.assign(cp, {
    serviceAccountToken: async (name: string, seconds?: number) => {
      const token = await serviceAccountToken(name, seconds);
      registerSecret(token, `the ServiceAccount token of ${name}`);
      return token;
    },
    mintNodeCertificate: async (name: string, opts: Parameters<ControlPlane["mintNodeCertificate"]>[1]) => {
      const issued = await mintNodeCertificate(name, opts);
      registerSecret(issued.key, `the key minted for ${name}`);
      return issued;
    },
    nodeServingCertificate: async (name: string, addresses: string[]) => {
      const issued = await nodeServingCertificate(name, addresses);
      registerSecret(issued.key, `the serving key of ${name}`);
      return issued;
    },
  });
}

/** For a suite's before(): the first call may build the control plane (minutes) and start it. */
export async function useCluster(ctx: Mocha.Context): Promise<ControlPlane> {
  ctx.timeout(0);
  return sharedCluster();
}

export async function stopSharedCluster(): Promise<void> {
  if (!cluster) return;
  const c = cluster;
  cluster = undefined;
  await (await c.catch(() => undefined))?.stop();
}
