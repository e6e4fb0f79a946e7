// Bundled (esbuild, IIFE) and evaluated inside the XS engine: runs a named scenario of the core and
// hands the result to the Node side, with the scripted server's share of XS's compute meter apart
// (channel.ts), so the bench can report the agent's own cost.
import { rig, type Rig } from "../scenarios/harness";
import { send, server } from "./channel";
import { scenarios } from "../scenarios/index";

(globalThis as any).runScenario = (name: string) => {
  const run = scenarios[name];
  if (!run) return send({ name, ok: false, error: `no scenario "${name}"` });
  server.compute = 0;
  run().then(
    (result) => send({ name, ok: true, result, serverCompute: server.compute }),
    (error) => send({ name, ok: false, error: String(error && error.stack ? `${error.message}\n${error.stack}` : error) }),
  );
};

// --heap: an agent left running for a minute (its connection and Node watch open), then stopped and
// dropped; the driver collects garbage in between and reads the live slots (tools/xs/driver.ts).
let held: Rig | undefined;
let heldPods = 0;
/** mode: "h2", "http/1.1", or "h2+<n>pods" (n hello pods running, a line a second, for the minute). */
(globalThis as any).holdScenario = (mode: string) => {
  const m = /\+(\d+)pods$/.exec(mode);
  heldPods = m ? Number(m[1]) : 0;
  // Room for them all (the board admits two), so every one runs; the same capacity in both counts.
  held = rig({ http: mode === "http/1.1" ? "http/1.1" : "h2", record: false, identity: { pods: 8 } });
};
(globalThis as any).startHeld = () => {
  const r = held!;
  r.kubelet.start();
  void r.time.advance(5_000).then(() => {
    for (let i = 0; i < heldPods; i++) {
      r.api.put("pods", { metadata: { name: `p${i}`, namespace: "default", uid: `uid-p${i}` }, spec: { nodeName: "board-1", containers: [{ name: "c", image: "xs-kubelet.dev/hello" }] }, status: { phase: "Pending" } });
    }
    return r.time.advance(55_000).then(() => {
      if (r.kubelet.pods.active !== heldPods) throw new Error(`${r.kubelet.pods.active} of ${heldPods} pods running`);
    });
  });
};
(globalThis as any).releaseScenario = () => {
  const r = held!;
  void r.kubelet.stop().then(() => {
    // The scripted API and virtual time stay (they are there in both counts); the agent goes.
    (r as { kubelet?: unknown }).kubelet = undefined;
  });
};
