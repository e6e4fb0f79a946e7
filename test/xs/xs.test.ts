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
      assert.equal(result.renewals, node.renewals);
      assert.equal(result.led, node.led);
      const bytes = node.requests.reduce((n, r) => n + new TextEncoder().encode(r).length, 0);
      console.log(`      XS: ${node.requests.length} requests, ${bytes} bytes, compute meter ${run.compute}, allocate ${run.allocate}`);
    });
  }
});
