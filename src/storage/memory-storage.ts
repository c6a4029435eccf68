import type { RaftStorage, Snapshot, StorageBatch, StorageCapabilities, StoredState } from "./storage.js";
import { RaftError } from "../errors.js";
import { LogImage } from "./log-image.js";

/**
 * Options for {@link MemoryStorage}.
 * @public
 */
export interface MemoryStorageOptions {
  /** Start from this state instead of an empty log (for tests and tools). */
  readonly initial?: StoredState;
}

/**
 * Storage in the process's memory: fast, and gone when the process ends. A
 * `MemoryStorage` object does survive `RaftNode.stop()`, so handing it to a new node
 * models a restart in tests. Not durable across process crashes.
 * @public
 */
export class MemoryStorage implements RaftStorage {
  readonly capabilities: StorageCapabilities = { durable: false };
  private readonly image: LogImage;
  private closed = false;

  constructor(options: MemoryStorageOptions = {}) {
    this.image = new LogImage(options.initial);
  }

  async load(): Promise<StoredState> {
    this.closed = false;
    return this.image.state();
  }

  async save(batch: StorageBatch): Promise<void> {
    if (this.closed) throw new RaftError("STOPPED", "MemoryStorage.save after close");
    this.image.check(batch);
    this.image.apply(batch);
  }

  async compact(snapshot: Snapshot, compactTo: number, compactToTerm: number): Promise<void> {
    if (this.closed) throw new RaftError("STOPPED", "MemoryStorage.compact after close");
    this.image.checkCompact(snapshot, compactTo);
    this.image.compact(snapshot, compactTo, compactToTerm);
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
