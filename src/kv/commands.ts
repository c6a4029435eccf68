/**
 * A command for `KvStateMachine`. Keys and values are strings; check a command from
 * outside with `validateKvCommand` before proposing it.
 * - `put`: set `key` to `value`.
 * - `delete`: remove `key`.
 * - `cas`: compare-and-set; when the current value equals `expected` (`null`: absent),
 *   set it to `value` (`null`: delete).
 * @public
 */
export type KvCommand =
  | { readonly op: "put"; readonly key: string; readonly value: string }
  | { readonly op: "delete"; readonly key: string }
  | { readonly op: "cas"; readonly key: string; readonly expected: string | null; readonly value: string | null };

/**
 * The result of a {@link KvCommand}.
 * - `ok`: for `put` always true; for `delete` whether the key existed; for `cas` whether
 *   the current value matched `expected` (and so the write happened).
 * - `previous`: the key's value before the command (`null`: absent).
 * @public
 */
export interface KvResult {
  /** Whether the command did what it asked: see above per `op`. */
  readonly ok: boolean;
  /** The key's value before the command, or `null` when the key was absent. */
  readonly previous: string | null;
}
