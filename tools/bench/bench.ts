// `npm run bench`: what a heartbeat costs, checked against targets. Figures come from deterministic
// runs (virtual time, and XS's compute meter), so they are the same on every machine; only the
// parser throughput line is wall-clock and is reported, not checked.
import { VirtualTime, createVirtualHost } from "../../hosts/virtual/host";
import { HttpConnection } from "../../modules/http/connection";
import { scenarios } from "../scenarios/index";
import { bundleScenarios } from "../xs/bundle";

const enc = new TextEncoder();
const size = (s: string) => enc.encode(s).length;
const results: { what: string; value: number; unit: string; max?: number }[] = [];
const report = (what: string, value: number, unit: string, max?: number) => results.push({ what, value: Math.round(value), unit, max });

// Wire cost in steady state (scripted API, ten virtual minutes, 22-character static token).
const steady = await scenarios["steady state for ten minutes"]();
const renewals = steady.requests.filter((r) => r.startsWith("PATCH /apis/coordination.k8s.io/"));
const pushes = steady.requests.filter((r) => r.startsWith("PATCH /api/v1/nodes/") && r.includes("/status "));
report("Lease renewal request (headers + body)", size(renewals[1]), "bytes", 400);
report("Lease renewal body", size(renewals[1].slice(renewals[1].indexOf("\r\n\r\n") + 4)), "bytes", 80);
report("status push request", size(pushes[0] ?? ""), "bytes", 3000);
const sent = steady.requests.slice(4).reduce((n, r) => n + size(r), 0); // after registration
report("bytes sent per minute after registration", sent / 10, "bytes/min", 2600);
report("renewals in ten minutes (10 s interval + jitter)", renewals.length, "", undefined);

// The core's work inside XS: the deterministic compute meter of the same scenarios.
{
  const xs = await bundleScenarios();
  try {
    const minute = await xs.run("boot, register, renew for a minute");
    const ten = await xs.run("steady state for ten minutes");
    const minuteRenewals = minute.reply.result!.renewals;
    const tenRenewals = ten.reply.result!.renewals;
    report("XS compute: boot + register + 1 min", minute.compute, "meter units");
    report("XS compute per steady-state renewal (incl. status checks)", (ten.compute - minute.compute) / (tenRenewals - minuteRenewals), "meter units", 60_000);
  } finally {
    xs.dispose();
  }
}

// HTTP parser throughput on a 1 MB chunked body in 1460-byte segments (wall clock, Node).
{
  const body = "x".repeat(4096);
  const chunkedBody = Array.from({ length: 256 }, () => `1000\r\n${body}\r\n`).join("") + "0\r\n\r\n";
  const time = new VirtualTime();
  const host = createVirtualHost({ time, handler: () => `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n${chunkedBody}`, chunkBytes: 1460 });
  const conn = new HttpConnection(host, { host: "192.0.2.1", port: 6443 }, { maxBody: 1024 });
  const t0 = performance.now();
  for (let i = 0; i < 5; i++) await conn.request({ method: "GET", path: "/" });
  const mbps = (5 * 1024 * 1024) / 1e6 / ((performance.now() - t0) / 1000);
  report("HTTP parser, chunked, 1 MB drained (Node, wall clock)", mbps, "MB/s");
}

let failed = 0;
for (const r of results) {
  const ok = r.max === undefined || r.value <= r.max;
  if (!ok) failed++;
  console.log(`${ok ? "ok  " : "FAIL"} ${r.what}: ${r.value} ${r.unit}${r.max !== undefined ? ` (target ≤ ${r.max})` : ""}`);
}
console.log(`${results.length - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
