import { InvariantError, RaftLog, entryBytes, invariant } from "./log.js";
import {
  allMembers,
  committedValue,
  decodeConfig,
  electionOutcome,
  encodeConfig,
  isJoint,
  isVoter,
  leaveJoint,
  planChange,
  type MembershipChange,
} from "./membership.js";
import type {
  AppendEntriesMessage,
  AppendEntriesResponseMessage,
  ClusterConfig,
  Entry,
  EntryType,
  HardState,
  HeartbeatMessage,
  HeartbeatResponseMessage,
  InstallSnapshotMessage,
  InstallSnapshotResponseMessage,
  Message,
  NodeId,
  ProposeMessage,
  ReadIndexMessage,
  RequestVoteMessage,
  RequestVoteResponseMessage,
  Snapshot,
  SnapshotMeta,
} from "./messages.js";
import { Progress } from "./progress.js";
import { ReadIndexQueue } from "./read-only.js";
import type { IncomingSnapshotChunk, OutgoingSnapshotChunk, ProposalOutcome, ReadState, Ready } from "./ready.js";

/**
 * A node's role. `pre-candidate` is the pre-vote phase (Raft dissertation §9.6): the node
 * asks whether it could win before it disrupts anyone by raising its term.
 */
export type Role = "follower" | "pre-candidate" | "candidate" | "leader";

/** The core's tunables. Units are ticks, counts and bytes. */
export interface RaftOptions {
  readonly id: NodeId;
  /** Followers wait a random `[electionTicks, 2 * electionTicks)` ticks before campaigning. */
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

const EMPTY = new Uint8Array(0);
/**
 * Messages only a leader sends, about its log and its leadership. They depend on nothing
 * this node has yet to make durable: the term was made durable before the election was
 * won, and the entries they carry count toward commit here only once durable. Responses
 * and votes (which promise durable state) are not among them.
 */
const SENT_BEFORE_PERSIST: ReadonlySet<Message["type"]> = new Set(["AppendEntries", "Heartbeat", "InstallSnapshot", "TimeoutNow"]);

/** Snapshot chunks in flight per follower: enough to keep a link busy, few enough to resend cheaply. */
const SNAPSHOT_WINDOW_CHUNKS = 4;
/** How many forwarded request ids per follower the leader remembers, to drop duplicates. */
const DEDUP_WINDOW = 4096;

/**
 * The Raft protocol as a deterministic state machine with no I/O. Feed it `tick()`,
 * `step(message)`, `propose()` and `readIndex()`; collect what it asks for with
 * `ready()` and confirm with `advance()` (see {@link Ready}).
 */
export class Raft {
  readonly id: NodeId;
  readonly opts: RaftOptions;
  readonly log: RaftLog;

  term: number;
  vote: NodeId | null;
  role: Role = "follower";
  leader: NodeId | null = null;
  config: ClusterConfig;

  /** Ticks since the last election reset (followers, candidates) or check-quorum round (leaders). */
  private electionElapsed = 0;
  /** Ticks since this node (re)started, counted up to electionTicks. */
  private ticksSinceStart = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;
  private readonly votes = new Map<NodeId, boolean>();
  /** The leader's view of every other member. */
  readonly progress = new Map<NodeId, Progress>();
  /** Whether the leader has committed an entry of its own term (needed before ReadIndex, Raft §8). */
  private committedInTerm = false;
  /** The leader wants one AppendEntries round to every follower at the next flush. */
  private broadcastPending = false;
  private readonly reads = new ReadIndexQueue();
  private readonly forwarded = new Map<NodeId, { seen: Set<number>; order: number[] }>();
  /**
   * The latest stored snapshot, sent to followers that need compacted entries. Right after
   * an install it lags the log until the driver hands over the stored copy
   * ({@link Raft.snapshotInstalled}); meanwhile no snapshot is sent.
   */
  snapshot: Snapshot | null;
  /** A snapshot arriving in chunks from the leader: what it covers, in which term, how much came. */
  private incoming: { term: number; meta: SnapshotMeta; received: number } | null = null;
  /** Chunks received, for the driver to write in the next Ready. */
  private snapshotIn: IncomingSnapshotChunk[] = [];
  /** Chunks to read and send, for the driver in the next Ready. */
  private snapshotOut: OutgoingSnapshotChunk[] = [];
  /** A snapshot fully received, for the driver to install in the next Ready. */
  private pendingInstall: SnapshotMeta | null = null;
  /**
   * The index of the last configuration entry in the log. A leader accepts a new change
   * only once this one is applied (one change at a time), and leaves a joint
   * configuration once it applies it.
   */
  private pendingConfigIndex = 0;
  /** The follower that leadership is being handed to (dissertation §3.10), and for how long. */
  leadTransferee: NodeId | null = null;
  private transferElapsed = 0;
  /** Ticks since this node became leader: the leader's clock for its lease. */
  private leaderTicks = 0;
  /** Lease reads are served while `leaderTicks < leaseUntil`. */
  private leaseUntil = 0;
  /**
   * A TimeoutNow went out in this term: its target may campaign past the followers'
   * leases at any time (the message may be delayed), so the lease is void for the term.
   */
  private transferAttempted = false;

  private messages: Message[] = [];
  private readStates: ReadState[] = [];
  private proposalOutcomes: ProposalOutcome[] = [];
  private persistedHardState: HardState;
  private readyOut = false;

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

  // ---------------------------------------------------------------- inputs

  /** One logical clock tick. */
  tick(): void {
    if (this.ticksSinceStart < this.opts.electionTicks) this.ticksSinceStart++;
    if (this.role === "leader") this.tickLeader();
    else this.tickElection();
  }

  /** Handles one message from a peer. */
  step(m: Message): void {
    if (m.to !== this.id) return;
    if (m.type === "ProposeResponse") {
      // Facts about where entries went stay true whatever the term: accept them late too.
      this.proposalOutcomes.push({ requestId: m.requestId, index: m.index, term: m.term });
      return;
    }
    if (m.type === "ReadIndexResponse") {
      // The index was confirmed by a quorum after the request arrived: still valid later.
      this.readStates.push({ requestId: m.requestId, index: m.index });
      return;
    }

    // Whatever its term, a vote answer says what the voter knows to be committed.
    if (m.type === "RequestVoteResponse") this.learnCommit(m.commit, m.commitTerm);

    if (m.term > this.term) {
      if (m.type === "RequestVote" && !m.transfer && (this.inLease() || (m.preVote && this.heardFromLeaderRecently()))) {
        // Raft dissertation §4.2.3: a node that heard from a leader within the minimum
        // election timeout ignores requests to replace it. §9.6 asks the same of pre-votes
        // whether or not check-quorum is on.
        return;
      }
      const isPreVoteTraffic = (m.type === "RequestVote" && m.preVote) || (m.type === "RequestVoteResponse" && m.preVote && m.granted);
      if (!isPreVoteTraffic) {
        const leader = m.type === "AppendEntries" || m.type === "Heartbeat" || m.type === "InstallSnapshot" ? m.from : null;
        this.becomeFollower(m.term, leader);
      }
    } else if (m.term < this.term) {
      if (m.type === "AppendEntries" || m.type === "Heartbeat") {
        // A stale leader: tell it our term so that it steps down. With pre-vote and
        // check-quorum, nothing else would (its followers never raise their terms).
        this.send({ type: "AppendEntriesResponse", from: this.id, to: m.from, term: this.term, success: false, index: 0, hintIndex: 0, hintTerm: 0 });
      } else if (m.type === "RequestVote" && m.preVote) {
        this.send({ type: "RequestVoteResponse", from: this.id, to: m.from, term: this.term, preVote: true, granted: false, ...this.commitPoint() });
      }
      return;
    }

    switch (m.type) {
      case "RequestVote":
        this.handleRequestVote(m);
        return;
      case "RequestVoteResponse":
        this.handleVoteResponse(m);
        return;
      default:
        break;
    }

    if (this.role === "leader") this.stepLeader(m);
    else if (this.role === "follower") this.stepFollower(m);
    else this.stepCandidate(m);
  }

  /**
   * Proposes entries. On the leader they are appended at once; on a follower they are
   * forwarded when `requestId` is given and a leader is known.
   */
  propose(items: readonly ProposalItem[], requestId?: number): ProposeOutcome {
    if (this.role !== "leader") {
      if (this.leader !== null && requestId !== undefined && this.role === "follower") {
        this.send({ type: "Propose", from: this.id, to: this.leader, term: this.term, requestId, entries: items.map((i) => ({ type: i.type, data: i.data })) });
        return { kind: "forwarded" };
      }
      return { kind: "refused", leader: this.leader, reason: this.leader === null ? "no-leader" : "not-leader" };
    }
    // Dissertation §3.10: while leadership moves, new entries would only delay the target.
    if (this.leadTransferee !== null) return { kind: "refused", leader: this.id, reason: "transferring" };
    const index = this.appendAsLeader(items);
    return { kind: "appended", index, term: this.term };
  }

  /**
   * Asks for a linearizable read point (Raft §8). The answer comes as a
   * {@link ReadState} with this `requestId` in a later Ready.
   */
  readIndex(requestId: number, lease = false): ReadIndexOutcome {
    if (this.role === "leader") {
      if (lease && this.leaseValid()) this.answerRead(this.id, requestId, this.log.committed);
      else this.leaderReadIndex(this.id, requestId);
      return "pending";
    }
    if (this.role === "follower" && this.leader !== null) {
      this.send({ type: "ReadIndex", from: this.id, to: this.leader, term: this.term, requestId });
      return "forwarded";
    }
    return "no-leader";
  }

  /**
   * Proposes a membership change (dissertation §4.3). Voter changes go through a joint
   * configuration, which the leader leaves by itself once it is applied. One change at a time.
   */
  changeMembership(change: MembershipChange): ChangeOutcome {
    if (this.role !== "leader") return { kind: "refused", leader: this.leader, reason: "not the leader" };
    if (this.leadTransferee !== null) return { kind: "refused", leader: this.id, reason: "leadership is being transferred" };
    if (this.pendingConfigIndex > this.log.applied || isJoint(this.config)) {
      return { kind: "refused", leader: this.id, reason: "a membership change is already in progress" };
    }
    const next = planChange(this.config, change);
    if (typeof next === "string") return { kind: "refused", leader: this.id, reason: next };
    const index = this.appendAsLeader([{ type: "config", data: encodeConfig(next) }]);
    this.pendingConfigIndex = index;
    return { kind: "appended", index, term: this.term, config: next };
  }

  /**
   * Hands leadership to `to` (or the most up-to-date voter): brings it up to date, then
   * tells it to campaign at once (dissertation §3.10). Returns the target, or why not.
   */
  transferLeadership(to: NodeId | null): { target: NodeId } | { reason: string } {
    if (this.role !== "leader") return { reason: "not the leader" };
    let target = to;
    if (target === null) {
      let best = -1;
      for (const [id, pr] of this.progress) {
        if (isVoter(this.config, id) && pr.match > best) {
          best = pr.match;
          target = id;
        }
      }
      if (target === null) return { reason: "there is no other voter" };
    }
    if (target === this.id) return { reason: "this node already leads" };
    const pr = this.progress.get(target);
    if (pr === undefined || !isVoter(this.config, target)) return { reason: `${target} is not a voter` };
    this.leadTransferee = target;
    this.transferElapsed = 0;
    if (pr.match === this.log.lastIndex()) this.sendTimeoutNow(target);
    else this.sendAppend(target, pr);
    return { target };
  }

  /**
   * Starts an election now, skipping pre-vote and overriding the voters' leases, as a
   * leadership transfer does (tests, tools). It can depose a healthy leader; with lease
   * reads in use, only a leadership transfer keeps them safe.
   */
  campaignNow(): void {
    if (this.role !== "leader") this.startElection(false, true);
  }

  // ---------------------------------------------------------------- Ready / advance

  hasReady(): boolean {
    if (this.readyOut) return false;
    return (
      this.broadcastPending ||
      this.reads.flushPending ||
      this.pendingInstall !== null ||
      this.snapshotIn.length > 0 ||
      this.snapshotOut.length > 0 ||
      this.needsLeaveJoint() ||
      this.messages.length > 0 ||
      this.readStates.length > 0 ||
      this.proposalOutcomes.length > 0 ||
      this.log.unstableFrom <= this.log.lastIndex() ||
      this.log.hasEntriesToApply() ||
      !sameHardState(this.hardState(), this.persistedHardState)
    );
  }

  /** Collects what the driver must do now. One Ready at a time: call {@link Raft.advance} before the next. */
  ready(): Ready {
    invariant(!this.readyOut, "ready() called again before advance()");
    this.flush();
    const hs = this.hardState();
    const committedEntries = this.log.entriesToApply(this.opts.maxApplyEntries);
    const entries = this.log.unstableEntries();
    const p = this.persistedHardState;
    const earlyMessages: Message[] = [];
    const messages: Message[] = [];
    for (const m of this.messages) (SENT_BEFORE_PERSIST.has(m.type) ? earlyMessages : messages).push(m);
    const rd: Ready = {
      snapshot: this.pendingInstall,
      snapshotIn: this.snapshotIn,
      snapshotOut: this.snapshotOut,
      mustSync: entries.length > 0 || this.pendingInstall !== null || hs.term !== p.term || hs.vote !== p.vote,
      hardState: sameHardState(hs, p) ? null : hs,
      entries,
      earlyMessages,
      messages,
      committedEntries,
      readStates: this.readStates,
      proposals: this.proposalOutcomes,
    };
    this.messages = [];
    this.readStates = [];
    this.proposalOutcomes = [];
    this.pendingInstall = null;
    this.snapshotIn = [];
    this.snapshotOut = [];
    // Handing entries out for applying counts as applying them: the driver applies every
    // entry of a Ready before it asks for the next. A configuration takes effect here,
    // once committed, as in etcd (safe because only one change is in flight at a time).
    if (committedEntries.length > 0) {
      for (const e of committedEntries) if (e.type === "config") this.applyConfig(decodeConfig(e.data));
      this.log.appliedTo(committedEntries[committedEntries.length - 1]!.index);
    }
    this.readyOut = true;
    return rd;
  }

  /** Confirms that the driver persisted, sent and applied everything in `rd`. */
  advance(rd: Ready): void {
    invariant(this.readyOut, "advance() without ready()");
    this.readyOut = false;
    if (rd.hardState !== null) this.persistedHardState = rd.hardState;
    if (rd.entries.length > 0) {
      const last = rd.entries[rd.entries.length - 1]!;
      this.log.stableTo(last.index, last.term);
      // The leader counts itself toward commit only for entries it has made durable.
      if (this.role === "leader" && this.maybeCommit()) this.broadcastPending = true;
    }
  }

  /**
   * Records a snapshot the driver took of the state machine (and made durable) and drops
   * log entries up to `compactTo` (at most the snapshot's index).
   */
  compact(snapshot: Snapshot, compactTo: number): void {
    invariant(compactTo <= snapshot.meta.index && snapshot.meta.index <= this.log.applied, () => `snapshot at ${snapshot.meta.index} / compaction to ${compactTo} beyond applied ${this.log.applied}`);
    if (this.snapshot === null || snapshot.meta.index > this.snapshot.meta.index) this.snapshot = snapshot;
    this.log.compact(compactTo);
  }

  /**
   * Hands over the stored copy of the snapshot installed by the last Ready (its bytes
   * live in storage; the core keeps the handle, to send it on should it lead).
   */
  snapshotInstalled(snapshot: Snapshot): void {
    if (this.snapshot === null || snapshot.meta.index > this.snapshot.meta.index) this.snapshot = snapshot;
    // A follower left waiting for a usable snapshot gets it now.
    if (this.role === "leader") this.broadcastPending = true;
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

  private becomePreCandidate(): void {
    invariant(this.role !== "leader", "a leader cannot become a pre-candidate");
    // The term and vote stay: a pre-vote changes nothing durable.
    this.role = "pre-candidate";
    this.leader = null;
    this.votes.clear();
    this.resetElectionTimer();
  }

  private becomeCandidate(): void {
    invariant(this.role !== "leader", "a leader cannot become a candidate");
    this.term += 1;
    this.vote = this.id;
    this.role = "candidate";
    this.leader = null;
    this.votes.clear();
    this.resetElectionTimer();
  }

  private becomeLeader(): void {
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

  private resetElectionTimer(): void {
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    const e = this.opts.electionTicks;
    this.randomizedElectionTimeout = e + Math.floor(this.opts.random() * e);
  }

  // ---------------------------------------------------------------- elections

  private tickElection(): void {
    this.electionElapsed++;
    if (this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      if (this.isPromotable()) this.startElection(this.opts.preVote);
      else this.resetElectionTimer();
    }
  }

  private startElection(preVote: boolean, transfer = false): void {
    if (!this.isPromotable()) return;
    if (preVote) this.becomePreCandidate();
    else this.becomeCandidate();
    const voteTerm = preVote ? this.term + 1 : this.term;
    this.votes.set(this.id, true);
    if (this.tallyVotes(preVote)) return;
    const lastIndex = this.log.lastIndex();
    const lastTerm = this.log.lastTerm();
    for (const id of allMembers(this.config)) {
      if (id === this.id || !isVoter(this.config, id)) continue;
      this.send({ type: "RequestVote", from: this.id, to: id, term: voteTerm, preVote, lastIndex, lastTerm, transfer });
    }
  }

  /** Acts on the votes so far; returns whether the election ended. */
  private tallyVotes(preVote: boolean): boolean {
    const outcome = electionOutcome(this.config, this.votes);
    if (outcome === "won") {
      if (preVote) this.startElection(false);
      else this.becomeLeader();
      return true;
    }
    if (outcome === "lost") {
      this.becomeFollower(this.term, null);
      return true;
    }
    return false;
  }

  private handleRequestVote(m: RequestVoteMessage): void {
    // Raft §5.2 and §5.4.1: one vote per term, only for a candidate at least as up to date.
    // A pre-vote is granted on the same terms, as if the term had already moved, plus:
    // the voter itself has no leader (or it would be in lease and ignore the request).
    const canVote =
      this.vote === m.from ||
      (this.vote === null && this.leader === null) ||
      (m.preVote && m.term > this.term);
    const granted = canVote && this.log.isUpToDate(m.lastIndex, m.lastTerm);
    if (granted && !m.preVote) {
      this.vote = m.from;
      this.electionElapsed = 0;
    }
    // A grant echoes the request's term (a pre-vote's is not ours yet); a refusal carries ours.
    this.send({ type: "RequestVoteResponse", from: this.id, to: m.from, term: granted ? m.term : this.term, preVote: m.preVote, granted, ...this.commitPoint() });
  }

  /** This node's commit index and the term of its entry there, as vote answers carry them. */
  private commitPoint(): { commit: number; commitTerm: number } {
    const commit = this.log.committed;
    return { commit, commitTerm: this.log.term(commit) ?? 0 };
  }

  /**
   * Takes another node's word that its entry (`commit`, `commitTerm`) is committed. Safe
   * from any node: a committed entry stays committed, and holding the same (index, term)
   * means holding the same log up to it (Log Matching, Raft §5.3). A candidate stuck in a
   * joint configuration needs this when the leader that committed the configuration after
   * it was removed by that very change (it will not vote for us: its log is longer).
   */
  private learnCommit(commit: number, commitTerm: number): void {
    if (this.role === "leader" || commit <= this.log.committed || commitTerm === 0) return;
    if (this.log.matchTerm(commit, commitTerm)) this.log.commitTo(commit);
  }

  private handleVoteResponse(m: RequestVoteResponseMessage): void {
    const expectPre = this.role === "pre-candidate";
    if ((this.role !== "candidate" && !expectPre) || m.preVote !== expectPre) return;
    if (!isVoter(this.config, m.from)) return;
    this.votes.set(m.from, m.granted);
    this.tallyVotes(expectPre);
  }

  // ---------------------------------------------------------------- followers and candidates

  private stepFollower(m: Message): void {
    switch (m.type) {
      case "AppendEntries":
        this.electionElapsed = 0;
        this.leader = m.from;
        this.handleAppendEntries(m);
        return;
      case "Heartbeat":
        this.electionElapsed = 0;
        this.leader = m.from;
        this.handleHeartbeat(m);
        return;
      case "InstallSnapshot":
        this.electionElapsed = 0;
        this.leader = m.from;
        this.handleInstallSnapshot(m);
        return;
      case "TimeoutNow":
        // Dissertation §3.10: the leader chose us; campaign at once, skipping pre-vote
        // and overriding the voters' leases.
        if (this.isPromotable()) this.startElection(false, true);
        return;
      default:
        this.refuseLeaderWork(m);
    }
  }

  private stepCandidate(m: Message): void {
    if (m.type === "AppendEntries" || m.type === "Heartbeat" || m.type === "InstallSnapshot") {
      // Someone won this term (Raft §5.2): follow it.
      this.becomeFollower(this.term, m.from);
      this.stepFollower(m);
      return;
    }
    this.refuseLeaderWork(m);
  }

  /** A node that does not lead refuses what only a leader can do, so the asker can retry elsewhere. */
  private refuseLeaderWork(m: Message): void {
    if (m.type === "Propose") this.refuseProposal(m);
    else if (m.type === "ReadIndex") this.answerRead(m.from, m.requestId, 0);
  }

  private handleAppendEntries(m: AppendEntriesMessage): void {
    const reply = (success: boolean, index: number, hintIndex = 0, hintTerm = 0): void =>
      this.send({ type: "AppendEntriesResponse", from: this.id, to: m.from, term: this.term, success, index, hintIndex, hintTerm });
    if (m.prevIndex < this.log.committed) {
      // Everything up to our commit index matches any leader's log already.
      reply(true, this.log.committed);
      return;
    }
    if (!this.log.matchTerm(m.prevIndex, m.prevTerm)) {
      // Raft §5.3 with the fast-backtracking hint: the conflicting term and the first
      // index we hold for it, so the leader skips a whole term per round trip.
      const last = this.log.lastIndex();
      if (m.prevIndex > last) reply(false, m.prevIndex, last + 1, 0);
      else {
        const hintTerm = this.log.term(m.prevIndex)!;
        reply(false, m.prevIndex, Math.max(this.log.firstIndexOfTermAt(m.prevIndex), this.log.committed + 1), hintTerm);
      }
      return;
    }
    this.log.appendAfterMatch(m.entries);
    const lastNew = m.prevIndex + m.entries.length;
    // Only entries known to match the leader's may be marked committed.
    this.log.commitTo(Math.min(m.commit, lastNew));
    reply(true, lastNew);
  }

  /** Raft §7: assembles a snapshot's chunks in order, then replaces the log with it. */
  private handleInstallSnapshot(m: InstallSnapshotMessage): void {
    const index = m.meta.index;
    if (index <= this.log.committed) {
      // We already have all of it: say how far we are, and the leader resumes from the log.
      this.incoming = null;
      this.send({ type: "AppendEntriesResponse", from: this.id, to: m.from, term: this.term, success: true, index: this.log.committed, hintIndex: 0, hintTerm: 0 });
      return;
    }
    if (this.log.matchTerm(index, m.meta.term)) {
      // Raft §7: the snapshot describes a prefix of our log. Entries after it are still
      // valid and must stay (the leader may already count them as replicated here), so
      // nothing is installed: the snapshot's last entry is committed, and that is all.
      this.incoming = null;
      this.log.commitTo(index);
      this.send({ type: "AppendEntriesResponse", from: this.id, to: m.from, term: this.term, success: true, index, hintIndex: 0, hintTerm: 0 });
      return;
    }
    const ack = (offset: number): void => this.send({ type: "InstallSnapshotResponse", from: this.id, to: m.from, term: this.term, index, offset });
    const resuming = this.incoming !== null && this.incoming.meta.index === index && this.incoming.term === this.term;
    // Offset 0 starts a transfer, unless this one is already under way: then it is a resent
    // chunk, and the answer below tells the leader where to resume.
    if (m.offset === 0 && !resuming) this.incoming = { term: this.term, meta: m.meta, received: 0 };
    const inc = this.incoming;
    if (inc === null || inc.meta.index !== index || inc.term !== this.term || m.offset !== inc.received) {
      // Lost, duplicated or stale chunk: tell the leader where we are (0: start over).
      ack(inc !== null && inc.meta.index === index && inc.term === this.term ? inc.received : 0);
      return;
    }
    // The driver writes the chunk to storage; the acknowledgement does not wait for that: a
    // node that restarts mid-transfer has forgotten it and answers offset 0 (start over).
    this.snapshotIn.push({ meta: m.meta, offset: m.offset, data: m.data, done: m.done });
    inc.received += m.data.byteLength;
    if (!m.done) {
      ack(inc.received);
      return;
    }
    this.incoming = null;
    this.pendingInstall = m.meta;
    this.log.restore(index, m.meta.term);
    this.config = m.meta.config;
    // Sent after the snapshot is durable (same Ready): the leader resumes after it.
    this.send({ type: "AppendEntriesResponse", from: this.id, to: m.from, term: this.term, success: true, index, hintIndex: 0, hintTerm: 0 });
  }

  private handleHeartbeat(m: HeartbeatMessage): void {
    // The leader sends min(our match, its commit): entries we hold and that match.
    this.log.commitTo(Math.min(m.commit, this.log.lastIndex()));
    this.send({ type: "HeartbeatResponse", from: this.id, to: m.from, term: this.term, readRound: m.readRound });
  }

  private refuseProposal(m: ProposeMessage): void {
    this.send({ type: "ProposeResponse", from: this.id, to: m.from, term: this.term, requestId: m.requestId, index: 0 });
  }

  // ---------------------------------------------------------------- leaders

  private tickLeader(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    this.leaderTicks++;
    if (this.leadTransferee !== null && ++this.transferElapsed >= this.opts.electionTicks) {
      // The target did not take over within an election timeout: keep leading, unless we
      // were removed, in which case we try the next best voter.
      this.leadTransferee = null;
      if (!isVoter(this.config, this.id)) this.handOverAfterRemoval();
    }
    if (this.electionElapsed >= this.opts.electionTicks) {
      this.electionElapsed = 0;
      if (this.opts.checkQuorum && !this.quorumActive()) {
        // Dissertation §6.2: a leader that cannot hear from a majority steps down, so that
        // clients look elsewhere and reads are not served from a deposed leader.
        this.becomeFollower(this.term, null);
        return;
      }
    }
    if (this.heartbeatElapsed >= this.opts.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      // Every heartbeat starts a read round: its acknowledgements confirm pending reads
      // and renew the lease.
      this.broadcastHeartbeat(this.reads.startRound(this.leaderTicks));
    }
  }

  /** Whether a majority was heard from in this check-quorum round; resets the round. */
  private quorumActive(): boolean {
    const active = committedValue(this.config, (id) => (id === this.id || this.progress.get(id)?.recentActive ? 1 : 0));
    for (const pr of this.progress.values()) pr.recentActive = false;
    return active >= 1;
  }

  private stepLeader(m: Message): void {
    switch (m.type) {
      case "AppendEntriesResponse":
        this.handleAppendResponse(m);
        return;
      case "HeartbeatResponse":
        this.handleHeartbeatResponse(m);
        return;
      case "InstallSnapshotResponse":
        this.handleSnapshotResponse(m);
        return;
      case "Propose":
        this.handleForwardedProposal(m);
        return;
      case "ReadIndex":
        this.handleForwardedRead(m);
        return;
      case "AppendEntries":
      case "Heartbeat":
      case "InstallSnapshot":
        throw new InvariantError(`two leaders in term ${this.term}: ${this.id} and ${m.from}`);
      default:
        return;
    }
  }

  private appendAsLeader(items: readonly ProposalItem[]): number {
    const first = this.log.lastIndex() + 1;
    const entries: Entry[] = items.map((item, i) => ({ index: first + i, term: this.term, type: item.type, data: item.data }));
    this.log.append(entries);
    // Replicated at the next flush, so that everything proposed in one turn of the
    // event loop goes out as one AppendEntries per follower.
    this.broadcastPending = true;
    return first;
  }

  private handleForwardedProposal(m: ProposeMessage): void {
    let record = this.forwarded.get(m.from);
    if (record === undefined) {
      record = { seen: new Set(), order: [] };
      this.forwarded.set(m.from, record);
    }
    // A duplicated message must not append the entries twice. Within one term only this
    // leader appends; a stale-term copy was already dropped by the term check.
    if (record.seen.has(m.requestId)) return;
    record.seen.add(m.requestId);
    record.order.push(m.requestId);
    if (record.order.length > DEDUP_WINDOW) record.seen.delete(record.order.shift()!);
    if (m.entries.length === 0 || !this.progress.has(m.from) || this.leadTransferee !== null || m.entries.some((e) => e.type === "config")) {
      this.refuseProposal(m);
      return;
    }
    const index = this.appendAsLeader(m.entries);
    this.send({ type: "ProposeResponse", from: this.id, to: m.from, term: this.term, requestId: m.requestId, index });
  }

  private handleAppendResponse(m: AppendEntriesResponseMessage): void {
    const pr = this.progress.get(m.from);
    if (pr === undefined) return;
    pr.recentActive = true;
    if (!m.success) {
      if (m.index === 0) return; // a stale-leader notice with our own term: cannot happen, ignore
      if (pr.maybeDecrTo(m.index, this.nextFromHint(m))) this.sendAppend(m.from, pr);
      return;
    }
    if (!pr.maybeUpdate(m.index)) return;
    if (m.from === this.leadTransferee && pr.match === this.log.lastIndex()) this.sendTimeoutNow(m.from);
    if (pr.state === "probe") pr.becomeReplicate();
    else if (pr.state === "snapshot" && pr.match >= pr.pendingSnapshot) pr.becomeProbe();
    pr.inflights.freeLE(m.index);
    if (this.maybeCommit()) this.broadcastPending = true;
    else while (this.sendAppend(m.from, pr, false)) { /* fill the window */ }
  }

  /** Where to resume after a rejection, from the follower's (term, first index) hint. */
  private nextFromHint(m: AppendEntriesResponseMessage): number {
    if (m.hintTerm > 0) {
      const last = this.log.lastIndexOfTerm(m.hintTerm, m.index);
      // We hold that term: the follower matches us up to our last entry of it at best.
      if (last !== undefined) return last + 1;
    }
    return m.hintIndex;
  }

  private handleHeartbeatResponse(m: HeartbeatResponseMessage): void {
    const pr = this.progress.get(m.from);
    if (pr === undefined) return;
    pr.recentActive = true;
    pr.probeSent = false;
    if (pr.state === "snapshot") {
      // The last chunk or its answer may have been lost: send it again, but only when it
      // has gone unanswered for a while (heartbeat answers can arrive in bursts, e.g. after
      // a reconnect, and each resent chunk may be megabytes).
      if (this.leaderTicks - pr.snapshotSentTick >= 2 * this.opts.heartbeatTicks) this.sendSnapshotChunks(m.from, pr, true);
      if (m.readRound > pr.readRound) {
        pr.readRound = m.readRound;
        this.releaseReads();
      }
      return;
    }
    // The window may be full of messages that were lost: free one so that the follower
    // gets an AppendEntries again, whose answer resets the window either way.
    if (pr.state === "replicate" && pr.inflights.full()) pr.inflights.freeFirst();
    if (pr.match < this.log.lastIndex()) this.sendAppend(m.from, pr);
    if (m.readRound > pr.readRound) {
      pr.readRound = m.readRound;
      this.releaseReads();
    }
  }

  /** Advances the commit index to what a majority holds, if it is of this term. Returns whether it moved. */
  private maybeCommit(): boolean {
    const stable = this.log.stableLastIndex();
    const index = committedValue(this.config, (id) => (id === this.id ? stable : (this.progress.get(id)?.match ?? 0)));
    // Raft §5.4.2: only entries of the leader's own term are committed by counting replicas.
    if (index <= this.log.committed || this.log.term(index) !== this.term) return false;
    this.log.commitTo(index);
    if (!this.committedInTerm) {
      this.committedInTerm = true;
      for (const r of this.reads.takeWaiting()) this.leaderReadIndex(r.from, r.requestId);
    }
    return true;
  }

  /**
   * Sends `to` the next AppendEntries its progress allows. Returns whether one went out.
   * With `sendIfEmpty`, an empty one goes out too (to carry the commit index, or probe).
   */
  private sendAppend(to: NodeId, pr: Progress, sendIfEmpty = true): boolean {
    if (pr.isPaused()) return false;
    const prevIndex = pr.next - 1;
    const prevTerm = this.log.term(prevIndex);
    if (prevTerm === undefined) {
      // The follower needs entries we compacted: it gets the snapshot instead (Raft §7).
      // Right after an install the stored copy may not be handed over yet: wait for it.
      if (this.snapshot === null || this.snapshot.meta.index < this.log.firstIndex() - 1) return false;
      pr.becomeSnapshot(this.snapshot.meta.index);
      this.sendSnapshotChunks(to, pr, false);
      return true;
    }
    const entries = this.log.slice(pr.next, this.opts.maxEntriesPerMessage, this.opts.maxBytesPerMessage);
    if (entries.length === 0 && !sendIfEmpty) return false;
    this.send({ type: "AppendEntries", from: this.id, to, term: this.term, prevIndex, prevTerm, entries, commit: this.log.committed });
    if (pr.state === "replicate" && entries.length > 0) {
      const last = entries[entries.length - 1]!.index;
      let bytes = 0;
      for (const e of entries) bytes += entryBytes(e);
      pr.next = last + 1;
      pr.inflights.add(last, bytes);
    } else if (pr.state === "probe") {
      pr.probeSent = true;
    }
    return true;
  }

  /**
   * Sends snapshot chunks up to a window of `SNAPSHOT_WINDOW_CHUNKS` past the follower's
   * acknowledged offset; with `resend`, from that offset again (chunks were lost).
   */
  private sendSnapshotChunks(to: NodeId, pr: Progress, resend: boolean): void {
    let snap = pr.sending;
    if (snap === null || snap.meta.index !== pr.pendingSnapshot) {
      snap = this.snapshot!;
      if (pr.pendingSnapshot !== snap.meta.index) pr.becomeSnapshot(snap.meta.index);
      pr.sending = snap;
    }
    if (resend) pr.snapshotSentOffset = pr.snapshotOffset;
    const size = snap.data.byteLength;
    const limit = Math.min(size, pr.snapshotOffset + SNAPSHOT_WINDOW_CHUNKS * this.opts.snapshotChunkBytes);
    // An empty snapshot still takes one (empty, final) chunk.
    if (pr.snapshotSentOffset >= limit && !(size === 0 && pr.snapshotSentOffset === 0)) return;
    pr.snapshotSentTick = this.leaderTicks;
    do {
      const offset = pr.snapshotSentOffset;
      const end = Math.min(offset + this.opts.snapshotChunkBytes, size);
      this.snapshotOut.push({ to, term: this.term, meta: snap.meta, source: snap.data, offset, length: end - offset, done: end >= size });
      pr.snapshotSentOffset = end === offset ? end + 1 : end; // past the end once the empty final chunk went
    } while (pr.snapshotSentOffset < limit);
  }

  private handleSnapshotResponse(m: InstallSnapshotResponseMessage): void {
    const pr = this.progress.get(m.from);
    if (pr === undefined) return;
    pr.recentActive = true;
    if (pr.state !== "snapshot" || m.index !== pr.pendingSnapshot) return;
    if (m.offset === 0 && pr.snapshotOffset > 0) {
      // The follower lost what it had (it restarted): start over.
      pr.snapshotOffset = 0;
      this.sendSnapshotChunks(m.from, pr, true);
      return;
    }
    // A repeated answer means a chunk was lost or reordered; the heartbeat answers resend.
    if (m.offset <= pr.snapshotOffset) return;
    pr.snapshotOffset = m.offset;
    if (pr.snapshotSentOffset < m.offset) pr.snapshotSentOffset = m.offset;
    this.sendSnapshotChunks(m.from, pr, false);
  }

  /**
   * Sends every follower the new commit index and as many entries as its window allows.
   * Filling the window (not one message each) matters when the commit index moved on an
   * acknowledgement: otherwise a follower with a backlog gets one message per round trip.
   */
  private broadcastAppend(): void {
    for (const [id, pr] of this.progress) {
      this.sendAppend(id, pr);
      while (this.sendAppend(id, pr, false)) { /* fill the window */ }
    }
  }

  private broadcastHeartbeat(readRound: number): void {
    for (const [id, pr] of this.progress) {
      this.send({ type: "Heartbeat", from: this.id, to: id, term: this.term, commit: Math.min(pr.match, this.log.committed), readRound });
    }
  }

  // ---------------------------------------------------------------- ReadIndex (Raft §8, dissertation §6.4)

  private leaderReadIndex(from: NodeId, requestId: number): void {
    if (!this.committedInTerm) {
      // Until the no-op of this term commits, our commit index may lag what is committed.
      this.reads.wait(from, requestId);
      return;
    }
    if (this.isSoleVoter()) {
      this.answerRead(from, requestId, this.log.committed);
      return;
    }
    this.reads.add(from, requestId, this.log.committed);
  }

  private handleForwardedRead(m: ReadIndexMessage): void {
    if (!this.progress.has(m.from)) {
      this.answerRead(m.from, m.requestId, 0);
      return;
    }
    this.leaderReadIndex(m.from, m.requestId);
  }

  /** Serves every read whose round a majority has acknowledged. */
  private releaseReads(): void {
    const acked = committedValue(this.config, (id) => (id === this.id ? this.reads.round : (this.progress.get(id)?.readRound ?? 0)));
    const since = this.reads.takeRoundTick(acked);
    if (since !== undefined) this.leaseUntil = Math.max(this.leaseUntil, since + this.opts.leaseTicks);
    for (const r of this.reads.release(acked)) this.answerRead(r.from, r.requestId, r.index);
  }

  private answerRead(to: NodeId, requestId: number, index: number): void {
    if (to === this.id) this.readStates.push({ requestId, index });
    else this.send({ type: "ReadIndexResponse", from: this.id, to, term: this.term, requestId, index });
  }

  // ---------------------------------------------------------------- membership

  /** Puts a committed configuration into force. */
  private applyConfig(config: ClusterConfig): void {
    this.config = config;
    if (this.leadTransferee !== null && !isVoter(config, this.leadTransferee)) this.leadTransferee = null;
    if (this.role !== "leader") return;
    const members = allMembers(config);
    for (const id of members) {
      if (id === this.id || this.progress.has(id)) continue;
      const pr = new Progress(this.log.lastIndex() + 1, this.opts.maxInflight, this.opts.maxInflightBytes);
      pr.recentActive = true;
      this.progress.set(id, pr);
      this.sendAppend(id, pr);
    }
    for (const id of [...this.progress.keys()]) if (!members.includes(id)) this.progress.delete(id);
    if (!isVoter(config, this.id)) {
      // Removed (dissertation §4.2.2). Stepping down at once could strand the remaining
      // voters: they may not know yet that the configuration without us is committed, and
      // stay in a joint configuration that needs our vote, which our longer log would deny.
      // So keep leading (heartbeats carry the commit index) while handing over to the most
      // up-to-date remaining voter; step down when it takes over or the transfer times out.
      this.handOverAfterRemoval();
      return;
    }
    // The quorum changed: commits and reads may have become possible.
    if (this.maybeCommit()) this.broadcastPending = true;
    this.releaseReads();
  }

  private handOverAfterRemoval(): void {
    const outcome = this.transferLeadership(null);
    if ("reason" in outcome) this.becomeFollower(this.term, null);
    else this.broadcastPending = true;
  }

  /** A leader in a joint configuration that is applied must propose leaving it. */
  private needsLeaveJoint(): boolean {
    return this.role === "leader" && isJoint(this.config) && this.pendingConfigIndex <= this.log.applied && this.leadTransferee === null;
  }

  private sendTimeoutNow(to: NodeId): void {
    this.transferAttempted = true;
    this.send({ type: "TimeoutNow", from: this.id, to, term: this.term });
  }

  // ---------------------------------------------------------------- plumbing

  /** Emits what was deferred to the end of the round: one append and one read round per follower. */
  private flush(): void {
    if (this.role !== "leader") return;
    if (this.needsLeaveJoint()) {
      this.pendingConfigIndex = this.appendAsLeader([{ type: "config", data: encodeConfig(leaveJoint(this.config)) }]);
    }
    if (this.reads.flushPending) this.broadcastHeartbeat(this.reads.startRound(this.leaderTicks));
    if (this.broadcastPending) {
      this.broadcastPending = false;
      this.broadcastAppend();
    }
  }

  private send(m: Message): void {
    this.messages.push(m);
  }
}

function sameHardState(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}
