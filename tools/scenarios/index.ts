// Named scenarios, each a deterministic run of the kubelet against the scripted API in virtual time.
// They run under Node (test/unit) and inside the real XS engine (test/xs); what both send must be
// identical byte for byte (the requests, and every byte written: HTTP/2 frames and HPACK included).
import type { KubeletOptions } from "../../modules/kubelet/kubelet";
import { scriptedNodeCertificate } from "../../hosts/virtual/scripted-api";
import { rig, rigWork, type Rig } from "./harness";

export interface ScenarioResult {
  requests: string[];
  /** Every client write, as hex. */
  wire: string[];
  /** The virtual time (ms) at which the steady state began: registration done, Lease renewed once. */
  steadyFrom: number;
  /** Client bytes written before steadyFrom. */
  bytesBeforeSteady: number;
  renewals: number;
  renewalsBeforeSteady: number;
  led: string;
  /** The status lines of what the kubelet API served, when the scenario dials it. */
  served?: string[];
  /** Node status pushes and watch events (Node and pods) the agent counted. */
  pushes?: number;
  watchEvents?: number;
}

function outcome(r: Rig, steady: { bytes: number; renewals: number; at: number }): ScenarioResult {
  return {
    requests: r.host.requests,
    wire: rigWork(() => r.host.wire),
    steadyFrom: steady.at,
    bytesBeforeSteady: steady.bytes,
    renewals: r.kubelet.lease.renewals,
    renewalsBeforeSteady: steady.renewals,
    led: r.kubelet.led.state,
    pushes: r.kubelet.status.pushes,
    watchEvents: r.kubelet.nodeWatch.events + r.kubelet.podWatch.events,
  };
}

/**
 * Two minutes in steady state with `flips` MemoryPressure flips (the heap low, then fine again, 20 s
 * apart: each a status push) and `edits` edits of the Node by someone else (an annotation: each a
 * watch event): the difference between two counts is what one push or one event costs the agent.
 */
async function churn(flips: number, edits: number): Promise<ScenarioResult> {
  const r = rig();
  r.kubelet.start();
  await r.time.advance(30_000);
  const steady = { bytes: written(r), renewals: r.kubelet.lease.renewals, at: r.time.now };
  for (let i = 0; i < 6; i++) {
    if (i < flips) r.heap = i % 2 === 0 ? { free: 8 * 1024, total: 256 * 1024 } : { free: 200 * 1024, total: 256 * 1024 };
    for (let e = 0; e < edits / 6; e++) {
      const node = r.api.nodes.get("board-1");
      r.api.put("nodes", { ...node, metadata: { ...node.metadata, annotations: { ...node.metadata.annotations, "example.com/edit": `${i}-${e}` } } });
      await r.time.advance(1_000);
    }
    await r.time.advance(20_000 - 1_000 * Math.floor(edits / 6));
  }
  await r.time.advance(150_000 - r.time.now);
  await r.kubelet.stop();
  return outcome(r, steady);
}

const written = (r: Rig) => rigWork(() => r.host.wire.reduce((n, hex) => n + hex.length / 2, 0));

/** Boots, runs for ms of virtual time, stops; notes where the steady state began (after 30 s). */
async function runFor(ms: number, options: Partial<KubeletOptions> = {}): Promise<ScenarioResult> {
  const r = rig(options);
  r.kubelet.start();
  await r.time.advance(30_000);
  const steady = { bytes: written(r), renewals: r.kubelet.lease.renewals, at: r.time.now };
  await r.time.advance(ms - 30_000);
  await r.kubelet.stop();
  return outcome(r, steady);
}

/** The virtual host has no TLS: the dialer says what the listener would have verified. */
const API_SERVER_PEER = { address: "192.0.2.1", clientCertificate: { commonName: "kube-apiserver-kubelet-client", organizations: ["system:masters"] } };
const SCRAPE = "GET /metrics HTTP/1.1\r\nHost: board-1:10250\r\nUser-Agent: kube-apiserver\r\nAccept-Encoding: gzip\r\n\r\n";

/**
 * A minute of the agent with its kubelet API open, scraped `scrapes` times (one a second from 30 s,
 * over one kept-alive connection, as kube-apiserver's proxy does): the difference between two
 * counts is what served requests cost.
 */
async function scraped(scrapes: number): Promise<ScenarioResult> {
  const r = rig({ kubeletApi: { certificate: new Uint8Array([0x30, 0]), key: new Uint8Array([0x30, 0]), port: 10250 } });
  r.kubelet.start();
  await r.time.advance(30_000);
  const steady = { bytes: written(r), renewals: r.kubelet.lease.renewals, at: r.time.now };
  const served: string[] = [];
  const client = r.host.dial(10250, API_SERVER_PEER);
  let seen = 0;
  for (let i = 0; i < scrapes; i++) {
    client.write(SCRAPE);
    await r.time.advance(1_000);
    rigWork(() => {
      const text = client.received();
      served.push(text.slice(seen, text.indexOf("\r\n", seen)));
      seen = text.length;
    });
  }
  client.close();
  await r.time.advance(60_000 - r.time.now);
  await r.kubelet.stop();
  return { ...outcome(r, steady), served };
}

/** From power-up to the Node registered and its Lease renewed once, then stop: what a boot costs. */
async function bootOnly(): Promise<ScenarioResult> {
  const r = rig();
  r.kubelet.start();
  await r.time.until(() => r.kubelet.lease.renewals > 0, 30_000, "the first renewal");
  const steady = { bytes: written(r), renewals: r.kubelet.lease.renewals, at: r.time.now };
  await r.kubelet.stop();
  return outcome(r, steady);
}

/** A pod's whole life: the watch event, status patches, a crash loop, logs served, deletion. */
async function podLife(): Promise<ScenarioResult> {
  const r = rig({ kubeletApi: { certificate: new Uint8Array([0x30, 0]), key: new Uint8Array([0x30, 0]), port: 10250 } });
  r.kubelet.start();
  await r.time.advance(5_000);
  const steady = { bytes: written(r), renewals: r.kubelet.lease.renewals, at: r.time.now };
  const scheduled = { type: "PodScheduled", status: "True", lastTransitionTime: "2026-11-21T12:00:00Z" };
  const pod = (name: string, args: string[], restartPolicy: string) => ({
    metadata: { name, namespace: "default", uid: `uid-${name}` },
    spec: { nodeName: "board-1", restartPolicy, containers: [{ name: "main", image: "xs-kubelet.dev/hello:0.1", args }] },
    status: { phase: "Pending", conditions: [scheduled] },
  });
  r.api.put("pods", pod("hello", [], "Always"));
  r.api.put("pods", pod("job", ["--count=3"], "Never"));
  r.api.put("pods", pod("crash", ["--count=1", "--exit-code=1"], "Always"));
  await r.time.advance(35_000);
  const served: string[] = [];
  for (const target of ["/containerLogs/default/hello/main?tailLines=2&timestamps=true", "/containerLogs/default/crash/main?previous=true", "/pods"]) {
    const client = r.host.dial(10250, API_SERVER_PEER);
    client.write(`GET ${target} HTTP/1.1\r\nHost: board-1:10250\r\nConnection: close\r\n\r\n`);
    await r.time.advance(200);
    served.push(rigWork(() => client.received()));
  }
  const hello = r.api.pods.get("default/hello");
  r.api.put("pods", { ...hello, metadata: { ...hello.metadata, deletionTimestamp: "2026-11-21T12:00:40Z", deletionGracePeriodSeconds: 30 } });
  await r.time.advance(5_000);
  await r.kubelet.stop();
  return { ...outcome(r, steady), served };
}

/**
 * A client certificate of ten minutes renewed by the board: the CSR signed and sent, the watch for its
 * issuance, the SelfSubjectReview on a fresh connection, every request after it with the new
 * certificate (the scripted API refuses the old one once it expired), the watches moved over.
 */
async function rotation(): Promise<ScenarioResult> {
  const epoch = Date.UTC(2026, 10, 21, 12, 0, 0);
  const first = scriptedNodeCertificate("board-1", epoch - 1000, epoch - 1000 + 600_000);
  const store = new Map<string, Uint8Array>();
  const r = rig({ token: undefined, tls: { serverName: "192.0.2.1", verify: false, clientCertificate: first, clientKey: new Uint8Array([0x30, 0]) }, store }, (p) => {
    p.api.csrLifetimeMs = 600_000;
  });
  r.kubelet.start();
  await r.time.advance(30_000);
  const steady = { bytes: written(r), renewals: r.kubelet.lease.renewals, at: r.time.now };
  await r.time.advance(720_000 - 30_000);
  await r.kubelet.stop();
  return { ...outcome(r, steady), served: [`rotations ${r.kubelet.rotators[0].rotations}, kept ${store.has("client-cert")}`] };
}

export const scenarios: Record<string, () => Promise<ScenarioResult>> = {
  "a client certificate renewed through the CSR API": rotation,
  "a pod's life: scheduled, running, crash-looping, logs served, deleted": podLife,
  "a minute with the kubelet API open, not scraped": () => scraped(0),
  "a minute with the kubelet API open, /metrics scraped 10 times": () => scraped(10),
  "steady state for ten minutes": () => runFor(600_000),
  "steady state for ten minutes over HTTP/1.1": () => runFor(600_000, { http: "http/1.1" }),
  "boot, register, renew for a minute": () => runFor(60_000),
  "two minutes, no churn": () => churn(0, 0),
  "two minutes, 6 MemoryPressure flips": () => churn(6, 0),
  "two minutes, 30 edits of the Node": () => churn(0, 30),
  "boot to registered": bootOnly,
  async "existing node, memory pressure, lease deleted"() {
    const r = rig({}, (p) => {
      p.api.nodes.set("board-1", { apiVersion: "v1", kind: "Node", metadata: { name: "board-1", uid: "old-uid", labels: { stale: "x" } }, status: { conditions: [] } });
    });
    r.kubelet.start();
    await r.time.advance(25_000);
    r.heap = { free: 10 * 1024, total: 256 * 1024 };
    await r.time.advance(11_000);
    r.api.leases.clear();
    await r.time.advance(11_000);
    await r.kubelet.stop({ decommission: true });
    return outcome(r, { bytes: 0, renewals: 0, at: 0 });
  },
  async "outage and recovery, chunked responses"() {
    const r = rig({}, (p) => {
      p.api.chunked = true;
    });
    r.kubelet.start();
    await r.time.advance(15_000);
    r.offline = true;
    await r.time.advance(60_000);
    r.offline = false;
    await r.time.advance(15_000);
    await r.kubelet.stop();
    return outcome(r, { bytes: 0, renewals: 0, at: 0 });
  },
};
