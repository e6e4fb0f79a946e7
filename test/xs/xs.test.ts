// The core inside the real XS engine (XS 13.3 via @agoric/xsnap): the same scenarios as under Node,
// and the requests they produce must be identical, byte for byte. Also prints XS's deterministic
// compute meter per scenario, a noise-free cost figure for the core's work.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { build } from "esbuild";
import { scenarios, type ScenarioResult } from "../scenarios/index";

interface Reply {
  name: string;
  ok: boolean;
  result?: ScenarioResult;
  error?: string;
}

describe("the core inside the XS engine", function () {
  this.timeout(120_000);
  let bundleFile: string;
  let dir: string;
  before(async () => {
    const out = await build({
      entryPoints: [new URL("./entry.ts", import.meta.url).pathname],
      bundle: true,
      format: "iife",
      platform: "neutral",
      target: "es2022", // keeps private fields, async/await and ?? as XS runs them natively
      write: false,
      logLevel: "silent",
    });
    dir = mkdtempSync(join(tmpdir(), "xs-kubelet-xs-"));
    bundleFile = join(dir, "core.js");
    writeFileSync(bundleFile, out.outputFiles[0].text);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  function runInXs(name: string): Promise<{ reply: Reply; compute: number | null; allocate: number | null }> {
    const driver = new URL("./driver.ts", import.meta.url).pathname;
    return new Promise((resolve, reject) => {
      execFile(process.execPath, ["--import", "tsx", driver, bundleFile, name], { maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
        if (err) return reject(new Error(`xsnap driver failed: ${stderr || err.message}`));
        const out = JSON.parse(stdout);
        if (out.replies.length !== 1) return reject(new Error(`scenario "${name}" did not finish inside one XS delivery`));
        resolve({ reply: out.replies[0], compute: out.compute, allocate: out.allocate });
      });
    });
  }

  for (const name of Object.keys(scenarios)) {
    it(`${name}: same requests under XS and Node`, async () => {
      const node = await scenarios[name]();
      const xs = await runInXs(name);
      assert.ok(xs.reply.ok, xs.reply.error);
      const result = xs.reply.result!;
      assert.ok(node.requests.length > 5, "the scenario did something");
      assert.equal(result.requests.length, node.requests.length);
      for (let i = 0; i < node.requests.length; i++) assert.equal(result.requests[i], node.requests[i], `request ${i} differs`);
      assert.equal(result.renewals, node.renewals);
      assert.equal(result.led, node.led);
      const bytes = node.requests.reduce((n, r) => n + new TextEncoder().encode(r).length, 0);
      console.log(`      XS: ${node.requests.length} requests, ${bytes} bytes, compute meter ${xs.compute}, allocate ${xs.allocate}`);
    });
  }
});
