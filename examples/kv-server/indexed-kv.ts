// The KV state machine with each result stamped with its entry's log index.
//
// The HTTP API answers a write with the index of its entry. propose() resolves with what
// apply() returned, and apply() is the one place that knows the entry's index for sure
// (an "apply" event listener would have to match events to proposals by guessing), so
// the index rides along in the result.
import type { ApplyMeta, KvCommand, KvResult, KvStateMachine, SnapshotData, StateMachine } from "raftkit";

export interface IndexedKvResult extends KvResult {
  /** The log index of the entry that carried the command. */
  readonly index: number;
}

export class IndexedKvStateMachine implements StateMachine<KvCommand, IndexedKvResult> {
  constructor(readonly kv: KvStateMachine) {}

  apply(command: KvCommand, meta: ApplyMeta): IndexedKvResult {
    return { ...this.kv.apply(command, meta), index: meta.index };
  }

  // Forwarded so that the wrapper keeps working once RaftNode takes snapshots. The stream
  // is handed through untouched: KvStateMachine captures its state at this call.
  snapshot(): AsyncIterable<Uint8Array> {
    return this.kv.snapshot();
  }

  restore(data: SnapshotData): Promise<void> {
    return this.kv.restore(data);
  }
}
