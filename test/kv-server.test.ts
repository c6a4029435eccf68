// The example KV server as its users run it: real processes (`node dist/examples/kv-server/main.js`,
// built by `npm run build`, which `npm test` runs first) on loopback, real sockets, real
// LevelDB directories, kill -9. Only what real processes can show is tested here.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { reservePorts } from "../tools/ports.js";
import { exited as exitOf } from "../tools/processes.js";

const MAIN = path.resolve("dist/examples/kv-server/main.js");
const HOST = "127.0.0.1";

// ---------------------------------------------------------------- processes

interface Proc {
  readonly name: string;
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  output(): string;
}

const procs = new Set<Proc>();
const tempDirs: string[] = [];

function run(name: string, args: readonly string[], stdin = false): Proc {
  const child = spawn(process.execPath, [MAIN, ...args], { stdio: [stdin ? "pipe" : "ignore", "pipe", "pipe"] });
  let out = "";
  const collect = (chunk: Buffer): void => {
    out += chunk.toString("utf8");
    if (out.length > 200_000) out = out.slice(-100_000);
  };
  child.stdout!.on("data", collect);
  child.stderr!.on("data", collect);
  const exited = exitOf(child);
  const proc: Proc = { name, child, exited, output: () => out };
  procs.add(proc);
  void exited.then(() => procs.delete(proc));
  return proc;
}

/** The last lines of every live process's output, for failure messages. */
function dump(): string {
  return [...procs].map((p) => `--- ${p.name}\n${p.output().split("\n").slice(-15).join("\n")}`).join("\n");
}

async function killAll(): Promise<void> {
  const all = [...procs];
  for (const p of all) p.child.kill("SIGKILL");
  await Promise.all(all.map((p) => p.exited));
}

afterAll(async () => {
  await killAll();
  await Promise.all(tempDirs.map((d) => rm(d, { recursive: true, force: true })));
});

async function tempDir(): Promise<string> {
  const d = await mkdtemp(path.join(os.tmpdir(), "raftkit-kv-test-"));
  tempDirs.push(d);
  return d;
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${dump()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// ---------------------------------------------------------------- HTTP

interface Answer {
  readonly status: number;
  readonly headers: Headers;
  // Parsed JSON, checked field by field with expect().
  readonly body: any;
}

async function api(port: number, method: string, urlPath: string, body?: unknown): Promise<Answer> {
  const res = await fetch(`http://${HOST}:${port}${urlPath}`, {
    method,
    redirect: "manual",
    headers: { "content-type": "application/json" },
    ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) }),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // /metrics is text
  }
  return { status: res.status, headers: res.headers, body: parsed };
}

async function metricsOf(port: number): Promise<string> {
  return (await api(port, "GET", "/metrics")).body as string;
}

// ---------------------------------------------------------------- a cluster

interface Cluster {
  /** The Raft ports of the 3 initial nodes. */
  readonly raftPorts: number[];
  /** Free Raft ports for nodes 4, 5, ... added later (their HTTP ports, +1000, are free too). */
  readonly sparePorts: number[];
  readonly dirs: string[];
  /** Node `id`'s process at index id - 1; null once stopped. */
  readonly procs: (Proc | null)[];
  /** The client (HTTP) port of node `id` ("1", "2", ...). */
  http(id: string): number;
}

/**
 * Starts 3 nodes; `argsOf` gives node i's flags. Reserves `spare` more ports for nodes
 * added later. Retries on a port taken in the meantime.
 */
async function startCluster(name: string, argsOf: (i: number, raftPorts: number[], dirs: string[]) => string[], spare = 0): Promise<Cluster> {
  for (let attempt = 1; ; attempt++) {
    const ports = await reservePorts(3 + spare, [0, 1000]); // a Raft port and its HTTP port (+1000) each
    const raftPorts = ports.slice(0, 3);
    const dirs = await Promise.all([0, 1, 2].map(() => tempDir()));
    const started = [0, 1, 2].map((i) => run(`${name} node ${i + 1}`, argsOf(i, raftPorts, dirs)));
    const cluster: Cluster = { raftPorts, sparePorts: ports.slice(3), dirs, procs: started, http: (id) => ports[Number(id) - 1]! + 1000 };
    const up = await Promise.race([
      waitFor(`${name} to elect a leader`, () => leaderOf(cluster)).then(() => true),
      ...started.map((p) => p.exited.then(() => false)),
    ]);
    if (up) return cluster;
    const taken = started.some((p) => /EADDRINUSE/.test(p.output()));
    await Promise.all(started.map((p) => (p.child.kill("SIGKILL"), p.exited)));
    if (!taken || attempt >= 3) throw new Error(`${name} did not start\n${started.map((p) => p.output()).join("\n")}`);
  }
}

/** The leader's id once every live node agrees on it. */
async function leaderOf(c: Cluster): Promise<string | undefined> {
  const live = c.procs.map((p, i) => (p === null ? null : String(i + 1))).filter((id): id is string => id !== null);
  const statuses = await Promise.all(live.map((id) => api(c.http(id), "GET", "/v1/status")));
  const leader = statuses.find((s) => s.body.role === "leader")?.body.id as string | undefined;
  if (leader === undefined || !statuses.every((s) => s.body.leader === leader)) return undefined;
  return leader;
}

function followerOf(c: Cluster, leader: string): string {
  return liveIds(c).find((id) => id !== leader)!;
}

function liveIds(c: Cluster): string[] {
  return c.procs.map((p, i) => (p === null ? null : String(i + 1))).filter((id): id is string => id !== null);
}

// ---------------------------------------------------------------- the interactive client

/** A client process driven line by line through its stdin pipe. */
class ClientSession {
  private readonly lines: string[] = [];
  private readonly waiters: ((line: string) => void)[] = [];
  private partial = "";

  constructor(readonly proc: Proc) {
    proc.child.stdout!.on("data", (chunk: Buffer) => {
      const parts = (this.partial + chunk.toString("utf8")).split("\n");
      this.partial = parts.pop()!;
      for (const line of parts) {
        const waiter = this.waiters.shift();
        if (waiter) waiter(line);
        else this.lines.push(line);
      }
    });
  }

  /** Sends one command and returns its one line of result. */
  command(line: string, timeoutMs = 15_000): Promise<string> {
    this.proc.child.stdin!.write(`${line}\n`);
    const ready = this.lines.shift();
    if (ready !== undefined) return Promise.resolve(ready);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer to ${JSON.stringify(line)}\n${dump()}`)), timeoutMs);
      this.waiters.push((l) => {
        clearTimeout(timer);
        resolve(l);
      });
    });
  }
}

/** Runs the client over a whole script on its stdin; returns its stdout lines and exit code. */
async function clientScript(clusterFlag: string, script: readonly string[]): Promise<{ lines: string[]; code: number | null }> {
  const p = run("client", ["--cluster", clusterFlag], true);
  p.child.stdin!.end(script.map((l) => `${l}\n`).join(""));
  let stdout = "";
  p.child.stdout!.on("data", (c: Buffer) => (stdout += c.toString("utf8")));
  const code = await p.exited;
  return { lines: stdout.split("\n").filter((l) => l !== ""), code };
}

// ---------------------------------------------------------------- tests

describe("raftkit-kv: three server processes", () => {
  let c: Cluster;
  let leader: string;
  let follower: string;
  const clusterFlag = (): string => c.raftPorts.map((p) => `${HOST}:${p}`).join(",");
  const argsOf = (i: number, ports: number[], dirs: string[]): string[] => [
    "--node-id",
    String(i + 1),
    "--peers",
    ports.map((p, j) => `${j + 1}=${HOST}:${p}`).join(","),
    "--client-bind",
    `${HOST}:${ports[i]! + 1000}`,
    "--data-dir",
    dirs[i]!,
    "--fast-mode",
  ];

  beforeAll(async () => {
    c = await startCluster("main", argsOf);
    leader = (await leaderOf(c))!;
    follower = followerOf(c, leader);
  });

  // A loaded machine can stall a process long enough for an election: ask again each time.
  beforeEach(async () => {
    leader = await waitFor("a leader", () => leaderOf(c));
    follower = followerOf(c, leader);
  });

  it("reports one leader and the status shape on every node", async () => {
    for (const id of ["1", "2", "3"]) {
      const s = await api(c.http(id), "GET", "/v1/status");
      expect(s.status).toBe(200);
      expect(s.headers.get("content-type")).toMatch(/^application\/json/);
      expect(s.body).toMatchObject({ id, role: id === leader ? "leader" : "follower", leader });
      for (const field of ["term", "commitIndex", "appliedIndex"]) expect(typeof s.body[field]).toBe("number");
      expect(s.body.members.map((m: { id: string; address: string; clientUrl: string }) => [m.id, m.address, m.clientUrl])).toEqual(
        ["1", "2", "3"].map((m) => [m, `${HOST}:${c.raftPorts[Number(m) - 1]}`, `http://${HOST}:${c.http(m)}`]),
      );
    }
  });

  it("writes through the leader and reads back, deletes", async () => {
    const L = c.http(leader);
    const put = await api(L, "PUT", "/v1/kv/greeting", { value: "hello" });
    expect(put.status).toBe(200);
    expect(put.body).toEqual({ index: expect.any(Number) });
    const put2 = await api(L, "PUT", "/v1/kv/greeting", { value: "hello again" });
    expect(put2.body.index).toBeGreaterThan(put.body.index);
    expect(await api(L, "GET", "/v1/kv/greeting")).toMatchObject({ status: 200, body: { key: "greeting", value: "hello again" } });
    // Keys are path segments: anything percent-encoded, "/" and "." included.
    const odd = "a/b ü.";
    expect((await api(L, "PUT", `/v1/kv/${encodeURIComponent(odd)}`, { value: "" })).status).toBe(200);
    expect((await api(L, "GET", `/v1/kv/${encodeURIComponent(odd)}`)).body).toEqual({ key: odd, value: "" });
    const del = await api(L, "DELETE", `/v1/kv/${encodeURIComponent(odd)}`);
    expect(del).toMatchObject({ status: 200, body: { deleted: true, index: expect.any(Number) } });
    expect((await api(L, "DELETE", `/v1/kv/${encodeURIComponent(odd)}`)).body).toMatchObject({ deleted: false });
    expect(await api(L, "GET", `/v1/kv/${encodeURIComponent(odd)}`)).toMatchObject({ status: 404, body: { code: "NOT_FOUND" } });
    // The index is the entry's: the node has applied at least that far.
    const s = await api(L, "GET", "/v1/status");
    expect(s.body.appliedIndex).toBeGreaterThanOrEqual(del.body.index);
  });

  it("redirects writes on a follower with 307 to the leader, and reads there linearizably", async () => {
    const F = c.http(follower);
    const put = await api(F, "PUT", "/v1/kv/color?x=1", { value: "blue" });
    expect(put.status).toBe(307);
    expect(put.headers.get("location")).toBe(`http://${HOST}:${c.http(leader)}/v1/kv/color?x=1`);
    expect(put.body).toMatchObject({ code: "NOT_LEADER", leader, error: expect.any(String) });
    expect((await api(F, "DELETE", "/v1/kv/color")).status).toBe(307);
    expect((await api(F, "POST", "/v1/kv/color/cas", { expected: null, value: "x" })).status).toBe(307);
    // Following the redirect works.
    expect((await api(c.http(leader), "PUT", "/v1/kv/color?x=1", { value: "blue" })).status).toBe(200);
    // A linearizable read on a follower (ReadIndex via the leader) sees the acknowledged write at once.
    expect(await api(F, "GET", "/v1/kv/color")).toMatchObject({ status: 200, body: { value: "blue" } });
    const stale = await waitFor("a stale read to catch up", async () => {
      const r = await api(F, "GET", "/v1/kv/color?consistency=stale");
      return r.status === 200 ? r : undefined;
    });
    expect(stale.body.value).toBe("blue");
    expect((await api(F, "GET", "/v1/kv/color?consistency=eventually")).status).toBe(400);
  });

  it("compares and sets: 409 CAS_FAILED with the current value, null for absent", async () => {
    const L = c.http(leader);
    const create = await api(L, "POST", "/v1/kv/lock/cas", { expected: null, value: "me" });
    expect(create).toMatchObject({ status: 200, body: { ok: true, index: expect.any(Number) } });
    const again = await api(L, "POST", "/v1/kv/lock/cas", { expected: null, value: "you" });
    expect(again).toMatchObject({ status: 409, body: { ok: false, code: "CAS_FAILED", current: "me", error: expect.any(String) } });
    expect((await api(L, "POST", "/v1/kv/lock/cas", { expected: "me", value: "you" })).status).toBe(200);
    expect((await api(L, "POST", "/v1/kv/lock/cas", { expected: "you", value: null })).status).toBe(200);
    expect((await api(L, "POST", "/v1/kv/lock/cas", { expected: "you", value: "x" })).body).toMatchObject({ code: "CAS_FAILED", current: null });
    expect((await api(L, "GET", "/v1/kv/lock")).status).toBe(404);
  });

  it("lists by prefix, sorted by key, up to limit", async () => {
    const L = c.http(leader);
    for (const k of ["user/3", "user/1", "user/2", "userx", "other"]) {
      expect((await api(L, "PUT", `/v1/kv/${encodeURIComponent(k)}`, { value: `v-${k}` })).status).toBe(200);
    }
    const all = await api(L, "GET", "/v1/kv?prefix=user%2F");
    expect(all.body).toEqual({ items: ["user/1", "user/2", "user/3"].map((key) => ({ key, value: `v-${key}` })) });
    const two = await api(c.http(follower), "GET", "/v1/kv?prefix=user&limit=2");
    expect(two.body.items.map((i: { key: string }) => i.key)).toEqual(["user/1", "user/2"]);
    expect((await api(L, "GET", "/v1/kv?limit=-1")).status).toBe(400);
  });

  it("refuses bad input with a 4xx and a JSON error, changing nothing", async () => {
    const L = c.http(leader);
    const before = (await api(L, "GET", "/v1/status")).body.lastIndex;
    const cases: [string, string, unknown, number, string][] = [
      ["PUT", "/v1/kv/bad", "{not json", 400, "INVALID_JSON"],
      ["PUT", "/v1/kv/bad", "[1]", 400, "INVALID_JSON"],
      ["PUT", "/v1/kv/bad", {}, 400, "MISSING_FIELD"],
      ["PUT", "/v1/kv/bad", { value: 7 }, 400, "INVALID_FIELD"],
      ["POST", "/v1/kv/bad/cas", { value: "x" }, 400, "MISSING_FIELD"],
      ["PUT", "/v1/kv/", { value: "x" }, 400, "INVALID_KEY"],
      ["PUT", "/v1/kv/%E0%A4%A", { value: "x" }, 400, "INVALID_KEY"],
      ["PUT", `/v1/kv/${"k".repeat(1025)}`, { value: "x" }, 400, "KEY_TOO_LONG"],
      ["PUT", "/v1/kv/bad", { value: "x".repeat(1024 * 1024 + 1) }, 413, "VALUE_TOO_LARGE"],
      ["PUT", "/v1/kv/bad", `{"value":"${"x".repeat(7 * 1024 * 1024)}"}`, 413, "BODY_TOO_LARGE"],
      ["GET", "/v1/nothing", undefined, 404, "UNKNOWN_ROUTE"],
      ["GET", "/v1/kv/a/b", undefined, 404, "UNKNOWN_ROUTE"],
      ["POST", "/v1/kv/bad", { value: "x" }, 405, "METHOD_NOT_ALLOWED"],
      ["DELETE", "/v1/status", undefined, 405, "METHOD_NOT_ALLOWED"],
    ];
    for (const [method, url, body, status, code] of cases) {
      const r = await api(L, method, url, body);
      expect({ method, url, status: r.status, code: r.body.code }).toEqual({ method, url, status, code });
      expect(typeof r.body.error).toBe("string");
    }
    expect((await api(L, "POST", "/v1/kv/bad", {})).headers.get("allow")).toBe("GET, PUT, DELETE");
    expect((await api(L, "GET", "/v1/kv/bad")).status).toBe(404);
    expect((await api(L, "GET", "/v1/status")).body.lastIndex).toBe(before);
    // A value exactly at the limit is accepted.
    expect((await api(L, "PUT", "/v1/kv/big", { value: "x".repeat(1024 * 1024) })).status).toBe(200);
  });

  it("serves Prometheus metrics", async () => {
    const m = await api(c.http(leader), "GET", "/metrics");
    expect(m.status).toBe(200);
    expect(m.headers.get("content-type")).toMatch(/^text\/plain/);
    const text = m.body as string;
    expect(text).toMatch(/^raftkit_role\{role="leader"\} 1$/m);
    expect(text).toMatch(/^raftkit_term \d+$/m);
    expect(text).toMatch(/^raftkit_commit_index \d+$/m);
    expect(text).toMatch(/^raftkit_applied_index \d+$/m);
    expect(text).toMatch(/^raftkit_kv_proposals_total\{op="put",outcome="ok"\} \d+$/m);
    expect(text).toMatch(/^raftkit_kv_proposal_duration_seconds_count\{op="put"\} \d+$/m);
    expect(text).toMatch(/^raftkit_http_requests_total\{method="PUT",route="\/v1\/kv\/:key",status="200"\} \d+$/m);
    // Durable writes, timed around the storage's save().
    expect(Number(/^raftkit_storage_save_duration_seconds_count (\d+)$/m.exec(text)?.[1])).toBeGreaterThan(0);
    expect(text).toMatch(/^raftkit_storage_save_duration_seconds_bucket\{le="0\.001"\} \d+$/m);
    // Messages per peer: the leader talks to both followers.
    for (const id of ["1", "2", "3"].filter((m) => m !== leader)) {
      expect(text).toMatch(new RegExp(`^raftkit_transport_peer_messages_total\\{peer="${id}",direction="out"\\} [1-9]\\d*$`, "m"));
    }
    expect(text).toMatch(/^raftkit_transport_messages_total\{kind="dropped"\} \d+$/m);
    expect(text).toMatch(/^raftkit_voters 3$/m);
    expect(text).toMatch(/^raftkit_learners 0$/m);
  });

  let session: ClientSession;

  it("drives the interactive client through a pipe: one result a line", async () => {
    session = new ClientSession(run("client session", ["--cluster", clusterFlag()], true));
    expect(await session.command("put fruit apple")).toMatch(/^OK index=\d+$/);
    expect(await session.command("get fruit")).toBe('"apple"');
    expect(await session.command('put "two words" "a \\"quoted\\" value"')).toMatch(/^OK index=\d+$/);
    expect(await session.command("get 'two words'")).toBe('"a \\"quoted\\" value"');
    expect(await session.command("cas fruit pear plum")).toBe('CAS_FAILED current="apple"');
    expect(await session.command("cas fruit apple plum")).toMatch(/^OK index=\d+$/);
    expect(await session.command("cas newkey - first")).toMatch(/^OK index=\d+$/);
    expect(await session.command("list user/")).toBe(JSON.stringify(["user/1", "user/2", "user/3"].map((key) => ({ key, value: `v-${key}` }))));
    expect(await session.command("delete newkey")).toMatch(/^OK deleted=true index=\d+$/);
    expect(await session.command("get newkey")).toBe("(not found)");
    expect(await session.command("frobnicate")).toMatch(/^ERROR unknown command/);
    expect(await session.command("put onlykey")).toBe("ERROR usage: put KEY VALUE");
    const status = JSON.parse(await session.command("status")) as { id: string; role: string }[];
    expect(status.map((s) => s.role).sort()).toEqual(["follower", "follower", "leader"]);
  });

  let killed: string;

  it("survives kill -9 of the leader: a new leader serves the data and the client follows it", async () => {
    killed = leader;
    const old = c.procs[Number(killed) - 1]!;
    old.child.kill("SIGKILL");
    await old.exited;
    c.procs[Number(killed) - 1] = null;
    leader = await waitFor("a new leader", () => leaderOf(c));
    expect(leader).not.toBe(killed);
    follower = followerOf(c, leader);
    expect(await api(c.http(leader), "GET", "/v1/kv/greeting")).toMatchObject({ status: 200, body: { value: "hello again" } });
    expect((await api(c.http(leader), "PUT", "/v1/kv/after-crash", { value: "yes" })).status).toBe(200);
    // The client's last node may be the dead one: it moves on by itself.
    expect(await session.command("get fruit")).toBe('"plum"');
    expect(await session.command("put fruit kiwi")).toMatch(/^OK index=\d+$/);
    session.proc.child.stdin!.write("quit\n");
    // 1: the session had failed commands (the unknown one, the bad usage): scripts can tell.
    expect(await session.proc.exited).toBe(1);
  });

  it("restarts the old leader on its data dir and catches it up", async () => {
    const i = Number(killed) - 1;
    c.procs[i] = run(`main node ${killed} (restarted)`, argsOf(i, c.raftPorts, c.dirs));
    const target = (await api(c.http(leader), "GET", "/v1/status")).body.commitIndex as number;
    const s = await waitFor("the restarted node to catch up", async () => {
      const r = await api(c.http(killed), "GET", "/v1/status");
      return r.body.appliedIndex >= target && r.body.leader === leader ? r.body : undefined;
    });
    expect(s).toMatchObject({ role: "follower", leader });
    expect(s.commitIndex).toBeGreaterThanOrEqual(target);
    const F = c.http(killed);
    expect(await api(F, "GET", "/v1/kv/after-crash?consistency=stale")).toMatchObject({ status: 200, body: { value: "yes" } });
    expect(await api(F, "GET", "/v1/kv/fruit")).toMatchObject({ status: 200, body: { value: "kiwi" } });
  });

  it("stops cleanly on SIGTERM; without a majority answers 504 TIMEOUT, then 503 NO_LEADER", async () => {
    const followers = ["1", "2", "3"].filter((id) => id !== leader).map((id) => c.procs[Number(id) - 1]!);
    for (const p of followers) p.child.kill("SIGTERM");
    expect(await Promise.all(followers.map((p) => p.exited))).toEqual([0, 0]);
    const L = c.http(leader);
    // Appended on the leader, never committed: its outcome is unknown when the server gives up.
    expect(await api(L, "PUT", "/v1/kv/lonely", { value: "x" })).toMatchObject({ status: 504, body: { code: "TIMEOUT" } });
    // Check-quorum: the lone leader steps down, and then no leader is known.
    await waitFor("the lone leader to step down", async () => ((await api(L, "GET", "/v1/status")).body.leader === null ? true : undefined));
    expect(await api(L, "PUT", "/v1/kv/lonely", { value: "x" })).toMatchObject({ status: 503, body: { code: "NO_LEADER" } });
    expect(await api(L, "GET", "/v1/kv/fruit")).toMatchObject({ status: 503, body: { code: "NO_LEADER" } });
    expect(await api(L, "GET", "/v1/kv/fruit?consistency=stale")).toMatchObject({ status: 200, body: { value: "kiwi" } });
    const last = c.procs[Number(leader) - 1]!;
    last.child.kill("SIGTERM");
    expect(await last.exited).toBe(0);
  });
});

describe("raftkit-kv: membership changes", () => {
  let c: Cluster;
  let leader: string;
  const peersFlag = (ports: number[]): string => ports.map((p, j) => `${j + 1}=${HOST}:${p}`).join(",");
  const argsOf = (i: number, ports: number[], dirs: string[]): string[] => ["--node-id", String(i + 1), "--peers", peersFlag(ports), "--data-dir", dirs[i]!];
  let joinArgs: string[];
  const members = async (port: number): Promise<[string, string, string][]> =>
    (await api(port, "GET", "/v1/status")).body.members.map((m: { id: string; role: string; address: string }) => [m.id, m.role, m.address]);
  const raftAddress = (id: string): string => `${HOST}:${[...c.raftPorts, ...c.sparePorts][Number(id) - 1]}`;

  beforeAll(async () => {
    c = await startCluster("members", argsOf, 2);
    leader = (await leaderOf(c))!;
  });

  it("grows from 3 to 4 nodes with --join: the new node serves a linearizable read of older data", async () => {
    expect((await api(c.http(leader), "PUT", "/v1/kv/early", { value: "written before the join" })).status).toBe(200);
    // Join through a follower: the request is redirected to the leader.
    const via = followerOf(c, leader);
    joinArgs = ["--node-id", "4", "--bind", raftAddress("4"), "--join", `${HOST}:${c.http(via)}`, "--data-dir", await tempDir()];
    c.procs[3] = run("members node 4", joinArgs);
    const voters = await waitFor("node 4 to become a voter", async () => {
      const m = await members(c.http(leader));
      return m.length === 4 && m.every(([, role]) => role === "voter") ? m : undefined;
    });
    expect(voters).toEqual(["1", "2", "3", "4"].map((id) => [id, "voter", raftAddress(id)]));
    expect(await api(c.http("4"), "GET", "/v1/kv/early")).toMatchObject({ status: 200, body: { value: "written before the join" } });
    // The new node knows every member's address (the configuration carries them) and redirects to the leader.
    expect(await members(c.http("4"))).toEqual(voters);
    if (leader !== "4") {
      const put = await api(c.http("4"), "PUT", "/v1/kv/late", { value: "x" });
      expect(put.headers.get("location")).toBe(`http://${HOST}:${c.http(leader)}/v1/kv/late`);
    }
    // The interactive client lists the members.
    const { lines } = await clientScript(c.raftPorts.map((p) => `${HOST}:${p}`).join(","), ["members", "add-member x y"]);
    expect(JSON.parse(lines[0]!)).toEqual(voters.map(([id, role, address]) => ({ id, role, address })));
    expect(lines[1]).toMatch(/^ERROR a member id is a positive integer/);
  });

  it("does not add a node again when it restarts with --join on its data dir", async () => {
    // How many POST /v1/members the first three nodes have answered, in all.
    const posts = async (): Promise<number> => {
      let n = 0;
      for (const id of ["1", "2", "3"]) {
        for (const m of (await metricsOf(c.http(id))).matchAll(/^raftkit_http_requests_total\{method="POST",route="\/v1\/members",status="\d+"\} (\d+)$/gm)) n += Number(m[1]);
      }
      return n;
    };
    const before = await posts();
    const old = c.procs[3]!;
    old.child.kill("SIGKILL");
    await old.exited;
    const again = run("members node 4 (restarted)", joinArgs);
    c.procs[3] = again;
    await waitFor("node 4 to say it is a member already", async () => (/not joining again/.test(again.output()) ? true : undefined));
    await waitFor("node 4 to follow the leader again", async () => {
      const s = (await api(c.http("4"), "GET", "/v1/status")).body;
      return s.leader !== null && s.role === "follower" ? true : undefined;
    });
    leader = await waitFor("a leader", () => leaderOf(c));
    expect(await members(c.http(leader))).toEqual(["1", "2", "3", "4"].map((id) => [id, "voter", raftAddress(id)]));
    expect(await posts()).toBe(before);
  });

  it("keeps a node that never catches up a learner, shown as one, until DELETE removes it", async () => {
    leader = await waitFor("a leader", () => leaderOf(c));
    const L = c.http(leader);
    // Nothing listens at node 5's address: it is added as a learner and never promoted.
    const adding = api(L, "POST", "/v1/members", { id: 5, address: raftAddress("5") });
    await waitFor("node 5 to be a learner", async () => ((await members(L)).some(([id, role]) => id === "5" && role === "learner") ? true : undefined));
    const s = (await api(L, "GET", "/v1/status")).body;
    expect(s.members.find((m: { id: string }) => m.id === "5")).toMatchObject({ role: "learner", voter: false, address: raftAddress("5") });
    expect(await metricsOf(L)).toMatch(/^raftkit_learners 1$/m);
    expect(await api(L, "DELETE", "/v1/members/5")).toMatchObject({ status: 200 });
    expect(await adding).toMatchObject({ status: 409, body: { code: "INVALID_CHANGE", error: expect.stringMatching(/removed while/) } });
    expect((await members(L)).map(([id]) => id)).toEqual(["1", "2", "3", "4"]);
  });

  it("refuses bad member input: 400, 404 for a non-member, 409 for a clash, 307 from a follower", async () => {
    leader = await waitFor("a leader", () => leaderOf(c));
    const L = c.http(leader);
    const before = (await api(L, "GET", "/v1/status")).body.lastIndex;
    const cases: [string, string, unknown, number, string][] = [
      ["POST", "/v1/members", "{nope", 400, "INVALID_JSON"],
      ["POST", "/v1/members", {}, 400, "MISSING_FIELD"],
      ["POST", "/v1/members", { address: `${HOST}:1` }, 400, "MISSING_FIELD"],
      ["POST", "/v1/members", { id: 5 }, 400, "MISSING_FIELD"],
      ["POST", "/v1/members", { id: "five", address: `${HOST}:1` }, 400, "INVALID_FIELD"],
      ["POST", "/v1/members", { id: 0, address: `${HOST}:1` }, 400, "INVALID_FIELD"],
      ["POST", "/v1/members", { id: 1.5, address: `${HOST}:1` }, 400, "INVALID_FIELD"],
      ["POST", "/v1/members", { id: 5, address: "nohost" }, 400, "INVALID_FIELD"],
      ["POST", "/v1/members", { id: 5, address: `${HOST}:70000` }, 400, "INVALID_FIELD"],
      ["POST", "/v1/members", { id: 5, address: 7 }, 400, "INVALID_FIELD"],
      ["DELETE", "/v1/members/abc", undefined, 400, "INVALID_MEMBER_ID"],
      ["DELETE", "/v1/members/0", undefined, 400, "INVALID_MEMBER_ID"],
      ["DELETE", "/v1/members/9", undefined, 404, "NOT_MEMBER"],
      ["POST", "/v1/members", { id: 4, address: `${HOST}:1` }, 409, "MEMBER_EXISTS"],
      ["POST", "/v1/members", { id: 5, address: raftAddress("1") }, 409, "ADDRESS_IN_USE"],
      ["GET", "/v1/members", undefined, 405, "METHOD_NOT_ALLOWED"],
    ];
    for (const [method, url, body, status, code] of cases) {
      const r = await api(L, method, url, body);
      expect({ method, url, body, status: r.status, code: r.body.code }).toEqual({ method, url, body, status, code });
      expect(typeof r.body.error).toBe("string");
    }
    expect((await api(L, "GET", "/v1/status")).body.lastIndex).toBe(before);
    // Adding a member that is there already, at its address, changes nothing and answers 200.
    expect(await api(L, "POST", "/v1/members", { id: 4, address: raftAddress("4") })).toMatchObject({ status: 200, body: { members: expect.any(Array) } });
    const F = c.http(followerOf(c, leader));
    const post = await api(F, "POST", "/v1/members", { id: 5, address: `${HOST}:1` });
    expect(post).toMatchObject({ status: 307, body: { code: "NOT_LEADER", leader } });
    expect(post.headers.get("location")).toBe(`http://${HOST}:${L}/v1/members`);
    expect((await api(F, "DELETE", "/v1/members/2")).status).toBe(307);
  });

  it("removes a follower with DELETE /v1/members/N", async () => {
    leader = await waitFor("a leader", () => leaderOf(c));
    const gone = liveIds(c).find((id) => id !== leader && id !== "4")!;
    const del = await api(c.http(leader), "DELETE", `/v1/members/${gone}`);
    expect(del.status).toBe(200);
    expect(del.body.members.map((m: { id: string }) => m.id)).toEqual(["1", "2", "3", "4"].filter((id) => id !== gone));
    const p = c.procs[Number(gone) - 1]!;
    p.child.kill("SIGTERM");
    expect(await p.exited).toBe(0);
    c.procs[Number(gone) - 1] = null;
    expect(await members(c.http(leader))).toHaveLength(3);
    expect((await api(c.http(leader), "PUT", "/v1/kv/three", { value: "3 voters" })).status).toBe(200);
    expect(await metricsOf(c.http(leader))).toMatch(/^raftkit_membership_changes_total\{outcome="ok"\} [1-9]\d*$/m);
  });

  it("removes the leader: it hands over, and the new leader serves writes", async () => {
    const old = await waitFor("a leader", () => leaderOf(c));
    const del = await api(c.http(old), "DELETE", `/v1/members/${old}`);
    expect(del.status).toBe(200);
    const rest = liveIds(c).filter((id) => id !== old);
    expect(del.body.members.map((m: { id: string }) => m.id)).toEqual(rest);
    const p = c.procs[Number(old) - 1]!;
    p.child.kill("SIGTERM");
    expect(await p.exited).toBe(0);
    c.procs[Number(old) - 1] = null;
    leader = await waitFor("a new leader", () => leaderOf(c));
    expect(rest).toContain(leader);
    expect((await api(c.http(leader), "PUT", "/v1/kv/after", { value: "the leader left" })).status).toBe(200);
    for (const id of rest) {
      expect(await api(c.http(id), "GET", "/v1/kv/after")).toMatchObject({ status: 200, body: { value: "the leader left" } });
      expect(await api(c.http(id), "GET", "/v1/kv/early")).toMatchObject({ status: 200, body: { value: "written before the join" } });
    }
    await killAll();
  });
});

describe("raftkit-kv: the kvapp-c README flow", () => {
  it("starts three nodes with --node-id/--bind/--cluster/--data-dir, then put, get, delete, list", async () => {
    const c = await startCluster("readme", (i, ports, dirs) => [
      "--node-id",
      String(i + 1),
      "--bind",
      `${HOST}:${ports[i]}`,
      "--cluster",
      ports.map((p) => `${HOST}:${p}`).join(","),
      "--data-dir",
      dirs[i]!,
    ]);
    const { lines, code } = await clientScript(
      c.raftPorts.map((p) => `${HOST}:${p}`).join(","),
      ["put foo bar", "put food pizza", "get foo", "list fo", "delete foo", "get foo", "", "list", "quit", "get food"],
    );
    expect(lines).toHaveLength(7);
    expect(lines[0]).toMatch(/^OK index=\d+$/);
    expect(lines[1]).toMatch(/^OK index=\d+$/);
    expect(lines.slice(2)).toEqual([
      '"bar"',
      JSON.stringify([{ key: "foo", value: "bar" }, { key: "food", value: "pizza" }]),
      expect.stringMatching(/^OK deleted=true index=\d+$/),
      "(not found)",
      JSON.stringify([{ key: "food", value: "pizza" }]),
    ]);
    expect(code).toBe(0);
    await killAll();
  });
});

const hasOpenssl = spawnSync("openssl", ["version"]).status === 0;

/** A CA and one certificate per node (EC P-256, subjectAltName IP:127.0.0.1), made with openssl. */
function makeCertificates(dir: string, names: readonly string[]): void {
  const ssl = (...args: string[]): void => {
    const r = spawnSync("openssl", args, { cwd: dir, encoding: "utf8" });
    if (r.status !== 0) throw new Error(`openssl ${args.join(" ")}: ${r.stderr}`);
  };
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  ssl("req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=raftkit-kv test CA");
  writeFileSync(path.join(dir, "ext"), "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n");
  for (const n of names) {
    ssl("req", ...ec, "-keyout", `${n}.key`, "-out", `${n}.csr`, "-subj", `/CN=${n}`);
    ssl("x509", "-req", "-in", `${n}.csr`, "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", `${n}.pem`, "-days", "2", "-extfile", "ext");
  }
}

describe("raftkit-kv: mutual TLS between nodes", () => {
  it.skipIf(!hasOpenssl)("forms a cluster over TLS with --tls-cert/--tls-key/--tls-ca and replicates", async () => {
    const certs = await tempDir();
    makeCertificates(certs, ["node1", "node2", "node3"]);
    const c = await startCluster("tls", (i, ports, dirs) => [
      "--node-id",
      String(i + 1),
      "--cluster",
      ports.map((p) => `${HOST}:${p}`).join(","),
      "--data-dir",
      dirs[i]!,
      "--tls-cert",
      path.join(certs, `node${i + 1}.pem`),
      "--tls-key",
      path.join(certs, `node${i + 1}.key`),
      "--tls-ca",
      path.join(certs, "ca.pem"),
    ]);
    const leader = (await leaderOf(c))!;
    expect((await api(c.http(leader), "PUT", "/v1/kv/secret", { value: "over tls" })).status).toBe(200);
    expect(await api(c.http(followerOf(c, leader)), "GET", "/v1/kv/secret")).toMatchObject({ status: 200, body: { value: "over tls" } });
    expect(c.procs[0]!.output()).toMatch(/raft 127\.0\.0\.1:\d+ \(TLS\)/);
    await killAll();
  });
});

describe("raftkit-kv: the command line", () => {
  it("refuses bad flags with a clear message and exit code 2", async () => {
    const ask = async (args: string[]): Promise<{ code: number | null; out: string }> => {
      const p = run(`cli ${args.join(" ")}`, args);
      const code = await p.exited;
      return { code, out: p.output() };
    };
    const [none, unknown, noDir, notMember, join, joinAndCluster, halfTls, presets, help] = await Promise.all([
      ask([]),
      ask(["--frobnicate"]),
      ask(["--node-id", "1", "--cluster", `${HOST}:7001,${HOST}:7002`]),
      ask(["--node-id", "3", "--cluster", `${HOST}:7001,${HOST}:7002`, "--data-dir", "/nonexistent"]),
      ask(["--node-id", "4", "--join", `${HOST}:8001`, "--data-dir", "/nonexistent"]),
      ask(["--node-id", "4", "--bind", `${HOST}:7004`, "--join", `${HOST}:8001`, "--cluster", `${HOST}:7001`, "--data-dir", "/nonexistent"]),
      ask(["--node-id", "1", "--cluster", `${HOST}:7001`, "--data-dir", "/nonexistent", "--tls-cert", "c.pem"]),
      ask(["--cluster", `${HOST}:7001`, "--fast-mode", "--demo-mode"]),
      ask(["--help"]),
    ]);
    expect(none).toMatchObject({ code: 2, out: expect.stringContaining("raftkit-kv --node-id N --cluster") });
    expect(unknown).toMatchObject({ code: 2, out: expect.stringMatching(/--frobnicate/) });
    expect(noDir).toMatchObject({ code: 2, out: expect.stringMatching(/--data-dir/) });
    expect(notMember).toMatchObject({ code: 2, out: expect.stringMatching(/--node-id 3 is not a member/) });
    expect(join).toMatchObject({ code: 2, out: expect.stringMatching(/--join needs --bind/) });
    expect(joinAndCluster).toMatchObject({ code: 2, out: expect.stringMatching(/either --join .* or --cluster/) });
    expect(halfTls).toMatchObject({ code: 2, out: expect.stringMatching(/TLS needs all of .* missing --tls-key, --tls-ca/) });
    expect(presets).toMatchObject({ code: 2, out: expect.stringMatching(/one timing preset/) });
    expect(help).toMatchObject({ code: 0, out: expect.stringMatching(/--demo-mode +tick 100 ms, election timeout 3 s-6 s/) });
  });
});
