// The client side of exactly-once sessions (Raft dissertation §6.3): registers a session
// through the log, numbers its commands, and retries each with the same number until it
// learns the result or its deadline passes.
import { RaftError, isRaftError } from "../errors.js";
import { systemClock, type Clock, type TimerHandle } from "./clock.js";
import { PendingRequest, timeoutOf, type ReadOptions, type RequestOptions } from "./proposals.js";
import type { SessionCommand, SessionResult } from "./sessions.js";

/**
 * What a {@link RaftClient} talks to: a {@link RaftNode} whose state machine is a
 * {@link SessionStateMachine}, or anything that routes to such nodes (e.g. one that picks
 * another node when the last one failed).
 * @typeParam Cmd - The wrapped state machine's command type.
 * @typeParam Result - The wrapped state machine's result type.
 * @public
 */
export interface SessionTarget<Cmd, Result> {
  /**
   * Proposes one session command.
   * @param command - The command, as the client built it.
   * @param options - The attempt's deadline.
   * @returns Its result once applied.
   */
  propose(command: SessionCommand<Cmd>, options?: RequestOptions): Promise<SessionResult<Result>>;
  /**
   * Waits until the state may be read linearizably (see {@link RaftNode.read}).
   * @param options - Deadline, abort signal and read mode.
   */
  read(options?: ReadOptions): Promise<void>;
}

/**
 * Options for {@link RaftClient}.
 * @public
 */
export interface RaftClientOptions {
  /**
   * The deadline of a `propose()` that gives no `timeoutMs`, retries included.
   * @defaultValue 10000
   */
  readonly requestTimeoutMs?: number;
  /**
   * The deadline of a call's first attempt; a slower attempt is retried (with the same
   * seq) until the call's own deadline, each time with twice the previous attempt's
   * deadline, so that a slow cluster is not flooded with retries (each retry is a new log
   * entry, even though it is applied only once). Kept by the client's clock, so an
   * attempt on a node that died without answering is given up too.
   * @defaultValue 2000
   */
  readonly attemptTimeoutMs?: number;
  /**
   * The first pause before retrying an attempt that failed at once (no leader, dropped,
   * busy); it doubles per retry up to `maxRetryDelayMs`, with random jitter.
   * @defaultValue 10
   */
  readonly retryDelayMs?: number;
  /**
   * The longest pause between attempts.
   * @defaultValue 500
   */
  readonly maxRetryDelayMs?: number;
  /**
   * While the session is idle, send a keep-alive this often, so that it does not expire;
   * 0 sends none (the session then expires after the state machine's `sessionTimeoutMs`
   * without commands, and the next command fails with `SESSION_EXPIRED`). The timer runs
   * until `close()` (or until the target reports `STOPPED` or the session expired).
   * @defaultValue 0
   */
  readonly keepAliveIntervalMs?: number;
  /**
   * How far the newest seq may run ahead of the oldest unfinished one; a `propose()`
   * beyond this rejects with `BUSY`. Keep it at most the state machine's
   * `maxResultsPerSession`, which bounds the cached results per session.
   * @defaultValue 1024
   */
  readonly maxSeqWindow?: number;
  /**
   * The wall-clock time stamped on every command, in milliseconds; the state machine's
   * log time (and so session expiry) follows it. It must be comparable between the
   * processes that propose (unlike `clock`, whose origin is per process).
   * @defaultValue Date.now
   */
  readonly now?: () => number;
  /**
   * Deadlines and pauses; replace only to run in virtual time.
   * @defaultValue the system clock
   */
  readonly clock?: Clock;
  /**
   * Uniform random numbers in [0, 1), for retry jitter.
   * @defaultValue Math.random
   */
  readonly random?: () => number;
}

/**
 * Why an attempt is retried: it timed out (the next one gets a longer deadline), or it was
 * refused at once (no leader, dropped, busy: the next one waits a little first).
 */
type RetryCause = "timeout" | "refused";

/** The retry state of one call. */
class Retries {
  private timeouts = 0;
  private refusals = 0;

  /** The factor of the next attempt's deadline: doubled per timed-out attempt (up to 2^10). */
  timeoutFactor(): number {
    return 2 ** Math.min(this.timeouts, 10);
  }

  /** Records a failed attempt; returns how many refusals in a row to pause for (0: none). */
  after(cause: RetryCause): number {
    if (cause === "timeout") {
      this.timeouts++;
      this.refusals = 0;
      return 0;
    }
    return ++this.refusals;
  }
}

/** Errors after which another attempt (with the same seq) may succeed. */
const RETRYABLE = new Set(["NOT_LEADER", "NO_LEADER", "DROPPED", "TIMEOUT", "BUSY"]);

type CommandOf<Cmd> = Extract<SessionCommand<Cmd>, { kind: "command" }>;

/** A call in progress, whatever its result type. */
type Call = Pick<PendingRequest<unknown>, "settled" | "promise" | "reject">;

/**
 * A client with an exactly-once session (Raft dissertation §6.3). `propose()` resolves
 * with the command's result once it is applied, retrying across leader changes, lost
 * messages and timed-out attempts until its own deadline, always with the same (client
 * id, seq), so that the {@link SessionStateMachine} applies the command at most once and
 * answers retries from its cache. The session is registered through the log on the first
 * `propose()`.
 *
 * Rejects with a {@link RaftError}: `TIMEOUT` or `ABORTED` (the outcome is unknown: an
 * attempt may have been applied; retrying the call itself would apply it again),
 * `SESSION_EXPIRED` (the session expired; this attempt was not applied, but an earlier
 * attempt of the same call may have been, so the outcome is unknown unless the call
 * made one attempt; the next call registers a new session), `BUSY`, `STOPPED` (the client was
 * closed or the node stopped) or `INVALID_STATE` (the node's state machine is not a
 * `SessionStateMachine`).
 *
 * @example
 * ```ts
 * const node = new RaftNode({ ...nodeOptions, stateMachine: new SessionStateMachine(new KvStateMachine()) });
 * await node.start();
 * const client = node.client({ requestTimeoutMs: 5000 });
 * const { previous } = await client.propose({ op: "put", key: "a", value: "1" });
 * await client.read(); // then read the local KvStateMachine linearizably
 * await client.close();
 * ```
 * @typeParam Cmd - The user's command type (the `SessionStateMachine`'s wrapped one).
 * @typeParam Result - The user's result type.
 * @public
 */
export class RaftClient<Cmd, Result> {
  private readonly target: SessionTarget<Cmd, Result>;
  private readonly clock: Clock;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly requestTimeoutMs: number;
  private readonly attemptTimeoutMs: number;
  private readonly retryDelayMs: number;
  private readonly maxRetryDelayMs: number;
  private readonly keepAliveIntervalMs: number;
  private readonly maxSeqWindow: number;

  private sessionId: number | null = null;
  private registering: Promise<number> | null = null;
  private nextSeq = 0;
  /**
   * Seqs of calls still in progress, per session: the lowest is the `ackSeq` sent.
   * Invariant: each set iterates in ascending order (seqs are added in increasing order).
   */
  private readonly unfinished = new Map<number, Set<number>>();
  /** Every call in progress, to settle on close. */
  private readonly live = new Set<Call>();
  private closed = false;
  private lastSentMs = 0;
  private keepAliveTimer: TimerHandle | undefined;

  /**
   * A client of `target`. Nothing is proposed until the first `propose()`.
   * @param target - A node whose state machine is a `SessionStateMachine`, or a router to such nodes.
   * @param options - Deadlines, retry pacing, keep-alives and clocks.
   * @throws RangeError when an option is out of range, naming it.
   */
  constructor(target: SessionTarget<Cmd, Result>, options: RaftClientOptions = {}) {
    this.target = target;
    this.clock = options.clock ?? systemClock;
    this.now = options.now ?? Date.now;
    this.random = options.random ?? Math.random;
    this.requestTimeoutMs = positive("requestTimeoutMs", options.requestTimeoutMs ?? 10_000);
    this.attemptTimeoutMs = positive("attemptTimeoutMs", options.attemptTimeoutMs ?? 2000);
    this.retryDelayMs = positive("retryDelayMs", options.retryDelayMs ?? 10);
    this.maxRetryDelayMs = positive("maxRetryDelayMs", options.maxRetryDelayMs ?? 500);
    const keepAlive = options.keepAliveIntervalMs ?? 0;
    if (!Number.isFinite(keepAlive) || keepAlive < 0) throw new RangeError(`RaftClient option 'keepAliveIntervalMs' must be a non-negative number (got ${keepAlive})`);
    this.keepAliveIntervalMs = keepAlive;
    const window = options.maxSeqWindow ?? 1024;
    if (!Number.isSafeInteger(window) || window <= 0) throw new RangeError(`RaftClient option 'maxSeqWindow' must be a positive integer (got ${window})`);
    this.maxSeqWindow = window;
  }

  /** The session's client id (the log index of its registration), or null before it is registered. */
  get clientId(): number | null {
    return this.sessionId;
  }

  /**
   * Proposes `command` exactly once: registers the session first if needed, then retries
   * with the same seq until an attempt gets an answer or the deadline passes.
   * @param command - The user's command.
   * @param options - The call's deadline (`requestTimeoutMs` by default) and abort signal.
   * @returns The state machine's result once the command is applied; see the class for the rejections.
   * @throws RangeError (synchronously) when `timeoutMs` is not a positive number.
   */
  propose(command: Cmd, options?: RequestOptions): Promise<Result> {
    const timeoutMs = timeoutOf(options, this.requestTimeoutMs);
    if (this.closed) return Promise.reject(new RaftError("STOPPED", "the RaftClient was closed; proposal refused"));
    const pending = new PendingRequest<Result>(this.clock, timeoutMs, options?.signal, () => this.live.delete(pending), "session proposal");
    this.live.add(pending);
    void this.run(command, pending).catch((err: unknown) => pending.reject(err));
    return pending.promise;
  }

  /**
   * Resolves when the state may be read linearizably; delegates to the target's
   * `read()` (see {@link RaftNode.read}) without retrying.
   * @param options - Deadline, abort signal and read mode, passed on as they are.
   * @returns What the target's `read()` returns; rejects with `STOPPED` once the client is closed.
   */
  read(options?: ReadOptions): Promise<void> {
    if (this.closed) return Promise.reject(new RaftError("STOPPED", "the RaftClient was closed; read refused"));
    return this.target.read(options);
  }

  /**
   * Closes the client: calls in progress reject with `STOPPED` (their outcome unknown),
   * new calls are refused, and the session is closed through the log (best effort, within
   * `timeoutMs`) so that its cache is freed before it would expire. Safe to call twice.
   * @param options - The deadline of the close entry (`attemptTimeoutMs` by default) and an abort signal.
   * @returns Resolves once the session is closed or the attempt gave up; never rejects.
   */
  async close(options?: RequestOptions): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.keepAliveTimer !== undefined) this.clock.clearTimeout(this.keepAliveTimer);
    this.keepAliveTimer = undefined;
    for (const p of [...this.live]) p.reject(new RaftError("STOPPED", "the RaftClient was closed; the call's outcome is unknown"));
    const session = this.sessionId;
    this.sessionId = null;
    if (session === null) return;
    const timeoutMs = timeoutOf(options, this.attemptTimeoutMs);
    try {
      await this.target.propose({ kind: "close", session, time: this.now() }, { timeoutMs, ...(options?.signal ? { signal: options.signal } : {}) });
    } catch {
      // Best effort: an unclosed session expires by itself.
    }
  }

  private async run(command: Cmd, pending: PendingRequest<Result>): Promise<void> {
    const session = await this.session(pending);
    if (pending.settled) return;
    let unfinished = this.unfinished.get(session);
    if (unfinished === undefined) this.unfinished.set(session, (unfinished = new Set()));
    if (unfinished.size > 0 && this.nextSeq + 1 - lowest(unfinished) >= this.maxSeqWindow) {
      pending.reject(new RaftError("BUSY", `seq ${this.nextSeq + 1} would run ${this.maxSeqWindow} (maxSeqWindow) ahead of the oldest unfinished call; proposal refused`));
      return;
    }
    const seq = ++this.nextSeq;
    unfinished.add(seq);
    try {
      const retries = new Retries();
      let attempts = 0;
      while (!pending.settled) {
        attempts++;
        const sent: CommandOf<Cmd> = { kind: "command", session, seq, ackSeq: lowest(unfinished), time: this.now(), cmd: command };
        const outcome = await this.attempt(sent, pending, this.attemptTimeoutMs * retries.timeoutFactor());
        if (pending.settled) return;
        if (outcome.kind === "retry") {
          await this.pause(pending, retries.after(outcome.cause));
          continue;
        }
        const r = outcome.result;
        switch (r.kind) {
          case "result":
            pending.resolve(r.result);
            return;
          case "expired":
            if (this.sessionId === session) this.forgetSession();
            pending.reject(
              new RaftError(
                "SESSION_EXPIRED",
                `session ${session} expired; seq ${seq} was not applied by this attempt${attempts > 1 ? ", but an earlier attempt may have been: its outcome is unknown" : ""}`,
              ),
            );
            return;
          case "stale":
            pending.reject(new RaftError("SESSION_EXPIRED", `session ${session} no longer holds the result of seq ${seq}; its outcome is unknown`));
            return;
          default:
            pending.reject(new RaftError("INVALID_STATE", `unexpected session result ${JSON.stringify(r)}; is the node's state machine a SessionStateMachine?`));
            return;
        }
      }
    } finally {
      unfinished.delete(seq);
      if (unfinished.size === 0) this.unfinished.delete(session);
    }
  }

  /** The session id, registering one first if needed. Concurrent first calls share one registration. */
  private async session(pending: PendingRequest<Result>): Promise<number> {
    for (;;) {
      if (this.sessionId !== null) return this.sessionId;
      let registration = this.registering;
      if (registration === null) {
        const started = this.register(pending);
        registration = this.registering = started;
        const clear = (): void => {
          if (this.registering === started) this.registering = null;
        };
        started.then(clear, clear);
      }
      try {
        return await registration;
      } catch (err) {
        // A registration run for another call ends at that call's deadline: then run our own.
        if (pending.settled || this.closed || !isRaftError(err, "TIMEOUT")) throw err;
      }
    }
  }

  /**
   * Registers a session through the log, retrying until `pending`'s deadline. A retry
   * may leave an extra session behind (each attempt is a new entry); it expires unused.
   */
  private async register(pending: PendingRequest<Result>): Promise<number> {
    const retries = new Retries();
    while (!pending.settled && !this.closed) {
      const outcome = await this.attempt({ kind: "register", time: this.now() }, pending, this.attemptTimeoutMs * retries.timeoutFactor());
      if (outcome.kind === "retry") {
        await this.pause(pending, retries.after(outcome.cause));
        continue;
      }
      const r = outcome.result;
      if (r.kind !== "registered") {
        throw new RaftError("INVALID_STATE", `unexpected result ${JSON.stringify(r)} of a session registration; is the node's state machine a SessionStateMachine?`);
      }
      if (this.closed) throw new RaftError("STOPPED", "the RaftClient was closed");
      this.sessionId = r.session;
      this.nextSeq = 0;
      this.lastSentMs = this.clock.now();
      this.armKeepAlive();
      return r.session;
    }
    throw new RaftError(this.closed ? "STOPPED" : "TIMEOUT", "the session could not be registered before the deadline; the command was not proposed");
  }

  /**
   * One attempt, bounded by `timeoutMs` on the client's clock, and ended as soon as the
   * call settles. Resolves with the result, or with `retry` and why; rejects with a final
   * error.
   */
  private attempt(
    command: SessionCommand<Cmd>,
    pending: Call,
    timeoutMs: number,
  ): Promise<{ kind: "done"; result: SessionResult<Result> } | { kind: "retry"; cause: RetryCause }> {
    return new Promise((resolve, reject) => {
      let done = false;
      const finish = (fn: () => void): void => {
        if (done) return;
        done = true;
        this.clock.clearTimeout(timer);
        fn();
      };
      const timer = this.clock.setTimeout(() => finish(() => resolve({ kind: "retry", cause: "timeout" })), timeoutMs);
      // Once the call settled (its deadline, an abort, close()) nobody waits for this
      // attempt. Ending it keeps the seq from counting as unfinished until the attempt's
      // own deadline: that would hold back ackSeq, and fill the seq window with calls that
      // are over (every later call refused with BUSY; simulator seed 607481/5).
      const abandon = (): void => finish(() => resolve({ kind: "retry", cause: "timeout" }));
      void pending.promise.then(abandon, abandon);
      const started = this.clock.now();
      this.lastSentMs = started;
      let sent: Promise<SessionResult<Result>>;
      try {
        sent = this.target.propose(command, { timeoutMs });
      } catch (err) {
        sent = Promise.reject(err);
      }
      sent.then(
        (result) => finish(() => resolve({ kind: "done", result })),
        (err: unknown) =>
          finish(() => {
            if (pending.settled) resolve({ kind: "retry", cause: "timeout" });
            else if (isRaftError(err) && RETRYABLE.has(err.code)) resolve({ kind: "retry", cause: this.retryCause(err.code, started, timeoutMs) });
            else reject(err);
          }),
      );
    });
  }

  /**
   * Why a refused attempt is retried. Only a `TIMEOUT` that took at least half the
   * attempt's deadline says the deadline was too short; a node that gives up early (its
   * leader changed before it answered) refused, and doubling the next deadline for that
   * would let one call's attempts outlive the call by far.
   */
  private retryCause(code: string, started: number, timeoutMs: number): RetryCause {
    return code === "TIMEOUT" && this.clock.now() - started >= timeoutMs / 2 ? "timeout" : "refused";
  }

  /** Waits before the next attempt: exponential in `refusals` (0: no wait), with jitter; ends early when the call settles. */
  private pause(pending: Call, refusals: number): Promise<void> {
    if (refusals === 0 || pending.settled) return Promise.resolve();
    const base = Math.min(this.maxRetryDelayMs, this.retryDelayMs * 2 ** Math.min(refusals - 1, 30));
    const delay = base / 2 + this.random() * (base / 2);
    return new Promise((resolve) => {
      const timer = this.clock.setTimeout(resolve, delay);
      void pending.promise.then(
        () => {
          this.clock.clearTimeout(timer);
          resolve();
        },
        () => {
          this.clock.clearTimeout(timer);
          resolve();
        },
      );
    });
  }

  private forgetSession(): void {
    this.sessionId = null;
    if (this.keepAliveTimer !== undefined) this.clock.clearTimeout(this.keepAliveTimer);
    this.keepAliveTimer = undefined;
  }

  private armKeepAlive(): void {
    if (this.keepAliveIntervalMs === 0 || this.closed) return;
    if (this.keepAliveTimer !== undefined) this.clock.clearTimeout(this.keepAliveTimer);
    const interval = this.keepAliveIntervalMs;
    this.keepAliveTimer = this.clock.setTimeout(() => {
      this.keepAliveTimer = undefined;
      const session = this.sessionId;
      if (session === null || this.closed) return;
      const idleMs = this.clock.now() - this.lastSentMs;
      if (idleMs >= interval) {
        this.lastSentMs = this.clock.now();
        this.target.propose({ kind: "keepAlive", session, time: this.now() }, { timeoutMs: this.attemptTimeoutMs }).then(
          (r) => {
            if (r.kind === "expired" && this.sessionId === session) this.forgetSession();
          },
          (err: unknown) => {
            // A stopped node takes no more keep-alives: stop sending them.
            if (isRaftError(err, "STOPPED") && this.sessionId === session) this.forgetSession();
          },
        );
      }
      this.armKeepAlive();
    }, interval);
  }
}

/** The first (so, by the invariant, lowest) seq of a non-empty set. */
function lowest(seqs: Set<number>): number {
  return seqs.values().next().value!;
}

function positive(name: string, v: number): number {
  if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) throw new RangeError(`RaftClient option '${name}' must be a positive number (got ${String(v)})`);
  return v;
}
