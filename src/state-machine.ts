/**
 * What {@link StateMachine.apply} learns about the entry it applies.
 * @public
 */
export interface ApplyMeta {
  /** The entry's log index. Strictly increasing across calls. */
  readonly index: number;
  /** The entry's term. */
  readonly term: number;
}

/**
 * The replicated state machine that raftkit drives. Every node applies the same
 * commands in the same order, so `apply` must be deterministic: its result and its
 * effect may depend only on the state and the command, never on time, randomness or I/O
 * that differs between nodes.
 *
 * @example
 * ```ts
 * class Counter implements StateMachine<{ add: number }, number> {
 *   value = 0;
 *   apply(cmd: { add: number }) { return (this.value += cmd.add); }
 * }
 * ```
 * @public
 */
export interface StateMachine<Cmd, Result> {
  /**
   * Applies one committed command and returns its result (or a promise of it), which
   * resolves the `propose()` promise of the node that proposed it. A throw (or
   * rejection) is a broken invariant: the node stops.
   */
  apply(command: Cmd, meta: ApplyMeta): Result | Promise<Result>;
}
