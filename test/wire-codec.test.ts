import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { MESSAGE_TYPES, type Message, type MessageType } from "../src/core/messages.js";
import { RaftError } from "../src/errors.js";
import { DEFAULT_MAX_FRAME_BYTES, FrameDecoder, FrameKind, encodeFrame } from "../src/transport/frame.js";
import {
  MAX_NODE_ID_BYTES,
  decodeHandshake,
  decodeMessage,
  encodeHandshake,
  encodeMessage,
  encodedMessageSize,
} from "../src/transport/wire-codec.js";

const MAX = Number.MAX_SAFE_INTEGER;
const bytes = (...values: number[]) => Uint8Array.from(values);
const filled = (n: number, seed = 7) => Uint8Array.from({ length: n }, (_, i) => (i * 131 + seed) & 0xff);

/** At least one message of every type, with edge values: zeros, 2^53 - 1, unicode ids, empty and large data. */
const samples: readonly Message[] = [
  {
    type: "AppendEntries",
    from: "node-1",
    to: "node-2",
    term: 7,
    prevIndex: 41,
    prevTerm: 6,
    commit: 40,
    entries: [
      { index: 42, term: 7, type: "command", data: filled(300) },
      { index: 43, term: 7, type: "noop", data: new Uint8Array(0) },
      { index: 44, term: 7, type: "config", data: bytes(1, 2, 3) },
      { index: 45, term: 7, type: "command", data: filled(256 * 1024, 3) },
    ],
  },
  { type: "AppendEntries", from: "a", to: "b", term: 0, prevIndex: 0, prevTerm: 0, commit: 0, entries: [] },
  { type: "AppendEntries", from: "a", to: "b", term: MAX, prevIndex: MAX, prevTerm: MAX, commit: MAX, entries: [{ index: MAX, term: MAX, type: "noop", data: new Uint8Array(0) }] },
  { type: "AppendEntriesResponse", from: "ñodo-ß", to: "节点一", term: 9, success: true, index: 100, hintIndex: 0, hintTerm: 0 },
  { type: "AppendEntriesResponse", from: "a", to: "b", term: 9, success: false, index: 2 ** 31, hintIndex: 2 ** 32 + 5, hintTerm: 2 ** 49 },
  { type: "Heartbeat", from: "🦀-emoji", to: "\u{FEFF}bom-first", term: 3, commit: 127, readRound: 128 },
  { type: "HeartbeatResponse", from: "b", to: "a", term: 3, readRound: 16383 },
  { type: "RequestVote", from: "c", to: "a", term: 4, preVote: true, lastIndex: 16384, lastTerm: 3, transfer: false },
  { type: "RequestVote", from: "c", to: "a", term: 4, preVote: false, lastIndex: 0, lastTerm: 0, transfer: true },
  { type: "RequestVoteResponse", from: "a", to: "c", term: 4, preVote: true, granted: false, commit: 0, commitTerm: 0 },
  { type: "RequestVoteResponse", from: "a", to: "c", term: 4, preVote: false, granted: true, commit: 2 ** 40, commitTerm: 3 },
  {
    type: "Propose",
    from: "b",
    to: "a",
    term: 2,
    requestId: 2 ** 40,
    entries: [
      { type: "command", data: filled(10) },
      { type: "config", data: new Uint8Array(0) },
    ],
  },
  { type: "Propose", from: "b", to: "a", term: 2, requestId: 0, entries: [] },
  { type: "ProposeResponse", from: "a", to: "b", term: 2, requestId: 77, index: 0 },
  { type: "ReadIndex", from: "b", to: "a", term: 2, requestId: 1 },
  { type: "ReadIndexResponse", from: "a", to: "b", term: 2, requestId: 1, index: 2 ** 53 - 2 },
  { type: "TimeoutNow", from: "x".repeat(MAX_NODE_ID_BYTES), to: "é".repeat(MAX_NODE_ID_BYTES >> 1), term: 1 },
  {
    type: "InstallSnapshot",
    from: "a",
    to: "d",
    term: 5,
    meta: {
      index: 1000,
      term: 4,
      config: { voters: ["a", "b", "c"], learners: ["d"], outgoingVoters: ["a", "b", "ë"], addresses: { a: "10.0.0.1:7000", d: "[::1]:7003" } },
    },
    offset: 2 ** 33,
    data: filled(70_000),
    done: false,
  },
  {
    type: "InstallSnapshot",
    from: "a",
    to: "d",
    term: 5,
    meta: { index: 0, term: 0, config: { voters: [], learners: [], outgoingVoters: [] } },
    offset: 0,
    data: new Uint8Array(0),
    done: true,
  },
  { type: "InstallSnapshotResponse", from: "d", to: "a", term: 5, index: 1000, offset: 65536 },
];

/**
 * A message as plain JSON with each byte array replaced by its length and digest: vitest's
 * deep equality walks typed arrays element by element, which takes seconds for the large samples.
 */
function normalize(value: unknown): unknown {
  return JSON.parse(
    JSON.stringify(value, (_key, v: unknown) =>
      v instanceof Uint8Array ? `${v.constructor.name}(${v.length}) ${createHash("sha256").update(v).digest("hex")}` : v,
    ),
  );
}

const sameBytes = (a: Uint8Array, b: Uint8Array) => Buffer.from(a.buffer, a.byteOffset, a.length).equals(b);

function expectCorrupt(input: Uint8Array, pattern?: RegExp): RaftError {
  let caught: unknown;
  try {
    decodeMessage(input);
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(RaftError);
  const err = caught as RaftError;
  expect(err.code).toBe("CORRUPT");
  if (pattern) expect(err.message).toMatch(pattern);
  return err;
}

/** A Heartbeat from "a" to "b" in term 1 with the given tail after the header. */
function heartbeatWith(...tail: number[]): Uint8Array {
  return bytes(3, 1, 0x61, 1, 0x62, 1, ...tail);
}

describe("wire codec: round trip", () => {
  it("covers every message type", () => {
    const covered = new Set(samples.map((m) => m.type));
    expect([...covered].sort()).toEqual([...MESSAGE_TYPES].sort());
  });

  for (const sample of samples) {
    it(`round-trips ${sample.type} (${sample.from} → ${sample.to})`, () => {
      const encoded = encodeMessage(sample);
      expect(encoded.length).toBe(encodedMessageSize(sample));
      const decoded = decodeMessage(encoded);
      expect(normalize(decoded)).toEqual(normalize(sample));
      // Canonical: re-encoding what was decoded gives the same bytes.
      expect(sameBytes(encodeMessage(decoded), encoded)).toBe(true);
    });
  }

  it("decodes into data that does not alias the input", () => {
    const input = encodeMessage(samples[0]!);
    const decoded = decodeMessage(input) as Extract<Message, { type: "AppendEntries" }>;
    input.fill(0);
    expect(decoded.entries[0]!.data).toEqual(filled(300));
    expect(decoded.entries[0]!.data.constructor).toBe(Uint8Array);
  });

  it("decodes from a Node Buffer as well", () => {
    const encoded = encodeMessage(samples[3]!);
    expect(decodeMessage(Buffer.from(encoded))).toEqual(samples[3]);
  });

  it("is compact: a heartbeat with small numbers is a few bytes", () => {
    const hb: Message = { type: "Heartbeat", from: "n1", to: "n2", term: 12, commit: 5000, readRound: 3 };
    expect(encodeMessage(hb).length).toBe(1 + 3 + 3 + 1 + 2 + 1);
  });

  it("round-trips a handshake", () => {
    const h = { clusterId: "prod-éu", nodeId: "node-7" };
    expect(decodeHandshake(encodeHandshake(h))).toEqual(h);
  });
});

describe("wire codec: encoding refuses invalid messages", () => {
  const base = { type: "Heartbeat", from: "a", to: "b", term: 1, commit: 1, readRound: 0 } as const;
  const cases: [string, unknown, RegExp][] = [
    ["a negative term", { ...base, term: -1 }, /term must be a non-negative safe integer/],
    ["a fractional commit", { ...base, commit: 1.5 }, /commit/],
    ["an unsafe integer", { ...base, commit: 2 ** 53 }, /commit/],
    ["NaN", { ...base, readRound: Number.NaN }, /readRound/],
    ["a string number", { ...base, term: "1" }, /term must be a number/],
    ["an empty id", { ...base, from: "" }, /from must be 1 to 255/],
    ["a long id", { ...base, to: "x".repeat(256) }, /to must be 1 to 255/],
    ["a lone surrogate", { ...base, from: "a\uD800b" }, /lone surrogate/],
    ["an unknown type", { ...base, type: "Gossip" }, /unknown message type/],
    ["a non-boolean flag", { type: "RequestVoteResponse", from: "a", to: "b", term: 1, preVote: 1, granted: true, commit: 0, commitTerm: 0 }, /preVote must be a boolean/],
    ["an unknown entry type", { type: "Propose", from: "a", to: "b", term: 1, requestId: 1, entries: [{ type: "blob", data: new Uint8Array(0) }] }, /entries\[0\]\.type/],
    ["non-Uint8Array data", { type: "Propose", from: "a", to: "b", term: 1, requestId: 1, entries: [{ type: "command", data: [1, 2] }] }, /entries\[0\]\.data must be a Uint8Array/],
    ["entries that are not an array", { type: "Propose", from: "a", to: "b", term: 1, requestId: 1, entries: {} }, /entries must be an array/],
    [
      "a config id that is not a string",
      { type: "InstallSnapshot", from: "a", to: "b", term: 1, meta: { index: 1, term: 1, config: { voters: [1], learners: [], outgoingVoters: [] } }, offset: 0, data: new Uint8Array(0), done: true },
      /meta\.config\.voters\[0\] must be a string/,
    ],
  ];
  for (const [what, message, pattern] of cases) {
    it(`refuses ${what}`, () => {
      expect(() => encodeMessage(message as Message)).toThrow(pattern);
    });
  }
});

describe("wire codec: decoding rejects malformed input with CORRUPT", () => {
  it("rejects empty input", () => expectCorrupt(new Uint8Array(0), /truncated before type/));
  it("rejects an unknown type tag", () => {
    expectCorrupt(bytes(0), /unknown message type tag 0/);
    expectCorrupt(bytes(14, 1, 0x61, 1, 0x62, 0), /unknown message type tag 14/);
  });
  it("rejects an empty id", () => expectCorrupt(bytes(3, 0, 1, 0x62, 1, 0, 0), /from is empty/));
  it("rejects an id longer than the bytes left", () => expectCorrupt(bytes(3, 200, 0x61), /from needs 200 bytes, 1 left/));
  it("rejects invalid UTF-8 in an id", () => {
    expectCorrupt(bytes(3, 2, 0xc3, 0x28, 1, 0x62, 1, 0, 0), /from is not valid UTF-8/);
    expectCorrupt(bytes(3, 1, 0x61, 3, 0xed, 0xa0, 0x80, 1, 0, 0), /to is not valid UTF-8/); // an encoded surrogate
    expectCorrupt(bytes(3, 1, 0x61, 2, 0xc0, 0x80, 1, 0, 0), /to is not valid UTF-8/); // overlong NUL
  });
  it("rejects a truncated integer", () => expectCorrupt(heartbeatWith(0x80), /truncated inside commit/));
  it("rejects a non-minimal integer", () => expectCorrupt(heartbeatWith(0x81, 0x00, 0), /commit is not minimally encoded/));
  it("rejects an integer above 2^53 - 1", () => {
    expectCorrupt(heartbeatWith(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x10, 0), /commit exceeds 2\^53 - 1/);
    // 2^53 - 1 itself is fine.
    const ok = decodeMessage(heartbeatWith(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f, 0));
    expect((ok as { commit: number }).commit).toBe(MAX);
  });
  it("rejects an integer longer than 8 bytes", () => {
    expectCorrupt(heartbeatWith(0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0), /commit is longer than 8 bytes/);
  });
  it("rejects a boolean other than 0 or 1", () => {
    expectCorrupt(bytes(2, 1, 0x61, 1, 0x62, 1, 2, 0, 0, 0), /success must be 0 or 1, got 2/);
  });
  it("rejects unknown flag bits", () => {
    expectCorrupt(bytes(6, 1, 0x61, 1, 0x62, 1, 0x04), /unknown flags bits 0x4/);
    expectCorrupt(bytes(5, 1, 0x61, 1, 0x62, 1, 0x80, 0, 0), /unknown flags bits 0x80/);
  });
  it("rejects an unknown entry type", () => {
    expectCorrupt(bytes(7, 1, 0x61, 1, 0x62, 1, 1, 1, 3, 0), /unknown entries\[0\]\.type 3/);
  });
  it("rejects an entry count larger than the bytes present could hold", () => {
    // AppendEntries claiming 1,000,000 entries in 8 bytes: refused up front, without looping.
    const input = bytes(1, 1, 0x61, 1, 0x62, 1, 0, 0, 0, 0xc0, 0x84, 0x3d, 1, 1, 0, 0, 1, 1, 0, 0);
    expectCorrupt(input, /entries count 1000000 exceeds what 8 bytes can hold/);
  });
  it("rejects a voter count larger than the bytes present could hold", () => {
    expectCorrupt(bytes(12, 1, 0x61, 1, 0x62, 1, 1, 1, 5, 1, 0x61), /meta\.config\.voters count 5/);
  });
  it("rejects a data length beyond the input", () => {
    expectCorrupt(bytes(7, 1, 0x61, 1, 0x62, 1, 1, 1, 0, 0x80, 0x01, 1, 2), /entries\[0\]\.data needs 128 bytes, 2 left/);
  });
  it("rejects trailing bytes", () => expectCorrupt(heartbeatWith(0, 0, 0), /1 trailing bytes/));
  it("rejects every truncation of every sample", () => {
    for (const sample of samples) {
      const encoded = encodeMessage(sample);
      if (encoded.length > 4096) continue; // the large ones add time, not coverage
      for (let cut = 0; cut < encoded.length; cut++) expectCorrupt(encoded.subarray(0, cut));
    }
  });
  it("reports the byte offset of the problem", () => {
    expectCorrupt(heartbeatWith(0x81, 0x00, 0), /at byte 6/);
  });
  it("rejects malformed handshakes", () => {
    const h = encodeHandshake({ clusterId: "c", nodeId: "n" });
    for (const bad of [h.subarray(0, 3), bytes(...h, 0), bytes(0, 1, 0x6e), bytes(1, 0x63, 0)]) {
      expect(() => decodeHandshake(bad)).toThrow(RaftError);
    }
  });
});

describe("frame decoder", () => {
  const frames = samples.slice(0, 8).map((m) => encodeFrame(FrameKind.Message, encodeMessage(m)));
  const stream = Uint8Array.from(frames.flatMap((f) => [...f]));

  function drain(decoder: FrameDecoder): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (let f = decoder.next(); f !== null; f = decoder.next()) {
      expect(f.kind).toBe(FrameKind.Message);
      out.push(Uint8Array.from(f.payload)); // copy: views are valid only until the next push
    }
    return out;
  }

  const expected = samples.slice(0, 8).map((m) => encodeMessage(m));

  it("decodes frames coalesced in one chunk", () => {
    const d = new FrameDecoder();
    d.push(stream);
    expect(normalize(drain(d))).toEqual(normalize(expected));
    expect(d.bufferedBytes).toBe(0);
  });

  it("decodes frames split at irregular points", () => {
    const d = new FrameDecoder();
    const got: Uint8Array[] = [];
    for (let i = 0; i < stream.length; i += 1 + (i % 977)) {
      d.push(stream.subarray(i, Math.min(stream.length, i + 1 + (i % 977))));
      got.push(...drain(d));
    }
    expect(normalize(got)).toEqual(normalize(expected));
  });

  it("decodes a stream delivered one byte at a time", () => {
    const small = Uint8Array.from(frames.slice(1, 4).flatMap((f) => [...f]));
    const d = new FrameDecoder();
    const got: Uint8Array[] = [];
    for (const b of small) {
      d.push(bytes(b));
      got.push(...drain(d));
    }
    expect(got).toEqual(expected.slice(1, 4));
  });

  it("refuses an oversized length prefix as soon as it arrives, before buffering the frame", () => {
    const d = new FrameDecoder({ maxFrameBytes: 1024 });
    d.push(bytes(0, 0, 4));
    expect(d.next()).toBeNull();
    d.push(bytes(1));
    expect(() => d.next()).toThrow(/frame length 1025 exceeds maxFrameBytes 1024/);
    expect(d.bufferedBytes).toBe(0);
    expect(() => d.push(bytes(1))).toThrow(RaftError); // spent
  });

  it("refuses the largest possible prefix with the default bound", () => {
    const d = new FrameDecoder();
    d.push(bytes(0xff, 0xff, 0xff, 0xff));
    expect(() => d.next()).toThrow(new RegExp(`exceeds maxFrameBytes ${DEFAULT_MAX_FRAME_BYTES}`));
  });

  it("refuses a length below the header and an unknown version", () => {
    const d1 = new FrameDecoder();
    d1.push(bytes(0, 0, 0, 1, 1));
    expect(() => d1.next()).toThrow(/frame length 1 is below 2/);
    const d2 = new FrameDecoder();
    d2.push(bytes(0, 0, 0, 10, 2));
    expect(() => d2.next()).toThrow(/unsupported protocol version 2/);
  });

  it("applies a changed bound from the next frame on", () => {
    const d = new FrameDecoder({ maxFrameBytes: 16 });
    const big = encodeFrame(FrameKind.Message, new Uint8Array(100));
    d.push(encodeFrame(FrameKind.Handshake, bytes(1, 2)));
    d.push(big);
    expect(d.next()?.kind).toBe(FrameKind.Handshake);
    d.maxFrameBytes = 1000;
    expect(d.next()?.payload.length).toBe(100);
  });

  it("validates its options", () => {
    expect(() => new FrameDecoder({ maxFrameBytes: 1 })).toThrow(RangeError);
    expect(() => new FrameDecoder({ maxFrameBytes: 2 ** 32 })).toThrow(/maxFrameBytes/);
  });
});

describe("wire codec: tags are stable", () => {
  it("encodes each type with its documented tag", () => {
    const tags: Record<MessageType, number> = {
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
    for (const sample of samples) expect(encodeMessage(sample)[0]).toBe(tags[sample.type]);
  });
});
