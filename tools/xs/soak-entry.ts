// Bundled (esbuild, IIFE) and evaluated inside the XS engine for the soak (tools/xs/soak.ts): ONE
// long-lived agent on the virtual host, driven forward in steps by the Node side, each step one XS
// delivery. Every cycle of 10 s of virtual time (one Lease renewal interval) carries a MemoryPressure
// flip (a status push), an edit of the Node by someone else (an event on the agent's Node watch) and
// a /metrics scrape of the kubelet API over one kept-alive connection (a served request), each in
// every cycle or one cycle in n (SoakMix). Between steps the driver collects garbage and reads the
// live slots and bytes; the scripted server's compute is kept apart from the agent's (channel.ts).
import { rig, rigWork, type Rig } from "../scenarios/harness";
import { send, server } from "./channel";
import type { VirtualClient } from "../../hosts/virtual/host";

declare const gc: () => void;

/** What one step reports (the counts are the agent's own, since boot; serverCompute is this step's). */
export interface SoakCounts {
  ok: boolean;
  error?: string;
  cycles: number;
  renewals: number;
  pushes: number;
  /** Events on the agent's Node and pod watches (the edits, and the echoes of its own pushes). */
  watchEvents: number;
  /** Edits of the Node by someone else the rig made. */
  edits: number;
  /** Responses the kubelet API served, and the 200s the scraper read back. */
  served: number;
  scraped: number;
  virtualMs: number;
  serverCompute: number;
}

const CYCLE_MS = 10_000;
const LOW = { free: 8 * 1024, total: 256 * 1024 };
const FINE = { free: 200 * 1024, total: 256 * 1024 };
/** The virtual host has no TLS: the dialer says what the listener would have verified. */
const API_SERVER_PEER = { address: "192.0.2.1", clientCertificate: { commonName: "kube-apiserver-kubelet-client", organizations: ["system:masters"] } };
const OK = "HTTP/1.1 200 OK\r\n";
const SCRAPE = "GET /metrics HTTP/1.1\r\nHost: board-1:10250\r\nUser-Agent: kube-apiserver\r\nAccept-Encoding: gzip\r\n\r\n";

/** How often (in cycles) each kind of work comes: 1 every cycle, 10 every tenth, 0 never. */
export interface SoakMix {
  flip: number;
  edit: number;
  scrape: number;
}

let mix: SoakMix = { flip: 1, edit: 1, scrape: 1 };
let r: Rig | undefined;
let client: VirtualClient | undefined;
let cycles = 0;
let edits = 0;
let scraped = 0;
let tail = "";

function counts(): SoakCounts {
  const k = r!.kubelet;
  return {
    ok: true,
    cycles,
    renewals: k.lease.renewals,
    pushes: k.status.pushes,
    watchEvents: k.nodeWatch.events + k.podWatch.events,
    edits,
    served: k.apiServer?.server.stats.responses ?? 0,
    scraped,
    virtualMs: r!.time.now,
    serverCompute: server.compute,
  };
}

const fail = (error: unknown) => send({ ok: false, error: String(error && (error as Error).stack ? `${(error as Error).message}\n${(error as Error).stack}` : error) });

/** Boots the agent (registered, Lease renewed, watches open, kubelet API listening) and opens the scraper's connection. */
function start(m: SoakMix): void {
  server.compute = 0;
  mix = m;
  r = rig({ record: false, history: 64, kubeletApi: { certificate: new Uint8Array([0x30, 0]), key: new Uint8Array([0x30, 0]), port: 10250 } });
  r.kubelet.start();
  r.time.advance(30_000).then(() => {
    client = r!.host.dial(10250, API_SERVER_PEER);
    send(counts());
  }, fail);
}

/** Whether the work that comes every `every` cycles is due in this one (phase: which of them). */
const due = (every: number, phase: number) => every > 0 && cycles % every === phase % every;
let flips = 0;

/**
 * One renewal interval: at 0 s the heap goes low or fine again (a MemoryPressure flip: the next
 * condition check pushes status), at 3 s someone else edits the Node (an annotation: an event on the
 * agent's Node watch), at 6 s kube-apiserver's proxy scrapes /metrics; each when the mix says so,
 * spread over the cycles (an edit halfway between two flips). Time moves in one step when nothing
 * is due: every advance lets promises settle, work the meter counts as the agent's.
 */
async function cycle(rr: Rig): Promise<void> {
  cycles++;
  const flip = due(mix.flip, 0);
  const edit = due(mix.edit, Math.floor(mix.edit / 2));
  const scrape = due(mix.scrape, Math.floor(mix.scrape / 4));
  let at = 0;
  if (flip) {
    rigWork(() => {
      flips++;
      rr.heap = flips % 2 === 0 ? FINE : LOW;
    });
  }
  if (edit) {
    await rr.time.advance(3_000 - at);
    at = 3_000;
    rigWork(() => {
      const node = rr.api.nodes.get("board-1");
      rr.api.put("nodes", { ...node, metadata: { ...node.metadata, annotations: { ...node.metadata.annotations, "example.com/edit": String(cycles) } } });
      edits++;
    });
  }
  if (scrape) {
    await rr.time.advance(6_000 - at);
    at = 6_000;
    if (!client || client.closed) client = rr.host.dial(10250, API_SERVER_PEER);
    client.write(SCRAPE);
  }
  await rr.time.advance(CYCLE_MS - at);
  if (scrape) {
    rigWork(() => {
      // Only what arrived since the last read is kept: the status lines are counted, the bodies dropped.
      const text = tail + client!.take();
      for (let i = text.indexOf(OK); i >= 0; i = text.indexOf(OK, i + 1)) scraped++;
      tail = text.slice(1 - OK.length); // a status line cut in two is found whole next time, never twice
    });
  }
}

/** Runs cycles until the agent's renewals reach `renewals` (or `maxCycles` ran), then reports. */
function run(renewals: number, maxCycles: number): void {
  server.compute = 0;
  const rr = r!;
  (async () => {
    for (let n = 0; rr.kubelet.lease.renewals < renewals && n < maxCycles; n++) await cycle(rr);
  })().then(() => send(counts()), fail);
}

/**
 * The driver's commands, {op, args} as JSON, through xsnap's handleCommand rather than evaluated
 * code: XS interns a name ("#1", "#2" …) for every script it evaluates and never frees it, so a
 * delivery by evaluate would grow the key table by one each — a leak of the harness, not the agent.
 */
(globalThis as any).handleCommand = (message: ArrayBuffer) => {
  const { op, args } = JSON.parse(new TextDecoder().decode(message)) as { op: string; args: number[] };
  if (op === "start") start({ flip: args[0], edit: args[1], scrape: args[2] });
  else if (op === "run") run(args[0], args[1]);
  else if (op === "gc") gc();
  else throw new Error(`soak: no command "${op}"`);
};
