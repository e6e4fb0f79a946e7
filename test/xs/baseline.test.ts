// The XS cost gate: the agent's deterministic figures inside the real XS engine (tools/bench/xs-figures.ts)
// against the committed baseline (bench/baseline.json). A figure more than 10 % over its baseline
// fails the run; a change that makes one grow on purpose updates the baseline in the same commit
// (`npm run bench:baseline`) and says why in the message.
import assert from "node:assert/strict";
import { BASELINE_FILE, compareToBaseline, readBaseline, xsFigures } from "../../tools/bench/xs-figures";

describe("XS cost against the committed baseline", function () {
  this.timeout(300_000);

  it("no figure grows more than 10 % over bench/baseline.json", async () => {
    const base = readBaseline();
    const now = await xsFigures();
    const { lines, grown, shrunk } = compareToBaseline(now, base.figures);
    console.log(`      XS figures (meter units, slots) against the baseline of ${base.date}:\n${lines.map((l) => `        ${l}`).join("\n")}`);
    if (shrunk.length) console.log(`      ${shrunk.join(", ")} fell more than 10 %: lock the gain in with npm run bench:baseline`);
    assert.deepEqual(grown, [], `over ${BASELINE_FILE}`);
  });

  it("the comparison fails a figure 11 % over its baseline and passes one 9 % over", () => {
    const base = { computePerRenewal: 1000 } as never;
    assert.equal(compareToBaseline({ computePerRenewal: 1110 } as never, base).grown.length, 1);
    assert.equal(compareToBaseline({ computePerRenewal: 1090 } as never, base).grown.length, 0);
    assert.equal(compareToBaseline({ computePerRenewal: 1000, computePerBoot: 5 } as never, base).grown.length, 1, "a figure without a baseline fails");
  });
});
