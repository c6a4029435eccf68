/**
 * One raftkit node in a child process, for the compaction soak (scripts/soak-compaction.ts).
 * KvStateMachine + LevelStorage + TcpTransport on loopback. Imports library code only from
 * "raftkit", as a user would (tools/json-lines.ts is the channel's plumbing); run after
 * `npm run build` with
 *
 *   node --expose-gc --import tsx scripts/soak/compaction-node.ts '<CompactionNodeConfig as JSON>'
 *
 * Control channel: JSON lines on stdin, JSON lines on stdout (tools/json-lines.ts).
 *
 * ```
 * in:  {"sample": 7}                 answered with {"sample": 7, ...NodeSample}
 *      {"sample": 7, "gc": true}     the same after a full garbage collection (comparable RSS)
 *      {"load": LoadSpec}            propose spec.puts puts from this node (the leader, normally)
 *      {"digest": 3}                 answered with {"digest": 3, "sha256": ..., "keys": n, "appliedIndex": i}
 * out: {"ready": true}
 *      {"milestone": "warmup"}       spec.milestones[k] puts were acknowledged (sent once each)
 *      {"loadDone": true, "acked": n, "failed": {...}, "ms": t}
 *      {"fatal": "..."}              the node stopped on an error
 * ```
 *
 * Closing stdin stops the node and ends the process, so a harness that dies takes its
 * children with it.
 */
import { createHash } from "node:crypto";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { KvStateMachine, LevelStorage, RaftNode, TcpTransport, isRaftError } from "raftkit";
import type { ApplyMeta, KvCommand, KvResult, RaftStorage, Snapshot, SnapshotData, SnapshotMeta, StateMachine, StorageBatch, StoredState } from "raftkit";
import { type ChildNodeConfig, childConfig, sendLine as send, serveJsonLines } from "../../tools/json-lines.js";

/** What the soak passes as the one argument. */
export interface CompactionNodeConfig extends ChildNodeConfig {
  /** LevelStorage `sync`: fsync every batch. */
  readonly sync: boolean;
  readonly requestTimeoutMs: number;
}

/** What the load request asks for. Put `i` (0-based) writes key `keyOf(i)`. */
export interface LoadSpec {
  readonly puts: number;
  readonly concurrency: number;
  readonly keys: number;
  readonly valueBytes: number;
  readonly seed: number;
  /** Acknowledged-put counts at which to send {"milestone": name}. */
  readonly milestones: Readonly<Record<string, number>>;
}

/** The answer to {"sample"}. */
export interface NodeSample {
  readonly rss: number;
  readonly heapUsed: number;
  readonly heapTotal: number;
  readonly external: number;
  readonly arrayBuffers: number;
  readonly role: string;
  readonly term: number;
  readonly leader: string | null;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly lastIndex: number;
  /** The first index the durable log holds (entries firstIndex..lastIndex). */
  readonly firstIndex: number;
  /** lastIndex - firstIndex + 1 of the durable log, now and at its largest since start. */
  readonly logLength: number;
  readonly maxLogLength: number;
  readonly snapshotsTaken: number;
  readonly snapshotsInstalled: number;
  /** Bytes of the latest snapshot this node serialised, and the slowest serialisation. */
  readonly snapshotBytes: number;
  readonly maxSnapshotMs: number;
  readonly keys: number;
  /** Event-loop delay since the previous sample, ms. */
  readonly loopDelayMaxMs: number;
  readonly loopDelayP99Ms: number;
  /** The load from this node: acknowledged, failed, in flight. */
  readonly acked: number;
  readonly failed: number;
  readonly inFlight: number;
}

/**
 * LevelStorage seen from outside: tracks the bounds of the durable log from what the node
 * asks the storage to do (load, append, install, compact), so that the log's length is
 * measured at every write rather than inferred at sampling time.
 */
class MeteredStorage implements RaftStorage {
  firstIndex = 1;
  lastIndex = 0;
  maxLength = 0;
  compactions = 0;
  installs = 0;

  constructor(private readonly inner: LevelStorage) {}

  get capabilities(): RaftStorage["capabilities"] {
    return this.inner.capabilities;
  }

  get length(): number {
    return this.lastIndex - this.firstIndex + 1;
  }

  async load(): Promise<StoredState> {
    const state = await this.inner.load();
    this.firstIndex = state.firstIndex;
    this.lastIndex = state.entries.length > 0 ? state.entries[state.entries.length - 1]!.index : state.firstIndex - 1;
    this.observe();
    return state;
  }

  async save(batch: StorageBatch): Promise<void> {
    await this.inner.save(batch);
    if (batch.snapshot !== undefined) {
      this.installs++;
      this.firstIndex = batch.snapshot.meta.index + 1;
      this.lastIndex = batch.snapshot.meta.index;
    }
    const entries = batch.entries;
    // Entries replace any stored suffix from their first index on.
    if (entries !== undefined && entries.length > 0) this.lastIndex = entries[entries.length - 1]!.index;
    this.observe();
  }

  writeSnapshot(meta: SnapshotMeta, chunks: AsyncIterable<Uint8Array>): Promise<Snapshot> {
    return this.inner.writeSnapshot(meta, chunks);
  }

  async compact(snapshot: Snapshot, compactTo: number, compactToTerm: number): Promise<void> {
    await this.inner.compact(snapshot, compactTo, compactToTerm);
    this.compactions++;
    if (compactTo >= this.firstIndex) this.firstIndex = compactTo + 1;
    this.observe();
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  private observe(): void {
    if (this.length > this.maxLength) this.maxLength = this.length;
  }
}

/** KvStateMachine, timing and sizing its snapshots. */
class MeasuredKv implements StateMachine<KvCommand, KvResult> {
  readonly kv = new KvStateMachine();
  snapshotBytes = 0;
  maxSnapshotMs = 0;

  apply(command: KvCommand, meta: ApplyMeta): KvResult {
    return this.kv.apply(command, meta);
  }

  /** The KV snapshot's chunks, passed through; timed from the call to the last chunk. */
  snapshot(): AsyncIterable<Uint8Array> {
    const started = performance.now();
    // Captured now, at the call (the contract); the chunks stream later.
    const chunks = this.kv.snapshot();
    const measure = async function* (this: MeasuredKv): AsyncGenerator<Uint8Array, void, undefined> {
      let bytes = 0;
      for await (const chunk of chunks) {
        bytes += chunk.byteLength;
        yield chunk;
      }
      this.maxSnapshotMs = Math.max(this.maxSnapshotMs, performance.now() - started);
      this.snapshotBytes = bytes;
    };
    return measure.call(this);
  }

  restore(data: SnapshotData): Promise<void> {
    return this.kv.restore(data);
  }
}

const config = childConfig<CompactionNodeConfig>();
const sm = new MeasuredKv();
const storage = new MeteredStorage(new LevelStorage({ location: config.location, nodeId: config.id, sync: config.sync }));
const node = new RaftNode<KvCommand, KvResult>({
  id: config.id,
  peers: Object.keys(config.peers),
  stateMachine: sm,
  storage,
  transport: new TcpTransport({ id: config.id, listen: config.peers[config.id]!, peers: config.peers }),
  tickMs: config.tickMs,
  electionTicks: config.electionTicks,
  snapshotThreshold: config.snapshotThreshold,
  trailingEntries: config.trailingEntries,
  requestTimeoutMs: config.requestTimeoutMs,
});
node.on("error", (err) => {
  send({ fatal: `${config.id}: ${err.message}` });
  process.exitCode = 1;
});

const loopDelay = monitorEventLoopDelay({ resolution: 10 });
loopDelay.enable();
const load = { acked: 0, failed: 0, inFlight: 0, failures: {} as Record<string, number> };

function sample(gc: boolean): NodeSample {
  if (gc) {
    // Twice: the first pass may only schedule finalisers whose memory the second frees.
    const collect = (globalThis as { gc?: () => void }).gc;
    collect?.();
    collect?.();
  }
  const mem = process.memoryUsage();
  const status = node.status();
  const s: NodeSample = {
    rss: mem.rss,
    heapUsed: mem.heapUsed,
    heapTotal: mem.heapTotal,
    external: mem.external,
    arrayBuffers: mem.arrayBuffers,
    role: status.role,
    term: status.term,
    leader: status.leader,
    commitIndex: status.commitIndex,
    appliedIndex: status.appliedIndex,
    lastIndex: status.lastIndex,
    firstIndex: storage.firstIndex,
    logLength: storage.length,
    maxLogLength: storage.maxLength,
    snapshotsTaken: storage.compactions,
    snapshotsInstalled: storage.installs,
    snapshotBytes: sm.snapshotBytes,
    maxSnapshotMs: Math.round(sm.maxSnapshotMs),
    keys: sm.kv.size,
    loopDelayMaxMs: Math.round(loopDelay.max / 1e6),
    loopDelayP99Ms: Math.round(loopDelay.percentile(99) / 1e6),
    acked: load.acked,
    failed: load.failed,
    inFlight: load.inFlight,
  };
  loopDelay.reset();
  return s;
}

/** splitmix32: the key of put `i` is a pure function of (seed, i). */
function mix(seed: number, i: number): number {
  let z = (seed + Math.imul(i, 0x9e3779b9)) | 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/**
 * Proposes spec.puts puts, spec.concurrency at a time. The first spec.keys puts fill the
 * key space in order (so the state reaches its full size early); the rest pick a key at
 * random. Values are spec.valueBytes long and differ per put.
 */
async function runLoad(spec: LoadSpec): Promise<void> {
  const width = String(spec.keys - 1).length;
  const filler = "v".repeat(spec.valueBytes);
  const pending = Object.entries(spec.milestones).sort((a, b) => a[1] - b[1]);
  let next = 0;
  const started = performance.now();
  const worker = async (): Promise<void> => {
    while (next < spec.puts && !channel.stopping) {
      const i = next++;
      const k = i < spec.keys ? i : mix(spec.seed, i) % spec.keys;
      const tag = `${i}:`;
      const command: KvCommand = { op: "put", key: `key/${String(k).padStart(width, "0")}`, value: tag + filler.slice(tag.length) };
      load.inFlight++;
      try {
        await node.propose(command);
        load.acked++;
        while (pending.length > 0 && load.acked >= pending[0]![1]) send({ milestone: pending.shift()![0] });
      } catch (err) {
        load.failed++;
        const code = isRaftError(err) ? err.code : String(err);
        load.failures[code] = (load.failures[code] ?? 0) + 1;
      } finally {
        load.inFlight--;
      }
    }
  };
  await Promise.all(Array.from({ length: spec.concurrency }, worker));
  send({ loadDone: true, acked: load.acked, failed: load.failures, ms: Math.round(performance.now() - started) });
}

function digest(): { sha256: string; keys: number; appliedIndex: number } {
  const hash = createHash("sha256");
  for (const { key, value } of sm.kv.list()) hash.update(`${key.length}:${key}${value.length}:${value}`);
  return { sha256: hash.digest("hex"), keys: sm.kv.size, appliedIndex: sm.kv.lastApplied.index };
}

const channel = serveJsonLines<{ sample?: number; gc?: boolean; load?: LoadSpec; digest?: number }>(config.id, node, (request) => {
  if (request.sample !== undefined) send({ sample: request.sample, ...sample(request.gc === true) });
  else if (request.digest !== undefined) send({ digest: request.digest, ...digest() });
  else if (request.load !== undefined) {
    runLoad(request.load).catch((err: unknown) => send({ fatal: `${config.id}: load: ${err instanceof Error ? err.message : String(err)}` }));
  }
});
process.on("SIGTERM", () => void channel.stop());
process.on("SIGINT", () => {}); // Ctrl-C reaches the whole process group: let the soak stop us.

await channel.start();
