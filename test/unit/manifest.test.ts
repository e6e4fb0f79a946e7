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

  it("the board build turns on the ESP32-S3R8's octal PSRAM (the XS heaps it is given need it), and each platform names its XS slot size", () => {
    const board = manifest.platforms["esp32/esp32s3"];
    const dir = board.build.SDKCONFIGPATH as string;
    assert.match(dir, /^\.\//);
    const lines = readFileSync(join(repoRoot, dir, "sdkconfig.defaults"), "utf8").split("\n");
    for (const line of ["CONFIG_SPIRAM=y", "CONFIG_SPIRAM_MODE_OCT=y", "CONFIG_SPIRAM_MODE_QUAD=n", "CONFIG_SPIRAM_IGNORE_NOTFOUND=n"]) assert.ok(lines.includes(line), line);
    // 256 KiB of chunks and 16384 slots of 16 bytes: more than the S3's 512 KB of internal SRAM can spare.
    const { chunk, heap } = board.creation;
    assert.ok(chunk.initial + heap.initial * board.config.xsSlotSize > 320 * 1024);
    assert.equal(board.config.xsSlotSize, 16);
    for (const sim of ["lin", "mac", "win"]) assert.equal(manifest.platforms[sim].config.xsSlotSize, 32, sim);
  });
});
