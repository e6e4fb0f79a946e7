// The kubelet API as the agent serves it: the HTTPS server on the port the Node advertises, the
// kubelet's authentication and authorization (the API server's client certificate, or a bearer
// token through TokenReview + SubjectAccessReview), and the routes fed from the agent's state. The
// routes read that state through functions (KubeletApiSources), never the Kubelet itself.
import type { ApiClient } from "../api/client";
import type { Host, Listener } from "../host";
import type { Http2Connection } from "../http/h2";
import { KubeletAuth, apiReview } from "../server/auth";
import { HttpServer, textResponse, type ServerResponse } from "../server/http-server";
import { AGENT, AgentMetrics } from "../server/agent-metrics";
import { MetricsRegistry, registerXsHeap, type ContainerReading, type ResourceReading } from "../server/metrics";
import { createKubeletApi, summaryBody, type KubeletApiSources } from "../server/routes";
import { formatTime, type WallClock } from "../time/clock";
import type { FailureKind } from "../util/retry";

export interface KubeletApiConfig {
  /** The serving certificate (DER, from the CSR signer kubernetes.io/kubelet-serving) and its PKCS#8 key. */
  certificate: Uint8Array;
  key: Uint8Array;
  /** The cluster CA, DER: client certificates it signed are the API server's. */
  clientCa?: Uint8Array;
  /** Default: what the host says (10250 on the board; 0, any free port, lets several agents share a machine). */
  port?: number;
}

/** What the API server reads of the agent (the composition root wires them). */
export interface AgentState {
  renewals(): number;
  watchEvents(): number;
  bootAt: number;
  /** The agent's credentials and their validity, for xs_kubelet_credential_expiry_seconds. */
  credentials?: { name: string; validity: { notAfter: number } }[];
  /** The device memory region (settings: memory_values), for GET /device/memory. */
  memory: () => Uint8Array;
  /** The node's pods (the pod manager): /pods, /containerLogs, the container series of /metrics/resource. */
  pods?: {
    pods(): object[];
    containers(): ContainerReading[];
    logs(namespace: string, pod: string, container: string, query: string): { status: number; message?: string; text?: string; follow?: (write: (text: string) => void, end: () => void) => () => void };
  };
}

export class KubeletApiServer {
  /** The agent's own series (a fixed set, counted and set in place). */
  readonly metrics = new AgentMetrics();
  /** The series beside them: each credential's expiry, the live XS heap where the host samples it. */
  readonly registry = new MetricsRegistry();
  readonly server: HttpServer;
  readonly auth: KubeletAuth;
  #listener: Listener | undefined;
  #host: Host;
  #config: KubeletApiConfig;

  constructor(host: Host, api: ApiClient, clock: WallClock, nodeName: string, config: KubeletApiConfig, state: AgentState, log: (message: string) => void) {
    this.#host = host;
    this.#config = config;
    const metrics = this.metrics;
    const expiry = (state.credentials ?? []).map((c) => ({ c, gauge: this.registry.gauge("xs_kubelet_credential_expiry_seconds", "Seconds until each of the agent's credentials expires (by the anchored wall clock; negative: expired).", { credential: c.name }) }));
    const xsHeap = host.xsHeap && registerXsHeap(this.registry);
    this.registry.collect(() => {
      const sample = host.xsHeap?.();
      if (xsHeap && sample) {
        xsHeap.slots.set(sample.slotBytes);
        xsHeap.chunks.set(sample.chunkBytes);
      }
      const stats = api.stats;
      metrics.set(AGENT.leaseRenewals, state.renewals());
      metrics.set(AGENT.apiBytesSent, stats.bytesSent);
      metrics.set(AGENT.apiBytesReceived, stats.bytesReceived);
      metrics.set(AGENT.tlsHandshakes, stats.connects);
      metrics.set(AGENT.networkReconnects, host.network().reconnects);
      const heap = host.heap();
      if (heap) {
        metrics.set(AGENT.heapFree, heap.free);
        metrics.set(AGENT.heapTotal, heap.total);
      }
      metrics.set(AGENT.uptimeSeconds, (host.monotonic() - state.bootAt) / 1000);
      metrics.set(AGENT.clockOffsetSeconds, clock.lastCorrectionMs / 1000);
      if (clock.anchored) for (const { c, gauge } of expiry) gauge.set(Math.round((c.validity.notAfter - clock.now()) / 1000));
      metrics.set(AGENT.watchEvents, state.watchEvents());
      metrics.set(AGENT.http2Goaways, api.protocol === "h2" ? (api.connection as Http2Connection).goaways : 0);
    });
    this.auth = new KubeletAuth({ nodeName, review: apiReview(api), now: () => host.monotonic(), log });
    const handler = createKubeletApi(new AgentSources(host, clock, nodeName, state, () => this.render()), { auth: this.auth });
    this.server = new HttpServer(host, handler, { date: () => (clock.anchored ? clock.now() : undefined) });
  }

  /** Counts one of the agent's failed requests under its kind. */
  failed(kind: FailureKind): void {
    this.metrics.failed(kind);
  }

  /** /metrics: the agent's series, then the registry's (its collect hook refreshes both first). */
  render(): string {
    const rest = this.registry.render();
    return this.metrics.render() + rest;
  }

  /** Starts serving; resolves with the port bound (what the Node advertises). */
  async listen(): Promise<number> {
    const port = this.#config.port ?? this.#host.board.kubeletPort;
    this.#listener = this.server.listen({ port, tls: { certificate: this.#config.certificate, key: this.#config.key, clientCa: this.#config.clientCa } });
    return this.#listener.ready ? await this.#listener.ready : this.#listener.port;
  }

  /** Serves a renewed certificate (same key) from the next handshake on; throws when the host cannot. */
  useCertificate(certificate: Uint8Array): void {
    if (!this.#listener?.update) throw new Error(`the ${this.#host.name} host cannot switch the kubelet API's certificate while it listens`);
    this.#listener.update({ certificate, key: this.#config.key, clientCa: this.#config.clientCa });
    this.#config.certificate = certificate;
  }

  close(): void {
    this.#listener?.close();
    this.server.close();
    this.#listener = undefined;
  }
}

/**
 * What the routes serve, read from the agent's state. A class: its seven readers are prototype
 * methods (in flash on the board), where an object literal of closures is a function object each
 * for as long as the API is served.
 */
class AgentSources implements KubeletApiSources {
  #host: Host;
  #clock: WallClock;
  #nodeName: string;
  #state: AgentState;
  #render: () => string;

  constructor(host: Host, clock: WallClock, nodeName: string, state: AgentState, render: () => string) {
    this.#host = host;
    this.#clock = clock;
    this.#nodeName = nodeName;
    this.#state = state;
    this.#render = render;
  }

  pods(): object[] {
    return this.#state.pods?.pods() ?? [];
  }

  memory(): Uint8Array {
    return this.#state.memory().slice();
  }

  logs({ namespace, pod, container, query }: { namespace: string; pod: string; container: string; query: string }): ServerResponse {
    const out = this.#state.pods?.logs(namespace, pod, container, query);
    if (!out) return textResponse(404, `pod ${namespace}/${pod} is not on this node`);
    if (out.status !== 200) return textResponse(out.status, out.message ?? "");
    return { status: 200, headers: [["Content-Type", "text/plain"]], body: out.text ?? "", stream: out.follow };
  }

  metrics(): string {
    return this.#render();
  }

  resource(): ResourceReading | undefined {
    const u = this.#host.usage?.();
    const clock = this.#clock;
    // metrics-server drops a node reporting 0: no reading is better than a false one.
    if (!u || !clock.anchored || u.cpuSeconds <= 0 || u.memoryBytes <= 0) return undefined;
    return { cpuSeconds: u.cpuSeconds, memoryWorkingSetBytes: u.memoryBytes, timestampMs: Math.floor(clock.now()), containers: this.#state.pods?.containers() };
  }

  summary(): object {
    const host = this.#host;
    const u = host.usage?.();
    const heap = host.heap();
    const now = this.#clock.anchored ? this.#clock.now() : 0;
    return summaryBody({
      nodeName: this.#nodeName,
      startTime: now ? formatTime(now - (host.monotonic() - this.#state.bootAt)) : "",
      time: now ? formatTime(now) : "",
      usageCoreNanoSeconds: Math.round((u?.cpuSeconds ?? 0) * 1e9),
      workingSetBytes: u?.memoryBytes ?? 0,
      availableBytes: heap?.free ?? 0,
    });
  }

  spec(): object {
    return { num_cores: 1, memory_capacity: this.#host.heap()?.total ?? 0, machine_id: "", system_uuid: "", boot_id: "" };
  }
}
