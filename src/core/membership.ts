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

/**
 * A membership change (Raft dissertation §4.3): which members to add and remove, as
 * voters or as learners. Adding a learner as a voter promotes it. A change that changes
 * the voters goes through a joint configuration; one that only changes learners applies
 * directly. The change must not be empty and must leave at least one voter.
 *
 * @example
 * ```ts
 * await leader.changeMembership({ addLearners: ["n4"], addresses: { n4: "10.0.0.4:7001" } });
 * await leader.changeMembership({ addVoters: ["n4"], removeVoters: ["n1"] }); // n4 promoted, n1 out
 * ```
 * @public
 */
export interface MembershipChange {
  /** Members to make voters: new ids, or current learners (promoted). */
  readonly addVoters?: readonly NodeId[];
  /** Current voters to remove from the cluster. */
  readonly removeVoters?: readonly NodeId[];
  /** New members that replicate the log without voting; not current voters. */
  readonly addLearners?: readonly NodeId[];
  /** Current learners to remove from the cluster. */
  readonly removeLearners?: readonly NodeId[];
  /** Addresses ("host:port") of added members, for transports that learn them from the configuration. */
  readonly addresses?: Readonly<Record<NodeId, string>>;
}

/**
 * The configuration a change leads to: joint (old voters outgoing) when the voter set
 * changes, direct when only learners change (learners never count toward a quorum).
 * Returns a message instead when the change is not valid from `current`.
 */
export function planChange(current: ClusterConfig, change: MembershipChange): ClusterConfig | string {
  if (isJoint(current)) return "a membership change is already in progress";
  const voters = new Set(current.voters);
  const learners = new Set(current.learners);
  const ids = (list: readonly NodeId[] | undefined, name: string): NodeId[] | string => {
    if (list === undefined) return [];
    if (!Array.isArray(list)) return `${name} must be an array of node ids`;
    for (const id of list) if (typeof id !== "string" || id.length === 0) return `${name} must hold non-empty strings`;
    return [...list];
  };
  const addVoters = ids(change.addVoters, "addVoters");
  const removeVoters = ids(change.removeVoters, "removeVoters");
  const addLearners = ids(change.addLearners, "addLearners");
  const removeLearners = ids(change.removeLearners, "removeLearners");
  for (const r of [addVoters, removeVoters, addLearners, removeLearners]) if (typeof r === "string") return r;
  const [av, rv, al, rl] = [addVoters, removeVoters, addLearners, removeLearners] as NodeId[][];
  if (av!.length + rv!.length + al!.length + rl!.length === 0) return "the change is empty";
  for (const id of rv!) {
    if (!voters.has(id)) return `${id} is not a voter`;
    voters.delete(id);
  }
  for (const id of rl!) {
    if (!learners.has(id)) return `${id} is not a learner`;
    learners.delete(id);
  }
  for (const id of av!) {
    if (voters.has(id)) return `${id} is already a voter`;
    learners.delete(id); // promotion
    voters.add(id);
  }
  for (const id of al!) {
    if (voters.has(id)) return `${id} is a voter; remove it as a voter before adding it as a learner`;
    if (learners.has(id)) return `${id} is already a learner`;
    learners.add(id);
  }
  if (voters.size === 0) return "the change would leave no voters";
  const members = new Set([...voters, ...learners, ...current.voters]);
  const addresses: Record<NodeId, string> = {};
  for (const [id, addr] of Object.entries({ ...(current.addresses ?? {}), ...(change.addresses ?? {}) })) {
    if (typeof addr !== "string" || addr.length === 0) return `the address of ${id} must be a non-empty string`;
    if (members.has(id)) addresses[id] = addr;
  }
  const sameVoters = voters.size === current.voters.length && current.voters.every((v) => voters.has(v));
  const next: ClusterConfig = {
    voters: [...voters],
    learners: [...learners],
    outgoingVoters: sameVoters ? [] : [...current.voters],
    ...(Object.keys(addresses).length > 0 ? { addresses } : {}),
  };
  return configProblem(next) ?? next;
}

/** The configuration that ends a joint one: the incoming voters alone. */
export function leaveJoint(config: ClusterConfig): ClusterConfig {
  const members = new Set([...config.voters, ...config.learners]);
  const addresses = Object.fromEntries(Object.entries(config.addresses ?? {}).filter(([id]) => members.has(id)));
  return {
    voters: [...config.voters],
    learners: [...config.learners],
    outgoingVoters: [],
    ...(Object.keys(addresses).length > 0 ? { addresses } : {}),
  };
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** The payload of a `config` log entry. */
export function encodeConfig(config: ClusterConfig): Uint8Array {
  return encoder.encode(JSON.stringify(config));
}

/** Reads a `config` entry's payload; throws on anything that is not a valid configuration. */
export function decodeConfig(data: Uint8Array): ClusterConfig {
  const raw = JSON.parse(decoder.decode(data)) as Partial<ClusterConfig> | null;
  const strings = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === "string");
  if (raw === null || typeof raw !== "object" || !strings(raw.voters) || !strings(raw.learners) || !strings(raw.outgoingVoters)) {
    throw new TypeError("config entry is not a cluster configuration");
  }
  const config: ClusterConfig = {
    voters: raw.voters,
    learners: raw.learners,
    outgoingVoters: raw.outgoingVoters,
    ...(raw.addresses !== undefined ? { addresses: raw.addresses } : {}),
  };
  const problem = configProblem(config);
  if (problem !== null && config.voters.length > 0) throw new TypeError(`config entry is invalid: ${problem}`);
  return config;
}

/** Whether two configurations have the same members in the same roles. */
export function sameMembers(a: ClusterConfig, b: ClusterConfig): boolean {
  const eq = (x: readonly string[], y: readonly string[]): boolean => x.length === y.length && x.every((v) => y.includes(v));
  return eq(a.voters, b.voters) && eq(a.learners, b.learners) && eq(a.outgoingVoters, b.outgoingVoters);
}
