// The kubelet API's routes (pkg/kubelet/server/server.go, the parts a node without containers can
// answer). They read state through the functions they are given — never the Kubelet — and a missing
// function means 501, as Virtual Kubelet's handlers do. Every request but /healthz is authenticated
// and authorized first (auth.ts), so an unknown path answers 401/403 before 404, as the kubelet's.
import type { PeerInfo } from "../host";
import { verbFor, type AuthDecision } from "./auth";
import { textResponse, type RequestHandler, type ServerRequest, type ServerResponse } from "./http-server";
import { METRICS_CONTENT_TYPE, resourceMetricsText, type ResourceReading } from "./metrics";

/**
 * Where the routes get what they serve. Each returns fresh objects (never a module-level, frozen
 * one: on the board JSON.stringify would throw on it). A missing function: 501.
 */
export interface KubeletApiSources {
  /** /pods: the pods bound to this node, as v1 Pod objects. */
  pods?: () => object[];
  /** /metrics: the agent's registry in the text format (MetricsRegistry.render). */
  metrics?: () => string;
  /** /metrics/resource; undefined while there is no reading yet (503). Never report 0: metrics-server drops the node. */
  resource?: () => ResourceReading | undefined;
  /** /stats/summary (see summaryBody). */
  summary?: () => object;
  /** /spec. */
  spec?: () => object;
  /** /device/memory: the 1 KiB device memory region (k3s-pico-node's), raw. */
  memory?: () => Uint8Array;
  /** /containerLogs/<namespace>/<pod>/<container>?<query>: absent until the node runs pods. */
  logs?: (request: { namespace: string; pod: string; container: string; query: string }) => ServerResponse | Promise<ServerResponse>;
}

export interface KubeletApiOptions {
  /** Authentication and authorization (a KubeletAuth). */
  auth: { check(method: string, path: string, headers: Map<string, string>, peer: PeerInfo): Promise<AuthDecision> };
}

const JSON_TYPE = "application/json";

function json(value: unknown): ServerResponse {
  return { status: 200, headers: [["Content-Type", JSON_TYPE]], body: JSON.stringify(value) };
}

const notImplemented = (what: string) => textResponse(501, `${what} is not implemented on this node`);
const methodNotAllowed = (allow: string): ServerResponse => ({ status: 405, headers: [["Allow", allow], ["Content-Type", "text/plain; charset=utf-8"]], body: "Method Not Allowed\n" });

/** The streaming endpoints: the API server always speaks SPDY/3.1 to a kubelet for these. */
const STREAMING: readonly string[] = Object.freeze(["/exec", "/attach", "/portForward", "/run"]);

const under = (path: string, prefix: string) => path === prefix || path.startsWith(`${prefix}/`);

/** The request handler of the kubelet API (give it to new HttpServer(host, handler, …)). */
export function createKubeletApi(sources: KubeletApiSources, options: KubeletApiOptions): RequestHandler {
  return async (request: ServerRequest): Promise<ServerResponse> => {
    const { method, path } = request;
    if (path === "/healthz") {
      // Anonymous, as the board's health is no secret and probes carry no credentials.
      if (method !== "GET" && method !== "HEAD") return methodNotAllowed("GET, HEAD");
      return { status: 200, headers: [["Content-Type", "text/plain; charset=utf-8"]], body: "ok" };
    }
    // A method without an authorization verb (HEAD, OPTIONS, …) would be denied anyway: no review.
    if (verbFor(method) === undefined) return methodNotAllowed("GET");
    const decision = await options.auth.check(method, path, request.headers, request.peer);
    if (!decision.allowed) return textResponse(decision.status, decision.message, decision.status !== 401);

    for (const prefix of STREAMING) {
      if (under(path, prefix)) {
        return textResponse(501, `${prefix.slice(1)} is not supported: the API server speaks SPDY for it and this node has no container runtime`);
      }
    }
    if (under(path, "/containerLogs")) {
      if (method !== "GET") return methodNotAllowed("GET");
      const parts = path.split("/");
      if (parts.length !== 5 || parts.slice(2).some((p) => p === "")) return textResponse(404, "404 page not found");
      if (!sources.logs) return notImplemented("containerLogs");
      return sources.logs({ namespace: parts[2], pod: parts[3], container: parts[4], query: request.query });
    }
    const route = ROUTES[path];
    if (route === undefined) return textResponse(404, "404 page not found");
    if (method !== "GET") return methodNotAllowed("GET");
    switch (route) {
      case Route.Pods: {
        if (!sources.pods) return notImplemented("/pods");
        return json({ kind: "PodList", apiVersion: "v1", metadata: {}, items: sources.pods() });
      }
      case Route.Metrics: {
        if (!sources.metrics) return notImplemented("/metrics");
        return { status: 200, headers: [["Content-Type", METRICS_CONTENT_TYPE]], body: sources.metrics() };
      }
      case Route.Resource: {
        if (!sources.resource) return notImplemented("/metrics/resource");
        const r = sources.resource();
        if (!r || !Number.isFinite(r.cpuSeconds) || !Number.isFinite(r.memoryWorkingSetBytes) || !Number.isFinite(r.timestampMs)) {
          return textResponse(503, "no resource reading yet");
        }
        return { status: 200, headers: [["Content-Type", METRICS_CONTENT_TYPE]], body: resourceMetricsText(r) };
      }
      case Route.Summary: {
        if (!sources.summary) return notImplemented("/stats/summary");
        return json(sources.summary());
      }
      case Route.Spec: {
        if (!sources.spec) return notImplemented("/spec");
        return json(sources.spec());
      }
      case Route.Memory: {
        if (!sources.memory) return notImplemented("/device/memory");
        return { status: 200, headers: [["Content-Type", "application/octet-stream"]], body: sources.memory() };
      }
    }
    return textResponse(404, "404 page not found");
  };
}

const Route = Object.freeze({ Pods: 1, Metrics: 2, Resource: 3, Summary: 4, Spec: 5, Memory: 6 });

const ROUTES: Readonly<Record<string, number>> = Object.freeze({
  "/pods": Route.Pods,
  "/pods/": Route.Pods,
  "/metrics": Route.Metrics,
  "/metrics/resource": Route.Resource,
  "/stats/summary": Route.Summary,
  "/stats/summary/": Route.Summary,
  "/spec": Route.Spec,
  "/spec/": Route.Spec,
  "/device/memory": Route.Memory,
});

export interface SummaryInput {
  nodeName: string;
  /** RFC 3339: when the agent started, and when these figures were read. */
  startTime: string;
  time: string;
  /** Cumulative CPU time in core-nanoseconds. */
  usageCoreNanoSeconds: number;
  workingSetBytes: number;
  availableBytes: number;
}

/** /stats/summary's minimal shape (stats/v1alpha1 Summary): the node part, no pods. A fresh object. */
export function summaryBody(s: SummaryInput): object {
  return {
    node: {
      nodeName: s.nodeName,
      startTime: s.startTime,
      cpu: { time: s.time, usageCoreNanoSeconds: s.usageCoreNanoSeconds },
      memory: { time: s.time, workingSetBytes: s.workingSetBytes, availableBytes: s.availableBytes },
    },
    pods: [],
  };
}
