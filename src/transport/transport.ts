import type { Message, NodeId } from "../core/messages.js";

/**
 * Receives every message delivered to this node. The node's handler steps its protocol
 * core synchronously and never throws; messages that arrive while the node is not
 * running are ignored.
 * @param message - The decoded message; its `to` is this node.
 * @public
 */
export type MessageHandler = (message: Message) => void;

/**
 * Moves messages between nodes. Delivery is best effort: a transport may drop, delay or
 * reorder messages (Raft tolerates all three), but it must never alter one. A message's
 * sender is its `from` field, never the address it arrived from. Test an implementation
 * with `transportConformance` from `raftkit/testing`.
 *
 * @example
 * ```ts
 * class MyTransport implements Transport {
 *   async start(handler: MessageHandler): Promise<void> { ... } // listen; deliver inbound messages to handler
 *   send(message: Message): void { ... } // enqueue for message.to; drop when impossible
 *   async stop(): Promise<void> { ... } // close everything; idempotent
 * }
 * ```
 * @public
 */
export interface Transport {
  /**
   * Starts listening; every inbound message goes to `handler`. The node calls it once per
   * start, before it sends anything.
   * @param handler - Where inbound messages go.
   * @returns Resolves once messages can arrive. A rejection fails `RaftNode.start()`
   * (`TcpTransport` rejects with `TRANSPORT` when it cannot listen).
   */
  start(handler: MessageHandler): Promise<void>;
  /**
   * Queues `message` for `message.to`. Never throws; a message that cannot be sent is dropped.
   * @param message - The message; `message.from` is this node.
   */
  send(message: Message): void;
  /**
   * Stops sending and receiving and releases every socket and timer. Safe to call twice.
   * @returns Resolves once everything is released.
   */
  stop(): Promise<void>;
  /**
   * Tells the transport where members are, as the configuration changes. Optional: a
   * transport whose peers are fixed or discovered some other way can ignore it.
   * @param addresses - Every member's address (`"host:port"`) by id, this node excluded,
   * taken from the configuration's `addresses`. The node calls it once the first
   * configuration with addresses is known, and again on every configuration change.
   */
  setPeerAddresses?(addresses: ReadonlyMap<NodeId, string>): void;
}
