import { allMembers, electionOutcome, isVoter } from "./membership.js";
import type { RequestVoteMessage, RequestVoteResponseMessage } from "./messages.js";
import { RaftState } from "./raft-state.js";

/** Elections: the timeout, pre-vote and vote, granting votes, and learning commit points from vote answers. */
export abstract class RaftElection extends RaftState {
  // ---------------------------------------------------------------- elections

  protected tickElection(): void {
    this.electionElapsed++;
    if (this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      if (this.isPromotable()) this.startElection(this.opts.preVote);
      else this.resetElectionTimer();
    }
  }

  protected startElection(preVote: boolean, transfer = false): void {
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

  protected handleRequestVote(m: RequestVoteMessage): void {
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
  protected commitPoint(): { commit: number; commitTerm: number } {
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
  protected learnCommit(commit: number, commitTerm: number): void {
    if (this.role === "leader" || commit <= this.log.committed || commitTerm === 0) return;
    if (this.log.matchTerm(commit, commitTerm)) this.log.commitTo(commit);
  }

  protected handleVoteResponse(m: RequestVoteResponseMessage): void {
    const expectPre = this.role === "pre-candidate";
    if ((this.role !== "candidate" && !expectPre) || m.preVote !== expectPre) return;
    if (!isVoter(this.config, m.from)) return;
    this.votes.set(m.from, m.granted);
    this.tallyVotes(expectPre);
  }
}
