// The kubelet API's routes through the HTTP server on the virtual listener: what each serves, 501
// for a missing source and for the SPDY endpoints, 404, 405, and bodies free of frozen objects.
import assert from "node:assert/strict";
import { VirtualTime, createVirtualHost } from "../../hosts/virtual/host";
import type { PeerInfo } from "../../modules/host";
import type { AuthDecision } from "../../modules/server/auth";
import { HttpServer } from "../../modules/server/http-server";
import { MetricsRegistry } from "../../modules/server/metrics";
import { createKubeletApi, summaryBody, type KubeletApiSources } from "../../modules/server/routes";

const allowAll = { check: async (): Promise<AuthDecision> => ({ allowed: true, user: { username: "system:apiserver", groups: [] } }) };

function setup(sources: KubeletApiSources, auth = allowAll) {
  const time = new VirtualTime();
  const host = createVirtualHost({ time, handler: () => "HTTP/1.1 500 Unused\r\nContent-Length: 0\r\n\r\n" });
  const server = new HttpServer(host, createKubeletApi(sources, { auth }));
  const port = server.listen({ port: 0, tls: { certificate: new Uint8Array(0), key: new Uint8Array(0) } }).port;
  const ask = async (method: string, path: string, peer?: PeerInfo) => {
    const c = host.dial(port, peer);
    c.write(`${method} ${path} HTTP/1.1\r\nHost: board\r\nConnection: close\r\n\r\n`);
    await time.advance(1);
    const text = c.received();
    const end = text.indexOf("\r\n\r\n");
    const head = text.slice(0, end);
    return { status: Number(head.split(" ")[1]), head, type: /\r\nContent-Type: ([^\r]*)/.exec(head)?.[1], body: text.slice(end + 4) };
  };
  return { ask, port };
}

const frozenInside = (value: unknown, path = "body"): string[] => {
  if (typeof value !== "object" || value === null) return [];
  const here = Object.isFrozen(value) ? [path] : [];
  return [...here, ...Object.entries(value).flatMap(([k, v]) => frozenInside(v, `${path}.${k}`))];
};

describe("kubelet API routes", () => {
  const registry = new MetricsRegistry();
  registry.counter("xs_kubelet_lease_renewals_total", "Lease renewals the API server accepted.").inc(3);
  const sources: KubeletApiSources = {
    pods: () => [{ apiVersion: "v1", kind: "Pod", metadata: { name: "p", namespace: "default" } }],
    metrics: () => registry.render(),
    resource: () => ({ cpuSeconds: 12.5, memoryWorkingSetBytes: 61440, timestampMs: 1763726400000 }),
    summary: () => summaryBody({ nodeName: "board-1", startTime: "2026-11-21T12:00:00Z", time: "2026-11-21T12:05:00Z", usageCoreNanoSeconds: 12_500_000_000, workingSetBytes: 61440, availableBytes: 200000 }),
    spec: () => ({ num_cores: 2, memory_capacity: 262144 }),
  };

  it("/healthz: ok, anonymous, GET and HEAD", async () => {
    const { ask } = setup({}, { check: async () => assert.fail("no auth for /healthz") });
    const get = await ask("GET", "/healthz");
    assert.deepEqual([get.status, get.type, get.body], [200, "text/plain; charset=utf-8", "ok"]);
    const head = await ask("HEAD", "/healthz");
    assert.deepEqual([head.status, head.body], [200, ""]);
    assert.match(head.head, /Content-Length: 2/);
    assert.equal((await ask("POST", "/healthz")).status, 405);
  });

  it("/pods: a PodList of what the source gives", async () => {
    const r = await setup(sources).ask("GET", "/pods");
    assert.equal(r.type, "application/json");
    assert.equal(r.body, '{"kind":"PodList","apiVersion":"v1","metadata":{},"items":[{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"default"}}]}');
  });

  it("/metrics: the registry's text", async () => {
    const r = await setup(sources).ask("GET", "/metrics");
    assert.equal(r.type, "text/plain; version=0.0.4; charset=utf-8");
    assert.equal(r.body, "# HELP xs_kubelet_lease_renewals_total Lease renewals the API server accepted.\n# TYPE xs_kubelet_lease_renewals_total counter\nxs_kubelet_lease_renewals_total 3\n");
  });

  it("/metrics/resource: the node's CPU and memory with ms timestamps; 503 with no reading", async () => {
    const r = await setup(sources).ask("GET", "/metrics/resource");
    assert.equal(r.type, "text/plain; version=0.0.4; charset=utf-8");
    assert.match(r.body, /^node_cpu_usage_seconds_total 12\.5 1763726400000$/m);
    assert.match(r.body, /^node_memory_working_set_bytes 61440 1763726400000$/m);
    const none = await setup({ resource: () => undefined }).ask("GET", "/metrics/resource");
    assert.deepEqual([none.status, none.body], [503, "no resource reading yet\n"]);
  });

  it("/stats/summary: the minimal Summary", async () => {
    const r = await setup(sources).ask("GET", "/stats/summary");
    assert.deepEqual(JSON.parse(r.body), {
      node: { nodeName: "board-1", startTime: "2026-11-21T12:00:00Z", cpu: { time: "2026-11-21T12:05:00Z", usageCoreNanoSeconds: 12_500_000_000 }, memory: { time: "2026-11-21T12:05:00Z", workingSetBytes: 61440, availableBytes: 200000 } },
      pods: [],
    });
  });

  it("/spec: the source's object", async () => {
    assert.deepEqual(JSON.parse((await setup(sources).ask("GET", "/spec")).body), { num_cores: 2, memory_capacity: 262144 });
  });

  it("a missing source → 501", async () => {
    const { ask } = setup({});
    for (const path of ["/pods", "/metrics", "/metrics/resource", "/stats/summary", "/spec", "/containerLogs/default/p/c"]) {
      const r = await ask("GET", path);
      assert.equal(r.status, 501, path);
      assert.match(r.body, /is not implemented on this node\n$/);
    }
  });

  it("exec, attach, portForward, run → 501: SPDY, and no container runtime", async () => {
    const { ask } = setup(sources);
    for (const [method, path] of [["POST", "/exec/default/p/c?command=sh"], ["GET", "/attach/default/p/c"], ["POST", "/portForward/default/p"], ["POST", "/run/default/p/c"]]) {
      const r = await ask(method, path);
      assert.equal(r.status, 501, path);
      assert.match(r.body, /not supported: the API server speaks SPDY for it and this node has no container runtime\n$/);
    }
  });

  it("/containerLogs goes to the logs source when there is one", async () => {
    const seen: unknown[] = [];
    const { ask } = setup({ logs: (q) => (seen.push(q), { status: 200, headers: [["Content-Type", "text/plain"]], body: "line\n" }) });
    const r = await ask("GET", "/containerLogs/default/p/c?tailLines=5");
    assert.equal(r.body, "line\n");
    assert.deepEqual(seen, [{ namespace: "default", pod: "p", container: "c", query: "tailLines=5" }]);
    assert.equal((await ask("GET", "/containerLogs/default/p")).status, 404);
  });

  it("unknown paths → 404 page not found; other methods → 405", async () => {
    const { ask } = setup(sources);
    const r = await ask("GET", "/configz");
    assert.deepEqual([r.status, r.body], [404, "404 page not found\n"]);
    const post = await ask("POST", "/pods");
    assert.equal(post.status, 405);
    assert.match(post.head, /\r\nAllow: GET\r\n/);
    assert.equal((await ask("HEAD", "/pods")).status, 405);
    assert.equal((await ask("OPTIONS", "/pods")).status, 405);
  });

  it("a denial from auth is the answer", async () => {
    const { ask } = setup(sources, { check: async () => ({ allowed: false, status: 403, message: "Forbidden (user=x, verb=get, resource=nodes, subresource(s)=[proxy])\n" }) });
    const r = await ask("GET", "/spec");
    assert.deepEqual([r.status, r.body], [403, "Forbidden (user=x, verb=get, resource=nodes, subresource(s)=[proxy])\n"]);
  });

  it("bodies hold no frozen object", () => {
    assert.deepEqual(frozenInside(sources.summary!()), []);
  });

  it("a source that throws → 500, the server unharmed", async () => {
    const { ask } = setup({
      pods: () => {
        throw new Error("no pods today");
      },
      spec: () => ({}),
    });
    assert.equal((await ask("GET", "/pods")).status, 500);
    assert.equal((await ask("GET", "/spec")).status, 200);
  });
});
