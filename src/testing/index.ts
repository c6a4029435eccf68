// The public API of raftkit/testing: explicit named re-exports only.

/**
 * raftkit/testing: test state machines and adapters the way raftkit itself is tested: a
 * deterministic simulator that runs whole clusters in virtual time under seeded faults
 * (`runSimulation`), a linearizability checker (`checkLinearizable`), and conformance
 * suites for storage and transport adapters (`storageConformance`, `transportConformance`).
 * Guide: docs/testing.md in the repository.
 *
 * @packageDocumentation
 */

// Types of the main entry point that this one's signatures use, re-exported so that
// users of raftkit/testing can name them from one import.
export type { Clock, TimerHandle } from "../node/clock.js";
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
  NodeId,
  ProposeMessage,
  ProposeResponseMessage,
  ReadIndexMessage,
  ReadIndexResponseMessage,
  RequestVoteMessage,
  RequestVoteResponseMessage,
  SnapshotMeta,
  TimeoutNowMessage,
} from "../core/messages.js";
export type { RaftStorage, Snapshot, SnapshotData, StorageBatch, StorageCapabilities, StoredState } from "../storage/storage.js";
export { collectChunks, snapshotBytes, snapshotChunks, snapshotDataOf, snapshotSlice, sourceChunks } from "../snapshot-data.js";
export type { SnapshotSource } from "../snapshot-data.js";
export type { MessageHandler, Transport } from "../transport/transport.js";
export type { ApplyMeta, StateMachine } from "../state-machine.js";
export type { KvCommand, KvResult } from "../kv/commands.js";

export { Prng } from "./prng.js";
export { Scheduler, NodeClock } from "./scheduler.js";
export type { ScheduledEvent } from "./scheduler.js";
export { SimNetwork, RELIABLE_NETWORK } from "./sim-network.js";
export type { NetworkFaults, NetworkStats } from "./sim-network.js";
export { SimDisk, SimStorage } from "./sim-storage.js";
export { runSimulation, drawKnobs } from "./simulator.js";
export type { SimCommand, SimResult, SimulationKnobs, SimulationOptions, SimulationResult } from "./simulator.js";
export { storageConformance } from "./storage-conformance.js";
export type { StorageConformanceAssertion, StorageConformanceContext, StorageConformanceOptions } from "./storage-conformance.js";
export { checkLinearizable, partitionBy, HistoryRecorder, registerModel, kvModel } from "./linearizability.js";
export type {
  CheckLinearizableOptions,
  History,
  HistoryPartition,
  HistoryRecorderOptions,
  KvModelInput,
  KvModelOutput,
  KvModelState,
  LinearizabilityResult,
  LinearizableResult,
  Model,
  NotLinearizableResult,
  Operation,
  RegisterInput,
  RegisterModelOptions,
  StepResult,
  UnknownLinearizabilityResult,
} from "./linearizability.js";
export { transportConformance } from "./transport-conformance.js";
export type { TransportConformanceAssertion, TransportConformanceContext, TransportConformanceOptions } from "./transport-conformance.js";
