import type { Snapshot } from "./messages.js";

/**
 * What the leader knows about one follower's log, and how it paces replication to it
 * (as in etcd's raft: probe until the follower's position is known, then pipeline
 * within an inflight window).
 */

/**
 * - `probe`: the follower's position is unknown; send one AppendEntries at a time.
 * - `replicate`: the position is known; stream optimistically within the window.
 * - `snapshot`: the follower needs a snapshot; send nothing else until it is done.
 */
export type ProgressState = "probe" | "replicate" | "snapshot";

/**
 * A bounded window of in-flight AppendEntries, by the last index each carries and its
 * size in bytes. Freed when an acknowledgement covers them.
 */
export class Inflights {
  private readonly lastIndexes: number[] = [];
  private readonly sizes: number[] = [];
  private head = 0;
  private bytes = 0;

  constructor(
    private readonly maxCount: number,
    private readonly maxBytes: number,
  ) {}

  get count(): number {
    return this.lastIndexes.length - this.head;
  }

  full(): boolean {
    return this.count >= this.maxCount || this.bytes >= this.maxBytes;
  }

  add(lastIndex: number, bytes: number): void {
    this.lastIndexes.push(lastIndex);
    this.sizes.push(bytes);
    this.bytes += bytes;
  }

  /** Frees every message whose last index is at most `index`. */
  freeLE(index: number): void {
    while (this.head < this.lastIndexes.length && this.lastIndexes[this.head]! <= index) {
      this.bytes -= this.sizes[this.head]!;
      this.head++;
    }
    if (this.head > 1024 && this.head * 2 > this.lastIndexes.length) {
      this.lastIndexes.splice(0, this.head);
      this.sizes.splice(0, this.head);
      this.head = 0;
    }
  }

  /** Frees the oldest message, assumed lost. */
  freeFirst(): void {
    if (this.count === 0) return;
    this.bytes -= this.sizes[this.head]!;
    this.head++;
  }

  reset(): void {
    this.lastIndexes.length = 0;
    this.sizes.length = 0;
    this.head = 0;
    this.bytes = 0;
  }
}

/** One follower's replication progress, as the leader sees it. */
export class Progress {
  // Invariant: match < next.
  /** The highest index known to be replicated on the follower. */
  match = 0;
  /** The next index to send. */
  next: number;
  state: ProgressState = "probe";
  /** In probe state: an AppendEntries is out and unanswered, so wait. */
  probeSent = false;
  /** Heard from since the last check-quorum round (Raft dissertation §6.2). */
  recentActive = false;
  /** The highest ReadIndex round this follower has acknowledged. */
  readRound = 0;
  /** In snapshot state: the index of the snapshot being sent, and the next byte to send. */
  pendingSnapshot = 0;
  /** The next byte the follower expects (acknowledged) and the next byte to send. */
  snapshotOffset = 0;
  snapshotSentOffset = 0;
  /**
   * The last offset the follower gave that was behind `snapshotOffset` (null: none since
   * the last progress). Usually a reordered old answer; but when the follower restarted,
   * a delayed answer of its previous life may have moved us past where it now is, and
   * then this is the truth. Used when a stalled transfer is resent.
   */
  snapshotBehind: number | null = null;
  /**
   * The snapshot being sent. Kept until the transfer completes even when the leader takes
   * a newer one meanwhile: restarting on every new snapshot could starve a slow follower.
   */
  sending: Snapshot | null = null;
  /** The leader's tick when it last sent this follower a snapshot chunk. */
  snapshotSentTick = -Infinity;
  readonly inflights: Inflights;

  constructor(next: number, maxInflight: number, maxInflightBytes: number) {
    this.next = next;
    this.inflights = new Inflights(maxInflight, maxInflightBytes);
  }

  isPaused(): boolean {
    switch (this.state) {
      case "probe":
        return this.probeSent;
      case "replicate":
        return this.inflights.full();
      case "snapshot":
        return true;
    }
  }

  becomeProbe(): void {
    this.state = "probe";
    this.sending = null;
    this.next = this.match + 1;
    this.probeSent = false;
    this.inflights.reset();
  }

  /** Starts sending the snapshot at `index`; nothing else goes to this follower meanwhile. */
  becomeSnapshot(index: number): void {
    this.state = "snapshot";
    this.pendingSnapshot = index;
    this.snapshotOffset = 0;
    this.snapshotSentOffset = 0;
    this.snapshotBehind = null;
    this.probeSent = false;
    this.inflights.reset();
  }

  becomeReplicate(): void {
    this.state = "replicate";
    this.sending = null;
    this.next = this.match + 1;
    this.inflights.reset();
  }

  /** Records an acknowledgement up to `index`; returns whether `match` moved. */
  maybeUpdate(index: number): boolean {
    let updated = false;
    if (this.match < index) {
      this.match = index;
      this.probeSent = false;
      updated = true;
    }
    if (this.next < index + 1) this.next = index + 1;
    return updated;
  }

  /**
   * Handles a rejection of the AppendEntries whose `prevIndex` was `rejected`; `next`
   * becomes `hintNext` (bounded to stay above `match`). Returns false when the rejection
   * is stale (answers an older message) and was ignored.
   */
  maybeDecrTo(rejected: number, hintNext: number): boolean {
    if (this.state === "replicate") {
      // Entries up to match are known to match: a rejection at or below it is stale.
      if (rejected <= this.match) return false;
      this.becomeProbe();
      this.next = Math.max(this.match + 1, Math.min(hintNext, rejected));
      return true;
    }
    // In probe state only the answer to the probe in flight counts.
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(this.match + 1, Math.min(hintNext, rejected));
    this.probeSent = false;
    return true;
  }
}
