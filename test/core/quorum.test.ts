// Majority arithmetic (Raft paper §5.2, §5.3) and joint consensus (paper §6, dissertation §4.3).
import { describe, expect, it } from "vitest";
import { committedValue, configProblem, electionOutcome, isJoint, isVoter, votersConfig } from "../../src/core/membership.js";
import { jointQuorumValue, jointVoteOutcome, majority, quorumValue, voteOutcome } from "../../src/core/quorum.js";

const values = (m: Record<string, number>) => (id: string) => m[id] ?? 0;
const votes = (m: Record<string, boolean>) => new Map(Object.entries(m));

describe("majority", () => {
  it("§5.2: a majority is more than half of the voters", () => {
    expect([1, 2, 3, 4, 5, 6, 7].map(majority)).toEqual([1, 2, 2, 3, 3, 4, 4]);
  });

  it("§5.3: the quorum value is the highest value that a majority has reached", () => {
    expect(quorumValue(["a"], values({ a: 7 }))).toBe(7);
    expect(quorumValue(["a", "b", "c"], values({ a: 5, b: 3, c: 1 }))).toBe(3);
    expect(quorumValue(["a", "b", "c", "d"], values({ a: 5, b: 4, c: 2, d: 1 }))).toBe(2);
    expect(quorumValue(["a", "b", "c", "d", "e"], values({ a: 9, b: 9, c: 1, d: 1, e: 1 }))).toBe(1);
    expect(quorumValue(["a", "b", "c", "d", "e"], values({ a: 9, b: 9, c: 4, d: 1, e: 1 }))).toBe(4);
  });

  it("§4.3 convention: an empty voter set agrees to anything", () => {
    expect(quorumValue([], values({}))).toBe(Infinity);
    expect(voteOutcome([], votes({}))).toBe("won");
  });
});

describe("joint quorum (§6, dissertation §4.3)", () => {
  it("a joint decision is the smaller of both majorities", () => {
    const v = values({ a: 9, b: 9, c: 1, d: 2, e: 2 });
    expect(jointQuorumValue(["a", "b", "c"], ["c", "d", "e"], v)).toBe(2);
    expect(jointQuorumValue(["c", "d", "e"], ["a", "b", "c"], v)).toBe(2);
    expect(jointQuorumValue(["a", "b", "c"], [], v)).toBe(9);
  });

  it("committedValue is joint-aware and ignores learners", () => {
    const joint = { voters: ["a", "b", "c"], learners: ["x", "y"], outgoingVoters: ["a", "d", "e"] };
    const v = values({ a: 8, b: 8, c: 8, d: 3, e: 1, x: 9, y: 9 });
    expect(committedValue(joint, v)).toBe(3);
    expect(committedValue({ ...joint, outgoingVoters: [] }, v)).toBe(8);
    expect(committedValue({ voters: ["a", "d", "e"], learners: ["x", "y"], outgoingVoters: [] }, v)).toBe(3);
  });
});

describe("vote outcomes (§5.2)", () => {
  const abc = ["a", "b", "c"];

  it("single configuration: won with a majority of grants, lost once a majority is out of reach, else pending", () => {
    expect(voteOutcome(abc, votes({ a: true }))).toBe("pending");
    expect(voteOutcome(abc, votes({ a: true, b: true }))).toBe("won");
    expect(voteOutcome(abc, votes({ a: true, b: false }))).toBe("pending");
    expect(voteOutcome(abc, votes({ a: true, b: false, c: false }))).toBe("lost");
    expect(voteOutcome(["a", "b", "c", "d"], votes({ a: true, b: true }))).toBe("pending");
    expect(voteOutcome(["a", "b", "c", "d"], votes({ a: true, b: false, c: false }))).toBe("lost");
    expect(voteOutcome(abc, votes({ a: true, z: true }))).toBe("pending"); // a non-voter's grant does not count
  });

  it("joint configuration: won only when both halves are won, lost when either is lost", () => {
    const old = ["c", "d", "e"];
    expect(jointVoteOutcome(abc, old, votes({ a: true, b: true }))).toBe("pending");
    expect(jointVoteOutcome(abc, old, votes({ a: true, b: true, c: true, d: true }))).toBe("won");
    expect(jointVoteOutcome(abc, old, votes({ a: true, b: true, d: false, e: false }))).toBe("lost");
    expect(jointVoteOutcome(abc, old, votes({ c: true, d: true, a: false, b: false }))).toBe("lost");
    expect(electionOutcome({ voters: abc, learners: [], outgoingVoters: old }, votes({ a: true, b: true, c: true, d: true }))).toBe("won");
    expect(electionOutcome({ voters: abc, learners: [], outgoingVoters: old }, votes({ a: true, b: true }))).toBe("pending");
  });
});

describe("configurations", () => {
  it("voters of either half vote; learners do not; joint when an outgoing set exists", () => {
    const joint = { voters: ["a", "b"], learners: ["x"], outgoingVoters: ["c"] };
    expect(isJoint(joint)).toBe(true);
    expect(isJoint(votersConfig(["a"]))).toBe(false);
    expect(["a", "c", "x", "z"].map((id) => isVoter(joint, id))).toEqual([true, true, false, false]);
  });

  it("rejects malformed configurations with a message", () => {
    expect(configProblem(votersConfig(["a", "b"]))).toBeNull();
    expect(configProblem(votersConfig([]))).toMatch(/at least one voter/);
    expect(configProblem(votersConfig(["a", "a"]))).toMatch(/twice/);
    expect(configProblem({ voters: ["a"], learners: ["a"], outgoingVoters: [] })).toMatch(/both a voter and a learner/);
  });
});
