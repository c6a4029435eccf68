import { describe, expect, it } from "vitest";
import { runSimulation } from "../src/testing/index.js";

// Snapshots under faults with a state machine whose snapshot() answers with a promise a
// few virtual milliseconds later (the state captured at the call): the node goes on
// applying, crashing and installing the leader's snapshots while its own is produced.
// Compaction after every 10 entries with no trailing entries sends lagging followers
// snapshots rather than log entries.
describe("asynchronous snapshots under faults", () => {
  it.each([3, 5])("keep every safety property on %i nodes", async (nodes) => {
    const failures: string[] = [];
    let snapshots = 0;
    let restores = 0;
    for (let seed = 1; seed <= 20; seed++) {
      const r = await runSimulation({ seed, nodes, knobs: { asyncSnapshots: true, snapshotThreshold: 10, trailingEntries: 0, snapshotChunkBytes: 1024 } });
      snapshots += r.stats.snapshots;
      restores += r.stats.restores;
      if (!r.ok) failures.push(`seed ${seed}: ${r.failure}`);
    }
    expect(failures).toEqual([]);
    expect(snapshots).toBeGreaterThan(100);
    expect(restores).toBeGreaterThan(10);
  }, 120_000);
});
