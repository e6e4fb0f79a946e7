// `npm run test:faults -- [--faults 500] [--agents 20] [--h2-agents 10] [--cluster-faults 6] [--seed N]`:
// a fault campaign against the real control plane. Agents on the Node host, each behind its own fault
// proxy, take random faults one after another while their heap flips MemoryPressure now and then and
// their settings ConfigMap is edited. Half of them are behind the TCP fault proxy
// (tools/faults/proxy.ts): refused connections, resets, stalls, black holes, truncated and corrupted
// TLS records, bytes dripping in. The other half (--h2-agents) are behind the TLS-terminating HTTP/2
// fault proxy (tools/faults/h2-proxy.ts): 429/503 with Retry-After and 500 answered by the proxy
// itself, GOAWAY, RST_STREAM on the watches, a stream stalled with its window full (either way), PINGs
// never answered, a new serving certificate. Then the whole control plane takes its own: etcd
// restarted, kube-apiserver restarted, kube-apiserver back with a new serving certificate (behind the
// HTTP/2 proxy, the agent's connection to the proxy stays up meanwhile: its requests are reset, as
// behind an HTTP/2 load balancer). The control plane runs with the upstream grace period (50 s for a 40 s Lease),
// and every fault is shorter than lease duration minus one renewal interval (30 s), so no node may
// go Unknown. Printed: faults by kind, crashes, unintended Unknown transitions, lost flips, lost
// watch events (an agent not on its ConfigMap's last edit), requests repeated inside the Retry-After
// they were answered with (any request: the same method and path, selectors included), recovery time
// (from the API server's return — for a Retry-After, from its end — to the first good renewal, for the
// faults that broke one) p50/p99, by kind. Fails (exit 1) on any of those, a fault not recovered
// from, or a recovery p99 above 2 s.
import { join } from "node:path";
import { parseArgs } from "node:util";
import { createNodeHost } from "../../hosts/node/host";
import { seededRandom } from "../../hosts/virtual/host";
import type { HeapFigures } from "../../modules/host";
import { Kubelet } from "../../modules/kubelet/kubelet";
import { startControlPlane } from "../controlplane/launcher";
import { clusterRequest, fromKubeconfig } from "../kube/connection";
import { startFaultProxy, type Fault, type FaultKind, type FaultProxy } from "./proxy";
import { pickH2Fault, startH2FaultProxy, type H2Fault, type H2FaultProxy, type RequestRecord } from "./h2-proxy";
import { percentile } from "../util/stats";
import { DEFAULTS } from "../../modules/defaults";

export interface CampaignReport {
  seed: number;
  faults: number;
  byKind: Record<string, number>;
  crashes: number;
  unknownTransitions: number;
  lostFlips: number;
  flips: number;
  /** Settings ConfigMap edits made during faults, and agents whose settings in force are not the last one's. */
  settingsEdits: number;
  lostEvents: number;
  /** Requests answered with a Retry-After (by the HTTP/2 proxy), and those whose next try of the same request came inside it. */
  retryAfterAnswers: number;
  retryAfterChecked: number;
  retryAfterViolations: string[];
  notRecovered: number;
  /** ms from a fault's end to the first good renewal, for the faults that broke one. */
  recoveries: number[];
  recoveriesByKind: Record<string, number[]>;
  p50: number;
  p99: number;
  seconds: number;
}

const KINDS: readonly FaultKind[] = ["refuse", "reset", "stall", "blackhole", "truncate", "drip", "corrupt"];
const CLUSTER_KINDS = ["etcd-restart", "apiserver-restart", "apiserver-new-cert"] as const;

function pickFault(random: () => number): Fault {
  const kind = KINDS[Math.floor(random() * KINDS.length)];
  const between = (lo: number, hi: number) => Math.round(lo + (hi - lo) * random());
  switch (kind) {
    case "refuse": // mostly short, one in five long (still under 30 s)
      return { kind, ms: random() < 0.2 ? between(10_000, 22_000) : between(300, 5000) };
    case "stall":
      return { kind, ms: between(1000, 8000) };
    case "blackhole":
      return { kind, ms: between(300, 5000) };
    case "truncate":
      return { kind, ms: 11_000, bytes: between(0, 200) };
    case "drip":
      return { kind, ms: between(1000, 4000) };
    case "corrupt":
      return { kind, ms: 11_000 };
    default:
      return { kind };
  }
}

/** A fault's name in the report: an HTTP/2 one by its kind and variant. */
function h2KindName(f: H2Fault): string {
  switch (f.kind) {
    case "status":
      return `h2-${f.status}`;
    case "stall-window":
      return `h2-stall-${f.direction ?? "down"}`;
    default:
      return `h2-${f.kind}`;
  }
}

/** One request, for Retry-After: its method and path, with the selectors that make one watch or list another. */
export function requestKey(r: Pick<RequestRecord, "method" | "path">): string {
  const [path, query = ""] = r.path.split("?");
  const selectors = query
    .split("&")
    .filter((p) => /^(fieldSelector|labelSelector|watch)=/.test(p))
    .sort()
    .join("&");
  return `${r.method} ${path}${selectors ? `?${selectors}` : ""}`;
}

/**
 * Requests tried again inside the Retry-After they were answered with: for each answer (the proxy's
 * record, its Retry-After in ms), the next request of the same key seen after it, if any. Returns
 * the answers checked (a next try was seen) and a line for each one that came too early.
 */
export function retryAfterViolations(records: readonly RequestRecord[], answers: readonly { record: RequestRecord; ms: number }[]): { checked: number; violations: string[] } {
  let checked = 0;
  const violations: string[] = [];
  for (const { record, ms } of answers) {
    const key = requestKey(record);
    const at = records.indexOf(record);
    const next = at < 0 ? undefined : records.slice(at + 1).find((r) => requestKey(r) === key);
    if (!next) continue;
    checked++;
    if (next.at - record.at < ms) violations.push(`${key} tried again ${next.at - record.at} ms after a ${record.status} with Retry-After ${ms / 1000} s`);
  }
  return { checked, violations };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const clock = (ms: number) => new Date(ms).toISOString().slice(11, 23);

export async function runCampaign(options: { faults: number; agents: number; h2Agents: number; clusterFaults: number; seed: number; log: (line: string) => void }): Promise<CampaignReport> {
  const { log } = options;
  const began = Date.now();
  const random = seededRandom(options.seed);
  const names = Array.from({ length: options.agents }, (_, i) => `fault-${i + 1}`);
  let crashes = 0;
  const crashed = (what: string) => (err: unknown) => {
    crashes++;
    log(`[faults] CRASH (${what}): ${err instanceof Error ? err.stack : String(err)}`);
  };
  const onRejection = crashed("unhandled rejection");
  const onException = crashed("uncaught exception");
  process.on("unhandledRejection", onRejection);
  process.on("uncaughtException", onException);
  const cp = await startControlPlane({ nodes: names, nodeMonitorGracePeriodSeconds: 50, log });
  const admin = fromKubeconfig(cp.kubeconfig);
  /** Agent i is behind proxies[i] (TCP) or h2proxies[i] (HTTP/2): the first h2Agents are HTTP/2's. */
  const proxies: (FaultProxy | undefined)[] = [];
  const h2proxies: (H2FaultProxy | undefined)[] = [];
  /** Everything each HTTP/2 proxy saw (its own log keeps 500), and the answers it gave with a Retry-After. */
  const seenRequests: RequestRecord[][] = [];
  const retryAnswers: { record: RequestRecord; ms: number }[][] = [];
  const h2Count = Math.min(options.h2Agents, options.agents);
  const kubelets: Kubelet[] = [];
  const lowHeap: boolean[] = [];
  const attempts: { start: number; end: number; ok: boolean }[][] = [];
  // What each agent logged lately (its last 40 lines, timed), printed beside a slow recovery.
  const recent: string[][] = [];
  const report: CampaignReport = { seed: options.seed, faults: 0, byKind: {}, crashes: 0, unknownTransitions: 0, lostFlips: 0, flips: 0, settingsEdits: 0, lostEvents: 0, retryAfterAnswers: 0, retryAfterChecked: 0, retryAfterViolations: [], notRecovered: 0, recoveries: [], recoveriesByKind: {}, p50: 0, p99: 0, seconds: 0 };
  let monitor: ReturnType<typeof setInterval> | undefined;
  // Set before the agents stop: a read of the nodes still in flight then would see the Ready=False
  // each pushes as it shuts down gracefully (CI counted two such "Unknown" at teardown).
  let stopping = false;
  try {
    for (const [i, name] of names.entries()) {
      const h2 = i < h2Count;
      const proxy = h2 ? undefined : await startFaultProxy({ host: cp.host, port: cp.port });
      const h2proxy = h2 ? await startH2FaultProxy({ upstream: { host: cp.host, port: cp.port }, pkiDir: join(cp.dir, "pki") }) : undefined;
      proxies.push(proxy);
      h2proxies.push(h2proxy);
      seenRequests.push([]);
      retryAnswers.push([]);
      if (h2proxy) {
        const seen = new Set<RequestRecord>();
        h2proxy.onRequest = (r) => {
          if (seen.has(r)) return;
          seen.add(r);
          seenRequests[i].push(r);
        };
      }
      lowHeap.push(false);
      const heap = (): HeapFigures => (lowHeap[i] ? { free: 8 * 1024, total: 256 * 1024 } : { free: 180 * 1024, total: 256 * 1024 });
      recent.push([]);
      const remember = (level: string, line: string) => {
        recent[i].push(`${clock(Date.now())} ${level} ${line}`);
        if (recent[i].length > 40) recent[i].shift();
      };
      const kubelet = new Kubelet({ nodeName: name, server: { host: "127.0.0.1", port: (proxy ?? h2proxy)!.port }, tls: { serverName: "localhost", ca: cp.caDer, verify: true }, token: cp.nodeCredentials(name).token }, createNodeHost({ heap, log: remember }));
      kubelets.push(kubelet);
      // Every renewal attempt, when it began and ended and whether it worked (the last 50).
      attempts.push([]);
      const lease = kubelet.lease;
      const renew = lease.renew.bind(lease);
      lease.renew = async () => {
        const start = Date.now();
        const ok = await renew();
        attempts[i].push({ start, end: Date.now(), ok });
        if (attempts[i].length > 50) attempts[i].shift();
        return ok;
      };
      kubelet.start();
    }
    await Promise.all(kubelets.map((k) => k.registered));
    // What the cluster says of each node, every half second: any Ready other than True counts.
    const lastReady = new Map<string, string>();
    const conditions = async () => {
      const list = JSON.parse((await clusterRequest(admin, "GET", "/api/v1/nodes", { timeoutMs: 5000 })).text);
      const out = new Map<string, Record<string, string>>();
      for (const n of list.items ?? []) out.set(n.metadata.name, Object.fromEntries((n.status?.conditions ?? []).map((c: any) => [c.type, c.status])));
      return out;
    };
    for (let t = 0; t < 60 && [...(await conditions()).values()].filter((c) => c.Ready === "True").length < names.length; t++) await sleep(500);
    monitor = setInterval(() => {
      void conditions().then(
        (all) => {
          if (stopping) return;
          for (const name of names) {
            const ready = all.get(name)?.Ready ?? "";
            if (ready !== "True" && lastReady.get(name) === "True") {
              report.unknownTransitions++;
              log(`[faults] ${name}: Ready went ${ready}`);
            }
            lastReady.set(name, ready);
          }
        },
        () => undefined,
      );
    }, 500);
    log(`[faults] ${names.length} agents Ready behind their fault proxies (${h2Count} HTTP/2, ${names.length - h2Count} TCP); ${options.faults} faults (seed ${options.seed})`);

    // Settings the agents must end up with: an edit of a node's ConfigMap now and then while a fault
    // is on. Its watch must resume from its resourceVersion (or relist) and lose none of them.
    const wanted: { message: string; resourceVersion: string }[] = names.map(() => ({ message: "", resourceVersion: "" }));
    let edits = 0;
    const editSettings = async (i: number): Promise<void> => {
      const message = `edit-${++edits}`;
      const name = `xs-kubelet-node-${names[i]}`;
      const res = await clusterRequest(admin, "PATCH", `/api/v1/namespaces/xs-kubelet/configmaps/${name}?fieldManager=test-faults&force=true`, {
        body: { apiVersion: "v1", kind: "ConfigMap", metadata: { name, namespace: "xs-kubelet" }, data: { hello_message: message } },
        contentType: "application/apply-patch+yaml",
      }).catch((err: Error) => ({ status: 0, text: err.message }));
      if (res.status !== 200 && res.status !== 201) return log(`[faults] editing ${name} failed (${res.status}): ${res.text.slice(0, 200)}`);
      wanted[i] = { message, resourceVersion: JSON.parse(res.text).metadata.resourceVersion };
      report.settingsEdits++;
    };
    for (const i of names.keys()) await editSettings(i);

    /**
     * Watched until a renewal that began after the fault's end has gone through: a fault's harm can
     * show later (a corrupted record can leave the connection silently dead, and the next renewal
     * finds out), and it counts against this fault, not the next. Recovery: from the API server's
     * being reachable again (the fault's end) or, when the harm showed only later, from the start of
     * the first renewal it broke — to the first good renewal after the last failure.
     */
    const measure = async (i: number, kind: string, begun: number, end: number, what: string): Promise<void> => {
      const since = () => attempts[i].filter((a) => a.end > begun);
      const proven = () => since().some((a) => a.ok && a.start >= end);
      while (Date.now() - end < 40_000 && !proven()) await sleep(20);
      const seen = since();
      const failed = seen.filter((a) => !a.ok);
      if (!proven()) {
        report.notRecovered++;
        log(`[faults] ${names[i]}: no renewal through 40 s after ${what}`);
      } else if (failed.length) {
        const last = failed[failed.length - 1];
        const good = seen.find((a) => a.ok && a.start >= last.end)!;
        const ms = Math.max(0, good.end - Math.max(end, failed[0].start));
        (report.recoveriesByKind[kind] ??= []).push(ms);
        report.recoveries.push(ms);
        if (ms > 2000) {
          log(`[faults] ${names[i]}: renewing again ${ms} ms after the end of ${what} at ${clock(end)} (${failed.length} failed, the first began ${clock(failed[0].start)}); its last lines:`);
          for (const line of recent[i]) log(`[faults]   ${line}`);
        }
      }
      report.byKind[kind] = (report.byKind[kind] ?? 0) + 1;
    };

    let done = 0;
    const perAgent = Math.ceil(options.faults / names.length);
    await Promise.all(
      names.map(async (_, i) => {
        for (let f = 0; f < perAgent && done < options.faults; f++) {
          const h2proxy = h2proxies[i];
          const fault = h2proxy ? pickH2Fault(random) : pickFault(random);
          if (random() < 0.2) {
            lowHeap[i] = !lowHeap[i];
            report.flips++;
          }
          const begun = Date.now();
          // A status fault waits (up to 30 s) for the requests it answers: its edit comes within 5 s.
          const editWithin = fault.kind === "status" ? 5000 : ("ms" in fault && fault.ms) || 500;
          const edit = random() < 0.3 ? sleep(Math.round(random() * editWithin)).then(() => editSettings(i)) : undefined;
          if (h2proxy) {
            const f = fault as H2Fault;
            const name = h2KindName(f);
            const result = await h2proxy.inject(f);
            let end = result.endedAt;
            if (f.kind === "status" && f.retryAfterSeconds !== undefined) {
              // The API server "accepts again" once the Retry-After has run out: recovery counts from then.
              const ms = f.retryAfterSeconds * 1000;
              const answered = seenRequests[i].filter((r) => r.by === "proxy" && r.at >= result.startedAt && r.at <= result.endedAt);
              for (const record of answered) retryAnswers[i].push({ record, ms });
              report.retryAfterAnswers += answered.length;
              if (answered.length) end = Math.max(end, answered[answered.length - 1].at + ms);
            }
            const detail = f.kind === "status" ? ` × ${result.hits}${f.retryAfterSeconds !== undefined ? `, Retry-After ${f.retryAfterSeconds} s` : ""}${f.match ? " on the renewal" : ""}` : "ms" in f && f.ms ? ` (${f.ms} ms)` : "";
            await measure(i, name, begun, end, `${name}${detail}`);
          } else {
            const f = fault as Fault;
            await proxies[i]!.inject(f);
            await measure(i, f.kind, begun, Date.now(), `${f.kind}${f.ms ? ` (${f.ms} ms)` : ""}`);
          }
          await edit;
          report.faults = ++done;
          if (done % 50 === 0) log(`[faults] ${done}/${options.faults} faults, ${report.recoveries.length} broke a renewal, ${crashes} crashes, ${report.unknownTransitions} Unknown, ${Math.round((Date.now() - began) / 1000)} s`);
          await sleep(Math.round(random() * 1500));
        }
      }),
    );

    // Faults of the whole control plane, each felt by every agent at once: etcd and kube-apiserver
    // restarted (SIGTERM, down a while, started again), and kube-apiserver back with a new serving
    // certificate from the same CA. The fault ends when the API server serves a read again.
    const serving = async () => {
      for (;;) {
        const res = await clusterRequest(admin, "GET", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases?limit=1", { timeoutMs: 2000 }).catch(() => undefined);
        if (res?.status === 200) return;
        await sleep(50);
      }
    };
    for (let c = 0; c < options.clusterFaults; c++) {
      const kind = CLUSTER_KINDS[c % CLUSTER_KINDS.length];
      // At a random point of the agents' renewal cycle (they registered together, so they renew
      // nearly in step), down long enough to miss a renewal or two but under 30 s in all.
      await sleep(Math.round(random() * 10_000));
      const downMs = Math.round(1000 + random() * 9000);
      const begun = Date.now();
      log(`[faults] ${kind}, down ${downMs} ms …`);
      if (kind === "etcd-restart") await cp.restartEtcd(downMs);
      else await cp.restartApiServer(downMs, { newServingCertificate: kind === "apiserver-new-cert" });
      await serving();
      const end = Date.now();
      log(`[faults] ${kind}: the API server serves again ${((end - begun) / 1000).toFixed(1)} s after the fault began`);
      await Promise.all(names.map((_, i) => editSettings(i)));
      await Promise.all(names.map((_, i) => measure(i, kind, begun, end, `${kind} (down ${downMs} ms)`)));
      if (process.env.FAULTS_DEBUG) log(`[faults] ${kind}: agent 1's attempts: ${attempts[0].filter((a) => a.end > begun).map((a) => `${clock(a.start)}-${clock(a.end)} ${a.ok ? "ok" : "FAILED"}`).join(", ")}`);
      report.faults++;
    }

    // Settle: every flip the agents made must be what the cluster shows.
    await sleep(15_000);
    for (const i of names.keys()) {
      const { checked, violations } = retryAfterViolations(seenRequests[i], retryAnswers[i]);
      report.retryAfterChecked += checked;
      for (const v of violations) {
        report.retryAfterViolations.push(`${names[i]}: ${v}`);
        log(`[faults] ${names[i]}: ${v}`);
      }
    }
    const final = await conditions();
    for (const [i, name] of names.entries()) {
      const want = lowHeap[i] ? "True" : "False";
      const got = final.get(name)?.MemoryPressure;
      if (got !== want) {
        report.lostFlips++;
        log(`[faults] ${name}: MemoryPressure is ${got} in the cluster, the agent says ${want}`);
      }
      const settings = kubelets[i].settings;
      const applied = settings.current.workloadDefaults.hello?.message;
      if (applied !== wanted[i].message || !settings.origin.includes(`xs-kubelet-node-${name}@${wanted[i].resourceVersion}`)) {
        report.lostEvents++;
        log(`[faults] ${name}: settings in force are ${applied} from ${settings.origin}; the last edit was ${wanted[i].message} at resourceVersion ${wanted[i].resourceVersion}`);
      }
      if (kubelets[i].phase !== "running") {
        crashes++;
        log(`[faults] ${name}: the agent is ${kubelets[i].phase}`);
      }
    }
  } finally {
    stopping = true;
    if (monitor) clearInterval(monitor);
    await Promise.all(kubelets.map((k) => k.stop().catch(() => undefined)));
    await Promise.all([...proxies, ...h2proxies].map((p) => p?.close()));
    await cp.stop();
    process.off("unhandledRejection", onRejection);
    process.off("uncaughtException", onException);
  }
  const sorted = report.recoveries.slice().sort((a, b) => a - b);
  report.crashes = crashes;
  report.p50 = percentile(sorted, 50);
  report.p99 = percentile(sorted, 99);
  report.seconds = Math.round((Date.now() - began) / 1000);
  return report;
}

export function campaignFailures(r: CampaignReport): string[] {
  const out: string[] = [];
  if (r.crashes) out.push(`${r.crashes} crashes`);
  if (r.unknownTransitions) out.push(`${r.unknownTransitions} unintended Unknown transitions`);
  if (r.lostFlips) out.push(`${r.lostFlips} lost flips`);
  if (r.lostEvents) out.push(`${r.lostEvents} agents lost a settings edit`);
  if (r.retryAfterViolations.length) out.push(`${r.retryAfterViolations.length} requests tried again inside their Retry-After`);
  if (r.notRecovered) out.push(`${r.notRecovered} faults not recovered from within 40 s`);
  // The target: Ready back within 2 s of the API server's return (p99). And the hard bound: no
  // renewal waits past its request timeout (+1 s for the retry).
  if (r.p99 > 2000) out.push(`recovery p99 ${r.p99} ms > 2000 ms`);
  const bound = DEFAULTS.requestTimeoutMs + 1000;
  const worst = r.recoveries.length ? Math.max(...r.recoveries) : 0;
  if (worst > bound) out.push(`a recovery took ${worst} ms > ${bound} ms (the request timeout + 1 s)`);
  return out;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { faults: { type: "string", default: "500" }, agents: { type: "string", default: "20" }, "h2-agents": { type: "string" }, "cluster-faults": { type: "string", default: "6" }, seed: { type: "string" } } });
  const seed = values.seed === undefined ? Date.now() % 1_000_000 : Number(values.seed);
  // A campaign takes ~3 min here; one that hangs fails within a bound instead of holding CI to its limit.
  const limitMinutes = 15;
  setTimeout(() => {
    console.error(`test:faults: not finished after ${limitMinutes} min; open: ${process.getActiveResourcesInfo().join(", ")}`);
    process.exit(1);
  }, limitMinutes * 60_000).unref();
  const r = await runCampaign({ faults: Number(values.faults), agents: Number(values.agents), h2Agents: values["h2-agents"] === undefined ? Math.floor(Number(values.agents) / 2) : Number(values["h2-agents"]), clusterFaults: Number(values["cluster-faults"]), seed, log: (l) => console.log(l) });
  console.log(`
fault campaign (seed ${r.seed}; rerun with --seed ${r.seed}), ${r.faults} faults in ${r.seconds} s, real control plane
  faults by kind:          ${Object.entries(r.byKind).map(([k, n]) => `${k} ${n}`).join(", ")}
  crashes:                 ${r.crashes}
  unintended Unknown:      ${r.unknownTransitions}
  lost flips:              ${r.lostFlips} (of ${r.flips} MemoryPressure flips)
  lost watch events:       ${r.lostEvents} agents not on their last settings edit (${r.settingsEdits} edits during faults)
  Retry-After:             ${r.retryAfterViolations.length} requests tried again inside it (${r.retryAfterAnswers} answers with one; the next try of the same request seen for ${r.retryAfterChecked})
  not recovered:           ${r.notRecovered}
  recovery after the fault ended (${r.recoveries.length} faults broke a renewal): p50 ${r.p50} ms, p99 ${r.p99} ms (target 2000 ms: ${r.p99 <= 2000 ? "met" : "MISSED"}), ${r.recoveries.filter((ms) => ms > 2000).length} over 2 s
${Object.entries(r.recoveriesByKind).map(([k, v]) => `    ${k.padEnd(18)} ${String(v.length).padStart(3)} broke one: p50 ${percentile(v.slice().sort((a, b) => a - b), 50)} ms, max ${Math.max(...v)} ms`).join("\n")}`);
  const failures = campaignFailures(r);
  if (failures.length) console.error(`FAILED: ${failures.join("; ")}`);
  // Everything the campaign started is stopped by now; whatever still holds the event loop (a socket
  // a stopped agent's TLS layer never closed, say) must not hold CI until its limit: name it, exit.
  const left = process.getActiveResourcesInfo().filter((r) => r !== "TTYWrap");
  if (left.length) console.log(`[faults] still open at exit: ${left.join(", ")}`);
  process.exit(failures.length ? 1 : 0);
}

if (process.argv[1] && new URL(import.meta.url).pathname === process.argv[1]) {
  main().catch((err) => {
    console.error(`test:faults: ${err instanceof Error ? err.stack : err}`);
    process.exit(1);
  });
}
