// The pure HTTP/1.x parser on its own: requests (the kubelet API server's side) and responses, fed in
// arbitrary pieces, with its limits.
import assert from "node:assert/strict";
import { HttpError, HttpParser } from "../../modules/http/parser";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Feeds text in pieces of `step` bytes; returns the parser and the index where it stopped. */
function feed(parser: HttpParser, text: string, step: number): number {
  const bytes = enc.encode(text);
  for (let i = 0; i < bytes.length; i += step) {
    const end = Math.min(bytes.length, i + step);
    const stop = parser.push(bytes, i, end);
    if (parser.done) return stop;
  }
  return bytes.length;
}

describe("HTTP/1.x parser", () => {
  for (const step of [1, 3, 7, 1000]) {
    it(`parses a request with a Content-Length body, in ${step}-byte pieces`, () => {
      const p = new HttpParser("request");
      p.begin(1024);
      const text = "POST /pods?x=1 HTTP/1.1\r\nHost: board-1:10250\r\nAuthorization: Bearer abc\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n";
      const stop = feed(p, text, step);
      assert.ok(p.done);
      assert.deepEqual([p.method, p.target, p.headers.get("host"), p.headers.get("authorization")], ["POST", "/pods?x=1", "board-1:10250", "Bearer abc"]);
      assert.equal(dec.decode(p.takeBody()), "hello");
      assert.equal(text.slice(stop), "GET / HTTP/1.1\r\n", "stops at the end of the message: pipelined bytes are the caller's");
    });
  }

  it("a request without framing has no body; a chunked request is de-chunked", () => {
    const get = new HttpParser("request");
    get.begin(64);
    feed(get, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 5);
    assert.ok(get.done);
    assert.equal(get.bodyLength, 0);
    const chunked = new HttpParser("request");
    chunked.begin(64);
    feed(chunked, "PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n", 2);
    assert.ok(chunked.done);
    assert.equal(dec.decode(chunked.takeBody()), "abcde");
  });

  it("keeps at most keepBody bytes, counts the rest", () => {
    const p = new HttpParser("response");
    p.begin(4);
    feed(p, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789", 3);
    assert.ok(p.done);
    assert.equal(p.bodyLength, 10);
    assert.equal(dec.decode(p.takeBody()), "0123");
  });

  it("an until-close response body ends with the connection, and only then", () => {
    const p = new HttpParser("response");
    p.begin(64);
    feed(p, "HTTP/1.0 200 OK\r\n\r\npartial", 4);
    assert.ok(!p.done && p.awaitingClose && p.closeAfter);
    assert.ok(p.end());
    assert.equal(dec.decode(p.takeBody()), "partial");
    const cut = new HttpParser("response");
    cut.begin(64);
    feed(cut, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 4);
    assert.equal(cut.end(), false, "a Content-Length body cut short is not complete");
  });

  it("skips interim responses, honours HEAD, 204 and 304", () => {
    const p = new HttpParser("response");
    p.begin(64);
    feed(p, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok", 5);
    assert.deepEqual([p.done, p.status, dec.decode(p.takeBody())], [true, 201, "ok"]);
    const head = new HttpParser("response");
    head.begin(64, true);
    feed(head, "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", 100);
    assert.ok(head.done);
    const none = new HttpParser("response");
    none.begin(64);
    feed(none, "HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n", 100);
    assert.ok(none.done);
  });

  it("rejects what is malformed or too big, naming it", () => {
    const bad = (kind: "request" | "response", text: string, re: RegExp, maxHeaderBytes?: number) => {
      const p = new HttpParser(kind, { maxHeaderBytes });
      p.begin(64);
      assert.throws(() => feed(p, text, 7), (e: HttpError) => e instanceof HttpError && e.kind === "protocol" && re.test(e.message));
    };
    bad("response", "SSH-2.0-OpenSSH\r\n\r\n", /not an HTTP\/1.x response/);
    bad("request", "GET /\r\n\r\n", /not an HTTP\/1.x request line/);
    bad("request", `GET / HTTP/1.1\r\nX: ${"a".repeat(200)}\r\n\r\n`, /request headers exceed 128 bytes/, 128);
    bad("response", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", /bad Content-Length "-1"/);
    bad("response", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", /malformed chunk size "zz"/);
    bad("response", `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n${"1".repeat(300)}`, /line too long/);
  });
});
