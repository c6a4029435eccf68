/**
 * The conformance suite for {@link RaftStorage} adapters, runner-agnostic: the caller
 * passes its test runner's `describe`, `it` and `expect` (vitest's, jest's, or anything
 * with the same shape), so the suite imports no runner.
 */
import type { Entry, EntryType, HardState } from "../core/messages.js";
import type { RaftStorage, StoredState } from "../storage/storage.js";
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

  describe(`storage conformance: ${name}`, () => {
    it("loads an empty state from a new store", withStorage(async (s) => {
      expect(typeof s.storage.capabilities.durable).toBe("boolean");
      const state = await s.storage.load();
      expect(state.hardState).toEqual({ term: 0, vote: null, commit: 0 });
      expect(state.firstIndex).toBe(1);
      expectEntries(state, []);
      const again = await s.restart();
      expect(again.hardState).toEqual({ term: 0, vote: null, commit: 0 });
      expect(again.firstIndex).toBe(1);
      expectEntries(again, []);
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
