import type { Message, NodeId } from "../core/messages.js";
import type { MessageHandler, Transport } from "../transport/transport.js";
import type { Prng } from "./prng.js";
import type { Scheduler } from "./scheduler.js";

/**
 * How badly a {@link SimNetwork} behaves. Every message independently may be lost,
 * duplicated, and delayed (which reorders it against others).
 * @public
 */
export interface NetworkFaults {
  /** Probability that a message is lost. */
  readonly lossRate: number;
  /** Probability that a message is delivered twice. */
  readonly duplicateRate: number;
  /** The shortest usual delay, in virtual milliseconds. */
  readonly minDelayMs: number;
  /** The longest usual delay; delays are uniform in [minDelayMs, maxDelayMs). */
  readonly maxDelayMs: number;
  /** Probability that a message is delayed by up to `longDelayMs` instead. */
  readonly longDelayRate: number;
  /** The longest long delay; long delays are uniform in [maxDelayMs, longDelayMs). */
  readonly longDelayMs: number;
}

/**
 * A network that delivers everything, quickly and in order: 1 virtual millisecond, no
 * loss, no duplicates.
 * @public
 */
export const RELIABLE_NETWORK: NetworkFaults = { lossRate: 0, duplicateRate: 0, minDelayMs: 1, maxDelayMs: 1, longDelayRate: 0, longDelayMs: 0 };

/**
 * Counters kept by a {@link SimNetwork}.
 * @public
 */
export interface NetworkStats {
  /** Messages handed to the network. */
  sent: number;
  /** Messages handed to a receiver (duplicates count twice). */
  delivered: number;
  /** Messages dropped by `lossRate`. */
  lost: number;
  /** Messages scheduled twice by `duplicateRate`. */
  duplicated: number;
  /** Messages dropped by a partition or a blocked link, when sent or while in flight. */
  blocked: number;
}

/**
 * A simulated network in virtual time with seeded faults: loss, delay, reordering,
 * duplication, and symmetric or one-way partitions. Faults are drawn from the `rng`
 * it is given, so a run is reproducible. Messages to a node with no started transport are
 * discarded.
 *
 * @example
 * ```ts
 * const network = new SimNetwork(scheduler, new Prng(7), { ...RELIABLE_NETWORK, lossRate: 0.05, maxDelayMs: 10 });
 * const transport = network.transport("n1"); // one per node incarnation
 * network.partition([["n1"], ["n2", "n3"]]);
 * network.heal();
 * ```
 * @public
 */
export class SimNetwork {
  private readonly handlers = new Map<NodeId, MessageHandler>();
  private readonly blockedLinks = new Set<string>();
  private faults: NetworkFaults;
  /** Counters since construction; updated in place. */
  readonly stats: NetworkStats = { sent: 0, delivered: 0, lost: 0, duplicated: 0, blocked: 0 };

  /**
   * A network on `scheduler`'s virtual time.
   * @param scheduler - Delivers messages at their drawn times.
   * @param rng - Draws losses, duplicates and delays.
   * @param faults - The initial fault rates.
   */
  constructor(
    private readonly scheduler: Scheduler,
    private readonly rng: Prng,
    faults: NetworkFaults = RELIABLE_NETWORK,
  ) {
    this.faults = faults;
  }

  /**
   * Changes the fault rates from now on (messages in flight keep their delays).
   * @param faults - The new rates.
   */
  setFaults(faults: NetworkFaults): void {
    this.faults = faults;
  }

  /**
   * A transport for one incarnation of node `id`.
   * @param id - The node.
   * @returns A transport on this network; starting it replaces any earlier one for `id`.
   */
  transport(id: NodeId): Transport {
    let handler: MessageHandler | null = null;
    return {
      start: async (h) => {
        handler = h;
        this.handlers.set(id, h);
      },
      send: (m) => {
        if (handler !== null) this.send(m);
      },
      stop: async () => {
        if (handler !== null && this.handlers.get(id) === handler) this.handlers.delete(id);
        handler = null;
      },
    };
  }

  /**
   * Detaches node `id` at once (its process died): messages to it are discarded until a
   * new transport for it starts.
   * @param id - The node.
   */
  detach(id: NodeId): void {
    this.handlers.delete(id);
  }

  /**
   * Blocks messages from `from` to `to` (one way) until {@link SimNetwork.heal}.
   * @param from - The sender.
   * @param to - The receiver.
   */
  block(from: NodeId, to: NodeId): void {
    this.blockedLinks.add(`${from}>${to}`);
  }

  /**
   * Splits the nodes into groups that cannot reach one another, until
   * {@link SimNetwork.heal}. Adds to links already blocked.
   * @param groups - Disjoint lists of node ids.
   */
  partition(groups: readonly (readonly NodeId[])[]): void {
    for (const g of groups) for (const h of groups) if (g !== h) for (const a of g) for (const b of h) this.block(a, b);
  }

  /** Restores every link (fault rates stay as they are). */
  heal(): void {
    this.blockedLinks.clear();
  }

  /**
   * Whether the link from `from` to `to` is blocked.
   * @param from - The sender.
   * @param to - The receiver.
   * @returns `true` while blocked.
   */
  isBlocked(from: NodeId, to: NodeId): boolean {
    return this.blockedLinks.has(`${from}>${to}`);
  }

  private send(m: Message): void {
    this.stats.sent++;
    if (this.isBlocked(m.from, m.to)) {
      this.stats.blocked++;
      return;
    }
    if (this.rng.chance(this.faults.lossRate)) {
      this.stats.lost++;
      return;
    }
    this.schedule(m);
    if (this.rng.chance(this.faults.duplicateRate)) {
      this.stats.duplicated++;
      this.schedule(m);
    }
  }

  private schedule(m: Message): void {
    const f = this.faults;
    const delay = this.rng.chance(f.longDelayRate) ? this.rng.between(f.maxDelayMs, f.longDelayMs) : this.rng.between(f.minDelayMs, f.maxDelayMs);
    this.scheduler.at(delay, () => {
      // A partition that started while the message was in flight cuts it too.
      if (this.isBlocked(m.from, m.to)) {
        this.stats.blocked++;
        return;
      }
      const h = this.handlers.get(m.to);
      if (h === undefined) return;
      this.stats.delivered++;
      h(m);
    });
  }
}
