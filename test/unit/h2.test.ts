// The HTTP/2 client against the scripted HTTP/2 server: multiplexing, flow control both ways, a
// paused watch that does not stall other requests, PING liveness, GOAWAY, RST_STREAM, per-request
// timeouts, and the fall back to HTTP/1.1 (ALPN hand-over, or a preface answered in HTTP/1.1).
import assert from "node:assert/strict";
import { ApiClient } from "../../modules/api/client";
import { H2_LIMITS, Http2Connection, StreamFlow } from "../../modules/http/h2";
import { CancelToken, type HttpResponse } from "../../modules/http/types";
import { HttpError } from "../../modules/http/parser";
import { FrameType } from "../../modules/http/frames";
import { Liveness } from "../../modules/http/h2-parts";
import { WallClock } from "../../modules/time/clock";
import { VirtualTime, createVirtualHost, type Http2PeerOptions, type ScriptedHandler, type ScriptedStream } from "../../hosts/virtual/host";
import type { SocketEvents } from "../../modules/host";

const enc = new TextEncoder();
const dec = new TextDecoder();
const target = { host: "192.0.2.1", port: 6443 };
const ok = (body: string) => `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${enc.encode(body).length}\r\n\r\n${body}`;

function setup(handler: ScriptedHandler, http2: Http2PeerOptions = {}, timeoutMs = 15_000) {
  const time = new VirtualTime();
  const host = createVirtualHost({ time, handler, http2 });
  const conn = new Http2Connection(host, target, { timeoutMs, maxBody: 1024 });
  return { time, host, conn };
}

/** Settles a promise's outcome without awaiting it inside virtual time. */
function track<T>(p: Promise<T>) {
  const t: { value?: T; error?: Error; done: boolean } = { done: false };
  p.then(
    (v) => Object.assign(t, { value: v, done: true }),
    (e) => Object.assign(t, { error: e, done: true }),
  );
  return t;
}

/** A streamed answer the test writes to as it likes. */
function pushable() {
  let write: ((text: string) => void) | undefined;
  const watch: ScriptedStream = {
    head: "HTTP/1.1 200 OK\r\nContent-Type: application/json",
    open(w) {
      write = w;
      return () => undefined;
    },
  };
  return { watch, push: (text: string) => write!(text) };
}

describe("HTTP/2 client", () => {
  it("multiplexes requests on one connection, with HPACK shrinking the repeats", async () => {
    const { time, host, conn } = setup((q) => ok(`you asked for ${q.path}`));
    const headers: [string, string][] = [["Authorization", "Bearer t0ken"], ["Accept", "application/json"]];
    const all = [1, 2, 3].map((i) => track(conn.request({ method: "GET", path: `/r/${i}`, headers })));
    await time.advance(10);
    assert.deepEqual(all.map((t) => dec.decode(t.value!.body)), ["you asked for /r/1", "you asked for /r/2", "you asked for /r/3"]);
    assert.equal(host.connections, 1);
    assert.match(host.requests[0], /^GET \/r\/1 HTTP\/2\r\nhost: 192\.0\.2\.1:6443\r\nauthorization: Bearer t0ken\r\naccept: application\/json\r\n/);
    // The first request carries the literals; the third only indexes (path differs: one literal).
    const before = conn.stats.bytesSent;
    await conn.request({ method: "GET", path: "/r/1", headers });
    const repeat = conn.stats.bytesSent - before;
    assert.ok(repeat <= 9 + 8, `a repeated request is one HEADERS frame of a few bytes: ${repeat}`);
    conn.close();
  });

  it("sends a body larger than the server's window as the window opens", async () => {
    const { time, conn } = setup((q) => ok(`got ${q.body.length}`), { initialWindowSize: 100 });
    const body = enc.encode("x".repeat(2000));
    const r = track(conn.request({ method: "POST", path: "/big", body }));
    await time.advance(10);
    assert.equal(dec.decode(r.value!.body), "got 2000");
    conn.close();
  });

  it("a paused watch shuts only its own window: other requests go on, nothing is held beyond it", async () => {
    const { watch, push } = pushable();
    let pausedUpdates = 0;
    let paused = false;
    const { time, conn } = setup((q) => (q.path.startsWith("/watch") ? { stream: watch } : ok("renewed")), {
      onFrame: (f) => void (paused && f.type === FrameType.WINDOW_UPDATE && f.streamId === 1 && pausedUpdates++),
    });
    const flow = new StreamFlow();
    let received = 0;
    const cancel = new CancelToken();
    const w = track(conn.request({ method: "GET", path: "/watch", onData: (b) => (received += b.length), flow, cancel, timeoutMs: 600_000 }));
    await time.advance(10);
    flow.pause();
    paused = true;
    const line = `${"e".repeat(999)}\n`;
    for (let i = 0; i < 100; i++) push(line); // 100 KB: six times the stream's window
    await time.advance(10);
    assert.equal(received, 0, "nothing delivered while paused");
    for (let i = 0; i < 5; i++) {
      const r = await conn.request({ method: "PATCH", path: "/lease", body: enc.encode("{}") });
      assert.equal(dec.decode(r.body), "renewed", "the renewals are not stalled");
    }
    assert.equal(pausedUpdates, 0, `the paused stream's window stayed shut (at most ${H2_LIMITS.initialWindowSize} bytes held)`);
    paused = false;
    flow.resume();
    await time.advance(50);
    assert.equal(received, 100 * 1000, "resumed: what was held arrives, the window opens, the rest flows");
    cancel.cancel();
    await time.advance(10);
    assert.equal((w.error as HttpError).kind, "cancelled");
    conn.close();
  });

  it("notices a dead peer with PING within 3 s of a waiting request, and reconnects", async () => {
    let dead = false;
    const { time, host, conn } = setup(() => ok("fine"), { blackhole: () => dead });
    await conn.request({ method: "GET", path: "/a" });
    dead = true;
    const r = track(conn.request({ method: "GET", path: "/b" }));
    const waited = await time.until(() => r.done, 15_000, "the request failing");
    assert.equal((r.error as HttpError).kind, "network");
    assert.match(r.error!.message, /did not answer a PING|no answer to a PING/);
    assert.ok(waited <= H2_LIMITS.pingAfterMs + H2_LIMITS.pingTimeoutMs + 100, `noticed after ${waited} ms`);
    dead = false;
    const again = await conn.request({ method: "GET", path: "/c" });
    assert.equal(dec.decode(again.body), "fine");
    assert.equal(host.connections, 2);
    conn.close();
  });

  it("a PING left unanswered does not drop a connection that still carries frames", async () => {
    // A busy server's answer to a PING may queue behind its frames: only silence means dead.
    const { watch, push } = pushable();
    const { time, host, conn } = setup((q) => (q.path.startsWith("/watch") ? { stream: watch } : { hang: true }), { ignorePings: true }, 60_000);
    const w = track(conn.request({ method: "GET", path: "/watch", onData: () => undefined, timeoutMs: 600_000 }));
    await time.advance(10);
    const slow = track(conn.request({ method: "GET", path: "/slow" }));
    for (let t = 0; t < 20; t++) {
      push("{}\n");
      await time.advance(500);
    }
    assert.ok(!slow.done && !w.done, "10 s with a PING unanswered, but a frame every 500 ms: still up");
    await time.until(() => slow.done, 5000, "silence dropping it");
    assert.match(slow.error!.message, /no answer to a PING, nor anything else, within 2 s/);
    assert.equal(host.connections, 1);
    conn.close();
  });

  it("a liveness check that fires late (a busy host) looks again after the pending I/O before calling the connection dead", () => {
    // Timers run before socket callbacks: after the host was busy for seconds, the PING's answer can
    // be waiting unread while the check's timer fires. A 1000-board fleet on one event loop dropped
    // thousands of healthy connections that way.
    let now = 0;
    const timers: { fn: () => void; at: number }[] = [];
    const host = {
      monotonic: () => now,
      setTimer: (fn: () => void, ms: number) => {
        const t = { fn, at: now + ms };
        timers.push(t);
        return t;
      },
      clearTimer: (t: unknown) => {
        const i = timers.indexOf(t as never);
        if (i >= 0) timers.splice(i, 1);
      },
    } as never;
    const fire = () => timers.shift()!.fn();
    const run = (answer: boolean) => {
      const dead: string[] = [];
      let pings = 0;
      const live = new Liveness(host, () => pings++, () => true, (m) => dead.push(m));
      now = 0;
      timers.length = 0;
      live.heard();
      live.arm(H2_LIMITS.pingAfterMs);
      now = H2_LIMITS.pingAfterMs;
      fire();
      assert.equal(pings, 1, "a PING after a second of silence");
      now += H2_LIMITS.pingTimeoutMs + 5000; // the host was busy for 5 s more than the timeout
      fire();
      assert.equal(dead.length, 0, "not dead before the pending I/O ran");
      assert.equal(timers.length, 1);
      if (answer) {
        live.heard();
        live.answered();
      }
      fire();
      live.stop();
      return dead;
    };
    assert.deepEqual(run(true), [], "the answer was waiting: alive");
    assert.match(run(false)[0] ?? "", /no answer to a PING/, "nothing was waiting: dead");
  });

  it("pings an idle connection every 30 s", async () => {
    const pings: number[] = [];
    const { time, conn } = setup(() => ok("fine"), { onFrame: (f) => f.type === FrameType.PING && !(f.flags & 1) && pings.push(1) });
    await conn.request({ method: "GET", path: "/a" });
    await time.advance(65_000);
    assert.equal(pings.length, 2);
    assert.ok(conn.connected);
    conn.close();
  });

  it("a request that times out resets its stream, not the connection", async () => {
    const { time, host, conn } = setup((q) => (q.path === "/slow" ? { hang: true } : ok("fast")), {}, 5000);
    const slow = track(conn.request({ method: "GET", path: "/slow" }));
    const fast: HttpResponse[] = [];
    for (let i = 0; i < 3; i++) fast.push(await conn.request({ method: "GET", path: "/fast" }));
    await time.advance(6000);
    assert.equal((slow.error as HttpError).kind, "timeout");
    assert.equal(fast.length, 3);
    assert.equal((await conn.request({ method: "GET", path: "/fast" })).status, 200);
    assert.equal(host.connections, 1, "the connection lived on");
    conn.close();
  });

  it("GOAWAY: streams in flight finish, the rest go out again on a new connection, nothing is lost", async () => {
    const { time, host, conn } = setup((q) => ok(q.path), { goAwayAfter: 3 });
    const all = Array.from({ length: 8 }, (_, i) => track(conn.request({ method: "GET", path: `/n/${i}` })));
    await time.advance(100);
    assert.deepEqual(all.map((t) => (t.error ? t.error.message : dec.decode(t.value!.body))), Array.from({ length: 8 }, (_, i) => `/n/${i}`));
    assert.ok(host.connections >= 3, `${host.connections} connections`);
    assert.ok(conn.goaways >= 2);
    conn.close();
  });

  it("REFUSED_STREAM is sent again; another reset fails that request alone, naming the code", async () => {
    let refusals = 1;
    const { time, conn } = setup((q) => ok(q.path), { resetStream: (q) => (q.path === "/refused" && refusals-- > 0 ? 7 : q.path === "/broken" ? 2 : undefined) });
    const refused = track(conn.request({ method: "GET", path: "/refused" }));
    const broken = track(conn.request({ method: "GET", path: "/broken" }));
    await time.advance(100);
    assert.equal(dec.decode(refused.value!.body), "/refused");
    assert.match(broken.error!.message, /reset the stream \(INTERNAL_ERROR\)/);
    conn.close();
  });
});

describe("HTTP/2 with fallback to HTTP/1.1 (ApiClient, http: auto)", () => {
  const client = (host: ReturnType<typeof createVirtualHost>, time: VirtualTime, notes: string[]) =>
    new ApiClient({
      host,
      server: target,
      // The virtual host does no TLS; a TLS target is what makes auto offer h2 by ALPN.
      tls: { serverName: "api.example", verify: false },
      clock: new WallClock({ monotonic: () => time.now }),
      userAgent: "test",
      onFallback: (why) => notes.push(why),
    });

  it("uses h2 when the server chooses it by ALPN", async () => {
    const time = new VirtualTime();
    const host = createVirtualHost({ time, handler: () => ok("hi"), http2: true });
    const api = client(host, time, []);
    assert.equal((await api.call("GET", "/version")).status, 200);
    assert.equal(api.protocol, "h2");
    api.close();
  });

  it("the server chose http/1.1 by ALPN: the same TLS connection carries HTTP/1.1, no second handshake", async () => {
    const time = new VirtualTime();
    const host = createVirtualHost({ time, handler: () => ok("hi") });
    const notes: string[] = [];
    const api = client(host, time, notes);
    const a = track(api.call("GET", "/a"));
    const b = track(api.call("GET", "/b"));
    await time.advance(100);
    assert.equal(dec.decode(a.value!.response.body), "hi");
    assert.equal(dec.decode(b.value!.response.body), "hi");
    assert.equal(api.protocol, "http/1.1");
    assert.equal(host.connections, 1);
    assert.equal(api.stats.connects, 1);
    assert.match(notes[0], /chose "http\/1\.1" by ALPN, not h2/);
    assert.match(host.requests[0], /^GET \/a HTTP\/1\.1\r\n/);
    api.close();
  });

  it("a host that cannot tell the ALPN choice (the SDK's TLS): the preface answered in HTTP/1.1 means HTTP/1.1", async () => {
    const time = new VirtualTime();
    const inner = createVirtualHost({ time, handler: () => ok("hi") });
    // Like the Moddable TLS socket: ALPN offered, the server's choice never reported.
    const host = { ...inner, connect: (t: typeof target, events: SocketEvents) => inner.connect({ ...t, alpn: undefined }, { ...events, onConnect: () => events.onConnect() }) };
    const notes: string[] = [];
    const api = client(host as typeof inner, time, notes);
    const r = track(api.call("GET", "/a"));
    await time.advance(100);
    assert.equal(dec.decode(r.value!.response.body), "hi");
    assert.equal(api.protocol, "http/1.1");
    assert.match(notes[0], /answered the HTTP\/2 preface in HTTP\/1\.1/);
    api.close();
  });
});
