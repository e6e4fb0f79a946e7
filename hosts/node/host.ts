// The Node.js host: node:tls (verifying the API server against the cluster CA), real timers and
// randomness, the V8 heap (or an injected figure, so tests can force MemoryPressure), the terminal LED,
// and the truth about the machine it runs on (or the board it is told to pose as).
import { randomBytes } from "node:crypto";
import { connect as netConnect, isIP, type Socket } from "node:net";
import { availableParallelism, networkInterfaces, release, type as osType } from "node:os";
import { performance } from "node:perf_hooks";
import { checkServerIdentity, connect as tlsConnect, type TLSSocket } from "node:tls";
import { getHeapStatistics } from "node:v8";
import type { BoardFacts, ConnectTarget, HeapFigures, Host, HostSocket, LogLevel, NetworkFacts, SocketEvents } from "../../modules/host";

export interface NodeHostOptions {
  name?: string;
  /** Heap figures the conditions see; default: the V8 heap. */
  heap?: () => HeapFigures | undefined;
  /** Overrides of the network facts (tests simulate reconnects, BSSIDs, address changes). */
  network?: () => Partial<NetworkFacts>;
  /** MAC for machineID/systemUUID; default: the first non-internal interface's. */
  mac?: string;
  showLed?: (r: number, g: number, b: number) => void;
  log?: (level: LogLevel, message: string) => void;
  /** What the Node reports about the board; default: this machine, as it is. */
  board?: Partial<BoardFacts>;
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
    pods: 1,
    kubeletPort: 10250,
  };
}

export function derToPem(der: Uint8Array, label: string): string {
  const b64 = Buffer.from(der).toString("base64");
  return `-----BEGIN ${label}-----\n${b64.replace(/.{64}/g, "$&\n").replace(/\n?$/, "\n")}-----END ${label}-----\n`;
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

export function createNodeHost(options: NodeHostOptions = {}): Host {
  const primary = primaryInterface();
  let localAddress = "";
  const host: Host = {
    name: options.name ?? "node",
    board: { ...machineFacts(), ...options.board },
    monotonic: () => performance.now(),
    setTimer: (cb, ms) => setTimeout(cb, ms),
    clearTimer: (id) => clearTimeout(id as ReturnType<typeof setTimeout>),
    random: () => Math.random(),
    randomBytes: (n) => new Uint8Array(randomBytes(n)),
    utf8Encode: (text) => new Uint8Array(Buffer.from(text, "utf8")),
    utf8Decode: (bytes) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8"),
    connect(target: ConnectTarget, events: SocketEvents): HostSocket {
      let socket: Socket;
      let closed = false;
      const close = (error?: string) => {
        if (closed) return;
        closed = true;
        events.onClose(error);
      };
      if (target.tls) {
        const tls = target.tls;
        const serverName = tls.serverName;
        socket = tlsConnect({
          host: target.host,
          port: target.port,
          servername: isIP(serverName) ? undefined : serverName,
          ca: tls.ca ? derToPem(tls.ca, "CERTIFICATE") : undefined,
          rejectUnauthorized: tls.verify,
          checkServerIdentity: (_host, cert) => checkServerIdentity(serverName, cert),
          cert: tls.clientCertificate ? derToPem(tls.clientCertificate, "CERTIFICATE") : undefined,
          key: tls.clientKey ? derToPem(tls.clientKey, "PRIVATE KEY") : undefined,
          minVersion: "TLSv1.2",
          maxVersion: "TLSv1.2", // what the board's TLS stack speaks: test the same protocol
          ALPNProtocols: target.alpn,
        });
        socket.once("secureConnect", () => {
          localAddress = socket.localAddress ?? localAddress;
          const chosen = (socket as TLSSocket).alpnProtocol;
          events.onConnect(target.alpn ? chosen || "" : undefined);
        });
      } else {
        socket = netConnect({ host: target.host, port: target.port });
        socket.once("connect", () => {
          localAddress = socket.localAddress ?? localAddress;
          events.onConnect();
        });
      }
      socket.setNoDelay(true);
      socket.on("data", (d: Buffer) => events.onData(new Uint8Array(d.buffer, d.byteOffset, d.byteLength)));
      socket.on("error", (err) => close(err.message));
      socket.on("close", () => close());
      socket.on("end", () => socket.end());
      return {
        write: (bytes) => void socket.write(bytes),
        close: () => {
          closed = true; // the agent asked: no callback
          socket.destroy();
        },
      };
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
    log: options.log ?? defaultLog,
  };
  return host;
}
