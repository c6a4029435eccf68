import type { NodeId } from "../core/messages.js";
import type { RaftRole } from "./events.js";

/**
 * A peer's replication state as the leader sees it.
 * @public
 */
export interface PeerStatus {
  /** The peer's id. */
  readonly id: NodeId;
  /** The highest index known to be replicated on the peer. */
  readonly matchIndex: number;
  /** The next index the leader will send it. */
  readonly nextIndex: number;
  /** `probe`: finding where the logs agree; `replicate`: streaming; `snapshot`: being sent a snapshot. */
  readonly state: "probe" | "replicate" | "snapshot";
}

/**
 * A snapshot of a node's state, for dashboards and health checks. Never blocks.
 * @public
 */
export interface RaftStatus {
  /** This node's id. */
  readonly id: NodeId;
  /** This node's role (`follower` before `start()`). */
  readonly role: RaftRole;
  /** This node's current term. */
  readonly term: number;
  /** The known leader, or null. */
  readonly leader: NodeId | null;
  /** The highest log index known to be committed. */
  readonly commitIndex: number;
  /** The highest log index applied to this node's state machine. */
  readonly appliedIndex: number;
  /** The index of the last entry in this node's log. */
  readonly lastIndex: number;
  /** The current voters. */
  readonly voters: readonly NodeId[];
  /** The current learners: members that replicate the log without voting. */
  readonly learners: readonly NodeId[];
  /** While a membership change is half way (`joint`), the voters of the old configuration. */
  readonly outgoingVoters: readonly NodeId[];
  /** Whether a membership change is half way (a joint configuration is in force). */
  readonly joint: boolean;
  /** Per peer replication state; empty unless this node leads. */
  readonly peers: readonly PeerStatus[];
}
