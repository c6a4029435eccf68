import { InvariantError, entryBytes } from "./log.js";
import { committedValue, isVoter } from "./membership.js";
import type {
  AppendEntriesResponseMessage,
  Entry,
  HeartbeatResponseMessage,
  InstallSnapshotResponseMessage,
  Message,
  NodeId,
  ProposeMessage,
} from "./messages.js";
import type { Progress } from "./progress.js";
import { RaftReadIndex } from "./raft-read-index.js";
import type { ProposalItem } from "./raft-types.js";

/** Snapshot chunks in flight per follower: enough to keep a link busy, few enough to resend cheaply. */
const SNAPSHOT_WINDOW_CHUNKS = 4;
/** How many forwarded request ids per follower the leader remembers, to drop duplicates. */
const DEDUP_WINDOW = 4096;

/** Leaders: heartbeats and check-quorum, replication and flow control, snapshot sending, commit. */
export abstract class RaftLeader extends RaftReadIndex {
  // ---------------------------------------------------------------- leaders

  protected tickLeader(): void {
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

  protected stepLeader(m: Message): void {
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

  protected override appendAsLeader(items: readonly ProposalItem[]): number {
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
  protected maybeCommit(): boolean {
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
  protected sendAppend(to: NodeId, pr: Progress, sendIfEmpty = true): boolean {
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
    if (resend) {
      // Stalled: if the follower last said it is behind, believe it (resending what it may
      // have is harmless; waiting at an offset it will never reach is not).
      if (pr.snapshotBehind !== null) pr.snapshotOffset = pr.snapshotBehind;
      pr.snapshotBehind = null;
      pr.snapshotSentOffset = pr.snapshotOffset;
    }
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
    if (m.offset < pr.snapshotOffset) {
      // Behind what we thought: a reordered old answer, or the follower restarted and an
      // answer of its previous life had moved us past where it now is. Acting on it now
      // would answer every reordered answer with a burst of chunks (a storm under
      // duplication); it is used only if the transfer stalls (resend, below).
      pr.snapshotBehind = m.offset;
      return;
    }
    // A repeated answer means a chunk was lost or reordered; the heartbeat answers resend.
    if (m.offset === pr.snapshotOffset) return;
    pr.snapshotOffset = m.offset;
    pr.snapshotBehind = null;
    if (pr.snapshotSentOffset < m.offset) pr.snapshotSentOffset = m.offset;
    this.sendSnapshotChunks(m.from, pr, false);
  }

  /**
   * Sends every follower the new commit index and as many entries as its window allows.
   * Filling the window (not one message each) matters when the commit index moved on an
   * acknowledgement: otherwise a follower with a backlog gets one message per round trip.
   */
  protected broadcastAppend(): void {
    for (const [id, pr] of this.progress) {
      this.sendAppend(id, pr);
      while (this.sendAppend(id, pr, false)) { /* fill the window */ }
    }
  }

  protected broadcastHeartbeat(readRound: number): void {
    for (const [id, pr] of this.progress) {
      this.send({ type: "Heartbeat", from: this.id, to: id, term: this.term, commit: Math.min(pr.match, this.log.committed), readRound });
    }
  }

  // ---------------------------------------------------------------- defined by later layers

  /** Hands leadership over after this node was removed, or steps down (raft-membership.ts). */
  protected abstract handOverAfterRemoval(): void;
  /** Tells `to` to campaign at once (raft-membership.ts). */
  protected abstract sendTimeoutNow(to: NodeId): void;
}
