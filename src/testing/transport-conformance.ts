/**
 * The conformance suite for {@link Transport} implementations, shipped to adapter
 * authors. Runner-agnostic: pass your runner's `describe`, `it` and `expect`.
 */
import type { Message, NodeId } from "../core/messages.js";
import type { Transport } from "../transport/transport.js";

/**
 * What a conformance factory returns: one transport per requested id, none started yet,
 * each able to reach all the others.
 * @public
 */
export interface TransportConformanceContext {
  /** The transports, by node id. The suite starts and stops them. */
  readonly transports: Map<NodeId, Transport>;
  /**
   * A fresh, not yet started transport for `id`, reachable by the others exactly as the
   * old one was (same address). The suite has stopped the old one first. When absent,
   * the restart case is not run.
   */
  restart?(id: NodeId): Promise<Transport>;
  /** Releases whatever the factory holds. Called after every case, after the suite has stopped every transport. */
  cleanup?(): Promise<void>;
}

/**
 * The subset of an assertion the suite uses (vitest's and Jest's `expect` fit it).
 * @public
 */
export interface TransportConformanceAssertion {
  /** Asserts identity (`Object.is`). */
  toBe(expected: unknown): void;
  /** Asserts deep equality. */
  toEqual(expected: unknown): void;
}

/**
 * Options for {@link transportConformance}.
 * @public
 */
export interface TransportConformanceOptions {
  /** Names the suite, e.g. `"TcpTransport"`. */
  readonly name: string;
  /** Builds transports for `ids`; called once per case. */
  factory(ids: NodeId[]): Promise<TransportConformanceContext>;
  /** The runner's `describe`. */
  describe(name: string, body: () => void): void;
  /** The runner's `it` (or `test`). */
  it(name: string, body: () => Promise<void>): void;
  /** The runner's `expect`. */
  expect(actual: unknown): TransportConformanceAssertion;
  /**
   * How long a case waits for messages that should arrive.
   * @defaultValue 10000
   */
  readonly deliveryTimeoutMs?: number;
  /**
   * How long a case watches for messages that must not arrive.
   * @defaultValue 300
   */
  readonly quietMs?: number;
}

/**
 * Registers the transport conformance cases:
 *
 * 1. messages are delivered between every pair of nodes, unaltered;
 * 2. the messages of one sender arrive in the order sent (on a healthy link, with fewer
 *    messages than any queue bound, all of them arrive);
 * 3. a peer that restarts receives again after the restart (when the factory can restart);
 * 4. sending to a peer that never comes up, or to an unknown id, neither throws nor hangs,
 *    and stop() still completes;
 * 5. stop() is idempotent and stops delivery, in both directions, and send() after stop()
 *    does not throw.
 *
 * @example
 * ```ts
 * import { describe, it, expect } from "vitest";
 * import { MemoryNetwork } from "raftkit";
 * import { transportConformance } from "raftkit/testing";
 *
 * transportConformance({
 *   name: "MemoryNetwork",
 *   describe, it, expect,
 *   factory: async (ids) => {
 *     const network = new MemoryNetwork();
 *     return { transports: new Map(ids.map((id) => [id, network.transport(id)])), restart: async (id) => network.transport(id) };
 *   },
 * });
 * ```
 * @param options - The suite's name, the factory, the runner's functions and the timing.
 * @public
 */
export function transportConformance(options: TransportConformanceOptions): void {
  const { describe, it, expect, factory } = options;
  const deliveryTimeoutMs = options.deliveryTimeoutMs ?? 10_000;
  const quietMs = options.quietMs ?? 300;

  /** Builds transports, runs `body`, then stops everything and cleans up, whatever happened. */
  const withCluster = async (ids: NodeId[], body: (ctx: TransportConformanceContext, live: Map<NodeId, Transport>) => Promise<void>) => {
    const ctx = await factory(ids);
    const live = new Map(ctx.transports);
    try {
      await body(ctx, live);
    } finally {
      await Promise.all([...live.values()].map((t) => t.stop()));
      await ctx.cleanup?.();
    }
  };

  describe(`transport conformance: ${options.name}`, () => {
    it("delivers messages between every pair of nodes, unaltered", async () => {
      const ids = ["n1", "n2", "n3"];
      await withCluster(ids, async (_ctx, live) => {
        const inbox = await startAll(live);
        const expected = new Map<NodeId, Message[]>(ids.map((id) => [id, []]));
        let round = 1;
        for (const from of ids) {
          for (const to of ids) {
            if (from === to) continue;
            const m = appendEntries(from, to, round++);
            expected.get(to)!.push(m);
            live.get(from)!.send(m);
          }
        }
        await waitFor(() => ids.every((id) => inbox.get(id)!.length >= 2), deliveryTimeoutMs, "delivery between every pair");
        for (const id of ids) {
          const byRound = (a: Message, b: Message) => (a as { commit: number }).commit - (b as { commit: number }).commit;
          expect([...inbox.get(id)!].sort(byRound)).toEqual(expected.get(id)!);
        }
      });
    });

    it("preserves the order of one sender's messages", async () => {
      await withCluster(["n1", "n2"], async (_ctx, live) => {
        const inbox = await startAll(live);
        const count = 300;
        for (let i = 1; i <= count; i++) {
          live.get("n1")!.send(i % 3 === 0 ? appendEntries("n1", "n2", i) : heartbeat("n1", "n2", i));
          // Spread over several turns of the event loop, so batching is exercised both ways.
          if (i % 50 === 0) await sleep(1);
        }
        await waitFor(() => inbox.get("n2")!.length >= count, deliveryTimeoutMs, `${count} messages from n1`);
        expect(inbox.get("n2")!.map(roundOf)).toEqual(Array.from({ length: count }, (_, i) => i + 1));
      });
    });

    it("delivers to a peer again after it restarts", async () => {
      await withCluster(["n1", "n2"], async (ctx, live) => {
        if (ctx.restart === undefined) return; // declared by the factory: cannot restart
        const inbox = await startAll(live);
        live.get("n1")!.send(heartbeat("n1", "n2", 1));
        await waitFor(() => inbox.get("n2")!.length === 1, deliveryTimeoutMs, "first delivery");
        await live.get("n2")!.stop();
        const fresh = await ctx.restart("n2");
        live.set("n2", fresh);
        const after: Message[] = [];
        await fresh.start((m) => after.push(m));
        // Keep sending: the sender may need a few attempts (and its backoff) to reconnect.
        let round = 2;
        await waitFor(
          () => {
            live.get("n1")!.send(heartbeat("n1", "n2", round++));
            return after.length > 0;
          },
          deliveryTimeoutMs,
          "delivery after the restart",
        );
        expect(after[0]!.from).toBe("n1");
        expect(after[0]!.type).toBe("Heartbeat");
      });
    });

    it("neither throws nor hangs when a peer never comes up", async () => {
      await withCluster(["n1", "n2"], async (_ctx, live) => {
        const n1 = live.get("n1")!;
        const inbox: Message[] = [];
        await n1.start((m) => inbox.push(m));
        for (let i = 1; i <= 100; i++) {
          n1.send(heartbeat("n1", "n2", i));
          n1.send(heartbeat("n1", "nobody", i));
        }
        await sleep(quietMs);
        expect(inbox.length).toBe(0);
        await withTimeout(n1.stop(), deliveryTimeoutMs, "stop() with an unreachable peer");
        // Stopping a transport that was never started is allowed too.
        await withTimeout(live.get("n2")!.stop(), deliveryTimeoutMs, "stop() before start()");
      });
    });

    it("stop() is idempotent and stops delivery", async () => {
      await withCluster(["n1", "n2"], async (_ctx, live) => {
        const inbox = await startAll(live);
        const n1 = live.get("n1")!;
        const n2 = live.get("n2")!;
        n1.send(heartbeat("n1", "n2", 1));
        n2.send(heartbeat("n2", "n1", 1));
        await waitFor(() => inbox.get("n1")!.length === 1 && inbox.get("n2")!.length === 1, deliveryTimeoutMs, "delivery before stop");
        await Promise.all([n2.stop(), n2.stop()]);
        await n2.stop();
        for (let i = 2; i <= 20; i++) n1.send(heartbeat("n1", "n2", i));
        n2.send(heartbeat("n2", "n1", 2)); // a stopped transport sends nothing
        await sleep(quietMs);
        expect(inbox.get("n2")!.length).toBe(1);
        expect(inbox.get("n1")!.length).toBe(1);
        await n1.stop();
        await n1.stop();
        n1.send(heartbeat("n1", "n2", 99));
      });
    });
  });
}

async function startAll(live: Map<NodeId, Transport>): Promise<Map<NodeId, Message[]>> {
  const inbox = new Map<NodeId, Message[]>();
  for (const [id, transport] of live) {
    const received: Message[] = [];
    inbox.set(id, received);
    await transport.start((m) => received.push(m));
  }
  return inbox;
}

function heartbeat(from: NodeId, to: NodeId, round: number): Message {
  return { type: "Heartbeat", from, to, term: 3, commit: round, readRound: round };
}

/** An AppendEntries whose entries vary with `round`, so that an altered message shows. */
function appendEntries(from: NodeId, to: NodeId, round: number): Message {
  const data = new Uint8Array(round % 7 === 0 ? 0 : 16 + (round % 100));
  for (let i = 0; i < data.length; i++) data[i] = (round * 31 + i) & 0xff;
  return {
    type: "AppendEntries",
    from,
    to,
    term: 3,
    prevIndex: round,
    prevTerm: 2,
    entries: [
      { index: round + 1, term: 3, type: "command", data },
      { index: round + 2, term: 3, type: "noop", data: new Uint8Array(0) },
    ],
    commit: round,
  };
}

function roundOf(m: Message): number {
  return m.type === "Heartbeat" || m.type === "AppendEntries" ? m.commit : -1;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function waitFor(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

async function withTimeout<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
