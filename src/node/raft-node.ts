import { EventEmitter } from "eventemitter3";
import { votersConfig } from "../core/membership.js";
import type { Entry, Message, NodeId } from "../core/messages.js";
import { Raft, type ProposalItem } from "../core/raft.js";
import type { Ready } from "../core/ready.js";
import { RaftError } from "../errors.js";
import type { TimerHandle } from "./clock.js";
import { coreOfNode } from "./internal.js";
import type { RaftNodeEvents, RaftRole } from "./events.js";
import { resolveOptions, type RaftNodeOptions, type ResolvedOptions } from "./options.js";
import { PendingRequest, timeoutOf, type RequestOptions } from "./proposals.js";

/**
 * A peer's replication state as the leader sees it.
 * @public
 */
export interface PeerStatus {
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
  readonly id: NodeId;
  readonly role: RaftRole;
  readonly term: number;
  /** The known leader, or null. */
  readonly leader: NodeId | null;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly lastIndex: number;
  /** The current voters. */
  readonly voters: readonly NodeId[];
  /** Per peer replication state; empty unless this node leads. */
  readonly peers: readonly PeerStatus[];
}

type NodeState = "new" | "starting" | "running" | "stopped";

interface ProposalRequest<Result> {
  readonly pending: PendingRequest<Result>;
  readonly item: ProposalItem;
}

interface ReadRequest {
  readonly pending: PendingRequest<void>;
}

/** Proposals handed to the core together, forwarded under one request id. */
type ProposalBatch<Result> = ProposalRequest<Result>[];

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
  // Invariant: appliedIndex <= core.log.applied (entries handed out but not yet applied lie between).
  /** The last index applied to the state machine. */
  private appliedIndex = 0;

  // Proposals: queued for the next flush, parked until a leader is known, forwarded and
  // awaiting the leader's answer, or appended at a known (index, term).
  private queuedProposals: ProposalRequest<Result>[] = [];
  private parkedProposals: ProposalRequest<Result>[] = [];
  private readonly forwardedProposals = new Map<number, ProposalBatch<Result>>();
  private readonly appendedProposals = new Map<number, { term: number; request: ProposalRequest<Result> }>();

  // Reads: queued for the next flush (one read index serves the whole batch), parked,
  // awaiting their read index, or waiting for the applied index to reach it.
  private queuedReads: ReadRequest[] = [];
  private parkedReads: ReadRequest[] = [];
  private readonly readBatches = new Map<number, ReadRequest[]>();
  private waitingReads: { index: number; reads: ReadRequest[] }[] = [];

  private observed = { role: "follower" as RaftRole, leader: null as NodeId | null, term: 0, commit: 0 };

  constructor(options: RaftNodeOptions<Cmd, Result>) {
    super();
    this.opts = resolveOptions(options);
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
   * takes part in the protocol (it has not necessarily found a leader yet).
   * @throws RaftError `INVALID_STATE` when called twice; `STORAGE` when loading fails.
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
      },
      { hardState: stored.hardState, entries: stored.entries, firstIndex: stored.firstIndex, config: votersConfig(o.peers) },
    );
    coreOfNode.set(this, this.core);
    this.observed = { role: "follower", leader: null, term: this.core.term, commit: this.core.log.committed };
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
   * (forwarding is off; `leaderId` says where to go), `BUSY`, or `STOPPED`.
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
    const pending = new PendingRequest<Result>(this.opts.clock, timeoutMs, options?.signal, () => this.live--, "proposal");
    this.live++;
    this.queuedProposals.push({ pending, item: { type: "command", data } });
    this.scheduleFlush();
    return pending.promise;
  }

  /**
   * Resolves when this node's state machine may be read linearizably: every write that
   * completed (anywhere) before `read()` was called is applied here. Uses ReadIndex
   * (Raft §8): the leader confirms it still leads with a round of heartbeats; a follower
   * asks the leader. Reads made in the same turn of the event loop share one round.
   *
   * Rejects with `TIMEOUT`, `ABORTED`, `BUSY` or `STOPPED`.
   */
  read(options?: RequestOptions): Promise<void> {
    const timeoutMs = timeoutOf(options, this.opts.requestTimeoutMs);
    const refusal = this.admissionError("read");
    if (refusal) return Promise.reject(refusal);
    const pending = new PendingRequest<void>(this.opts.clock, timeoutMs, options?.signal, () => this.live--, "read");
    this.live++;
    this.queuedReads.push({ pending });
    this.scheduleFlush();
    return pending.promise;
  }

  /** The node's current state. Never blocks. */
  status(): RaftStatus {
    const c = this.core;
    if (c === null) {
      return { id: this.id, role: "follower", term: 0, leader: null, commitIndex: 0, appliedIndex: 0, lastIndex: 0, voters: this.opts.peers, peers: [] };
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
      peers,
    };
  }

  /**
   * Starts an election now instead of waiting for the election timeout. For tests and
   * tools; a running cluster elects leaders by itself.
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
      if (reads.length > 0) this.submitReads(core, reads);
    } catch (err) {
      this.fail(err);
      return;
    }
    this.scheduleLoop();
  }

  private submitProposals(core: Raft, batch: ProposalRequest<Result>[]): void {
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

  private submitReads(core: Raft, batch: ReadRequest[]): void {
    const requestId = ++this.requestSeq;
    const outcome = core.readIndex(requestId);
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
        if (core === null || this.state !== "running" || !core.hasReady()) break;
        const rd = core.ready();
        // 1. Persist: one durable write for everything this round produced (group commit).
        if (rd.hardState !== null || rd.entries.length > 0) {
          const batch = rd.hardState === null ? { entries: rd.entries } : { hardState: rd.hardState, entries: rd.entries };
          try {
            await this.opts.storage.save(batch);
          } catch (err) {
            throw new RaftError("STORAGE", `storage save failed on ${this.id}`, { cause: err });
          }
          if (this.state !== "running") break;
        }
        // 2. Send, now that what the messages promise is durable.
        for (const m of rd.messages) this.opts.transport.send(m);
        // 3. Apply.
        for (const e of rd.committedEntries) {
          await this.applyEntry(e);
          if (this.state !== "running") return;
        }
        // 4. Reads and forwarded proposals.
        this.settleForwarded(rd);
        this.settleReadStates(rd);
        core.advance(rd);
        this.emitChanges(core);
      }
    } catch (err) {
      this.fail(err);
    } finally {
      this.loopRunning = false;
    }
  }

  private async applyEntry(e: Entry): Promise<void> {
    let result: Result | undefined;
    if (e.type === "command") {
      const cmd = this.opts.codec.decode(e.data);
      const r = this.opts.stateMachine.apply(cmd, { index: e.index, term: e.term });
      result = r instanceof Promise ? await r : r;
    }
    const waiting = this.appendedProposals.get(e.index);
    if (waiting !== undefined) {
      this.appendedProposals.delete(e.index);
      if (waiting.term === e.term) waiting.request.pending.resolve(result as Result);
      else waiting.request.pending.reject(new RaftError("DROPPED", `proposal at index ${e.index} was replaced by an entry of term ${e.term}; it was not committed`));
    }
    this.appliedIndex = e.index;
    this.emit("apply", e.index, e.term, e.type);
    this.serveReads(e.index);
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
      this.emit("term", core.term);
    }
    if (core.role !== o.role) {
      o.role = core.role;
      this.emit("role", core.role, core.term);
    }
    if (core.leader !== o.leader) {
      o.leader = core.leader;
      this.emit("leader", core.leader, core.term);
      if (core.leader !== null && (this.parkedProposals.length > 0 || this.parkedReads.length > 0)) this.unpark();
    }
    if (core.log.committed !== o.commit) {
      o.commit = core.log.committed;
      this.emit("commit", o.commit);
    }
  }

  // ---------------------------------------------------------------- stopping

  private fail(err: unknown): void {
    if (this.state === "stopped") return;
    const error = err instanceof Error ? err : new Error(String(err));
    this.opts.logger.error("node stopping after a fatal error", { id: this.id, error: error.message });
    this.state = "stopped";
    this.shutdown(new RaftError("STOPPED", `RaftNode ${this.id} stopped after an error: ${error.message}`, { cause: error }));
    this.emit("error", error);
    void this.opts.transport.stop().catch(() => {});
    void this.opts.storage.close().catch(() => {});
  }

  private shutdown(reason: RaftError): void {
    if (this.tickTimer !== undefined) this.opts.clock.clearTimeout(this.tickTimer);
    this.tickTimer = undefined;
    const all: { reject(error: unknown): void }[] = [
      ...this.queuedProposals.map((p) => p.pending),
      ...this.parkedProposals.map((p) => p.pending),
      ...[...this.forwardedProposals.values()].flat().map((p) => p.pending),
      ...[...this.appendedProposals.values()].map((w) => w.request.pending),
      ...this.queuedReads.map((r) => r.pending),
      ...this.parkedReads.map((r) => r.pending),
      ...[...this.readBatches.values()].flat().map((r) => r.pending),
      ...this.waitingReads.flatMap((w) => w.reads.map((r) => r.pending)),
    ];
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
