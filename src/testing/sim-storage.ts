import type { RaftStorage, Snapshot, StorageBatch, StorageCapabilities, StoredState } from "../storage/storage.js";
import { LogImage } from "../storage/log-image.js";
import type { Prng } from "./prng.js";
import type { Scheduler } from "./scheduler.js";

/**
 * What survives a simulated crash: the state of a node's disk.
 * @public
 */
export class SimDisk {
  /** @internal */
  readonly image = new LogImage();
  /** Completed writes. */
  writes = 0;
}

/**
 * Storage for one incarnation of a simulated node. A write becomes durable only when it
 * completes, after a random latency in virtual time; a crash before then loses it, as an
 * un-fsynced write is lost.
 * @public
 */
export class SimStorage implements RaftStorage {
  readonly capabilities: StorageCapabilities = { durable: true };
  private crashed = false;

  constructor(
    readonly disk: SimDisk,
    private readonly scheduler: Scheduler,
    private readonly rng: Prng,
    private readonly minLatencyMs = 0.1,
    private readonly maxLatencyMs = 2,
  ) {}

  async load(): Promise<StoredState> {
    return this.disk.image.state();
  }

  save(batch: StorageBatch): Promise<void> {
    return this.write(() => {
      this.disk.image.check(batch);
      this.disk.image.apply(batch);
    });
  }

  compact(snapshot: Snapshot, compactTo: number, compactToTerm: number): Promise<void> {
    return this.write(() => {
      this.disk.image.checkCompact(snapshot, compactTo);
      this.disk.image.compact(snapshot, compactTo, compactToTerm);
    });
  }

  async close(): Promise<void> {}

  /** The process died: writes in flight never complete. */
  crash(): void {
    this.crashed = true;
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
