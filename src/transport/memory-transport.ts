import type { Message, NodeId } from "../core/messages.js";
import type { MessageHandler, Transport } from "./transport.js";

/**
 * An in-process network: every {@link Transport} it hands out delivers to the others
 * asynchronously (on a later microtask), in order, without loss. For tests, examples and
 * single-process clusters; the fault-injecting network of `raftkit/testing` builds on the
 * same idea.
 *
 * @example
 * ```ts
 * const network = new MemoryNetwork();
 * const ids = ["n1", "n2", "n3"];
 * const nodes = ids.map((id) => new RaftNode({ id, peers: ids, stateMachine: new KvStateMachine(), storage: new MemoryStorage(), transport: network.transport(id) }));
 * await Promise.all(nodes.map((n) => n.start()));
 * network.isolate("n1"); // n1 neither sends nor receives until heal()
 * network.heal();
 * ```
 * @public
 */
export class MemoryNetwork {
  private readonly handlers = new Map<NodeId, MessageHandler>();
  private readonly cut = new Set<string>();

  /**
   * The transport for node `id`. A new transport for an id replaces the old one once
   * started (a restarted node).
   * @param id - The node that will use it.
   * @returns A transport that delivers to the other transports of this network.
   */
  transport(id: NodeId): Transport {
    return new MemoryTransport(this, id);
  }

  /**
   * Drops every message from `a` to `b` and from `b` to `a` until {@link MemoryNetwork.heal}.
   * @param a - One node.
   * @param b - The other.
   */
  disconnect(a: NodeId, b: NodeId): void {
    this.cut.add(`${a}\u0000${b}`);
    this.cut.add(`${b}\u0000${a}`);
  }

  /**
   * Drops every message to and from `id` until {@link MemoryNetwork.heal}. Covers the nodes
   * whose transports are started now.
   * @param id - The node to cut off.
   */
  isolate(id: NodeId): void {
    for (const other of this.handlers.keys()) if (other !== id) this.disconnect(id, other);
  }

  /** Restores every link. */
  heal(): void {
    this.cut.clear();
  }

  /** Registers a started transport's handler. @internal */
  attach(id: NodeId, handler: MessageHandler): void {
    this.handlers.set(id, handler);
  }

  /** Unregisters a stopped transport's handler. @internal */
  detach(id: NodeId, handler: MessageHandler): void {
    if (this.handlers.get(id) === handler) this.handlers.delete(id);
  }

  /** Delivers a message on a later microtask, unless its link is cut. @internal */
  deliver(message: Message): void {
    if (this.cut.has(`${message.from}\u0000${message.to}`)) return;
    queueMicrotask(() => {
      // Looked up at delivery time: a node that stopped in between gets nothing.
      this.handlers.get(message.to)?.(message);
    });
  }
}

class MemoryTransport implements Transport {
  private handler: MessageHandler | null = null;

  constructor(
    private readonly network: MemoryNetwork,
    private readonly id: NodeId,
  ) {}

  async start(handler: MessageHandler): Promise<void> {
    this.handler = handler;
    this.network.attach(this.id, handler);
  }

  send(message: Message): void {
    if (this.handler !== null) this.network.deliver(message);
  }

  async stop(): Promise<void> {
    if (this.handler !== null) this.network.detach(this.id, this.handler);
    this.handler = null;
  }
}
