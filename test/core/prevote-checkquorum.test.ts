// Raft dissertation: pre-vote §9.6, check-quorum §6.2, leader lease for votes §4.2.3, transfer §3.10.
import { describe, expect, it } from "vitest";
import { Network, drain, newRaft, ofType, requestVote } from "./harness.js";

const ABC = ["a", "b", "c"];

/** Ticks every node of `net` (or only `ids`) `n` times, delivering after each tick. */
function run(net: Network, n: number, ids?: string[]): void {
  for (let i = 0; i < n; i++) {
    if (ids === undefined) net.tickAll();
    else for (const id of ids) net.tick(id);
    net.stabilize();
  }
}

describe("pre-vote (dissertation §9.6)", () => {
  it("§9.6: a partitioned node that rejoins neither raises the cluster's term nor deposes the leader", () => {
    const net = Network.cluster(ABC, { preVote: true, checkQuorum: true });
    net.elect("a");
    net.isolate("c");
    run(net, 50);
    const c = net.get("c");
    expect(c.term).toBe(1); // it could not win a pre-vote, so it never raised its term
    expect(c.role).toBe("pre-candidate");

    net.heal();
    run(net, 10, ["c"]); // c's next pre-vote round comes before the leader's next heartbeat
    run(net, 50);
    expect(net.get("a").role).toBe("leader");
    expect([...net.nodes.values()].map((r) => r.term)).toEqual([1, 1, 1]);
    expect(c.role).toBe("follower");
    expect(c.leader).toBe("a");
  });

  it("§9.6: a pre-vote changes neither the candidate's nor the voter's term and vote; winning it starts a real election", () => {
    const c = newRaft("c", { peers: ABC, term: 2, options: { preVote: true } });
    const a = newRaft("a", { peers: ABC, term: 2, options: { preVote: true, random: () => 0.99 } });
    for (let i = 0; i < 10; i++) a.tick(); // past its first election timeout since starting
    for (let i = 0; i < 11; i++) c.tick();
    expect(c.role).toBe("pre-candidate");
    expect([c.term, c.vote]).toEqual([2, null]);
    const asked = drain(c);
    expect(asked.readies.map((rd) => rd.hardState)).toEqual([null]);
    const [request] = ofType(asked.messages, "RequestVote", "a");
    expect(request).toMatchObject({ preVote: true, term: 3 });

    a.step(request!);
    expect([a.term, a.vote]).toEqual([2, null]);
    const answered = drain(a);
    expect(answered.readies.every((rd) => rd.hardState === null)).toBe(true);
    const [grant] = ofType(answered.messages, "RequestVoteResponse");
    expect(grant).toMatchObject({ preVote: true, granted: true });

    c.step(grant!);
    expect(c.role).toBe("candidate");
    expect([c.term, c.vote]).toEqual([3, "c"]);
  });

  it("a follower campaigns a tick after the window in which its peers refuse to replace the leader, so a peer whose ticks lag by one grants it", () => {
    // Timers on different machines are not in phase: when b's timer fires at the bottom
    // of its range, c may have counted one tick fewer since the leader's last heartbeat.
    // Had b campaigned at exactly electionTicks, c would still be inside its window and
    // refuse, costing a whole second timeout (seen as slow failovers of the KV server).
    const net = Network.cluster(ABC, { preVote: true, checkQuorum: true }, { b: { options: { random: () => 0 } }, c: { options: { random: () => 0.99 } } });
    net.elect("a");
    net.isolate("a"); // the leader dies; b and c heard its last heartbeat together
    const b = net.get("b");
    const c = net.get("c");
    for (let i = 0; i < 10; i++) {
      b.tick();
      net.stabilize();
      c.tick(); // c's tick lands just after b's
      net.stabilize();
    }
    expect(b.role).toBe("follower");
    b.tick(); // b's timeout: electionTicks + 1
    net.stabilize();
    expect(b.role).toBe("leader");
    expect(c.leader).toBe("b");
  });

  it("§9.6 with check-quorum: a follower that heard from the leader recently refuses a pre-vote, and grants it once that is an election timeout ago", () => {
    const net = Network.cluster(ABC, { preVote: true, checkQuorum: true }, { b: { options: { random: () => 0.99 } } });
    net.elect("a");
    const b = net.get("b");
    const preVote = requestVote("c", "b", 2, { preVote: true, lastIndex: 1, lastTerm: 1 });
    b.step(preVote);
    expect(ofType(drain(b).messages, "RequestVoteResponse").filter((m) => m.granted)).toEqual([]);

    for (let i = 0; i < 10; i++) b.tick(); // no heartbeat for an election timeout (b's own timeout is 19)
    b.step(preVote);
    expect(ofType(drain(b).messages, "RequestVoteResponse").map((m) => m.granted)).toEqual([true]);
    expect(b.term).toBe(1);
  });

  // Dissertation §9.6: a voter grants a pre-vote only if it has not heard from a valid
  // leader for at least a baseline election timeout, with or without check-quorum.
  it("§9.6 without check-quorum: a follower that heard from the leader recently refuses a pre-vote", () => {
    const net = Network.cluster(ABC, { preVote: true, checkQuorum: false });
    net.elect("a");
    const b = net.get("b");
    b.step(requestVote("c", "b", 2, { preVote: true, lastIndex: 1, lastTerm: 1 }));
    expect(ofType(drain(b).messages, "RequestVoteResponse").filter((m) => m.granted)).toEqual([]);
  });

  // The same, end to end: the rejoining node's pre-vote must not win and depose the leader.
  it("§9.6 without check-quorum: a rejoining node whose pre-vote comes before the leader's next heartbeat does not depose the leader", () => {
    const net = Network.cluster(ABC, { preVote: true, checkQuorum: false });
    net.elect("a");
    net.isolate("c");
    run(net, 50);
    net.heal();
    run(net, 10, ["c"]); // c's next pre-vote round; a and b heard from each other one tick ago
    expect(net.get("a").role).toBe("leader");
    expect([...net.nodes.values()].map((r) => r.term)).toEqual([1, 1, 1]);
  });
});

describe("check-quorum and leases (dissertation §6.2, §4.2.3)", () => {
  it("§4.2.3, §6.4.1: a node that just (re)started refuses votes for an election timeout, as if it had just heard from a leader", () => {
    // It may have acknowledged a heartbeat right before going down, and that leader may be
    // serving lease reads on the strength of it.
    const b = newRaft("b", { peers: ABC, term: 1, options: { checkQuorum: true, preVote: true, random: () => 0.99 } });
    const vote = requestVote("c", "b", 2, { lastIndex: 5, lastTerm: 1 });
    const preVote = requestVote("c", "b", 2, { preVote: true, lastIndex: 5, lastTerm: 1 });
    b.step(vote);
    b.step(preVote);
    expect(ofType(drain(b).messages, "RequestVoteResponse")).toEqual([]);
    expect(b.term).toBe(1);
    for (let i = 0; i < 10; i++) b.tick();
    b.step(preVote);
    expect(ofType(drain(b).messages, "RequestVoteResponse").map((m) => m.granted)).toEqual([true]);
  });

  it("§6.2: a leader that hears from no majority for an election timeout steps down", () => {
    const net = Network.cluster(ABC, { checkQuorum: true });
    net.elect("a");
    run(net, 10);
    net.isolate("a");
    const a = net.get("a");
    run(net, 20, ["a"]); // the current check-quorum round may have started before the partition
    expect(a.role).toBe("follower");
    expect(a.term).toBe(1);
  });

  it("§6.2: a leader that hears from a majority (itself and one of two followers) stays leader", () => {
    const net = Network.cluster(ABC, { checkQuorum: true });
    net.elect("a");
    net.isolate("c");
    run(net, 50, ["a", "b"]);
    expect(net.get("a").role).toBe("leader");
  });

  it("§4.2.3: a follower in its leader's lease ignores a RequestVote of a higher term", () => {
    const net = Network.cluster(ABC, { checkQuorum: true });
    net.elect("a");
    const b = net.get("b");
    b.step(requestVote("c", "b", 2, { lastIndex: 1, lastTerm: 1 }));
    expect([b.term, b.vote, b.leader]).toEqual([1, "a", "a"]);
    expect(ofType(drain(b).messages, "RequestVoteResponse")).toEqual([]);
  });

  it("§4.2.3 and §3.10: the transfer flag overrides the lease", () => {
    const net = Network.cluster(ABC, { checkQuorum: true });
    net.elect("a");
    const b = net.get("b");
    b.step(requestVote("c", "b", 2, { lastIndex: 1, lastTerm: 1, transfer: true }));
    expect([b.term, b.vote]).toEqual([2, "c"]);
    expect(ofType(drain(b).messages, "RequestVoteResponse").map((m) => m.granted)).toEqual([true]);
  });
});
