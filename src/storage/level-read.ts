/**
 * Opening a LevelStorage store: refusing what is not one, creating a new one, and reading
 * and validating everything an existing one holds (the records, the log, the snapshot
 * file), then removing what a crash left behind. Everything read is untrusted.
 *
 * The snapshot file is verified by streaming it through SHA-256 and then served through
 * the descriptor it was verified through, never read into memory whole.
 */
import { readdir } from "node:fs/promises";
import type { ClassicLevel } from "classic-level";
import type { Entry, HardState } from "../core/messages.js";
import type { Snapshot, StoredState } from "./storage.js";
import { RaftError } from "../errors.js";
import type { Logger } from "../logger.js";
import { decodeEntry } from "./entry-encoding.js";
import {
  ENTRY_RANGE,
  HARD_STATE_KEY,
  IDENTITY_KEY,
  LOG_START_KEY,
  SNAPSHOT_KEY,
  decodeHardState,
  decodeIdentity,
  decodeLogStart,
  decodeSnapshotRecord,
  encodeHardState,
  encodeIdentity,
  encodeLogStart,
  entryKey,
  entryKeyIndex,
  type LogStart,
} from "./level-records.js";
import { findStraySnapshotFiles, openSnapshotFile, removeFile, type SnapshotFileInfo } from "./snapshot-file.js";
import { fileSnapshotData } from "./snapshot-file-data.js";

type Bytes = Uint8Array;

/** The files LevelDB itself creates; a directory holding only these is a (partial) LevelDB. */
const LEVELDB_FILE = /^(CURRENT|LOCK|LOG|LOG\.old|MANIFEST-\d+|\d+\.(log|ldb|sst|dbtmp))$/;

const EMPTY_HARD_STATE: HardState = { term: 0, vote: null, commit: 0 };
/** @internal */
export const EMPTY_LOG_START: LogStart = { firstIndex: 1, compactedTerm: 0 };

/**
 * Who is opening a store, and how.
 * @internal
 */
export interface StoreOwner {
  readonly location: string;
  readonly nodeId: string;
  readonly clusterId: string;
  readonly sync: boolean;
  readonly logger: Logger;
}

/**
 * What a store holds, and its snapshot file as the record describes it (undefined
 * without a snapshot). `stored.snapshot.data`, when present, reads that file.
 * @internal
 */
export interface StoreContents {
  readonly stored: StoredState;
  readonly snapshotFile: SnapshotFileInfo | undefined;
}

/**
 * Refuses a directory that holds files LevelDB did not make, before LevelDB writes into it.
 * A directory with only LevelDB's files and no CURRENT is a creation interrupted by a crash.
 * (Snapshot files appear only after creation completed, so they never meet this check.)
 * @internal
 */
export async function checkLocation(location: string): Promise<void> {
  let names: string[];
  try {
    names = await readdir(location);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    throw new RaftError("STORAGE", `cannot read the storage directory ${location}`, { cause: err });
  }
  if (names.includes("CURRENT")) return;
  const foreign = names.filter((n) => !LEVELDB_FILE.test(n));
  if (foreign.length > 0) {
    throw new RaftError(
      "STORAGE",
      `${location} is not a raftkit store: it holds files that are not LevelDB's (${foreign.slice(0, 3).join(", ")}${foreign.length > 3 ? ", …" : ""})`,
    );
  }
}

/**
 * Maps a classic-level open failure to a RaftError: a lock held elsewhere is `STORAGE`,
 * LevelDB's own corruption report `CORRUPT`.
 * @internal
 */
export function openError(err: unknown, location: string): RaftError {
  const cause = (err as { cause?: { code?: unknown } } | undefined)?.cause;
  if (cause?.code === "LEVEL_LOCKED") {
    return new RaftError("STORAGE", `${location} is locked: another LevelStorage instance or process has it open`, { cause: err });
  }
  if (cause?.code === "LEVEL_CORRUPTION") {
    return new RaftError("CORRUPT", `LevelDB reports corruption at ${location}`, { cause: err });
  }
  return new RaftError("STORAGE", `opening LevelDB at ${location} failed`, { cause: err });
}

/**
 * Reads an open store, or creates it when the database is empty. Writes nothing unless it
 * creates the store.
 * @throws RaftError `STORAGE` for a database that is not this node's raftkit store,
 * `CORRUPT` for a record, entry or snapshot file that fails validation.
 * @internal
 */
export async function readOrCreate(db: ClassicLevel<Bytes, Bytes>, owner: StoreOwner): Promise<StoreContents> {
  const { location } = owner;
  const identity = await db.get(IDENTITY_KEY);
  if (identity === undefined) {
    if ((await db.keys({ limit: 1 }).all()).length > 0) {
      throw new RaftError("STORAGE", `${location} is a LevelDB database but not a raftkit store (no identity record)`);
    }
    await db.batch(
      [
        { type: "put", key: IDENTITY_KEY, value: encodeIdentity(owner.nodeId, owner.clusterId) },
        { type: "put", key: LOG_START_KEY, value: encodeLogStart(EMPTY_LOG_START) },
        { type: "put", key: HARD_STATE_KEY, value: encodeHardState(EMPTY_HARD_STATE) },
      ],
      { sync: owner.sync },
    );
    owner.logger.info("level storage created", { location, nodeId: owner.nodeId, clusterId: owner.clusterId });
    return { stored: { hardState: EMPTY_HARD_STATE, entries: [], ...EMPTY_LOG_START, snapshot: null }, snapshotFile: undefined };
  }
  const found = decodeIdentity(identity, location);
  if (found.nodeId !== owner.nodeId || found.clusterId !== owner.clusterId) {
    throw new RaftError(
      "STORAGE",
      `${location} belongs to node "${found.nodeId}" of cluster "${found.clusterId}", not node "${owner.nodeId}" of cluster "${owner.clusterId}"`,
    );
  }
  const hardStateBytes = await db.get(HARD_STATE_KEY);
  if (hardStateBytes === undefined) throw new RaftError("CORRUPT", `${location}: the hard state record is missing`);
  const hardState = decodeHardState(hardStateBytes);
  const startBytes = await db.get(LOG_START_KEY);
  if (startBytes === undefined) throw new RaftError("CORRUPT", `${location}: the log start record is missing`);
  const { firstIndex, compactedTerm } = decodeLogStart(startBytes);

  const snapshotBytes = await db.get(SNAPSHOT_KEY);
  const record = snapshotBytes === undefined ? undefined : decodeSnapshotRecord(snapshotBytes);
  if (record === undefined && (firstIndex !== 1 || compactedTerm !== 0)) {
    // Only a snapshot step moves the log start, and it writes the record in the same batch.
    throw new RaftError("CORRUPT", `${location}: the log starts at ${firstIndex} but there is no snapshot record`);
  }

  // Entries below the log start are compacted garbage (their deletion runs after the
  // compaction commits, and a crash may cut it short): skipped here, deleted by the opener.
  const entries: Entry[] = [];
  for await (const [key, value] of db.iterator({ gte: entryKey(firstIndex), lt: ENTRY_RANGE.lt })) {
    const expected = firstIndex + entries.length;
    const index = entryKeyIndex(key);
    if (index === undefined) throw new RaftError("CORRUPT", `${location}: malformed entry key of ${key.byteLength} bytes`);
    if (index !== expected) {
      throw new RaftError("CORRUPT", `${location}: the log has a gap: entry ${index} where ${expected} was expected`);
    }
    let entry: Entry;
    try {
      entry = decodeEntry(value);
    } catch (err) {
      throw new RaftError("CORRUPT", `${location}: entry ${index} is undecodable`, { cause: err });
    }
    if (entry.index !== index) throw new RaftError("CORRUPT", `${location}: entry stored under ${index} says index ${entry.index}`);
    entries.push(entry);
  }

  // Opened last, once nothing else can fail: the handle then always reaches the caller,
  // which owns its descriptor from here on.
  let snapshot: Snapshot | null = null;
  let snapshotFile: SnapshotFileInfo | undefined;
  if (record !== undefined) {
    const { meta, ...file } = record;
    const fd = await openSnapshotFile(location, file);
    snapshot = { meta, data: fileSnapshotData(fd, file.byteLength, file.fileName) };
    snapshotFile = file;
  }
  return { stored: { hardState, entries, firstIndex, compactedTerm, snapshot }, snapshotFile };
}

/**
 * Removes what a crash during a snapshot step left: temp files, and snapshot files that
 * the committed record does not name (written but never committed, or replaced but not
 * yet removed). Returns the generation for the next snapshot file, past every file seen.
 * A file that cannot be removed is only logged: it is never read, and never reused by name.
 * @internal
 */
export async function removeStraySnapshotFiles(location: string, keep: string | undefined, logger: Logger): Promise<number> {
  const { stray, maxGeneration } = await findStraySnapshotFiles(location, keep);
  for (const name of stray) {
    try {
      await removeFile(location, name);
      logger.info("level storage removed a leftover snapshot file", { location, file: name });
    } catch (err) {
      logger.warn("level storage could not remove a leftover snapshot file", { location, file: name, error: String(err) });
    }
  }
  return maxGeneration + 1;
}
