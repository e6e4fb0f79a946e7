// Host.connect over the SDK's ECMA-419 sockets: `embedded:io/socket/tcp/tls` (verified TLS 1.2)
// or plain `embedded:io/socket/tcp`. Writes are queued and sent as the socket reports room;
// onClose is reported exactly once, never after the agent closed the socket itself.
//
// Exceptions: the SDK calls socket callbacks from C inside xsBeginHost, where a throw aborts the
// whole program (the simulator quits, the board resets). The TLS handshake — certificate checks
// included — runs inside the TCP socket's onReadable, so the TLS socket is given a TCP class whose
// callbacks are wrapped in try/catch: a failed handshake becomes onClose("…"), not an abort.
// Not covered: the TLS socket re-reads leftover records from its own Timer (tlssocket.js read()),
// and a throw there (a corrupt record after the handshake) still aborts.
import TCP from "embedded:io/socket/tcp";
import TLSSocket from "embedded:io/socket/tcp/tls";
import Resolver from "embedded:network/dns/resolver/udp";
import UDP from "embedded:io/socket/udp";
import Timer from "timer";
import type { ConnectTarget, HostSocket, LogLevel, SocketEvents } from "../../modules/host";

/** What both socket kinds offer once connected. */
interface RawSocket {
  read(count?: number): ArrayBuffer | number | undefined;
  write(bytes: Uint8Array): number | void;
  close(): void;
}

type Callback = (...args: any[]) => void;

export interface TransportOptions {
  /** DNS servers for names that are not IPv4 literals (empty: names cannot be resolved). */
  dnsServers: () => string[];
  log: (level: LogLevel, message: string) => void;
}

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;
// Below the TLS record limit (16384) with room for the record overhead.
const MAX_WRITE = 8192;

function message(e: unknown): string {
  return e instanceof Error ? e.message || e.name : String(e);
}

/**
 * A TCP class for the TLS socket's `TCP.io` whose callbacks cannot throw into C: an exception
 * goes to options.onFault instead. Constructing it returns the real TCP socket.
 */
function GuardedTCP(this: unknown, options: Record<string, unknown>) {
  const fault = options.onFault as (e: unknown) => void;
  const guard = (fn: unknown): Callback | undefined => {
    if (typeof fn !== "function") return undefined;
    return function (this: unknown, ...args: unknown[]) {
      try {
        (fn as Callback).apply(this, args);
      } catch (e) {
        fault(e);
      }
    };
  };
  const { onFault: _ignored, TCP: _tcp, secure: _secure, ...rest } = options;
  return new TCP({
    ...(rest as any),
    onReadable: guard(options.onReadable),
    onWritable: guard(options.onWritable),
    onError: guard(options.onError),
  });
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

    const onWritable = (count: number) => {
      if (finished) return;
      writable = count;
      if (!connected) {
        connected = true;
        events.onConnect();
      }
      flush();
    };

    const onReadable = (count: number) => {
      if (finished || !socket) return;
      const data = socket.read(count);
      if (data instanceof ArrayBuffer && data.byteLength) events.onData(new Uint8Array(data));
    };

    // Every callback runs from C: nothing may escape.
    const safely = (what: string, fn: () => void) => {
      try {
        fn();
      } catch (e) {
        end(`${what}: ${message(e)}`);
      }
    };

    const open = (address: string) => {
      if (finished) return;
      const callbacks = {
        onReadable: (count: number) => safely("read", () => onReadable(count)),
        onWritable: (count: number) => safely("write", () => onWritable(count)),
        onError: () => end(connected ? "connection closed" : "connection failed"),
      };
      const tls = target.tls;
      if (tls) {
        const secure: Record<string, unknown> = { serverName: tls.serverName, verify: tls.verify };
        if (tls.ca) secure.certificate = copy(tls.ca);
        if (tls.clientCertificate) secure.clientCertificates = [copy(tls.clientCertificate)];
        if (tls.clientKey) secure.clientKey = copy(tls.clientKey);
        // ALPN goes into the ClientHello; the SDK's ServerHello parser does not read the server's
        // choice back, so onConnect() reports none and the core tells h2 from HTTP/1.1 by the
        // server's first bytes (a SETTINGS frame, or "HTTP/").
        if (target.alpn) secure.applicationLayerProtocolNegotiation = target.alpn.slice();
        // The TLS socket checks the CA's dates in its constructor: that throw is caught by open's caller.
        socket = new TLSSocket({
          TCP: { io: GuardedTCP as any },
          onFault: (e: unknown) => end(tlsError(e)),
          address,
          host: tls.serverName,
          port: target.port,
          secure,
          ...callbacks,
        }) as RawSocket;
      } else {
        socket = new TCP({ address, port: target.port, nodelay: true, format: "buffer", ...callbacks }) as unknown as RawSocket;
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

/** The SDK's TLS stack wants ArrayBuffers it can keep. */
function copy(bytes: Uint8Array): ArrayBuffer {
  return bytes.slice().buffer as ArrayBuffer;
}

function tlsError(e: unknown): string {
  const text = message(e);
  if (/auth err|certificate|date validation/i.test(text)) return `TLS: server certificate rejected (${text}); check the cluster CA and server name`;
  return `TLS: ${text}`;
}
