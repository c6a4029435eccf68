// The cluster load benchmark (issue 8): three raftkit-kv server processes on loopback
// (LevelStorage with fsync on, the fast timing preset, fresh temp data dirs), driven over
// HTTP by N concurrent keep-alive clients PUTting 100-byte values to the leader for a
// fixed time per point. Before that, the same load generator runs against a trivial
// local HTTP server, so that its own ceiling is known: a cluster figure close to it
// measures the generator, not the cluster.
//
//   npx tsx bench/cluster.bench.ts [--duration 10] [--clients 1,16,64,256]
//                                  [--baseline-duration 3] [--warmup 1] [--value-bytes 100]
//
// Builds (npm run build) when dist/ is missing or older than the sources. Stops every
// process it started when it ends, fails, or is interrupted; gives up after a bound.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { Agent, request } from "node:http";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { reservePorts } from "../tools/ports.js";
import { runningChildren, sleep, spawnLogged, stopAllChildren } from "../tools/processes.js";
import { startTrivialServer } from "./lib/machine.js";

const ROOT = path.resolve(import.meta.dirname, "..");
const MAIN = path.join(ROOT, "dist/examples/kv-server/main.js");
const HOST = "127.0.0.1";

const { values } = parseArgs({
  options: {
    duration: { type: "string", default: "10" },
    clients: { type: "string", default: "1,16,64,256" },
    "baseline-duration": { type: "string", default: "3" },
    warmup: { type: "string", default: "1" },
    "value-bytes": { type: "string", default: "100" },
  },
  strict: true,
});
const seconds = (name: string, v: string): number => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0 || n > 600) throw new RangeError(`--${name} must be 0 to 600 seconds, got ${v}`);
  return n;
};
const durationS = seconds("duration", values.duration);
const baselineS = seconds("baseline-duration", values["baseline-duration"]);
const warmupS = seconds("warmup", values.warmup);
const clientCounts = values.clients.split(",").map((t) => {
  const n = Number(t);
  if (!Number.isInteger(n) || n < 1 || n > 4096) throw new RangeError(`--clients must be a list of integers from 1 to 4096, got ${t}`);
  return n;
});
const valueBytes = Number(values["value-bytes"]);
if (!Number.isInteger(valueBytes) || valueBytes < 0 || valueBytes > 1024 * 1024) throw new RangeError("--value-bytes must be 0 to 1048576");
const body = JSON.stringify({ value: "x".repeat(valueBytes) });

// The whole run is bounded: every phase's time, plus a minute for starting and stopping.
const boundMs = 1000 * (60 + clientCounts.length * (durationS + baselineS + 2 * warmupS + 10));

// ---------------------------------------------------------------- processes

let tempRoot: string | null = null;

/** SIGTERM to every process this benchmark started, SIGKILL after 5 s; then the temp dir goes. */
async function stopAll(): Promise<void> {
  await stopAllChildren(5_000);
  if (tempRoot !== null) rmSync(tempRoot, { recursive: true, force: true });
  tempRoot = null;
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    process.stderr.write(`\n${signal}: stopping every process\n`);
    void stopAll().then(() => process.exit(130));
  });
}

function newestMtime(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestMtime(p));
    else if (e.name.endsWith(".ts")) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

function ensureBuilt(): void {
  const sources = Math.max(newestMtime(path.join(ROOT, "src")), newestMtime(path.join(ROOT, "examples")));
  if (existsSync(MAIN) && statSync(MAIN).mtimeMs >= sources && statSync(path.join(ROOT, "dist/index.js")).mtimeMs >= sources) return;
  process.stderr.write("building (npm run build)...\n");
  const r = spawnSync("npm", ["run", "-s", "build"], { cwd: ROOT, stdio: "inherit" });
  if (r.status !== 0) throw new Error("npm run build failed");
}

// ---------------------------------------------------------------- the load generator

interface RawAnswer {
  readonly status: number;
  readonly location: string | undefined;
  readonly text: string;
}

function put(agent: Agent, base: string, key: string): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${base}/v1/kv/${key}`,
      { method: "PUT", agent, headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) }, timeout: 30_000 },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (text += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, location: res.headers.location, text }));
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error("no answer within 30 s")));
    req.on("error", reject);
    req.end(body);
  });
}

interface PointResult {
  readonly clients: number;
  readonly ok: number;
  /** Successful PUTs including the warm-up. */
  readonly okAll: number;
  readonly opsPerS: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Failed requests by HTTP status (or "network"). */
  readonly errors: Record<string, number>;
}

/** `clients` loops, each one PUT at a time over its own keep-alive connection, for `durationS` after `warmupS`. */
async function drive(startBase: string, clients: number, runS: number): Promise<PointResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: clients, maxFreeSockets: clients });
  let base = startBase;
  const latencies: number[] = [];
  const errors: Record<string, number> = {};
  const start = performance.now();
  const measureFrom = start + warmupS * 1000;
  const end = measureFrom + runS * 1000;
  let seq = 0;
  let ok = 0;
  let okAll = 0;
  const loop = async (): Promise<void> => {
    while (performance.now() < end) {
      const key = `key-${seq++ % 100_000}`;
      const t0 = performance.now();
      let answer: RawAnswer;
      try {
        answer = await put(agent, base, key);
      } catch {
        if (t0 >= measureFrom) errors["network"] = (errors["network"] ?? 0) + 1;
        await sleep(10);
        continue;
      }
      const t1 = performance.now();
      if (answer.status === 200) {
        okAll++;
        if (t0 >= measureFrom && t1 <= end) {
          latencies.push(t1 - t0);
          ok++;
        }
        continue;
      }
      if (t0 >= measureFrom) errors[String(answer.status)] = (errors[String(answer.status)] ?? 0) + 1;
      if (answer.status === 307 && answer.location !== undefined) base = new URL(answer.location).origin;
      else await sleep(10);
    }
  };
  await Promise.all(Array.from({ length: clients }, loop));
  agent.destroy();
  latencies.sort((a, b) => a - b);
  const pct = (q: number): number => (latencies.length === 0 ? NaN : latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]!);
  return { clients, ok, okAll, opsPerS: ok / runS, p50Ms: pct(0.5), p99Ms: pct(0.99), errors };
}

// ---------------------------------------------------------------- servers

interface Cluster {
  readonly urls: string[];
  readonly logs: string[];
}

async function startCluster(root: string): Promise<Cluster> {
  // Each Raft port's HTTP port (+1000) must be free too.
  const ports = await reservePorts(3, [0, 1000]);
  const peers = ports.map((p, i) => `${i + 1}=${HOST}:${p}`).join(",");
  const logs: string[] = [];
  for (let i = 0; i < 3; i++) {
    const log = path.join(root, `node${i + 1}.log`);
    logs.push(log);
    spawnLogged(process.execPath, [MAIN, "--node-id", String(i + 1), "--peers", peers, "--data-dir", path.join(root, `data${i + 1}`), "--fast-mode"], log);
  }
  return { urls: ports.map((p) => `http://${HOST}:${p + 1000}`), logs };
}

async function status(url: string): Promise<Record<string, unknown> | null> {
  try {
    const res = await fetch(`${url}/v1/status`, { signal: AbortSignal.timeout(1000) });
    return (await res.json()) as Record<string, unknown>;
  } catch {
    return null;
  }
}

async function waitForLeader(c: Cluster, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (runningChildren() < 3) break;
    const all = await Promise.all(c.urls.map(status));
    const id = all.find((s) => s?.["role"] === "leader")?.["id"];
    if (id !== undefined && all.every((s) => s?.["leader"] === id)) return c.urls[Number(id) - 1]!;
    await sleep(100);
  }
  throw new Error(`no leader within ${timeoutMs} ms; logs: ${c.logs.join(", ")}`);
}

/** The leader's durable-write counters: how many saves (LevelDB batch + fsync) and their total seconds. */
async function saves(url: string): Promise<{ count: number; sum: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const num = (name: string): number => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1] ?? NaN);
  return { count: num("raftkit_storage_save_duration_seconds_count"), sum: num("raftkit_storage_save_duration_seconds_sum") };
}

// ---------------------------------------------------------------- report

const fmt = (n: number, digits = 0): string => (Number.isFinite(n) ? n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits }) : "-");
const errText = (e: Record<string, number>): string =>
  Object.keys(e).length === 0 ? "0" : Object.entries(e).map(([k, v]) => `${v}x${k}`).join(" ");

async function main(): Promise<void> {
  ensureBuilt();
  const cpus = os.cpus();
  console.log(
    `raftkit-kv cluster benchmark: 3 server processes on loopback, fsync on, fast preset, ${valueBytes}-byte values; ` +
      `${durationS} s per point after ${warmupS} s of warm-up; load generator in this process`,
  );
  console.log(`machine: ${cpus.length} CPUs (${cpus[0]?.model.trim() ?? "?"}), Node ${process.version}, ${os.platform()} ${os.release()}`);

  console.log(`\nload generator alone, against a trivial HTTP server in its own process (${baselineS} s per point):`);
  console.log("  clients      ops/s   p50 ms   p99 ms   errors");
  const trivial = `http://${HOST}:${(await startTrivialServer()).port}`;
  for (const n of clientCounts) {
    const r = await drive(trivial, n, baselineS);
    console.log(`  ${String(n).padStart(7)} ${fmt(r.opsPerS).padStart(10)} ${fmt(r.p50Ms, 2).padStart(8)} ${fmt(r.p99Ms, 2).padStart(8)}   ${errText(r.errors)}`);
  }
  await stopAll();

  tempRoot = mkdtempSync(path.join(os.tmpdir(), "raftkit-bench-cluster-"));
  const cluster = await startCluster(tempRoot);
  const leaderUrl = await waitForLeader(cluster, 20_000);
  console.log(`\ncluster: PUT to the leader (${leaderUrl}), following 307 if leadership moves:`);
  console.log("  clients      ops/s   p50 ms   p99 ms   errors   leader fsyncs/s   puts/fsync   mean save ms");
  for (const n of clientCounts) {
    const before = await saves(leaderUrl);
    const t0 = performance.now();
    const r = await drive(leaderUrl, n, durationS);
    const elapsedS = (performance.now() - t0) / 1000;
    const after = await saves(leaderUrl);
    const fsyncs = after.count - before.count;
    console.log(
      `  ${String(n).padStart(7)} ${fmt(r.opsPerS).padStart(10)} ${fmt(r.p50Ms, 2).padStart(8)} ${fmt(r.p99Ms, 2).padStart(8)}   ${errText(r.errors).padEnd(6)} ` +
        `${fmt(fsyncs / elapsedS).padStart(17)} ${fmt(r.okAll / Math.max(1, fsyncs), 1).padStart(12)} ${fmt((1000 * (after.sum - before.sum)) / Math.max(1, fsyncs), 3).padStart(14)}`,
    );
  }
}

const bound = setTimeout(() => {
  process.stderr.write(`cluster bench: still running after ${boundMs / 1000} s; stopping\n`);
  void stopAll().then(() => process.exit(1));
}, boundMs);
bound.unref();
try {
  await main();
} catch (err) {
  process.exitCode = 1;
  process.stderr.write(`cluster bench failed: ${err instanceof Error ? err.message : String(err)}\n`);
} finally {
  await stopAll();
}
