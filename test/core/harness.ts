/**
 * A tiny deterministic harness for the pure core: build `Raft` instances directly, drain
 * their Ready the way a driver would (persist = advance, then send), and deliver messages
 * between them synchronously, with filters that drop or hold messages.
 */
import { votersConfig } from "../../src/core/membership.js";
import type {
  AppendEntriesMessage,
  ClusterConfig,
  Entry,
  EntryType,
  HardState,
  Message,
  MessageType,
  NodeId,
  RequestVoteMessage,
  Snapshot,
  SnapshotData,
  SnapshotMeta,
} from "../../src/core/messages.js";
import { Raft, type RaftOptions } from "../../src/core/raft.js";
import { concatBytes } from "../../src/snapshot-data.js";
import type { ProposalOutcome, Ready, ReadState } from "../../src/core/ready.js";

export const DEFAULTS: Omit<RaftOptions, "id"> = {
  electionTicks: 10,
  heartbeatTicks: 1,
  random: () => 0,
  preVote: false,
  checkQuorum: false,
  maxInflight: 256,
  maxInflightBytes: 1 << 30,
  maxEntriesPerMessage: 1000,
  maxBytesPerMessage: 1 << 30,
  maxApplyEntries: 1000,
  snapshotChunkBytes: 1 << 16,
  leaseTicks: 0,
};

/** A random source that returns `values` in turn, then repeats the last one. */
export function scripted(...values: number[]): () => number {
  let i = 0;
  return () => values[Math.min(i++, values.length - 1)]!;
}

const EMPTY = new Uint8Array(0);

/** Entries from index 1 with the given terms: `log(1, 1, 2)` is [1@t1, 2@t1, 3@t2]. */
export function log(...terms: number[]): Entry[] {
  return entriesFrom(1, ...terms);
}

/** Entries from `index` on with the given terms. */
export function entriesFrom(index: number, ...terms: number[]): Entry[] {
  return terms.map((term, i) => ({ index: index + i, term, type: "command" as EntryType, data: EMPTY }));
}

/** `count` copies of `term`, to spell long logs: `log(1, ...times(3, 2))`. */
export function times(count: number, term: number): number[] {
  return new Array<number>(count).fill(term);
}

/** Terms of a core's log, index 1 first: easy to compare with `log(...)`'s arguments. */
export function termsOf(r: Raft): number[] {
  const out: number[] = [];
  for (let i = r.log.firstIndex(); i <= r.log.lastIndex(); i++) out.push(r.log.term(i)!);
  return out;
}

export function item(text = "x"): { type: EntryType; data: Uint8Array } {
  return { type: "command", data: new TextEncoder().encode(text) };
}

export interface NodeSpec {
  /** Every voter, this node included (ignored when `config` is given). */
  peers?: NodeId[];
  config?: ClusterConfig;
  term?: number;
  vote?: NodeId | null;
  commit?: number;
  entries?: Entry[];
  options?: Partial<Omit<RaftOptions, "id">>;
}

export function newRaft(id: NodeId, spec: NodeSpec = {}): Raft {
  const config = spec.config ?? votersConfig(spec.peers ?? [id]);
  const hardState: HardState = { term: spec.term ?? 0, vote: spec.vote ?? null, commit: spec.commit ?? 0 };
  return new Raft({ ...DEFAULTS, ...spec.options, id }, { hardState, entries: spec.entries ?? [], firstIndex: 1, config });
}

/**
 * Snapshot bytes held in memory, readable synchronously by the harness (a real driver
 * reads a `SnapshotData` asynchronously; the core never reads it at all).
 */
class MemorySnapshotData implements SnapshotData {
  constructor(readonly bytes: Uint8Array) {}
  get byteLength(): number {
    return this.bytes.byteLength;
  }
  async read(offset: number, length: number): Promise<Uint8Array> {
    return this.bytes.subarray(offset, offset + length);
  }
}

/** A snapshot whose bytes the harness can read synchronously. */
export function memorySnapshot(meta: SnapshotMeta, bytes: Uint8Array): Snapshot {
  return { meta, data: new MemorySnapshotData(bytes) };
}

/** The bytes of a snapshot made by {@link memorySnapshot} (or installed by {@link drain}). */
export function bytesOf(snapshot: Snapshot): Uint8Array {
  if (!(snapshot.data instanceof MemorySnapshotData)) throw new Error("not a harness snapshot");
  return snapshot.data.bytes;
}

/** Per core: the chunks of the snapshot arriving from the leader, as a driver would write them. */
const arriving = new WeakMap<Raft, Uint8Array[]>();

/** What draining a core's Ready produced, all Readies merged. */
export interface Drained {
  readies: Ready[];
  messages: Message[];
  entries: Entry[];
  committed: Entry[];
  readStates: ReadState[];
  proposals: ProposalOutcome[];
  /** Snapshots received from a leader and installed. */
  installed: Snapshot[];
}

/** Handles every Ready the core has, as a driver would: persist (nothing to do), send (collect), apply, advance. */
export function drain(r: Raft): Drained {
  const d: Drained = { readies: [], messages: [], entries: [], committed: [], readStates: [], proposals: [], installed: [] };
  while (r.hasReady()) {
    const rd = r.ready();
    // Snapshot chunks: written (collected) as they arrive, installed when complete.
    for (const c of rd.snapshotIn) {
      if (c.offset === 0) arriving.set(r, []);
      arriving.get(r)!.push(c.data);
    }
    if (rd.snapshot !== null) {
      const installed = memorySnapshot(rd.snapshot, concatBytes(arriving.get(r)!));
      arriving.delete(r);
      d.installed.push(installed);
      r.snapshotInstalled(installed);
    }
    r.advance(rd);
    d.readies.push(rd);
    // Chunks to send: read at once (a driver reads them asynchronously).
    const chunks: Message[] = rd.snapshotOut.map((c) => ({
      type: "InstallSnapshot",
      from: r.id,
      to: c.to,
      term: c.term,
      meta: c.meta,
      offset: c.offset,
      data: (c.source as MemorySnapshotData).bytes.slice(c.offset, c.offset + c.length),
      done: c.done,
    }));
    d.messages.push(...rd.earlyMessages, ...chunks, ...rd.messages);
    d.entries.push(...rd.entries);
    d.committed.push(...rd.committedEntries);
    d.readStates.push(...rd.readStates);
    d.proposals.push(...rd.proposals);
  }
  return d;
}

export function ofType<T extends MessageType>(msgs: readonly Message[], type: T, to?: NodeId): Extract<Message, { type: T }>[] {
  return msgs.filter((m): m is Extract<Message, { type: T }> => m.type === type && (to === undefined || m.to === to));
}

export function requestVote(
  from: NodeId,
  to: NodeId,
  term: number,
  o: { lastIndex?: number; lastTerm?: number; preVote?: boolean; transfer?: boolean } = {},
): RequestVoteMessage {
  return { type: "RequestVote", from, to, term, lastIndex: o.lastIndex ?? 0, lastTerm: o.lastTerm ?? 0, preVote: o.preVote ?? false, transfer: o.transfer ?? false };
}

export function appendEntries(from: NodeId, to: NodeId, term: number, prevIndex: number, prevTerm: number, entries: Entry[] = [], commit = 0): AppendEntriesMessage {
  return { type: "AppendEntries", from, to, term, prevIndex, prevTerm, entries, commit };
}

type Rule = (m: Message) => boolean;

/** Cores wired together by synchronous, in-order delivery. */
export class Network {
  readonly nodes = new Map<NodeId, Raft>();
  /** Every message a node sent (whatever became of it), in order. */
  readonly sent: Message[] = [];
  /** Per node: committed entries handed out, read states, proposal outcomes. */
  readonly applied = new Map<NodeId, Entry[]>();
  readonly readStates = new Map<NodeId, ReadState[]>();
  readonly proposals = new Map<NodeId, ProposalOutcome[]>();
  /** Messages parked by `hold` until `release`. */
  held: Message[] = [];
  private queue: Message[] = [];
  private drops: Rule[] = [];
  private holds: Rule[] = [];

  constructor(rafts: Raft[]) {
    for (const r of rafts) {
      this.nodes.set(r.id, r);
      this.applied.set(r.id, []);
      this.readStates.set(r.id, []);
      this.proposals.set(r.id, []);
    }
  }

  /** A cluster of fresh voters `ids` with the same options (per-node overrides in `specs`). */
  static cluster(ids: NodeId[], options: NodeSpec["options"] = {}, specs: Record<NodeId, NodeSpec> = {}): Network {
    return new Network(ids.map((id) => newRaft(id, { peers: ids, ...specs[id], options: { ...options, ...specs[id]?.options } })));
  }

  get(id: NodeId): Raft {
    const r = this.nodes.get(id);
    if (r === undefined) throw new Error(`no node ${id}`);
    return r;
  }

  /** Drops every message matching `rule` from now on. */
  drop(rule: Rule): void {
    this.drops.push(rule);
  }

  /** Parks every message matching `rule` in `held`. */
  hold(rule: Rule): void {
    this.holds.push(rule);
  }

  /** Cuts `id` off from everyone, both ways. */
  isolate(id: NodeId): void {
    this.drop((m) => m.from === id || m.to === id);
  }

  /** Removes every drop and hold rule (held messages stay held until `release`). */
  heal(): void {
    this.drops = [];
    this.holds = [];
  }

  /** Queues the held messages (those matching `rule`, default all) for delivery. */
  release(rule: Rule = () => true): void {
    this.queue.push(...this.held.filter(rule));
    this.held = this.held.filter((m) => !rule(m));
  }

  tick(id: NodeId, n = 1): void {
    for (let i = 0; i < n; i++) this.get(id).tick();
  }

  tickAll(n = 1): void {
    for (let i = 0; i < n; i++) for (const r of this.nodes.values()) r.tick();
  }

  /** Lets `id` campaign at once and runs the network until it is quiet. */
  elect(id: NodeId): void {
    this.get(id).campaignNow();
    this.stabilize();
  }

  /** Drains every node's Ready and delivers messages until nothing moves. Returns the messages delivered. */
  stabilize(maxRounds = 10_000): Message[] {
    const delivered: Message[] = [];
    for (let round = 0; round < maxRounds; round++) {
      this.drainAll();
      if (this.queue.length === 0) return delivered;
      const batch = this.queue;
      this.queue = [];
      for (const m of batch) {
        delivered.push(m);
        this.nodes.get(m.to)?.step(m);
      }
    }
    throw new Error("network did not stabilize");
  }

  /** Drains every node's Ready, routing its messages, without delivering anything. */
  private drainAll(): void {
    for (const r of this.nodes.values()) {
      const d = drain(r);
      this.applied.get(r.id)!.push(...d.committed);
      this.readStates.get(r.id)!.push(...d.readStates);
      this.proposals.get(r.id)!.push(...d.proposals);
      for (const m of d.messages) this.route(m);
    }
  }

  private route(m: Message): void {
    this.sent.push(m);
    if (this.drops.some((rule) => rule(m))) return;
    if (this.holds.some((rule) => rule(m))) this.held.push(m);
    else this.queue.push(m);
  }
}
