/**
 * Storage benchmark: how close LevelStorage gets to the disk's own fsync rate.
 *
 *   npx tsx bench/storage.bench.ts
 *
 * Phases, all in one temp directory on the same disk, each bounded to a few seconds:
 *   1. raw: append a 100-byte record to a file and fdatasync it, over and over;
 *   2. LevelStorage, 1 writer: save one 100-byte entry, await, repeat;
 *   3. LevelStorage, 1,000 concurrent saves of one 100-byte entry each, await all, repeat;
 *   4. LevelStorage, 1,000 closed-loop writers (each saves again as soon as its save
 *      resolves), so saves keep arriving while a batch is in flight;
 *   5. mitata: entry encode/decode.
 * Rates are medians over rounds; "fsyncs/s" counts LevelDB batches written with sync.
 *
 * Imports src/ directly until LevelStorage is exported from the package entry point.
 */
import { closeSync, fdatasyncSync, openSync, writeSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { bench, do_not_optimize, run, summary } from "mitata";
import type { Entry } from "../src/core/messages.js";
import { LevelStorage } from "../src/storage/level-storage.js";
import { decodeEntry, encodeEntry } from "../src/storage/entry-encoding.js";

const ROUNDS = 5;
const ROUND_MS = 500;
const ENTRY_BYTES = 100;
const CONCURRENCY = 1000;

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};
const fmt = (n: number, digits = 0): string => n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
const payload = new Uint8Array(ENTRY_BYTES).fill(0x5a);
const entryAt = (index: number): Entry => ({ index, term: 1, type: "command", data: payload });

interface Rates {
  appendsPerSec: number;
  fsyncsPerSec: number;
  medianLatencyMs?: number;
}

/** Phase 1: the disk's own fdatasync rate for small appends. */
function rawFdatasync(dir: string): Rates {
  const fd = openSync(join(dir, "raw.log"), "a");
  const record = new Uint8Array(ENTRY_BYTES).fill(0x41);
  const rates: number[] = [];
  const latencies: number[] = [];
  try {
    for (let r = 0; r < ROUNDS; r++) {
      let n = 0;
      const start = performance.now();
      while (performance.now() - start < ROUND_MS) {
        const t = performance.now();
        writeSync(fd, record);
        fdatasyncSync(fd);
        latencies.push(performance.now() - t);
        n++;
      }
      rates.push(n / ((performance.now() - start) / 1000));
    }
  } finally {
    closeSync(fd);
  }
  const rate = median(rates);
  return { appendsPerSec: rate, fsyncsPerSec: rate, medianLatencyMs: median(latencies) };
}

async function openStorage(dir: string, name: string): Promise<{ storage: LevelStorage; next: number }> {
  const storage = new LevelStorage({ location: join(dir, name), nodeId: "bench" });
  await storage.load();
  return { storage, next: 1 };
}

/** Phase 2: one writer, one save at a time. */
async function oneWriter(dir: string): Promise<Rates> {
  const s = await openStorage(dir, "one-writer");
  const appends: number[] = [];
  const fsyncs: number[] = [];
  const latencies: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const batches0 = s.storage.stats.batches;
    let n = 0;
    const start = performance.now();
    while (performance.now() - start < ROUND_MS) {
      const t = performance.now();
      await s.storage.save({ entries: [entryAt(s.next++)] });
      latencies.push(performance.now() - t);
      n++;
    }
    const secs = (performance.now() - start) / 1000;
    appends.push(n / secs);
    fsyncs.push((s.storage.stats.batches - batches0) / secs);
  }
  await s.storage.close();
  return { appendsPerSec: median(appends), fsyncsPerSec: median(fsyncs), medianLatencyMs: median(latencies) };
}

/** Phase 3: bursts of CONCURRENCY saves issued at once, awaited together. */
async function bursts(dir: string): Promise<Rates & { savesPerBatch: number }> {
  const s = await openStorage(dir, "bursts");
  const appends: number[] = [];
  const fsyncs: number[] = [];
  let saves = 0;
  let batches = 0;
  for (let r = 0; r < ROUNDS; r++) {
    const batches0 = s.storage.stats.batches;
    let n = 0;
    const start = performance.now();
    while (performance.now() - start < ROUND_MS) {
      const pending: Promise<void>[] = [];
      for (let k = 0; k < CONCURRENCY; k++) pending.push(s.storage.save({ entries: [entryAt(s.next++)] }));
      await Promise.all(pending);
      n += CONCURRENCY;
    }
    const secs = (performance.now() - start) / 1000;
    appends.push(n / secs);
    fsyncs.push((s.storage.stats.batches - batches0) / secs);
    saves += n;
    batches += s.storage.stats.batches - batches0;
  }
  await s.storage.close();
  return { appendsPerSec: median(appends), fsyncsPerSec: median(fsyncs), savesPerBatch: saves / batches };
}

/** Phase 4: CONCURRENCY writers, each issuing its next save as soon as the last resolves. */
async function closedLoop(dir: string): Promise<Rates & { savesPerBatch: number }> {
  const s = await openStorage(dir, "closed-loop");
  const appends: number[] = [];
  const fsyncs: number[] = [];
  let saves = 0;
  let batches = 0;
  for (let r = 0; r < ROUNDS; r++) {
    const batches0 = s.storage.stats.batches;
    let n = 0;
    const start = performance.now();
    const writer = async (): Promise<void> => {
      while (performance.now() - start < ROUND_MS) {
        await s.storage.save({ entries: [entryAt(s.next++)] });
        n++;
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, writer));
    const secs = (performance.now() - start) / 1000;
    appends.push(n / secs);
    fsyncs.push((s.storage.stats.batches - batches0) / secs);
    saves += n;
    batches += s.storage.stats.batches - batches0;
  }
  await s.storage.close();
  return { appendsPerSec: median(appends), fsyncsPerSec: median(fsyncs), savesPerBatch: saves / batches };
}

const dir = await mkdtemp(join(tmpdir(), "raftkit-bench-"));
try {
  console.log(`node ${process.version}, ${cpus().length} cpus, load average ${loadavg().map((l) => l.toFixed(2)).join(" ")}, dir ${dir}`);
  console.log(`${ROUNDS} rounds of ${ROUND_MS} ms per phase, ${ENTRY_BYTES}-byte entries, sync: true; medians over rounds\n`);

  const raw = rawFdatasync(dir);
  console.log(`raw write+fdatasync             ${fmt(raw.fsyncsPerSec).padStart(9)} fsyncs/s   median ${fmt(raw.medianLatencyMs!, 3)} ms`);

  const one = await oneWriter(dir);
  console.log(
    `LevelStorage, 1 writer           ${fmt(one.appendsPerSec).padStart(9)} appends/s ${fmt(one.fsyncsPerSec).padStart(7)} fsyncs/s` +
      `   median save ${fmt(one.medianLatencyMs!, 3)} ms   fsyncs/raw ${fmt(one.fsyncsPerSec / raw.fsyncsPerSec, 2)}`,
  );

  const burst = await bursts(dir);
  console.log(
    `LevelStorage, ${CONCURRENCY} concurrent     ${fmt(burst.appendsPerSec).padStart(9)} appends/s ${fmt(burst.fsyncsPerSec).padStart(7)} fsyncs/s` +
      `   ${fmt(burst.savesPerBatch, 1)} saves/batch   fsyncs/raw ${fmt(burst.fsyncsPerSec / raw.fsyncsPerSec, 2)}`,
  );

  const loop = await closedLoop(dir);
  console.log(
    `LevelStorage, ${CONCURRENCY} closed-loop    ${fmt(loop.appendsPerSec).padStart(9)} appends/s ${fmt(loop.fsyncsPerSec).padStart(7)} fsyncs/s` +
      `   ${fmt(loop.savesPerBatch, 1)} saves/batch   fsyncs/raw ${fmt(loop.fsyncsPerSec / raw.fsyncsPerSec, 2)}`,
  );
  console.log();
} finally {
  await rm(dir, { recursive: true, force: true });
}

const sample = entryAt(12_345);
const encoded = encodeEntry(sample);
summary(() => {
  bench(`encodeEntry (${ENTRY_BYTES}-byte data)`, () => do_not_optimize(encodeEntry(sample)));
  bench(`decodeEntry (${ENTRY_BYTES}-byte data)`, () => do_not_optimize(decodeEntry(encoded)));
});
await run();
