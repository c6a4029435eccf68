import { EventEmitter } from "eventemitter3";
import { isJoint, isVoter, leaveJoint, votersConfig, type MembershipChange } from "../core/membership.js";
import type { ClusterConfig, NodeId } from "../core/messages.js";
import { Raft } from "../core/raft.js";
import { RaftError } from "../errors.js";
import { RaftClient, type RaftClientOptions } from "./client.js";
import type { SessionCommand, SessionResult } from "./sessions.js";
import { coreOfNode } from "./internal.js";
import type { RaftNodeEvents } from "./events.js";
import type { RaftNodeOptions } from "./options.js";
import { NodeDriver } from "./node-driver.js";
import { PendingRequest, timeoutOf, type ReadOptions, type RequestOptions } from "./proposals.js";
import type { PeerStatus, RaftStatus } from "./status.js";

export type { PeerStatus, RaftStatus } from "./status.js";

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
  /**
   * Everything behind the public methods: the node's fields, the Ready loop, requests,
   * snapshots and membership (node-driver.ts and the layers it builds on).
   */
  private readonly driver: NodeDriver<Cmd, Result>;

  /**
   * Creates a node; nothing runs until {@link RaftNode.start}.
   * @param options - The state machine, storage, transport and settings; see {@link RaftNodeOptions}.
   * @throws TypeError or RangeError naming the option, when an option is invalid.
   */
  constructor(options: RaftNodeOptions<Cmd, Result>) {
    super();
    this.driver = new NodeDriver(options, this);
  }

  /** This node's id. */
  get id(): NodeId {
    return this.driver.opts.id;
  }

  /** Whether this node is currently the leader. */
  get isLeader(): boolean {
    return this.driver.core?.role === "leader";
  }

  /** The known leader's id, or null. */
  get leaderId(): NodeId | null {
    return this.driver.core?.leader ?? null;
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
    if (this.driver.state !== "new") throw new RaftError("INVALID_STATE", `RaftNode ${this.id} was already started`);
    this.driver.state = "starting";
    const o = this.driver.opts;
    const stored = await o.storage.load();
    if (this.driver.state !== "starting") return;
    this.driver.core = new Raft(
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
    if (stored.snapshot !== null) await this.driver.restoreStateMachine(stored.snapshot);
    this.driver.lastSnapshotIndex = stored.snapshot?.meta.index ?? 0;
    coreOfNode.set(this, this.driver.core);
    this.driver.observed = { role: "follower", leader: null, term: this.driver.core.term, commit: this.driver.core.log.committed, config: null };
    this.driver.appliedIndex = this.driver.core.log.applied;
    await o.transport.start((m) => this.driver.receive(m));
    if (this.driver.state !== "starting") return;
    this.driver.state = "running";
    this.driver.armTick();
    this.driver.flushRequests();
    // Entries committed before a restart are applied again to rebuild the state machine.
    this.driver.scheduleLoop();
  }

  /**
   * Stops the node: rejects every pending call with `STOPPED`, stops the timers, the
   * transport and the storage. Safe to call more than once.
   * @returns Resolves once the transport and the storage are closed.
   */
  async stop(): Promise<void> {
    if (this.driver.state === "stopped") return;
    this.driver.state = "stopped";
    this.driver.shutdown(new RaftError("STOPPED", `RaftNode ${this.id} stopped`));
    await this.driver.opts.transport.stop();
    await this.driver.opts.storage.close();
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
    const timeoutMs = timeoutOf(options, this.driver.opts.requestTimeoutMs);
    const refusal = this.driver.admissionError("proposal");
    if (refusal) return Promise.reject(refusal);
    const data = this.driver.opts.codec.encode(command);
    const pending = new PendingRequest<Result>(this.driver.timeouts, timeoutMs, options?.signal, () => this.driver.live--, "proposal");
    this.driver.live++;
    this.driver.queuedProposals.push({ pending, item: { type: "command", data }, command });
    this.driver.scheduleFlush();
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
    const timeoutMs = timeoutOf(options, this.driver.opts.requestTimeoutMs);
    const mode = options?.mode ?? "read-index";
    if (mode !== "read-index" && mode !== "lease") throw new RangeError(`read option 'mode' must be 'read-index' or 'lease' (got ${String(mode)})`);
    const refusal = this.driver.admissionError("read");
    if (refusal) return Promise.reject(refusal);
    const pending = new PendingRequest<void>(this.driver.timeouts, timeoutMs, options?.signal, () => this.driver.live--, "read");
    this.driver.live++;
    this.driver.queuedReads.push({ pending, lease: mode === "lease" });
    this.driver.scheduleFlush();
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
    return new RaftClient<C, R>(this, { clock: this.driver.opts.clock, requestTimeoutMs: this.driver.opts.requestTimeoutMs, ...options });
  }

  /**
   * The node's current state. Never blocks.
   * @returns A new object: role, term, leader, indexes, configuration, and (on the leader)
   * each peer's replication progress.
   */
  status(): RaftStatus {
    const c = this.driver.core;
    if (c === null) {
      return { id: this.id, role: "follower", term: 0, leader: null, commitIndex: 0, appliedIndex: 0, lastIndex: 0, voters: this.driver.opts.peers, learners: [], outgoingVoters: [], joint: false, peers: [] };
    }
    const peers: PeerStatus[] = [];
    for (const [id, pr] of c.progress) peers.push({ id, matchIndex: pr.match, nextIndex: pr.next, state: pr.state });
    return {
      id: this.id,
      role: c.role,
      term: c.term,
      leader: c.leader,
      commitIndex: c.log.committed,
      appliedIndex: this.driver.appliedIndex,
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
    const timeoutMs = timeoutOf(options, this.driver.opts.requestTimeoutMs);
    const refusal = this.driver.admissionError("membership change");
    if (refusal) return Promise.reject(refusal);
    const core = this.driver.core;
    if (core === null) return Promise.reject(new RaftError("NOT_LEADER", `${this.id} is not the leader`, { leaderId: null }));
    const outcome = core.changeMembership(change);
    if (outcome.kind === "refused") {
      if (core.role !== "leader") return Promise.reject(new RaftError("NOT_LEADER", `${this.id} is not the leader`, { leaderId: outcome.leader }));
      const busy = outcome.reason.includes("in progress") || outcome.reason.includes("transferred");
      return Promise.reject(new RaftError(busy ? "BUSY" : "INVALID_STATE", `membership change refused: ${outcome.reason}`));
    }
    const pending = new PendingRequest<ClusterConfig>(this.driver.opts.clock, timeoutMs, options?.signal, () => this.driver.live--, "membership change");
    this.driver.live++;
    this.driver.configWaiters.push({ index: outcome.index, term: outcome.term, target: leaveJoint(outcome.config), entered: false, pending });
    this.driver.scheduleLoop();
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
    const timeoutMs = timeoutOf(options, this.driver.opts.requestTimeoutMs);
    const deadline = this.driver.opts.clock.now() + timeoutMs;
    const left = (): number => Math.max(1, deadline - this.driver.opts.clock.now());
    const core = this.driver.core;
    if (core !== null && isVoter(core.config, id)) return core.config;
    if (core === null || !core.config.learners.includes(id)) {
      const change: MembershipChange = address === undefined ? { addLearners: [id] } : { addLearners: [id], addresses: { [id]: address } };
      await this.changeMembership(change, { timeoutMs: left(), ...(options?.signal ? { signal: options.signal } : {}) });
    }
    // The learner must have replicated at least everything up to now (its own addition
    // included), not merely be within catchUpEntries of a short log: a node that never
    // answered must not become a voter.
    const mustReach = this.driver.core?.log.committed ?? 0;
    for (;;) {
      const c = this.driver.core;
      if (c === null || this.driver.state !== "running") throw new RaftError("STOPPED", `RaftNode ${this.id} stopped`);
      if (c.role !== "leader") throw new RaftError("NOT_LEADER", `${this.id} lost leadership while adding ${id}`, { leaderId: c.leader });
      const pr = c.progress.get(id);
      if (pr !== undefined && pr.match >= mustReach && pr.match + this.driver.opts.catchUpEntries >= c.log.lastIndex()) break;
      if (this.driver.opts.clock.now() >= deadline) throw new RaftError("TIMEOUT", `learner ${id} did not catch up within ${timeoutMs} ms; it stays a learner`);
      if (options?.signal?.aborted) throw new RaftError("ABORTED", `adding ${id} aborted; it stays a learner`, { cause: options.signal.reason });
      await new Promise<void>((resolve) => this.driver.opts.clock.setTimeout(resolve, this.driver.opts.tickMs));
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
    const config = this.driver.core?.config;
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
    const timeoutMs = timeoutOf(options, 4 * this.driver.opts.electionTicks * this.driver.opts.tickMs);
    const refusal = this.driver.admissionError("leadership transfer");
    if (refusal) return Promise.reject(refusal);
    const core = this.driver.core;
    if (core === null || core.role !== "leader") {
      return Promise.reject(new RaftError("NOT_LEADER", `${this.id} is not the leader`, { leaderId: core?.leader ?? null }));
    }
    const started = core.transferLeadership(to ?? null);
    if ("reason" in started) return Promise.reject(new RaftError("INVALID_STATE", `leadership transfer refused: ${started.reason}`));
    const pending = new PendingRequest<NodeId>(this.driver.opts.clock, timeoutMs, options?.signal, () => this.driver.live--, "leadership transfer");
    this.driver.live++;
    this.driver.transferWaiters.push({ target: started.target, pending });
    this.driver.scheduleLoop();
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
    const timeoutMs = timeoutOf(options, this.driver.opts.requestTimeoutMs);
    if (typeof this.driver.opts.stateMachine.snapshot !== "function") {
      return Promise.reject(new RaftError("INVALID_STATE", "the state machine has no snapshot() method"));
    }
    const refusal = this.driver.admissionError("snapshot");
    if (refusal) return Promise.reject(refusal);
    const pending = new PendingRequest<number>(this.driver.opts.clock, timeoutMs, options?.signal, () => this.driver.live--, "snapshot");
    this.driver.live++;
    this.driver.snapshotWaiters.push(pending);
    this.driver.scheduleLoop();
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
    if (this.driver.core === null || this.driver.state !== "running") return;
    this.driver.core.campaignNow();
    this.driver.scheduleLoop();
  }
}
