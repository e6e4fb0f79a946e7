// Host.connect over the SDK's ECMA-419 TCP socket (`embedded:io/socket/tcp`), bare or carrying
// verified TLS 1.2 through the project's own client stream (./tls-stream: the SDK's `ssl/session`
// engine driven without `embedded:io/socket/tcp/tls`, which dropped the application data that came
// with the server's Finished — kube-apiserver's HTTP/2 SETTINGS — and re-read leftover records from
// a Timer where a throw aborted XS). Writes are queued and sent as the socket reports room; onClose
// is reported exactly once, never after the agent closed the socket itself.
//
// Exceptions: the SDK calls socket callbacks from C inside xsBeginHost, where a throw aborts the
// whole program (the simulator quits, the board resets). Every callback here runs inside
// try/catch, and the TLS stream guards its own TCP callbacks the same way: a failed handshake
// (certificate checks included) or a bad record becomes onClose("TLS: …") — a refused server
// certificate onClose(CERTIFICATE_REJECTED + why) — not an abort.
import TCP from "embedded:io/socket/tcp";
import Resolver from "embedded:network/dns/resolver/udp";
import UDP from "embedded:io/socket/udp";
import Timer from "timer";
import { busy } from "./runtime";
import TLSStream from "./tls-stream";
import { keepable } from "./tls-record";
import { CERTIFICATE_REJECTED, certificateRejection, type ConnectTarget, type HostSocket, type LogLevel, type SocketEvents } from "../../modules/host";

/** What both socket kinds offer once connected: write returns the room left. */
interface RawSocket {
  write(bytes: Uint8Array): number | void;
  close(): void;
}

export interface TransportOptions {
  /** DNS servers for names that are not IPv4 literals (empty: names cannot be resolved). */
  dnsServers: () => string[];
  log: (level: LogLevel, message: string) => void;
}

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;
// Bytes per write call; the TLS stream splits them into records itself.
const MAX_WRITE = 8192;

function message(e: unknown): string {
  return e instanceof Error ? e.message || e.name : String(e);
}

export function createConnector(options: TransportOptions): (target: ConnectTarget, events: SocketEvents) => HostSocket {
  let resolver: Resolver | undefined;

  function resolve(host: string, done: (address: string | undefined, error?: string) => void): void {
    if (IPV4.test(host)) return done(host);
    if (host === "localhost") return done("127.0.0.1");
    const servers = options.dnsServers();
    if (!servers.length) return done(undefined, `cannot resolve "${host}": no DNS server known (use an IPv4 address)`);
    try {
      resolver ??= new Resolver({ servers, socket: { io: UDP } });
      resolver.resolve({
        host,
        onResolved: ((_h: string, address: string) => done(String(address))) as any,
        onError: ((_h: string) => done(undefined, `cannot resolve "${host}"`)) as any,
      });
    } catch (e) {
      resolver = undefined;
      done(undefined, `cannot resolve "${host}": ${message(e)}`);
    }
  }

  return function connect(target: ConnectTarget, events: SocketEvents): HostSocket {
    let socket: RawSocket | undefined;
    let finished = false; // closed by either side: nothing more goes to events
    let connected = false;
    let writable = 0;
    const queue: Uint8Array[] = [];

    const end = (error?: string) => {
      if (finished) return;
      finished = true;
      const s = socket;
      socket = undefined;
      queue.length = 0;
      try {
        s?.close();
      } catch {
        // already closed by the SDK
      }
      events.onClose(error);
    };

    const flush = () => {
      while (socket && queue.length && writable > 0) {
        const head = queue[0];
        const n = Math.min(head.length, writable, MAX_WRITE);
        const left = socket.write(n === head.length ? head : head.subarray(0, n));
        writable = typeof left === "number" ? left : writable - n;
        if (n === head.length) queue.shift();
        else queue[0] = head.subarray(n);
      }
    };

    const established = (count: number) => {
      if (finished || connected) return;
      connected = true;
      writable = count;
      events.onConnect();
      flush();
    };

    const onWritable = (count: number) => {
      if (finished) return;
      if (!connected) return established(count); // plain TCP: the first room is the connection
      writable = count;
      flush();
    };

    const onData = (bytes: Uint8Array) => {
      if (!finished && bytes.byteLength) events.onData(bytes);
    };

    // Every callback runs from C: nothing may escape.
    const safely = (what: string, fn: () => void) => {
      try {
        busy(fn);
      } catch (e) {
        end(`${what}: ${message(e)}`);
      }
    };

    const open = (address: string) => {
      if (finished) return;
      const tls = target.tls;
      if (tls) {
        // The session checks the CA in the stream's constructor: that throw is caught by open's caller.
        socket = new TLSStream({
          address,
          port: target.port,
          serverName: tls.serverName,
          verify: tls.verify,
          certificate: tls.ca ? keepable(tls.ca) : undefined,
          clientCertificates: tls.clientCertificate ? [keepable(tls.clientCertificate)] : undefined,
          clientKey: tls.clientKey ? keepable(tls.clientKey) : undefined,
          // ALPN goes into the ClientHello; the SDK's ServerHello parser does not read the server's
          // choice back, so onConnect() reports none and the core tells h2 from HTTP/1.1 by the
          // server's first bytes (a SETTINGS frame, or "HTTP/").
          applicationLayerProtocolNegotiation: target.alpn?.slice(),
          onConnect: (count: number) => safely("connect", () => established(count)),
          onData: (bytes: Uint8Array) => safely("read", () => onData(bytes)),
          onWritable: (count: number) => safely("write", () => onWritable(count)),
          onError: (e?: unknown) => end(e === undefined ? (connected ? "connection closed" : "connection failed") : tlsError(e)),
        });
      } else {
        const tcp: TCP = new TCP({
          address,
          port: target.port,
          nodelay: true,
          format: "buffer",
          onReadable: (count: number) =>
            safely("read", () => {
              if (finished || socket !== (tcp as unknown)) return;
              const data = tcp.read(count);
              if (data instanceof ArrayBuffer) onData(new Uint8Array(data));
            }),
          onWritable: (count: number) => safely("write", () => onWritable(count)),
          onError: () => end(connected ? "connection closed" : "connection failed"),
        });
        socket = tcp as unknown as RawSocket;
      }
    };

    // Deferred: the caller must hold the returned socket before any event can arrive.
    const fail = (error: string) => void Timer.set(() => end(error));
    Timer.set(() => {
      try {
        resolve(target.host, (address, error) => {
          if (finished) return;
          if (!address) return end(error);
          try {
            open(address);
          } catch (e) {
            end(target.tls ? tlsError(e) : `cannot connect to ${address}:${target.port}: ${message(e)}`);
          }
        });
      } catch (e) {
        end(message(e));
      }
    });

    return {
      write(bytes: Uint8Array) {
        if (finished) throw new Error("socket closed");
        // Copied: the caller may reuse its buffer, and the socket may not take it all now.
        queue.push(bytes.slice());
        if (!connected) return;
        try {
          flush();
        } catch (e) {
          fail(`write: ${message(e)}`);
        }
      },
      close() {
        if (finished) return;
        finished = true; // the agent asked: no callback
        const s = socket;
        socket = undefined;
        try {
          s?.close();
        } catch {
          // already closed
        }
      },
    };
  };
}


/** What the TLS stream or the session threw, for onClose: a refused certificate as the host contract marks it. */
function tlsError(e: unknown): string {
  const text = message(e);
  if (certificateRejection(text) !== undefined) return text; // the stream named the reason
  // The SDK's own certificate manager (not the project's ssl/cert) gives no reason, only these.
  if (/certificate: auth err|date validation/i.test(text)) return `${CERTIFICATE_REJECTED}the TLS stack refused it (${text})`;
  return `TLS: ${text}`;
}
