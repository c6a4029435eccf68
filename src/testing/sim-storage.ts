import type { SnapshotMeta } from "../core/messages.js";
import type { RaftStorage, Snapshot, StorageBatch, StorageCapabilities, StoredState } from "../storage/storage.js";
import { collectChunks, snapshotDataOf } from "../snapshot-data.js";
import { LogImage } from "../storage/log-image.js";
import type { Prng } from "./prng.js";
import type { Scheduler } from "./scheduler.js";

/**
 * What survives a simulated crash: the state of a node's disk. Keep one per node id and
 * hand it to each new {@link SimStorage} of that node.
 * @public
 */
export class SimDisk {
  /** The stored state, with the storage contract's write rules. @internal */
  readonly image = new LogImage();
  /** The hard state as of the last synced write: what a crash falls back to. @internal */
  syncedHardState = this.image.hardState;
  /** Completed writes. */
  writes = 0;
}

/**
 * Storage for one incarnation of a simulated node. A write becomes durable only when it
 * completes, after a random latency in virtual time; a crash before then loses it, as an
 * un-fsynced write is lost.
 *
 * @example
 * ```ts
 * const disk = new SimDisk();                               // survives crashes
 * let storage = new SimStorage(disk, scheduler, rng.fork()); // one incarnation
 * storage.crash();                                           // writes in flight are lost
 * storage = new SimStorage(disk, scheduler, rng.fork());     // the restarted node's storage
 * ```
 * @public
 */
export class SimStorage implements RaftStorage {
  /** `{ durable: true }`: a completed write survives {@link SimStorage.crash}. */
  readonly capabilities: StorageCapabilities = { durable: true };
  private crashed = false;

  /**
   * Storage over `disk` for one incarnation of a node.
   * @param disk - The node's disk, shared by its incarnations.
   * @param scheduler - Completes writes in virtual time.
   * @param rng - Draws each write's latency.
   * @param minLatencyMs - The shortest write latency, virtual milliseconds.
   * @param maxLatencyMs - The longest write latency (latencies are uniform in between).
   */
  constructor(
    /** The node's disk. */
    readonly disk: SimDisk,
    private readonly scheduler: Scheduler,
    private readonly rng: Prng,
    private readonly minLatencyMs = 0.1,
    private readonly maxLatencyMs = 2,
  ) {}

  /**
   * Reads the disk at once (no latency).
   * @returns What completed writes left on the disk.
   */
  async load(): Promise<StoredState> {
    return this.disk.image.state();
  }

  /**
   * Writes one batch after a random latency, atomically.
   * @param batch - What to write.
   * @returns Resolves once written; never settles when the storage crashes first. Rejects
   * with `STORAGE` when the batch does not fit the stored log.
   */
  save(batch: StorageBatch): Promise<void> {
    return this.write(() => {
      this.disk.image.check(batch);
      this.disk.image.apply(batch);
      if (batch.sync !== false) this.disk.syncedHardState = this.disk.image.hardState;
    });
  }

  /**
   * Collects a snapshot's bytes, then completes after a random latency (never once the
   * storage crashed). Nothing is on the disk until a `compact` or `save` names it.
   * @param meta - What the snapshot covers.
   * @param chunks - Its bytes in order.
   * @returns The snapshot, reading from memory.
   */
  async writeSnapshot(meta: SnapshotMeta, chunks: AsyncIterable<Uint8Array>): Promise<Snapshot> {
    const snapshot = { meta, data: snapshotDataOf(await collectChunks(chunks)) };
    await this.write(() => {});
    return snapshot;
  }

  /**
   * Stores a snapshot and compacts the log after a random latency, atomically.
   * @param snapshot - The snapshot.
   * @param compactTo - The last index to drop.
   * @param compactToTerm - The term of the entry at `compactTo`.
   * @returns As for {@link SimStorage.save}.
   */
  compact(snapshot: Snapshot, compactTo: number, compactToTerm: number): Promise<void> {
    return this.write(() => {
      this.disk.image.checkCompact(snapshot, compactTo);
      this.disk.image.compact(snapshot, compactTo, compactToTerm);
    });
  }

  /** Does nothing: the disk stays, and writes in flight still complete. */
  async close(): Promise<void> {}

  /** The process died: writes in flight never complete, and their promises never settle. */
  crash(): void {
    this.crashed = true;
    // A write that skipped its fsync (commit index only) is lost too.
    this.disk.image.hardState = this.disk.syncedHardState;
  }

  private write(commit: () => void): Promise<void> {
    if (this.crashed) return new Promise(() => {});
    return new Promise((resolve, reject) => {
      this.scheduler.at(this.rng.between(this.minLatencyMs, this.maxLatencyMs), () => {
        if (this.crashed) return; // the process is gone: nobody waits, nothing was written
        try {
          commit();
        } catch (err) {
          reject(err);
          return;
        }
        this.disk.writes++;
        resolve();
      });
    });
  }
}
