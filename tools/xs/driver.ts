// Runs one scenario inside an xsnap worker and prints {reply, compute, allocate} as JSON. A separate
// process, because @agoric/xsnap needs SES globals that must not leak into the mocha process.
import "@endo/init";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import { type } from "node:os";
import { xsnap } from "@agoric/xsnap";

const [bundleFile, name] = process.argv.slice(2);
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
  const { meterUsage } = await worker.evaluate(`runScenario(${JSON.stringify(name)})`);
  process.stdout.write(JSON.stringify({ replies, compute: meterUsage.compute, allocate: meterUsage.allocate }));
} finally {
  await worker.close();
}
