// InstallSnapshot: Raft paper §7.
import { describe, expect, it } from "vitest";
import type { InstallSnapshotMessage } from "../../src/core/messages.js";
import { Network, bytesOf, drain, item, log, memorySnapshot, newRaft, ofType } from "./harness.js";

const ABC = ["a", "b", "c"];
const config = { voters: ABC, learners: [], outgoingVoters: [] };

function chunk(index: number, term: number, data: number[], offset = 0, done = true): InstallSnapshotMessage {
  return { type: "InstallSnapshot", from: "a", to: "b", term: 3, meta: { index, term, config }, offset, data: new Uint8Array(data), done };
}

describe("InstallSnapshot (§7)", () => {
  it("§7: a snapshot of a prefix of the follower's log keeps the entries after it", () => {
    const b = newRaft("b", { peers: ABC, term: 3, entries: log(1, 1, 2, 2, 3, 3) });
    b.step(chunk(4, 2, [1, 2, 3]));
    const rd = drain(b);
    expect(rd.readies.every((r) => r.snapshot === null)).toBe(true);
    expect(b.log.lastIndex()).toBe(6);
    expect(b.log.committed).toBe(4);
    expect(ofType(rd.messages, "AppendEntriesResponse")).toMatchObject([{ success: true, index: 4 }]);
  });

  it("§7: a snapshot that conflicts with the log, or goes past it, replaces the whole log", () => {
    const b = newRaft("b", { peers: ABC, term: 3, entries: log(1, 1, 2) });
    b.step(chunk(5, 3, [9], 0, false));
    expect(ofType(drain(b).messages, "InstallSnapshotResponse")).toMatchObject([{ index: 5, offset: 1 }]);
    b.step(chunk(5, 3, [8], 1, true));
    const rd = drain(b);
    expect(rd.readies.find((r) => r.snapshot !== null)!.snapshot).toMatchObject({ index: 5, term: 3 });
    expect(rd.installed.map((s) => [...bytesOf(s)])).toEqual([[9, 8]]);
    expect(b.snapshot?.meta.index).toBe(5);
    expect(b.log.lastIndex()).toBe(5);
    expect(b.log.firstIndex()).toBe(6);
    expect(ofType(rd.messages, "AppendEntriesResponse")).toMatchObject([{ success: true, index: 5 }]);
  });

  it("answers a chunk out of order with the offset it expects, and resumes a resent first chunk", () => {
    const b = newRaft("b", { peers: ABC, term: 3 });
    b.step(chunk(5, 3, [1, 2], 0, false));
    drain(b);
    b.step(chunk(5, 3, [5], 4, false)); // a chunk went missing
    expect(ofType(drain(b).messages, "InstallSnapshotResponse")).toMatchObject([{ offset: 2 }]);
    b.step(chunk(5, 3, [1, 2], 0, false)); // the leader resends from the start
    expect(ofType(drain(b).messages, "InstallSnapshotResponse")).toMatchObject([{ offset: 2 }]);
  });
});

/**
 * a leads a, b, c with chunks of 4 bytes; c was cut off while a committed three entries
 * and compacted its log to a snapshot of 64 bytes of `fill`. Returns the network and a.
 */
function leaderPastCompaction(fill: number) {
  const net = Network.cluster(ABC, { snapshotChunkBytes: 4 });
  net.elect("a");
  const a = net.get("a");
  net.isolate("c");
  for (let i = 0; i < 3; i++) a.propose([item()]);
  net.stabilize();
  const snapshot = memorySnapshot({ index: a.log.committed, term: a.term, config }, new Uint8Array(64).fill(fill));
  a.compact(snapshot, a.log.committed);
  return { net, a, snapshot };
}

describe("sending a snapshot (§7)", () => {
  it("resumes from where the follower says it is, even behind an answer that said more (a restart)", () => {
    const { net, a } = leaderPastCompaction(3);
    const index = a.log.committed;
    // c answers heartbeats, so a sends it the snapshot; no chunk reaches it.
    net.heal();
    net.drop((m) => m.type === "InstallSnapshot" || m.type === "InstallSnapshotResponse");
    net.tick("a");
    net.stabilize();
    expect(a.progress.get("c")?.state).toBe("snapshot");
    // A delayed answer from c's previous life says 40 bytes; c, restarted, says 8.
    const answer = (offset: number) => a.step({ type: "InstallSnapshotResponse", from: "c", to: "a", term: a.term, index, offset });
    answer(40);
    answer(8);
    const resent: number[] = [];
    const collect = (): void => {
      for (const r of drain(a).readies) for (const c of r.snapshotOut) if (c.to === "c") resent.push(c.offset);
    };
    collect();
    const onAnswers = resent.length; // the answer of 40 made the leader go on from 40
    // The next heartbeat answers make the leader resend: from 8, where c really is.
    for (let i = 0; i < 3; i++) {
      a.tick();
      collect();
      a.step({ type: "HeartbeatResponse", from: "c", to: "a", term: a.term, readRound: 0 });
      collect();
    }
    expect(resent.slice(onAnswers)[0]).toBe(8);
  });

  it("a node that installed a snapshot sends it on only once the driver handed over the stored copy", () => {
    // b installs a snapshot at 5; its bytes are in storage, not in the core. Until the
    // driver calls snapshotInstalled, b has nothing to send a follower that needs them.
    const b = newRaft("b", { peers: ABC, term: 3 });
    b.step(chunk(5, 3, [7, 7]));
    const rd = b.ready();
    expect(rd.snapshot).toMatchObject({ index: 5 });
    expect(rd.snapshotIn.map((c) => [...c.data])).toEqual([[7, 7]]);
    b.advance(rd);
    b.campaignNow();
    drain(b);
    for (const from of ["a", "c"]) b.step({ type: "RequestVoteResponse", from, to: "b", term: 4, preVote: false, granted: true, commit: 0, commitTerm: 0 });
    expect(b.role).toBe("leader");
    drain(b);
    // a has nothing: its rejection sends b back to index 1, which b compacted.
    b.step({ type: "AppendEntriesResponse", from: "a", to: "b", term: 4, success: false, index: 5, hintIndex: 1, hintTerm: 0 });
    expect(drain(b).readies.flatMap((r) => r.snapshotOut)).toEqual([]);
    b.snapshotInstalled(memorySnapshot({ index: 5, term: 3, config }, new Uint8Array([7, 7])));
    const out = drain(b).readies.flatMap((r) => r.snapshotOut);
    expect(out.map((c) => [c.to, c.meta.index, c.offset, c.length, c.done])).toEqual([["a", 5, 0, 2, true]]);
  });

  it("finishes the transfer in progress even when the leader takes a newer snapshot meanwhile", () => {
    const { net, a, snapshot: older } = leaderPastCompaction(1);
    net.heal();
    // Chunks go out and are answered one round at a time; after the first round the leader
    // takes a newer snapshot, which must not restart the transfer to c.
    net.hold((m) => m.type === "InstallSnapshotResponse");
    net.tick("a");
    net.stabilize();
    expect(ofType(net.sent, "InstallSnapshot", "c").length).toBeGreaterThan(0);
    a.propose([item()]);
    net.stabilize();
    a.compact(memorySnapshot({ index: a.log.committed, term: a.term, config }, new Uint8Array(64).fill(2)), a.log.committed);
    net.heal();
    net.release();
    net.stabilize();
    const sentToC = ofType(net.sent, "InstallSnapshot", "c");
    const first = sentToC.findIndex((m) => m.meta.index !== older.meta.index);
    // Every chunk of the older snapshot went out before any of the newer one.
    const olderChunks = sentToC.filter((m) => m.meta.index === older.meta.index);
    expect(olderChunks.some((m) => m.done)).toBe(true);
    if (first >= 0) expect(sentToC.slice(first).every((m) => m.meta.index !== older.meta.index)).toBe(true);
    expect(net.get("c").log.committed).toBe(a.log.committed);
  });
});
