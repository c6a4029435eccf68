import { describe, expect, it } from "vitest";
import { KvStateMachine, MemoryNetwork, MemoryStorage, RaftNode, type KvCommand, type KvResult, type Snapshot, type SnapshotMeta } from "../src/index.js";

type KvNode = RaftNode<KvCommand, KvResult>;

function makeNode(id: string, ids: string[], network: MemoryNetwork, storage: MemoryStorage, kv: KvStateMachine, extra: Partial<ConstructorParameters<typeof RaftNode<KvCommand, KvResult>>[0]> = {}): KvNode {
  return new RaftNode<KvCommand, KvResult>({ id, peers: ids, stateMachine: kv, storage, transport: network.transport(id), tickMs: 5, ...extra });
}

/** MemoryStorage that records the chunk sizes of every snapshot written. */
class ChunkRecordingStorage extends MemoryStorage {
  readonly writes: number[][] = [];
  override writeSnapshot(meta: SnapshotMeta, chunks: AsyncIterable<Uint8Array>): Promise<Snapshot> {
    const record: number[] = [];
    this.writes.push(record);
    return super.writeSnapshot(meta, (async function* () {
      for await (const chunk of chunks) {
        record.push(chunk.byteLength);
        yield chunk;
      }
    })());
  }
}

async function until(cond: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe("snapshots and log compaction", () => {
  it("a follower that was away for 100,000 entries catches up through a snapshot", async () => {
    const network = new MemoryNetwork();
    const ids = ["n1", "n2", "n3"];
    const kvs = ids.map(() => new KvStateMachine());
    const followerStorage = new ChunkRecordingStorage();
    const storages = [new MemoryStorage(), new MemoryStorage(), followerStorage];
    const chunkBytes = 16 * 1024;
    const nodes = ids.map((id, i) => makeNode(id, ids, network, storages[i]!, kvs[i]!, { snapshotThreshold: 20_000, trailingEntries: 1_000, snapshotChunkBytes: chunkBytes }));
    await Promise.all(nodes.map((n) => n.start()));
    nodes[0]!.campaign();
    await until(() => nodes[0]!.isLeader);
    network.isolate("n3");
    const installed: number[] = [];
    nodes[2]!.on("snapshot", (index) => installed.push(index));
    for (let batch = 0; batch < 100; batch++) {
      await Promise.all(Array.from({ length: 1000 }, (_, i) => nodes[0]!.propose({ op: "put", key: `k${(batch * 1000 + i) % 5000}`, value: `v${batch}-${i}` })));
      // In memory the whole cluster runs on microtasks; clients over a network would let
      // the event loop turn, and with it the snapshot serialisation (which yields to it).
      await new Promise((r) => setImmediate(r));
    }
    const leaderStatus = nodes[0]!.status();
    expect(leaderStatus.commitIndex).toBeGreaterThan(100_000);
    // The leader compacted: its log no longer reaches back to where n3 stopped.
    expect(leaderStatus.lastIndex - leaderStatus.commitIndex).toBeLessThan(1000);
    network.heal();
    await until(() => nodes[2]!.status().appliedIndex >= leaderStatus.commitIndex);
    expect(installed.length).toBeGreaterThan(0);
    expect(kvs[2]!.list({})).toEqual(kvs[0]!.list({}));
    // The snapshot streamed into n3's storage chunk by chunk as it arrived, never whole.
    const transfer = followerStorage.writes.find((w) => w.length > 2 && w.every((n) => n <= chunkBytes));
    expect(transfer?.filter((n) => n === chunkBytes).length).toBeGreaterThan(2);
    await Promise.all(nodes.map((n) => n.stop()));
  }, 60_000);

  it("restarts from a snapshot plus the log tail", async () => {
    const network = new MemoryNetwork();
    const storage = new MemoryStorage();
    const kv = new KvStateMachine();
    const node = makeNode("solo", ["solo"], network, storage, kv, { snapshotThreshold: 50, trailingEntries: 10 });
    await node.start();
    for (let i = 0; i < 120; i++) await node.propose({ op: "put", key: `k${i % 7}`, value: `v${i}` });
    const taken = await node.snapshot();
    for (let i = 120; i < 130; i++) await node.propose({ op: "put", key: `k${i % 7}`, value: `v${i}` });
    const before = kv.list({});
    await node.stop();
    const stored = await storage.load();
    expect(stored.snapshot?.meta.index).toBe(taken);
    expect(stored.firstIndex).toBe(taken - 10 + 1);

    const kv2 = new KvStateMachine();
    const again = makeNode("solo", ["solo"], network, storage, kv2);
    await again.start();
    await again.read();
    expect(kv2.list({})).toEqual(before);
    expect(await again.propose({ op: "put", key: "after", value: "restart" })).toEqual({ ok: true, previous: null });
    await again.stop();
  });

  it("snapshot() rejects when the state machine cannot snapshot", async () => {
    const network = new MemoryNetwork();
    const node = new RaftNode({ id: "a", peers: ["a"], stateMachine: { apply: () => 1 }, storage: new MemoryStorage(), transport: network.transport("a") });
    await node.start();
    await expect(node.snapshot()).rejects.toMatchObject({ code: "INVALID_STATE" });
    await node.stop();
  });
});
