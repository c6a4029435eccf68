/**
 * The keys and record encodings of LevelStorage's LevelDB store, format version 2
 * (docs/storage-format.md is the long form). Keys and values are raw bytes; integers are
 * big-endian; strings are UTF-8 with a u16 length prefix.
 *
 * ```
 * key                      value
 * "m"            (0x6d)    identity: "RAFTKIT" magic (7 bytes), u8 format version (2),
 *                          u16 len + nodeId, u16 len + clusterId
 * "h"            (0x68)    hard state: u8 version (1), u64 term, u64 commit,
 *                          u8 has-vote (0/1) [, u16 len + vote]
 * "f"            (0x66)    log start: u64 first index, u64 compacted term
 * "s"            (0x73)    snapshot: u8 version (1), u64 index, u64 term, config,
 *                          u16 len + file name, u64 byte length, 32-byte SHA-256
 * "e" (0x65) + u64 index   one entry, encoded by entry-encoding.ts
 * ```
 *
 * Everything decoded here comes from disk and is untrusted: every failure is `CORRUPT`,
 * except the identity checks that mean "not this store" (`STORAGE`).
 */
import type { ClusterConfig, HardState, SnapshotMeta } from "../core/messages.js";
import { RaftError } from "../errors.js";
import { isU64Safe, readU64, writeU64 } from "./entry-encoding.js";

/**
 * The store's on-disk format version (the identity record's). Version 2 added the
 * snapshot record and the compacted term in "f"; a version 1 reader would take a
 * compacted store for a log without its prefix, hence the bump.
 * @internal
 */
export const FORMAT_VERSION = 2;
const HARD_STATE_VERSION = 1;
const SNAPSHOT_RECORD_VERSION = 1;
const MAGIC = new TextEncoder().encode("RAFTKIT");
/** The longest string a u16 length prefix can describe. @internal */
export const MAX_STRING_BYTES = 0xffff;
/** A config's id lists carry a u16 count. */
const MAX_IDS = 0xffff;
/** SHA-256 digest length. @internal */
export const CHECKSUM_BYTES = 32;

/** @internal */
export const IDENTITY_KEY = Uint8Array.of(0x6d); // "m"
/** @internal */
export const HARD_STATE_KEY = Uint8Array.of(0x68); // "h"
/** @internal */
export const LOG_START_KEY = Uint8Array.of(0x66); // "f"
/** @internal */
export const SNAPSHOT_KEY = Uint8Array.of(0x73); // "s"
const ENTRY_PREFIX = 0x65; // "e"; entries lie strictly between "e" and "f"
/** The key range that holds exactly the entry records. @internal */
export const ENTRY_RANGE = { gt: Uint8Array.of(ENTRY_PREFIX), lt: Uint8Array.of(ENTRY_PREFIX + 1) };

type Bytes = Uint8Array;

const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** The key of entry `index`: "e" + u64, so that LevelDB's byte order is index order. @internal */
export function entryKey(index: number): Bytes {
  const key = new Uint8Array(9);
  key[0] = ENTRY_PREFIX;
  writeU64(new DataView(key.buffer), 1, index);
  return key;
}

/** The index in an entry key, or undefined for a malformed key. @internal */
export function entryKeyIndex(key: Bytes): number | undefined {
  return key.byteLength === 9 ? readU64(new DataView(key.buffer, key.byteOffset, 9), 1) : undefined;
}

/** Encodes the identity record. @internal */
export function encodeIdentity(nodeId: string, clusterId: string): Bytes {
  const w = new Writer();
  w.bytes(MAGIC);
  w.u8(FORMAT_VERSION);
  w.string(nodeId);
  w.string(clusterId);
  return w.finish();
}

/** Reads the identity record: wrong magic means "not ours" (STORAGE), bad structure CORRUPT. @internal */
export function decodeIdentity(bytes: Bytes, location: string): { nodeId: string; clusterId: string } {
  if (bytes.byteLength < MAGIC.byteLength || MAGIC.some((b, i) => bytes[i] !== b)) {
    throw new RaftError("STORAGE", `${location} is not a raftkit store (its identity record has no raftkit magic)`);
  }
  const reader = new Reader(bytes, MAGIC.byteLength, "identity record");
  const version = reader.u8();
  if (version !== FORMAT_VERSION) {
    // Version 1 never shipped, so it is refused rather than migrated.
    throw new RaftError("STORAGE", `${location} has storage format version ${version}; this raftkit reads version ${FORMAT_VERSION}`);
  }
  const nodeId = reader.string();
  const clusterId = reader.string();
  reader.end();
  return { nodeId, clusterId };
}

/** Validates and encodes a hard state; bad values are the caller's bug (TypeError/RangeError). @internal */
export function encodeHardState(hs: HardState): Bytes {
  if (!isU64Safe(hs.term)) throw new RangeError(`hardState.term must be a safe non-negative integer (got ${hs.term})`);
  if (!isU64Safe(hs.commit)) throw new RangeError(`hardState.commit must be a safe non-negative integer (got ${hs.commit})`);
  if (hs.vote !== null && typeof hs.vote !== "string") throw new TypeError("hardState.vote must be a string or null");
  if (hs.vote !== null && utf8.encode(hs.vote).byteLength > MAX_STRING_BYTES) {
    throw new RangeError(`hardState.vote is longer than ${MAX_STRING_BYTES} bytes`);
  }
  const w = new Writer();
  w.u8(HARD_STATE_VERSION);
  w.u64(hs.term);
  w.u64(hs.commit);
  w.u8(hs.vote === null ? 0 : 1);
  if (hs.vote !== null) w.string(hs.vote);
  return w.finish();
}

/** @internal */
export function decodeHardState(bytes: Bytes): HardState {
  const reader = new Reader(bytes, 0, "hard state record");
  const version = reader.u8();
  if (version !== HARD_STATE_VERSION) throw new RaftError("CORRUPT", `hard state record has unknown version ${version}`);
  const term = reader.u64();
  const commit = reader.u64();
  const hasVote = reader.u8();
  if (hasVote > 1) throw new RaftError("CORRUPT", `hard state record has a bad vote flag ${hasVote}`);
  const vote = hasVote === 1 ? reader.string() : null;
  reader.end();
  return { term, vote, commit };
}

/**
 * Where the log starts: the first index it may hold and the term of the entry just
 * before it (compacted away; 0 when nothing was).
 * @internal
 */
export interface LogStart {
  readonly firstIndex: number;
  readonly compactedTerm: number;
}

/** @internal */
export function encodeLogStart(start: LogStart): Bytes {
  const w = new Writer();
  w.u64(start.firstIndex);
  w.u64(start.compactedTerm);
  return w.finish();
}

/** @internal */
export function decodeLogStart(bytes: Bytes): LogStart {
  const reader = new Reader(bytes, 0, "log start record");
  const firstIndex = reader.u64();
  const compactedTerm = reader.u64();
  reader.end();
  if (firstIndex < 1) throw new RaftError("CORRUPT", "log start record has first index 0");
  return { firstIndex, compactedTerm };
}

/**
 * The snapshot record: what the snapshot covers and how to find and verify its data file.
 * @internal
 */
export interface SnapshotRecord {
  readonly meta: SnapshotMeta;
  /** The data file's name inside the store's directory (never a path). */
  readonly fileName: string;
  /** The data file's exact length in bytes. */
  readonly byteLength: number;
  /** SHA-256 of the data file. */
  readonly checksum: Bytes;
}

/**
 * Validates a snapshot's metadata as given by a caller: bad values are the caller's bug
 * (TypeError/RangeError), caught before anything is queued.
 * @internal
 */
export function checkSnapshotMeta(meta: SnapshotMeta): void {
  if (typeof meta !== "object" || meta === null) throw new TypeError("snapshot.meta must be an object");
  if (!isU64Safe(meta.index)) throw new RangeError(`snapshot.meta.index must be a safe non-negative integer (got ${meta.index})`);
  if (!isU64Safe(meta.term)) throw new RangeError(`snapshot.meta.term must be a safe non-negative integer (got ${meta.term})`);
  const config = meta.config;
  if (typeof config !== "object" || config === null) throw new TypeError("snapshot.meta.config must be an object");
  for (const field of ["voters", "learners", "outgoingVoters"] as const) {
    const ids: unknown = config[field];
    if (!Array.isArray(ids)) throw new TypeError(`snapshot.meta.config.${field} must be an array of node ids`);
    if (ids.length > MAX_IDS) throw new RangeError(`snapshot.meta.config.${field} has more than ${MAX_IDS} ids`);
    for (const id of ids) {
      if (typeof id !== "string") throw new TypeError(`snapshot.meta.config.${field} must hold strings`);
      if (utf8.encode(id).byteLength > MAX_STRING_BYTES) throw new RangeError(`snapshot.meta.config.${field} holds an id longer than ${MAX_STRING_BYTES} bytes`);
    }
  }
}

/** Encodes a snapshot record whose meta passed {@link checkSnapshotMeta}. @internal */
export function encodeSnapshotRecord(record: SnapshotRecord): Bytes {
  const w = new Writer();
  w.u8(SNAPSHOT_RECORD_VERSION);
  w.u64(record.meta.index);
  w.u64(record.meta.term);
  w.idList(record.meta.config.voters);
  w.idList(record.meta.config.learners);
  w.idList(record.meta.config.outgoingVoters);
  w.string(record.fileName);
  w.u64(record.byteLength);
  w.bytes(record.checksum);
  return w.finish();
}

/** @internal */
export function decodeSnapshotRecord(bytes: Bytes): SnapshotRecord {
  const reader = new Reader(bytes, 0, "snapshot record");
  const version = reader.u8();
  if (version !== SNAPSHOT_RECORD_VERSION) throw new RaftError("CORRUPT", `snapshot record has unknown version ${version}`);
  const index = reader.u64();
  const term = reader.u64();
  const config: ClusterConfig = { voters: reader.idList(), learners: reader.idList(), outgoingVoters: reader.idList() };
  const fileName = reader.string();
  const byteLength = reader.u64();
  const checksum = reader.bytes(CHECKSUM_BYTES);
  reader.end();
  return { meta: { index, term, config }, fileName, byteLength, checksum };
}

/** Appends fields to a growing list of chunks; `finish()` joins them. */
class Writer {
  private readonly chunks: Bytes[] = [];
  private length = 0;
  private push(chunk: Bytes): void {
    this.chunks.push(chunk);
    this.length += chunk.byteLength;
  }
  u8(value: number): void {
    this.push(Uint8Array.of(value));
  }
  u16(value: number): void {
    this.push(Uint8Array.of(value >>> 8, value & 0xff));
  }
  u64(value: number): void {
    const out = new Uint8Array(8);
    writeU64(new DataView(out.buffer), 0, value);
    this.push(out);
  }
  bytes(value: Bytes): void {
    this.push(value);
  }
  /** The caller checked the length (at most MAX_STRING_BYTES of UTF-8). */
  string(value: string): void {
    const encoded = utf8.encode(value);
    this.u16(encoded.byteLength);
    this.push(encoded);
  }
  idList(ids: readonly string[]): void {
    this.u16(ids.length);
    for (const id of ids) this.string(id);
  }
  finish(): Bytes {
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const chunk of this.chunks) {
      out.set(chunk, at);
      at += chunk.byteLength;
    }
    return out;
  }
}

/** A bounds-checked reader over untrusted bytes: every failure is CORRUPT. */
class Reader {
  private readonly view: DataView;
  constructor(
    private readonly data: Bytes,
    private at: number,
    private readonly what: string,
  ) {
    this.view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  }
  private need(n: number): void {
    if (this.at + n > this.data.byteLength) throw new RaftError("CORRUPT", `${this.what} is truncated (${this.data.byteLength} bytes)`);
  }
  u8(): number {
    this.need(1);
    return this.view.getUint8(this.at++);
  }
  u16(): number {
    this.need(2);
    const value = this.view.getUint16(this.at);
    this.at += 2;
    return value;
  }
  u64(): number {
    this.need(8);
    const value = readU64(this.view, this.at);
    if (value === undefined) throw new RaftError("CORRUPT", `${this.what} holds a number beyond Number.MAX_SAFE_INTEGER`);
    this.at += 8;
    return value;
  }
  /** A copy, so that the result does not pin LevelDB's buffer. */
  bytes(length: number): Bytes {
    this.need(length);
    // Not slice(): on a Buffer (as LevelDB may hand back) slice() is a view, not a copy.
    const out = new Uint8Array(length);
    out.set(this.data.subarray(this.at, this.at + length));
    this.at += length;
    return out;
  }
  string(): string {
    const length = this.u16();
    this.need(length);
    const slice = this.data.subarray(this.at, this.at + length);
    this.at += length;
    try {
      return strictUtf8.decode(slice);
    } catch (err) {
      throw new RaftError("CORRUPT", `${this.what} holds invalid UTF-8`, { cause: err });
    }
  }
  idList(): string[] {
    const count = this.u16();
    const ids: string[] = [];
    for (let k = 0; k < count; k++) ids.push(this.string());
    return ids;
  }
  end(): void {
    if (this.at !== this.data.byteLength) throw new RaftError("CORRUPT", `${this.what} has ${this.data.byteLength - this.at} trailing bytes`);
  }
}
