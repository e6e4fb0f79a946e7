// The fleet's figures: the Lease reconciler's lateness (what the fleet's p99 is made of), the fleet
// in virtual time, and the charts BENCHMARKS.md embeds.
import assert from "node:assert/strict";
import { rig } from "../../tools/scenarios/harness";
import { runVirtualFleet } from "../../tools/fleet/virtual";
import { barChart, lineChart } from "../../tools/bench/svg";
import { table } from "../../tools/util/table";
import { percentile } from "../../tools/util/stats";

describe("fleet figures", () => {
  it("lateness: -1 for the first renewal and the one after a failure, else due-to-answer time", async () => {
    const r = rig();
    const seen: number[] = [];
    const onRenewed = r.kubelet.lease.onRenewed;
    r.kubelet.lease.onRenewed = (recovered) => {
      onRenewed?.(recovered);
      seen.push(r.kubelet.lease.lastLatenessMs);
    };
    r.kubelet.start();
    await r.time.advance(35_000);
    assert.equal(seen[0], -1, "the first renewal was not due after another");
    assert.ok(seen.length >= 3);
    // The scripted API answers at once and virtual timers fire on time: no lateness at all.
    assert.deepEqual(seen.slice(1), seen.slice(1).map(() => 0));
    r.offline = true;
    await r.time.advance(15_000);
    r.offline = false;
    const before = seen.length;
    await r.time.until(() => seen.length > before, 10_000, "a renewal after the outage");
    assert.equal(seen[before], -1, "a renewal after a failure is a retry, not a scheduled one");
    await r.time.advance(25_000);
    assert.ok(seen.length > before + 1 && seen.slice(before + 1).every((ms) => ms === 0));
    await r.kubelet.stop();
  });

  it("twenty boards on one virtual clock and one scripted API renew every ~10 s and count their bytes", async () => {
    const s = await runVirtualFleet({ count: 20, minutes: 2 });
    assert.equal(s.notRenewing, 0);
    assert.ok(s.renewalsPerBoardPerMinute > 5 && s.renewalsPerBoardPerMinute < 7, `${s.renewalsPerBoardPerMinute}`);
    assert.ok(s.bytesPerAgentPerMinute.written > 500 && s.bytesPerAgentPerMinute.read > s.bytesPerAgentPerMinute.written, JSON.stringify(s.bytesPerAgentPerMinute));
    assert.equal(s.latenessMs.p99, 0);
  });

  it("percentiles are nearest-rank; tables and charts carry their figures", () => {
    assert.equal(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 50), 5);
    assert.equal(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 99), 10);
    assert.equal(percentile([], 99), 0);
    assert.match(table(["a", "bb"], [["1", "2"]]), /^\| a \| bb \|\n\|---\|----\|\n\| 1 \| 2  \|$/);
    const bars = barChart("wire", "B", [{ label: "h2", value: 741 }, { label: "pico", value: NaN }]);
    assert.match(bars, /741 B/);
    assert.match(bars, /failed/);
    const lines = lineChart("fleet", "boards", "ms", "", [{ name: "p99", points: [{ x: 10, y: 5 }, { x: 1000, y: 80 }] }], { y: 1000, label: "1 s" });
    assert.match(lines, /<polyline points="[\d., ]+"/);
    assert.match(lines, />1000</);
  });
});
