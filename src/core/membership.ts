import type { ClusterConfig, NodeId } from "./messages.js";
import { jointQuorumValue, jointVoteOutcome, type VoteOutcome } from "./quorum.js";

/** A configuration of voters only, as a cluster starts. */
export function votersConfig(voters: readonly NodeId[]): ClusterConfig {
  return { voters: [...voters], learners: [], outgoingVoters: [] };
}

/** Whether the configuration is joint (a membership change is half way). */
export function isJoint(config: ClusterConfig): boolean {
  return config.outgoingVoters.length > 0;
}

/** Whether `id` votes in either half of the configuration. */
export function isVoter(config: ClusterConfig, id: NodeId): boolean {
  return config.voters.includes(id) || config.outgoingVoters.includes(id);
}

/** Every member: voters of both halves and learners, each once. */
export function allMembers(config: ClusterConfig): NodeId[] {
  return [...new Set([...config.voters, ...config.outgoingVoters, ...config.learners])];
}

/** The value a majority of the configuration's voters has reached (joint-aware). */
export function committedValue(config: ClusterConfig, valueOf: (id: NodeId) => number): number {
  return jointQuorumValue(config.voters, config.outgoingVoters, valueOf);
}

/** The outcome of an election under the configuration (joint-aware). */
export function electionOutcome(config: ClusterConfig, votes: ReadonlyMap<NodeId, boolean>): VoteOutcome {
  return jointVoteOutcome(config.voters, config.outgoingVoters, votes);
}

/**
 * Checks a configuration's shape: non-empty voters, no id twice in a role, no id both
 * voter and learner. Returns a message describing the first problem, or null.
 */
export function configProblem(config: ClusterConfig): string | null {
  if (config.voters.length === 0) return "a configuration needs at least one voter";
  for (const [name, list] of [["voters", config.voters], ["learners", config.learners], ["outgoingVoters", config.outgoingVoters]] as const) {
    if (new Set(list).size !== list.length) return `${name} lists a member twice`;
    for (const id of list) if (typeof id !== "string" || id.length === 0) return `${name} holds an empty or non-string id`;
  }
  for (const id of config.learners) {
    if (config.voters.includes(id) || config.outgoingVoters.includes(id)) return `${id} is both a voter and a learner`;
  }
  return null;
}
