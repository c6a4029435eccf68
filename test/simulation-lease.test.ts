import { describe, expect, it } from "vitest";
import { KvStateMachine, RaftNode, type KvCommand, type KvResult } from "../src/index.js";
import { Prng, RELIABLE_NETWORK, runSimulation, Scheduler, SimDisk, SimNetwork, SimStorage, type NodeClock, type SimulationKnobs } from "../src/testing/index.js";

// Lease reads (dissertation §6.4.1) rely on bounded clock drift: the leader serves a read
// without a round trip for `(electionTicks - 2) × (1 - maxClockDrift)` ticks of its own clock
// after a majority acknowledged a heartbeat, while those followers refuse votes for an
// election timeout of theirs. Here every read is a lease read, under a fault schedule that
// isolates leaders often, with the nodes' clocks drifting just inside the allowance (where
// raftkit promises linearizable reads) and far outside it (where it promises nothing).

const allowance = 0.1;
const faultHeavy: Partial<SimulationKnobs> = {
  leaseReads: 1,
  maxClockDrift: allowance,
  partitions: true,
  crashes: false,
  membership: false,
  readEveryMs: 5,
  faultEveryMs: 150,
};
const seeds = Array.from({ length: 20 }, (_, i) => i + 1);

describe("lease reads under clock drift", () => {
  it("stay linearizable with drift just inside maxClockDrift", async () => {
    const failures: string[] = [];
    let leaseReadsServed = 0;
    for (const seed of seeds) {
      const r = await runSimulation({ seed, nodes: 3, knobs: { ...faultHeavy, clockDrift: 0.99 * allowance } });
      leaseReadsServed += r.stats.leaseReadsServed;
      if (!r.ok) failures.push(`seed ${seed}: ${r.failure}`);
    }
    expect(failures).toEqual([]);
    expect(leaseReadsServed).toBeGreaterThan(seeds.length * 50);
  }, 120_000);

  it("may serve stale reads with drift far outside maxClockDrift, and break nothing else", async () => {
    // Clocks at rates from 0.5 to 1.5: a leader whose clock runs at half speed holds its
    // lease for twice as long as it believes, while fast followers stop protecting it early
    // and elect a new leader, which commits writes that the old one's lease reads miss.
    // The expected consequence, found when this test was written: seed 16 (n2 at rate 0.5
    // leads; it is isolated at 917.7 ms; n1, at rate 1.03, leads term 3 at 1014.9 ms and
    // commits a write at index 44, which resolves) fails with
    //   stale lease read on n2: applied 42 but a write at 44 completed before the read began
    // at 1029.2 ms, within the 7 ticks of n2's slow clock (140 virtual ms) that its lease
    // lasts. With the drift inside the allowance (the test above) the same seed passes.
    // Whether a given seed finds a stale read depends on the schedule, so only the kind of
    // failure is asserted: excess drift voids the read guarantee, never Raft's safety
    // properties, exactly-once application, or liveness.
    const failures: string[] = [];
    for (const seed of seeds) {
      const r = await runSimulation({ seed, nodes: 3, knobs: { ...faultHeavy, clockDrift: 1 } });
      if (!r.ok) failures.push(`seed ${seed}: ${r.failure}`);
    }
    console.log(`lease reads with drift 1 (allowance ${allowance}): ${failures.length} of ${seeds.length} seeds served a stale read${failures.length > 0 ? `\n  ${failures.join("\n  ")}` : ""}`);
    for (const f of failures) expect(f).toMatch(/stale lease read|linearizability/);
  }, 120_000);
});

/**
 * One scripted run in virtual time, with no clock drift at all: n1..n3 elect a leader L and
 * commit x=1; F2 loses its links with L (not with F1) and the cluster idles, so F2's
 * pre-votes keep failing (F1 heard from L recently); after `offsetMs` more, F1 crashes,
 * its links with L go too, and it restarts at once. Returns what L's lease read saw after
 * F2, if elected, committed x=2 within L's lease; null when the schedule did not get there.
 */
async function restartedVoterScenario(offsetMs: number): Promise<string | null> {
  const scheduler = new Scheduler();
  const rng = new Prng(7);
  const network = new SimNetwork(scheduler, rng.fork(), RELIABLE_NETWORK);
  const ids = ["n1", "n2", "n3"];
  const disks = new Map(ids.map((id) => [id, new SimDisk()]));
  const nodes = new Map<string, { node: RaftNode<KvCommand, KvResult>; kv: KvStateMachine; clock: NodeClock; storage: SimStorage }>();
  const start = async (id: string): Promise<void> => {
    const clock = scheduler.clock();
    const storage = new SimStorage(disks.get(id)!, scheduler, rng.fork(), 0.1, 0.5);
    const kv = new KvStateMachine();
    const jitter = rng.fork();
    const node = new RaftNode<KvCommand, KvResult>({
      id, peers: ids, stateMachine: kv, storage, transport: network.transport(id), clock,
      random: () => jitter.next(), tickMs: 10, electionTicks: 10, heartbeatTicks: 1,
    });
    nodes.set(id, { node, kv, clock, storage });
    await node.start();
  };
  const runUntil = async (done: () => boolean, ms: number): Promise<void> => {
    const end = scheduler.now + ms;
    while (!done() && scheduler.now < end && scheduler.runNext()) await new Promise<void>((r) => setImmediate(r));
  };
  for (const id of ids) await start(id);
  await runUntil(() => false, 500);
  const leader = ids.find((id) => nodes.get(id)!.node.isLeader);
  if (leader === undefined) return null;
  const [f1, f2] = ids.filter((id) => id !== leader) as [string, string];
  void nodes.get(leader)!.node.propose({ op: "put", key: "x", value: "1" }).catch(() => {});
  await runUntil(() => false, 100);
  network.block(leader, f2);
  network.block(f2, leader);
  await runUntil(() => false, 300 + offsetMs);
  const crashed = nodes.get(f1)!;
  crashed.clock.kill();
  crashed.storage.crash();
  network.detach(f1);
  network.block(leader, f1);
  network.block(f1, leader);
  await start(f1);
  const restartedAt = scheduler.now;
  // L's lease lasts floor((10 - 2) × 0.9) = 7 ticks from a heartbeat F1 acknowledged before it crashed.
  await runUntil(() => nodes.get(f2)!.node.isLeader, 70);
  if (!nodes.get(f2)!.node.isLeader) return null;
  let written = false;
  void nodes.get(f2)!.node.propose({ op: "put", key: "x", value: "2" }).then(() => (written = true), () => {});
  await runUntil(() => written, 70 - (scheduler.now - restartedAt));
  if (!written) return null;
  let served = false;
  void nodes.get(leader)!.node.read({ mode: "lease", timeoutMs: 1 }).then(() => (served = true), () => {});
  await new Promise<void>((r) => setImmediate(r));
  return served ? `offset ${offsetMs} ms: ${leader}'s lease read saw x=${String(nodes.get(leader)!.kv.get("x"))} after x=2 resolved on ${f2}` : null;
}

describe("lease reads across a voter's restart", () => {
  // The lease assumes that every follower whose acknowledgement renewed it refuses votes for
  // an election timeout. A follower that crashes and restarts must keep that promise too,
  // or a node that has every entry (the cluster was idle) is elected with its vote while the
  // old leader still serves lease reads: before the core counted a node's start as having
  // just heard from a leader, offsets 30..80 ms here had the old leader (n3) serve x=1 by
  // lease after x=2 resolved on the new leader (n2), with no clock drift at all.
  it("stay linearizable when a voter that renewed the lease restarts at once", async () => {
    const stale: string[] = [];
    for (let offset = 0; offset <= 200; offset += 10) {
      const r = await restartedVoterScenario(offset);
      if (r !== null) stale.push(r);
    }
    expect(stale).toEqual([]);
  }, 60_000);
});
