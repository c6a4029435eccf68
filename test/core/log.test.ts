// The log (Raft paper §5.3 Log Matching, §5.4.1 up-to-date comparison) and its invariants.
import { describe, expect, it } from "vitest";
import { InvariantError, RaftLog } from "../../src/core/log.js";
import { entriesFrom, log } from "./harness.js";

const raftLog = (terms: number[], committed = 0) => new RaftLog(1, log(...terms), committed);
const terms = (l: RaftLog) => Array.from({ length: l.lastIndex() }, (_, i) => l.term(i + 1));

describe("RaftLog", () => {
  it("§5.4.1: a log is more up to date by last term first, then by length", () => {
    const l = raftLog([1, 2, 2]);
    expect(l.isUpToDate(1, 3)).toBe(true); // higher last term wins even when shorter
    expect(l.isUpToDate(9, 1)).toBe(false); // lower last term loses even when longer
    expect(l.isUpToDate(3, 2)).toBe(true); // equal
    expect(l.isUpToDate(2, 2)).toBe(false); // same term, shorter
    expect(l.isUpToDate(4, 2)).toBe(true);
  });

  it("§5.3: appending after a match skips entries already held and truncates at the first conflict", () => {
    const l = raftLog([1, 1, 2, 2, 2]);
    l.appendAfterMatch(entriesFrom(2, 1, 2)); // all held
    expect(terms(l)).toEqual([1, 1, 2, 2, 2]);
    l.appendAfterMatch(entriesFrom(3, 2, 3)); // 3 held, 4 conflicts: 4 and 5 go
    expect(terms(l)).toEqual([1, 1, 2, 3]);
  });

  it("§5.3: truncation marks the replaced entries unstable again", () => {
    const l = raftLog([1, 1, 2, 2]);
    expect(l.unstableFrom).toBe(5); // loaded entries are durable
    l.appendAfterMatch(entriesFrom(3, 3));
    expect(l.unstableFrom).toBe(3);
    expect(l.unstableEntries().map((e) => [e.index, e.term])).toEqual([[3, 3]]);
  });

  it("§5.4: truncating a committed entry is an invariant violation, never a silent repair", () => {
    const l = raftLog([1, 1, 2], 3);
    expect(() => l.appendAfterMatch(entriesFrom(3, 3))).toThrow(InvariantError);
  });

  it("commit never moves past the last entry", () => {
    const l = raftLog([1, 1]);
    expect(l.commitTo(2)).toBe(true);
    expect(l.commitTo(1)).toBe(false);
    expect(() => l.commitTo(3)).toThrow(InvariantError);
  });

  it("stableTo ignores an acknowledgement for entries that were replaced meanwhile (their term differs)", () => {
    const l = new RaftLog(1, [], 0);
    l.append(entriesFrom(1, 1, 1));
    l.appendAfterMatch(entriesFrom(2, 2)); // entry 2 of term 1 replaced before it was acknowledged
    l.stableTo(2, 1);
    expect(l.unstableFrom).toBe(1);
    l.stableTo(2, 2);
    expect(l.unstableFrom).toBe(3);
  });

  it("slice bounds entries by count and bytes, but always returns one entry when any is left", () => {
    const l = new RaftLog(1, [], 0);
    const data = new Uint8Array(26); // 50 bytes with the per-entry overhead
    l.append([1, 2, 3, 4].map((index) => ({ index, term: 1, type: "command" as const, data })));
    expect(l.slice(1, 3, 1e9).map((e) => e.index)).toEqual([1, 2, 3]);
    expect(l.slice(1, 100, 120).map((e) => e.index)).toEqual([1, 2]);
    expect(l.slice(2, 100, 10).map((e) => e.index)).toEqual([2]);
    expect(l.slice(5, 100, 1e9)).toEqual([]);
  });

  it("term lookups used by fast backtracking", () => {
    const l = raftLog([1, 1, 2, 2, 2, 4, 4]);
    expect(l.firstIndexOfTermAt(5)).toBe(3);
    expect(l.firstIndexOfTermAt(7)).toBe(6);
    expect(l.lastIndexOfTerm(2, 7)).toBe(5);
    expect(l.lastIndexOfTerm(2, 4)).toBe(4);
    expect(l.lastIndexOfTerm(3, 7)).toBeUndefined();
  });

  it("hands out committed entries for applying, in order and only up to commit", () => {
    const l = raftLog([1, 1, 1, 1], 0);
    l.commitTo(3);
    expect(l.entriesToApply(2).map((e) => e.index)).toEqual([1, 2]);
    l.appliedTo(2);
    expect(l.entriesToApply(10).map((e) => e.index)).toEqual([3]);
    expect(() => l.appliedTo(4)).toThrow(InvariantError);
  });
});
