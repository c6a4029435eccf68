// The public API of raftkit/testing: explicit named re-exports only.

export { Prng } from "./prng.js";
export { Scheduler, NodeClock } from "./scheduler.js";
export { SimNetwork, RELIABLE_NETWORK } from "./sim-network.js";
export type { NetworkFaults, NetworkStats } from "./sim-network.js";
export { SimDisk, SimStorage } from "./sim-storage.js";
export { SafetyChecker, SafetyViolation } from "./safety.js";
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
