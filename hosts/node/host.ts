// The Node.js host: node:tls (verifying the API server against the cluster CA), real timers and
// randomness, the V8 heap (or an injected figure, so tests can force MemoryPressure), the terminal LED,
// and the truth about the machine it runs on (or the board it is told to pose as).
import { createPrivateKey, randomBytes, sign as cryptoSign } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { connect as netConnect, isIP, type Socket } from "node:net";
import { availableParallelism, networkInterfaces, release, type as osType } from "node:os";
import { performance } from "node:perf_hooks";
import { checkServerIdentity, connect as tlsConnect, createSecureContext, createServer as tlsCreateServer, type SecureContext, type TLSSocket } from "node:tls";
import { getHeapStatistics } from "node:v8";
import { ESP32S3_GPIO } from "../esp32s3/board";
import { SimulatedGpio } from "../virtual/gpio";
import { tapped } from "../log-tap";
import { CERTIFICATE_REJECTED, type GpioPort, type BoardFacts, type ConnectTarget, type HeapFigures, type Host, type HostSocket, type Listener, type ListenOptions, type LogLevel, type NetworkFacts, type PeerInfo, type ServerEvents, type ServerSocket, type SocketEvents } from "../../modules/host";

export interface NodeHostOptions {
  name?: string;
  /** Heap figures the conditions see; default: the V8 heap. */
  heap?: () => HeapFigures | undefined;
  /** Overrides of the network facts (tests simulate reconnects, BSSIDs, address changes). */
  network?: () => Partial<NetworkFacts>;
  /** MAC for machineID/systemUUID; default: the first non-internal interface's. */
  mac?: string;
  showLed?: (r: number, g: number, b: number) => void;
  /** Pins for the gpio workload (default: the board's allow-lists, simulated). */
  gpio?: GpioPort;
  /** Where what survives a restart is kept (the last good settings, the device memory): one file per key. Absent: nothing persists. */
  stateDir?: string;
  log?: (level: LogLevel, message: string) => void;
  /** What the Node reports about the board; default: this machine, as it is. */
  board?: Partial<BoardFacts>;
  /**
   * Address the kubelet API listens on. Default 127.0.0.1: the agent on a PC serves a control plane
   * on the same machine (tools/controlplane, tests) and nothing else; a cluster elsewhere needs the
   * address the Node advertises as InternalIP (or "0.0.0.0", as the kubelet's --address default).
   */
  listenAddress?: string;
}

/** The Node host's Listener: port is the bound one once ready has resolved (the bind is async). */
export interface NodeListener extends Listener {
  /** Resolves with the bound port; rejects when the bind failed (EADDRINUSE …). */
  readonly ready: Promise<number>;
}

/** Kubernetes' names (GOARCH, GOOS) for Node's process.arch and process.platform. */
const GOARCH: Readonly<Record<string, string>> = Object.freeze({ x64: "amd64", ia32: "386", arm64: "arm64", arm: "arm", ppc64: "ppc64le", s390x: "s390x", riscv64: "riscv64", loong64: "loong64" });
const GOOS: Readonly<Record<string, string>> = Object.freeze({ win32: "windows" });

/** This machine as a Node describes it: the agent on Node.js is no ESP32-S3 and does not say so. */
export function machineFacts(): BoardFacts {
  return {
    arch: GOARCH[process.arch] ?? process.arch,
    os: GOOS[process.platform] ?? process.platform,
    instanceType: "nodejs",
    osImage: `Node.js ${process.version}`,
    kernelVersion: `${osType()} ${release()}`,
    cpu: String(availableParallelism()),
    // Simulated device workloads cost the PC next to nothing; ten is the kubelet-like figure the
    // tests fill (the 11th is OutOfpods).
    pods: 10,
    kubeletPort: 10250,
  };
}

/** A directory of small files, written atomically (a temp file renamed over the old one). */
function fileStore(dir: string): NonNullable<Host["store"]> {
  const path = (key: string) => {
    if (!/^[a-z][a-z0-9-]{0,31}$/.test(key)) throw new Error(`store: bad key "${key}"`);
    return join(dir, key);
  };
  return {
    read(key) {
      try {
        return new Uint8Array(readFileSync(path(key)));
      } catch {
        return undefined;
      }
    },
    write(key, bytes) {
      mkdirSync(dir, { recursive: true });
      const tmp = `${path(key)}.tmp`;
      writeFileSync(tmp, bytes);
      renameSync(tmp, path(key));
    },
  };
}

export function derToPem(der: Uint8Array, label: string): string {
  const b64 = Buffer.from(der).toString("base64");
  return `-----BEGIN ${label}-----\n${b64.replace(/.{64}/g, "$&\n").replace(/\n?$/, "\n")}-----END ${label}-----\n`;
}

/**
 * The client side's TLS context: the CA (and the client certificate, when there is one), TLS 1.2
 * only — what the board's TLS stack speaks, so the same protocol is tested. Made once per CA bundle
 * and reused by every connection that trusts it (a reconnect, and on a PC running many agents, each
 * of them: the same immutable trust anchor), where node:tls would otherwise parse the PEM into a
 * context of its own per connection and keep the PEM text beside the socket. A client certificate
 * is the board's own: its context is made per connection, as before. No TLS session is shared
 * through it: node keeps no client sessions in a context (resumption needs the session option).
 */
const caContexts = new WeakMap<Uint8Array, SecureContext>();
let systemCaContext: SecureContext | undefined;
function clientContext(tls: NonNullable<ConnectTarget["tls"]>): SecureContext {
  const make = () =>
    createSecureContext({
      ca: tls.ca ? derToPem(tls.ca, "CERTIFICATE") : undefined,
      cert: tls.clientCertificate ? derToPem(tls.clientCertificate, "CERTIFICATE") : undefined,
      key: tls.clientKey ? derToPem(tls.clientKey, "PRIVATE KEY") : undefined,
      minVersion: "TLSv1.2",
      maxVersion: "TLSv1.2",
    });
  if (tls.clientCertificate || tls.clientKey) return make();
  if (!tls.ca) return (systemCaContext ??= make());
  let context = caContexts.get(tls.ca);
  if (!context) caContexts.set(tls.ca, (context = make()));
  return context;
}

/**
 * ALPN protocol lists in their wire form (RFC 7301: length-prefixed names), one per list, as a
 * DataView: node:tls copies a DataView into a buffer of its own size, where a list of strings (or a
 * Uint8Array) becomes a slice of its shared 8 KiB allocation pool — kept by the socket for its
 * lifetime, so each long-lived connection pinned a pool slab of its own.
 */
const alpnLists = new Map<string, DataView>();
function alpnWire(protocols: readonly string[]): DataView {
  const key = protocols.join(",");
  let wire = alpnLists.get(key);
  if (!wire) {
    const bytes = protocols.map((p) => Buffer.from(p, "latin1"));
    const out = new Uint8Array(bytes.reduce((n, b) => n + 1 + b.length, 0));
    let at = 0;
    for (const b of bytes) {
      out[at++] = b.length;
      out.set(b, at);
      at += b.length;
    }
    alpnLists.set(key, (wire = new DataView(out.buffer)));
  }
  return wire;
}

/** The kubelet API speaks HTTP/1.1 only: chosen by callback, so no ALPN list is kept per server (see alpnWire). */
function kubeletApiAlpn({ protocols }: { protocols: string[] }): string | undefined {
  return protocols.includes("http/1.1") ? "http/1.1" : undefined; // none: a no_application_protocol alert, as with ALPNProtocols
}

function primaryInterface(): { address: string; mac: string } {
  for (const list of Object.values(networkInterfaces())) {
    for (const i of list ?? []) if (!i.internal && i.family === "IPv4") return { address: i.address, mac: i.mac };
  }
  return { address: "127.0.0.1", mac: "02:00:00:00:00:01" };
}

export function defaultLog(level: LogLevel, message: string): void {
  const line = `${new Date().toISOString()} ${level.toUpperCase().padEnd(5)} ${message}`;
  if (level === "debug" && !process.env.XS_KUBELET_DEBUG) return;
  (level === "error" || level === "warn" ? console.error : console.log)(line);
}

/** The parts of a host that hold no state of their own: one set of functions for every host in the process, not a closure each. */
const STATELESS = Object.freeze({
  monotonic: () => performance.now(),
  setTimer: (cb: () => void, ms: number): unknown => setTimeout(cb, ms),
  clearTimer: (id: unknown) => clearTimeout(id as ReturnType<typeof setTimeout>),
  random: () => Math.random(),
  randomBytes: (n: number) => new Uint8Array(randomBytes(n)),
  utf8Encode: (text: string) => new Uint8Array(Buffer.from(text, "utf8")),
  utf8Decode: (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8"),
  usage: () => {
    const cpu = process.cpuUsage();
    return { cpuSeconds: (cpu.user + cpu.system) / 1e6, memoryBytes: process.memoryUsage().rss };
  },
  // RSA: PKCS#1 v1.5 over SHA-256; EC: ECDSA over SHA-256, DER-encoded (node's default dsaEncoding).
  sign: (key: Uint8Array, data: Uint8Array) => new Uint8Array(cryptoSign("sha256", data, createPrivateKey({ key: Buffer.from(key), format: "der", type: "pkcs8" }))),
} satisfies Partial<Host>);

export function createNodeHost(options: NodeHostOptions = {}): Host {
  const primary = primaryInterface();
  let localAddress = "";
  /** A connection is up: the address it went out from is the board's. */
  const seen = (address: string | undefined) => void (localAddress = address ?? localAddress);
  const host: Host = {
    name: options.name ?? "node",
    board: { ...machineFacts(), ...options.board },
    // Spelled out, not spread: a spread in a literal gives each host object a hidden class of its own in V8.
    monotonic: STATELESS.monotonic,
    setTimer: STATELESS.setTimer,
    clearTimer: STATELESS.clearTimer,
    random: STATELESS.random,
    randomBytes: STATELESS.randomBytes,
    utf8Encode: STATELESS.utf8Encode,
    utf8Decode: STATELESS.utf8Decode,
    usage: STATELESS.usage,
    sign: STATELESS.sign,
    connect(target: ConnectTarget, events: SocketEvents): HostSocket {
      let socket: Socket;
      let rejected: ((err: Error) => string | undefined) | undefined;
      if (target.tls) {
        const tls = target.tls;
        const serverName = tls.serverName;
        socket = tlsConnect({
          host: target.host,
          port: target.port,
          servername: isIP(serverName) ? undefined : serverName,
          secureContext: clientContext(tls),
          rejectUnauthorized: tls.verify,
          checkServerIdentity: (_host, cert) => checkServerIdentity(serverName, cert),
          ALPNProtocols: target.alpn && alpnWire(target.alpn),
        });
        if (tls.verify) rejected = certificateRejected(socket as TLSSocket);
      } else {
        socket = netConnect({ host: target.host, port: target.port });
      }
      return new ClientSocket(socket, events, { tls: target.tls !== undefined, alpn: target.tls !== undefined && target.alpn !== undefined, rejected, seen });
    },
    listen(listenOptions: ListenOptions, accept: (socket: ServerSocket, peer: PeerInfo) => ServerEvents): NodeListener {
      return nodeListen(listenOptions, accept, options.listenAddress ?? "127.0.0.1", host);
    },
    heap: options.heap ?? (() => {
      const s = getHeapStatistics();
      return { free: s.heap_size_limit - s.used_heap_size, total: s.heap_size_limit };
    }),
    network(): NetworkFacts {
      return {
        kind: "host",
        connected: true,
        address: localAddress || primary.address,
        mac: options.mac ?? primary.mac,
        reconnects: 0,
        ...options.network?.(),
      };
    },
    showLed: options.showLed,
    // The board's pins, simulated: the same pod manifests run here and on the board.
    gpio: options.gpio ?? new SimulatedGpio(ESP32S3_GPIO),
    store: options.stateDir ? fileStore(options.stateDir) : undefined,
    log: tapped(options.log ?? defaultLog),
  };
  return host;
}

/**
 * Tells a refused server certificate from other errors, as the host contract asks (CERTIFICATE_REJECTED).
 * node:tls finishes the handshake, then checks the chain and the name (our checkServerIdentity); a
 * failure sets authorizationError (UNABLE_TO_VERIFY_LEAF_SIGNATURE, SELF_SIGNED_CERT_IN_CHAIN,
 * CERT_HAS_EXPIRED, ERR_TLS_CERT_ALTNAME_INVALID …) and destroys the socket with that error. The
 * certificate is gone by then, so it is read when the handshake is done, just before that check.
 */
function certificateRejected(socket: TLSSocket): (err: Error) => string | undefined {
  let seen = "";
  socket.prependOnceListener("secure", () => {
    const cert = socket.getPeerCertificate();
    if (cert?.subject) seen = `; the server presented ${dn(cert.subject)}, issued by ${dn(cert.issuer)}, valid ${cert.valid_from} to ${cert.valid_to}`;
  });
  return (err) => {
    if (!socket.authorizationError) return undefined;
    const code = (err as { code?: string }).code;
    return `${CERTIFICATE_REJECTED}${err.message}${code ? ` (${code})` : ""}${seen}`;
  };
}

/** "CN=…, O=…" of a certificate's subject or issuer as node:tls gives it. */
function dn(name: Record<string, string | string[] | undefined> | undefined): string {
  return Object.entries(name ?? {})
    .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join("+") : v}`)
    .join(", ");
}

/**
 * A client connection as the host contract has it. Its socket's listeners are the functions below,
 * shared by every connection (node calls them with the socket as this), not closures made per
 * connection: a PC running many agents keeps one connection per agent open for hours.
 */
class ClientSocket implements HostSocket {
  readonly socket: Socket;
  readonly events: SocketEvents;
  readonly alpn: boolean;
  readonly rejected: ((err: Error) => string | undefined) | undefined;
  readonly seen: (address: string | undefined) => void;
  closed = false;
  constructor(socket: Socket, events: SocketEvents, how: { tls: boolean; alpn: boolean; rejected: ClientSocket["rejected"]; seen: ClientSocket["seen"] }) {
    this.socket = socket;
    this.events = events;
    this.alpn = how.alpn;
    this.rejected = how.rejected;
    this.seen = how.seen;
    (socket as OwnedSocket)[CLIENT] = this;
    socket.once(how.tls ? "secureConnect" : "connect", onClientConnect);
    socket.setNoDelay(true);
    socket.on("data", onClientData);
    socket.on("error", onClientError);
    socket.on("close", onClientClose);
    socket.on("end", onClientEnd);
  }
  write(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }
  close(): void {
    this.closed = true; // the agent asked: no callback
    this.socket.destroy();
  }
  /** The connection ended: told once, and not at all after close(). */
  ended(error?: string): void {
    if (this.closed) return;
    this.closed = true;
    this.events.onClose(error);
  }
}

const CLIENT = Symbol("ClientSocket");
type OwnedSocket = Socket & { [CLIENT]: ClientSocket };
function onClientConnect(this: Socket): void {
  const c = (this as OwnedSocket)[CLIENT];
  c.seen(this.localAddress);
  c.events.onConnect(c.alpn ? (this as TLSSocket).alpnProtocol || "" : undefined);
}
function onClientData(this: Socket, d: Buffer): void {
  (this as OwnedSocket)[CLIENT].events.onData(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
}
function onClientError(this: Socket, err: Error): void {
  const c = (this as OwnedSocket)[CLIENT];
  c.ended(c.rejected?.(err) ?? err.message);
}
function onClientClose(this: Socket): void {
  (this as OwnedSocket)[CLIENT].ended();
}
function onClientEnd(this: Socket): void {
  this.end();
}

/** The subject's CN and O of a verified client certificate (node:tls gives a string or an array). */
function subjectOf(cert: { subject?: Record<string, string | string[] | undefined> } | undefined): { commonName: string; organizations: string[] } | undefined {
  const subject = cert?.subject;
  if (!subject) return undefined;
  const cn = subject.CN;
  const o = subject.O;
  const commonName = Array.isArray(cn) ? (cn[0] ?? "") : (cn ?? "");
  if (!commonName) return undefined;
  return { commonName, organizations: o === undefined ? [] : Array.isArray(o) ? o.slice() : [o] };
}

/**
 * The kubelet API's TLS listener: the serving certificate, client certificates requested (verified
 * against clientCa) but not required, so a bearer token alone also reaches the server; at most
 * maxConnections at once (node:net drops the rest at accept). TLS 1.2 and up (the API server and
 * metrics-server speak 1.3; the board's own listener speaks 1.2).
 */
function nodeListen(options: ListenOptions, accept: (socket: ServerSocket, peer: PeerInfo) => ServerEvents, address: string, host: Host): NodeListener {
  const context = (tls: ListenOptions["tls"]) => ({
    cert: derToPem(tls.certificate, "CERTIFICATE"),
    key: derToPem(tls.key, "PRIVATE KEY"),
    ca: tls.clientCa ? derToPem(tls.clientCa, "CERTIFICATE") : undefined,
    minVersion: "TLSv1.2" as const,
  });
  let clientCa = options.tls.clientCa;
  const server = tlsCreateServer({
    ...context(options.tls),
    requestCert: true,
    rejectUnauthorized: false,
    ALPNCallback: kubeletApiAlpn,
    handshakeTimeout: 10_000, // a connection that never finishes its handshake frees its slot
  });
  // node:tls keeps the PEM text it was given on the Server (cert, key, ca) beside the context it
  // parsed them into, and reads it only in setSecureContext, which update() gives all of it anew:
  // drop it (about 3 KB a listener, the private key among it; the agent keeps its DER).
  const forgetPem = () => Object.assign(server, { cert: undefined, key: undefined, ca: undefined });
  forgetPem();
  server.maxConnections = options.maxConnections;
  server.on("secureConnection", (socket: TLSSocket) => {
    let closed = false;
    const verified = socket.authorized && clientCa ? subjectOf(socket.getPeerCertificate()) : undefined;
    const peer: PeerInfo = { address: socket.remoteAddress ?? "" };
    if (verified) peer.clientCertificate = verified;
    socket.setNoDelay(true);
    let events: ServerEvents;
    try {
      events = accept(
        {
          write: (bytes) => void (!socket.destroyed && socket.write(bytes)),
          close: () => {
            closed = true; // the server asked: no callback
            socket.end();
            socket.destroySoon();
          },
        },
        peer,
      );
    } catch (err) {
      host.log("error", `kubelet API: accept failed: ${err instanceof Error ? err.message : String(err)}`);
      socket.destroy();
      return;
    }
    const close = (error?: string) => {
      if (closed) return;
      closed = true;
      events.onClose(error);
    };
    socket.on("data", (d: Buffer) => !closed && events.onData(new Uint8Array(d.buffer, d.byteOffset, d.byteLength)));
    socket.on("error", (err) => close(err.message));
    socket.on("close", () => close());
    socket.on("end", () => socket.end());
  });
  // A failed handshake (a scanner, a client that distrusts the certificate) is the client's business.
  server.on("tlsClientError", () => {});
  let port = options.port;
  const ready = new Promise<number>((resolve, reject) => {
    server.once("listening", () => {
      const a = server.address();
      if (a && typeof a === "object") port = a.port;
      resolve(port);
    });
    server.once("error", (err) => {
      host.log("error", `kubelet API: cannot listen on ${address}:${options.port}: ${err.message}`);
      reject(err);
    });
  });
  ready.catch(() => {}); // told in the log; awaiting ready shows it too
  server.listen(options.port, address);
  return {
    get port() {
      return port;
    },
    ready,
    // A renewed serving certificate: new handshakes get it (node:tls checks that the key matches).
    update(tls) {
      server.setSecureContext(context(tls));
      forgetPem();
      clientCa = tls.clientCa;
    },
    close: () => void server.close(),
  };
}
