// A 3-node raftkit-kv cluster on loopback, run as real processes from the built example
// (`dist/examples/kv-server/main.js`), driven only through its command line and HTTP API.
import type { ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { reservePort } from "../../tools/ports.js";
import { killChild, spawnLogged, stopChild } from "../../tools/processes.js";
import { jsonRequest } from "./http-load.js";
import { sleep } from "./stats.js";

export const KV_MAIN = fileURLToPath(new URL("../../dist/examples/kv-server/main.js", import.meta.url));
const HTTP_OFFSET = 1000;

/**
 * The process settings of docs/deploy.md's systemd unit, which the benchmarks run the
 * servers with: two malloc arenas (LevelDB's and libuv's threads otherwise grow one each),
 * and a V8 heap sized for a server. Unbounded, V8 on this 24 GiB machine lets the old
 * generation grow to about 4x the live data before a full collection (a 31 MB live set
 * held 80-140 MB of heap pages); a bound under 2 GiB lowers that factor to 1.3-1.7.
 * Semi-spaces of 8 MB rather than 16 save 16 MB; 4 MB saved 10 MB more but cost 15% of
 * the throughput (bench/RESULTS.md, "Memory under load").
 */
export const DEPLOYED_ENV: Readonly<Record<string, string>> = {
  MALLOC_ARENA_MAX: "2",
  NODE_OPTIONS: "--max-old-space-size=512 --max-semi-space-size=8",
};

export interface KvStatus {
  readonly id: string;
  readonly role: string;
  readonly term: number;
  readonly leader: string | null;
  readonly commitIndex: number;
  readonly appliedIndex: number;
}

export interface KvNode {
  readonly id: number;
  readonly raftPort: number;
  readonly httpPort: number;
  readonly dataDir: string;
  readonly logFile: string;
  child: ChildProcess | null;
}

export class KvCluster {
  private constructor(
    readonly nodes: readonly KvNode[],
    private readonly args: readonly string[],
    private readonly env: NodeJS.ProcessEnv,
    /** The servers' process settings, for the benchmark's report. */
    readonly settings: string,
  ) {}

  /**
   * Starts `size` nodes with data dirs and logs under `root`; resolves once a leader is
   * known. The servers run with {@link DEPLOYED_ENV} unless `nodeDefaults` is set.
   */
  static async start(root: string, { size = 3, preset = "--fast-mode", nodeDefaults = false } = {}): Promise<KvCluster> {
    if (!existsSync(KV_MAIN)) throw new Error(`${KV_MAIN} is missing: run \`npm run build\` first`);
    const nodes: KvNode[] = [];
    for (let id = 1; id <= size; id++) {
      const raftPort = await reservePort([0, HTTP_OFFSET]);
      const dataDir = join(root, `raftkit-${id}`);
      mkdirSync(dataDir, { recursive: true });
      nodes.push({ id, raftPort, httpPort: raftPort + HTTP_OFFSET, dataDir, logFile: join(root, `raftkit-${id}.log`), child: null });
    }
    const env = nodeDefaults ? process.env : { ...process.env, ...DEPLOYED_ENV };
    const settings = nodeDefaults
      ? "Node's defaults"
      : `${Object.entries(DEPLOYED_ENV).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(" ")} (docs/deploy.md)`;
    const cluster = new KvCluster(nodes, ["--cluster", nodes.map((n) => `127.0.0.1:${n.raftPort}`).join(","), preset], env, settings);
    for (const node of nodes) cluster.launch(node);
    await cluster.waitForLeader(20_000);
    return cluster;
  }

  private launch(node: KvNode): ChildProcess {
    // Extra `node` flags for the servers, e.g. RAFTKIT_KV_NODE_ARGS="--cpu-prof
    // --cpu-prof-dir=/tmp/prof" to profile them (flags NODE_OPTIONS does not allow).
    const nodeArgs = (process.env["RAFTKIT_KV_NODE_ARGS"] ?? "").split(" ").filter((a) => a !== "");
    const args = [...nodeArgs, KV_MAIN, "--node-id", String(node.id), "--bind", `127.0.0.1:${node.raftPort}`, "--data-dir", node.dataDir, ...this.args];
    node.child = spawnLogged(process.execPath, args, node.logFile, this.env);
    return node.child;
  }

  url(node: KvNode): string {
    return `http://127.0.0.1:${node.httpPort}`;
  }

  /** The node's /v1/status, or null when it does not answer. */
  async status(node: KvNode, timeoutMs = 1000): Promise<KvStatus | null> {
    try {
      const { status, json } = await jsonRequest(`${this.url(node)}/v1/status`, "GET", undefined, timeoutMs);
      return status === 200 ? (json as KvStatus) : null;
    } catch {
      return null;
    }
  }

  /** The node that says it is the leader and that a majority of the answering nodes follow. */
  async waitForLeader(timeoutMs: number): Promise<KvNode> {
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline) {
      const live = this.nodes.filter((n) => n.child !== null);
      const statuses = await Promise.all(live.map((n) => this.status(n)));
      const leader = live.find((_, i) => statuses[i]?.role === "leader");
      if (leader !== undefined) {
        const agree = statuses.filter((s) => s?.leader === String(leader.id)).length;
        if (agree > this.nodes.length / 2) return leader;
      }
      for (const node of live) {
        if (node.child !== null && node.child.exitCode !== null) throw new Error(`raftkit-kv node ${node.id} exited (${node.child.exitCode}):\n${this.logTail(node)}`);
      }
      await sleep(50);
    }
    throw new Error(`no raftkit-kv leader within ${timeoutMs} ms:\n${this.nodes.map((n) => this.logTail(n)).join("\n")}`);
  }

  /** Waits until every live node has applied at least the leader's commit index. */
  async waitCaughtUp(timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline) {
      const live = this.nodes.filter((n) => n.child !== null);
      const statuses = await Promise.all(live.map((n) => this.status(n)));
      const leader = statuses.find((s) => s?.role === "leader");
      if (leader !== undefined && leader !== null && statuses.every((s) => s !== null && s.appliedIndex >= leader.commitIndex)) return;
      await sleep(50);
    }
    throw new Error(`raftkit-kv nodes did not catch up within ${timeoutMs} ms`);
  }

  /** kill -9; resolves once the process is gone. */
  async kill9(node: KvNode): Promise<void> {
    const child = node.child;
    if (child === null) return;
    await killChild(child);
    node.child = null;
  }

  /** Starts a stopped node again on its data dir, with the same flags; resolves once it answers. */
  async restart(node: KvNode, timeoutMs = 20_000): Promise<void> {
    if (node.child !== null) throw new Error(`node ${node.id} is running`);
    const child = this.launch(node);
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline) {
      if ((await this.status(node)) !== null) return;
      if (child.exitCode !== null) throw new Error(`raftkit-kv node ${node.id} exited on restart (${child.exitCode}):\n${this.logTail(node)}`);
      await sleep(50);
    }
    throw new Error(`raftkit-kv node ${node.id} did not answer within ${timeoutMs} ms of its restart`);
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map(async (n) => (n.child === null ? undefined : stopChild(n.child))));
    for (const n of this.nodes) n.child = null;
  }

  logTail(node: KvNode, lines = 15): string {
    try {
      return readFileSync(node.logFile, "utf8").trimEnd().split("\n").slice(-lines).map((l) => `  [node ${node.id}] ${l}`).join("\n");
    } catch {
      return `  [node ${node.id}] (no log)`;
    }
  }
}

/**
 * Sums the samples of a Prometheus metric (optionally only those whose labels contain
 * `labels`): 0 when the metric is declared but has no sample yet (a labelled counter never
 * incremented), NaN when the text does not mention it at all.
 */
export function promSum(text: string, name: string, labels = ""): number {
  let sum = 0;
  let found = text.includes(`# TYPE ${name} `) || text.includes(`# TYPE ${name.replace(/_(count|sum|bucket)$/, "")} `);
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (!(rest.startsWith(" ") || rest.startsWith("{"))) continue;
    if (labels !== "" && !rest.includes(labels)) continue;
    const value = Number(rest.slice(rest.lastIndexOf(" ") + 1));
    if (Number.isFinite(value)) {
      sum += value;
      found = true;
    }
  }
  return found ? sum : Number.NaN;
}
