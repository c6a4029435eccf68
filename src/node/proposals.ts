import { RaftError } from "../errors.js";
import type { Clock, TimerHandle } from "./clock.js";

/**
 * Per-call options of the node's asynchronous methods.
 * @public
 */
export interface RequestOptions {
  /** Rejects with `TIMEOUT` after this many milliseconds (the node's `requestTimeoutMs` by default). */
  readonly timeoutMs?: number;
  /** Rejects with `ABORTED` when the signal fires. */
  readonly signal?: AbortSignal;
}

/** Requests created in one turn of the event loop with the same timeout share one timer. */
class TimeoutGroup {
  members: PendingRequest<unknown>[] = [];
  live = 0;
  timer: TimerHandle = undefined;
}

/**
 * Deadlines for many requests at little cost: everything proposed in one turn of the event
 * loop with the same timeout shares one timer, instead of one timer per request (which
 * showed up as a tenth of the in-process cluster's CPU time). The timer is cancelled as
 * soon as every member settled, so nothing is held for the rest of the timeout.
 */
export class TimeoutGroups {
  private readonly open = new Map<number, TimeoutGroup>();

  constructor(private readonly clock: Clock) {}

  /** @internal */
  join(request: PendingRequest<unknown>, timeoutMs: number): TimeoutGroup {
    let group = this.open.get(timeoutMs);
    if (group === undefined) {
      const g = new TimeoutGroup();
      g.timer = this.clock.setTimeout(() => this.expire(g), timeoutMs);
      if (this.open.size === 0) queueMicrotask(() => this.open.clear());
      this.open.set(timeoutMs, g);
      group = g;
    }
    group.members.push(request);
    group.live++;
    return group;
  }

  /** @internal */
  left(group: TimeoutGroup): void {
    if (--group.live > 0) return;
    this.clock.clearTimeout(group.timer);
    group.members = [];
  }

  private expire(group: TimeoutGroup): void {
    const members = group.members;
    group.members = [];
    for (const m of members) m.expire();
  }
}

/**
 * One caller's promise with its deadline and abort signal. It settles exactly once:
 * resolved, or rejected with a RaftError; whoever comes first wins and the rest is a no-op.
 */
export class PendingRequest<T> {
  readonly promise: Promise<T>;
  settled = false;
  private resolveFn!: (value: T) => void;
  private rejectFn!: (error: unknown) => void;
  private timer: TimerHandle | undefined;
  private group: TimeoutGroup | undefined;
  private abortListener: (() => void) | undefined;

  /** `timers`: a clock (one timer for this request) or shared {@link TimeoutGroups}. */
  constructor(
    private readonly timers: Clock | TimeoutGroups,
    private readonly timeoutMs: number,
    private readonly signal: AbortSignal | undefined,
    private readonly onSettle: () => void,
    private readonly what: string,
  ) {
    this.promise = new Promise<T>((resolve, reject) => {
      this.resolveFn = resolve;
      this.rejectFn = reject;
    });
    if (signal?.aborted) {
      this.reject(new RaftError("ABORTED", `${what} aborted before it started`, { cause: signal.reason }));
      return;
    }
    if (timers instanceof TimeoutGroups) this.group = timers.join(this as PendingRequest<unknown>, timeoutMs);
    else this.timer = timers.setTimeout(() => this.expire(), timeoutMs);
    if (signal) {
      this.abortListener = () => this.reject(new RaftError("ABORTED", `${what} aborted; its outcome is unknown`, { cause: signal.reason }));
      signal.addEventListener("abort", this.abortListener, { once: true });
    }
  }

  /** The deadline passed. */
  expire(): void {
    this.reject(new RaftError("TIMEOUT", `${this.what} timed out after ${this.timeoutMs} ms; its outcome is unknown`));
  }

  resolve(value: T): void {
    if (this.settled) return;
    this.finish();
    this.resolveFn(value);
  }

  reject(error: unknown): void {
    if (this.settled) return;
    this.finish();
    this.rejectFn(error);
  }

  private finish(): void {
    this.settled = true;
    if (this.group !== undefined) (this.timers as TimeoutGroups).left(this.group);
    else if (this.timer !== undefined) (this.timers as Clock).clearTimeout(this.timer);
    if (this.abortListener) this.signal?.removeEventListener("abort", this.abortListener);
    this.onSettle();
  }
}

/**
 * Options of {@link RaftNode.read}.
 * @public
 */
export interface ReadOptions extends RequestOptions {
  /**
   * How the read point is confirmed.
   * - `read-index` (default): the leader confirms it still leads with a heartbeat round
   *   (Raft §8). Linearizable whatever the clocks do; costs a round trip to a majority
   *   (shared by every read in that round).
   * - `lease`: the leader serves the read at once while its lease holds — less than an
   *   election timeout (less `maxClockDrift`) after a majority last acknowledged a
   *   heartbeat. No round trip, but it relies on bounded clock drift: if a node's clock
   *   runs faster than the allowance, a new leader could be elected while the old one
   *   still serves reads, which could then be stale. Falls back to `read-index` when the
   *   lease is not held (and always on followers, which ask the leader).
   */
  readonly mode?: "read-index" | "lease";
}

/** Validates a per-call timeout. */
export function timeoutOf(options: RequestOptions | undefined, fallback: number): number {
  const t = options?.timeoutMs ?? fallback;
  if (typeof t !== "number" || !Number.isFinite(t) || t <= 0) throw new RangeError(`option 'timeoutMs' must be a positive finite number (got ${String(t)})`);
  return t;
}
