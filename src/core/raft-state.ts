import { RaftLog, invariant } from "./log.js";
import { allMembers, isVoter } from "./membership.js";
import type { ClusterConfig, HardState, Message, NodeId, Snapshot, SnapshotMeta } from "./messages.js";
import { Progress } from "./progress.js";
import type { ProposalItem, RaftInitialState, RaftOptions, Role } from "./raft-types.js";
import { ReadIndexQueue } from "./read-only.js";
import type { IncomingSnapshotChunk, OutgoingSnapshotChunk, ProposalOutcome, ReadState } from "./ready.js";

const EMPTY = new Uint8Array(0);

/**
 * The first layer of the core's `Raft` (raft.ts): every field of a node, its constructor,
 * what can be observed of it, and its role changes. Fields and methods that a later layer
 * needs are `protected`; what a later layer defines but this one calls is `abstract` here.
 */
export abstract class RaftState {
  readonly id: NodeId;
  readonly opts: RaftOptions;
  readonly log: RaftLog;

  term: number;
  vote: NodeId | null;
  role: Role = "follower";
  leader: NodeId | null = null;
  config: ClusterConfig;

  /** Ticks since the last election reset (followers, candidates) or check-quorum round (leaders). */
  protected electionElapsed = 0;
  /** Ticks since this node (re)started, counted up to electionTicks. */
  protected ticksSinceStart = 0;
  protected heartbeatElapsed = 0;
  protected randomizedElectionTimeout = 0;
  protected readonly votes = new Map<NodeId, boolean>();
  /** The leader's view of every other member. */
  readonly progress = new Map<NodeId, Progress>();
  /** Whether the leader has committed an entry of its own term (needed before ReadIndex, Raft §8). */
  protected committedInTerm = false;
  /** The leader wants one AppendEntries round to every follower at the next flush. */
  protected broadcastPending = false;
  protected readonly reads = new ReadIndexQueue();
  protected readonly forwarded = new Map<NodeId, { seen: Set<number>; order: number[] }>();
  /**
   * The latest stored snapshot, sent to followers that need compacted entries. Right after
   * an install it lags the log until the driver hands over the stored copy
   * ({@link Raft.snapshotInstalled}); meanwhile no snapshot is sent.
   */
  snapshot: Snapshot | null;
  /** A snapshot arriving in chunks from the leader: what it covers, in which term, how much came. */
  protected incoming: { term: number; meta: SnapshotMeta; received: number } | null = null;
  /** Chunks received, for the driver to write in the next Ready. */
  protected snapshotIn: IncomingSnapshotChunk[] = [];
  /** Chunks to read and send, for the driver in the next Ready. */
  protected snapshotOut: OutgoingSnapshotChunk[] = [];
  /** A snapshot fully received, for the driver to install in the next Ready. */
  protected pendingInstall: SnapshotMeta | null = null;
  /**
   * The index of the last configuration entry in the log. A leader accepts a new change
   * only once this one is applied (one change at a time), and leaves a joint
   * configuration once it applies it.
   */
  protected pendingConfigIndex = 0;
  /** The follower that leadership is being handed to (dissertation §3.10), and for how long. */
  leadTransferee: NodeId | null = null;
  protected transferElapsed = 0;
  /** Ticks since this node became leader: the leader's clock for its lease. */
  protected leaderTicks = 0;
  /** Lease reads are served while `leaderTicks < leaseUntil`. */
  protected leaseUntil = 0;
  /**
   * A TimeoutNow went out in this term: its target may campaign past the followers'
   * leases at any time (the message may be delayed), so the lease is void for the term.
   */
  protected transferAttempted = false;

  protected messages: Message[] = [];
  protected readStates: ReadState[] = [];
  protected proposalOutcomes: ProposalOutcome[] = [];
  protected persistedHardState: HardState;
  protected readyOut = false;

  constructor(opts: RaftOptions, init: RaftInitialState) {
    this.opts = opts;
    this.id = opts.id;
    this.snapshot = init.snapshot ?? null;
    const snapIndex = this.snapshot?.meta.index ?? init.firstIndex - 1;
    this.log = new RaftLog(init.firstIndex, init.entries, init.hardState.commit, init.firstIndexPrevTerm ?? 0, snapIndex);
    this.term = init.hardState.term;
    this.vote = init.hardState.vote;
    this.config = this.snapshot?.meta.config ?? init.config;
    this.persistedHardState = init.hardState;
    this.resetElectionTimer();
  }

  // ---------------------------------------------------------------- observers

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  /**
   * Whether a leader is known and was heard from within the election timeout — or this
   * node started less than an election timeout ago: a restarted node may have acknowledged
   * a leader's heartbeat just before it went down, and that leader may be serving lease
   * reads on the strength of it, so it must not help elect anyone else before the lease
   * it granted has run out (dissertation §4.2.3, §6.4.1).
   */
  heardFromLeaderRecently(): boolean {
    return (this.leader !== null && this.electionElapsed < this.opts.electionTicks) || this.ticksSinceStart < this.opts.electionTicks;
  }

  /** Whether votes are refused to protect a live leader (check-quorum's lease). */
  inLease(): boolean {
    return this.opts.checkQuorum && this.heardFromLeaderRecently();
  }

  /**
   * Whether the leader may serve a read from its lease (dissertation §6.4.1): a majority
   * acknowledged a heartbeat sent less than `leaseTicks` ago, so no other leader can have
   * been elected since, and the commit index is current for this term.
   */
  leaseValid(): boolean {
    return (
      this.role === "leader" &&
      this.opts.checkQuorum &&
      this.opts.leaseTicks > 0 &&
      this.committedInTerm &&
      this.leadTransferee === null &&
      !this.transferAttempted &&
      this.leaderTicks < this.leaseUntil
    );
  }

  /** Whether this node is the only voter, so that it alone is a majority. */
  isSoleVoter(): boolean {
    return allMembers(this.config).every((id) => (id === this.id) === isVoter(this.config, id));
  }

  isPromotable(): boolean {
    return isVoter(this.config, this.id);
  }

  // ---------------------------------------------------------------- role changes

  becomeFollower(term: number, leader: NodeId | null): void {
    const wasLeader = this.role === "leader";
    this.leadTransferee = null;
    if (term !== this.term) {
      invariant(term > this.term, () => `term moving back from ${this.term} to ${term}`);
      this.term = term;
      this.vote = null;
    }
    this.role = "follower";
    this.leader = leader;
    this.resetElectionTimer();
    if (wasLeader) this.abandonLeadership();
  }

  protected becomePreCandidate(): void {
    invariant(this.role !== "leader", "a leader cannot become a pre-candidate");
    // The term and vote stay: a pre-vote changes nothing durable.
    this.role = "pre-candidate";
    this.leader = null;
    this.votes.clear();
    this.resetElectionTimer();
  }

  protected becomeCandidate(): void {
    invariant(this.role !== "leader", "a leader cannot become a candidate");
    this.term += 1;
    this.vote = this.id;
    this.role = "candidate";
    this.leader = null;
    this.votes.clear();
    this.resetElectionTimer();
  }

  protected becomeLeader(): void {
    invariant(this.role === "candidate", "only a candidate becomes leader");
    this.role = "leader";
    this.leader = this.id;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.committedInTerm = false;
    this.forwarded.clear();
    this.reads.reset();
    this.progress.clear();
    this.leadTransferee = null;
    this.leaderTicks = 0;
    this.leaseUntil = 0;
    this.transferAttempted = false;
    // A configuration entry of an earlier term may sit uncommitted in our log: no new
    // change until everything up to here is applied.
    this.pendingConfigIndex = this.log.lastIndex();
    const next = this.log.lastIndex() + 1;
    for (const id of allMembers(this.config)) {
      if (id === this.id) continue;
      const pr = new Progress(next, this.opts.maxInflight, this.opts.maxInflightBytes);
      pr.recentActive = true;
      this.progress.set(id, pr);
    }
    // Raft §8: a new leader commits a no-op to learn which entries are committed, and
    // §5.4.2: it may count replicas only for entries of its own term.
    this.appendAsLeader([{ type: "noop", data: EMPTY }]);
  }

  private abandonLeadership(): void {
    this.progress.clear();
    this.broadcastPending = false;
    this.forwarded.clear();
    for (const r of this.reads.reset()) this.answerRead(r.from, r.requestId, 0);
  }

  protected resetElectionTimer(): void {
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    const e = this.opts.electionTicks;
    // From one tick past the window (electionTicks) in which peers refuse to replace a
    // leader they heard: their ticks are not in phase with ours, and one that counted a
    // tick fewer would otherwise refuse us and cost a whole second timeout.
    this.randomizedElectionTimeout = e + 1 + Math.floor(this.opts.random() * e);
  }

  // ---------------------------------------------------------------- plumbing

  protected send(m: Message): void {
    this.messages.push(m);
  }

  // ---------------------------------------------------------------- defined by later layers

  /** Appends entries of this term to the leader's log (raft-leader.ts). */
  protected abstract appendAsLeader(items: readonly ProposalItem[]): number;
  /** Answers a read request, here or to the follower that forwarded it (raft-read-index.ts). */
  protected abstract answerRead(to: NodeId, requestId: number, index: number): void;
}
