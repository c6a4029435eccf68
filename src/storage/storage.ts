import type { Entry, HardState } from "../core/messages.js";

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
  /** Releases the storage. Pending saves settle first. Safe to call more than once. */
  close(): Promise<void>;
}
