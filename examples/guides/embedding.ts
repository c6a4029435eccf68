// The example of docs/embedding.md: a replicated ledger on three in-process nodes.
// Run it with `npm run build && node dist/examples/guides/embedding.js`.
import {
  LevelStorage,
  MemoryNetwork,
  MemoryStorage,
  RaftNode,
  TcpTransport,
  consoleLogger,
  isRaftError,
  snapshotBytes,
  type ApplyMeta,
  type NodeId,
  type SnapshotData,
  type StateMachine,
} from "raftkit";

// ---------------------------------------------------------------- the state machine

/** The commands: plain JSON-serialisable data, since the default codec is JSON. */
export type LedgerCommand =
  | { readonly op: "open"; readonly account: string; readonly deposit: number }
  | { readonly op: "transfer"; readonly from: string; readonly to: string; readonly amount: number };

/** What `propose()` resolves with. A refused command is a result, not a throw. */
export type LedgerResult = { readonly ok: true; readonly index: number } | { readonly ok: false; readonly reason: string };

/**
 * A deterministic state machine: the result and the new state depend only on the state
 * and the command. No clocks, no randomness, no I/O.
 */
export class Ledger implements StateMachine<LedgerCommand, LedgerResult> {
  private balances = new Map<string, number>();

  apply(cmd: LedgerCommand, meta: ApplyMeta): LedgerResult {
    if (cmd.op === "open") {
      if (this.balances.has(cmd.account)) return { ok: false, reason: `${cmd.account} exists` };
      this.balances.set(cmd.account, cmd.deposit);
      return { ok: true, index: meta.index };
    }
    const from = this.balances.get(cmd.from);
    const to = this.balances.get(cmd.to);
    if (from === undefined || to === undefined) return { ok: false, reason: "unknown account" };
    if (!(cmd.amount > 0) || from < cmd.amount) return { ok: false, reason: "insufficient funds" };
    this.balances.set(cmd.from, from - cmd.amount);
    this.balances.set(cmd.to, to + cmd.amount);
    return { ok: true, index: meta.index };
  }

  /** This node's applied state; linearizable only after `await node.read()`. */
  balance(account: string): number | undefined {
    return this.balances.get(account);
  }

  // snapshot() and restore() enable log compaction and let a far-behind or new node catch up.
  snapshot(): Uint8Array {
    const sorted = [...this.balances].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return new TextEncoder().encode(JSON.stringify(sorted));
  }

  // The stored snapshot is read from storage: whole here (a small state); a large one
  // would stream it with snapshotChunks(data) and return its chunks from snapshot().
  async restore(data: SnapshotData): Promise<void> {
    const parsed: unknown = JSON.parse(new TextDecoder().decode(await snapshotBytes(data)));
    if (!Array.isArray(parsed)) throw new TypeError("not a ledger snapshot"); // state left unchanged
    this.balances = new Map(parsed as [string, number][]);
  }
}

// ---------------------------------------------------------------- errors

/**
 * Proposes with a deadline and retries only when that is safe: `DROPPED` means the
 * command certainly did not commit. After `TIMEOUT` or `ABORTED` the outcome is unknown,
 * so a transfer must not be blindly sent again (it could apply twice).
 */
export async function proposeSafely(node: RaftNode<LedgerCommand, LedgerResult>, cmd: LedgerCommand): Promise<LedgerResult> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await node.propose(cmd, { timeoutMs: 2000 });
    } catch (err) {
      if (!isRaftError(err)) throw err; // a bug (e.g. the codec threw)
      if (err.code === "DROPPED" && attempt < 3) continue;
      if (err.code === "NOT_LEADER") throw new Error(`send it to ${err.leaderId ?? "the leader"}`, { cause: err });
      throw err; // TIMEOUT, ABORTED: unknown outcome; BUSY: back off; STOPPED: the node is gone
    }
  }
}

// ---------------------------------------------------------------- a production node

/**
 * One node of a real cluster: LevelDB storage and the TCP transport. `cluster` maps every
 * member's id to its Raft address, this node's included.
 */
export function productionNode(id: NodeId, cluster: Record<NodeId, string>, dataDir: string): { node: RaftNode<LedgerCommand, LedgerResult>; ledger: Ledger } {
  const listen = cluster[id];
  if (listen === undefined) throw new RangeError(`${id} is not in the cluster`);
  const ledger = new Ledger();
  const node = new RaftNode({
    id,
    peers: cluster, // ids and addresses: the configuration carries the addresses
    stateMachine: ledger,
    storage: new LevelStorage({ location: dataDir, nodeId: id, clusterId: "ledger" }),
    transport: new TcpTransport({ id, listen, peers: cluster, clusterId: "ledger" }),
    tickMs: 50, // election timeout 0.5 to 1 s, heartbeats every 50 ms
    logger: consoleLogger(`ledger[${id}]`),
  });
  node.on("error", (err) => {
    // The node has stopped (storage failure, broken invariant): restart the process.
    console.error(`node ${id} stopped: ${err.message}`);
    process.exitCode = 1;
  });
  return { node, ledger };
}

// ---------------------------------------------------------------- in one process

export async function main(): Promise<void> {
  const network = new MemoryNetwork();
  const ids = ["a", "b", "c"];
  const cluster = ids.map((id) => {
    const ledger = new Ledger();
    const node = new RaftNode({
      id,
      peers: ids,
      stateMachine: ledger,
      storage: new MemoryStorage(),
      transport: network.transport(id),
      tickMs: 10,
      snapshotThreshold: 20, // compact every 20 applied entries (the default is 10000)
      trailingEntries: 5,
    });
    node.on("leader", (leader, term) => {
      if (leader === id) console.log(`${id} leads in term ${term}`);
    });
    node.on("snapshot", (index) => console.log(`${id} took a snapshot at index ${index}`));
    return { id, node, ledger };
  });
  await Promise.all(cluster.map(({ node }) => node.start()));

  // Any node takes proposals: a follower forwards them to the leader.
  const [a, b, c] = cluster as [(typeof cluster)[0], (typeof cluster)[0], (typeof cluster)[0]];
  console.log(await a.node.propose({ op: "open", account: "alice", deposit: 100 }));
  console.log(await b.node.propose({ op: "open", account: "bob", deposit: 0 }));
  for (let i = 0; i < 25; i++) await proposeSafely(c.node, { op: "transfer", from: "alice", to: "bob", amount: 1 });
  console.log(await c.node.propose({ op: "transfer", from: "bob", to: "alice", amount: 1000 })); // { ok: false, ... }

  // A linearizable read on a follower: wait for a read point, then read local state.
  const follower = cluster.find(({ node }) => !node.isLeader)!;
  await follower.node.read();
  console.log(`${follower.id}: alice ${follower.ledger.balance("alice")}, bob ${follower.ledger.balance("bob")}`);

  // A snapshot on demand; resolves with its index.
  console.log(`snapshot at ${await a.node.snapshot()}`);
  console.log(a.node.status());
  await Promise.all(cluster.map(({ node }) => node.stop()));
}

// Run main() when executed directly (not when imported by a test).
if (import.meta.url === `file://${process.argv[1]}`) await main();
