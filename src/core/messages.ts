/**
 * The protocol's data: log entries, the durable hard state, snapshot metadata,
 * configurations and the messages that peers exchange. Plain data only, so that any
 * transport can encode it and the core stays free of I/O.
 */

/**
 * A node's identity in a cluster. It travels in every message: a node is who its
 * messages say it is, never the address a connection came from.
 * @public
 */
export type NodeId = string;

/**
 * What a log entry carries.
 * - `command`: an encoded user command for the state machine.
 * - `noop`: the empty entry a new leader appends to commit entries of earlier terms (Raft §5.4.2, §8).
 * - `config`: an encoded membership change.
 * @public
 */
export type EntryType = "command" | "noop" | "config";

/**
 * One log entry.
 * @public
 */
export interface Entry {
  /** Position in the log, from 1. */
  readonly index: number;
  /** The term of the leader that created the entry. */
  readonly term: number;
  /** What the entry carries. */
  readonly type: EntryType;
  /** The payload: an encoded command, an encoded configuration, or empty for a no-op. */
  readonly data: Uint8Array;
}

/**
 * The state that must be durable before a node answers anyone (Raft Figure 2's
 * "persistent state on all servers", plus the commit index so that a restart can
 * re-apply without waiting for a leader).
 * @public
 */
export interface HardState {
  /** The latest term this node has seen. */
  readonly term: number;
  /** Whom this node voted for in `term`, or `null`. */
  readonly vote: NodeId | null;
  /** The highest index known to be committed. */
  readonly commit: number;
}

/**
 * A cluster configuration. In a joint configuration (membership change in progress),
 * `outgoingVoters` lists the old voters and decisions need a majority of both sets.
 * @public
 */
export interface ClusterConfig {
  /** The voters (the incoming set while joint). */
  readonly voters: readonly NodeId[];
  /** Members that replicate the log but neither vote nor count toward commit. */
  readonly learners: readonly NodeId[];
  /** The outgoing voters while the configuration is joint; empty otherwise. */
  readonly outgoingVoters: readonly NodeId[];
  /**
   * Where members can be reached ("host:port"), for transports that learn addresses
   * from the configuration. Members added without an address are absent.
   */
  readonly addresses?: Readonly<Record<NodeId, string>>;
}

/**
 * Describes the state captured by a snapshot.
 * @public
 */
export interface SnapshotMeta {
  /** The last log index the snapshot includes. */
  readonly index: number;
  /** The term of the entry at `index`. */
  readonly term: number;
  /** The configuration in force at `index`. */
  readonly config: ClusterConfig;
}

/**
 * A snapshot of the state machine: its bytes and what they cover.
 * @public
 */
export interface Snapshot {
  /** The last index and term the snapshot includes, and the configuration then. */
  readonly meta: SnapshotMeta;
  /** The state machine's own serialisation (`StateMachine.snapshot()`), as stored. */
  readonly data: SnapshotData;
}

/**
 * A stored snapshot's bytes, read in pieces: a state of hundreds of megabytes is never
 * held in memory to be sent or restored. Storage adapters hand these out; a handle stays
 * readable while anyone holds it, even after a newer snapshot replaced it in storage (a
 * leader may still be sending it). `snapshotBytes` and `snapshotChunks` read one whole.
 * @public
 */
export interface SnapshotData {
  /** The snapshot's length in bytes. */
  readonly byteLength: number;
  /**
   * Reads `length` bytes from `offset` (fewer only at the end).
   * @param offset - Where to start, 0 ≤ offset ≤ byteLength.
   * @param length - How many bytes to read at most.
   * @returns The bytes; the caller may keep them, the handle does not reuse them.
   */
  read(offset: number, length: number): Promise<Uint8Array>;
}

/**
 * Fields every message has.
 * @public
 */
export interface MessageBase {
  /** The sender. */
  readonly from: NodeId;
  /** The recipient. */
  readonly to: NodeId;
  /** The sender's current term (Raft §5.1: every RPC carries it). */
  readonly term: number;
}

/**
 * Leader to follower: append `entries` after (`prevIndex`, `prevTerm`) (Raft §5.3).
 * @public
 */
export interface AppendEntriesMessage extends MessageBase {
  /** Discriminates the message. */
  readonly type: "AppendEntries";
  /** The index of the entry just before `entries` (0: the log's start). */
  readonly prevIndex: number;
  /** The term of the entry at `prevIndex`; the follower refuses when its own differs. */
  readonly prevTerm: number;
  /** The entries to append, contiguous from `prevIndex + 1`; empty for a probe. */
  readonly entries: readonly Entry[];
  /** The leader's commit index. */
  readonly commit: number;
}

/**
 * Follower to leader: the outcome of an AppendEntries.
 * On success `index` is the follower's last index known to match the leader.
 * On rejection `index` is the rejected `prevIndex`, and (`hintIndex`, `hintTerm`) is the
 * fast-backtracking hint: the term of the follower's entry at `prevIndex` and the first
 * index it holds for that term, or (`lastIndex + 1`, 0) when its log is shorter.
 * @public
 */
export interface AppendEntriesResponseMessage extends MessageBase {
  /** Discriminates the message. */
  readonly type: "AppendEntriesResponse";
  /** Whether the follower's log matched at `prevIndex` and the entries were appended. */
  readonly success: boolean;
  /** On success the last index known to match; on rejection the rejected `prevIndex`. */
  readonly index: number;
  /** On rejection, where the leader should probe next (see above); 0 on success. */
  readonly hintIndex: number;
  /** On rejection, the term of the follower's entry at `prevIndex` (0: it has none); 0 on success. */
  readonly hintTerm: number;
}

/**
 * Leader to follower: "I am still the leader". Carries the commit index the follower
 * can safely use and, for ReadIndex, the leader's read round.
 * @public
 */
export interface HeartbeatMessage extends MessageBase {
  /** Discriminates the message. */
  readonly type: "Heartbeat";
  /** The commit index the follower may adopt: the leader's, capped at what it knows the follower holds. */
  readonly commit: number;
  /** The leader's ReadIndex round this heartbeat confirms (0: none). */
  readonly readRound: number;
}

/**
 * Follower to leader: the answer to a Heartbeat, echoing its read round.
 * @public
 */
export interface HeartbeatResponseMessage extends MessageBase {
  /** Discriminates the message. */
  readonly type: "HeartbeatResponse";
  /** The `readRound` of the heartbeat being answered. */
  readonly readRound: number;
}

/**
 * Candidate to voter: a vote or pre-vote request (Raft §5.2, §5.4.1; dissertation §9.6).
 * A pre-vote carries the term the candidate would campaign in, without having taken it.
 * @public
 */
export interface RequestVoteMessage extends MessageBase {
  /** Discriminates the message. */
  readonly type: "RequestVote";
  /** Whether this is a pre-vote (dissertation §9.6), which changes no voter's state. */
  readonly preVote: boolean;
  /** The candidate's last log index, for the up-to-date check (Raft §5.4.1). */
  readonly lastIndex: number;
  /** The term of the candidate's last entry. */
  readonly lastTerm: number;
  /** Set when the campaign follows a leadership transfer; it overrides the leader lease. */
  readonly transfer: boolean;
}

/**
 * Voter to candidate: the answer to a RequestVote.
 * @public
 */
export interface RequestVoteResponseMessage extends MessageBase {
  /** Discriminates the message. */
  readonly type: "RequestVoteResponse";
  /** Whether this answers a pre-vote. */
  readonly preVote: boolean;
  /** Whether the vote (or pre-vote) was granted. */
  readonly granted: boolean;
  /**
   * The voter's commit index, and the term of its entry there (0 and 0 when nothing is
   * committed). A candidate that holds that very entry learns that it is committed: this
   * is how a voter left in a joint configuration learns that the configuration after it
   * was committed, when the only node that knows is one the change removed.
   */
  readonly commit: number;
  /** The term of the voter's entry at `commit`. */
  readonly commitTerm: number;
}

/**
 * Follower to leader: proposals forwarded for appending. `requestId` lets the leader
 * drop duplicates and lets the follower match the answer.
 * @public
 */
export interface ProposeMessage extends MessageBase {
  /** Discriminates the message. */
  readonly type: "Propose";
  /** Chosen by the follower; unique per follower across its restarts (with high probability). */
  readonly requestId: number;
  /** The proposed entries, without index and term (the leader assigns them). */
  readonly entries: readonly { readonly type: EntryType; readonly data: Uint8Array }[];
}

/**
 * Leader to follower: where forwarded proposals were appended (`index` of the first,
 * in `term`), or `index` 0 when they were refused.
 * @public
 */
export interface ProposeResponseMessage extends MessageBase {
  /** Discriminates the message. */
  readonly type: "ProposeResponse";
  /** The `requestId` of the Propose being answered. */
  readonly requestId: number;
  /** The index of the first appended entry (the others follow it), or 0: refused. */
  readonly index: number;
}

/**
 * Follower to leader: asks for a read index (Raft §8, dissertation §6.4).
 * @public
 */
export interface ReadIndexMessage extends MessageBase {
  /** Discriminates the message. */
  readonly type: "ReadIndex";
  /** Chosen by the follower, to match the answer. */
  readonly requestId: number;
}

/**
 * Leader to follower: the read index for a request, confirmed by a quorum, or 0 when
 * the leader refused.
 * @public
 */
export interface ReadIndexResponseMessage extends MessageBase {
  /** Discriminates the message. */
  readonly type: "ReadIndexResponse";
  /** The `requestId` of the ReadIndex being answered. */
  readonly requestId: number;
  /** The read index: reads are linearizable once this index is applied. 0: refused. */
  readonly index: number;
}

/**
 * Leader to its chosen successor: campaign now (dissertation §3.10).
 * @public
 */
export interface TimeoutNowMessage extends MessageBase {
  /** Discriminates the message. */
  readonly type: "TimeoutNow";
}

/**
 * Leader to follower: one chunk of a snapshot, for a follower that needs entries the
 * leader has compacted (Raft §7). Chunks go one at a time, each answered, so a transfer
 * never crowds out heartbeats and a lost chunk is sent again.
 * @public
 */
export interface InstallSnapshotMessage extends MessageBase {
  /** Discriminates the message. */
  readonly type: "InstallSnapshot";
  /** What the whole snapshot covers; the same in every chunk. */
  readonly meta: SnapshotMeta;
  /** Where `data` starts in the snapshot's bytes. */
  readonly offset: number;
  /** This chunk of the snapshot's bytes. */
  readonly data: Uint8Array;
  /** Whether this is the last chunk. */
  readonly done: boolean;
}

/**
 * Follower to leader: how much of the snapshot at `index` has arrived (`offset`: the next
 * byte expected). A completed install is answered with an AppendEntriesResponse instead.
 * @public
 */
export interface InstallSnapshotResponseMessage extends MessageBase {
  /** Discriminates the message. */
  readonly type: "InstallSnapshotResponse";
  /** The `meta.index` of the snapshot being received. */
  readonly index: number;
  /** The next byte the follower expects. */
  readonly offset: number;
}

/**
 * Every message of the protocol, discriminated on `type`.
 * @public
 */
export type Message =
  | AppendEntriesMessage
  | AppendEntriesResponseMessage
  | HeartbeatMessage
  | HeartbeatResponseMessage
  | RequestVoteMessage
  | RequestVoteResponseMessage
  | ProposeMessage
  | ProposeResponseMessage
  | ReadIndexMessage
  | ReadIndexResponseMessage
  | TimeoutNowMessage
  | InstallSnapshotMessage
  | InstallSnapshotResponseMessage;

/**
 * The `type` of every message.
 * @public
 */
export type MessageType = Message["type"];

/** Every message type, for validation and exhaustive tests. */
export const MESSAGE_TYPES: readonly MessageType[] = [
  "AppendEntries",
  "AppendEntriesResponse",
  "Heartbeat",
  "HeartbeatResponse",
  "RequestVote",
  "RequestVoteResponse",
  "Propose",
  "ProposeResponse",
  "ReadIndex",
  "ReadIndexResponse",
  "TimeoutNow",
  "InstallSnapshot",
  "InstallSnapshotResponse",
];
