// The agent's code as the fleet runs it: one esbuild bundle of the same sources (the core and the
// Node host, or the virtual host and the scripted API), built when a fleet starts and imported
// from there, instead of through tsx like the rest of the tooling.
//
// Why: tsx transforms every file with esbuild's keepNames, which wraps each function in a
// __name() call that redefines its `name` property. For a closure that redefinition gives the
// function object a property store of its own: 256 bytes more per closure instance, measured with
// node 20 (105 → 361 B each). The agent makes a few hundred closures per board, so under tsx the
// fleet's "agent memory per board" was ~20–28 KB of loader artifact that no build of the agent has
// (the firmware is compiled by tsc and xsc; names come from the source there). The bundle is the
// same TypeScript with the types stripped, nothing minified or renamed.
import { build } from "esbuild";
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { repoRoot } from "../controlplane/build";
import type * as Entry from "./agent-entry";

export type AgentCode = typeof Entry;

let loaded: Promise<AgentCode> | undefined;

/** The bundled agent code, built once per process (~0.2 s). */
export function agentCode(): Promise<AgentCode> {
  return (loaded ??= (async () => {
    const dir = join(repoRoot, ".cache", "fleet");
    mkdirSync(dir, { recursive: true });
    const out = join(dir, `agents-${process.pid}.mjs`);
    try {
      await build({
        entryPoints: [join(repoRoot, "tools", "fleet", "agent-entry.ts")],
        bundle: true,
        platform: "node",
        format: "esm",
        target: `node${process.versions.node}`,
        packages: "external",
        keepNames: false,
        outfile: out,
        logLevel: "warning",
      });
      return (await import(pathToFileURL(out).href)) as AgentCode;
    } finally {
      rmSync(out, { force: true }); // imported: the module stays loaded
    }
  })());
}
