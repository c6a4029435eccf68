import type { Codec } from "../codec.js";
import { jsonCodec } from "../codec.js";
import type { NodeId } from "../core/messages.js";
import type { Logger } from "../logger.js";
import { silentLogger } from "../logger.js";
import type { StateMachine } from "../state-machine.js";
import type { RaftStorage } from "../storage/storage.js";
import type { Transport } from "../transport/transport.js";
import type { Clock } from "./clock.js";
import { systemClock } from "./clock.js";

/**
 * Options for {@link RaftNode}. Validated at construction: a bad value throws a
 * `TypeError` or `RangeError` that names the option. Only `id`, `peers`, `stateMachine`,
 * `storage` and `transport` are required; time is in ticks of `tickMs` milliseconds.
 *
 * @example
 * ```ts
 * const options: RaftNodeOptions<KvCommand, KvResult> = {
 *   id: "a",
 *   peers: { a: "10.0.0.1:7001", b: "10.0.0.2:7001", c: "10.0.0.3:7001" },
 *   stateMachine: new KvStateMachine(),
 *   storage: new LevelStorage({ location: "/var/lib/app/raft", nodeId: "a" }),
 *   transport: new TcpTransport({ id: "a", listen: "0.0.0.0:7001", peers: { b: "10.0.0.2:7001", c: "10.0.0.3:7001" } }),
 *   tickMs: 50, // election timeout 0.5 to 1 s, heartbeat every 50 ms
 * };
 * ```
 * @typeParam Cmd - The state machine's command type.
 * @typeParam Result - The state machine's result type.
 * @public
 */
export interface RaftNodeOptions<Cmd, Result> {
  /** This node's id; it must be one of `peers` (unless `peers` is empty). */
  readonly id: NodeId;
  /**
   * The cluster's initial voters, this node included: their ids, or a record from id to
   * address ("host:port") that becomes part of the configuration, so that transports
   * learn addresses from it as members come and go. Empty for a node that starts with
   * nothing and waits to be added to an existing cluster (it never campaigns until then).
   */
  readonly peers: readonly NodeId[] | Readonly<Record<NodeId, string>>;
  /** The replicated state machine. */
  readonly stateMachine: StateMachine<Cmd, Result>;
  /** Where the hard state and log are made durable. */
  readonly storage: RaftStorage;
  /** How messages reach the other nodes. */
  readonly transport: Transport;
  /**
   * Milliseconds per logical tick.
   * @defaultValue 100
   */
  readonly tickMs?: number;
  /**
   * Ticks a follower waits without hearing from a leader before it campaigns; the actual
   * wait is random in `[electionTicks + 1, 2 * electionTicks]` (from one tick past the
   * window in which followers refuse to replace a leader they heard). Must exceed `heartbeatTicks`.
   * @defaultValue 10
   */
  readonly electionTicks?: number;
  /**
   * Ticks between a leader's heartbeats.
   * @defaultValue 1
   */
  readonly heartbeatTicks?: number;
  /**
   * Uniform random numbers in [0, 1), for election jitter.
   * @defaultValue Math.random
   */
  readonly random?: () => number;
  /**
   * Where diagnostics go.
   * @defaultValue a logger that discards everything
   */
  readonly logger?: Logger;
  /**
   * How commands become bytes in the log and on the wire.
   * @defaultValue JSON
   */
  readonly codec?: Codec<Cmd>;
  /**
   * Time and timers; replace only to run the node in virtual time.
   * @defaultValue the system clock
   */
  readonly clock?: Clock;
  /**
   * Pre-vote (Raft dissertation §9.6): a node checks it could win before it raises its term.
   * @defaultValue true
   */
  readonly preVote?: boolean;
  /**
   * Check-quorum (dissertation §6.2): a leader that has not heard from a majority within
   * an election timeout steps down, and followers that heard from a leader recently
   * refuse votes.
   * @defaultValue true
   */
  readonly checkQuorum?: boolean;
  /**
   * Whether a follower forwards proposals to the leader. When false, `propose` on a
   * follower rejects with `NOT_LEADER` and the leader's id.
   * @defaultValue true
   */
  readonly forwardProposals?: boolean;
  /**
   * AppendEntries messages in flight per follower.
   * @defaultValue 256
   */
  readonly maxInflight?: number;
  /**
   * Bytes of entries in flight per follower.
   * @defaultValue 16 MiB
   */
  readonly maxInflightBytes?: number;
  /**
   * Entries per AppendEntries message.
   * @defaultValue 4096
   */
  readonly maxEntriesPerMessage?: number;
  /**
   * Approximate bytes of entries per AppendEntries message (one larger entry still goes alone).
   * @defaultValue 1 MiB
   */
  readonly maxBytesPerMessage?: number;
  /**
   * Proposals and reads waiting at once on this node; more reject with `BUSY`.
   * @defaultValue 100000
   */
  readonly maxPendingRequests?: number;
  /**
   * Take a snapshot and compact the log once this many entries were applied since the
   * last one. Needs a state machine with `snapshot()` and `restore()`; 0 turns automatic
   * snapshots off.
   * @defaultValue 10000
   */
  readonly snapshotThreshold?: number;
  /**
   * Entries kept in the log behind a snapshot, so that followers only briefly behind
   * catch up from the log instead of receiving the whole snapshot.
   * @defaultValue 1000
   */
  readonly trailingEntries?: number;
  /**
   * Bytes per chunk when sending a snapshot to a follower.
   * @defaultValue 1 MiB
   */
  readonly snapshotChunkBytes?: number;
  /**
   * The clock drift that lease reads tolerate, as a fraction: the lease lasts
   * `(electionTicks - 2) × (1 - maxClockDrift)` ticks after a majority acknowledged a
   * heartbeat. Lease reads need `checkQuorum`; without it they fall back to ReadIndex.
   * @defaultValue 0.1
   */
  readonly maxClockDrift?: number;
  /**
   * `addMember` promotes a learner to voter once its log is within this many entries of the leader's.
   * @defaultValue 100
   */
  readonly catchUpEntries?: number;
  /**
   * The deadline of `propose` and `read` calls that give no `timeoutMs`.
   * @defaultValue 10000
   */
  readonly requestTimeoutMs?: number;
}

/** The options with every default filled in. */
export interface ResolvedOptions<Cmd, Result> extends Required<Omit<RaftNodeOptions<Cmd, Result>, "peers">> {
  readonly peers: readonly NodeId[];
  readonly peerAddresses: Readonly<Record<NodeId, string>> | undefined;
}

function positiveInteger(name: string, value: unknown): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value <= 0) {
    throw new RangeError(`RaftNode option '${name}' must be a positive integer (got ${String(value)})`);
  }
  return value;
}

function nonNegativeInteger(name: string, value: unknown): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0) {
    throw new RangeError(`RaftNode option '${name}' must be a non-negative integer (got ${String(value)})`);
  }
  return value;
}

function fraction(name: string, value: unknown): number {
  if (typeof value !== "number" || !(value >= 0 && value < 1)) {
    throw new RangeError(`RaftNode option '${name}' must be a number in [0, 1) (got ${String(value)})`);
  }
  return value;
}

function positiveNumber(name: string, value: unknown): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) {
    throw new RangeError(`RaftNode option '${name}' must be a positive finite number (got ${String(value)})`);
  }
  return value;
}

function hasMethods(name: string, value: unknown, methods: readonly string[]): void {
  if (typeof value !== "object" || value === null) throw new TypeError(`RaftNode option '${name}' is required and must be an object`);
  for (const m of methods) {
    if (typeof (value as Record<string, unknown>)[m] !== "function") {
      throw new TypeError(`RaftNode option '${name}' must have a ${m}() method`);
    }
  }
}

/** Validates `options` and fills in defaults. */
export function resolveOptions<Cmd, Result>(options: RaftNodeOptions<Cmd, Result>): ResolvedOptions<Cmd, Result> {
  if (typeof options !== "object" || options === null) throw new TypeError("RaftNode options must be an object");
  const { id } = options;
  if (typeof id !== "string" || id.length === 0) throw new TypeError("RaftNode option 'id' must be a non-empty string");
  const given: unknown = options.peers;
  let peers: string[];
  let peerAddresses: Record<NodeId, string> | undefined;
  if (Array.isArray(given)) peers = [...(given as unknown[])] as string[];
  else if (typeof given === "object" && given !== null) {
    peerAddresses = { ...(given as Record<string, string>) };
    peers = Object.keys(peerAddresses);
    for (const [p, addr] of Object.entries(peerAddresses)) {
      if (typeof addr !== "string" || addr.length === 0) throw new TypeError(`RaftNode option 'peers' gives no address for '${p}'`);
    }
  } else throw new TypeError("RaftNode option 'peers' must be an array of node ids or a record from node id to address");
  for (const p of peers) if (typeof p !== "string" || p.length === 0) throw new TypeError("RaftNode option 'peers' must hold non-empty strings");
  if (new Set(peers).size !== peers.length) throw new RangeError("RaftNode option 'peers' lists a node twice");
  if (peers.length > 0 && !peers.includes(id)) throw new RangeError(`RaftNode option 'peers' must include this node's id '${id}'`);
  hasMethods("stateMachine", options.stateMachine, ["apply"]);
  hasMethods("storage", options.storage, ["load", "save", "compact", "close"]);
  hasMethods("transport", options.transport, ["start", "send", "stop"]);
  const r: ResolvedOptions<Cmd, Result> = {
    id,
    peers,
    peerAddresses,
    stateMachine: options.stateMachine,
    storage: options.storage,
    transport: options.transport,
    tickMs: positiveNumber("tickMs", options.tickMs ?? 100),
    electionTicks: positiveInteger("electionTicks", options.electionTicks ?? 10),
    heartbeatTicks: positiveInteger("heartbeatTicks", options.heartbeatTicks ?? 1),
    random: options.random ?? Math.random,
    logger: options.logger ?? silentLogger,
    codec: options.codec ?? jsonCodec<Cmd>(),
    clock: options.clock ?? systemClock,
    preVote: options.preVote ?? true,
    checkQuorum: options.checkQuorum ?? true,
    forwardProposals: options.forwardProposals ?? true,
    maxInflight: positiveInteger("maxInflight", options.maxInflight ?? 256),
    maxInflightBytes: positiveInteger("maxInflightBytes", options.maxInflightBytes ?? 16 * 1024 * 1024),
    maxEntriesPerMessage: positiveInteger("maxEntriesPerMessage", options.maxEntriesPerMessage ?? 4096),
    maxBytesPerMessage: positiveInteger("maxBytesPerMessage", options.maxBytesPerMessage ?? 1024 * 1024),
    maxPendingRequests: positiveInteger("maxPendingRequests", options.maxPendingRequests ?? 100_000),
    requestTimeoutMs: positiveNumber("requestTimeoutMs", options.requestTimeoutMs ?? 10_000),
    snapshotThreshold: nonNegativeInteger("snapshotThreshold", options.snapshotThreshold ?? 10_000),
    trailingEntries: nonNegativeInteger("trailingEntries", options.trailingEntries ?? 1_000),
    snapshotChunkBytes: positiveInteger("snapshotChunkBytes", options.snapshotChunkBytes ?? 1024 * 1024),
    catchUpEntries: nonNegativeInteger("catchUpEntries", options.catchUpEntries ?? 100),
    maxClockDrift: fraction("maxClockDrift", options.maxClockDrift ?? 0.1),
  };
  if (r.electionTicks <= r.heartbeatTicks) {
    throw new RangeError(`RaftNode option 'electionTicks' (${r.electionTicks}) must be greater than 'heartbeatTicks' (${r.heartbeatTicks})`);
  }
  if (typeof r.random !== "function") throw new TypeError("RaftNode option 'random' must be a function");
  hasMethods("codec", r.codec, ["encode", "decode"]);
  hasMethods("clock", r.clock, ["now", "setTimeout", "clearTimeout"]);
  hasMethods("logger", r.logger, ["debug", "info", "warn", "error"]);
  return r;
}
