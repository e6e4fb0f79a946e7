// The kubelet API's HTTP/1.1 server on the virtual host's listener: keep-alive, pipelining, every
// bound (head, body, connections, slowloris, idle, handler time), malformed requests, failing
// handlers — in virtual time, through the same microtask delivery as the client sockets.
import assert from "node:assert/strict";
import { VirtualTime, createVirtualHost, seededRandom } from "../../hosts/virtual/host";
import { parseTarget } from "../../modules/http/parser";
import { HttpServer, SERVER_DEFAULTS, textResponse, type HttpServerOptions, type RequestHandler, type ServerRequest } from "../../modules/server/http-server";

const TLS = { certificate: new Uint8Array(0), key: new Uint8Array(0) };

interface Parsed {
  status: number;
  headers: Map<string, string>;
  body: string;
}

/** Splits what a client received into responses (Content-Length framing; ASCII bodies). */
function responses(text: string): Parsed[] {
  const out: Parsed[] = [];
  let rest = text;
  while (rest.length > 0) {
    const end = rest.indexOf("\r\n\r\n");
    if (end < 0) throw new Error(`incomplete head: ${JSON.stringify(rest.slice(0, 80))}`);
    const lines = rest.slice(0, end).split("\r\n");
    const status = Number(lines[0].split(" ")[1]);
    const headers = new Map<string, string>();
    for (const l of lines.slice(1)) headers.set(l.slice(0, l.indexOf(":")).toLowerCase(), l.slice(l.indexOf(":") + 1).trim());
    const length = status === 100 ? 0 : Number(headers.get("content-length"));
    out.push({ status, headers, body: rest.slice(end + 4, end + 4 + length) });
    rest = rest.slice(end + 4 + length);
  }
  return out;
}

function setup(handler: RequestHandler, options: HttpServerOptions = {}) {
  const time = new VirtualTime();
  const host = createVirtualHost({ time, handler: () => "HTTP/1.1 500 Unused\r\nContent-Length: 0\r\n\r\n" });
  const server = new HttpServer(host, handler, options);
  const listener = server.listen({ port: 10250, tls: TLS });
  const dial = () => host.dial(listener.port);
  return { time, host, server, listener, dial };
}

const echo: RequestHandler = (r) => textResponse(200, `${r.method} ${r.path}${r.query ? `?${r.query}` : ""} ${r.body.length}`, false);
const get = (path: string, extra = "") => `GET ${path} HTTP/1.1\r\nHost: board\r\n${extra}\r\n`;

describe("kubelet API HTTP server", () => {
  it("keeps the connection alive across requests, framing each with Content-Length", async () => {
    const { time, dial, server, host } = setup(echo);
    const c = dial();
    c.write(get("/a"));
    await time.advance(1);
    c.write(get("/b?x=1"));
    await time.advance(1);
    const [a, b] = responses(c.received());
    assert.equal(a.status, 200);
    assert.equal(a.body, "GET /a 0");
    assert.equal(a.headers.get("content-length"), "8");
    assert.equal(a.headers.get("connection"), undefined);
    assert.equal(b.body, "GET /b?x=1 0");
    assert.equal(c.closed, false);
    assert.equal(server.connections, 1);
    assert.equal(host.connections, 0, "the client-socket counter is untouched by dial");
  });

  it("answers pipelined requests in order, one at a time", async () => {
    let running = 0;
    let most = 0;
    const seen: string[] = [];
    const { time, dial } = setup(async (r) => {
      running++;
      most = Math.max(most, running);
      seen.push(r.path);
      for (let i = 0; i < 5; i++) await null;
      running--;
      return textResponse(200, r.path, false);
    });
    const c = dial();
    c.write(get("/1") + get("/2") + get("/3"));
    await time.until(() => responses(c.received()).length === 3, 1000);
    assert.deepEqual(responses(c.received()).map((r) => r.body), ["/1", "/2", "/3"]);
    assert.deepEqual(seen, ["/1", "/2", "/3"]);
    assert.equal(most, 1);
  });

  it("closes after answering Connection: close and HTTP/1.0, and says so", async () => {
    const { time, dial } = setup(echo);
    const a = dial();
    a.write(get("/x", "Connection: close\r\n"));
    const b = dial();
    await time.advance(1);
    b.write("GET /y HTTP/1.0\r\n\r\n");
    await time.advance(1);
    for (const c of [a, b]) {
      const [r] = responses(c.received());
      assert.equal(r.status, 200);
      assert.equal(r.headers.get("connection"), "close");
      assert.equal(c.closed, true);
    }
  });

  it("answers HEAD with the GET's Content-Length and no body", async () => {
    const { time, dial } = setup(() => textResponse(200, "ok", false));
    const c = dial();
    c.write(`HEAD /healthz HTTP/1.1\r\nHost: b\r\n\r\n${get("/healthz")}`);
    await time.advance(1);
    const text = c.received();
    assert.ok(text.startsWith("HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 2\r\n\r\nHTTP/1.1 200 OK"), text);
    assert.ok(text.endsWith("\r\n\r\nok"));
  });

  it("writes a Date header from the agent's clock, none while it is unknown", async () => {
    let now: number | undefined;
    const { time, dial } = setup(echo, {
      date: () => {
        if (now === undefined) throw new Error("wall clock not anchored yet");
        return now;
      },
    });
    const c = dial();
    c.write(get("/"));
    await time.advance(1);
    now = Date.UTC(2026, 0, 2, 3, 4, 5);
    c.write(get("/"));
    await time.advance(1);
    const [a, b] = responses(c.received());
    assert.equal(a.headers.get("date"), undefined);
    assert.equal(b.headers.get("date"), "Fri, 02 Jan 2026 03:04:05 GMT");
  });

  it("reads chunked request bodies (within the body bound)", async () => {
    const { time, dial } = setup(echo);
    const c = dial();
    c.write("POST /p HTTP/1.1\r\nHost: b\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
    await time.advance(1);
    assert.equal(responses(c.received())[0].body, "POST /p 11");
    assert.equal(c.closed, false);
  });

  it("sends 100 Continue to a client that waits for it", async () => {
    const { time, dial } = setup(echo);
    const c = dial();
    c.write("POST /p HTTP/1.1\r\nHost: b\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n");
    await time.advance(1);
    assert.equal(c.received(), "HTTP/1.1 100 Continue\r\n\r\n");
    c.write("abc");
    await time.advance(1);
    assert.equal(responses(c.received())[1].body, "POST /p 3");
  });

  describe("bounds", () => {
    it(`a head over ${SERVER_DEFAULTS.maxHeaderBytes} bytes → 431 and close`, async () => {
      let called = 0;
      const { time, dial } = setup(() => (called++, textResponse(200, "no")));
      const c = dial();
      c.write(`GET / HTTP/1.1\r\nHost: b\r\nX-Big: ${"a".repeat(9000)}\r\n\r\n`);
      await time.advance(1);
      const [r] = responses(c.received());
      assert.equal(r.status, 431);
      assert.equal(r.body, "request headers exceed 8192 bytes\n");
      assert.equal(r.headers.get("connection"), "close");
      assert.equal(c.closed, true);
      assert.equal(called, 0);
    });

    it("a head split into many pieces counts across them", async () => {
      const { time, dial } = setup(echo);
      const c = dial();
      c.write("GET / HTTP/1.1\r\nHost: b\r\n");
      for (let i = 0; i < 100; i++) c.write(`X-${i}: ${"v".repeat(90)}\r\n`);
      await time.advance(1);
      assert.equal(responses(c.received())[0].status, 431);
    });

    it(`a body over ${SERVER_DEFAULTS.maxBodyBytes} bytes → 413 and close, by Content-Length before it arrives`, async () => {
      let called = 0;
      const { time, dial } = setup(() => (called++, textResponse(200, "no")));
      const c = dial();
      c.write("POST / HTTP/1.1\r\nHost: b\r\nContent-Length: 16385\r\n\r\n");
      await time.advance(1);
      const [r] = responses(c.received());
      assert.equal(r.status, 413);
      assert.equal(r.body, "request body exceeds 16384 bytes\n");
      assert.equal(c.closed, true);
      assert.equal(called, 0);
    });

    it("a chunked body over the bound → 413 and close", async () => {
      const { time, dial } = setup(echo);
      const c = dial();
      c.write("POST / HTTP/1.1\r\nHost: b\r\nTransfer-Encoding: chunked\r\n\r\n");
      for (let i = 0; i < 5; i++) c.write(`1000\r\n${"x".repeat(4096)}\r\n`);
      await time.advance(1);
      assert.equal(responses(c.received())[0].status, 413);
      assert.equal(c.closed, true);
    });

    it("a body of exactly the bound is read", async () => {
      const { time, dial } = setup(echo);
      const c = dial();
      c.write(`POST / HTTP/1.1\r\nHost: b\r\nContent-Length: 16384\r\n\r\n${"y".repeat(16384)}`);
      await time.advance(1);
      assert.equal(responses(c.received())[0].body, "POST / 16384");
    });

    it("slowloris: a request not whole 10 s after its first byte → 408 and close, however it trickles", async () => {
      const { time, dial } = setup(echo);
      const c = dial();
      c.write("GET / HTTP/1.1\r\n");
      for (let i = 0; i < 9; i++) {
        await time.advance(1000);
        c.write("X-Slow: 1\r\n");
      }
      await time.advance(999);
      assert.equal(c.received(), "");
      await time.advance(1);
      const [r] = responses(c.received());
      assert.equal(r.status, 408);
      assert.equal(r.body, "request not received within 10 s\n");
      assert.equal(c.closed, true);
    });

    it("an idle keep-alive connection closes after 30 s (silently); a used one 30 s after its last answer", async () => {
      const { time, dial, server } = setup(echo);
      const silent = dial();
      const used = dial();
      await time.advance(20_000);
      used.write(get("/"));
      await time.advance(10_000);
      assert.equal(silent.closed, true);
      assert.equal(silent.received(), "");
      assert.equal(used.closed, false);
      await time.advance(19_999);
      assert.equal(used.closed, false);
      await time.advance(1);
      assert.equal(used.closed, true);
      assert.equal(server.connections, 0);
    });

    it("at most 2 connections: the host refuses the third at accept; a freed slot is used again", async () => {
      const { time, dial, server } = setup(echo);
      const a = dial();
      const b = dial();
      const c = dial();
      assert.equal(c.refused, true);
      assert.equal(c.closed, true);
      assert.equal(server.connections, 2);
      a.close();
      await time.advance(1);
      assert.equal(server.connections, 1);
      const d = dial();
      assert.equal(d.refused, false);
      d.write(get("/d"));
      b.write(get("/b"));
      await time.advance(1);
      assert.equal(responses(d.received())[0].body, "GET /d 0");
      assert.equal(responses(b.received())[0].body, "GET /b 0");
    });

    it("the server refuses beyond maxConnections itself when a host lets one through", () => {
      const { server } = setup(echo);
      let closed = 0;
      const socket = { write() {}, close: () => void closed++ };
      server.accept(socket, { address: "a" });
      server.accept(socket, { address: "b" });
      server.accept(socket, { address: "c" });
      assert.equal(closed, 1);
      assert.equal(server.stats.refused, 1);
      assert.equal(server.connections, 2);
    });

    it("pipelined bytes beyond 8 KiB while a request is answered: that answer closes the connection", async () => {
      let release: () => void = () => {};
      const { time, dial } = setup((r) => (r.path === "/slow" ? new Promise((resolve) => (release = () => resolve(textResponse(200, "slow", false)))) : textResponse(200, "fast", false)));
      const c = dial();
      c.write(get("/slow"));
      await time.advance(1);
      for (let i = 0; i < 300; i++) c.write(get("/f"));
      await time.advance(1);
      release();
      await time.advance(1);
      const all = responses(c.received());
      assert.equal(all.length, 1);
      assert.equal(all[0].headers.get("connection"), "close");
      assert.equal(c.closed, true);
    });

    it("a handler that never answers → 503 at 10 s, and the connection closes", async () => {
      const { time, dial } = setup(() => new Promise(() => {}));
      const c = dial();
      c.write(get("/hang"));
      await time.advance(9999);
      assert.equal(c.received(), "");
      await time.advance(1);
      const [r] = responses(c.received());
      assert.equal(r.status, 503);
      assert.equal(r.body, "the handler did not answer within 10 s\n");
      assert.equal(c.closed, true);
    });

    it("an answer that comes after the 503 goes nowhere", async () => {
      let late: (v: any) => void = () => {};
      const { time, dial } = setup(() => new Promise((resolve) => (late = resolve)));
      const c = dial();
      c.write(get("/"));
      await time.advance(10_000);
      late(textResponse(200, "late"));
      await time.advance(1);
      assert.equal(responses(c.received()).length, 1);
    });
  });

  describe("malformed requests → 400 with a one-line reason, then close", () => {
    const cases: [string, string, number, RegExp][] = [
      ["garbage", "HELLO\r\n\r\n", 400, /^not an HTTP\/1\.x request line: "HELLO"\n$/],
      ["HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400, /not an HTTP\/1\.x request line/],
      ["bad Content-Length", "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400, /^bad Content-Length "-1"\n$/],
      ["both framings", "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400, /both Transfer-Encoding and Content-Length/],
      ["unknown transfer coding", "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501, /unsupported Transfer-Encoding "gzip"/],
      ["dot segments", "GET /healthz/../pods HTTP/1.1\r\n\r\n", 400, /path has \. or \.\. segments/],
      ["encoded dot segments", "GET /x/%2e%2e/pods HTTP/1.1\r\n\r\n", 400, /path has \. or \.\. segments/],
      ["bad percent-encoding", "GET /%zz HTTP/1.1\r\n\r\n", 400, /malformed percent-encoding/],
      ["asterisk target", "OPTIONS * HTTP/1.1\r\n\r\n", 400, /not a path/],
      ["bad chunk size", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400, /malformed chunk size/],
    ];
    for (const [name, text, status, body] of cases) {
      it(name, async () => {
        let called = 0;
        const { time, dial } = setup(() => (called++, textResponse(200, "no")));
        const c = dial();
        c.write(text);
        await time.advance(1);
        const [r] = responses(c.received());
        assert.equal(r.status, status);
        assert.match(r.body, body);
        assert.equal(r.body.split("\n").length, 2, "one line");
        assert.equal(r.headers.get("connection"), "close");
        assert.equal(c.closed, true);
        assert.equal(called, 0);
      });
    }

    it("parseTarget: absolute form, queries, fragments", () => {
      assert.deepEqual(parseTarget("https://10.0.0.1:10250/pods?x=1"), { path: "/pods", query: "x=1" });
      assert.deepEqual(parseTarget("/containerLogs/ns/p%20q/c?follow=true#f"), { path: "/containerLogs/ns/p q/c", query: "follow=true" });
      assert.deepEqual(parseTarget("http://h"), { path: "/", query: "" });
      assert.equal(typeof parseTarget("/a/."), "string");
    });
  });

  describe("failing handlers", () => {
    it("a handler that throws → 500, and the connection serves the next request", async () => {
      const { time, dial, host } = setup((r) => {
        if (r.path === "/boom") throw new Error("kaboom");
        return echo(r);
      });
      const c = dial();
      c.write(get("/boom") + get("/ok"));
      await time.advance(1);
      const [a, b] = responses(c.received());
      assert.equal(a.status, 500);
      assert.equal(a.body, "Internal Server Error\n");
      assert.equal(b.body, "GET /ok 0");
      assert.ok(host.logs.some((l) => /handler failed: kaboom/.test(l)));
    });

    it("a rejected promise → 500", async () => {
      const { time, dial } = setup(() => Promise.reject(new Error("no")));
      const c = dial();
      c.write(get("/"));
      await time.advance(1);
      assert.equal(responses(c.received())[0].status, 500);
    });

    it("a response the server cannot write (a header with a line break) → 500 and close", async () => {
      const { time, dial } = setup(() => ({ status: 200, headers: [["X-Bad", "a\r\nSet-Cookie: x"]], body: "" }));
      const c = dial();
      c.write(get("/"));
      await time.advance(1);
      const [r] = responses(c.received());
      assert.equal(r.status, 500);
      assert.equal(r.headers.get("set-cookie"), undefined);
      assert.equal(c.closed, true);
    });

    it("random bytes from a hostile client never throw out of the server", async () => {
      const random = seededRandom(7);
      const seen: ServerRequest[] = [];
      const { time, dial, server, host } = setup((r) => (seen.push(r), textResponse(200, "ok")));
      for (let round = 0; round < 40; round++) {
        const c = dial();
        const pieces = 1 + Math.floor(random() * 6);
        for (let p = 0; p < pieces; p++) {
          const n = Math.floor(random() * 400);
          const bytes = new Uint8Array(n);
          for (let i = 0; i < n; i++) bytes[i] = random() < 0.3 ? [13, 10, 32, 58, 71, 69, 84, 47][Math.floor(random() * 8)] : Math.floor(random() * 256);
          c.write(p === 0 && random() < 0.5 ? `GET / HTTP/1.1\r\n${new TextDecoder().decode(bytes)}` : bytes);
        }
        await time.advance(11_000);
        c.close();
        await time.advance(1);
      }
      await time.advance(31_000);
      assert.equal(server.connections, 0);
      assert.deepEqual(host.logs.filter((l) => /connection failed/.test(l)), [], "no internal error");
      assert.ok(server.stats.rejected > 0);
    });
  });

  it("close() stops listening and ends every connection", async () => {
    const { time, dial, server, host } = setup(echo);
    const c = dial();
    await time.advance(1);
    server.close();
    await time.advance(1);
    assert.equal(c.closed, true);
    assert.equal(host.dial(10250).refused, true);
  });
});
