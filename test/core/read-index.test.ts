// ReadIndex: Raft paper §8 (read-only operations), dissertation §6.4.
import { describe, expect, it } from "vitest";
import { Network, drain, item, log, newRaft, ofType, requestVote } from "./harness.js";

const ABC = ["a", "b", "c"];

/** A 3-node cluster whose leader `a` has committed 1 (its no-op) and 2. */
function clusterWithCommit2(): Network {
  const net = Network.cluster(ABC);
  net.elect("a");
  net.get("a").propose([item()]);
  net.stabilize();
  return net;
}

const readBeats = (net: Network) => ofType(net.sent, "Heartbeat").filter((m) => m.readRound > 0);

describe("ReadIndex (§8, dissertation §6.4)", () => {
  it("§6.4: the leader answers a read only after a majority acknowledged a heartbeat round sent after it", () => {
    const net = clusterWithCommit2();
    const a = net.get("a");
    net.hold((m) => m.type === "HeartbeatResponse");
    expect(a.readIndex(1)).toBe("pending");
    net.stabilize();
    expect(readBeats(net).map((m) => m.to)).toEqual(["b", "c"]);
    expect(net.readStates.get("a")).toEqual([]);

    net.release((m) => m.from === "b"); // b and a: a majority of 3
    net.stabilize();
    expect(net.readStates.get("a")).toEqual([{ requestId: 1, index: 2 }]);
  });

  it("§6.4: acknowledgements of an earlier round do not confirm a later read", () => {
    const net = clusterWithCommit2();
    const a = net.get("a");
    net.hold((m) => m.type === "Heartbeat");
    a.readIndex(1);
    net.stabilize();
    a.readIndex(2);
    net.stabilize();
    const rounds = ofType(net.held, "Heartbeat").map((m) => m.readRound);
    expect(rounds).toEqual([rounds[0], rounds[0], rounds[0]! + 1, rounds[0]! + 1]);

    net.release((m) => m.type === "Heartbeat" && m.readRound === rounds[0]);
    net.stabilize();
    expect(net.readStates.get("a")).toEqual([{ requestId: 1, index: 2 }]);
    net.release();
    net.stabilize();
    expect(net.readStates.get("a")).toEqual([{ requestId: 1, index: 2 }, { requestId: 2, index: 2 }]);
  });

  it("§8: a new leader serves no read before it commits an entry of its own term", () => {
    // Entry 2 was committed under term 1 (b and c know), but the new leader a does not know it yet:
    // a read index of 0 or 2 taken from a's commit index would miss it or be unconfirmed.
    const net = new Network([
      newRaft("a", { peers: ABC, term: 1, commit: 0, entries: log(1, 1) }),
      newRaft("b", { peers: ABC, term: 1, commit: 2, entries: log(1, 1) }),
      newRaft("c", { peers: ABC, term: 1, commit: 2, entries: log(1, 1) }),
    ]);
    net.hold((m) => m.type === "AppendEntries");
    net.elect("a");
    const a = net.get("a");
    expect(a.role).toBe("leader");
    a.readIndex(1);
    net.tick("a", 3); // heartbeats go out and are answered
    net.stabilize();
    expect(net.readStates.get("a")).toEqual([]);

    net.heal();
    net.release();
    net.stabilize();
    expect(a.log.committed).toBe(3);
    expect(net.readStates.get("a")).toEqual([{ requestId: 1, index: 3 }]);
  });

  it("§6.4: a follower's read is forwarded to the leader and answered with the leader's commit index", () => {
    const net = clusterWithCommit2();
    const b = net.get("b");
    expect(b.readIndex(5)).toBe("forwarded");
    net.stabilize();
    expect(ofType(net.sent, "ReadIndex").map((m) => [m.from, m.to])).toEqual([["b", "a"]]);
    expect(net.readStates.get("b")).toEqual([{ requestId: 5, index: 2 }]);
  });

  it("§6.4: pending reads are refused (index 0) when leadership is lost", () => {
    const net = clusterWithCommit2();
    const a = net.get("a");
    net.hold((m) => m.type === "HeartbeatResponse");
    a.readIndex(1);
    net.get("b").readIndex(2);
    net.stabilize();
    expect(net.readStates.get("a")).toEqual([]);

    a.step(requestVote("c", "a", 2, { lastIndex: 2, lastTerm: 1 }));
    expect(a.role).toBe("follower");
    net.stabilize();
    expect(net.readStates.get("a")).toEqual([{ requestId: 1, index: 0 }]);
    expect(net.readStates.get("b")).toEqual([{ requestId: 2, index: 0 }]);
  });

  it("§6.4: reads that arrive in the same round share one heartbeat broadcast", () => {
    const net = clusterWithCommit2();
    const a = net.get("a");
    net.hold((m) => m.type === "HeartbeatResponse");
    const b = net.get("b");
    b.readIndex(3);
    for (const m of drain(b).messages) a.step(m); // b's request reaches a before a's next Ready
    a.readIndex(1);
    a.readIndex(2);
    net.stabilize();
    expect(readBeats(net).map((m) => m.to)).toEqual(["b", "c"]);
    net.release();
    net.stabilize();
    expect(net.readStates.get("a")).toEqual([{ requestId: 1, index: 2 }, { requestId: 2, index: 2 }]);
    expect(net.readStates.get("b")).toEqual([{ requestId: 3, index: 2 }]);
    expect(readBeats(net)).toHaveLength(2);
  });

  it("§6.4: a follower with no known leader refuses a read", () => {
    const b = newRaft("b", { peers: ABC });
    expect(b.readIndex(1)).toBe("no-leader");
  });
});
