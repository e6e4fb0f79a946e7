// The firmware manifest maps every directory of the core and preloads every core module into flash
// (their bytecode and frozen objects then cost no RAM). mcconfig's preload wildcards match only .js
// files, so each TypeScript module is named: this keeps the list whole as the core grows.
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { repoRoot } from "../../tools/controlplane/build";

function coreModules(dir = "modules"): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(repoRoot, dir))) {
    const path = `${dir}/${name}`;
    if (statSync(join(repoRoot, path)).isDirectory()) out.push(...coreModules(path));
    else if (name.endsWith(".ts") && !name.endsWith(".d.ts")) out.push(path.slice(0, -3));
  }
  return out;
}

describe("manifest.json", () => {
  const manifest = JSON.parse(readFileSync(join(repoRoot, "manifest.json"), "utf8"));

  it("preloads every core module, and only those that exist", () => {
    const expected = coreModules().map((m) => `xs-kubelet/${m}`).sort();
    assert.deepEqual([...manifest.preload].sort(), expected);
  });

  it("maps every directory of the core", () => {
    const dirs = [...new Set(coreModules().map((m) => m.slice(0, m.lastIndexOf("/"))))];
    for (const dir of dirs) assert.equal(manifest.modules[`xs-kubelet/${dir}/*`], `./${dir}/*`, `no mapping for ${dir}`);
  });
});
