import type { Clock, TimerHandle } from "../node/clock.js";

/**
 * An event in a {@link Scheduler}'s queue.
 * @public
 */
export interface ScheduledEvent {
  /** When it runs, in virtual milliseconds. */
  readonly time: number;
  /** Tie-breaker: events at one time run in the order they were scheduled. */
  readonly seq: number;
  /** What runs. */
  readonly fn: () => void;
  /** Set to skip the event. */
  cancelled: boolean;
}

/**
 * Virtual time for a simulation: a queue of events ordered by (time, insertion order).
 * Nothing happens between events, so a run is as fast as its CPU work and exactly
 * reproducible. The building block under {@link runSimulation}; use it directly to drive
 * your own scenario in virtual time.
 *
 * @example
 * ```ts
 * const scheduler = new Scheduler();
 * const network = new SimNetwork(scheduler, new Prng(1));
 * const node = new RaftNode({ id: "n1", peers: ["n1"], stateMachine, storage: new MemoryStorage(), transport: network.transport("n1"), clock: scheduler.clock() });
 * await node.start();
 * while (!node.isLeader && scheduler.runNext()) await new Promise((r) => setImmediate(r));
 * ```
 * @public
 */
export class Scheduler {
  private heap: ScheduledEvent[] = [];
  private seq = 0;
  private nowMs = 0;

  /** The current virtual time in milliseconds: the time of the last event run (0 at first). */
  get now(): number {
    return this.nowMs;
  }

  /**
   * Schedules `fn`.
   * @param delayMs - Virtual milliseconds from now; negative counts as 0.
   * @param fn - What to run.
   * @returns The event; set its `cancelled` to skip it.
   */
  at(delayMs: number, fn: () => void): ScheduledEvent {
    const ev: ScheduledEvent = { time: this.nowMs + Math.max(0, delayMs), seq: this.seq++, fn, cancelled: false };
    this.push(ev);
    return ev;
  }

  /**
   * When the next event runs.
   * @returns Its virtual time, or `undefined` when none is left.
   */
  peekTime(): number | undefined {
    this.dropCancelled();
    return this.heap[0]?.time;
  }

  /**
   * Runs the next event, advancing time to it. Promises its function resolves run only
   * when the caller yields to the event loop.
   * @returns `false` when no event was left.
   */
  runNext(): boolean {
    this.dropCancelled();
    const ev = this.pop();
    if (ev === undefined) return false;
    this.nowMs = ev.time;
    ev.fn();
    return true;
  }

  /**
   * A {@link Clock} for one node. Its timers die with it (`kill()`), as a process's do,
   * and it may run fast or slow by `rate` (1: exact) to model clock drift.
   * @param rate - Local milliseconds per virtual millisecond.
   * @returns The node's clock, for `RaftNodeOptions.clock`.
   */
  clock(rate = 1): NodeClock {
    return new NodeClock(this, rate);
  }

  private dropCancelled(): void {
    while (this.heap.length > 0 && this.heap[0]!.cancelled) this.pop();
  }

  private less(a: ScheduledEvent, b: ScheduledEvent): boolean {
    return a.time < b.time || (a.time === b.time && a.seq < b.seq);
  }

  private push(ev: ScheduledEvent): void {
    const h = this.heap;
    h.push(ev);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  private pop(): ScheduledEvent | undefined {
    const h = this.heap;
    if (h.length === 0) return undefined;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.less(h[l]!, h[m]!)) m = l;
        if (r < h.length && this.less(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}

/**
 * One simulated node's clock: virtual time scaled by a drift rate, with timers that stop
 * for good when the node crashes.
 * @public
 */
export class NodeClock implements Clock {
  private alive = true;
  private readonly timers = new Set<ScheduledEvent>();

  /**
   * A clock on `scheduler`'s virtual time; {@link Scheduler.clock} makes these.
   * @param scheduler - The virtual time it follows.
   * @param rate - Local milliseconds per virtual millisecond.
   */
  constructor(
    private readonly scheduler: Scheduler,
    /** Local milliseconds per virtual millisecond. */
    readonly rate: number,
  ) {}

  /**
   * The node's local time.
   * @returns The scheduler's time multiplied by `rate`.
   */
  now(): number {
    return this.scheduler.now * this.rate;
  }

  /**
   * Calls `fn` after `ms` local milliseconds, unless the clock is killed first.
   * @param fn - What to call.
   * @param ms - Local milliseconds.
   * @returns A handle for {@link NodeClock.clearTimeout}; `undefined` once killed.
   */
  setTimeout(fn: () => void, ms: number): TimerHandle {
    if (!this.alive) return undefined;
    const ev = this.scheduler.at(ms / this.rate, () => {
      this.timers.delete(ev);
      if (this.alive) fn();
    });
    this.timers.add(ev);
    return ev;
  }

  /**
   * Cancels a timer; unknown or fired handles are ignored.
   * @param handle - What {@link NodeClock.setTimeout} returned.
   */
  clearTimeout(handle: TimerHandle): void {
    const ev = handle as ScheduledEvent | undefined;
    if (ev === undefined || !this.timers.has(ev)) return;
    ev.cancelled = true;
    this.timers.delete(ev);
  }

  /** Cancels every timer and ignores new ones: the process died. */
  kill(): void {
    this.alive = false;
    for (const ev of this.timers) ev.cancelled = true;
    this.timers.clear();
  }
}
