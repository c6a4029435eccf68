// The simulator's safety checker itself: it must flag a real log-matching violation, and
// must not flag entries that only a crashed node's memory ever held.
import { describe, expect, it } from "vitest";
import type { Entry } from "../src/core/messages.js";
import { SafetyChecker } from "../src/testing/safety.js";
import { newRaft } from "./core/harness.js";

function entries(...data: string[]): Entry[] {
  return data.map((d, i) => ({ index: i + 1, term: 1, type: "command", data: new TextEncoder().encode(d) }));
}

const onDisk = (): boolean => false;

describe("SafetyChecker, log matching", () => {
  it("flags two logs holding different entries under the same (index, term)", () => {
    const checker = new SafetyChecker();
    checker.startIncarnation("a");
    checker.startIncarnation("b");
    checker.check("a", newRaft("a", { peers: ["a", "b"], term: 1, entries: entries("x", "y") }));
    expect(() => checker.check("b", newRaft("b", { peers: ["a", "b"], term: 1, entries: entries("x", "z") }))).toThrow(/log matching: entry \(2, term 1\)/);
  });

  it("forgets what only a crashed node's memory held, but not what another log holds too", () => {
    const checker = new SafetyChecker();
    checker.startIncarnation("a");
    checker.check("a", newRaft("a", { peers: ["a"], term: 1, entries: entries("x", "y") }));
    checker.onCrash("a", onDisk); // (2, 1) "y" was never durable, nor sent
    checker.startIncarnation("a");
    checker.check("a", newRaft("a", { peers: ["a"], term: 1, entries: entries("x", "z") }));

    checker.startIncarnation("b");
    checker.check("b", newRaft("b", { peers: ["a", "b"], term: 1, entries: entries("x", "z") }));
    checker.onCrash("a", onDisk); // b still holds (2, 1) "z"
    checker.startIncarnation("a");
    expect(() => checker.check("a", newRaft("a", { peers: ["a"], term: 1, entries: entries("x", "w") }))).toThrow(/log matching/);
  });
});
