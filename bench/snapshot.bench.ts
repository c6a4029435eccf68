// Snapshots at scale (issue 5): a 1,000,000-key KvStateMachine.
//  1. the longest pause in commits while the leader takes a snapshot (proposals keep
//     flowing one at a time; the pause is the slowest commit during the snapshot);
//  2. the time to bring a new follower up to date over TCP on loopback, which needs the
//     whole snapshot because the leader compacted its log, and the transfer rate.
// Each node stores its log and snapshots in LevelStorage (fsync on) in a temporary
// directory: snapshots stream from the state machine to a file, from the file to the
// follower's socket, and from there to the follower's file and state machine.
// Run: npm run bench:snapshot [-- keys]
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KvStateMachine, LevelStorage, RaftNode, TcpTransport, collectChunks, type KvCommand, type KvResult, type RaftStorage, type Snapshot, type SnapshotMeta } from "raftkit";
import { loopbackPeers } from "../tools/ports.js";

/** When the chunks of the first snapshot written arrived: the transfer as the follower sees it. */
const arrival = { first: 0, last: 0, bytes: 0 };

/** LevelStorage for the new follower, timing the chunks of the snapshot it receives. */
function timedStorage(inner: LevelStorage): RaftStorage {
  return {
    capabilities: inner.capabilities,
    load: () => inner.load(),
    save: (batch) => inner.save(batch),
    compact: (snapshot, to, term) => inner.compact(snapshot, to, term),
    close: () => inner.close(),
    writeSnapshot(meta: SnapshotMeta, chunks: AsyncIterable<Uint8Array>): Promise<Snapshot> {
      return inner.writeSnapshot(meta, (async function* () {
        for await (const chunk of chunks) {
          arrival.first ||= performance.now();
          arrival.bytes += chunk.byteLength;
          yield chunk;
        }
        arrival.last = performance.now();
      })());
    },
  };
}

const KEYS = Number(process.argv[2] ?? 1_000_000);
const ids = ["n1", "n2", "n3"];

const { peers } = await loopbackPeers(ids);
const dir = await mkdtemp(join(tmpdir(), "raftkit-snapshot-bench-"));
function makeNode(id: string, timed = false): { node: RaftNode<KvCommand, KvResult>; kv: KvStateMachine } {
  const kv = new KvStateMachine();
  const level = new LevelStorage({ location: join(dir, id), nodeId: id });
  const transport = new TcpTransport({ id, listen: peers[id]!, peers });
  const node = new RaftNode<KvCommand, KvResult>({
    id, peers: ids, stateMachine: kv, storage: timed ? timedStorage(level) : level, transport,
    tickMs: 50, electionTicks: 20, snapshotThreshold: 0, trailingEntries: 1000, snapshotChunkBytes: 1 << 20, requestTimeoutMs: 60_000,
  });
  return { node, kv };
}

const a = makeNode("n1");
const b = makeNode("n2");
await Promise.all([a.node.start(), b.node.start()]);
a.node.campaign();
while (!a.node.isLeader) await new Promise((r) => setTimeout(r, 10));

console.log(`loading ${KEYS.toLocaleString("en-US")} keys (n3 is down)...`);
const value = "v".repeat(32);
for (let i = 0; i < KEYS; i += 2000) {
  const batch: Promise<KvResult>[] = [];
  for (let j = i; j < Math.min(KEYS, i + 2000); j++) batch.push(a.node.propose({ op: "put", key: `key/${String(j).padStart(8, "0")}`, value }));
  await Promise.all(batch);
}

// 1. Commit pauses while a snapshot is taken.
let running = true;
const latencies: number[] = [];
const writer = (async () => {
  let i = 0;
  while (running) {
    const t = performance.now();
    await a.node.propose({ op: "put", key: `live/${i++ % 100}`, value });
    latencies.push(performance.now() - t);
  }
})();
await new Promise((r) => setTimeout(r, 300));
const before = latencies.length;
const t0 = performance.now();
const snapshotIndex = await a.node.snapshot();
const snapMs = performance.now() - t0;
await new Promise((r) => setTimeout(r, 300));
running = false;
await writer;
const during = latencies.slice(before);
const sorted = [...during].sort((x, y) => x - y);
console.log(`snapshot at index ${snapshotIndex} took ${snapMs.toFixed(0)} ms; commits during it: ${during.length}, median ${sorted[Math.floor(sorted.length / 2)]?.toFixed(2)} ms, longest ${sorted.at(-1)?.toFixed(1)} ms`);

// 2. A follower that needs the whole snapshot.
const c = makeNode("n3", true);
let installedAt = 0;
c.node.on("snapshot", () => (installedAt ||= performance.now()));
const t1 = performance.now();
await c.node.start();
const target = a.node.status().commitIndex;
while (c.node.status().appliedIndex < target) await new Promise((r) => setTimeout(r, 5));
const catchUpMs = performance.now() - t1;
const bytes = (await collectChunks(a.kv.snapshot())).byteLength;
const transferMs = arrival.last - arrival.first;
console.log(
  `new follower caught up in ${catchUpMs.toFixed(0)} ms; snapshot ${(bytes / 1e6).toFixed(1)} MB; ` +
    `first to last chunk on the follower ${transferMs.toFixed(0)} ms => ${(arrival.bytes / 1e6 / (transferMs / 1000)).toFixed(1)} MB/s; ` +
    `then stored and restored in ${(installedAt - arrival.last).toFixed(0)} ms`,
);
console.log(`keys on the new follower: ${c.kv.size.toLocaleString("en-US")}`);
await Promise.all([a.node.stop(), b.node.stop(), c.node.stop()]);
await rm(dir, { recursive: true, force: true });
