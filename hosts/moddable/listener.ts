// host.listen for the firmware: the kubelet API over HTTPS. `embedded:io/socket/listener` accepts,
// `embedded:io/socket/tcp` carries, the SDK's `ssl/session` runs TLS 1.2 as the server — except the
// parts the SDK 8.2.x does not implement on the server side, which ServerSession does here:
//   - ECDHE_RSA key exchange: ssl_handshake.js serverKeyExchange.packetize has no ECDHE case (it
//     sends nothing) and clientKeyExchange.unpacketize throws "unsupported algorithm". Go clients
//     (kube-apiserver, metrics-server) offer only (EC)DHE suites by default since Go 1.22, so this
//     stream writes the ServerKeyExchange itself (secp256r1, signed RSA PKCS#1 v1.5 with SHA-256,
//     which every TLS 1.2 client lists) and reads the ClientKeyExchange itself;
//   - client certificates, as the kubelet asks for them (requested, not required: a bearer token
//     alone also reaches the server): the SDK's certificateRequest.packetize has no
//     signature_algorithms list (a TLS 1.2 message without it is malformed), its chain check knows
//     only server names, and certificateVerify.unpacketize throws "unimplemented" for ECDHE (and
//     misreads the TLS 1.2 message). Here: CertificateRequest (rsa_sign, ecdsa_sign; ECDSA and RSA
//     PKCS#1 with SHA-256/384; no CA names, so every client sends its certificate), the client's
//     Certificate / ClientKeyExchange / CertificateVerify read from the plaintext records, the chain
//     checked against the client CA by ssl/cert (dates, clientAuth, signatures), and CertificateVerify
//     checked over the transcript hash. A chain that does not verify leaves the connection without
//     an identity (its requests answer 401, as the kubelet's do); a bad CertificateVerify ends the
//     handshake;
//   - the SDK's server throws on the first ClientHello (no transcript buffer yet): one is made here;
//   - the SDK's ServerHello lacks renegotiation_info (RFC 5746), which OpenSSL 3 clients require:
//     this one writes it;
//   - the SDK does not parse the ClientHello's extensions (signature_algorithms, supported_groups):
//     secp256r1 and rsa_pkcs1_sha256 are assumed (Go, OpenSSL and BoringSSL all offer both).
/// <reference path="./types/ssl-session.d.ts" />
/// <reference path="./types/ssl-server.d.ts" />
import Listener from "embedded:io/socket/listener";
import TCP from "embedded:io/socket/tcp";
import Session, { type SessionSocket } from "ssl/session";
import handshakeProtocol from "ssl/handshake";
import SSLStream from "ssl/stream";
import PRF from "ssl/prf";
import { ECDHE_RSA } from "ssl/constants";
import supportedCipherSuites from "ssl/ciphersuites";
import Curve from "curve";
import RNG from "rng";
import PKCS1_5, { type RSAKey } from "pkcs1_5";
import PKCS8 from "pkcs8";
import { Digest } from "crypt";
import type { Listener as HostListener, ListenOptions, LogLevel, PeerInfo, ServerEvents, ServerSocket } from "../../modules/host";
import { busy } from "./runtime";
import { CLIENT_SIGNATURE_SCHEMES, publicKeyOf, verifyClientChain, verifyTlsSignature, type ClientIdentity } from "ssl/cert";
import { closeQuietly, drainRecords, flushRecords, keepable, stepHandshake, tlsFailure, wireOf } from "./tls-record";

const SHA256_OID = Object.freeze([2, 16, 840, 1, 101, 3, 4, 2, 1]);
const SECP256R1 = 23;
/** A client's certificate chain, whole: bounds the handshake buffer (kube-apiserver sends ~0.5 KB). */
const MAX_CLIENT_FLIGHT = 8192;

// Handshake message types (RFC 5246 7.4).
const HS_CERTIFICATE = 11;
const HS_CERTIFICATE_REQUEST = 13;
const HS_CERTIFICATE_VERIFY = 15;
const HS_CLIENT_KEY_EXCHANGE = 16;

/** What the server waits for in the client's flight before ChangeCipherSpec. */
const enum Expect {
  Nothing,
  Certificate,
  KeyExchange,
  Verify,
}

/* eslint-disable @typescript-eslint/no-explicit-any */
class ServerSession extends Session {
  #certs: ArrayBuffer[];
  #key: Required<RSAKey>;
  #clientCa: ArrayBuffer[];
  #ecdh: { curve: any; x: ArrayBuffer } | undefined;
  #expect = Expect.Nothing;
  /** Handshake bytes of the client's flight not yet parsed (messages may span or share records). */
  #flight = new Uint8Array(0);
  #peerKey: object | undefined;
  #peerIdentity: ClientIdentity | undefined;
  /** Why the client's certificate gave no identity, for the log; undefined: none presented or verified. */
  rejected: string | undefined;

  constructor(certs: ArrayBuffer[], key: Required<RSAKey>, keyDer: ArrayBuffer, clientCa: ArrayBuffer[]) {
    // The certificate manager serves "clientCertificates"/"clientKey" as this side's own chain and
    // key (getCerts, getKey()): what the SDK's own server path (RSA key exchange) uses.
    super({ protocolVersion: 0x303, cache: false, verify: false, clientCertificates: certs, clientKey: keyDer });
    this.#certs = certs;
    this.#key = key;
    this.#clientCa = clientCa;
    // The SDK's server never worked from the first message: helloProtocol.unpacketize reads the
    // transcript buffer (session.handshakeMessages.getChunk()) that only a client's own ClientHello
    // creates, so a received ClientHello throws a TypeError (ssl_handshake.js:272). Start it empty.
    (this as any).handshakeMessages = new SSLStream();
  }

  /** The verified client certificate's identity (CN, O), once the handshake is done. */
  get identity(): ClientIdentity | undefined {
    return this.#peerIdentity;
  }

  /** The cipher suites the client offered (from its ClientHello), until the server has chosen. */
  #offered: number[] | undefined;
  #helloSeen = false;

  override readPacket(s: SessionSocket): ArrayBuffer | undefined {
    const buf = super.readPacket(s);
    if (buf && !this.#helloSeen) {
      this.#helloSeen = true;
      this.#offered = offeredSuites(new Uint8Array(buf));
    }
    return buf;
  }

  override handshake(s: SessionSocket): boolean {
    const self = this as any;
    if (self.handshakeProcess === 1 && self.chosenCipher && self.chosenCipher.keyExchangeAlgorithm !== ECDHE_RSA) {
      // The SDK picks by its own list, plain RSA key exchange first, and its RSA path can neither
      // request nor check a client certificate. Prefer its first ECDHE_RSA suite the client offers
      // (forward secrecy too); a client that offers none keeps the SDK's choice, without client certificates.
      const offered = this.#offered ?? [];
      for (const suite of supportedCipherSuites) {
        if (suite.keyExchangeAlgorithm !== ECDHE_RSA || !offered.includes((suite.value[0] << 8) | suite.value[1])) continue;
        self.chosenCipher = suite;
        break;
      }
    }
    this.#offered = undefined;
    if (self.handshakeProcess === 1 && self.chosenCipher?.keyExchangeAlgorithm === ECDHE_RSA) {
      this.#serverFlight(s);
      self.handshakeProcess = -1;
      return false;
    }
    if (this.#expect !== Expect.Nothing) {
      if (!s.readable) return false;
      const buf: ArrayBuffer | undefined = self.readPacket(s);
      if (!buf) return false;
      const b = new Uint8Array(buf);
      if (b[0] !== 22) throw new Error(`TLS: expected a handshake record from the client, got record type ${b[0]}`);
      this.#takeFlight(b.subarray(5));
      return false;
    }
    return super.handshake(s);
  }

  #serverFlight(s: SessionSocket): void {
    const self = this as any;
    self.serverSessionID = ArrayBuffer.fromBigInt(BigInt(String(Date.now())));
    this.#serverHello(s);
    self.doProtocol(s, handshakeProtocol.certificate, this.#certs);
    const curve = new (Curve as any)("secp256r1");
    const x = RNG.get(curve.orderSize);
    const Q = new Uint8Array(curve.dh(x));
    const params = new Uint8Array(4 + Q.byteLength);
    params[0] = 3; // named_curve
    params[1] = 0;
    params[2] = SECP256R1;
    params[3] = Q.byteLength;
    params.set(Q, 4);
    const H = new Digest("SHA256").process(self.clientRandom, self.serverRandom, params);
    const sig = new Uint8Array(new PKCS1_5(this.#key, true, SHA256_OID.slice()).sign(H));
    const body = new Uint8Array(params.byteLength + 4 + sig.byteLength);
    body.set(params, 0);
    let at = params.byteLength;
    body[at++] = 4; // sha256
    body[at++] = 1; // rsa
    body[at++] = sig.byteLength >> 8;
    body[at++] = sig.byteLength & 255;
    body.set(sig, at);
    self.doProtocol(s, { packetize: (session: object) => handshakeProtocol.packetize(session, 12, new SSLStream(body.buffer as ArrayBuffer)) });
    if (this.#clientCa.length) {
      // certificate_types rsa_sign(1), ecdsa_sign(64); supported_signature_algorithms; no CA names.
      const schemes = CLIENT_SIGNATURE_SCHEMES;
      const req = new Uint8Array(3 + 2 + schemes.length * 2 + 2);
      req[0] = 2;
      req[1] = 1;
      req[2] = 64;
      req[3] = 0;
      req[4] = schemes.length * 2;
      for (const [i, scheme] of schemes.entries()) {
        req[5 + i * 2] = scheme >> 8;
        req[6 + i * 2] = scheme & 255;
      }
      self.doProtocol(s, { packetize: (session: object) => handshakeProtocol.packetize(session, HS_CERTIFICATE_REQUEST, new SSLStream(req.buffer as ArrayBuffer)) });
      this.#expect = Expect.Certificate;
    }
    else this.#expect = Expect.KeyExchange;
    self.doProtocol(s, handshakeProtocol.serverHelloDone);
    this.#ecdh = { curve, x };
  }

  /**
   * ServerHello as the SDK's helloProtocol.packetize writes it, plus the one extension every TLS
   * 1.2 server must send: an empty renegotiation_info (RFC 5746; this server never renegotiates).
   * Without it OpenSSL 3 clients refuse the server ("unsafe legacy renegotiation disabled").
   */
  #serverHello(s: SessionSocket): void {
    const self = this as any;
    const random = new Uint8Array(RNG.get(32));
    const now = Math.floor(Date.now() / 1000);
    random[0] = (now >>> 24) & 255;
    random[1] = (now >>> 16) & 255;
    random[2] = (now >>> 8) & 255;
    random[3] = now & 255;
    self.serverRandom = random.buffer;
    const sid = new Uint8Array(self.serverSessionID as ArrayBuffer);
    const suite = self.chosenCipher.value as number[];
    const hello = new Uint8Array(2 + 32 + 1 + sid.byteLength + 2 + 1 + 2 + 5);
    let at = 0;
    hello[at++] = 3;
    hello[at++] = 3;
    hello.set(random, at);
    at += 32;
    hello[at++] = sid.byteLength;
    hello.set(sid, at);
    at += sid.byteLength;
    hello[at++] = suite[0]!;
    hello[at++] = suite[1]!;
    hello[at++] = self.compressionMethod ?? 0;
    hello.set([0, 5, 0xff, 0x01, 0, 1, 0], at);
    self.doProtocol(s, { packetize: (session: object) => handshakeProtocol.packetize(session, 2, new SSLStream(hello.buffer as ArrayBuffer)) });
  }

  /** The body of one plaintext handshake record of the client's flight. */
  #takeFlight(body: Uint8Array): void {
    if (this.#flight.byteLength + body.byteLength > MAX_CLIENT_FLIGHT) throw new Error(`TLS: the client's handshake flight exceeds ${MAX_CLIENT_FLIGHT} bytes`);
    const all = new Uint8Array(this.#flight.byteLength + body.byteLength);
    all.set(this.#flight, 0);
    all.set(body, this.#flight.byteLength);
    let at = 0;
    while (this.#expect !== Expect.Nothing && all.byteLength - at >= 4) {
      const length = (all[at + 1] << 16) | (all[at + 2] << 8) | all[at + 3];
      if (all.byteLength - at < 4 + length) break;
      this.#message(all[at], all.slice(at, at + 4 + length));
      at += 4 + length;
    }
    if (this.#expect === Expect.Nothing && at !== all.byteLength) throw new Error("TLS: unexpected handshake bytes before ChangeCipherSpec");
    this.#flight = all.slice(at);
  }

  /** One whole handshake message (header included) of the client's flight, in order. */
  #message(type: number, msg: Uint8Array): void {
    const self = this as any;
    const body = msg.subarray(4);
    switch (this.#expect) {
      case Expect.Certificate:
        if (type !== HS_CERTIFICATE) throw new Error(`TLS: expected the client's Certificate, got handshake message ${type}`);
        this.#digest(msg);
        this.#certificate(body);
        this.#expect = Expect.KeyExchange;
        return;
      case Expect.KeyExchange:
        if (type !== HS_CLIENT_KEY_EXCHANGE) throw new Error(`TLS: expected ClientKeyExchange, got handshake message ${type}`);
        this.#clientKeyExchange(body);
        this.#digest(msg);
        this.#expect = this.#peerKey ? Expect.Verify : Expect.Nothing;
        break;
      case Expect.Verify: {
        if (type !== HS_CERTIFICATE_VERIFY) throw new Error(`TLS: expected CertificateVerify, got handshake message ${type}`);
        if (body.byteLength < 4) throw new Error("TLS: malformed CertificateVerify");
        const scheme = (body[0] << 8) | body[1];
        const length = (body[2] << 8) | body[3];
        if (body.byteLength !== 4 + length) throw new Error("TLS: malformed CertificateVerify");
        // The client signed every handshake message before this one (RFC 5246 7.4.8), hashed with
        // the scheme's hash: SHA-256, the transcript digest the SDK keeps (close(true) keeps it going).
        const H = self.handshakeDigests?.SHA256?.close(true) as ArrayBuffer | undefined;
        if (!H || !verifyTlsSignature(this.#peerKey as any, scheme, H, body.slice(4))) {
          throw new Error(`TLS: the client's CertificateVerify does not verify (scheme 0x${scheme.toString(16).padStart(4, "0")})`);
        }
        this.#digest(msg);
        this.#peerIdentity = this.#pendingIdentity;
        this.#expect = Expect.Nothing;
        break;
      }
      default:
        throw new Error(`TLS: unexpected handshake message ${type}`);
    }
    if (this.#expect === Expect.Nothing) self.handshakeProcess = 16; // the SDK reads ChangeCipherSpec and Finished from here
  }

  #digest(msg: Uint8Array): void {
    const self = this as any;
    for (const name in self.handshakeDigests) self.handshakeDigests[name].write(msg);
  }

  #certificate(body: Uint8Array): void {
    if (body.byteLength < 3) throw new Error("TLS: malformed client Certificate");
    const total = (body[0] << 16) | (body[1] << 8) | body[2];
    if (total !== body.byteLength - 3) throw new Error("TLS: malformed client Certificate");
    const certs: Uint8Array[] = [];
    for (let at = 3; at < body.byteLength;) {
      if (body.byteLength - at < 3) throw new Error("TLS: malformed client Certificate");
      const n = (body[at] << 16) | (body[at + 1] << 8) | body[at + 2];
      at += 3;
      if (n === 0 || body.byteLength - at < n) throw new Error("TLS: malformed client Certificate");
      certs.push(body.slice(at, at + n));
      at += n;
    }
    if (!certs.length) return; // the client has none: a bearer token may follow
    const first = certs[0]!;
    const checked = verifyClientChain(certs, this.#clientCa, Date.now());
    if (typeof checked === "string") {
      this.rejected = checked;
      this.#peerKey = publicKeyOf(first);
      if (!this.#peerKey) throw new Error("TLS: the client's certificate has no usable public key");
      return;
    }
    this.#peerKey = checked.key;
    this.#pendingIdentity = checked.identity;
  }

  /** The chain's identity, granted once CertificateVerify proves the client holds the key. */
  #pendingIdentity: ClientIdentity | undefined;

  /** The body of the ClientKeyExchange (ECDHE: a length-prefixed point). */
  #clientKeyExchange(body: Uint8Array): void {
    const self = this as any;
    if (!this.#ecdh || body.byteLength < 1 || body[0] + 1 !== body.byteLength) throw new Error("TLS: malformed ClientKeyExchange");
    const { curve, x } = this.#ecdh;
    this.#ecdh = undefined;
    const point = body.slice(1).buffer as ArrayBuffer;
    const pre = curve.Z(curve.dh(x, point));
    self.masterSecret = PRF(self, pre, "master secret", self.clientRandom.concat(self.serverRandom), 48);
  }
}
/** The cipher suites a ClientHello record offers; [] when it is not one. */
function offeredSuites(b: Uint8Array): number[] {
  const suites: number[] = [];
  if (b.byteLength < 5 + 4 + 2 + 32 + 1 || b[0] !== 22 || b[5] !== 1) return suites;
  let at = 5 + 4 + 2 + 32;
  at += 1 + b[at];
  if (at + 2 > b.byteLength) return suites;
  const n = (b[at] << 8) | b[at + 1];
  at += 2;
  for (let i = 0; i + 1 < n && at + i + 1 < b.byteLength; i += 2) suites.push((b[at + i] << 8) | b[at + i + 1]);
  return suites;
}

interface Shared {
  certs: ArrayBuffer[];
  key: Required<RSAKey>;
  keyDer: ArrayBuffer;
  /** The CA client certificates must chain to (DER); empty: none requested. */
  clientCa: ArrayBuffer[];
  log: (level: LogLevel, message: string) => void;
  gone: () => void;
}

class ServerConnection implements ServerSocket {
  #tcp: TCP | undefined;
  #session: ServerSession | undefined;
  #wire: SessionSocket;
  #ready = false;
  #closing = false;
  #pending: Uint8Array[] = [];
  #events: ServerEvents | undefined;
  #accept: (socket: ServerSocket, peer: PeerInfo) => ServerEvents;
  #shared: Shared;

  constructor(from: unknown, shared: Shared, accept: (socket: ServerSocket, peer: PeerInfo) => ServerEvents) {
    this.#shared = shared;
    this.#accept = accept;
    this.#session = new ServerSession(shared.certs, shared.key, shared.keyDer, shared.clientCa);
    const tcp = new (TCP as any)({
      from,
      format: "buffer",
      onReadable: this.#guard((count: number) => this.#onReadable(count)),
      onWritable: this.#guard((count: number) => this.#onWritable(count)),
      onError: this.#guard(() => this.#fail(undefined)),
    }) as TCP;
    this.#wire = wireOf(tcp);
    this.#tcp = tcp;
  }

  write(bytes: Uint8Array): void {
    if (!this.#tcp || this.#closing || !bytes.byteLength) return;
    this.#pending.push(bytes.slice());
    this.#flush();
  }

  close(): void {
    if (!this.#tcp) return;
    this.#closing = true;
    this.#events = undefined; // the server asked: no callback
    if (!this.#pending.length) this.#shut(this.#ready);
  }

  #guard<A extends unknown[]>(fn: (...args: A) => void): (...args: A) => void {
    return (...args: A) => {
      if (!this.#tcp) return;
      try {
        busy(() => fn(...args));
      } catch (e) {
        this.#fail(tlsFailure(e).message);
      }
    };
  }

  #onWritable(count: number): void {
    this.#wire.writable = count;
    if (!this.#ready) return;
    this.#flush();
  }

  #onReadable(count: number): void {
    this.#wire.readable = count;
    if (!this.#ready) this.#handshake();
    else this.#drain();
  }

  #handshake(): void {
    const session = this.#session!;
    if (!stepHandshake(session, this.#wire)) return; // waiting for the client
    if (session.alert) return this.#fail("the client closed the connection during the handshake");
    this.#ready = true;
    const tcp = this.#tcp as any;
    const peer: PeerInfo = { address: String(tcp.remoteAddress ?? "") };
    const identity = session.identity;
    if (identity) peer.clientCertificate = { commonName: identity.commonName, organizations: identity.organizations.slice() };
    else if (session.rejected) this.#shared.log("warn", `kubelet API: client certificate from ${peer.address} not accepted: ${session.rejected}`);
    this.#events = this.#accept(this, peer);
    this.#drain();
  }

  #drain(): void {
    if (drainRecords(this.#session!, this.#wire, () => !!this.#tcp, (data) => this.#events?.onData(data))) this.#fail(undefined, true);
  }

  #flush(): void {
    if (!this.#ready) return;
    flushRecords(this.#session!, this.#wire, this.#pending, () => !!this.#tcp);
    if (this.#closing && !this.#pending.length) this.#shut(true);
  }

  #fail(error: string | undefined, notify = false): void {
    if (!this.#tcp) return;
    const events = this.#events;
    this.#shut(notify);
    if (!this.#ready && error) this.#shared.log("warn", `kubelet API: TLS handshake failed: ${error}`);
    try {
      events?.onClose(error);
    } catch {
      // must not reach C
    }
  }

  #shut(notify: boolean): void {
    const tcp = this.#tcp;
    const session = this.#session;
    this.#tcp = undefined;
    this.#session = undefined;
    this.#events = undefined;
    this.#pending.length = 0;
    if (!tcp) return;
    this.#shared.gone();
    closeQuietly(tcp, session, this.#wire, notify && this.#ready);
  }
}

export function createListen(log: (level: LogLevel, message: string) => void) {
  return function listen(options: ListenOptions, accept: (socket: ServerSocket, peer: PeerInfo) => ServerEvents): HostListener {
    const tls = options.tls;
    let open = 0;
    const shared: Shared = {
      certs: [keepable(tls.certificate)],
      key: PKCS8.parse(tls.key),
      keyDer: keepable(tls.key),
      clientCa: tls.clientCa ? [keepable(tls.clientCa)] : [],
      log,
      gone: () => {
        open--;
      },
    };
    const max = Math.max(1, options.maxConnections);
    const listener = new Listener({
      port: options.port,
      onReadable(count: number) {
        while (count-- > 0) {
          const from = this.read();
          if (!from) break;
          if (open >= max) {
            try {
              (new (TCP as any)({ from }) as TCP).close();
            } catch {
              // gone already
            }
            continue;
          }
          try {
            open++;
            new ServerConnection(from, shared, accept);
          } catch (e) {
            open--;
            log("warn", `kubelet API: cannot accept a connection: ${(e as Error)?.message ?? e}`);
          }
        }
      },
    });
    return {
      get port() {
        return (listener as any).port ?? options.port;
      },
      // A renewed serving certificate: connections accepted from now on present it.
      update(next) {
        const key = PKCS8.parse(next.key);
        shared.certs = [keepable(next.certificate)];
        shared.key = key;
        shared.keyDer = keepable(next.key);
        shared.clientCa = next.clientCa ? [keepable(next.clientCa)] : [];
      },
      close() {
        try {
          (listener as any).close();
        } catch {
          // closed already
        }
      },
    };
  };
}
