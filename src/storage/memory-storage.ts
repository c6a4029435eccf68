import type { SnapshotMeta } from "../core/messages.js";
import type { RaftStorage, Snapshot, StorageBatch, StorageCapabilities, StoredState } from "./storage.js";
import { RaftError } from "../errors.js";
import { collectChunks, snapshotDataOf } from "../snapshot-data.js";
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
 * models a restart in tests. Not durable across process crashes: use it for tests,
 * examples and clusters whose state can be rebuilt from elsewhere.
 *
 * @example
 * ```ts
 * const storage = new MemoryStorage();
 * const node = new RaftNode({ id: "n1", peers: ["n1"], stateMachine: new KvStateMachine(), storage, transport: new MemoryNetwork().transport("n1") });
 * await node.start();
 * await node.propose({ op: "put", key: "k", value: "v" });
 * await node.stop();
 * // A new node over the same storage finds the log and replays it.
 * const restarted = new RaftNode({ id: "n1", peers: ["n1"], stateMachine: new KvStateMachine(), storage, transport: new MemoryNetwork().transport("n1") });
 * ```
 * @public
 */
export class MemoryStorage implements RaftStorage {
  /** `{ durable: false }`: nothing survives the process. */
  readonly capabilities: StorageCapabilities = { durable: false };
  private readonly image: LogImage;
  private closed = false;

  /**
   * An empty store, or one holding `options.initial`.
   * @param options - See {@link MemoryStorageOptions}.
   */
  constructor(options: MemoryStorageOptions = {}) {
    this.image = new LogImage(options.initial);
  }

  /**
   * Returns what was saved so far (an empty state for a new store). Also reopens the
   * store after `close()`.
   * @returns The stored hard state, log and snapshot.
   */
  async load(): Promise<StoredState> {
    this.closed = false;
    return this.image.state();
  }

  /**
   * Applies one batch, atomically: a batch that fails its checks changes nothing.
   * @param batch - The hard state, entries and snapshot to store.
   * @returns Resolves once applied. Rejects with `STOPPED` after `close()`, and with
   * `STORAGE` when the entries would leave a gap or rewrite compacted entries.
   */
  async save(batch: StorageBatch): Promise<void> {
    if (this.closed) throw new RaftError("STOPPED", "MemoryStorage.save after close");
    this.image.check(batch);
    this.image.apply(batch);
  }

  /**
   * Collects a snapshot's bytes in memory.
   * @param meta - What the snapshot covers.
   * @param chunks - Its bytes in order.
   * @returns The snapshot, reading from memory. Rejects with `STOPPED` after `close()`,
   * and with the stream's error when it throws.
   */
  async writeSnapshot(meta: SnapshotMeta, chunks: AsyncIterable<Uint8Array>): Promise<Snapshot> {
    if (this.closed) throw new RaftError("STOPPED", "MemoryStorage.writeSnapshot after close");
    return { meta, data: snapshotDataOf(await collectChunks(chunks)) };
  }

  /**
   * Stores `snapshot` and drops the entries up to and including `compactTo`.
   * @param snapshot - The snapshot; it replaces the stored one.
   * @param compactTo - The last index to drop (at most `snapshot.meta.index`).
   * @param compactToTerm - The term of the entry at `compactTo`.
   * @returns Resolves once applied. Rejects with `STOPPED` after `close()`, and with
   * `STORAGE` when `compactTo` is past the snapshot or the snapshot is outside the log.
   */
  async compact(snapshot: Snapshot, compactTo: number, compactToTerm: number): Promise<void> {
    if (this.closed) throw new RaftError("STOPPED", "MemoryStorage.compact after close");
    this.image.checkCompact(snapshot, compactTo);
    this.image.compact(snapshot, compactTo, compactToTerm);
  }

  /**
   * Refuses further writes until the next `load()`; keeps the data. Idempotent.
   * @returns Resolves at once.
   */
  async close(): Promise<void> {
    this.closed = true;
  }
}
