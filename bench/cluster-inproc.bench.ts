// An in-process 3-node cluster (MemoryNetwork, MemoryStorage, KvStateMachine with kvCodec) committing
// puts of 100-byte values with 1,000 proposals in flight. One mitata iteration proposes
// 1,000 puts on the leader and waits for all of them to be committed and applied.
//   npm run build && npx tsx bench/cluster-inproc.bench.ts
import { bench, do_not_optimize, run, summary } from "mitata";
import { KvStateMachine, MemoryNetwork, MemoryStorage, RaftNode, kvCodec, type KvCommand, type KvResult } from "raftkit";

const IN_FLIGHT = 1000;
const value = "x".repeat(100);

async function startCluster(): Promise<RaftNode<KvCommand, KvResult>[]> {
  const network = new MemoryNetwork();
  const ids = ["n1", "n2", "n3"];
  const nodes = ids.map(
    (id) => new RaftNode({ id, peers: ids, stateMachine: new KvStateMachine(), codec: kvCodec, storage: new MemoryStorage(), transport: network.transport(id), tickMs: 20 }),
  );
  await Promise.all(nodes.map((n) => n.start()));
  nodes[0]!.campaign();
  while (!nodes.some((n) => n.isLeader)) await new Promise((r) => setTimeout(r, 5));
  return nodes;
}

const nodes = await startCluster();
const leader = nodes.find((n) => n.isLeader)!;
const follower = nodes.find((n) => !n.isLeader)!;
let seq = 0;

async function burst(node: RaftNode<KvCommand, KvResult>): Promise<void> {
  const all: Promise<KvResult>[] = new Array(IN_FLIGHT);
  for (let i = 0; i < IN_FLIGHT; i++) all[i] = node.propose({ op: "put", key: `k${seq++ % 10000}`, value });
  do_not_optimize(await Promise.all(all));
}

summary(() => {
  bench(`${IN_FLIGHT} puts in flight, proposed on the leader`, async () => burst(leader));
  bench(`${IN_FLIGHT} puts in flight, proposed on a follower (forwarded)`, async () => burst(follower));
});

const result = await run({ format: process.env.NO_COLOR ? "mitata" : "mitata" });
for (const trial of result.benchmarks) {
  for (const r of trial.runs) {
    const stats = r.stats;
    if (stats) console.log(`${trial.alias}: median ${(stats.p50 / 1e6).toFixed(2)} ms per ${IN_FLIGHT} => ${Math.round(IN_FLIGHT / (stats.p50 / 1e9)).toLocaleString("en-US")} committed puts/s`);
  }
}
await Promise.all(nodes.map((n) => n.stop()));
