import type { Raft } from "../core/raft.js";
import type { Ready } from "../core/ready.js";
import { RaftError } from "../errors.js";
import { DriverState, type ProposalRequest, type ReadRequest } from "./driver-state.js";

/**
 * Requests: proposals and reads handed to the core in batches, parked while no leader is
 * known, and settled from the core's answers (where a forwarded proposal landed, when a
 * read index is safe).
 */
export abstract class DriverRequests<Cmd, Result> extends DriverState<Cmd, Result> {
  // ---------------------------------------------------------------- inputs

  scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // One microtask later: everything proposed or read in this turn goes to the core as one batch.
    queueMicrotask(() => {
      this.flushScheduled = false;
      this.flushRequests();
    });
  }

  protected unpark(): void {
    this.queuedProposals = this.parkedProposals.concat(this.queuedProposals);
    this.queuedReads = this.parkedReads.concat(this.queuedReads);
    this.parkedProposals = [];
    this.parkedReads = [];
    this.flushRequests();
  }

  flushRequests(): void {
    const core = this.core;
    if (core === null || this.state !== "running") return; // started requests flush once running
    const proposals = this.queuedProposals.filter((p) => !p.pending.settled);
    const reads = this.queuedReads.filter((r) => !r.pending.settled);
    this.queuedProposals = [];
    this.queuedReads = [];
    try {
      if (proposals.length > 0) this.submitProposals(core, proposals);
      if (reads.length > 0) {
        const lease = reads.filter((r) => r.lease);
        if (lease.length > 0) this.submitReads(core, lease, true);
        if (lease.length < reads.length) this.submitReads(core, reads.filter((r) => !r.lease), false);
      }
    } catch (err) {
      this.fail(err);
      return;
    }
    this.scheduleLoop();
  }

  protected submitProposals(core: Raft, batch: ProposalRequest<Cmd, Result>[]): void {
    const leader = core.leader;
    if (!this.opts.forwardProposals && leader !== null && leader !== this.id) {
      for (const p of batch) p.pending.reject(new RaftError("NOT_LEADER", `${this.id} is not the leader; ${leader} is`, { leaderId: leader }));
      return;
    }
    const requestId = ++this.requestSeq;
    const outcome = core.propose(
      batch.map((p) => p.item),
      this.opts.forwardProposals ? requestId : undefined,
    );
    switch (outcome.kind) {
      case "appended":
        for (let i = 0; i < batch.length; i++) this.appendedProposals.set(outcome.index + i, { term: outcome.term, request: batch[i]! });
        return;
      case "forwarded":
        this.forwardedProposals.set(requestId, batch);
        return;
      case "refused":
        // Definitely not appended, so it is safe to try again once a leader is known.
        for (const p of batch) this.parkedProposals.push(p);
        return;
    }
  }

  protected submitReads(core: Raft, batch: ReadRequest[], lease: boolean): void {
    const requestId = ++this.requestSeq;
    const outcome = core.readIndex(requestId, lease);
    if (outcome === "no-leader") {
      for (const r of batch) this.parkedReads.push(r);
      return;
    }
    this.readBatches.set(requestId, batch);
  }

  // ---------------------------------------------------------------- answers

  protected settleForwarded(rd: Ready): void {
    for (const outcome of rd.proposals) {
      const batch = takeAnswered(this.forwardedProposals, outcome, this.parkedProposals);
      if (batch === null) continue;
      const applied = this.appliedIndex;
      for (let i = 0; i < batch.length; i++) {
        const p = batch[i]!;
        const index = outcome.index + i;
        if (index <= applied) {
          // Applied before the answer came: it cannot be matched to its result any more.
          p.pending.reject(new RaftError("TIMEOUT", `proposal was applied at ${index} before the leader's answer arrived; its result is unknown`));
        } else this.appendedProposals.set(index, { term: outcome.term, request: p });
      }
    }
  }

  protected settleReadStates(rd: Ready): void {
    for (const rs of rd.readStates) {
      const batch = takeAnswered(this.readBatches, rs, this.parkedReads);
      if (batch === null) continue;
      if (rs.index <= this.appliedIndex) for (const r of batch) r.pending.resolve();
      else this.waitingReads.push({ index: rs.index, reads: batch });
    }
  }

  protected serveReads(applied: number): void {
    if (this.waitingReads.length === 0) return;
    const still: typeof this.waitingReads = [];
    for (const w of this.waitingReads) {
      if (w.index <= applied) for (const r of w.reads) r.pending.resolve();
      else still.push(w);
    }
    this.waitingReads = still;
  }

  /**
   * The leader changed: forwarded requests that the old leader never answered will not be
   * answered now. A read is safe to ask again; a proposal's outcome is unknown (the old
   * leader may have appended it), so it settles at once rather than at its deadline.
   */
  protected abandonForwarded(): void {
    for (const [requestId, batch] of this.forwardedProposals) {
      this.forwardedProposals.delete(requestId);
      for (const p of batch) p.pending.reject(new RaftError("TIMEOUT", "the leader changed before it answered a forwarded proposal; its outcome is unknown"));
    }
    for (const [requestId, batch] of this.readBatches) {
      this.readBatches.delete(requestId);
      for (const r of batch) if (!r.pending.settled) this.parkedReads.push(r);
    }
  }
}

/**
 * Removes and returns the batch that `answer` is for. Null when no batch is waiting for it,
 * or when the answer is index 0 (no leader could take it): the batch's unsettled requests
 * are then parked, to be asked again once a leader is known.
 */
function takeAnswered<R extends { readonly pending: { readonly settled: boolean } }>(
  waiting: Map<number, R[]>,
  answer: { readonly requestId: number; readonly index: number },
  parked: R[],
): R[] | null {
  const batch = waiting.get(answer.requestId);
  if (batch === undefined) return null;
  waiting.delete(answer.requestId);
  if (answer.index !== 0) return batch;
  for (const r of batch) if (!r.pending.settled) parked.push(r);
  return null;
}
