/**
 * raftkit-kv against etcd: the same HTTP load on a 3-node cluster of each, on loopback.
 *
 *   npm run -s build && npx tsx bench/vs-etcd.ts [--seconds 10] [--rounds 3] [--clients 1,16,64,256] [--warmup S]
 *                                                [--node-defaults]
 *
 * - etcd: Debian's etcd-server (installed with apt-get if `etcd` is missing), 3 members,
 *   etcd's defaults (fsync on), written through its v3 JSON gateway (POST /v3/kv/put with
 *   base64 key and value; /v3beta on etcd 3.3), sent to the leader.
 * - raftkit: 3 nodes of the example KV server (`dist/examples/kv-server/main.js`,
 *   LevelStorage with fsync, --fast-mode), written with PUT /v1/kv/KEY on the leader; the
 *   servers run with the deployment guide's process settings (DEPLOYED_ENV) unless
 *   `--node-defaults`.
 * - One load generator for both (bench/lib/http-load.ts): closed-loop clients on a
 *   keep-alive node:http Agent, 100-byte values over 10,000 keys. Each point (a number of
 *   clients) runs both systems back to back, the order alternating between rounds; the
 *   tables show medians over rounds.
 * - Each round first measures the load generator alone against a trivial HTTP server (in
 *   its own process), and the floor for one client: the median of write+fdatasync of a
 *   100-byte append in the data dirs' temp dir, plus one loopback HTTP round trip. (Per
 *   round, because the machine is shared: both move with what else runs.)
 * - From the servers' /metrics: CPU of all 3 processes; on the leader, writes per fsync and
 *   the mean fsync (etcd WAL) or save (raftkit LevelStorage) time.
 * Progress goes to stderr, results (Markdown tables) to stdout. Every process it starts is
 * killed and every temp dir removed on exit, error or Ctrl-C; it gives up after a bound
 * computed from the flags.
 */
import { loadavg } from "node:os";
import { cpuUsage } from "node:process";
import { parseArgs } from "node:util";
import { installCleanup, makeTempDir, runMain, stopChild } from "../tools/processes.js";
import { EtcdCluster, ensureEtcd, etcdVersion } from "./lib/etcd-cluster.js";
import { type LoadResult, type LoadTarget, runLoad } from "./lib/http-load.js";
import { KvCluster, promSum } from "./lib/kv-cluster.js";
import { describeFloor, fdatasyncFloor, machineFacts, startTrivialServer } from "./lib/machine.js";
import { fmt, fmtMs, median, table } from "./lib/stats.js";

const NAME = "bench/vs-etcd";
const VALUE_BYTES = 100;
const KEYS = 10_000;

type System = "etcd" | "raftkit";

interface Options {
  seconds: number;
  rounds: number;
  clients: number[];
  warmupSeconds: number;
  /** Run the raftkit servers with Node's defaults instead of the deployment guide's settings. */
  nodeDefaults: boolean;
}

/** One measured run of one system at one point, with what the servers' metrics say about it. */
interface Run extends LoadResult {
  /** CPU used by all 3 server processes together during the run, in cores. */
  serverCores: number;
  /** CPU used by the load generator during the run, in cores. */
  loadgenCores: number;
  /** Writes committed per fsync batch on the leader. */
  writesPerFsync: number;
  /** Mean time of one durable write on the leader (etcd: WAL fsync; raftkit: LevelStorage.save). */
  fsyncMeanMs: number;
  /** raftkit only: the leader's mean time from propose to apply, as its /metrics report it. */
  serverMeanMs: number;
}

interface Floor {
  fsyncMs: number;
  preallocatedMs: number;
  rttMs: number;
}

const log = (line: string): void => void process.stderr.write(`${line}\n`);
const out = (line = ""): void => void process.stdout.write(`${line}\n`);

function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
      seconds: { type: "string", default: "10" },
      rounds: { type: "string", default: "3" },
      clients: { type: "string", default: "1,16,64,256" },
      warmup: { type: "string" },
      "node-defaults": { type: "boolean", default: false },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help === true) {
    out("usage: npx tsx bench/vs-etcd.ts [--seconds N (10)] [--rounds N (3)] [--clients 1,16,64,256] [--warmup S (min(1, seconds/5))] [--node-defaults]");
    process.exit(0);
  }
  const positive = (name: string, text: string, integer: boolean): number => {
    const n = Number(text);
    if (!(n > 0) || (integer && !Number.isInteger(n))) throw new Error(`--${name} must be a positive ${integer ? "integer" : "number"}, got ${JSON.stringify(text)}`);
    return n;
  };
  const seconds = positive("seconds", values.seconds, false);
  return {
    seconds,
    rounds: positive("rounds", values.rounds, true),
    clients: values.clients.split(",").map((c) => positive("clients", c.trim(), true)),
    warmupSeconds: values.warmup === undefined ? Math.min(1, seconds / 5) : Number(values.warmup),
    nodeDefaults: values["node-defaults"],
  };
}

/** A 100-byte printable value (base64 of pseudo-random bytes, cut to length). */
function makeValue(): Buffer {
  let s = "";
  let x = 0x9e3779b9;
  while (s.length < VALUE_BYTES) {
    x = (x * 1103515245 + 12345) >>> 0;
    s += x.toString(36);
  }
  return Buffer.from(s.slice(0, VALUE_BYTES), "ascii");
}

/** Scrapes /metrics of every server; null entries for a server that did not answer. */
async function scrape(urls: readonly string[]): Promise<(string | null)[]> {
  return Promise.all(
    urls.map(async (u) => {
      try {
        const res = await fetch(`${u}/metrics`, { signal: AbortSignal.timeout(3000) });
        return res.ok ? await res.text() : null;
      } catch {
        return null;
      }
    }),
  );
}

const delta = (before: string | null, after: string | null, name: string, labels = ""): number =>
  before === null || after === null ? Number.NaN : promSum(after, name, labels) - promSum(before, name, labels);

async function main(): Promise<void> {
  const opts = parseOptions();
  const cleanup = installCleanup(NAME);
  const etcd = ensureEtcd(log);
  const perRunS = opts.warmupSeconds + opts.seconds + 5;
  const perRoundS = Math.min(2, opts.seconds) + 5;
  const boundS = Math.ceil(180 + opts.rounds * (perRoundS + opts.clients.length * 2 * perRunS) * 1.5);
  cleanup.setBoundMs(boundS * 1000);

  out(`# raftkit-kv vs etcd: 3-node clusters on loopback, fsync on, ${VALUE_BYTES}-byte values`);
  out();
  out(`Machine (shared and noisy: other sessions may run tests on it at the same time):`);
  out(machineFacts({ etcd: etcdVersion(etcd) }));
  out(`Settings: --seconds ${opts.seconds} --rounds ${opts.rounds} --clients ${opts.clients.join(",")}${opts.nodeDefaults ? " --node-defaults" : ""}, warm-up ${opts.warmupSeconds} s per run; bounded at ${boundS} s`);
  out();

  const root = makeTempDir("raftkit-vs-etcd-");
  const value = makeValue();
  const raftkitBody = Buffer.from(JSON.stringify({ value: value.toString("ascii") }));

  // The trivial server stays up for the whole run: the load generator is checked against
  // it, and the loopback round trip measured on it, once per round (the machine is noisy).
  const trivial = await startTrivialServer();
  const trivialTarget: LoadTarget = { host: "127.0.0.1", port: trivial.port, method: "PUT", variants: 1, path: () => "/v1/kv/x", body: () => raftkitBody };
  // At least 64 clients: with fewer, the check measures round trips rather than capacity.
  const selfClients = Math.max(64, ...opts.clients);
  const selfSeconds = Math.min(2, opts.seconds);

  log("starting a 3-member etcd cluster and a 3-node raftkit-kv cluster ...");
  const [etcdCluster, kv] = await Promise.all([EtcdCluster.start(etcd, root), KvCluster.start(root, { nodeDefaults: opts.nodeDefaults })]);
  out(`etcd server: ${await etcdCluster.serverVersion()}, JSON gateway: POST ${etcdCluster.gateway}/kv/put, sent to the leader`);
  out(`raftkit-kv: ${kv.nodes.length} nodes, --fast-mode, LevelStorage (fsync on), PUT /v1/kv/KEY sent to the leader; process settings ${kv.settings}`);
  out(`Data dirs and the fdatasync probe: ${root}`);
  out();

  const etcdPut = (i: number): Buffer => Buffer.from(JSON.stringify({ key: Buffer.from(`bench-${i}`).toString("base64"), value: value.toString("base64") }));
  const etcdBodies = Array.from({ length: KEYS }, (_, i) => etcdPut(i));
  const raftkitPaths = Array.from({ length: KEYS }, (_, i) => `/v1/kv/bench-${i}`);

  async function measure(system: System, clients: number): Promise<Run> {
    let target: LoadTarget;
    let urls: string[];
    let leaderIndex: number;
    if (system === "etcd") {
      const leader = await etcdCluster.leader();
      leaderIndex = etcdCluster.members.indexOf(leader);
      urls = etcdCluster.members.map((m) => etcdCluster.url(m));
      const path = `${etcdCluster.gateway}/kv/put`;
      target = { host: "127.0.0.1", port: leader.clientPort, method: "POST", variants: KEYS, path: () => path, body: (i) => etcdBodies[i]! };
    } else {
      const leader = await kv.waitForLeader(10_000);
      leaderIndex = kv.nodes.indexOf(leader);
      urls = kv.nodes.map((n) => kv.url(n));
      target = { host: "127.0.0.1", port: leader.httpPort, method: "PUT", variants: KEYS, path: (i) => raftkitPaths[i]!, body: () => raftkitBody };
    }
    const before = await scrape(urls);
    const cpu0 = cpuUsage();
    const t0 = performance.now();
    const result = await runLoad(target, clients, opts.seconds, opts.warmupSeconds);
    const wallS = (performance.now() - t0) / 1000;
    const cpu = cpuUsage(cpu0);
    const after = await scrape(urls);
    const serverCpuS = urls.reduce((sum, _, k) => sum + delta(before[k]!, after[k]!, "process_cpu_seconds_total"), 0);
    const lb = before[leaderIndex]!;
    const la = after[leaderIndex]!;
    const names =
      system === "etcd"
        ? { writes: ["etcd_server_proposals_committed_total", ""], fsync: "etcd_disk_wal_fsync_duration_seconds" }
        : { writes: ["raftkit_kv_proposals_total", 'op="put"'], fsync: "raftkit_storage_save_duration_seconds" };
    const writes = delta(lb, la, names.writes[0]!, names.writes[1]);
    const fsyncs = delta(lb, la, `${names.fsync}_count`);
    const fsyncSumS = delta(lb, la, `${names.fsync}_sum`);
    const proposalS = system === "raftkit" ? delta(lb, la, "raftkit_kv_proposal_duration_seconds_sum", 'op="put"') / delta(lb, la, "raftkit_kv_proposal_duration_seconds_count", 'op="put"') : Number.NaN;
    const run: Run = {
      ...result,
      serverCores: serverCpuS / wallS,
      loadgenCores: (cpu.user + cpu.system) / 1e6 / wallS,
      writesPerFsync: writes / fsyncs,
      fsyncMeanMs: (fsyncSumS / fsyncs) * 1000,
      serverMeanMs: proposalS * 1000,
    };
    log(
      `  ${system.padEnd(7)} ${String(clients).padStart(3)} clients: ${fmt(run.opsPerSec)} ops/s, p50 ${fmtMs(run.p50Ms)}, p99 ${fmtMs(run.p99Ms)}, errors ${run.errors}` +
        `${run.firstError === null ? "" : ` (first: ${run.firstError})`}; servers ${fmt(run.serverCores, 2)} cores, load generator ${fmt(run.loadgenCores, 2)} cores; ` +
        `leader: ${fmt(run.writesPerFsync, 2)} writes per fsync of ${fmtMs(run.fsyncMeanMs)}`,
    );
    return run;
  }

  const runs = new Map<string, Run[]>();
  const key = (system: System, clients: number): string => `${system}/${clients}`;
  const selfChecks: LoadResult[] = [];
  const floors: Floor[] = [];
  for (let round = 0; round < opts.rounds; round++) {
    log(`round ${round + 1} of ${opts.rounds}`);
    // The load generator alone, and the floor, next to the runs they are compared with.
    const self = await runLoad(trivialTarget, selfClients, selfSeconds, 0.5);
    selfChecks.push(self);
    const rtt = await runLoad(trivialTarget, 1, 1, 0.2);
    const fsync = fdatasyncFloor(root, 1000);
    floors.push({ fsyncMs: fsync.appendMs, preallocatedMs: fsync.preallocatedMs, rttMs: rtt.p50Ms });
    log(
      `  load generator alone: ${fmt(self.opsPerSec)} requests/s at ${selfClients} clients; floor: fdatasync ${fmtMs(fsync.appendMs)} (median of ${fsync.samples}; ` +
        `${fmtMs(fsync.preallocatedMs)} in a preallocated file) + loopback HTTP round trip ${fmtMs(rtt.p50Ms)}`,
    );
    for (const clients of opts.clients) {
      const order: System[] = round % 2 === 0 ? ["etcd", "raftkit"] : ["raftkit", "etcd"];
      for (const system of order) {
        const k = key(system, clients);
        runs.set(k, [...(runs.get(k) ?? []), await measure(system, clients)]);
      }
    }
  }
  await Promise.all([etcdCluster.stop(), kv.stop(), stopChild(trivial.child)]);

  const med = (system: System, clients: number, f: (r: Run) => number): number => median((runs.get(key(system, clients)) ?? []).map(f));
  const errors = (system: System, clients: number): number => (runs.get(key(system, clients)) ?? []).reduce((s, r) => s + r.errors, 0);
  const rounds = `${opts.rounds} round${opts.rounds === 1 ? "" : "s"}`;

  out(`## Load generator alone (trivial HTTP server in another process, ${selfClients} clients, ${selfSeconds} s, once per round)`);
  out();
  const best = Math.max(...opts.clients.flatMap((c) => [med("etcd", c, (r) => r.opsPerSec), med("raftkit", c, (r) => r.opsPerSec)]));
  const selfMedian = median(selfChecks.map((r) => r.opsPerSec));
  const selfMin = Math.min(...selfChecks.map((r) => r.opsPerSec));
  out(
    `median ${fmt(selfMedian)} requests/s (lowest round ${fmt(selfMin)}; p50 ${fmtMs(median(selfChecks.map((r) => r.p50Ms)))}): ` +
      `${fmt(selfMedian / best, 1)}x the best system figure below (${fmt(best)} ops/s)${selfMin < 3 * best ? `. WARNING: not far faster (lowest round ${fmt(selfMin / best, 1)}x): the load generator shares the machine's CPUs with the servers, so the top points may be limited by the machine rather than by the systems` : ""}`,
  );
  out();

  out(`## Throughput and latency (medians over ${rounds} of ${opts.seconds} s)`);
  out();
  out(
    table(
      ["clients", "etcd ops/s", "etcd p50", "etcd p99", "raftkit ops/s", "raftkit p50", "raftkit p99", "raftkit/etcd ops/s", "raftkit/etcd p50", "raftkit/etcd p99"],
      opts.clients.map((c) => {
        const eo = med("etcd", c, (r) => r.opsPerSec);
        const ro = med("raftkit", c, (r) => r.opsPerSec);
        const ep = med("etcd", c, (r) => r.p50Ms);
        const rp = med("raftkit", c, (r) => r.p50Ms);
        const e99 = med("etcd", c, (r) => r.p99Ms);
        const r99 = med("raftkit", c, (r) => r.p99Ms);
        return [String(c), fmt(eo), fmtMs(ep), fmtMs(e99), fmt(ro), fmtMs(rp), fmtMs(r99), `${fmt(ro / eo, 2)}x`, `${fmt(rp / ep, 2)}x`, `${fmt(r99 / e99, 2)}x`];
      }),
    ),
  );
  out();

  out(`## Where the time goes (medians; servers' /metrics: CPU of all 3 processes, the rest on the leader)`);
  out();
  out(
    table(
      ["clients", "system", "server CPU (cores)", "load generator CPU (cores)", "writes per fsync", "mean fsync (etcd WAL) / save (raftkit)", "mean propose-to-apply (server)", "errors"],
      opts.clients.flatMap((c) =>
        (["etcd", "raftkit"] as const).map((s) => [
          String(c),
          s,
          fmt(med(s, c, (r) => r.serverCores), 2),
          fmt(med(s, c, (r) => r.loadgenCores), 2),
          fmt(med(s, c, (r) => r.writesPerFsync), 2),
          fmtMs(med(s, c, (r) => r.fsyncMeanMs)),
          fmtMs(med(s, c, (r) => r.serverMeanMs)),
          String(errors(s, c)),
        ]),
      ),
    ),
  );
  out();

  out(`## Floor for one client (measured once per round, medians)`);
  out();
  const fsyncMs = median(floors.map((f) => f.fsyncMs));
  const rttMs = median(floors.map((f) => f.rttMs));
  const floorMs = median(floors.map((f) => f.fsyncMs + f.rttMs));
  out(`${describeFloor(fsyncMs, rttMs)}; per round: ${floors.map((f) => fmtMs(f.fsyncMs + f.rttMs)).join(", ")} (fdatasync of a 100-byte append in the temp dir, same disk as the data dirs)`);
  out(`(For comparison: fdatasync of a 100-byte overwrite in a preallocated file, as etcd's WAL does, median ${fmtMs(median(floors.map((f) => f.preallocatedMs)))}.)`);
  if (opts.clients.includes(1)) {
    for (const s of ["etcd", "raftkit"] as const) {
      const p50 = med(s, 1, (r) => r.p50Ms);
      out(`- ${s}: 1-client p50 ${fmtMs(p50)} = ${fmt(p50 / floorMs, 1)}x the floor`);
    }
  } else {
    out("(no 1-client point in --clients)");
  }
  out();
  out(`Machine shared and noisy (load average at the end: ${loadavg().map((l) => l.toFixed(2)).join(" / ")}): compare the ratios within this run rather than figures across runs.`);
}

runMain(NAME, main);
