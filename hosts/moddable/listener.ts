// host.listen for the firmware: the kubelet API over HTTPS. `embedded:io/socket/listener` accepts,
// `embedded:io/socket/tcp` carries, the SDK's `ssl/session` runs TLS 1.2 as the server — except the
// parts the SDK 8.2.x does not implement on the server side, which ServerSession does here:
//   - ECDHE_RSA key exchange: ssl_handshake.js serverKeyExchange.packetize has no ECDHE case (it
//     sends nothing) and clientKeyExchange.unpacketize throws "unsupported algorithm". Go clients
//     (kube-apiserver, metrics-server) offer only (EC)DHE suites by default since Go 1.22, so this
//     stream writes the ServerKeyExchange itself (secp256r1, signed RSA PKCS#1 v1.5 with SHA-256,
//     which every TLS 1.2 client lists) and reads the ClientKeyExchange itself;
//   - the SDK's server throws on the first ClientHello (no transcript buffer yet): one is made here;
//   - the SDK does not parse the ClientHello's extensions (signature_algorithms, supported_groups):
//     secp256r1 and rsa_pkcs1_sha256 are assumed (Go, OpenSSL and BoringSSL all offer both).
// Client certificates are not requested: the SDK verifies a peer chain only against a server name
// and its certificateVerify.unpacketize throws "unimplemented" for ECDHE suites, so no verified
// client identity can be had from it. PeerInfo.clientCertificate stays undefined: bearer tokens only.
/// <reference path="./types/ssl-session.d.ts" />
/// <reference path="./types/ssl-server.d.ts" />
import Listener from "embedded:io/socket/listener";
import TCP from "embedded:io/socket/tcp";
import Session, { type SessionSocket } from "ssl/session";
import handshakeProtocol from "ssl/handshake";
import SSLStream from "ssl/stream";
import PRF from "ssl/prf";
import { ECDHE_RSA } from "ssl/constants";
import Curve from "curve";
import RNG from "rng";
import PKCS1_5, { type RSAKey } from "pkcs1_5";
import PKCS8 from "pkcs8";
import { Digest } from "crypt";
import type { Listener as HostListener, ListenOptions, LogLevel, PeerInfo, ServerEvents, ServerSocket } from "../../modules/host";
import { busy } from "./runtime";
import { closeQuietly, drainRecords, flushRecords, stepHandshake, wireOf } from "./tls-record";

const SHA256_OID = Object.freeze([2, 16, 840, 1, 101, 3, 4, 2, 1]);
const SECP256R1 = 23;

/* eslint-disable @typescript-eslint/no-explicit-any */
class ServerSession extends Session {
  #certs: ArrayBuffer[];
  #key: Required<RSAKey>;
  #ecdh: { curve: any; x: ArrayBuffer } | undefined;

  constructor(certs: ArrayBuffer[], key: Required<RSAKey>, keyDer: ArrayBuffer) {
    // The certificate manager serves "clientCertificates"/"clientKey" as this side's own chain and
    // key (getCerts, getKey()): what the SDK's own server path (RSA key exchange) uses.
    super({ protocolVersion: 0x303, cache: false, verify: false, clientCertificates: certs, clientKey: keyDer });
    this.#certs = certs;
    this.#key = key;
    // The SDK's server never worked from the first message: helloProtocol.unpacketize reads the
    // transcript buffer (session.handshakeMessages.getChunk()) that only a client's own ClientHello
    // creates, so a received ClientHello throws a TypeError (ssl_handshake.js:272). Start it empty.
    (this as any).handshakeMessages = new SSLStream();
  }

  override handshake(s: SessionSocket): boolean {
    const self = this as any;
    if (self.handshakeProcess === 1 && self.chosenCipher?.keyExchangeAlgorithm === ECDHE_RSA) {
      this.#serverFlight(s);
      self.handshakeProcess = -1;
      return false;
    }
    if (this.#ecdh && !self.masterSecret) {
      if (!s.readable) return false;
      const buf: ArrayBuffer | undefined = self.readPacket(s);
      if (!buf) return false;
      const b = new Uint8Array(buf);
      if (b[0] !== 22 || b[5] !== 16) throw new Error(`TLS: expected ClientKeyExchange, got record ${b[0]} message ${b[5]}`);
      this.#clientKeyExchange(b);
      return false;
    }
    return super.handshake(s);
  }

  #serverFlight(s: SessionSocket): void {
    const self = this as any;
    self.serverSessionID = ArrayBuffer.fromBigInt(BigInt(String(Date.now())));
    self.doProtocol(s, handshakeProtocol.serverHello);
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
    self.doProtocol(s, handshakeProtocol.serverHelloDone);
    this.#ecdh = { curve, x };
  }

  /** b: a whole plaintext record holding exactly one ClientKeyExchange. */
  #clientKeyExchange(b: Uint8Array): void {
    const self = this as any;
    const recordLength = (b[3] << 8) | b[4];
    const msgLength = (b[6] << 16) | (b[7] << 8) | b[8];
    if (recordLength !== 4 + msgLength || b[9] + 1 !== msgLength) throw new Error("TLS: malformed ClientKeyExchange");
    const { curve, x } = this.#ecdh!;
    this.#ecdh = undefined;
    const point = b.slice(10, 10 + b[9]).buffer as ArrayBuffer;
    const pre = curve.Z(curve.dh(x, point));
    self.masterSecret = PRF(self, pre, "master secret", self.clientRandom.concat(self.serverRandom), 48);
    const msg = b.slice(5, 9 + msgLength);
    for (const name in self.handshakeDigests) self.handshakeDigests[name].write(msg);
    self.handshakeProcess = 16;
  }
}

interface Shared {
  certs: ArrayBuffer[];
  key: Required<RSAKey>;
  keyDer: ArrayBuffer;
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
    this.#session = new ServerSession(shared.certs, shared.key, shared.keyDer);
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
        this.#fail(String((e as Error)?.message ?? e ?? "TLS failure"));
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
      certs: [tls.certificate.slice().buffer as ArrayBuffer],
      key: PKCS8.parse(tls.key),
      keyDer: tls.key.slice().buffer as ArrayBuffer,
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
