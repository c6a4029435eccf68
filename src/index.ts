// The public API of raftkit: explicit named re-exports only, so that every new public
// symbol shows up in a diff and in the API report.

/**
 * raftkit: an embeddable Raft consensus SDK for TypeScript on Node.js. Give a `RaftNode`
 * a `StateMachine`, a `RaftStorage` and a `Transport`; `propose()` resolves with the state
 * machine's result once the command is committed and applied. Guides: docs/embedding.md,
 * docs/adapters.md, docs/testing.md and docs/operations.md in the repository.
 *
 * @packageDocumentation
 */

export { RaftError, isRaftError } from "./errors.js";
export type { RaftErrorCode, RaftErrorOptions } from "./errors.js";
export { jsonCodec } from "./codec.js";
export type { Codec } from "./codec.js";
export { consoleLogger, silentLogger } from "./logger.js";
export type { Logger } from "./logger.js";
export type { ApplyMeta, StateMachine } from "./state-machine.js";

export type {
  AppendEntriesMessage,
  AppendEntriesResponseMessage,
  ClusterConfig,
  Entry,
  EntryType,
  HardState,
  HeartbeatMessage,
  HeartbeatResponseMessage,
  InstallSnapshotMessage,
  InstallSnapshotResponseMessage,
  Message,
  MessageBase,
  MessageType,
  NodeId,
  ProposeMessage,
  ProposeResponseMessage,
  ReadIndexMessage,
  ReadIndexResponseMessage,
  RequestVoteMessage,
  RequestVoteResponseMessage,
  SnapshotMeta,
  TimeoutNowMessage,
} from "./core/messages.js";

export { RaftNode } from "./node/raft-node.js";
export type { MembershipChange } from "./core/membership.js";
export { RaftClient } from "./node/client.js";
export type { RaftClientOptions, SessionTarget } from "./node/client.js";
export { SessionStateMachine } from "./node/sessions.js";
export type { SessionCommand, SessionResult, SessionInfo, SessionStateMachineOptions } from "./node/sessions.js";
export type { PeerStatus, RaftStatus } from "./node/raft-node.js";
export type { RaftNodeOptions } from "./node/options.js";
export type { ReadOptions, RequestOptions } from "./node/proposals.js";
export type { RaftNodeEvents, RaftRole } from "./node/events.js";
export { systemClock } from "./node/clock.js";
export type { Clock, TimerHandle } from "./node/clock.js";

export type { RaftStorage, Snapshot, SnapshotData, StorageBatch, StorageCapabilities, StoredState } from "./storage/storage.js";
export { collectChunks, snapshotBytes, snapshotChunks, snapshotDataOf, snapshotSlice, sourceChunks } from "./snapshot-data.js";
export type { SnapshotSource } from "./snapshot-data.js";
export { MemoryStorage } from "./storage/memory-storage.js";
export { LevelStorage } from "./storage/level-storage.js";
export type { LevelStorageOptions, LevelStorageStats } from "./storage/level-storage.js";
export type { MemoryStorageOptions } from "./storage/memory-storage.js";

export type { MessageHandler, Transport } from "./transport/transport.js";
export { MemoryNetwork } from "./transport/memory-transport.js";
export { TcpTransport } from "./transport/tcp-transport.js";
export type { TcpTransportOptions, TcpTlsOptions, TcpTransportStats } from "./transport/tcp-transport.js";
export { encodeMessage, decodeMessage, MAX_NODE_ID_BYTES } from "./transport/wire-codec.js";
export { PROTOCOL_VERSION } from "./transport/frame.js";

export type { KvCommand, KvResult } from "./kv/commands.js";
export { KvStateMachine, validateKvCommand, defaultKvLimits } from "./kv/kv-state-machine.js";
export { kvCodec } from "./kv/kv-codec.js";
export type { KvEntry, KvLimits, KvListOptions, KvStateMachineOptions } from "./kv/kv-state-machine.js";
