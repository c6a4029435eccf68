import { runSimulation } from "../src/testing/index.js";
import { RaftNode } from "../src/node/raft-node.js";
const all: any[] = [];
const P = RaftNode.prototype as any; const os = P.start; P.start = function (this: any) { all.push(this); return os.call(this); };
const r = await runSimulation({ seed: Number(process.argv[2]), nodes: Number(process.argv[3]) });
console.log(r.ok);
for (const n of all) { const c = n.core; if (!c) continue; console.log(n.id, n.state, c.role, "term", c.term, "config", JSON.stringify(c.config), "pendingConfigIndex", c.pendingConfigIndex, "applied", c.log.applied, "commit", c.log.committed, "last", c.log.lastIndex());
  for (let i = Math.max(c.log.firstIndex(), 40); i <= c.log.lastIndex(); i++) { const e = c.log.slice(i, 1, 1e9)[0]; if (e?.type === "config") console.log("   ", i, "t" + e.term, new TextDecoder().decode(e.data)); } }
