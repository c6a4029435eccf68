// The byte format of KvStateMachine snapshots, written and read in pieces so that neither
// side ever holds the whole snapshot as one buffer or one string.
//
// Version 2: newline-delimited JSON in UTF-8. Every line, the last one included, ends
// with "\n".
//
//   {"version":2,"lastApplied":{"index":I,"term":T},"size":N}\n
//   [["key1","value1"],["key2","value2"],...]\n      (at most ENTRIES_PER_LINE pairs)
//   [["key5001","value5001"],...]\n
//
// The first line is the header; every other line is a non-empty JSON array of
// [key, value] string pairs, keys strictly ascending across the whole snapshot (the
// order of KvStateMachine's sorted key array). `size` is the number of pairs: with the
// final newline it lets a reader tell a complete snapshot from one cut short, even when
// the cut falls on a line boundary.
//
// Lines are split at the byte level, before decoding, which is safe: JSON.stringify
// escapes every control character, so it never emits a raw 0x0A, and in UTF-8 the byte
// 0x0A is only ever the character U+000A (the bytes of a multi-byte sequence are all
// >= 0x80). A line is therefore whole, valid UTF-8 however the chunks cut it.
//
// Version 1 (one JSON document holding every entry) is not read: it needed the whole
// snapshot in memory, and no released version of raftkit promised to read it.
import type { SnapshotData } from "../core/messages.js";
import { RaftError } from "../errors.js";
import { snapshotChunks } from "../snapshot-data.js";

/** The snapshot format version this build writes and the only one it reads. */
export const KV_SNAPSHOT_VERSION = 2;

/**
 * Entries per line, and so per chunk: each line is serialised and encoded between two
 * yields to the event loop, so this bounds how long one turn of serialisation blocks.
 */
export const ENTRIES_PER_LINE = 5_000;

/** The longest header line read before giving up on finding one (a real one is about 80 bytes). */
const MAX_HEADER_BYTES = 4096;

const NEWLINE = 0x0a;

/** The index and term of the last entry a snapshot's state includes. */
export interface KvSnapshotPosition {
  readonly index: number;
  readonly term: number;
}

/**
 * A state captured by `KvStateMachine.snapshot()`, for {@link encodeKvSnapshot} to
 * serialise later.
 */
export interface KvSnapshotCapture {
  /** The last applied entry at the capture. */
  readonly lastApplied: KvSnapshotPosition;
  /** The keys at the capture, strictly ascending; never changed afterwards. */
  readonly keys: readonly string[];
  /** The value `key` had at the capture (called while the map goes on changing). */
  readonly valueAt: (key: string) => string;
}

/** A decoded snapshot: a fresh map and key array, ready to be swapped in. */
export interface KvSnapshotState {
  /** The last applied entry that the state includes. */
  readonly lastApplied: KvSnapshotPosition;
  /** Every entry. */
  readonly values: Map<string, string>;
  /** The keys of `values`, strictly ascending. */
  readonly keys: string[];
}

/**
 * Serialises a captured state in the version-2 format: the header line, then one line
 * per {@link ENTRIES_PER_LINE} entries, each one chunk, with a yield to the event loop
 * before each entry line so that the node goes on applying commands meanwhile.
 * @param capture - The state to write, as captured at the snapshot call.
 * @returns The chunks, in order; each ends with a newline.
 */
export async function* encodeKvSnapshot(capture: KvSnapshotCapture): AsyncGenerator<Uint8Array, void, undefined> {
  const { lastApplied, keys, valueAt } = capture;
  const encoder = new TextEncoder();
  const header = { version: KV_SNAPSHOT_VERSION, lastApplied: { index: lastApplied.index, term: lastApplied.term }, size: keys.length };
  yield encoder.encode(JSON.stringify(header) + "\n");
  for (let start = 0; start < keys.length; start += ENTRIES_PER_LINE) {
    await yieldToEventLoop();
    const end = Math.min(keys.length, start + ENTRIES_PER_LINE);
    const pairs: [string, string][] = new Array(end - start);
    for (let i = start; i < end; i++) pairs[i - start] = [keys[i]!, valueAt(keys[i]!)];
    // Encoded at once, so that no step between two yields handles more than one line.
    yield encoder.encode(JSON.stringify(pairs) + "\n");
  }
}

/**
 * Reads a version-2 snapshot in pieces (`snapshotChunks`), validating it line by line
 * into a new map and key array; the caller swaps them in only when this resolves.
 * @param data - The stored snapshot.
 * @returns The decoded state.
 * @throws TypeError when `data` is not a `SnapshotData` handle (e.g. raw bytes).
 * @throws RaftError `CORRUPT` when the bytes are not such a snapshot (empty, truncated,
 * trailing garbage, another version, invalid UTF-8 or JSON, keys out of order or twice,
 * a value that is not a string, an entry count that differs from the header's); any
 * error of `data.read` as it is.
 */
export async function decodeKvSnapshot(data: SnapshotData): Promise<KvSnapshotState> {
  requireSnapshotData(data);
  if (data.byteLength === 0) throw corrupt("the snapshot is empty");
  const lines = new LineSplitter();
  const parser = new SnapshotParser();
  for await (const chunk of snapshotChunks(data)) {
    for (const line of lines.push(chunk)) parser.line(line);
    // Without this bound, garbage with no newline would be buffered whole before failing.
    if (!parser.hasHeader && lines.pendingBytes > MAX_HEADER_BYTES) throw missingHeader(lines.rest());
  }
  const rest = lines.rest();
  if (rest.byteLength > 0) {
    if (!parser.hasHeader) throw missingHeader(rest);
    throw corrupt(`line ${parser.lineCount + 1} has no final newline: the snapshot is truncated or has trailing bytes`);
  }
  return parser.finish();
}

/**
 * Cuts a stream of chunks into lines at each 0x0A byte. A line that lies within one
 * chunk is returned as a view of it (no copy); only a line that spans chunks is copied.
 */
class LineSplitter {
  private pending: Uint8Array[] = [];
  /** Bytes held of a line whose newline has not arrived yet. */
  pendingBytes = 0;

  /**
   * Takes the next chunk.
   * @returns The lines it completes, without their newlines.
   */
  push(chunk: Uint8Array): Uint8Array[] {
    const lines: Uint8Array[] = [];
    let start = 0;
    for (let nl = chunk.indexOf(NEWLINE); nl !== -1; nl = chunk.indexOf(NEWLINE, start)) {
      lines.push(this.takePending(chunk.subarray(start, nl)));
      start = nl + 1;
    }
    if (start < chunk.byteLength) {
      this.pending.push(chunk.subarray(start));
      this.pendingBytes += chunk.byteLength - start;
    }
    return lines;
  }

  /** The bytes after the last newline (empty when the stream ended with one). */
  rest(): Uint8Array {
    return this.takePending(new Uint8Array(0));
  }

  /** The pending bytes followed by `tail`, as one array; empties the pending list. */
  private takePending(tail: Uint8Array): Uint8Array {
    if (this.pending.length === 0) return tail;
    const out = new Uint8Array(this.pendingBytes + tail.byteLength);
    let at = 0;
    for (const part of this.pending) {
      out.set(part, at);
      at += part.byteLength;
    }
    out.set(tail, at);
    this.pending = [];
    this.pendingBytes = 0;
    return out;
  }
}

interface Header {
  readonly lastApplied: KvSnapshotPosition;
  readonly size: number;
}

/** Validates a snapshot's lines in order, building the state as it goes. */
class SnapshotParser {
  private header: Header | null = null;
  private readonly values = new Map<string, string>();
  private readonly keys: string[] = [];
  private lines = 0;
  // fatal: invalid UTF-8 is corruption, not a U+FFFD to restore silently.
  private readonly decoder = new TextDecoder("utf-8", { fatal: true });

  get hasHeader(): boolean {
    return this.header !== null;
  }

  get lineCount(): number {
    return this.lines;
  }

  /** Takes the next line (without its newline). */
  line(bytes: Uint8Array): void {
    this.lines++;
    const value = this.parseLine(bytes);
    if (this.header === null) this.header = readHeader(value);
    else this.addEntries(value, this.header);
  }

  /** The state, once every line was taken; checks that none is missing. */
  finish(): KvSnapshotState {
    const header = this.header!; // decodeKvSnapshot calls this only after a header line
    if (this.keys.length !== header.size) {
      throw corrupt(`the header announces ${header.size} entries but the snapshot holds ${this.keys.length}: it is truncated`);
    }
    return { lastApplied: header.lastApplied, values: this.values, keys: this.keys };
  }

  private parseLine(bytes: Uint8Array): unknown {
    let text: string;
    try {
      text = this.decoder.decode(bytes);
    } catch (cause) {
      throw corrupt(`line ${this.lines} is not valid UTF-8`, cause);
    }
    try {
      return JSON.parse(text);
    } catch (cause) {
      throw corrupt(`line ${this.lines} is not JSON`, cause);
    }
  }

  private addEntries(value: unknown, header: Header): void {
    if (!Array.isArray(value) || value.length === 0) throw corrupt(`line ${this.lines} is not a non-empty array of [key, value] pairs`);
    if (this.keys.length + value.length > header.size) {
      throw corrupt(`line ${this.lines} takes the entry count past the ${header.size} that the header announces`);
    }
    for (const pair of value as unknown[]) {
      const n = this.keys.length;
      if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== "string" || typeof pair[1] !== "string") {
        throw corrupt(`entry ${n} (line ${this.lines}) is not a [key, value] pair of strings`);
      }
      const key: string = pair[0];
      // The sorted-keys invariant is rebuilt from this order, so it must be strict; and
      // "" sorts first, so only the first key can be the (never valid) empty key.
      if (n === 0 ? key.length === 0 : !(this.keys[n - 1]! < key)) {
        const why = n === 0 ? "is empty" : `does not sort after ${quote(this.keys[n - 1]!)} (out of order, or twice)`;
        throw corrupt(`entry ${n} (line ${this.lines}): key ${quote(key)} ${why}`);
      }
      this.keys.push(key);
      this.values.set(key, pair[1] as string);
    }
  }
}

function readHeader(value: unknown): Header {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw corrupt("line 1 is not a header object: not a KvStateMachine snapshot");
  const h = value as { version?: unknown; lastApplied?: unknown; size?: unknown };
  if (h.version !== KV_SNAPSHOT_VERSION) throw unsupportedVersion(h.version);
  const position = h.lastApplied as { index?: unknown; term?: unknown } | null | undefined;
  const index = position?.index;
  const term = position?.term;
  if (!isCount(index) || !isCount(term)) throw corrupt("the header's lastApplied is not { index, term } of non-negative integers");
  if (!isCount(h.size)) throw corrupt("the header's size is not a non-negative integer");
  return { lastApplied: { index, term }, size: h.size };
}

/** The error for data whose first line never ends: names the version when the start looks like an old snapshot. */
function missingHeader(start: Uint8Array): RaftError {
  const text = new TextDecoder().decode(start.subarray(0, 64));
  const version = /^\{"version":(\d+)[,}]/.exec(text)?.[1];
  if (version !== undefined && Number(version) !== KV_SNAPSHOT_VERSION) return unsupportedVersion(Number(version));
  return corrupt("no complete header line: not a KvStateMachine snapshot, or truncated");
}

function unsupportedVersion(version: unknown): RaftError {
  const shown = version === undefined ? "missing" : JSON.stringify(version);
  return corrupt(`snapshot format version ${shown} is not supported; this build reads version ${KV_SNAPSHOT_VERSION} only`);
}

function requireSnapshotData(data: SnapshotData): void {
  const d = data as Partial<SnapshotData> | null;
  if (typeof d !== "object" || d === null || typeof d.read !== "function" || !isCount(d.byteLength)) {
    throw new TypeError("KvStateMachine.restore takes a SnapshotData handle (byteLength and read()); wrap bytes in memory with snapshotDataOf(bytes)");
  }
}

function isCount(v: unknown): v is number {
  return Number.isSafeInteger(v) && (v as number) >= 0;
}

/** A key for an error message: quoted, and cut short when long. */
function quote(key: string): string {
  return JSON.stringify(key.length > 40 ? `${key.slice(0, 40)}…` : key);
}

function corrupt(why: string, cause?: unknown): RaftError {
  return new RaftError("CORRUPT", `KvStateMachine.restore: ${why}`, cause === undefined ? {} : { cause });
}

/**
 * Lets timers and I/O run. setImmediate rather than setTimeout(0): the latter waits at
 * least a millisecond, which adds up to a fifth of a second per million keys.
 */
function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
