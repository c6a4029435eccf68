import type { NodeId } from "../core/messages.js";
import { isRaftError } from "../errors.js";
import { coreOfNode } from "../node/internal.js";
import { RaftNode } from "../node/raft-node.js";
import type { ApplyMeta, StateMachine } from "../state-machine.js";
import { Prng } from "./prng.js";
import { SafetyChecker } from "./safety.js";
import { NodeClock, Scheduler } from "./scheduler.js";
import { RELIABLE_NETWORK, SimNetwork, type NetworkFaults, type NetworkStats } from "./sim-network.js";
import { SimDisk, SimStorage } from "./sim-storage.js";

/**
 * A command as the simulator proposes it: the user's command plus a unique id, so that
 * the checker can tell whether any command was applied twice.
 * @public
 */
export interface SimCommand<Cmd> {
  readonly id: string;
  readonly cmd: Cmd;
}

/**
 * What the simulator's wrapper state machine returns: the user's result plus where the
 * command was applied.
 * @public
 */
export interface SimResult<Result> {
  readonly index: number;
  readonly term: number;
  readonly result: Result;
}

/**
 * Every knob of a simulated run. All are drawn from the seed unless given; the run prints
 * them first, so a failure can be understood and replayed.
 * @public
 */
export interface SimulationKnobs {
  readonly network: NetworkFaults;
  /** Virtual milliseconds per tick. */
  readonly tickMs: number;
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  readonly maxInflight: number;
  readonly maxEntriesPerMessage: number;
  /** Storage write latency range, virtual milliseconds. */
  readonly storageLatencyMs: readonly [number, number];
  /** Mean virtual milliseconds between client proposals / reads. */
  readonly proposeEveryMs: number;
  readonly readEveryMs: number;
  /** Mean virtual milliseconds between fault events (crash, restart, partition, heal). */
  readonly faultEveryMs: number;
  readonly crashes: boolean;
  readonly partitions: boolean;
  /** Client request deadline, virtual milliseconds. */
  readonly requestTimeoutMs: number;
  /** Entries between automatic snapshots (0: never), entries kept behind one, and chunk size. */
  readonly snapshotThreshold: number;
  readonly trailingEntries: number;
  readonly snapshotChunkBytes: number;
  /** How many of the nodes start as voters; the others start empty and wait to be added. */
  readonly initialVoters: number;
  /** Whether to add and remove members and transfer leadership at random. */
  readonly membership: boolean;
}

/**
 * Options of {@link runSimulation}.
 * @public
 */
export interface SimulationOptions<Cmd = unknown, Result = unknown> {
  /** The seed: the whole run follows from it. */
  readonly seed: number;
  /** Cluster size. @defaultValue 3 */
  readonly nodes?: number;
  /** Virtual milliseconds of the fault phase. @defaultValue 4000 */
  readonly faultPhaseMs?: number;
  /** Ticks the healed cluster gets to elect a leader and commit. @defaultValue 60 × electionTicks */
  readonly livenessTicks?: number;
  /** Overrides of the drawn knobs. */
  readonly knobs?: Partial<SimulationKnobs>;
  /** A fresh state machine for each node incarnation. Default: a key-value register map. */
  readonly createStateMachine?: (id: NodeId) => StateMachine<Cmd, Result>;
  /** The next command for a client to propose. Default: a put of a small key. */
  readonly nextCommand?: (rng: Prng, seq: number) => Cmd;
  /** Receives a trace line for every notable event (for replaying a failing seed). */
  readonly trace?: (line: string) => void;
}

/**
 * The outcome of one simulated run.
 * @public
 */
export interface SimulationResult {
  readonly seed: number;
  readonly nodes: number;
  readonly ok: boolean;
  /** What broke (a safety violation, a node error, or missed liveness), or null. */
  readonly failure: string | null;
  readonly knobs: SimulationKnobs;
  readonly stats: {
    readonly virtualMs: number;
    readonly events: number;
    readonly proposals: number;
    readonly resolved: number;
    readonly failed: number;
    readonly reads: number;
    readonly readsServed: number;
    readonly crashes: number;
    readonly partitions: number;
    readonly maxTerm: number;
    readonly commitIndex: number;
    readonly network: NetworkStats;
  };
}

/**
 * Draws the knobs of a run from its seed's generator.
 * @public
 */
export function drawKnobs(rng: Prng): SimulationKnobs {
  const maxDelay = rng.pick([2, 5, 10, 30]);
  // One entry per message is a stress setting; paired with a heavy load it makes a
  // backlog that no bound on catching up could fairly cover, so it gets a light one.
  const maxEntriesPerMessage = rng.pick([1, 8, 4096]);
  return {
    network: {
      lossRate: rng.pick([0, 0.01, 0.05, 0.15]),
      duplicateRate: rng.pick([0, 0.01, 0.05]),
      minDelayMs: rng.between(0.2, 1),
      maxDelayMs: maxDelay,
      longDelayRate: rng.pick([0, 0.005, 0.02]),
      longDelayMs: rng.pick([100, 300, 1000]),
    },
    tickMs: 10,
    electionTicks: rng.pick([10, 10, 20]),
    heartbeatTicks: rng.pick([1, 1, 2]),
    maxInflight: rng.pick([1, 4, 64, 256]),
    maxEntriesPerMessage,
    storageLatencyMs: rng.pick([[0.05, 0.5], [0.2, 2], [1, 8]] as const),
    proposeEveryMs: maxEntriesPerMessage === 1 ? 20 : rng.pick([2, 5, 20]),
    readEveryMs: rng.pick([5, 20, 50]),
    faultEveryMs: rng.pick([150, 400, 1000]),
    crashes: rng.chance(0.75),
    partitions: rng.chance(0.75),
    requestTimeoutMs: rng.pick([500, 2000]),
    snapshotThreshold: rng.pick([0, 10, 50, 200]),
    trailingEntries: rng.pick([0, 5, 100]),
    snapshotChunkBytes: rng.pick([16, 256, 1 << 20]),
    initialVoters: 0, // 0: every node; resolved against the cluster size by the run
    membership: rng.chance(0.4),
  };
}

interface Incarnation<Cmd, Result> {
  readonly node: RaftNode<SimCommand<Cmd>, SimResult<Result>>;
  readonly clock: NodeClock;
  readonly storage: SimStorage;
  alive: boolean;
}

/** Resolves after every pending microtask has run: one step's consequences settle. */
function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

class RegisterMap implements StateMachine<{ key: string; value: number }, number | null> {
  private values = new Map<string, number>();
  apply(cmd: { key: string; value: number }): number | null {
    const prev = this.values.get(cmd.key) ?? null;
    this.values.set(cmd.key, cmd.value);
    return prev;
  }
  snapshot(): Uint8Array {
    return new TextEncoder().encode(JSON.stringify([...this.values]));
  }
  restore(data: Uint8Array): void {
    this.values = new Map(JSON.parse(new TextDecoder().decode(data)) as [string, number][]);
  }
}

/** The simulator's snapshot: the user's state plus which commands it includes. */
function encodeSimSnapshot(ids: Iterable<string>, user: Uint8Array): Uint8Array {
  return new TextEncoder().encode(JSON.stringify({ ids: [...ids], user: Buffer.from(user).toString("base64") }));
}

function decodeSimSnapshot(data: Uint8Array): { ids: string[]; user: Uint8Array } {
  const raw = JSON.parse(new TextDecoder().decode(data)) as { ids: string[]; user: string };
  return { ids: raw.ids, user: new Uint8Array(Buffer.from(raw.user, "base64")) };
}

/**
 * Runs a whole cluster of RaftNodes in one process, in virtual time, under a
 * seeded schedule of faults: message loss, delay, reordering and duplication, symmetric
 * and one-way partitions, and crash-restarts (durable storage survives, memory does not,
 * unfinished writes are lost). Clients propose and read throughout.
 *
 * After every step it checks the safety properties (see {@link SafetyChecker}) and that
 * every read observes every write that completed before it began. Then it heals every
 * fault and requires a leader and a commit within a bound of ticks.
 *
 * @example
 * ```ts
 * const result = await runSimulation({ seed: 42, nodes: 5 });
 * if (!result.ok) throw new Error(`seed 42: ${result.failure}`);
 * ```
 * @public
 */
export async function runSimulation<Cmd = { key: string; value: number }, Result = number | null>(
  options: SimulationOptions<Cmd, Result>,
): Promise<SimulationResult> {
  const sim = new Simulation<Cmd, Result>(options);
  return sim.run();
}

class Simulation<Cmd, Result> {
  private readonly seed: number;
  private readonly ids: NodeId[];
  private readonly rng: Prng;
  private readonly knobs: SimulationKnobs;
  private readonly scheduler = new Scheduler();
  private readonly network: SimNetwork;
  private readonly checker = new SafetyChecker();
  private readonly disks = new Map<NodeId, SimDisk>();
  private readonly incarnations = new Map<NodeId, Incarnation<Cmd, Result>>();
  private readonly clientRng: Prng;
  private readonly faultRng: Prng;
  private failure: string | null = null;
  private commandSeq = 0;
  private events = 0;
  private readonly counts = { proposals: 0, resolved: 0, failed: 0, reads: 0, readsServed: 0, crashes: 0, partitions: 0 };
  private phase: "faults" | "liveness" | "done" = "faults";

  constructor(private readonly options: SimulationOptions<Cmd, Result>) {
    this.seed = options.seed;
    const n = options.nodes ?? 3;
    if (!Number.isInteger(n) || n < 1 || n > 9) throw new RangeError(`simulation option 'nodes' must be an integer from 1 to 9 (got ${n})`);
    this.ids = Array.from({ length: n }, (_, i) => `n${i + 1}`);
    this.rng = new Prng(this.seed);
    const drawn = { ...drawKnobs(this.rng.fork()), ...options.knobs };
    // Membership runs often start smaller than the pool, to grow and shrink.
    const initialVoters = drawn.initialVoters > 0 ? Math.min(drawn.initialVoters, n) : drawn.membership ? 1 + this.rng.int(n) : n;
    this.knobs = { ...drawn, initialVoters };
    this.network = new SimNetwork(this.scheduler, this.rng.fork(), this.knobs.network);
    this.clientRng = this.rng.fork();
    this.faultRng = this.rng.fork();
  }

  async run(): Promise<SimulationResult> {
    const k = this.knobs;
    this.trace(`seed ${this.seed} nodes ${this.ids.length} knobs ${JSON.stringify(k)}`);
    for (const id of this.ids) {
      this.disks.set(id, new SimDisk());
      await this.startNode(id);
    }
    this.scheduleClients();
    if (k.crashes || k.partitions) this.scheduleFault();

    const faultEnd = this.options.faultPhaseMs ?? 4000;
    await this.runUntil(() => this.scheduler.now >= faultEnd);
    if (this.failure === null) await this.livenessPhase();
    this.phase = "done";
    for (const inc of this.incarnations.values()) if (inc.alive) this.kill(inc);
    return this.result();
  }

  // ------------------------------------------------------------ nodes

  private async startNode(id: NodeId): Promise<void> {
    const k = this.knobs;
    const clock = this.scheduler.clock();
    const storage = new SimStorage(this.disks.get(id)!, this.scheduler, this.rng.fork(), k.storageLatencyMs[0], k.storageLatencyMs[1]);
    const user = this.options.createStateMachine?.(id) ?? (new RegisterMap() as unknown as StateMachine<Cmd, Result>);
    const checker = this.checker;
    let appliedIds: string[] = [];
    const stateMachine: StateMachine<SimCommand<Cmd>, SimResult<Result>> = {
      async apply(command: SimCommand<Cmd>, meta: ApplyMeta): Promise<SimResult<Result>> {
        checker.onApply(id, meta.index, command.id);
        appliedIds.push(command.id);
        const result = await user.apply(command.cmd, meta);
        return { index: meta.index, term: meta.term, result };
      },
    };
    if (user.snapshot && user.restore) {
      const snapshotUser = user.snapshot.bind(user);
      const restoreUser = user.restore.bind(user);
      stateMachine.snapshot = async () => encodeSimSnapshot(appliedIds, await snapshotUser());
      stateMachine.restore = async (data) => {
        const { ids, user: bytes } = decodeSimSnapshot(data);
        await restoreUser(bytes);
        appliedIds = ids;
        checker.onRestore(id, ids);
      };
    }
    const jitter = this.rng.fork();
    const node = new RaftNode<SimCommand<Cmd>, SimResult<Result>>({
      id,
      peers: this.ids.slice(0, this.knobs.initialVoters).includes(id) ? this.ids.slice(0, this.knobs.initialVoters) : [],
      stateMachine,
      storage,
      transport: this.network.transport(id),
      clock,
      random: () => jitter.next(),
      tickMs: k.tickMs,
      electionTicks: k.electionTicks,
      heartbeatTicks: k.heartbeatTicks,
      maxInflight: k.maxInflight,
      maxEntriesPerMessage: k.maxEntriesPerMessage,
      requestTimeoutMs: k.requestTimeoutMs,
      snapshotThreshold: k.snapshotThreshold,
      trailingEntries: k.trailingEntries,
      snapshotChunkBytes: k.snapshotChunkBytes,
    });
    node.on("error", (err) => this.fail(`${id} stopped on an error: ${err.message}${err.cause instanceof Error ? ` (${err.cause.message})` : ""}`));
    node.on("role", (role, term) => this.trace(`${id} is ${role} in term ${term}`));
    this.checker.startIncarnation(id);
    const inc: Incarnation<Cmd, Result> = { node, clock, storage, alive: true };
    this.incarnations.set(id, inc);
    await node.start();
    this.trace(`${id} started`);
  }

  private kill(inc: Incarnation<Cmd, Result>): void {
    inc.alive = false;
    inc.clock.kill();
    inc.storage.crash();
    this.network.detach(inc.node.id);
  }

  private crash(id: NodeId): void {
    const inc = this.incarnations.get(id);
    if (inc === undefined || !inc.alive) return;
    this.kill(inc);
    this.counts.crashes++;
    this.trace(`${id} crashed`);
  }

  private liveIds(): NodeId[] {
    return this.ids.filter((id) => this.incarnations.get(id)?.alive === true);
  }

  // ------------------------------------------------------------ workload

  private scheduleClients(): void {
    const k = this.knobs;
    const proposeLoop = (): void => {
      if (this.phase !== "faults") return;
      this.propose();
      this.scheduler.at(this.clientRng.between(0, 2 * k.proposeEveryMs), proposeLoop);
    };
    const readLoop = (): void => {
      if (this.phase !== "faults") return;
      this.read();
      this.scheduler.at(this.clientRng.between(0, 2 * k.readEveryMs), readLoop);
    };
    this.scheduler.at(this.clientRng.between(0, k.proposeEveryMs), proposeLoop);
    this.scheduler.at(this.clientRng.between(0, k.readEveryMs), readLoop);
  }

  private nextCommand(): SimCommand<Cmd> {
    const seq = ++this.commandSeq;
    const cmd = this.options.nextCommand
      ? this.options.nextCommand(this.clientRng, seq)
      : ({ key: `k${this.clientRng.int(5)}`, value: seq } as unknown as Cmd);
    return { id: `c${seq}`, cmd };
  }

  /** Proposes on a random live node; returns the promise of its outcome (true: resolved). */
  private propose(): Promise<boolean> | null {
    const live = this.liveIds();
    if (live.length === 0) return null;
    const id = this.clientRng.pick(live);
    const command = this.nextCommand();
    this.counts.proposals++;
    return this.incarnations.get(id)!.node.propose(command).then(
      (r) => {
        this.counts.resolved++;
        this.guard(() => this.checker.onResolved(command.id, r.index, r.term));
        return true;
      },
      (err: unknown) => {
        this.counts.failed++;
        if (!isRaftError(err)) this.fail(`proposal ${command.id} on ${id} rejected with a non-RaftError: ${String(err)}`);
        return false;
      },
    );
  }

  private read(): void {
    const live = this.liveIds();
    if (live.length === 0) return;
    const id = this.clientRng.pick(live);
    const inc = this.incarnations.get(id)!;
    // Linearizability of reads: every write that completed before the read began must
    // be visible when it returns.
    const mustSee = this.checker.maxResolvedIndex();
    this.counts.reads++;
    inc.node.read().then(
      () => {
        this.counts.readsServed++;
        const applied = inc.node.status().appliedIndex;
        if (applied < mustSee) this.fail(`stale read on ${id}: applied ${applied} but a write at ${mustSee} completed before the read began`);
      },
      (err: unknown) => {
        if (!isRaftError(err)) this.fail(`read on ${id} rejected with a non-RaftError: ${String(err)}`);
      },
    );
  }

  // ------------------------------------------------------------ faults

  private scheduleFault(): void {
    const k = this.knobs;
    this.scheduler.at(this.faultRng.between(0, 2 * k.faultEveryMs), () => {
      if (this.phase !== "faults") return;
      void this.injectFault();
      this.scheduleFault();
    });
  }

  private async injectFault(): Promise<void> {
    const k = this.knobs;
    const r = this.faultRng;
    const dead = this.ids.filter((id) => !this.incarnations.get(id)?.alive);
    const choices: string[] = ["heal"];
    if (k.crashes) {
      choices.push("crash", "crash-leader");
      if (dead.length > 0) choices.push("restart", "restart");
      if (r.chance(0.05)) choices.push("crash-all");
    }
    if (k.partitions) choices.push("partition", "one-way", "isolate-leader");
    if (k.membership) choices.push("add-member", "add-member", "remove-member", "transfer");
    const action = r.pick(choices);
    const leader = this.ids.find((id) => this.incarnations.get(id)?.alive && this.incarnations.get(id)!.node.isLeader);
    switch (action) {
      case "heal":
        this.network.heal();
        this.trace("network healed");
        return;
      case "crash":
        this.crash(r.pick(this.ids));
        return;
      case "crash-leader":
        if (leader !== undefined) this.crash(leader);
        return;
      case "crash-all":
        for (const id of this.ids) this.crash(id);
        return;
      case "restart":
        if (dead.length > 0) await this.startNode(r.pick(dead));
        return;
      case "partition": {
        const shuffled = [...this.ids].sort(() => r.next() - 0.5);
        const cut = 1 + r.int(this.ids.length - 1);
        const groups = [shuffled.slice(0, cut), shuffled.slice(cut)];
        this.network.heal();
        this.network.partition(groups);
        this.counts.partitions++;
        this.trace(`partition ${JSON.stringify(groups)}`);
        return;
      }
      case "one-way": {
        const a = r.pick(this.ids);
        const b = r.pick(this.ids.filter((x) => x !== a));
        if (b === undefined) return;
        this.network.block(a, b);
        this.counts.partitions++;
        this.trace(`link ${a} -> ${b} cut`);
        return;
      }
      case "add-member":
      case "remove-member":
      case "transfer": {
        if (leader === undefined) return;
        const node = this.incarnations.get(leader)!.node;
        const { voters, learners } = node.status();
        const members = [...voters, ...learners];
        const onError = (err: unknown): void => {
          if (!isRaftError(err)) this.fail(`${action} rejected with a non-RaftError: ${String(err)}`);
        };
        if (action === "add-member") {
          const outside = this.ids.filter((id) => !members.includes(id));
          if (outside.length === 0) return;
          const id = r.pick(outside);
          this.trace(`adding ${id}`);
          node.addMember(id, undefined, { timeoutMs: 2000 }).then(() => this.trace(`${id} added`), onError);
        } else if (action === "remove-member") {
          const id = r.pick(members);
          if (voters.length === 1 && voters[0] === id) return;
          this.trace(`removing ${id}`);
          node.removeMember(id, { timeoutMs: 2000 }).then(() => this.trace(`${id} removed`), onError);
        } else {
          node.transferLeadership(undefined, { timeoutMs: 1000 }).then((to) => this.trace(`leadership moved to ${to}`), onError);
        }
        return;
      }
      case "isolate-leader":
        if (leader === undefined) return;
        this.network.heal();
        this.network.partition([[leader], this.ids.filter((x) => x !== leader)]);
        this.counts.partitions++;
        this.trace(`leader ${leader} isolated`);
        return;
    }
  }

  // ------------------------------------------------------------ phases

  private async livenessPhase(): Promise<void> {
    this.phase = "liveness";
    this.network.heal();
    this.network.setFaults(RELIABLE_NETWORK);
    for (const id of this.ids) if (!this.incarnations.get(id)?.alive) await this.startNode(id);
    this.trace("faults healed; checking liveness");
    const k = this.knobs;
    const boundTicks = this.options.livenessTicks ?? 60 * k.electionTicks;
    const deadline = this.scheduler.now + boundTicks * k.tickMs;
    let probe: boolean | null = null;
    const probeLoop = (): void => {
      // Propose until one commits: a proposal made before a leader exists may time out.
      if (probe === true || this.phase !== "liveness") return;
      const p = this.propose();
      if (p) void p.then((ok) => { if (ok) probe = true; });
      this.scheduler.at(k.electionTicks * k.tickMs, probeLoop);
    };
    probeLoop();
    const converged = (): boolean => {
      if (probe !== true) return false;
      const statuses = this.ids.map((id) => this.incarnations.get(id)!.node.status());
      const leader = statuses.find((s) => s.role === "leader");
      if (leader === undefined) return false;
      // Nodes outside the configuration (never added, or removed) follow nobody.
      const members = new Set([...leader.voters, ...leader.learners]);
      return statuses.filter((s) => members.has(s.id)).every((s) => s.leader === leader.id && s.term === leader.term && s.appliedIndex === leader.commitIndex);
    };
    await this.runUntil(() => converged() || this.scheduler.now >= deadline);
    if (this.failure === null && !converged()) {
      this.fail(`liveness: no stable leader with every node caught up within ${boundTicks} ticks after healing (${this.describe()})`);
    }
  }

  private async runUntil(done: () => boolean): Promise<void> {
    while (this.failure === null && !done()) {
      if (!this.scheduler.runNext()) break;
      this.events++;
      await settle();
      this.checkAll();
    }
  }

  private checkAll(): void {
    for (const id of this.ids) {
      const inc = this.incarnations.get(id);
      const core = inc?.alive ? coreOfNode.get(inc.node) : null;
      if (core) this.guard(() => this.checker.check(id, core));
    }
  }

  private guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.fail(err instanceof Error ? err.message : String(err));
    }
  }

  private fail(message: string): void {
    if (this.failure !== null) return;
    this.failure = `${message} (at virtual ${this.scheduler.now.toFixed(1)} ms, ${this.phase} phase)`;
    this.trace(`FAILURE: ${this.failure}`);
  }

  private describe(): string {
    return this.ids
      .map((id) => {
        const inc = this.incarnations.get(id);
        const c = inc ? coreOfNode.get(inc.node) : undefined;
        if (!inc?.alive || !c) return `${id}: down`;
        const peers = inc.node.status().peers.map((p) => `${p.id}:${p.state}/m${p.matchIndex}/n${p.nextIndex}`).join(",");
        return `${id}: ${c.role} t${c.term} leader=${c.leader} last=${c.log.lastIndex()} commit=${c.log.committed} applied=${inc.node.status().appliedIndex}${peers ? ` [${peers}]` : ""}`;
      })
      .join("; ");
  }

  private trace(line: string): void {
    this.options.trace?.(`[${this.scheduler.now.toFixed(1)}ms] ${line}`);
  }

  private result(): SimulationResult {
    let maxTerm = 0;
    let commitIndex = 0;
    for (const inc of this.incarnations.values()) {
      const c = coreOfNode.get(inc.node);
      if (c) {
        maxTerm = Math.max(maxTerm, c.term);
        commitIndex = Math.max(commitIndex, c.log.committed);
      }
    }
    return {
      seed: this.seed,
      nodes: this.ids.length,
      ok: this.failure === null,
      failure: this.failure,
      knobs: this.knobs,
      stats: { virtualMs: this.scheduler.now, events: this.events, ...this.counts, maxTerm, commitIndex, network: { ...this.network.stats } },
    };
  }
}
