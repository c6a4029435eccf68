import type { Raft } from "../core/raft.js";

/**
 * The protocol core behind each running RaftNode, for the simulator's safety checks
 * (raftkit/testing). Not part of the public API: a WeakMap, so it keeps nothing alive.
 */
export const coreOfNode = new WeakMap<object, Raft>();
