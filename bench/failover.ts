/**
 * Failover time of raftkit-kv: how long after `kill -9` of the leader the cluster commits
 * a write again.
 *
 *   npm run -s build && npx tsx bench/failover.ts [--trials 20]
 *
 * A 3-node cluster of the example KV server (`dist/examples/kv-server/main.js`,
 * --fast-mode: tick 10 ms, election timeout 200-400 ms) on loopback, under a light write load
 * (one client, a PUT every ~10 ms, on the leader). Each trial waits until every node has
 * caught up, runs the load for a second, then `kill -9`s the leader and, from that moment,
 * sends a PUT every 5 ms to each of the two survivors (a follower answers 307 or 503 at
 * once; the new leader answers 200 once the write is committed). The figure is the time
 * from the kill to the first 200. The killed node is then started again on its data dir.
 * Progress goes to stderr, results to stdout; every process it starts is killed and the
 * temp dir removed on exit, error or Ctrl-C; it gives up after a bound computed from --trials.
 */
import { parseArgs } from "node:util";
import { installCleanup, makeTempDir, runMain } from "../tools/processes.js";
import { type Answer, send } from "./lib/http-load.js";
import { type KvCluster as KvClusterType, type KvNode, KvCluster } from "./lib/kv-cluster.js";
import { machineFacts } from "./lib/machine.js";
import { fmt, fmtMs, median, quantileInPlace, sleep, table } from "./lib/stats.js";

const NAME = "bench/failover";
const WRITE_GAP_MS = 10;
const PROBE_GAP_MS = 5;
const FAILOVER_LIMIT_MS = 15_000;
const BODY = Buffer.from(JSON.stringify({ value: "v".repeat(100) }));

const log = (line: string): void => void process.stderr.write(`${line}\n`);
const out = (line = ""): void => void process.stdout.write(`${line}\n`);

interface Trial {
  readonly killed: number;
  readonly newLeader: number;
  readonly ms: number;
  /** New term minus the old one: 1 when the first election won, more after split votes. */
  readonly terms: number;
  /** PUTs committed by the light load during the second before the kill. */
  readonly writesBefore: number;
}

const put = (node: KvNode, key: string, timeoutMs: number): Promise<Answer> =>
  send(false, "127.0.0.1", node.httpPort, "PUT", `/v1/kv/${key}`, BODY, timeoutMs);

/** One client writing to `target` (when set) every WRITE_GAP_MS, counting its 200s. */
class LightLoad {
  target: KvNode | null = null;
  ok = 0;
  private running = true;
  private seq = 0;
  private readonly done: Promise<void>;

  constructor() {
    this.done = this.loop();
  }

  private async loop(): Promise<void> {
    while (this.running) {
      const target = this.target;
      if (target !== null) {
        try {
          const answer = await put(target, `load-${this.seq++ % 1000}`, 5000);
          if (answer.status === 200) this.ok++;
        } catch {
          // the leader was killed under it, or is restarting
        }
      }
      await sleep(WRITE_GAP_MS);
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.done;
  }
}

/** Sends PUTs to every survivor until one answers 200; resolves with that node and the time. */
async function firstCommit(survivors: readonly KvNode[], trial: number, deadline: number): Promise<{ node: KvNode; at: number }> {
  let winner: { node: KvNode; at: number } | null = null;
  const probe = async (node: KvNode): Promise<void> => {
    let n = 0;
    while (winner === null && performance.now() < deadline) {
      const started = performance.now();
      try {
        const answer = await put(node, `failover-${trial}-${node.id}-${n++}`, Math.max(1, deadline - started));
        if (answer.status === 200) {
          winner ??= { node, at: performance.now() };
          return;
        }
      } catch {
        // not answering yet
      }
      const wait = PROBE_GAP_MS - (performance.now() - started);
      if (wait > 0) await sleep(wait);
    }
  };
  await Promise.all(survivors.map(probe));
  if (winner === null) throw new Error(`no write committed within ${FAILOVER_LIMIT_MS} ms of the kill`);
  return winner;
}

async function runTrial(kv: KvClusterType, load: LightLoad, trial: number): Promise<Trial> {
  await kv.waitCaughtUp(20_000);
  const leader = await kv.waitForLeader(10_000);
  const oldTerm = (await kv.status(leader))?.term ?? Number.NaN;
  load.target = leader;
  const okBefore = load.ok;
  await sleep(1000);
  const writesBefore = load.ok - okBefore;
  if (writesBefore === 0) throw new Error(`trial ${trial}: the light load committed nothing on leader ${leader.id} in a second`);
  load.target = null;

  const t0 = performance.now();
  const killed = kv.kill9(leader);
  const survivors = kv.nodes.filter((n) => n !== leader);
  const { node, at } = await firstCommit(survivors, trial, t0 + FAILOVER_LIMIT_MS);
  await killed;
  const newTerm = (await kv.status(node))?.term ?? Number.NaN;
  await kv.restart(leader);
  return { killed: leader.id, newLeader: node.id, ms: at - t0, terms: newTerm - oldTerm, writesBefore };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { trials: { type: "string", default: "20" }, help: { type: "boolean", short: "h" } }, strict: true });
  if (values.help === true) {
    out("usage: npx tsx bench/failover.ts [--trials N (20)]");
    return;
  }
  const trials = Number(values.trials);
  if (!Number.isInteger(trials) || trials < 1) throw new Error(`--trials must be a positive integer, got ${JSON.stringify(values.trials)}`);
  const boundS = 60 + trials * 45;
  installCleanup(NAME).setBoundMs(boundS * 1000);

  out(`# raftkit-kv failover: kill -9 of the leader to the first write committed by the new leader`);
  out();
  out(`Machine (shared and noisy: other sessions may run tests on it at the same time):`);
  out(machineFacts());
  out(`Settings: --trials ${trials}; 3 nodes, --fast-mode (tick 10 ms, election timeout 200-400 ms, heartbeat 20 ms); light load: 1 client, a PUT every ${WRITE_GAP_MS} ms; probes every ${PROBE_GAP_MS} ms per survivor; bounded at ${boundS} s`);
  out();

  const root = makeTempDir("raftkit-failover-");
  log("starting a 3-node raftkit-kv cluster ...");
  const kv = await KvCluster.start(root);
  const load = new LightLoad();
  const results: Trial[] = [];
  try {
    for (let t = 1; t <= trials; t++) {
      const r = await runTrial(kv, load, t);
      results.push(r);
      log(`  trial ${String(t).padStart(2)}: killed node ${r.killed}, node ${r.newLeader} committed after ${fmtMs(r.ms)} (term +${r.terms}; ${r.writesBefore} writes in the second before)`);
    }
  } catch (err) {
    log(kv.nodes.map((n) => kv.logTail(n)).join("\n"));
    throw err;
  } finally {
    await load.stop();
    await kv.stop();
  }

  const ms = results.map((r) => r.ms);
  const sorted = Float64Array.from(ms);
  out(`## Kill -9 of the leader to the first committed write (${trials} trials)`);
  out();
  out(
    table(
      ["trials", "min", "p50", "p99", "max", "mean", "one election (new term = old + 1)"],
      [[String(trials), fmtMs(Math.min(...ms)), fmtMs(quantileInPlace(sorted, 0.5)), fmtMs(quantileInPlace(sorted, 0.99)), fmtMs(Math.max(...ms)), fmtMs(ms.reduce((a, b) => a + b, 0) / ms.length), `${results.filter((r) => r.terms === 1).length} of ${trials}`]],
    ),
  );
  out();
  out(`All trials (ms, in order): ${ms.map((m) => fmt(m)).join(", ")}`);
  out(`Light load before each kill: median ${fmt(median(results.map((r) => r.writesBefore)))} writes/s.`);
  out(`For scale: with --fast-mode a follower campaigns 21-40 ticks of 10 ms (uniform) after the last heartbeat, so the earlier of the two survivors starts after about 273 ms on average; a pre-vote refused because the other survivor heard from the leader less than 200 ms ago costs another 200-400 ms.`);
  out();
  out(`Machine shared and noisy: compare within one run.`);
}

runMain(NAME, main);
