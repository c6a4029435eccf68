// Linearizable reads per second (issue 7), next to writes per second in the same cluster:
// 3 nodes in one process (MemoryStorage, KvStateMachine with 10,000 keys of 100-byte
// values), over MemoryNetwork and over TcpTransport on 127.0.0.1, tickMs 50.
//
// One mitata iteration starts IN_FLIGHT (1,000) calls at once and waits for all of them:
//  - writes: 1,000 puts, proposed on the leader, or on a follower (forwarded);
//  - reads:  1,000 `read({ mode })` calls, each followed by a `get` of this node's
//            KvStateMachine, on the leader or on a follower, with `mode: 'read-index'` (the
//            default: the leader confirms with one heartbeat round, shared by every read of
//            the turn; a follower asks the leader) or `mode: 'lease'` (the leader skips the
//            round while its lease holds; a follower asks the leader in both modes, and the
//            leader answers it after a round: the lease only helps reads on the leader).
// The ratio is reads/s ÷ writes/s with both proposed on the same node. The goal:
// ReadIndex batching serves at least 10× as many reads/s as writes/s.
//
// Run: npm run -s build && npx tsx bench/reads.bench.ts [--transport memory,tcp] [--in-flight 1000]
// mitata's own report goes to stderr, the table to stdout.
import { bench, do_not_optimize, run } from "mitata";
import { parseArgs } from "node:util";
import type { KvResult } from "raftkit";
import { installCleanup } from "../tools/processes.js";
import { InprocCluster, type Member, type TransportKind } from "./lib/inproc-cluster.js";
import { machineFacts } from "./lib/machine.js";
import { fmt, fmtMs, table } from "./lib/stats.js";

const { values: args } = parseArgs({
  options: {
    transport: { type: "string", default: "memory,tcp" },
    "in-flight": { type: "string", default: "1000" },
  },
});
const TRANSPORTS = args.transport.split(",") as TransportKind[];
const IN_FLIGHT = Number(args["in-flight"]);
if (TRANSPORTS.some((t) => t !== "memory" && t !== "tcp")) throw new RangeError("--transport must list memory and/or tcp");

const TICK_MS = 50;
const KEYS = 10_000;
const VALUE = "x".repeat(100);
const key = (i: number): string => `key/${String(i % KEYS).padStart(5, "0")}`;
const out = (line = ""): void => void process.stdout.write(`${line}\n`);

type Where = "leader" | "follower";
type Op = "write" | "read-index" | "lease";
const OPS: readonly Op[] = ["write", "read-index", "lease"];
const WHERE: readonly Where[] = ["leader", "follower"];

/** The cluster the benchmarks of the current transport run against. */
let nodes: Record<Where, Member> | null = null;
let seq = 0;

async function writes(m: Member): Promise<void> {
  const all: Promise<KvResult>[] = new Array(IN_FLIGHT);
  for (let i = 0; i < IN_FLIGHT; i++) all[i] = m.node.propose({ op: "put", key: key(seq++), value: VALUE });
  do_not_optimize(await Promise.all(all));
}

async function reads(m: Member, mode: "read-index" | "lease"): Promise<void> {
  const all: Promise<string | undefined>[] = new Array(IN_FLIGHT);
  for (let i = 0; i < IN_FLIGHT; i++) {
    const k = key(seq++);
    all[i] = m.node.read({ mode }).then(() => m.kv.get(k));
  }
  do_not_optimize(await Promise.all(all));
}

const name = (transport: TransportKind, op: Op, where: Where): string => `${transport} ${op} ${where}`;

/** Registers one transport's benchmarks; mitata's run() runs what is registered, then forgets it. */
function register(transport: TransportKind): void {
  for (const where of WHERE) {
    for (const op of OPS) {
      bench(name(transport, op, where), async () => {
        const m = nodes![where];
        await (op === "write" ? writes(m) : reads(m, op));
      });
    }
  }
}

out(`# bench/reads: 3 nodes in one process, MemoryStorage, KvStateMachine (${fmt(KEYS)} keys), tickMs ${TICK_MS}; ${fmt(IN_FLIGHT)} calls in flight per iteration`);
out(machineFacts({ transports: TRANSPORTS.join(", ") }));
out();
// A healthy run takes about 10 s per transport: a hang exits with code 3.
installCleanup("bench/reads").setBoundMs(180_000);
const rows: string[][] = [];
for (const transport of TRANSPORTS) {
  const cluster = await InprocCluster.start(["n1", "n2", "n3"], transport, { tickMs: TICK_MS });
  const leader = await cluster.waitForLeader();
  const follower = [...cluster.members.values()].find((m) => m.id !== leader.id)!;
  for (let i = 0; i < KEYS; i += IN_FLIGHT) {
    await Promise.all(Array.from({ length: IN_FLIGHT }, (_, j) => leader.node.propose({ op: "put", key: key(i + j), value: VALUE })));
  }
  nodes = { leader, follower };
  register(transport);
  const result = await run({ print: (s) => void process.stderr.write(`${s}\n`) });
  if (cluster.leader()?.id !== leader.id) out(`warning: leadership moved during the ${transport} run; its figures mix roles`);
  await cluster.stop();
  const perSecond = new Map<string, { p50: number; rate: number }>();
  for (const trial of result.benchmarks) {
    for (const r of trial.runs) if (r.stats) perSecond.set(trial.alias, { p50: r.stats.p50 / 1e6, rate: IN_FLIGHT / (r.stats.p50 / 1e9) });
  }
  for (const where of WHERE) {
    const w = perSecond.get(name(transport, "write", where));
    for (const op of OPS) {
      const s = perSecond.get(name(transport, op, where));
      if (s === undefined || w === undefined) continue;
      rows.push([
        transport === "tcp" ? "TcpTransport (loopback)" : "MemoryNetwork",
        where === "follower" && op === "write" ? "follower (forwarded)" : where,
        op === "write" ? "write (put)" : `read, mode '${op}'`,
        fmtMs(s.p50),
        fmt(s.rate),
        op === "write" ? "1" : `${fmt(s.rate / w.rate, 1)}×`,
      ]);
    }
  }
}
out(table(["transport", "node", "operation", `median per ${fmt(IN_FLIGHT)}`, "ops/s", "÷ writes/s on that node"], rows));
