// The four Lease-renewing clients of the wire benchmark. Each renews its own Lease through its own
// counting proxy; each measures the same way: warm up, snapshot just after a renewal completed, let N
// more renewals complete, snapshot again. A renewal's trailing bytes (a closing TLS alert) thus fall
// into the window once at its start and are missing once at its end: the window holds N renewals.
import { connect as h2Connect, type ClientHttp2Session } from "node:http2";
import { request as httpsRequest } from "node:https";
import { createNodeHost } from "../../hosts/node/host";
import { Watcher } from "../../modules/api/watch";
import { MERGE_PATCH, NODE_LEASE_NAMESPACE, paths } from "../../modules/k8s/paths";
import { Kubelet, type KubeletOptions } from "../../modules/kubelet/kubelet";
import { formatMicroTime } from "../../modules/time/clock";
import type { ControlPlane } from "../controlplane/launcher";
import { clusterRequest, type ClusterConnection } from "../kube/connection";
import { diffCounts, type CountingProxy, type WireCounts } from "./proxy";

export interface Run {
  /** Renewals to measure, after the warm-up ones. */
  renewals: number;
  warmup: number;
  /** Pause after each renewal: xs-kubelet's interval with leaseDurationSeconds 4. */
  cadenceMs: number;
  progress: (line: string) => void;
}

export interface SteadyState extends WireCounts {
  renewals: number;
  /** xs-kubelet only: status pushes inside the window (their bytes are in the window too). */
  statusPushes?: number;
}

/**
 * How a client authenticates: a bearer token in every request (a ServiceAccount token is a JWT of
 * about 1 KB; a static token 22 B), or a client certificate sent once, in the TLS handshake.
 */
export type Credential = { kind: "token"; token: string } | { kind: "certificate"; certificate: Uint8Array; key: Uint8Array };

const pem = (der: Uint8Array, label: string) => `-----BEGIN ${label}-----\n${Buffer.from(der).toString("base64").replace(/(.{64})/g, "$1\n")}\n-----END ${label}-----\n`;
/** node:tls options for a certificate credential; none for a token. */
const tlsIdentity = (c: Credential) => (c.kind === "certificate" ? { cert: pem(c.certificate, "CERTIFICATE"), key: pem(c.key, "PRIVATE KEY") } : {});
const bearer = (c: Credential): Record<string, string> => (c.kind === "token" ? { Authorization: `Bearer ${c.token}` } : {});

/** The leaseDurationSeconds the hand-made clients write: renewing every 1 s is 0.25 × 4 s, like xs-kubelet's. */
const LEASE_SECONDS = 4;

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function withTimeout<T>(what: string, ms: number, p: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${ms / 1000} s: ${what}`)), ms)));
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Direct to the API server (setup is not measured), verifying it as every client here does. */
const direct = (cp: ControlPlane, token: string): ClusterConnection => ({ host: cp.host, port: cp.port, serverName: "localhost", caDer: cp.caDer, token, verify: true });

/** What xs-kubelet does at registration, for the hand-made clients: the Node, then its Lease owned by it. */
async function registerNodeAndLease(cp: ControlPlane, name: string): Promise<void> {
  const conn = direct(cp, cp.nodeCredentials(name).token);
  const node = await clusterRequest(conn, "POST", paths.nodes, { body: { apiVersion: "v1", kind: "Node", metadata: { name } } });
  if (node.status !== 201) throw new Error(`POST Node ${name}: ${node.status} ${node.text.slice(0, 200)}`);
  const lease = await clusterRequest(conn, "POST", paths.leases, { body: fullLease(name, node.json.metadata.uid) });
  if (lease.status !== 201) throw new Error(`POST Lease ${name}: ${lease.status} ${lease.text.slice(0, 200)}`);
}

/** The whole Lease, as picokubelet sent it with every renewal (ownerReference only at creation). */
function fullLease(name: string, ownerUid?: string) {
  return {
    apiVersion: "coordination.k8s.io/v1",
    kind: "Lease",
    metadata: {
      name,
      namespace: NODE_LEASE_NAMESPACE,
      ...(ownerUid ? { ownerReferences: [{ apiVersion: "v1", kind: "Node", name, uid: ownerUid }] } : {}),
    },
    spec: { holderIdentity: name, leaseDurationSeconds: LEASE_SECONDS, renewTime: formatMicroTime(Date.now()) },
  };
}

/** The hand-made clients' loop: renew, pause, renew …; snapshots right after renewals complete. */
async function renewLoop(proxy: CountingProxy, run: Run, renew: () => Promise<void>): Promise<SteadyState> {
  let from = proxy.snapshot();
  for (let i = 0; i < run.warmup + run.renewals; i++) {
    if (i > 0) await sleep(run.cadenceMs);
    await renew();
    if (i === run.warmup - 1) from = proxy.snapshot();
  }
  return { ...diffCounts(from, proxy.snapshot()), renewals: run.renewals };
}

/**
 * 1. picokubelet-style: a new TLS connection per request (Connection: close, no session reuse), the
 * whole Lease merge-patched every time, JSON back.
 */
export async function picokubeletStyle(cp: ControlPlane, proxy: CountingProxy, name: string, run: Run, credential: Credential): Promise<SteadyState> {
  await registerNodeAndLease(cp, name);
  const patch = () =>
    new Promise<void>((resolve, reject) => {
      const body = JSON.stringify(fullLease(name));
      const req = httpsRequest(
        {
          host: "127.0.0.1",
          port: proxy.port,
          path: paths.lease(name),
          method: "PATCH",
          agent: false, // no keep-alive, no TLS session cache
          ca: cp.caPem,
          servername: "localhost",
          maxVersion: "TLSv1.2", // what the board's TLS speaks, and what xs-kubelet's Node host pins
          ...tlsIdentity(credential),
          headers: {
            Connection: "close",
            ...bearer(credential),
            Accept: "application/json",
            "Content-Type": MERGE_PATCH,
            "Content-Length": Buffer.byteLength(body),
          },
        },
        (res) => {
          res.resume();
          res.on("end", () => (res.statusCode === 200 ? resolve() : reject(new Error(`${name}: PATCH Lease: ${res.statusCode}`))));
        },
      );
      req.on("error", reject);
      req.end(body);
    });
  return renewLoop(proxy, run, patch);
}

/**
 * 4. The reference: node:http2 (nghttp2's HPACK) on one session, renewTime-only merge patch,
 * protobuf back.
 */
export async function referenceH2(cp: ControlPlane, proxy: CountingProxy, name: string, run: Run, credential: Credential): Promise<SteadyState> {
  await registerNodeAndLease(cp, name);
  const session: ClientHttp2Session = h2Connect(`https://127.0.0.1:${proxy.port}`, { ca: cp.caPem, servername: "localhost", maxVersion: "TLSv1.2", ...tlsIdentity(credential) });
  let sessionError: Error | undefined;
  session.on("error", (err) => (sessionError = err));
  try {
    const patch = () =>
      new Promise<void>((resolve, reject) => {
        if (sessionError) return reject(sessionError);
        const req = session.request({
          ":method": "PATCH",
          ":path": paths.lease(name),
          "content-type": MERGE_PATCH,
          accept: "application/vnd.kubernetes.protobuf",
          ...(credential.kind === "token" ? { authorization: `Bearer ${credential.token}` } : {}),
        });
        let status = 0;
        req.on("response", (headers) => (status = Number(headers[":status"])));
        req.resume();
        req.on("end", () => (status === 200 ? resolve() : reject(new Error(`${name}: PATCH Lease over h2: ${status}`))));
        req.on("error", reject);
        req.end(JSON.stringify({ spec: { renewTime: formatMicroTime(Date.now()) } }));
      });
    return await renewLoop(proxy, run, patch);
  } finally {
    session.close(); // not awaited: a session an error already destroyed never reports closing
  }
}

/** Until the kubelet's lifetime renewals reach n. Polled often against a ~1 s interval, so a snapshot taken right after lands between two renewals. */
export async function untilRenewals(kubelet: Kubelet, n: number, run: Run): Promise<void> {
  for (const deadline = Date.now() + (n - kubelet.lease.renewals + 5) * run.cadenceMs * 2; kubelet.lease.renewals < n; await sleep(5)) {
    if (Date.now() > deadline) {
      const { nodeName, lastError } = kubelet.snapshot();
      throw new Error(`${nodeName}: ${kubelet.lease.renewals} renewals, waited for ${n} (${lastError || "no error"})`);
    }
  }
}

/** A fixed heap figure: a drifting V8 heap could flip a condition and put a status push in the window. */
const HEAP = { free: 256 * 1024, total: 320 * 1024 };
/** Low enough for MemoryPressure: what the status-push measurement flips to and back. */
const LOW_HEAP = { free: 8 * 1024, total: 320 * 1024 };

/** A running xs-kubelet as the measurements after its steady state see it: the heap it reports can be set low. */
export interface Running {
  kubelet: Kubelet;
  /** Its steady-state window, just measured. */
  steady: SteadyState;
  lowHeap(on: boolean): void;
}

/**
 * 2. and 3. The real Kubelet on the Node host, through the proxy (server 127.0.0.1:<proxy port>, the
 * certificate still verified as "localhost"). It renews on its own; the window is counted in its
 * own renewals. whileRunning runs after the measurement, before the kubelet stops.
 */
export async function xsKubelet(
  cp: ControlPlane,
  proxy: CountingProxy,
  name: string,
  http: KubeletOptions["http"],
  run: Run,
  credential: Credential,
  whileRunning?: (running: Running) => Promise<void>,
  extra: Partial<KubeletOptions> = {},
): Promise<SteadyState> {
  let heap = HEAP;
  const host = createNodeHost({
    heap: () => heap,
    log: (level, message) => {
      if (level === "warn" || level === "error") run.progress(`${name}: ${level}: ${message}`);
    },
  });
  const kubelet = new Kubelet(
    {
      nodeName: name,
      server: { host: "127.0.0.1", port: proxy.port },
      tls: { serverName: "localhost", ca: cp.caDer, verify: true, ...(credential.kind === "certificate" ? { clientCertificate: credential.certificate, clientKey: credential.key } : {}) },
      token: credential.kind === "token" ? credential.token : undefined,
      leaseDurationSeconds: 4, // the minimum: renews every ~1 s
      http,
      ...extra,
    },
    host,
  );
  kubelet.start();
  try {
    await withTimeout(`${name} registered`, 30_000, kubelet.registered);
    await untilRenewals(kubelet, kubelet.lease.renewals + run.warmup, run);
    const from = proxy.snapshot();
    const r0 = kubelet.lease.renewals;
    const p0 = kubelet.status.pushes;
    await untilRenewals(kubelet, r0 + run.renewals, run);
    const to = proxy.snapshot();
    const steady = { ...diffCounts(from, to), renewals: kubelet.lease.renewals - r0, statusPushes: kubelet.status.pushes - p0 };
    await whileRunning?.({ kubelet, steady, lowHeap: (on) => void (heap = on ? LOW_HEAP : HEAP) });
    return steady;
  } finally {
    await kubelet.stop();
  }
}

/**
 * The connections a running kubelet keeps while two watches are open: its own watch of its Node,
 * plus one of the pods bound to it (what a kubelet watches next) opened here on the kubelet's own API
 * client. Counted over `renewals` renewals once both streams are open: over h2 both are streams on
 * the one connection; over HTTP/1.1 each watch holds a connection of its own.
 */
export async function withTwoWatches(kubelet: Kubelet, proxy: CountingProxy, run: Run, renewals = 5): Promise<SteadyState> {
  const name = kubelet.snapshot().nodeName;
  let podsOpen = false;
  const ignore = () => undefined;
  const pods = new Watcher(
    {
      api: kubelet.api,
      host: kubelet.host,
      log: ignore,
      failure: (what, err) => {
        run.progress(`${name}: ${what}: ${err instanceof Error ? err.message : String(err)}`);
        return "api";
      },
      success: () => void (podsOpen = true), // the stream's head said 200
    },
    `pods on ${name}`,
    { path: "/api/v1/pods", fieldSelector: `spec.nodeName=${name}` },
    { replaced: ignore, added: ignore, modified: ignore, deleted: ignore },
  );
  pods.start();
  try {
    for (const deadline = Date.now() + 15_000; !(podsOpen && pods.watching && kubelet.nodeWatch.watching); await sleep(20)) {
      if (Date.now() > deadline) throw new Error(`${name}: the two watches did not open within 15 s`);
    }
    await untilRenewals(kubelet, kubelet.lease.renewals + 1, run);
    const from = proxy.snapshot();
    const r0 = kubelet.lease.renewals;
    await untilRenewals(kubelet, r0 + renewals, run);
    return { ...diffCounts(from, proxy.snapshot()), renewals: kubelet.lease.renewals - r0 };
  } finally {
    pods.stop();
  }
}

/**
 * Bytes per Node status push: `pushes` MemoryPressure flips (low, back, low, …), each waited for
 * until the push landed and a renewal went after it. The window's bytes, minus its renewals at the
 * steady state's bytes per renewal (up and down apart), divided by its pushes: the PATCH of
 * nodes/<name>/status, its echo on the agent's own Node watch, and the Event the kubelet posts for
 * the transition (NodeHasInsufficientMemory / NodeHasSufficientMemory), TLS included.
 */
export async function statusPushBytes(running: Running, proxy: CountingProxy, run: Run, pushes = 4): Promise<{ up: number; down: number; pushes: number }> {
  const { kubelet, steady } = running;
  await untilRenewals(kubelet, kubelet.lease.renewals + 1, run);
  const from = proxy.snapshot();
  const r0 = kubelet.lease.renewals;
  const p0 = kubelet.status.pushes;
  try {
    for (let i = 0; i < pushes; i++) {
      running.lowHeap(i % 2 === 0);
      for (const deadline = Date.now() + 20_000; kubelet.status.pushes < p0 + i + 1; await sleep(5)) {
        if (Date.now() > deadline) throw new Error(`${kubelet.snapshot().nodeName}: status push ${i + 1} did not land within 20 s`);
      }
      await untilRenewals(kubelet, kubelet.lease.renewals + 1, run);
    }
  } finally {
    running.lowHeap(false);
  }
  const w = diffCounts(from, proxy.snapshot());
  const renewals = kubelet.lease.renewals - r0;
  const n = kubelet.status.pushes - p0;
  const per = (total: number, perRenewal: number) => Math.round((total - renewals * perRenewal) / n);
  return { up: per(w.up, steady.up / steady.renewals), down: per(w.down, steady.down / steady.renewals), pushes: n };
}
