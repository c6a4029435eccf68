import { describe, expect, it } from "vitest";
import type { KvCommand } from "../src/kv/commands.js";
import { KvStateMachine, defaultKvLimits, validateKvCommand } from "../src/kv/kv-state-machine.js";
import { RaftError } from "../src/errors.js";
import type { SnapshotData } from "../src/core/messages.js";
import { collectChunks, snapshotDataOf } from "../src/snapshot-data.js";
import { Prng } from "../src/testing/prng.js";

/** Applies commands at consecutive indexes after the machine's last applied one. */
function applyAll(kv: KvStateMachine, commands: readonly KvCommand[], term = 1) {
  return commands.map((cmd) => kv.apply(cmd, { index: kv.lastApplied.index + 1, term }));
}

/** Uniform draws in [0, 1) from the simulator's seeded generator. */
function seeded(seed: number): () => number {
  const rng = new Prng(seed);
  return () => rng.next();
}

describe("KvStateMachine: commands", () => {
  it("put sets a key and reports the previous value", () => {
    const kv = new KvStateMachine();
    expect(applyAll(kv, [{ op: "put", key: "a", value: "1" }, { op: "put", key: "a", value: "2" }])).toEqual([
      { ok: true, previous: null },
      { ok: true, previous: "1" },
    ]);
    expect(kv.get("a")).toBe("2");
    expect(kv.has("a")).toBe(true);
    expect(kv.size).toBe(1);
  });

  it("delete removes a key; ok says whether it existed", () => {
    const kv = new KvStateMachine();
    const results = applyAll(kv, [
      { op: "delete", key: "a" },
      { op: "put", key: "a", value: "1" },
      { op: "delete", key: "a" },
    ]);
    expect(results).toEqual([
      { ok: false, previous: null },
      { ok: true, previous: null },
      { ok: true, previous: "1" },
    ]);
    expect(kv.get("a")).toBeUndefined();
    expect(kv.has("a")).toBe(false);
    expect(kv.size).toBe(0);
    expect(kv.list()).toEqual([]);
  });

  it("cas writes only when the current value matches expected", () => {
    const kv = new KvStateMachine();
    applyAll(kv, [{ op: "put", key: "a", value: "1" }]);
    expect(applyAll(kv, [{ op: "cas", key: "a", expected: "0", value: "2" }])).toEqual([{ ok: false, previous: "1" }]);
    expect(kv.get("a")).toBe("1");
    expect(applyAll(kv, [{ op: "cas", key: "a", expected: "1", value: "2" }])).toEqual([{ ok: true, previous: "1" }]);
    expect(kv.get("a")).toBe("2");
  });

  it("cas with expected null creates only when absent", () => {
    const kv = new KvStateMachine();
    const results = applyAll(kv, [
      { op: "cas", key: "a", expected: null, value: "1" },
      { op: "cas", key: "a", expected: null, value: "2" },
    ]);
    expect(results).toEqual([
      { ok: true, previous: null },
      { ok: false, previous: "1" },
    ]);
    expect(kv.get("a")).toBe("1");
  });

  it("cas with value null deletes; a matching null-to-null cas succeeds and changes nothing", () => {
    const kv = new KvStateMachine();
    applyAll(kv, [{ op: "put", key: "a", value: "1" }]);
    expect(applyAll(kv, [{ op: "cas", key: "a", expected: "1", value: null }])).toEqual([{ ok: true, previous: "1" }]);
    expect(kv.has("a")).toBe(false);
    expect(kv.list()).toEqual([]);
    expect(applyAll(kv, [{ op: "cas", key: "a", expected: null, value: null }])).toEqual([{ ok: true, previous: null }]);
    expect(kv.size).toBe(0);
  });

  it("tracks lastApplied and refuses an index that does not increase", () => {
    const kv = new KvStateMachine();
    expect(kv.lastApplied).toEqual({ index: 0, term: 0 });
    kv.apply({ op: "put", key: "a", value: "1" }, { index: 3, term: 2 });
    expect(kv.lastApplied).toEqual({ index: 3, term: 2 });
    expect(() => kv.apply({ op: "put", key: "a", value: "2" }, { index: 3, term: 2 })).toThrow(RaftError);
    expect(kv.get("a")).toBe("1");
  });
});

describe("KvStateMachine: list", () => {
  const keys = ["b", "a", "ab", "abc", "b/1", "b/2", "b/10", "c", "a/x", "ba"];
  const kv = new KvStateMachine();
  applyAll(kv, keys.map((key) => ({ op: "put" as const, key, value: key.toUpperCase() })));

  it("returns every entry sorted by key", () => {
    expect(kv.list().map((e) => e.key)).toEqual([...keys].sort());
    expect(kv.list()[0]).toEqual({ key: "a", value: "A" });
  });

  it("filters by prefix", () => {
    expect(kv.list({ prefix: "b/" }).map((e) => e.key)).toEqual(["b/1", "b/10", "b/2"]);
    expect(kv.list({ prefix: "a" }).map((e) => e.key)).toEqual(["a", "a/x", "ab", "abc"]);
    expect(kv.list({ prefix: "zz" })).toEqual([]);
  });

  it("pages with limit and after", () => {
    expect(kv.list({ limit: 3 }).map((e) => e.key)).toEqual(["a", "a/x", "ab"]);
    expect(kv.list({ after: "ab", limit: 2 }).map((e) => e.key)).toEqual(["abc", "b"]);
    expect(kv.list({ after: "aa" }).map((e) => e.key)[0]).toBe("ab"); // `after` need not be a key
    expect(kv.list({ prefix: "b/", after: "b/1" }).map((e) => e.key)).toEqual(["b/10", "b/2"]);
    expect(kv.list({ prefix: "b", after: "a" }).map((e) => e.key)).toEqual(["b", "b/1", "b/10", "b/2", "ba"]);
    expect(kv.list({ limit: 0 })).toEqual([]);
    // Walking pages visits every key once.
    const seen: string[] = [];
    let after: string | undefined;
    for (;;) {
      const page = kv.list(after === undefined ? { limit: 4 } : { limit: 4, after });
      if (page.length === 0) break;
      seen.push(...page.map((e) => e.key));
      after = page[page.length - 1]!.key;
    }
    expect(seen).toEqual([...keys].sort());
  });

  it("rejects a bad limit", () => {
    expect(() => kv.list({ limit: -1 })).toThrow(RangeError);
    expect(() => kv.list({ limit: 1.5 })).toThrow(/limit/);
  });

  it("stays sorted through inserts and deletes (against a sorted copy)", () => {
    const rnd = seeded(7);
    const m = new KvStateMachine();
    const ref = new Map<string, string>();
    for (let i = 0; i < 2000; i++) {
      const key = `k${Math.floor(rnd() * 300)}`;
      if (rnd() < 0.4) {
        applyAll(m, [{ op: "delete", key }]);
        ref.delete(key);
      } else {
        applyAll(m, [{ op: "put", key, value: String(i) }]);
        ref.set(key, String(i));
      }
    }
    const expected = [...ref.keys()].sort().map((key) => ({ key, value: ref.get(key)! }));
    expect(m.list()).toEqual(expected);
    expect(m.list({ prefix: "k1" })).toEqual(expected.filter((e) => e.key.startsWith("k1")));
  });
});

describe("KvStateMachine: limits", () => {
  it("has documented defaults", () => {
    expect(new KvStateMachine().limits).toEqual({ maxKeyBytes: 1024, maxValueBytes: 1024 * 1024 });
    expect(defaultKvLimits).toEqual({ maxKeyBytes: 1024, maxValueBytes: 1048576 });
  });

  it("validates its options, naming the option", () => {
    expect(() => new KvStateMachine({ maxKeyBytes: 0 })).toThrow(/maxKeyBytes/);
    expect(() => new KvStateMachine({ maxValueBytes: -1 })).toThrow(RangeError);
    expect(() => new KvStateMachine({ maxValueBytes: 1.5 })).toThrow(/maxValueBytes/);
  });

  it("refuses oversized commands at apply without writing, identically on every node", () => {
    const nodes = [new KvStateMachine({ maxKeyBytes: 4, maxValueBytes: 8 }), new KvStateMachine({ maxKeyBytes: 4, maxValueBytes: 8 })];
    const commands: KvCommand[] = [
      { op: "put", key: "k", value: "small" },
      { op: "put", key: "k", value: "123456789" }, // 9 bytes
      { op: "put", key: "toolong", value: "v" },
      { op: "put", key: "k", value: "ééééé" }, // 5 characters, 10 bytes
      { op: "cas", key: "k", expected: "small", value: "x".repeat(9) },
      { op: "cas", key: "k", expected: "x".repeat(9), value: "y" },
      { op: "put", key: "", value: "v" },
      { op: "delete", key: "toolong" },
      { op: "put", key: "😀", value: "😀😀" }, // 4-byte key, 8-byte value: at the limits
    ];
    const results = nodes.map((kv) => applyAll(kv, commands));
    expect(results[0]).toEqual(results[1]);
    expect(results[0]).toEqual([
      { ok: true, previous: null },
      { ok: false, previous: "small" },
      { ok: false, previous: null },
      { ok: false, previous: "small" },
      { ok: false, previous: "small" },
      { ok: false, previous: "small" },
      { ok: false, previous: null },
      { ok: false, previous: null },
      { ok: true, previous: null },
    ]);
    expect(nodes[0]!.list()).toEqual([
      { key: "k", value: "small" },
      { key: "😀", value: "😀😀" },
    ]);
    expect(nodes[0]!.lastApplied.index).toBe(commands.length);
  });

  it("refuses malformed commands at apply without throwing", () => {
    const kv = new KvStateMachine();
    const bad = [null, { op: "append", key: "a", value: "b" }, { op: "put", key: 1, value: "b" }, { op: "put", key: "a" }];
    for (const cmd of bad) {
      expect(kv.apply(cmd as unknown as KvCommand, { index: kv.lastApplied.index + 1, term: 1 })).toEqual({ ok: false, previous: null });
    }
    expect(kv.size).toBe(0);
  });

  it("validateKvCommand throws TypeError for malformed and RangeError for oversized commands", () => {
    const limits = { maxKeyBytes: 4, maxValueBytes: 8 };
    expect(() => validateKvCommand({ op: "put", key: "k", value: "v" }, limits)).not.toThrow();
    expect(() => validateKvCommand({ op: "cas", key: "k", expected: null, value: null }, limits)).not.toThrow();
    expect(() => validateKvCommand({ op: "delete", key: "k" })).not.toThrow();
    expect(() => validateKvCommand("put", limits)).toThrow(TypeError);
    expect(() => validateKvCommand({ op: "get", key: "k" }, limits)).toThrow(/unknown KV op "get"/);
    expect(() => validateKvCommand({ op: "put", key: "k", value: null }, limits)).toThrow(TypeError);
    expect(() => validateKvCommand({ op: "cas", key: "k", value: "v" }, limits)).toThrow(/expected must be a string or null/);
    expect(() => validateKvCommand({ op: "put", key: "", value: "v" }, limits)).toThrow(RangeError);
    expect(() => validateKvCommand({ op: "put", key: "kkkkk", value: "v" }, limits)).toThrow(/key is 5 bytes; maxKeyBytes is 4/);
    expect(() => validateKvCommand({ op: "put", key: "k", value: "ééééé" }, limits)).toThrow(/value is 10 bytes; maxValueBytes is 8/);
    expect(() => validateKvCommand({ op: "put", key: "k", value: "x".repeat(1024 * 1024 + 1) })).toThrow(RangeError);
    expect(() => validateKvCommand({ op: "put", key: "k", value: "x".repeat(1024 * 1024) })).not.toThrow();
  });
});

/** A snapshot's bytes, read through to the end. */
function snapshotOf(kv: KvStateMachine): Promise<Uint8Array> {
  return collectChunks(kv.snapshot() as AsyncIterable<Uint8Array>);
}

/** A handle on `bytes` whose reads return at most `most` bytes, so that lines and UTF-8 sequences are cut across reads. */
function inPieces(bytes: Uint8Array, most = 7): SnapshotData {
  const whole = snapshotDataOf(bytes);
  return { byteLength: whole.byteLength, read: (offset, length) => whole.read(offset, Math.min(length, most)) };
}

/** A version-2 snapshot made by hand: the header and entry lines, each JSON-encoded and newline-terminated. */
function ndjson(...lines: unknown[]): Uint8Array {
  return new TextEncoder().encode(lines.map((line) => JSON.stringify(line) + "\n").join(""));
}

const header = (size: number, lastApplied = { index: 1, term: 1 }) => ({ version: 2, lastApplied, size });

/** What restore() must leave alone when it fails. */
function stateOf(kv: KvStateMachine) {
  return { entries: kv.list(), lastApplied: kv.lastApplied, size: kv.size };
}

/** Fills a machine with `count` keys k000000, k000001... with value "v". */
function filled(count: number): KvStateMachine {
  const kv = new KvStateMachine();
  for (let i = 0; i < count; i++) kv.apply({ op: "put", key: `k${String(i).padStart(6, "0")}`, value: "v" }, { index: i + 1, term: 1 });
  return kv;
}

describe("KvStateMachine: determinism and snapshots", () => {
  function randomCommands(seed: number, count: number): KvCommand[] {
    const rnd = seeded(seed);
    const pick = () => `v${Math.floor(rnd() * 4)}`;
    const out: KvCommand[] = [];
    for (let i = 0; i < count; i++) {
      const key = `k${Math.floor(rnd() * 20)}`;
      const r = rnd();
      if (r < 0.4) out.push({ op: "put", key, value: pick() });
      else if (r < 0.6) out.push({ op: "delete", key });
      else out.push({ op: "cas", key, expected: rnd() < 0.3 ? null : pick(), value: rnd() < 0.2 ? null : pick() });
    }
    return out;
  }

  it.each([1, 2, 3])("two machines fed the same commands end equal (seed %i)", async (seed) => {
    const commands = randomCommands(seed, 1000);
    const a = new KvStateMachine();
    const b = new KvStateMachine();
    // The commands reach b through JSON, as they would through the default codec.
    const ra = applyAll(a, commands);
    const rb = applyAll(b, JSON.parse(JSON.stringify(commands)) as KvCommand[]);
    expect(rb).toEqual(ra);
    expect(b.list()).toEqual(a.list());
    expect(b.lastApplied).toEqual(a.lastApplied);
    expect(Buffer.from(await snapshotOf(b)).equals(Buffer.from(await snapshotOf(a)))).toBe(true);
  });

  it("restores from a snapshot and continues identically", async () => {
    const commands = randomCommands(9, 600);
    const a = new KvStateMachine();
    applyAll(a, commands.slice(0, 300));
    const b = new KvStateMachine();
    await b.restore(snapshotDataOf(await snapshotOf(a)));
    expect(b.lastApplied).toEqual(a.lastApplied);
    expect(applyAll(b, commands.slice(300))).toEqual(applyAll(a, commands.slice(300)));
    expect(b.list()).toEqual(a.list());
  });

  it("streams a header line, then one line of at most 5,000 entries per chunk", async () => {
    const kv = filled(12_345);
    const chunks: Uint8Array[] = [];
    for await (const chunk of kv.snapshot()) chunks.push(chunk);
    const lines = chunks.map((c) => new TextDecoder().decode(c));
    expect(lines.every((line) => line.endsWith("\n") && line.indexOf("\n") === line.length - 1)).toBe(true);
    expect(JSON.parse(lines[0]!)).toEqual({ version: 2, lastApplied: { index: 12_345, term: 1 }, size: 12_345 });
    const pages = lines.slice(1).map((line) => JSON.parse(line) as [string, string][]);
    expect(pages.map((p) => p.length)).toEqual([5000, 5000, 2345]);
    expect(pages.flat()).toEqual(kv.list().map((e) => [e.key, e.value]));
  });

  it("round-trips an empty map: the header alone", async () => {
    const bytes = await snapshotOf(new KvStateMachine());
    expect(new TextDecoder().decode(bytes)).toBe('{"version":2,"lastApplied":{"index":0,"term":0},"size":0}\n');
    const kv = filled(3);
    await kv.restore(snapshotDataOf(bytes));
    expect(stateOf(kv)).toEqual({ entries: [], lastApplied: { index: 0, term: 0 }, size: 0 });
  });

  it("restores from reads of at most 7 bytes, with multi-byte UTF-8 and escapes cut across them", async () => {
    const kv = new KvStateMachine();
    const entries: [string, string][] = [
      ["a", ""],
      ["é", "ééé"],
      ["ключ", "значение"],
      ["日本語", "テキスト"],
      ["😀", "😀😀 and 🎉"],
      ["line", "one\ntwo\r\nthree"], // a newline inside a value is escaped, never a raw 0x0A
      ["quote\"back\\slash", "\u2028\u2029\u0000"],
    ];
    applyAll(kv, entries.map(([key, value]) => ({ op: "put" as const, key, value })));
    const bytes = await snapshotOf(kv);
    expect(bytes.filter((b) => b === 0x0a)).toHaveLength(2); // the header line and one entry line
    for (const most of [1, 2, 3, 7]) {
      const restored = new KvStateMachine();
      await restored.restore(inPieces(bytes, most));
      expect(stateOf(restored)).toEqual(stateOf(kv));
    }
  });

  it("captures the state when called: writes before and during the iteration are not in the snapshot", async () => {
    const kv = filled(12_000); // three entry lines
    const atCall = stateOf(kv);
    let index = kv.lastApplied.index;
    const put = (key: string, value: string) => kv.apply({ op: "put", key, value }, { index: ++index, term: 1 });
    const del = (key: string) => kv.apply({ op: "delete", key }, { index: ++index, term: 1 });
    const iterator = kv.snapshot()[Symbol.asyncIterator]();
    // Before the first chunk: an insert, a delete and an overwrite.
    put("late", "x");
    del("k000000");
    put("k011999", "changed");
    const chunks: Uint8Array[] = [];
    for (let i = 0; i < 2; i++) chunks.push((await iterator.next()).value as Uint8Array); // header and first line
    // Mid-way: writes to keys in lines already written and still to come.
    put("k000001", "changed");
    del("k006000");
    put("k008000x", "inserted");
    put("k006000", "back");
    for (let r = await iterator.next(); r.done !== true; r = await iterator.next()) chunks.push(r.value);
    const restored = new KvStateMachine();
    await restored.restore(snapshotDataOf(await collectChunks((async function* () { yield* chunks; })())));
    expect(stateOf(restored)).toEqual(atCall);
    // The live machine has every write.
    expect([kv.get("late"), kv.get("k000000"), kv.get("k011999"), kv.get("k006000"), kv.get("k008000x")]).toEqual(["x", undefined, "changed", "back", "inserted"]);
  });

  it("refuses a second snapshot while one is pending, until it ends, fails or is abandoned", async () => {
    const kv = filled(6000);
    const refused = expect.objectContaining({ code: "INVALID_STATE" });
    // Read to the end.
    const first = kv.snapshot();
    expect(() => kv.snapshot()).toThrow(refused);
    await collectChunks(first);
    // Abandoned after one chunk.
    for await (const _ of kv.snapshot()) break;
    // Abandoned before its first chunk (a generator alone would ignore this).
    const unread = kv.snapshot();
    expect(() => kv.snapshot()).toThrow(refused);
    await unread[Symbol.asyncIterator]().return?.();
    // Still serialises correctly after all that.
    const restored = new KvStateMachine();
    await restored.restore(snapshotDataOf(await snapshotOf(kv)));
    expect(stateOf(restored)).toEqual(stateOf(kv));
  });

  it("a restore during serialisation leaves the pending snapshot describing the state at its call", async () => {
    const kv = filled(6000);
    const atCall = stateOf(kv);
    const pending = kv.snapshot()[Symbol.asyncIterator]();
    const chunks = [(await pending.next()).value as Uint8Array];
    await kv.restore(snapshotDataOf(await snapshotOf(new KvStateMachine()))); // replaces the state, and the guard with it
    kv.apply({ op: "put", key: "k000001", value: "after restore" }, { index: 1, term: 2 });
    for (let r = await pending.next(); r.done !== true; r = await pending.next()) chunks.push(r.value);
    const restored = new KvStateMachine();
    await restored.restore(snapshotDataOf(await collectChunks((async function* () { yield* chunks; })())));
    expect(stateOf(restored)).toEqual(atCall);
    expect(stateOf(kv)).toEqual({ entries: [{ key: "k000001", value: "after restore" }], lastApplied: { index: 1, term: 2 }, size: 1 });
  });

  it("snapshots and restores a 1,000,000-key state", async () => {
    const kv = new KvStateMachine();
    for (let i = 0; i < 1_000_000; i++) kv.apply({ op: "put", key: `key/${String(i).padStart(7, "0")}`, value: `value-${i}` }, { index: i + 1, term: 1 });
    const data = snapshotDataOf(await snapshotOf(kv));
    const restored = new KvStateMachine();
    await restored.restore(data);
    expect(restored.size).toBe(1_000_000);
    expect(restored.lastApplied).toEqual({ index: 1_000_000, term: 1 });
    expect(restored.get("key/0999999")).toBe("value-999999");
    expect(restored.list({ prefix: "key/000001", limit: 3 }).map((e) => e.key)).toEqual(["key/0000010", "key/0000011", "key/0000012"]);
  }, 30_000);

  describe("refuses a corrupt snapshot with CORRUPT and keeps its state", () => {
    const enc = (text: string) => new TextEncoder().encode(text);
    const concat = (a: Uint8Array, b: Uint8Array) => new Uint8Array([...a, ...b]);
    const valid = ndjson(header(3), [["a", "1"], ["b", "é😀"]], [["c", "3"]]);
    const cases: [string, Uint8Array, RegExp][] = [
      ["empty", new Uint8Array(0), /empty/],
      ["garbage", enc("not a snapshot\n"), /line 1 is not JSON/],
      ["garbage without a newline", enc("not a snapshot"), /no complete header line/],
      ["a long first line without a newline", new Uint8Array(10_000).fill(0x20), /no complete header line/],
      ["invalid UTF-8", concat(ndjson(header(1)), new Uint8Array([0x5b, 0x5b, 0x22, 0xff, 0x22, 0x2c, 0x22, 0x22, 0x5d, 0x5d, 0x0a])), /line 2 is not valid UTF-8/],
      ["a trailing partial line", concat(valid, enc('[["d"')), /line 4 has no final newline/],
      ["a trailing blank line", concat(valid, enc("\n")), /line 4 is not JSON/],
      ["more entries than announced", concat(valid, ndjson([["d", "4"]])), /past the 3/],
      ["fewer entries than announced", ndjson(header(4), [["a", "1"], ["b", "2"]], [["c", "3"]]), /announces 4 entries but the snapshot holds 3/],
      ["version 1 (one JSON document)", enc(JSON.stringify({ version: 1, lastApplied: { index: 1, term: 1 }, entries: [["a", "1"]] })), /version 1 is not supported/],
      ["version 1 with a newline", enc(JSON.stringify({ version: 1, lastApplied: { index: 1, term: 1 }, entries: [] }) + "\n"), /version 1 is not supported/],
      ["a future version", ndjson({ ...header(0), version: 3 }), /version 3 is not supported/],
      ["no version", ndjson({ lastApplied: { index: 1, term: 1 }, size: 0 }), /version missing is not supported/],
      ["a header that is an array", ndjson([["a", "1"]]), /not a header object/],
      ["a malformed lastApplied", ndjson(header(0, { index: -1, term: 1 })), /lastApplied/],
      ["a malformed size", ndjson({ ...header(0), size: "3" }), /size/],
      ["unsorted keys in a line", ndjson(header(2), [["b", "1"], ["a", "2"]]), /key "a" does not sort after "b"/],
      ["unsorted keys across lines", ndjson(header(2), [["b", "1"]], [["a", "2"]]), /does not sort after/],
      ["a key twice", ndjson(header(2), [["a", "1"]], [["a", "2"]]), /twice/],
      ["an empty key", ndjson(header(1), [["", "1"]]), /key "" is empty/],
      ["a value that is not a string", ndjson(header(1), [["a", 1]]), /entry 0 \(line 2\) is not a \[key, value\] pair of strings/],
      ["a pair of three", ndjson(header(1), [["a", "1", "x"]]), /not a \[key, value\] pair/],
      ["an empty entry line", ndjson(header(0), []), /not a non-empty array/],
      ["an entry line that is an object", ndjson(header(1), { a: "1" }), /not a non-empty array/],
    ];
    // Cut short at every byte: on a line boundary the entry count gives it away.
    for (let cut = 1; cut < valid.byteLength; cut++) cases.push([`truncated to ${cut} bytes`, valid.subarray(0, cut), /./]);

    it("accepts the uncorrupted snapshot these are made from", async () => {
      const kv = new KvStateMachine();
      await kv.restore(snapshotDataOf(valid));
      expect(kv.list()).toEqual([{ key: "a", value: "1" }, { key: "b", value: "é😀" }, { key: "c", value: "3" }]);
    });

    it.each(["whole", "in 7-byte pieces"])("read %s", async (how) => {
      const kv = new KvStateMachine();
      applyAll(kv, [{ op: "put", key: "old", value: "state" }]);
      const before = stateOf(kv);
      for (const [name, bytes, message] of cases) {
        const data = how === "whole" ? snapshotDataOf(bytes) : inPieces(bytes);
        const err = await kv.restore(data).then(
          () => null,
          (e: unknown) => e,
        );
        expect(err, name).toBeInstanceOf(RaftError);
        expect((err as RaftError).code, name).toBe("CORRUPT");
        expect((err as RaftError).message, name).toMatch(message);
        expect(stateOf(kv), name).toEqual(before);
      }
      // The machine still works: it applies, snapshots and restores.
      applyAll(kv, [{ op: "put", key: "new", value: "1" }]);
      const again = new KvStateMachine();
      await again.restore(snapshotDataOf(await snapshotOf(kv)));
      expect(stateOf(again)).toEqual(stateOf(kv));
    });

    it("refuses raw bytes with a TypeError that says what to pass", async () => {
      const kv = new KvStateMachine();
      await expect(kv.restore(valid as unknown as SnapshotData)).rejects.toThrow(/snapshotDataOf/);
    });
  });
});
