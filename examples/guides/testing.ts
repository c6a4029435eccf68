// The example of docs/testing.md: testing your own state machine under faults with the
// simulator, and checking a real cluster's history for linearizability.
// Run it with `npm run build && node dist/examples/guides/testing.js`.
import { MemoryNetwork, MemoryStorage, RaftNode, snapshotBytes, type ApplyMeta, type NodeId, type SnapshotData, type StateMachine } from "raftkit";
import { HistoryRecorder, Prng, checkLinearizable, runSimulation, type Model } from "raftkit/testing";

// ---------------------------------------------------------------- the state machine under test

export type CounterCommand = { readonly add: number };

/** A counter: `apply` returns the new total. Snapshots are exercised by the simulator too. */
export class Counter implements StateMachine<CounterCommand, number> {
  value = 0;
  private lastIndex = 0;

  apply(cmd: CounterCommand, meta: ApplyMeta): number {
    // An invariant check: a throw stops the node, and the simulation reports it as a failure.
    if (meta.index <= this.lastIndex) throw new Error(`index ${meta.index} applied after ${this.lastIndex}`);
    this.lastIndex = meta.index;
    this.value += cmd.add;
    return this.value;
  }

  snapshot(): Uint8Array {
    return new TextEncoder().encode(JSON.stringify({ value: this.value, lastIndex: this.lastIndex }));
  }

  // A small state: read it whole. A large one would stream it with snapshotChunks(data).
  async restore(data: SnapshotData): Promise<void> {
    const { value, lastIndex } = JSON.parse(new TextDecoder().decode(await snapshotBytes(data))) as { value: number; lastIndex: number };
    this.value = value;
    this.lastIndex = lastIndex;
  }
}

// ---------------------------------------------------------------- 1. the simulator

/**
 * Runs `seeds` simulations from seed `from`. Each is a 3-node cluster in virtual time
 * under seeded message loss, delay, duplication, partitions and crash-restarts, checked
 * for Raft's safety properties after every step, then healed and required to make progress.
 * Returns one line per failing seed.
 */
export async function simulate(from: number, seeds: number): Promise<string[]> {
  const failures: string[] = [];
  for (let seed = from; seed < from + seeds; seed++) {
    // The last incarnation of each node's state machine, to compare them at the end.
    const machines = new Map<NodeId, Counter>();
    const result = await runSimulation<CounterCommand, number>({
      seed,
      nodes: 3,
      createStateMachine: (id) => {
        const counter = new Counter();
        machines.set(id, counter);
        return counter;
      },
      nextCommand: (rng: Prng) => ({ add: 1 + rng.int(10) }), // drawn from the seed: replayable
      knobs: { membership: false }, // keep every node a voter, so all end with the same state
    });
    if (!result.ok) {
      failures.push(`seed ${seed}: ${result.failure}`);
      continue;
    }
    // After a passing run every node has applied the same log: the states must agree.
    const values = new Set([...machines.values()].map((m) => m.value));
    if (values.size !== 1) failures.push(`seed ${seed}: the nodes' counters diverged: ${[...values].join(", ")}`);
  }
  return failures;
}

// ---------------------------------------------------------------- 2. linearizability

/** The counter's sequential specification: what each operation must return, in some order. */
export type CounterInput = { readonly op: "add"; readonly add: number } | { readonly op: "get" };

export const counterModel: Model<number, CounterInput, number> = {
  init: () => 0,
  step: (state, input, output) => {
    const next = input.op === "add" ? state + input.add : state;
    // `output` is undefined when the outcome is unknown (a timeout): any order is allowed.
    return { ok: output === undefined || output === next, state: next };
  },
  readOnly: (input) => input.op === "get",
  describeOperation: (input, output) => `${input.op === "add" ? `add(${input.add})` : "get()"} -> ${output ?? "?"}`,
};

/**
 * Three clients run adds and linearizable reads against a real (in-memory) cluster while
 * the leader is cut off for a while; every call is recorded, then the whole history is
 * checked against `counterModel`.
 */
export async function checkCluster(seed: number): Promise<ReturnType<typeof checkLinearizable>> {
  const rng = new Prng(seed);
  const network = new MemoryNetwork();
  const ids = ["n1", "n2", "n3"];
  const cluster = ids.map((id) => {
    const counter = new Counter();
    const node = new RaftNode({ id, peers: ids, stateMachine: counter, storage: new MemoryStorage(), transport: network.transport(id), tickMs: 5 });
    return { node, counter };
  });
  await Promise.all(cluster.map(({ node }) => node.start()));

  const recorder = new HistoryRecorder<CounterInput, number>();
  const client = async (clientId: string): Promise<void> => {
    for (let i = 0; i < 30; i++) {
      const { node, counter } = cluster[rng.int(cluster.length)]!;
      if (rng.chance(0.5)) {
        const add = 1 + rng.int(5);
        const op = recorder.invoke(clientId, { op: "add", add });
        try {
          recorder.complete(op, await node.propose({ add }, { timeoutMs: 300 }));
        } catch {
          recorder.unknown(op); // TIMEOUT, DROPPED...: it may or may not have happened
        }
      } else {
        const op = recorder.invoke(clientId, { op: "get" });
        try {
          await node.read({ timeoutMs: 300 });
          recorder.complete(op, counter.value);
        } catch {
          recorder.unknown(op); // a read that failed returned nothing
        }
      }
    }
  };
  const faults = (async () => {
    await new Promise((resolve) => setTimeout(resolve, 100));
    const leader = cluster.find(({ node }) => node.isLeader)?.node.id;
    if (leader !== undefined) network.isolate(leader); // a new leader takes over; the old one's calls time out
    await new Promise((resolve) => setTimeout(resolve, 300));
    network.heal();
  })();
  await Promise.all([client("c1"), client("c2"), client("c3"), faults]);
  await Promise.all(cluster.map(({ node }) => node.stop()));
  return checkLinearizable(recorder.history(), counterModel, { timeBudgetMs: 10_000 });
}

export async function main(): Promise<void> {
  const failures = await simulate(1, 20);
  console.log(`simulation: ${20 - failures.length} passed, ${failures.length} failed`);
  for (const f of failures) console.log(f);
  const result = await checkCluster(7);
  console.log(`linearizability: ${result.outcome}`);
  if (result.outcome === "invalid") console.log(result.message);
  if (failures.length > 0 || result.outcome !== "valid") process.exitCode = 1;
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
