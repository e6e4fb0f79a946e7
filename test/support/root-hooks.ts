import { stopSharedCluster } from "./cluster";
import { leaks, linesScanned, registerSecret, secretCount } from "./secrets";

// The scripted API's bearer token (tools/scenarios/harness.ts): a secret like any other.
registerSecret("t0ken", "the scripted bearer token");

export const mochaHooks = {
  async afterAll(this: Mocha.Context) {
    this.timeout(30_000);
    await stopSharedCluster();
    process.stderr.write(`      secrets: ${linesScanned.count} log lines scanned for ${secretCount()} registered secrets, ${leaks.length} found\n`);
    if (leaks.length) throw new Error(`secrets in the agent's log lines:\n${[...new Set(leaks)].join("\n")}`);
  },
};
