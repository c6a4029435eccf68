// Proposals resolve when their entry is applied: forwarded from a follower, and without
// waiting for the write of the commit index.
import { describe, expect, it } from "vitest";
import { KvStateMachine, MemoryNetwork, MemoryStorage, RaftNode, type KvCommand, type KvResult, type Message, type MessageHandler, type StorageBatch, type Transport } from "../src/index.js";

/**
 * Holds the leader's answers to forwarded proposals until the AppendEntries that commits
 * their entry arrives, then delivers both in one turn: the follower learns where its
 * proposal landed in the same Ready that commits it.
 */
class LateAnswers implements Transport {
  private held: (Message & { type: "ProposeResponse" })[] = [];
  constructor(private readonly inner: Transport) {}

  start(handler: MessageHandler): Promise<void> {
    return this.inner.start((m) => {
      if (m.type === "ProposeResponse") {
        this.held.push(m);
        return;
      }
      if (m.type === "AppendEntries") {
        const ready = this.held.filter((r) => r.index > 0 && r.index <= m.commit);
        this.held = this.held.filter((r) => !ready.includes(r));
        for (const r of ready) handler(r);
      }
      handler(m);
    });
  }

  send(message: Message): void {
    this.inner.send(message);
  }

  stop(): Promise<void> {
    return this.inner.stop();
  }
}

describe("forwarded proposals", () => {
  it("resolve with their result when the leader's answer arrives together with the commit", async () => {
    const network = new MemoryNetwork();
    const ids = ["n1", "n2", "n3"];
    const nodes = ids.map(
      (id) =>
        new RaftNode<KvCommand, KvResult>({
          id,
          peers: ids,
          stateMachine: new KvStateMachine(),
          storage: new MemoryStorage(),
          transport: id === "n2" ? new LateAnswers(network.transport(id)) : network.transport(id),
          tickMs: 5,
        }),
    );
    await Promise.all(nodes.map((n) => n.start()));
    nodes[0]!.campaign();
    while (!nodes[0]!.isLeader) await new Promise((r) => setTimeout(r, 5));
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => nodes[1]!.propose({ op: "put", key: `k${i}`, value: "v" })));
    expect(results).toHaveLength(20);
    for (const r of results) expect(r).toMatchObject({ ok: true });
    await Promise.all(nodes.map((n) => n.stop()));
  });
});

/** MemoryStorage whose commit-index-only writes (`sync: false`) wait until released. */
class HeldCommitWrites extends MemoryStorage {
  held: (() => void)[] = [];
  override async save(batch: StorageBatch): Promise<void> {
    if (batch.sync === false) await new Promise<void>((resolve) => this.held.push(resolve));
    return super.save(batch);
  }
  release(): void {
    for (const r of this.held.splice(0)) r();
  }
}

describe("the commit index write", () => {
  it("does not hold up applying: a proposal resolves while the write of its commit index is still under way", async () => {
    const storage = new HeldCommitWrites();
    const node = new RaftNode<KvCommand, KvResult>({ id: "solo", peers: ["solo"], stateMachine: new KvStateMachine(), storage, transport: new MemoryNetwork().transport("solo"), tickMs: 5 });
    await node.start();
    node.campaign();
    while (!node.isLeader) await new Promise((r) => setTimeout(r, 5));
    storage.release();
    const result = node.propose({ op: "put", key: "k", value: "v" });
    const settled = await Promise.race([result.then(() => "resolved"), new Promise((r) => setTimeout(() => r("still waiting"), 1000))]);
    expect(settled).toBe("resolved");
    expect(storage.held.length).toBeGreaterThan(0); // the commit index write is still held
    storage.release();
    await expect(node.propose({ op: "put", key: "k", value: "w" })).resolves.toMatchObject({ ok: true });
    const stopping = node.stop();
    storage.release();
    await stopping;
  });
});
