/**
 * LevelStorage: the durable {@link RaftStorage} on LevelDB (classic-level).
 *
 * The store's directory holds LevelDB's files and the snapshot data files. The LevelDB key
 * layout (format version 2) is in level-records.ts, the snapshot files in snapshot-file.ts,
 * and the long form of both in docs/storage-format.md.
 *
 * Writes go through one queue, in call order: runs of saves merge into one LevelDB batch
 * (group commit); a snapshot install or a compaction is a step of its own, because it
 * must first make its data file durable and then commits in one batch of its own.
 * `writeSnapshot` stays outside the queue: it only writes a file aside, which no record
 * names until a later step does.
 */
import { ClassicLevel } from "classic-level";
import type { SnapshotMeta } from "../core/messages.js";
import type { RaftStorage, Snapshot, SnapshotData, StorageBatch, StorageCapabilities, StoredState } from "./storage.js";
import { RaftError, isRaftError } from "../errors.js";
import { silentLogger, type Logger } from "../logger.js";
import { snapshotChunks } from "../snapshot-data.js";
import { encodeEntry, isU64Safe } from "./entry-encoding.js";
import {
  HARD_STATE_KEY,
  LOG_START_KEY,
  ENTRY_RANGE,
  MAX_STRING_BYTES,
  SNAPSHOT_KEY,
  checkSnapshotMeta,
  encodeHardState,
  encodeLogStart,
  encodeSnapshotRecord,
  entryKey,
  type LogStart,
} from "./level-records.js";
import { EMPTY_LOG_START, checkLocation, openError, readOrCreate, removeStraySnapshotFiles } from "./level-read.js";
import { closeDescriptor, removeFile, writeSnapshotFile, type SnapshotFileInfo, type WrittenSnapshotFile } from "./snapshot-file.js";
import { disposeSnapshotData, fileSnapshotData } from "./snapshot-file-data.js";

/**
 * Options for {@link LevelStorage}.
 * @public
 */
export interface LevelStorageOptions {
  /** The directory of the LevelDB store; created (with its parents) when missing. */
  readonly location: string;
  /** The node this store belongs to. A store written by another node id is refused. */
  readonly nodeId: string;
  /**
   * The cluster this store belongs to. A store written for another cluster is refused.
   * @defaultValue `"default"`
   */
  readonly clusterId?: string;
  /**
   * Whether each write is fsynced before its `save()` resolves. `false` is for benchmarks
   * and tests only: a power loss can then lose acknowledged writes (a vote, an entry),
   * which breaks Raft's safety.
   * @defaultValue `true`
   */
  readonly sync?: boolean;
  /**
   * Where diagnostics go.
   * @defaultValue `silentLogger`
   */
  readonly logger?: Logger;
}

/**
 * Counters of a {@link LevelStorage}: how often it wrote and synced, for monitoring and benchmarks.
 * @public
 */
export interface LevelStorageStats {
  /** `save()` calls that were written (or failed) as part of a batch. */
  readonly saves: number;
  /** LevelDB batches written, for saves and for compactions: one fsync each when `sync` is on. */
  readonly batches: number;
}

const utf8 = new TextEncoder();

type Bytes = Uint8Array;

interface Waiter {
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** Saves merged into one `db.batch` (group commit). */
interface Group {
  readonly kind: "group";
  /** Index of `puts[0]`; meaningful only when `puts` is not empty. */
  firstIndex: number;
  /** Encoded entries, contiguous from `firstIndex`: the newest tail of the log. */
  puts: Bytes[];
  /** The newest encoded hard state among the merged saves. */
  hardState: Bytes | undefined;
  /** Whether any merged save must be durable when it resolves (see `StorageBatch.sync`). */
  mustSync: boolean;
  /** One per merged save, settled in order once the batch is durable (or failed). */
  readonly waiters: Waiter[];
}

/** A snapshot install (a save with `snapshot`) or a compaction: one batch of its own. */
interface SnapshotStep {
  readonly kind: "snapshot";
  /** `install` replaces the whole log; `compact` drops the prefix before `start.firstIndex`. */
  readonly mode: "install" | "compact";
  readonly meta: SnapshotMeta;
  /**
   * The data file: one `writeSnapshot` wrote (already durable), or a copy of a foreign
   * handle's bytes, being written since the call was accepted.
   */
  readonly file: Promise<SnapshotFileInfo>;
  /** The file this step names without copying it, kept from removal until the step is done. */
  readonly pinned: string | undefined;
  /** The log start ("f") after this step. */
  readonly start: LogStart;
  /** Install only: the batch's encoded entries, contiguous from `start.firstIndex`. */
  readonly puts: Bytes[];
  readonly hardState: Bytes | undefined;
  readonly waiter: Waiter;
}

type Step = Group | SnapshotStep;

/**
 * A {@link RaftStorage} on LevelDB via classic-level: durable when `sync` is on (the default).
 *
 * Each `save()` is one atomic LevelDB batch: the entries, the deletion of any stale suffix
 * they replace, and the hard state. Saves that arrive while a write is in flight are merged
 * into the next single batch (group commit: one fsync for all of them); each caller's
 * promise resolves once its own data is durable.
 *
 * Snapshot data lives in files of its own in the store's directory (large snapshots do not
 * belong in LevelDB); LevelDB holds each snapshot's metadata, file name, length and SHA-256,
 * and `load()` verifies the file against them by streaming it through the hash.
 * `writeSnapshot` streams a snapshot's bytes into a new file as they arrive (synced and
 * renamed into place, but named by no record yet); a snapshot install or a compaction that
 * names that snapshot then commits the metadata, the new log start and the entry
 * deletions in one batch, ordered with the saves around it, without copying the file.
 * A snapshot whose data this store did not write (say `snapshotDataOf(bytes)`) is first
 * streamed into a file of its own the same way.
 *
 * Snapshot handles (`Snapshot.data` from `writeSnapshot` and `load()`) read their file
 * through a descriptor they hold open, so they stay readable after a newer snapshot
 * replaced the file and it was removed, and after `close()` too. Each descriptor is closed
 * when its handle is garbage collected: the cost is one open file per live handle, and a
 * node holds few.
 *
 * The store records the node id and cluster id it was created for and refuses to open for
 * any other, so a misconfigured node cannot adopt another node's votes and log. LevelDB's
 * lock makes a second opener (in this or another process) fail at `load()`.
 *
 * `load()` after `close()` opens the store again, as a node restarted in the same process does.
 *
 * @example
 * ```ts
 * const storage = new LevelStorage({ location: "/var/lib/orders/raft", nodeId: "a", clusterId: "orders" });
 * const node = new RaftNode({ id: "a", peers, stateMachine, storage, transport });
 * await node.start(); // load() opens (or creates) the store
 * // ...
 * await node.stop(); // close() waits for pending writes, then releases the directory
 * ```
 * @public
 */
export class LevelStorage implements RaftStorage {
  /** `durable` is true exactly when `sync` is on: only fsynced writes survive power loss. */
  readonly capabilities: StorageCapabilities;
  private readonly location: string;
  private readonly nodeId: string;
  private readonly clusterId: string;
  private readonly sync: boolean;
  private readonly logger: Logger;

  private state: "closed" | "loading" | "open" = "closed";
  private db: ClassicLevel<Bytes, Bytes> | undefined;
  private loading: Promise<unknown> | undefined;
  private closing: Promise<void> | undefined;
  private flushing: Promise<void> | undefined;
  /** Steps accepted and not yet being written, in call order. Only the last may be an open group. */
  private queue: Step[] = [];
  /** Set when a write failed: what is on disk is then unknown, so every later save fails. */
  private failure: RaftError | undefined;

  // The log as it will be once every accepted step is written: calls are checked against it.
  // Invariant: with no step queued or in flight (and none failed), accepted === durable.
  private acceptedStart: LogStart = EMPTY_LOG_START;
  private acceptedLastIndex = 0;
  // The log on disk, after the batches written so far: batches are built from it.
  private durableFirstIndex = 1;
  private durableLastIndex = 0;
  /** The generation of the next snapshot file: above every file that may exist, so never a reuse. */
  private nextGeneration = 1;
  /** Background deletion of compacted entries, one range after another. */
  private garbage: Promise<void> = Promise.resolve();
  /** Every handle this instance made, with the file it reads: a step naming one needs no copy. */
  private readonly ownHandles = new WeakMap<SnapshotData, SnapshotFileInfo>();
  /**
   * Snapshot files on disk since this open that a step may name as they are: the
   * committed one, and those `writeSnapshot` wrote. A handle whose file is not here (it
   * was replaced and removed, or belongs to an earlier open) is copied like a foreign one.
   */
  private liveFiles = new Set<string>();
  /** Live files that queued steps will name, with how many: never removed meanwhile. */
  private readonly pinned = new Map<string, number>();
  /** `writeSnapshot` calls in progress: close() abandons them and waits for their cleanup. */
  private readonly writers = new Set<Promise<unknown>>();
  /** Aborted by close(), so that a `writeSnapshot` waiting on its stream gives up. */
  private abort = new AbortController();

  private saveCount = 0;
  private batchCount = 0;

  /**
   * Validates the options; nothing is opened until {@link LevelStorage.load}.
   * @param options - See {@link LevelStorageOptions}.
   * @throws TypeError or RangeError naming the offending option.
   */
  constructor(options: LevelStorageOptions) {
    if (typeof options !== "object" || options === null) throw new TypeError("LevelStorageOptions must be an object");
    if (typeof options.location !== "string" || options.location === "") {
      throw new TypeError("LevelStorageOptions.location must be a non-empty string (a directory path)");
    }
    this.location = options.location;
    this.nodeId = checkName(options.nodeId, "nodeId");
    this.clusterId = options.clusterId === undefined ? "default" : checkName(options.clusterId, "clusterId");
    if (options.sync !== undefined && typeof options.sync !== "boolean") {
      throw new TypeError("LevelStorageOptions.sync must be a boolean");
    }
    this.sync = options.sync ?? true;
    const logger = options.logger ?? silentLogger;
    if (typeof logger !== "object" || logger === null || (["debug", "info", "warn", "error"] as const).some((m) => typeof logger[m] !== "function")) {
      throw new TypeError("LevelStorageOptions.logger must have debug, info, warn and error methods");
    }
    this.logger = logger;
    this.capabilities = { durable: this.sync };
  }

  /**
   * Counters for monitoring, tests and benchmarks: a fresh object on each read.
   */
  get stats(): LevelStorageStats {
    return { saves: this.saveCount, batches: this.batchCount };
  }

  /**
   * Opens the store (creating it when the directory is new or empty) and returns what it
   * holds. Rejects with `STORAGE` when the directory is not a raftkit store, belongs to
   * another node or cluster, or is locked by another opener; with `CORRUPT` when a record
   * fails validation or the snapshot file does not match its recorded length and SHA-256.
   * A failed load writes nothing and releases the directory. A successful one removes the
   * snapshot files a crash left behind (temp files, and files no record names, such as a
   * `writeSnapshot` result never named before a restart). Rejects with `INVALID_STATE`
   * when the store is already open or closing.
   * @returns The stored hard state, log (from the first uncompacted entry) and snapshot.
   * The snapshot's `data` reads its file in pieces (it is never in memory whole).
   */
  async load(): Promise<StoredState> {
    if (this.closing !== undefined) throw new RaftError("INVALID_STATE", "LevelStorage.load while close() is in progress");
    if (this.state !== "closed") throw new RaftError("INVALID_STATE", `LevelStorage.load called twice (${this.location})`);
    this.state = "loading";
    const opening = this.open();
    this.loading = opening;
    try {
      const stored = await opening;
      this.state = "open";
      return stored;
    } catch (err) {
      this.state = "closed";
      throw err;
    } finally {
      this.loading = undefined;
    }
  }

  /**
   * Writes one batch atomically; resolves once it is durable. Concurrent calls are safe
   * and are merged into as few LevelDB batches as possible. A batch with a `snapshot`
   * commits alone, replacing the whole log: it names the file `writeSnapshot` wrote for
   * the snapshot, or first streams a snapshot this store did not write into a file of its own.
   * @param batch - The hard state, entries and snapshot to store.
   * @returns Resolves once the batch is durable: fsynced when the `sync` option is on,
   * unless the batch says `sync: false` (a commit-index-only batch). Rejects with
   * `STOPPED` when the store is not open; with `STORAGE` when the entries would leave a gap
   * or are not contiguous, or when this or an earlier write failed (after a failed write
   * the store refuses every later one, since what is on disk is unknown).
   */
  async save(batch: StorageBatch): Promise<void> {
    this.checkWritable("save");
    // Validate and encode everything before touching the queue, so that a rejected save
    // leaves no trace. No await between here and the enqueue: the gap check must hold
    // for the state the enqueue sees.
    const snapshot = batch.snapshot;
    if (snapshot !== undefined) checkSnapshot(snapshot);
    // An install restarts the log right after the snapshot; entries in the same batch follow it.
    const logFirst = snapshot === undefined ? this.acceptedStart.firstIndex : snapshot.meta.index + 1;
    const logNext = snapshot === undefined ? this.acceptedLastIndex + 1 : logFirst;
    const entries = batch.entries ?? [];
    let first = 0;
    const puts: Bytes[] = [];
    if (entries.length > 0) {
      first = entries[0]!.index;
      if (!Number.isSafeInteger(first) || first < logFirst || first > logNext) {
        throw new RaftError("STORAGE", `append at index ${first} leaves a gap or rewrites compacted entries (log holds ${logFirst}..${logNext - 1})`);
      }
      for (let k = 0; k < entries.length; k++) {
        const entry = entries[k]!;
        if (entry.index !== first + k) {
          throw new RaftError("STORAGE", `batch entries are not contiguous: index ${entry.index} at position ${k} after ${first}`);
        }
        puts.push(encodeEntry(entry));
      }
    }
    const hardState = batch.hardState === undefined ? undefined : encodeHardState(batch.hardState);

    if (snapshot !== undefined) {
      const start = { firstIndex: logFirst, compactedTerm: snapshot.meta.term };
      this.acceptedStart = start;
      this.acceptedLastIndex = logFirst + puts.length - 1;
      return this.enqueueSnapshot("install", snapshot, start, puts, hardState);
    }

    const last = this.queue.at(-1);
    const group = last?.kind === "group" ? last : this.push({ kind: "group", firstIndex: 0, puts: [], hardState: undefined, mustSync: false, waiters: [] });
    if (puts.length > 0) {
      // The new entries replace everything from `first` on, in the pending group too.
      if (group.puts.length === 0 || first <= group.firstIndex) {
        group.firstIndex = first;
        group.puts = puts;
      } else {
        group.puts.length = first - group.firstIndex;
        for (const p of puts) group.puts.push(p);
      }
      this.acceptedLastIndex = first + puts.length - 1;
    }
    if (hardState !== undefined) group.hardState = hardState;
    if (batch.sync !== false) group.mustSync = true;
    const durable = new Promise<void>((resolve, reject) => group.waiters.push({ resolve, reject }));
    this.flushing ??= this.flushLoop();
    return durable;
  }

  /**
   * Streams a snapshot's bytes into a new file as they arrive, never holding them all:
   * each chunk is hashed and written before the next is asked for. The file is synced
   * and renamed into place, but no record names it yet: it becomes the store's snapshot
   * when `compact` or `save` names the returned snapshot, and the next `load()` removes
   * it if neither did. May run alongside saves and compactions.
   * @param meta - What the snapshot covers.
   * @param chunks - Its bytes in order.
   * @returns The snapshot, whose `data` reads the file back; it stays readable while held,
   * even after a newer snapshot replaced the file or the store was closed. When the
   * stream throws, rejects with that same error, having removed the partial file. Rejects
   * with `STOPPED` when the store is not open or is closed before the write completes
   * (the partial file is removed); with `STORAGE` when an I/O operation fails or an earlier
   * write failed; with `TypeError`/`RangeError` for a malformed `meta`, a `chunks` that is
   * not async-iterable or a chunk that is not a `Uint8Array`.
   */
  async writeSnapshot(meta: SnapshotMeta, chunks: AsyncIterable<Uint8Array>): Promise<Snapshot> {
    this.checkWritable("writeSnapshot");
    checkSnapshotMeta(meta);
    const task = this.writeAside(meta, chunks);
    this.writers.add(task);
    const untrack = (): void => void this.writers.delete(task);
    task.then(untrack, untrack);
    return task;
  }

  /**
   * Stores a snapshot this node took and removes the entries up to and including
   * `compactTo`; resolves once durable. Ordered with the saves around it. Rejects with
   * `STORAGE` when `compactTo` is past the snapshot or the snapshot is past the last
   * stored entry (or older than the compacted log); with `TypeError`/`RangeError` for
   * malformed arguments; with `STOPPED` when the store is not open.
   * @param snapshot - The snapshot, normally from `writeSnapshot`: its file is then named
   * as it is. Any other `data` is first streamed into a file of its own; if reading it
   * fails, the compaction fails with `STORAGE` and, as after any failed write, the store
   * refuses further writes until reopened.
   * @param compactTo - The last index to remove (at most `snapshot.meta.index`).
   * @param compactToTerm - The term of the entry at `compactTo`.
   * @returns Resolves once the snapshot file and the new log start are durable.
   */
  async compact(snapshot: Snapshot, compactTo: number, compactToTerm: number): Promise<void> {
    this.checkWritable("compact");
    checkSnapshot(snapshot);
    if (!isU64Safe(compactTo)) throw new RangeError(`compactTo must be a safe non-negative integer (got ${compactTo})`);
    if (!isU64Safe(compactToTerm)) throw new RangeError(`compactToTerm must be a safe non-negative integer (got ${compactToTerm})`);
    if (compactTo > snapshot.meta.index) {
      throw new RaftError("STORAGE", `compaction to ${compactTo} goes past the snapshot at ${snapshot.meta.index}`);
    }
    if (snapshot.meta.index > this.acceptedLastIndex) {
      throw new RaftError("STORAGE", `snapshot at ${snapshot.meta.index} is beyond the last stored entry ${this.acceptedLastIndex}`);
    }
    if (snapshot.meta.index < this.acceptedStart.firstIndex - 1) {
      // Neither the snapshot nor the log would cover the entries in between.
      throw new RaftError("STORAGE", `snapshot at ${snapshot.meta.index} is older than the compacted log (first index ${this.acceptedStart.firstIndex})`);
    }
    // Compacting to an index already compacted only replaces the snapshot.
    const start = compactTo >= this.acceptedStart.firstIndex ? { firstIndex: compactTo + 1, compactedTerm: compactToTerm } : this.acceptedStart;
    this.acceptedStart = start;
    return this.enqueueSnapshot("compact", snapshot, start, [], undefined);
  }

  /**
   * Waits for pending saves to settle, then closes the store. A `writeSnapshot` still
   * waiting for chunks is abandoned (it rejects with `STOPPED` and removes its file).
   * Snapshot handles already handed out stay readable. Safe to call more than once.
   * @returns Resolves once LevelDB is closed and the directory's lock released.
   */
  close(): Promise<void> {
    if (this.closing !== undefined) return this.closing;
    if (this.state === "closed") return Promise.resolve();
    this.closing = this.shutdown().finally(() => {
      this.closing = undefined;
    });
    return this.closing;
  }

  private checkWritable(method: string): void {
    if (this.closing !== undefined || this.state !== "open") {
      throw new RaftError("STOPPED", `LevelStorage.${method} on a store that is not open (${this.location})`);
    }
    if (this.failure !== undefined) {
      throw new RaftError("STORAGE", `LevelStorage.${method} after an earlier write failed`, { cause: this.failure });
    }
  }

  private push<S extends Step>(step: S): S {
    this.queue.push(step);
    return step;
  }

  /**
   * Queues a snapshot step. A snapshot this store wrote is named as it is; any other is
   * copied into a file starting now, so that the copy overlaps the batches ahead of it.
   */
  private enqueueSnapshot(mode: SnapshotStep["mode"], snapshot: Snapshot, start: LogStart, puts: Bytes[], hardState: Bytes | undefined): Promise<void> {
    const own = this.liveFileOf(snapshot.data);
    let file: Promise<SnapshotFileInfo>;
    if (own !== undefined) {
      // Pinned: a step queued ahead may commit and retire this very file (a snapshot
      // named again after a newer one), and it must still be there when this step commits.
      this.pin(own.fileName);
      file = Promise.resolve(own);
    } else {
      file = this.copyIn(snapshot.data);
      // Awaited by the step; marked handled here so that a failure while earlier steps are
      // still being written is not reported as unhandled.
      file.catch(noop);
    }
    const pinned = own?.fileName;
    const durable = new Promise<void>((resolve, reject) => {
      this.push({ kind: "snapshot", mode, meta: snapshot.meta, file, pinned, start, puts, hardState, waiter: { resolve, reject } });
    });
    this.flushing ??= this.flushLoop();
    return durable;
  }

  /** The file of a handle this instance made, when that file is still there to be named. */
  private liveFileOf(data: SnapshotData): SnapshotFileInfo | undefined {
    const info = this.ownHandles.get(data);
    return info !== undefined && this.liveFiles.has(info.fileName) ? info : undefined;
  }

  private pin(fileName: string): void {
    this.pinned.set(fileName, (this.pinned.get(fileName) ?? 0) + 1);
  }

  private unpin(fileName: string | undefined): void {
    if (fileName === undefined) return;
    const count = (this.pinned.get(fileName) ?? 1) - 1;
    if (count > 0) this.pinned.set(fileName, count);
    else this.pinned.delete(fileName);
  }

  /** Wraps a descriptor of a file this store wrote or verified in a handle it will recognise. */
  private adopt(fd: number, info: SnapshotFileInfo): SnapshotData {
    const data = fileSnapshotData(fd, info.byteLength, info.fileName);
    this.ownHandles.set(data, info);
    return data;
  }

  /** The body of {@link LevelStorage.writeSnapshot}, tracked so that close() can wait for it. */
  private async writeAside(meta: SnapshotMeta, chunks: AsyncIterable<Uint8Array>): Promise<Snapshot> {
    const signal = this.abort.signal;
    const written = await writeSnapshotFile(this.location, this.nextGeneration++, chunks, { sync: this.sync, signal });
    if (signal.aborted) {
      // close() began while the file was being finished: no open store will name it.
      await this.discard(written);
      throw signal.reason;
    }
    this.liveFiles.add(written.info.fileName);
    this.logger.debug("level storage wrote a snapshot file", { location: this.location, snapshotIndex: meta.index, file: written.info.fileName, bytes: written.info.byteLength });
    return { meta, data: this.adopt(written.fd, written.info) };
  }

  /**
   * Streams a snapshot this store did not write into a file of its own, for a step to
   * name. Its descriptor is closed at once: the caller keeps reading through its own handle.
   */
  private async copyIn(data: SnapshotData): Promise<SnapshotFileInfo> {
    // No abort signal: close() waits for the queue anyway, and this source is a finite handle.
    const written = await writeSnapshotFile(this.location, this.nextGeneration++, snapshotChunks(data), { sync: this.sync });
    if (written.info.byteLength !== data.byteLength) {
      await this.discard(written);
      throw new RaftError("STORAGE", `the snapshot's data read back ${written.info.byteLength} bytes but says it holds ${data.byteLength}`);
    }
    await closeDescriptor(written.fd);
    return written.info;
  }

  /** Gives up a file just written: its descriptor and the file itself. */
  private async discard(written: WrittenSnapshotFile): Promise<void> {
    await closeDescriptor(written.fd);
    await removeFile(this.location, written.info.fileName).catch((err: unknown) =>
      this.logger.warn("level storage could not remove an abandoned snapshot file", { location: this.location, file: written.info.fileName, error: String(err) }),
    );
  }

  private async shutdown(): Promise<void> {
    if (this.loading !== undefined) await this.loading.then(noop, noop);
    // A stream may never end on its own (a sender that went away): abandon the writes
    // aside, and wait for each to remove its file, so that none outlives close().
    this.abort.abort(new RaftError("STOPPED", `LevelStorage closed while a snapshot was being written (${this.location})`));
    await Promise.allSettled([...this.writers]);
    while (this.flushing !== undefined) await this.flushing;
    await this.garbage;
    const db = this.db;
    this.db = undefined;
    this.state = "closed";
    if (db === undefined) return;
    try {
      await db.close();
      this.logger.debug("level storage closed", { location: this.location });
    } catch (err) {
      throw new RaftError("STORAGE", `closing LevelDB at ${this.location} failed`, { cause: err });
    }
  }

  /**
   * Deletes the entries `from..to`, which the committed log start already excludes, in
   * the background, one range after another. A failure is only logged: the next load
   * deletes whatever is left below the log start.
   */
  private collectGarbage(db: ClassicLevel<Bytes, Bytes>, from: number, to: number): void {
    this.garbage = this.garbage.then(() =>
      db.clear({ gte: entryKey(from), lte: entryKey(to) }).catch((err: unknown) =>
        this.logger.warn("level storage could not delete compacted entries; the next load will", { location: this.location, from, to, error: String(err) }),
      ),
    );
  }

  /** Writes queued steps one after another until none is left. */
  private async flushLoop(): Promise<void> {
    // One microtask: saves issued by the same synchronous code (a loop of save() calls)
    // join the first batch instead of waiting behind a batch of one.
    await Promise.resolve();
    for (;;) {
      const step = this.queue.shift();
      if (step === undefined) {
        // Cleared in the same synchronous step as the check, so a save arriving later
        // always starts a new loop and is never stranded.
        this.flushing = undefined;
        return;
      }
      if (step.kind === "group") await this.writeGroup(step);
      else await this.writeSnapshotStep(step);
    }
  }

  /** Writes one group as one batch and settles its waiters. Never throws. */
  private async writeGroup(group: Group): Promise<void> {
    const db = this.db;
    if (this.failure !== undefined || db === undefined) {
      this.skip(group.waiters);
      return;
    }
    this.saveCount += group.waiters.length;
    const newLast = group.puts.length > 0 ? group.firstIndex + group.puts.length - 1 : this.durableLastIndex;
    if (group.puts.length > 0 || group.hardState !== undefined) {
      this.batchCount++;
      // A chained batch, not db.batch(array): in classic-level 3 the array form costs about
      // four times as much CPU per operation (measured: 1,000 puts, ~10 ms against ~2.5 ms).
      const batch = db.batch();
      try {
        for (let k = 0; k < group.puts.length; k++) batch.put(entryKey(group.firstIndex + k), group.puts[k]!);
        // The stale suffix: stored entries after the new last one (Raft §5.3: a conflicting
        // entry and all that follow it are deleted). Entries in between are overwritten above.
        for (let i = newLast + 1; i <= this.durableLastIndex; i++) batch.del(entryKey(i));
        if (group.hardState !== undefined) batch.put(HARD_STATE_KEY, group.hardState);
        // A batch that only moves the commit index may skip the fsync; a later synced
        // batch flushes it with everything before it (LevelDB's log is ordered).
        await batch.write({ sync: this.sync && group.mustSync });
      } catch (err) {
        await batch.close().catch(noop);
        this.fail(`LevelDB write at ${this.location} failed`, err, group.waiters);
        return;
      }
    }
    this.durableLastIndex = newLast;
    for (const w of group.waiters) w.resolve();
  }

  /** Writes one snapshot step, then releases the file it pinned. Never throws. */
  private async writeSnapshotStep(step: SnapshotStep): Promise<void> {
    try {
      await this.commitSnapshotStep(step);
    } finally {
      this.unpin(step.pinned);
    }
  }

  /**
   * Commits a snapshot step once its file is durable: the snapshot record, the log start
   * and the entry deletions (plus, for an install, the new entries and hard state) in one
   * batch. Then removes the previous snapshot file. Never throws.
   */
  private async commitSnapshotStep(step: SnapshotStep): Promise<void> {
    const db = this.db;
    if (this.failure !== undefined || db === undefined) {
      // Its file is an orphan that the next load removes; waited for, so that no write
      // into the directory outlives close().
      await step.file.catch(noop);
      this.skip([step.waiter]);
      return;
    }
    if (step.mode === "install") this.saveCount++;
    let file: SnapshotFileInfo;
    try {
      file = await step.file;
    } catch (err) {
      this.fail(`writing a snapshot file in ${this.location} failed`, err, [step.waiter]);
      return;
    }
    this.batchCount++;
    const batch = db.batch();
    // The new log start makes every entry before it garbage at once; deleting them can
    // wait (a million deletes would hold up the saves queued behind this step for
    // seconds). An install also drops the stored entries from the new start on: those
    // must go in this batch, or stale entries would follow the snapshot after a crash.
    const newFirst = step.start.firstIndex;
    const garbageTo = Math.min(newFirst - 1, this.durableLastIndex);
    try {
      if (step.mode === "install") for (let i = Math.max(this.durableFirstIndex, newFirst); i <= this.durableLastIndex; i++) batch.del(entryKey(i));
      for (let k = 0; k < step.puts.length; k++) batch.put(entryKey(step.start.firstIndex + k), step.puts[k]!);
      batch.put(LOG_START_KEY, encodeLogStart(step.start));
      batch.put(SNAPSHOT_KEY, encodeSnapshotRecord({ meta: step.meta, ...file }));
      if (step.hardState !== undefined) batch.put(HARD_STATE_KEY, step.hardState);
      await batch.write({ sync: this.sync });
    } catch (err) {
      await batch.close().catch(noop);
      // The new file stays: whether the batch reached the disk is unknown, and the next
      // load keeps whichever file the record names.
      this.fail(`LevelDB write at ${this.location} failed`, err, [step.waiter]);
      return;
    }
    this.liveFiles.add(file.fileName);
    if (garbageTo >= this.durableFirstIndex) this.collectGarbage(db, this.durableFirstIndex, garbageTo);
    this.durableFirstIndex = step.start.firstIndex;
    if (step.mode === "install") this.durableLastIndex = step.start.firstIndex + step.puts.length - 1;
    // Every other file is unreferenced since the commit: the previous snapshot's, and any
    // written by writeSnapshot that no step named (a snapshot overtaken by a newer one),
    // unless a queued step is about to name it. Removed before the caller hears back, so
    // that a resolved compact() leaves one snapshot file; if this fails (or the process
    // dies first) the next load removes them. Handles on them keep reading: they hold
    // them open, and a later compact() with such a handle copies it.
    for (const stale of [...this.liveFiles]) {
      if (stale === file.fileName || this.pinned.has(stale)) continue;
      this.liveFiles.delete(stale);
      await removeFile(this.location, stale).catch((err: unknown) =>
        this.logger.warn("level storage could not remove an old snapshot file", { location: this.location, file: stale, error: String(err) }),
      );
    }
    this.logger.debug(step.mode === "install" ? "level storage installed a snapshot" : "level storage compacted", {
      location: this.location,
      snapshotIndex: step.meta.index,
      firstIndex: step.start.firstIndex,
      file: file.fileName,
    });
    step.waiter.resolve();
  }

  /** Rejects the waiters of a step that comes after a failed one. */
  private skip(waiters: readonly Waiter[]): void {
    const err = new RaftError("STORAGE", "LevelStorage write skipped after an earlier failure", { cause: this.failure });
    for (const w of waiters) w.reject(err);
  }

  /** Records a failed write: the store refuses every later write, since what is on disk is unknown. */
  private fail(message: string, cause: unknown, waiters: readonly Waiter[]): void {
    this.failure = new RaftError("STORAGE", message, { cause });
    this.logger.error("level storage write failed; the store refuses further writes", { location: this.location, error: String(cause) });
    for (const w of waiters) w.reject(this.failure);
  }

  private async open(): Promise<StoredState> {
    this.failure = undefined;
    this.queue = [];
    await checkLocation(this.location);
    const db = new ClassicLevel<Bytes, Bytes>(this.location, { keyEncoding: "view", valueEncoding: "view" });
    try {
      await db.open();
    } catch (err) {
      throw openError(err, this.location);
    }
    try {
      const { location, nodeId, clusterId, sync, logger } = this;
      const { stored, snapshotFile } = await readOrCreate(db, { location, nodeId, clusterId, sync, logger });
      try {
        // Only now, when no write aside of this open exists yet: every snapshot file but
        // the committed one is a leftover. Handles from before a close() hold their files
        // open, so removing those files does not disturb them.
        this.nextGeneration = await removeStraySnapshotFiles(location, snapshotFile?.fileName, logger);
      } catch (err) {
        if (stored.snapshot !== null) disposeSnapshotData(stored.snapshot.data);
        throw err;
      }
      // Compacted entries whose deletion a close or a crash cut short.
      await db.clear({ gt: ENTRY_RANGE.gt, lt: entryKey(stored.firstIndex) });
      if (stored.snapshot !== null && snapshotFile !== undefined) this.ownHandles.set(stored.snapshot.data, snapshotFile);
      this.liveFiles = new Set(snapshotFile === undefined ? [] : [snapshotFile.fileName]);
      this.pinned.clear();
      this.abort = new AbortController();
      this.db = db;
      this.acceptedStart = { firstIndex: stored.firstIndex, compactedTerm: stored.compactedTerm };
      this.durableFirstIndex = stored.firstIndex;
      this.durableLastIndex = stored.firstIndex + stored.entries.length - 1;
      this.acceptedLastIndex = this.durableLastIndex;
      this.logger.info("level storage opened", {
        location: this.location,
        nodeId: this.nodeId,
        clusterId: this.clusterId,
        firstIndex: stored.firstIndex,
        entries: stored.entries.length,
        snapshotIndex: stored.snapshot?.meta.index ?? null,
      });
      return stored;
    } catch (err) {
      await db.close().catch(noop);
      this.logger.warn("level storage refused to open", { location: this.location, error: String(err) });
      if (isRaftError(err)) throw err;
      throw new RaftError("STORAGE", `reading LevelDB at ${this.location} failed`, { cause: err });
    }
  }
}

function noop(): void {}

/** Validates a snapshot given by a caller: malformed input is the caller's bug. */
function checkSnapshot(snapshot: Snapshot): void {
  if (typeof snapshot !== "object" || snapshot === null) throw new TypeError("snapshot must be an object");
  checkSnapshotMeta(snapshot.meta);
  const data = snapshot.data as Partial<SnapshotData> | null;
  if (typeof data !== "object" || data === null || typeof data.read !== "function" || !isU64Safe(data.byteLength)) {
    // Bytes in memory were the old form: say how to pass them now.
    throw new TypeError("snapshot.data must be a SnapshotData (a byteLength and a read method); wrap bytes with snapshotDataOf()");
  }
}

function checkName(value: unknown, option: string): string {
  if (typeof value !== "string" || value === "") throw new TypeError(`LevelStorageOptions.${option} must be a non-empty string`);
  if (utf8.encode(value).byteLength > MAX_STRING_BYTES) {
    throw new RangeError(`LevelStorageOptions.${option} must be at most ${MAX_STRING_BYTES} bytes of UTF-8`);
  }
  return value;
}

