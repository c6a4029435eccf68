// Runs seeded simulations: npm run sim -- --seeds N --from S --nodes 3 [--verbose]
// Ends with the line "N passed, N failed"; each failing seed prints the command that replays it.
import { runSimulation } from "../src/testing/index.js";

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = Number(process.argv[i + 1]);
  if (!Number.isInteger(v) || v < 0) {
    console.error(`--${name} needs a non-negative integer`);
    process.exit(2);
  }
  return v;
}

const seeds = arg("seeds", 100);
const from = arg("from", Math.floor(Math.random() * 1_000_000));
const nodes = arg("nodes", 3);
const verbose = process.argv.includes("--verbose");
console.log(`simulating seeds ${from}..${from + seeds - 1} on ${nodes} nodes`);
let passed = 0;
let failed = 0;
const started = Date.now();
const sum = { proposals: 0, resolved: 0, reads: 0, readsServed: 0, leaseReads: 0, leaseReadsServed: 0, snapshots: 0, restores: 0, sessionRuns: 0, sessionsExpired: 0 };
const linearizability = { valid: 0, invalid: 0, unknown: 0, unchecked: 0 };
for (let seed = from; seed < from + seeds; seed++) {
  const result = await runSimulation({ seed, nodes, ...(verbose ? { trace: (l: string) => console.log(l) } : {}) });
  const s = result.stats;
  for (const key of ["proposals", "resolved", "reads", "readsServed", "leaseReads", "leaseReadsServed", "snapshots", "restores", "sessionsExpired"] as const) sum[key] += s[key];
  if (result.knobs.sessions) sum.sessionRuns++;
  linearizability[s.linearizability]++;
  if (result.ok) passed++;
  else {
    failed++;
    console.log(`FAIL seed ${seed}: ${result.failure}`);
    console.log(`  replay: npm run sim -- --seeds 1 --from ${seed} --nodes ${nodes} --verbose`);
  }
}
console.log(
  `stats: ${sum.proposals} proposals, ${sum.resolved} resolved; ${sum.reads} reads, ${sum.readsServed} served;` +
    ` ${sum.leaseReads} lease reads, ${sum.leaseReadsServed} served; ${sum.sessionRuns} session runs, ${sum.sessionsExpired} sessions expired;` +
    ` linearizability ${linearizability.valid} valid, ${linearizability.invalid} invalid, ${linearizability.unknown} unknown, ${linearizability.unchecked} unchecked;` +
    ` ${sum.snapshots} snapshots taken, ${sum.restores} restored`,
);
console.log(`(${((Date.now() - started) / 1000).toFixed(1)} s)`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
