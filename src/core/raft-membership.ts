import { allMembers, encodeConfig, isJoint, isVoter, planChange, type MembershipChange } from "./membership.js";
import type { ClusterConfig, NodeId } from "./messages.js";
import { Progress } from "./progress.js";
import { RaftLeader } from "./raft-leader.js";
import type { ChangeOutcome } from "./raft-types.js";

/** Membership changes and leadership transfer: proposing them, and putting configurations into force. */
export abstract class RaftMembership extends RaftLeader {
  // ---------------------------------------------------------------- inputs: membership changes, leadership transfer

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

  // ---------------------------------------------------------------- membership

  /** Puts a committed configuration into force. */
  protected applyConfig(config: ClusterConfig): void {
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

  protected override handOverAfterRemoval(): void {
    const outcome = this.transferLeadership(null);
    if ("reason" in outcome) this.becomeFollower(this.term, null);
    else this.broadcastPending = true;
  }

  /** A leader in a joint configuration that is applied must propose leaving it. */
  protected needsLeaveJoint(): boolean {
    return this.role === "leader" && isJoint(this.config) && this.pendingConfigIndex <= this.log.applied && this.leadTransferee === null;
  }

  protected override sendTimeoutNow(to: NodeId): void {
    this.transferAttempted = true;
    this.send({ type: "TimeoutNow", from: this.id, to, term: this.term });
  }
}
