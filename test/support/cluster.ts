// One real control plane per test run, started on first use and shared by every suite that needs it.
import { startControlPlane, type ControlPlane } from "../../tools/controlplane/launcher";

/** Node names that get a static system:node token; suites pick theirs from here. */
export const TEST_NODES = Array.from({ length: 31 }, (_, i) => `agent-${i + 1}`);

/** Short, so lifecycle tests finish quickly, yet longer than the agent's 10 s renew interval. */
export const TEST_GRACE_SECONDS = 15;

let cluster: Promise<ControlPlane> | undefined;

export function sharedCluster(): Promise<ControlPlane> {
  cluster ??= startControlPlane({
    nodes: TEST_NODES,
    nodeMonitorGracePeriodSeconds: TEST_GRACE_SECONDS,
    log: (line) => process.stderr.write(`      ${line}\n`),
  });
  return cluster;
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
