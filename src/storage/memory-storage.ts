import type { Entry, HardState } from "../core/messages.js";
import type { RaftStorage, StorageBatch, StorageCapabilities, StoredState } from "./storage.js";
import { RaftError } from "../errors.js";

/**
 * Options for {@link MemoryStorage}. None are needed today; the object keeps the
 * constructor's shape stable as options are added.
 * @public
 */
export interface MemoryStorageOptions {
  /** Start from this state instead of an empty log (for tests and tools). */
  readonly initial?: StoredState;
}

const EMPTY_HARD_STATE: HardState = { term: 0, vote: null, commit: 0 };

/**
 * Storage in the process's memory: fast, and gone when the process ends. A
 * `MemoryStorage` object does survive `RaftNode.stop()` and a new `start()`, so it
 * models a restart in tests. Not durable across process crashes.
 * @public
 */
export class MemoryStorage implements RaftStorage {
  readonly capabilities: StorageCapabilities = { durable: false };
  private hardState: HardState;
  private entries: Entry[];
  private firstIndex: number;
  private closed = false;

  constructor(options: MemoryStorageOptions = {}) {
    this.hardState = options.initial?.hardState ?? EMPTY_HARD_STATE;
    this.entries = [...(options.initial?.entries ?? [])];
    this.firstIndex = options.initial?.firstIndex ?? 1;
  }

  async load(): Promise<StoredState> {
    this.closed = false;
    return { hardState: this.hardState, entries: [...this.entries], firstIndex: this.firstIndex };
  }

  async save(batch: StorageBatch): Promise<void> {
    if (this.closed) throw new RaftError("STOPPED", "MemoryStorage.save after close");
    const entries = batch.entries ?? [];
    if (entries.length > 0) {
      const first = entries[0]!.index;
      const next = this.firstIndex + this.entries.length;
      if (first < this.firstIndex || first > next) {
        throw new RaftError("STORAGE", `append at index ${first} leaves a gap or rewrites compacted entries (log holds ${this.firstIndex}..${next - 1})`);
      }
      this.entries.length = first - this.firstIndex;
      for (const e of entries) this.entries.push(e);
    }
    if (batch.hardState) this.hardState = batch.hardState;
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
