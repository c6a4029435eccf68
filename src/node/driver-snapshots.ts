import type { Snapshot } from "../core/messages.js";
import type { Raft } from "../core/raft.js";
import type { Ready } from "../core/ready.js";
import { RaftError } from "../errors.js";
import { sourceChunks } from "../snapshot-data.js";
import { DriverRequests } from "./driver-requests.js";
import type { PendingRequest } from "./proposals.js";

/**
 * Snapshots: storing one that arrives from the leader and restoring the state machine
 * from it; taking our own, writing it to storage and compacting the log behind it.
 */
export abstract class DriverSnapshots<Cmd, Result> extends DriverRequests<Cmd, Result> {
  /**
   * Writes the snapshot chunks of `rd` to storage. Returns the stored snapshot when `rd`
   * completes a transfer (the one to install), else null.
   */
  protected async receiveSnapshot(rd: Ready): Promise<Snapshot | null> {
    try {
      for (const chunk of rd.snapshotIn) await this.snapshotReceiver.accept(chunk);
      return rd.snapshot === null ? null : await this.snapshotReceiver.finish(rd.snapshot);
    } catch (err) {
      throw new RaftError("STORAGE", `storing the snapshot from the leader failed on ${this.id}`, { cause: err });
    }
  }

  /** Replaces the state machine's state with a snapshot's. */
  async restoreStateMachine(snapshot: Snapshot): Promise<void> {
    const sm = this.opts.stateMachine;
    if (typeof sm.restore !== "function") {
      throw new RaftError("INVALID_STATE", `node ${this.id} received a snapshot but its state machine has no restore()`);
    }
    await sm.restore(snapshot.data);
    const index = snapshot.meta.index;
    this.appliedIndex = index;
    this.lastSnapshotIndex = Math.max(this.lastSnapshotIndex, index);
    // Proposals covered by the snapshot may or may not be in it: their results are lost.
    for (const [i, waiting] of this.appendedProposals) {
      if (i > index) continue;
      this.appendedProposals.delete(i);
      waiting.request.pending.reject(new RaftError("TIMEOUT", `entry ${i} arrived inside a snapshot; the proposal's outcome is unknown`));
    }
    this.serveReads(index);
    this.notify("snapshot", snapshot.meta.index, snapshot.meta.term);
  }

  /**
   * Takes a snapshot and compacts the log when `snapshotThreshold` entries were applied
   * since the last one, or when {@link RaftNode.snapshot} asked for one. Runs between two
   * Readies, so the state machine captures exactly the state at `appliedIndex`. A state
   * machine whose `snapshot()` returns a promise is expected to have captured its state
   * synchronously: the node goes on applying while the bytes are produced, and compacts
   * once they arrive (on a later pass of the loop).
   */
  protected async maybeSnapshot(core: Raft): Promise<void> {
    const finished = this.finishedSnapshot;
    if (finished !== null) {
      this.finishedSnapshot = null;
      await this.persistSnapshot(core, finished.snapshot, finished.waiters);
    }
    const sm = this.opts.stateMachine;
    if (typeof sm.snapshot !== "function" || this.snapshotInFlight !== null) return;
    const threshold = this.opts.snapshotThreshold;
    const due = threshold > 0 && this.appliedIndex - this.lastSnapshotIndex >= threshold;
    const asked = this.snapshotWaiters.length > 0;
    if (!due && !asked) return;
    const index = this.appliedIndex;
    const waiters = this.snapshotWaiters;
    this.snapshotWaiters = [];
    // A snapshot from the leader may be waiting for the next Ready: then ours is stale.
    const newest = Math.max(this.lastSnapshotIndex, core.snapshot?.meta.index ?? 0);
    if (index <= newest) {
      for (const w of waiters) w.resolve(newest);
      return;
    }
    const meta = { index, term: core.log.term(index)!, config: core.config };
    // The state machine captures its state now; its bytes stream to storage while the node
    // goes on applying, and the log is compacted once they are durable (a later pass).
    let captured: ReturnType<NonNullable<typeof sm.snapshot>>;
    try {
      captured = sm.snapshot();
    } catch (err) {
      throw new RaftError("INVALID_STATE", `the state machine's snapshot() failed on ${this.id}`, { cause: err });
    }
    this.snapshotInFlight = waiters;
    const written = Promise.resolve(captured).then((source) => this.opts.storage.writeSnapshot(meta, sourceChunks(source)));
    written.then(
      (snapshot) => {
        this.snapshotInFlight = null;
        this.finishedSnapshot = { snapshot, waiters };
        this.scheduleLoop();
      },
      (err: unknown) => {
        // A stream that storage never read must still be told to stop, so that the state
        // machine releases what it captured.
        if (!(captured instanceof Uint8Array) && !(captured instanceof Promise)) {
          Promise.resolve(captured[Symbol.asyncIterator]().return?.()).catch(() => {});
        }
        this.fail(new RaftError("STORAGE", `writing a snapshot of the state machine failed on ${this.id}`, { cause: err }));
      },
    );
  }

  /** Makes a snapshot durable and compacts the log behind it (keeping `trailingEntries`). */
  protected async persistSnapshot(core: Raft, snapshot: Snapshot, waiters: PendingRequest<number>[]): Promise<void> {
    const index = snapshot.meta.index;
    if (core.log.firstIndex() - 1 > index || index <= this.lastSnapshotIndex) {
      // A leader's snapshot arrived while ours was being serialised.
      for (const w of waiters) w.resolve(Math.max(core.log.firstIndex() - 1, this.lastSnapshotIndex));
      return;
    }
    const compactTo = Math.max(core.log.firstIndex() - 1, index - this.opts.trailingEntries);
    try {
      await this.opts.storage.compact(snapshot, compactTo, core.log.term(compactTo)!);
    } catch (err) {
      throw new RaftError("STORAGE", `storage compaction failed on ${this.id}`, { cause: err });
    }
    if (this.state !== "running") return;
    core.compact(snapshot, compactTo);
    this.lastSnapshotIndex = index;
    this.notify("snapshot", index, snapshot.meta.term);
    for (const w of waiters) w.resolve(index);
  }
}
