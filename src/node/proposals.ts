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
  private abortListener: (() => void) | undefined;

  constructor(
    private readonly clock: Clock,
    timeoutMs: number,
    private readonly signal: AbortSignal | undefined,
    private readonly onSettle: () => void,
    what: string,
  ) {
    this.promise = new Promise<T>((resolve, reject) => {
      this.resolveFn = resolve;
      this.rejectFn = reject;
    });
    if (signal?.aborted) {
      this.reject(new RaftError("ABORTED", `${what} aborted before it started`, { cause: signal.reason }));
      return;
    }
    this.timer = clock.setTimeout(() => this.reject(new RaftError("TIMEOUT", `${what} timed out after ${timeoutMs} ms; its outcome is unknown`)), timeoutMs);
    if (signal) {
      this.abortListener = () => this.reject(new RaftError("ABORTED", `${what} aborted; its outcome is unknown`, { cause: signal.reason }));
      signal.addEventListener("abort", this.abortListener, { once: true });
    }
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
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
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
