import { describe, expect, it } from "vitest";
import { MemoryNetwork, MemoryStorage, RaftNode } from "../src/index.js";
import type { StateMachine } from "../src/index.js";

class Register implements StateMachine<{ set: string }, string | null> {
  value: string | null = null;
  apply(cmd: { set: string }): string | null {
    const prev = this.value;
    this.value = cmd.set;
    return prev;
  }
}

describe("a 3-node cluster in memory", () => {
  it("elects a leader, commits from any node, and serves a linearizable read", async () => {
    const network = new MemoryNetwork();
    const ids = ["n1", "n2", "n3"];
    const cluster = ids.map((id) => {
      const sm = new Register();
      const node = new RaftNode({ id, peers: ids, stateMachine: sm, storage: new MemoryStorage(), transport: network.transport(id), tickMs: 10 });
      return { node, sm };
    });
    await Promise.all(cluster.map(({ node }) => node.start()));
    const { node, sm } = cluster[2]!;
    expect(await node.propose({ set: "hello" })).toBe(null);
    expect(await node.propose({ set: "world" })).toBe("hello");
    await node.read();
    expect(sm.value).toBe("world");
    const leaders = cluster.filter(({ node }) => node.isLeader);
    expect(leaders).toHaveLength(1);
    await Promise.all(cluster.map(({ node }) => node.stop()));
  });
});

describe("events observe, never steer", () => {
  it("a listener that throws is logged and the node carries on", async () => {
    const network = new MemoryNetwork();
    const logged: string[] = [];
    const logger = { debug() {}, info() {}, warn() {}, error: (m: string) => logged.push(m) };
    const node = new RaftNode({ id: "a", peers: ["a"], stateMachine: new Register(), storage: new MemoryStorage(), transport: network.transport("a"), tickMs: 5, logger });
    node.on("apply", () => {
      throw new Error("a bug in monitoring code");
    });
    await node.start();
    expect(await node.propose({ set: "x" })).toBe(null);
    expect(await node.propose({ set: "y" })).toBe("x");
    expect(logged.some((m) => m.includes("listener threw"))).toBe(true);
    await node.stop();
  });
});
