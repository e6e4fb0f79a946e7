// The whole agent against a hostile API server: every answer the scripted API gives — responses,
// watch heads and event lines — is mutated at random (characters changed, inserted, deleted, the
// rest cut off) or replaced by noise, over HTTP/1.1 (the bytes reach the agent's parser as they are)
// and HTTP/2 (the scripted server frames what survives). Whatever it receives: no exception escapes
// (none uncaught, no unhandled rejection), the agent keeps running, and once the API server answers
// properly again it renews its Lease within the backoff's reach.
import assert from "node:assert/strict";
import fc from "fast-check";
import { FakeApi } from "../../hosts/virtual/scripted-api";
import { VirtualTime, createVirtualHost, type ScriptedAnswer } from "../../hosts/virtual/host";
import { Kubelet } from "../../modules/kubelet/kubelet";

const RUNS = Number(process.env.FUZZ_AGENT_RUNS ?? 1000);
const NOISE = "\r\n\0{}[]\":,HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\nTransfer-Encoding: chunked\r\n\r\nffffffff\r\n\u00ff\u2603";

type Edit = [at: number, op: number, value: number];

function mutate(text: string, edits: Edit[]): string {
  let s = text;
  for (const [at, op, value] of edits) {
    const i = s.length ? at % s.length : 0;
    const ch = NOISE[value % NOISE.length];
    if (op === 0) s = s.slice(0, i) + ch + s.slice(i + 1);
    else if (op === 1) s = s.slice(0, i) + ch + s.slice(i);
    else if (op === 2) s = s.slice(0, i) + s.slice(i + 1);
    else if (op === 3) s = s.slice(0, i);
    else s = s.slice(0, i) + NOISE.slice(value % 20) + s.slice(i);
  }
  return s;
}

describe("the agent against a hostile API server (fast-check)", function () {
  this.timeout(600_000);
  const escaped: unknown[] = [];
  const onRejection = (err: unknown) => escaped.push(err);
  before(() => process.on("unhandledRejection", onRejection));
  after(() => process.off("unhandledRejection", onRejection));

  for (const http of ["http/1.1", "h2"] as const) {
    it(`${RUNS} runs over ${http}: answers mutated for 2 minutes, then good ones: nothing escapes, the Lease is renewed again`, async () => {
      await fc.assert(
        fc.asyncProperty(fc.integer({ min: 1, max: 1000 }), fc.array(fc.tuple(fc.nat(), fc.nat({ max: 4 }), fc.nat()), { minLength: 1, maxLength: 5 }), fc.double({ min: 0.05, max: 1, noNaN: true }), async (seed, edits, rate) => {
          const time = new VirtualTime();
          const api = new FakeApi(time);
          let hostile = true;
          let n = 0;
          const maybe = (text: string) => (hostile && ((n++ * 7919 + seed) % 1000) / 1000 < rate ? mutate(text, edits.map(([a, o, v]) => [a + n, o, v + n] as Edit)) : text);
          const handler = (req: Parameters<FakeApi["handle"]>[0]): ScriptedAnswer => {
            const answer = api.handle(req);
            if (typeof answer === "string") return maybe(answer);
            if ("stream" in answer) {
              const { head, open } = answer.stream;
              return { stream: { head: maybe(head), open: (write, end) => open((t) => write(maybe(t)), end) } };
            }
            return answer;
          };
          const host = createVirtualHost({ time, handler, http2: http === "h2", seed, record: false, log: () => undefined });
          const kubelet = new Kubelet({ nodeName: "board-1", server: { host: "192.0.2.1", port: 6443 }, token: "t0ken", ledFps: 0, http, kubeletApi: { certificate: new Uint8Array([0x30, 0]), key: new Uint8Array([0x30, 0]), port: 10250 } }, host);
          kubelet.start();
          await time.advance(120_000);
          hostile = false;
          const renewals = kubelet.lease.renewals;
          await time.advance(30_000);
          const renewedAgain = kubelet.lease.renewals > renewals;
          await kubelet.stop();
          assert.ok(n >= 5, `${n} answers, some of them mutated`);
          assert.equal(escaped.length, 0, `escaped: ${escaped.map(String).join("; ")}`);
          assert.ok(renewedAgain, "renewing again once the answers are good");
          assert.notEqual(kubelet.phase, "booting");
        }),
        { numRuns: RUNS },
      );
    });
  }
});
