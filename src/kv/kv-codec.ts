import { Buffer, isAscii, isUtf8 } from "node:buffer";
import type { Codec } from "../codec.js";
import { RaftError } from "../errors.js";
import type { KvCommand } from "./commands.js";

// The binary encoding of a KvCommand (version 1). Strings are UTF-8; a length is an
// unsigned LEB128 varint of at most 5 bytes, minimally encoded.
//
//   put     0x01  len(key) key value
//   delete  0x02  key
//   cas     0x03  flags len(key) key [len(expected) expected] [value]
//                 flags: bit 0 = expected is a string (else null), bit 1 = value is a
//                 string (else null); no other bit set
//
// The last string of each command runs to the end, so it needs no length. A first byte of
// `{` is the JSON of the default codec (`jsonCodec`), which this codec still reads, so
// logs and snapshots written with it stay readable.

const PUT = 0x01;
const DELETE = 0x02;
const CAS = 0x03;
const JSON_OPEN_BRACE = 0x7b;
const HAS_EXPECTED = 0b01;
const HAS_VALUE = 0b10;

const jsonDecoder = new TextDecoder("utf-8", { fatal: true });

type Slice = (this: Uint8Array, start: number, end: number) => string;
type Write = (this: Buffer, text: string, offset: number) => number;
// Node's own slice and write methods: the slices work on any Uint8Array and, unlike
// TextDecoder, cost next to nothing on the short strings commands hold (decoding 2.5x as
// fast as JSON overall, bench/RESULTS.md); `utf8Write` skips `write`'s argument handling
// (a third of an encode). They are not documented, so fall back to documented calls
// should a Node version drop them.
const native = Buffer.prototype as unknown as { latin1Slice?: Slice; utf8Slice?: Slice; utf8Write?: Write };
const latin1Slice: Slice = native.latin1Slice ?? documentedSlice("latin1");
const utf8Slice: Slice = native.utf8Slice ?? documentedSlice("utf8");
const utf8Write: Write = native.utf8Write ?? function (this: Buffer, text: string, offset: number): number {
  return this.write(text, offset, "utf8");
};

function documentedSlice(encoding: "latin1" | "utf8"): Slice {
  return function (this: Uint8Array, start: number, end: number): string {
    return Buffer.from(this.buffer, this.byteOffset, this.byteLength).toString(encoding, start, end);
  };
}

/**
 * A compact binary codec for {@link KvCommand}s: a tag byte, length-prefixed UTF-8
 * strings, no field names. Encoding and decoding take 40-50% of the time of the default
 * JSON codec (a put of a 100-byte value; bench/codec.bench.ts), and a put is 30 bytes
 * shorter. It also decodes entries written by the default JSON codec, so an existing log
 * may switch to it; every node of a cluster must use a version that has it before any
 * node starts writing with it.
 *
 * Strings that are not well-formed UTF-16 (lone surrogates) are written as U+FFFD, as
 * with the JSON codec.
 *
 * @example
 * ```ts
 * const node = new RaftNode({ ...options, stateMachine: new KvStateMachine(), codec: kvCodec });
 * ```
 * @public
 */
export const kvCodec: Codec<KvCommand> = {
  encode: encodeKvCommand,
  decode: decodeKvCommand,
};

function encodeKvCommand(cmd: KvCommand): Uint8Array {
  switch (cmd.op) {
    case "put": {
      const keyBytes = Buffer.byteLength(cmd.key);
      const out = Buffer.allocUnsafe(1 + varintBytes(keyBytes) + keyBytes + Buffer.byteLength(cmd.value));
      out[0] = PUT;
      let pos = writeVarint(out, 1, keyBytes);
      pos += utf8Write.call(out, cmd.key, pos);
      utf8Write.call(out, cmd.value, pos);
      return out;
    }
    case "delete": {
      const out = Buffer.allocUnsafe(1 + Buffer.byteLength(cmd.key));
      out[0] = DELETE;
      utf8Write.call(out, cmd.key, 1);
      return out;
    }
    case "cas": {
      const keyBytes = Buffer.byteLength(cmd.key);
      const expectedBytes = cmd.expected === null ? 0 : Buffer.byteLength(cmd.expected);
      const valueBytes = cmd.value === null ? 0 : Buffer.byteLength(cmd.value);
      const size = 2 + varintBytes(keyBytes) + keyBytes + (cmd.expected === null ? 0 : varintBytes(expectedBytes) + expectedBytes) + valueBytes;
      const out = Buffer.allocUnsafe(size);
      out[0] = CAS;
      out[1] = (cmd.expected === null ? 0 : HAS_EXPECTED) | (cmd.value === null ? 0 : HAS_VALUE);
      let pos = writeVarint(out, 2, keyBytes);
      pos += utf8Write.call(out, cmd.key, pos);
      if (cmd.expected !== null) {
        pos = writeVarint(out, pos, expectedBytes);
        pos += utf8Write.call(out, cmd.expected, pos);
      }
      if (cmd.value !== null) utf8Write.call(out, cmd.value, pos);
      return out;
    }
    default:
      throw new TypeError(`kvCodec: unknown op ${JSON.stringify((cmd as { op?: unknown }).op)}; expected "put", "delete" or "cas"`);
  }
}

function decodeKvCommand(bytes: Uint8Array): KvCommand {
  if (bytes.length === 0) throw corrupt("is empty");
  if (bytes[0] === JSON_OPEN_BRACE) return JSON.parse(jsonDecoder.decode(bytes)) as KvCommand;
  // One check of the whole entry: almost every command is ASCII (and then so are its
  // lengths: all under 128), and its strings are sliced without looking at them again.
  // Otherwise each string is checked on its own (a length byte may be >= 0x80).
  const slice = isAscii(bytes) ? latin1Slice : checkedUtf8Slice;
  const reader = new Reader(bytes);
  switch (bytes[0]) {
    case PUT: {
      reader.pos = 1;
      const key = reader.sized(slice, "key");
      return { op: "put", key, value: slice.call(bytes, reader.pos, bytes.length) };
    }
    case DELETE:
      return { op: "delete", key: slice.call(bytes, 1, bytes.length) };
    case CAS: {
      if (bytes.length < 2) throw corrupt("ends before its flags");
      const flags = bytes[1]!;
      if ((flags & ~(HAS_EXPECTED | HAS_VALUE)) !== 0) throw corrupt(`has unknown cas flags 0x${flags.toString(16)}`);
      reader.pos = 2;
      const key = reader.sized(slice, "key");
      const expected = (flags & HAS_EXPECTED) !== 0 ? reader.sized(slice, "expected value") : null;
      if ((flags & HAS_VALUE) === 0 && reader.pos !== bytes.length) throw corrupt(`has ${bytes.length - reader.pos} bytes after its last field`);
      const value = (flags & HAS_VALUE) !== 0 ? slice.call(bytes, reader.pos, bytes.length) : null;
      return { op: "cas", key, expected, value };
    }
    default:
      throw corrupt(`starts with an unknown tag 0x${bytes[0]!.toString(16)}`);
  }
}

class Reader {
  pos = 0;
  constructor(private readonly bytes: Uint8Array) {}

  /** A varint length, then that many bytes as a string. */
  sized(slice: Slice, field: string): string {
    const n = this.varint(field);
    const end = this.pos + n;
    if (end > this.bytes.length) throw corrupt(`says its ${field} has ${n} bytes; ${this.bytes.length - this.pos} are left`);
    const s = slice.call(this.bytes, this.pos, end);
    this.pos = end;
    return s;
  }

  private varint(field: string): number {
    let value = 0;
    for (let i = 0; i < 5; i++) {
      if (this.pos >= this.bytes.length) throw corrupt(`ends inside the length of its ${field}`);
      const b = this.bytes[this.pos++]!;
      value += (b & 0x7f) * 2 ** (7 * i);
      if (b < 0x80) {
        if (b === 0 && i > 0) throw corrupt(`has a length of its ${field} that is not minimally encoded`);
        return value;
      }
    }
    throw corrupt(`has a length of its ${field} longer than 5 bytes`);
  }
}

/** UTF-8 to a string, refusing bytes that are not well-formed UTF-8 on their own. */
function checkedUtf8Slice(this: Uint8Array, start: number, end: number): string {
  if (!isUtf8(this.subarray(start, end))) throw corrupt("holds a string that is not valid UTF-8");
  return utf8Slice.call(this, start, end);
}

function varintBytes(n: number): number {
  let bytes = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 0x80);
    bytes++;
  }
  return bytes;
}

function writeVarint(out: Uint8Array, pos: number, n: number): number {
  while (n >= 0x80) {
    out[pos++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 0x80);
  }
  out[pos++] = n;
  return pos;
}

function corrupt(what: string): RaftError {
  return new RaftError("CORRUPT", `kvCodec: the entry ${what}`);
}
