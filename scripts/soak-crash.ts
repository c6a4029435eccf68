/**
 * The crash-safety soak: the harness of test/crash-safety.test.ts with many more kills.
 *
 *   npm run build && npx tsx scripts/soak-crash.ts          (60 kills, random seed)
 *   CRASH_SEED=1234 CRASH_KILLS=200 npx tsx scripts/soak-crash.ts
 *
 * Prints the seed first, every kill as it happens, and at the end what it checked. Exits
 * non-zero on a failure, whose message names the seed to replay.
 */
import { CrashSafetyError, runCrashSafety } from "../test/fixtures/crash-harness.js";

const MIN_KILLS = 50;
const seed = process.env.CRASH_SEED !== undefined ? Number(process.env.CRASH_SEED) : Math.floor(Math.random() * 2 ** 31);
const kills = process.env.CRASH_KILLS !== undefined ? Number(process.env.CRASH_KILLS) : 60;
if (!Number.isSafeInteger(seed) || !Number.isSafeInteger(kills) || kills < 1) {
  console.error(`CRASH_SEED must be an integer and CRASH_KILLS a positive integer (got ${process.env.CRASH_SEED}, ${process.env.CRASH_KILLS})`);
  process.exit(2);
}
if (kills < MIN_KILLS) console.log(`note: ${kills} kills is below the soak's usual minimum of ${MIN_KILLS}`);

const started = Date.now();
try {
  const report = await runCrashSafety({ seed, kills, log: (line) => console.log(line) });
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  console.log(
    [
      `crash soak passed in ${seconds} s (seed ${report.seed})`,
      `  kill events:            ${report.kills} (${report.killsOfAll} of all three nodes at once; ${report.processesKilled} processes killed)`,
      `  proposals:              ${report.proposed} proposed, ${report.acknowledged} acknowledged, ${report.lost} in flight on a killed node, rejected ${JSON.stringify(report.rejected)}`,
      `  snapshots:              ${report.snapshots.taken} taken (log compacted), ${report.snapshots.installed} installed from a leader, ${report.snapshots.reloaded} reloaded at start`,
      `  checked on all 3 nodes: every acknowledged proposal applied exactly once, at its acknowledged index;`,
      `                          no command applied twice; journals identical up to the barrier at index ${report.finalIndex}`,
      `                          (${report.commandsCompared} commands, ${report.unacknowledgedCommitted} of them committed without an acknowledgement)`,
    ].join("\n"),
  );
} catch (err) {
  console.error(err instanceof CrashSafetyError ? err.message : err);
  process.exitCode = 1;
}
