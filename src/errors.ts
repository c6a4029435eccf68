/**
 * The stable codes of {@link RaftError}. Codes are part of the API; messages are not.
 *
 * - `NOT_LEADER`: the call needs the leader and this node is not it (see `leaderId`).
 * - `NO_LEADER`: no leader is known, so the call cannot be served or forwarded now.
 * - `TIMEOUT`: the call's deadline passed; a proposal's outcome is then unknown.
 * - `ABORTED`: the caller's `AbortSignal` fired; a proposal's outcome is then unknown.
 * - `STOPPED`: the node was stopped (or was never started).
 * - `DROPPED`: the proposal was definitely not committed (another entry took its index).
 * - `STORAGE`: a storage adapter failed; the node stops rather than continue unsafely.
 * - `CORRUPT`: persisted or received data failed validation.
 * - `INVALID_STATE`: the call is not allowed in the node's current state.
 * - `BUSY`: the call was refused because a bound (queue, in-progress change) is reached.
 * - `SESSION_EXPIRED`: a client session expired; its command was not applied.
 * - `TRANSPORT`: a transport adapter failed in a way the caller must see.
 *
 * @public
 */
export type RaftErrorCode =
  | "NOT_LEADER"
  | "NO_LEADER"
  | "TIMEOUT"
  | "ABORTED"
  | "STOPPED"
  | "DROPPED"
  | "STORAGE"
  | "CORRUPT"
  | "INVALID_STATE"
  | "BUSY"
  | "SESSION_EXPIRED"
  | "TRANSPORT";

/**
 * Options for {@link RaftError}.
 * @public
 */
export interface RaftErrorOptions {
  /** The underlying error, kept for diagnosis. */
  cause?: unknown;
  /** The leader's id, when the error is about leadership and a leader is known. */
  leaderId?: string | null;
}

/**
 * The one error type that raftkit rejects or throws with for operational failures.
 * Switch on {@link RaftError.code}; the message is for humans and may change.
 *
 * @example
 * ```ts
 * try {
 *   await node.propose(cmd);
 * } catch (err) {
 *   if (err instanceof RaftError && err.code === "NOT_LEADER") redirect(err.leaderId);
 * }
 * ```
 * @public
 */
export class RaftError extends Error {
  /** The stable machine-readable code. */
  readonly code: RaftErrorCode;
  /** The leader known when the error arose, for `NOT_LEADER` (and `null` when none is known). */
  readonly leaderId: string | null;

  /**
   * Creates an error. Adapters (storage, transport, state machines) throw these too, so
   * that callers can switch on one `code` whatever failed.
   * @param code - The stable code; see {@link RaftErrorCode}.
   * @param message - A human-readable description. Not part of the API.
   * @param options - The underlying `cause`, and the `leaderId` for `NOT_LEADER`.
   */
  constructor(code: RaftErrorCode, message: string, options: RaftErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "RaftError";
    this.code = code;
    this.leaderId = options.leaderId ?? null;
  }
}

/**
 * Whether `err` is a {@link RaftError}, optionally with the given code. A type guard, so
 * `err.code` and `err.leaderId` are typed afterwards.
 * @param err - Anything caught.
 * @param code - When given, only a `RaftError` with this code matches.
 * @returns `true` when `err` is a `RaftError` (with `code`, when given).
 *
 * @example
 * ```ts
 * try {
 *   await node.propose(cmd);
 * } catch (err) {
 *   if (isRaftError(err, "NOT_LEADER") && err.leaderId !== null) return retryOn(err.leaderId);
 *   throw err;
 * }
 * ```
 * @public
 */
export function isRaftError(err: unknown, code?: RaftErrorCode): err is RaftError {
  return err instanceof RaftError && (code === undefined || err.code === code);
}
