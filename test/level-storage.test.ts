import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, readFile, readdir, readlink, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { once } from "node:events";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { ClassicLevel } from "classic-level";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { Entry } from "../src/core/messages.js";
import type { Snapshot, SnapshotMeta } from "../src/core/messages.js";
import { RaftError } from "../src/errors.js";
import { snapshotBytes, snapshotDataOf } from "../src/snapshot-data.js";
import { LevelStorage } from "../src/storage/level-storage.js";
import { decodeEntry, encodeEntry } from "../src/storage/entry-encoding.js";

let dir: string;
let location: string;
const opened: LevelStorage[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "raftkit-level-"));
  location = join(dir, "db");
});
afterEach(async () => {
  vi.restoreAllMocks();
  for (const s of opened.splice(0)) await s.close().catch(() => {});
  await rm(dir, { recursive: true, force: true });
});

function storage(options: Partial<ConstructorParameters<typeof LevelStorage>[0]> = {}): LevelStorage {
  const s = new LevelStorage({ location, nodeId: "n1", ...options });
  opened.push(s);
  return s;
}

function entry(index: number, term = 1, size = 8): Entry {
  return { index, term, type: "command", data: new Uint8Array(size).fill(index & 0xff) };
}

function entries(from: number, to: number, term = 1): Entry[] {
  const out: Entry[] = [];
  for (let i = from; i <= to; i++) out.push(entry(i, term));
  return out;
}

/** The "e" + big-endian u64 key that LevelStorage stores entry `index` under. */
function entryKey(index: number): Uint8Array {
  const key = new Uint8Array(9);
  key[0] = 0x65;
  new DataView(key.buffer).setBigUint64(1, BigInt(index));
  return key;
}

/** Opens the store's LevelDB directly, runs `body`, closes it. */
async function raw(body: (db: ClassicLevel<Uint8Array, Uint8Array>) => Promise<void>): Promise<void> {
  const db = new ClassicLevel<Uint8Array, Uint8Array>(location, { keyEncoding: "view", valueEncoding: "view" });
  await db.open();
  try {
    await body(db);
  } finally {
    await db.close();
  }
}

async function rawKeys(): Promise<string[]> {
  let keys: string[] = [];
  await raw(async (db) => {
    keys = (await db.keys().all()).map((k) => Buffer.from(k).toString("hex"));
  });
  return keys;
}

/** A fresh store for node n1 holding entries 1..3 and a hard state, closed again. */
async function seed(): Promise<void> {
  const s = storage();
  await s.load();
  await s.save({ hardState: { term: 1, vote: "n1", commit: 2 }, entries: entries(1, 3) });
  await s.close();
}

async function failure(promise: Promise<unknown>): Promise<RaftError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(RaftError);
  return err as RaftError;
}

describe("LevelStorage options", () => {
  it("rejects bad options with TypeError/RangeError naming the option", () => {
    expect(() => new LevelStorage({ location: "", nodeId: "n1" })).toThrow(TypeError);
    expect(() => new LevelStorage({ location: "", nodeId: "n1" })).toThrow(/location/);
    expect(() => new LevelStorage({ location: "x", nodeId: "" })).toThrow(/nodeId/);
    expect(() => new LevelStorage({ location: "x", nodeId: 7 as unknown as string })).toThrow(TypeError);
    expect(() => new LevelStorage({ location: "x", nodeId: "n1", clusterId: "" })).toThrow(/clusterId/);
    expect(() => new LevelStorage({ location: "x", nodeId: "x".repeat(70_000) })).toThrow(RangeError);
    expect(() => new LevelStorage({ location: "x", nodeId: "n1", sync: "yes" as unknown as boolean })).toThrow(/sync/);
    expect(() => new LevelStorage({ location: "x", nodeId: "n1", logger: {} as never })).toThrow(/logger/);
    expect(() => new LevelStorage(undefined as never)).toThrow(TypeError);
  });

  it("declares itself durable only when writes are synced", () => {
    expect(new LevelStorage({ location: "x", nodeId: "n1" }).capabilities.durable).toBe(true);
    expect(new LevelStorage({ location: "x", nodeId: "n1", sync: false }).capabilities.durable).toBe(false);
  });
});

describe("LevelStorage identity", () => {
  it("refuses a store that belongs to another node or cluster, and writes nothing", async () => {
    await seed();
    const before = await rawKeys();
    const other = await failure(storage({ nodeId: "n2" }).load());
    expect(other.code).toBe("STORAGE");
    expect(other.message).toMatch(/"n1".*not node "n2"/);
    const cluster = await failure(storage({ clusterId: "blue" }).load());
    expect(cluster.code).toBe("STORAGE");
    expect(cluster.message).toMatch(/cluster "default".*cluster "blue"/);
    expect(await rawKeys()).toEqual(before);
    // The rightful owner still opens it, and its directory was released by the failed loads.
    const state = await storage().load();
    expect(state.entries.map((e) => e.index)).toEqual([1, 2, 3]);
    expect(state.hardState).toEqual({ term: 1, vote: "n1", commit: 2 });
  });

  it("refuses a LevelDB database that is not a raftkit store, and writes nothing", async () => {
    const db = new ClassicLevel<string, string>(location);
    await db.open();
    await db.put("user-key", "user-value");
    await db.close();
    const err = await failure(storage().load());
    expect(err.code).toBe("STORAGE");
    expect(err.message).toMatch(/not a raftkit store/);
    expect(await rawKeys()).toEqual([Buffer.from("user-key").toString("hex")]);
  });

  it("refuses a non-empty directory that is not a LevelDB database, before LevelDB touches it", async () => {
    await writeFile(join(dir, "notes.txt"), "mine");
    const s = new LevelStorage({ location: dir, nodeId: "n1" });
    opened.push(s);
    const err = await failure(s.load());
    expect(err.code).toBe("STORAGE");
    expect(await readdir(dir)).toEqual(["notes.txt"]);
  });

  it("refuses an identity record with another magic (STORAGE) and a truncated one (CORRUPT)", async () => {
    await seed();
    await raw((db) => db.put(Uint8Array.of(0x6d), new TextEncoder().encode("SOMEONE ELSE")));
    expect((await failure(storage().load())).code).toBe("STORAGE");
    await raw((db) => db.put(Uint8Array.of(0x6d), new TextEncoder().encode("RAFTKIT\x02\x00\x09n1")));
    expect((await failure(storage().load())).code).toBe("CORRUPT");
    // Format 1 (before snapshots) never shipped: refused by its version, not misread.
    await raw((db) => db.put(Uint8Array.of(0x6d), new TextEncoder().encode("RAFTKIT\x01\x00\x02n1\x00\x07default")));
    const older = await failure(storage().load());
    expect(older.code).toBe("STORAGE");
    expect(older.message).toMatch(/format version 1; this raftkit reads version 2/);
    await raw((db) => db.put(Uint8Array.of(0x6d), new TextEncoder().encode("RAFTKIT\x07")));
    const newer = await failure(storage().load());
    expect(newer.code).toBe("STORAGE");
    expect(newer.message).toMatch(/format version 7/);
  });
});

describe("LevelStorage corruption", () => {
  it("fails with CORRUPT on garbage under an entry key", async () => {
    await seed();
    await raw((db) => db.put(entryKey(2), Uint8Array.of(0xde, 0xad, 0xbe, 0xef)));
    const err = await failure(storage().load());
    expect(err.code).toBe("CORRUPT");
    expect(err.message).toMatch(/entry 2/);
  });

  it("fails with CORRUPT on a well-formed entry stored under the wrong index", async () => {
    await seed();
    await raw((db) => db.put(entryKey(2), encodeEntry(entry(3))));
    expect((await failure(storage().load())).code).toBe("CORRUPT");
  });

  it("fails with CORRUPT on a gap in the log", async () => {
    await seed();
    await raw((db) => db.del(entryKey(2)));
    const err = await failure(storage().load());
    expect(err.code).toBe("CORRUPT");
    expect(err.message).toMatch(/gap/);
  });

  it("fails with CORRUPT on a malformed entry key, hard state or first index", async () => {
    await seed();
    await raw((db) => db.put(Uint8Array.of(0x65, 1, 2), encodeEntry(entry(1))));
    expect((await failure(storage().load())).code).toBe("CORRUPT");
    await raw((db) => db.del(Uint8Array.of(0x65, 1, 2)));
    await raw((db) => db.put(Uint8Array.of(0x68), Uint8Array.of(1, 0, 0)));
    expect((await failure(storage().load())).code).toBe("CORRUPT");
    await raw((db) => db.del(Uint8Array.of(0x68)));
    expect((await failure(storage().load())).code).toBe("CORRUPT");
  });

  it("fails with CORRUPT on a bad first-index record", async () => {
    await seed();
    await raw((db) => db.put(Uint8Array.of(0x66), Uint8Array.of(0, 0, 0)));
    expect((await failure(storage().load())).code).toBe("CORRUPT");
  });
});

const snapshotMeta = (index: number, term: number): SnapshotMeta => ({ index, term, config: { voters: ["n1", "n2", "n3"], learners: [], outgoingVoters: [] } });

/** A snapshot whose data is bytes in memory: a handle LevelStorage did not write, so it copies it. */
const snapshot = (index: number, term: number, length: number, fill: number): Snapshot => ({
  meta: snapshotMeta(index, term),
  data: snapshotDataOf(new Uint8Array(length).fill(fill)),
});

const snapshotFiles = async (): Promise<string[]> => (await readdir(location)).filter((n) => n.startsWith("snapshot-")).sort();

/** Whether two byte arrays hold the same bytes (without deep-equality over megabytes). */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

describe("LevelStorage snapshot files", () => {
  /** A store with entries 1..10 compacted to 5 under a 64 KiB snapshot at 6, closed again. */
  async function compacted(): Promise<Snapshot> {
    const s = storage();
    await s.load();
    await s.save({ hardState: { term: 1, vote: "n1", commit: 8 }, entries: entries(1, 10) });
    const snap = snapshot(6, 1, 65_536, 0xab);
    await s.compact(snap, 5, 1);
    await s.close();
    return snap;
  }

  it("keeps the data in one file beside LevelDB, with only metadata in LevelDB, and removes replaced files", async () => {
    const snap = await compacted();
    const files = await snapshotFiles();
    expect(files).toEqual(["snapshot-0000000000000001.snap"]);
    expect(sameBytes(await readFile(join(location, files[0]!)), await snapshotBytes(snap.data))).toBe(true);
    let recordBytes = 0;
    await raw(async (db) => {
      recordBytes = (await db.get(Uint8Array.of(0x73)))!.byteLength;
      expect(await db.get(entryKey(5))).toBeUndefined();
      expect(await db.get(entryKey(6))).toBeDefined();
    });
    expect(recordBytes).toBeLessThan(200);
    // A newer snapshot gets a new file; the old one goes once the new record is committed.
    const s = storage();
    await s.load();
    await s.compact(snapshot(8, 1, 10, 1), 8, 1);
    expect(await snapshotFiles()).toEqual(["snapshot-0000000000000002.snap"]);
    await s.save({ snapshot: snapshot(20, 2, 10, 2) });
    expect(await snapshotFiles()).toEqual(["snapshot-0000000000000003.snap"]);
    await s.close();
    const state = await storage().load();
    expect(state.snapshot?.meta.index).toBe(20);
    expect([state.firstIndex, state.compactedTerm]).toEqual([21, 2]);
  });

  it("fails with CORRUPT when a byte of the snapshot file is flipped", async () => {
    await compacted();
    const [file] = await snapshotFiles();
    const path = join(location, file!);
    const bytes = await readFile(path);
    bytes[40_000] = bytes[40_000]! ^ 0x01;
    await writeFile(path, bytes);
    const err = await failure(storage().load());
    expect(err.code).toBe("CORRUPT");
    expect(err.message).toMatch(/SHA-256/);
  });

  it("fails with CORRUPT when the snapshot file is truncated, extended or missing", async () => {
    await compacted();
    const [file] = await snapshotFiles();
    const path = join(location, file!);
    const bytes = await readFile(path);
    await writeFile(path, bytes.subarray(0, bytes.byteLength - 1));
    expect((await failure(storage().load())).message).toMatch(/65535 bytes; its record says 65536/);
    await writeFile(path, Buffer.concat([bytes, Buffer.of(0xab)]));
    expect((await failure(storage().load())).code).toBe("CORRUPT");
    await rm(path);
    const missing = await failure(storage().load());
    expect(missing.code).toBe("CORRUPT");
    expect(missing.message).toMatch(/missing/);
    // The failed loads removed nothing: putting the file back heals the store.
    await writeFile(path, bytes);
    expect((await storage().load()).snapshot?.data.byteLength).toBe(65_536);
  });

  it("fails with CORRUPT on a malformed snapshot record, one naming a path, or a moved log start without a snapshot", async () => {
    await compacted();
    let good: Uint8Array | undefined;
    await raw(async (db) => {
      good = await db.get(Uint8Array.of(0x73));
      await db.put(Uint8Array.of(0x73), good!.subarray(0, good!.byteLength - 1));
    });
    expect((await failure(storage().load())).code).toBe("CORRUPT");
    // The file name field, rewritten to point outside the store (same length, so the record still parses).
    const name = new TextEncoder().encode("snapshot-0000000000000001.snap");
    const evil = new TextEncoder().encode("../../../../../../../etc/passwd");
    const at = Buffer.from(good!).indexOf(Buffer.from(name));
    expect(at).toBeGreaterThan(0);
    const tampered = Uint8Array.from(good!);
    tampered.set(evil.subarray(0, name.byteLength), at);
    await raw((db) => db.put(Uint8Array.of(0x73), tampered));
    const pathErr = await failure(storage().load());
    expect(pathErr.code).toBe("CORRUPT");
    expect(pathErr.message).toMatch(/not a snapshot file name/);
    await raw((db) => db.del(Uint8Array.of(0x73)));
    const noSnap = await failure(storage().load());
    expect(noSnap.code).toBe("CORRUPT");
    expect(noSnap.message).toMatch(/no snapshot record/);
  });

  it("tolerates and removes crash leftovers: a stray temp file and an uncommitted snapshot file", async () => {
    const snap = await compacted();
    // What a crash leaves: a half-written temp file, and a renamed file whose batch never committed.
    await writeFile(join(location, "snapshot-0000000000000002.snap.tmp"), "half a snapsh");
    await writeFile(join(location, "snapshot-0000000000000003.snap"), new Uint8Array(100).fill(3));
    const s = storage();
    const state = await s.load();
    expect(state.snapshot?.meta).toEqual(snap.meta);
    expect(sameBytes(await snapshotBytes(state.snapshot!.data), await snapshotBytes(snap.data))).toBe(true);
    expect(await snapshotFiles()).toEqual(["snapshot-0000000000000001.snap"]);
    // The next snapshot's name is past every leftover seen, never a reuse.
    await s.compact(snapshot(9, 1, 10, 9), 9, 1);
    expect(await snapshotFiles()).toEqual(["snapshot-0000000000000004.snap"]);
  });

  it("keeps the old snapshot when the batch after the file write fails, and drops the orphan at the next load", async () => {
    const snap = await compacted();
    const s = storage();
    await s.load();
    const batch = ClassicLevel.prototype.batch;
    vi.spyOn(ClassicLevel.prototype, "batch").mockImplementationOnce(function (this: ClassicLevel) {
      const chained = batch.call(this);
      chained.write = () => Promise.reject(new Error("power cut"));
      return chained;
    } as typeof batch);
    const err = await failure(s.compact(snapshot(10, 1, 100, 7), 10, 1));
    expect(err.code).toBe("STORAGE");
    // The store refuses further writes: what is on disk is unknown.
    expect((await failure(s.save({ entries: [entry(11)] }))).code).toBe("STORAGE");
    expect((await failure(s.compact(snapshot(10, 1, 1, 1), 10, 1))).code).toBe("STORAGE");
    expect(await snapshotFiles()).toEqual(["snapshot-0000000000000001.snap", "snapshot-0000000000000002.snap"]);
    await s.close();
    const state = await storage().load();
    expect(state.snapshot?.meta).toEqual(snap.meta);
    expect([state.firstIndex, state.entries.length]).toEqual([6, 5]);
    expect(await snapshotFiles()).toEqual(["snapshot-0000000000000001.snap"]);
  });

  it("rejects malformed snapshots and compaction bounds with TypeError/RangeError", async () => {
    const s = storage();
    await s.load();
    await s.save({ entries: entries(1, 3) });
    const good = snapshot(2, 1, 1, 1);
    await expect(s.compact({ ...good, data: "x" as never }, 1, 1)).rejects.toThrow(TypeError);
    // Bytes were the old form of snapshot data: refused with a hint, not copied as something else.
    await expect(s.compact({ ...good, data: new Uint8Array(1) as never }, 1, 1)).rejects.toThrow(/snapshotDataOf/);
    await expect(s.compact({ ...good, data: { byteLength: -1, read: async () => new Uint8Array(0) } }, 1, 1)).rejects.toThrow(TypeError);
    await expect(s.compact({ ...good, meta: { ...good.meta, index: -1 } }, 1, 1)).rejects.toThrow(RangeError);
    await expect(s.compact({ ...good, meta: { ...good.meta, config: { voters: [7], learners: [], outgoingVoters: [] } as never } }, 1, 1)).rejects.toThrow(TypeError);
    await expect(s.compact(good, 1.5, 1)).rejects.toThrow(RangeError);
    await expect(s.compact(good, 1, -1)).rejects.toThrow(RangeError);
    await expect(s.save({ snapshot: { ...good, meta: null as never } })).rejects.toThrow(TypeError);
    expect(await snapshotFiles()).toEqual([]);
  });

  it("keeps group commit for the saves around a compaction", async () => {
    const s = storage();
    await s.load();
    const calls: Promise<void>[] = [];
    for (let i = 1; i <= 200; i++) calls.push(s.save({ entries: [entry(i)] }));
    calls.push(s.compact(snapshot(150, 1, 1_000, 5), 100, 1));
    for (let i = 201; i <= 400; i++) calls.push(s.save({ entries: [entry(i)] }));
    await Promise.all(calls);
    // Two groups of saves (before and after the compaction) and the compaction's own batch.
    expect(s.stats).toEqual({ saves: 400, batches: 3 });
    await s.close();
    const state = await storage().load();
    expect([state.firstIndex, state.entries.length, state.snapshot?.meta.index]).toEqual([101, 300, 150]);
  });
});

describe("LevelStorage writeSnapshot", () => {
  const CHUNK = 64 * 1024;

  /** `count` chunks of `size` bytes, each filled from its own number, so that order and offsets show. */
  function chunkBytes(count: number, size = CHUNK): Uint8Array[] {
    return Array.from({ length: count }, (_, k) => {
      const chunk = new Uint8Array(size);
      for (let i = 0; i < size; i++) chunk[i] = (k * 31 + i) & 0xff;
      return chunk;
    });
  }

  function joined(chunks: readonly Uint8Array[]): Uint8Array {
    return Uint8Array.from(Buffer.concat(chunks));
  }

  async function* stream(chunks: readonly Uint8Array[]): AsyncGenerator<Uint8Array> {
    for (const chunk of chunks) yield chunk;
  }

  /** Open files of this process that are snapshot files under the test's directory (Linux only). */
  async function openSnapshotDescriptors(): Promise<number> {
    let count = 0;
    for (const fd of await readdir("/proc/self/fd")) {
      const target = await readlink(join("/proc/self/fd", fd)).catch(() => "");
      if (target.startsWith(location) && target.includes("snapshot-")) count++;
    }
    return count;
  }

  it("streams a multi-chunk source to a file, chunk by chunk, and reads it back exactly", async () => {
    const s = storage();
    await s.load();
    const chunks = chunkBytes(50);
    const temp = join(location, "snapshot-0000000000000001.snap.tmp");
    const sizesSeen: number[] = [];
    async function* paced(): AsyncGenerator<Uint8Array> {
      for (const chunk of chunks) {
        // Each chunk is asked for only once the ones before it are in the file.
        sizesSeen.push((await stat(temp)).size);
        yield chunk;
      }
    }
    const written = await s.writeSnapshot(snapshotMeta(6, 1), paced());
    expect(sizesSeen).toEqual(chunks.map((_, k) => k * CHUNK));
    expect(written.meta).toEqual(snapshotMeta(6, 1));
    expect(written.data.byteLength).toBe(50 * CHUNK);
    expect(sameBytes(await snapshotBytes(written.data), joined(chunks))).toBe(true);
    // Random access, a read running past the end, and reads at the very end.
    expect(await written.data.read(CHUNK + 3, 5)).toEqual(chunks[1]!.subarray(3, 8));
    expect(await written.data.read(50 * CHUNK - 2, 100)).toEqual(chunks[49]!.subarray(CHUNK - 2));
    expect((await written.data.read(50 * CHUNK, 10)).byteLength).toBe(0);
    await expect(written.data.read(50 * CHUNK + 1, 1)).rejects.toThrow(RangeError);
    await expect(written.data.read(-1, 1)).rejects.toThrow(RangeError);
    expect(await snapshotFiles()).toEqual(["snapshot-0000000000000001.snap"]);
  });

  it("commits the file it wrote without a copy, and a restart finds the snapshot and the log tail", async () => {
    const s = storage();
    await s.load();
    await s.save({ hardState: { term: 2, vote: "n1", commit: 18 }, entries: entries(1, 20, 2) });
    const chunks = chunkBytes(20);
    const written = await s.writeSnapshot(snapshotMeta(15, 2), stream(chunks));
    await s.compact(written, 12, 2);
    // The compaction named the very file writeSnapshot wrote: no second file, no copy.
    expect(await snapshotFiles()).toEqual(["snapshot-0000000000000001.snap"]);
    await s.save({ entries: entries(21, 25, 3), hardState: { term: 3, vote: null, commit: 24 } });
    await s.close();

    const state = await storage().load();
    expect(state.snapshot?.meta).toEqual(snapshotMeta(15, 2));
    expect([state.firstIndex, state.compactedTerm]).toEqual([13, 2]);
    expect(state.entries.map((e) => [e.index, e.term])).toEqual([
      ...Array.from({ length: 8 }, (_, k) => [13 + k, 2]),
      ...Array.from({ length: 5 }, (_, k) => [21 + k, 3]),
    ]);
    expect(state.hardState).toEqual({ term: 3, vote: null, commit: 24 });
    // The loaded snapshot reads its file in pieces, not a buffer held in memory.
    expect(state.snapshot!.data).not.toBeInstanceOf(Uint8Array);
    expect(await state.snapshot!.data.read(CHUNK * 7 + 1, 3)).toEqual(chunks[7]!.subarray(1, 4));
    expect(sameBytes(await snapshotBytes(state.snapshot!.data), joined(chunks))).toBe(true);
  });

  it("installs a received snapshot through save without a copy", async () => {
    const s = storage();
    await s.load();
    await s.save({ entries: entries(1, 5) });
    const chunks = chunkBytes(3);
    const received = await s.writeSnapshot(snapshotMeta(40, 4), stream(chunks));
    await s.save({ snapshot: received, entries: entries(41, 42, 4), hardState: { term: 4, vote: null, commit: 40 } });
    expect(await snapshotFiles()).toEqual(["snapshot-0000000000000001.snap"]);
    await s.close();
    const state = await storage().load();
    expect([state.firstIndex, state.compactedTerm, state.entries.map((e) => e.index)]).toEqual([41, 4, [41, 42]]);
    expect(sameBytes(await snapshotBytes(state.snapshot!.data), joined(chunks))).toBe(true);
  });

  it("rejects with the stream's own error when the stream throws mid-way, and leaves no file", async () => {
    const s = storage();
    await s.load();
    const abandoned = new Error("leader went away");
    async function* broken(): AsyncGenerator<Uint8Array> {
      yield* stream(chunkBytes(5));
      throw abandoned;
    }
    await expect(s.writeSnapshot(snapshotMeta(6, 1), broken())).rejects.toBe(abandoned);
    expect(await snapshotFiles()).toEqual([]);
    // A chunk of the wrong type is refused the same way, and the source is told to stop.
    let stopped = false;
    async function* wrongType(): AsyncGenerator<Uint8Array> {
      try {
        yield new Uint8Array(10);
        yield "not bytes" as never;
        yield new Uint8Array(10);
      } finally {
        stopped = true;
      }
    }
    await expect(s.writeSnapshot(snapshotMeta(6, 1), wrongType())).rejects.toThrow(TypeError);
    expect(stopped).toBe(true);
    expect(await snapshotFiles()).toEqual([]);
    await expect(s.writeSnapshot(snapshotMeta(-1, 1), stream([]))).rejects.toThrow(RangeError);
    await expect(s.writeSnapshot(snapshotMeta(6, 1), null as never)).rejects.toThrow(TypeError);
    expect(await snapshotFiles()).toEqual([]);
    // Nothing failed on disk: the store goes on working.
    await s.save({ entries: entries(1, 2) });
    const empty = await s.writeSnapshot(snapshotMeta(2, 1), stream([]));
    expect(empty.data.byteLength).toBe(0);
    await s.compact(empty, 2, 1);
    await s.close();
    const state = await storage().load();
    expect([state.firstIndex, state.snapshot?.data.byteLength]).toEqual([3, 0]);
  });

  it("keeps a handle readable after a newer snapshot replaced its file, and after close", async () => {
    const s = storage();
    await s.load();
    await s.save({ entries: entries(1, 10) });
    const firstChunks = chunkBytes(4);
    const first = await s.writeSnapshot(snapshotMeta(4, 1), stream(firstChunks));
    await s.compact(first, 4, 1);
    const second = await s.writeSnapshot(snapshotMeta(8, 1), stream(chunkBytes(2, 1000)));
    await s.compact(second, 8, 1);
    // The first file is gone from the directory, but its handle holds it open.
    expect(await snapshotFiles()).toEqual(["snapshot-0000000000000002.snap"]);
    expect(sameBytes(await snapshotBytes(first.data), joined(firstChunks))).toBe(true);
    // Named again once its file is gone, it is copied back in from the handle.
    await s.save({ snapshot: first });
    expect(await snapshotFiles()).toEqual(["snapshot-0000000000000003.snap"]);
    await s.close();
    // Handles outlive the store: a transfer still running while the node stops reads on.
    expect(sameBytes(await snapshotBytes(first.data), joined(firstChunks))).toBe(true);
    const state = await storage().load();
    expect(state.snapshot?.meta.index).toBe(4);
    expect(sameBytes(await snapshotBytes(state.snapshot!.data), joined(firstChunks))).toBe(true);
  });

  it("keeps a file that a queued step names even when a step ahead of it replaces that file", async () => {
    const s = storage();
    await s.load();
    await s.save({ entries: entries(1, 10) });
    const firstChunks = chunkBytes(3);
    const first = await s.writeSnapshot(snapshotMeta(4, 1), stream(firstChunks));
    await s.compact(first, 4, 1);
    const second = await s.writeSnapshot(snapshotMeta(8, 1), stream(chunkBytes(1)));
    // Queued together: the compaction retires the first file, then the install names it again.
    const steps = [s.compact(second, 8, 1), s.save({ snapshot: first, entries: entries(5, 6, 2) })];
    await Promise.all(steps);
    expect(await snapshotFiles()).toEqual(["snapshot-0000000000000001.snap"]);
    await s.close();
    const state = await storage().load();
    expect([state.snapshot?.meta.index, state.firstIndex, state.entries.map((e) => e.index)]).toEqual([4, 5, [5, 6]]);
    expect(sameBytes(await snapshotBytes(state.snapshot!.data), joined(firstChunks))).toBe(true);
  });

  it("removes a written snapshot that nothing named at the next load", async () => {
    const s = storage();
    await s.load();
    await s.save({ entries: entries(1, 10) });
    const named = await s.writeSnapshot(snapshotMeta(5, 1), stream(chunkBytes(2)));
    await s.compact(named, 5, 1);
    const aside = await s.writeSnapshot(snapshotMeta(9, 1), stream(chunkBytes(2)));
    expect(await snapshotFiles()).toEqual(["snapshot-0000000000000001.snap", "snapshot-0000000000000002.snap"]);
    await s.close();
    const state = await s.load();
    expect(state.snapshot?.meta.index).toBe(5);
    expect(await snapshotFiles()).toEqual(["snapshot-0000000000000001.snap"]);
    // A handle from before the restart is not taken for a file of this open: it is copied.
    await s.compact(aside, 9, 1);
    expect(await snapshotFiles()).toEqual(["snapshot-0000000000000003.snap"]);
  });

  it("deletes compacted entries after the compaction commits, and at load those a crash left", async () => {
    const s = storage();
    await s.load();
    await s.save({ entries: entries(1, 2000) });
    const snap = await s.writeSnapshot(snapshotMeta(1900, 1), stream(chunkBytes(1)));
    await s.compact(snap, 1800, 1);
    await s.close(); // waits for the deletion running behind the compaction
    const entryCount = async (): Promise<number> => {
      let n = 0;
      await raw(async (db) => {
        n = (await db.keys({ gte: entryKey(0), lte: entryKey(2 ** 40) }).all()).length;
      });
      return n;
    };
    expect(await entryCount()).toBe(200);
    // A crash before the deletion ran: entries below the log start are still there.
    await raw((db) => db.batch(entries(1, 1800).map((e) => ({ type: "put" as const, key: entryKey(e.index), value: encodeEntry(e) }))));
    const state = await s.load();
    expect(state.firstIndex).toBe(1801);
    expect(state.entries.map((e) => e.index)).toEqual(entries(1801, 2000).map((e) => e.index));
    await s.close();
    expect(await entryCount()).toBe(200);
  });

  it("removes a written snapshot that a newer one overtook once the newer one commits", async () => {
    const s = storage();
    await s.load();
    await s.save({ entries: entries(1, 10) });
    // The node's own snapshot at 5 is written, but a leader's at 8 is installed before
    // the node gets to compact with it: nothing will ever name the first file.
    const overtaken = await s.writeSnapshot(snapshotMeta(5, 1), stream(chunkBytes(2)));
    const installed = await s.writeSnapshot(snapshotMeta(8, 1), stream(chunkBytes(3)));
    await s.save({ snapshot: installed });
    expect(await snapshotFiles()).toEqual(["snapshot-0000000000000002.snap"]);
    // Its handle still reads (it holds the file open).
    expect(await snapshotBytes(overtaken.data)).toEqual(joined(chunkBytes(2)));
  });

  it("abandons a write still waiting for chunks when the store closes", async () => {
    const s = storage();
    await s.load();
    let release!: () => void;
    const never = new Promise<void>((resolve) => (release = resolve));
    async function* stalled(): AsyncGenerator<Uint8Array> {
      yield new Uint8Array(CHUNK);
      await never; // a sender that stopped sending
      yield new Uint8Array(CHUNK);
    }
    const writing = failure(s.writeSnapshot(snapshotMeta(1, 1), stalled()));
    while ((await snapshotFiles()).length === 0) await new Promise((resolve) => setImmediate(resolve));
    await s.close();
    expect((await writing).code).toBe("STOPPED");
    expect(await snapshotFiles()).toEqual([]);
    release();
    expect((await failure(s.writeSnapshot(snapshotMeta(1, 1), stream([])))).code).toBe("STOPPED");
  });

  it("fails the load with CORRUPT when a byte deep in a streamed snapshot file is flipped", async () => {
    const s = storage();
    await s.load();
    await s.save({ entries: entries(1, 3) });
    const written = await s.writeSnapshot(snapshotMeta(3, 1), stream(chunkBytes(60)));
    await s.compact(written, 3, 1);
    await s.close();
    const path = join(location, "snapshot-0000000000000001.snap");
    const bytes = await readFile(path);
    const at = 3 * 1024 * 1024 + 5; // past the first pieces the verification hashes
    bytes[at] = bytes[at]! ^ 0x80;
    await writeFile(path, bytes);
    const err = await failure(storage().load());
    expect(err.code).toBe("CORRUPT");
    expect(err.message).toMatch(/SHA-256/);
    // The failed load removed nothing.
    expect(await snapshotFiles()).toEqual(["snapshot-0000000000000001.snap"]);
  });

  it("fails the compaction with STORAGE when a foreign handle cannot be read, leaving the old snapshot", async () => {
    const s = storage();
    await s.load();
    await s.save({ entries: entries(1, 6) });
    await s.compact(snapshot(2, 1, 100, 1), 2, 1);
    const unreadable = { byteLength: 10, read: async () => Promise.reject(new Error("gone")) };
    const err = await failure(s.compact({ meta: snapshotMeta(4, 1), data: unreadable }, 4, 1));
    expect(err.code).toBe("STORAGE");
    await s.close();
    const state = await storage().load();
    expect([state.snapshot?.meta.index, state.firstIndex]).toEqual([2, 3]);
    expect(await snapshotFiles()).toEqual(["snapshot-0000000000000001.snap"]);
  });

  it.skipIf(process.platform !== "linux")("closes a handle's file descriptor once the handle is garbage collected", async () => {
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    const s = storage();
    await s.load();
    const before = await openSnapshotDescriptors();
    let written: Snapshot | undefined = await s.writeSnapshot(snapshotMeta(1, 1), stream(chunkBytes(1)));
    expect(await openSnapshotDescriptors()).toBe(before + 1);
    expect((await snapshotBytes(written.data)).byteLength).toBe(CHUNK);
    written = undefined;
    for (let round = 0; round < 20 && (await openSnapshotDescriptors()) > before; round++) {
      gc();
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(await openSnapshotDescriptors()).toBe(before);
  });
});

describe("LevelStorage lock", () => {
  it("fails the second opener in this process with a STORAGE error about the lock", async () => {
    const first = storage();
    await first.load();
    await first.save({ entries: entries(1, 2) });
    const err = await failure(storage().load());
    expect(err.code).toBe("STORAGE");
    expect(err.message).toMatch(/lock/i);
    // The first opener is unharmed.
    await first.save({ entries: entries(3, 3) });
    await first.close();
    expect((await storage().load()).entries.map((e) => e.index)).toEqual([1, 2, 3]);
  });

  it("fails while another process holds the store", async () => {
    await seed();
    const child = holdInChildProcess(location);
    try {
      await waitForLine(child, "open");
      const err = await failure(storage().load());
      expect(err.code).toBe("STORAGE");
      expect(err.message).toMatch(/lock/i);
    } finally {
      child.stdin?.end();
      await once(child, "exit");
    }
    expect((await storage().load()).entries.map((e) => e.index)).toEqual([1, 2, 3]);
  });
});

describe("LevelStorage lifecycle", () => {
  it("rejects a save before load with STOPPED and a second load with INVALID_STATE", async () => {
    const s = storage();
    expect((await failure(s.save({ entries: [entry(1)] }))).code).toBe("STOPPED");
    await s.load();
    expect((await failure(s.load())).code).toBe("INVALID_STATE");
  });

  it("opens again with load() after close(), as a restart in the same process", async () => {
    const s = storage();
    await s.load();
    await s.save({ entries: entries(1, 2) });
    await s.close();
    expect((await s.load()).entries.map((e) => e.index)).toEqual([1, 2]);
    await s.save({ entries: entries(3, 3) });
    await s.close();
    expect((await storage().load()).entries.map((e) => e.index)).toEqual([1, 2, 3]);
  });

  it("rejects a batch whose entries are not contiguous, writing none of it", async () => {
    const s = storage();
    await s.load();
    const err = await failure(s.save({ hardState: { term: 5, vote: null, commit: 0 }, entries: [entry(1), entry(3)] }));
    expect(err.code).toBe("STORAGE");
    await s.close();
    const state = await storage().load();
    expect(state.entries).toEqual([]);
    expect(state.hardState.term).toBe(0);
  });

  it("fails every save after a failed write, since what is on disk is then unknown", async () => {
    const s = storage();
    await s.load();
    const batch = ClassicLevel.prototype.batch;
    vi.spyOn(ClassicLevel.prototype, "batch").mockImplementationOnce(function (this: ClassicLevel) {
      const chained = batch.call(this);
      chained.write = () => Promise.reject(new Error("disk on fire"));
      return chained;
    } as typeof batch);
    const err = await failure(s.save({ entries: [entry(1)] }));
    expect(err.code).toBe("STORAGE");
    expect((err.cause as Error).message).toBe("disk on fire");
    expect((await failure(s.save({ entries: [entry(1)] }))).code).toBe("STORAGE");
  });
});

describe("LevelStorage group commit", () => {
  it("merges concurrent saves into fewer LevelDB batches, each save resolving when durable", async () => {
    const s = storage();
    await s.load();
    // Count the LevelDB batches independently of LevelStorage's own counter, by wrapping
    // classic-level: every batch it writes, and the options each write gets.
    const batch = ClassicLevel.prototype.batch;
    const writes: unknown[] = [];
    vi.spyOn(ClassicLevel.prototype, "batch").mockImplementation(function (this: ClassicLevel, ...args: unknown[]) {
      if (args.length > 0) throw new Error("LevelStorage is expected to use chained batches");
      const chained = batch.call(this);
      const write = chained.write.bind(chained) as (options?: unknown) => Promise<void>;
      chained.write = ((options?: unknown) => {
        writes.push(options);
        return write(options);
      }) as typeof chained.write;
      return chained;
    } as typeof batch);
    const n = 1000;
    const saves: Promise<void>[] = [];
    for (let i = 1; i <= n; i++) saves.push(s.save({ hardState: { term: 1, vote: null, commit: i - 1 }, entries: [entry(i, 1, 100)] }));
    await Promise.all(saves);
    expect(s.stats.saves).toBe(n);
    expect(s.stats.batches).toBe(writes.length);
    expect(writes.length).toBeLessThan(n);
    expect(writes.length).toBeGreaterThanOrEqual(1);
    for (const options of writes) expect(options).toEqual({ sync: true });
    await s.close();
    const state = await storage().load();
    expect(state.entries.length).toBe(n);
    expect(state.hardState.commit).toBe(n - 1);
  });

  it("merges saves that arrive while a write is in flight into the next batch", async () => {
    const s = storage();
    await s.load();
    // Hold the first LevelDB write until released, so the later saves surely find it in flight.
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const batch = ClassicLevel.prototype.batch;
    vi.spyOn(ClassicLevel.prototype, "batch").mockImplementationOnce(function (this: ClassicLevel) {
      const chained = batch.call(this);
      const write = chained.write.bind(chained) as (options?: unknown) => Promise<void>;
      chained.write = ((options?: unknown) => gate.then(() => write(options))) as typeof chained.write;
      return chained;
    } as typeof batch);
    const first = s.save({ entries: [entry(1)] });
    while (s.stats.batches === 0) await new Promise((resolve) => setImmediate(resolve));
    const later: Promise<void>[] = [];
    for (let i = 2; i <= 50; i++) later.push(s.save({ entries: [entry(i)] }));
    later.push(s.save({ entries: entries(30, 31, 2) })); // truncates 32..50 within the merged group
    let firstDone = false;
    void first.then(() => (firstDone = true));
    await new Promise((resolve) => setImmediate(resolve));
    expect(firstDone).toBe(false);
    expect(s.stats.batches).toBe(1);
    release();
    await Promise.all([first, ...later]);
    expect(s.stats).toEqual({ saves: 51, batches: 2 });
    await s.close();
    const state = await storage().load();
    expect(state.entries.map((e) => [e.index, e.term])).toEqual([
      ...Array.from({ length: 29 }, (_, k) => [k + 1, 1]),
      [30, 2],
      [31, 2],
    ]);
  });
});

describe("entry encoding", () => {
  const samples: Entry[] = [
    { index: 1, term: 0, type: "noop", data: new Uint8Array(0) },
    { index: 2, term: 1, type: "command", data: Uint8Array.of(1, 2, 3) },
    { index: 3, term: 7, type: "config", data: new TextEncoder().encode('{"voters":["a"]}') },
    { index: Number.MAX_SAFE_INTEGER, term: Number.MAX_SAFE_INTEGER, type: "command", data: new Uint8Array(70_000).fill(9) },
    { index: 2 ** 32 + 5, term: 2 ** 32 - 1, type: "command", data: Uint8Array.of(0) },
  ];

  const hex = (e: Entry) => ({ ...e, data: Buffer.from(e.data).toString("hex") });

  it("round-trips every type, empty data and the largest safe integers", () => {
    for (const e of samples) expect(hex(decodeEntry(encodeEntry(e)))).toEqual(hex(e));
  });

  it("decodes from a view into a larger buffer (as LevelDB hands values back)", () => {
    const encoded = encodeEntry(samples[1]!);
    const big = Buffer.alloc(encoded.byteLength + 10, 0xff);
    big.set(encoded, 5);
    const decoded = decodeEntry(big.subarray(5, 5 + encoded.byteLength));
    expect(decoded).toEqual(samples[1]);
    expect(decoded.data.constructor).toBe(Uint8Array);
  });

  it("starts with the format version byte, then the type", () => {
    const encoded = encodeEntry(samples[1]!);
    expect(encoded[0]).toBe(1);
    expect(encoded[1]).toBe(1);
    expect(encoded.byteLength).toBe(22 + 3);
  });

  it("rejects every truncation and any padding with CORRUPT", () => {
    const encoded = encodeEntry(samples[2]!);
    for (let n = 0; n < encoded.byteLength; n++) {
      expect(() => decodeEntry(encoded.subarray(0, n)), `length ${n}`).toThrow(expect.objectContaining({ code: "CORRUPT" }));
    }
    const padded = new Uint8Array(encoded.byteLength + 1);
    padded.set(encoded);
    expect(() => decodeEntry(padded)).toThrow(expect.objectContaining({ code: "CORRUPT" }));
  });

  it("rejects unknown versions and types, and out-of-range numbers, with CORRUPT", () => {
    const mutate = (at: number, value: number): Uint8Array => {
      const bytes = encodeEntry(samples[1]!);
      bytes[at] = value;
      return bytes;
    };
    const corrupt = expect.objectContaining({ name: "RaftError", code: "CORRUPT" });
    expect(() => decodeEntry(mutate(0, 0))).toThrow(corrupt);
    expect(() => decodeEntry(mutate(0, 2))).toThrow(corrupt);
    expect(() => decodeEntry(mutate(1, 0))).toThrow(corrupt);
    expect(() => decodeEntry(mutate(1, 4))).toThrow(corrupt);
    expect(() => decodeEntry(mutate(2, 0x00_20))).toThrow(corrupt); // term >= 2^53
    expect(() => decodeEntry(mutate(10, 0x00_20))).toThrow(corrupt); // index >= 2^53
    const zeroIndex = encodeEntry(samples[1]!);
    zeroIndex.fill(0, 10, 18);
    expect(() => decodeEntry(zeroIndex)).toThrow(corrupt);
  });

  it("refuses to encode malformed entries with TypeError/RangeError", () => {
    const base = samples[1]!;
    expect(() => encodeEntry({ ...base, type: "toString" as never })).toThrow(TypeError);
    expect(() => encodeEntry({ ...base, index: 0 })).toThrow(RangeError);
    expect(() => encodeEntry({ ...base, index: 1.5 })).toThrow(RangeError);
    expect(() => encodeEntry({ ...base, term: -1 })).toThrow(RangeError);
    expect(() => encodeEntry({ ...base, data: "x" as never })).toThrow(TypeError);
  });
});

/** A child process that opens the LevelDB at `location` and holds it until its stdin closes. */
function holdInChildProcess(location: string): ChildProcess {
  const script = `
    import { ClassicLevel } from "classic-level";
    const db = new ClassicLevel(process.argv[1]);
    await db.open();
    process.stdout.write("open\\n");
    process.stdin.resume();
    process.stdin.on("end", async () => { await db.close(); process.exit(0); });
  `;
  return spawn(process.execPath, ["--input-type=module", "-e", script, location], {
    cwd: process.cwd(),
    stdio: ["pipe", "pipe", "inherit"],
  });
}

async function waitForLine(child: ChildProcess, line: string): Promise<void> {
  let seen = "";
  for await (const chunk of child.stdout!) {
    seen += String(chunk);
    if (seen.includes(line)) return;
  }
  throw new Error(`child exited before printing ${line}`);
}
