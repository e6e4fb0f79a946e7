// The wire benchmark: Lease-renewing clients side by side, in one run, against one real control
// plane, each behind its own counting proxy. Bytes are TLS bytes (handshakes and records included),
// both directions, per renewal in steady state; "TLS handshakes" are connections the proxy accepted
// inside the steady-state window.
import type { ControlPlane } from "../controlplane/launcher";
import { picokubeletStyle, referenceH2, statusPushBytes, withTwoWatches, xsKubelet, type Credential, type Run, type Running, type SteadyState } from "./clients";
import { startCountingProxy, type CountingProxy } from "./proxy";

type Report = (what: string, value: number, unit: string, max?: number) => void;

type Kind = "pico" | "h1" | "h2" | "ref" | "h2json" | "h1json";
type Cred = "jwt" | "cert";
const KINDS: Record<Kind, string> = {
  pico: "picokubelet-style (TLS per request, full Lease)",
  h1: "xs-kubelet HTTP/1.1",
  h2: "xs-kubelet h2",
  ref: "reference node:http2 client",
  h2json: "xs-kubelet h2, JSON echoes",
  h1json: "xs-kubelet HTTP/1.1, JSON echoes",
};
const CREDS: Record<Cred, string> = { jwt: "ServiceAccount token", cert: "client certificate" };
/** Every client with both credentials; the JSON-echo comparison with the token only. */
const CLIENTS: { kind: Kind; cred: Cred; node: string; label: string }[] = (["jwt", "cert"] as Cred[]).flatMap((cred) =>
  (Object.keys(KINDS) as Kind[]).filter((kind) => cred === "jwt" || !kind.endsWith("json")).map((kind) => ({ kind, cred, node: `bench-${kind}-${cred}`, label: `${KINDS[kind]}, ${CREDS[cred]}` })),
);
/** Node names the benchmark needs static tokens for (registration of the hand-made clients). */
export const WIRE_NODES = CLIENTS.map((c) => c.node);

export interface WireResult {
  /** Bytes both ways per Lease renewal in steady state, TLS included, per client and credential. */
  renewalBytes: Record<Cred, Partial<Record<Kind, number>>>;
  /** TLS connections accepted in the steady-state window, and its length. */
  handshakes: Record<Cred, Partial<Record<Kind, { connections: number; seconds: number }>>>;
  /** The ServiceAccount token's length: what every request of a token client carries. */
  tokenBytes: number;
  withTwoWatches: Partial<Record<"h1" | "h2", { open: number; connections: number; renewals: number }>>;
  /** Bytes up and down per Node status push (its watch echo and Event included), xs-kubelet h2 and HTTP/1.1. */
  statusPushBytes: Record<Cred, Partial<Record<"h1" | "h2", { up: number; down: number; pushes: number }>>>;
}

export async function wireBenchmark(cp: ControlPlane, report: Report, options: { renewals?: number } = {}): Promise<WireResult> {
  const progress = (line: string) => console.log(`[wire] ${line}`);
  const run: Run = { renewals: options.renewals ?? 20, warmup: 2, cadenceMs: 1000, progress };
  const results = new Map<string, { s: SteadyState; seconds: number } | Error>();
  const proxies: CountingProxy[] = [];
  const watching = new Map<"h1" | "h2", SteadyState | Error>();
  const pushing = new Map<string, { up: number; down: number; pushes: number } | Error>();
  const token = new Map<string, string>();
  try {
    const creds = new Map<string, Credential>();
    for (const c of CLIENTS) {
      if (c.cred === "jwt") {
        const t = await cp.serviceAccountToken(c.node, 3600);
        token.set(c.node, t);
        creds.set(c.node, { kind: "token", token: t });
      } else {
        const m = await cp.mintNodeCertificate(c.node, { lifetimeSeconds: 3600 });
        creds.set(c.node, { kind: "certificate", certificate: m.certificate, key: m.key });
      }
    }
    const target = { host: cp.host, port: cp.port };
    const proxy = new Map<string, CountingProxy>();
    for (const c of CLIENTS) proxy.set(c.node, await startCountingProxy(target));
    proxies.push(...proxy.values());
    progress(`${CLIENTS.length} clients renewing ${run.warmup} + ${run.renewals} times each, ~${run.cadenceMs / 1000} s apart (~${Math.round(((run.warmup + run.renewals) * run.cadenceMs) / 1000) + 5} s)`);
    // After its steady state, each kubelet is measured again through status pushes, and a token one
    // with two watches open.
    const after = (k: "h1" | "h2", cred: Cred, p: CountingProxy) => async (running: Running) => {
      await statusPushBytes(running, p, run).then(
        (s) => void pushing.set(`${k}-${cred}`, s),
        (err: Error) => void pushing.set(`${k}-${cred}`, err),
      );
      if (cred === "jwt")
        await withTwoWatches(running.kubelet, p, run).then(
          (s) => void watching.set(k, s),
          (err: Error) => void watching.set(k, err),
        );
    };
    const start = (c: (typeof CLIENTS)[number]): Promise<SteadyState> => {
      const p = proxy.get(c.node)!;
      const cred = creds.get(c.node)!;

      switch (c.kind) {
        case "pico":
          return picokubeletStyle(cp, p, c.node, run, cred);
        case "ref":
          return referenceH2(cp, p, c.node, run, cred);
        case "h1":
        case "h2":
          return xsKubelet(cp, p, c.node, c.kind === "h2" ? "h2" : "http/1.1", run, cred, after(c.kind, c.cred, p));
        default:
          // Does asking for protobuf echoes pay? The same agents with JSON echoes, in the same run.
          return xsKubelet(cp, p, c.node, c.kind === "h2json" ? "h2" : "http/1.1", run, cred, undefined, { protobufEchoes: false });
      }
    };
    // Each settles on its own: one client failing must not leave the others running into the cleanup below.
    await Promise.all(
      CLIENTS.map((c) => {
        const t0 = Date.now();
        return start(c).then(
          (s) => {
            // The window's length: the renewals it holds at the cadence (each renewal's own time is small beside it).
            results.set(c.node, { s, seconds: Math.max(1, (s.renewals * run.cadenceMs) / 1000) });
            progress(`${c.label}: done in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
          },
          (err: Error) => {
            results.set(c.node, err);
            progress(`${c.label}: FAILED: ${err.message}`);
          },
        );
      }),
    );
  } catch (err) {
    progress(`FAILED: ${(err as Error).message}`);
  } finally {
    for (const p of proxies) await p.close();
  }

  // NaN for a client that failed (or never ran): its lines print FAIL wherever a target applies.
  const ok = (node: string) => {
    const r = results.get(node);
    return r && !(r instanceof Error) ? r.s : undefined;
  };
  const nodeOf = (kind: Kind, cred: Cred) => `bench-${kind}-${cred}`;
  const perRenewal = (kind: Kind, cred: Cred = "jwt") => {
    const r = ok(nodeOf(kind, cred));
    return r ? Math.round((r.up + r.down) / r.renewals) : NaN;
  };
  for (const c of CLIENTS) {
    const r = ok(c.node);
    if (r) progress(`${c.label.padEnd(72)} ${r.renewals} renewals: ${r.up} B up, ${r.down} B down, ${r.connections} connections accepted, ${r.open} open at the end${r.statusPushes ? `, ${r.statusPushes} status pushes in the window` : ""}`);
  }
  for (const c of CLIENTS) report(`wire: ${c.label}, bytes per renewal (TLS incl., both ways)`, perRenewal(c.kind, c.cred), "bytes");
  for (const c of CLIENTS) {
    const xs = c.kind !== "pico" && c.kind !== "ref";
    report(`wire: ${c.label}, TLS handshakes in steady state`, ok(c.node)?.connections ?? NaN, `in ${ok(c.node)?.renewals ?? "?"} renewals`, xs ? 0 : undefined);
  }
  // Rounded up, so a ratio just above its target cannot round down into a pass.
  const percent = (a: number, b: number) => Math.ceil((100 * a) / b);
  for (const cred of ["jwt", "cert"] as Cred[]) {
    report(`wire (${CREDS[cred]}): xs-kubelet h2 / picokubelet-style`, percent(perRenewal("h2", cred), perRenewal("pico", cred)), "%", 25);
    report(`wire (${CREDS[cred]}): xs-kubelet h2 / reference node:http2`, percent(perRenewal("h2", cred), perRenewal("ref", cred)), "%", 110);
    report(`wire (${CREDS[cred]}): xs-kubelet HTTP/1.1 / picokubelet-style`, percent(perRenewal("h1", cred), perRenewal("pico", cred)), "%");
  }
  // Kept only because it pays: protobuf echoes must cost less than JSON ones, per renewal, both ways.
  report("wire: xs-kubelet h2, protobuf echoes / JSON echoes", percent(perRenewal("h2"), perRenewal("h2json")), "%", 99);
  report("wire: xs-kubelet HTTP/1.1, protobuf echoes / JSON echoes", percent(perRenewal("h1"), perRenewal("h1json")), "%", 99);
  const withTwo: WireResult["withTwoWatches"] = {};
  for (const k of ["h1", "h2"] as const) {
    const w = watching.get(k);
    if (w instanceof Error) progress(`${KINDS[k]} with two watches: FAILED: ${w.message}`);
    const m = w && !(w instanceof Error) ? w : undefined;
    if (m) withTwo[k] = { open: m.open, connections: m.connections, renewals: m.renewals };
    // Over h2 everything shares one connection; over HTTP/1.1 each watch has its own (shown, not checked).
    report(`wire: ${KINDS[k]}, TLS connections open with two watches`, m?.open ?? NaN, "connections", k === "h2" ? 1 : undefined);
    report(`wire: ${KINDS[k]}, TLS handshakes with two watches open`, m?.connections ?? NaN, `in ${m?.renewals ?? "?"} renewals`, k === "h2" ? 0 : undefined);
  }
  const pushBytes: WireResult["statusPushBytes"] = { jwt: {}, cert: {} };
  for (const cred of ["jwt", "cert"] as Cred[]) {
    for (const k of ["h2", "h1"] as const) {
      const m = pushing.get(`${k}-${cred}`);
      if (m instanceof Error) progress(`${KINDS[k]}, ${CREDS[cred]}, status pushes: FAILED: ${m.message}`);
      const ok = m && !(m instanceof Error) ? m : undefined;
      if (ok) pushBytes[cred][k] = ok;
      report(`wire: ${KINDS[k]}, ${CREDS[cred]}, bytes per status push up (PATCH, Event)`, ok?.up ?? NaN, "bytes");
      report(`wire: ${KINDS[k]}, ${CREDS[cred]}, bytes per status push down (answers, watch echo)`, ok?.down ?? NaN, `bytes, ${ok?.pushes ?? "?"} pushes`);
    }
  }
  const byCred = (cred: Cred) => Object.fromEntries(CLIENTS.filter((c) => c.cred === cred).map((c) => [c.kind, perRenewal(c.kind, cred)]));
  const hs = (cred: Cred) =>
    Object.fromEntries(
      CLIENTS.filter((c) => c.cred === cred && results.get(c.node) && !(results.get(c.node) instanceof Error)).map((c) => {
        const r = results.get(c.node) as { s: SteadyState; seconds: number };
        return [c.kind, { connections: r.s.connections, seconds: r.seconds }];
      }),
    );
  return { renewalBytes: { jwt: byCred("jwt"), cert: byCred("cert") }, handshakes: { jwt: hs("jwt"), cert: hs("cert") }, tokenBytes: [...token.values()][0]?.length ?? 0, withTwoWatches: withTwo, statusPushBytes: pushBytes };
}
