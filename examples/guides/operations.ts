// The example of docs/operations.md: growing, handing over and shrinking a cluster,
// snapshots, and what to watch. In memory, so that it runs anywhere:
// `npm run build && node dist/examples/guides/operations.js`.
import { KvStateMachine, MemoryNetwork, MemoryStorage, RaftNode, isRaftError, type KvCommand, type KvResult, type NodeId, type RaftStatus } from "raftkit";

type KvNode = RaftNode<KvCommand, KvResult>;

/** One line for a dashboard or a health check; `status()` never blocks. */
export function describe(status: RaftStatus): string {
  const lag = status.commitIndex - status.appliedIndex; // entries committed but not yet applied here
  const slowest = status.peers.reduce((min, p) => Math.min(min, p.matchIndex), status.lastIndex);
  return (
    `${status.id}: ${status.role} term ${status.term} leader ${status.leader ?? "-"} ` +
    `commit ${status.commitIndex} applied ${status.appliedIndex} (lag ${lag})` +
    (status.role === "leader" ? `, slowest follower at ${slowest}, voters ${status.voters.join(",")}` : "")
  );
}

/** The node that leads now, as the nodes themselves see it. */
function leaderOf(nodes: Iterable<KvNode>): KvNode {
  for (const node of nodes) if (node.isLeader) return node;
  throw new Error("no leader");
}

export async function main(): Promise<void> {
  const network = new MemoryNetwork();
  const nodes = new Map<NodeId, KvNode>();
  const startNode = async (id: NodeId, peers: NodeId[]): Promise<KvNode> => {
    const node = new RaftNode({ id, peers, stateMachine: new KvStateMachine(), storage: new MemoryStorage(), transport: network.transport(id), tickMs: 10 });
    node.on("config", (config) => {
      if (!node.isLeader) return;
      const joint = config.outgoingVoters.length > 0 ? ` (joint: old voters ${config.outgoingVoters.join(",")})` : "";
      console.log(`configuration: voters ${config.voters.join(",")} learners ${config.learners.join(",") || "-"}${joint}`);
    });
    nodes.set(id, node);
    await node.start();
    return node;
  };
  for (const id of ["a", "b", "c"]) await startNode(id, ["a", "b", "c"]);
  const first = nodes.get("a")!;
  for (let i = 0; i < 50; i++) await first.propose({ op: "put", key: `k${i}`, value: String(i) });

  // Membership calls go to the leader. A follower rejects them with NOT_LEADER and names it.
  const follower = [...nodes.values()].find((n) => !n.isLeader)!;
  try {
    await follower.removeMember("c");
  } catch (err) {
    if (isRaftError(err, "NOT_LEADER")) console.log(`${follower.id}: not the leader; ask ${err.leaderId}`);
  }

  // Add a node: start it with no peers (it waits to be added), then add it. addMember makes
  // it a learner, waits until its log has caught up, then promotes it to voter.
  await startNode("d", []);
  const config = await leaderOf(nodes.values()).addMember("d", undefined, { timeoutMs: 10_000 });
  console.log(`d added; voters now ${config.voters.join(",")}`);

  // Planned maintenance on the leader: hand leadership over first.
  const oldLeader = leaderOf(nodes.values());
  const newLeader = await oldLeader.transferLeadership("d");
  console.log(`leadership moved from ${oldLeader.id} to ${newLeader}`);

  // Remove a member (through a joint configuration), then stop it.
  await nodes.get(newLeader)!.removeMember("a");
  await nodes.get("a")!.stop();
  nodes.delete("a");

  // Compact the log now instead of waiting for snapshotThreshold.
  console.log(`snapshot at index ${await nodes.get(newLeader)!.snapshot()}`);

  for (const node of nodes.values()) console.log(describe(node.status()));
  await Promise.all([...nodes.values()].map((node) => node.stop()));
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
