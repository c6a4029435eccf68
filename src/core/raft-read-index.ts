import { committedValue } from "./membership.js";
import type { NodeId, ReadIndexMessage } from "./messages.js";
import { RaftFollower } from "./raft-follower.js";

/** The leader's side of ReadIndex: read rounds, their acknowledgement, the lease they renew. */
export abstract class RaftReadIndex extends RaftFollower {
  // ---------------------------------------------------------------- ReadIndex (Raft §8, dissertation §6.4)

  protected leaderReadIndex(from: NodeId, requestId: number): void {
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

  protected handleForwardedRead(m: ReadIndexMessage): void {
    if (!this.progress.has(m.from)) {
      this.answerRead(m.from, m.requestId, 0);
      return;
    }
    this.leaderReadIndex(m.from, m.requestId);
  }

  /** Serves every read whose round a majority has acknowledged. */
  protected releaseReads(): void {
    const acked = committedValue(this.config, (id) => (id === this.id ? this.reads.round : (this.progress.get(id)?.readRound ?? 0)));
    const since = this.reads.takeRoundTick(acked);
    if (since !== undefined) this.leaseUntil = Math.max(this.leaseUntil, since + this.opts.leaseTicks);
    for (const r of this.reads.release(acked)) this.answerRead(r.from, r.requestId, r.index);
  }

  protected override answerRead(to: NodeId, requestId: number, index: number): void {
    if (to === this.id) this.readStates.push({ requestId, index });
    else this.send({ type: "ReadIndexResponse", from: this.id, to, term: this.term, requestId, index });
  }
}
