// Raft paper: Figure 2 (rules for leaders: commitIndex), §5.3, §5.4.2 and Figure 8.
import { describe, expect, it } from "vitest";
import { Network, drain, item, log, newRaft, ofType } from "./harness.js";

describe("leader commit rules", () => {
  it("§5.4.2 (Figure 8): an old-term entry on a majority is not committed until an entry of the leader's term is", () => {
    // s1 and s2 hold entry 2 of term 2; s1 becomes leader of term 4 and appends its no-op (3@4).
    const peers = ["s1", "s2", "s3", "s4", "s5"];
    const net = new Network([
      newRaft("s1", { peers, term: 3, commit: 1, entries: log(1, 2), options: { maxEntriesPerMessage: 1 } }),
      newRaft("s2", { peers, term: 3, commit: 1, entries: log(1, 2) }),
      newRaft("s3", { peers, term: 3, commit: 1, entries: log(1) }),
      newRaft("s4", { peers, term: 3, commit: 1, entries: log(1) }),
      newRaft("s5", { peers, term: 3, commit: 1, entries: log(1) }),
    ]);
    const s1 = net.get("s1");
    const s3 = net.get("s3");
    net.drop((m) => m.type === "AppendEntries" && (m.to === "s4" || m.to === "s5"));
    // s3 gets entry 2 (its first probe, carrying 3@4, is rejected), but not yet entry 3.
    net.hold((m) => m.type === "AppendEntries" && m.to === "s3" && s3.log.term(2) === 2 && m.entries.some((e) => e.term === 4));
    net.elect("s1");
    expect(s1.role).toBe("leader");
    expect(s1.term).toBe(4);
    expect(s1.progress.get("s2")!.match).toBe(3);
    expect(s1.progress.get("s3")!.match).toBe(2);
    // Entry 2 is on s1, s2 and s3, a majority, but it is of term 2: not committed.
    expect(s1.log.committed).toBe(1);

    net.release();
    net.stabilize();
    expect(s1.log.committed).toBe(3); // 3@4 on a majority commits 2 with it
    expect(net.applied.get("s1")!.map((e) => e.index)).toEqual([1, 2, 3]);
  });

  it("Figure 2: commit needs a majority of voters: 2 of 5 replicas are not enough, 3 are", () => {
    const net = Network.cluster(["a", "b", "c", "d", "e"]);
    net.elect("a");
    const a = net.get("a");
    net.hold((m) => m.type === "AppendEntries" && ["c", "d", "e"].includes(m.to));
    a.propose([item()]);
    net.stabilize();
    expect(a.log.committed).toBe(1);
    net.release((m) => m.to === "c");
    net.stabilize();
    expect(a.log.committed).toBe(2);
  });

  it("Figure 2: learners replicate but do not count toward commit", () => {
    const config = { voters: ["a", "b", "c"], learners: ["d", "e"], outgoingVoters: [] };
    const net = new Network(["a", "b", "c", "d", "e"].map((id) => newRaft(id, { config })));
    net.elect("a");
    const a = net.get("a");
    net.hold((m) => m.type === "AppendEntries" && (m.to === "b" || m.to === "c"));
    a.propose([item()]);
    net.stabilize();
    expect(net.get("d").log.lastIndex()).toBe(2);
    expect(net.get("e").log.lastIndex()).toBe(2);
    expect(a.log.committed).toBe(1);
  });

  it("Figure 2: the leader counts its own entries toward commit only once they are durable (advance)", () => {
    const net = Network.cluster(["a", "b", "c"]);
    net.elect("a");
    const a = net.get("a");
    const b = net.get("b");
    a.propose([item()]);
    const rd = a.ready(); // handed to the driver, not yet persisted
    for (const m of ofType(rd.earlyMessages, "AppendEntries", "b")) b.step(m);
    for (const m of drain(b).messages) a.step(m);
    // b holds entry 2 and so does a's unstable log, but a has not persisted it: 1 of 3.
    expect(a.log.committed).toBe(1);
    a.advance(rd);
    expect(a.log.committed).toBe(2);
  });

  it("Figure 2: a single voter commits its entries once they are durable", () => {
    const a = newRaft("a");
    a.campaignNow();
    expect(a.role).toBe("leader");
    a.propose([item()]);
    const rd = a.ready();
    expect(rd.entries.map((e) => e.index)).toEqual([1, 2]);
    expect(rd.committedEntries).toEqual([]);
    a.advance(rd);
    expect(a.log.committed).toBe(2);
    expect(a.ready().committedEntries.map((e) => e.index)).toEqual([1, 2]);
  });

  it("§5.3: followers learn the commit index from the leader and apply up to it", () => {
    const net = Network.cluster(["a", "b", "c"]);
    net.elect("a");
    net.get("a").propose([item("x")]);
    net.stabilize();
    for (const id of ["b", "c"]) {
      expect(net.get(id).log.committed, id).toBe(2);
      expect(net.applied.get(id)!.map((e) => e.index), id).toEqual([1, 2]);
    }
  });
});
