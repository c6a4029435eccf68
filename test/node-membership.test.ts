import { describe, expect, it } from "vitest";
import { KvStateMachine, MemoryNetwork, MemoryStorage, RaftNode, type KvCommand, type KvResult } from "../src/index.js";

type KvNode = RaftNode<KvCommand, KvResult>;

async function until(cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 5));
  }
}

class Cluster {
  readonly network = new MemoryNetwork();
  readonly nodes = new Map<string, KvNode>();
  readonly kvs = new Map<string, KvStateMachine>();

  async add(id: string, peers: string[], extra: Record<string, unknown> = {}): Promise<KvNode> {
    const kv = new KvStateMachine();
    const node = new RaftNode<KvCommand, KvResult>({ id, peers, stateMachine: kv, storage: new MemoryStorage(), transport: this.network.transport(id), tickMs: 5, ...extra });
    this.nodes.set(id, node);
    this.kvs.set(id, kv);
    await node.start();
    return node;
  }

  /** n1, n2 and n3 as voters, n1 elected. */
  static async ofThreeLedByN1(): Promise<Cluster> {
    const c = new Cluster();
    const ids = ["n1", "n2", "n3"];
    for (const id of ids) await c.add(id, ids);
    c.nodes.get("n1")!.campaign();
    await until(() => c.nodes.get("n1")!.isLeader);
    return c;
  }

  leader(): KvNode | undefined {
    return [...this.nodes.values()].find((n) => n.isLeader);
  }

  async stop(): Promise<void> {
    await Promise.all([...this.nodes.values()].map((n) => n.stop()));
  }
}

describe("membership changes (dissertation §4.3)", () => {
  it("grows from 1 to 5 voters through learners, and shrinks back", async () => {
    const c = new Cluster();
    const first = await c.add("n1", ["n1"]);
    await until(() => first.isLeader);
    await first.propose({ op: "put", key: "a", value: "1" });
    for (const id of ["n2", "n3", "n4", "n5"]) {
      await c.add(id, []); // starts empty and waits to be added
      const config = await c.leader()!.addMember(id);
      expect(config.voters).toContain(id);
      expect(config.outgoingVoters).toEqual([]);
    }
    expect(c.leader()!.status().voters).toHaveLength(5);
    await c.leader()!.propose({ op: "put", key: "b", value: "2" });
    for (const id of ["n5", "n4", "n3", "n2"]) {
      const leader = c.leader()!;
      const config = await leader.removeMember(id);
      expect(config.voters).not.toContain(id);
    }
    await until(() => c.leader() !== undefined);
    const leader = c.leader()!;
    expect(leader.status().voters).toHaveLength(1);
    await leader.propose({ op: "put", key: "c", value: "3" });
    await leader.read();
    expect(c.kvs.get(leader.id)!.list({}).map((e) => e.key)).toEqual(["a", "b", "c"]);
    await c.stop();
  }, 30_000);

  it("replaces two voters at once through a joint configuration", async () => {
    const c = await Cluster.ofThreeLedByN1();
    await c.add("n4", []);
    await c.add("n5", []);
    const leader = c.nodes.get("n1")!;
    await leader.changeMembership({ addLearners: ["n4", "n5"] });
    await until(() => leader.status().peers.filter((p) => p.id === "n4" || p.id === "n5").every((p) => p.matchIndex >= leader.status().commitIndex));
    const seen: boolean[] = [];
    leader.on("config", (cfg) => seen.push(cfg.outgoingVoters.length > 0));
    const config = await leader.changeMembership({ addVoters: ["n4", "n5"], removeVoters: ["n2", "n3"] });
    expect([...config.voters].sort()).toEqual(["n1", "n4", "n5"]);
    expect(seen).toEqual([true, false]); // joint first, then left automatically
    await leader.propose({ op: "put", key: "k", value: "v" });
    await c.stop();
  });

  it("refuses a second change while one is in progress, and invalid changes", async () => {
    const c = await Cluster.ofThreeLedByN1();
    const leader = c.nodes.get("n1")!;
    await leader.propose({ op: "put", key: "x", value: "y" });
    const first = leader.changeMembership({ removeVoters: ["n3"] });
    await expect(leader.changeMembership({ removeVoters: ["n2"] })).rejects.toMatchObject({ code: "BUSY" });
    await first;
    await expect(leader.changeMembership({ removeVoters: ["nope"] })).rejects.toMatchObject({ code: "INVALID_STATE" });
    await expect(c.nodes.get("n2")!.changeMembership({ addLearners: ["z"] })).rejects.toMatchObject({ code: "NOT_LEADER", leaderId: "n1" });
    await c.stop();
  });

  it("removing the leader hands over promptly to another voter", async () => {
    const c = await Cluster.ofThreeLedByN1();
    const old = c.nodes.get("n1")!;
    await old.propose({ op: "put", key: "x", value: "y" });
    await old.removeMember("n1");
    await until(() => c.nodes.get("n2")!.isLeader || c.nodes.get("n3")!.isLeader, 2_000);
    expect(old.isLeader).toBe(false);
    const leader = c.leader()!;
    expect(leader.status().voters).not.toContain("n1");
    await leader.propose({ op: "put", key: "after", value: "removal" });
    await c.stop();
  });

  it("a learner that never catches up is not promoted", async () => {
    const c = new Cluster();
    await c.add("n1", ["n1"]);
    await until(() => c.nodes.get("n1")!.isLeader);
    const leader = c.nodes.get("n1")!;
    for (let i = 0; i < 300; i++) void leader.propose({ op: "put", key: `k${i}`, value: "v" });
    await leader.propose({ op: "put", key: "last", value: "v" });
    // n9 is never started: it cannot catch up.
    await expect(leader.addMember("n9", undefined, { timeoutMs: 300 })).rejects.toMatchObject({ code: "TIMEOUT" });
    expect(leader.status().learners).toEqual(["n9"]);
    expect(leader.status().voters).toEqual(["n1"]);
    await c.stop();
  });
});

it("a learner that never answered is not promoted, however short the log", async () => {
  const c = new Cluster();
  await c.add("n1", ["n1"]);
  await until(() => c.nodes.get("n1")!.isLeader);
  const leader = c.nodes.get("n1")!;
  // Only the no-op is in the log: within catchUpEntries of anything, yet n9 has nothing.
  await expect(leader.addMember("n9", undefined, { timeoutMs: 200 })).rejects.toMatchObject({ code: "TIMEOUT" });
  expect(leader.status().voters).toEqual(["n1"]);
  await c.stop();
});

describe("leadership transfer (dissertation §3.10)", () => {
  it("moves leadership to the chosen voter", async () => {
    const c = await Cluster.ofThreeLedByN1();
    const leader = c.nodes.get("n1")!;
    await leader.propose({ op: "put", key: "x", value: "y" });
    expect(await leader.transferLeadership("n3")).toBe("n3");
    await until(() => c.nodes.get("n3")!.isLeader);
    await c.nodes.get("n3")!.propose({ op: "put", key: "x", value: "z" });
    await c.stop();
  });

  it("gives up after an election timeout when the target cannot take over, and the old leader resumes", async () => {
    const c = await Cluster.ofThreeLedByN1();
    const leader = c.nodes.get("n1")!;
    await leader.propose({ op: "put", key: "x", value: "y" });
    c.network.disconnect("n1", "n3");
    await expect(leader.transferLeadership("n3")).rejects.toMatchObject({ code: "TIMEOUT" });
    expect(leader.isLeader).toBe(true);
    await leader.propose({ op: "put", key: "x", value: "again" });
    await c.stop();
  });
});

describe("forwarded requests across a leader change", () => {
  it("a forwarded proposal the old leader never answered settles when the leader changes, not at its deadline", async () => {
    const c = await Cluster.ofThreeLedByN1();
    await until(() => c.nodes.get("n2")!.leaderId === "n1");
    c.network.disconnect("n1", "n2"); // n2 still believes in n1 until its election timeout
    const started = Date.now();
    const outcome = c.nodes.get("n2")!.propose({ op: "put", key: "k", value: "v" }, { timeoutMs: 20_000 });
    await expect(outcome).rejects.toMatchObject({ code: "TIMEOUT", message: expect.stringContaining("leader changed") });
    expect(Date.now() - started).toBeLessThan(5_000);
    await c.stop();
  });
});
