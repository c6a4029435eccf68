import type { EventEmitter } from "eventemitter3";
import type { ClusterConfig, NodeId, Snapshot } from "../core/messages.js";
import type { ProposalItem, Raft } from "../core/raft.js";
import { RaftError } from "../errors.js";
import type { TimerHandle } from "./clock.js";
import type { RaftNodeEvents, RaftRole } from "./events.js";
import { resolveOptions, type RaftNodeOptions, type ResolvedOptions } from "./options.js";
import { SnapshotReceiver, SnapshotSender } from "./snapshot-transfer.js";
import { TimeoutGroups, type PendingRequest } from "./proposals.js";

export type NodeState = "new" | "starting" | "running" | "stopped";

export interface ProposalRequest<Cmd, Result> {
  readonly pending: PendingRequest<Result>;
  readonly item: ProposalItem;
  /** The command as proposed: applied as is on this node, which saves decoding it again. */
  readonly command: Cmd;
}

export interface ReadRequest {
  readonly pending: PendingRequest<void>;
  readonly lease: boolean;
}

/** Proposals handed to the core together, forwarded under one request id. */
type ProposalBatch<Cmd, Result> = ProposalRequest<Cmd, Result>[];

/**
 * The first layer of `NodeDriver` (node-driver.ts), the engine behind `RaftNode`
 * (raft-node.ts), built like the core's `Raft`: a chain of classes with one job each.
 * This one holds every field of the node, its constructor, events and stopping. Members
 * that `RaftNode`'s public methods use are public (the engine is not exported from the
 * package); the rest are `protected`; what a later layer defines but this one needs is
 * `abstract` here.
 */
export abstract class DriverState<Cmd, Result> {
  readonly opts: ResolvedOptions<Cmd, Result>;
  core: Raft | null = null;
  state: NodeState = "new";
  protected tickTimer: TimerHandle | undefined;
  protected loopRunning = false;
  protected loopScheduled = false;
  protected flushScheduled = false;
  protected requestSeq: number;
  live = 0;
  readonly timeouts: TimeoutGroups;
  /** The index of the last snapshot taken or installed. */
  lastSnapshotIndex = 0;
  /** Callers of snapshot() waiting for the next one. */
  snapshotWaiters: PendingRequest<number>[] = [];
  /** A state machine is producing a snapshot's bytes (asynchronously) for these callers. */
  protected snapshotInFlight: PendingRequest<number>[] | null = null;
  /** A snapshot written to storage, to compact the log behind on the next pass of the loop. */
  protected finishedSnapshot: { snapshot: Snapshot; waiters: PendingRequest<number>[] } | null = null;
  /** Writes snapshots arriving from the leader to storage. */
  protected readonly snapshotReceiver: SnapshotReceiver;
  /** Reads and sends snapshot chunks to followers. */
  protected readonly snapshotSender: SnapshotSender;
  // Invariant: appliedIndex <= core.log.applied (entries handed out but not yet applied lie between).
  /** The last index applied to the state machine. */
  appliedIndex = 0;

  // Proposals: queued for the next flush, parked until a leader is known, forwarded and
  // awaiting the leader's answer, or appended at a known (index, term).
  queuedProposals: ProposalRequest<Cmd, Result>[] = [];
  protected parkedProposals: ProposalRequest<Cmd, Result>[] = [];
  protected readonly forwardedProposals = new Map<number, ProposalBatch<Cmd, Result>>();
  protected readonly appendedProposals = new Map<number, { term: number; request: ProposalRequest<Cmd, Result> }>();

  // Reads: queued for the next flush (one read index serves the whole batch), parked,
  // awaiting their read index, or waiting for the applied index to reach it.
  queuedReads: ReadRequest[] = [];
  protected parkedReads: ReadRequest[] = [];
  protected readonly readBatches = new Map<number, ReadRequest[]>();
  protected waitingReads: { index: number; reads: ReadRequest[] }[] = [];

  observed = { role: "follower" as RaftRole, leader: null as NodeId | null, term: 0, commit: 0, config: null as ClusterConfig | null };
  /** Membership changes waiting to complete: their first entry, and the configuration they lead to. */
  configWaiters: { index: number; term: number; target: ClusterConfig; entered: boolean; pending: PendingRequest<ClusterConfig> }[] = [];
  /** The configuration's address book, and members removed from it that stay reachable for now. */
  protected addressBook = new Map<NodeId, string>();
  protected readonly retiredAddresses = new Map<NodeId, string>();
  /** Leadership transfers waiting for the target to lead. */
  transferWaiters: { target: NodeId; pending: PendingRequest<NodeId> }[] = [];
  /** The `RaftNode` whose events these are. */
  private readonly events: EventEmitter<RaftNodeEvents>;

  /**
   * @param options - The node's options, as given to the `RaftNode` constructor.
   * @param events - The `RaftNode` that emits the node's events.
   * @throws TypeError or RangeError naming the option, when an option is invalid.
   */
  constructor(options: RaftNodeOptions<Cmd, Result>, events: EventEmitter<RaftNodeEvents>) {
    this.opts = resolveOptions(options);
    this.events = events;
    this.timeouts = new TimeoutGroups(this.opts.clock);
    this.snapshotReceiver = new SnapshotReceiver(this.opts.storage);
    this.snapshotSender = new SnapshotSender(
      this.opts.id,
      (m) => {
        if (this.state === "running") this.opts.transport.send(m);
      },
      (c, err) => this.opts.logger.warn(`${this.id}: reading snapshot ${c.meta.index} at ${c.offset} for ${c.to} failed; it will be resent`, { err }),
    );
    // Request ids must not repeat across restarts of a node, or a leader could take a new
    // request for a duplicate of an old one; a random start makes that vanishingly rare.
    this.requestSeq = Math.floor(this.opts.random() * 2 ** 40);
  }

  /** This node's id. */
  get id(): NodeId {
    return this.opts.id;
  }

  /** Why a new request is refused now (the node is not running, or too many are pending), or null. */
  admissionError(what: string): RaftError | null {
    if (this.state !== "running" && this.state !== "starting") return new RaftError("STOPPED", `RaftNode ${this.id} is not running; ${what} refused`);
    if (this.live >= this.opts.maxPendingRequests) return new RaftError("BUSY", `${this.live} requests pending on ${this.id} (maxPendingRequests); ${what} refused`);
    return null;
  }

  /**
   * Emits an event. A listener that throws must not take the node down (events observe,
   * they never steer): the error is logged and the node carries on.
   */
  protected notify<K extends EventEmitter.EventNames<RaftNodeEvents>>(event: K, ...args: EventEmitter.EventArgs<RaftNodeEvents, K>): void {
    try {
      this.events.emit(event, ...args);
    } catch (err) {
      this.opts.logger.error("an event listener threw; the node ignores it", { id: this.id, event: String(event), error: err instanceof Error ? err.message : String(err) });
    }
  }

  // ---------------------------------------------------------------- stopping

  protected fail(err: unknown): void {
    if (this.state === "stopped") return;
    const error = err instanceof Error ? err : new Error(String(err));
    this.opts.logger.error("node stopping after a fatal error", { id: this.id, error: error.message });
    this.state = "stopped";
    this.shutdown(new RaftError("STOPPED", `RaftNode ${this.id} stopped after an error: ${error.message}`, { cause: error }));
    this.notify("error", error);
    void this.opts.transport.stop().catch(() => {});
    void this.opts.storage.close().catch(() => {});
  }

  shutdown(reason: RaftError): void {
    if (this.tickTimer !== undefined) this.opts.clock.clearTimeout(this.tickTimer);
    this.tickTimer = undefined;
    this.snapshotReceiver.abandon();
    const all: { reject(error: unknown): void }[] = [
      ...this.queuedProposals.map((p) => p.pending),
      ...this.parkedProposals.map((p) => p.pending),
      ...[...this.forwardedProposals.values()].flat().map((p) => p.pending),
      ...[...this.appendedProposals.values()].map((w) => w.request.pending),
      ...this.queuedReads.map((r) => r.pending),
      ...this.parkedReads.map((r) => r.pending),
      ...[...this.readBatches.values()].flat().map((r) => r.pending),
      ...this.waitingReads.flatMap((w) => w.reads.map((r) => r.pending)),
      ...this.snapshotWaiters,
      ...(this.snapshotInFlight ?? []),
      ...(this.finishedSnapshot?.waiters ?? []),
      ...this.configWaiters.map((w) => w.pending),
      ...this.transferWaiters.map((w) => w.pending),
    ];
    this.snapshotWaiters = [];
    this.configWaiters = [];
    this.transferWaiters = [];
    this.queuedProposals = [];
    this.parkedProposals = [];
    this.forwardedProposals.clear();
    this.appendedProposals.clear();
    this.queuedReads = [];
    this.parkedReads = [];
    this.readBatches.clear();
    this.waitingReads = [];
    for (const p of all) p.reject(reason);
  }

  // ---------------------------------------------------------------- implemented by later layers

  /** Runs the Ready loop (node-driver.ts) in a microtask, unless it runs or is scheduled already. */
  abstract scheduleLoop(): void;
}
