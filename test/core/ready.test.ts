// The Ready contract (src/core/ready.ts): persist, then send, then apply, then advance.
// Raft paper Figure 2: "respond to RPCs only after updating stable storage".
import { describe, expect, it } from "vitest";
import { InvariantError } from "../../src/core/log.js";
import { Network, appendEntries, drain, entriesFrom, item, log, newRaft, ofType, requestVote } from "./harness.js";

const ABC = ["a", "b", "c"];

describe("Ready", () => {
  it("Figure 2: a granted vote comes in the same Ready as the hard state that records it", () => {
    const b = newRaft("b", { peers: ABC, term: 1 });
    b.step(requestVote("a", "b", 2));
    const rd = b.ready();
    expect(rd.hardState).toEqual({ term: 2, vote: "a", commit: 0 });
    expect(ofType(rd.messages, "RequestVoteResponse")).toMatchObject([{ to: "a", granted: true }]);
  });

  it("Figure 2: an AppendEntries acknowledgement comes in the same Ready as the entries it acknowledges", () => {
    const b = newRaft("b", { peers: ABC, term: 1, entries: log(1) });
    b.step(appendEntries("a", "b", 1, 1, 1, entriesFrom(2, 1, 1), 1));
    const rd = b.ready();
    expect(rd.entries.map((e) => e.index)).toEqual([2, 3]);
    expect(rd.hardState).toEqual({ term: 1, vote: null, commit: 1 });
    expect(ofType(rd.messages, "AppendEntriesResponse")).toMatchObject([{ success: true, index: 3 }]);
  });

  it("a vote granted while a Ready is out goes into the next Ready, with its hard state", () => {
    const b = newRaft("b", { peers: ABC, term: 1 });
    b.step(appendEntries("a", "b", 1, 0, 0, entriesFrom(1, 1)));
    const first = b.ready();
    expect(b.hasReady()).toBe(false); // one Ready at a time
    b.step(requestVote("c", "b", 2, { lastIndex: 1, lastTerm: 1 }));
    b.advance(first);
    expect(first.messages.some((m) => m.type === "RequestVoteResponse")).toBe(false);
    const second = b.ready();
    expect(second.hardState).toMatchObject({ term: 2, vote: "c" });
    expect(ofType(second.messages, "RequestVoteResponse")).toMatchObject([{ to: "c", granted: true }]);
  });

  it("committedEntries hold only entries up to the commit index", () => {
    const b = newRaft("b", { peers: ABC, term: 1 });
    b.step(appendEntries("a", "b", 1, 0, 0, entriesFrom(1, 1, 1, 1, 1), 2));
    const rd = b.ready();
    expect(rd.entries).toHaveLength(4);
    expect(rd.committedEntries.map((e) => e.index)).toEqual([1, 2]);
    b.advance(rd);
    expect(b.hasReady()).toBe(false);
  });

  it("committedEntries are bounded by maxApplyEntries per Ready, the rest follow in order", () => {
    const b = newRaft("b", { peers: ABC, term: 1, commit: 5, entries: log(1, 1, 1, 1, 1), options: { maxApplyEntries: 2 } });
    expect(drain(b).readies.map((rd) => rd.committedEntries.map((e) => e.index))).toEqual([[1, 2], [3, 4], [5]]);
  });

  it("ready() twice without advance() throws; so does advance() without ready()", () => {
    const b = newRaft("b", { peers: ABC, term: 1 });
    b.step(requestVote("a", "b", 2));
    const rd = b.ready();
    expect(() => b.ready()).toThrow(InvariantError);
    b.advance(rd);
    expect(() => b.advance(rd)).toThrow(InvariantError);
  });

  it("nothing to do: no Ready", () => {
    const b = newRaft("b", { peers: ABC, term: 1, commit: 0, entries: log(1) });
    expect(b.hasReady()).toBe(false);
  });
});

describe("the leader's write in parallel with replication (dissertation §10.2.1)", () => {
  it("only leader traffic goes before the write; votes and acknowledgements wait for it", () => {
    const net = Network.cluster(["a", "b", "c"]);
    net.elect("a");
    const a = net.get("a");
    a.propose([item()]);
    const rd = a.ready();
    expect(rd.entries.length).toBeGreaterThan(0);
    expect(rd.earlyMessages.map((m) => m.type)).toEqual(["AppendEntries", "AppendEntries"]);
    a.advance(rd);

    const b = newRaft("b", { peers: ["a", "b", "c"], term: 1 });
    b.step(appendEntries("a", "b", 1, 0, 0, entriesFrom(1, 1)));
    b.step(requestVote("c", "b", 2, { lastIndex: 5, lastTerm: 2 }));
    const rb = b.ready();
    expect(rb.earlyMessages).toEqual([]);
    expect(rb.messages.map((m) => m.type).sort()).toEqual(["AppendEntriesResponse", "RequestVoteResponse"]);
  });

  it("a leader's traffic waits for the write when that write records its new term and vote", () => {
    // A lone voter wins in the step that starts its election: the no-op's AppendEntries to
    // the learners and the term and vote that make it leader are in one Ready. Were they
    // sent first, a crash before the write would let it win the same term again and send
    // different entries under the same (index, term).
    const a = newRaft("a", { config: { voters: ["a"], learners: ["b", "c"], outgoingVoters: [] }, term: 1, entries: log(1) });
    a.campaignNow();
    expect(a.role).toBe("leader");
    const rd = a.ready();
    expect(rd.hardState).toMatchObject({ term: 2, vote: "a" });
    expect(rd.earlyMessages).toEqual([]);
    expect(ofType(rd.messages, "AppendEntries").map((m) => m.to).sort()).toEqual(["b", "c"]);
  });
});
