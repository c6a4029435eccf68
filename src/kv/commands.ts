/**
 * A command for `KvStateMachine`.
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
  readonly ok: boolean;
  readonly previous: string | null;
}
