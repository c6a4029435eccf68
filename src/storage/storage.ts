import type { Entry, HardState, Snapshot } from "../core/messages.js";

export type { Snapshot };

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
   * A snapshot received from the leader. It replaces the stored snapshot and the whole
   * log: every stored entry is removed and the log restarts after the snapshot
   * (`firstIndex = meta.index + 1`, `compactedTerm = meta.term`). Applied before `entries`.
   */
  readonly snapshot?: Snapshot;
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
 * Contract: calls never overlap (the node waits for each `save` before the next); a
 * resolved `save` means durable (for adapters whose capabilities say `durable`); a
 * rejected one stops the node.
 * @public
 */
export interface RaftStorage {
  /** Declared behaviour. */
  readonly capabilities: StorageCapabilities;
  /** Opens the storage and returns what was persisted. Called once, before any save. */
  load(): Promise<StoredState>;
  /** Durably writes one batch, atomically. */
  save(batch: StorageBatch): Promise<void>;
  /**
   * Durably stores a snapshot this node took of its own state machine and removes the
   * entries up to and including `compactTo` (at most `snapshot.meta.index`; entries after
   * it stay, so that slow followers can still catch up from the log). `compactToTerm` is
   * the term of the entry at `compactTo`, returned later as `compactedTerm`. Atomic: after
   * a crash either the old snapshot and log or the new ones are there.
   */
  compact(snapshot: Snapshot, compactTo: number, compactToTerm: number): Promise<void>;
  /** Releases the storage. Pending saves settle first. Safe to call more than once. */
  close(): Promise<void>;
}
