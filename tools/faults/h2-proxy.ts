// An HTTP/2 fault proxy on 127.0.0.1 between the agent and the real kube-apiserver (issue 13): where
// tools/faults/proxy.ts breaks the TCP path, this one terminates TLS and speaks HTTP/2 on both sides
// (node:http2), so it can break what a server, or a proxy in front of one, does at the HTTP level.
//
//   agent ──TLS (ALPN h2, a serving certificate for localhost/127.0.0.1 from the cluster CA)──▶ proxy
//   proxy ──TLS (ALPN h2, kube-apiserver verified against the cluster CA)──▶ kube-apiserver
//
// Every request stream is forwarded as it came — method, path, every header (authorization
// included: the agent uses a bearer token here), the body — and every response as it comes: status,
// headers, the body streamed with backpressure both ways (a watch is one long response). Each agent
// connection gets its own upstream connection, opened on its first request, so what happens to one
// agent session happens to no other's; an upstream connection the API server closes (GOAWAY, idle)
// is replaced for the next request without the agent seeing anything but that stream's end; one the
// proxy cannot open shows as RST_STREAM on each request (the agent's connection to the proxy stays).
//
// API, for tests and a campaign that picks faults at random:
//   const proxy = await startH2FaultProxy({ upstream: { host: cp.host, port: cp.port }, pkiDir: join(cp.dir, "pki") });
//   new Kubelet({ server: { host: "127.0.0.1", port: proxy.port }, tls: { serverName: "localhost", ca: cp.caDer, verify: true }, token, … })
//   const result = await proxy.inject({ kind: "status", status: 429, retryAfterSeconds: 3, match: LEASE_RENEWAL });
//   proxy.requests()  — the last requests seen (who answered, with what, on which connection and certificate)
//   await proxy.close()
//   H2_FAULT_KINDS, pickH2Fault(random): every kind, and a random fault of bounded length.
// inject() resolves when the fault is over (the path is good again), with what it hit.
//
// The faults, at the frame level (toward the agent unless said otherwise):
//   status          the next `count` requests that match (default: any) are answered by the proxy
//                   itself: HEADERS :status 429 (Retry-After: S), 500 or 503 (Retry-After if given)
//                   with the JSON Status body kube-apiserver sends, then DATA+END_STREAM; the request
//                   never reaches the API server. Over when `count` were answered (or after `ms`).
//   goaway          GOAWAY(NO_ERROR, last stream id = the highest the session accepted) on every live
//                   agent session, as a server shutting down sends it: streams at or below it are
//                   served on; new ones must go over a new connection. After the grace `ms` the
//                   streams still open (the watches) are ended cleanly (END_STREAM, as kube-apiserver
//                   ends its watches at shutdown), one without a response yet is reset (CANCEL), and
//                   the connection is closed (node:http2's close() repeats the GOAWAY, same last
//                   stream id, as RFC 9113 §6.8 allows). Over when those sessions are gone.
//   rst-watch       RST_STREAM(INTERNAL_ERROR, or CANCEL) on every open watch stream (a request with
//                   watch=true or watch=1 in its query) of every live session; its upstream stream is
//                   cancelled. The connection stays. Over at once.
//   stall-window    "a stalled stream with a full window", in one of two directions:
//                   down (default): every open watch stream stops: the proxy writes nothing more to
//                     the agent on it and stops reading it from the API server, so kube-apiserver's
//                     send window on that stream fills up (the proxy advertises a 16 KiB stream window
//                     upstream, as the agent does, and sends no WINDOW_UPDATE while stalled) and its
//                     events back up in the server — as behind a stuck intermediary. The agent sees a
//                     live connection (PINGs answered, other streams served) with one silent stream.
//                     After `ms` the stream flows again. `windowFull` says whether the upstream window
//                     actually reached 0 (the test must produce more than window + buffer to fill it).
//                   up: the proxy's SETTINGS_INITIAL_WINDOW_SIZE to the agent goes to 0 on every live
//                     session: the agent's stream send windows are exhausted at once, so a request body
//                     (the Lease PATCH) cannot leave — HEADERS arrive, DATA does not — until, after
//                     `ms`, a SETTINGS back to 65535 reopens every window and the bodies follow.
//   ping-unanswered every live agent session goes silent for `ms`: nothing is written to the agent (not
//                   the PING ACKs node:http2 would send on its own, which cannot be turned off) and
//                   nothing it sends is read, while the TCP connection and TLS stay up — what a dead or
//                   hung peer looks like. The agent's own liveness check must find out (a PING, no
//                   ACK) and move to a new connection, which is served normally. After `ms` the
//                   silenced sessions carry on where they were (or close, if the agent left them).
//   new-cert        new TLS handshakes get a new serving certificate (a new P-256 key, same CA, same
//                   names), and every live session is shut down as in `goaway` with a grace of `ms`
//                   (default 500): an API server that restarted with a new certificate. The agent must
//                   reconnect and verify the new one; requests() says which certificate served each.
//                   With `untrustedMs`, for that long first a certificate for the same names from a CA
//                   the agent does not know (an impersonator): the agent must end every such
//                   connection without a stream (`refused` counts them), no request may arrive over
//                   one; then the good new one.
import "reflect-metadata";
import { createPrivateKey, generateKeyPairSync, randomBytes, webcrypto } from "node:crypto";
import { EventEmitter, once } from "node:events";
import { readFileSync } from "node:fs";
import {
  connect as h2connect, constants as H2, createServer as h2CreateServer, sensitiveHeaders,
  type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders, type OutgoingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream,
} from "node:http2";
import { isIP } from "node:net";
import { join } from "node:path";
import { Duplex } from "node:stream";
import { createServer as tlsCreateServer, type TLSSocket } from "node:tls";
import * as x509 from "@peculiar/x509";

export type H2FaultKind = "status" | "goaway" | "rst-watch" | "stall-window" | "ping-unanswered" | "new-cert";
export const H2_FAULT_KINDS: readonly H2FaultKind[] = Object.freeze(["status", "goaway", "rst-watch", "stall-window", "ping-unanswered", "new-cert"]);

/** Which requests a fault applies to; absent fields match anything. */
export interface RequestMatch {
  method?: string;
  /** Tested against the :path, query included. */
  path?: RegExp;
}

/** The agent's Lease renewal (and its Lease GET/POST when no method is given). */
export const LEASE_RENEWAL: RequestMatch = Object.freeze({ method: "PATCH", path: /^\/apis\/coordination\.k8s\.io\/v1\/namespaces\/kube-node-lease\/leases\// });

export type H2Fault =
  | { kind: "status"; status: 429 | 500 | 503; retryAfterSeconds?: number; count?: number; match?: RequestMatch; ms?: number }
  | { kind: "goaway"; ms?: number }
  /** code: NGHTTP2_INTERNAL_ERROR (default) or NGHTTP2_CANCEL — what node:http2 can send on a stream whose response has begun. */
  | { kind: "rst-watch"; code?: number; match?: RequestMatch }
  | { kind: "stall-window"; direction?: "down" | "up"; ms?: number; match?: RequestMatch }
  | { kind: "ping-unanswered"; ms?: number }
  /** untrustedMs: first serve, for this long, a certificate from a CA the agent does not know (an impersonator). */
  | { kind: "new-cert"; ms?: number; untrustedMs?: number };

export interface H2FaultResult {
  kind: H2FaultKind;
  /** What it hit: requests answered (status), sessions (goaway, ping-unanswered, new-cert), streams (rst-watch, stall-window). */
  hits: number;
  /** stall-window: did an upstream stream window reach 0 (down), or a request body wait for window (up)? */
  windowFull?: boolean;
  /** new-cert with untrustedMs: connections with the untrusted certificate that ended without a stream (the agent refused it). */
  refused?: number;
  /** Date.now() when the fault began and when it was over. */
  startedAt: number;
  endedAt: number;
}

/** One request as the proxy saw it (the last 500 are kept). */
export interface RequestRecord {
  /** Date.now() at its HEADERS. */
  at: number;
  method: string;
  /** Its :path, at most 300 characters. */
  path: string;
  watch: boolean;
  /** The response's status; 0 until the response headers, -1 when it was reset or cut instead. */
  status: number;
  /** Who answered: the API server through the proxy, or the proxy itself (a status fault). */
  by: "apiserver" | "proxy";
  /** The agent session (1, 2, … in the order of connections) and the stream in it. */
  session: number;
  stream: number;
  /** Which serving certificate the session was handshaken with: 1, then one more per new-cert; 0 for an untrusted one. */
  certificate: number;
}

export interface H2FaultProxy {
  readonly port: number;
  /** TLS connections accepted (handshakes completed with ALPN h2). */
  readonly accepted: number;
  /** Agent sessions open now. */
  readonly sessions: number;
  /**
   * TLS handshakes that failed on the proxy's side (a plain TCP connect that never spoke TLS — the
   * agent's reachability probe — or a client gone mid-handshake). A client refusing the certificate
   * under TLS 1.3 is not among them: see H2FaultResult.refused.
   */
  readonly handshakeFailures: number;
  /** The serving certificate new handshakes get (DER), and its number. */
  readonly certificate: { der: Uint8Array; generation: number };
  /** The last requests seen, oldest first (a copy). */
  requests(): RequestRecord[];
  /** Called for every request as it arrives and again when its status is known. */
  onRequest?: (record: RequestRecord) => void;
  /** Injects a fault; resolves when it is over. */
  inject(fault: H2Fault): Promise<H2FaultResult>;
  close(): Promise<void>;
}

export interface H2ProxyOptions {
  upstream: { host: string; port: number };
  /** The control plane's PKI (<cp.dir>/pki): ca.crt verifies the API server, ca.key signs the proxy's serving certificates. */
  pkiDir: string;
  /** SANs of the serving certificate; default localhost and 127.0.0.1 (the agent's serverName "localhost"). */
  names?: string[];
  /** Where it listens (default 127.0.0.1, a free port). */
  listen?: { host?: string; port?: number };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The stream window the proxy advertises upstream: the agent's (modules/http/h2-parts.ts), so a stalled watch fills kube-apiserver's window as fast as a stalled agent would. */
const UPSTREAM_STREAM_WINDOW = 16384;
const LOG_SIZE = 500;

const ECDSA = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };

/** Who signs the proxy's serving certificates: the cluster CA, or (an impersonator) a CA nobody trusts. */
interface Issuer {
  pem: string;
  name: x509.Name;
  signingKey: webcrypto.CryptoKey;
}

async function clusterIssuer(pkiDir: string): Promise<Issuer> {
  const pem = readFileSync(join(pkiDir, "ca.crt"), "utf8");
  const caKey = createPrivateKey(readFileSync(join(pkiDir, "ca.key"), "utf8")).export({ type: "pkcs8", format: "der" });
  // The CA's subject as it encodes it, so the issuer matches byte for byte.
  return { pem, name: new x509.X509Certificate(pem).subjectName, signingKey: await webcrypto.subtle.importKey("pkcs8", caKey, ECDSA, false, ["sign"]) };
}

async function throwawayIssuer(): Promise<Issuer> {
  const keys = (await webcrypto.subtle.generateKey(ECDSA, false, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
  const now = Date.now();
  const ca = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: randomBytes(8).toString("hex").replace(/^[89a-f]/, "1"),
      name: "CN=not-the-cluster-ca",
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + 24 * 3600_000),
      keys,
      signingAlgorithm: ECDSA,
      extensions: [new x509.BasicConstraintsExtension(true, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true)],
    },
    webcrypto as any,
  );
  return { pem: ca.toString("pem"), name: ca.subjectName, signingKey: keys.privateKey };
}

/**
 * A serving certificate for the given names: P-256 like kube-apiserver's own
 * (tools/controlplane/util/cmd/pki), served as the chain leaf + CA as it serves its own.
 */
async function mintServing(issuer: Issuer, names: string[]): Promise<{ key: string; cert: string; der: Uint8Array }> {
  const pair = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const publicKey = await webcrypto.subtle.importKey("spki", pair.publicKey.export({ type: "spki", format: "der" }), ECDSA, true, ["verify"]);
  const now = Math.floor(Date.now() / 1000) * 1000;
  const leaf = await x509.X509CertificateGenerator.create(
    {
      serialNumber: randomBytes(8).toString("hex").replace(/^[89a-f]/, "1"),
      subject: "CN=h2-fault-proxy",
      issuer: issuer.name,
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + 24 * 3600_000),
      signingKey: issuer.signingKey,
      publicKey,
      signingAlgorithm: ECDSA,
      extensions: [
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.SubjectAlternativeNameExtension(names.map((value) => ({ type: isIP(value) ? "ip" : "dns", value }))),
      ],
    },
    webcrypto as any,
  );
  return { key: pair.privateKey.export({ type: "pkcs8", format: "pem" }) as string, cert: `${leaf.toString("pem")}\n${issuer.pem}`, der: new Uint8Array(leaf.rawData) };
}

/**
 * The plaintext HTTP/2 bytes of one agent connection, between its TLS socket and node:http2: where
 * a session can be silenced without TLS or TCP noticing. Silent, it reads nothing (the agent's bytes
 * wait in the socket) and holds the write node:http2 is waiting on (node:http2 has one write in
 * flight at a time, so its output queues inside the session, bounded by the windows) — no copy, no
 * buffer that grows.
 */
class Gate extends Duplex {
  #socket: TLSSocket;
  #held: { chunk: Buffer; done: (err?: Error | null) => void } | undefined;
  silent = false;

  constructor(socket: TLSSocket) {
    super();
    this.#socket = socket;
    socket.on("data", (d: Buffer) => {
      if (!this.push(d)) socket.pause();
    });
    socket.on("end", () => this.push(null));
    socket.on("error", (err) => this.destroy(err));
    socket.on("close", () => this.destroy());
  }

  silence(): void {
    this.silent = true;
    this.#socket.pause();
  }

  release(): void {
    if (!this.silent) return;
    this.silent = false;
    const held = this.#held;
    this.#held = undefined;
    if (held) this.#socket.write(held.chunk, held.done);
    if (!this.destroyed) this.#socket.resume();
  }

  override _read(): void {
    if (!this.silent) this.#socket.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (err?: Error | null) => void): void {
    if (this.silent) this.#held = { chunk, done };
    else this.#socket.write(chunk, done);
  }

  override _final(done: (err?: Error | null) => void): void {
    this.#socket.end();
    done();
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    this.#held = undefined; // its callback is never called: the session is going anyway
    this.#socket.destroy();
    done(err);
  }
}

/** A request stream and the upstream stream it is forwarded on. */
interface Pair {
  agent: ServerHttp2Stream;
  upstream: ClientHttp2Stream | undefined;
  record: RequestRecord;
  /** The response has started (HEADERS sent to the agent). */
  responded: boolean;
  /** The agent's request body has ended. */
  bodyEnded: boolean;
  /** stall-window down: nothing flows from upstream to the agent. */
  stalled: boolean;
  /** The proxy itself ended or reset it (a fault): the upstream stream's end is no longer forwarded. */
  detached: boolean;
}

interface AgentSession {
  n: number;
  session: ServerHttp2Session;
  gate: Gate;
  certificate: number;
  upstream: ClientHttp2Session | undefined;
  pairs: Set<Pair>;
  lastStreamId: number;
  /** Streams the agent opened on it. */
  streams: number;
  shuttingDown: boolean;
  /** stall-window up: SETTINGS_INITIAL_WINDOW_SIZE 0 is in force. */
  windowShut: boolean;
}

interface ArmedStatus {
  fault: Extract<H2Fault, { kind: "status" }>;
  left: number;
  hits: number;
  done: () => void;
}

/** node:http2's own AbortError (not exported): a stream destroyed with it is reset with CANCEL. */
let abortError: Error | undefined;

/**
 * RST_STREAM(code) on a stream. node:http2's close(code) ends a stream whose response (or request)
 * has begun before it resets it — DATA with END_STREAM, then RST_STREAM(NO_ERROR), seen on the wire:
 * a clean end, not a reset — so a begun stream is destroyed instead: with node's AbortError that
 * sends CANCEL, with any other error INTERNAL_ERROR (the only two codes it can then send).
 */
function reset(stream: ServerHttp2Stream, code: number): void {
  if (stream.closed || stream.destroyed) return;
  if (!stream.headersSent) return void stream.close(code);
  stream.destroy(code === H2.NGHTTP2_CANCEL && abortError ? abortError : new Error(`reset by the h2 fault proxy (code ${code})`));
}

/** RST_STREAM(CANCEL) upstream: the agent gave the request up, or the proxy did. */
function cancel(stream: ClientHttp2Stream | undefined): void {
  if (stream && !stream.closed && !stream.destroyed) stream.destroy(abortError ?? new Error("cancelled by the h2 fault proxy"));
}

const matches = (m: RequestMatch | undefined, method: string, path: string) => (!m?.method || m.method === method) && (!m?.path || m.path.test(path));

function isWatch(path: string): boolean {
  const q = path.indexOf("?");
  if (q < 0) return false;
  const w = new URLSearchParams(path.slice(q + 1)).get("watch");
  return w === "true" || w === "1";
}

/** The Status kube-apiserver writes with these codes (apimachinery's NewTooManyRequests, NewInternalError, NewServiceUnavailable). */
function statusBody(code: 429 | 500 | 503, retryAfterSeconds: number | undefined): string {
  const reason = code === 429 ? "TooManyRequests" : code === 500 ? "InternalError" : "ServiceUnavailable";
  const message =
    code === 429 ? "Too many requests, please try again later." : code === 500 ? "Internal error occurred: injected by the h2 fault proxy" : "the server is currently unable to handle the request (injected by the h2 fault proxy)";
  const details = retryAfterSeconds !== undefined ? { retryAfterSeconds } : code === 500 ? { causes: [{ message: "injected by the h2 fault proxy" }] } : undefined;
  return JSON.stringify({ kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message, reason, ...(details ? { details } : {}), code });
}

/** Request headers as they go upstream: all of them, the authorization kept out of HPACK's table as the agent's own encoder may have asked. */
function upstreamHeaders(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) if (value !== undefined) out[name] = value;
  (out as any)[sensitiveHeaders] = ["authorization"];
  return out;
}

/** Response headers as they go to the agent: all but what node:http2 sets itself or refuses. */
function agentHeaders(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) if (value !== undefined && name !== "connection" && name !== "keep-alive" && name !== "transfer-encoding") out[name] = value;
  return out;
}

export async function startH2FaultProxy(options: H2ProxyOptions): Promise<H2FaultProxy> {
  abortError ??= await once(new EventEmitter(), "never", { signal: AbortSignal.abort() }).then(
    () => undefined,
    (err: Error) => err,
  );
  const names = options.names ?? ["localhost", "127.0.0.1"];
  const ca = readFileSync(join(options.pkiDir, "ca.crt"), "utf8");
  const target = `https://${options.upstream.host}:${options.upstream.port}`;
  const cluster = await clusterIssuer(options.pkiDir);
  let serving = await mintServing(cluster, names);
  let generation = 1;
  /** Which certificate a handshake was served, by its DER: the last few only (older ones have no sessions left). */
  const generations = new Map<string, number>();
  const remember = (der: Uint8Array, n: number) => {
    generations.set(Buffer.from(der).toString("base64"), n);
    if (generations.size > 8) generations.delete(generations.keys().next().value!);
  };
  remember(serving.der, 1);
  const live = new Set<AgentSession>();
  const log: RequestRecord[] = [];
  const armed: ArmedStatus[] = [];
  let accepted = 0;
  let handshakeFailures = 0;
  let refusedSessions = 0;
  let sessionsSeen = 0;
  let closed = false;

  const note = (r: RequestRecord) => {
    try {
      api.onRequest?.(r);
    } catch {
      // an observer's bug is not the proxy's
    }
  };

  const h2 = h2CreateServer({ settings: { enablePush: false } });
  const tls = tlsCreateServer({ key: serving.key, cert: serving.cert, ALPNProtocols: ["h2"] }, (socket) => {
    if (socket.alpnProtocol !== "h2") return void socket.destroy(); // this proxy speaks only HTTP/2
    accepted++;
    socket.setNoDelay(true);
    const der = (socket.getCertificate() as { raw?: Buffer } | null)?.raw;
    const certificate = (der && generations.get(der.toString("base64"))) ?? generation;
    const gate = new Gate(socket);
    gate.on("error", () => undefined);
    pendingGate = { gate, certificate };
    h2.emit("connection", gate);
    pendingGate = undefined;
  });
  tls.on("tlsClientError", () => handshakeFailures++);
  let pendingGate: { gate: Gate; certificate: number } | undefined;

  h2.on("session", (session: ServerHttp2Session) => {
    const from = pendingGate!;
    const s: AgentSession = { n: ++sessionsSeen, session, gate: from.gate, certificate: from.certificate, upstream: undefined, pairs: new Set(), lastStreamId: 0, streams: 0, shuttingDown: false, windowShut: false };
    live.add(s);
    session.on("error", () => undefined);
    session.on("close", () => {
      live.delete(s);
      // TLS 1.3: the server side is done before the client has checked the certificate, so a refusal
      // shows as a session that ends (the client's alert) without a single stream.
      if (s.certificate === 0 && s.streams === 0 && !s.shuttingDown) refusedSessions++;
      from.gate.destroy();
      s.upstream?.close();
      s.upstream = undefined;
    });
  });
  h2.on("sessionError", () => undefined);

  const sessionOf = (stream: ServerHttp2Stream): AgentSession | undefined => {
    for (const s of live) if (s.session === stream.session) return s;
    return undefined;
  };

  /** This session's upstream connection, opened on first use; one the API server closed is replaced. */
  const upstreamFor = (s: AgentSession): ClientHttp2Session => {
    const u = s.upstream;
    if (u && !u.closed && !u.destroyed) return u;
    const fresh = h2connect(target, { ca, settings: { enablePush: false, initialWindowSize: UPSTREAM_STREAM_WINDOW } });
    fresh.on("error", () => undefined);
    const drop = () => {
      if (s.upstream === fresh) s.upstream = undefined;
    };
    fresh.on("goaway", drop);
    fresh.on("close", drop);
    s.upstream = fresh;
    return fresh;
  };

  const answer = (agent: ServerHttp2Stream, a: ArmedStatus, record: RequestRecord) => {
    const { status, retryAfterSeconds } = a.fault;
    const body = statusBody(status, retryAfterSeconds);
    agent.resume(); // what the agent still sends of its body is read and dropped
    if (agent.closed || agent.destroyed) return;
    agent.respond({
      ":status": status,
      "content-type": "application/json",
      "cache-control": "no-cache, private",
      "content-length": Buffer.byteLength(body),
      ...(retryAfterSeconds !== undefined ? { "retry-after": String(retryAfterSeconds) } : {}),
    });
    agent.end(body);
    record.status = status;
    record.by = "proxy";
    note(record);
  };

  h2.on("stream", (agent: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
    agent.on("error", () => undefined);
    const s = sessionOf(agent);
    const method = String(headers[":method"] ?? "");
    const path = String(headers[":path"] ?? "");
    const record: RequestRecord = { at: Date.now(), method, path: path.slice(0, 300), watch: isWatch(path), status: 0, by: "apiserver", session: s?.n ?? 0, stream: agent.id ?? 0, certificate: s?.certificate ?? 0 };
    log.push(record);
    if (log.length > LOG_SIZE) log.shift();
    note(record);
    if (!s) return void agent.close(H2.NGHTTP2_REFUSED_STREAM);
    s.streams++;
    s.lastStreamId = Math.max(s.lastStreamId, agent.id ?? 0);

    const a = armed.find((x) => x.left > 0 && matches(x.fault.match, method, path));
    if (a) {
      a.left--;
      a.hits++;
      answer(agent, a, record);
      if (a.left === 0) a.done();
      return;
    }

    const pair: Pair = { agent, upstream: undefined, record, responded: false, bodyEnded: agent.endAfterHeaders, stalled: false, detached: false };
    s.pairs.add(pair);
    let up: ClientHttp2Stream;
    try {
      up = upstreamFor(s).request(upstreamHeaders(headers), { endStream: agent.endAfterHeaders });
    } catch {
      s.pairs.delete(pair);
      record.status = -1;
      return void reset(agent, H2.NGHTTP2_INTERNAL_ERROR);
    }
    pair.upstream = up;
    up.on("error", () => undefined);
    if (!agent.endAfterHeaders) {
      agent.pipe(up); // the body, with backpressure: node:http2 opens the agent's window as upstream takes it
      agent.on("end", () => (pair.bodyEnded = true));
    }
    up.on("response", (h: IncomingHttpHeaders) => {
      if (agent.closed || agent.destroyed) return;
      const status = Number(h[":status"]);
      try {
        agent.respond(agentHeaders(h));
      } catch {
        // headers node:http2 will not send on: the agent gets a reset, as from a broken proxy
        record.status = -1;
        pair.detached = true;
        cancel(up);
        return reset(agent, H2.NGHTTP2_INTERNAL_ERROR);
      }
      pair.responded = true;
      record.status = status;
      note(record);
    });
    // The response body, with backpressure: a full agent-side buffer pauses the upstream stream,
    // whose window then closes; a stalled pair pauses it regardless.
    up.on("data", (chunk: Buffer) => {
      if (!agent.write(chunk)) up.pause();
    });
    agent.on("drain", () => {
      if (!pair.stalled) up.resume();
    });
    up.on("end", () => {
      if (!agent.closed && !agent.destroyed) agent.end();
    });
    up.on("close", () => {
      s.pairs.delete(pair);
      // The API server reset the stream (or its connection went): so does the proxy, with its code.
      if (!pair.detached && !agent.closed && !agent.destroyed && !up.readableEnded) {
        if (record.status === 0) record.status = -1;
        reset(agent, up.rstCode && up.rstCode !== H2.NGHTTP2_NO_ERROR ? up.rstCode : H2.NGHTTP2_INTERNAL_ERROR);
      }
    });
    agent.on("close", () => {
      s.pairs.delete(pair);
      // The agent reset it (a timeout, a cancelled watch) or its connection went: cancel upstream.
      cancel(up);
      if (agent.rstCode !== undefined && agent.rstCode !== H2.NGHTTP2_NO_ERROR && record.status === 0) record.status = -1;
    });
  });

  await new Promise<void>((resolve, reject) => {
    tls.once("error", reject);
    tls.listen(options.listen?.port ?? 0, options.listen?.host ?? "127.0.0.1", () => {
      tls.off("error", reject);
      resolve();
    });
  });
  const port = (tls.address() as { port: number }).port;

  /** Shuts a session down as a server does: GOAWAY, the grace, then what is left ended, and closed. */
  const shutDown = async (s: AgentSession, graceMs: number): Promise<void> => {
    if (s.shuttingDown || s.session.destroyed) return;
    s.shuttingDown = true;
    const gone = new Promise<void>((r) => (s.session.destroyed ? r() : s.session.once("close", () => r())));
    if (!s.session.closed) s.session.goaway(H2.NGHTTP2_NO_ERROR, s.lastStreamId, Buffer.from("h2 fault proxy: shutting down"));
    const deadline = Date.now() + graceMs;
    while (s.pairs.size && Date.now() < deadline && !s.session.destroyed) await sleep(Math.min(50, Math.max(1, deadline - Date.now())));
    for (const p of [...s.pairs]) {
      p.detached = true;
      if (p.responded) p.agent.end(); // a watch ends as kube-apiserver ends it at shutdown
      else reset(p.agent, H2.NGHTTP2_CANCEL);
      cancel(p.upstream);
    }
    s.session.close(); // closes the socket once the streams are done (they are, or about to be)
    const hard = setTimeout(() => s.session.destroy(), 2000);
    await gone;
    clearTimeout(hard);
  };

  const watchPairs = (match: RequestMatch | undefined): Pair[] => {
    const out: Pair[] = [];
    for (const s of live) for (const p of s.pairs) if (p.record.watch && matches(match, p.record.method, p.record.path)) out.push(p);
    return out;
  };

  async function inject(fault: H2Fault): Promise<H2FaultResult> {
    const startedAt = Date.now();
    const result = (hits: number, extra: Partial<H2FaultResult> = {}): H2FaultResult => ({ kind: fault.kind, hits, startedAt, endedAt: Date.now(), ...extra });
    switch (fault.kind) {
      case "status": {
        const count = fault.count ?? 1;
        let done!: () => void;
        const over = new Promise<void>((r) => (done = r));
        const a: ArmedStatus = { fault, left: count, hits: 0, done };
        armed.push(a);
        const timer = setTimeout(done, fault.ms ?? 60_000);
        await over;
        clearTimeout(timer);
        a.left = 0;
        armed.splice(armed.indexOf(a), 1);
        return result(a.hits);
      }
      case "goaway": {
        const sessions = [...live];
        await Promise.all(sessions.map((s) => shutDown(s, fault.ms ?? 1000)));
        return result(sessions.length);
      }
      case "rst-watch": {
        const pairs = watchPairs(fault.match);
        for (const p of pairs) {
          p.detached = true;
          p.record.status = -1;
          reset(p.agent, fault.code ?? H2.NGHTTP2_INTERNAL_ERROR);
          cancel(p.upstream);
        }
        return result(pairs.length);
      }
      case "stall-window": {
        const ms = fault.ms ?? 5000;
        if (fault.direction === "up") {
          const sessions = [...live].filter((s) => !s.session.destroyed);
          for (const s of sessions) {
            s.windowShut = true;
            s.session.settings({ initialWindowSize: 0 });
          }
          await sleep(ms);
          // Requests whose body the closed window held back (HEADERS came, the body did not).
          let waiting = 0;
          for (const s of sessions) {
            for (const p of s.pairs) if (!p.bodyEnded) waiting++;
            s.windowShut = false;
            if (!s.session.destroyed) s.session.settings({ initialWindowSize: H2.DEFAULT_SETTINGS_INITIAL_WINDOW_SIZE ?? 65535 });
          }
          return result(sessions.length, { windowFull: waiting > 0 });
        }
        const pairs = watchPairs(fault.match);
        for (const p of pairs) {
          p.stalled = true;
          p.upstream?.pause();
        }
        let full = false;
        const deadline = Date.now() + ms;
        while (Date.now() < deadline) {
          for (const p of pairs) if (p.upstream && !p.upstream.destroyed && p.upstream.state.localWindowSize === 0) full = true;
          await sleep(Math.min(100, Math.max(1, deadline - Date.now())));
        }
        for (const p of pairs) {
          p.stalled = false;
          if (p.upstream && !p.agent.writableNeedDrain) p.upstream.resume();
        }
        return result(pairs.length, { windowFull: full });
      }
      case "ping-unanswered": {
        const sessions = [...live].filter((s) => !s.session.destroyed);
        for (const s of sessions) s.gate.silence();
        await sleep(fault.ms ?? 12_000);
        for (const s of sessions) s.gate.release();
        return result(sessions.length);
      }
      case "new-cert": {
        const sessions = [...live];
        const refusedBefore = refusedSessions;
        if (fault.untrustedMs) {
          // An impersonator first: a certificate for the same names from a CA the agent does not know.
          const foreign = await mintServing(await throwawayIssuer(), names);
          remember(foreign.der, 0);
          tls.setSecureContext({ key: foreign.key, cert: foreign.cert });
          await Promise.all(sessions.map((s) => shutDown(s, fault.ms ?? 500)));
          await sleep(fault.untrustedMs);
        }
        serving = await mintServing(cluster, names);
        generation++;
        remember(serving.der, generation);
        tls.setSecureContext({ key: serving.key, cert: serving.cert });
        if (!fault.untrustedMs) await Promise.all(sessions.map((s) => shutDown(s, fault.ms ?? 500)));
        // Those still open with the untrusted certificate go now: they must not linger into the count.
        for (const s of [...live]) {
          if (s.certificate !== 0) continue;
          s.shuttingDown = true;
          s.session.destroy();
        }
        await sleep(0);
        return result(sessions.length, fault.untrustedMs ? { refused: refusedSessions - refusedBefore } : {});
      }
    }
  }

  const api: H2FaultProxy = {
    port,
    get accepted() {
      return accepted;
    },
    get sessions() {
      return live.size;
    },
    get handshakeFailures() {
      return handshakeFailures;
    },
    get certificate() {
      return { der: serving.der, generation };
    },
    requests: () => log.map((r) => ({ ...r })),
    inject,
    async close() {
      if (closed) return;
      closed = true;
      for (const a of armed.splice(0)) a.done();
      for (const s of live) {
        s.gate.release();
        s.session.destroy();
        s.upstream?.destroy();
      }
      await new Promise<void>((r) => tls.close(() => r()));
      h2.close();
    },
  };
  return api;
}

/**
 * A random fault for a campaign, each kind equally likely, lasting well under the 30 s a 40 s Lease
 * with a 50 s grace leaves (see campaign.ts): status faults on the Lease renewal or on anything,
 * Retry-After within the agent's 10 s cap.
 */
export function pickH2Fault(random: () => number): H2Fault {
  const between = (lo: number, hi: number) => Math.round(lo + (hi - lo) * random());
  const kind = H2_FAULT_KINDS[Math.floor(random() * H2_FAULT_KINDS.length)];
  switch (kind) {
    case "status": {
      const status = ([429, 500, 503] as const)[Math.floor(random() * 3)];
      const retryAfterSeconds = status === 500 ? undefined : between(1, 8);
      return { kind, status, retryAfterSeconds, count: between(1, 3), match: random() < 0.5 ? LEASE_RENEWAL : undefined, ms: 30_000 };
    }
    case "goaway":
      return { kind, ms: between(200, 3000) };
    case "rst-watch":
      return { kind, code: random() < 0.5 ? H2.NGHTTP2_INTERNAL_ERROR : H2.NGHTTP2_CANCEL };
    case "stall-window":
      return { kind, direction: random() < 0.5 ? "down" : "up", ms: between(1000, 8000) };
    case "ping-unanswered":
      return { kind, ms: between(3000, 15_000) };
    case "new-cert":
      return { kind, ms: between(0, 1000) };
  }
}
