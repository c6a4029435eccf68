import type { Entry } from "./messages.js";

/** Thrown by the core when one of its invariants breaks: the node must stop. */
export class InvariantError extends Error {
  constructor(message: string) {
    super(`raft invariant violated: ${message}`);
    this.name = "InvariantError";
  }
}

/** Stops the node when `condition` is false: a broken invariant is never repaired silently. */
export function invariant(condition: boolean, message: string | (() => string)): asserts condition {
  if (!condition) throw new InvariantError(typeof message === "string" ? message : message());
}

/** The bytes an entry costs in a message, for size-bounded batching. */
export function entryBytes(e: Entry): number {
  return e.data.byteLength + 24;
}

/**
 * A node's log as the core sees it: every entry after the last compaction point, in
 * memory, with the unstable tail (not yet durable) marked by `unstableFrom`.
 */
export class RaftLog {
  /** Entries `offset + 1 .. offset + entries.length`. */
  private entries: Entry[];
  /** The index before the first entry held (the last compacted index). */
  private offset: number;
  /** The term of the entry at `offset` (0 when nothing was compacted). */
  private offsetTerm: number;

  // Invariant: applied <= committed <= lastIndex().
  /** The highest index known to be committed. */
  committed: number;
  /** The highest index handed out to be applied. */
  applied: number;
  // Invariant: firstIndex() <= unstableFrom <= lastIndex() + 1.
  /** The first index not yet durable. */
  unstableFrom: number;

  constructor(firstIndex: number, entries: readonly Entry[], committed: number, offsetTerm = 0, applied = firstIndex - 1) {
    this.offset = firstIndex - 1;
    this.offsetTerm = offsetTerm;
    this.entries = [...entries];
    for (let i = 0; i < this.entries.length; i++) {
      invariant(this.entries[i]!.index === firstIndex + i, "loaded log is not contiguous");
      if (i > 0) invariant(this.entries[i]!.term >= this.entries[i - 1]!.term, "loaded log has decreasing terms");
    }
    this.committed = Math.max(Math.min(committed, this.lastIndex()), applied);
    this.applied = applied;
    this.unstableFrom = this.lastIndex() + 1;
  }

  firstIndex(): number {
    return this.offset + 1;
  }

  lastIndex(): number {
    return this.offset + this.entries.length;
  }

  lastTerm(): number {
    return this.entries.length > 0 ? this.entries[this.entries.length - 1]!.term : this.offsetTerm;
  }

  /** The term of the entry at `index`, or undefined when it is compacted or beyond the end. */
  term(index: number): number | undefined {
    if (index === this.offset) return this.offsetTerm;
    if (index < this.offset || index > this.lastIndex()) return undefined;
    return this.entries[index - this.offset - 1]!.term;
  }

  entry(index: number): Entry | undefined {
    if (index <= this.offset || index > this.lastIndex()) return undefined;
    return this.entries[index - this.offset - 1];
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /** Raft §5.4.1: a candidate's log is at least as up to date as ours. */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const myTerm = this.lastTerm();
    return lastTerm > myTerm || (lastTerm === myTerm && lastIndex >= this.lastIndex());
  }

  /** Appends entries that directly follow the last one (the leader's own appends). */
  append(entries: readonly Entry[]): void {
    for (const e of entries) {
      invariant(e.index === this.lastIndex() + 1, () => `append at ${e.index} after ${this.lastIndex()}`);
      this.entries.push(e);
    }
  }

  /**
   * Follower side of AppendEntries once the consistency check passed: skips entries
   * already held, truncates at the first conflict (Raft §5.3) and appends the rest.
   */
  appendAfterMatch(entries: readonly Entry[]): void {
    let i = 0;
    while (i < entries.length) {
      const e = entries[i]!;
      const held = this.term(e.index);
      if (held === undefined && e.index <= this.offset) {
        i++; // compacted, hence committed, hence equal
        continue;
      }
      if (held !== e.term) break;
      i++;
    }
    if (i === entries.length) return;
    const first = entries[i]!.index;
    if (first <= this.lastIndex()) {
      invariant(first > this.committed, () => `truncating committed entry ${first} (committed ${this.committed})`);
      this.entries.length = first - this.offset - 1;
      if (this.unstableFrom > first) this.unstableFrom = first;
    }
    for (; i < entries.length; i++) {
      const e = entries[i]!;
      invariant(e.index === this.lastIndex() + 1, () => `gap appending ${e.index} after ${this.lastIndex()}`);
      this.entries.push(e);
    }
  }

  /**
   * Entries from `lo` on, at most `maxCount` and about `maxBytes` (always at least one
   * when any is available, so one oversized entry still gets through).
   */
  slice(lo: number, maxCount: number, maxBytes: number): Entry[] {
    const out: Entry[] = [];
    const last = this.lastIndex();
    let bytes = 0;
    for (let i = lo; i <= last && out.length < maxCount; i++) {
      const e = this.entries[i - this.offset - 1]!;
      bytes += entryBytes(e);
      if (out.length > 0 && bytes > maxBytes) break;
      out.push(e);
    }
    return out;
  }

  /** The entries not yet durable. */
  unstableEntries(): Entry[] {
    if (this.unstableFrom > this.lastIndex()) return [];
    return this.entries.slice(this.unstableFrom - this.offset - 1);
  }

  /**
   * Marks entries up to (`index`, `term`) durable. If the log was truncated below `index`
   * after those entries were handed out, the term no longer matches (Log Matching: a
   * replaced entry never has the same term as its replacement), and nothing changes.
   */
  stableTo(index: number, term: number): void {
    if (this.term(index) === term && index >= this.unstableFrom) this.unstableFrom = index + 1;
  }

  /** The last durable index. */
  stableLastIndex(): number {
    return this.unstableFrom - 1;
  }

  commitTo(index: number): boolean {
    if (index <= this.committed) return false;
    invariant(index <= this.lastIndex(), () => `commit ${index} beyond last index ${this.lastIndex()}`);
    this.committed = index;
    return true;
  }

  /** Committed entries not yet handed out for applying. */
  hasEntriesToApply(): boolean {
    return this.committed > this.applied;
  }

  entriesToApply(maxCount: number): Entry[] {
    const hi = Math.min(this.committed, this.applied + maxCount);
    return this.entries.slice(this.applied - this.offset, hi - this.offset);
  }

  appliedTo(index: number): void {
    invariant(index <= this.committed && index >= this.applied, () => `applied ${index} outside ${this.applied}..${this.committed}`);
    this.applied = index;
  }

  /**
   * Drops the entries up to and including `index` (covered by a snapshot). Only durable,
   * applied entries may go.
   */
  compact(index: number): void {
    if (index <= this.offset) return;
    invariant(index <= this.applied && index < this.unstableFrom, () => `compacting to ${index} past applied ${this.applied} or durable ${this.unstableFrom - 1}`);
    const term = this.term(index)!;
    this.entries.splice(0, index - this.offset);
    this.offset = index;
    this.offsetTerm = term;
  }

  /** Replaces the whole log with a snapshot's position: the log restarts after it. */
  restore(index: number, term: number): void {
    invariant(index > this.committed, () => `restoring a snapshot at ${index} at or below commit ${this.committed}`);
    this.entries = [];
    this.offset = index;
    this.offsetTerm = term;
    this.committed = index;
    this.applied = index;
    this.unstableFrom = index + 1;
  }

  /** The last index whose entry has term `term`, at or below `max`, or undefined. Terms never decrease along a log, so this is a binary search. */
  lastIndexOfTerm(term: number, max: number): number | undefined {
    let lo = this.firstIndex();
    let hi = Math.min(max, this.lastIndex());
    let found: number | undefined;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const t = this.term(mid)!;
      if (t <= term) {
        if (t === term) found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found;
  }

  /** The first index at or below `index` whose entry has the same term as the entry at `index`. */
  firstIndexOfTermAt(index: number): number {
    const term = this.term(index)!;
    let lo = this.firstIndex();
    let hi = index;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.term(mid)! < term) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
