/**
 * Memory under sustained load (issue 9): the RSS of each raftkit-kv node under 256
 * concurrent writers, over a long run, to check that it stays bounded and does not grow.
 *
 *   npm run -s build && npx tsx bench/rss.ts [--minutes 10] [--clients 256] [--keys 100000]
 *                                            [--value-bytes 100] [--sample-seconds 10]
 *                                            [--node-defaults]
 *
 * - 3 nodes of the example KV server (`dist/examples/kv-server/main.js`, LevelStorage with
 *   fsync on, --fast-mode, the server's default snapshot threshold) on fresh temp data dirs,
 *   run with the deployment guide's process settings (DEPLOYED_ENV: malloc arenas, V8 heap
 *   bound) unless `--node-defaults`.
 * - Closed-loop keep-alive clients (one connection each) PUT 100-byte values to the leader
 *   over a bounded key space (100,000 keys by default), so the state machine's size is
 *   bounded and the log is compacted by the server's own snapshots. After a 307 or 503 or
 *   a failed request, the client looks the leader up again.
 * - Every `--sample-seconds`, each node's VmRSS from /proc/PID/status (and its JS heap and
 *   snapshot count from /metrics). The table: RSS after the warm-up (1 min, or half the run
 *   when shorter), at the end, the maximum, the growth between the two, and the throughput.
 * Out of CI (it runs for minutes). Linux only (/proc). Progress goes to stderr, results to
 * stdout. Every process it starts is killed and the temp dir removed on exit, error or
 * Ctrl-C; it gives up after the run's length plus 3 minutes.
 */
import { readFileSync } from "node:fs";
import { Agent } from "node:http";
import { loadavg } from "node:os";
import { parseArgs } from "node:util";
import { installCleanup, makeTempDir, runMain } from "../tools/processes.js";
import { send } from "./lib/http-load.js";
import { KvCluster, type KvNode, promSum } from "./lib/kv-cluster.js";
import { machineFacts } from "./lib/machine.js";
import { fmt, sleep, table } from "./lib/stats.js";

const NAME = "bench/rss";
const LIMIT_MB = 150;

const log = (line: string): void => void process.stderr.write(`${line}\n`);
const out = (line = ""): void => void process.stdout.write(`${line}\n`);

interface Options {
  minutes: number;
  clients: number;
  keys: number;
  valueBytes: number;
  sampleSeconds: number;
  /** Run the servers with Node's defaults instead of the deployment guide's settings. */
  nodeDefaults: boolean;
}

function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
      minutes: { type: "string", default: "10" },
      clients: { type: "string", default: "256" },
      keys: { type: "string", default: "100000" },
      "value-bytes": { type: "string", default: "100" },
      "sample-seconds": { type: "string", default: "10" },
      "node-defaults": { type: "boolean", default: false },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help === true) {
    out("usage: npx tsx bench/rss.ts [--minutes N (10)] [--clients N (256)] [--keys N (100000)] [--value-bytes N (100)] [--sample-seconds N (10)] [--node-defaults]");
    process.exit(0);
  }
  const num = (name: string, text: string, min: number, max: number, integer: boolean): number => {
    const n = Number(text);
    if (!Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n))) {
      throw new Error(`--${name} must be ${integer ? "an integer" : "a number"} from ${min} to ${max}, got ${JSON.stringify(text)}`);
    }
    return n;
  };
  return {
    minutes: num("minutes", values.minutes, 0.1, 600, false),
    clients: num("clients", values.clients, 1, 4096, true),
    keys: num("keys", values.keys, 1, 10_000_000, true),
    valueBytes: num("value-bytes", values["value-bytes"], 0, 1 << 20, true),
    sampleSeconds: num("sample-seconds", values["sample-seconds"], 1, 600, false),
    nodeDefaults: values["node-defaults"],
  };
}

/** VmRSS of a process in MB (MiB), from /proc/PID/status; NaN when it is gone. */
function rssMb(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  try {
    const kb = /^VmRSS:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
    return kb === undefined ? Number.NaN : Number(kb) / 1024;
  } catch {
    return Number.NaN;
  }
}

interface Sample {
  /** Seconds since the load started. */
  readonly t: number;
  /** Per node, in cluster order. */
  readonly rssMb: readonly number[];
  readonly heapMb: readonly number[];
  readonly snapshots: readonly number[];
  /** Successful PUTs since the load started. */
  readonly ops: number;
}

/** Least-squares slope of y over x (MB per minute when x is in minutes). */
function slope(xs: readonly number[], ys: readonly number[]): number {
  const n = xs.length;
  if (n < 2) return Number.NaN;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i]! - mx) * (ys[i]! - my);
    den += (xs[i]! - mx) ** 2;
  }
  return den === 0 ? Number.NaN : num / den;
}

async function main(): Promise<void> {
  const opts = parseOptions();
  const runS = opts.minutes * 60;
  const warmupS = Math.min(60, runS / 2);
  const boundS = Math.ceil(runS + 180);
  installCleanup(NAME).setBoundMs(boundS * 1000);

  out(`# raftkit-kv memory under load: 3 nodes on loopback, fsync on, --fast-mode, ${opts.clients} clients PUTting ${opts.valueBytes}-byte values over ${fmt(opts.keys)} keys`);
  out();
  out("Machine (shared: other sessions may run on it at the same time):");
  out(machineFacts());
  out(`Settings: --minutes ${opts.minutes} --clients ${opts.clients} --keys ${opts.keys} --value-bytes ${opts.valueBytes} --sample-seconds ${opts.sampleSeconds}${opts.nodeDefaults ? " --node-defaults" : ""}; warm-up ${fmt(warmupS)} s; bounded at ${boundS} s`);

  const root = makeTempDir("raftkit-rss-");
  log(`starting a 3-node raftkit-kv cluster in ${root} ...`);
  const kv = await KvCluster.start(root, { nodeDefaults: opts.nodeDefaults });
  out(`Server process settings: ${kv.settings}`);
  out();
  let leader = await kv.waitForLeader(10_000);
  log(`leader: node ${leader.id}`);

  const body = Buffer.from(JSON.stringify({ value: "v".repeat(opts.valueBytes) }));
  const paths = Array.from({ length: opts.keys }, (_, i) => `/v1/kv/rss-${i}`);
  const agent = new Agent({ keepAlive: true, maxSockets: opts.clients, maxFreeSockets: opts.clients });

  let ops = 0;
  let errors = 0;
  let firstError: string | null = null;
  let leaderChanges = 0;
  // One leader lookup at a time, shared by every client that needs it.
  let lookup: Promise<void> | null = null;
  const relookup = (): Promise<void> =>
    (lookup ??= kv
      .waitForLeader(10_000)
      .then((l) => {
        if (l !== leader) leaderChanges++;
        leader = l;
      })
      .catch((err: unknown) => {
        firstError ??= `leader lookup: ${err instanceof Error ? err.message : String(err)}`;
      })
      .finally(() => {
        lookup = null;
      }));

  const start = performance.now();
  const end = start + runS * 1000;
  let stopping = false;
  const client = async (c: number): Promise<void> => {
    let i = (c * 7919) % opts.keys;
    while (!stopping && performance.now() < end) {
      try {
        const answer = await send(agent, "127.0.0.1", leader.httpPort, "PUT", paths[i]!, body, 10_000);
        if (answer.status >= 200 && answer.status < 300) {
          ops++;
        } else {
          errors++;
          firstError ??= `HTTP ${answer.status} ${answer.body.slice(0, 200)}`;
          if (answer.status === 307 || answer.status === 503) await relookup();
          await sleep(10);
        }
      } catch (err) {
        errors++;
        firstError ??= err instanceof Error ? err.message : String(err);
        await relookup();
        await sleep(10);
      }
      i = (i + 1) % opts.keys;
    }
  };

  const samples: Sample[] = [];
  const takeSample = async (): Promise<Sample> => {
    const t = (performance.now() - start) / 1000;
    const opsNow = ops;
    const rss = kv.nodes.map((n) => rssMb(n.child?.pid));
    const metrics = await Promise.all(
      kv.nodes.map(async (n) => {
        try {
          const res = await fetch(`${kv.url(n)}/metrics`, { signal: AbortSignal.timeout(3000) });
          return res.ok ? await res.text() : null;
        } catch {
          return null;
        }
      }),
    );
    const s: Sample = {
      t,
      rssMb: rss,
      heapMb: metrics.map((m) => (m === null ? Number.NaN : promSum(m, "nodejs_heap_size_used_bytes") / 2 ** 20)),
      snapshots: metrics.map((m) => (m === null ? Number.NaN : promSum(m, "raftkit_storage_compact_duration_seconds_count"))),
      ops: opsNow,
    };
    samples.push(s);
    const prev = samples.at(-2);
    const rate = prev === undefined ? Number.NaN : (s.ops - prev.ops) / (s.t - prev.t);
    log(
      `  t=${fmt(t).padStart(4)} s  RSS MB ${s.rssMb.map((r) => fmt(r, 1)).join(" / ")}  heap MB ${s.heapMb.map((h) => fmt(h, 1)).join(" / ")}  ` +
        `snapshots ${s.snapshots.map((x) => fmt(x)).join(" / ")}  ${fmt(rate)} ops/s  errors ${errors}`,
    );
    for (const n of kv.nodes) {
      if (n.child !== null && n.child.exitCode !== null) throw new Error(`node ${n.id} exited (${n.child.exitCode}):\n${kv.logTail(n)}`);
    }
    return s;
  };

  log(`driving ${opts.clients} clients for ${opts.minutes} min, sampling every ${opts.sampleSeconds} s ...`);
  const load = Promise.all(Array.from({ length: opts.clients }, (_, c) => client(c)));
  const sampler = (async (): Promise<void> => {
    await takeSample();
    for (let k = 1; ; k++) {
      const due = start + k * opts.sampleSeconds * 1000;
      if (due > end) break;
      await sleep(Math.max(0, due - performance.now()));
      await takeSample();
    }
  })();
  try {
    await sampler;
  } finally {
    stopping = true;
  }
  await load;
  const loadEndS = (performance.now() - start) / 1000;
  agent.destroy();
  // The last sample is at (about) the end of the load, taken while it still ran.
  const last = samples.at(-1)!;
  const warm = samples.reduce((best, s) => (Math.abs(s.t - warmupS) < Math.abs(best.t - warmupS) ? s : best), samples[0]!);
  const statuses = await Promise.all(kv.nodes.map((n) => kv.status(n)));
  await kv.stop();

  const measuredS = last.t - warm.t;
  const throughputAll = ops / loadEndS;
  const throughputAfterWarm = measuredS > 0 ? (last.ops - warm.ops) / measuredS : Number.NaN;
  const after = samples.filter((s) => s.t >= warm.t);

  out(`## RSS per node (VmRSS, MB = MiB; ${samples.length} samples, every ${opts.sampleSeconds} s)`);
  out();
  const rows = kv.nodes.map((n: KvNode, k) => {
    const max = Math.max(...samples.map((s) => s.rssMb[k]!));
    const growth = last.rssMb[k]! - warm.rssMb[k]!;
    const perMin = slope(after.map((s) => s.t / 60), after.map((s) => s.rssMb[k]!));
    return [
      `${n.id} (${statuses[k]?.role ?? "?"})`,
      fmt(warm.rssMb[k]!, 1),
      fmt(last.rssMb[k]!, 1),
      fmt(max, 1),
      `${growth >= 0 ? "+" : ""}${fmt(growth, 1)} (${growth >= 0 ? "+" : ""}${fmt((100 * growth) / warm.rssMb[k]!, 1)}%)`,
      `${perMin >= 0 ? "+" : ""}${fmt(perMin, 2)}`,
      `${fmt(warm.heapMb[k]!, 1)} → ${fmt(last.heapMb[k]!, 1)}`,
      fmt(last.snapshots[k]!),
    ];
  });
  out(
    table(
      ["node", `RSS at ${fmt(warm.t)} s`, `RSS at end (${fmt(last.t)} s)`, "RSS max", "growth (warm-up → end)", "trend after warm-up (MB/min)", "JS heap used (warm-up → end)", "snapshots"],
      rows,
    ),
  );
  out();
  out(
    `Throughput: ${fmt(throughputAfterWarm)} PUT/s after the warm-up (${fmt(throughputAll)} PUT/s over the whole ${fmt(loadEndS)} s); ` +
      `${fmt(ops)} PUTs, ${fmt(errors)} errors${firstError === null ? "" : ` (first: ${firstError})`}, ${leaderChanges} leader changes seen by the clients.`,
  );
  const maxAll = Math.max(...samples.flatMap((s) => s.rssMb));
  out(`Limit: every node's RSS under ${LIMIT_MB} MB: ${maxAll < LIMIT_MB ? "yes" : "NO"} (highest ${fmt(maxAll, 1)} MB).`);
  out();

  // The series, one row per minute (or per sample when the run is short), for the record.
  const every = Math.max(1, Math.round(60 / opts.sampleSeconds));
  const series = samples.filter((_, i) => i % every === 0 || i === samples.length - 1);
  out("## RSS over time (MB per node; PUT/s over the preceding interval)");
  out();
  out(
    table(
      ["t (s)", ...kv.nodes.map((n) => `node ${n.id}`), "PUT/s"],
      series.map((s, i) => {
        const prev = i === 0 ? undefined : series[i - 1]!;
        const rate = prev === undefined ? Number.NaN : (s.ops - prev.ops) / (s.t - prev.t);
        return [fmt(s.t), ...s.rssMb.map((r) => fmt(r, 1)), fmt(rate)];
      }),
    ),
  );
  out();
  out(`Load average at the end: ${loadavg().map((l) => l.toFixed(2)).join(" / ")}.`);
}

runMain(NAME, main);
