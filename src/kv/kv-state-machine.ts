import type { SnapshotData } from "../core/messages.js";
import type { ApplyMeta, StateMachine } from "../state-machine.js";
import type { KvCommand, KvResult } from "./commands.js";
import { RaftError } from "../errors.js";
import { decodeKvSnapshot, encodeKvSnapshot } from "./kv-snapshot-format.js";
import { SortedKeys } from "./sorted-keys.js";

/**
 * The size limits of a {@link KvStateMachine}, in UTF-8 bytes.
 * @public
 */
export interface KvLimits {
  /** The largest key. Keys are never empty. */
  readonly maxKeyBytes: number;
  /** The largest value (and the largest `expected` of a `cas`). */
  readonly maxValueBytes: number;
}

/**
 * Options for {@link KvStateMachine}.
 *
 * The limits are part of the state machine's deterministic behaviour: every node of a
 * cluster, and every restart that replays the log, must use the same values, or the
 * nodes can diverge on a command that one accepts and another rejects.
 * @public
 */
export interface KvStateMachineOptions {
  /**
   * The largest key, in UTF-8 bytes.
   * @defaultValue 1024
   */
  readonly maxKeyBytes?: number;
  /**
   * The largest value, in UTF-8 bytes.
   * @defaultValue 1048576 (1 MiB)
   */
  readonly maxValueBytes?: number;
}

/**
 * The default {@link KvLimits}: 1024-byte keys, 1 MiB values.
 * @public
 */
export const defaultKvLimits: KvLimits = Object.freeze({ maxKeyBytes: 1024, maxValueBytes: 1024 * 1024 });

/**
 * Options for {@link KvStateMachine.list}.
 * @public
 */
export interface KvListOptions {
  /** Only keys that start with this string. */
  readonly prefix?: string;
  /** Only keys strictly greater than this one: pass the last key of a page to get the next page. */
  readonly after?: string;
  /**
   * At most this many entries.
   * @defaultValue no limit
   */
  readonly limit?: number;
}

/**
 * One key and its value, as {@link KvStateMachine.list} returns them.
 * @public
 */
export interface KvEntry {
  /** The key. */
  readonly key: string;
  /** Its value. */
  readonly value: string;
}

/** Why a command is refused: `type` for a malformed one, `range` for one over the limits. */
interface Problem {
  readonly kind: "type" | "range";
  readonly message: string;
}

/**
 * Checks a command before it is proposed: throws a `TypeError` when it is malformed (not
 * an object, unknown `op`, a key or value that is not a string) and a `RangeError` when it
 * breaks `limits` (an empty or oversized key, an oversized value or `expected`).
 *
 * Call it before `propose()`: {@link KvStateMachine} applies the same checks, but a
 * command refused there has already taken a log entry and only yields
 * `{ ok: false, previous }`.
 *
 * @example
 * ```ts
 * validateKvCommand(cmd, { maxValueBytes: 64 * 1024 }); // throws before anything is proposed
 * await node.propose(cmd);
 * ```
 * @param command - Anything, e.g. a parsed request body.
 * @param limits - The limits to check against; pass the state machine's `limits`.
 * Missing ones default to {@link defaultKvLimits}.
 * @throws TypeError for a malformed command; RangeError for one over the limits.
 * @public
 */
export function validateKvCommand(command: unknown, limits: Partial<KvLimits> = {}): asserts command is KvCommand {
  const problem = findProblem(command, resolveLimits(limits));
  if (problem === undefined) return;
  throw problem.kind === "type" ? new TypeError(problem.message) : new RangeError(problem.message);
}

/**
 * A replicated string-to-string map: the key-value state machine that ships with raftkit.
 * Semantics per {@link KvCommand} and {@link KvResult}. Reads (`get`, `has`, `list`) see
 * this node's applied state; they are linearizable only when the caller first waits for
 * a read index (or proposes through the log).
 *
 * Limits are enforced at apply, identically on every node: a command that breaks them (or
 * is malformed, e.g. after a codec change) changes nothing and yields
 * `{ ok: false, previous }`, where `previous` is the key's current value (`null` when
 * absent or when the key itself is unusable). It does not throw, because a throw in
 * `apply` stops the node, and a committed bad command would then stop every node, on
 * every restart. Use {@link validateKvCommand} before proposing to reject it early.
 *
 * Keys are kept in a sorted array beside a `Map`: reads and overwrites cost O(1), `list`
 * costs O(log n + returned entries), and inserting or deleting a key costs O(log n) plus
 * an O(n) array shift (a memmove, fast into the hundreds of thousands of keys; a B-tree
 * would remove it for much larger maps). Key order is JavaScript's `<` on strings
 * (UTF-16 code units), which is code-point order except for keys that differ by a
 * character above U+FFFF against one in U+E000..U+FFFF.
 *
 * @example
 * ```ts
 * const kv = new KvStateMachine({ maxValueBytes: 64 * 1024 });
 * const node = new RaftNode({ ...nodeOptions, stateMachine: kv });
 * await node.propose({ op: "put", key: "user/1", value: "ada" });
 * kv.get("user/1"); // "ada"
 * kv.list({ prefix: "user/", limit: 10 }); // [{ key: "user/1", value: "ada" }]
 * ```
 * @public
 */
export class KvStateMachine implements StateMachine<KvCommand, KvResult> {
  /** The limits this machine enforces at apply. */
  readonly limits: KvLimits;
  private values = new Map<string, string>();
  // Invariant: sortedKeys holds exactly the keys of `values`, strictly ascending.
  private sortedKeys = new SortedKeys();
  /** While a snapshot is being serialised: the value each key had when it was taken. */
  private preimages: Map<string, string | undefined> | null = null;
  // Invariant: strictly increasing across apply() calls (ApplyMeta contract).
  private applied: { index: number; term: number } = { index: 0, term: 0 };

  /**
   * An empty map.
   * @param options - The size limits; see {@link KvStateMachineOptions}.
   * @throws RangeError when a limit is not a non-negative integer (or `maxKeyBytes` is 0), naming it.
   */
  constructor(options: KvStateMachineOptions = {}) {
    this.limits = Object.freeze(resolveLimits(options));
  }

  /** The index and term of the last applied entry (`{ index: 0, term: 0 }` before any). */
  get lastApplied(): { readonly index: number; readonly term: number } {
    return this.applied;
  }

  /** The number of keys. */
  get size(): number {
    return this.values.size;
  }

  /**
   * Applies one committed command. Deterministic: the result depends only on the map and
   * the command. Throws (stopping the node) only when `meta.index` does not increase,
   * which means the driver applied an entry twice or out of order.
   * @param command - The committed command.
   * @param meta - The entry's index and term; recorded as {@link KvStateMachine.lastApplied}.
   * @returns What happened; see {@link KvResult}. `{ ok: false, previous }` for a command
   * that breaks the limits or is malformed.
   * @throws RaftError `INVALID_STATE` when `meta.index` does not increase.
   */
  apply(command: KvCommand, meta: ApplyMeta): KvResult {
    if (!(meta.index > this.applied.index)) {
      throw new RaftError(
        "INVALID_STATE",
        `KvStateMachine.apply: index ${meta.index} does not follow the last applied index ${this.applied.index}`,
      );
    }
    this.applied = { index: meta.index, term: meta.term };
    if (findProblem(command, this.limits) !== undefined) {
      const key = (command as { key?: unknown } | null)?.key;
      return { ok: false, previous: typeof key === "string" ? (this.values.get(key) ?? null) : null };
    }
    const previous = this.values.get(command.key) ?? null;
    switch (command.op) {
      case "put":
        this.write(command.key, command.value);
        return { ok: true, previous };
      case "delete":
        this.write(command.key, null);
        return { ok: previous !== null, previous };
      case "cas": {
        if (previous !== command.expected) return { ok: false, previous };
        this.write(command.key, command.value);
        return { ok: true, previous };
      }
    }
  }

  /**
   * Reads one key from this node's applied state.
   * @param key - The key.
   * @returns Its value, or `undefined` when absent.
   */
  get(key: string): string | undefined {
    return this.values.get(key);
  }

  /**
   * Whether `key` is present in this node's applied state.
   * @param key - The key.
   * @returns `true` when present.
   */
  has(key: string): boolean {
    return this.values.has(key);
  }

  /**
   * The entries in ascending key order, filtered by `prefix`, starting after `after`, at
   * most `limit` of them. Costs O(log n + returned entries).
   * @param options - `prefix`, `after` and `limit`; all optional.
   * @returns The matching entries, a new array.
   * @throws RangeError when `limit` is not a non-negative integer.
   */
  list(options: KvListOptions = {}): KvEntry[] {
    const { prefix = "", after, limit = Infinity } = options;
    if (limit !== Infinity && !(Number.isSafeInteger(limit) && limit >= 0)) {
      throw new RangeError(`list: limit must be a non-negative integer, got ${String(limit)}`);
    }
    // Keys that start with `prefix` are contiguous from the first key >= prefix.
    const keys = after !== undefined && after >= prefix ? this.sortedKeys.from(after, true) : this.sortedKeys.from(prefix);
    const out: KvEntry[] = [];
    if (limit === 0) return out;
    for (const key of keys) {
      if (!key.startsWith(prefix)) break;
      out.push({ key, value: this.values.get(key)! });
      if (out.length >= limit) break;
    }
    return out;
  }

  /**
   * The whole state (entries in key order and the last applied index and term) as a
   * stream of UTF-8 chunks, identical on every node that applied the same entries. The
   * format (newline-delimited JSON, one line per 5,000 entries after a header line) is
   * described in `kv-snapshot-format.ts`; it is written and read a line at a time, so a
   * large map is never serialised into one buffer.
   *
   * Technique: copy-on-write, so that a snapshot does not stall the node. The call
   * captures the state at once (a copy of the sorted key array: a memcpy, a few
   * milliseconds for a million keys); iterating the stream serialises it a line at a time,
   * yielding to the event loop between lines, while the node goes on applying commands. A
   * write during that time first saves the key's old value (its pre-image), which the
   * serialiser uses instead. Why not the alternatives: a persistent (immutable) map would
   * make the capture free but every read and write slower, all the time; a full copy of
   * the map would stall the node for about half a second per million keys.
   *
   * Iterate the stream once. Until it ends, fails or is abandoned (`break` out of
   * `for await`, or `return()` on its iterator, even before the first `next()`), every
   * write records a pre-image and another `snapshot()` call is refused. A stream that is
   * never iterated nor abandoned holds both until {@link KvStateMachine.restore} replaces
   * the state: RaftNode always hands it to the storage adapter, which reads it through.
   * @returns The serialised state as it was at the call, for {@link KvStateMachine.restore}.
   * @throws RaftError `INVALID_STATE` when called while the previous snapshot's stream is
   * still pending (RaftNode never does).
   */
  snapshot(): AsyncIterable<Uint8Array> {
    if (this.preimages !== null) throw new RaftError("INVALID_STATE", "KvStateMachine.snapshot: the previous snapshot is still being serialised");
    const before = new Map<string, string | undefined>();
    this.preimages = before;
    const keys = this.sortedKeys.toArray();
    const values = this.values; // restore() swaps in a new map rather than change this one
    // A pre-image is always a string here: the keys serialised are those present at the call.
    const valueAt = (key: string): string => (before.has(key) ? before.get(key)! : values.get(key)!);
    // Releasing is idempotent, and a restore() or a later snapshot may have replaced `before`.
    const release = (): void => {
      if (this.preimages === before) this.preimages = null;
    };
    return new ReleasingStream(encodeKvSnapshot({ lastApplied: this.applied, keys, valueAt }), release);
  }

  /**
   * Replaces the whole state with one made by {@link KvStateMachine.snapshot}. Reads it
   * in pieces and validates every line into a new map before swapping it in, so the old
   * state stays whole until the snapshot proved good (at the cost of both being in memory
   * for a moment, as they must be for the old one to survive a corrupt snapshot).
   * @param data - The stored snapshot: what `snapshot()` streamed, on this node or another
   * (`snapshotDataOf(bytes)` for bytes in memory).
   * @returns Resolves once the new state is in place.
   * @throws RaftError `CORRUPT` when `data` is not such a snapshot (empty, truncated,
   * trailing bytes, another format version, keys out of order...); TypeError when it is
   * not a `SnapshotData` handle; and whatever `data.read` rejects with. In every case the
   * state is unchanged.
   */
  async restore(data: SnapshotData): Promise<void> {
    const restored = await decodeKvSnapshot(data);
    // A new map, not a cleared one: a snapshot still being serialised reads the old one,
    // which no write reaches any more, so its pre-images are no longer needed either.
    this.values = restored.values;
    this.sortedKeys = SortedKeys.fromSorted(restored.keys);
    this.preimages = null;
    this.applied = { index: restored.lastApplied.index, term: restored.lastApplied.term };
  }

  private write(key: string, value: string | null): void {
    // Copy-on-write for a snapshot being serialised: keep the value it must see.
    if (this.preimages !== null && !this.preimages.has(key)) this.preimages.set(key, this.values.get(key));
    const existed = this.values.has(key);
    if (value === null) {
      if (!existed) return;
      this.values.delete(key);
      this.sortedKeys.delete(key);
      return;
    }
    this.values.set(key, value);
    if (!existed) this.sortedKeys.insert(key);
  }
}

function resolveLimits(options: Partial<KvLimits>): KvLimits {
  const limits = {
    maxKeyBytes: options.maxKeyBytes ?? defaultKvLimits.maxKeyBytes,
    maxValueBytes: options.maxValueBytes ?? defaultKvLimits.maxValueBytes,
  };
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new RangeError(`${name} must be a non-negative integer, got ${String(value)}`);
    }
  }
  if (limits.maxKeyBytes < 1) throw new RangeError(`maxKeyBytes must be at least 1, got ${limits.maxKeyBytes}`);
  return limits;
}

function findProblem(command: unknown, limits: KvLimits): Problem | undefined {
  if (typeof command !== "object" || command === null) return typeProblem("a KV command must be an object");
  const c = command as Record<string, unknown>;
  if (c["op"] !== "put" && c["op"] !== "delete" && c["op"] !== "cas") {
    return typeProblem(`unknown KV op ${JSON.stringify(c["op"])}; expected "put", "delete" or "cas"`);
  }
  const key = c["key"];
  if (typeof key !== "string") return typeProblem(`${c["op"]}: key must be a string`);
  if (key.length === 0) return { kind: "range", message: `${c["op"]}: key must not be empty` };
  if (exceedsUtf8Bytes(key, limits.maxKeyBytes)) {
    return { kind: "range", message: `${c["op"]}: key is ${utf8ByteLength(key)} bytes; maxKeyBytes is ${limits.maxKeyBytes}` };
  }
  const fields = c["op"] === "put" ? (["value"] as const) : c["op"] === "cas" ? (["expected", "value"] as const) : [];
  for (const field of fields) {
    const v = c[field];
    const nullable = c["op"] === "cas";
    if (typeof v !== "string" && !(nullable && v === null)) {
      return typeProblem(`${c["op"]}: ${field} must be a string${nullable ? " or null" : ""}`);
    }
    if (typeof v === "string" && exceedsUtf8Bytes(v, limits.maxValueBytes)) {
      return {
        kind: "range",
        message: `${c["op"]}: ${field} is ${utf8ByteLength(v)} bytes; maxValueBytes is ${limits.maxValueBytes}`,
      };
    }
  }
  return undefined;
}

function typeProblem(message: string): Problem {
  return { kind: "type", message };
}

/** Whether `s` takes more than `max` bytes in UTF-8, without encoding it. */
function exceedsUtf8Bytes(s: string, max: number): boolean {
  // Each UTF-16 code unit takes 1 to 3 UTF-8 bytes (a surrogate pair: 4 for 2 units),
  // so most strings are decided by their length alone.
  if (s.length > max) return true;
  if (s.length * 3 <= max) return false;
  return utf8ByteLength(s) > max;
}

/** The UTF-8 length of `s` as TextEncoder encodes it (a lone surrogate becomes U+FFFD: 3 bytes). */
function utf8ByteLength(s: string): number {
  let bytes = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      bytes += 4;
      i++;
    } else bytes += 3;
  }
  return bytes;
}

/**
 * A snapshot's chunks that call `release` once the iteration is over: when it ends, fails
 * or is abandoned with `return()` after it started (the generator's `finally`, which runs
 * only once any `next()` in progress has settled), and when it is abandoned with
 * `return()` before it started. That last case is handled here because a generator that
 * never started ignores `return()` without running its `finally`, and a consumer may well
 * abandon a stream before reading it (SessionStateMachine does, when writing its own
 * header failed), which would otherwise hold the guard forever.
 */
class ReleasingStream implements AsyncIterableIterator<Uint8Array> {
  private readonly chunks: AsyncGenerator<Uint8Array, void, undefined>;
  private started = false;

  constructor(
    chunks: AsyncGenerator<Uint8Array, void, undefined>,
    private readonly release: () => void,
  ) {
    this.chunks = releaseAfter(chunks, release);
  }

  next(): Promise<IteratorResult<Uint8Array, void>> {
    this.started = true;
    return this.chunks.next();
  }

  return(): Promise<IteratorResult<Uint8Array, void>> {
    if (!this.started) this.release();
    return this.chunks.return(undefined);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

async function* releaseAfter(chunks: AsyncGenerator<Uint8Array, void, undefined>, release: () => void): AsyncGenerator<Uint8Array, void, undefined> {
  try {
    yield* chunks;
  } finally {
    release();
  }
}
