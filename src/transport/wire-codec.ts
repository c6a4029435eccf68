/**
 * The compact binary encoding of every {@link Message}, and of the connection handshake.
 * The byte layout is specified in docs/wire-format.md; keep the two in step.
 *
 * Portable on purpose (Uint8Array and TextEncoder/TextDecoder only, no Buffer): the
 * encoding is plain data and may one day run in a browser or worker.
 *
 * Encoding is canonical (minimal varints, booleans 0 or 1, no trailing bytes), and the
 * decoder accepts only canonical input, so for any bytes it accepts,
 * `encodeMessage(decodeMessage(bytes))` equals `bytes`. The fuzz tests rely on that.
 */
import type { ClusterConfig, Entry, EntryType, Message, MessageType, NodeId } from "../core/messages.js";
import { RaftError } from "../errors.js";

/**
 * The longest node id (and cluster id) the wire format carries, in UTF-8 bytes. Ids are
 * sent with every message, so they are kept short; the length travels in one byte.
 * @public
 */
export const MAX_NODE_ID_BYTES = 255;

/**
 * The wire tag of each message type. Explicit rather than derived from
 * `MESSAGE_TYPES` order: a tag is a promise to every deployed peer and must never move.
 */
const TAG_BY_TYPE: { readonly [T in MessageType]: number } = {
  AppendEntries: 1,
  AppendEntriesResponse: 2,
  Heartbeat: 3,
  HeartbeatResponse: 4,
  RequestVote: 5,
  RequestVoteResponse: 6,
  Propose: 7,
  ProposeResponse: 8,
  ReadIndex: 9,
  ReadIndexResponse: 10,
  TimeoutNow: 11,
  InstallSnapshot: 12,
  InstallSnapshotResponse: 13,
};

const TYPE_BY_TAG: readonly (MessageType | undefined)[] = (() => {
  const byTag: (MessageType | undefined)[] = [];
  for (const [type, tag] of Object.entries(TAG_BY_TYPE)) byTag[tag] = type as MessageType;
  return byTag;
})();

/** Entry type codes; like message tags, fixed forever. */
const ENTRY_TYPE_CODE: { readonly [T in EntryType]: number } = { command: 0, noop: 1, config: 2 };
const ENTRY_TYPE_BY_CODE: readonly EntryType[] = ["command", "noop", "config"];

// Flag bits of RequestVote and RequestVoteResponse. Unknown bits are refused on decode so
// that a later version can give them a meaning without old peers misreading them.
const FLAG_PRE_VOTE = 0x01;
const FLAG_TRANSFER = 0x02;
const FLAG_GRANTED = 0x02;

// The smallest encodings of repeated elements, used to bound a declared count by the
// bytes actually present before looping over it.
const MIN_ENTRY_BYTES = 4; // index, term, type, data length
const MIN_PROPOSED_ENTRY_BYTES = 2; // type, data length
const MIN_NODE_ID_BYTES = 2; // length, one byte

const textEncoder = new TextEncoder();
// fatal: invalid UTF-8 is an error, not U+FFFD. ignoreBOM: a leading U+FEFF is part of
// the id, not a byte-order mark to strip (stripping it would change the id).
const textDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

// ---------------------------------------------------------------------------------------
// Sizing. Sizing visits every field, so it is also where a message is validated: once
// a message has been sized, writing it cannot fail.
// ---------------------------------------------------------------------------------------

function uintSize(value: unknown, field: string): number {
  if (typeof value !== "number") throw new TypeError(`${field} must be a number, got ${typeof value}`);
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${field} must be a non-negative safe integer, got ${value}`);
  }
  if (value < 0x80) return 1;
  if (value < 0x4000) return 2;
  if (value < 0x200000) return 3;
  if (value < 0x10000000) return 4;
  if (value < 0x800000000) return 5;
  if (value < 0x40000000000) return 6;
  if (value < 0x2000000000000) return 7;
  return 8; // 8 × 7 bits = 56 ≥ 53
}

function boolSize(value: unknown, field: string): number {
  if (typeof value !== "boolean") throw new TypeError(`${field} must be a boolean, got ${typeof value}`);
  return 1;
}

/** The UTF-8 length of `s`; throws on a lone surrogate, which UTF-8 cannot carry faithfully. */
function utf8Length(s: string, field: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c < 0xd800 || c > 0xdfff) n += 3;
    else if (c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4;
      i++;
    } else {
      throw new RangeError(`${field} contains a lone surrogate at position ${i}`);
    }
  }
  return n;
}

/** The UTF-8 length of an id, validated: 1 to {@link MAX_NODE_ID_BYTES} bytes. */
function idBytes(value: unknown, field: string): number {
  if (typeof value !== "string") throw new TypeError(`${field} must be a string, got ${typeof value}`);
  const n = utf8Length(value, field);
  if (n < 1 || n > MAX_NODE_ID_BYTES) {
    throw new RangeError(`${field} must be 1 to ${MAX_NODE_ID_BYTES} UTF-8 bytes, got ${n}`);
  }
  return n;
}

function idSize(value: unknown, field: string): number {
  return 1 + idBytes(value, field);
}

function bytesSize(value: unknown, field: string): number {
  if (!(value instanceof Uint8Array)) throw new TypeError(`${field} must be a Uint8Array`);
  return uintSize(value.length, `${field}.length`) + value.length;
}

function entryTypeCode(value: unknown, field: string): number {
  const code = typeof value === "string" ? ENTRY_TYPE_CODE[value as EntryType] : undefined;
  if (code === undefined) throw new TypeError(`${field} must be "command", "noop" or "config", got ${String(value)}`);
  return code;
}

function arrayOf(value: unknown, field: string): readonly unknown[] {
  if (!Array.isArray(value)) throw new TypeError(`${field} must be an array`);
  return value;
}

function objectOf(value: unknown, field: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null) throw new TypeError(`${field} must be an object`);
  return value as Record<string, unknown>;
}

function entriesSize(value: unknown): number {
  const entries = arrayOf(value, "entries");
  let n = uintSize(entries.length, "entries.length");
  for (let i = 0; i < entries.length; i++) {
    const e = objectOf(entries[i], `entries[${i}]`);
    entryTypeCode(e.type, `entries[${i}].type`);
    n += uintSize(e.index, `entries[${i}].index`) + uintSize(e.term, `entries[${i}].term`) + 1;
    n += bytesSize(e.data, `entries[${i}].data`);
  }
  return n;
}

function proposedEntriesSize(value: unknown): number {
  const entries = arrayOf(value, "entries");
  let n = uintSize(entries.length, "entries.length");
  for (let i = 0; i < entries.length; i++) {
    const e = objectOf(entries[i], `entries[${i}]`);
    entryTypeCode(e.type, `entries[${i}].type`);
    n += 1 + bytesSize(e.data, `entries[${i}].data`);
  }
  return n;
}

function idListSize(value: unknown, field: string): number {
  const ids = arrayOf(value, field);
  let n = uintSize(ids.length, `${field}.length`);
  for (let i = 0; i < ids.length; i++) n += idSize(ids[i], `${field}[${i}]`);
  return n;
}

function snapshotMetaSize(value: unknown): number {
  const meta = objectOf(value, "meta");
  const config = objectOf(meta.config, "meta.config");
  return (
    uintSize(meta.index, "meta.index") +
    uintSize(meta.term, "meta.term") +
    idListSize(config.voters, "meta.config.voters") +
    idListSize(config.learners, "meta.config.learners") +
    idListSize(config.outgoingVoters, "meta.config.outgoingVoters") +
    idListSize(Object.keys(addressesOf(config.addresses)), "meta.config.addresses (ids)") +
    idListSize(Object.values(addressesOf(config.addresses)), "meta.config.addresses (values)")
  );
}

/** A configuration's address book, validated; absent means empty. */
function addressesOf(value: unknown): Record<string, string> {
  if (value === undefined) return {};
  return objectOf(value, "meta.config.addresses") as Record<string, string>;
}

/**
 * The exact number of bytes {@link encodeMessage} produces for `message`, after
 * validating every field.
 *
 * @throws TypeError or RangeError naming the field, when the message is not encodable
 * (an unknown type, a negative or fractional index, an id longer than
 * {@link MAX_NODE_ID_BYTES}, data that is not a Uint8Array, ...).
 * @internal
 */
export function encodedMessageSize(message: Message): number {
  const m = objectOf(message, "message") as unknown as Message;
  const tag = typeof m.type === "string" ? TAG_BY_TYPE[m.type] : undefined;
  if (tag === undefined) throw new TypeError(`unknown message type ${String(m.type)}`);
  let n = 1 + idSize(m.from, "from") + idSize(m.to, "to") + uintSize(m.term, "term");
  switch (m.type) {
    case "AppendEntries":
      n += uintSize(m.prevIndex, "prevIndex") + uintSize(m.prevTerm, "prevTerm") + uintSize(m.commit, "commit");
      return n + entriesSize(m.entries);
    case "AppendEntriesResponse":
      n += boolSize(m.success, "success") + uintSize(m.index, "index");
      return n + uintSize(m.hintIndex, "hintIndex") + uintSize(m.hintTerm, "hintTerm");
    case "Heartbeat":
      return n + uintSize(m.commit, "commit") + uintSize(m.readRound, "readRound");
    case "HeartbeatResponse":
      return n + uintSize(m.readRound, "readRound");
    case "RequestVote":
      boolSize(m.preVote, "preVote");
      boolSize(m.transfer, "transfer");
      return n + 1 + uintSize(m.lastIndex, "lastIndex") + uintSize(m.lastTerm, "lastTerm");
    case "RequestVoteResponse":
      boolSize(m.preVote, "preVote");
      boolSize(m.granted, "granted");
      return n + 1 + uintSize(m.commit, "commit") + uintSize(m.commitTerm, "commitTerm");
    case "Propose":
      return n + uintSize(m.requestId, "requestId") + proposedEntriesSize(m.entries);
    case "ProposeResponse":
      return n + uintSize(m.requestId, "requestId") + uintSize(m.index, "index");
    case "ReadIndex":
      return n + uintSize(m.requestId, "requestId");
    case "ReadIndexResponse":
      return n + uintSize(m.requestId, "requestId") + uintSize(m.index, "index");
    case "TimeoutNow":
      return n;
    case "InstallSnapshot":
      n += snapshotMetaSize(m.meta) + uintSize(m.offset, "offset") + boolSize(m.done, "done");
      return n + bytesSize(m.data, "data");
    case "InstallSnapshotResponse":
      return n + uintSize(m.index, "index") + uintSize(m.offset, "offset");
  }
}

// ---------------------------------------------------------------------------------------
// Writing. Every writer takes the target and a position and returns the next position,
// so that a whole message (or a whole batch of frames) goes into one allocation.
// ---------------------------------------------------------------------------------------

function writeUint(buf: Uint8Array, pos: number, value: number): number {
  // Above 2^31 bit operations would truncate, so peel 7-bit groups off arithmetically
  // until the rest fits in an int32.
  while (value > 0x7fffffff) {
    buf[pos++] = (value % 0x80) | 0x80;
    value = Math.floor(value / 0x80);
  }
  while (value > 0x7f) {
    buf[pos++] = (value & 0x7f) | 0x80;
    value >>>= 7;
  }
  buf[pos++] = value;
  return pos;
}

function writeId(buf: Uint8Array, pos: number, id: string): number {
  if (id.length <= MAX_NODE_ID_BYTES) {
    // Fast path for ASCII ids, by far the common case: no subarray, no encoder call.
    let ascii = true;
    for (let i = 0; i < id.length; i++) {
      const c = id.charCodeAt(i);
      if (c >= 0x80) {
        ascii = false;
        break;
      }
      buf[pos + 1 + i] = c;
    }
    if (ascii) {
      buf[pos] = id.length;
      return pos + 1 + id.length;
    }
  }
  const n = utf8Length(id, "id");
  buf[pos] = n;
  textEncoder.encodeInto(id, buf.subarray(pos + 1, pos + 1 + n));
  return pos + 1 + n;
}

function writeBytes(buf: Uint8Array, pos: number, data: Uint8Array): number {
  pos = writeUint(buf, pos, data.length);
  buf.set(data, pos);
  return pos + data.length;
}

function writeIdList(buf: Uint8Array, pos: number, ids: readonly string[]): number {
  pos = writeUint(buf, pos, ids.length);
  for (const id of ids) pos = writeId(buf, pos, id);
  return pos;
}

/**
 * Writes `message` into `target` at `offset` and returns the offset after it.
 *
 * Precondition: `message` was validated by {@link encodedMessageSize} (this function
 * does not validate again, so that a batch is validated once) and `target` has that many
 * bytes free at `offset`.
 * @internal
 */
export function encodeMessageInto(message: Message, target: Uint8Array, offset: number): number {
  const m = message;
  let pos = offset;
  target[pos++] = TAG_BY_TYPE[m.type];
  pos = writeId(target, pos, m.from);
  pos = writeId(target, pos, m.to);
  pos = writeUint(target, pos, m.term);
  switch (m.type) {
    case "AppendEntries":
      pos = writeUint(target, pos, m.prevIndex);
      pos = writeUint(target, pos, m.prevTerm);
      pos = writeUint(target, pos, m.commit);
      pos = writeUint(target, pos, m.entries.length);
      for (const e of m.entries) {
        pos = writeUint(target, pos, e.index);
        pos = writeUint(target, pos, e.term);
        target[pos++] = ENTRY_TYPE_CODE[e.type];
        pos = writeBytes(target, pos, e.data);
      }
      return pos;
    case "AppendEntriesResponse":
      target[pos++] = m.success ? 1 : 0;
      pos = writeUint(target, pos, m.index);
      pos = writeUint(target, pos, m.hintIndex);
      return writeUint(target, pos, m.hintTerm);
    case "Heartbeat":
      pos = writeUint(target, pos, m.commit);
      return writeUint(target, pos, m.readRound);
    case "HeartbeatResponse":
      return writeUint(target, pos, m.readRound);
    case "RequestVote":
      target[pos++] = (m.preVote ? FLAG_PRE_VOTE : 0) | (m.transfer ? FLAG_TRANSFER : 0);
      pos = writeUint(target, pos, m.lastIndex);
      return writeUint(target, pos, m.lastTerm);
    case "RequestVoteResponse":
      target[pos++] = (m.preVote ? FLAG_PRE_VOTE : 0) | (m.granted ? FLAG_GRANTED : 0);
      pos = writeUint(target, pos, m.commit);
      return writeUint(target, pos, m.commitTerm);
    case "Propose":
      pos = writeUint(target, pos, m.requestId);
      pos = writeUint(target, pos, m.entries.length);
      for (const e of m.entries) {
        target[pos++] = ENTRY_TYPE_CODE[e.type];
        pos = writeBytes(target, pos, e.data);
      }
      return pos;
    case "ProposeResponse":
    case "ReadIndexResponse":
      pos = writeUint(target, pos, m.requestId);
      return writeUint(target, pos, m.index);
    case "ReadIndex":
      return writeUint(target, pos, m.requestId);
    case "TimeoutNow":
      return pos;
    case "InstallSnapshot":
      pos = writeUint(target, pos, m.meta.index);
      pos = writeUint(target, pos, m.meta.term);
      pos = writeIdList(target, pos, m.meta.config.voters);
      pos = writeIdList(target, pos, m.meta.config.learners);
      pos = writeIdList(target, pos, m.meta.config.outgoingVoters);
      // The address book as two parallel lists: ids, then their addresses.
      pos = writeIdList(target, pos, Object.keys(m.meta.config.addresses ?? {}));
      pos = writeIdList(target, pos, Object.values(m.meta.config.addresses ?? {}));
      pos = writeUint(target, pos, m.offset);
      target[pos++] = m.done ? 1 : 0;
      return writeBytes(target, pos, m.data);
    case "InstallSnapshotResponse":
      pos = writeUint(target, pos, m.index);
      return writeUint(target, pos, m.offset);
  }
}

/**
 * Encodes a message in the raftkit wire format (docs/wire-format.md), in one allocation.
 * For transports other than `TcpTransport` that want the same compact, validated encoding
 * (the message alone: framing and handshake are the stream transport's business).
 *
 * @example
 * ```ts
 * const bytes = encodeMessage(message);
 * socket.send(bytes);                           // any message-oriented channel
 * // on the other side:
 * handler(decodeMessage(new Uint8Array(data))); // throws RaftError CORRUPT on bad bytes
 * ```
 * @param message - Any protocol message.
 * @returns Its encoding; canonical, so equal messages encode to equal bytes.
 * @throws TypeError or RangeError naming the field, when the message is not encodable.
 * @public
 */
export function encodeMessage(message: Message): Uint8Array {
  const size = encodedMessageSize(message);
  const out = new Uint8Array(size);
  const end = encodeMessageInto(message, out, 0);
  // Invariant: sizing and writing agree. A mismatch is a bug in this file, not bad input.
  if (end !== size) throw new Error(`wire codec: sized ${size} bytes but wrote ${end}`);
  return out;
}

// ---------------------------------------------------------------------------------------
// Reading. Every read is bounds-checked; every failure is RaftError("CORRUPT") with the
// field and the byte offset, because the bytes come from the network and are untrusted.
// ---------------------------------------------------------------------------------------

class Reader {
  pos = 0;

  constructor(
    private readonly bytes: Uint8Array,
    private readonly what: string,
  ) {}

  fail(detail: string, at = this.pos): RaftError {
    return new RaftError("CORRUPT", `invalid ${this.what}: ${detail} (at byte ${at})`);
  }

  get remaining(): number {
    return this.bytes.length - this.pos;
  }

  u8(field: string): number {
    if (this.pos >= this.bytes.length) throw this.fail(`truncated before ${field}`);
    return this.bytes[this.pos++]!;
  }

  uint(field: string): number {
    const start = this.pos;
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      if (this.pos >= this.bytes.length) throw this.fail(`truncated inside ${field}`, start);
      const b = this.bytes[this.pos++]!;
      value += (b & 0x7f) * scale;
      if (b < 0x80) {
        // A zero final byte means a shorter encoding existed: refuse, to stay canonical.
        if (b === 0 && i > 0) throw this.fail(`${field} is not minimally encoded`, start);
        if (value > Number.MAX_SAFE_INTEGER) throw this.fail(`${field} exceeds 2^53 - 1`, start);
        return value;
      }
      scale *= 0x80;
    }
    throw this.fail(`${field} is longer than 8 bytes`, start);
  }

  bool(field: string): boolean {
    const b = this.u8(field);
    if (b > 1) throw this.fail(`${field} must be 0 or 1, got ${b}`, this.pos - 1);
    return b === 1;
  }

  id(field: string): string {
    const start = this.pos;
    const n = this.u8(`${field} length`);
    if (n === 0) throw this.fail(`${field} is empty`, start);
    if (n > this.remaining) throw this.fail(`${field} needs ${n} bytes, ${this.remaining} left`, start);
    const from = this.pos;
    this.pos += n;
    const bytes = this.bytes;
    let ascii = true;
    for (let i = from; i < from + n; i++) {
      if (bytes[i]! >= 0x80) {
        ascii = false;
        break;
      }
    }
    if (ascii) return String.fromCharCode.apply(null, bytes.subarray(from, from + n) as unknown as number[]);
    try {
      return textDecoder.decode(bytes.subarray(from, from + n));
    } catch {
      throw this.fail(`${field} is not valid UTF-8`, start);
    }
  }

  data(field: string): Uint8Array {
    const start = this.pos;
    const n = this.uint(`${field} length`);
    if (n > this.remaining) throw this.fail(`${field} needs ${n} bytes, ${this.remaining} left`, start);
    // A copy, not a view: a view would pin the whole frame (up to maxFrameBytes) in memory
    // for as long as the entry lives in the log, and would alias the network buffer.
    const out = new Uint8Array(this.bytes.subarray(this.pos, this.pos + n));
    this.pos += n;
    return out;
  }

  /** A repeat count, refused when the bytes left cannot hold that many elements. */
  count(field: string, minElementBytes: number): number {
    const start = this.pos;
    const n = this.uint(`${field} count`);
    if (n > this.remaining / minElementBytes) {
      throw this.fail(`${field} count ${n} exceeds what ${this.remaining} bytes can hold`, start);
    }
    return n;
  }

  entryType(field: string): EntryType {
    const code = this.u8(field);
    const type = ENTRY_TYPE_BY_CODE[code];
    if (type === undefined) throw this.fail(`unknown ${field} ${code}`, this.pos - 1);
    return type;
  }

  flags(field: string, known: number): number {
    const f = this.u8(field);
    if ((f & ~known) !== 0) throw this.fail(`unknown ${field} bits 0x${f.toString(16)}`, this.pos - 1);
    return f;
  }

  idList(field: string): NodeId[] {
    const n = this.count(field, MIN_NODE_ID_BYTES);
    const ids: NodeId[] = [];
    for (let i = 0; i < n; i++) ids.push(this.id(`${field}[${i}]`));
    return ids;
  }

  end(): void {
    if (this.pos !== this.bytes.length) throw this.fail(`${this.remaining} trailing bytes`);
  }
}

function readEntries(r: Reader): Entry[] {
  const n = r.count("entries", MIN_ENTRY_BYTES);
  const entries: Entry[] = [];
  for (let i = 0; i < n; i++) {
    const index = r.uint(`entries[${i}].index`);
    const term = r.uint(`entries[${i}].term`);
    const type = r.entryType(`entries[${i}].type`);
    entries.push({ index, term, type, data: r.data(`entries[${i}].data`) });
  }
  return entries;
}

function readProposedEntries(r: Reader): { type: EntryType; data: Uint8Array }[] {
  const n = r.count("entries", MIN_PROPOSED_ENTRY_BYTES);
  const entries: { type: EntryType; data: Uint8Array }[] = [];
  for (let i = 0; i < n; i++) {
    const type = r.entryType(`entries[${i}].type`);
    entries.push({ type, data: r.data(`entries[${i}].data`) });
  }
  return entries;
}

function readConfig(r: Reader): ClusterConfig {
  const voters = r.idList("meta.config.voters");
  const learners = r.idList("meta.config.learners");
  const outgoingVoters = r.idList("meta.config.outgoingVoters");
  const addressIds = r.idList("meta.config.addresses (ids)");
  const addressValues = r.idList("meta.config.addresses (values)");
  if (addressIds.length !== addressValues.length) throw new RaftError("CORRUPT", "meta.config.addresses: ids and addresses differ in number");
  if (addressIds.length === 0) return { voters, learners, outgoingVoters };
  const addresses: Record<string, string> = {};
  for (let i = 0; i < addressIds.length; i++) addresses[addressIds[i]!] = addressValues[i]!;
  return { voters, learners, outgoingVoters, addresses };
}

function readBody(r: Reader, type: MessageType, from: NodeId, to: NodeId, term: number): Message {
  switch (type) {
    case "AppendEntries": {
      const prevIndex = r.uint("prevIndex");
      const prevTerm = r.uint("prevTerm");
      const commit = r.uint("commit");
      return { type, from, to, term, prevIndex, prevTerm, entries: readEntries(r), commit };
    }
    case "AppendEntriesResponse": {
      const success = r.bool("success");
      const index = r.uint("index");
      const hintIndex = r.uint("hintIndex");
      return { type, from, to, term, success, index, hintIndex, hintTerm: r.uint("hintTerm") };
    }
    case "Heartbeat": {
      const commit = r.uint("commit");
      return { type, from, to, term, commit, readRound: r.uint("readRound") };
    }
    case "HeartbeatResponse":
      return { type, from, to, term, readRound: r.uint("readRound") };
    case "RequestVote": {
      const flags = r.flags("flags", FLAG_PRE_VOTE | FLAG_TRANSFER);
      const lastIndex = r.uint("lastIndex");
      const lastTerm = r.uint("lastTerm");
      const preVote = (flags & FLAG_PRE_VOTE) !== 0;
      return { type, from, to, term, preVote, lastIndex, lastTerm, transfer: (flags & FLAG_TRANSFER) !== 0 };
    }
    case "RequestVoteResponse": {
      const flags = r.flags("flags", FLAG_PRE_VOTE | FLAG_GRANTED);
      const commit = r.uint("commit");
      return { type, from, to, term, preVote: (flags & FLAG_PRE_VOTE) !== 0, granted: (flags & FLAG_GRANTED) !== 0, commit, commitTerm: r.uint("commitTerm") };
    }
    case "Propose": {
      const requestId = r.uint("requestId");
      return { type, from, to, term, requestId, entries: readProposedEntries(r) };
    }
    case "ProposeResponse":
    case "ReadIndexResponse": {
      const requestId = r.uint("requestId");
      return { type, from, to, term, requestId, index: r.uint("index") };
    }
    case "ReadIndex":
      return { type, from, to, term, requestId: r.uint("requestId") };
    case "TimeoutNow":
      return { type, from, to, term };
    case "InstallSnapshot": {
      const index = r.uint("meta.index");
      const metaTerm = r.uint("meta.term");
      const config = readConfig(r);
      const offset = r.uint("offset");
      const done = r.bool("done");
      return { type, from, to, term, meta: { index, term: metaTerm, config }, offset, data: r.data("data"), done };
    }
    case "InstallSnapshotResponse": {
      const index = r.uint("index");
      return { type, from, to, term, index, offset: r.uint("offset") };
    }
  }
}

/**
 * Decodes one message encoded by {@link encodeMessage}. Every field is validated: the
 * type tag, id lengths and UTF-8, integer ranges (non-negative safe integers, minimally
 * encoded), booleans, entry types, repeat counts against the bytes present, and no
 * trailing bytes. The returned message owns its data (it does not alias `bytes`).
 *
 * @param bytes - One encoded message, untrusted.
 * @returns The message.
 * @throws RaftError with code `CORRUPT` on any malformed input; TypeError when `bytes` is
 * not a Uint8Array.
 * @public
 */
export function decodeMessage(bytes: Uint8Array): Message {
  if (!(bytes instanceof Uint8Array)) throw new TypeError("decodeMessage expects a Uint8Array");
  const r = new Reader(bytes, "message");
  const tag = r.u8("type");
  const type = TYPE_BY_TAG[tag];
  if (type === undefined) throw r.fail(`unknown message type tag ${tag}`, 0);
  const from = r.id("from");
  const to = r.id("to");
  const term = r.uint("term");
  const message = readBody(r, type, from, to, term);
  r.end();
  return message;
}

/**
 * The first frame on every connection: who is calling, and for which cluster. The
 * protocol version travels in the frame header (see `frame.ts`).
 * @internal
 */
export interface Handshake {
  /** The cluster the caller belongs to; a node refuses callers from another cluster. */
  readonly clusterId: string;
  /** The caller's node id. Every message on the connection must come from it. */
  readonly nodeId: NodeId;
}

/**
 * Encodes a {@link Handshake} payload.
 * @throws TypeError or RangeError when an id is not a string of 1 to {@link MAX_NODE_ID_BYTES} UTF-8 bytes.
 * @internal
 */
export function encodeHandshake(handshake: Handshake): Uint8Array {
  const h = objectOf(handshake, "handshake");
  const size = idSize(h.clusterId, "clusterId") + idSize(h.nodeId, "nodeId");
  const out = new Uint8Array(size);
  writeId(out, writeId(out, 0, h.clusterId as string), h.nodeId as string);
  return out;
}

/**
 * Decodes a {@link Handshake} payload.
 * @throws RaftError with code `CORRUPT` on any malformed input.
 * @internal
 */
export function decodeHandshake(bytes: Uint8Array): Handshake {
  if (!(bytes instanceof Uint8Array)) throw new TypeError("decodeHandshake expects a Uint8Array");
  const r = new Reader(bytes, "handshake");
  const clusterId = r.id("clusterId");
  const nodeId = r.id("nodeId");
  r.end();
  return { clusterId, nodeId };
}
