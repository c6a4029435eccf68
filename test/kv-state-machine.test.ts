import { describe, expect, it } from "vitest";
import type { KvCommand } from "../src/kv/commands.js";
import { KvStateMachine, defaultKvLimits, validateKvCommand } from "../src/kv/kv-state-machine.js";
import { RaftError } from "../src/errors.js";
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
    expect(Buffer.from(await b.snapshot()).equals(Buffer.from(await a.snapshot()))).toBe(true);
  });

  it("restores from a snapshot and continues identically", async () => {
    const commands = randomCommands(9, 600);
    const a = new KvStateMachine();
    applyAll(a, commands.slice(0, 300));
    const b = new KvStateMachine();
    b.restore(await a.snapshot());
    expect(b.lastApplied).toEqual(a.lastApplied);
    expect(applyAll(b, commands.slice(300))).toEqual(applyAll(a, commands.slice(300)));
    expect(b.list()).toEqual(a.list());
  });

  it("captures the state when called: writes during serialisation are not in the snapshot", async () => {
    const kv = new KvStateMachine();
    let index = 0;
    for (let i = 0; i < 120_000; i++) kv.apply({ op: "put", key: `k${String(i).padStart(6, "0")}`, value: "v" }, { index: ++index, term: 1 });
    const pending = kv.snapshot(); // serialised in chunks, across several turns of the event loop
    kv.apply({ op: "put", key: "late", value: "x" }, { index: ++index, term: 1 });
    kv.apply({ op: "delete", key: "k000000" }, { index: ++index, term: 1 });
    const restored = new KvStateMachine();
    restored.restore(await pending);
    expect(restored.size).toBe(120_000);
    expect(restored.get("late")).toBeUndefined();
    expect(restored.get("k000000")).toBe("v");
    expect(restored.lastApplied.index).toBe(120_000);
  });

  it("snapshots and restores a 1,000,000-key state", async () => {
    const kv = new KvStateMachine();
    for (let i = 0; i < 1_000_000; i++) kv.apply({ op: "put", key: `key/${String(i).padStart(7, "0")}`, value: `value-${i}` }, { index: i + 1, term: 1 });
    const data = await kv.snapshot();
    const restored = new KvStateMachine();
    restored.restore(data);
    expect(restored.size).toBe(1_000_000);
    expect(restored.get("key/0999999")).toBe("value-999999");
    expect(restored.list({ prefix: "key/000001", limit: 3 }).map((e) => e.key)).toEqual(["key/0000010", "key/0000011", "key/0000012"]);
  }, 30_000);

  it("refuses a corrupt snapshot with CORRUPT and keeps its state", () => {
    const kv = new KvStateMachine();
    applyAll(kv, [{ op: "put", key: "a", value: "1" }]);
    const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
    for (const data of [
      new Uint8Array([0xff]),
      enc({ version: 2 }),
      enc({ version: 1, lastApplied: { index: 1, term: 1 }, entries: [["b", "1"], ["a", "2"]] }),
      enc({ version: 1, lastApplied: { index: 1, term: 1 }, entries: [["a", 1]] }),
    ]) {
      expect(() => kv.restore(data)).toThrow(expect.objectContaining({ code: "CORRUPT" }));
    }
    expect(kv.list()).toEqual([{ key: "a", value: "1" }]);
  });
});
