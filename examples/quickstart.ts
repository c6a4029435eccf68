import { RaftNode, MemoryNetwork, MemoryStorage, KvStateMachine } from "raftkit";

const network = new MemoryNetwork();
const ids = ["n1", "n2", "n3"];
const cluster = ids.map((id) => {
  const kv = new KvStateMachine();
  const node = new RaftNode({ id, peers: ids, stateMachine: kv, storage: new MemoryStorage(), transport: network.transport(id) });
  return { node, kv };
});
await Promise.all(cluster.map(({ node }) => node.start()));

const { node, kv } = cluster[2]!; // any node: proposals are forwarded to the leader
console.log(await node.propose({ op: "put", key: "greeting", value: "hello" }));
await node.read(); // a linearizable read point
console.log(kv.get("greeting")); // hello
await Promise.all(cluster.map(({ node }) => node.stop()));
