import type { Entry, HardState, Message, NodeId, SnapshotData, SnapshotMeta } from "./messages.js";

/**
 * A read request that became safe to serve: once the state machine has applied
 * `index`, a read issued before the request was made observes every write that
 * completed before it. `index` 0 means refused (no leader, or leadership was lost).
 */
export interface ReadState {
  readonly requestId: number;
  readonly index: number;
}

/**
 * Where a forwarded proposal landed: the first of its entries was appended at `index`
 * in `term`; `index` 0 means the leader refused it (nothing was appended).
 */
export interface ProposalOutcome {
  readonly requestId: number;
  readonly index: number;
  readonly term: number;
}

/**
 * A chunk of a snapshot arriving from the leader, to write to storage in order. A chunk
 * at offset 0 starts a new transfer (abandoning any unfinished one); the others continue
 * the current transfer, contiguously. The last one has `done` set, and its Ready has the
 * snapshot to install.
 */
export interface IncomingSnapshotChunk {
  readonly meta: SnapshotMeta;
  readonly offset: number;
  readonly data: Uint8Array;
  readonly done: boolean;
}

/**
 * A chunk of a snapshot to send to a follower: the driver reads `length` bytes at
 * `offset` from `source` and sends them as an InstallSnapshot message. The core holds no
 * snapshot bytes (it does no I/O), only the handle.
 */
export interface OutgoingSnapshotChunk {
  readonly to: NodeId;
  readonly term: number;
  readonly meta: SnapshotMeta;
  readonly source: SnapshotData;
  readonly offset: number;
  readonly length: number;
  readonly done: boolean;
}

/**
 * Everything the core asks of its driver after a round of inputs. The driver handles a
 * Ready in exactly these steps, in this order:
 *
 * 0. Send `earlyMessages`: the leader's replication traffic, which does not wait for the
 *    leader's own write (Raft dissertation §10.2.1: the leader counts itself toward
 *    commit only once its write is durable, so writing in parallel is safe). Start
 *    reading and sending `snapshotOut` (it may finish at any time). Write `snapshotIn`
 *    to storage, in order; when `snapshot` is set, wait until its bytes are stored.
 * 1. Persist `snapshot` (replacing the whole log), `entries` (truncating any stored
 *    entries at or after `entries[0].index`) and `hardState` in one atomic, durable write.
 * 2. Only then send `messages`: votes, acknowledgements and responses depend on that
 *    state being durable (Raft Figure 2: "respond to RPCs only after updating stable
 *    storage").
 * 3. Restore the state machine from `snapshot`, if any, and hand the stored snapshot to
 *    the core (`Raft.snapshotInstalled`); then apply `committedEntries`, in order.
 * 4. Serve `readStates` once the applied index reaches theirs; settle `proposals`.
 * 5. Call `advance(ready)`, which tells the core that steps 1 to 3 are done.
 *
 * When `mustSync` is false, the write of step 1 changes nothing but the commit index, which
 * nothing in steps 2 to 4 depends on: the driver may run those steps while it is under
 * way, as long as it completes before `advance`.
 *
 * Inputs (ticks, messages, proposals) may arrive while the driver is in steps 1 to 4;
 * they go into the next Ready. The core hands out one Ready at a time.
 */
export interface Ready {
  /**
   * A snapshot received from the leader (its bytes came in `snapshotIn`, in this Ready or
   * earlier ones), to persist and restore the state machine from; or null.
   */
  readonly snapshot: SnapshotMeta | null;
  /** Chunks of a snapshot arriving from the leader, to write to storage in order. */
  readonly snapshotIn: readonly IncomingSnapshotChunk[];
  /** Chunks of a snapshot to read and send to followers. */
  readonly snapshotOut: readonly OutgoingSnapshotChunk[];
  /**
   * Whether step 1 must be durable before step 2: false when only the commit index
   * changed, which is safe to lose in a crash (etcd's raft makes the same distinction).
   */
  readonly mustSync: boolean;
  /** The hard state to persist, or null when it did not change. */
  readonly hardState: HardState | null;
  /** Entries to persist. */
  readonly entries: readonly Entry[];
  /** Messages that may go before the write of step 1 completes. */
  readonly earlyMessages: readonly Message[];
  /** Messages to send once the write of step 1 is durable. */
  readonly messages: readonly Message[];
  /** Committed entries to apply, in index order. */
  readonly committedEntries: readonly Entry[];
  /** Read requests whose read index is now known. */
  readonly readStates: readonly ReadState[];
  /** Outcomes of proposals this node forwarded to the leader. */
  readonly proposals: readonly ProposalOutcome[];
}
