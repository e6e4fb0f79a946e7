// Abuse of a kubelet API port, as a hostile or broken peer on the network would: slowloris (a TLS
// connection sending its request head a byte a second), headers far past the 8 KiB limit, a pile
// of TCP connections that never start TLS, and garbage where a ClientHello should be. The agent
// must go on renewing its Lease on time meanwhile. test/integration/abuse.test.ts runs it against
// the Node host; `npm run faults:abuse` against any agent (the simulator, a board):
//
//   npm run faults:abuse -- --kubeconfig FILE --node NAME --kubelet HOST:PORT [--seconds 30] [--idle 200]
import { randomBytes } from "node:crypto";
import { connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { fromKubeconfig, parseHostPort } from "../kube/connection";
import { Watchdog } from "../kube/watchdog";

export interface AbuseCounts {
  slowloris: number;
  oversized: number;
  idle: number;
  garbage: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Abuses host:port for ms; resolves with how many of each it made, every socket closed. */
export async function abuseKubeletApi(target: { host: string; port: number }, ms: number, idleConnections = 200): Promise<AbuseCounts> {
  const { host, port } = target;
  const sockets = new Set<Socket>();
  const keep = (s: Socket) => {
    sockets.add(s);
    s.on("error", () => undefined);
    s.on("close", () => sockets.delete(s));
    return s;
  };
  const until = Date.now() + ms;
  const counts: AbuseCounts = { slowloris: 0, oversized: 0, idle: 0, garbage: 0 };
  await Promise.all([
    (async () => {
      while (Date.now() < until) {
        counts.slowloris++;
        const s = keep(tlsConnect({ host, port, rejectUnauthorized: false }));
        s.once("secureConnect", () => {
          const head = "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ";
          let i = 0;
          const t = setInterval(() => (s.destroyed || Date.now() > until ? clearInterval(t) : s.write(head[i++ % head.length])), 1000);
        });
        await sleep(200);
      }
    })(),
    (async () => {
      while (Date.now() < until) {
        counts.oversized++;
        const s = keep(tlsConnect({ host, port, rejectUnauthorized: false }));
        s.once("secureConnect", () => s.write(`GET /pods HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(64 * 1024)}\r\n\r\n`));
        await sleep(300);
        s.destroy();
      }
    })(),
    (async () => {
      for (let i = 0; i < idleConnections; i++) {
        counts.idle++;
        keep(netConnect({ host, port }));
      }
    })(),
    (async () => {
      while (Date.now() < until) {
        counts.garbage++;
        const s = keep(netConnect({ host, port }));
        s.once("connect", () => s.end(randomBytes(1024)));
        await sleep(100);
      }
    })(),
  ]);
  for (const s of sockets) s.destroy();
  return counts;
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { kubeconfig: { type: "string" }, node: { type: "string" }, kubelet: { type: "string" }, seconds: { type: "string" }, idle: { type: "string" }, help: { type: "boolean", short: "h" } } });
  if (values.help || !values.kubeconfig || !values.node || !values.kubelet) {
    console.log("usage: npm run faults:abuse -- --kubeconfig FILE --node NAME --kubelet HOST:PORT [--seconds 30] [--idle 200]\n  abuses the node's kubelet API port while watching its Lease: renewals must stay on time (≤ 12 s apart) and Ready True");
    return values.help ? 0 : 2;
  }
  const target = parseHostPort(values.kubelet, "--kubelet");
  const seconds = Number(values.seconds ?? 30);
  const idle = Number(values.idle ?? 200);
  if (!(seconds > 0) || !(Number.isInteger(idle) && idle >= 0)) throw new Error(`--seconds must be > 0 and --idle a whole number, not "${values.seconds}", "${values.idle}"`);
  const dog = new Watchdog(fromKubeconfig(values.kubeconfig), values.node);
  console.log(`[abuse] ${target.host}:${target.port} for ${seconds} s (slowloris, oversized headers, ${idle} idle connections, garbage TLS); watching ${values.node}'s Lease`);
  const counts = await abuseKubeletApi(target, seconds * 1000, idle);
  // One more renewal interval: a renewal held up by the abuse shows as a gap reaching past its end.
  await sleep(11_000);
  dog.stop();
  const ok = dog.readyNotTrue.length === 0 && dog.renewTimes.length >= 2 && dog.worstGap <= 12_000;
  console.log(`[abuse] ${JSON.stringify(counts)}; ${dog.renewTimes.length} renewals seen, longest gap ${dog.worstGap} ms${dog.readyNotTrue.length ? `; Ready not True: ${dog.readyNotTrue.join(", ")}` : ""}`);
  console.log(ok ? "[abuse] passed: renewals on time and Ready True throughout" : "[abuse] FAILED: a renewal was late (over 12 s apart), too few were seen, or Ready left True");
  return ok ? 0 : 1;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().then(
    (code) => process.exit(code),
    (err) => {
      console.error(`[abuse] ${(err as Error).message}`);
      process.exit(2);
    },
  );
}
