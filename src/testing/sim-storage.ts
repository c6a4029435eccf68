import type { Entry, HardState } from "../core/messages.js";
import { RaftError } from "../errors.js";
import type { RaftStorage, StorageBatch, StorageCapabilities, StoredState } from "../storage/storage.js";
import type { Prng } from "./prng.js";
import type { Scheduler } from "./scheduler.js";

/**
 * What survives a simulated crash: the state of a node's disk.
 * @public
 */
export class SimDisk {
  hardState: HardState = { term: 0, vote: null, commit: 0 };
  entries: Entry[] = [];
  firstIndex = 1;
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
    return { hardState: this.disk.hardState, entries: [...this.disk.entries], firstIndex: this.disk.firstIndex };
  }

  save(batch: StorageBatch): Promise<void> {
    if (this.crashed) return new Promise(() => {});
    return new Promise((resolve, reject) => {
      this.scheduler.at(this.rng.between(this.minLatencyMs, this.maxLatencyMs), () => {
        if (this.crashed) return; // the process is gone: nobody waits, nothing was written
        try {
          this.write(batch);
        } catch (err) {
          reject(err);
          return;
        }
        resolve();
      });
    });
  }

  async close(): Promise<void> {}

  /** The process died: writes in flight never complete. */
  crash(): void {
    this.crashed = true;
  }

  private write(batch: StorageBatch): void {
    const d = this.disk;
    const entries = batch.entries ?? [];
    if (entries.length > 0) {
      const first = entries[0]!.index;
      if (first < d.firstIndex || first > d.firstIndex + d.entries.length) {
        throw new RaftError("STORAGE", `SimStorage: append at ${first} does not fit log ${d.firstIndex}..${d.firstIndex + d.entries.length - 1}`);
      }
      d.entries.length = first - d.firstIndex;
      for (const e of entries) d.entries.push(e);
    }
    if (batch.hardState) d.hardState = batch.hardState;
    d.writes++;
  }
}
