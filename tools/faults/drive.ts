// `npm run faults:drive`: the fault proxy in front of an API server, with a sequence of faults for an
// agent you run yourself — the Moddable simulator, a board on your LAN, or `npm start` — pointed at
// the proxy instead of the API server. After each fault it watches the node's Lease and Node through
// the kubeconfig: the agent must renew again by itself, keep Ready=True (the faults are shorter than
// the lease), and keep its bootID (a board that aborted XS reboots with a new one; a simulator that
// aborted stops renewing). Exits 1 when any of that fails.
//
// With --h2 --pki DIR the proxy is the TLS-terminating HTTP/2 one (tools/faults/h2-proxy.ts, serving
// certificates signed by the cluster CA's key in DIR) and the faults are HTTP-level: 429/503 with
// Retry-After, 500, GOAWAY, RST_STREAM on the watches, a stalled window, unanswered PINGs, a new
// serving certificate, and an impersonator (a certificate from a CA the agent does not know, which
// it must refuse: no request may reach it).
//
//   npm run faults:drive -- --kubeconfig FILE --node NAME [--listen HOST:PORT] [--target HOST:PORT]
//                           [--h2 --pki DIR] [--faults a,b,…] [--rounds N] [--gap S]
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { constants as H2 } from "node:http2";
import { clusterRequest, fromKubeconfig, parseHostPort, type ClusterConnection } from "../kube/connection";
import { startFaultProxy, type Fault, type FaultKind } from "./proxy";
import { LEASE_RENEWAL, startH2FaultProxy, type H2Fault } from "./h2-proxy";
import { percentile } from "../util/stats";
import { table } from "../util/table";

/** What each fault does here: long enough to be felt, short enough that the node must stay Ready. */
export const DRIVE_FAULTS: Readonly<Record<FaultKind, Fault>> = Object.freeze({
  // corrupt and truncate hit the next bytes from the API server: a renewal's answer within 15 s.
  corrupt: { kind: "corrupt", ms: 15_000 },
  truncate: { kind: "truncate", bytes: 40, ms: 15_000 },
  reset: { kind: "reset" },
  drip: { kind: "drip", ms: 5_000 },
  blackhole: { kind: "blackhole", ms: 5_000 },
  stall: { kind: "stall", ms: 10_000 },
  refuse: { kind: "refuse", ms: 20_000 },
});

/** The HTTP/2 proxy's faults (--h2), by the names --faults takes. */
export const DRIVE_H2_FAULTS: Readonly<Record<string, H2Fault>> = Object.freeze({
  "429": { kind: "status", status: 429, retryAfterSeconds: 5, count: 2, match: LEASE_RENEWAL, ms: 30_000 },
  "503": { kind: "status", status: 503, retryAfterSeconds: 3, count: 1, ms: 30_000 },
  "500": { kind: "status", status: 500, count: 1, ms: 30_000 },
  goaway: { kind: "goaway", ms: 1000 },
  "rst-watch": { kind: "rst-watch", code: H2.NGHTTP2_INTERNAL_ERROR },
  "stall-down": { kind: "stall-window", direction: "down", ms: 5000 },
  "stall-up": { kind: "stall-window", direction: "up", ms: 5000 },
  "ping-unanswered": { kind: "ping-unanswered", ms: 10_000 },
  "new-cert": { kind: "new-cert", ms: 500 },
  impersonator: { kind: "new-cert", untrustedMs: 8000 },
});

/** The faults a --faults list names, in its order; a clear error for a name that is not one. */
export function parseFaultList(text: string, known: readonly string[] = Object.keys(DRIVE_FAULTS)): string[] {
  const names = text.split(",").map((s) => s.trim()).filter(Boolean);
  if (!names.length) throw new Error("--faults names no fault");
  for (const n of names) if (!known.includes(n)) throw new Error(`--faults: "${n}" is not a fault (one of ${known.join(", ")})`);
  return names;
}

/** One proxy, TCP or HTTP/2, behind the same few calls. */
interface Driver {
  readonly port: number;
  readonly accepted: number;
  /** Injects the named fault; resolves when it is over, with what it did worth a word ("" for nothing). */
  inject(name: string): Promise<string>;
  /** Requests that reached an impersonating certificate (HTTP/2 only): must stay 0. */
  impersonated(): number;
  close(): Promise<void>;
}

async function tcpDriver(target: { host: string; port: number }, at: { host: string; port: number }): Promise<Driver> {
  const proxy = await startFaultProxy(target, at);
  return {
    get port() {
      return proxy.port;
    },
    get accepted() {
      return proxy.accepted;
    },
    inject: (name) => proxy.inject(DRIVE_FAULTS[name as FaultKind]).then(() => ""),
    impersonated: () => 0,
    close: () => proxy.close(),
  };
}

async function h2Driver(target: { host: string; port: number }, at: { host: string; port: number }, pkiDir: string): Promise<Driver> {
  const proxy = await startH2FaultProxy({ upstream: target, pkiDir, listen: at });
  return {
    get port() {
      return proxy.port;
    },
    get accepted() {
      return proxy.accepted;
    },
    inject: async (name) => {
      const failedBefore = proxy.handshakeFailures;
      const r = await proxy.inject(DRIVE_H2_FAULTS[name]);
      // A client refusing the certificate ends the handshake (TLS 1.2: a handshake failure here) or
      // the connection before its first stream (TLS 1.3: r.refused).
      const refused = (r.refused ?? 0) + proxy.handshakeFailures - failedBefore;
      return `${r.hits} hit${r.refused !== undefined ? `, ${refused} connection${refused === 1 ? "" : "s"} refused it` : ""}${r.windowFull === false ? ", window never full" : ""}`;
    },
    impersonated: () => proxy.requests().filter((r) => r.certificate === 0).length,
    close: () => proxy.close(),
  };
}

interface NodeView {
  renewTime: number;
  ready: string;
  bootId: string;
}

async function look(conn: ClusterConnection, node: string): Promise<NodeView> {
  const [lease, n] = await Promise.all([
    clusterRequest(conn, "GET", `/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/${node}`, { timeoutMs: 5000 }),
    clusterRequest(conn, "GET", `/api/v1/nodes/${node}`, { timeoutMs: 5000 }),
  ]);
  if (lease.status !== 200) throw new Error(`GET Lease ${node}: ${lease.status} ${lease.text.slice(0, 200)}`);
  if (n.status !== 200) throw new Error(`GET Node ${node}: ${n.status} ${n.text.slice(0, 200)}`);
  const ready = (n.json.status?.conditions ?? []).find((c: { type: string }) => c.type === "Ready");
  return { renewTime: Date.parse(lease.json.spec?.renewTime ?? "") || 0, ready: ready?.status ?? "none", bootId: n.json.status?.nodeInfo?.bootID ?? "" };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      kubeconfig: { type: "string" },
      node: { type: "string" },
      listen: { type: "string" },
      target: { type: "string" },
      faults: { type: "string" },
      h2: { type: "boolean" },
      pki: { type: "string" },
      rounds: { type: "string" },
      gap: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help || !values.kubeconfig || !values.node) {
    console.log(`usage: npm run faults:drive -- --kubeconfig FILE --node NAME [options]
  --listen  where the proxy listens (default 127.0.0.1:16443; a LAN address for a board)
  --target  the API server (default: the kubeconfig's server)
  --faults  comma-separated, in order (default ${Object.keys(DRIVE_FAULTS).join(",")};
            with --h2: ${Object.keys(DRIVE_H2_FAULTS).join(",")})
  --h2      the TLS-terminating HTTP/2 fault proxy; --pki DIR holds the cluster's ca.crt and ca.key
  --rounds  how many times the list is run (default 2)
  --gap     seconds of quiet before each fault (default 12)
Point the agent at the proxy (the simulator's or board's "port" preference, server name unchanged),
start it, and this waits for its first renewal through the proxy.`);
    return values.help ? 0 : 2;
  }
  const conn = fromKubeconfig(values.kubeconfig);
  const node = values.node;
  const target = values.target ? parseHostPort(values.target, "--target") : { host: conn.host, port: conn.port };
  const at = parseHostPort(values.listen ?? "127.0.0.1:16443", "--listen");
  const catalogue = Object.keys(values.h2 ? DRIVE_H2_FAULTS : DRIVE_FAULTS);
  const kinds = parseFaultList(values.faults ?? catalogue.join(","), catalogue);
  if (values.h2 && !values.pki) throw new Error("--h2 needs --pki DIR (the cluster CA's ca.crt and ca.key sign the proxy's certificates)");
  const rounds = Number(values.rounds ?? 2);
  const gapMs = Number(values.gap ?? 12) * 1000;
  if (!(Number.isInteger(rounds) && rounds >= 1)) throw new Error(`--rounds must be a whole number ≥ 1, not "${values.rounds}"`);
  if (!(gapMs >= 0)) throw new Error(`--gap must be a number of seconds, not "${values.gap}"`);

  const proxy = values.h2 ? await h2Driver(target, at, values.pki!) : await tcpDriver(target, at);
  console.log(`[drive] ${values.h2 ? "HTTP/2 " : ""}fault proxy on ${at.host}:${proxy.port} → ${target.host}:${target.port}; point node ${node} here`);
  try {
    // Its first renewal through the proxy.
    const started = Date.now();
    let first: NodeView | undefined;
    for (;;) {
      const v = await look(conn, node).catch(() => undefined);
      if (v && proxy.accepted > 0 && v.renewTime > started - 1000) {
        first = v;
        break;
      }
      if (Date.now() - started > 5 * 60_000) throw new Error(`no renewal of ${node}'s Lease through the proxy within 5 minutes (${proxy.accepted} connections accepted)`);
      await sleep(1000);
    }
    console.log(`[drive] ${node} renews through the proxy (bootID ${first.bootId}); ${kinds.length * rounds} faults follow`);
    const results: { kind: string; recoveredMs?: number; ready: string; sameBoot: boolean }[] = [];
    for (let round = 0; round < rounds; round++) {
      for (const kind of kinds) {
        await sleep(gapMs);
        const t0 = Date.now();
        const detail = await proxy.inject(kind);
        const over = Date.now();
        // Recovered: the first Lease renewal newer than any written before the fault was over, as
        // seen from here (polled every 200 ms, so up to ~0.3 s late).
        const before = (await look(conn, node)).renewTime;
        let recoveredMs: number | undefined;
        let last: NodeView | undefined;
        for (const deadline = over + 60_000; Date.now() < deadline; ) {
          last = await look(conn, node).catch(() => last);
          if (last && last.renewTime > before) {
            recoveredMs = Date.now() - over;
            break;
          }
          await sleep(200);
        }
        const row = { kind, recoveredMs, ready: last?.ready ?? "?", sameBoot: last?.bootId === first.bootId };
        results.push(row);
        console.log(`[drive] ${results.length}/${kinds.length * rounds} ${kind} (${((over - t0) / 1000).toFixed(1)} s${detail ? `, ${detail}` : ""}): ${recoveredMs === undefined ? "NO renewal within 60 s after it" : `renewed ${(recoveredMs / 1000).toFixed(1)} s after it`}, Ready ${row.ready}${row.sameBoot ? "" : ", NEW bootID (it rebooted)"}`);
      }
    }
    const rows = kinds.map((kind) => {
      const mine = results.filter((r) => r.kind === kind);
      const times = mine.filter((r) => r.recoveredMs !== undefined).map((r) => r.recoveredMs!).sort((a, b) => a - b);
      return [kind, String(mine.length), String(times.length), times.length ? `${(percentile(times, 50) / 1000).toFixed(1)} s` : "-", times.length ? `${(times[times.length - 1] / 1000).toFixed(1)} s` : "-", String(mine.filter((r) => r.ready !== "True").length), String(mine.filter((r) => !r.sameBoot).length)];
    });
    console.log(`\n${table(["fault", "injected", "renewed after", "p50", "max", "not Ready after", "rebooted"], rows)}\n`);
    const bad = results.filter((r) => r.recoveredMs === undefined || r.ready !== "True" || !r.sameBoot);
    const impersonated = proxy.impersonated();
    if (impersonated) console.log(`[drive] FAILED: ${impersonated} request${impersonated === 1 ? "" : "s"} reached the impersonating certificate: the agent trusted a CA it does not know`);
    console.log(bad.length ? `[drive] FAILED: ${bad.length} of ${results.length} faults left the node without a renewal, not Ready, or rebooted` : `[drive] ${impersonated ? "otherwise " : ""}passed: ${results.length} faults, each followed by a renewal, Ready=True and the same bootID`);
    return bad.length || impersonated ? 1 : 0;
  } finally {
    await proxy.close();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().then(
    (code) => process.exit(code),
    (err) => {
      console.error(`[drive] ${(err as Error).message}`);
      process.exit(2);
    },
  );
}
