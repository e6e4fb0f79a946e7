// The soak (issue 13): one agent inside the real XS engine for 100,000 Lease renewals of virtual time,
// status pushes, Node watch events and served requests interleaved (tools/xs/soak.ts says how many of
// each fit the budget, and why not 100,000 of each). The live heap after GC must not grow and the
// agent's compute per renewal must stay flat. XS_SOAK=full runs 100,000 of each (10–15 min).
import assert from "node:assert/strict";
import { CI_SOAK, FULL_SOAK, SOAK_HEADER, SOAK_LIMITS, judgeSoak, pointOf, runaway, runSoak, signed, soakRow, type SoakLine, type SoakPoint } from "../../tools/xs/soak";

describe("the soak's judge", () => {
  /** The boot, then n checkpoints of 10,000 renewals: the spread a real run shows, no growth. */
  const spread = [0, 180, -120, 90, -60, 240, 30, -150, 120, 60];
  const flat = (n: number, slots = 42_000, compute = 65_000): SoakPoint[] => [
    { renewals: 3, slots: 26_000, bytes: 1_400_000, keys: 2540, agentPerRenewal: 300_000 },
    ...Array.from({ length: n }, (_, i) => ({ renewals: (i + 1) * 10_000, slots: slots + spread[i % 10], bytes: 2_230_000 + 40 * spread[i % 10], keys: 2543, agentPerRenewal: compute * (1 + [0, 0.002, -0.001, 0.001][i % 4]) })),
  ];

  it("passes a flat series (the spread of bounded tables, compute within a fraction of a percent)", () => {
    assert.deepEqual(judgeSoak(flat(10)).failures, []);
  });

  it("fails live slots that end over the tolerance, and says by how much", () => {
    const points = flat(10);
    points[10] = { ...points[10], slots: points[1].slots + SOAK_LIMITS.slots + 1 };
    const { failures, slotRise } = judgeSoak(points);
    assert.equal(slotRise, SOAK_LIMITS.slots + 1);
    assert.equal(failures.length, 1);
    assert.match(failures[0], /live slots after GC grew by 1001/);
  });

  it("fails a heap that rises at every checkpoint even when the total is under the tolerance (a trend)", () => {
    const points = flat(10).map((p, i) => (i === 0 ? p : { ...p, slots: 42_000 + 50 * i })); // +450 in all
    const { failures } = judgeSoak(points);
    assert.equal(failures.length, 1);
    assert.match(failures[0], /rose at every one of the 9 checkpoints/);
  });

  it("fails a leak of one slot a renewal over 100,000 renewals", () => {
    const points = flat(10).map((p, i) => (i === 0 ? p : { ...p, slots: 42_000 + p.renewals }));
    assert.equal(judgeSoak(points).failures.length, 2);
    assert.equal(runaway(points.slice(0, 3)), false, "10,000 slots over the warm-up: not yet a runaway");
    assert.equal(runaway(points.slice(0, 4)), true, "20,000 over: stop there");
  });

  it("fails live bytes that end over the tolerance with the slots flat (strings kept in an array)", () => {
    const points = flat(10);
    points[10] = { ...points[10], bytes: points[1].bytes + SOAK_LIMITS.bytes + 1 };
    const { failures, byteRise } = judgeSoak(points);
    assert.equal(byteRise, SOAK_LIMITS.bytes + 1);
    assert.equal(failures.length, 1);
    assert.match(failures[0], /live bytes after GC grew by 64\.0 KiB/);
    points[10] = { ...points[10], bytes: points[1].bytes + SOAK_LIMITS.bytes - 1 };
    assert.deepEqual(judgeSoak(points).failures, []);
  });

  it("fails live bytes that rise at every checkpoint, however little", () => {
    const points = flat(10).map((p, i) => (i === 0 ? p : { ...p, bytes: 2_230_000 + 1000 * i }));
    assert.match(judgeSoak(points).failures.join("\n"), /live bytes after GC rose at every one of the 9 checkpoints/);
  });

  it("fails property names interned after the warm-up beyond a few (XS never frees them)", () => {
    const points = flat(10);
    points[10] = { ...points[10], keys: points[1].keys + SOAK_LIMITS.keys };
    assert.deepEqual(judgeSoak(points).failures, []);
    points[10] = { ...points[10], keys: points[1].keys + SOAK_LIMITS.keys + 1 };
    assert.match(judgeSoak(points).failures.join("\n"), /XS interned 9 more property names/);
  });

  it("fails compute per renewal 6 % over the first chunk after the warm-up, passes 4 %", () => {
    const grown = (f: number) => {
      const points = flat(10);
      points[10] = { ...points[10], agentPerRenewal: points[2].agentPerRenewal * f };
      return judgeSoak(points).failures;
    };
    assert.match(grown(1.06).join("\n"), /agent compute per renewal went from .* 6\.0 %/);
    assert.deepEqual(grown(1.04), []);
  });

  it("compares compute with the chunk after the warm-up, not the warm-up chunk itself", () => {
    const points = flat(10);
    points[1] = { ...points[1], agentPerRenewal: 30_000 }; // the warm-up's own chunk: not a reference
    assert.deepEqual(judgeSoak(points).failures, []);
  });

  it("fails a warm-up that more than triples the booted heap, and stops the run there", () => {
    const points = flat(10);
    points[1] = { ...points[1], slots: 3 * points[0].slots + 1 };
    assert.match(judgeSoak(points.slice(0, 2)).failures.join("\n"), /the warm-up took the heap from 26000 live slots/);
    assert.equal(runaway(points.slice(0, 2)), true);
    assert.equal(runaway(flat(10)), false);
  });

  it("refuses to judge without the boot's and the warm-up's checkpoints", () => {
    assert.match(judgeSoak(flat(0)).failures[0], /needs the boot's and the warm-up's/);
  });
});

describe("the soak: one agent inside XS for 100,000 renewals", function () {
  // CI_SOAK: 3.3 min of CPU (one core: the engine's), 5–10 min of wall on a 2-core machine shared
  // with a load of 6 to 12; the ceiling leaves room for that. A leaking agent is stopped early
  // (runaway): its collections slow the run down far more than its meter shows.
  this.timeout(process.env.XS_SOAK === "full" ? 90 * 60_000 : 15 * 60_000);

  it("the live heap after GC does not grow and the compute per renewal stays flat", async () => {
    const plan = process.env.XS_SOAK === "full" ? FULL_SOAK : CI_SOAK;
    console.log(`      ${plan.renewals} renewals in ${plan.checkpoints} chunks (the first is the warm-up); a flip every ${plan.mix.flip}, an edit every ${plan.mix.edit}, a scrape every ${plan.mix.scrape} cycles of 10 s`);
    console.log(`      ${SOAK_HEADER}`);
    const seen: SoakLine[] = [];
    const { lines, stopped } = await runSoak(plan, (line) => {
      console.log(`      ${soakRow(line)}`);
      seen.push(line);
      return !runaway(seen.map(pointOf)); // a heap that far gone fails now, not at the timeout
    });
    const last = lines[lines.length - 1].counts;
    const verdict = judgeSoak(lines.map(pointOf));
    if (stopped) assert.fail(`stopped at ${last.renewals} renewals, the heap ran away:\n${verdict.failures.join("\n")}`);
    console.log(`      after the warm-up: live slots ${signed(verdict.slotRise)}, live bytes ${signed(verdict.byteRise / 1024, 1)} KiB, keys ${signed(verdict.keyRise)}, agent compute per renewal ${signed(verdict.computeChange * 100, 2)} %; ${(last.virtualMs / 86_400_000).toFixed(1)} virtual days`);
    assert.equal(last.renewals >= plan.renewals, true);
    // The work happened: every flip pushed status, every edit reached the Node watch, every scrape was served.
    const cycles = last.cycles;
    if (plan.mix.flip) assert.ok(last.pushes >= Math.floor(cycles / plan.mix.flip), `${last.pushes} status pushes for ${Math.floor(cycles / plan.mix.flip)} flips`);
    assert.ok(last.watchEvents >= last.edits, `${last.watchEvents} watch events for ${last.edits} edits`);
    if (plan.mix.scrape) assert.equal(last.scraped, last.served, "every request served was a 200 the scraper read");
    assert.deepEqual(verdict.failures, []);
  });
});
