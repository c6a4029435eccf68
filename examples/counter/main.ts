// The smallest useful embedding of raftkit: a replicated counter on three in-process
// nodes. Run it with `npm run build && node dist/examples/counter/main.js`.
import { MemoryNetwork, MemoryStorage, RaftNode } from "raftkit";
import type { StateMachine } from "raftkit";

type Increment = { readonly add: number };

// apply() must be deterministic: every node applies the same increments in the same
// order, so every node ends with the same total.
class Counter implements StateMachine<Increment, number> {
  total = 0;
  apply(cmd: Increment): number {
    this.total += cmd.add;
    return this.total;
  }
}

const network = new MemoryNetwork();
const ids = ["a", "b", "c"];
const nodes = ids.map((id) => {
  const counter = new Counter();
  const node = new RaftNode({
    id,
    peers: ids,
    stateMachine: counter,
    storage: new MemoryStorage(),
    transport: network.transport(id),
    tickMs: 10,
  });
  return { id, node, counter };
});
await Promise.all(nodes.map(({ node }) => node.start()));

// Propose from every node at once: followers forward to the leader, and each promise
// resolves with the total right after its own increment was applied.
const results = await Promise.all(
  nodes.flatMap(({ id, node }, i) =>
    [1, 2, 3].map(async (n) => {
      const total = await node.propose({ add: (i + 1) * n });
      return `${id} +${(i + 1) * n} -> ${total}`;
    }),
  ),
);
console.log(results.join("\n"));

// A linearizable read point on each node: every committed increment is applied there.
for (const { id, node, counter } of nodes) {
  await node.read();
  console.log(`node ${id}: total ${counter.total}`);
}
await Promise.all(nodes.map(({ node }) => node.stop()));
