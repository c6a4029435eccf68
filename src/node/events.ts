import type { ClusterConfig, EntryType, NodeId } from "../core/messages.js";

/**
 * A node's role in the protocol. `pre-candidate` is the pre-vote phase: the node checks
 * that it could win an election before it disturbs the cluster with a higher term.
 * Learners, and nodes not (yet) in the configuration, stay followers.
 * @public
 */
export type RaftRole = "follower" | "pre-candidate" | "candidate" | "leader";

/**
 * The events a {@link RaftNode} emits. Events observe, they never steer: a listener
 * cannot change what the node does. Listeners run synchronously inside the node's loop;
 * one that throws is logged (at `error`, through the node's logger) and otherwise ignored,
 * so a bug in monitoring code cannot stop a replica.
 * Each fires after the state it reports is durable and, for `apply`, applied.
 *
 * @example
 * ```ts
 * node.on("role", (role, term) => log.info(`now ${role} in term ${term}`));
 * node.on("leader", (leaderId) => metrics.leaderChanges.inc());
 * node.on("error", (err) => { log.error(err.message); process.exitCode = 1; }); // the node has stopped
 * ```
 * @public
 */
export interface RaftNodeEvents {
  /** The node's role changed (to `role`, in `term`). */
  role: (role: RaftRole, term: number) => void;
  /** The known leader changed (`null`: none known), in `term`. */
  leader: (leaderId: NodeId | null, term: number) => void;
  /** The node moved to a new term. */
  term: (term: number) => void;
  /** The commit index advanced to `commitIndex`. */
  commit: (commitIndex: number) => void;
  /** The entry at `index` (of `term`, carrying `type`) was applied to the state machine. */
  apply: (index: number, term: number, type: EntryType) => void;
  /** A new configuration came into force (a membership change committed). */
  config: (config: ClusterConfig) => void;
  /** A snapshot at `index` (of `term`) was taken here, or installed from the leader. */
  snapshot: (index: number, term: number) => void;
  /** The node hit an error it cannot continue after (storage failure, broken invariant); it stops. */
  error: (error: Error) => void;
}
