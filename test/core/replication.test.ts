// Raft paper: Figure 2 (AppendEntries receiver rules), §5.3 (log replication, fast backtracking),
// plus flow control (probe / replicate windows) and forwarded proposals.
import { describe, expect, it } from "vitest";
import { entryBytes } from "../../src/core/log.js";
import type { ProposeMessage } from "../../src/core/messages.js";
import { Network, appendEntries, drain, entriesFrom, item, log, newRaft, ofType, termsOf, times } from "./harness.js";

const ABC = ["a", "b", "c"];
const LFG = ["l", "f", "g"];

describe("AppendEntries receiver (Figure 2, §5.3)", () => {
  it("§5.3: the consistency check rejects a mismatched prevTerm and a prevIndex beyond the log", () => {
    const f = newRaft("f", { peers: LFG, term: 2, entries: log(1, 1, 2) });
    f.step(appendEntries("l", "f", 3, 3, 3, entriesFrom(4, 3)));
    f.step(appendEntries("l", "f", 3, 5, 3, entriesFrom(6, 3)));
    expect(termsOf(f)).toEqual([1, 1, 2]);
    const answers = ofType(drain(f).messages, "AppendEntriesResponse");
    expect(answers.map((m) => [m.success, m.index])).toEqual([[false, 3], [false, 5]]);
    // The hints: "my term at 3 is 2, which I hold from index 3"; "my log ends before 4".
    expect(answers.map((m) => [m.hintIndex, m.hintTerm])).toEqual([[3, 2], [4, 0]]);
  });

  it("§5.3: a conflicting suffix is truncated and replaced by the leader's entries", () => {
    const f = newRaft("f", { peers: LFG, term: 2, commit: 1, entries: log(1, 1, 2, 2) });
    f.step(appendEntries("l", "f", 3, 2, 1, entriesFrom(3, 3)));
    expect(termsOf(f)).toEqual([1, 1, 3]);
    expect(ofType(drain(f).messages, "AppendEntriesResponse")[0]).toMatchObject({ success: true, index: 3 });
  });

  it("§5.3: a stale or duplicated shorter AppendEntries does not truncate matching entries after it", () => {
    const f = newRaft("f", { peers: LFG, term: 1, entries: log(1, 1, 1, 1) });
    f.step(appendEntries("l", "f", 1, 1, 1, entriesFrom(2, 1)));
    expect(termsOf(f)).toEqual([1, 1, 1, 1]);
    expect(ofType(drain(f).messages, "AppendEntriesResponse")[0]).toMatchObject({ success: true, index: 2 });
  });

  it("Figure 2: the follower's commit index is min(leaderCommit, index of the last new entry)", () => {
    // Entry 3 (term 2) is a stale tail the leader of term 3 does not have: it must not be committed.
    const f = newRaft("f", { peers: LFG, term: 2, entries: log(1, 1, 2) });
    f.step(appendEntries("l", "f", 3, 2, 1, [], 3));
    expect(f.log.committed).toBe(2);
    f.step(appendEntries("l", "f", 3, 2, 1, entriesFrom(3, 3), 5));
    expect(f.log.committed).toBe(3);
  });
});

describe("fast backtracking (§5.3)", () => {
  it("§5.3: a follower with a long divergent tail is repaired in round trips proportional to terms, not entries", () => {
    // Common prefix 1..3; the leader has 4..100 in term 7; the follower has 87 divergent
    // entries in terms 2, 3 and 4 (indexes 4..30, 31..60, 61..90).
    const leaderLog = log(1, 1, 1, ...times(97, 7));
    const net = new Network([
      newRaft("l", { peers: LFG, term: 7, commit: 3, entries: leaderLog }),
      newRaft("f", { peers: LFG, term: 4, commit: 3, entries: log(1, 1, 1, ...times(27, 2), ...times(30, 3), ...times(30, 4)) }),
      newRaft("g", { peers: LFG, term: 7, commit: 3, entries: leaderLog }),
    ]);
    net.elect("l");
    expect(net.get("l").role).toBe("leader");
    expect(termsOf(net.get("f"))).toEqual(termsOf(net.get("l")));
    const rejections = ofType(net.sent, "AppendEntriesResponse", "l").filter((m) => m.from === "f" && !m.success);
    // One for the shorter log, one per divergent term; decrementing by one would take ~97.
    expect(rejections.length).toBeLessThanOrEqual(4);
  });

  it("§5.3: a leader that holds the follower's conflicting term resumes after its own last entry of that term", () => {
    // Both have term 2 from index 4; the leader's term 2 ends at 10, the follower's runs to 20.
    const leaderLog = log(1, 1, 1, ...times(7, 2), 5, 5);
    const net = new Network([
      newRaft("l", { peers: LFG, term: 5, commit: 3, entries: leaderLog }),
      newRaft("f", { peers: LFG, term: 2, commit: 3, entries: log(1, 1, 1, ...times(17, 2)) }),
      newRaft("g", { peers: LFG, term: 5, commit: 3, entries: leaderLog }),
    ]);
    net.elect("l");
    expect(ofType(net.sent, "AppendEntries", "f").slice(0, 2).map((m) => m.prevIndex)).toEqual([12, 10]);
    expect(termsOf(net.get("f"))).toEqual(termsOf(net.get("l")));
  });
});

describe("replication flow control", () => {
  it("probe state: one AppendEntries at a time until the follower answers", () => {
    const net = Network.cluster(ABC);
    net.hold((m) => m.type === "AppendEntries" && m.to === "b");
    net.elect("a");
    const a = net.get("a");
    for (let i = 0; i < 3; i++) {
      a.propose([item()]);
      net.stabilize();
    }
    expect(net.held.filter((m) => m.to === "b")).toHaveLength(1);
    net.heal();
    net.release();
    net.stabilize();
    expect(termsOf(net.get("b"))).toEqual(termsOf(a));
  });

  it("replicate state: at most maxInflight AppendEntries in flight per follower", () => {
    const net = Network.cluster(ABC, { maxInflight: 2 });
    net.elect("a"); // b and c acknowledged the no-op: both in replicate state
    net.hold((m) => m.type === "AppendEntries" && m.to === "b");
    const a = net.get("a");
    for (let i = 0; i < 5; i++) {
      a.propose([item()]);
      net.stabilize();
    }
    // Empty AppendEntries that only carry the commit index take no room in the window.
    expect(ofType(net.held, "AppendEntries").filter((m) => m.entries.length > 0)).toHaveLength(2);
    expect(net.get("c").log.lastIndex()).toBe(6); // c is not throttled
    net.heal();
    net.release();
    net.stabilize();
    expect(termsOf(net.get("b"))).toEqual(termsOf(a));
  });

  it("replicate state: a broadcast fills each follower's window, also when an acknowledgement moved the commit index", () => {
    // Before this rule was kept, a broadcast sent one AppendEntries per follower: with a
    // backlog and small messages, a follower needed for quorum caught up one message per
    // round trip (found by simulator seed 100047 on 5 nodes).
    const net = Network.cluster(ABC, { maxInflight: 4, maxEntriesPerMessage: 1 });
    net.elect("a");
    const a = net.get("a");
    net.hold((m) => m.type === "AppendEntries" && m.entries.length > 0);
    a.propose(Array.from({ length: 10 }, () => item()));
    net.stabilize();
    const carrying = (to: string) => net.held.filter((m) => m.to === to);
    expect(carrying("b")).toHaveLength(4);
    expect(carrying("c")).toHaveLength(4);
    // b acknowledges its first entry: the commit index moves, and b's window is full again.
    net.heal();
    net.drop((m) => m.to === "c" || m.from === "c");
    const first = carrying("b")[0]!;
    net.held = net.held.filter((m) => m !== first);
    const b = net.get("b");
    b.step(first);
    for (const m of drain(b).messages) a.step(m);
    expect(a.log.committed).toBe(2);
    const sentNow = ofType(drain(a).messages, "AppendEntries", "b").filter((m) => m.entries.length > 0);
    expect(sentNow.map((m) => m.entries[0]!.index)).toEqual([6]);
    expect(carrying("b").length + sentNow.length).toBe(4);
  });

  it("at most maxEntriesPerMessage entries per AppendEntries", () => {
    const net = Network.cluster(ABC, { maxEntriesPerMessage: 3 });
    net.elect("a");
    net.get("a").propose(Array.from({ length: 7 }, () => item()));
    net.stabilize();
    const sizes = ofType(net.sent, "AppendEntries", "b").map((m) => m.entries.length);
    expect(Math.max(...sizes)).toBe(3);
    expect(net.get("b").log.lastIndex()).toBe(8);
  });

  it("about maxBytesPerMessage bytes per AppendEntries, but an oversized entry still goes alone", () => {
    const net = Network.cluster(ABC, { maxBytesPerMessage: 120 });
    net.elect("a");
    const a = net.get("a");
    a.propose(Array.from({ length: 5 }, () => item("x".repeat(26)))); // 50 bytes each
    a.propose([item("y".repeat(500))]);
    net.stabilize();
    const sent = ofType(net.sent, "AppendEntries", "b").filter((m) => m.entries.length > 0);
    for (const m of sent) {
      if (m.entries.length > 1) expect(m.entries.reduce((n, e) => n + entryBytes(e), 0)).toBeLessThanOrEqual(120);
    }
    expect(Math.max(...sent.map((m) => m.entries.length))).toBe(2);
    expect(net.get("b").log.lastIndex()).toBe(7);
  });

  it("batching: everything proposed before one ready() goes out as one AppendEntries per follower", () => {
    const net = Network.cluster(ABC);
    net.elect("a");
    const a = net.get("a");
    for (let i = 0; i < 5; i++) a.propose([item(`p${i}`)]);
    const appends = ofType(drain(a).messages, "AppendEntries");
    expect(appends.map((m) => [m.to, m.entries.length])).toEqual([["b", 5], ["c", 5]]);
  });
});

describe("forwarded proposals", () => {
  it("a follower forwards a proposal to the leader, which appends it and says where", () => {
    const net = Network.cluster(ABC);
    net.elect("a");
    expect(net.get("b").propose([item("fwd")], 7)).toEqual({ kind: "forwarded" });
    net.stabilize();
    expect(new TextDecoder().decode(net.get("a").log.entry(2)!.data)).toBe("fwd");
    expect(net.proposals.get("b")).toEqual([{ requestId: 7, index: 2, term: 1 }]);
  });

  it("a duplicated Propose message is appended only once", () => {
    const net = Network.cluster(ABC);
    net.elect("a");
    const b = net.get("b");
    b.propose([item()], 7);
    const [propose] = ofType(drain(b).messages, "Propose");
    const a = net.get("a");
    a.step(propose!);
    a.step(propose!);
    expect(a.log.lastIndex()).toBe(2);
    expect(ofType(drain(a).messages, "ProposeResponse")).toHaveLength(1);
  });

  it("§5.1: a Propose of a stale term is ignored", () => {
    const net = Network.cluster(ABC);
    net.elect("a");
    net.elect("b"); // term 2
    const b = net.get("b");
    const last = b.log.lastIndex();
    const stale: ProposeMessage = { type: "Propose", from: "c", to: "b", term: 1, requestId: 1, entries: [item()] };
    b.step(stale);
    expect(b.log.lastIndex()).toBe(last);
    expect(ofType(drain(b).messages, "ProposeResponse")).toEqual([]);
  });
});
