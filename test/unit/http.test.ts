// The HTTP/1.1 client: keep-alive, chunked bodies split anywhere, bounded memory, drains, reconnects.
import assert from "node:assert/strict";
import { HttpConnection, HttpError } from "../../modules/http/connection";
import { VirtualTime, createVirtualHost, type ScriptedHandler } from "../../hosts/virtual/host";

const enc = new TextEncoder();
const dec = new TextDecoder();

function setup(handler: ScriptedHandler, chunkBytes?: number) {
  const time = new VirtualTime();
  const host = createVirtualHost({ time, handler, chunkBytes });
  const conn = new HttpConnection(host, { host: "192.0.2.1", port: 6443 }, { timeoutMs: 5000, maxBody: 1024 });
  return { time, host, conn };
}

const response = (body: string, extra = "") => `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n${extra}Content-Length: ${enc.encode(body).length}\r\n\r\n${body}`;
const chunked = (parts: string[]) =>
  `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n${parts.map((p) => `${enc.encode(p).length.toString(16)}\r\n${p}\r\n`).join("")}0\r\nX-Trailer: yes\r\n\r\n`;

describe("HttpConnection", () => {
  it("sends a request line, Host and Content-Length, and reuses one connection", async () => {
    const { host, conn } = setup(() => response("ok"));
    const body = enc.encode('{"a":1}');
    const a = await conn.request({ method: "PATCH", path: "/x", headers: [["Content-Type", "application/json"]], body });
    const b = await conn.request({ method: "GET", path: "/y" });
    assert.equal(dec.decode(a.body), "ok");
    assert.equal(b.status, 200);
    assert.equal(host.requests[0], 'PATCH /x HTTP/1.1\r\nHost: 192.0.2.1:6443\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{"a":1}');
    assert.equal(host.connections, 1);
    assert.equal(conn.stats.requests, 2);
  });

  for (const split of [1, 2, 3, 7, 64]) {
    it(`parses chunked bodies and trailers delivered ${split} byte(s) at a time`, async () => {
      const { conn } = setup(() => chunked(["hello, ", "wörld", "!"]), split);
      const r = await conn.request({ method: "GET", path: "/" });
      assert.equal(dec.decode(r.body), "hello, wörld!");
      assert.equal(r.truncated, false);
      const again = await conn.request({ method: "GET", path: "/" });
      assert.equal(dec.decode(again.body), "hello, wörld!", "the connection is reusable after a chunked body");
    });
  }

  it("keeps at most keepBody bytes and drains the rest without failing", async () => {
    const big = "x".repeat(100_000);
    const { conn, host } = setup((req) => (req.path === "/big" ? response(big) : chunked(["y".repeat(5000)])), 1460);
    const r = await conn.request({ method: "GET", path: "/big", keepBody: 10 });
    assert.equal(r.body.length, 10);
    assert.equal(r.bodyLength, 100_000);
    assert.equal(r.truncated, true);
    const c = await conn.request({ method: "GET", path: "/chunks" });
    assert.equal(c.body.length, 1024, "maxBody bounds memory for chunked bodies too");
    assert.equal(c.bodyLength, 5000);
    assert.equal(host.connections, 1, "draining kept the connection usable");
  });

  it("rejects oversized headers as a protocol error", async () => {
    const { conn } = setup(() => `HTTP/1.1 200 OK\r\nX-Big: ${"h".repeat(10_000)}\r\nContent-Length: 0\r\n\r\n`);
    await assert.rejects(conn.request({ method: "GET", path: "/" }), (e: HttpError) => e.kind === "protocol" && /exceed 8192 bytes/.test(e.message));
  });

  it("reconnects after the server closes (Connection: close) and after a drop", async () => {
    let n = 0;
    const { conn, host } = setup(() => (++n === 2 ? { drop: true } : response(`r${n}`, n === 1 ? "Connection: close\r\n" : "")));
    assert.equal(dec.decode((await conn.request({ method: "GET", path: "/" })).body), "r1");
    await assert.rejects(conn.request({ method: "GET", path: "/" }), (e: HttpError) => e.kind === "network");
    assert.equal(dec.decode((await conn.request({ method: "GET", path: "/" })).body), "r3");
    assert.equal(host.connections, 3);
  });

  it("resends once, on a fresh connection, a request whose reused connection died before any answer", async () => {
    let n = 0;
    const { conn, host } = setup(() => (++n === 2 ? { drop: true } : response(`r${n}`)));
    await conn.request({ method: "GET", path: "/" });
    const r = await conn.request({ method: "GET", path: "/" });
    assert.equal(dec.decode(r.body), "r3");
    assert.equal(host.connections, 2);
  });

  it("times out a request that gets no answer, and recovers", async () => {
    let n = 0;
    const { conn, time } = setup(() => (++n === 1 ? { hang: true } : response("late")));
    const p = conn.request({ method: "GET", path: "/" });
    const failed = assert.rejects(p, (e: HttpError) => e.kind === "timeout");
    await time.advance(5000);
    await failed;
    const r = conn.request({ method: "GET", path: "/" });
    await time.advance(1);
    assert.equal(dec.decode((await r).body), "late");
  });

  it("reads a body without length until the server closes; no-body statuses end at the headers", async () => {
    const { conn } = setup(() => ({ reply: "HTTP/1.1 200 OK\r\n\r\nuntil close", thenClose: true }), 4);
    const r = await conn.request({ method: "GET", path: "/" });
    assert.equal(dec.decode(r.body), "until close");
    const none = setup(() => "HTTP/1.1 204 No Content\r\n\r\n");
    const d = await none.conn.request({ method: "DELETE", path: "/" });
    assert.equal(d.status, 204);
    assert.equal(d.body.length, 0);
  });
});
