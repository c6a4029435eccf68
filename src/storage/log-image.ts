import type { Entry, HardState } from "../core/messages.js";
import { RaftError } from "../errors.js";
import type { Snapshot, StorageBatch, StoredState } from "./storage.js";

/**
 * A whole stored state held in memory, with the storage contract's write rules (append
 * with truncation, snapshot install, compaction) in one place. MemoryStorage keeps one;
 * so does the simulator's disk.
 */
export class LogImage {
  hardState: HardState = { term: 0, vote: null, commit: 0 };
  entries: Entry[] = [];
  firstIndex = 1;
  compactedTerm = 0;
  snapshot: Snapshot | null = null;

  constructor(initial?: StoredState) {
    if (initial) {
      this.hardState = initial.hardState;
      this.entries = [...initial.entries];
      this.firstIndex = initial.firstIndex;
      this.compactedTerm = initial.compactedTerm;
      this.snapshot = initial.snapshot;
    }
  }

  state(): StoredState {
    return { hardState: this.hardState, entries: [...this.entries], firstIndex: this.firstIndex, compactedTerm: this.compactedTerm, snapshot: this.snapshot };
  }

  /** Checks a batch against the stored log without changing anything; throws a RaftError when it does not fit. */
  check(batch: StorageBatch): void {
    const entries = batch.entries ?? [];
    if (entries.length === 0) return;
    const first = entries[0]!.index;
    const firstIndex = batch.snapshot ? batch.snapshot.meta.index + 1 : this.firstIndex;
    const next = batch.snapshot ? firstIndex : this.firstIndex + this.entries.length;
    if (first < firstIndex || first > next) {
      throw new RaftError("STORAGE", `append at index ${first} leaves a gap or rewrites compacted entries (log holds ${firstIndex}..${next - 1})`);
    }
    for (let i = 1; i < entries.length; i++) {
      if (entries[i]!.index !== first + i) throw new RaftError("STORAGE", `entries to append are not contiguous at index ${entries[i]!.index}`);
    }
  }

  /** Applies a checked batch. */
  apply(batch: StorageBatch): void {
    if (batch.snapshot) {
      this.snapshot = batch.snapshot;
      this.entries = [];
      this.firstIndex = batch.snapshot.meta.index + 1;
      this.compactedTerm = batch.snapshot.meta.term;
    }
    const entries = batch.entries ?? [];
    if (entries.length > 0) {
      this.entries.length = entries[0]!.index - this.firstIndex;
      for (const e of entries) this.entries.push(e);
    }
    if (batch.hardState) this.hardState = batch.hardState;
  }

  /** Checks a compaction; throws a RaftError when it does not fit. */
  checkCompact(snapshot: Snapshot, compactTo: number): void {
    const last = this.firstIndex + this.entries.length - 1;
    if (compactTo > snapshot.meta.index) throw new RaftError("STORAGE", `compaction to ${compactTo} goes past the snapshot at ${snapshot.meta.index}`);
    if (snapshot.meta.index > last) throw new RaftError("STORAGE", `snapshot at ${snapshot.meta.index} is beyond the last stored entry ${last}`);
    // An older snapshot than the entries already dropped would leave a stretch of history
    // that neither the snapshot nor the log covers.
    if (snapshot.meta.index < this.firstIndex - 1) throw new RaftError("STORAGE", `snapshot at ${snapshot.meta.index} is older than the compacted log (first index ${this.firstIndex})`);
  }

  compact(snapshot: Snapshot, compactTo: number, compactToTerm: number): void {
    this.snapshot = snapshot;
    if (compactTo >= this.firstIndex) {
      this.entries.splice(0, compactTo - this.firstIndex + 1);
      this.firstIndex = compactTo + 1;
      this.compactedTerm = compactToTerm;
    }
  }
}
