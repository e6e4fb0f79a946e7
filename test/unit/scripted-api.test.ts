// The scripted API's stores, LIST and WATCH, over HTTP/1.1 (a raw client on the virtual host's
// sockets) and over HTTP/2 (the H2Probe): events in order after a resourceVersion, selectors,
// bookmarks, 410 Expired after compaction, timeoutSeconds in virtual time.
import assert from "node:assert/strict";
import { ErrorCode, Setting } from "../../modules/http/frames";
import { HttpParser } from "../../modules/http/parser";
import { createVirtualHost, flushMicrotasks, VirtualTime, type VirtualHost } from "../../hosts/virtual/host";
import { H2Probe } from "../../hosts/virtual/h2-probe";
import { EVENT_LOG, FakeApi } from "../../hosts/virtual/scripted-api";
import { rig } from "../../tools/scenarios/harness";

const enc = new TextEncoder();

function setup(http2 = false, chunkBytes?: number) {
  const time = new VirtualTime();
  const api = new FakeApi(time);
  const host = createVirtualHost({ time, handler: api.handle, http2, chunkBytes });
  return { time, api, host };
}

/** One HTTP/1.1 request at a time on its own socket; the body is read as it streams in. */
class H1 {
  parser = new HttpParser("response", { maxHeaderBytes: 1 << 16 });
  body = "";
  closed: boolean | string = false;
  #decoder = new TextDecoder();
  #socket;
  constructor(host: VirtualHost) {
    this.#socket = host.connect({ host: "192.0.2.1", port: 6443 }, {
      onConnect() {},
      onData: (bytes) => {
        let at = 0;
        while (at < bytes.length && !this.parser.done) {
          at = this.parser.push(bytes, at, bytes.length);
          this.body += this.#decoder.decode(this.parser.takeBody(), { stream: true });
        }
      },
      onClose: (error) => {
        this.closed = error ?? true;
      },
    });
  }
  send(method: string, path: string, body?: unknown, type = "application/json"): void {
    this.parser.begin(1 << 24);
    this.body = "";
    const text = body === undefined ? "" : JSON.stringify(body);
    const head = [`${method} ${path} HTTP/1.1`, "Host: 192.0.2.1:6443", ...(text ? [`Content-Type: ${type}`, `Content-Length: ${enc.encode(text).length}`] : [])];
    this.#socket.write(enc.encode(`${head.join("\r\n")}\r\n\r\n${text}`));
  }
  get json(): any {
    return JSON.parse(this.body);
  }
  close(): void {
    this.#socket.close();
  }
}

async function call(host: VirtualHost, method: string, path: string, body?: unknown, type?: string) {
  const c = new H1(host);
  c.send(method, path, body, type);
  await flushMicrotasks();
  assert.ok(c.parser.done, `${method} ${path} answered`);
  c.close();
  return { status: c.parser.status, json: c.body ? c.json : undefined };
}

const lines = (text: string) =>
  text
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l));
const summary = (events: any[]) => events.map((e) => `${e.type} ${e.object.metadata?.name ?? e.object.kind}`);

const pod = (ns: string, name: string, nodeName: string, labels: Record<string, string> = {}) => ({ metadata: { namespace: ns, name, labels }, spec: { nodeName, containers: [{ name: "c", image: "i" }] } });

describe("scripted API: stores, LIST and WATCH", () => {
  it("lists pods cluster-wide and per namespace, with field and label selectors, at the current resourceVersion", async () => {
    const { api, host } = setup();
    api.put("pods", pod("default", "a", "board-1", { app: "x", tier: "web" }));
    api.put("pods", pod("default", "b", "board-2", { app: "x" }));
    api.put("pods", pod("kube-system", "c", "board-1", { app: "y" }));
    const all = await call(host, "GET", "/api/v1/pods");
    assert.equal(all.status, 200);
    assert.equal(all.json.kind, "PodList");
    assert.equal(all.json.apiVersion, "v1");
    assert.equal(all.json.metadata.resourceVersion, api.resourceVersion);
    assert.deepEqual(all.json.items.map((p: any) => `${p.metadata.namespace}/${p.metadata.name}`), ["default/a", "default/b", "kube-system/c"]);
    assert.equal(all.json.items[0].status.phase, "Pending");
    const names = async (path: string) => (await call(host, "GET", path)).json.items.map((p: any) => p.metadata.name);
    assert.deepEqual(await names("/api/v1/pods?fieldSelector=spec.nodeName%3Dboard-1"), ["a", "c"]);
    assert.deepEqual(await names("/api/v1/namespaces/default/pods"), ["a", "b"]);
    assert.deepEqual(await names("/api/v1/namespaces/default/pods?fieldSelector=spec.nodeName=board-1"), ["a"]);
    assert.deepEqual(await names("/api/v1/pods?fieldSelector=metadata.namespace%3Dkube-system"), ["c"]);
    assert.deepEqual(await names("/api/v1/pods?fieldSelector=metadata.name%3Db"), ["b"]);
    assert.deepEqual(await names("/api/v1/pods?labelSelector=app%3Dx%2Ctier%3Dweb"), ["a"]);
    assert.deepEqual(await names("/api/v1/pods?labelSelector=app%3Dx"), ["a", "b"]);
    assert.deepEqual(await names("/api/v1/pods?labelSelector=app!%3Dx"), ["c"]);
    const bad = await call(host, "GET", "/api/v1/nodes?fieldSelector=spec.nodeName%3Dx");
    assert.equal(bad.status, 400);
    assert.equal(bad.json.message, "field label not supported: spec.nodeName");
  });

  it("creates, reads, merge-patches and deletes configmaps and pods through the API, logging each event", async () => {
    const { api, host } = setup();
    const created = await call(host, "POST", "/api/v1/namespaces/ns1/configmaps", { metadata: { name: "cfg" }, data: { a: "1", b: "2" } });
    assert.equal(created.status, 201);
    assert.equal(created.json.metadata.namespace, "ns1");
    assert.equal((await call(host, "POST", "/api/v1/namespaces/ns1/configmaps", { metadata: { name: "cfg" } })).status, 409);
    const patched = await call(host, "PATCH", "/api/v1/namespaces/ns1/configmaps/cfg", { data: { a: null, c: "3" } }, "application/merge-patch+json");
    assert.deepEqual(patched.json.data, { b: "2", c: "3" });
    assert.ok(Number(patched.json.metadata.resourceVersion) > Number(created.json.metadata.resourceVersion));
    assert.equal((await call(host, "PATCH", "/api/v1/namespaces/ns1/configmaps/cfg", { data: {} }, "application/json-patch+json")).status, 415);
    assert.deepEqual((await call(host, "GET", "/api/v1/namespaces/ns1/configmaps/cfg")).json.data, { b: "2", c: "3" });
    assert.equal((await call(host, "DELETE", "/api/v1/namespaces/ns1/configmaps/cfg")).json.status, "Success");
    assert.equal((await call(host, "GET", "/api/v1/namespaces/ns1/configmaps/cfg")).status, 404);
    assert.deepEqual(summary(api.events("configmaps") as any[]), ["ADDED cfg", "MODIFIED cfg", "DELETED cfg"]);
    // A pod's status subresource keeps the spec; the main resource keeps the status.
    api.put("pods", pod("ns1", "p", "board-1"));
    const status = await call(host, "PATCH", "/api/v1/namespaces/ns1/pods/p/status", { spec: { nodeName: "elsewhere" }, status: { phase: "Running" } }, "application/merge-patch+json");
    assert.deepEqual([status.json.spec.nodeName, status.json.status.phase], ["board-1", "Running"]);
    const main = await call(host, "PATCH", "/api/v1/namespaces/ns1/pods/p", { metadata: { labels: { l: "1" } }, status: { phase: "Failed" } }, "application/merge-patch+json");
    assert.deepEqual([main.json.metadata.labels.l, main.json.status.phase], ["1", "Running"]);
    assert.equal(api.remove("pods", "ns1", "p"), true);
    assert.equal(api.remove("pods", "ns1", "p"), false);
  });

  it("WATCH over HTTP/1.1: replays events after the resourceVersion, then streams new ones as chunks, in order", async () => {
    const { api, host } = setup(false, 7);
    api.put("pods", pod("default", "old", "board-1"));
    const rv = api.resourceVersion;
    api.put("pods", pod("default", "a", "board-1"));
    api.put("pods", pod("default", "elsewhere", "board-2"));
    const w = new H1(host);
    w.send("GET", `/api/v1/pods?fieldSelector=spec.nodeName%3Dboard-1&watch=1&resourceVersion=${rv}&allowWatchBookmarks=true&timeoutSeconds=600`);
    await flushMicrotasks();
    assert.equal(w.parser.status, 200);
    assert.equal(w.parser.headers.get("transfer-encoding"), "chunked");
    assert.equal(w.parser.headers.get("content-type"), "application/json");
    assert.deepEqual(summary(lines(w.body)), ["ADDED a"], "replayed: after rv, on this node only");
    assert.equal(api.watchers, 1);
    // Through the API (another connection) and through the test helpers alike.
    await call(host, "PATCH", "/api/v1/namespaces/default/pods/a", { metadata: { labels: { x: "1" } } }, "application/merge-patch+json");
    api.put("pods", pod("default", "b", "board-1"));
    api.remove("pods", "default", "a");
    api.put("pods", pod("default", "c", "board-2"));
    await flushMicrotasks();
    const events = lines(w.body);
    assert.deepEqual(summary(events), ["ADDED a", "MODIFIED a", "ADDED b", "DELETED a"]);
    const rvs = events.map((e) => Number(e.object.metadata.resourceVersion));
    for (let i = 1; i < rvs.length; i++) assert.ok(rvs[i] > rvs[i - 1], "resourceVersions increase");
    assert.equal(events[1].object.metadata.labels.x, "1");
    assert.equal(w.parser.done, false, "the stream stays open");
    // A bookmark, then the end.
    api.bookmark();
    await flushMicrotasks();
    assert.deepEqual(lines(w.body).pop(), { type: "BOOKMARK", object: { kind: "Pod", apiVersion: "v1", metadata: { resourceVersion: api.resourceVersion } } });
    api.endWatches();
    await flushMicrotasks();
    assert.equal(w.parser.done, true, "ended with the chunked terminator");
    assert.equal(api.watchers, 0);
    assert.equal(w.closed, false, "the connection stays usable");
    w.send("GET", "/version");
    await flushMicrotasks();
    assert.equal(w.json.gitVersion, "v1.33.13");
  });

  it("HTTP/1.1: an answer pipelined behind a watch waits until the watch ends", async () => {
    const { api, host } = setup();
    const got: Uint8Array[] = [];
    const socket = host.connect({ host: "192.0.2.1", port: 6443 }, { onConnect() {}, onData: (b) => void got.push(b), onClose() {} });
    socket.write(enc.encode("GET /api/v1/nodes?watch=1 HTTP/1.1\r\nHost: h\r\n\r\nGET /version HTTP/1.1\r\nHost: h\r\n\r\n"));
    await flushMicrotasks();
    const text = () => new TextDecoder().decode(Buffer.concat(got));
    assert.equal(host.requests.length, 2);
    assert.doesNotMatch(text(), /gitVersion/);
    api.endWatches();
    await flushMicrotasks();
    assert.match(text(), /\r\n0\r\n\r\nHTTP\/1\.1 200 OK\r\n[^]*gitVersion/);
  });

  it("a watch without a resourceVersion starts with the current objects as ADDED; without allowWatchBookmarks gets no bookmarks", async () => {
    const { api, host } = setup();
    api.put("configmaps", { metadata: { namespace: "n", name: "one" } });
    api.put("configmaps", { metadata: { namespace: "n", name: "two" } });
    api.put("configmaps", { metadata: { namespace: "other", name: "three" } });
    const w = new H1(host);
    w.send("GET", "/api/v1/namespaces/n/configmaps?watch=true");
    await flushMicrotasks();
    assert.deepEqual(summary(lines(w.body)), ["ADDED one", "ADDED two"]);
    api.bookmark();
    api.put("configmaps", { metadata: { namespace: "n", name: "one" }, data: { k: "v" } });
    await flushMicrotasks();
    assert.deepEqual(summary(lines(w.body)), ["ADDED one", "ADDED two", "MODIFIED one"]);
  });

  it("410 Expired for a resourceVersion older than the log (after compact(), or past the last 200 events)", async () => {
    const { api, host } = setup();
    api.put("pods", pod("default", "a", "n"));
    const rv = api.resourceVersion;
    api.put("pods", pod("default", "b", "n"));
    api.compact();
    const w = new H1(host);
    w.send("GET", `/api/v1/pods?watch=1&resourceVersion=${rv}`);
    await flushMicrotasks();
    assert.equal(w.parser.status, 200, "the API server says so in the stream");
    assert.deepEqual(lines(w.body), [
      {
        type: "ERROR",
        object: { kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message: `too old resource version: ${rv} (${api.resourceVersion})`, reason: "Expired", code: 410 },
      },
    ]);
    assert.equal(w.parser.done, true);
    assert.equal(api.watchers, 0);
    // From the compaction point on, a watch replays.
    const now = api.resourceVersion;
    api.put("pods", pod("default", "c", "n"));
    const again = new H1(host);
    again.send("GET", `/api/v1/pods?watch=1&resourceVersion=${now}`);
    await flushMicrotasks();
    assert.deepEqual(summary(lines(again.body)), ["ADDED c"]);
    // The log keeps the last EVENT_LOG events per kind.
    const before = api.resourceVersion;
    for (let i = 0; i < EVENT_LOG + 50; i++) api.put("configmaps", { metadata: { namespace: "n", name: "busy" }, data: { i: String(i) } });
    assert.equal(api.events("configmaps").length, EVENT_LOG);
    const stale = new H1(host);
    stale.send("GET", `/api/v1/namespaces/n/configmaps?watch=1&resourceVersion=${before}`);
    await flushMicrotasks();
    assert.equal(lines(stale.body)[0].object.code, 410);
    const recent = new H1(host);
    recent.send("GET", `/api/v1/namespaces/n/configmaps?watch=1&resourceVersion=${Number(api.resourceVersion) - 3}`);
    await flushMicrotasks();
    assert.deepEqual(lines(recent.body).map((e) => e.object.data.i), ["247", "248", "249"]);
  });

  it("timeoutSeconds ends the stream in virtual time; a client that goes away is forgotten", async () => {
    const { api, host, time } = setup();
    const w = new H1(host);
    w.send("GET", `/api/v1/nodes?watch=1&resourceVersion=${api.resourceVersion}&timeoutSeconds=5`);
    await time.advance(4999);
    assert.equal(w.parser.done, false);
    assert.equal(api.watchers, 1);
    await time.advance(1);
    assert.equal(w.parser.done, true);
    assert.equal(api.watchers, 0);
    assert.equal(time.pendingTimers, 0);
    const gone = new H1(host);
    gone.send("GET", `/api/v1/nodes?watch=1&timeoutSeconds=60`);
    await flushMicrotasks();
    assert.equal(api.watchers, 1);
    gone.close();
    assert.equal(api.watchers, 0);
    assert.equal(time.pendingTimers, 0, "its timer is gone too");
  });

  it("a watch connection closes when the network goes down (HTTP/1.1 and HTTP/2) and its watch is forgotten", async () => {
    for (const http2 of [false, true]) {
      const time = new VirtualTime();
      const api = new FakeApi(time);
      let offline = false;
      const host = createVirtualHost({ time, handler: api.handle, http2, offline: () => offline });
      let closed: string | boolean = false;
      if (http2) {
        const c = new H2Probe(host);
        await flushMicrotasks();
        c.start();
        c.request("GET", "/api/v1/nodes?watch=1");
        await flushMicrotasks();
        offline = true;
        api.put("nodes", { metadata: { name: "n" } });
        await flushMicrotasks();
        closed = c.closed;
      } else {
        const w = new H1(host);
        w.send("GET", "/api/v1/nodes?watch=1");
        await flushMicrotasks();
        offline = true;
        api.put("nodes", { metadata: { name: "n" } });
        await flushMicrotasks();
        closed = w.closed;
      }
      assert.equal(closed, "network down (scripted)", `http2: ${http2}`);
      assert.equal(api.watchers, 0);
    }
  });

  it("the node's own PATCHes (status, labels) are MODIFIED events; deleting it is DELETED, with its Lease", async () => {
    const { api, host } = setup();
    await call(host, "POST", "/api/v1/nodes", { metadata: { name: "board-1" }, status: { conditions: [{ type: "Ready", status: "True" }] } });
    await call(host, "POST", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", { metadata: { name: "board-1", ownerReferences: [{ uid: "uid-1" }] }, spec: {} });
    const w = new H1(host);
    w.send("GET", `/api/v1/nodes?fieldSelector=metadata.name%3Dboard-1&watch=1&resourceVersion=${api.resourceVersion}`);
    const l = new H1(host);
    l.send("GET", `/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases?watch=1&resourceVersion=${api.resourceVersion}`);
    await call(host, "PATCH", "/api/v1/nodes/board-1/status", { status: { conditions: [{ type: "MemoryPressure", status: "True" }] } }, "application/strategic-merge-patch+json");
    await call(host, "PATCH", "/api/v1/nodes/board-1", { metadata: { labels: { role: "edge" } } }, "application/merge-patch+json");
    await call(host, "DELETE", "/api/v1/nodes/board-1");
    await flushMicrotasks();
    const events = lines(w.body);
    assert.deepEqual(summary(events), ["MODIFIED board-1", "MODIFIED board-1", "DELETED board-1"]);
    assert.deepEqual(events[0].object.status.conditions.map((c: any) => c.type), ["Ready", "MemoryPressure"]);
    assert.equal(events[1].object.metadata.labels.role, "edge");
    assert.deepEqual(summary(lines(l.body)), ["DELETED board-1"], "the garbage collector's delete is an event too");
    const list = await call(host, "GET", "/api/v1/nodes");
    assert.deepEqual(list.json.items, []);
  });

  it("the agent's own status push is a MODIFIED event on a watch of its Node", async () => {
    const r = rig();
    r.kubelet.start();
    await r.time.advance(12_000);
    const w = new H1(r.host);
    w.send("GET", `/api/v1/nodes?fieldSelector=metadata.name%3Dboard-1&watch=1&resourceVersion=${r.api.resourceVersion}`);
    r.heap = { free: 1000, total: 256 * 1024 };
    await r.time.advance(11_000);
    const modified = lines(w.body).filter((e) => e.type === "MODIFIED");
    assert.ok(modified.length >= 1, w.body);
    const mp = modified[modified.length - 1].object.status.conditions.find((c: any) => c.type === "MemoryPressure");
    assert.equal(mp.status, "True");
    w.close();
    await r.kubelet.stop();
  });

  describe("over HTTP/2", () => {
    async function probe(host: VirtualHost, settings: [number, number][] = []) {
      const c = new H2Probe(host);
      await flushMicrotasks();
      c.start(settings);
      await flushMicrotasks();
      return c;
    }

    it("LIST and WATCH on streams of one connection: events as DATA, bookmarks, END_STREAM at the end", async () => {
      const { api, host } = setup(true);
      api.put("pods", pod("default", "a", "board-1"));
      const c = await probe(host);
      const list = c.request("GET", "/api/v1/pods?fieldSelector=spec.nodeName%3Dboard-1");
      await flushMicrotasks();
      assert.equal(c.streams.get(list)!.status, 200);
      const rv = JSON.parse(c.text(list)).metadata.resourceVersion;
      const watch = c.request("GET", `/api/v1/pods?fieldSelector=spec.nodeName%3Dboard-1&watch=1&resourceVersion=${rv}&allowWatchBookmarks=true`);
      await flushMicrotasks();
      assert.equal(c.streams.get(watch)!.status, 200);
      assert.equal(c.header(watch, "transfer-encoding"), undefined);
      assert.equal(c.header(watch, "content-type"), "application/json");
      api.put("pods", pod("default", "b", "board-1"));
      // A PATCH on another stream of the same connection.
      const patch = c.request("PATCH", "/api/v1/namespaces/default/pods/a", { body: JSON.stringify({ metadata: { labels: { k: "v" } } }), headers: [["content-type", "application/merge-patch+json"]] });
      await flushMicrotasks();
      assert.equal(c.streams.get(patch)!.status, 200);
      api.bookmark();
      await flushMicrotasks();
      assert.deepEqual(summary(lines(c.text(watch))), ["ADDED b", "MODIFIED a", "BOOKMARK Pod"]);
      assert.equal(c.streams.get(watch)!.ended, false);
      api.endWatches();
      await flushMicrotasks();
      assert.equal(c.streams.get(watch)!.ended, true);
      assert.equal(api.watchers, 0);
      assert.equal(host.requests[1], `GET /api/v1/pods?fieldSelector=spec.nodeName%3Dboard-1&watch=1&resourceVersion=${rv}&allowWatchBookmarks=true HTTP/2\r\nhost: 192.0.2.1:6443\r\n\r\n`);
    });

    it("410 and timeoutSeconds end the stream; RST_STREAM forgets the watch; events wait for the window", async () => {
      const { api, host, time } = setup(true);
      api.put("pods", pod("default", "a", "n"));
      const old = Number(api.resourceVersion) - 1;
      api.compact();
      const c = await probe(host, [[Setting.INITIAL_WINDOW_SIZE, 64]]);
      const expired = c.request("GET", `/api/v1/pods?watch=1&resourceVersion=${old}`);
      const timed = c.request("GET", `/api/v1/pods?watch=1&resourceVersion=${api.resourceVersion}&timeoutSeconds=3`);
      const cancelled = c.request("GET", `/api/v1/pods?watch=1&resourceVersion=${api.resourceVersion}`);
      await flushMicrotasks();
      assert.equal(c.text(expired).length, 64, "the ERROR event waits for the stream window");
      c.windowUpdate(expired, 1000);
      await flushMicrotasks();
      assert.equal(lines(c.text(expired))[0].object.code, 410);
      assert.equal(c.streams.get(expired)!.ended, true);
      assert.equal(api.watchers, 2);
      c.rst(cancelled, ErrorCode.CANCEL);
      await flushMicrotasks();
      assert.equal(api.watchers, 1);
      api.put("pods", pod("default", "big-name-to-exceed-the-window", "n"));
      await flushMicrotasks();
      assert.equal(c.text(timed).length, 64);
      c.windowUpdate(timed, 10_000);
      await time.advance(3000);
      assert.deepEqual(summary(lines(c.text(timed))), ["ADDED big-name-to-exceed-the-window"]);
      assert.equal(c.streams.get(timed)!.ended, true);
      assert.equal(api.watchers, 0);
      assert.equal(c.closed, false);
    });

    it("closing the connection forgets its watches", async () => {
      const { api, host } = setup(true);
      const c = await probe(host);
      c.request("GET", "/api/v1/nodes?watch=1");
      c.request("GET", "/api/v1/namespaces/x/configmaps?watch=1");
      await flushMicrotasks();
      assert.equal(api.watchers, 2);
      c.close();
      assert.equal(api.watchers, 0);
    });
  });
});
