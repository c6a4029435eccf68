/**
 * An opaque timer handle from a {@link Clock}.
 * @public
 */
export type TimerHandle = unknown;

/**
 * Where a node gets time from. The node never reads the real clock or sets a real timer
 * except through this, so a simulator can run it in virtual time (`raftkit/testing` has
 * `Scheduler.clock()`).
 * @public
 */
export interface Clock {
  /**
   * The current time.
   * @returns Milliseconds since an arbitrary origin, never going back.
   */
  now(): number;
  /**
   * Calls `fn` once after `ms` milliseconds.
   * @param fn - What to call.
   * @param ms - The delay in milliseconds.
   * @returns A handle for {@link Clock.clearTimeout}.
   */
  setTimeout(fn: () => void, ms: number): TimerHandle;
  /**
   * Cancels a timer; unknown or fired handles are ignored.
   * @param handle - What {@link Clock.setTimeout} returned.
   */
  clearTimeout(handle: TimerHandle): void;
}

/**
 * The real clock: `performance.now()` and the host's timers. The only real timers in raftkit's sources.
 * @public
 */
export const systemClock: Clock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};
