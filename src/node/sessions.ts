// Client sessions for exactly-once commands (Raft dissertation §6.3): a state machine
// wrapper that remembers, per client session, which commands it applied and what they
// returned, so that a retried command is answered from the cache instead of applied again.
import type { Codec } from "../codec.js";
import { RaftError } from "../errors.js";
import { snapshotChunks, snapshotSlice, sourceChunks, type SnapshotData, type SnapshotSource } from "../snapshot-data.js";
import type { ApplyMeta, StateMachine } from "../state-machine.js";

/**
 * A command of a {@link SessionStateMachine}: session bookkeeping, or a user command
 * inside a session. Every variant carries `time`, the proposer's wall-clock time in
 * milliseconds, from which the state machine derives its deterministic log time.
 *
 * - `register`: opens a session; its result carries the new client id (the entry's log index).
 * - `command`: the user command `cmd`, number `seq` of client `session`. `ackSeq` is the
 *   lowest seq whose result the client still needs: results of lower seqs are dropped.
 * - `keepAlive`: marks the session active without applying anything.
 * - `close`: ends the session and frees its cache now rather than at expiry.
 * @typeParam Cmd - The wrapped state machine's command type.
 * @public
 */
export type SessionCommand<Cmd> =
  | { readonly kind: "register"; readonly time: number }
  | {
      readonly kind: "command";
      readonly session: number;
      readonly seq: number;
      readonly ackSeq: number;
      readonly time: number;
      readonly cmd: Cmd;
    }
  | { readonly kind: "keepAlive"; readonly session: number; readonly time: number }
  | { readonly kind: "close"; readonly session: number; readonly time: number };

/**
 * What a {@link SessionStateMachine} returns. Refusals are results, not throws: `apply`
 * must be deterministic and a throw would stop the node.
 *
 * - `registered`: the session was opened; `session` is the client id to use.
 * - `result`: the user state machine's result; `duplicate` is true when it came from the
 *   cache because this (session, seq) was applied before.
 * - `expired`: the session is unknown or expired (a {@link RaftClient} rejects with
 *   `SESSION_EXPIRED`); the command was not applied.
 * - `stale`: `seq` is below what the client acknowledged, so its result is gone; the
 *   command was not applied (again).
 * - `ok`: a keep-alive or close was applied.
 * - `malformed`: the entry is not a session command (e.g. proposed without a client); nothing was applied.
 * @typeParam Result - The wrapped state machine's result type.
 * @public
 */
export type SessionResult<Result> =
  | { readonly kind: "registered"; readonly session: number }
  | { readonly kind: "result"; readonly result: Result; readonly duplicate: boolean }
  | { readonly kind: "expired"; readonly session: number }
  | { readonly kind: "stale"; readonly session: number; readonly seq: number }
  | { readonly kind: "ok" }
  | { readonly kind: "malformed"; readonly reason: string };

/**
 * Options for {@link SessionStateMachine}. Like every input of `apply`, they must be the
 * same on every node and across restarts, or the nodes can disagree on which sessions live.
 * @typeParam Result - The wrapped state machine's result type.
 * @public
 */
export interface SessionStateMachineOptions<Result> {
  /**
   * A session expires when no command of it was applied for this many milliseconds of log
   * time (the highest proposer time seen in the log, not any local clock).
   * @defaultValue 3600000 (one hour)
   */
  readonly sessionTimeoutMs?: number;
  /**
   * The most sessions kept; registering one more expires the least recently active one.
   * @defaultValue 100000
   */
  readonly maxSessions?: number;
  /**
   * The most results cached for one session (those at or above its `ackSeq`). A command
   * that would exceed it expires the session instead of being applied: a client that
   * keeps more than this many commands unacknowledged is broken or hostile.
   * @defaultValue 1024
   */
  readonly maxResultsPerSession?: number;
  /**
   * How cached results are written into snapshots, for results that JSON cannot carry
   * (`bigint`, `Uint8Array`, `Map`...).
   * @defaultValue results go into the snapshot's JSON as they are (`undefined` kept as such)
   */
  readonly resultCodec?: Codec<Result>;
}

/**
 * A session's state as {@link SessionStateMachine.sessionInfo} reports it.
 * @public
 */
export interface SessionInfo {
  /** The client id: the log index of the session's `register` entry. */
  readonly id: number;
  /** The log time of the session's last applied command. */
  readonly lastActiveMs: number;
  /** Results of seqs below this were acknowledged by the client and dropped. */
  readonly ackSeq: number;
  /** The highest seq applied so far (0: none). */
  readonly highestSeq: number;
  /** The seqs whose results are cached, ascending. */
  readonly cachedSeqs: readonly number[];
}

interface Session<Result> {
  readonly id: number;
  lastActiveMs: number;
  // Invariant: every key of `results` is >= ackSeq.
  ackSeq: number;
  highestSeq: number;
  readonly results: Map<number, Result>;
}

const SNAPSHOT_VERSION = 1;
const MAGIC = [0x52, 0x4b, 0x53, 0x53]; // "RKSS": raftkit session snapshot
const HEADER_BYTES = MAGIC.length + 4;

/**
 * Wraps a user {@link StateMachine} with client sessions, for exactly-once commands
 * (Raft dissertation §6.3): a client registers a session through the log, numbers its
 * commands, and retries a command with the same number until it learns the result. The
 * wrapper applies each (session, seq) once and answers retries from a cache.
 *
 * Everything is decided by the log alone, so every node agrees: the client id is the log
 * index of the `register` entry; sessions expire by log time, the highest proposer time
 * carried by the entries (`logTime = max(logTime, time)`), never by a local clock at apply.
 * Proposers' wall clocks should roughly agree (NTP): one running ahead by X ms shortens
 * every session's effective timeout by X ms.
 *
 * Sessions and cached results go into the snapshot together with the wrapped machine's
 * state (a versioned header, then the wrapped machine's own snapshot, streamed as it
 * produces it). `snapshot` and `restore` exist only when the wrapped machine has both.
 * A cached result is handed out as the object the wrapped machine returned: treat
 * results as immutable, or a caller's change would reach the cache.
 *
 * Construct the node with the wrapper and talk to it through {@link RaftNode.client}.
 * (The alternative, a node option that wraps automatically, would hide the wrapper's
 * command and result types from `propose()`; explicit wrapping keeps the node generic and
 * lets the user read the wrapped machine and the session table directly.)
 *
 * @example
 * ```ts
 * const kv = new KvStateMachine();
 * const node = new RaftNode({ ...nodeOptions, stateMachine: new SessionStateMachine(kv, { sessionTimeoutMs: 60_000 }) });
 * await node.start();
 * const client = node.client();
 * await client.propose({ op: "put", key: "a", value: "1" }); // applied exactly once, however often it is retried
 * ```
 * @typeParam Cmd - The wrapped state machine's command type.
 * @typeParam Result - The wrapped state machine's result type (cached per session until acknowledged).
 * @public
 */
export class SessionStateMachine<Cmd, Result> implements StateMachine<SessionCommand<Cmd>, SessionResult<Result>> {
  /** The wrapped user state machine. */
  readonly inner: StateMachine<Cmd, Result>;
  /** The session timeout in log-time milliseconds. */
  readonly sessionTimeoutMs: number;
  private readonly maxSessions: number;
  private readonly maxResults: number;
  /** Null: results are JSON values inside the header. */
  private readonly resultCodec: Codec<Result> | null;
  /** Sessions in order of last activity, least recent first (a touch re-inserts at the end). */
  private sessions = new Map<number, Session<Result>>();
  // Invariant: never decreases.
  private logTimeMs = 0;

  /**
   * Serialises the sessions and the wrapped machine's state, both as they are at the call
   * (the session table is encoded and the wrapped machine's `snapshot()` called before
   * this returns), as a stream: the session header, then the wrapped machine's chunks.
   * Iterate it once; abandoning it (`break`, or `return()` on its iterator, even before
   * the first `next()`) abandons the wrapped machine's stream too, so that the wrapped
   * machine can release what it holds for it (a stream never iterated nor abandoned
   * keeps it; RaftNode always hands the stream to the storage adapter). Present only
   * when the wrapped machine has `snapshot` and `restore`.
   * @throws Whatever the wrapped machine's `snapshot()` throws at the call (e.g.
   * KvStateMachine's `INVALID_STATE` while its previous snapshot is pending).
   */
  readonly snapshot?: () => AsyncIterable<Uint8Array>;
  /**
   * Replaces the sessions and the wrapped machine's state with a snapshot's: reads and
   * checks the session header, has the wrapped machine restore the rest, and only once
   * that succeeded swaps in the sessions. Present only when the wrapped machine has
   * `snapshot` and `restore`.
   * @throws RaftError `CORRUPT` when the header is not such a snapshot's; whatever the
   * wrapped machine's `restore` throws (`CORRUPT` for its own part, from KvStateMachine);
   * TypeError when `data` is not a `SnapshotData` handle. The state (sessions and wrapped
   * machine alike, as the wrapped machine's `restore` must promise) is then unchanged.
   */
  readonly restore?: (data: SnapshotData) => Promise<void>;

  /**
   * Wraps `inner`.
   * @param inner - The user's state machine; it sees each session command's `cmd` once.
   * @param options - Session timeout and bounds; identical on every node.
   * @throws TypeError when `inner` has no `apply`; RangeError when an option is out of range, naming it.
   */
  constructor(inner: StateMachine<Cmd, Result>, options: SessionStateMachineOptions<Result> = {}) {
    if (typeof inner !== "object" || inner === null || typeof inner.apply !== "function") {
      throw new TypeError("SessionStateMachine needs a state machine with an apply() method");
    }
    this.inner = inner;
    this.sessionTimeoutMs = positive("sessionTimeoutMs", options.sessionTimeoutMs ?? 3_600_000);
    this.maxSessions = positiveInteger("maxSessions", options.maxSessions ?? 100_000);
    this.maxResults = positiveInteger("maxResultsPerSession", options.maxResultsPerSession ?? 1024);
    this.resultCodec = options.resultCodec ?? null;
    if (typeof inner.snapshot === "function" && typeof inner.restore === "function") {
      this.snapshot = () => this.takeSnapshot();
      this.restore = (data) => this.restoreSnapshot(data);
    }
  }

  /** The log time: the highest proposer time applied so far, in milliseconds. */
  get logTime(): number {
    return this.logTimeMs;
  }

  /** The number of live sessions. */
  get sessionCount(): number {
    return this.sessions.size;
  }

  /**
   * A session's state.
   * @param id - The client id (the log index of the session's registration).
   * @returns The session's state, or undefined when it is unknown or expired.
   */
  sessionInfo(id: number): SessionInfo | undefined {
    const s = this.sessions.get(id);
    if (s === undefined) return undefined;
    return {
      id: s.id,
      lastActiveMs: s.lastActiveMs,
      ackSeq: s.ackSeq,
      highestSeq: s.highestSeq,
      cachedSeqs: [...s.results.keys()].sort((a, b) => a - b),
    };
  }

  /**
   * Applies one entry. Deterministic: the outcome depends only on the entries applied
   * before (and the options). Throws only when the wrapped machine throws.
   * @param command - A session command.
   * @param meta - The entry's index (a registration's client id) and term; passed on to the wrapped machine.
   * @returns The outcome; refusals (`expired`, `stale`, `malformed`) are results, never throws.
   */
  apply(command: SessionCommand<Cmd>, meta: ApplyMeta): SessionResult<Result> | Promise<SessionResult<Result>> {
    const problem = malformation(command);
    if (problem !== null) return { kind: "malformed", reason: problem };
    this.logTimeMs = Math.max(this.logTimeMs, command.time);
    this.expireIdle();
    switch (command.kind) {
      case "register":
        return this.register(meta.index);
      case "keepAlive": {
        const s = this.touch(command.session);
        return s === undefined ? { kind: "expired", session: command.session } : { kind: "ok" };
      }
      case "close":
        this.sessions.delete(command.session);
        return { kind: "ok" };
      case "command":
        return this.applyCommand(command, meta);
    }
  }

  private register(index: number): SessionResult<Result> {
    // Least recently active first: the first key is the one to evict.
    while (this.sessions.size >= this.maxSessions) this.sessions.delete(this.sessions.keys().next().value!);
    this.sessions.set(index, { id: index, lastActiveMs: this.logTimeMs, ackSeq: 0, highestSeq: 0, results: new Map() });
    return { kind: "registered", session: index };
  }

  private applyCommand(
    command: Extract<SessionCommand<Cmd>, { kind: "command" }>,
    meta: ApplyMeta,
  ): SessionResult<Result> | Promise<SessionResult<Result>> {
    const s = this.touch(command.session);
    if (s === undefined) return { kind: "expired", session: command.session };
    // The client never acknowledges the command it is sending, so this cannot make it stale.
    this.acknowledge(s, Math.min(command.ackSeq, command.seq));
    if (command.seq < s.ackSeq) return { kind: "stale", session: s.id, seq: command.seq };
    if (s.results.has(command.seq)) return { kind: "result", result: s.results.get(command.seq) as Result, duplicate: true };
    if (s.results.size >= this.maxResults) {
      this.sessions.delete(s.id);
      return { kind: "expired", session: s.id };
    }
    const store = (result: Result): SessionResult<Result> => {
      s.results.set(command.seq, result);
      s.highestSeq = Math.max(s.highestSeq, command.seq);
      return { kind: "result", result, duplicate: false };
    };
    const r = this.inner.apply(command.cmd, meta);
    return r instanceof Promise ? r.then(store) : store(r);
  }

  /** Marks a session active now (in log time); undefined when it is unknown or expired. */
  private touch(id: number): Session<Result> | undefined {
    const s = this.sessions.get(id);
    if (s === undefined) return undefined;
    s.lastActiveMs = this.logTimeMs;
    // Re-insert at the end, keeping the map in order of last activity.
    this.sessions.delete(id);
    this.sessions.set(id, s);
    return s;
  }

  private acknowledge(s: Session<Result>, ackSeq: number): void {
    if (ackSeq <= s.ackSeq) return;
    s.ackSeq = ackSeq;
    for (const seq of s.results.keys()) if (seq < ackSeq) s.results.delete(seq);
  }

  /** Expires the sessions idle for longer than the timeout, in log time. */
  private expireIdle(): void {
    const horizon = this.logTimeMs - this.sessionTimeoutMs;
    // Invariant: lastActiveMs ascends along the map (log time never decreases), so the idle ones come first.
    for (const s of this.sessions.values()) {
      if (s.lastActiveMs >= horizon) break;
      this.sessions.delete(s.id);
    }
  }

  // ------------------------------------------------------------------ snapshots
  //
  // Format: "RKSS", a u32 (big-endian) header length, a UTF-8 JSON header
  // { version, logTimeMs, sessions: [[id, lastActiveMs, ackSeq, highestSeq, [[seq, result?], ...]], ...] }
  // with sessions in order of last activity and results by ascending seq, then the wrapped
  // machine's snapshot bytes, to the end. A result is the JSON value itself (left out when
  // undefined), or with a `resultCodec` the base64 of its encoding. The header is one
  // chunk of the stream (the session table is bounded by maxSessions and
  // maxResultsPerSession); the wrapped machine's chunks follow as it produces them.

  private takeSnapshot(): AsyncIterable<Uint8Array> {
    // Both captures happen before this returns, in this order: the node goes on applying
    // while the stream is read, and encoding the header may throw (a resultCodec), which
    // must not leave the wrapped machine with a snapshot pending that nobody reads.
    const header = this.encodeHeader();
    const user = this.inner.snapshot!();
    // Read only when the stream is: without a handler now, an unread rejection would be unhandled.
    if (user instanceof Promise) user.catch(() => {});
    return sessionSnapshotChunks(header, user);
  }

  /** The magic, the header length and the JSON header, as one chunk. */
  private encodeHeader(): Uint8Array {
    const sessions = [...this.sessions.values()].map((s) => [
      s.id,
      s.lastActiveMs,
      s.ackSeq,
      s.highestSeq,
      [...s.results].sort((a, b) => a[0] - b[0]).map(([seq, r]) => this.encodeResult(seq, r)),
    ]);
    const json = new TextEncoder().encode(JSON.stringify({ version: SNAPSHOT_VERSION, logTimeMs: this.logTimeMs, sessions }));
    const out = new Uint8Array(HEADER_BYTES + json.byteLength);
    out.set(MAGIC, 0);
    new DataView(out.buffer).setUint32(MAGIC.length, json.byteLength);
    out.set(json, HEADER_BYTES);
    return out;
  }

  private async restoreSnapshot(data: SnapshotData): Promise<void> {
    const { header, userOffset } = await readHeader(data);
    const parsed = this.parseHeader(header);
    // The wrapped machine keeps its old state when it throws; ours is only replaced after it succeeded.
    await this.inner.restore!(snapshotSlice(data, userOffset));
    this.sessions = parsed.sessions;
    this.logTimeMs = parsed.logTimeMs;
  }

  private parseHeader(bytes: Uint8Array): { logTimeMs: number; sessions: Map<number, Session<Result>> } {
    let header: unknown;
    try {
      header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
    } catch (cause) {
      throw corrupt("the header is not UTF-8 JSON", cause);
    }
    const h = header as { version?: unknown; logTimeMs?: unknown; sessions?: unknown } | null;
    if (typeof h !== "object" || h === null) throw corrupt("the header is not an object");
    if (h.version !== SNAPSHOT_VERSION) throw corrupt(`unknown snapshot version ${JSON.stringify(h.version)}`);
    if (!isFiniteNumber(h.logTimeMs)) throw corrupt("logTimeMs is not a number");
    if (!Array.isArray(h.sessions)) throw corrupt("sessions is not an array");
    const sessions = new Map<number, Session<Result>>();
    let lastActive = -Infinity;
    for (const [i, raw] of (h.sessions as unknown[]).entries()) {
      if (!Array.isArray(raw) || raw.length !== 5) throw corrupt(`session ${i} is not a 5-tuple`);
      const [id, lastActiveMs, ackSeq, highestSeq, results] = raw as unknown[];
      if (!isSafeCount(id) || !isFiniteNumber(lastActiveMs) || !isSafeCount(ackSeq) || !isSafeCount(highestSeq) || !Array.isArray(results)) {
        throw corrupt(`session ${i} has a malformed field`);
      }
      if (sessions.has(id)) throw corrupt(`session ${id} appears twice`);
      if (lastActiveMs < lastActive) throw corrupt(`sessions are not in order of activity at ${i}`);
      lastActive = lastActiveMs;
      const cache = new Map<number, Result>();
      for (const entry of results as unknown[]) {
        if (!Array.isArray(entry) || entry.length < 1 || entry.length > 2 || !isSafeCount(entry[0]) || entry[0] < ackSeq) {
          throw corrupt(`session ${id} has a malformed cached result`);
        }
        const seq: number = entry[0];
        try {
          cache.set(seq, this.decodeResult(entry as unknown[]));
        } catch (cause) {
          throw corrupt(`session ${id}: cached result of seq ${seq} does not decode`, cause);
        }
      }
      sessions.set(id, { id, lastActiveMs, ackSeq, highestSeq, results: cache });
    }
    return { logTimeMs: h.logTimeMs, sessions };
  }

  private encodeResult(seq: number, result: Result): unknown[] {
    if (this.resultCodec !== null) return [seq, toBase64(this.resultCodec.encode(result))];
    return result === undefined ? [seq] : [seq, result];
  }

  /** Throws when the entry does not decode. */
  private decodeResult(entry: readonly unknown[]): Result {
    if (this.resultCodec === null) return entry[1] as Result;
    if (typeof entry[1] !== "string") throw new TypeError("a coded result must be a base64 string");
    return this.resultCodec.decode(fromBase64(entry[1]));
  }
}

/**
 * A session snapshot's chunks: the header, then the wrapped machine's. When the stream is
 * abandoned or fails before the wrapped machine's part was started, that part is
 * abandoned explicitly (`return()` on its iterator): a stream that is never started sees
 * nothing otherwise, and KvStateMachine would keep refusing new snapshots.
 */
function sessionSnapshotChunks(header: Uint8Array, user: SnapshotSource | Promise<Uint8Array>): AsyncIterable<Uint8Array> {
  return new EarlyReturnable(headerThenUser(header, user), () => abandon(user));
}

async function* headerThenUser(header: Uint8Array, user: SnapshotSource | Promise<Uint8Array>): AsyncGenerator<Uint8Array, void, undefined> {
  let userStarted = false;
  try {
    yield header;
    const source = await user;
    userStarted = true;
    // Abandoning this generator from here on abandons sourceChunks, which abandons `source`.
    yield* sourceChunks(source);
  } finally {
    if (!userStarted) await abandon(user);
  }
}

/**
 * A generator's chunks, with a `return()` that also works before the first `next()`: a
 * generator that never started ignores `return()` without running its `finally`, so
 * `onUnstarted` does that work instead.
 */
class EarlyReturnable implements AsyncIterableIterator<Uint8Array> {
  private started = false;

  constructor(
    private readonly chunks: AsyncGenerator<Uint8Array, void, undefined>,
    private readonly onUnstarted: () => Promise<void>,
  ) {}

  next(): Promise<IteratorResult<Uint8Array, void>> {
    this.started = true;
    return this.chunks.next();
  }

  async return(): Promise<IteratorResult<Uint8Array, void>> {
    if (!this.started) {
      this.started = true;
      await this.onUnstarted();
    }
    return this.chunks.return(undefined);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

/** Tells a wrapped snapshot stream that was never read that it never will be. */
async function abandon(user: SnapshotSource | Promise<Uint8Array>): Promise<void> {
  // Bytes, or a promise of them, hold nothing to release.
  if (user instanceof Uint8Array || user instanceof Promise) return;
  await user[Symbol.asyncIterator]().return?.();
}

/** Reads and frames the session header; the wrapped machine's snapshot starts at `userOffset`. */
async function readHeader(data: SnapshotData): Promise<{ header: Uint8Array; userOffset: number }> {
  const d = data as Partial<SnapshotData> | null;
  if (typeof d !== "object" || d === null || typeof d.read !== "function" || !isSafeCount(d.byteLength)) {
    throw new TypeError("SessionStateMachine.restore takes a SnapshotData handle (byteLength and read()); wrap bytes in memory with snapshotDataOf(bytes)");
  }
  if (data.byteLength < HEADER_BYTES) throw corrupt(`${data.byteLength} bytes are too few for a session snapshot`);
  const prefix = await readRange(data, 0, HEADER_BYTES);
  if (MAGIC.some((b, i) => prefix[i] !== b)) throw corrupt("not a session snapshot (bad magic)");
  const headerBytes = new DataView(prefix.buffer, prefix.byteOffset, prefix.byteLength).getUint32(MAGIC.length);
  if (headerBytes > data.byteLength - HEADER_BYTES) throw corrupt(`the header length (${headerBytes} bytes) runs past the end`);
  return { header: await readRange(data, HEADER_BYTES, headerBytes), userOffset: HEADER_BYTES + headerBytes };
}

/** Exactly `length` bytes from `offset`, however few each read returns; the range must lie within `data`. */
async function readRange(data: SnapshotData, offset: number, length: number): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  let filled = 0;
  if (length === 0) return out;
  for await (const chunk of snapshotChunks(data, length, offset)) {
    const take = Math.min(chunk.byteLength, length - filled);
    out.set(chunk.subarray(0, take), filled);
    filled += take;
    if (filled === length) break;
  }
  return out;
}

function corrupt(why: string, cause?: unknown): RaftError {
  return new RaftError("CORRUPT", `SessionStateMachine.restore: ${why}`, cause === undefined ? {} : { cause });
}

/** Why `c` is not a session command, or null when it is one. */
function malformation(c: unknown): string | null {
  if (typeof c !== "object" || c === null) return "not an object";
  const o = c as Record<string, unknown>;
  if (!isFiniteNumber(o["time"])) return "time is not a finite number";
  switch (o["kind"]) {
    case "register":
      return null;
    case "keepAlive":
    case "close":
      return isSafeCount(o["session"]) ? null : "session is not a non-negative integer";
    case "command":
      if (!isSafeCount(o["session"])) return "session is not a non-negative integer";
      if (!isSafeCount(o["seq"]) || !isSafeCount(o["ackSeq"])) return "seq or ackSeq is not a non-negative integer";
      return null;
    default:
      return `unknown kind ${JSON.stringify(o["kind"])}`;
  }
}

function isFiniteNumber(v: unknown): v is number {
  return typeof v === "number" && Number.isFinite(v);
}

function isSafeCount(v: unknown): v is number {
  return Number.isSafeInteger(v) && (v as number) >= 0;
}

function positive(name: string, v: number): number {
  if (!isFiniteNumber(v) || v <= 0) throw new RangeError(`SessionStateMachine option '${name}' must be a positive number (got ${String(v)})`);
  return v;
}

function positiveInteger(name: string, v: number): number {
  if (!Number.isSafeInteger(v) || v <= 0) throw new RangeError(`SessionStateMachine option '${name}' must be a positive integer (got ${String(v)})`);
  return v;
}

function toBase64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

function fromBase64(text: string): Uint8Array {
  const s = atob(text);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}
