import type { NodeId } from "../core/messages.js";
import { RaftError, isRaftError } from "../errors.js";
import { RaftClient, type SessionTarget } from "../node/client.js";
import type { Raft } from "../core/raft.js";
import { coreOfNode } from "../node/internal.js";
import type { ReadOptions, RequestOptions } from "../node/proposals.js";
import { RaftNode } from "../node/raft-node.js";
import { SessionStateMachine, type SessionCommand, type SessionResult } from "../node/sessions.js";
import type { ApplyMeta, StateMachine } from "../state-machine.js";
import { snapshotBytes, snapshotSlice, sourceChunks, type SnapshotData, type SnapshotSource } from "../snapshot-data.js";
import { checkLinearizable, HistoryRecorder, partitionBy, type History, type Model, type Operation } from "./linearizability.js";
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
  /** Unique per proposed command in a run (`c1`, `c2`...); a retry carries the same id. */
  readonly id: string;
  /** The user's command. */
  readonly cmd: Cmd;
}

/**
 * What the simulator's wrapper state machine returns: the user's result plus where the
 * command was applied.
 * @public
 */
export interface SimResult<Result> {
  /** The index the command was applied at. */
  readonly index: number;
  /** The term of its entry. */
  readonly term: number;
  /** What the user's state machine returned. */
  readonly result: Result;
}

/**
 * Every knob of a simulated run. All are drawn from the seed unless given; the run prints
 * them first, so a failure can be understood and replayed.
 * @public
 */
export interface SimulationKnobs {
  /** The network's fault rates during the fault phase (reliable in the liveness phase). */
  readonly network: NetworkFaults;
  /** Virtual milliseconds per tick. */
  readonly tickMs: number;
  /** The nodes' `electionTicks`. */
  readonly electionTicks: number;
  /** The nodes' `heartbeatTicks`. */
  readonly heartbeatTicks: number;
  /** The nodes' `maxInflight`. */
  readonly maxInflight: number;
  /** The nodes' `maxEntriesPerMessage`. */
  readonly maxEntriesPerMessage: number;
  /** Storage write latency range, virtual milliseconds. */
  readonly storageLatencyMs: readonly [number, number];
  /** Mean virtual milliseconds between client proposals. */
  readonly proposeEveryMs: number;
  /** Mean virtual milliseconds between client reads. */
  readonly readEveryMs: number;
  /** Mean virtual milliseconds between fault events (crash, restart, partition, heal). */
  readonly faultEveryMs: number;
  /** Whether nodes crash (and restart) during the fault phase. */
  readonly crashes: boolean;
  /** Whether the network partitions during the fault phase. */
  readonly partitions: boolean;
  /** Client request deadline, virtual milliseconds. */
  readonly requestTimeoutMs: number;
  /** The nodes' `snapshotThreshold`: entries between automatic snapshots (0: never). */
  readonly snapshotThreshold: number;
  /** The nodes' `trailingEntries`: entries kept behind a snapshot. */
  readonly trailingEntries: number;
  /** The nodes' `snapshotChunkBytes`. */
  readonly snapshotChunkBytes: number;
  /** How many of the nodes start as voters; the others start empty and wait to be added. */
  readonly initialVoters: number;
  /** Whether to add and remove members and transfer leadership at random. */
  readonly membership: boolean;
  /**
   * Whether clients propose through `RaftClient` sessions (the nodes' state machines
   * wrapped in a `SessionStateMachine`), retrying each command with the same
   * (client id, seq) through crashes, partitions and lost messages until its deadline.
   * Otherwise each proposal is one `RaftNode.propose()` call, never retried.
   */
  readonly sessions: boolean;
  /** How many session clients propose concurrently (when `sessions`). */
  readonly clients: number;
  /** The state machines' session timeout, in log-time milliseconds (when `sessions`). */
  readonly sessionTimeoutMs: number;
  /**
   * The fraction of client reads made with `read({ mode: "lease" })` (served from the
   * leader's lease when it holds one); the others use ReadIndex. Either way every read must
   * observe every write that completed before it began.
   */
  readonly leaseReads: number;
  /**
   * The nodes' `maxClockDrift`: the clock drift their lease reads tolerate (see
   * `RaftNodeOptions.maxClockDrift`).
   */
  readonly maxClockDrift: number;
  /**
   * How far the nodes' clocks drift: each node's clock runs at a rate drawn once per node
   * from [1 - clockDrift/2, 1 + clockDrift/2] (local milliseconds per virtual millisecond;
   * often at an end of that range), so two clocks' rates differ by less than about
   * `clockDrift`. Drawn below `maxClockDrift`, where lease reads must stay linearizable.
   * Given at or above `maxClockDrift` (never drawn), the run leaves the allowance that
   * raftkit promises lease reads for: a lease read may then be stale, and the run fail on it.
   */
  readonly clockDrift: number;
  /**
   * Whether the default state machine's `snapshot()` returns a promise, resolved a few
   * virtual milliseconds later with the state captured at the call, so that the node
   * goes on applying while the bytes are produced. Ignored with `createStateMachine`.
   */
  readonly asyncSnapshots: boolean;
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
  /** The run's seed. */
  readonly seed: number;
  /** The cluster size. */
  readonly nodes: number;
  /** Whether the run passed: no safety violation, no node stopped on an error, liveness reached. */
  readonly ok: boolean;
  /** What broke (a safety violation, a node error, or missed liveness), or null. */
  readonly failure: string | null;
  /** The knobs the run used, drawn or given. */
  readonly knobs: SimulationKnobs;
  /** What happened: virtual time, events, client operations and outcomes, faults, the highest term and commit index. */
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
    /** Reads made with `mode: "lease"` (counted in `reads` too). */
    readonly leaseReads: number;
    /** Lease reads that resolved (counted in `readsServed` too). */
    readonly leaseReadsServed: number;
    /** Snapshots the nodes' state machines produced (automatic compaction or `snapshot()`). */
    readonly snapshots: number;
    /** Snapshots the nodes' state machines restored: from the leader, or from storage on a restart. */
    readonly restores: number;
    /** Client calls rejected with `SESSION_EXPIRED` (session runs). */
    readonly sessionsExpired: number;
    /** Operations in the recorded history (proposals and reads of the default workload). */
    readonly historyOps: number;
    /**
     * What the linearizability check of the history concluded: `unchecked` for a custom
     * workload or a run that failed before the check; `unknown` when the search ran out of
     * time (not a failure).
     */
    readonly linearizability: "valid" | "invalid" | "unknown" | "unchecked";
  };
}

/**
 * Snapshot knobs. Tiny chunks only go with snapshots rare enough for a transfer to finish
 * before the next one replaces it: with a new snapshot every few entries, no entries kept
 * behind it and 64-byte chunks under load, a lagging follower installs snapshot after
 * snapshot and never catches up within the liveness bound (each transfer completes, but
 * the log is compacted past it again before the next entries arrive). That is a capacity
 * limit of the setting, not a protocol fault.
 */
function snapshotKnobs(rng: Prng): { snapshotThreshold: number; trailingEntries: number; snapshotChunkBytes: number } {
  const snapshotThreshold = rng.pick([0, 10, 50, 200]);
  // A snapshot every few entries with nothing kept behind it leaves a lagging follower
  // installing snapshot after snapshot under load: keep a tail then.
  const trailingEntries = snapshotThreshold > 0 && snapshotThreshold <= 10 ? 100 : rng.pick([0, 5, 100]);
  const snapshotChunkBytes = rng.pick(snapshotThreshold > 0 && snapshotThreshold <= 10 ? [1024, 1 << 20] : [64, 1024, 1 << 20]);
  return { snapshotThreshold, trailingEntries, snapshotChunkBytes };
}

/**
 * Draws the knobs of a run from its seed's generator.
 * @param rng - The generator; `runSimulation` passes a fork of the seed's.
 * @returns Every knob.
 * @public
 */
export function drawKnobs(rng: Prng): SimulationKnobs {
  const maxDelay = rng.pick([2, 5, 10, 30]);
  // A narrow pipeline (few entries per message, few messages in flight) is a stress
  // setting; paired with a heavy load it builds a backlog that no bound on catching up
  // could fairly cover, so it gets a light load.
  const maxEntriesPerMessage = rng.pick([1, 8, 4096]);
  const maxInflight = rng.pick([1, 4, 64, 256]);
  const narrow = maxEntriesPerMessage * maxInflight < 64;
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
    maxInflight,
    maxEntriesPerMessage,
    storageLatencyMs: rng.pick([[0.05, 0.5], [0.2, 2], [1, 8]] as const),
    proposeEveryMs: narrow ? 20 : rng.pick([2, 5, 20]),
    readEveryMs: rng.pick([5, 20, 50]),
    faultEveryMs: rng.pick([150, 400, 1000]),
    crashes: rng.chance(0.75),
    partitions: rng.chance(0.75),
    requestTimeoutMs: rng.pick([500, 2000]),
    ...snapshotKnobs(rng),
    initialVoters: 0, // 0: every node; resolved against the cluster size by the run
    membership: rng.chance(0.4),
    // Drawn last, so that the knobs above stay what they were for every seed.
    sessions: rng.chance(0.5),
    clients: rng.pick([1, 3, 8]),
    sessionTimeoutMs: rng.pick([1000, 60_000]),
    // Drawn after the knobs above, for the same reason.
    ...drawLeaseAndSnapshotKnobs(rng),
  };
}

function drawLeaseAndSnapshotKnobs(rng: Prng): Pick<SimulationKnobs, "leaseReads" | "maxClockDrift" | "clockDrift" | "asyncSnapshots"> {
  const leaseReads = rng.pick([0, 0.5, 1]);
  const maxClockDrift = rng.pick([0.05, 0.1, 0.25]);
  // Within the allowance, up to just below it; no drift at all a quarter of the time.
  const clockDrift = rng.chance(0.25) ? 0 : rng.between(0, 0.99 * maxClockDrift);
  return { leaseReads, maxClockDrift, clockDrift, asyncSnapshots: rng.chance(0.5) };
}

/**
 * The node's command and result types: plain simulator commands, or the same inside
 * client sessions. The simulator talks to both through {@link Incarnation}'s typed views.
 */
type SimNode<Cmd, Result> = RaftNode<SimCommand<Cmd>, SimResult<Result>> | RaftNode<SessionCommand<SimCommand<Cmd>>, SessionResult<SimResult<Result>>>;

interface Incarnation<Cmd, Result> {
  readonly node: SimNode<Cmd, Result>;
  /** The user's state machine on this incarnation (read after a linearizable read). */
  readonly user: StateMachine<Cmd, Result>;
  readonly clock: NodeClock;
  readonly storage: SimStorage;
  alive: boolean;
}

/**
 * Reduces the operations of unknown outcome in a register-map history without changing
 * whether it is linearizable. Values are unique per put, so a completed operation that
 * returned (or whose put replaced) value v observed the put of v.
 * - Reads of unknown outcome are left out: they change nothing and constrain nothing.
 * - Unknown puts that no completed operation observed are left out: in a linearization,
 *   only other unknown puts can come between such a put and the next change of state (a
 *   completed operation there would have observed it), so dropping it keeps the rest
 *   legal; and a linearization of the rest extends to one with the put placed last.
 * - An unknown put that was observed precedes every observer in any linearization, so it
 *   may be given the earliest observer's return as its own (its output still unknown):
 *   whatever is called after that return follows the observer, hence the put.
 */
function reduceUnknowns(all: History<RegisterOp, number | null>): Operation<RegisterOp, number | null>[] {
  const observedBy = new Map<number, number>(); // value -> earliest return of an operation that observed it
  for (const op of all) {
    if (op.return === undefined || op.output === null || op.output === undefined) continue;
    observedBy.set(op.output, Math.min(op.return, observedBy.get(op.output) ?? Infinity));
  }
  const reduced: Operation<RegisterOp, number | null>[] = [];
  for (const op of all) {
    if (op.return !== undefined) reduced.push(op);
    else if (op.input.op === "put" && observedBy.has(op.input.value)) {
      const by = observedBy.get(op.input.value)!;
      // Observed before it was called: not linearizable; left as it is for the checker to explain.
      reduced.push(by >= op.call ? { ...op, output: undefined, return: by } : op);
    }
  }
  return reduced;
}

/** A simulated client with a session: see `Simulation.makeClient`. */
interface SimClient<Cmd, Result> {
  readonly name: string;
  readonly client: RaftClient<SimCommand<Cmd>, SimResult<Result>>;
  /** The client's own clock: its timers outlive any node. */
  readonly clock: NodeClock;
  readonly rng: Prng;
  /** The node it talks to, while that one is alive. */
  home: NodeId | null;
}

function plainNode<Cmd, Result>(node: SimNode<Cmd, Result>): RaftNode<SimCommand<Cmd>, SimResult<Result>> {
  return node as RaftNode<SimCommand<Cmd>, SimResult<Result>>;
}

function sessionNode<Cmd, Result>(node: SimNode<Cmd, Result>): RaftNode<SessionCommand<SimCommand<Cmd>>, SessionResult<SimResult<Result>>> {
  return node as RaftNode<SessionCommand<SimCommand<Cmd>>, SessionResult<SimResult<Result>>>;
}

/** Resolves after every pending microtask has run: one step's consequences settle. */
function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * The default workload's state machine: puts into a map of registers, each returning the
 * previous value. With `snapshotDelay`, `snapshot()` captures the state at the call and
 * returns a promise of its bytes that `snapshotDelay` resolves later (in virtual time, on the
 * node's clock, so that it never resolves once the node crashed).
 */
class RegisterMap implements StateMachine<{ key: string; value: number }, number | null> {
  private values = new Map<string, number>();
  constructor(private readonly snapshotDelay?: (resolve: () => void) => void) {}
  apply(cmd: { key: string; value: number }): number | null {
    const prev = this.values.get(cmd.key) ?? null;
    this.values.set(cmd.key, cmd.value);
    return prev;
  }
  get(key: string): number | null {
    return this.values.get(key) ?? null;
  }
  snapshot(): Uint8Array | Promise<Uint8Array> {
    const bytes = new TextEncoder().encode(JSON.stringify([...this.values]));
    const delay = this.snapshotDelay;
    if (delay === undefined) return bytes;
    return new Promise((resolve) => delay(() => resolve(bytes)));
  }
  async restore(data: SnapshotData): Promise<void> {
    this.values = new Map(JSON.parse(new TextDecoder().decode(await snapshotBytes(data))) as [string, number][]);
  }
}

/** An operation of the default workload's history: a put (returning the previous value) or a linearizable read. */
type RegisterOp = { readonly op: "put"; readonly key: string; readonly value: number } | { readonly op: "get"; readonly key: string };

/** The sequential specification of {@link RegisterMap} plus reads: one register per key. */
const registerMapModel: Model<number | null, RegisterOp, number | null> = {
  init: () => null,
  step: (state, input, output) => {
    const ok = output === undefined || output === state;
    return { ok, state: input.op === "put" ? input.value : state };
  },
  hash: (state) => String(state),
  readOnly: (input) => input.op === "get",
  partition: partitionBy<RegisterOp, number | null>((input) => input.key),
  describeOperation: (input, output) => {
    const shown = output === undefined ? "?" : String(output);
    return input.op === "put" ? `put(${input.key}, ${input.value}) -> previous ${shown}` : `get(${input.key}) -> ${shown}`;
  },
  describeState: (state) => String(state),
};

/** The real-time budget of the linearizability check of one run. */
const LINEARIZABILITY_BUDGET_MS = 5000;

/**
 * The simulator's snapshot: which commands it includes (a 4-byte length and JSON), then
 * the user's state machine's own snapshot, streamed through.
 */
async function* encodeSimSnapshot(ids: readonly string[], user: SnapshotSource): AsyncGenerator<Uint8Array, void, undefined> {
  const header = new TextEncoder().encode(JSON.stringify(ids));
  const prefix = new Uint8Array(4 + header.byteLength);
  new DataView(prefix.buffer).setUint32(0, header.byteLength);
  prefix.set(header, 4);
  yield prefix;
  yield* sourceChunks(user);
}

async function decodeSimSnapshot(data: SnapshotData): Promise<{ ids: string[]; user: SnapshotData }> {
  const length = await data.read(0, 4);
  const headerBytes = new DataView(length.buffer, length.byteOffset, 4).getUint32(0);
  const header = await data.read(4, headerBytes);
  return { ids: JSON.parse(new TextDecoder().decode(header)) as string[], user: snapshotSlice(data, 4 + headerBytes) };
}

/**
 * Runs a whole cluster of RaftNodes in one process, in virtual time, under a
 * seeded schedule of faults: message loss, delay, reordering and duplication, symmetric
 * and one-way partitions, crash-restarts (durable storage survives, memory does not,
 * unfinished writes are lost), and clocks that drift within the nodes' `maxClockDrift`.
 * Clients propose and read throughout, some reads from the leader's lease; the default
 * state machine's snapshots are sometimes produced asynchronously.
 *
 * After every step it checks Raft's safety properties (election safety, log matching,
 * leader completeness, state machine safety, a commit index that never moves back) and that
 * every read observes every write that completed before it began. Then it heals every
 * fault and requires a leader and a commit within a bound of ticks.
 *
 * With the `sessions` knob, clients propose through `RaftClient` sessions and
 * retry through every fault; the checker's "applied twice" rule then checks exactly-once
 * delivery, since every retry carries the same command id. With the default workload
 * every client operation (puts, and reads of the value a linearizable read returns) is
 * recorded, timed-out ones as unknown, and the history must pass {@link checkLinearizable}.
 *
 * @example
 * ```ts
 * const result = await runSimulation({ seed: 42, nodes: 5 });
 * if (!result.ok) throw new Error(`seed 42: ${result.failure}`);
 * ```
 * @param options - The seed, the cluster size, knob overrides, and the state machine and
 * workload to test (a key-value register map by default).
 * @returns The outcome; `ok` is false with `failure` set on the first violation.
 * @throws RangeError when `nodes` is not an integer from 1 to 9, `knobs.clockDrift` is not
 * in [0, 2), or `knobs.leaseReads` not in [0, 1].
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
  private readonly counts = {
    proposals: 0,
    resolved: 0,
    failed: 0,
    reads: 0,
    readsServed: 0,
    leaseReads: 0,
    leaseReadsServed: 0,
    snapshots: 0,
    restores: 0,
    crashes: 0,
    partitions: 0,
    sessionsExpired: 0,
  };
  /** Which reads use a lease: a stream of its own, so that the client stream stays as it was. */
  private readonly leaseRng: Prng;
  /** Each node's clock rate (local milliseconds per virtual millisecond), fixed for the run. */
  private readonly clockRates = new Map<NodeId, number>();
  /** Delays of the default state machine's asynchronous snapshots. */
  private readonly snapshotRng: Prng;
  /** The client operations of the default workload (null for a custom one, which has no model here). */
  private readonly history: HistoryRecorder<RegisterOp, number | null> | null;

  private linearizability: SimulationResult["stats"]["linearizability"] = "unchecked";
  /** Where and with what result each command was first applied (by any node), by command id. */
  private readonly firstApplied = new Map<string, { time: number; result: number | null }>();
  /** The session clients (when the `sessions` knob is on). */
  private readonly clients: SimClient<Cmd, Result>[] = [];
  private phase: "faults" | "liveness" | "done" = "faults";

  constructor(private readonly options: SimulationOptions<Cmd, Result>) {
    this.seed = options.seed;
    const n = options.nodes ?? 3;
    if (!Number.isInteger(n) || n < 1 || n > 9) throw new RangeError(`simulation option 'nodes' must be an integer from 1 to 9 (got ${n})`);
    this.ids = Array.from({ length: n }, (_, i) => `n${i + 1}`);
    this.rng = new Prng(this.seed);
    const drawn = { ...drawKnobs(this.rng.fork()), ...options.knobs };
    if (options.knobs?.maxClockDrift !== undefined && options.knobs.clockDrift === undefined) {
      // Keep a drawn drift inside a given allowance, where it was drawn relative to the drawn one.
      drawn.clockDrift = Math.min(drawn.clockDrift, 0.99 * options.knobs.maxClockDrift);
    }
    // Membership runs often start smaller than the pool, to grow and shrink.
    const initialVoters = drawn.initialVoters > 0 ? Math.min(drawn.initialVoters, n) : drawn.membership ? 1 + this.rng.int(n) : n;
    this.knobs = { ...drawn, initialVoters };
    if (!(drawn.clockDrift >= 0 && drawn.clockDrift < 2)) throw new RangeError(`simulation knob 'clockDrift' must be at least 0 and below 2 (got ${drawn.clockDrift})`);
    if (!(drawn.leaseReads >= 0 && drawn.leaseReads <= 1)) throw new RangeError(`simulation knob 'leaseReads' must be from 0 to 1 (got ${drawn.leaseReads})`);
    this.network = new SimNetwork(this.scheduler, this.rng.fork(), this.knobs.network);
    this.clientRng = this.rng.fork();
    this.faultRng = this.rng.fork();
    this.history = options.createStateMachine === undefined && options.nextCommand === undefined ? new HistoryRecorder({ clock: () => this.scheduler.now }) : null;
    // Streams of their own, derived from the seed, so that the streams above stay as they were.
    if (this.knobs.sessions) {
      const sessionRng = new Prng(this.seed ^ 0x5e55_1015);
      for (let i = 0; i < this.knobs.clients; i++) this.clients.push(this.makeClient(`client${i + 1}`, sessionRng.fork()));
    }
    const leaseAndSnapshotRng = new Prng(this.seed ^ 0x1ea5_e5ad);
    this.leaseRng = leaseAndSnapshotRng.fork();
    this.snapshotRng = leaseAndSnapshotRng.fork();
    const driftRng = leaseAndSnapshotRng.fork();
    const d = this.knobs.clockDrift;
    for (const id of this.ids) {
      // The ends of the range half the time: the fastest and slowest clocks test the bound.
      const rate = d === 0 ? 1 : driftRng.chance(0.5) ? 1 + (driftRng.chance(0.5) ? d : -d) / 2 : 1 + driftRng.between(-d / 2, d / 2);
      this.clockRates.set(id, rate);
    }
  }

  async run(): Promise<SimulationResult> {
    const k = this.knobs;
    this.trace(`seed ${this.seed} nodes ${this.ids.length} knobs ${JSON.stringify(k)}`);
    if (k.clockDrift > 0) this.trace(`clock rates ${this.ids.map((id) => `${id}=${this.clockRates.get(id)!.toFixed(4)}`).join(" ")}`);
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
    for (const c of this.clients) c.clock.kill();
    if (this.failure === null) this.checkHistory();
    return this.result();
  }

  /**
   * Checks the recorded history against the register-map model; a non-linearizable one
   * fails the run with the checker's explanation.
   *
   * Operations of unknown outcome (timed out, or pending when the run ended) make the
   * search exponential: each may take effect at any later moment, or never. Faults keep
   * many in flight at once, so the history is first completed from the log: every unknown
   * put that some node applied gets the result it was applied with and, as its return, the
   * moment it was first applied (it committed, so took effect, before then and after its
   * call); unknown puts never applied and unknown reads are left out (they certainly took
   * no effect; an entry still uncommitted at the end can only take effect after every
   * operation). That history only adds constraints to the one the clients saw, so if it
   * is linearizable so is theirs. Only when it is not is the clients' own history checked,
   * to tell a violation that clients could see from results that disagree with the log.
   */
  private checkHistory(): void {
    if (this.history === null) return;
    const seen = this.history.history();
    const completed: Operation<RegisterOp, number | null>[] = [];
    for (const op of seen) {
      if (op.return !== undefined) completed.push(op);
      else if (op.input.op === "put") {
        const applied = this.firstApplied.get(`c${op.input.value}`);
        if (applied !== undefined) completed.push({ ...op, output: applied.result, return: Math.max(op.call, applied.time) });
      }
    }
    const budget = { timeBudgetMs: LINEARIZABILITY_BUDGET_MS };
    const result = checkLinearizable(completed, registerMapModel, budget);
    this.trace(`linearizability of the history completed from the log: ${result.outcome} (${completed.length} operations, ${result.elapsedMs.toFixed(0)} ms)`);
    if (result.outcome === "valid") {
      this.linearizability = "valid";
      return;
    }
    const own = reduceUnknowns(seen);
    const clients = checkLinearizable(own, registerMapModel, budget);
    const unknown = own.filter((op) => op.output === undefined).length;
    this.trace(`linearizability of the clients' history: ${clients.outcome} (${own.length} operations, ${unknown} of unknown outcome; ${clients.elapsedMs.toFixed(0)} ms)`);
    if (clients.outcome === "invalid") {
      this.linearizability = "invalid";
      this.fail(`linearizability: ${clients.message}`);
    } else if (result.outcome === "invalid") {
      this.linearizability = "invalid";
      this.fail(
        `linearizability: the results that unknown-outcome puts were applied with contradict the history` +
          ` (the clients' own history is ${clients.outcome === "valid" ? "linearizable" : "undecided"}): ${result.message}`,
      );
    } else this.linearizability = clients.outcome;
  }

  // ------------------------------------------------------------ nodes

  private async startNode(id: NodeId): Promise<void> {
    const k = this.knobs;
    const clock = this.scheduler.clock(this.clockRates.get(id));
    const storage = new SimStorage(this.disks.get(id)!, this.scheduler, this.rng.fork(), k.storageLatencyMs[0], k.storageLatencyMs[1]);
    const snapshotRng = this.snapshotRng;
    const snapshotDelay = k.asyncSnapshots ? (resolve: () => void) => void clock.setTimeout(resolve, snapshotRng.between(1, 40)) : undefined;
    const user = this.options.createStateMachine?.(id) ?? (new RegisterMap(snapshotDelay) as unknown as StateMachine<Cmd, Result>);
    const counts = this.counts;
    const checker = this.checker;
    const firstApplied = this.history === null ? null : this.firstApplied;
    const now = (): number => this.scheduler.now;
    let appliedIds: string[] = [];
    // With sessions this sits inside the SessionStateMachine: it sees each command once per
    // application, so a retry that got past the session cache shows as "applied twice".
    const stateMachine: StateMachine<SimCommand<Cmd>, SimResult<Result>> = {
      async apply(command: SimCommand<Cmd>, meta: ApplyMeta): Promise<SimResult<Result>> {
        checker.onApply(id, meta.index, command.id);
        appliedIds.push(command.id);
        const result = await user.apply(command.cmd, meta);
        if (firstApplied !== null && !firstApplied.has(command.id)) firstApplied.set(command.id, { time: now(), result: result as number | null });
        return { index: meta.index, term: meta.term, result };
      },
    };
    if (user.snapshot && user.restore) {
      const snapshotUser = user.snapshot.bind(user);
      const restoreUser = user.restore.bind(user);
      // RaftNode's contract: the state is captured at the call, whenever the bytes come.
      // So the ids are copied now, and the answer is a promise only when the user's is.
      stateMachine.snapshot = () => {
        const ids = [...appliedIds];
        const captured = snapshotUser();
        return (async function* () {
          yield* encodeSimSnapshot(ids, await captured);
          counts.snapshots++;
        })();
      };
      stateMachine.restore = async (data) => {
        const { ids, user: bytes } = await decodeSimSnapshot(data);
        await restoreUser(bytes);
        appliedIds = ids;
        checker.onRestore(id, ids);
        counts.restores++;
      };
    }
    const jitter = this.rng.fork();
    const nodeStateMachine = k.sessions ? new SessionStateMachine(stateMachine, { sessionTimeoutMs: k.sessionTimeoutMs }) : stateMachine;
    const node: SimNode<Cmd, Result> = new RaftNode<unknown, unknown>({
      id,
      peers: this.ids.slice(0, this.knobs.initialVoters).includes(id) ? this.ids.slice(0, this.knobs.initialVoters) : [],
      stateMachine: nodeStateMachine as StateMachine<unknown, unknown>,
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
      maxClockDrift: k.maxClockDrift,
    }) as SimNode<Cmd, Result>;
    node.on("error", (err) => this.fail(`${id} stopped on an error: ${err.message}${err.cause instanceof Error ? ` (${err.cause.message})` : ""}`));
    node.on("role", (role, term) => this.trace(`${id} is ${role} in term ${term}`));
    this.checker.startIncarnation(id);
    const inc: Incarnation<Cmd, Result> = { node, user, clock, storage, alive: true };
    this.incarnations.set(id, inc);
    await node.start();
    this.trace(`${id} started`);
  }

  private kill(inc: Incarnation<Cmd, Result>): void {
    inc.alive = false;
    inc.clock.kill();
    inc.storage.crash();
    this.network.detach(inc.node.id);
    const image = inc.storage.disk.image;
    this.checker.onCrash(inc.node.id, (index, term) => {
      if (index < image.firstIndex) return true; // compacted: it was durable
      return image.entries[index - image.firstIndex]?.term === term;
    });
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

  /**
   * Proposes a new command: through a random session client, or on a random live node.
   * Returns the promise of its outcome (true: resolved), or null when nothing was proposed.
   */
  private propose(): Promise<boolean> | null {
    let who: string;
    let outcome: Promise<SimResult<Result>>;
    let command: SimCommand<Cmd>;
    if (this.knobs.sessions) {
      const c = this.clientRng.pick(this.clients);
      command = this.nextCommand();
      who = c.name;
      outcome = c.client.propose(command);
    } else {
      const live = this.liveIds();
      if (live.length === 0) return null;
      const id = this.clientRng.pick(live);
      command = this.nextCommand();
      who = id;
      outcome = plainNode(this.incarnations.get(id)!.node).propose(command);
    }
    this.counts.proposals++;
    const op = this.history?.invoke(who, { op: "put", ...(command.cmd as { key: string; value: number }) });
    return outcome.then(
      (r) => {
        this.counts.resolved++;
        this.guard(() => this.checker.onResolved(command.id, r.index, r.term));
        if (op !== undefined) this.history!.complete(op, r.result as number | null);
        return true;
      },
      (err: unknown) => {
        this.counts.failed++;
        if (isRaftError(err, "SESSION_EXPIRED")) this.counts.sessionsExpired++;
        if (!isRaftError(err)) this.fail(`proposal ${command.id} by ${who} rejected with a non-RaftError: ${String(err)}`);
        // Whatever the code, the command may have been applied (a timed-out attempt, an
        // earlier attempt before the session expired): its outcome is unknown.
        if (op !== undefined) this.history!.unknown(op);
        return false;
      },
    );
  }

  private read(): void {
    let inc: Incarnation<Cmd, Result> | null;
    let who: string;
    let reading: (options: ReadOptions) => Promise<void>;
    if (this.knobs.sessions) {
      const c = this.clientRng.pick(this.clients);
      inc = this.homeOf(c);
      who = c.name;
      reading = (options) => c.client.read(options); // served by its home node, `inc`
    } else {
      const live = this.liveIds();
      inc = live.length === 0 ? null : this.incarnations.get(this.clientRng.pick(live))!;
      who = inc?.node.id ?? "";
      reading = (options) => inc!.node.read(options);
    }
    if (inc === null) return;
    const served = inc;
    const lease = this.knobs.leaseReads > 0 && this.leaseRng.chance(this.knobs.leaseReads);
    if (lease) this.counts.leaseReads++;
    // Linearizability of reads: every write that completed before the read began must
    // be visible when it returns.
    const mustSee = this.checker.maxResolvedIndex();
    const key = `k${this.counts.reads % 5}`;
    this.counts.reads++;
    const op = this.history?.invoke(who, { op: "get", key });
    const mode = lease ? "lease" : "read-index";
    reading({ mode }).then(
      () => {
        this.counts.readsServed++;
        if (lease) this.counts.leaseReadsServed++;
        const applied = served.node.status().appliedIndex;
        if (applied < mustSee) this.fail(`stale ${mode} read on ${served.node.id}: applied ${applied} but a write at ${mustSee} completed before the read began`);
        if (op !== undefined) this.history!.complete(op, (served.user as unknown as RegisterMap).get(key));
      },
      (err: unknown) => {
        if (!isRaftError(err)) this.fail(`read on ${served.node.id} rejected with a non-RaftError: ${String(err)}`);
        if (op !== undefined) this.history!.unknown(op);
      },
    );
  }

  // ------------------------------------------------------------ session clients

  /**
   * A session client whose target is its home node while that lives; it picks a new home
   * (at random among the live nodes) when the home died or an attempt there failed, so
   * that it gets out of partitions. Its clock belongs to no node: it survives crashes.
   */
  private makeClient(name: string, rng: Prng): SimClient<Cmd, Result> {
    const k = this.knobs;
    const clock = this.scheduler.clock();
    const sim: { name: string; clock: NodeClock; rng: Prng; home: NodeId | null } = { name, clock, rng, home: null };
    const rehomeOnError = <T>(p: Promise<T>): Promise<T> =>
      p.catch((err: unknown) => {
        sim.home = null;
        throw err;
      });
    const target: SessionTarget<SimCommand<Cmd>, SimResult<Result>> = {
      propose: (command: SessionCommand<SimCommand<Cmd>>, options?: RequestOptions) => {
        const inc = this.homeOf(sim);
        if (inc === null) return Promise.reject(new RaftError("NO_LEADER", "no node is up"));
        return rehomeOnError(sessionNode(inc.node).propose(command, options));
      },
      read: (options) => {
        const inc = this.homeOf(sim);
        if (inc === null) return Promise.reject(new RaftError("NO_LEADER", "no node is up"));
        return rehomeOnError(inc.node.read(options));
      },
    };
    const client = new RaftClient<SimCommand<Cmd>, SimResult<Result>>(target, {
      clock,
      now: () => Math.floor(this.scheduler.now),
      random: () => rng.next(),
      requestTimeoutMs: k.requestTimeoutMs,
      attemptTimeoutMs: Math.min(k.requestTimeoutMs, 2 * k.electionTicks * k.tickMs),
      retryDelayMs: k.tickMs,
      maxRetryDelayMs: 5 * k.tickMs,
      keepAliveIntervalMs: k.sessionTimeoutMs / 4,
    });
    return Object.assign(sim, { client });
  }

  /** The client's home node, choosing a live one when it has none; null when every node is down. */
  private homeOf(c: { rng: Prng; home: NodeId | null }): Incarnation<Cmd, Result> | null {
    const current = c.home === null ? undefined : this.incarnations.get(c.home);
    if (current?.alive) return current;
    const live = this.liveIds();
    if (live.length === 0) return null;
    c.home = c.rng.pick(live);
    return this.incarnations.get(c.home)!;
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
    const live = new Map<NodeId, Raft>();
    for (const id of this.ids) {
      const inc = this.incarnations.get(id);
      const core = inc?.alive ? coreOfNode.get(inc.node) : null;
      if (core) {
        live.set(id, core);
        this.guard(() => this.checker.check(id, core));
      }
    }
    for (const [id, core] of live) if (core.role === "leader") this.guard(() => this.checker.checkReplication(id, core, live));
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
      stats: {
        virtualMs: this.scheduler.now,
        events: this.events,
        ...this.counts,
        maxTerm,
        commitIndex,
        network: { ...this.network.stats },
        historyOps: this.history?.history().length ?? 0,
        linearizability: this.linearizability,
      },
    };
  }
}
