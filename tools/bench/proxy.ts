// A counting TCP proxy in front of the API server. TLS passes through untouched, so what it counts is
// what a board's radio would carry: TLS records, handshakes and alerts included (TCP/IP headers not).
import { connect, createServer, type Socket } from "node:net";

export interface WireCounts {
  /** Connections accepted: TLS handshakes, since none of the benchmarked clients resumes a session. */
  connections: number;
  /** Connections open at the moment of the snapshot. */
  open: number;
  /** Bytes client → API server. */
  up: number;
  /** Bytes API server → client. */
  down: number;
}

export interface CountingProxy {
  /** On 127.0.0.1. */
  port: number;
  /** The counts so far (a copy): the difference of two is what happened in between. */
  snapshot(): WireCounts;
  /** Stops listening and drops every connection. */
  close(): Promise<void>;
}

export function diffCounts(from: WireCounts, to: WireCounts): WireCounts {
  return { connections: to.connections - from.connections, open: to.open, up: to.up - from.up, down: to.down - from.down };
}

export function startCountingProxy(target: { host: string; port: number }): Promise<CountingProxy> {
  const counts: WireCounts = { connections: 0, open: 0, up: 0, down: 0 };
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    counts.connections++;
    counts.open++;
    const upstream = connect({ host: target.host, port: target.port });
    let closed = 0;
    for (const [s, other] of [[client, upstream], [upstream, client]]) {
      sockets.add(s);
      s.setNoDelay(true); // forward each record as it comes: the proxy must not change the timing
      s.on("error", () => {
        client.destroy();
        upstream.destroy();
      });
      s.on("close", () => {
        sockets.delete(s);
        if (++closed === 2) counts.open--;
        // Losing its pipe destination pauses the other side: keep reading it, or its last bytes
        // (a close_notify) go uncounted and its FIN unseen, and the connection never counts as closed.
        other.resume();
      });
    }
    // Counted as they pass; pipe keeps backpressure and propagates half-closes (TLS close_notify + FIN).
    client.on("data", (d: Buffer) => void (counts.up += d.length));
    upstream.on("data", (d: Buffer) => void (counts.down += d.length));
    client.pipe(upstream);
    upstream.pipe(client);
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      resolve({
        port: (server.address() as { port: number }).port,
        snapshot: () => ({ ...counts }),
        close: () =>
          new Promise<void>((done) => {
            for (const s of sockets) s.destroy();
            server.close(() => done());
          }),
      });
    });
  });
}
