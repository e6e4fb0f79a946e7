// The core inside the real XS engine (XS 13.3 via @agoric/xsnap), shared by test/xs and the bench:
// bundle the scenarios with esbuild into one IIFE, then run a named scenario in a fresh xsnap worker
// and read back its result and XS's deterministic meters.
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import type { ScenarioResult } from "../scenarios/index";

export interface XsReply {
  name: string;
  ok: boolean;
  result?: ScenarioResult;
  /** The scripted server's share of the compute meter (its work, not the agent's). */
  serverCompute?: number;
  error?: string;
}

export interface XsRun {
  reply: XsReply;
  /** XS's compute meter for the delivery (deterministic), and its allocation figure. */
  compute: number;
  allocate: number;
}

export interface XsBundle {
  run(name: string): Promise<XsRun>;
  /** Live XS slots: an agent constructed, running a minute in (connection and Node watch open), stopped and dropped. */
  heap(mode: "h2" | "http/1.1" | `h2+${number}pods`): Promise<{ constructed: number; running: number; stopped: number }>;
  /** Removes the bundle's temporary directory. */
  dispose(): void;
}

const here = (file: string) => fileURLToPath(new URL(file, import.meta.url));

/** Bundles an entry (a path relative to this directory) into one IIFE for XS, in a temporary directory. */
export async function bundleForXs(entry: string): Promise<{ file: string; dispose(): void }> {
  const out = await build({
    entryPoints: [here(entry)],
    bundle: true,
    format: "iife",
    platform: "neutral",
    target: "es2022", // keeps private fields, async/await and ?? as XS runs them natively
    write: false,
    logLevel: "silent",
  });
  const dir = mkdtempSync(join(tmpdir(), "xs-kubelet-xs-"));
  const file = join(dir, "core.js");
  writeFileSync(file, out.outputFiles[0].text);
  return { file, dispose: () => rmSync(dir, { recursive: true, force: true }) };
}

export async function bundleScenarios(): Promise<XsBundle> {
  const bundle = await bundleForXs("./entry.ts");
  const bundleFile = bundle.file;
  return {
    run: (name) =>
      new Promise((resolve, reject) => {
        // A separate process: @agoric/xsnap needs SES globals that must not leak into the caller.
        execFile(process.execPath, ["--import", "tsx", here("./driver.ts"), bundleFile, name], { maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
          if (err) return reject(new Error(`xsnap driver failed: ${stderr || err.message}`));
          const out = JSON.parse(stdout);
          if (out.replies.length !== 1) return reject(new Error(`scenario "${name}" did not finish inside one XS delivery`));
          resolve({ reply: out.replies[0], compute: out.compute, allocate: out.allocate });
        });
      }),
    heap: (http) =>
      new Promise((resolve, reject) => {
        execFile(process.execPath, ["--import", "tsx", here("./driver.ts"), bundleFile, http, "--heap"], (err, stdout, stderr) => {
          if (err) return reject(new Error(`xsnap driver failed: ${stderr || err.message}`));
          resolve(JSON.parse(stdout));
        });
      }),
    dispose: bundle.dispose,
  };
}
