// The wire benchmark: Lease-renewing clients side by side, in one run, against one real control
// plane, each behind its own counting proxy. Bytes are TLS bytes (handshakes and records included),
// both directions, per renewal in steady state; "TLS handshakes" are connections the proxy accepted
// inside the steady-state window.
import type { Kubelet } from "../../modules/kubelet/kubelet";
import { startControlPlane, type ControlPlane } from "../controlplane/launcher";
import { picokubeletStyle, referenceH2, withTwoWatches, xsKubelet, type Run, type SteadyState } from "./clients";
import { startCountingProxy, type CountingProxy } from "./proxy";

type Report = (what: string, value: number, unit: string, max?: number) => void;

const CLIENTS = {
  pico: { node: "bench-pico", label: "picokubelet-style (TLS per request, full Lease)" },
  h1: { node: "bench-xs-h1", label: "xs-kubelet HTTP/1.1" },
  h2: { node: "bench-xs-h2", label: "xs-kubelet h2" },
  h2json: { node: "bench-xs-h2-json", label: "xs-kubelet h2, JSON echoes" },
  h1json: { node: "bench-xs-h1-json", label: "xs-kubelet HTTP/1.1, JSON echoes" },
  ref: { node: "bench-ref-h2", label: "reference node:http2 client" },
} as const;
type Client = keyof typeof CLIENTS;

export async function wireBenchmark(report: Report, options: { renewals?: number } = {}): Promise<void> {
  const progress = (line: string) => console.log(`[wire] ${line}`);
  const run: Run = { renewals: options.renewals ?? 20, warmup: 2, cadenceMs: 1000, progress };
  const results = new Map<Client, SteadyState | Error>();
  const proxies: CountingProxy[] = [];
  const watching = new Map<"h1" | "h2", SteadyState | Error>();
  let cp: ControlPlane | undefined;
  try {
    progress("starting the control plane (~10 s)");
    cp = await startControlPlane({ nodes: Object.values(CLIENTS).map((c) => c.node), log: (line) => progress(line) });
    const target = { host: cp.host, port: cp.port };
    const proxy: Record<Client, CountingProxy> = {
      pico: await startCountingProxy(target),
      h1: await startCountingProxy(target),
      h2: await startCountingProxy(target),
      h2json: await startCountingProxy(target),
      h1json: await startCountingProxy(target),
      ref: await startCountingProxy(target),
    };
    proxies.push(...Object.values(proxy));
    progress(`${Object.keys(CLIENTS).length} clients renewing ${run.warmup} + ${run.renewals} times each, ~${run.cadenceMs / 1000} s apart (~${Math.round(((run.warmup + run.renewals) * run.cadenceMs) / 1000) + 5} s)`);
    const c = cp;
    // After its steady state, each kubelet is measured again with two watches open.
    const thenTwoWatches = (k: "h1" | "h2") => (kubelet: Kubelet) =>
      withTwoWatches(kubelet, proxy[k], run).then(
        (s) => void watching.set(k, s),
        (err: Error) => void watching.set(k, err),
      );
    const runs: Record<Client, () => Promise<SteadyState>> = {
      pico: () => picokubeletStyle(c, proxy.pico, CLIENTS.pico.node, run),
      h1: () => xsKubelet(c, proxy.h1, CLIENTS.h1.node, "http/1.1", run, thenTwoWatches("h1")),
      h2: () => xsKubelet(c, proxy.h2, CLIENTS.h2.node, "h2", run, thenTwoWatches("h2")),
      // Does asking for protobuf echoes pay? The same agents with JSON echoes, in the same run.
      h2json: () => xsKubelet(c, proxy.h2json, CLIENTS.h2json.node, "h2", run, undefined, { protobufEchoes: false }),
      h1json: () => xsKubelet(c, proxy.h1json, CLIENTS.h1json.node, "http/1.1", run, undefined, { protobufEchoes: false }),
      ref: () => referenceH2(c, proxy.ref, CLIENTS.ref.node, run),
    };
    // Each settles on its own: one client failing must not leave the others running into the cleanup below.
    await Promise.all(
      (Object.keys(runs) as Client[]).map((k) =>
        runs[k]().then(
          (s) => {
            results.set(k, s);
            progress(`${CLIENTS[k].label}: done`);
          },
          (err: Error) => {
            results.set(k, err);
            progress(`${CLIENTS[k].label}: FAILED: ${err.message}`);
          },
        ),
      ),
    );
  } catch (err) {
    progress(`FAILED: ${(err as Error).message}`);
  } finally {
    for (const p of proxies) await p.close();
    await cp?.stop();
    progress("control plane stopped");
  }

  // NaN for a client that failed (or never ran): its lines print FAIL wherever a target applies.
  const ok = (k: Client) => {
    const r = results.get(k);
    return r && !(r instanceof Error) ? r : undefined;
  };
  const perRenewal = (k: Client) => {
    const r = ok(k);
    return r ? (r.up + r.down) / r.renewals : NaN;
  };
  for (const k of Object.keys(CLIENTS) as Client[]) {
    const r = ok(k);
    if (r) progress(`${CLIENTS[k].label.padEnd(48)} ${r.renewals} renewals: ${r.up} B up, ${r.down} B down, ${r.connections} connections accepted, ${r.open} open at the end${r.statusPushes ? `, ${r.statusPushes} status pushes in the window` : ""}`);
  }
  for (const k of Object.keys(CLIENTS) as Client[]) report(`wire: ${CLIENTS[k].label}, bytes per renewal (TLS incl., both ways)`, perRenewal(k), "bytes");
  for (const k of Object.keys(CLIENTS) as Client[]) {
    const xs = k !== "pico" && k !== "ref";
    report(`wire: ${CLIENTS[k].label}, TLS handshakes in steady state`, ok(k)?.connections ?? NaN, `in ${ok(k)?.renewals ?? "?"} renewals`, xs ? 0 : undefined);
  }
  // Rounded up, so a ratio just above its target cannot round down into a pass.
  const percent = (a: number, b: number) => Math.ceil((100 * a) / b);
  report("wire: xs-kubelet h2 / picokubelet-style", percent(perRenewal("h2"), perRenewal("pico")), "%", 25);
  report("wire: xs-kubelet h2 / reference node:http2", percent(perRenewal("h2"), perRenewal("ref")), "%", 110);
  report("wire: xs-kubelet HTTP/1.1 / picokubelet-style", percent(perRenewal("h1"), perRenewal("pico")), "%");
  // Kept only because it pays: protobuf echoes must cost less than JSON ones, per renewal, both ways.
  report("wire: xs-kubelet h2, protobuf echoes / JSON echoes", percent(perRenewal("h2"), perRenewal("h2json")), "%", 99);
  report("wire: xs-kubelet HTTP/1.1, protobuf echoes / JSON echoes", percent(perRenewal("h1"), perRenewal("h1json")), "%", 99);
  for (const k of ["h1", "h2"] as const) {
    const w = watching.get(k);
    if (w instanceof Error) progress(`${CLIENTS[k].label} with two watches: FAILED: ${w.message}`);
    const m = w && !(w instanceof Error) ? w : undefined;
    // Over h2 everything shares one connection; over HTTP/1.1 each watch has its own (shown, not checked).
    report(`wire: ${CLIENTS[k].label}, TLS connections open with two watches`, m?.open ?? NaN, "connections", k === "h2" ? 1 : undefined);
    report(`wire: ${CLIENTS[k].label}, TLS handshakes with two watches open`, m?.connections ?? NaN, `in ${m?.renewals ?? "?"} renewals`, k === "h2" ? 0 : undefined);
  }
}
