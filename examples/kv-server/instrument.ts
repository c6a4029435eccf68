// Decorators around the storage and the transport that the server hands to its RaftNode:
// they observe what RaftNode does through the public adapter interfaces (for /metrics),
// and the transport one also lets --join accept the cluster's members before this node
// has a configuration of its own.
import type { Message, MessageHandler, NodeId, RaftStorage, Snapshot, StorageBatch, StoredState, TcpTransport, Transport } from "raftkit";

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
 * it until {@link ObservedTransport.clearBootstrap} (once the configuration names this node).
 */
export class ObservedTransport implements Transport {
  /** Messages handed to the transport, by destination (sent or dropped later by it). */
  readonly sentTo = new Map<NodeId, number>();
  /** Messages delivered by the transport, by sender. */
  readonly receivedFrom = new Map<NodeId, number>();
  private bootstrap: ReadonlyMap<NodeId, string> = new Map();
  private configured: ReadonlyMap<NodeId, string> | null;

  /** @param initial the peer map the inner transport was constructed with */
  constructor(
    readonly inner: TcpTransport,
    initial: ReadonlyMap<NodeId, string>,
  ) {
    this.configured = initial;
  }

  start(handler: MessageHandler): Promise<void> {
    return this.inner.start((m) => {
      this.receivedFrom.set(m.from, (this.receivedFrom.get(m.from) ?? 0) + 1);
      handler(m);
    });
  }

  send(message: Message): void {
    this.sentTo.set(message.to, (this.sentTo.get(message.to) ?? 0) + 1);
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

  clearBootstrap(): void {
    if (this.bootstrap.size === 0) return;
    this.bootstrap = new Map();
    this.update();
  }

  private update(): void {
    // The configuration's addresses win: they are newer than what --join learned.
    this.inner.setPeerAddresses(new Map([...this.bootstrap, ...(this.configured ?? [])]));
  }
}
