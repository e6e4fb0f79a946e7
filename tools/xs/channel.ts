// What both XS entries (entry.ts, soak-entry.ts) share: the reply to the Node side, through xsnap's
// synchronous issueCommand, and the scripted server's share of XS's compute meter, counted apart
// (xsnap's resetMeter reads the meter) so the agent's own cost can be reported.
import { meterServer } from "../scenarios/harness";

declare const issueCommand: (message: ArrayBuffer) => ArrayBuffer;
declare const resetMeter: ((limit: number, index: number) => number) | undefined;
declare const currentMeterLimit: (() => number) | undefined;

export const send = (value: unknown) => issueCommand(new TextEncoder().encode(JSON.stringify(value)).buffer as ArrayBuffer);

/** Meter units the scripted server used since the entry last set compute to 0. */
export const server = { compute: 0 };

if (typeof resetMeter === "function" && typeof currentMeterLimit === "function") {
  const read = () => {
    const limit = currentMeterLimit();
    const index = resetMeter(limit, 0);
    resetMeter(limit, index);
    return index;
  };
  meterServer((work) => {
    const before = read();
    try {
      return work();
    } finally {
      server.compute += read() - before;
    }
  });
}
