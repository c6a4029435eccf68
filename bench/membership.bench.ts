// Membership changes under load (issue 6), on 3 nodes in this process (MemoryStorage,
// KvStateMachine; MemoryNetwork by default, TcpTransport on loopback with --transport tcp).
//
//  a. Catch-up: the time from `addMember(id)` on the leader to its resolution (the new node
//     promoted to voter; addMember checks the learner's progress once a tick, so the figure
//     includes up to one tick) when the leader's log holds --entries (100,000) puts of 100-byte
//     values under distinct keys. Once with snapshots off (`snapshotThreshold: 0`, the log
//     is never compacted: the new node replays the whole log), once with compaction on
//     (`snapshotThreshold: 10000`, `trailingEntries: 1000`, plus one `snapshot()` after the
//     load: the new node must install a snapshot). Each trial starts a fresh node, adds
//     it, then removes and stops it.
//  b. Commit gaps: clients write continuously (1 writer, then 16, each one put at a time)
//     while the leader hands leadership over (`transferLeadership()`) or is removed
//     (`removeMember(leaderId)`). The figure is the longest time between two consecutive
//     commits seen by the clients (all writers merged), from the call until 250 ms after
//     the new leader is known and the call resolved (longer if no commit came by then:
//     until the first one, the writers retrying what times out after 2 s); the same measure
//     over the 250 ms before the call is the baseline (noise: GC, a busy machine). In
//     heartbeat intervals: gap / (tickMs × heartbeatTicks). The goal: no gap over 2.
//     Writers yield a turn of the event loop after each commit: MemoryNetwork and
//     MemoryStorage run in microtasks only, and a writer that never yields starves every
//     timer in the process, the nodes' ticks included.
//     Two kinds of clients follow the leader:
//       forward: each writer proposes on a follower (they stay members), which forwards to
//                the leader (`forwardProposals: true`, the default) and re-forwards what the
//                leader refused while leadership moved;
//       direct:  each writer proposes on the leader (`forwardProposals: false`); NOT_LEADER
//                and DROPPED are retried on the node that leads now; a proposal left on a
//                removed ex-leader (which can never learn the outcome) is aborted once it
//                steps down, and retried on the new leader.
//     Every trial is a fresh cluster.
//
// Run: npm run -s build && npx tsx bench/membership.bench.ts [--trials 10] [--entries 100000]
//        [--transport memory|tcp] [--tick-ms 50] [--phase all|catch-up|gaps]
import { setMaxListeners } from "node:events";
import { parseArgs } from "node:util";
import { isRaftError, type KvCommand, type KvResult, type RaftErrorCode } from "raftkit";
import { installCleanup } from "../tools/processes.js";
import { InprocCluster, pause, type KvRaftNode, type Member, type TransportKind, type Tuning } from "./lib/inproc-cluster.js";
import { machineFacts } from "./lib/machine.js";
import { fmt, fmtMs, median, table } from "./lib/stats.js";

const { values: args } = parseArgs({
  options: {
    trials: { type: "string", default: "10" },
    entries: { type: "string", default: "100000" },
    transport: { type: "string", default: "memory" },
    "tick-ms": { type: "string", default: "50" },
    phase: { type: "string", default: "all" },
  },
});
const TRIALS = Number(args.trials);
const ENTRIES = Number(args.entries);
const TRANSPORT = args.transport as TransportKind;
const TICK_MS = Number(args["tick-ms"]);
const PHASE = args.phase;
if (TRANSPORT !== "memory" && TRANSPORT !== "tcp") throw new RangeError("--transport must be memory or tcp");
if (!["all", "catch-up", "gaps"].includes(PHASE)) throw new RangeError("--phase must be all, catch-up or gaps");

const HEARTBEAT_TICKS = 1;
const ELECTION_TICKS = 10;
const HEARTBEAT_MS = TICK_MS * HEARTBEAT_TICKS;
const WINDOW_MS = 250;
/** The writers' deadline: a proposal stuck this long is retried (TIMEOUT). */
const REQUEST_TIMEOUT_MS = 2000;
const IN_FLIGHT = 1000;
const VALUE = "x".repeat(100);
const IDS = ["n1", "n2", "n3"];
const timing: Tuning = { tickMs: TICK_MS, heartbeatTicks: HEARTBEAT_TICKS, electionTicks: ELECTION_TICKS };

const out = (line = ""): void => void process.stdout.write(`${line}\n`);
const log = (line: string): void => void process.stderr.write(`${line}\n`);
const yieldTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
const hb = (ms: number): string => `${fmt(ms / HEARTBEAT_MS, 1)} HB`;
const msHb = (ms: number): string => `${fmtMs(ms)} (${hb(ms)})`;

// ---------------------------------------------------------------- a. catch-up

interface CatchUp {
  /** addMember() call to its resolution: the new node is a voter. */
  readonly promotedMs: number;
  /** addMember() call to the new node having applied the leader's commit index at the call. */
  readonly appliedMs: number;
  /** Snapshots the new node installed. */
  readonly snapshots: number;
}

async function load(leader: KvRaftNode, entries: number): Promise<void> {
  for (let i = 0; i < entries; i += IN_FLIGHT) {
    const batch: Promise<KvResult>[] = [];
    for (let j = i; j < Math.min(entries, i + IN_FLIGHT); j++) batch.push(leader.propose({ op: "put", key: `key/${String(j).padStart(8, "0")}`, value: VALUE }));
    await Promise.all(batch);
  }
}

async function catchUpPhase(compaction: boolean): Promise<CatchUp[]> {
  const tuning: Tuning = { ...timing, requestTimeoutMs: 120_000, snapshotThreshold: compaction ? 10_000 : 0, trailingEntries: 1000 };
  const cluster = await InprocCluster.start(IDS, TRANSPORT, tuning);
  try {
    const t = performance.now();
    await load(cluster.get("n1").node, ENTRIES);
    const leader = await cluster.waitForLeader();
    if (compaction) await leader.node.snapshot();
    log(`  loaded ${fmt(ENTRIES)} entries in ${fmtMs(performance.now() - t)}; leader ${leader.id}, lastIndex ${fmt(leader.node.status().lastIndex)}`);
    const results: CatchUp[] = [];
    for (let trial = 1; trial <= TRIALS; trial++) {
      const current = await cluster.waitForLeader();
      const joiner = await cluster.startJoiner(`j${trial}`);
      const target = current.node.status().commitIndex;
      let snapshots = 0;
      let appliedAt = 0;
      const t0 = performance.now();
      const reached = (index: number): void => {
        if (appliedAt === 0 && index >= target) appliedAt = performance.now();
      };
      joiner.node.on("apply", reached);
      joiner.node.on("snapshot", (index) => {
        snapshots++;
        reached(index);
      });
      await current.node.addMember(joiner.id, joiner.address, { timeoutMs: 120_000 });
      const promotedMs = performance.now() - t0;
      while (appliedAt === 0) await pause(1);
      results.push({ promotedMs, appliedMs: appliedAt - t0, snapshots });
      log(`  trial ${trial}: promoted after ${fmtMs(promotedMs)}, applied after ${fmtMs(appliedAt - t0)}, snapshots installed ${snapshots}`);
      await current.node.removeMember(joiner.id);
      await joiner.node.stop();
    }
    return results;
  } finally {
    await cluster.stop();
  }
}

// ---------------------------------------------------------------- b. commit gaps

type Event = "transfer" | "remove-leader";
type Client = "forward" | "direct";
const RETRIED: ReadonlySet<RaftErrorCode> = new Set(["NOT_LEADER", "DROPPED", "ABORTED", "TIMEOUT"]);

/** Writers that put one value at a time each, following the leader, recording commit times. */
class Writers {
  /** performance.now() of every commit seen, in order. */
  readonly commits: number[] = [];
  /** Retried calls by error code. */
  readonly retries = new Map<RaftErrorCode, number>();
  private running = true;
  private seq = 0;
  private readonly done: Promise<void>[] = [];
  /** Fired by stop(): what is still waiting is abandoned rather than waited for. */
  private readonly stopped = new AbortController();

  constructor(
    private readonly cluster: InprocCluster,
    count: number,
    private readonly client: Client,
    /** For `forward`: the followers to propose on, round-robin by writer. */
    private readonly followers: readonly Member[],
  ) {
    setMaxListeners(0, this.stopped.signal); // one listener per call in flight
    for (let w = 0; w < count; w++) this.done.push(this.loop(w));
  }

  async stop(): Promise<void> {
    this.running = false;
    this.stopped.abort();
    await Promise.all(this.done);
  }

  private retried(code: RaftErrorCode): void {
    this.retries.set(code, (this.retries.get(code) ?? 0) + 1);
  }

  private async loop(w: number): Promise<void> {
    const home = this.followers[w % this.followers.length]!;
    while (this.running) {
      const cmd: KvCommand = { op: "put", key: `w${w}/${this.seq++ % 1000}`, value: VALUE };
      const ok = this.client === "forward" ? await this.forwarded(home.node, cmd) : await this.direct(cmd);
      if (ok) this.commits.push(performance.now());
      // See the header: without this, in-process clusters never tick.
      await yieldTurn();
    }
  }

  /** Proposes on a follower, which forwards; resolves false once the writers stop. */
  private async forwarded(node: KvRaftNode, cmd: KvCommand): Promise<boolean> {
    for (;;) {
      try {
        await node.propose(cmd, { signal: this.stopped.signal });
        return true;
      } catch (err) {
        if (!this.running) return false;
        if (!isRaftError(err) || (err.code !== "DROPPED" && err.code !== "TIMEOUT")) throw err;
        this.retried(err.code);
      }
    }
  }

  /** Proposes on the leader, retrying where it moved; resolves false once the writers stop. */
  private async direct(cmd: KvCommand): Promise<boolean> {
    for (;;) {
      let target: Member;
      try {
        target = await this.cluster.waitForLeader();
      } catch (err) {
        if (!this.running) return false;
        throw err;
      }
      const node = target.node;
      const abort = new AbortController();
      // A removed ex-leader hears from nobody: what waits on it never settles. Give up on it.
      const onRole = (role: string): void => {
        if (role !== "leader" && !node.status().voters.includes(target.id)) abort.abort();
      };
      node.on("role", onRole);
      try {
        await node.propose(cmd, { signal: AbortSignal.any([abort.signal, this.stopped.signal]) });
        return true;
      } catch (err) {
        if (!this.running) return false;
        if (!isRaftError(err) || !RETRIED.has(err.code)) throw err;
        this.retried(err.code);
      } finally {
        node.off("role", onRole);
      }
    }
  }
}

/** Retried calls by code, summed over trials: "NOT_LEADER 16, TIMEOUT 2", or "none". */
function retryText(trials: readonly GapTrial[]): string {
  const sum = new Map<RaftErrorCode, number>();
  for (const t of trials) for (const [code, n] of t.retries) sum.set(code, (sum.get(code) ?? 0) + n);
  return sum.size === 0 ? "none" : [...sum].map(([code, n]) => `${code} ${n}`).join(", ");
}

/** The longest time between consecutive commits in [from, to], counting from the last one before `from`. */
function longestGap(commits: readonly number[], from: number, to: number): number {
  let prev = from;
  for (const t of commits) {
    if (t < from) prev = t;
    else break;
  }
  let gap = 0;
  for (const t of commits) {
    if (t < from) continue;
    if (t > to) break;
    gap = Math.max(gap, t - prev);
    prev = t;
  }
  return Math.max(gap, to - prev);
}

interface GapTrial {
  readonly gapMs: number;
  readonly baselineMs: number;
  /** The call to the moment the new leader was known and the call had resolved. */
  readonly eventMs: number;
  readonly retries: ReadonlyMap<RaftErrorCode, number>;
  readonly commits: number;
}

async function gapTrial(event: Event, client: Client, writers: number): Promise<GapTrial> {
  const cluster = await InprocCluster.start(IDS, TRANSPORT, { ...timing, forwardProposals: client === "forward", requestTimeoutMs: REQUEST_TIMEOUT_MS });
  try {
    const leader = await cluster.waitForLeader();
    const followers = IDS.filter((id) => id !== leader.id).map((id) => cluster.get(id));
    const load = new Writers(cluster, writers, client, followers);
    await pause(WINDOW_MS + 100); // warm up, then the baseline window
    const t0 = performance.now();
    const newLeader = cluster.waitForLeader(10_000, leader.id);
    if (event === "transfer") await leader.node.transferLeadership();
    else await leader.node.removeMember(leader.id);
    await newLeader;
    const t1 = performance.now();
    await pause(WINDOW_MS);
    // Writers stuck since the event: extend the window to their first commit (at worst
    // after their proposals' deadline and a retry), so that the gap is the real one.
    while (!load.commits.some((t) => t > t1) && performance.now() - t1 < REQUEST_TIMEOUT_MS + 5000) await pause(1);
    const t2 = performance.now();
    await load.stop();
    return {
      gapMs: longestGap(load.commits, t0, t2),
      baselineMs: longestGap(load.commits, t0 - WINDOW_MS, t0),
      eventMs: t1 - t0,
      retries: load.retries,
      commits: load.commits.filter((t) => t >= t0 && t <= t2).length,
    };
  } finally {
    await cluster.stop();
  }
}

// ---------------------------------------------------------------- main

out(`# bench/membership: 3 nodes in one process, ${TRANSPORT === "tcp" ? "TcpTransport on 127.0.0.1" : "MemoryNetwork"}, MemoryStorage, KvStateMachine`);
out(machineFacts({ transport: TRANSPORT, trials: String(TRIALS), "tickMs × heartbeatTicks (1 HB)": `${TICK_MS} × ${HEARTBEAT_TICKS} = ${HEARTBEAT_MS} ms`, electionTicks: String(ELECTION_TICKS) }));
const started = performance.now();
// A generous bound (a healthy run takes one to three minutes): a hang exits with code 3.
installCleanup("bench/membership").setBoundMs(60_000 + TRIALS * 60_000);

if (PHASE !== "gaps") {
  out();
  out(`## a. addMember() to promoted voter, leader's log ${fmt(ENTRIES)} entries (100-byte values, distinct keys)`);
  out();
  const rows: string[][] = [];
  for (const compaction of [false, true]) {
    log(`catch-up, compaction ${compaction ? "on" : "off"}`);
    const r = await catchUpPhase(compaction);
    const promoted = r.map((x) => x.promotedMs);
    const applied = r.map((x) => x.appliedMs);
    rows.push([
      compaction ? "on (snapshotThreshold 10000, trailingEntries 1000)" : "off (snapshotThreshold 0)",
      String(r.length),
      fmtMs(median(promoted)),
      fmtMs(Math.max(...promoted)),
      fmtMs(median(applied)),
      fmtMs(Math.max(...applied)),
      r.every((x) => x.snapshots > 0) ? "snapshot" : r.every((x) => x.snapshots === 0) ? "log" : "mixed",
    ]);
  }
  out(table(["compaction", "trials", "promoted: median", "max", "caught up (applied): median", "max", "new node caught up through"], rows));
}

if (PHASE !== "catch-up") {
  out();
  out(`## b. Longest gap between consecutive commits seen by the clients (1 HB = ${HEARTBEAT_MS} ms; goal: ≤ 2 HB)`);
  out();
  const rows: string[][] = [];
  for (const event of ["transfer", "remove-leader"] as const) {
    for (const client of ["forward", "direct"] as const) {
      for (const writers of [1, 16]) {
        log(`gaps: ${event}, ${client} clients, ${writers} writer(s)`);
        const trials: GapTrial[] = [];
        for (let i = 0; i < TRIALS; i++) {
          const t = await gapTrial(event, client, writers);
          log(`  trial ${i + 1}: gap ${msHb(t.gapMs)}, baseline ${fmtMs(t.baselineMs)}, new leader after ${fmtMs(t.eventMs)}, ${t.commits} commits in the window, retries: ${retryText([t])}`);
          trials.push(t);
        }
        const gaps = trials.map((t) => t.gapMs);
        const base = trials.map((t) => t.baselineMs);
        const events = trials.map((t) => t.eventMs);
        rows.push([
          event === "transfer" ? "transferLeadership()" : "removeMember(leader)",
          client,
          String(writers),
          msHb(median(gaps)),
          msHb(Math.max(...gaps)),
          `${trials.filter((t) => t.gapMs <= 2 * HEARTBEAT_MS).length}/${trials.length}`,
          `${fmtMs(median(base))} / ${fmtMs(Math.max(...base))}`,
          `${fmtMs(median(events))} / ${fmtMs(Math.max(...events))}`,
          retryText(trials),
        ]);
      }
    }
  }
  out(table(["event", "clients", "writers", "gap: median", "max", "trials ≤ 2 HB", "baseline gap: median / max", "call to new leader: median / max", "retries, all trials"], rows));
}
out();
out(`total ${fmt((performance.now() - started) / 1000, 1)} s`);
