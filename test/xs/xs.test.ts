// The core inside the real XS engine (XS 13.3 via @agoric/xsnap): the same scenarios as under Node,
// and the requests they produce must be identical, byte for byte. Also prints XS's deterministic
// compute meter per scenario, a noise-free cost figure for the core's work.
import assert from "node:assert/strict";
import { scenarios } from "../../tools/scenarios/index";
import { bundleScenarios, type XsBundle } from "../../tools/xs/bundle";

describe("the core inside the XS engine", function () {
  this.timeout(120_000);
  let xs: XsBundle;
  before(async () => {
    xs = await bundleScenarios();
  });
  after(() => xs.dispose());

  for (const name of Object.keys(scenarios)) {
    it(`${name}: same requests under XS and Node`, async () => {
      const node = await scenarios[name]();
      const run = await xs.run(name);
      assert.ok(run.reply.ok, run.reply.error);
      const result = run.reply.result!;
      assert.ok(node.requests.length > 5, "the scenario did something");
      assert.equal(result.requests.length, node.requests.length);
      for (let i = 0; i < node.requests.length; i++) assert.equal(result.requests[i], node.requests[i], `request ${i} differs`);
      assert.equal(result.wire.length, node.wire.length, "as many socket writes");
      for (let i = 0; i < node.wire.length; i++) assert.equal(result.wire[i], node.wire[i], `write ${i} differs (HTTP/2 frames and HPACK included)`);
      assert.equal(result.renewals, node.renewals);
      assert.equal(result.led, node.led);
      assert.deepEqual(result.served, node.served);
      const bytes = node.wire.reduce((n, hex) => n + hex.length / 2, 0);
      const agent = run.compute - (run.reply.serverCompute ?? 0);
      console.log(`      XS: ${node.requests.length} requests, ${bytes} bytes written, compute meter ${run.compute} (agent ${agent}, scripted server ${run.reply.serverCompute}), allocate ${run.allocate}`);
    });
  }
});
