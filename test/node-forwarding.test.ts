// Proposals made on a follower are forwarded to the leader; the follower resolves them
// when it applies the entry the leader appended for them.
import { describe, expect, it } from "vitest";
import { KvStateMachine, MemoryNetwork, MemoryStorage, RaftNode, type KvCommand, type KvResult, type Message, type MessageHandler, type Transport } from "../src/index.js";

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
