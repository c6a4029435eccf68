/**
 * The conformance suite for {@link RaftStorage} adapters, runner-agnostic: the caller
 * passes its test runner's `describe`, `it` and `expect` (vitest's, jest's, or anything
 * with the same shape), so the suite imports no runner.
 */
import type { Entry, EntryType, HardState, SnapshotMeta } from "../core/messages.js";
import type { RaftStorage, Snapshot, SnapshotData, StoredState } from "../storage/storage.js";
import { snapshotBytes } from "../snapshot-data.js";
import { isRaftError } from "../errors.js";

/**
 * The subset of an assertion the suite uses (vitest's and Jest's `expect` fit it).
 * @public
 */
export interface StorageConformanceAssertion {
  /** Strict equality (`Object.is`). */
  toBe(expected: unknown): void;
  /** Deep equality. */
  toEqual(expected: unknown): void;
}

/**
 * One fresh storage for one test case, as made by {@link StorageConformanceOptions.factory}.
 * @public
 */
export interface StorageConformanceContext {
  /** A new, empty storage whose `load()` has not been called. */
  readonly storage: RaftStorage;
  /**
   * Opens a new instance over the same persisted data, as a restarted process would; the
   * previous instance is closed first. Required when `storage.capabilities.durable` is
   * true. Without it, the suite reads data back by `close()` and then `load()` on the same
   * object (the restart a node does in the same process).
   */
  readonly reopen?: () => Promise<RaftStorage>;
  /** Removes what the storage left behind (a temp directory). Runs after every case. */
  readonly cleanup?: () => Promise<void>;
}

/**
 * Options of {@link storageConformance}.
 * @public
 */
export interface StorageConformanceOptions {
  /** Names the suite: `storage conformance: <name>`. */
  readonly name: string;
  /** Makes one fresh storage per test case. */
  factory(): Promise<StorageConformanceContext>;
  /** The runner's `describe`. */
  describe(name: string, body: () => void): void;
  /** The runner's `it` (or `test`). */
  it(name: string, body: () => Promise<void>): void;
  /** The runner's `expect`. */
  expect(actual: unknown): StorageConformanceAssertion;
}

/**
 * Registers the {@link RaftStorage} conformance cases with the caller's test runner.
 * Every storage adapter, in-memory or durable, must pass them.
 *
 * @example
 * ```ts
 * import { describe, it, expect } from "vitest";
 * import { MemoryStorage } from "raftkit";
 * import { storageConformance } from "raftkit/testing";
 *
 * storageConformance({ name: "MemoryStorage", factory: async () => ({ storage: new MemoryStorage() }), describe, it, expect });
 * ```
 * For a durable adapter, give `reopen` (a new instance over the same data) and `cleanup`:
 * ```ts
 * storageConformance({
 *   name: "LevelStorage",
 *   factory: async () => {
 *     const dir = await mkdtemp(join(tmpdir(), "store-"));
 *     const open = () => new LevelStorage({ location: dir, nodeId: "n1" });
 *     return { storage: open(), reopen: async () => open(), cleanup: () => rm(dir, { recursive: true, force: true }) };
 *   },
 *   describe, it, expect,
 * });
 * ```
 * @param options - The suite's name, the factory, and the runner's functions.
 * @public
 */
export function storageConformance(options: StorageConformanceOptions): void {
  // Called unbound, as runners' describe/it/expect are meant to be.
  const { name, factory, describe, it, expect } = options;

  /** Runs `body` on a fresh context, then closes every instance and cleans up. */
  const withStorage = (body: (s: Session) => Promise<void>) => async (): Promise<void> => {
    const context = await factory();
    const session = new Session(context);
    try {
      await body(session);
    } finally {
      await session.closeAll();
      await context.cleanup?.();
    }
  };
  const expectEntries = (actual: StoredState, expected: readonly Entry[]): void => {
    expect(actual.entries.map(plain)).toEqual(expected.map(plain));
  };
  const expectCode = async (promise: Promise<unknown>, code: string): Promise<void> => {
    expect(await outcome(promise)).toBe(code);
  };
  /** The log's start, its entries and its snapshot (data compared byte for byte). */
  const expectLog = async (actual: StoredState, firstIndex: number, compactedTerm: number, entries: readonly Entry[], snapshot: Snapshot | null): Promise<void> => {
    expect({ firstIndex: actual.firstIndex, compactedTerm: actual.compactedTerm }).toEqual({ firstIndex, compactedTerm });
    expectEntries(actual, entries);
    await expectSnapshot(actual.snapshot, snapshot);
  };
  const expectSnapshot = async (actual: Snapshot | null, expected: Snapshot | null): Promise<void> => {
    if (actual === null || expected === null) {
      expect(actual === null ? null : "a snapshot").toEqual(expected === null ? null : "a snapshot");
      return;
    }
    expect(actual.meta).toEqual(expected.meta);
    const want = expectedBytes.get(expected)!;
    await expectData(actual.data, want);
  };
  /** Reads `data` whole and in pieces, and compares with `want`. */
  const expectData = async (data: SnapshotData, want: Uint8Array): Promise<void> => {
    expect(data.byteLength).toBe(want.byteLength);
    // Length and first difference rather than a deep compare: multi-MB arrays diff slowly and unreadably.
    expect(firstDifference(await snapshotBytes(data), want)).toBe(-1);
    if (want.byteLength > 2) {
      const mid = want.byteLength >> 1;
      expect(firstDifference(await data.read(mid, 2), want.subarray(mid, mid + 2))).toBe(-1);
      // A read past the end returns what there is.
      expect(firstDifference(await data.read(want.byteLength - 1, 10), want.subarray(want.byteLength - 1))).toBe(-1);
    }
  };

  describe(`storage conformance: ${name}`, () => {
    it("loads an empty state from a new store", withStorage(async (s) => {
      expect(typeof s.storage.capabilities.durable).toBe("boolean");
      const state = await s.storage.load();
      expect(state.hardState).toEqual({ term: 0, vote: null, commit: 0 });
      await expectLog(state, 1, 0, [], null);
      const again = await s.restart();
      expect(again.hardState).toEqual({ term: 0, vote: null, commit: 0 });
      await expectLog(again, 1, 0, [], null);
    }));

    it("appends entries and reads back every range in index order", withStorage(async (s) => {
      await s.storage.load();
      const log = [
        entry(1, 1, "noop", new Uint8Array(0)),
        entry(2, 1, "command"),
        entry(3, 1, "config"),
        entry(4, 1, "command", bytes(65_536, 7)),
      ];
      await s.storage.save({ entries: log.slice(0, 3) });
      await s.storage.save({ entries: log.slice(3) });
      for (let i = 5; i <= 10; i++) log.push(entry(i, 2));
      await s.storage.save({ entries: log.slice(4, 9) });
      await s.storage.save({ entries: log.slice(9) });
      expectEntries(await s.restart(), log);
      log.push(entry(11, 3));
      await s.storage.save({ entries: [log[10]!] });
      const state = await s.restart();
      expect(state.firstIndex).toBe(1);
      expectEntries(state, log);
    }));

    it("truncates a conflicting suffix when entries start in the middle of the log", withStorage(async (s) => {
      await s.storage.load();
      await s.storage.save({ entries: range(1, 10, 1) });
      await s.storage.save({ entries: range(6, 7, 2) });
      expectEntries(await s.restart(), [...range(1, 5, 1), ...range(6, 7, 2)]);
      // Several truncations before a restart: the adapter's view of what is stored must follow.
      await s.storage.save({ entries: range(8, 12, 2) });
      await s.storage.save({ entries: range(3, 3, 3) });
      await s.storage.save({ entries: range(4, 5, 3) });
      expectEntries(await s.restart(), [...range(1, 2, 1), ...range(3, 5, 3)]);
      // Replacing the whole log, from its first index.
      await s.storage.save({ entries: range(1, 1, 4) });
      expectEntries(await s.restart(), range(1, 1, 4));
    }));

    it("saves the hard state together with entries", withStorage(async (s) => {
      await s.storage.load();
      await s.storage.save({ hardState: hs(1, "n1", 0), entries: range(1, 2, 1) });
      let state = await s.restart();
      expect(state.hardState).toEqual(hs(1, "n1", 0));
      expectEntries(state, range(1, 2, 1));
      await s.storage.save({ hardState: hs(2, null, 2), entries: range(2, 4, 2) });
      state = await s.restart();
      expect(state.hardState).toEqual(hs(2, null, 2));
      expectEntries(state, [...range(1, 1, 1), ...range(2, 4, 2)]);
    }));

    it("saves the hard state alone, leaving the log as it is", withStorage(async (s) => {
      await s.storage.load();
      await s.storage.save({ entries: range(1, 3, 1) });
      await s.storage.save({ hardState: hs(5, "node-é", 3) });
      let state = await s.restart();
      expect(state.hardState).toEqual(hs(5, "node-é", 3));
      expectEntries(state, range(1, 3, 1));
      await s.storage.save({ hardState: hs(6, null, 3) });
      await s.storage.save({});
      state = await s.restart();
      expect(state.hardState).toEqual(hs(6, null, 3));
      expectEntries(state, range(1, 3, 1));
    }));

    it("rejects a first append that does not start at the first index", withStorage(async (s) => {
      await s.storage.load();
      await expectCode(s.storage.save({ entries: range(2, 3, 1) }), "STORAGE");
      const state = await s.restart();
      expectEntries(state, []);
    }));

    it("rejects a save whose entries would leave a gap, writing none of it", withStorage(async (s) => {
      await s.storage.load();
      await s.storage.save({ hardState: hs(1, "n1", 0), entries: range(1, 3, 1) });
      await expectCode(s.storage.save({ hardState: hs(9, "n9", 9), entries: range(5, 6, 9) }), "STORAGE");
      const state = await s.restart();
      expect(state.hardState).toEqual(hs(1, "n1", 0));
      expectEntries(state, range(1, 3, 1));
    }));

    it("lets a reopened instance see everything that was saved (durable adapters)", withStorage(async (s) => {
      const durable = s.storage.capabilities.durable;
      if (!s.canReopen) {
        // A durable adapter must show it: `durable` is declared, never guessed.
        expect(durable ? "durable adapter without reopen" : "ok").toBe("ok");
        return;
      }
      await s.storage.load();
      await s.storage.save({ hardState: hs(3, "n2", 2), entries: range(1, 5, 3) });
      await s.storage.save({ entries: range(4, 6, 4) });
      let state = await s.restart();
      expect(state.hardState).toEqual(hs(3, "n2", 2));
      expect(state.firstIndex).toBe(1);
      expectEntries(state, [...range(1, 3, 3), ...range(4, 6, 4)]);
      await s.storage.save({ hardState: hs(4, null, 6), entries: range(7, 7, 4) });
      state = await s.restart();
      expect(state.hardState).toEqual(hs(4, null, 6));
      expectEntries(state, [...range(1, 3, 3), ...range(4, 7, 4)]);
    }));

    it("rejects a save after close with STOPPED; close is idempotent", withStorage(async (s) => {
      await s.storage.load();
      await s.storage.save({ entries: range(1, 1, 1) });
      await s.storage.close();
      await s.storage.close();
      await expectCode(s.storage.save({ entries: range(2, 2, 1) }), "STOPPED");
      await expectCode(s.storage.save({ hardState: hs(1, null, 0) }), "STOPPED");
    }));

    it("lets pending saves settle before close resolves", withStorage(async (s) => {
      await s.storage.load();
      const saves = [1, 2, 3].map((i) => s.storage.save({ hardState: hs(i, null, 0), entries: range(i, i, 1) }));
      await s.storage.close();
      const outcomes = await Promise.all(saves.map(outcome));
      expect(outcomes).toEqual(["resolved", "resolved", "resolved"]);
      const state = await s.restart();
      expect(state.hardState).toEqual(hs(3, null, 0));
      expectEntries(state, range(1, 3, 1));
    }));

    it("keeps order over many sequential saves", withStorage(async (s) => {
      await s.storage.load();
      const count = 200;
      for (let i = 1; i <= count; i++) {
        await s.storage.save({ hardState: hs(1, "n1", i - 1), entries: [entry(i, 1)] });
      }
      const state = await s.restart();
      expect(state.hardState).toEqual(hs(1, "n1", count - 1));
      expectEntries(state, range(1, count, 1));
    }));

    it("compacts the log to a snapshot, keeping the entries after compactTo", withStorage(async (s) => {
      await s.storage.load();
      const log = [...range(1, 4, 1), ...range(5, 10, 2)];
      await s.storage.save({ hardState: hs(2, "n1", 8), entries: log });
      // Slow followers may still need 6..7: compaction stops short of the snapshot's index.
      const first = await written(s.storage, snap(7, 2, 1_000, 1));
      await s.storage.compact(first, 5, 2);
      let state = await s.restart();
      expect(state.hardState).toEqual(hs(2, "n1", 8));
      await expectLog(state, 6, 2, log.slice(5), first);
      // The log goes on after the compacted prefix; rewriting that prefix is refused.
      await s.storage.save({ entries: range(11, 12, 3) });
      await expectCode(s.storage.save({ entries: range(5, 6, 3) }), "STORAGE");
      state = await s.restart();
      await expectLog(state, 6, 2, [...log.slice(5), ...range(11, 12, 3)], first);
      // A later snapshot whose compaction point is already compacted replaces only the snapshot.
      const second = await written(s.storage, snap(9, 2, 0, 2));
      await s.storage.compact(second, 4, 1);
      state = await s.restart();
      await expectLog(state, 6, 2, [...log.slice(5), ...range(11, 12, 3)], second);
      // Compacting everything, up to the last entry, leaves an empty log after the snapshot.
      const third = await written(s.storage, snap(12, 3, 10, 3));
      await s.storage.compact(third, 12, 3);
      state = await s.restart();
      await expectLog(state, 13, 3, [], third);
      await s.storage.save({ entries: range(13, 13, 3) });
      await expectLog(await s.restart(), 13, 3, range(13, 13, 3), third);
    }));

    it("rejects a compaction past the snapshot or beyond the last entry, changing nothing", withStorage(async (s) => {
      await s.storage.load();
      await s.storage.save({ hardState: hs(1, null, 5), entries: range(1, 10, 1) });
      await expectCode(s.storage.compact(await written(s.storage, snap(5, 1, 10, 1)), 6, 1), "STORAGE");
      await expectCode(s.storage.compact(await written(s.storage, snap(11, 1, 10, 1)), 11, 1), "STORAGE");
      await expectCode(s.storage.compact(await written(s.storage, snap(11, 1, 10, 1)), 5, 1), "STORAGE");
      await expectLog(await s.restart(), 1, 0, range(1, 10, 1), null);
      // Still usable afterwards.
      const ok = await written(s.storage, snap(10, 1, 10, 1));
      await s.storage.compact(ok, 10, 1);
      await expectLog(await s.restart(), 11, 1, [], ok);
      // A snapshot older than what was compacted would leave a hole in the history.
      await expectCode(s.storage.compact(await written(s.storage, snap(8, 1, 10, 1)), 8, 1), "STORAGE");
      await expectLog(await s.restart(), 11, 1, [], ok);
    }));

    it("installs a snapshot through save, replacing the whole log", withStorage(async (s) => {
      await s.storage.load();
      await s.storage.save({ hardState: hs(1, "n1", 3), entries: range(1, 10, 1) });
      // Beyond the log: the log restarts after the snapshot, with the batch's entries after it.
      const ahead = await written(s.storage, snap(20, 3, 5_000, 4));
      await s.storage.save({ snapshot: ahead, entries: range(21, 23, 3), hardState: hs(3, null, 20) });
      let state = await s.restart();
      expect(state.hardState).toEqual(hs(3, null, 20));
      await expectLog(state, 21, 3, range(21, 23, 3), ahead);
      await s.storage.save({ entries: range(24, 24, 3) });
      await expectLog(await s.restart(), 21, 3, range(21, 24, 3), ahead);
      // Inside the log: every entry goes, those after the snapshot's index too.
      const behind = await written(s.storage, snap(22, 3, 1, 5));
      await s.storage.save({ snapshot: behind });
      state = await s.restart();
      expect(state.hardState).toEqual(hs(3, null, 20));
      await expectLog(state, 23, 3, [], behind);
      await s.storage.save({ entries: range(23, 24, 4) });
      await expectLog(await s.restart(), 23, 3, range(23, 24, 4), behind);
    }));

    it("rejects an install whose entries do not start right after the snapshot, writing none of it", withStorage(async (s) => {
      await s.storage.load();
      await s.storage.save({ hardState: hs(1, null, 0), entries: range(1, 3, 1) });
      await expectCode(s.storage.save({ snapshot: await written(s.storage, snap(10, 2, 10, 1)), entries: range(12, 12, 2), hardState: hs(2, null, 10) }), "STORAGE");
      await expectCode(s.storage.save({ snapshot: await written(s.storage, snap(10, 2, 10, 1)), entries: range(10, 11, 2) }), "STORAGE");
      const state = await s.restart();
      expect(state.hardState).toEqual(hs(1, null, 0));
      await expectLog(state, 1, 0, range(1, 3, 1), null);
    }));

    it("round-trips snapshot bytes exactly: empty, small and multi-MB", withStorage(async (s) => {
      await s.storage.load();
      await s.storage.save({ entries: range(1, 3, 1) });
      const empty = await written(s.storage, snap(1, 1, 0, 6));
      await s.storage.compact(empty, 1, 1);
      await expectLog(await s.restart(), 2, 1, range(2, 3, 1), empty);
      // Every byte value, at positions that a truncation or an offset mistake would shift.
      const big = await written(s.storage, { meta: meta(3, 1, ["n1", "n2", "n3"], ["l1"], ["n0"]), bytes: noise(6 * 1024 * 1024 + 17, 7) });
      await s.storage.compact(big, 2, 1);
      await expectLog(await s.restart(), 3, 1, range(3, 3, 1), big);
      const installed = await written(s.storage, { meta: meta(50, 4, ["n1"], [], []), bytes: noise(3 * 1024 * 1024, 8) });
      await s.storage.save({ snapshot: installed });
      await expectLog(await s.restart(), 51, 4, [], installed);
    }));

    it("writes snapshots aside: only a compact or save makes one the node's, and a handle outlives its replacement", withStorage(async (s) => {
      await s.storage.load();
      await s.storage.save({ entries: range(1, 10, 1) });
      const first = await written(s.storage, snap(5, 1, 70_000, 14));
      // Written but not named: the store still has no snapshot.
      await expectLog(await s.restart(), 1, 0, range(1, 10, 1), null);
      const again = await written(s.storage, snap(5, 1, 70_000, 14));
      await s.storage.compact(again, 4, 1);
      const second = await written(s.storage, snap(8, 1, 50_000, 15));
      await s.storage.compact(second, 7, 1);
      // A leader may still be sending the replaced snapshot: its handle reads as before.
      await expectData(again.data, expectedBytes.get(again)!);
      await expectLog(await s.restart(), 8, 1, range(8, 10, 1), second);
      expect(first.meta.index).toBe(5);
    }));

    it("abandons a snapshot write whose stream throws, keeping the stored snapshot", withStorage(async (s) => {
      await s.storage.load();
      await s.storage.save({ entries: range(1, 10, 1) });
      const kept = await written(s.storage, snap(4, 1, 1_000, 16));
      await s.storage.compact(kept, 3, 1);
      const broken = async function* (): AsyncGenerator<Uint8Array, void, undefined> {
        yield new Uint8Array(100_000);
        throw new Error("transfer abandoned");
      };
      expect(await outcome(s.storage.writeSnapshot(snap(9, 1, 0, 0).meta, broken()))).toBe("not a RaftError: Error: transfer abandoned");
      // The store works on, and still holds the snapshot it had.
      await s.storage.save({ entries: range(11, 11, 1) });
      await expectLog(await s.restart(), 4, 1, range(4, 11, 1), kept);
    }));

    it("lets a reopened instance see compactions and installs (durable adapters)", withStorage(async (s) => {
      if (!s.canReopen) return;
      await s.storage.load();
      await s.storage.save({ hardState: hs(1, "n1", 0), entries: range(1, 20, 1) });
      const compacted = await written(s.storage, snap(15, 1, 2_000, 9));
      await s.storage.compact(compacted, 12, 1);
      await s.storage.save({ hardState: hs(2, "n2", 15), entries: range(18, 25, 2) });
      let state = await s.restart();
      expect(state.hardState).toEqual(hs(2, "n2", 15));
      await expectLog(state, 13, 1, [...range(13, 17, 1), ...range(18, 25, 2)], compacted);
      const installed = await written(s.storage, snap(100, 5, 3_000, 10));
      await s.storage.save({ snapshot: installed, entries: range(101, 102, 5), hardState: hs(5, "n3", 100) });
      state = await s.restart();
      expect(state.hardState).toEqual(hs(5, "n3", 100));
      await expectLog(state, 101, 5, range(101, 102, 5), installed);
      // And a compaction on top of the installed snapshot.
      const again = await written(s.storage, snap(102, 5, 10, 11));
      await s.storage.compact(again, 101, 5);
      await expectLog(await s.restart(), 102, 5, range(102, 102, 5), again);
    }));

    it("orders compactions and installs with the saves around them", withStorage(async (s) => {
      await s.storage.load();
      const settled: number[] = [];
      const calls: Promise<void>[] = [];
      const track = (call: Promise<void>): void => {
        const n = calls.length;
        calls.push(call.then(() => void settled.push(n)));
      };
      // None awaited: the compaction must see the entries saved before it, and the saves
      // after it must land after it.
      for (let i = 1; i <= 50; i++) track(s.storage.save({ hardState: hs(1, null, i - 1), entries: [entry(i, 1)] }));
      const compacted = await written(s.storage, snap(40, 1, 100, 12));
      track(s.storage.compact(compacted, 30, 1));
      for (let i = 51; i <= 60; i++) track(s.storage.save({ entries: [entry(i, 1)] }));
      track(s.storage.save({ entries: range(55, 56, 2) }));
      await Promise.all(calls);
      expect(settled).toEqual(calls.map((_, n) => n));
      await expectLog(await s.restart(), 31, 1, [...range(31, 54, 1), ...range(55, 56, 2)], compacted);

      calls.length = 0;
      settled.length = 0;
      track(s.storage.save({ entries: range(57, 60, 2) }));
      const installed = await written(s.storage, snap(70, 3, 100, 13));
      track(s.storage.save({ snapshot: installed, entries: range(71, 72, 3), hardState: hs(3, null, 70) }));
      track(s.storage.save({ entries: range(73, 75, 3) }));
      track(s.storage.save({ hardState: hs(3, "n1", 74) }));
      await Promise.all(calls);
      expect(settled).toEqual(calls.map((_, n) => n));
      const state = await s.restart();
      expect(state.hardState).toEqual(hs(3, "n1", 74));
      await expectLog(state, 71, 3, range(71, 75, 3), installed);
    }));

    it("rejects a compaction after close with STOPPED", withStorage(async (s) => {
      await s.storage.load();
      await s.storage.save({ entries: range(1, 2, 1) });
      const early = await written(s.storage, snap(1, 1, 1, 1));
      await s.storage.close();
      await expectCode(s.storage.compact(early, 1, 1), "STOPPED");
      await expectCode(s.storage.save({ snapshot: early }), "STOPPED");
      await expectCode(s.storage.writeSnapshot(snap(2, 1, 1, 1).meta, unevenChunks(new Uint8Array(3))), "STOPPED");
    }));

    it("keeps order over concurrent saves, truncations included", withStorage(async (s) => {
      await s.storage.load();
      const settled: number[] = [];
      const saves: Promise<void>[] = [];
      const start = (batch: Parameters<RaftStorage["save"]>[0]): void => {
        const n = saves.length;
        saves.push(s.storage.save(batch).then(() => void settled.push(n)));
      };
      for (let i = 1; i <= 60; i++) start({ hardState: hs(1, null, 0), entries: [entry(i, 1)] });
      start({ hardState: hs(2, "n2", 10), entries: range(41, 45, 2) });
      for (let i = 46; i <= 100; i++) start({ entries: [entry(i, 2)] });
      start({ hardState: hs(2, "n2", 50) });
      await Promise.all(saves);
      expect(settled).toEqual(saves.map((_, n) => n));
      const state = await s.restart();
      expect(state.hardState).toEqual(hs(2, "n2", 50));
      expectEntries(state, [...range(1, 40, 1), ...range(41, 100, 2)]);
    }));
  });
}

/** The storage under test, and its restarts. */
class Session {
  storage: RaftStorage;
  private readonly opened: RaftStorage[];
  constructor(private readonly context: StorageConformanceContext) {
    this.storage = context.storage;
    this.opened = [context.storage];
  }
  get canReopen(): boolean {
    return this.context.reopen !== undefined;
  }
  /** Closes the storage and loads what a restart sees: a new instance when the context can reopen. */
  async restart(): Promise<StoredState> {
    await this.storage.close();
    if (this.context.reopen !== undefined) {
      this.storage = await this.context.reopen();
      this.opened.push(this.storage);
    }
    return this.storage.load();
  }
  async closeAll(): Promise<void> {
    for (const storage of this.opened) await storage.close().catch(() => {});
  }
}

/** "resolved", a RaftError's code, or a description of any other rejection. */
async function outcome(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return "resolved";
  } catch (err) {
    return isRaftError(err) ? err.code : `not a RaftError: ${String(err)}`;
  }
}

/**
 * An entry as plain data with hex `data`: a Buffer and a Uint8Array with equal bytes then
 * compare equal, large payloads compare fast, and a failure diff is readable.
 */
function plain(e: Entry): { index: number; term: number; type: EntryType; data: string } {
  let hex = "";
  for (const byte of e.data) hex += HEX[byte];
  return { index: e.index, term: e.term, type: e.type, data: hex };
}

const HEX: readonly string[] = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, "0"));

/** -1 when `a` and `b` hold the same bytes, else the first index where they differ. */
function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.byteLength, b.byteLength);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.byteLength === b.byteLength ? -1 : n;
}

function meta(index: number, term: number, voters: string[], learners: string[], outgoingVoters: string[]): SnapshotMeta {
  return { index, term, config: { voters, learners, outgoingVoters } };
}

/** What a test stores as a snapshot: its metadata and bytes. */
interface SnapshotSpec {
  readonly meta: SnapshotMeta;
  readonly bytes: Uint8Array;
}

/** A snapshot at `index`/`term` with `length` bytes of data derived from `seed`. */
function snap(index: number, term: number, length: number, seed: number): SnapshotSpec {
  return { meta: meta(index, term, ["n1", "n2", "n3"], [], []), bytes: bytes(length, seed) };
}

/** The bytes each snapshot written by {@link written} should read back as. */
const expectedBytes = new WeakMap<Snapshot, Uint8Array>();

/** Writes `spec` through `writeSnapshot`, streamed in uneven chunks, as a node does. */
async function written(storage: RaftStorage, spec: SnapshotSpec): Promise<Snapshot> {
  const snapshot = await storage.writeSnapshot(spec.meta, unevenChunks(spec.bytes));
  expectedBytes.set(snapshot, spec.bytes);
  return snapshot;
}

/** `data` in chunks of 1, 1,000 and 64 KiB + 3 bytes, over and over: boundaries land everywhere. */
async function* unevenChunks(data: Uint8Array): AsyncGenerator<Uint8Array, void, undefined> {
  const sizes = [1, 1000, 65_539];
  for (let offset = 0, k = 0; offset < data.byteLength; k++) {
    const end = Math.min(data.byteLength, offset + sizes[k % sizes.length]!);
    yield data.slice(offset, end);
    offset = end;
  }
}

/** Pseudo-random bytes (xorshift32), so that every byte value occurs and no short period hides a shift. */
function noise(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = (seed * 0x9e3779b1) >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

function hs(term: number, vote: string | null, commit: number): HardState {
  return { term, vote, commit };
}

/** Deterministic bytes whose length and content depend on `seed`. */
function bytes(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (seed * 31 + i * 7) & 0xff;
  return out;
}

function entry(index: number, term: number, type: EntryType = "command", data?: Uint8Array): Entry {
  return { index, term, type, data: data ?? bytes((index * 13 + term) % 50, index + term) };
}

/** Entries `from..to` inclusive, all of `term`. */
function range(from: number, to: number, term: number): Entry[] {
  const out: Entry[] = [];
  for (let i = from; i <= to; i++) out.push(entry(i, term));
  return out;
}
