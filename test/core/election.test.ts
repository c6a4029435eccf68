// Raft paper ("In Search of an Understandable Consensus Algorithm"): Figure 2, §5.1, §5.2, §5.4.1, §8.
import { describe, expect, it } from "vitest";
import { encodeConfig } from "../../src/core/membership.js";
import type { Entry } from "../../src/core/messages.js";
import { Network, appendEntries, drain, entriesFrom, item, log, newRaft, ofType, requestVote, scripted } from "./harness.js";

const ABC = ["a", "b", "c"];

describe("all servers (§5.1)", () => {
  it("§5.1: a message with a higher term makes a leader adopt the term and become a follower", () => {
    const net = Network.cluster(ABC);
    net.elect("a");
    const a = net.get("a");
    expect(a.role).toBe("leader");

    a.step(appendEntries("c", "a", 5, 0, 0));
    expect(a.term).toBe(5);
    expect(a.role).toBe("follower");
    expect(a.vote).toBeNull();
    expect(a.leader).toBe("c");
  });

  it("§5.1: a stale leader's AppendEntries is rejected with the higher term, and the stale leader steps down", () => {
    const net = Network.cluster(ABC);
    net.elect("a");
    net.isolate("a");
    net.elect("b"); // term 2, with c's vote
    expect(net.get("b").role).toBe("leader");
    net.heal();

    net.get("a").propose([item("stale")]);
    net.stabilize();
    const a = net.get("a");
    expect(a.role).toBe("follower");
    expect(a.term).toBe(2);
    expect(net.get("b").role).toBe("leader");
    // The stale entry (index 2, term 1) was appended nowhere else.
    expect(net.get("c").log.term(2)).not.toBe(1);
    const answers = ofType(net.sent, "AppendEntriesResponse", "a");
    expect(answers.some((m) => !m.success && m.term === 2)).toBe(true);
  });

  it("§5.1: a RequestVote of a stale term is not granted", () => {
    const r = newRaft("b", { peers: ABC, term: 3 });
    r.step(requestVote("a", "b", 2));
    expect(r.vote).toBeNull();
    expect(r.term).toBe(3);
    expect(ofType(drain(r).messages, "RequestVoteResponse").filter((m) => m.granted)).toEqual([]);
  });
});

describe("RequestVote (§5.2, §5.4.1)", () => {
  const granted = (msgs: ReturnType<typeof drain>["messages"]) => ofType(msgs, "RequestVoteResponse").map((m) => [m.to, m.granted]);

  it("§5.2: grants at most one vote per term", () => {
    const r = newRaft("c", { peers: ABC, term: 1 });
    r.step(requestVote("a", "c", 2));
    r.step(requestVote("b", "c", 2));
    expect(r.vote).toBe("a");
    expect(granted(drain(r).messages)).toEqual([["a", true], ["b", false]]);
  });

  it("§5.2: repeats its vote to the same candidate (a retransmitted request)", () => {
    const r = newRaft("c", { peers: ABC, term: 1 });
    r.step(requestVote("a", "c", 2));
    r.step(requestVote("a", "c", 2));
    expect(granted(drain(r).messages)).toEqual([["a", true], ["a", true]]);
  });

  it("§5.4.1: refuses a candidate whose last log term is lower, however long its log", () => {
    const r = newRaft("c", { peers: ABC, term: 2, entries: log(1, 2) });
    r.step(requestVote("a", "c", 3, { lastIndex: 9, lastTerm: 1 }));
    expect(r.vote).toBeNull();
    expect(r.term).toBe(3);
    expect(granted(drain(r).messages)).toEqual([["a", false]]);
  });

  it("§5.4.1: with equal last terms, refuses a shorter log and grants an equal one", () => {
    const r = newRaft("c", { peers: ABC, term: 1, entries: log(1, 1, 1) });
    r.step(requestVote("a", "c", 2, { lastIndex: 2, lastTerm: 1 }));
    r.step(requestVote("b", "c", 2, { lastIndex: 3, lastTerm: 1 }));
    expect(r.vote).toBe("b");
    expect(granted(drain(r).messages)).toEqual([["a", false], ["b", true]]);
  });

  it("§5.2: granting a vote resets the election timer", () => {
    // Term 1, no vote, no leader: the grant below changes no term, so only the grant can reset the timer.
    const r = newRaft("c", { peers: ABC, term: 1 });
    for (let i = 0; i < 10; i++) r.tick();
    r.step(requestVote("a", "c", 1));
    expect(r.vote).toBe("a");
    for (let i = 0; i < 10; i++) r.tick();
    expect(r.role).toBe("follower");
    r.tick();
    expect(r.role).toBe("candidate");
  });
});

describe("elections (§5.2, §8)", () => {
  it("§5.2: a follower campaigns after its randomized timeout, in [electionTicks + 1, 2 * electionTicks]", () => {
    for (const [random, timeout] of [[0, 11], [0.5, 16], [0.99, 20]] as const) {
      const r = newRaft("a", { peers: ABC, options: { random: () => random } });
      for (let i = 0; i < timeout - 1; i++) r.tick();
      expect(r.role, `random ${random}`).toBe("follower");
      r.tick();
      expect(r.role, `random ${random}`).toBe("candidate");
      expect(r.term).toBe(1);
      expect(r.vote).toBe("a");
    }
  });

  it("§5.2: a candidate that neither wins nor loses starts a new election after a fresh randomized timeout", () => {
    const r = newRaft("a", { peers: ABC, options: { random: scripted(0, 0.99) } }); // timeouts: 11, then 20
    for (let i = 0; i < 11; i++) r.tick();
    expect([r.role, r.term]).toEqual(["candidate", 1]);
    for (let i = 0; i < 19; i++) r.tick();
    expect(r.term).toBe(1);
    r.tick();
    expect([r.role, r.term, r.vote]).toEqual(["candidate", 2, "a"]);
  });

  it("§5.2: a follower that hears from the leader does not campaign", () => {
    const net = Network.cluster(ABC);
    net.elect("a");
    for (let i = 0; i < 50; i++) {
      net.tickAll();
      net.stabilize();
    }
    expect(net.get("a").role).toBe("leader");
    expect([...net.nodes.values()].map((r) => r.term)).toEqual([1, 1, 1]);
  });

  it("§5.2 and §8: a candidate that wins a majority becomes leader and appends a no-op of its term", () => {
    const net = Network.cluster(ABC);
    net.elect("a");
    const a = net.get("a");
    expect(a.role).toBe("leader");
    expect(a.term).toBe(1);
    expect(a.log.entry(1)).toMatchObject({ index: 1, term: 1, type: "noop" });
    expect(net.get("b").leader).toBe("a");
    expect(net.get("b").log.entry(1)).toMatchObject({ term: 1, type: "noop" });
  });

  it("§5.2: a candidate needs a majority: 2 of 5 votes is not enough, 3 is", () => {
    const net = Network.cluster(["a", "b", "c", "d", "e"]);
    net.drop((m) => m.from === "d" || m.from === "e");
    net.hold((m) => m.type === "RequestVoteResponse" && m.from === "c");
    net.get("a").campaignNow();
    net.stabilize();
    expect(net.get("a").role).toBe("candidate");
    net.release();
    net.stabilize();
    expect(net.get("a").role).toBe("leader");
  });

  it("§5.2: a split vote leads to a new election in a higher term", () => {
    // a times out first after the split (11 ticks); b and c wait 16.
    const net = Network.cluster(ABC, {}, { a: { options: { random: () => 0 } }, b: { options: { random: () => 0.5 } }, c: { options: { random: () => 0.5 } } });
    for (const id of ABC) net.get(id).campaignNow(); // everyone votes for itself in term 1
    net.stabilize();
    expect([...net.nodes.values()].some((r) => r.role === "leader")).toBe(false);
    expect(net.get("a").term).toBe(1);

    for (let i = 0; i < 11; i++) {
      net.tickAll();
      net.stabilize();
    }
    expect(net.get("a").role).toBe("leader");
    expect(net.get("a").term).toBe(2);
    expect(net.get("b").leader).toBe("a");
  });

  it("§5.2: a candidate that receives AppendEntries from a leader of its own term steps down", () => {
    const b = newRaft("b", { peers: ABC, term: 1 });
    b.campaignNow();
    expect(b.role).toBe("candidate");
    expect(b.term).toBe(2);
    b.step(appendEntries("a", "b", 2, 0, 0));
    expect(b.role).toBe("follower");
    expect(b.term).toBe(2);
    expect(b.leader).toBe("a");
  });
});

describe("vote answers carry the voter's commit point", () => {
  const joint = { voters: ["b"], learners: [], outgoingVoters: ["a", "b"] };
  const onlyB = { voters: ["b"], learners: [], outgoingVoters: [] };
  /** Entries 1..3 of term 1; 4: enter the joint configuration; 5: leave it (a removed); 6: a command. */
  function removalLog(upTo: number): Entry[] {
    const entries: Entry[] = [...log(1, 1, 1), { index: 4, term: 1, type: "config", data: encodeConfig(joint) }, { index: 5, term: 1, type: "config", data: encodeConfig(onlyB) }, ...entriesFrom(6, 1)];
    return entries.slice(0, upTo);
  }

  it("a voter stranded in a joint configuration learns from the removed node that it was left, and then wins alone", () => {
    // a led, committed 5 (leaving the joint configuration without itself) and appended 6,
    // then lost its leadership before b heard that 5 was committed. b still needs a's vote
    // (a is in the joint configuration's outgoing half); a refuses it (a's log is longer)
    // and, as a non-voter, never campaigns. Only a's commit point gets b out.
    const a = newRaft("a", { config: onlyB, term: 1, commit: 5, entries: removalLog(6) });
    const b = newRaft("b", { config: joint, term: 1, commit: 4, entries: removalLog(5) });
    drain(a);
    drain(b);
    const net = new Network([a, b]);
    for (let i = 0; i < 200 && b.role !== "leader"; i++) {
      net.tickAll();
      net.stabilize();
    }
    expect(b.role).toBe("leader");
    expect(b.config).toEqual(onlyB);
    // The first refusal told b that 5 is committed.
    expect(ofType(net.sent, "RequestVoteResponse", "b")[0]).toMatchObject({ granted: false, commit: 5, commitTerm: 1 });
  });

  it("a commit point is taken only by a node holding that very entry", () => {
    const b = newRaft("b", { peers: ["a", "b", "c"], term: 2, commit: 1, entries: log(1, 1, 1) });
    b.campaignNow();
    drain(b);
    // a's entry 3 is of term 2; b's is of term 1: b learns nothing.
    b.step({ type: "RequestVoteResponse", from: "a", to: "b", term: 3, preVote: false, granted: false, commit: 3, commitTerm: 2 });
    expect(b.log.committed).toBe(1);
    b.step({ type: "RequestVoteResponse", from: "c", to: "b", term: 3, preVote: false, granted: false, commit: 2, commitTerm: 1 });
    expect(b.log.committed).toBe(2);
  });
});
