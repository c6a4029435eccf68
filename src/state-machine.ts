import type { SnapshotData, SnapshotSource } from "./snapshot-data.js";

/**
 * What {@link StateMachine.apply} learns about the entry it applies.
 * @public
 */
export interface ApplyMeta {
  /** The entry's log index. Strictly increasing across calls. */
  readonly index: number;
  /** The entry's term. */
  readonly term: number;
}

/**
 * The replicated state machine that raftkit drives: the one interface an application
 * implements. Every node applies the same commands in the same order, so `apply` must be
 * deterministic: its result and its effect may depend only on the state and the command,
 * never on time, randomness or I/O that differs between nodes.
 *
 * `snapshot` and `restore` are optional; implement both or neither. Without `snapshot`
 * the log is never compacted. Without `restore`, a node that must load a snapshot (at
 * start, or sent by a leader) fails with `INVALID_STATE`.
 *
 * @typeParam Cmd - The commands that `RaftNode.propose` takes.
 * @typeParam Result - What `apply` returns, and so what `propose` resolves with.
 *
 * @example
 * ```ts
 * class Counter implements StateMachine<{ add: number }, number> {
 *   value = 0;
 *   apply(cmd: { add: number }) { return (this.value += cmd.add); }
 * }
 * ```
 * @public
 */
export interface StateMachine<Cmd, Result> {
  /**
   * Applies one committed command and returns its result (or a promise of it), which
   * resolves the `propose()` promise of the node that proposed it. A throw (or
   * rejection) is a broken invariant: the node stops and emits `error`. To refuse a
   * command, return a result that says so instead (as `KvStateMachine` does).
   * @param command - The decoded command, as some node passed it to `propose()`.
   * @param meta - The entry's index and term.
   * @returns The result, handed to the proposer's `propose()` promise.
   */
  apply(command: Cmd, meta: ApplyMeta): Result | Promise<Result>;

  /**
   * Serialises the whole state, as it is after the last applied command. Needed for log
   * compaction and for catching up followers that are far behind; without it the log
   * grows forever.
   *
   * The state must be captured at the call: the node goes on applying commands while a
   * promise or stream is pending, and the bytes must describe the state at the call all
   * the same (a copy-on-write view or an immutable structure does this cheaply). A large
   * state should be returned as a stream of chunks (an async iterable): the storage
   * adapter writes them out as they come, so the state is never serialised into one buffer.
   * @returns The serialised state (bytes, a promise of them, or a stream of chunks); it is
   * stored by the storage adapter and sent to followers as is.
   */
  snapshot?(): SnapshotSource | Promise<Uint8Array>;

  /**
   * Replaces the whole state with one serialised by {@link StateMachine.snapshot} (on
   * this node or another). Must leave the state unchanged when it throws; a throw stops
   * the node. The data is read in pieces from storage (`snapshotChunks(data)`), so that a
   * large state is never in memory twice; `snapshotBytes(data)` reads a small one at once.
   * @param data - The stored snapshot: the bytes `snapshot()` produced, on this node or another.
   */
  restore?(data: SnapshotData): void | Promise<void>;
}
