import type { AppendEntriesMessage, HeartbeatMessage, InstallSnapshotMessage, Message, ProposeMessage } from "./messages.js";
import { RaftElection } from "./raft-election.js";

/** Followers and candidates: receiving AppendEntries, heartbeats and snapshots; refusing leader work. */
export abstract class RaftFollower extends RaftElection {
  // ---------------------------------------------------------------- followers and candidates

  protected stepFollower(m: Message): void {
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

  protected stepCandidate(m: Message): void {
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

  protected refuseProposal(m: ProposeMessage): void {
    this.send({ type: "ProposeResponse", from: this.id, to: m.from, term: this.term, requestId: m.requestId, index: 0 });
  }
}
