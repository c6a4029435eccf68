import type { Message, NodeId } from "../core/messages.js";

/**
 * Receives every message delivered to this node.
 * @public
 */
export type MessageHandler = (message: Message) => void;

/**
 * Moves messages between nodes. Delivery is best effort: a transport may drop, delay or
 * reorder messages (Raft tolerates all three), but it must never alter one. A message's
 * sender is its `from` field, never the address it arrived from.
 * @public
 */
export interface Transport {
  /** Starts listening; every inbound message goes to `handler`. */
  start(handler: MessageHandler): Promise<void>;
  /** Queues `message` for `message.to`. Never throws; a message that cannot be sent is dropped. */
  send(message: Message): void;
  /** Stops sending and receiving and releases every socket and timer. Safe to call twice. */
  stop(): Promise<void>;
  /**
   * Tells the transport where members are, as the configuration changes. Optional: a
   * transport whose peers are fixed or discovered some other way can ignore it.
   */
  setPeerAddresses?(addresses: ReadonlyMap<NodeId, string>): void;
}
