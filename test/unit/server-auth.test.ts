// Kubelet API authentication and authorization (pkg/kubelet/server/auth.go): /healthz anonymous,
// client certificates and bearer tokens (TokenReview), SubjectAccessReviews per subresource, the
// kubelet's 401/403 texts, the caches' TTLs and bound, and a review that cannot be made → 503.
import assert from "node:assert/strict";
import { VirtualTime, createVirtualHost, type ParsedRequest, type ScriptedAnswer } from "../../hosts/virtual/host";
import { FakeApi, httpDate } from "../../hosts/virtual/scripted-api";
import { ApiClient } from "../../modules/api/client";
import type { PeerInfo } from "../../modules/host";
import { AUTH_DEFAULTS, KubeletAuth, LruCache, apiReview, forbiddenMessage, subresourcesFor, verbFor, type Review, type ReviewKind } from "../../modules/server/auth";
import { HttpServer } from "../../modules/server/http-server";
import { createKubeletApi } from "../../modules/server/routes";
import { WallClock } from "../../modules/time/clock";

interface Scripted {
  review: Review;
  calls: { kind: ReviewKind; body: any }[];
  tokens: Map<string, { username: string; groups?: string[]; uid?: string }>;
  /** "user verb subresource" allowed. */
  allow: Set<string>;
  fail?: "reject" | "500" | "garbage";
}

function scripted(): Scripted {
  const s: Scripted = {
    calls: [],
    tokens: new Map([["good", { username: "system:serviceaccount:kube-system:metrics-server", uid: "u-1", groups: ["system:serviceaccounts"] }]]),
    allow: new Set(),
    review: async (kind, body: any) => {
      s.calls.push({ kind, body: JSON.parse(JSON.stringify(body)) });
      if (s.fail === "reject") throw new Error("connect ECONNREFUSED");
      if (s.fail === "500") return { status: 500, json: { kind: "Status", message: "etcd is down" } };
      if (s.fail === "garbage") return { status: 201, json: { kind: kind } };
      if (kind === "TokenReview") {
        const user = s.tokens.get(body.spec.token);
        return { status: 201, json: { kind, status: user ? { authenticated: true, user } : { authenticated: false, error: "invalid bearer token" } } };
      }
      const a = body.spec.resourceAttributes;
      const allowed = s.allow.has(`${body.spec.user} ${a.verb} ${a.subresource}`);
      return { status: 201, json: { kind, status: { allowed, reason: allowed ? "RBAC" : "" } } };
    },
  };
  return s;
}

const TLS = { certificate: new Uint8Array(0), key: new Uint8Array(0) };
const MS = "system:serviceaccount:kube-system:metrics-server";
const APISERVER: PeerInfo = { address: "10.0.0.1", clientCertificate: { commonName: "system:apiserver", organizations: ["system:masters", "kube-apiserver"] } };

function setup(options: Partial<ConstructorParameters<typeof KubeletAuth>[0]> = {}) {
  const time = new VirtualTime();
  const s = scripted();
  const auth = new KubeletAuth({ nodeName: "board-1", review: s.review, now: () => time.now, ...options });
  return { time, s, auth };
}

const bearer = (token: string) => new Map([["authorization", `Bearer ${token}`]]);
const anon: PeerInfo = { address: "10.0.0.9" };

describe("kubelet API auth", () => {
  describe("through the server", () => {
    function serve() {
      const { time, s, auth } = setup();
      const host = createVirtualHost({ time, handler: () => "HTTP/1.1 500 Unused\r\nContent-Length: 0\r\n\r\n" });
      const server = new HttpServer(host, createKubeletApi({ pods: () => [] }, { auth }));
      const port = server.listen({ port: 10250, tls: TLS }).port;
      const ask = async (text: string, peer?: PeerInfo) => {
        const c = host.dial(port, peer);
        c.write(text);
        await time.advance(1);
        return c.received();
      };
      return { time, s, ask };
    }

    it("/healthz is anonymous and asks for no review", async () => {
      const { s, ask } = serve();
      const text = await ask("GET /healthz HTTP/1.1\r\nHost: b\r\n\r\n");
      assert.equal(text, "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 2\r\n\r\nok");
      assert.equal(s.calls.length, 0);
    });

    it("no credentials → 401 Unauthorized (the kubelet's text, no newline), no review", async () => {
      const { s, ask } = serve();
      const text = await ask("GET /pods HTTP/1.1\r\nHost: b\r\n\r\n");
      assert.equal(text, "HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 12\r\n\r\nUnauthorized");
      assert.equal(s.calls.length, 0);
    });

    it("an unknown path answers 401 before 404, as the kubelet's filter does", async () => {
      const { ask } = serve();
      assert.match(await ask("GET /nope HTTP/1.1\r\nHost: b\r\n\r\n"), /^HTTP\/1\.1 401 /);
    });

    it("a denied client certificate → 403 with user, verb, resource and subresources", async () => {
      const { s, ask } = serve();
      const text = await ask("GET /pods HTTP/1.1\r\nHost: b\r\n\r\n", APISERVER);
      assert.match(text, /^HTTP\/1\.1 403 Forbidden\r\n/);
      assert.ok(text.endsWith("\r\n\r\nForbidden (user=system:apiserver, verb=get, resource=nodes, subresource(s)=[pods proxy])\n"), text);
      assert.deepEqual(s.calls.map((c) => c.kind), ["SubjectAccessReview", "SubjectAccessReview"]);
    });

    it("an allowed token reaches the route", async () => {
      const { s, ask } = serve();
      s.allow.add(`${MS} get pods`);
      const text = await ask("GET /pods HTTP/1.1\r\nHost: b\r\nAuthorization: Bearer good\r\n\r\n");
      assert.ok(text.endsWith('{"kind":"PodList","apiVersion":"v1","metadata":{},"items":[]}'), text);
    });
  });

  it("a client certificate: user = CN, groups = O + system:authenticated; no TokenReview even with a token", async () => {
    const { s, auth } = setup();
    s.allow.add("system:apiserver get proxy");
    const d = await auth.check("GET", "/containerLogs/ns/p/c", bearer("good"), APISERVER);
    assert.deepEqual(d, { allowed: true, user: { username: "system:apiserver", groups: ["system:masters", "kube-apiserver", "system:authenticated"] } });
    assert.deepEqual(s.calls, [
      {
        kind: "SubjectAccessReview",
        body: {
          apiVersion: "authorization.k8s.io/v1",
          kind: "SubjectAccessReview",
          spec: { resourceAttributes: { verb: "get", version: "v1", resource: "nodes", subresource: "proxy", name: "board-1" }, user: "system:apiserver", groups: ["system:masters", "kube-apiserver", "system:authenticated"] },
        },
      },
    ]);
  });

  it("a bearer token: a TokenReview, then a SubjectAccessReview for the user it names", async () => {
    const { s, auth } = setup();
    s.allow.add(`${MS} get metrics`);
    const d = await auth.check("GET", "/metrics/resource", bearer("good"), anon);
    assert.equal(d.allowed, true);
    assert.deepEqual(s.calls[0], { kind: "TokenReview", body: { apiVersion: "authentication.k8s.io/v1", kind: "TokenReview", spec: { token: "good" } } });
    assert.deepEqual(s.calls[1].body.spec, {
      resourceAttributes: { verb: "get", version: "v1", resource: "nodes", subresource: "metrics", name: "board-1" },
      user: MS,
      groups: ["system:serviceaccounts", "system:authenticated"],
      uid: "u-1",
    });
  });

  it("a token the API server does not know → 401; a header that is not a bearer token → 401 without a review", async () => {
    const { s, auth } = setup();
    assert.deepEqual(await auth.check("GET", "/pods", bearer("bad"), anon), { allowed: false, status: 401, message: "Unauthorized" });
    assert.equal(s.calls.length, 1);
    assert.equal((await auth.check("GET", "/pods", new Map([["authorization", "Basic dTpw"]]), anon)).allowed, false);
    assert.equal(s.calls.length, 1);
  });

  it("/pods: nodes/pods first, nodes/proxy when that is denied (KubeletFineGrainedAuthz)", async () => {
    const { s, auth } = setup();
    s.allow.add("system:apiserver get proxy");
    assert.equal((await auth.check("GET", "/pods", new Map(), APISERVER)).allowed, true);
    assert.deepEqual(s.calls.map((c) => c.body.spec.resourceAttributes.subresource), ["pods", "proxy"]);
  });

  it("the 403 text is the kubelet's", () => {
    assert.equal(forbiddenMessage("alice", "get", ["stats"]), "Forbidden (user=alice, verb=get, resource=nodes, subresource(s)=[stats])\n");
    assert.equal(forbiddenMessage("bob", "create", ["pods", "proxy"]), "Forbidden (user=bob, verb=create, resource=nodes, subresource(s)=[pods proxy])\n");
  });

  it("verbs from methods", () => {
    assert.deepEqual(
      ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"].map(verbFor),
      ["get", "create", "update", "patch", "delete", undefined, undefined],
    );
  });

  describe("subresource mapping (every row)", () => {
    const rows: [string, string[], string[]][] = [
      // path, fine-grained (1.33 default), without
      ["/stats/summary", ["stats"], ["stats"]],
      ["/stats", ["stats"], ["stats"]],
      ["/stats/container", ["stats"], ["stats"]],
      ["/metrics", ["metrics"], ["metrics"]],
      ["/metrics/resource", ["metrics"], ["metrics"]],
      ["/metrics/cadvisor", ["metrics"], ["metrics"]],
      ["/logs/", ["log"], ["log"]],
      ["/logs/messages", ["log"], ["log"]],
      ["/pods", ["pods", "proxy"], ["proxy"]],
      ["/pods/", ["pods", "proxy"], ["proxy"]],
      ["/runningpods/", ["pods", "proxy"], ["proxy"]],
      ["/healthz", ["healthz", "proxy"], ["proxy"]],
      ["/configz", ["configz", "proxy"], ["proxy"]],
      ["/containerLogs/ns/pod/c", ["proxy"], ["proxy"]],
      ["/exec/ns/pod/c", ["proxy"], ["proxy"]],
      ["/attach/ns/pod/c", ["proxy"], ["proxy"]],
      ["/portForward/ns/pod", ["proxy"], ["proxy"]],
      ["/run/ns/pod/c", ["proxy"], ["proxy"]],
      ["/spec", ["proxy"], ["proxy"]],
      ["/", ["proxy"], ["proxy"]],
      ["/statsx", ["proxy"], ["proxy"]],
      ["/metricsfoo", ["proxy"], ["proxy"]],
      ["/podsx", ["proxy"], ["proxy"]],
    ];
    for (const [path, fine, coarse] of rows) {
      it(`${path} → ${fine.join(", ")}`, () => {
        assert.deepEqual(subresourcesFor(path, true), fine);
        assert.deepEqual(subresourcesFor(path, false), coarse);
      });
    }
  });

  describe("caches", () => {
    it("a token's review is kept 2 min", async () => {
      const { time, s, auth } = setup();
      s.allow.add(`${MS} get stats`);
      await auth.check("GET", "/stats/summary", bearer("good"), anon);
      await time.advance(AUTH_DEFAULTS.authenticationTtlMs - 1);
      await auth.check("GET", "/stats/summary", bearer("good"), anon);
      assert.equal(s.calls.filter((c) => c.kind === "TokenReview").length, 1);
      await time.advance(1);
      await auth.check("GET", "/stats/summary", bearer("good"), anon);
      assert.equal(s.calls.filter((c) => c.kind === "TokenReview").length, 2);
    });

    it("an unknown token's answer is kept too (2 min)", async () => {
      const { time, s, auth } = setup();
      await auth.check("GET", "/pods", bearer("bad"), anon);
      await auth.check("GET", "/pods", bearer("bad"), anon);
      assert.equal(s.calls.length, 1);
      await time.advance(120_000);
      await auth.check("GET", "/pods", bearer("bad"), anon);
      assert.equal(s.calls.length, 2);
    });

    it("allowed decisions are kept 5 min, denied ones 30 s", async () => {
      const { time, s, auth } = setup();
      s.allow.add("system:apiserver get stats");
      const sars = () => s.calls.filter((c) => c.kind === "SubjectAccessReview").map((c) => c.body.spec.resourceAttributes.subresource);
      await auth.check("GET", "/stats/summary", new Map(), APISERVER);
      await auth.check("GET", "/metrics", new Map(), APISERVER);
      assert.deepEqual(sars(), ["stats", "metrics"]);
      await time.advance(29_999);
      await auth.check("GET", "/stats/summary", new Map(), APISERVER);
      await auth.check("GET", "/metrics", new Map(), APISERVER);
      assert.deepEqual(sars(), ["stats", "metrics"]);
      await time.advance(1);
      await auth.check("GET", "/metrics", new Map(), APISERVER);
      assert.deepEqual(sars(), ["stats", "metrics", "metrics"], "denied: asked again after 30 s");
      await time.advance(300_000 - 30_000 - 1);
      await auth.check("GET", "/stats/summary", new Map(), APISERVER);
      assert.equal(sars().length, 3);
      await time.advance(1);
      await auth.check("GET", "/stats/summary", new Map(), APISERVER);
      assert.deepEqual(sars().slice(3), ["stats"], "allowed: asked again after 5 min");
    });

    it("decisions are per user and per verb", async () => {
      const { s, auth } = setup();
      s.allow.add("system:apiserver get proxy");
      const other: PeerInfo = { address: "x", clientCertificate: { commonName: "eve", organizations: [] } };
      assert.equal((await auth.check("GET", "/spec", new Map(), APISERVER)).allowed, true);
      assert.equal((await auth.check("GET", "/spec", new Map(), other)).allowed, false);
      assert.equal((await auth.check("POST", "/spec", new Map(), APISERVER)).allowed, false);
      assert.equal(s.calls.length, 3);
    });

    it("each cache holds at most 16 entries, the least recently used evicted", async () => {
      const { s, auth } = setup({ reviewsPerMinute: 1000 });
      for (let i = 0; i < 17; i++) s.tokens.set(`t${i}`, { username: `u${i}` });
      for (let i = 0; i < 16; i++) await auth.check("GET", "/pods", bearer(`t${i}`), anon);
      await auth.check("GET", "/pods", bearer("t0"), anon); // t0 is now the most recent
      const before = s.calls.filter((c) => c.kind === "TokenReview").length;
      await auth.check("GET", "/pods", bearer("t16"), anon); // evicts t1
      await auth.check("GET", "/pods", bearer("t0"), anon);
      assert.equal(s.calls.filter((c) => c.kind === "TokenReview").length, before + 1, "t0 kept");
      await auth.check("GET", "/pods", bearer("t1"), anon);
      assert.equal(s.calls.filter((c) => c.kind === "TokenReview").length, before + 2, "t1 evicted");
    });

    it("LruCache: bound, recency, expiry", () => {
      const c = new LruCache<number>(2);
      c.set("a", 1, 100);
      c.set("b", 2, 100);
      assert.equal(c.get("a", 0), 1);
      c.set("c", 3, 100);
      assert.equal(c.get("b", 0), undefined);
      assert.equal(c.get("a", 0), 1);
      assert.equal(c.get("a", 100), undefined);
      assert.equal(c.size, 1);
    });

    it("a token longer than 2 KiB is reviewed every time, never kept", async () => {
      const { s, auth } = setup();
      const long = "x".repeat(3000);
      s.tokens.set(long, { username: "long" });
      await auth.check("GET", "/pods", bearer(long), anon);
      await auth.check("GET", "/pods", bearer(long), anon);
      assert.equal(s.calls.filter((c) => c.kind === "TokenReview").length, 2);
    });
  });

  describe("a review that cannot be made → 503, never allow", () => {
    for (const fail of ["reject", "500", "garbage"] as const) {
      it(`TokenReview: ${fail}`, async () => {
        const logs: string[] = [];
        const { s, auth } = setup({ log: (m) => logs.push(m) });
        s.fail = fail;
        const d = await auth.check("GET", "/pods", bearer("good"), anon);
        assert.equal(d.allowed, false);
        assert.equal(!d.allowed && d.status, 503);
        assert.equal(logs.length, 1);
        assert.ok(!logs[0].includes("good"), "the token never reaches a log line");
        s.fail = undefined;
        s.allow.add(`${MS} get pods`);
        assert.equal((await auth.check("GET", "/pods", bearer("good"), anon)).allowed, true, "the failure was not cached");
      });
      it(`SubjectAccessReview: ${fail}`, async () => {
        const { s, auth } = setup();
        s.allow.add("system:apiserver get proxy");
        s.fail = fail;
        const d = await auth.check("GET", "/spec", new Map(), APISERVER);
        assert.deepEqual(d, { allowed: false, status: 503, message: "authentication or authorization is unavailable (the API server could not be asked)" });
      });
    }

    it("at most 30 reviews a minute: beyond that 503 without asking, cached answers still work", async () => {
      const { time, s, auth } = setup();
      s.allow.add("system:apiserver get proxy");
      await auth.check("GET", "/spec", new Map(), APISERVER); // 1 review, cached
      for (let i = 0; i < 40; i++) await auth.check("GET", "/pods", bearer(`junk${i}`), anon);
      assert.equal(s.calls.length, 30);
      assert.equal(auth.stats.throttled, 11);
      assert.equal((await auth.check("GET", "/spec", new Map(), APISERVER)).allowed, true);
      await time.advance(60_000);
      await auth.check("GET", "/pods", bearer("junk-late"), anon);
      assert.equal(s.calls.length, 31);
    });
  });

  it("apiReview posts both reviews with the agent's own ApiClient", async () => {
    const time = new VirtualTime();
    const api = new FakeApi(time);
    const answer = (status: number, body: unknown): string => {
      const text = JSON.stringify(body);
      return `HTTP/1.1 ${status} Created\r\nContent-Type: application/json\r\nDate: ${httpDate(api.now())}\r\nContent-Length: ${Buffer.byteLength(text)}\r\n\r\n${text}`;
    };
    const handler = (req: ParsedRequest): ScriptedAnswer => {
      const body = req.body ? JSON.parse(req.body) : undefined;
      if (req.method === "POST" && req.path === "/apis/authentication.k8s.io/v1/tokenreviews") {
        return answer(201, { ...body, status: { authenticated: body.spec.token === "good", user: { username: MS, groups: ["system:serviceaccounts"] } } });
      }
      if (req.method === "POST" && req.path === "/apis/authorization.k8s.io/v1/subjectaccessreviews") {
        return answer(201, { ...body, status: { allowed: body.spec.resourceAttributes.subresource === "metrics" } });
      }
      return api.handle(req);
    };
    const host = createVirtualHost({ time, handler });
    const client = new ApiClient({ host, server: { host: "192.0.2.1", port: 6443 }, token: "node-token", clock: new WallClock({ monotonic: () => time.now }), userAgent: "xs-kubelet/test", http: "http/1.1" });
    const auth = new KubeletAuth({ nodeName: "board-1", review: apiReview(client), now: () => time.now });
    const [allowed, denied] = await Promise.all([auth.check("GET", "/metrics", bearer("good"), anon), time.advance(10).then(() => auth.check("GET", "/stats/summary", bearer("good"), anon))]);
    assert.equal(allowed.allowed, true);
    assert.deepEqual(denied, { allowed: false, status: 403, message: `Forbidden (user=${MS}, verb=get, resource=nodes, subresource(s)=[stats])\n` });
    const lines = host.requests.map((r) => r.split("\r\n")[0]);
    assert.deepEqual(lines, [
      "POST /apis/authentication.k8s.io/v1/tokenreviews HTTP/1.1",
      "POST /apis/authorization.k8s.io/v1/subjectaccessreviews HTTP/1.1",
      "POST /apis/authorization.k8s.io/v1/subjectaccessreviews HTTP/1.1",
    ]);
    assert.ok(host.requests.every((r) => r.includes("Authorization: Bearer node-token")), "reviews go as the node");
    client.close();
  });
});
