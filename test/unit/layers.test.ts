// Imports run one way (modules/README.md): modules/ imports only modules/, and inside it the lower
// layers never import the reconcilers or the kubelet; hosts/ import modules/ (and hosts/); tools/
// import hosts/ and modules/; nothing but tests imports test/.
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { repoRoot } from "../../tools/controlplane/build";

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(repoRoot, dir))) {
    const path = join(dir, name);
    if (statSync(join(repoRoot, path)).isDirectory()) out.push(...sources(path));
    else if (/\.ts$/.test(name) && !/\.d\.ts$/.test(name)) out.push(path);
  }
  return out;
}

/** Every import specifier of a file: static, side-effect, re-export and dynamic. */
function specifiers(file: string): string[] {
  const text = readFileSync(join(repoRoot, file), "utf8");
  const found: string[] = [];
  for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+["']([^"']+)["']|(?:^|\n)\s*import\s+["']([^"']+)["']|\bimport\(\s*["']([^"']+)["']\s*\)/g)) {
    found.push(m[1] ?? m[2] ?? m[3]);
  }
  return found;
}

/** The repository-relative target of a relative import ("" for a package or built-in). */
function target(file: string, spec: string): string {
  return spec.startsWith(".") ? relative(repoRoot, resolve(repoRoot, dirname(file), spec)) : "";
}

const top = (path: string) => path.split("/")[0];
const HIGH = ["modules/reconcilers", "modules/kubelet"];
const within = (path: string, dir: string) => path === dir || path.startsWith(`${dir}/`);

function violations(file: string, specs = specifiers(file)): string[] {
  const out: string[] = [];
  for (const spec of specs) {
    const to = target(file, spec);
    const where = top(file);
    if (where === "modules") {
      if (!to) out.push(`${file} imports the package "${spec}": the core takes no packages and no built-ins`);
      else if (top(to) !== "modules") out.push(`${file} imports ${to}: the core imports only modules/`);
      else {
        const fromLayer = HIGH.findIndex((d) => within(file, d));
        const toLayer = HIGH.findIndex((d) => within(to, d));
        if (toLayer >= 0 && toLayer > fromLayer) out.push(`${file} imports ${to}: a lower layer imports a higher one`);
      }
    } else if (where === "hosts") {
      if (to && top(to) !== "modules" && top(to) !== "hosts") out.push(`${file} imports ${to}: hosts import only modules/ (and hosts/)`);
    } else if (where === "tools" || where === "deploy") {
      if (to && top(to) === "test") out.push(`${file} imports ${to}: only tests import test/`);
    }
  }
  return out;
}

describe("layers", () => {
  const files = ["modules", "hosts", "tools", "deploy"].flatMap(sources);

  it("finds the imports it checks", () => {
    // The scanner itself must see what it polices: a file known to import uphill is caught.
    assert.ok(files.length > 40, `${files.length} files`);
    assert.deepEqual(specifiers("modules/kubelet/kubelet.ts").filter((s) => s === "../reconcilers/lease"), ["../reconcilers/lease"]);
    assert.ok(specifiers("tools/start/start.ts").includes("../controlplane/launcher"), "dynamic imports are seen");
  });

  it("no import runs uphill", () => {
    const found = files.flatMap((f) => violations(f));
    assert.deepEqual(found, []);
  });

  it("would catch one that did", () => {
    // The rules on made-up edges, so a broken rule cannot pass silently.
    const caught = (file: string, spec: string) => violations(file, [spec]).length > 0;
    assert.ok(caught("modules/k8s/bodies.ts", "../kubelet/kubelet"));
    assert.ok(caught("modules/reconcilers/lease.ts", "../kubelet/health"));
    assert.ok(caught("modules/api/client.ts", "../../hosts/node/host"));
    assert.ok(caught("modules/api/client.ts", "node:tls"));
    assert.ok(caught("hosts/node/host.ts", "../../tools/controlplane/launcher"));
    assert.ok(caught("tools/bench/bench.ts", "../../test/scenarios/index"));
    assert.ok(!caught("modules/kubelet/kubelet.ts", "../reconcilers/lease"));
    assert.ok(!caught("modules/reconcilers/lease.ts", "../k8s/bodies"));
    assert.ok(!caught("tools/bench/bench.ts", "../../hosts/virtual/host"));
  });
});
