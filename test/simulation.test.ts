import { describe, expect, it } from "vitest";
import { runSimulation } from "../src/testing/index.js";

// Seeded simulations: the first seed of each block comes from SIM_FROM (random by default,
// so CI explores new schedules) and is printed; a failure names the seed to replay with
// `npm run sim -- --seeds 1 --from SEED --nodes N --verbose`.
const from = Number(process.env.SIM_FROM ?? Math.floor(Math.random() * 1_000_000));
const blocks: { nodes: number; seeds: number; from: number }[] = [
  { nodes: 3, seeds: Number(process.env.SIM_SEEDS_3 ?? 320), from: Number(process.env.SIM_FROM_3 ?? from) },
  { nodes: 5, seeds: Number(process.env.SIM_SEEDS_5 ?? 200), from: Number(process.env.SIM_FROM_5 ?? from) },
];

describe.each(blocks)("simulated $nodes-node clusters under faults", ({ nodes, seeds, from }) => {
  it(`keeps every safety property and recovers on ${seeds} seeds from ${from}`, async () => {
    console.log(`simulation: ${seeds} seeds from ${from} on ${nodes} nodes`);
    const failures: string[] = [];
    let proposals = 0;
    let resolved = 0;
    for (let seed = from; seed < from + seeds; seed++) {
      const r = await runSimulation({ seed, nodes });
      proposals += r.stats.proposals;
      resolved += r.stats.resolved;
      if (!r.ok) failures.push(`seed ${seed}: ${r.failure}\n  replay: npm run sim -- --seeds 1 --from ${seed} --nodes ${nodes} --verbose`);
    }
    console.log(`simulation: ${nodes} nodes, ${proposals} proposals, ${resolved} resolved`);
    expect(failures).toEqual([]);
    // The workload must actually commit things, or the checks above checked nothing.
    expect(resolved).toBeGreaterThan(seeds * 20);
  }, 600_000);
});
