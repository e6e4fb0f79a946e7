// A fault proxy on 127.0.0.1 in front of the API server: bytes pass through untouched (TLS included)
// until a fault is injected. What it can do to the agent's connections, as networks and servers do:
//   refuse    every live connection reset, new ones refused (the listening socket closed) for a while
//   reset     every live connection reset, now
//   stall     connections (live and new) stop carrying anything, then are dropped: a dead path
//   blackhole nothing flows for a while, then everything resumes (TCP survives a short loss)
//   truncate  the next bytes from the API server are cut after a few, and the connection reset
//   drip      for a while, the API server's bytes arrive one at a time, every 10 ms
//   corrupt   one byte of the next bytes from the API server flipped (inside a TLS record)
// inject() resolves when the fault is over: after its time, or (truncate, corrupt) once it hit.
import { connect, createServer, type Server, type Socket } from "node:net";

export type FaultKind = "refuse" | "reset" | "stall" | "blackhole" | "truncate" | "drip" | "corrupt";

export interface Fault {
  kind: FaultKind;
  /** How long it lasts (refuse, stall, blackhole, drip). */
  ms?: number;
  /** truncate: bytes let through first. */
  bytes?: number;
}

export interface FaultProxy {
  readonly port: number;
  /** Connections accepted since it started. */
  readonly accepted: number;
  /** Injects a fault; resolves when it is over (the path is good again). */
  inject(fault: Fault): Promise<void>;
  /** Resets every live connection and refuses new ones until endOutage(). */
  startOutage(): Promise<void>;
  /** Accepts connections again (same port); resolves once listening. */
  endOutage(): Promise<void>;
  close(): Promise<void>;
}

interface Pipe {
  client: Socket;
  upstream: Socket;
  /** Bytes held while the path carries nothing (blackhole), per direction. */
  held: { up: Buffer[]; down: Buffer[] };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** at: where it listens (default 127.0.0.1, a free port; a LAN address puts it in a board's path). */
export async function startFaultProxy(target: { host: string; port: number }, at: { host?: string; port?: number } = {}): Promise<FaultProxy> {
  const pipes = new Set<Pipe>();
  let accepted = 0;
  let port = at.port ?? 0;
  let server: Server | undefined;
  // The faults in force, read by every pipe as bytes pass.
  let holding = false; // blackhole or stall
  let dripUntil = 0;
  let truncateAfter = -1;
  let corruptNext = false;
  let fired: (() => void) | undefined;

  const down = (p: Pipe, data: Buffer) => {
    if (holding) return void p.held.down.push(data);
    if (truncateAfter >= 0) {
      const keep = data.subarray(0, truncateAfter);
      truncateAfter = -1;
      fired?.();
      p.client.write(keep, () => p.client.resetAndDestroy());
      p.upstream.destroy();
      return;
    }
    if (corruptNext && data.length > 8) {
      corruptNext = false;
      const copy = Buffer.from(data);
      copy[Math.floor(copy.length / 2)] ^= 0x5a;
      data = copy;
      fired?.();
    }
    if (Date.now() < dripUntil) {
      p.upstream.pause();
      void (async () => {
        for (let i = 0; i < data.length && !p.client.destroyed; i++) {
          // Over when its time is: the rest goes at once (a big chunk dripped to its end would
          // stretch the fault past it, by 10 ms a byte).
          if (Date.now() >= dripUntil) {
            p.client.write(data.subarray(i));
            break;
          }
          p.client.write(data.subarray(i, i + 1));
          await sleep(10);
        }
        p.upstream.resume();
      })();
      return;
    }
    p.client.write(data);
  };

  const serve = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const s = createServer((client) => {
        accepted++;
        const upstream = connect({ host: target.host, port: target.port });
        const p: Pipe = { client, upstream, held: { up: [], down: [] } };
        pipes.add(p);
        for (const [a, b] of [[client, upstream], [upstream, client]]) {
          a.setNoDelay(true);
          a.on("error", () => {
            client.destroy();
            upstream.destroy();
          });
          a.on("close", () => {
            pipes.delete(p);
            b.destroy();
          });
        }
        client.on("data", (d: Buffer) => (holding ? p.held.up.push(d) : upstream.write(d)));
        upstream.on("data", (d: Buffer) => down(p, d));
        client.on("end", () => upstream.end());
        upstream.on("end", () => client.end());
      });
      s.once("error", reject);
      s.listen(port, at.host ?? "127.0.0.1", () => {
        port = (s.address() as { port: number }).port;
        server = s;
        resolve();
      });
    });
  const resetAll = () => {
    for (const p of [...pipes]) {
      p.client.resetAndDestroy();
      p.upstream.destroy();
    }
  };
  const unlisten = (): Promise<void> =>
    new Promise((resolve) => {
      const s = server;
      server = undefined;
      resetAll();
      if (!s) return resolve();
      s.close(() => resolve());
    });
  const listen = async () => {
    if (!server) await serve();
  };
  await serve();

  /** Until the armed fault hit a byte (or ms passed with none flowing). */
  function firedOr(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        fired = undefined;
        resolve();
      }, ms);
      fired = () => {
        fired = undefined;
        clearTimeout(timer);
        resolve();
      };
    });
  }

  async function inject(fault: Fault): Promise<void> {
    const ms = fault.ms ?? 1000;
    switch (fault.kind) {
      case "refuse":
        await unlisten();
        await sleep(ms);
        await listen();
        return;
      case "reset":
        resetAll();
        return;
      case "stall":
      case "blackhole": {
        holding = true;
        await sleep(ms);
        holding = false;
        if (fault.kind === "stall") return resetAll();
        for (const p of pipes) {
          for (const d of p.held.up.splice(0)) p.upstream.write(d);
          for (const d of p.held.down.splice(0)) down(p, d);
        }
        return;
      }
      case "truncate":
        truncateAfter = fault.bytes ?? 10;
        await firedOr(ms);
        truncateAfter = -1;
        return;
      case "drip":
        dripUntil = Date.now() + ms;
        await sleep(ms);
        return;
      case "corrupt":
        corruptNext = true;
        await firedOr(ms);
        corruptNext = false;
        return;
    }
  }

  return {
    get port() {
      return port;
    },
    get accepted() {
      return accepted;
    },
    inject,
    startOutage: unlisten,
    endOutage: listen,
    close: unlisten,
  };
}
