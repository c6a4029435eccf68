// The types the core's Raft takes and returns. Re-exported by raft.ts, which users import.
import type { ClusterConfig, Entry, EntryType, HardState, NodeId, Snapshot } from "./messages.js";

/**
 * A node's role. `pre-candidate` is the pre-vote phase (Raft dissertation §9.6): the node
 * asks whether it could win before it disrupts anyone by raising its term.
 */
export type Role = "follower" | "pre-candidate" | "candidate" | "leader";

/** The core's tunables. Units are ticks, counts and bytes. */
export interface RaftOptions {
  readonly id: NodeId;
  /** Followers wait a random `[electionTicks + 1, 2 * electionTicks]` ticks before campaigning. */
  readonly electionTicks: number;
  /** A leader sends heartbeats every `heartbeatTicks`. */
  readonly heartbeatTicks: number;
  /** Uniform in [0, 1): the only source of randomness (election jitter). */
  readonly random: () => number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  /** AppendEntries in flight per follower in replicate state. */
  readonly maxInflight: number;
  /** Bytes in flight per follower. */
  readonly maxInflightBytes: number;
  readonly maxEntriesPerMessage: number;
  readonly maxBytesPerMessage: number;
  /** Committed entries handed out per Ready. */
  readonly maxApplyEntries: number;
  /** Bytes per InstallSnapshot chunk. */
  readonly snapshotChunkBytes: number;
  /**
   * How many ticks after a majority acknowledged a heartbeat the leader may serve lease
   * reads without a round trip. Must stay below the followers' minimum election timeout
   * less clock drift; 0 disables lease reads. Only sound with check-quorum (followers in
   * lease refuse votes).
   */
  readonly leaseTicks: number;
}

/** What the core starts from: the durable state plus the configuration. */
export interface RaftInitialState {
  readonly hardState: HardState;
  readonly entries: readonly Entry[];
  readonly firstIndex: number;
  /** The term of the entry before `firstIndex` (0 when nothing was compacted). */
  readonly firstIndexPrevTerm?: number;
  /** The latest snapshot; the state machine was restored from it. */
  readonly snapshot?: Snapshot | null;
  /** The configuration to use when no snapshot carries one. */
  readonly config: ClusterConfig;
}

/** What became of a proposal handed to the core. */
export type ProposeOutcome =
  | { readonly kind: "appended"; readonly index: number; readonly term: number }
  | { readonly kind: "forwarded" }
  | { readonly kind: "refused"; readonly leader: NodeId | null; readonly reason: "no-leader" | "not-leader" | "transferring" };

/** What became of a membership change handed to the core. */
export type ChangeOutcome =
  | { readonly kind: "appended"; readonly index: number; readonly term: number; readonly config: ClusterConfig }
  | { readonly kind: "refused"; readonly leader: NodeId | null; readonly reason: string };

/** What became of a read request handed to the core. */
export type ReadIndexOutcome = "pending" | "forwarded" | "no-leader";

/** One proposal's payload. */
export interface ProposalItem {
  readonly type: EntryType;
  readonly data: Uint8Array;
}
