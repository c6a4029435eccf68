import type { Entry, HardState, Snapshot, SnapshotData, SnapshotMeta } from "../core/messages.js";

export type { Snapshot, SnapshotData };

/**
 * What a node finds in its storage when it starts.
 * @public
 */
export interface StoredState {
  /** The persisted hard state; `{ term: 0, vote: null, commit: 0 }` for a new node. */
  readonly hardState: HardState;
  /** The persisted log entries in index order, contiguous, starting at `firstIndex`. */
  readonly entries: readonly Entry[];
  /**
   * The index of the first entry the log may hold (1 for a log that was never compacted).
   * `entries`, when not empty, starts here.
   */
  readonly firstIndex: number;
  /** The term of the entry at `firstIndex - 1`, which was compacted away (0 when nothing was). */
  readonly compactedTerm: number;
  /** The latest snapshot, or null when none was taken or received. */
  readonly snapshot: Snapshot | null;
}

/**
 * One durable write. Applied atomically: after a crash either all of it is there or none.
 * @public
 */
export interface StorageBatch {
  /** The new hard state, when it changed. */
  readonly hardState?: HardState;
  /**
   * Entries to append. Any stored entry at an index at or after `entries[0].index` is
   * removed first (a conflicting suffix is truncated). Contiguous and in index order.
   */
  readonly entries?: readonly Entry[];
  /**
   * A snapshot received from the leader, written by {@link RaftStorage.writeSnapshot}. It replaces the stored snapshot and the whole
   * log: every stored entry is removed and the log restarts after the snapshot
   * (`firstIndex = meta.index + 1`, `compactedTerm = meta.term`). Applied before `entries`.
   */
  readonly snapshot?: Snapshot;
  /**
   * Whether the batch must be durable before `save` resolves (default true). False only
   * for a batch that changes nothing but the hard state's commit index: losing it in a
   * crash is harmless (the node learns the commit index again from the leader), so an
   * adapter may skip the fsync. A later synced batch makes it durable too.
   */
  readonly sync?: boolean;
}

/**
 * Declared optional behaviour of a storage adapter.
 * @public
 */
export interface StorageCapabilities {
  /** Whether a resolved {@link RaftStorage.save} survives a process crash and power loss. */
  readonly durable: boolean;
}

/**
 * The durable sink for a node's hard state and log. The node keeps its own in-memory
 * view of the log and never reads back from storage except at start.
 *
 * Contract: `save` and `compact` never overlap (the node waits for each before the
 * next); `writeSnapshot` may run alongside them, and its result counts for nothing until
 * a `compact` or a `save` names it. A
 * resolved `save` means durable (for adapters whose capabilities say `durable`); a
 * rejected one stops the node. Adapters reject with a `RaftError`: `STOPPED` after
 * `close()`, `STORAGE` when a write fails or the store is not this node's, `CORRUPT` when
 * data read back fails validation. Test an adapter with `storageConformance` from
 * `raftkit/testing`.
 *
 * @example
 * ```ts
 * class MyStorage implements RaftStorage {
 *   readonly capabilities = { durable: true };
 *   async load(): Promise<StoredState> { ... }
 *   async save(batch: StorageBatch): Promise<void> { ... } // atomic, then fsync
 *   async writeSnapshot(meta: SnapshotMeta, chunks: AsyncIterable<Uint8Array>): Promise<Snapshot> { ... }
 *   async compact(snapshot: Snapshot, compactTo: number, compactToTerm: number): Promise<void> { ... }
 *   async close(): Promise<void> { ... }
 * }
 * ```
 * @public
 */
export interface RaftStorage {
  /** Declared behaviour. */
  readonly capabilities: StorageCapabilities;
  /**
   * Opens the storage and returns what was persisted. Called once per node start, before
   * any save; may be called again after `close()` (a node restarted in the same process).
   * @returns The persisted state; an empty one for a new store.
   */
  load(): Promise<StoredState>;
  /**
   * Durably writes one batch, atomically.
   * @param batch - What to write; see {@link StorageBatch} for the order of its parts.
   * @returns Resolves once the batch is durable (for `sync: false`, once it is written);
   * rejects (with `STORAGE`, or `STOPPED` after close) when it is not, which stops the node.
   */
  save(batch: StorageBatch): Promise<void>;
  /**
   * Durably writes a snapshot's bytes as they stream in, aside: it becomes the node's
   * snapshot only when a later `compact` (one this node took) or `save` (one received from
   * the leader) names it, and until then a crash or `load()` may discard it. Large
   * snapshots belong in files, written to a temporary name, synced and renamed.
   * @param meta - What the snapshot covers.
   * @param chunks - Its bytes in order. When the stream throws (a transfer was abandoned),
   * the write is abandoned too: reject with that error and leave nothing behind.
   * @returns The stored snapshot, whose `data` reads the bytes back. That handle must stay
   * readable while it is held, even once a newer snapshot replaced this one.
   */
  writeSnapshot(meta: SnapshotMeta, chunks: AsyncIterable<Uint8Array>): Promise<Snapshot>;
  /**
   * Durably stores a snapshot this node took of its own state machine and removes the
   * entries up to and including `compactTo` (at most `snapshot.meta.index`; entries after
   * it stay, so that slow followers can still catch up from the log). `compactToTerm` is
   * the term of the entry at `compactTo`, returned later as `compactedTerm`. Atomic: after
   * a crash either the old snapshot and log or the new ones are there.
   * @param snapshot - The snapshot to store, from {@link RaftStorage.writeSnapshot}; it replaces the stored one.
   * @param compactTo - The last index to remove from the log.
   * @param compactToTerm - The term of the entry at `compactTo`.
   * @returns Resolves once durable; rejects with `STORAGE` (or `STOPPED` after close).
   */
  compact(snapshot: Snapshot, compactTo: number, compactToTerm: number): Promise<void>;
  /**
   * Releases the storage. Pending saves settle first. Safe to call more than once.
   * @returns Resolves once every resource is released.
   */
  close(): Promise<void>;
}
