// The tests of docs/testing.md: the guide's Counter (examples/guides/testing.ts) under the
// simulator, and a real cluster's history through the linearizability checker.
import { describe, expect, it } from "vitest";
import { checkCluster, simulate } from "../examples/guides/testing.js";

describe("the Counter state machine", () => {
  it("keeps Raft's safety properties, and all nodes agree, on 20 seeded runs under faults", async () => {
    const from = Number(process.env.COUNTER_SEED ?? 1); // replay: COUNTER_SEED=<seed> npx vitest run ...
    expect(await simulate(from, 20)).toEqual([]);
  }, 120_000);

  it("serves a linearizable history while the leader is cut off and heals", async () => {
    const result = await checkCluster(7);
    expect(result.outcome === "invalid" ? result.message : result.outcome).toBe("valid");
  }, 60_000);
});
