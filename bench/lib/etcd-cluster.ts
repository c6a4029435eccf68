// A 3-member etcd cluster on loopback with etcd's defaults (fsync on), for comparison.
import type { ChildProcess } from "node:child_process";
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { reservePort } from "../../tools/ports.js";
import { spawnLogged, stopChild } from "../../tools/processes.js";
import { jsonRequest } from "./http-load.js";
import { sleep } from "./stats.js";

export interface EtcdMember {
  readonly name: string;
  readonly clientPort: number;
  readonly peerPort: number;
  readonly logFile: string;
  child: ChildProcess | null;
}

const which = (cmd: string): string | null => {
  const r = spawnSync("sh", ["-c", `command -v ${cmd}`], { encoding: "utf8" });
  return r.status === 0 && r.stdout.trim() !== "" ? r.stdout.trim() : null;
};

/**
 * Returns the path of `etcd`, installing Debian's etcd-server first when it is missing
 * (apt-get update once, then apt-get install -y etcd-server). Throws with a clear message
 * when that is not possible.
 */
export function ensureEtcd(log: (line: string) => void): string {
  const found = which("etcd");
  if (found !== null) return found;
  if (process.getuid?.() !== 0) throw new Error("etcd is not installed and this is not root: install it with `apt-get install -y etcd-server`");
  log("etcd is not installed: apt-get update && apt-get install -y etcd-server (output on stderr)");
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  for (const args of [["update"], ["install", "-y", "etcd-server"]]) {
    const r = spawnSync("apt-get", args, { stdio: ["ignore", 2, 2], env, timeout: 600_000 });
    if (r.status !== 0) {
      throw new Error(`installing etcd failed: \`apt-get ${args.join(" ")}\` ${r.error !== undefined ? `could not run (${r.error.message})` : `exited with ${r.status ?? r.signal}`}`);
    }
  }
  const installed = which("etcd");
  if (installed === null) throw new Error("installing etcd failed: etcd-server installed but no `etcd` on the PATH");
  return installed;
}

export function etcdVersion(etcd: string): string {
  const r = spawnSync(etcd, ["--version"], { encoding: "utf8", timeout: 10_000 });
  return (r.stdout || r.stderr || "unknown").trim().split("\n").join("; ");
}

export class EtcdCluster {
  /** The JSON gateway's prefix this etcd serves: "/v3" (3.4+) or "/v3beta" (3.3). */
  gateway = "/v3";

  private constructor(readonly members: readonly EtcdMember[]) {}

  static async start(etcd: string, root: string, size = 3): Promise<EtcdCluster> {
    const members: EtcdMember[] = [];
    for (let i = 1; i <= size; i++) {
      members.push({ name: `m${i}`, clientPort: await reservePort(), peerPort: await reservePort(), logFile: join(root, `etcd-m${i}.log`), child: null });
    }
    const initialCluster = members.map((m) => `${m.name}=http://127.0.0.1:${m.peerPort}`).join(",");
    const token = `raftkit-bench-${process.pid}-${Date.now()}`;
    for (const m of members) {
      const dataDir = join(root, `etcd-${m.name}`);
      mkdirSync(dataDir, { recursive: true, mode: 0o700 });
      const client = `http://127.0.0.1:${m.clientPort}`;
      const peer = `http://127.0.0.1:${m.peerPort}`;
      m.child = spawnLogged(
        etcd,
        [
          "--name", m.name, "--data-dir", dataDir,
          "--listen-client-urls", client, "--advertise-client-urls", client,
          "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
          "--initial-cluster", initialCluster, "--initial-cluster-token", token, "--initial-cluster-state", "new",
        ],
        m.logFile,
      );
    }
    const cluster = new EtcdCluster(members);
    await cluster.waitHealthy(30_000);
    await cluster.pickGateway();
    return cluster;
  }

  url(m: EtcdMember): string {
    return `http://127.0.0.1:${m.clientPort}`;
  }

  private async waitHealthy(timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline) {
      const healthy = await Promise.all(
        this.members.map(async (m) => {
          try {
            const { status, json } = await jsonRequest(`${this.url(m)}/health`, "GET", undefined, 1000);
            return status === 200 && (json as { health?: string } | null)?.health === "true";
          } catch {
            return false;
          }
        }),
      );
      if (healthy.every(Boolean)) return;
      for (const m of this.members) {
        if (m.child !== null && m.child.exitCode !== null) throw new Error(`etcd ${m.name} exited (${m.child.exitCode}):\n${this.logTail(m)}`);
      }
      await sleep(100);
    }
    throw new Error(`etcd was not healthy within ${timeoutMs} ms:\n${this.members.map((m) => this.logTail(m)).join("\n")}`);
  }

  /** Which JSON gateway path this etcd serves: /v3/kv/put (3.4+) or /v3beta/kv/put (3.3). */
  private async pickGateway(): Promise<void> {
    const m = this.members[0]!;
    const probe = { key: Buffer.from("bench-probe").toString("base64"), value: Buffer.from("1").toString("base64") };
    for (const prefix of ["/v3", "/v3beta"]) {
      const { status } = await jsonRequest(`${this.url(m)}${prefix}/kv/put`, "POST", probe, 5000);
      if (status === 200) {
        this.gateway = prefix;
        return;
      }
    }
    throw new Error("etcd serves neither /v3/kv/put nor /v3beta/kv/put");
  }

  /** The member that is the leader (by /maintenance/status: its member_id equals the leader). */
  async leader(): Promise<EtcdMember> {
    for (const m of this.members) {
      const { status, json } = await jsonRequest(`${this.url(m)}${this.gateway}/maintenance/status`, "POST", {}, 2000);
      const s = json as { header?: { member_id?: string }; leader?: string } | null;
      if (status === 200 && s?.leader !== undefined && s.header?.member_id === s.leader) return m;
    }
    throw new Error("no etcd member says it is the leader");
  }

  /** The server's version as /version reports it. */
  async serverVersion(): Promise<string> {
    const { json } = await jsonRequest(`${this.url(this.members[0]!)}/version`);
    return JSON.stringify(json);
  }

  async stop(): Promise<void> {
    await Promise.all(this.members.map(async (m) => (m.child === null ? undefined : stopChild(m.child))));
    for (const m of this.members) m.child = null;
  }

  logTail(m: EtcdMember, lines = 15): string {
    try {
      return readFileSync(m.logFile, "utf8").trimEnd().split("\n").slice(-lines).map((l) => `  [${m.name}] ${l}`).join("\n");
    } catch {
      return `  [${m.name}] (no log)`;
    }
  }
}
