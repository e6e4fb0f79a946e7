// A TLS 1.2 client stream: the SDK's ECMA-419 TCP socket (`embedded:io/socket/tcp`) carrying the
// SDK's TLS engine (`ssl/session`), driven here instead of through `embedded:io/socket/tcp/tls`.
//
// Why not the SDK's TLS socket (examples/io/tcp/tlssocket): when the handshake finishes inside a
// read it decrypts the next record and throws the plaintext away — kube-apiserver's HTTP/2 SETTINGS
// frame, sent right after its Finished — and it re-reads leftover records from a Timer, where a
// throw (a corrupt record) aborts XS. This stream:
//   - hands every decrypted record to onData as soon as it is decrypted, including the ones that
//     arrive in the same read as the server's Finished: the handshake is stepped until it is done,
//     then the same call goes on reading application data;
//   - consumes every complete record the TCP socket holds in each callback (the SDK's TCP reports
//     readable again only when new bytes arrive, so nothing may be left for later); a partial
//     record stays buffered in the session until the rest comes;
//   - runs every TCP callback inside try/catch: what the TLS code throws (a rejected certificate, a
//     fatal alert, a failed MAC) closes the stream and goes to onError, never back into C — a
//     rejected certificate as the host contract's CERTIFICATE_REJECTED string, with the reason;
//   - splits writes into records of at most 16384 bytes that fit what the socket accepts, keeping
//     the rest until it reports room;
//   - ends with a close_notify where the session is intact.
// No timers: everything happens in the TCP socket's callbacks or in the caller's write()/close().
/// <reference path="./types/ssl-session.d.ts" />
import TCP from "embedded:io/socket/tcp";
import Session, { type SessionOptions, type SessionSocket } from "ssl/session";
import { CERTIFICATE_REJECTED } from "../../modules/host";
import { busy } from "./runtime";
import { RECORD_OVERHEAD, closeQuietly, drainRecords, flushRecords, stepHandshake, tlsFailure, wireOf } from "./tls-record";

export interface TLSStreamOptions {
  /** IPv4 literal: the SDK's TCP does not resolve names. */
  address: string;
  port: number;
  /** SNI, and the name the server certificate must carry. */
  serverName?: string;
  /** Default true. */
  verify?: boolean;
  /** The trust anchor, DER. */
  certificate?: ArrayBuffer;
  /** DER, leaf first. */
  clientCertificates?: ArrayBuffer[];
  /** PKCS#8 DER. */
  clientKey?: ArrayBuffer;
  /** ALPN protocols offered, most preferred first. */
  applicationLayerProtocolNegotiation?: string[];
  /** The handshake is done: `writable` plaintext bytes can be written now. Once, before any onData. */
  onConnect(writable: number): void;
  /** One record's plaintext, in order. A fresh buffer: the receiver may keep it. */
  onData(bytes: Uint8Array): void;
  /** After onConnect: room for `count` more plaintext bytes. */
  onWritable(count: number): void;
  /**
   * The stream has ended and is closed; nothing follows. error: what the TLS code threw (a fatal
   * alert from the server, a bad record), or for a rejected certificate the string
   * CERTIFICATE_REJECTED + why; undefined when the TCP connection failed or ended, or the server
   * closed the session with close_notify.
   */
  onError(error?: unknown): void;
}

export default class TLSStream {
  #tcp: TCP | undefined;
  #session: Session | undefined;
  /** What the session reads and writes through: the TCP socket plus the counts it keeps. */
  #wire: SessionSocket;
  #options: TLSStreamOptions;
  #started = false; // the ClientHello is out
  #ready = false; // the handshake is done
  /** Plaintext accepted by write() and not yet in a record. */
  #pending: Uint8Array[] = [];

  /** Throws when the options are unusable (the session checks the CA) or the socket cannot be made. */
  constructor(options: TLSStreamOptions) {
    this.#options = options;
    const settings: SessionOptions = { protocolVersion: 0x303 };
    if (options.serverName !== undefined) settings.serverName = options.serverName;
    if (options.verify !== undefined) settings.verify = options.verify;
    if (options.certificate) settings.certificate = options.certificate;
    if (options.clientCertificates) settings.clientCertificates = options.clientCertificates;
    if (options.clientKey) settings.clientKey = options.clientKey;
    if (options.applicationLayerProtocolNegotiation) settings.applicationLayerProtocolNegotiation = options.applicationLayerProtocolNegotiation;
    const session = new Session(settings);
    session.initiateHandshake();

    const tcp = new TCP({
      address: options.address,
      port: options.port,
      nodelay: true,
      format: "buffer",
      onReadable: this.#guard((count: number) => this.#onReadable(count)),
      onWritable: this.#guard((count: number) => this.#onWritable(count)),
      onError: this.#guard(() => this.#fail(undefined)),
    });
    this.#wire = wireOf(tcp);
    this.#session = session;
    this.#tcp = tcp;
  }

  /**
   * Queues plaintext (copied if it cannot all go out now) and sends what fits. Returns the room
   * left: how much more can be written before the next onWritable without being queued.
   */
  write(bytes: Uint8Array): number {
    if (!this.#tcp) throw new Error("TLS stream closed");
    if (bytes.byteLength) {
      this.#pending.push(bytes);
      this.#flush();
      const last = this.#pending.length - 1;
      if (last >= 0 && this.#pending[last].buffer === bytes.buffer) this.#pending[last] = this.#pending[last].slice();
    }
    return this.#room();
  }

  /** Sends close_notify where it can, then closes the socket. No callback follows. */
  close(): void {
    this.#shut(this.#ready);
  }

  #room(): number {
    if (!this.#ready || !this.#tcp || this.#pending.length) return 0;
    return Math.max(0, this.#wire.writable - RECORD_OVERHEAD);
  }

  #guard<A extends unknown[]>(fn: (...args: A) => void): (...args: A) => void {
    return (...args: A) => {
      if (!this.#tcp) return;
      try {
        busy(() => fn(...args)); // the handshake's crypto is most of the agent's CPU time
      } catch (e) {
        this.#fail(this.#rejected() ?? tlsFailure(e));
      }
    };
  }

  /**
   * The handshake refused the server's certificate: CERTIFICATE_REJECTED and why, as the certificate
   * manager recorded it (the handshake itself throws only "certificate: auth err").
   */
  #rejected(): string | undefined {
    const why = this.#ready ? undefined : this.#session?.certificateManager?.rejection;
    return why === undefined ? undefined : CERTIFICATE_REJECTED + why;
  }

  #onWritable(count: number): void {
    this.#wire.writable = count;
    if (!this.#ready) return this.#handshake();
    this.#flush();
    const room = this.#room();
    if (room > 0) this.#options.onWritable(room);
  }

  #onReadable(count: number): void {
    this.#wire.readable = count;
    if (!this.#ready) this.#handshake();
    else this.#drain();
  }

  /** Steps the handshake as far as the bytes at hand allow; once done, goes on to the data. */
  #handshake(): void {
    const session = this.#session!;
    const wire = this.#wire;
    if (!this.#started) {
      if (wire.writable <= 0) return; // not connected yet
      this.#started = true;
    }
    if (!stepHandshake(session, wire)) return; // waiting for the server
    if (session.alert) throw new Error("the server closed the connection during the handshake");
    this.#ready = true;
    this.#options.onConnect(this.#room());
    // The records that came with the server's Finished (kube-apiserver's SETTINGS frame): now.
    this.#drain();
    if (this.#tcp && this.#pending.length) this.#flush();
  }

  /** Every complete record the socket holds, decrypted and delivered in order. */
  #drain(): void {
    if (drainRecords(this.#session!, this.#wire, () => !!this.#tcp, (data) => this.#options.onData(data))) this.#fail(undefined, true); // close_notify
  }

  #flush(): void {
    if (this.#ready) flushRecords(this.#session!, this.#wire, this.#pending, () => !!this.#tcp); // before onConnect: kept
  }

  /** Ends the stream from inside: closed first, then onError once. */
  #fail(error: unknown, notify = false): void {
    if (!this.#tcp) return;
    this.#shut(notify);
    try {
      this.#options.onError(error);
    } catch {
      // the owner's handler must not reach C either
    }
  }

  #shut(notify: boolean): void {
    const tcp = this.#tcp;
    const session = this.#session;
    this.#tcp = undefined;
    this.#session = undefined;
    this.#pending.length = 0;
    if (tcp) closeQuietly(tcp, session, this.#wire, notify);
  }
}
