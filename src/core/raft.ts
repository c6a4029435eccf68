import { invariant } from "./log.js";
import { decodeConfig, encodeConfig, leaveJoint } from "./membership.js";
import type { HardState, Message, Snapshot } from "./messages.js";
import { RaftMembership } from "./raft-membership.js";
import type { ProposalItem, ProposeOutcome, ReadIndexOutcome } from "./raft-types.js";
import type { ReadState, Ready } from "./ready.js";

export type { ChangeOutcome, ProposalItem, ProposeOutcome, RaftInitialState, RaftOptions, ReadIndexOutcome, Role } from "./raft-types.js";

/**
 * Messages only a leader sends, about its log and its leadership, which may go out while
 * the leader's own write is under way: the entries they carry count toward commit here
 * only once durable. Responses and votes (which promise durable state) are not among them.
 * Nor is anything in a Ready whose write changes the term or vote: a lone voter wins its
 * election in the step that starts it, and had its messages of the new term gone out
 * before the term and vote were durable, a crash could let it win the same term again and
 * send different entries under the same (index, term) (simulator seed 810507/3).
 */
const SENT_BEFORE_PERSIST: ReadonlySet<Message["type"]> = new Set(["AppendEntries", "Heartbeat", "InstallSnapshot", "TimeoutNow"]);

/**
 * The Raft protocol as a deterministic state machine with no I/O. Feed it `tick()`,
 * `step(message)`, `propose()` and `readIndex()`; collect what it asks for with
 * `ready()` and confirm with `advance()` (see {@link Ready}).
 *
 * Built in layers, one file each, every one extending the one before: raft-state.ts
 * (fields, observers, role changes), raft-election.ts, raft-follower.ts (followers and
 * candidates), raft-read-index.ts, raft-leader.ts (replication and commit),
 * raft-membership.ts (membership changes and leadership transfer), and this file: the
 * inputs, Ready and advance.
 */
export class Raft extends RaftMembership {
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

  // changeMembership() and transferLeadership(): see raft-membership.ts.

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
    const termDurable = hs.term === p.term && hs.vote === p.vote;
    const earlyMessages: Message[] = [];
    const messages: Message[] = [];
    for (const m of this.messages) (termDurable && SENT_BEFORE_PERSIST.has(m.type) ? earlyMessages : messages).push(m);
    // Snapshot chunks go out before the write too (the driver reads them meanwhile): with a
    // new term they wait for the next Ready.
    const snapshotOut = termDurable ? this.snapshotOut : [];
    const rd: Ready = {
      snapshot: this.pendingInstall,
      snapshotIn: this.snapshotIn,
      snapshotOut,
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
    if (termDurable) this.snapshotOut = [];
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
}

function sameHardState(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}
