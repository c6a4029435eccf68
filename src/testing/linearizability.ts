// A linearizability checker: Wing & Gong's backtracking search over the operations that
// may take effect next, with Lowe's memoisation of (linearized set, model state) pairs,
// the algorithm that the porcupine checker popularised. Plus a history recorder and two
// models: a register and the KV state machine's commands.
import type { KvCommand, KvResult } from "../kv/commands.js";

/**
 * One operation of a concurrent history: a client called it at `call` and learned its
 * `output` at `return`. Times are numbers on one clock shared by all clients (real or
 * logical); only their order matters. Intervals are closed: two operations where one
 * returns at the very time the other is called count as concurrent.
 * @public
 */
export interface Operation<Input, Output> {
  /** A name for error reports (the recorder uses its op id). */
  readonly id?: string | number;
  /** Which client ran the operation, for error reports. */
  readonly clientId?: string | number;
  /** What the client asked for. */
  readonly input: Input;
  /**
   * What the client got back. Ignored (and may be left out) when `return` is `undefined`.
   * `undefined` is reserved for "unknown", so a model's outputs should never be
   * `undefined` themselves (use `null` for "nothing").
   */
  readonly output?: Output | undefined;
  /** When the client called it. */
  readonly call: number;
  /**
   * When the client got the output; `undefined` when the outcome is unknown (a timeout,
   * a crash): the operation may then take effect at any moment after `call`, or never.
   */
  readonly return: number | undefined;
}

/**
 * A concurrent history: operations in any order.
 * @public
 */
export type History<Input, Output> = readonly Operation<Input, Output>[];

/**
 * A part of a history that is checked on its own, e.g. the operations on one key.
 * @public
 */
export interface HistoryPartition<Input, Output> {
  /** Names the partition in results. */
  readonly key: string;
  /** The partition's operations. */
  readonly history: History<Input, Output>;
}

/**
 * What {@link Model.step} returns.
 * @public
 */
export interface StepResult<State> {
  /** Whether the operation, with its output, is legal in the state it was stepped from. */
  readonly ok: boolean;
  /** The state after the operation (ignored when `ok` is false). */
  readonly state: State;
}

/**
 * The sequential specification that a history is checked against.
 *
 * States are values: `step` must return a new state and never change the one it is
 * given, because the search keeps earlier states to backtrack to.
 * @public
 */
export interface Model<State, Input, Output> {
  /** The state before any operation. */
  init(): State;
  /**
   * Runs `input` on `state` sequentially and says whether `output` is what it would
   * return. `output` is `undefined` for an operation whose outcome is unknown: `step` must
   * then return `ok: true` and the state that the operation leads to (it can always be
   * placed after everything else, which is how "it never took effect" is expressed).
   */
  step(state: State, input: Input, output: Output | undefined): StepResult<State>;
  /**
   * A string that identifies a state, for the memoisation cache: equal states must give
   * equal strings. Equal strings are taken as equal states unless {@link Model.equal} is
   * given too.
   * @defaultValue `JSON.stringify(state)`, which suits primitives and plain data
   */
  hash?(state: State): string;
  /** Exact state equality, when {@link Model.hash} may give equal strings for different states. */
  equal?(a: State, b: State): boolean;
  /**
   * Whether `input` leaves every state unchanged (a read). Optional, and a large speed-up
   * for histories with many reads: a read-only operation that is legal where the search
   * stands can be placed there without trying any other place for it (moving it
   * earlier in a linearization never breaks real-time order or another output), so the
   * search commits to it. Saying `true` for an operation that can change a state makes
   * the checker unsound.
   */
  readOnly?(input: Input): boolean;
  /**
   * Splits a history into parts that are linearizable independently (for a map: one
   * per key). Linearizability is compositional, so checking the parts is equivalent and
   * exponentially cheaper. Use {@link partitionBy} for the common case.
   */
  partition?(history: History<Input, Output>): HistoryPartition<Input, Output>[];
  /** One operation for error reports, e.g. `put("a", "1") -> ok`. `output` is `undefined` when unknown. */
  describeOperation?(input: Input, output: Output | undefined): string;
  /** A state for error reports. */
  describeState?(state: State): string;
}

/**
 * Options for {@link checkLinearizable}.
 * @public
 */
export interface CheckLinearizableOptions {
  /**
   * Give up with outcome `unknown` after this long (the search is exponential in the
   * worst case). Shared by all partitions.
   * @defaultValue 10000
   */
  readonly timeBudgetMs?: number;
  /**
   * Where the time budget reads the time, in milliseconds.
   * @defaultValue `performance.now`
   */
  readonly clock?: () => number;
  /** Stops the search with outcome `unknown` when it fires. */
  readonly signal?: AbortSignal;
}

/**
 * The history is linearizable.
 * @public
 */
export interface LinearizableResult {
  /** Discriminates the result. */
  readonly outcome: "valid";
  /** The number of partitions that the model split the history into (all checked). */
  readonly partitions: number;
  /** How long the check took, in the clock's milliseconds. */
  readonly elapsedMs: number;
}

/**
 * The history is not linearizable. The report describes the deepest point the search
 * reached: the longest sequence of operations it could linearize, and the operations
 * that were pending there, none of which could be placed next.
 * @public
 */
export interface NotLinearizableResult<Input, Output> {
  /** Discriminates the result. */
  readonly outcome: "invalid";
  /** The partition that failed (`undefined` when the model does not partition). */
  readonly key: string | undefined;
  /** The longest linearizable prefix found, in linearization order. */
  readonly linearized: readonly Operation<Input, Output>[];
  /**
   * The operation whose return was reached without any legal place for it: everything
   * called after it returned must come after it, and it fits after none of the orders tried.
   */
  readonly blocked: Operation<Input, Output>;
  /** The operations called but not linearized at that point, `blocked` first. */
  readonly unplaced: readonly Operation<Input, Output>[];
  /** The model state after `linearized`, described by the model. */
  readonly state: string;
  /** A readable account of the above. */
  readonly message: string;
  /** The number of partitions that the model split the history into. */
  readonly partitions: number;
  /** How long the check took, in the clock's milliseconds. */
  readonly elapsedMs: number;
}

/**
 * The search stopped before it could decide.
 * @public
 */
export interface UnknownLinearizabilityResult {
  /** Discriminates the result. */
  readonly outcome: "unknown";
  /** `timeout`: the time budget ran out; `aborted`: the signal fired. */
  readonly reason: "timeout" | "aborted";
  /** The partition being checked when it stopped. */
  readonly key: string | undefined;
  /** How many partitions were fully checked (all valid) before it stopped. */
  readonly checkedPartitions: number;
  /** The number of partitions that the model split the history into. */
  readonly partitions: number;
  /** How long the check took, in the clock's milliseconds. */
  readonly elapsedMs: number;
}

/**
 * What {@link checkLinearizable} concluded.
 * @public
 */
export type LinearizabilityResult<Input, Output> =
  | LinearizableResult
  | NotLinearizableResult<Input, Output>
  | UnknownLinearizabilityResult;

/**
 * Checks whether a concurrent history is linearizable with respect to a sequential
 * model: whether each operation can be given one instant between its call and its
 * return such that running the operations in that order on the model gives every
 * recorded output.
 *
 * Partitions (from {@link Model.partition}) are checked one after the other; the first
 * invalid one is reported. The search is exponential in the number of concurrent
 * operations in the worst case, hence the time budget.
 *
 * @example
 * ```ts
 * const history: History<RegisterInput<number>, number | null> = [
 *   { clientId: "a", input: { op: "write", value: 1 }, output: null, call: 0, return: 10 },
 *   { clientId: "b", input: { op: "read" }, output: null, call: 20, return: 30 }, // stale
 * ];
 * const result = checkLinearizable(history, registerModel<number>());
 * if (result.outcome === "invalid") throw new Error(result.message);
 * ```
 * @param history - The operations, in any order.
 * @param model - The sequential specification, e.g. {@link registerModel} or {@link kvModel}.
 * @param options - The time budget and an abort signal.
 * @returns `valid`, `invalid` (with the deepest linearization found and what blocked it),
 * or `unknown` when the budget ran out or the signal fired.
 * @throws TypeError or RangeError when an operation's times are malformed.
 * @public
 */
export function checkLinearizable<State, Input, Output>(
  history: History<Input, Output>,
  model: Model<State, Input, Output>,
  options: CheckLinearizableOptions = {},
): LinearizabilityResult<Input, Output> {
  const timeBudgetMs = options.timeBudgetMs ?? 10_000;
  if (!(timeBudgetMs >= 0)) throw new RangeError(`timeBudgetMs must be a non-negative number, got ${timeBudgetMs}`);
  history.forEach(validateOperation);
  const clock = options.clock ?? (() => performance.now());
  const start = clock();
  const budget: Budget = { deadline: start + timeBudgetMs, clock, signal: options.signal, steps: 0 };
  const parts: { key: string | undefined; history: History<Input, Output> }[] = model.partition
    ? model.partition(history)
    : [{ key: undefined, history }];
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    const outcome = searchPartition(part.history, model, budget);
    const elapsedMs = clock() - start;
    if (outcome.kind === "stopped") {
      return {
        outcome: "unknown",
        reason: outcome.reason,
        key: part.key,
        checkedPartitions: i,
        partitions: parts.length,
        elapsedMs,
      };
    }
    if (outcome.kind === "invalid") {
      return invalidResult(part.key, part.history, outcome.deepest, model, parts.length, elapsedMs);
    }
  }
  return { outcome: "valid", partitions: parts.length, elapsedMs: clock() - start };
}

/**
 * A {@link Model.partition} that groups operations by `keyOf(input)`, in order of first
 * appearance. Only sound when operations on different keys never affect each other.
 * @param keyOf - The key of an operation's input.
 * @returns A function for {@link Model.partition}.
 *
 * @example
 * ```ts
 * // One partition per key, as kvModel does: operations on different keys never interact.
 * const perKey = partitionBy<KvModelInput, KvModelOutput>((input) => input.key);
 * const model: Model<KvModelState, KvModelInput, KvModelOutput> = { ...kvModel, partition: perKey };
 * ```
 * @public
 */
export function partitionBy<Input, Output>(
  keyOf: (input: Input) => string,
): (history: History<Input, Output>) => HistoryPartition<Input, Output>[] {
  return (history) => {
    const groups = new Map<string, Operation<Input, Output>[]>();
    for (const op of history) {
      const key = keyOf(op.input);
      let group = groups.get(key);
      if (group === undefined) groups.set(key, (group = []));
      group.push(op);
    }
    return [...groups].map(([key, ops]) => ({ key, history: ops }));
  };
}

// ---------------------------------------------------------------------------------------
// The search.

interface Budget {
  readonly deadline: number;
  readonly clock: () => number;
  readonly signal: AbortSignal | undefined;
  steps: number;
}

/** How often (in search steps, a power of two) the clock and the signal are read. */
const BUDGET_CHECK_INTERVAL = 1024;

/** A call or a return event in the doubly linked list that the search walks. */
interface EventNode {
  readonly isCall: boolean;
  /** The operation's index in the partition. */
  readonly op: number;
  /** For a call: its return event. */
  match: EventNode | null;
  prev: EventNode | null;
  next: EventNode | null;
}

interface Deepest {
  readonly linearized: number[];
  readonly blocked: number;
  readonly unplaced: number[];
  readonly stateText: string;
}

type SearchOutcome =
  | { readonly kind: "valid" }
  | { readonly kind: "invalid"; readonly deepest: Deepest }
  | { readonly kind: "stopped"; readonly reason: "timeout" | "aborted" };

/**
 * Wing & Gong: walk the events in time order; at a call, try to linearize that operation
 * now (step the model, remove its call and return from the list, restart from the head);
 * at a return, the operation it belongs to was not linearized in time, so undo the last
 * choice and try the next candidate. Lowe: skip a choice when the same set of operations
 * was already linearized reaching the same state, since its future was already explored.
 *
 * With {@link Model.readOnly}, each new configuration first looks for a legal read-only
 * candidate and commits to it without branching (see there why that is sound); the
 * ordinary scan then only branches on operations that may change the state.
 */
function searchPartition<State, Input, Output>(
  ops: History<Input, Output>,
  model: Model<State, Input, Output>,
  budget: Budget,
): SearchOutcome {
  const head = buildEventList(ops);
  const n = ops.length;
  const hashState = model.hash ? (s: State) => model.hash!(s) : defaultHash;
  const equal = model.equal;
  const readOnly = new Uint8Array(n);
  if (model.readOnly) for (let i = 0; i < n; i++) readOnly[i] = model.readOnly(ops[i]!.input) ? 1 : 0;
  const anyReadOnly = readOnly.includes(1);
  const bits = new Uint32Array(Math.ceil(n / 32));
  const [salt1, salt2] = opSalts(n);
  // The hash of the linearized set is kept incrementally (XOR of per-op salts), so a
  // step costs O(1) plus the state hash; the cache compares the bitsets exactly.
  let h1 = 0;
  let h2 = 0;
  const cache = new Map<string, { bits: Uint32Array; state: State }[]>();
  // `committed`: a read-only operation placed as soon as it was legal. If the search fails
  // after it, it fails without it too, so backtracking passes over it.
  const stack: { node: EventNode; state: State; committed: boolean }[] = [];
  let state = model.init();
  let deepest: Deepest | null = null;

  /** Linearizes `call` next unless it is illegal here or leads to an explored configuration. */
  const place = (call: EventNode, committed: boolean): "placed" | "illegal" | "explored" => {
    const op = ops[call.op]!;
    const result = model.step(state, op.input, op.return === undefined ? undefined : op.output);
    if (!result.ok) return "illegal";
    const nh1 = (h1 ^ salt1[call.op]!) >>> 0;
    const nh2 = (h2 ^ salt2[call.op]!) >>> 0;
    toggleBit(bits, call.op);
    if (!cacheInsert(cache, `${nh1}.${nh2}.${hashState(result.state)}`, bits, result.state, equal)) {
      toggleBit(bits, call.op);
      return "explored";
    }
    stack.push({ node: call, state, committed });
    state = result.state;
    h1 = nh1;
    h2 = nh2;
    lift(call);
    return "placed";
  };

  /** Undoes placements up to and including the last uncommitted one; returns it (null: none left). */
  const backtrack = (): EventNode | null => {
    for (;;) {
      const top = stack.pop();
      if (top === undefined) return null;
      state = top.state;
      toggleBit(bits, top.node.op);
      h1 = (h1 ^ salt1[top.node.op]!) >>> 0;
      h2 = (h2 ^ salt2[top.node.op]!) >>> 0;
      unlift(top.node);
      if (!top.committed) return top.node;
    }
  };

  const invalid = (): SearchOutcome => {
    // Only reachable after some return was missed, which recorded `deepest`.
    return { kind: "invalid", deepest: deepest! };
  };

  let node = head.next;
  let fresh = true; // `node` is at the head of a configuration not scanned yet
  while (head.next !== null) {
    if ((++budget.steps & (BUDGET_CHECK_INTERVAL - 1)) === 0) {
      if (budget.signal?.aborted) return { kind: "stopped", reason: "aborted" };
      if (budget.clock() > budget.deadline) return { kind: "stopped", reason: "timeout" };
    }
    if (fresh && anyReadOnly) {
      fresh = false;
      let outcome: "placed" | "illegal" | "explored" = "illegal";
      // The candidates are the calls before the first return.
      for (let e: EventNode | null = head.next; e !== null && e.isCall && outcome === "illegal"; e = e.next) {
        if (readOnly[e.op] === 1) outcome = place(e, true);
      }
      if (outcome === "placed") {
        node = head.next;
        fresh = true;
        continue;
      }
      if (outcome === "explored") {
        // This configuration succeeds only if it does after that read: it was explored and failed.
        const back = backtrack();
        if (back === null) return invalid();
        node = back.next;
        continue;
      }
    }
    const current = node!;
    if (current.isCall) {
      if (readOnly[current.op] === 0 && place(current, false) === "placed") {
        node = head.next;
        fresh = true;
        continue;
      }
      // Invariant: a call's return follows it in the list, so `next` is not null.
      node = current.next;
    } else {
      if (deepest === null || stack.length > deepest.linearized.length) {
        deepest = describeDeepest(head, current, stack, state, model);
      }
      const back = backtrack();
      if (back === null) return invalid();
      node = back.next;
    }
  }
  return { kind: "valid" };
}

/**
 * The events of `ops` as a linked list behind a sentinel head, in time order. At equal
 * times calls come first (closed intervals: touching operations are concurrent, the
 * lenient reading of an ambiguous clock). Unknown returns go last, at +infinity.
 */
function buildEventList<Input, Output>(ops: History<Input, Output>): EventNode {
  const events: { time: number; node: EventNode }[] = [];
  ops.forEach((op, i) => {
    const ret: EventNode = { isCall: false, op: i, match: null, prev: null, next: null };
    const call: EventNode = { isCall: true, op: i, match: ret, prev: null, next: null };
    events.push({ time: op.call, node: call }, { time: op.return ?? Infinity, node: ret });
  });
  events.sort((a, b) => {
    if (a.time !== b.time) return a.time < b.time ? -1 : 1;
    if (a.node.isCall !== b.node.isCall) return a.node.isCall ? -1 : 1;
    return a.node.op - b.node.op;
  });
  const head: EventNode = { isCall: false, op: -1, match: null, prev: null, next: null };
  let last = head;
  for (const { node } of events) {
    last.next = node;
    node.prev = last;
    last = node;
  }
  return head;
}

/** Removes a call and its return from the list (they stay linked to their neighbours for unlift). */
function lift(call: EventNode): void {
  call.prev!.next = call.next;
  call.next!.prev = call.prev;
  const ret = call.match!;
  ret.prev!.next = ret.next;
  if (ret.next !== null) ret.next.prev = ret.prev;
}

/** Undoes {@link lift}; the calls are undone in reverse order, so the neighbours are right. */
function unlift(call: EventNode): void {
  const ret = call.match!;
  ret.prev!.next = ret;
  if (ret.next !== null) ret.next.prev = ret;
  call.prev!.next = call;
  call.next!.prev = call;
}

function toggleBit(bits: Uint32Array, i: number): void {
  bits[i >>> 5]! ^= 1 << (i & 31);
}

/** Adds (bits, state) to the cache unless it is already there; returns whether it added. */
function cacheInsert<State>(
  cache: Map<string, { bits: Uint32Array; state: State }[]>,
  key: string,
  bits: Uint32Array,
  state: State,
  equal: ((a: State, b: State) => boolean) | undefined,
): boolean {
  let bucket = cache.get(key);
  if (bucket === undefined) cache.set(key, (bucket = []));
  for (const entry of bucket) {
    if (sameBits(entry.bits, bits) && (equal === undefined || equal(entry.state, state))) return false;
  }
  bucket.push({ bits: bits.slice(), state });
  return true;
}

function sameBits(a: Uint32Array, b: Uint32Array): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Two fixed pseudo-random 32-bit salts per operation (splitmix32 of its index): deterministic runs. */
function opSalts(n: number): [Uint32Array, Uint32Array] {
  const a = new Uint32Array(n);
  const b = new Uint32Array(n);
  let x = 0x9e3779b9;
  const next = (): number => {
    x = (x + 0x9e3779b9) >>> 0;
    let z = x;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
  for (let i = 0; i < n; i++) {
    a[i] = next();
    b[i] = next();
  }
  return [a, b];
}

function defaultHash(state: unknown): string {
  return JSON.stringify(state) ?? "undefined";
}

function describeDeepest<State, Input, Output>(
  head: EventNode,
  blockedReturn: EventNode,
  stack: readonly { node: EventNode }[],
  state: State,
  model: Model<State, Input, Output>,
): Deepest {
  const unplaced: number[] = [blockedReturn.op];
  for (let e = head.next; e !== null && e !== blockedReturn; e = e.next) {
    if (e.isCall && e.op !== blockedReturn.op) unplaced.push(e.op);
  }
  return {
    linearized: stack.map((frame) => frame.node.op),
    blocked: blockedReturn.op,
    unplaced,
    stateText: model.describeState ? model.describeState(state) : defaultHash(state),
  };
}

function invalidResult<State, Input, Output>(
  key: string | undefined,
  ops: History<Input, Output>,
  deepest: Deepest,
  model: Model<State, Input, Output>,
  partitions: number,
  elapsedMs: number,
): NotLinearizableResult<Input, Output> {
  const linearized = deepest.linearized.map((i) => ops[i]!);
  const unplaced = deepest.unplaced.map((i) => ops[i]!);
  const blocked = ops[deepest.blocked]!;
  const show = (op: Operation<Input, Output>): string => describeOperation(op, model);
  const shownPrefix = linearized.slice(-10).map(show);
  if (linearized.length > 10) shownPrefix.unshift(`(${linearized.length - 10} earlier)`);
  const message = [
    `not linearizable${key === undefined ? "" : ` (key ${JSON.stringify(key)})`}: no order places ${show(blocked)}.`,
    `Longest linearizable prefix (${linearized.length} operations): ${shownPrefix.join(", ") || "(none)"}; state then: ${deepest.stateText}.`,
    `Called but not linearized there (no order of them led further): ${unplaced.map(show).join(", ")}.`,
  ].join("\n");
  return {
    outcome: "invalid",
    key,
    linearized,
    blocked,
    unplaced,
    state: deepest.stateText,
    message,
    partitions,
    elapsedMs,
  };
}

function describeOperation<State, Input, Output>(op: Operation<Input, Output>, model: Model<State, Input, Output>): string {
  const output = op.return === undefined ? undefined : op.output;
  const text = model.describeOperation
    ? model.describeOperation(op.input, output)
    : `${defaultHash(op.input)} -> ${output === undefined ? "?" : defaultHash(output)}`;
  const who = [
    op.id === undefined ? null : `op ${op.id}`,
    op.clientId === undefined ? null : `client ${op.clientId}`,
    `${op.call}..${op.return ?? "?"}`,
  ].filter((s) => s !== null);
  return `${text} [${who.join(", ")}]`;
}

function validateOperation(op: Operation<unknown, unknown>, i: number): void {
  if (typeof op.call !== "number" || !Number.isFinite(op.call)) {
    throw new TypeError(`history[${i}].call must be a finite number, got ${String(op.call)}`);
  }
  if (op.return !== undefined) {
    if (typeof op.return !== "number" || Number.isNaN(op.return)) {
      throw new TypeError(`history[${i}].return must be a number or undefined, got ${String(op.return)}`);
    }
    if (op.return < op.call) throw new RangeError(`history[${i}] returns (${op.return}) before it is called (${op.call})`);
  }
}

// ---------------------------------------------------------------------------------------
// Recording.

/**
 * Options for {@link HistoryRecorder}.
 * @public
 */
export interface HistoryRecorderOptions {
  /**
   * Where event times come from (e.g. the simulator's virtual clock).
   * @defaultValue a logical counter: 0, 1, 2, ... one per event, so no two events tie
   */
  readonly clock?: () => number;
}

/**
 * Builds a {@link History} from events as they happen: call {@link HistoryRecorder.invoke}
 * just before a client sends a request and {@link HistoryRecorder.complete} as soon as it
 * has the answer, or {@link HistoryRecorder.unknown} when it never will (a timeout, a crash).
 *
 * @example
 * ```ts
 * const recorder = new HistoryRecorder<KvModelInput, KvModelOutput>();
 * const id = recorder.invoke("client-1", cmd);
 * try { recorder.complete(id, await node.propose(cmd)); } catch { recorder.unknown(id); }
 * checkLinearizable(recorder.history(), kvModel);
 * ```
 * @public
 */
export class HistoryRecorder<Input, Output> {
  private readonly ops: {
    clientId: string | number;
    input: Input;
    output: Output | undefined;
    call: number;
    return: number | undefined;
    settled: boolean;
  }[] = [];
  private readonly now: () => number;
  private counter = 0;

  /**
   * An empty recorder.
   * @param options - Where event times come from.
   */
  constructor(options: HistoryRecorderOptions = {}) {
    this.now = options.clock ?? (() => this.counter++);
  }

  /**
   * Records a call.
   * @param clientId - Which client makes it, for error reports.
   * @param input - What the client asks for.
   * @returns The operation id, for `complete` or `unknown`.
   */
  invoke(clientId: string | number, input: Input): number {
    this.ops.push({ clientId, input, output: undefined, call: this.now(), return: undefined, settled: false });
    return this.ops.length - 1;
  }

  /**
   * Records that operation `opId` returned `output`.
   * @param opId - What `invoke` returned.
   * @param output - What the client got back.
   * @throws RangeError for an unknown id; Error when the operation was already settled.
   */
  complete(opId: number, output: Output): void {
    const op = this.pending(opId);
    op.output = output;
    op.return = this.now();
  }

  /**
   * Records that operation `opId` may or may not have taken effect, and its output will
   * never be known (a `TIMEOUT`, an `ABORTED`, a crash).
   * @param opId - What `invoke` returned.
   * @throws RangeError for an unknown id; Error when the operation was already settled.
   */
  unknown(opId: number): void {
    this.pending(opId);
  }

  /**
   * The history so far. Operations still pending count as unknown.
   * @returns A new array, for {@link checkLinearizable}.
   */
  history(): History<Input, Output> {
    return this.ops.map((op, id) => ({
      id,
      clientId: op.clientId,
      input: op.input,
      output: op.output,
      call: op.call,
      return: op.return,
    }));
  }

  private pending(opId: number): HistoryRecorder<Input, Output>["ops"][number] {
    const op = this.ops[opId];
    if (op === undefined) throw new RangeError(`no operation ${opId}`);
    if (op.settled) throw new Error(`operation ${opId} was already completed or marked unknown`);
    op.settled = true;
    return op;
  }
}

// ---------------------------------------------------------------------------------------
// Models.

/**
 * An operation on a register: write a value, or read the current one.
 * @public
 */
export type RegisterInput<V> = { readonly op: "write"; readonly value: V } | { readonly op: "read" };

/**
 * Options for {@link registerModel}.
 * @public
 */
export interface RegisterModelOptions<V> {
  /**
   * The value before any write.
   * @defaultValue null
   */
  readonly initial?: V | null;
  /**
   * Identifies a value, to compare reads and to memoise.
   * @defaultValue `JSON.stringify`
   */
  readonly hash?: (value: V | null) => string;
}

/**
 * A single read/write register. A read's output is the value it saw (`null` before any
 * write, unless `initial` says otherwise); a write's output is ignored (record `null`).
 * @param options - The initial value and how values are compared.
 * @returns The model, with `readOnly` and descriptions for error reports.
 * @public
 */
export function registerModel<V>(options: RegisterModelOptions<V> = {}): Model<V | null, RegisterInput<V>, V | null> {
  const initial = options.initial ?? null;
  const hash = options.hash ?? defaultHash;
  return {
    init: () => initial,
    step: (state, input, output) => {
      if (input.op === "write") return { ok: true, state: input.value };
      return { ok: output === undefined || Object.is(output, state) || hash(output) === hash(state), state };
    },
    hash,
    readOnly: (input) => input.op === "read",
    describeOperation: (input, output) =>
      input.op === "write"
        ? `write(${defaultHash(input.value)})`
        : `read() -> ${output === undefined ? "?" : defaultHash(output)}`,
    describeState: (state) => defaultHash(state),
  };
}

/**
 * An input of {@link kvModel}: a `KvCommand` or a read of one key.
 * @public
 */
export type KvModelInput = KvCommand | { readonly op: "get"; readonly key: string };

/**
 * An output of {@link kvModel}: a `KvResult` for a command, `{ value }` for a read
 * (`null`: absent).
 * @public
 */
export type KvModelOutput = KvResult | { readonly value: string | null };

/**
 * The state of {@link kvModel}: the map's entries (one key per partition).
 * @public
 */
export type KvModelState = ReadonlyMap<string, string>;

/**
 * The model of `KvStateMachine` commands plus reads, partitioned per key. Commands
 * that the state machine refuses for its limits are not modelled: leave them out of the
 * history (as any operation that certainly did not take effect, e.g. a `DROPPED`
 * proposal); record `TIMEOUT` and `ABORTED` ones as unknown.
 *
 * @example
 * ```ts
 * const recorder = new HistoryRecorder<KvModelInput, KvModelOutput>();
 * const op = recorder.invoke("c1", { op: "put", key: "a", value: "1" });
 * recorder.complete(op, await node.propose({ op: "put", key: "a", value: "1" }));
 * const read = recorder.invoke("c2", { op: "get", key: "a" });
 * await node.read();
 * recorder.complete(read, { value: kv.get("a") ?? null });
 * const result = checkLinearizable(recorder.history(), kvModel);
 * ```
 * @public
 */
export const kvModel: Model<KvModelState, KvModelInput, KvModelOutput> = {
  init: () => new Map(),
  step: (state, input, output) => {
    const current = state.get(input.key) ?? null;
    if (input.op === "get") {
      return { ok: output === undefined || ("value" in output && output.value === current), state };
    }
    // What the command returns (`ok`) and leaves behind (`next`), as KvStateMachine.apply does.
    const ok = input.op === "put" ? true : input.op === "delete" ? current !== null : current === input.expected;
    const next = input.op === "put" ? input.value : input.op === "delete" ? null : ok ? input.value : current;
    const legal = output === undefined || ("ok" in output && output.ok === ok && output.previous === current);
    if (!legal || next === current) return { ok: legal, state };
    const copy = new Map(state);
    if (next === null) copy.delete(input.key);
    else copy.set(input.key, next);
    return { ok: true, state: copy };
  },
  hash: (state) => JSON.stringify([...state].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))),
  partition: partitionBy<KvModelInput, KvModelOutput>((input) => input.key),
  readOnly: (input) => input.op === "get",
  describeOperation: (input, output) => {
    const args = [input.key, ...(input.op === "put" ? [input.value] : input.op === "cas" ? [input.expected, input.value] : [])];
    const call = `${input.op}(${args.map((a) => JSON.stringify(a)).join(", ")})`;
    if (output === undefined) return `${call} -> ?`;
    if ("value" in output) return `${call} -> ${JSON.stringify(output.value)}`;
    return `${call} -> ${output.ok ? "ok" : "not ok"}, previous ${JSON.stringify(output.previous)}`;
  },
  describeState: (state) => JSON.stringify(Object.fromEntries(state)),
};
