/**
 * The binary encoding of a log entry, as storage adapters write it to disk.
 *
 * Layout (all integers big-endian), format version 1:
 *
 * ```
 * offset  size  field
 * 0       1     format version (1)
 * 1       1     type: 1 command, 2 noop, 3 config
 * 2       8     term   (unsigned, at most Number.MAX_SAFE_INTEGER)
 * 10      8     index  (unsigned, 1 .. Number.MAX_SAFE_INTEGER)
 * 18      4     data length N
 * 22      N     data (the entry's bytes as given: storage never sees commands)
 * ```
 *
 * The explicit data length makes a truncated or padded record detectable: the record
 * must be exactly 22 + N bytes. Bytes read back from disk are untrusted, so every
 * length is checked before it is read, and every failure is a `CORRUPT` RaftError.
 */
import type { Entry, EntryType } from "../core/messages.js";
import { RaftError } from "../errors.js";

/**
 * The entry format version this module writes, and the only one it reads.
 * @internal
 */
export const ENTRY_FORMAT_VERSION = 1;

/** Size of the fixed header before the data. */
const HEADER_BYTES = 22;
/** Data length is a u32. */
const MAX_DATA_BYTES = 0xffff_ffff;
/** 2^32, to split a safe integer into two u32 halves without BigInt. */
const U32 = 0x1_0000_0000;
/** The high u32 half of Number.MAX_SAFE_INTEGER (2^53 - 1). */
const MAX_SAFE_HIGH = 0x1f_ffff;

// Codes start at 1 so that zeroed bytes never decode as a valid type.
const TYPE_CODES: Readonly<Record<EntryType, number>> = { command: 1, noop: 2, config: 3 };
const TYPES_BY_CODE: readonly (EntryType | undefined)[] = [undefined, "command", "noop", "config"];

/**
 * Writes `value` as an unsigned 64-bit big-endian integer at `offset`.
 * The caller guarantees a safe non-negative integer.
 * @internal
 */
export function writeU64(view: DataView, offset: number, value: number): void {
  view.setUint32(offset, Math.floor(value / U32));
  view.setUint32(offset + 4, value >>> 0);
}

/**
 * Reads an unsigned 64-bit big-endian integer at `offset`, or returns `undefined` when
 * it exceeds `Number.MAX_SAFE_INTEGER` (which no raftkit writer produces).
 * The caller guarantees `offset + 8 <= view.byteLength`.
 * @internal
 */
export function readU64(view: DataView, offset: number): number | undefined {
  const high = view.getUint32(offset);
  if (high > MAX_SAFE_HIGH) return undefined;
  return high * U32 + view.getUint32(offset + 4);
}

/**
 * Whether `value` fits the on-disk u64 fields: a safe non-negative integer.
 * @internal
 */
export function isU64Safe(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

/**
 * Encodes one entry. Throws `TypeError`/`RangeError` for an entry that is not well formed
 * (a bug in the caller, not a storage failure).
 * @internal
 */
export function encodeEntry(entry: Entry): Uint8Array {
  // hasOwn: a type such as "toString" must not find Object.prototype's members.
  const code = Object.hasOwn(TYPE_CODES, entry.type) ? TYPE_CODES[entry.type] : undefined;
  if (code === undefined) {
    throw new TypeError(`entry.type must be "command", "noop" or "config" (got ${String(entry.type)})`);
  }
  if (!isU64Safe(entry.term)) throw new RangeError(`entry.term must be a safe non-negative integer (got ${entry.term})`);
  if (!isU64Safe(entry.index) || entry.index < 1) {
    throw new RangeError(`entry.index must be a safe integer >= 1 (got ${entry.index})`);
  }
  if (!(entry.data instanceof Uint8Array)) throw new TypeError(`entry.data must be a Uint8Array (index ${entry.index})`);
  if (entry.data.byteLength > MAX_DATA_BYTES) {
    throw new RangeError(`entry.data is ${entry.data.byteLength} bytes; at most ${MAX_DATA_BYTES} fit (index ${entry.index})`);
  }
  const out = new Uint8Array(HEADER_BYTES + entry.data.byteLength);
  const view = new DataView(out.buffer);
  view.setUint8(0, ENTRY_FORMAT_VERSION);
  view.setUint8(1, code);
  writeU64(view, 2, entry.term);
  writeU64(view, 10, entry.index);
  view.setUint32(18, entry.data.byteLength);
  out.set(entry.data, HEADER_BYTES);
  return out;
}

/**
 * Decodes bytes made by {@link encodeEntry}. The returned `data` is a copy, so it does
 * not pin the (possibly larger) buffer the bytes came in.
 * @throws RaftError `CORRUPT` for truncated or padded input, an unknown format version
 * or type, or an out-of-range term or index.
 * @internal
 */
export function decodeEntry(bytes: Uint8Array): Entry {
  if (bytes.byteLength < HEADER_BYTES) {
    throw corrupt(`entry record is ${bytes.byteLength} bytes, shorter than its ${HEADER_BYTES}-byte header`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint8(0);
  if (version !== ENTRY_FORMAT_VERSION) throw corrupt(`entry record has unknown format version ${version}`);
  const type = TYPES_BY_CODE[view.getUint8(1)];
  if (type === undefined) throw corrupt(`entry record has unknown type code ${view.getUint8(1)}`);
  const term = readU64(view, 2);
  if (term === undefined) throw corrupt("entry record has a term beyond Number.MAX_SAFE_INTEGER");
  const index = readU64(view, 10);
  if (index === undefined || index < 1) throw corrupt("entry record has an index outside 1..Number.MAX_SAFE_INTEGER");
  const length = view.getUint32(18);
  if (HEADER_BYTES + length !== bytes.byteLength) {
    throw corrupt(`entry record ${index} declares ${length} data bytes but holds ${bytes.byteLength - HEADER_BYTES}`);
  }
  const data = new Uint8Array(length);
  data.set(bytes.subarray(HEADER_BYTES));
  return { index, term, type, data };
}

function corrupt(message: string): RaftError {
  return new RaftError("CORRUPT", message);
}
