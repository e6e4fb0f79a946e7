// A fault proxy on 127.0.0.1 in front of the API server: bytes pass through untouched (TLS included)
// until a fault is switched on. Outage: every live connection is reset and the port refuses new
// ones (the listening socket is closed), as when the API server's host or the network path goes away;
// ending it listens again on the same port.
import { connect, createServer, type Server, type Socket } from "node:net";

export interface FaultProxy {
  readonly port: number;
  /** Connections accepted since it started. */
  readonly accepted: number;
  /** Resets every live connection and refuses new ones until endOutage(). */
  startOutage(): Promise<void>;
  /** Accepts connections again (same port); resolves once listening. */
  endOutage(): Promise<void>;
  close(): Promise<void>;
}

export async function startFaultProxy(target: { host: string; port: number }): Promise<FaultProxy> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  let port = 0;
  let server: Server | undefined;
  const serve = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const s = createServer((client) => {
        accepted++;
        const upstream = connect({ host: target.host, port: target.port });
        for (const [a, b] of [[client, upstream], [upstream, client]]) {
          sockets.add(a);
          a.setNoDelay(true);
          a.on("error", () => {
            client.destroy();
            upstream.destroy();
          });
          a.on("close", () => {
            sockets.delete(a);
            b.destroy();
          });
        }
        client.pipe(upstream);
        upstream.pipe(client);
      });
      s.once("error", reject);
      s.listen(port, "127.0.0.1", () => {
        port = (s.address() as { port: number }).port;
        server = s;
        resolve();
      });
    });
  const unlisten = (): Promise<void> =>
    new Promise((resolve) => {
      const s = server;
      server = undefined;
      for (const sock of sockets) sock.resetAndDestroy();
      if (!s) return resolve();
      s.close(() => resolve());
    });
  await serve();
  return {
    get port() {
      return port;
    },
    get accepted() {
      return accepted;
    },
    startOutage: unlisten,
    endOutage: async () => {
      if (!server) await serve();
    },
    close: unlisten,
  };
}
