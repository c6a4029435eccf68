/**
 * Seeded fuzzing of the wire codec, the frame decoder and a listening TcpTransport.
 *
 * `runTransportFuzz` is the harness; test/tcp-fuzz.test.ts runs it with a CI-sized case
 * count, and running this file runs the soak:
 *
 *   npx tsx scripts/soak-fuzz.ts              (100,000 cases, random seed)
 *   FUZZ_SEED=1234 FUZZ_CASES=500000 npx tsx scripts/soak-fuzz.ts
 *
 * A failure names its seed and case; rerunning with that FUZZ_SEED replays it.
 */
import { pathToFileURL } from "node:url";
import net from "node:net";
import v8 from "node:v8";
import { runInNewContext } from "node:vm";
import type { EntryType, Message, NodeId } from "../src/core/messages.js";
import { RaftError } from "../src/errors.js";
import { Prng } from "../src/testing/prng.js";
import { FrameDecoder, FrameKind, encodeFrame } from "../src/transport/frame.js";
import { TcpTransport } from "../src/transport/tcp-transport.js";
import { decodeHandshake, decodeMessage, encodeHandshake, encodeMessage } from "../src/transport/wire-codec.js";

/** Options for {@link runTransportFuzz}. */
export interface FuzzOptions {
  readonly seed: number;
  /** Total cases; most run against the decoders directly, `socketCases` of them through real sockets. */
  readonly cases: number;
  /** @defaultValue min(30% of cases, 300 + cases / 20) */
  readonly socketCases?: number;
  /** Where progress lines go. */
  readonly log?: (line: string) => void;
}

/** What a fuzz run checked. */
export interface FuzzReport {
  readonly seed: number;
  readonly decoderCases: number;
  readonly socketCases: number;
  /** Inputs the decoders accepted (each verified canonical) and rejected (each with CORRUPT). */
  readonly accepted: number;
  readonly rejected: number;
  /** Bad connections the transport closed, and valid messages it delivered. */
  readonly connectionsClosed: number;
  readonly messagesDelivered: number;
  /** Heap growth over the run, after a full GC. */
  readonly heapDeltaBytes: number;
}

// ---- the simulator's seeded generator, so that one seed replays a whole run ---------------

class Rng extends Prng {
  /** `n` random bytes. */
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.int(256);
    return out;
  }
}

// ---- random valid messages --------------------------------------------------------------

const ID_POOL = ["a", "b", "node-1", "n2", "节点", "🦀", "ñ", "\u{FEFF}x", "x".repeat(255), "é".repeat(127)];
const EDGE_NUMBERS = [0, 1, 127, 128, 16383, 16384, 2 ** 21, 2 ** 28, 2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 35, 2 ** 49, Number.MAX_SAFE_INTEGER];
const ENTRY_TYPES: readonly EntryType[] = ["command", "noop", "config"];

function randomId(rng: Rng): NodeId {
  if (rng.chance(0.7)) return rng.pick(ID_POOL);
  let s = "";
  const n = 1 + rng.int(12);
  for (let i = 0; i < n; i++) s += String.fromCharCode(0x21 + rng.int(0x5e));
  return s;
}

function randomUint(rng: Rng): number {
  switch (rng.int(4)) {
    case 0:
      return rng.pick(EDGE_NUMBERS);
    case 1:
      return rng.int(128);
    case 2:
      return rng.int(2 ** 32);
    default:
      return rng.int(2 ** 21) * 2 ** 32 + rng.int(2 ** 32);
  }
}

function randomData(rng: Rng): Uint8Array {
  const r = rng.int(100);
  if (r < 30) return new Uint8Array(0);
  if (r < 85) return rng.bytes(1 + rng.int(64));
  if (r < 99) return rng.bytes(65 + rng.int(2000));
  return rng.bytes(2000 + rng.int(70_000));
}

function randomIds(rng: Rng): NodeId[] {
  return Array.from({ length: rng.int(5) }, () => randomId(rng));
}

function randomMessage(rng: Rng, from = randomId(rng), to = randomId(rng)): Message {
  const term = randomUint(rng);
  const u = () => randomUint(rng);
  const b = () => rng.chance(0.5);
  switch (rng.int(13)) {
    case 0:
      return {
        type: "AppendEntries",
        from,
        to,
        term,
        prevIndex: u(),
        prevTerm: u(),
        commit: u(),
        entries: Array.from({ length: rng.int(6) }, () => ({ index: u(), term: u(), type: rng.pick(ENTRY_TYPES), data: randomData(rng) })),
      };
    case 1:
      return { type: "AppendEntriesResponse", from, to, term, success: b(), index: u(), hintIndex: u(), hintTerm: u() };
    case 2:
      return { type: "Heartbeat", from, to, term, commit: u(), readRound: u() };
    case 3:
      return { type: "HeartbeatResponse", from, to, term, readRound: u() };
    case 4:
      return { type: "RequestVote", from, to, term, preVote: b(), lastIndex: u(), lastTerm: u(), transfer: b() };
    case 5:
      return { type: "RequestVoteResponse", from, to, term, preVote: b(), granted: b(), commit: u(), commitTerm: u() };
    case 6:
      return {
        type: "Propose",
        from,
        to,
        term,
        requestId: u(),
        entries: Array.from({ length: rng.int(4) }, () => ({ type: rng.pick(ENTRY_TYPES), data: randomData(rng) })),
      };
    case 7:
      return { type: "ProposeResponse", from, to, term, requestId: u(), index: u() };
    case 8:
      return { type: "ReadIndex", from, to, term, requestId: u() };
    case 9:
      return { type: "ReadIndexResponse", from, to, term, requestId: u(), index: u() };
    case 10:
      return { type: "TimeoutNow", from, to, term };
    case 11:
      return { type: "InstallSnapshotResponse", from, to, term, index: u(), offset: u() };
    default:
      return {
        type: "InstallSnapshot",
        from,
        to,
        term,
        meta: { index: u(), term: u(), config: { voters: randomIds(rng), learners: randomIds(rng), outgoingVoters: randomIds(rng) } },
        offset: u(),
        data: randomData(rng),
        done: b(),
      };
  }
}

// ---- mutations ------------------------------------------------------------------------------

/**
 * XORs 1 to 4 distinct bytes in [from, end) of a copy of `input` with non-zero values, so
 * that the result always differs from the input (two flips of one byte could cancel out).
 */
function flip(rng: Rng, input: Uint8Array, from = 0): Uint8Array {
  const out = Uint8Array.from(input);
  const span = out.length - from;
  if (span <= 0) return out;
  const n = Math.min(span, 1 + rng.int(4));
  const done = new Set<number>();
  while (done.size < n) {
    const at = from + rng.int(span);
    if (done.has(at)) continue;
    done.add(at);
    out[at]! ^= 1 + rng.int(255);
  }
  return out;
}

/**
 * Re-encodes one byte below 0x80 (possibly the last byte of a varint) as itself plus a
 * continuation and a zero byte: the same value, no longer minimally encoded.
 */
function padVarint(rng: Rng, input: Uint8Array): Uint8Array {
  const candidates: number[] = [];
  for (let i = 0; i < input.length; i++) if (input[i]! < 0x80) candidates.push(i);
  if (candidates.length === 0) return input;
  const at = rng.pick(candidates);
  return concat([input.subarray(0, at), Uint8Array.of(input[at]! | 0x80, 0), input.subarray(at + 1)]);
}

/** Overwrites a run at a random position with continuation bytes, to stress varint parsing. */
function varintSmash(rng: Rng, input: Uint8Array): Uint8Array {
  const out = Uint8Array.from(input);
  if (out.length === 0) return out;
  const at = rng.int(out.length);
  const run = 1 + rng.int(10);
  for (let i = at; i < Math.min(out.length, at + run); i++) out[i] = 0x80 | rng.int(128);
  return out;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let pos = 0;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}

function hex(bytes: Uint8Array, max = 160): string {
  const shown = Buffer.from(bytes.subarray(0, max)).toString("hex");
  return bytes.length > max ? `${shown}… (${bytes.length} bytes)` : shown;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.length).equals(b);
}

class FuzzFailure extends Error {}

// ---- decoder-level cases ------------------------------------------------------------------

interface Tally {
  accepted: number;
  rejected: number;
}

/** The codec's contract on any input: CORRUPT, or a message that re-encodes to exactly the input. */
function checkMessageBytes(input: Uint8Array, tally: Tally, what: string): "accepted" | "rejected" {
  let decoded: Message;
  try {
    decoded = decodeMessage(input);
  } catch (err) {
    if (err instanceof RaftError && err.code === "CORRUPT") {
      tally.rejected++;
      return "rejected";
    }
    throw new FuzzFailure(`${what}: decodeMessage threw a non-CORRUPT error (${String(err)}) on ${hex(input)}`);
  }
  const again = encodeMessage(decoded);
  if (!sameBytes(again, input)) throw new FuzzFailure(`${what}: accepted non-canonical input ${hex(input)}; re-encodes as ${hex(again)}`);
  tally.accepted++;
  return "accepted";
}

function checkHandshakeBytes(input: Uint8Array, tally: Tally, what: string): void {
  try {
    const h = decodeHandshake(input);
    if (!sameBytes(encodeHandshake(h), input)) throw new FuzzFailure(`${what}: accepted a non-canonical handshake ${hex(input)}`);
    tally.accepted++;
  } catch (err) {
    if (err instanceof FuzzFailure) throw err;
    if (!(err instanceof RaftError && err.code === "CORRUPT")) throw new FuzzFailure(`${what}: decodeHandshake threw ${String(err)} on ${hex(input)}`);
    tally.rejected++;
  }
}

/** Feeds `stream` to a decoder in random chunks; returns the payloads, or the CORRUPT error. */
function decodeStream(rng: Rng, stream: Uint8Array, maxFrameBytes: number, what: string): Uint8Array[] | RaftError {
  const decoder = new FrameDecoder({ maxFrameBytes });
  const payloads: Uint8Array[] = [];
  let pos = 0;
  try {
    while (pos < stream.length) {
      const n = rng.chance(0.2) ? 1 : 1 + rng.int(Math.min(4096, stream.length - pos));
      const chunk = stream.subarray(pos, Math.min(stream.length, pos + n));
      pos += chunk.length;
      decoder.push(chunk);
      for (let f = decoder.next(); f !== null; f = decoder.next()) payloads.push(Uint8Array.from(f.payload));
      // Buffered bytes never exceed one bounded frame plus the chunk that completed it.
      if (decoder.bufferedBytes > 4 + maxFrameBytes + chunk.length) {
        throw new FuzzFailure(`${what}: decoder buffers ${decoder.bufferedBytes} bytes with maxFrameBytes ${maxFrameBytes}`);
      }
    }
  } catch (err) {
    if (err instanceof FuzzFailure) throw err;
    if (err instanceof RaftError && err.code === "CORRUPT") return err;
    throw new FuzzFailure(`${what}: FrameDecoder threw a non-CORRUPT error ${String(err)}`);
  }
  return payloads;
}

function runDecoderCase(rng: Rng, tally: Tally, index: number): void {
  const mode = rng.int(10);
  const what = `decoder case ${index} (mode ${mode})`;
  const valid = () => encodeMessage(randomMessage(rng));
  switch (mode) {
    case 0: {
      // A valid message round-trips exactly.
      const m = randomMessage(rng);
      const bytes = encodeMessage(m);
      if (checkMessageBytes(bytes, tally, what) !== "accepted") throw new FuzzFailure(`${what}: rejected a valid ${m.type}`);
      return;
    }
    case 1:
      checkMessageBytes(flip(rng, valid()), tally, what);
      return;
    case 2: {
      // Every proper prefix of a valid message is refused.
      const bytes = valid();
      const cut = rng.int(bytes.length);
      if (checkMessageBytes(bytes.subarray(0, cut), tally, what) !== "rejected") throw new FuzzFailure(`${what}: accepted a truncated message`);
      return;
    }
    case 3: {
      // Trailing bytes after a valid message are refused.
      const bytes = concat([valid(), rng.bytes(1 + rng.int(8))]);
      if (checkMessageBytes(bytes, tally, what) !== "rejected") throw new FuzzFailure(`${what}: accepted trailing bytes`);
      return;
    }
    case 4: {
      // Random bytes, usually behind a plausible type tag so that parsing gets somewhere.
      const body = rng.bytes(rng.int(64));
      checkMessageBytes(rng.chance(0.8) ? concat([Uint8Array.of(1 + rng.int(13)), body]) : body, tally, what);
      return;
    }
    case 5:
      checkMessageBytes(rng.chance(0.5) ? varintSmash(rng, valid()) : padVarint(rng, valid()), tally, what);
      return;
    case 6: {
      const h = encodeHandshake({ clusterId: randomId(rng), nodeId: randomId(rng) });
      checkHandshakeBytes(rng.chance(0.5) ? flip(rng, h) : h.subarray(0, rng.int(h.length + 1)), tally, what);
      return;
    }
    case 7: {
      // Valid frames in random chunks come out identical.
      const payloads = Array.from({ length: 1 + rng.int(5) }, () => valid());
      const stream = concat(payloads.map((p) => encodeFrame(FrameKind.Message, p)));
      const got = decodeStream(rng, stream, 1 << 20, what);
      if (got instanceof RaftError) throw new FuzzFailure(`${what}: refused a valid stream: ${got.message}`);
      if (got.length !== payloads.length || got.some((p, i) => !sameBytes(p, payloads[i]!))) {
        throw new FuzzFailure(`${what}: frames changed in transit`);
      }
      tally.accepted++;
      return;
    }
    case 8: {
      // A corrupted stream: CORRUPT or frames, never another error, never unbounded buffering.
      const stream = concat(Array.from({ length: 1 + rng.int(4) }, () => encodeFrame(FrameKind.Message, valid())));
      const got = decodeStream(rng, flip(rng, stream), 4096, what);
      if (got instanceof RaftError) tally.rejected++;
      else tally.accepted++;
      return;
    }
    default: {
      // A length prefix above the bound is refused once its 4 bytes are in, whatever follows.
      const max = 64 + rng.int(1 << 16);
      const length = max + 1 + rng.int(0xffffffff - max);
      const header = Uint8Array.of(length >>> 24, (length >>> 16) & 0xff, (length >>> 8) & 0xff, length & 0xff);
      const decoder = new FrameDecoder({ maxFrameBytes: max });
      const split = 1 + rng.int(3);
      decoder.push(header.subarray(0, split));
      if (decoder.next() !== null) throw new FuzzFailure(`${what}: a frame from ${split} bytes`);
      decoder.push(concat([header.subarray(split), rng.bytes(rng.int(32))]));
      try {
        decoder.next();
      } catch (err) {
        if (err instanceof RaftError && err.code === "CORRUPT" && decoder.bufferedBytes === 0) {
          tally.rejected++;
          return;
        }
      }
      throw new FuzzFailure(`${what}: length ${length} above ${max} was not refused at once`);
    }
  }
}

// ---- socket-level cases -------------------------------------------------------------------

const CLUSTER = "fuzz";
const SERVER_ID = "s";
const RAW_ID = "x"; // a member id the raw connections claim
const SERVER_MAX_FRAME = 64 * 1024;

type Expectation = { kind: "close" } | { kind: "deliver"; message: Message };

interface SocketCase {
  readonly index: number;
  readonly mode: number;
  readonly chunks: Uint8Array[];
  /** Half-close after writing: the input is incomplete, and only the end of stream makes it bad. */
  readonly end: boolean;
  readonly expect: Expectation;
}

function handshake(clusterId = CLUSTER, nodeId = RAW_ID): Uint8Array {
  return encodeFrame(FrameKind.Handshake, encodeHandshake({ clusterId, nodeId }));
}

/** What the transport must do with a message frame from RAW_ID, by the codec's own verdict. */
function oracle(payload: Uint8Array): Expectation {
  try {
    const m = decodeMessage(payload);
    return m.from === RAW_ID && m.to === SERVER_ID ? { kind: "deliver", message: m } : { kind: "close" };
  } catch {
    return { kind: "close" };
  }
}

/** A random message from RAW_ID to the server that fits the server's frame bound. */
function fittingMessage(rng: Rng): Message {
  for (;;) {
    const m = randomMessage(rng, RAW_ID, SERVER_ID);
    if (encodeMessage(m).length <= SERVER_MAX_FRAME - 2) return m;
  }
}

function makeSocketCase(rng: Rng, index: number): SocketCase {
  const mode = rng.int(8);
  const validTo = () => encodeMessage(fittingMessage(rng));
  const close: Expectation = { kind: "close" };
  switch (mode) {
    case 0: // random bytes
      return { index, mode, chunks: [rng.bytes(1 + rng.int(200))], end: true, expect: close };
    case 1: {
      // a valid session cut short
      const full = concat([handshake(), encodeFrame(FrameKind.Message, validTo())]);
      return { index, mode, chunks: [full.subarray(0, 1 + rng.int(full.length - 1))], end: true, expect: close };
    }
    case 2: {
      // a huge length prefix, before or after the handshake; no end: the transport must act alone
      const after = rng.chance(0.5);
      const min = after ? SERVER_MAX_FRAME : 1024;
      const length = min + 1 + rng.int(0xffffffff - min);
      const prefix = Uint8Array.of(length >>> 24, (length >>> 16) & 0xff, (length >>> 8) & 0xff, length & 0xff, 1, 2);
      return { index, mode, chunks: after ? [handshake(), prefix] : [prefix], end: false, expect: close };
    }
    case 3:
    case 4: {
      // a handshake, then a well-framed message with flipped bytes (frame header intact)
      const payload = flip(rng, validTo());
      return { index, mode, chunks: [handshake(), encodeFrame(FrameKind.Message, payload)], end: false, expect: oracle(payload) };
    }
    case 5: {
      // a bad handshake: another cluster, a non-member, or flipped bytes
      const h = rng.pick([handshake("other"), handshake(CLUSTER, "intruder"), flip(rng, handshake(), 6)]);
      return { index, mode, chunks: [h, encodeFrame(FrameKind.Message, validTo())], end: false, expect: close };
    }
    case 6: {
      // a frame kind other than Message after the handshake
      const frame = encodeFrame(FrameKind.Message, validTo());
      frame[5] = rng.pick([0, 1, 3, 255]);
      return { index, mode, chunks: [handshake(), frame], end: false, expect: close };
    }
    default: {
      // a valid message (positive control), split at a random point across two writes
      const m = fittingMessage(rng);
      const all = concat([handshake(), encodeFrame(FrameKind.Message, encodeMessage(m))]);
      const cut = rng.int(all.length);
      return { index, mode, chunks: [all.subarray(0, cut), all.subarray(cut)], end: false, expect: { kind: "deliver", message: m } };
    }
  }
}

interface Deliveries {
  /** Encoded bytes (hex) of delivered messages not yet claimed by a case, with counts. */
  readonly pending: Map<string, number>;
  waiters: (() => void)[];
}

async function runSocketCase(c: SocketCase, port: number, deliveries: Deliveries, timeoutMs: number): Promise<"closed" | "delivered"> {
  const what = `socket case ${c.index} (mode ${c.mode})`;
  const socket = net.connect({ host: "127.0.0.1", port });
  socket.on("error", () => {});
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("close", () => reject(new FuzzFailure(`${what}: could not connect`)));
  });
  for (const chunk of c.chunks) if (chunk.length > 0) socket.write(chunk);
  if (c.end) socket.end();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), timeoutMs)));
  try {
    if (c.expect.kind === "close") {
      const outcome = await Promise.race([closed.then(() => "closed" as const), timeout]);
      if (outcome === "timeout") throw new FuzzFailure(`${what}: the transport did not close a bad connection (${hex(concat(c.chunks))})`);
      return "closed";
    }
    const key = Buffer.from(encodeMessage(c.expect.message)).toString("hex");
    const delivered = (async () => {
      for (;;) {
        const n = deliveries.pending.get(key) ?? 0;
        if (n > 0) {
          if (n === 1) deliveries.pending.delete(key);
          else deliveries.pending.set(key, n - 1);
          return "delivered" as const;
        }
        await new Promise<void>((resolve) => deliveries.waiters.push(resolve));
      }
    })();
    const outcome = await Promise.race([delivered, closed.then(() => "closed" as const), timeout]);
    if (outcome !== "delivered") {
      throw new FuzzFailure(`${what}: a valid ${c.expect.message.type} was not delivered (${outcome}); input ${hex(concat(c.chunks))}`);
    }
    return "delivered";
  } finally {
    clearTimeout(timer);
    socket.destroy();
    await closed;
  }
}

function getGc(): () => void {
  const existing = (globalThis as { gc?: () => void }).gc;
  if (existing) return existing;
  // Expose V8's gc at run time, so that the heap check measures live memory, not garbage.
  v8.setFlagsFromString("--expose-gc");
  return runInNewContext("gc") as () => void;
}

async function waitUntil(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new FuzzFailure(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/**
 * Runs `cases` seeded fuzz cases. Throws a `FuzzFailure` naming the seed and the case
 * on the first violation.
 */
export async function runTransportFuzz(options: FuzzOptions): Promise<FuzzReport> {
  const { seed, cases } = options;
  const log = options.log ?? (() => {});
  const socketCases = options.socketCases ?? Math.min(Math.round(cases * 0.3), 300 + Math.floor(cases / 20));
  const decoderCases = cases - socketCases;
  const rng = new Rng(seed);
  const gc = getGc();
  const tally: Tally = { accepted: 0, rejected: 0 };
  let connectionsClosed = 0;
  let messagesDelivered = 0;

  gc();
  const heapBefore = process.memoryUsage().heapUsed;
  try {
    for (let i = 0; i < decoderCases; i++) {
      runDecoderCase(rng, tally, i);
      if (i > 0 && i % 50_000 === 0) log(`  ${i} decoder cases`);
    }

    // Socket cases: generated in order from the seed, then run a few at a time.
    const socketInputs = Array.from({ length: socketCases }, (_, i) => makeSocketCase(rng, i));
    const deliveries: Deliveries = { pending: new Map(), waiters: [] };
    const legitInbox: Message[] = [];
    const server = new TcpTransport({
      id: SERVER_ID,
      listen: "127.0.0.1:0",
      clusterId: CLUSTER,
      peers: { [RAW_ID]: "127.0.0.1:1", legit: "127.0.0.1:1" },
      maxFrameBytes: SERVER_MAX_FRAME,
      handshakeTimeoutMs: 10_000,
    });
    await server.start((m) => {
      if (m.from === "legit") {
        legitInbox.push(m);
        return;
      }
      const key = Buffer.from(encodeMessage(m)).toString("hex");
      deliveries.pending.set(key, (deliveries.pending.get(key) ?? 0) + 1);
      for (const wake of deliveries.waiters.splice(0)) wake();
    });
    const legit = new TcpTransport({ id: "legit", listen: "127.0.0.1:0", clusterId: CLUSTER, peers: { [SERVER_ID]: `127.0.0.1:${server.port}` } });
    await legit.start(() => {});
    let round = 0;
    const legitCheck = async (when: string) => {
      round++;
      legit.send({ type: "Heartbeat", from: "legit", to: SERVER_ID, term: 1, commit: round, readRound: round });
      await waitUntil(() => legitInbox.some((m) => m.type === "Heartbeat" && m.commit === round), 5000, `the legitimate peer's message ${when}`);
    };
    try {
      await legitCheck("before the socket cases");
      const concurrency = 8;
      for (let start = 0; start < socketInputs.length; start += 100) {
        const batch = socketInputs.slice(start, start + 100);
        let next = 0;
        await Promise.all(
          Array.from({ length: concurrency }, async () => {
            while (next < batch.length) {
              const c = batch[next++]!;
              const outcome = await runSocketCase(c, server.port, deliveries, 5000);
              if (outcome === "closed") connectionsClosed++;
              else messagesDelivered++;
            }
          }),
        );
        await legitCheck(`after socket case ${start + batch.length - 1}`);
      }
      if (deliveries.pending.size > 0) throw new FuzzFailure(`messages delivered that no case sent: ${deliveries.pending.size}`);
      // Every raw connection is gone; only the legitimate peer's remains.
      await waitUntil(() => server.stats().inboundConnections === 1, 5000, "the server to drop every fuzz connection");
    } finally {
      await Promise.all([server.stop(), legit.stop()]);
    }
  } catch (err) {
    if (err instanceof FuzzFailure) err.message = `seed ${seed}: ${err.message} (replay: FUZZ_SEED=${seed} FUZZ_CASES=${cases})`;
    throw err;
  }
  gc();
  const heapDeltaBytes = process.memoryUsage().heapUsed - heapBefore;
  return { seed, decoderCases, socketCases, ...tally, connectionsClosed, messagesDelivered, heapDeltaBytes };
}

/** A seed from FUZZ_SEED, or a fresh random one. */
export function fuzzSeed(): number {
  const fromEnv = process.env.FUZZ_SEED;
  if (fromEnv !== undefined && fromEnv !== "") {
    const seed = Number(fromEnv);
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new RangeError(`FUZZ_SEED must be an integer from 0 to 2^32 - 1, got ${fromEnv}`);
    return seed;
  }
  return Math.floor(Math.random() * 0x100000000);
}

/** A case count from FUZZ_CASES, or `fallback`. */
export function fuzzCases(fallback: number): number {
  const fromEnv = process.env.FUZZ_CASES;
  if (fromEnv === undefined || fromEnv === "") return fallback;
  const cases = Number(fromEnv);
  if (!Number.isInteger(cases) || cases < 1) throw new RangeError(`FUZZ_CASES must be a positive integer, got ${fromEnv}`);
  return cases;
}

async function main(): Promise<void> {
  const seed = fuzzSeed();
  const cases = fuzzCases(100_000);
  console.log(`soak-fuzz: seed ${seed}, ${cases} cases (replay: FUZZ_SEED=${seed} FUZZ_CASES=${cases} npx tsx scripts/soak-fuzz.ts)`);
  const started = performance.now();
  const report = await runTransportFuzz({ seed, cases, log: (line) => console.log(line) });
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  console.log(
    `soak-fuzz: checked ${report.decoderCases + report.socketCases} cases in ${seconds} s: ` +
      `${report.decoderCases} decoder cases (${report.accepted} accepted, ${report.rejected} rejected), ` +
      `${report.socketCases} socket cases (${report.connectionsClosed} bad connections closed, ${report.messagesDelivered} valid messages delivered), ` +
      `heap delta ${(report.heapDeltaBytes / 1048576).toFixed(1)} MiB`,
  );
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
