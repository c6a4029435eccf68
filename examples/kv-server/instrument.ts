// Decorators around the storage and the transport that the server hands to its RaftNode:
// they observe what RaftNode does through the public adapter interfaces (for /metrics),
// and the transport one also lets --join accept the cluster's members before this node
// has a configuration of its own.
import type { Message, MessageHandler, NodeId, RaftStorage, Snapshot, SnapshotMeta, StorageBatch, StoredState, TcpTransport, Transport } from "raftkit";

/** Called with how long one durable write took, in seconds. */
export type DurationSink = (seconds: number) => void;

/**
 * Times every durable write: RaftNode awaits each `save` before the next one (the storage
 * contract), so the time from call to resolution is exactly how long the node waited for
 * its hard state and entries to become durable (LevelDB batch plus fsync, and any queueing
 * behind a compaction).
 */
export class TimedStorage implements RaftStorage {
  constructor(
    private readonly inner: RaftStorage,
    private readonly onSave: DurationSink,
    private readonly onCompact: DurationSink,
  ) {}

  get capabilities(): RaftStorage["capabilities"] {
    return this.inner.capabilities;
  }

  load(): Promise<StoredState> {
    return this.inner.load();
  }

  async save(batch: StorageBatch): Promise<void> {
    const start = performance.now();
    try {
      await this.inner.save(batch);
    } finally {
      this.onSave((performance.now() - start) / 1000);
    }
  }

  writeSnapshot(meta: SnapshotMeta, chunks: AsyncIterable<Uint8Array>): Promise<Snapshot> {
    return this.inner.writeSnapshot(meta, chunks);
  }

  async compact(snapshot: Snapshot, compactTo: number, compactToTerm: number): Promise<void> {
    const start = performance.now();
    try {
      await this.inner.compact(snapshot, compactTo, compactToTerm);
    } finally {
      this.onCompact((performance.now() - start) / 1000);
    }
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/**
 * Counts messages per peer in each direction, and widens the peer map with "bootstrap"
 * addresses: a node that joins a running cluster starts with an empty configuration, but
 * its TcpTransport must already accept the leader's connection to receive the log that
 * tells it the configuration. RaftNode replaces the peer map with the configuration's
 * address book on every change (`setPeerAddresses`); this adds the bootstrap addresses to
 * it until {@link ObservedTransport.clearBootstrap} (once a configuration names this node).
 */
export class ObservedTransport implements Transport {
  /** Messages handed to the transport, by destination (sent or dropped later by it). */
  readonly sentTo = new Map<NodeId, number>();
  /** Messages delivered by the transport, by sender. */
  readonly receivedFrom = new Map<NodeId, number>();
  /**
   * Messages to a node that is not in the peer map, by destination: TcpTransport drops
   * them. (Its other drops, such as a full queue, it counts only in total.)
   */
  readonly unknownPeerDrops = new Map<NodeId, number>();
  private known: ReadonlySet<NodeId>;
  private bootstrap: ReadonlyMap<NodeId, string> = new Map();
  private configured: ReadonlyMap<NodeId, string>;

  /** @param initial the peer map the inner transport was constructed with */
  constructor(
    readonly inner: TcpTransport,
    initial: ReadonlyMap<NodeId, string>,
  ) {
    this.configured = initial;
    this.known = new Set(initial.keys());
  }

  start(handler: MessageHandler): Promise<void> {
    return this.inner.start((m) => {
      this.receivedFrom.set(m.from, (this.receivedFrom.get(m.from) ?? 0) + 1);
      handler(m);
    });
  }

  send(message: Message): void {
    this.sentTo.set(message.to, (this.sentTo.get(message.to) ?? 0) + 1);
    if (!this.known.has(message.to)) this.unknownPeerDrops.set(message.to, (this.unknownPeerDrops.get(message.to) ?? 0) + 1);
    this.inner.send(message);
  }

  stop(): Promise<void> {
    return this.inner.stop();
  }

  setPeerAddresses(addresses: ReadonlyMap<NodeId, string>): void {
    this.configured = addresses;
    this.update();
  }

  /** Members to accept (and reach) before this node's configuration lists them. */
  setBootstrap(addresses: ReadonlyMap<NodeId, string>): void {
    this.bootstrap = addresses;
    this.update();
  }

  /**
   * Forgets the bootstrap addresses from the next {@link ObservedTransport.setPeerAddresses}
   * on. Call it from the `config` event: RaftNode emits it just before it hands the
   * configuration's addresses to the transport, so the peer map never shrinks in between.
   */
  clearBootstrap(): void {
    this.bootstrap = new Map();
  }

  private update(): void {
    // The configuration's addresses win: they are newer than what --join learned.
    const peers = new Map([...this.bootstrap, ...this.configured]);
    this.known = new Set(peers.keys());
    this.inner.setPeerAddresses(peers);
  }
}
