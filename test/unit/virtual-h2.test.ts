// The virtual host's scripted HTTP/2 server, driven frame by frame by a hand-written client (the
// H2Probe, built on the core's frame and HPACK codecs, not on the core's HTTP/2 client).
import assert from "node:assert/strict";
import { ErrorCode, Flags, FrameType, Setting, clientPreface, encodeFrame, headersFrames, settingsFrame } from "../../modules/http/frames";
import { HpackEncoder } from "../../modules/http/hpack";
import { createVirtualHost, flushMicrotasks, VirtualTime, type Http2PeerOptions, type ScriptedHandler, type VirtualHostOptions } from "../../hosts/virtual/host";
import { H2Probe } from "../../hosts/virtual/h2-probe";
import { FakeApi } from "../../hosts/virtual/scripted-api";

const enc = new TextEncoder();
const hexOf = (bytes: Uint8Array) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

function setup(http2: boolean | Http2PeerOptions = true, handler?: ScriptedHandler, extra: Partial<VirtualHostOptions> = {}) {
  const time = new VirtualTime();
  const api = new FakeApi(time);
  const host = createVirtualHost({ time, handler: handler ?? api.handle, http2, ...extra });
  return { time, api, host };
}

const text = (body: string, status = "200 OK") => `HTTP/1.1 ${status}\r\nContent-Type: text/plain\r\nConnection: keep-alive\r\nContent-Length: ${enc.encode(body).length}\r\n\r\n${body}`;

/** A probe that has sent its preface and SETTINGS and seen the server's. */
async function started(host: ReturnType<typeof setup>["host"], settings: [number, number][] = []) {
  const c = new H2Probe(host);
  await flushMicrotasks();
  c.start(settings);
  await flushMicrotasks();
  return c;
}

describe("virtual host: HTTP/2", () => {
  it("answers ALPN: h2 when enabled and offered, http/1.1 when not enabled, nothing when not offered", async () => {
    const on = setup(true);
    const off = setup(false);
    const a = new H2Probe(on.host);
    const b = new H2Probe(off.host);
    const c = new H2Probe(off.host, { alpn: [] });
    const d = new H2Probe(on.host, { alpn: ["http/1.1"] });
    const e = new H2Probe(on.host, { alpn: ["h2"] });
    const f = new H2Probe(off.host, { alpn: ["h2"] });
    await flushMicrotasks();
    assert.deepEqual([a.protocol, b.protocol, c.protocol, d.protocol, e.protocol, f.protocol], ["h2", "http/1.1", undefined, "http/1.1", "h2", ""]);
    assert.equal(off.host.http2, undefined);
    assert.deepEqual(on.host.http2, {});
  });

  it("exchanges SETTINGS, answers GET /version with :status 200 and the API's JSON, and records the request", async () => {
    const { host } = setup({ maxConcurrentStreams: 7, initialWindowSize: 1 << 20, headerTableSize: 8192 });
    const c = await started(host, [[Setting.ENABLE_PUSH, 0]]);
    assert.deepEqual(c.settings, [
      [
        [Setting.HEADER_TABLE_SIZE, 8192],
        [Setting.MAX_CONCURRENT_STREAMS, 7],
        [Setting.INITIAL_WINDOW_SIZE, 1 << 20],
        [Setting.MAX_FRAME_SIZE, 16384],
      ],
    ]);
    assert.equal(c.settingsAcks, 1, "the server ACKs our SETTINGS");
    const id = c.request("GET", "/version", { headers: [["authorization", "Bearer t0ken"], ["accept", "application/json"]] });
    await flushMicrotasks();
    const s = c.streams.get(id)!;
    assert.equal(s.status, 200);
    assert.equal(s.ended, true);
    assert.equal(c.header(id, "content-type"), "application/json");
    assert.equal(c.header(id, "content-length"), String(c.text(id).length));
    assert.ok(c.header(id, "date"));
    assert.deepEqual(JSON.parse(c.text(id)), { major: "1", minor: "33", gitVersion: "v1.33.13" });
    assert.equal(host.requests[0], "GET /version HTTP/2\r\nhost: 192.0.2.1:6443\r\nauthorization: Bearer t0ken\r\naccept: application/json\r\n\r\n");
    // The wire: every write of the client, hex.
    assert.equal(host.wire[0], hexOf(clientPreface()) + hexOf(settingsFrame([[Setting.ENABLE_PUSH, 0]])));
    assert.equal(host.wire.length, 3, "preface+SETTINGS, SETTINGS ACK, the request");
    assert.match(host.wire[2], /^[0-9a-f]+$/);
  });

  it("drops connection-specific response headers, de-chunks a chunked body and sends no body for HEAD", async () => {
    const { api, host } = setup(true);
    api.chunked = true;
    const c = await started(host);
    const id = c.request("GET", "/version");
    const head = c.request("HEAD", "/version");
    await flushMicrotasks();
    assert.deepEqual(JSON.parse(c.text(id)), { major: "1", minor: "33", gitVersion: "v1.33.13" });
    assert.equal(c.header(id, "transfer-encoding"), undefined);
    assert.equal(c.streams.get(head)!.status, 404, "HEAD is not routed by the FakeApi, but answered");
    const raw = setup(true, () => text("hi"));
    const r = await started(raw.host);
    const h = r.request("HEAD", "/");
    const g = r.request("GET", "/");
    await flushMicrotasks();
    assert.equal(r.header(g, "connection"), undefined);
    assert.equal(r.header(g, "content-type"), "text/plain");
    assert.equal(r.text(g), "hi");
    assert.equal(r.text(h), "");
    assert.equal(r.streams.get(h)!.ended, true);
    assert.equal(r.received(FrameType.DATA, h).length, 0, "HEAD: HEADERS with END_STREAM, no DATA");
  });

  it("serves two concurrent streams, a request body in two DATA frames, and the requests text", async () => {
    const { api, host } = setup(true);
    const c = await started(host);
    const body = JSON.stringify({ metadata: { name: "cm" }, data: { a: "1" } });
    const post = c.request("POST", "/api/v1/namespaces/default/configmaps", { headers: [["content-type", "application/json"], ["content-length", String(body.length)]], end: false });
    const get = c.request("GET", "/version");
    await flushMicrotasks();
    assert.equal(c.streams.get(get)!.status, 200, "stream 3 is answered while stream 1's body is still arriving");
    assert.equal(c.streams.get(post)!.status, undefined);
    c.data(post, body.slice(0, 10));
    c.data(post, body.slice(10), true);
    await flushMicrotasks();
    assert.equal(c.streams.get(post)!.status, 201);
    assert.equal(JSON.parse(c.text(post)).metadata.name, "cm");
    assert.ok(api.configmaps.has("default/cm"));
    assert.deepEqual(host.requests, [
      "GET /version HTTP/2\r\nhost: 192.0.2.1:6443\r\n\r\n",
      `POST /api/v1/namespaces/default/configmaps HTTP/2\r\nhost: 192.0.2.1:6443\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
    ]);
    // The server gave back what the body used, on the connection and on the stream.
    const updates = c.received(FrameType.WINDOW_UPDATE);
    assert.ok(updates.some((f) => f.streamId === 0) && updates.some((f) => f.streamId === post));
  });

  it("keeps within the client's stream window: stops at 100 bytes, continues after WINDOW_UPDATE", async () => {
    const big = "x".repeat(1000);
    const { host } = setup(true, () => text(big));
    const c = await started(host, [[Setting.INITIAL_WINDOW_SIZE, 100]]);
    const id = c.request("GET", "/big");
    await flushMicrotasks();
    assert.equal(c.text(id).length, 100);
    assert.equal(c.streams.get(id)!.ended, false);
    c.windowUpdate(id, 400);
    await flushMicrotasks();
    assert.equal(c.text(id).length, 500);
    c.windowUpdate(id, 10_000);
    await flushMicrotasks();
    assert.equal(c.text(id), big);
    assert.equal(c.streams.get(id)!.ended, true);
    // Raising SETTINGS_INITIAL_WINDOW_SIZE opens every stream's window by the difference.
    const s = c.request("GET", "/big");
    await flushMicrotasks();
    assert.equal(c.text(s).length, 100);
    c.write(settingsFrame([[Setting.INITIAL_WINDOW_SIZE, 2000]]));
    await flushMicrotasks();
    assert.equal(c.text(s), big);
  });

  it("keeps within the connection window and the client's max frame size", async () => {
    const big = "y".repeat(70_000);
    const { host } = setup(true, () => text(big));
    const c = await started(host, [[Setting.INITIAL_WINDOW_SIZE, 1 << 20]]);
    const id = c.request("GET", "/big");
    await flushMicrotasks();
    assert.equal(c.text(id).length, 65_535, "the connection window is 65535 whatever SETTINGS say");
    assert.ok(c.received(FrameType.DATA, id).every((f) => f.payload.length <= 16384));
    c.windowUpdate(0, 10_000);
    await flushMicrotasks();
    assert.equal(c.text(id), big);
    // A larger SETTINGS_MAX_FRAME_SIZE is used.
    const wide = setup(true, () => text(big));
    const w = await started(wide.host, [[Setting.INITIAL_WINDOW_SIZE, 1 << 20], [Setting.MAX_FRAME_SIZE, 1 << 17]]);
    w.windowUpdate(0, 1 << 20);
    const wid = w.request("GET", "/");
    await flushMicrotasks();
    assert.equal(w.received(FrameType.DATA, wid).length, 1);
  });

  it("ACKs PINGs unless told to ignore them (a knob flipped during the run)", async () => {
    const { host } = setup(true);
    const c = await started(host);
    c.ping(Uint8Array.of(9, 8, 7, 6, 5, 4, 3, 2));
    await flushMicrotasks();
    assert.deepEqual([...c.pingAcks[0]], [9, 8, 7, 6, 5, 4, 3, 2]);
    host.http2!.ignorePings = true;
    c.ping();
    await flushMicrotasks();
    assert.equal(c.pingAcks.length, 1);
  });

  it("goAwayAfter: GOAWAY with the highest stream seen, finishes the streams up to it, ignores later ones, then closes", async () => {
    const { host } = setup({ goAwayAfter: 1 });
    const c = await started(host);
    const slow = c.request("POST", "/api/v1/namespaces/default/configmaps", { headers: [["content-type", "application/json"]], end: false });
    const quick = c.request("GET", "/version");
    await flushMicrotasks();
    assert.equal(c.streams.get(quick)!.status, 200);
    assert.deepEqual(c.goaways.map((g) => [g.lastStreamId, g.errorCode]), [[3, ErrorCode.NO_ERROR]]);
    assert.equal(c.closed, false, "stream 1 is still to be finished");
    const late = c.request("GET", "/version");
    c.data(slow, JSON.stringify({ metadata: { name: "x" } }), true);
    await flushMicrotasks();
    assert.equal(c.streams.get(slow)!.status, 201, "a stream below the last id is still answered");
    assert.equal(c.streams.get(late)!.status, undefined, "a stream above it is not processed");
    assert.equal(host.requests.length, 2);
    assert.equal(c.closed, true, "closed cleanly once the last stream was done");
  });

  it("blackhole: a dead peer answers nothing (no PING ACK, no response) and its connection stays dead", async () => {
    let dead = false;
    const { host } = setup({ blackhole: () => dead });
    const c = await started(host);
    dead = true;
    const frames = c.frames.length;
    c.ping();
    c.request("GET", "/version");
    await flushMicrotasks();
    assert.equal(c.frames.length, frames);
    assert.equal(host.requests.length, 0);
    dead = false;
    c.ping();
    await flushMicrotasks();
    assert.equal(c.pingAcks.length, 0, "once dead, the connection stays dead");
    assert.equal(c.closed, false, "and it never closes by itself");
    const fresh = await started(host);
    const id = fresh.request("GET", "/version");
    await flushMicrotasks();
    assert.equal(fresh.streams.get(id)!.status, 200, "a new connection works");
  });

  it("resetStream answers with RST_STREAM instead of calling the handler", async () => {
    let calls = 0;
    const { host } = setup({ resetStream: (req) => (req.path === "/refuse" ? ErrorCode.REFUSED_STREAM : undefined) }, () => (calls++, text("ok")));
    const c = await started(host);
    const a = c.request("GET", "/refuse");
    const b = c.request("GET", "/fine");
    await flushMicrotasks();
    assert.equal(c.streams.get(a)!.reset, ErrorCode.REFUSED_STREAM);
    assert.equal(c.text(b), "ok");
    assert.equal(calls, 1);
  });

  it("refuses streams beyond maxConcurrentStreams with REFUSED_STREAM", async () => {
    const { host } = setup({ maxConcurrentStreams: 1 }, () => ({ hang: true }));
    const c = await started(host);
    const a = c.request("GET", "/a");
    const b = c.request("GET", "/b");
    await flushMicrotasks();
    assert.equal(c.streams.get(a)!.reset, undefined);
    assert.equal(c.streams.get(b)!.reset, ErrorCode.REFUSED_STREAM);
  });

  it("drop closes the socket with an error; {reply, thenClose} replies, sends GOAWAY(NO_ERROR) and closes", async () => {
    const d = setup(true, () => ({ drop: true }));
    const c = await started(d.host);
    c.request("GET", "/");
    await flushMicrotasks();
    assert.equal(c.closed, "connection reset by peer (scripted)");
    assert.equal(c.goaways.length, 0);
    const t = setup(true, () => ({ reply: text("bye"), thenClose: true }));
    const e = await started(t.host);
    const id = e.request("GET", "/");
    await flushMicrotasks();
    assert.equal(e.text(id), "bye");
    assert.deepEqual(e.goaways.map((g) => [g.lastStreamId, g.errorCode]), [[1, ErrorCode.NO_ERROR]]);
    assert.equal(e.closed, true);
  });

  it("the client's RST_STREAM ends a hanging stream; the client's GOAWAY closes once nothing is open", async () => {
    const { host } = setup(true, (req) => (req.path === "/hang" ? { hang: true } : text("ok")));
    const c = await started(host);
    const a = c.request("GET", "/hang");
    await flushMicrotasks();
    c.goaway();
    await flushMicrotasks();
    assert.equal(c.closed, false, "stream 1 is open");
    c.rst(a);
    await flushMicrotasks();
    assert.equal(c.closed, true);
  });

  describe("protocol errors: GOAWAY and close", () => {
    const lastGoaway = (c: H2Probe) => c.goaways[c.goaways.length - 1]?.errorCode;

    it("a bad preface → PROTOCOL_ERROR", async () => {
      const { host } = setup(true);
      const c = new H2Probe(host);
      await flushMicrotasks();
      c.write(enc.encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
      await flushMicrotasks();
      assert.equal(lastGoaway(c), ErrorCode.PROTOCOL_ERROR);
      assert.equal(c.closed, true);
    });

    it("a first frame that is not SETTINGS → PROTOCOL_ERROR", async () => {
      const { host } = setup(true);
      const c = new H2Probe(host);
      await flushMicrotasks();
      c.write(clientPreface());
      c.ping();
      await flushMicrotasks();
      assert.equal(lastGoaway(c), ErrorCode.PROTOCOL_ERROR);
    });

    it("a frame over SETTINGS_MAX_FRAME_SIZE → FRAME_SIZE_ERROR", async () => {
      const { host } = setup(true);
      const c = await started(host);
      c.frame(FrameType.DATA, 0, 1, new Uint8Array(20_000));
      await flushMicrotasks();
      assert.equal(lastGoaway(c), ErrorCode.FRAME_SIZE_ERROR);
      assert.equal(c.closed, true);
    });

    it("a broken header block → COMPRESSION_ERROR", async () => {
      const { host } = setup(true);
      const c = await started(host);
      c.write(headersFrames(1, Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), { endStream: true }));
      await flushMicrotasks();
      assert.equal(lastGoaway(c), ErrorCode.COMPRESSION_ERROR);
      assert.equal(c.closed, true);
    });

    it("a frame between HEADERS and its CONTINUATION → PROTOCOL_ERROR; a malformed request → RST_STREAM", async () => {
      const { host } = setup(true);
      const c = await started(host);
      const hpack = new HpackEncoder();
      c.write(headersFrames(1, hpack.encode([[":method", "GET"], [":scheme", "https"], [":path", "/"], ["Connection", "close"]]), { endStream: true }));
      await flushMicrotasks();
      assert.equal(c.streams.get(1)?.reset, ErrorCode.PROTOCOL_ERROR, "a connection-specific field is a stream error");
      const block = hpack.encode([[":method", "GET"], [":scheme", "https"], [":path", "/"]]);
      c.write(encodeFrame(FrameType.HEADERS, Flags.END_STREAM, 3, block)); // no END_HEADERS
      c.ping();
      await flushMicrotasks();
      assert.equal(lastGoaway(c), ErrorCode.PROTOCOL_ERROR);
      assert.equal(c.goaways[0].lastStreamId, 1, "stream 3 never opened: its header block did not end");
    });
  });

  it("records the wire for HTTP/1.1 too, and leaves HTTP/1.1 clients as they were", async () => {
    const { host } = setup(true, () => text("plain"));
    const got: Uint8Array[] = [];
    let protocol: string | undefined = "none";
    const socket = host.connect({ host: "192.0.2.1", port: 6443 }, { onConnect: (...a: [string?]) => (protocol = a.length ? a[0] : undefined), onData: (b) => void got.push(b), onClose() {} });
    await flushMicrotasks();
    const req = enc.encode("GET /x HTTP/1.1\r\nHost: 192.0.2.1:6443\r\n\r\n");
    socket.write(req);
    await flushMicrotasks();
    assert.equal(protocol, undefined);
    assert.deepEqual(host.wire, [hexOf(req)]);
    assert.equal(host.requests[0], "GET /x HTTP/1.1\r\nHost: 192.0.2.1:6443\r\n\r\n");
    assert.equal(new TextDecoder().decode(Buffer.concat(got)), text("plain"));
  });

  it("speaks HTTP/2 with prior knowledge when no ALPN was offered, and splits its output with chunkBytes", async () => {
    const { host } = setup(true, undefined, { chunkBytes: 5 });
    const c = new H2Probe(host, { alpn: [] });
    await flushMicrotasks();
    c.start();
    const id = c.request("GET", "/version");
    await flushMicrotasks();
    assert.equal(c.protocol, undefined);
    assert.equal(c.streams.get(id)!.status, 200);
    assert.equal(JSON.parse(c.text(id)).gitVersion, "v1.33.13");
  });

  it("closes an HTTP/2 connection when the network is down", async () => {
    let offline = false;
    const { host } = setup(true, undefined, { offline: () => offline });
    const c = await started(host);
    offline = true;
    c.ping();
    await flushMicrotasks();
    assert.equal(c.closed, "network down (scripted)");
  });
});
