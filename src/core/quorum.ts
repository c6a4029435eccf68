/**
 * Majority arithmetic, for one voter set and for joint configurations. Pure functions
 * over ids and numbers; imports nothing.
 *
 * Convention (as in the Raft dissertation §4.3): an empty voter set agrees to anything,
 * so that a joint decision `min(incoming, outgoing)` reduces to the incoming set when the
 * configuration is not joint.
 */

/** The number of votes that makes a majority of `size` voters. */
export function majority(size: number): number {
  return Math.floor(size / 2) + 1;
}

/**
 * The largest value that a majority of `voters` has reached, where `valueOf(id)` is what
 * voter `id` has acknowledged (its match index, its acknowledged read round...).
 * For an empty set: `Infinity`.
 */
export function quorumValue(voters: readonly string[], valueOf: (id: string) => number): number {
  const n = voters.length;
  if (n === 0) return Infinity;
  const values = new Array<number>(n);
  for (let i = 0; i < n; i++) values[i] = valueOf(voters[i]!);
  values.sort((a, b) => b - a);
  return values[majority(n) - 1]!;
}

/** The value a joint configuration has agreed on: the smaller of both majorities. */
export function jointQuorumValue(
  incoming: readonly string[],
  outgoing: readonly string[],
  valueOf: (id: string) => number,
): number {
  return Math.min(quorumValue(incoming, valueOf), quorumValue(outgoing, valueOf));
}

/** The state of an election. */
export type VoteOutcome = "won" | "lost" | "pending";

/** Tallies `votes` (granted or refused, by voter id) over one voter set. */
export function voteOutcome(voters: readonly string[], votes: ReadonlyMap<string, boolean>): VoteOutcome {
  if (voters.length === 0) return "won";
  let granted = 0;
  let missing = 0;
  for (const id of voters) {
    const v = votes.get(id);
    if (v === true) granted++;
    else if (v === undefined) missing++;
  }
  const need = majority(voters.length);
  if (granted >= need) return "won";
  if (granted + missing >= need) return "pending";
  return "lost";
}

/** Tallies a joint election: won only when both sets are won, lost when either is lost. */
export function jointVoteOutcome(
  incoming: readonly string[],
  outgoing: readonly string[],
  votes: ReadonlyMap<string, boolean>,
): VoteOutcome {
  const a = voteOutcome(incoming, votes);
  const b = voteOutcome(outgoing, votes);
  if (a === "lost" || b === "lost") return "lost";
  if (a === "won" && b === "won") return "won";
  return "pending";
}
