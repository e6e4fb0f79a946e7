// Runs one scenario inside an xsnap worker and prints {reply, compute, allocate} as JSON; with
// --heap, instead measures the live slots of an agent left running (see tools/xs/entry.ts). A
// separate process, because @agoric/xsnap needs SES globals that must not leak into the mocha process.
import "@endo/init";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import { type } from "node:os";
import { xsnap } from "@agoric/xsnap";

const [bundleFile, name, mode] = process.argv.slice(2);
const replies: unknown[] = [];
const worker = await xsnap({
  os: type(),
  spawn: spawn as any,
  fs: { ...fs.promises, createReadStream: fs.createReadStream } as any,
  name: "xs-kubelet-core",
  stderr: "inherit",
  stdout: "inherit",
  handleCommand: async (message: Uint8Array) => {
    replies.push(JSON.parse(new TextDecoder().decode(message)));
    return new Uint8Array();
  },
});
try {
  await worker.evaluate(fs.readFileSync(bundleFile, "utf8"));
  if (mode === "--heap") {
    // Slots live after a collection, with the agent running, then after it stopped and was dropped.
    await worker.evaluate(`holdScenario(${JSON.stringify(name)})`);
    const constructed = (await worker.evaluate("gc()")).meterUsage.currentHeapCount;
    await worker.evaluate("startHeld()");
    const running = (await worker.evaluate("gc()")).meterUsage.currentHeapCount;
    await worker.evaluate("releaseScenario()");
    const stopped = (await worker.evaluate("gc()")).meterUsage.currentHeapCount;
    process.stdout.write(JSON.stringify({ replies, constructed, running, stopped }));
  } else {
    const { meterUsage } = await worker.evaluate(`runScenario(${JSON.stringify(name)})`);
    process.stdout.write(JSON.stringify({ replies, compute: meterUsage.compute, allocate: meterUsage.allocate }));
  }
} finally {
  await worker.close();
}
