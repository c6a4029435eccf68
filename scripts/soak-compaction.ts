/**
 * The compaction soak (issue 5): millions of puts on a 3-node cluster of child processes
 * (scripts/soak/compaction-node.ts: KvStateMachine + LevelStorage with fsync + TcpTransport
 * on loopback), over a bounded key space so that the state stays bounded, with automatic
 * snapshots. It checks that log compaction keeps the log bounded and watches each node's
 * memory for growth that compaction should have prevented.
 *
 *   npm run soak:compaction                       (5,000,000 puts)
 *   npm run build && npx tsx scripts/soak-compaction.ts --puts 1000000
 *
 * The load runs inside the leader's process (puts proposed on the leader, `--concurrency`
 * in flight), so the soak's own process only samples and reports. Every `--sample-seconds`
 * it prints each node's RSS, durable log length and snapshot count. Each node measures its
 * log length at every write its storage makes (lastIndex - firstIndex + 1 of the durable
 * log), so the maximum reported is exact, not sampled. Memory is measured after a full GC
 * in each child when 10%, 25%, 50%, 75% and 99% of the puts are acknowledged (all under
 * load) and once the cluster is idle; the RSS growth checked is from the end of warm-up
 * (10%) to the end of the load (99%).
 *
 * Fails (exit 1) when the log grows past threshold + trailing + margin, a put fails, a node
 * stops, or the nodes' states differ at the end; warns when a node's RSS grows by more
 * than `--rss-growth-warn` percent. Stops by itself after `--max-seconds` (exit 3), and on
 * any exit kills every child and removes its temp directory.
 */
import { existsSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { loopbackPeers } from "../tools/ports.js";
import { installCleanup, makeTempDir, sleep, withTimeout } from "../tools/processes.js";
import { NodeProcess, ROOT, directorySize } from "./soak/compaction-cluster.js";
import type { LoadSpec, NodeSample } from "./soak/compaction-node.js";

const USAGE = `usage: tsx scripts/soak-compaction.ts [options]   (after npm run build)
  --puts N              puts to make (default 5000000)
  --keys N              size of the key space (default 100000)
  --value-bytes N       bytes per value (default 100)
  --threshold N         snapshotThreshold (default 50000)
  --trailing N          trailingEntries (default 5000)
  --margin N            entries allowed above threshold + trailing (default threshold / 5)
  --concurrency N       puts in flight (default 512)
  --sample-seconds S    sampling period (default 5)
  --max-seconds S       give up after this long (default 10800)
  --rss-growth-warn P   warn when RSS grows more than P percent after warm-up (default 20)
  --tick-ms N           tickMs (default 100)
  --no-sync             LevelStorage without fsync (not durable; for comparison only)
  --seed N              seed of the key choice (default random)`;

interface Options {
  readonly puts: number;
  readonly keys: number;
  readonly valueBytes: number;
  readonly threshold: number;
  readonly trailing: number;
  readonly margin: number;
  readonly concurrency: number;
  readonly sampleSeconds: number;
  readonly maxSeconds: number;
  readonly rssGrowthWarn: number;
  readonly tickMs: number;
  readonly sync: boolean;
  readonly seed: number;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      puts: { type: "string" },
      keys: { type: "string" },
      "value-bytes": { type: "string" },
      threshold: { type: "string" },
      trailing: { type: "string" },
      margin: { type: "string" },
      concurrency: { type: "string" },
      "sample-seconds": { type: "string" },
      "max-seconds": { type: "string" },
      "rss-growth-warn": { type: "string" },
      "tick-ms": { type: "string" },
      "no-sync": { type: "boolean" },
      seed: { type: "string" },
      help: { type: "boolean" },
    },
  });
  if (values.help === true) {
    console.log(USAGE);
    process.exit(0);
  }
  const num = (name: keyof typeof values, fallback: number, min: number, integer = true): number => {
    const text = values[name];
    if (text === undefined) return fallback;
    const n = Number(String(text).replace(/[_,]/g, ""));
    if (!Number.isFinite(n) || n < min || (integer && !Number.isSafeInteger(n))) {
      console.error(`--${name} must be ${integer ? "an integer" : "a number"} >= ${min} (got ${String(text)})\n${USAGE}`);
      process.exit(2);
    }
    return n;
  };
  const threshold = num("threshold", 50_000, 1);
  const valueBytes = num("value-bytes", 100, 16);
  return {
    puts: num("puts", 5_000_000, 1),
    keys: num("keys", 100_000, 1),
    valueBytes,
    threshold,
    trailing: num("trailing", 5_000, 0),
    margin: num("margin", Math.ceil(threshold / 5), 0),
    concurrency: num("concurrency", 512, 1),
    sampleSeconds: num("sample-seconds", 5, 0.2, false),
    maxSeconds: num("max-seconds", 10_800, 1, false),
    rssGrowthWarn: num("rss-growth-warn", 20, 0, false),
    tickMs: num("tick-ms", 100, 1),
    sync: values["no-sync"] !== true,
    seed: num("seed", Math.floor(Math.random() * 2 ** 31), 0),
  };
}

/** What the soak learned about one node. */
interface NodeFigures {
  last?: NodeSample;
  /** After a full GC in the child, at each milestone (MILESTONES) and once the cluster is idle. */
  readonly memory: Map<string, NodeSample>;
  peakRss: number;
  maxLoopDelayMs: number;
  maxDiskBytes: number;
  lastDiskBytes: number;
  maxSnapFiles: number;
}

const IDS = ["n1", "n2", "n3"] as const;
const MB = 1024 * 1024;
const fmt = (n: number): string => Math.round(n).toLocaleString("en-US");
const mb = (bytes: number): string => `${(bytes / MB).toFixed(1)} MB`;

const options = parseOptions(process.argv.slice(2));
const bound = options.threshold + options.trailing + options.margin;
/** Memory is measured (after a full GC) when these fractions of the puts are acknowledged; the first ends warm-up, the last is the end of the load. */
const MILESTONES = [0.1, 0.25, 0.5, 0.75, 0.99] as const;
const WARM = "10%";
const END = "99%";
const milestoneAt = Object.fromEntries(MILESTONES.map((m) => [`${Math.round(m * 100)}%`, Math.max(1, Math.ceil(options.puts * m))]));
const figures = new Map<string, NodeFigures>(IDS.map((id) => [id, { memory: new Map(), peakRss: 0, maxLoopDelayMs: 0, maxDiskBytes: 0, lastDiskBytes: 0, maxSnapFiles: 0 }]));
const problems: string[] = [];
const warnings: string[] = [];
const started = Date.now();
let loadNode: string | undefined;
let loadStarted = 0;
let loadDone: { acked: number; failed: Record<string, number>; ms: number } | undefined;
let firstTerm: number | undefined;
let digests: { id: string; sha256: string; keys: number; appliedIndex: number }[] = [];
let summaryPrinted = false;

let failNow: (reason: string) => void = () => {};
const failed = new Promise<never>((_, reject) => (failNow = (reason) => reject(new Error(reason))));
failed.catch(() => {});
/** `promise`, unless the run fails first (a node stopped, the time bound). */
const orFail = <T>(promise: Promise<T>): Promise<T> => Promise.race([promise, failed]);

// Ctrl-C: print what was measured so far; the cleanup installed below then kills the children.
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.once(signal, () => printSummary(`interrupted by ${signal}`));
const cleanup = installCleanup("soak:compaction");
cleanup.setBoundMs(options.maxSeconds * 1000 + 120_000); // a backstop, should the orderly stop below hang

if (!existsSync(join(ROOT, "dist", "index.js"))) {
  console.error('soak:compaction needs the built package: run `npm run build` first (the children import "raftkit")');
  process.exit(2);
}

const dir = makeTempDir("raftkit-soak-compaction-");
const { peers } = await loopbackPeers(IDS);
console.log(
  `compaction soak: puts=${fmt(options.puts)} keys=${fmt(options.keys)} valueBytes=${options.valueBytes} ` +
    `snapshotThreshold=${fmt(options.threshold)} trailingEntries=${fmt(options.trailing)} margin=${fmt(options.margin)} ` +
    `concurrency=${options.concurrency} tickMs=${options.tickMs} sync=${options.sync} seed=${options.seed} maxSeconds=${options.maxSeconds}`,
);
console.log(`3 child processes (LevelStorage + TcpTransport on ${Object.values(peers).join(", ")}), data in ${dir}`);

let stopping = false;
const onLine = (node: NodeProcess, line: Record<string, unknown>): void => {
  if (typeof line.milestone === "string") {
    void measureAll(line.milestone);
  } else if (line.loadDone === true && !stopping) {
    // (Once stopping, the puts still in flight fail with STOPPED: not the load's failures.)
    loadDone = { acked: line.acked as number, failed: line.failed as Record<string, number>, ms: line.ms as number };
  } else if (typeof line.fatal === "string") {
    problems.push(line.fatal);
    failNow(`a node failed: ${line.fatal}`);
  } else if ("exited" in line && !stopping) {
    problems.push(`${node.id} exited unexpectedly (${String(line.exited)})`);
    failNow(`${node.id} exited unexpectedly`);
  }
};
const nodes = IDS.map(
  (id) =>
    new NodeProcess(
      {
        id,
        location: join(dir, id),
        peers,
        tickMs: options.tickMs,
        electionTicks: 10,
        snapshotThreshold: options.threshold,
        trailingEntries: options.trailing,
        sync: options.sync,
        requestTimeoutMs: 30_000,
      },
      onLine,
    ),
);
const timeBound = setTimeout(() => failNow(`still running after --max-seconds ${options.maxSeconds}`), options.maxSeconds * 1000);
timeBound.unref();

/** A full-GC sample of every node, kept as the figures of `phase`. */
async function measureAll(phase: string): Promise<void> {
  const samples = await Promise.all(nodes.map((n) => n.sample(30_000, true).catch(() => undefined)));
  nodes.forEach((n, k) => {
    const s = samples[k];
    if (s === undefined) warnings.push(`${n.id} did not answer the ${phase} memory sample`);
    else figures.get(n.id)!.memory.set(phase, s);
  });
  const line = nodes.map((n) => {
    const s = figures.get(n.id)!.memory.get(phase);
    return s === undefined ? `${n.id} -` : `${n.id} rss ${mb(s.rss)} heap ${mb(s.heapUsed)}/${mb(s.heapTotal)} external ${mb(s.external)}`;
  });
  const what = phase === "idle" ? "idle" : `${phase} of the puts${phase === WARM ? ", end of warm-up" : phase === END ? ", end of the load" : ""}`;
  console.log(`[${elapsed()}] memory after GC (${what}): ${line.join(" | ")}`);
}

function elapsed(): string {
  return `${((Date.now() - started) / 1000).toFixed(0).padStart(5)}s`;
}

/** One sampling round: every node's figures, and the storage directories' sizes. */
async function sampleAll(timeoutMs: number): Promise<(NodeSample | undefined)[]> {
  const samples = await Promise.all(nodes.map((n) => n.sample(timeoutMs).catch(() => undefined)));
  await Promise.all(
    nodes.map(async (n, k) => {
      const f = figures.get(n.id)!;
      const s = samples[k];
      if (s !== undefined) {
        f.last = s;
        f.peakRss = Math.max(f.peakRss, s.rss);
        f.maxLoopDelayMs = Math.max(f.maxLoopDelayMs, s.loopDelayMaxMs);
      }
      const disk = await directorySize(n.config.location);
      f.lastDiskBytes = disk.bytes;
      f.maxDiskBytes = Math.max(f.maxDiskBytes, disk.bytes);
      f.maxSnapFiles = Math.max(f.maxSnapFiles, disk.snapFiles);
    }),
  );
  return samples;
}

/** Samples every `--sample-seconds` until the load is done, printing one line per round. */
async function sampler(): Promise<void> {
  let previous = { acked: 0, at: Date.now() };
  while (!stopping && loadDone === undefined) {
    await sleep(options.sampleSeconds * 1000);
    if (stopping) return;
    const samples = await sampleAll(Math.max(10_000, options.sampleSeconds * 2000));
    const acked = samples[nodes.findIndex((n) => n.id === loadNode)]?.acked ?? previous.acked;
    const now = Date.now();
    const rate = ((acked - previous.acked) * 1000) / Math.max(1, now - previous.at);
    previous = { acked, at: now };
    const parts = nodes.map((n, k) => {
      const s = samples[k];
      if (s === undefined) return `${n.id} (no answer)`;
      const f = figures.get(n.id)!;
      return `${n.id} ${s.role === "leader" ? "L" : s.role[0]!.toUpperCase()}${s.term} rss ${(s.rss / MB).toFixed(0)}M log ${fmt(s.logLength)} snaps ${s.snapshotsTaken}+${s.snapshotsInstalled} disk ${(f.lastDiskBytes / MB).toFixed(0)}M lag ${s.loopDelayMaxMs}ms`;
    });
    console.log(`[${elapsed()}] acked ${fmt(acked)}/${fmt(options.puts)} (${fmt(rate)}/s) | ${parts.join(" | ")}`);
  }
}

async function waitFor(condition: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await orFail(condition()))) {
    if (Date.now() > deadline) throw new Error(`${what} (waited ${timeoutMs} ms)`);
    await orFail(sleep(250));
  }
}

async function run(): Promise<void> {
  await orFail(Promise.all(nodes.map((n) => n.start(60_000))));
  // A leader every node knows.
  let leader = null as string | null;
  await waitFor(
    async () => {
      const samples = await sampleAll(5_000);
      leader = samples[0]?.leader ?? null;
      return leader !== null && samples.every((s) => s !== undefined && s.leader === leader && s.role !== "candidate");
    },
    30_000,
    "no leader elected",
  );
  loadNode = leader!;
  firstTerm = figures.get(loadNode)!.last!.term;
  console.log(`[${elapsed()}] leader ${loadNode} (term ${firstTerm}); proposing ${fmt(options.puts)} puts on it, ${options.concurrency} in flight`);
  const spec: LoadSpec = {
    puts: options.puts,
    concurrency: options.concurrency,
    keys: options.keys,
    valueBytes: options.valueBytes,
    seed: options.seed,
    milestones: milestoneAt,
  };
  loadStarted = Date.now();
  nodes.find((n) => n.id === loadNode)!.load(spec);
  await orFail(sampler());
  await waitFor(async () => loadDone !== undefined, 60_000, "the load did not finish");
  console.log(`[${elapsed()}] load done: ${fmt(loadDone!.acked)} acknowledged in ${(loadDone!.ms / 1000).toFixed(1)} s`);

  // Let every node apply everything, then compare their states.
  await waitFor(
    async () => {
      const samples = await sampleAll(10_000);
      if (samples.some((s) => s === undefined)) return false;
      const commit = Math.max(...samples.map((s) => s!.commitIndex));
      return samples.every((s) => s!.appliedIndex === commit && s!.lastIndex === commit);
    },
    120_000,
    "the nodes did not all apply the whole log",
  );
  await orFail(measureAll("idle"));
  digests = await orFail(Promise.all(nodes.map(async (n) => ({ id: n.id, ...(await n.digest(60_000)) }))));
}

let exitCode = 0;
try {
  await run();
} catch (err) {
  const message = err instanceof Error ? err.message : String(err);
  if (!problems.some((p) => message.includes(p))) problems.push(message);
  exitCode = message.includes("--max-seconds") ? 3 : 1;
}
stopping = true;
await withTimeout(Promise.all(nodes.map((n) => n.stop())), 20_000, "the children did not stop").catch((err: unknown) =>
  warnings.push(err instanceof Error ? err.message : String(err)),
);
const tails = problems.length > 0 ? nodes.flatMap((n) => n.stderrTail).slice(-20) : [];
await rm(dir, { recursive: true, force: true });
printSummary(exitCode === 3 ? "stopped by --max-seconds (partial figures)" : undefined);
if (tails.length > 0) console.log(["children's stderr (last lines):", ...tails.map((l) => `  ${l}`)].join("\n"));
process.exit(problems.length > 0 ? exitCode || 1 : 0);

/** The final report; also what was measured so far when interrupted. Synchronous, so that it can run in a signal handler. */
function printSummary(note?: string): void {
  if (summaryPrinted) return;
  summaryPrinted = true;
  const out: string[] = [];
  const seconds = (Date.now() - started) / 1000;
  out.push("", `compaction soak ${note !== undefined ? `— ${note}` : "finished"} after ${seconds.toFixed(1)} s`);

  const leaderLast = loadNode !== undefined ? figures.get(loadNode)!.last : undefined;
  const acked = loadDone?.acked ?? leaderLast?.acked ?? 0;
  const loadSeconds = loadDone !== undefined ? loadDone.ms / 1000 : loadStarted > 0 ? (Date.now() - loadStarted) / 1000 : 0;
  out.push(
    `  throughput:       ${fmt(loadSeconds > 0 ? acked / loadSeconds : 0)} puts/s (${fmt(acked)} of ${fmt(options.puts)} puts acknowledged in ${loadSeconds.toFixed(1)} s, proposed on the leader ${loadNode ?? "-"}, ${options.concurrency} in flight, fsync ${options.sync ? "on" : "off"})`,
  );
  const failures = loadDone?.failed ?? {};
  const failedCount = Object.values(failures).reduce((a, b) => a + b, 0) + (loadDone === undefined ? (leaderLast?.failed ?? 0) : 0);
  if (failedCount > 0) problems.push(`${fmt(failedCount)} puts failed ${JSON.stringify(failures)}`);

  // The log bound: the exact maximum each node's storage held.
  const maxLog = IDS.map((id) => figures.get(id)!.last?.maxLogLength ?? 0);
  const worst = Math.max(...maxLog);
  const within = worst <= bound;
  out.push(
    `  max log length:   ${IDS.map((id, k) => `${id} ${fmt(maxLog[k]!)}`).join(", ")}; bound ${fmt(bound)} ` +
      `(threshold ${fmt(options.threshold)} + trailing ${fmt(options.trailing)} + margin ${fmt(options.margin)}): ${within ? "OK" : "EXCEEDED"}; ` +
      `worst overshoot ${fmt(Math.max(0, worst - options.threshold - options.trailing))} entries past threshold + trailing (entries appended while a snapshot is serialised and stored)`,
  );
  if (!within) problems.push(`the log reached ${fmt(worst)} entries, above the bound of ${fmt(bound)}`);
  out.push(`  log length now:   ${IDS.map((id) => `${id} ${fmt(figures.get(id)!.last?.logLength ?? 0)} (first index ${fmt(figures.get(id)!.last?.firstIndex ?? 0)})`).join(", ")}`);

  const snaps = IDS.map((id) => figures.get(id)!.last);
  out.push(`  snapshots:        ${IDS.map((id, k) => `${id} ${snaps[k]?.snapshotsTaken ?? 0} taken, ${snaps[k]?.snapshotsInstalled ?? 0} installed`).join("; ")} (about ${fmt(acked / options.threshold)} expected each)`);
  out.push(
    `  snapshot data:    ${IDS.map((id, k) => `${id} ${mb(snaps[k]?.snapshotBytes ?? 0)} (slowest ${fmt(snaps[k]?.maxSnapshotMs ?? 0)} ms)`).join(", ")}; keys ${IDS.map((id, k) => fmt(snaps[k]?.keys ?? 0)).join("/")}`,
  );
  const disk = IDS.map((id) => figures.get(id)!);
  out.push(`  storage dir:      ${IDS.map((id, k) => `${id} max ${mb(disk[k]!.maxDiskBytes)}, last ${mb(disk[k]!.lastDiskBytes)}`).join("; ")}; at most ${Math.max(...disk.map((d) => d.maxSnapFiles))} snapshot file(s) at a time`);

  // Memory, after a full GC in the child: the RSS growth checked is from warm-up to the end of the load (both under load).
  const phases = [...Object.keys(milestoneAt), "idle"];
  out.push(`  memory after a full GC in each child, MB, at these shares of the puts acknowledged (RSS growth: ${WARM} -> ${END}):`);
  out.push(`    ${"".padEnd(18)}${phases.map((p) => p.padStart(8)).join("")}   peak RSS (sampled, no GC)`);
  for (const id of IDS) {
    const f = figures.get(id)!;
    const row = (what: string, pick: (s: NodeSample) => number): string =>
      `    ${`${id} ${what}`.padEnd(18)}${phases.map((p) => { const s = f.memory.get(p); return (s === undefined ? "-" : (pick(s) / MB).toFixed(1)).padStart(8); }).join("")}`;
    const warm = f.memory.get(WARM);
    const end = f.memory.get(END);
    let growth = "";
    if (warm !== undefined && end !== undefined) {
      const pct = ((end.rss - warm.rss) / warm.rss) * 100;
      growth = `   growth ${pct >= 0 ? "+" : ""}${pct.toFixed(1)}%`;
      if (pct > options.rssGrowthWarn) warnings.push(`${id}: RSS grew ${pct.toFixed(1)}% from warm-up to the end of the load (above ${options.rssGrowthWarn}%)`);
    }
    out.push(`${row("RSS", (s) => s.rss)}   ${mb(f.peakRss)}${growth}`);
    out.push(row("heap used", (s) => s.heapUsed));
    out.push(row("heap total", (s) => s.heapTotal));
    out.push(row("external", (s) => s.external));
  }
  if (milestoneAt[WARM]! < options.keys) out.push(`    (note: warm-up ends before the key space is full: ${fmt(milestoneAt[WARM]!)} puts < ${fmt(options.keys)} keys, so the state still grows after it)`);

  const lastTerms = IDS.map((id) => figures.get(id)!.last?.term ?? 0);
  const lastTerm = Math.max(...lastTerms);
  out.push(`  leadership:       term ${firstTerm ?? "-"} at the start of the load, ${lastTerm} at the end${firstTerm !== undefined && lastTerm !== firstTerm ? " (ELECTIONS during the load)" : ""}; max event-loop delay ${IDS.map((id) => `${id} ${figures.get(id)!.maxLoopDelayMs} ms`).join(", ")}`);
  if (firstTerm !== undefined && lastTerm !== firstTerm) warnings.push(`the term changed during the load (${firstTerm} -> ${lastTerm}): elections under a steady load`);

  if (digests.length === IDS.length) {
    const same = digests.every((d) => d.sha256 === digests[0]!.sha256 && d.appliedIndex === digests[0]!.appliedIndex);
    out.push(`  final state:      ${same ? "identical on all 3 nodes" : "DIFFERS"}: ${digests.map((d) => `${d.id} ${fmt(d.keys)} keys at index ${fmt(d.appliedIndex)} sha256 ${d.sha256.slice(0, 12)}`).join("; ")}`);
    if (!same) problems.push("the nodes' final states differ");
  }
  for (const w of warnings) out.push(`  WARNING: ${w}`);
  for (const p of problems) out.push(`  FAILED: ${p}`);
  const verdict = problems.length > 0 ? "FAIL" : note !== undefined ? "INCOMPLETE (interrupted; figures are partial)" : "PASS";
  out.push(`  result: ${verdict}${warnings.length > 0 ? ` with ${warnings.length} warning(s)` : ""}`);
  console.log(out.join("\n"));
}
