import type { NodeId } from "./messages.js";

/** A read request the leader holds until a majority confirms its leadership. */
export interface PendingRead {
  readonly from: NodeId;
  readonly requestId: number;
  /** The commit index when the request arrived: the read index to answer with. */
  readonly index: number;
  /** The heartbeat round whose acknowledgement by a majority confirms it. */
  readonly round: number;
}

/**
 * The leader's ReadIndex requests (Raft §8, dissertation §6.4), batched by heartbeat
 * round: every request that arrives before a round starts is confirmed by that round's
 * heartbeats, because they are sent after the request arrived. A majority acknowledging
 * round r (or a later one) therefore confirms every request of round r and before.
 */
export class ReadIndexQueue {
  /** The last round started. Never goes back, so late acknowledgements stay harmless. */
  round = 0;
  /** A request is waiting for a round to start. */
  flushPending = false;
  private pending: PendingRead[] = [];
  private waiting: { from: NodeId; requestId: number }[] = [];
  /** The leader's tick count when each unacknowledged round started (for leases). */
  private readonly roundTicks = new Map<number, number>();

  /** Queues a request for the next round. */
  add(from: NodeId, requestId: number, index: number): void {
    this.pending.push({ from, requestId, index, round: this.round + 1 });
    this.flushPending = true;
  }

  /** Starts the next round at leader tick `tick`; its heartbeats carry the returned number. */
  startRound(tick: number): number {
    this.round++;
    this.flushPending = false;
    this.roundTicks.set(this.round, tick);
    return this.round;
  }

  /**
   * The tick at which round `acked` started, once a majority acknowledged it: the leader
   * was certainly leader then. Forgets that round and every earlier one.
   */
  takeRoundTick(acked: number): number | undefined {
    const tick = this.roundTicks.get(acked);
    for (const r of this.roundTicks.keys()) if (r <= acked) this.roundTicks.delete(r);
    return tick;
  }

  /** Removes and returns every request confirmed by a majority's acknowledgement of `ackedRound`. */
  release(ackedRound: number): PendingRead[] {
    let n = 0;
    while (n < this.pending.length && this.pending[n]!.round <= ackedRound) n++;
    return n === 0 ? [] : this.pending.splice(0, n);
  }

  /** Parks a request until the leader has committed an entry of its term. */
  wait(from: NodeId, requestId: number): void {
    this.waiting.push({ from, requestId });
  }

  takeWaiting(): { from: NodeId; requestId: number }[] {
    const w = this.waiting;
    this.waiting = [];
    return w;
  }

  /** Drops everything (leadership changed) and returns what was dropped, to refuse it. */
  reset(): { from: NodeId; requestId: number }[] {
    const dropped = [...this.pending, ...this.waiting];
    this.pending = [];
    this.waiting = [];
    this.flushPending = false;
    this.roundTicks.clear();
    return dropped;
  }
}
