/**
 * Crash safety with real processes (issue 3): a 3-node cluster of child processes on
 * LevelStorage and TcpTransport, kill -9'd at random moments and restarted, must keep every
 * acknowledged proposal exactly once and agree on what it applied. The harness is
 * test/fixtures/crash-harness.ts; scripts/soak-crash.ts runs the long version.
 *
 * CI runs a few kills. CRASH_KILLS=<n> runs more; CRASH_SEED=<seed> replays a schedule.
 * Needs `npm run build` (npm test does it): the children import "raftkit" from ./dist.
 */
import { describe, expect, it } from "vitest";
import { runCrashSafety } from "./fixtures/crash-harness.js";

const seed = process.env.CRASH_SEED !== undefined ? Number(process.env.CRASH_SEED) : Math.floor(Math.random() * 2 ** 31);
const kills = process.env.CRASH_KILLS !== undefined ? Number(process.env.CRASH_KILLS) : 4;

describe("crash safety with real processes", () => {
  it(`keeps every acknowledged proposal through ${kills} kill -9 events (seed ${seed})`, async () => {
    if (!Number.isSafeInteger(seed) || !Number.isSafeInteger(kills) || kills < 1) {
      throw new RangeError(`CRASH_SEED must be an integer and CRASH_KILLS a positive integer (got ${process.env.CRASH_SEED}, ${process.env.CRASH_KILLS})`);
    }
    // Printed first, so that a run that hangs or dies can still be replayed.
    console.log(`crash-safety: seed ${seed}, ${kills} kills (replay: CRASH_SEED=${seed} CRASH_KILLS=${kills})`);
    const report = await runCrashSafety({ seed, kills });
    console.log(`crash-safety: ${JSON.stringify(report)}`);
    expect(report.kills).toBe(kills);
    expect(report.acknowledged).toBeGreaterThan(0);
    // Every node compacted at least once, so the kills could land in snapshot steps too.
    expect(report.snapshots.taken).toBeGreaterThan(0);
  }, 60_000 + kills * 30_000);
});
