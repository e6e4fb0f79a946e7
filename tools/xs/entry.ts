// Bundled (esbuild, IIFE) and evaluated inside the XS engine: runs a named scenario of the core and
// hands the result to the Node side through xsnap's synchronous issueCommand.
import { scenarios } from "../scenarios/index";

declare const issueCommand: (message: ArrayBuffer) => ArrayBuffer;

const send = (value: unknown) => issueCommand(new TextEncoder().encode(JSON.stringify(value)).buffer as ArrayBuffer);

(globalThis as any).runScenario = (name: string) => {
  const run = scenarios[name];
  if (!run) return send({ name, ok: false, error: `no scenario "${name}"` });
  run().then(
    (result) => send({ name, ok: true, result }),
    (error) => send({ name, ok: false, error: String(error && error.stack ? `${error.message}\n${error.stack}` : error) }),
  );
};
