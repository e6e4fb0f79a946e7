// The host boundary. Everything in modules/ talks to the world only through a Host, so the firmware
// (Moddable on the ESP32-S3 and in mcsim), the Node.js host and the test hosts run the same core.
// A host translates; it does not decide.

/** Opaque timer handle. */
export type TimerId = unknown;

export interface TlsOptions {
  /** Name the server certificate must carry (SNI and verification). */
  serverName: string;
  /** The cluster CA, DER. */
  ca?: Uint8Array;
  /** false only by an explicit, loudly logged opt-in. */
  verify: boolean;
  /** RSA client certificate (DER) and PKCS#8 key (DER), for x509 node identities. */
  clientCertificate?: Uint8Array;
  clientKey?: Uint8Array;
}

export interface ConnectTarget {
  host: string;
  port: number;
  /** Absent for plain TCP (tests and proxies only). */
  tls?: TlsOptions;
  /** TLS ALPN protocols to offer, most preferred first ("h2", "http/1.1"). */
  alpn?: string[];
}

/**
 * How a host says that its TLS refused the server's certificate — it did not chain to the CA, did
 * not carry serverName, was expired or not yet valid, or was otherwise untrusted — as opposed to any
 * other failure (a refused connect, a reset, a fatal alert): onClose(CERTIFICATE_REJECTED + reason).
 * The reason names the check that failed and, where the host knows them, the name expected and the
 * subject (issuer, validity) the server presented. A string, not a type: the Moddable hosts pass strings.
 * The core treats it apart (see certificateRejection's callers): the network works, the peer is not
 * who the agent trusts, and retrying within seconds will not change that.
 */
export const CERTIFICATE_REJECTED = "server certificate rejected: ";

/** The reason when a socket's onClose error is a CERTIFICATE_REJECTED one; undefined for any other. */
export function certificateRejection(error: string | undefined): string | undefined {
  return error !== undefined && error.startsWith(CERTIFICATE_REJECTED) ? error.slice(CERTIFICATE_REJECTED.length) : undefined;
}

export interface SocketEvents {
  /**
   * The connection is established (TLS handshake done) and writable. protocol: the ALPN protocol
   * the server selected, where the host's TLS can tell ("" for none); undefined where it cannot.
   */
  onConnect(protocol?: string): void;
  /** Bytes arrived. The buffer may be reused by the host after the call returns. */
  onData(bytes: Uint8Array): void;
  /** The connection ended (error message when it failed; CERTIFICATE_REJECTED … for a refused certificate). Called at most once. */
  onClose(error?: string): void;
}

export interface HostSocket {
  write(bytes: Uint8Array): void;
  close(): void;
}

/** The kubelet API's listening side (HTTPS on the port the Node advertises). */
export interface ListenOptions {
  /** 0: any free port (the Node host, so several agents fit on one machine). */
  port: number;
  /** The serving certificate (DER, leaf) and its PKCS#8 key (DER); clientCa: DER of the CA that
   * signs client certificates (the cluster CA), requested but not required. */
  tls: { certificate: Uint8Array; key: Uint8Array; clientCa?: Uint8Array };
  /** Connections at once; more are refused at accept. */
  maxConnections: number;
}

/** Who is on the other end of an accepted connection. */
export interface PeerInfo {
  address: string;
  /** A client certificate that verified against clientCa: its subject CN and O (username, groups). */
  clientCertificate?: { commonName: string; organizations: string[] };
}

export interface ServerSocket {
  write(bytes: Uint8Array): void;
  /** Ends the connection (after what was written is sent). */
  close(): void;
}

export interface ServerEvents {
  onData(bytes: Uint8Array): void;
  /** The connection ended (error message when it failed). Called at most once. */
  onClose(error?: string): void;
}

export interface Listener {
  /** The port actually bound (what the Node advertises); valid once ready resolved, where there is one. */
  readonly port: number;
  /** Where binding is asynchronous: resolves with the bound port, rejects when it cannot bind. */
  readonly ready?: Promise<number>;
  /**
   * Serves a renewed certificate (and its key) from the next handshake on; connections already open
   * keep theirs. Throws when the host cannot use it (the key does not match). Absent: the host
   * cannot switch without listening again.
   */
  update?(tls: ListenOptions["tls"]): void;
  close(): void;
}

export interface HeapFigures {
  /** Free bytes the agent's heap can still use. */
  free: number;
  /** Total size of that heap. */
  total: number;
}

/**
 * The XS heap's live bytes: what the slot and chunk heaps hold right after a collection (garbage
 * excluded), as one sample the host took. slotSize is the bytes of one slot on
 * this build (16 on the board's 32-bit XS, 32 in a 64-bit simulator or xsnap): the same program
 * holds twice the slot bytes on a 64-bit host.
 */
export interface XsHeapSample {
  slotBytes: number;
  chunkBytes: number;
  slotSize: number;
}

export type NetworkKind = "ethernet" | "wifi" | "host";

export interface NetworkFacts {
  kind: NetworkKind;
  /** Is there a link with an address right now? */
  connected: boolean;
  /** The address the Node advertises as InternalIP ("" while unknown). */
  address: string;
  /** The MAC of the primary interface, "aa:bb:cc:dd:ee:ff"; stable identity comes from it. */
  mac: string;
  /** Network reconnects since the host started (Wi-Fi drops, Ethernet link losses). */
  reconnects: number;
  /** BSSID of the access point (Wi-Fi only). */
  bssid?: string;
}

export type LogLevel = "debug" | "info" | "warn" | "error";

/** What the board is, as the Node reports it: the host knows, the core does not guess. */
export interface BoardFacts {
  /** kubernetes.io/arch and nodeInfo.architecture (xtensa-lx7 on the ESP32-S3, amd64 on a PC). */
  arch: string;
  /** kubernetes.io/os and nodeInfo.operatingSystem. */
  os: string;
  /** node.kubernetes.io/instance-type. */
  instanceType: string;
  /** nodeInfo.osImage and kernelVersion, as kubectl get nodes -o wide shows them. */
  osImage: string;
  kernelVersion: string;
  /** capacity.cpu, a Kubernetes quantity ("240m"). */
  cpu: string;
  /** capacity.pods. */
  pods: number;
  /** The port the kubelet API listens on, advertised in status.daemonEndpoints. */
  kubeletPort: number;
}

/** The board's general-purpose pins a pod's workload may use (the gpio workload), and how to drive them. */
export interface GpioPort {
  /** Pins that may be driven as outputs, and read as inputs: the board's allow-lists. */
  readonly outputs: readonly number[];
  readonly inputs: readonly number[];
  write(pin: number, value: 0 | 1): void;
  read(pin: number): 0 | 1;
  /** The pin is no longer used: back to whatever is safe on the board (an input). */
  release(pin: number): void;
}

export interface Host {
  /** "esp32s3", "sim", "node", "scripted" … shown in the User-Agent and logs. */
  readonly name: string;
  /** What this board is; the Node's labels, capacity and nodeInfo come from it. */
  readonly board: BoardFacts;
  /** Monotonic milliseconds since an arbitrary origin; never goes backwards. */
  monotonic(): number;
  setTimer(callback: () => void, ms: number): TimerId;
  clearTimer(id: TimerId): void;
  /** Uniform in [0, 1). */
  random(): number;
  randomBytes(length: number): Uint8Array;
  utf8Encode(text: string): Uint8Array;
  utf8Decode(bytes: Uint8Array): string;
  connect(target: ConnectTarget, events: SocketEvents): HostSocket;
  /** Listens for HTTPS connections (the kubelet API); absent where the host cannot serve. */
  listen?(options: ListenOptions, accept: (socket: ServerSocket, peer: PeerInfo) => ServerEvents): Listener;
  /** The heap the agent lives in; undefined where the platform cannot tell (release builds). */
  heap(): HeapFigures | undefined;
  /**
   * The live XS heap at the host's last sample after a collection (one sample, so the screen,
   * the log and /metrics show the same figure); absent or undefined where the build cannot
   * collect and read it (release builds, Node.js).
   */
  xsHeap?(): XsHeapSample | undefined;
  /**
   * What the agent has used, for /metrics/resource (kubectl top node): CPU seconds since it started
   * and memory in use now (bytes); undefined where the platform cannot tell.
   */
  usage?(): { cpuSeconds: number; memoryBytes: number } | undefined;
  network(): NetworkFacts;
  /** Draws one LED frame; values already brightness-capped, 0–255. */
  showLed?(r: number, g: number, b: number): void;
  /** The pins pods may use; absent where the host has none (simulated ones on the PC and in mcsim). */
  readonly gpio?: GpioPort;
  /** Readings beyond heap and uptime, where the platform has them (Wi-Fi RSSI in dBm, the chip's temperature). */
  readings?(): { rssi?: number; temperatureC?: number };
  /**
   * What survives a reboot: small named blobs (the last good settings, the device memory region).
   * Preferences on the board and in mcsim, a directory on the Node host; absent: nothing persists.
   */
  readonly store?: { read(key: string): Uint8Array | undefined; write(key: string, bytes: Uint8Array): void };
  /**
   * Signs with one of the agent's private keys (PKCS#8 DER: the key its client or serving
   * certificate is for): RSASSA-PKCS1-v1_5 with SHA-256 for an RSA key (the signature's bytes),
   * ECDSA P-256 with SHA-256 for an EC key (a DER Ecdsa-Sig-Value). Certificate requests (rotation)
   * need it; absent: the agent cannot renew its certificates and says so.
   */
  sign?(key: Uint8Array, data: Uint8Array): Uint8Array | Promise<Uint8Array>;
  /** Sets the system clock where the platform has one to set (the board has no RTC). */
  setSystemTime?(epochMs: number): void;
  log(level: LogLevel, message: string): void;
}
