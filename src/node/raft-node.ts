import { EventEmitter } from "eventemitter3";
import { isJoint, isVoter, leaveJoint, sameMembers, votersConfig, type MembershipChange } from "../core/membership.js";
import type { ClusterConfig, Entry, Message, NodeId, Snapshot } from "../core/messages.js";
import { Raft, type ProposalItem } from "../core/raft.js";
import type { Ready } from "../core/ready.js";
import { RaftError } from "../errors.js";
import type { TimerHandle } from "./clock.js";
import { RaftClient, type RaftClientOptions } from "./client.js";
import type { SessionCommand, SessionResult } from "./sessions.js";
import { coreOfNode } from "./internal.js";
import type { RaftNodeEvents, RaftRole } from "./events.js";
import { resolveOptions, type RaftNodeOptions, type ResolvedOptions } from "./options.js";
import { SnapshotReceiver, SnapshotSender } from "./snapshot-transfer.js";
import { sourceChunks } from "../snapshot-data.js";
import { PendingRequest, TimeoutGroups, timeoutOf, type ReadOptions, type RequestOptions } from "./proposals.js";

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

type NodeState = "new" | "starting" | "running" | "stopped";

interface ProposalRequest<Cmd, Result> {
  readonly pending: PendingRequest<Result>;
  readonly item: ProposalItem;
  /** The command as proposed: applied as is on this node, which saves decoding it again. */
  readonly command: Cmd;
}

interface ReadRequest {
  readonly pending: PendingRequest<void>;
  readonly lease: boolean;
}

/** Proposals handed to the core together, forwarded under one request id. */
type ProposalBatch<Cmd, Result> = ProposalRequest<Cmd, Result>[];

/**
 * A Raft node: drives the protocol core with real (or virtual) time, persists through a
 * {@link RaftStorage}, talks through a {@link Transport}, and applies committed commands
 * to a {@link StateMachine}. `propose()` resolves with the state machine's result once
 * the command is committed and applied on this node.
 *
 * @example
 * ```ts
 * const network = new MemoryNetwork();
 * const node = new RaftNode({
 *   id: "n1", peers: ["n1", "n2", "n3"],
 *   stateMachine: new KvStateMachine(), storage: new MemoryStorage(), transport: network.transport("n1"),
 * });
 * await node.start();
 * const result = await node.propose({ op: "put", key: "k", value: "v" });
 * ```
 * @public
 */
export class RaftNode<Cmd, Result> extends EventEmitter<RaftNodeEvents> {
  private readonly opts: ResolvedOptions<Cmd, Result>;
  private core: Raft | null = null;
  private state: NodeState = "new";
  private tickTimer: TimerHandle | undefined;
  private loopRunning = false;
  private loopScheduled = false;
  private flushScheduled = false;
  private requestSeq: number;
  private live = 0;
  private readonly timeouts: TimeoutGroups;
  /** The index of the last snapshot taken or installed. */
  private lastSnapshotIndex = 0;
  /** Callers of snapshot() waiting for the next one. */
  private snapshotWaiters: PendingRequest<number>[] = [];
  /** A state machine is producing a snapshot's bytes (asynchronously) for these callers. */
  private snapshotInFlight: PendingRequest<number>[] | null = null;
  /** A snapshot written to storage, to compact the log behind on the next pass of the loop. */
  private finishedSnapshot: { snapshot: Snapshot; waiters: PendingRequest<number>[] } | null = null;
  /** Writes snapshots arriving from the leader to storage. */
  private readonly snapshotReceiver: SnapshotReceiver;
  /** Reads and sends snapshot chunks to followers. */
  private readonly snapshotSender: SnapshotSender;
  // Invariant: appliedIndex <= core.log.applied (entries handed out but not yet applied lie between).
  /** The last index applied to the state machine. */
  private appliedIndex = 0;

  // Proposals: queued for the next flush, parked until a leader is known, forwarded and
  // awaiting the leader's answer, or appended at a known (index, term).
  private queuedProposals: ProposalRequest<Cmd, Result>[] = [];
  private parkedProposals: ProposalRequest<Cmd, Result>[] = [];
  private readonly forwardedProposals = new Map<number, ProposalBatch<Cmd, Result>>();
  private readonly appendedProposals = new Map<number, { term: number; request: ProposalRequest<Cmd, Result> }>();

  // Reads: queued for the next flush (one read index serves the whole batch), parked,
  // awaiting their read index, or waiting for the applied index to reach it.
  private queuedReads: ReadRequest[] = [];
  private parkedReads: ReadRequest[] = [];
  private readonly readBatches = new Map<number, ReadRequest[]>();
  private waitingReads: { index: number; reads: ReadRequest[] }[] = [];

  private observed = { role: "follower" as RaftRole, leader: null as NodeId | null, term: 0, commit: 0, config: null as ClusterConfig | null };
  /** Membership changes waiting to complete: their first entry, and the configuration they lead to. */
  private configWaiters: { index: number; term: number; target: ClusterConfig; entered: boolean; pending: PendingRequest<ClusterConfig> }[] = [];
  /** The configuration's address book, and members removed from it that stay reachable for now. */
  private addressBook = new Map<NodeId, string>();
  private readonly retiredAddresses = new Map<NodeId, string>();
  /** Leadership transfers waiting for the target to lead. */
  private transferWaiters: { target: NodeId; pending: PendingRequest<NodeId> }[] = [];

  /**
   * Creates a node; nothing runs until {@link RaftNode.start}.
   * @param options - The state machine, storage, transport and settings; see {@link RaftNodeOptions}.
   * @throws TypeError or RangeError naming the option, when an option is invalid.
   */
  constructor(options: RaftNodeOptions<Cmd, Result>) {
    super();
    this.opts = resolveOptions(options);
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

  /** Whether this node is currently the leader. */
  get isLeader(): boolean {
    return this.core?.role === "leader";
  }

  /** The known leader's id, or null. */
  get leaderId(): NodeId | null {
    return this.core?.leader ?? null;
  }

  /**
   * Loads the durable state, starts the transport and the clock. Resolves once the node
   * takes part in the protocol (it has not necessarily found a leader yet). A stopped node
   * cannot be started again: create a new `RaftNode` over the same storage.
   * @returns Resolves once running. Rejects with `RaftError` `INVALID_STATE` when called
   * twice (or when the storage holds a snapshot and the state machine has no `restore()`),
   * with the storage's error when loading fails (`STORAGE`, `CORRUPT`), and with the
   * transport's when it cannot start (`TRANSPORT` for `TcpTransport`).
   */
  async start(): Promise<void> {
    if (this.state !== "new") throw new RaftError("INVALID_STATE", `RaftNode ${this.id} was already started`);
    this.state = "starting";
    const o = this.opts;
    const stored = await o.storage.load();
    if (this.state !== "starting") return;
    this.core = new Raft(
      {
        id: o.id,
        electionTicks: o.electionTicks,
        heartbeatTicks: o.heartbeatTicks,
        random: o.random,
        preVote: o.preVote,
        checkQuorum: o.checkQuorum,
        maxInflight: o.maxInflight,
        maxInflightBytes: o.maxInflightBytes,
        maxEntriesPerMessage: o.maxEntriesPerMessage,
        maxBytesPerMessage: o.maxBytesPerMessage,
        maxApplyEntries: 4096,
        snapshotChunkBytes: o.snapshotChunkBytes,
        leaseTicks: o.checkQuorum ? Math.max(0, Math.floor((o.electionTicks - 2) * (1 - o.maxClockDrift))) : 0,
      },
      {
        hardState: stored.hardState,
        entries: stored.entries,
        firstIndex: stored.firstIndex,
        firstIndexPrevTerm: stored.compactedTerm,
        snapshot: stored.snapshot,
        config: o.peerAddresses === undefined ? votersConfig(o.peers) : { ...votersConfig(o.peers), addresses: o.peerAddresses },
      },
    );
    if (stored.snapshot !== null) await this.restoreStateMachine(stored.snapshot);
    this.lastSnapshotIndex = stored.snapshot?.meta.index ?? 0;
    coreOfNode.set(this, this.core);
    this.observed = { role: "follower", leader: null, term: this.core.term, commit: this.core.log.committed, config: null };
    this.appliedIndex = this.core.log.applied;
    await o.transport.start((m) => this.receive(m));
    if (this.state !== "starting") return;
    this.state = "running";
    this.armTick();
    this.flushRequests();
    // Entries committed before a restart are applied again to rebuild the state machine.
    this.scheduleLoop();
  }

  /**
   * Stops the node: rejects every pending call with `STOPPED`, stops the timers, the
   * transport and the storage. Safe to call more than once.
   * @returns Resolves once the transport and the storage are closed.
   */
  async stop(): Promise<void> {
    if (this.state === "stopped") return;
    this.state = "stopped";
    this.shutdown(new RaftError("STOPPED", `RaftNode ${this.id} stopped`));
    await this.opts.transport.stop();
    await this.opts.storage.close();
  }

  /**
   * Proposes a command. Resolves with the state machine's result once the command is
   * committed and applied on this node. On a follower the command is forwarded to the
   * leader; while no leader is known it waits for one until its deadline.
   *
   * Rejects with a {@link RaftError}: `TIMEOUT` or `ABORTED` (the outcome is then unknown:
   * the command may still commit), `DROPPED` (it definitely did not commit), `NOT_LEADER`
   * (forwarding is off; `leaderId` says where to go), `BUSY`, or `STOPPED` (also before
   * `start()`).
   * @param command - The command; encoded with the node's codec.
   * @param options - `timeoutMs` (default `requestTimeoutMs`) and `signal`.
   * @returns The result that this node's state machine returned for the command.
   * @throws RangeError for an invalid `timeoutMs`, and whatever the codec's `encode` throws.
   * @example
   * ```ts
   * const { previous } = await node.propose({ op: "put", key: "a", value: "1" }, { timeoutMs: 2000 });
   * ```
   */
  propose(command: Cmd, options?: RequestOptions): Promise<Result> {
    const timeoutMs = timeoutOf(options, this.opts.requestTimeoutMs);
    const refusal = this.admissionError("proposal");
    if (refusal) return Promise.reject(refusal);
    const data = this.opts.codec.encode(command);
    const pending = new PendingRequest<Result>(this.timeouts, timeoutMs, options?.signal, () => this.live--, "proposal");
    this.live++;
    this.queuedProposals.push({ pending, item: { type: "command", data }, command });
    this.scheduleFlush();
    return pending.promise;
  }

  /**
   * Resolves when this node's state machine may be read linearizably: every write that
   * completed (anywhere) before `read()` was called is applied here. Uses ReadIndex
   * (Raft §8): the leader confirms it still leads with a round of heartbeats; a follower
   * asks the leader. Reads made in the same turn of the event loop share one round.
   * With `mode: 'lease'` the leader skips the round while its lease holds (see
   * {@link ReadOptions.mode} for the trade-off).
   *
   * Rejects with `TIMEOUT`, `ABORTED`, `BUSY` or `STOPPED`; throws `RangeError` on a bad option.
   * @param options - `mode`, `timeoutMs` (default `requestTimeoutMs`) and `signal`.
   * @returns Resolves once this node's state machine may be read.
   * @example
   * ```ts
   * await node.read();
   * const value = kv.get("a"); // kv: this node's KvStateMachine
   * ```
   */
  read(options?: ReadOptions): Promise<void> {
    const timeoutMs = timeoutOf(options, this.opts.requestTimeoutMs);
    const mode = options?.mode ?? "read-index";
    if (mode !== "read-index" && mode !== "lease") throw new RangeError(`read option 'mode' must be 'read-index' or 'lease' (got ${String(mode)})`);
    const refusal = this.admissionError("read");
    if (refusal) return Promise.reject(refusal);
    const pending = new PendingRequest<void>(this.timeouts, timeoutMs, options?.signal, () => this.live--, "read");
    this.live++;
    this.queuedReads.push({ pending, lease: mode === "lease" });
    this.scheduleFlush();
    return pending.promise;
  }

  /**
   * A client with an exactly-once session on this node (Raft dissertation §6.3): its
   * `propose()` retries across leader changes and lost attempts with the same (client id,
   * seq), and the state machine applies the command once. Only for a node constructed with
   * `stateMachine: new SessionStateMachine(userStateMachine)`; the type parameters follow
   * from the node's. The client uses this node's clock and `requestTimeoutMs` unless
   * `options` say otherwise, and registers its session on its first `propose()`.
   *
   * Wrapping is explicit rather than a node option (`sessions: true`): the node stays
   * generic over its command type, `node.propose()` keeps its plain meaning, and the
   * user holds both the wrapper (session table) and the wrapped machine (to read).
   * @example
   * ```ts
   * const node = new RaftNode({ ...nodeOptions, stateMachine: new SessionStateMachine(new KvStateMachine()) });
   * await node.start();
   * const client = node.client();
   * await client.propose({ op: "put", key: "a", value: "1" });
   * ```
   * @typeParam C - The user's command type, wrapped by the node's `SessionStateMachine`.
   * @typeParam R - The user's result type.
   * @param options - The client's options; `clock` and `requestTimeoutMs` default to the node's.
   * @returns A new client; it proposes nothing until its first `propose()`.
   */
  client<C, R>(this: RaftNode<SessionCommand<C>, SessionResult<R>>, options?: RaftClientOptions): RaftClient<C, R> {
    return new RaftClient<C, R>(this, { clock: this.opts.clock, requestTimeoutMs: this.opts.requestTimeoutMs, ...options });
  }

  /**
   * The node's current state. Never blocks.
   * @returns A new object: role, term, leader, indexes, configuration, and (on the leader)
   * each peer's replication progress.
   */
  status(): RaftStatus {
    const c = this.core;
    if (c === null) {
      return { id: this.id, role: "follower", term: 0, leader: null, commitIndex: 0, appliedIndex: 0, lastIndex: 0, voters: this.opts.peers, learners: [], outgoingVoters: [], joint: false, peers: [] };
    }
    const peers: PeerStatus[] = [];
    for (const [id, pr] of c.progress) peers.push({ id, matchIndex: pr.match, nextIndex: pr.next, state: pr.state });
    return {
      id: this.id,
      role: c.role,
      term: c.term,
      leader: c.leader,
      commitIndex: c.log.committed,
      appliedIndex: this.appliedIndex,
      lastIndex: c.log.lastIndex(),
      voters: c.config.voters,
      learners: c.config.learners,
      outgoingVoters: c.config.outgoingVoters,
      joint: isJoint(c.config),
      peers,
    };
  }

  /**
   * Changes the membership (Raft dissertation §4.3): voters change through a joint
   * configuration, in which decisions need a majority of both the old and the new voters,
   * and which the leader leaves by itself. Resolves with the final configuration once it
   * is applied on this node. Only the leader takes changes, one at a time.
   *
   * Rejects with `NOT_LEADER` (with `leaderId`), `BUSY` (a change is in progress or
   * leadership is moving), `INVALID_STATE` (the change does not fit the configuration),
   * `DROPPED`, `TIMEOUT`, `ABORTED` or `STOPPED`.
   * @param change - The members to add and remove, as voters or learners.
   * @param options - `timeoutMs` (default `requestTimeoutMs`) and `signal`.
   * @returns The configuration in force once the change completed.
   * @example
   * ```ts
   * await leader.changeMembership({ addVoters: ["n4"], removeVoters: ["n1"] });
   * ```
   */
  changeMembership(change: MembershipChange, options?: RequestOptions): Promise<ClusterConfig> {
    const timeoutMs = timeoutOf(options, this.opts.requestTimeoutMs);
    const refusal = this.admissionError("membership change");
    if (refusal) return Promise.reject(refusal);
    const core = this.core;
    if (core === null) return Promise.reject(new RaftError("NOT_LEADER", `${this.id} is not the leader`, { leaderId: null }));
    const outcome = core.changeMembership(change);
    if (outcome.kind === "refused") {
      if (core.role !== "leader") return Promise.reject(new RaftError("NOT_LEADER", `${this.id} is not the leader`, { leaderId: outcome.leader }));
      const busy = outcome.reason.includes("in progress") || outcome.reason.includes("transferred");
      return Promise.reject(new RaftError(busy ? "BUSY" : "INVALID_STATE", `membership change refused: ${outcome.reason}`));
    }
    const pending = new PendingRequest<ClusterConfig>(this.opts.clock, timeoutMs, options?.signal, () => this.live--, "membership change");
    this.live++;
    this.configWaiters.push({ index: outcome.index, term: outcome.term, target: leaveJoint(outcome.config), entered: false, pending });
    this.scheduleLoop();
    return pending.promise;
  }

  /**
   * Adds a member safely: first as a learner (it receives the log but does not vote), then,
   * once its log is within `catchUpEntries` of the leader's, promoted to voter. A learner
   * that never catches up is not promoted, and the call rejects at its deadline. `address`
   * ("host:port") joins the configuration, for transports that learn addresses from it.
   *
   * Rejects as {@link RaftNode.changeMembership} does, with `TIMEOUT` when the learner has not
   * caught up by the deadline (it stays a learner), and with `NOT_LEADER` when this node
   * loses leadership meanwhile.
   * @param id - The new member.
   * @param address - Where it listens, for transports that learn addresses from the configuration.
   * @param options - `timeoutMs` (default `requestTimeoutMs`; covers the whole call) and `signal`.
   * @returns The configuration with `id` as a voter.
   * @example
   * ```ts
   * await leader.addMember("n4", "10.0.0.4:7001", { timeoutMs: 60_000 });
   * ```
   */
  async addMember(id: NodeId, address?: string, options?: RequestOptions): Promise<ClusterConfig> {
    const timeoutMs = timeoutOf(options, this.opts.requestTimeoutMs);
    const deadline = this.opts.clock.now() + timeoutMs;
    const left = (): number => Math.max(1, deadline - this.opts.clock.now());
    const core = this.core;
    if (core !== null && isVoter(core.config, id)) return core.config;
    if (core === null || !core.config.learners.includes(id)) {
      const change: MembershipChange = address === undefined ? { addLearners: [id] } : { addLearners: [id], addresses: { [id]: address } };
      await this.changeMembership(change, { timeoutMs: left(), ...(options?.signal ? { signal: options.signal } : {}) });
    }
    // The learner must have replicated at least everything up to now (its own addition
    // included), not merely be within catchUpEntries of a short log: a node that never
    // answered must not become a voter.
    const mustReach = this.core?.log.committed ?? 0;
    for (;;) {
      const c = this.core;
      if (c === null || this.state !== "running") throw new RaftError("STOPPED", `RaftNode ${this.id} stopped`);
      if (c.role !== "leader") throw new RaftError("NOT_LEADER", `${this.id} lost leadership while adding ${id}`, { leaderId: c.leader });
      const pr = c.progress.get(id);
      if (pr !== undefined && pr.match >= mustReach && pr.match + this.opts.catchUpEntries >= c.log.lastIndex()) break;
      if (this.opts.clock.now() >= deadline) throw new RaftError("TIMEOUT", `learner ${id} did not catch up within ${timeoutMs} ms; it stays a learner`);
      if (options?.signal?.aborted) throw new RaftError("ABORTED", `adding ${id} aborted; it stays a learner`, { cause: options.signal.reason });
      await new Promise<void>((resolve) => this.opts.clock.setTimeout(resolve, this.opts.tickMs));
    }
    return this.changeMembership({ addVoters: [id] }, { timeoutMs: left(), ...(options?.signal ? { signal: options.signal } : {}) });
  }

  /**
   * Removes a member, voter or learner. Removing the leader itself works too: it keeps
   * leading until the configuration without it is committed, then hands over to the most
   * up-to-date voter. Rejects as {@link RaftNode.changeMembership} does.
   * @param id - A current voter or learner.
   * @param options - `timeoutMs` (default `requestTimeoutMs`) and `signal`.
   * @returns The configuration without `id`.
   */
  removeMember(id: NodeId, options?: RequestOptions): Promise<ClusterConfig> {
    const config = this.core?.config;
    const change: MembershipChange = config?.learners.includes(id) ? { removeLearners: [id] } : { removeVoters: [id] };
    return this.changeMembership(change, options);
  }

  /**
   * Hands leadership to `to` (by default the most up-to-date voter; dissertation §3.10):
   * the leader brings it up to date, tells it to campaign at once, and takes no proposals
   * meanwhile. Resolves with the new leader's id once this node sees it lead; rejects with
   * `TIMEOUT` when the target did not take over within an election timeout (this node
   * then keeps leading), `NOT_LEADER`, `INVALID_STATE` (the target is not a voter, or is
   * this node), `ABORTED` or `STOPPED`.
   * @param to - The voter to hand over to; by default the most up-to-date one.
   * @param options - `timeoutMs` (default four election timeouts) and `signal`.
   * @returns The new leader's id.
   * @example
   * ```ts
   * const next = await leader.transferLeadership(); // then restart the old leader's machine
   * ```
   */
  transferLeadership(to?: NodeId, options?: RequestOptions): Promise<NodeId> {
    const timeoutMs = timeoutOf(options, 4 * this.opts.electionTicks * this.opts.tickMs);
    const refusal = this.admissionError("leadership transfer");
    if (refusal) return Promise.reject(refusal);
    const core = this.core;
    if (core === null || core.role !== "leader") {
      return Promise.reject(new RaftError("NOT_LEADER", `${this.id} is not the leader`, { leaderId: core?.leader ?? null }));
    }
    const started = core.transferLeadership(to ?? null);
    if ("reason" in started) return Promise.reject(new RaftError("INVALID_STATE", `leadership transfer refused: ${started.reason}`));
    const pending = new PendingRequest<NodeId>(this.opts.clock, timeoutMs, options?.signal, () => this.live--, "leadership transfer");
    this.live++;
    this.transferWaiters.push({ target: started.target, pending });
    this.scheduleLoop();
    return pending.promise;
  }

  /**
   * Takes a snapshot of the state machine now and compacts the log behind it (keeping
   * `trailingEntries`). Resolves with the snapshot's index.
   *
   * Rejects with `INVALID_STATE` when the state machine has no `snapshot()`, `TIMEOUT`,
   * `ABORTED` or `STOPPED`.
   * @param options - `timeoutMs` (default `requestTimeoutMs`) and `signal`.
   * @returns The index the snapshot covers (a newer one's, when a snapshot from the leader
   * arrived meanwhile).
   */
  snapshot(options?: RequestOptions): Promise<number> {
    const timeoutMs = timeoutOf(options, this.opts.requestTimeoutMs);
    if (typeof this.opts.stateMachine.snapshot !== "function") {
      return Promise.reject(new RaftError("INVALID_STATE", "the state machine has no snapshot() method"));
    }
    const refusal = this.admissionError("snapshot");
    if (refusal) return Promise.reject(refusal);
    const pending = new PendingRequest<number>(this.opts.clock, timeoutMs, options?.signal, () => this.live--, "snapshot");
    this.live++;
    this.snapshotWaiters.push(pending);
    this.scheduleLoop();
    return pending.promise;
  }

  /**
   * Starts an election now instead of waiting for the election timeout, skipping pre-vote
   * and overriding the other nodes' leases (as the target of a leadership transfer does).
   * For tests and tools; a running cluster elects leaders by itself. It can depose a
   * healthy leader, and a leader serving lease reads may then serve a stale one: use
   * {@link RaftNode.transferLeadership} on a live cluster.
   */
  campaign(): void {
    if (this.core === null || this.state !== "running") return;
    this.core.campaignNow();
    this.scheduleLoop();
  }

  // ---------------------------------------------------------------- inputs

  private admissionError(what: string): RaftError | null {
    if (this.state !== "running" && this.state !== "starting") return new RaftError("STOPPED", `RaftNode ${this.id} is not running; ${what} refused`);
    if (this.live >= this.opts.maxPendingRequests) return new RaftError("BUSY", `${this.live} requests pending on ${this.id} (maxPendingRequests); ${what} refused`);
    return null;
  }

  private receive(m: Message): void {
    if (this.state !== "running" || this.core === null) return;
    try {
      this.core.step(m);
    } catch (err) {
      this.fail(err);
      return;
    }
    this.scheduleLoop();
  }

  private armTick(): void {
    this.tickTimer = this.opts.clock.setTimeout(() => {
      if (this.state !== "running" || this.core === null) return;
      this.armTick();
      try {
        this.core.tick();
      } catch (err) {
        this.fail(err);
        return;
      }
      // Refused requests wait for a leader; retry them at most once a tick.
      if (this.parkedProposals.length > 0 || this.parkedReads.length > 0) this.unpark();
      this.scheduleLoop();
    }, this.opts.tickMs);
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // One microtask later: everything proposed or read in this turn goes to the core as one batch.
    queueMicrotask(() => {
      this.flushScheduled = false;
      this.flushRequests();
    });
  }

  private unpark(): void {
    this.queuedProposals = this.parkedProposals.concat(this.queuedProposals);
    this.queuedReads = this.parkedReads.concat(this.queuedReads);
    this.parkedProposals = [];
    this.parkedReads = [];
    this.flushRequests();
  }

  private flushRequests(): void {
    const core = this.core;
    if (core === null || this.state !== "running") return; // started requests flush once running
    const proposals = this.queuedProposals.filter((p) => !p.pending.settled);
    const reads = this.queuedReads.filter((r) => !r.pending.settled);
    this.queuedProposals = [];
    this.queuedReads = [];
    try {
      if (proposals.length > 0) this.submitProposals(core, proposals);
      if (reads.length > 0) {
        const lease = reads.filter((r) => r.lease);
        if (lease.length > 0) this.submitReads(core, lease, true);
        if (lease.length < reads.length) this.submitReads(core, reads.filter((r) => !r.lease), false);
      }
    } catch (err) {
      this.fail(err);
      return;
    }
    this.scheduleLoop();
  }

  private submitProposals(core: Raft, batch: ProposalRequest<Cmd, Result>[]): void {
    const leader = core.leader;
    if (!this.opts.forwardProposals && leader !== null && leader !== this.id) {
      for (const p of batch) p.pending.reject(new RaftError("NOT_LEADER", `${this.id} is not the leader; ${leader} is`, { leaderId: leader }));
      return;
    }
    const requestId = ++this.requestSeq;
    const outcome = core.propose(
      batch.map((p) => p.item),
      this.opts.forwardProposals ? requestId : undefined,
    );
    switch (outcome.kind) {
      case "appended":
        for (let i = 0; i < batch.length; i++) this.appendedProposals.set(outcome.index + i, { term: outcome.term, request: batch[i]! });
        return;
      case "forwarded":
        this.forwardedProposals.set(requestId, batch);
        return;
      case "refused":
        // Definitely not appended, so it is safe to try again once a leader is known.
        for (const p of batch) this.parkedProposals.push(p);
        return;
    }
  }

  private submitReads(core: Raft, batch: ReadRequest[], lease: boolean): void {
    const requestId = ++this.requestSeq;
    const outcome = core.readIndex(requestId, lease);
    if (outcome === "no-leader") {
      for (const r of batch) this.parkedReads.push(r);
      return;
    }
    this.readBatches.set(requestId, batch);
  }

  // ---------------------------------------------------------------- the Ready loop

  private scheduleLoop(): void {
    if (this.loopRunning || this.loopScheduled) return;
    this.loopScheduled = true;
    queueMicrotask(() => {
      this.loopScheduled = false;
      void this.runLoop();
    });
  }

  /** Handles Ready after Ready, in the order `Ready` documents, until the core is idle. */
  private async runLoop(): Promise<void> {
    if (this.loopRunning) return;
    this.loopRunning = true;
    try {
      for (;;) {
        const core = this.core;
        if (core === null || this.state !== "running") break;
        if (!core.hasReady()) {
          if (this.snapshotWaiters.length > 0 || this.finishedSnapshot !== null) await this.maybeSnapshot(core);
          break;
        }
        const rd = core.ready();
        // 0. The leader's replication goes out while its own write runs; snapshot chunks
        // are read from storage and sent as the reads complete.
        for (const m of rd.earlyMessages) this.opts.transport.send(m);
        for (const c of rd.snapshotOut) this.snapshotSender.enqueue(c);
        // A snapshot from the leader goes to storage chunk by chunk, as it arrives.
        let installed: Snapshot | null = null;
        if (rd.snapshotIn.length > 0 || rd.snapshot !== null) {
          installed = await this.receiveSnapshot(rd);
          if (this.state !== "running") break;
        }
        // 1. Persist: one durable write for everything this round produced (group commit).
        // A write of the commit index alone (`mustSync` false) is one nothing below depends
        // on (losing it in a crash is harmless), so sending and applying do not wait for it;
        // only advance() does. That takes a storage round trip off every commit.
        let commitWrite: Promise<unknown> | null = null;
        if (rd.hardState !== null || rd.entries.length > 0 || installed !== null) {
          const batch = {
            entries: rd.entries,
            ...(rd.mustSync ? {} : { sync: false }),
            ...(rd.hardState === null ? {} : { hardState: rd.hardState }),
            ...(installed === null ? {} : { snapshot: installed }),
          };
          // Settles to the error, if any: a rejection must not go unhandled while we apply.
          const written = this.opts.storage.save(batch).then(
            () => null,
            (err: unknown) => new RaftError("STORAGE", `storage save failed on ${this.id}`, { cause: err }),
          );
          if (rd.mustSync) {
            const failure = await written;
            if (failure !== null) throw failure;
            if (this.state !== "running") break;
          } else commitWrite = written;
        }
        // 2. Send, now that what the messages promise is durable.
        for (const m of rd.messages) this.opts.transport.send(m);
        // Where forwarded proposals landed: known before applying, so that an entry
        // committed in this same Ready resolves its proposal with the result.
        this.settleForwarded(rd);
        // 3. Restore from a leader's snapshot, then apply.
        if (installed !== null) {
          await this.restoreStateMachine(installed);
          if (this.state !== "running") return;
          core.snapshotInstalled(installed);
        }
        for (const e of rd.committedEntries) {
          const pending = this.applyEntry(e);
          if (pending !== undefined) {
            await pending;
            if (this.state !== "running") return;
          }
        }
        // 4. Reads.
        this.settleReadStates(rd);
        if (commitWrite !== null) {
          const failure = await commitWrite;
          if (failure !== null) throw failure;
          if (this.state !== "running") return;
        }
        core.advance(rd);
        this.emitChanges(core);
        await this.maybeSnapshot(core);
      }
    } catch (err) {
      this.fail(err);
    } finally {
      this.loopRunning = false;
    }
  }

  /**
   * Applies one entry; returns a promise only when the state machine answered with one,
   * so that a synchronous state machine costs no microtask per entry.
   */
  private applyEntry(e: Entry): Promise<void> | undefined {
    const waiting = this.appendedProposals.get(e.index);
    if (e.type !== "command") {
      this.afterApply(e, waiting, undefined);
      return undefined;
    }
    // Our own proposal at (index, term) is this very entry: use the command as proposed.
    const cmd = waiting !== undefined && waiting.term === e.term ? waiting.request.command : this.opts.codec.decode(e.data);
    const r = this.opts.stateMachine.apply(cmd, { index: e.index, term: e.term });
    if (r instanceof Promise) return r.then((result) => this.afterApply(e, waiting, result));
    this.afterApply(e, waiting, r);
    return undefined;
  }

  private afterApply(e: Entry, waiting: { term: number; request: ProposalRequest<Cmd, Result> } | undefined, result: Result | undefined): void {
    if (waiting !== undefined) {
      this.appendedProposals.delete(e.index);
      if (waiting.term === e.term) waiting.request.pending.resolve(result as Result);
      else waiting.request.pending.reject(new RaftError("DROPPED", `proposal at index ${e.index} was replaced by an entry of term ${e.term}; it was not committed`));
    }
    if (e.type === "config") {
      for (const w of this.configWaiters) {
        if (w.index !== e.index) continue;
        if (w.term === e.term) w.entered = true;
        else w.pending.reject(new RaftError("DROPPED", `membership change at index ${e.index} was replaced by an entry of term ${e.term}`));
      }
    }
    this.appliedIndex = e.index;
    this.notify("apply", e.index, e.term, e.type);
    this.serveReads(e.index);
  }

  /**
   * Writes the snapshot chunks of `rd` to storage. Returns the stored snapshot when `rd`
   * completes a transfer (the one to install), else null.
   */
  private async receiveSnapshot(rd: Ready): Promise<Snapshot | null> {
    try {
      for (const chunk of rd.snapshotIn) await this.snapshotReceiver.accept(chunk);
      return rd.snapshot === null ? null : await this.snapshotReceiver.finish(rd.snapshot);
    } catch (err) {
      throw new RaftError("STORAGE", `storing the snapshot from the leader failed on ${this.id}`, { cause: err });
    }
  }

  /** Replaces the state machine's state with a snapshot's. */
  private async restoreStateMachine(snapshot: Snapshot): Promise<void> {
    const sm = this.opts.stateMachine;
    if (typeof sm.restore !== "function") {
      throw new RaftError("INVALID_STATE", `node ${this.id} received a snapshot but its state machine has no restore()`);
    }
    await sm.restore(snapshot.data);
    const index = snapshot.meta.index;
    this.appliedIndex = index;
    this.lastSnapshotIndex = Math.max(this.lastSnapshotIndex, index);
    // Proposals covered by the snapshot may or may not be in it: their results are lost.
    for (const [i, waiting] of this.appendedProposals) {
      if (i > index) continue;
      this.appendedProposals.delete(i);
      waiting.request.pending.reject(new RaftError("TIMEOUT", `entry ${i} arrived inside a snapshot; the proposal's outcome is unknown`));
    }
    this.serveReads(index);
    this.notify("snapshot", snapshot.meta.index, snapshot.meta.term);
  }

  /**
   * Takes a snapshot and compacts the log when `snapshotThreshold` entries were applied
   * since the last one, or when {@link RaftNode.snapshot} asked for one. Runs between two
   * Readies, so the state machine captures exactly the state at `appliedIndex`. A state
   * machine whose `snapshot()` returns a promise is expected to have captured its state
   * synchronously: the node goes on applying while the bytes are produced, and compacts
   * once they arrive (on a later pass of the loop).
   */
  private async maybeSnapshot(core: Raft): Promise<void> {
    const finished = this.finishedSnapshot;
    if (finished !== null) {
      this.finishedSnapshot = null;
      await this.persistSnapshot(core, finished.snapshot, finished.waiters);
    }
    const sm = this.opts.stateMachine;
    if (typeof sm.snapshot !== "function" || this.snapshotInFlight !== null) return;
    const threshold = this.opts.snapshotThreshold;
    const due = threshold > 0 && this.appliedIndex - this.lastSnapshotIndex >= threshold;
    const asked = this.snapshotWaiters.length > 0;
    if (!due && !asked) return;
    const index = this.appliedIndex;
    const waiters = this.snapshotWaiters;
    this.snapshotWaiters = [];
    // A snapshot from the leader may be waiting for the next Ready: then ours is stale.
    const newest = Math.max(this.lastSnapshotIndex, core.snapshot?.meta.index ?? 0);
    if (index <= newest) {
      for (const w of waiters) w.resolve(newest);
      return;
    }
    const meta = { index, term: core.log.term(index)!, config: core.config };
    // The state machine captures its state now; its bytes stream to storage while the node
    // goes on applying, and the log is compacted once they are durable (a later pass).
    let captured: ReturnType<NonNullable<typeof sm.snapshot>>;
    try {
      captured = sm.snapshot();
    } catch (err) {
      throw new RaftError("INVALID_STATE", `the state machine's snapshot() failed on ${this.id}`, { cause: err });
    }
    this.snapshotInFlight = waiters;
    const written = Promise.resolve(captured).then((source) => this.opts.storage.writeSnapshot(meta, sourceChunks(source)));
    written.then(
      (snapshot) => {
        this.snapshotInFlight = null;
        this.finishedSnapshot = { snapshot, waiters };
        this.scheduleLoop();
      },
      (err: unknown) => {
        // A stream that storage never read must still be told to stop, so that the state
        // machine releases what it captured.
        if (!(captured instanceof Uint8Array) && !(captured instanceof Promise)) {
          Promise.resolve(captured[Symbol.asyncIterator]().return?.()).catch(() => {});
        }
        this.fail(new RaftError("STORAGE", `writing a snapshot of the state machine failed on ${this.id}`, { cause: err }));
      },
    );
  }

  /** Makes a snapshot durable and compacts the log behind it (keeping `trailingEntries`). */
  private async persistSnapshot(core: Raft, snapshot: Snapshot, waiters: PendingRequest<number>[]): Promise<void> {
    const index = snapshot.meta.index;
    if (core.log.firstIndex() - 1 > index || index <= this.lastSnapshotIndex) {
      // A leader's snapshot arrived while ours was being serialised.
      for (const w of waiters) w.resolve(Math.max(core.log.firstIndex() - 1, this.lastSnapshotIndex));
      return;
    }
    const compactTo = Math.max(core.log.firstIndex() - 1, index - this.opts.trailingEntries);
    try {
      await this.opts.storage.compact(snapshot, compactTo, core.log.term(compactTo)!);
    } catch (err) {
      throw new RaftError("STORAGE", `storage compaction failed on ${this.id}`, { cause: err });
    }
    if (this.state !== "running") return;
    core.compact(snapshot, compactTo);
    this.lastSnapshotIndex = index;
    this.notify("snapshot", index, snapshot.meta.term);
    for (const w of waiters) w.resolve(index);
  }

  private settleForwarded(rd: Ready): void {
    for (const outcome of rd.proposals) {
      const batch = this.forwardedProposals.get(outcome.requestId);
      if (batch === undefined) continue;
      this.forwardedProposals.delete(outcome.requestId);
      if (outcome.index === 0) {
        for (const p of batch) if (!p.pending.settled) this.parkedProposals.push(p);
        continue;
      }
      const applied = this.appliedIndex;
      for (let i = 0; i < batch.length; i++) {
        const p = batch[i]!;
        const index = outcome.index + i;
        if (index <= applied) {
          // Applied before the answer came: it cannot be matched to its result any more.
          p.pending.reject(new RaftError("TIMEOUT", `proposal was applied at ${index} before the leader's answer arrived; its result is unknown`));
        } else this.appendedProposals.set(index, { term: outcome.term, request: p });
      }
    }
  }

  private settleReadStates(rd: Ready): void {
    for (const rs of rd.readStates) {
      const batch = this.readBatches.get(rs.requestId);
      if (batch === undefined) continue;
      this.readBatches.delete(rs.requestId);
      if (rs.index === 0) {
        for (const r of batch) if (!r.pending.settled) this.parkedReads.push(r);
        continue;
      }
      if (rs.index <= this.appliedIndex) for (const r of batch) r.pending.resolve();
      else this.waitingReads.push({ index: rs.index, reads: batch });
    }
  }

  private serveReads(applied: number): void {
    if (this.waitingReads.length === 0) return;
    const still: typeof this.waitingReads = [];
    for (const w of this.waitingReads) {
      if (w.index <= applied) for (const r of w.reads) r.pending.resolve();
      else still.push(w);
    }
    this.waitingReads = still;
  }

  private emitChanges(core: Raft): void {
    const o = this.observed;
    if (core.term !== o.term) {
      o.term = core.term;
      this.notify("term", core.term);
    }
    if (core.role !== o.role) {
      o.role = core.role;
      this.opts.logger.info("role changed", { id: this.id, role: core.role, term: core.term });
      this.notify("role", core.role, core.term);
    }
    if (core.leader !== o.leader) {
      o.leader = core.leader;
      if (core.leader !== null && this.retiredAddresses.size > 0 && isVoter(core.config, core.leader)) {
        this.retiredAddresses.clear();
        this.pushAddresses();
      }
      this.abandonForwarded();
      this.opts.logger.debug("leader changed", { id: this.id, leader: core.leader, term: core.term });
      this.notify("leader", core.leader, core.term);
      if (core.leader !== null && (this.parkedProposals.length > 0 || this.parkedReads.length > 0)) this.unpark();
    }
    if (core.log.committed !== o.commit) {
      o.commit = core.log.committed;
      this.notify("commit", o.commit);
    }
    if (core.config !== o.config) {
      o.config = core.config;
      this.onConfigChange(core.config);
    }
    if (this.transferWaiters.length > 0) {
      this.transferWaiters = this.transferWaiters.filter((w) => {
        if (w.pending.settled) return false;
        if (core.leader === w.target) w.pending.resolve(w.target);
        else if (core.role === "leader" && core.leadTransferee === null) {
          w.pending.reject(new RaftError("TIMEOUT", `${w.target} did not take over within an election timeout; ${this.id} still leads`));
        } else return true;
        return false;
      });
    }
  }

  /**
   * The leader changed: forwarded requests that the old leader never answered will not be
   * answered now. A read is safe to ask again; a proposal's outcome is unknown (the old
   * leader may have appended it), so it settles at once rather than at its deadline.
   */
  private abandonForwarded(): void {
    for (const [requestId, batch] of this.forwardedProposals) {
      this.forwardedProposals.delete(requestId);
      for (const p of batch) p.pending.reject(new RaftError("TIMEOUT", "the leader changed before it answered a forwarded proposal; its outcome is unknown"));
    }
    for (const [requestId, batch] of this.readBatches) {
      this.readBatches.delete(requestId);
      for (const r of batch) if (!r.pending.settled) this.parkedReads.push(r);
    }
  }

  private onConfigChange(config: ClusterConfig): void {
    this.notify("config", config);
    const addresses = config.addresses;
    if (addresses !== undefined) {
      // Members just removed stay reachable until a leader of the new configuration is
      // known: a removed leader keeps leading until it has handed over, and its last
      // AppendEntries and TimeoutNow must still get through.
      const previous = this.addressBook;
      for (const [id, address] of previous) if (addresses[id] === undefined) this.retiredAddresses.set(id, address);
      for (const id of Object.keys(addresses)) this.retiredAddresses.delete(id);
      this.addressBook = new Map(Object.entries(addresses));
      this.pushAddresses();
    }
    this.configWaiters = this.configWaiters.filter((w) => {
      if (w.pending.settled) return false;
      if (w.entered && !isJoint(config) && sameMembers(config, w.target)) {
        w.pending.resolve(config);
        return false;
      }
      return true;
    });
  }

  /** Tells the transport where the members (and recently removed members) are. */
  private pushAddresses(): void {
    if (!this.opts.transport.setPeerAddresses) return;
    const map = new Map([...this.retiredAddresses, ...this.addressBook]);
    map.delete(this.id);
    this.opts.transport.setPeerAddresses(map);
  }

  /**
   * Emits an event. A listener that throws must not take the node down (events observe,
   * they never steer): the error is logged and the node carries on.
   */
  private notify<K extends EventEmitter.EventNames<RaftNodeEvents>>(event: K, ...args: EventEmitter.EventArgs<RaftNodeEvents, K>): void {
    try {
      this.emit(event, ...args);
    } catch (err) {
      this.opts.logger.error("an event listener threw; the node ignores it", { id: this.id, event: String(event), error: err instanceof Error ? err.message : String(err) });
    }
  }

  // ---------------------------------------------------------------- stopping

  private fail(err: unknown): void {
    if (this.state === "stopped") return;
    const error = err instanceof Error ? err : new Error(String(err));
    this.opts.logger.error("node stopping after a fatal error", { id: this.id, error: error.message });
    this.state = "stopped";
    this.shutdown(new RaftError("STOPPED", `RaftNode ${this.id} stopped after an error: ${error.message}`, { cause: error }));
    this.notify("error", error);
    void this.opts.transport.stop().catch(() => {});
    void this.opts.storage.close().catch(() => {});
  }

  private shutdown(reason: RaftError): void {
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
}
