import { describe, expect, it } from "vitest";
import { KvStateMachine, MemoryNetwork, MemoryStorage, RaftError, RaftNode, type ApplyMeta, type KvCommand, type KvResult, type StateMachine } from "../src/index.js";
import { RaftClient, type SessionTarget } from "../src/node/client.js";
import { SessionStateMachine, type SessionCommand, type SessionResult } from "../src/node/sessions.js";
import type { SnapshotData } from "../src/core/messages.js";
import { collectChunks, snapshotChunks, snapshotDataOf } from "../src/snapshot-data.js";

// Exactly-once client sessions (Raft dissertation §6.3).

type Cmd = SessionCommand<KvCommand>;

/** A KvStateMachine that counts how often each value was applied (values are unique per command). */
class CountingKv implements StateMachine<KvCommand, KvResult> {
  readonly kv = new KvStateMachine();
  readonly applied = new Map<string, number>();
  apply(cmd: KvCommand, meta: ApplyMeta): KvResult {
    const tag = cmd.op === "delete" ? `delete:${cmd.key}` : `${cmd.key}=${String(cmd.value)}`;
    this.applied.set(tag, (this.applied.get(tag) ?? 0) + 1);
    return this.kv.apply(cmd, meta);
  }
  snapshot(): AsyncIterable<Uint8Array> {
    return this.kv.snapshot();
  }
  restore(data: SnapshotData): Promise<void> {
    return this.kv.restore(data);
  }
  /** Every tag applied more than once. */
  twice(): string[] {
    return [...this.applied].filter(([, n]) => n > 1).map(([tag]) => tag);
  }
}

/** Feeds entries to a machine with consecutive log indexes, as a node would. */
function feeder(sm: SessionStateMachine<KvCommand, KvResult>) {
  let index = 0;
  return (cmd: Cmd): SessionResult<KvResult> => sm.apply(cmd, { index: ++index, term: 1 }) as SessionResult<KvResult>;
}

const put = (key: string, value: string): KvCommand => ({ op: "put", key, value });
const command = (session: number, seq: number, cmd: KvCommand, time = 0, ackSeq = seq): Cmd => ({ kind: "command", session, seq, ackSeq, time, cmd });

describe("SessionStateMachine", () => {
  it("registers a session with the entry's log index as the client id", () => {
    const apply = feeder(new SessionStateMachine(new CountingKv()));
    apply({ kind: "keepAlive", session: 99, time: 0 });
    expect(apply({ kind: "register", time: 0 })).toEqual({ kind: "registered", session: 2 });
    expect(apply({ kind: "register", time: 0 })).toEqual({ kind: "registered", session: 3 });
  });

  it("applies a duplicate (client, seq) once and answers it from the cache", () => {
    const user = new CountingKv();
    const sm = new SessionStateMachine(user);
    const apply = feeder(sm);
    apply({ kind: "register", time: 0 });
    expect(apply(command(1, 1, put("a", "1")))).toEqual({ kind: "result", result: { ok: true, previous: null }, duplicate: false });
    expect(apply(command(1, 2, put("a", "2"), 0, 1))).toEqual({ kind: "result", result: { ok: true, previous: "1" }, duplicate: false });
    // The retry of seq 1 comes after seq 2: the cached result, not a new application.
    expect(apply(command(1, 1, put("a", "1")))).toEqual({ kind: "result", result: { ok: true, previous: null }, duplicate: true });
    expect(user.applied.get("a=1")).toBe(1);
    expect(user.kv.get("a")).toBe("2");
    expect(sm.sessionInfo(1)).toMatchObject({ highestSeq: 2, cachedSeqs: [1, 2] });
  });

  it("drops the results the client acknowledged, and refuses their seqs as stale", () => {
    const user = new CountingKv();
    const sm = new SessionStateMachine(user);
    const apply = feeder(sm);
    apply({ kind: "register", time: 0 });
    for (let seq = 1; seq <= 5; seq++) apply(command(1, seq, put("k", `v${seq}`), 0, 1));
    expect(sm.sessionInfo(1)?.cachedSeqs).toEqual([1, 2, 3, 4, 5]);
    apply(command(1, 6, put("k", "v6"), 0, 4)); // the client still needs 4 and up
    expect(sm.sessionInfo(1)).toMatchObject({ ackSeq: 4, cachedSeqs: [4, 5, 6] });
    expect(apply(command(1, 2, put("k", "v2")))).toEqual({ kind: "stale", session: 1, seq: 2 });
    expect(user.applied.get("k=v2")).toBe(1);
    // An ackSeq beyond the command's own seq never makes that command stale.
    expect(apply(command(1, 7, put("k", "v7"), 0, 100))).toMatchObject({ kind: "result", duplicate: false });
    expect(sm.sessionInfo(1)).toMatchObject({ ackSeq: 7, cachedSeqs: [7] });
  });

  it("expires idle sessions by log time, identically on every machine fed the same entries", () => {
    const entries: Cmd[] = [
      { kind: "register", time: 1000 }, // session 1
      { kind: "register", time: 1000 }, // session 2
      command(1, 1, put("a", "1"), 5000),
      command(2, 1, put("b", "1"), 4000), // a proposer clock behind: log time stays at 5000
      { kind: "keepAlive", session: 1, time: 9000 },
      command(1, 2, put("a", "2"), 12_000), // session 2 was last active at 5000: idle for 7000 > 6000
      command(2, 2, put("b", "2"), 12_001),
      { kind: "keepAlive", session: 1, time: 12_002 },
    ];
    const run = () => {
      const user = new CountingKv();
      const sm = new SessionStateMachine(user, { sessionTimeoutMs: 6000 });
      const apply = feeder(sm);
      return { results: entries.map(apply), sm, user };
    };
    const a = run();
    const b = run();
    expect(a.results).toEqual(b.results);
    expect(a.results[3]).toMatchObject({ kind: "result", duplicate: false });
    expect(a.sm.logTime).toBe(12_002);
    expect(a.results[5]).toMatchObject({ kind: "result", duplicate: false });
    expect(a.results[6]).toEqual({ kind: "expired", session: 2 });
    expect(a.results[7]).toEqual({ kind: "ok" });
    expect(a.user.applied.has("b=2")).toBe(false);
    expect([a.sm.sessionInfo(1) !== undefined, a.sm.sessionInfo(2) !== undefined]).toEqual([true, false]);
    expect(b.sm.sessionCount).toBe(1);
  });

  it("closes sessions, evicts the least recently active beyond maxSessions, and expires a session over maxResultsPerSession", () => {
    const user = new CountingKv();
    const sm = new SessionStateMachine(user, { maxSessions: 2, maxResultsPerSession: 2 });
    const apply = feeder(sm);
    apply({ kind: "register", time: 0 }); // 1
    apply({ kind: "register", time: 0 }); // 2
    apply(command(1, 1, put("a", "1"))); // 1 is now the most recently active
    apply({ kind: "register", time: 0 }); // 4 evicts 2
    expect([1, 2, 4].map((id) => sm.sessionInfo(id) !== undefined)).toEqual([true, false, true]);
    apply(command(1, 2, put("a", "2"), 0, 1));
    expect(apply(command(1, 3, put("a", "3"), 0, 1))).toEqual({ kind: "expired", session: 1 });
    expect(user.applied.has("a=3")).toBe(false);
    expect(apply({ kind: "close", session: 4, time: 0 })).toEqual({ kind: "ok" });
    expect(sm.sessionCount).toBe(0);
    expect(apply(command(4, 1, put("x", "1")))).toEqual({ kind: "expired", session: 4 });
  });

  it("answers a malformed entry without applying it or stopping", () => {
    const user = new CountingKv();
    const apply = feeder(new SessionStateMachine(user));
    expect(apply(put("a", "1") as unknown as Cmd)).toMatchObject({ kind: "malformed" });
    expect(apply({ kind: "command", session: 1, seq: -1, ackSeq: 0, time: 0, cmd: put("a", "1") })).toMatchObject({ kind: "malformed" });
    expect(user.applied.size).toBe(0);
  });

  it("awaits an asynchronous wrapped machine", async () => {
    const inner: StateMachine<number, number> = { apply: async (n: number) => n * 2 };
    const sm = new SessionStateMachine(inner);
    expect(sm.snapshot).toBeUndefined(); // the wrapped machine cannot snapshot, so neither can the wrapper
    sm.apply({ kind: "register", time: 0 }, { index: 1, term: 1 });
    await expect(sm.apply({ kind: "command", session: 1, seq: 1, ackSeq: 1, time: 0, cmd: 21 }, { index: 2, term: 1 })).resolves.toEqual({
      kind: "result",
      result: 42,
      duplicate: false,
    });
  });

  it("validates its options", () => {
    expect(() => new SessionStateMachine(new CountingKv(), { sessionTimeoutMs: 0 })).toThrow(/sessionTimeoutMs/);
    expect(() => new SessionStateMachine(new CountingKv(), { maxResultsPerSession: 1.5 })).toThrow(/maxResultsPerSession/);
  });
});

/** A snapshot's bytes, read through to the end. */
function bytesOf(sm: { snapshot?: () => AsyncIterable<Uint8Array> }): Promise<Uint8Array> {
  return collectChunks(sm.snapshot!());
}

/** A handle on `bytes` whose reads return at most `most` bytes, so that the header is cut across reads. */
function inPieces(bytes: Uint8Array, most = 7): SnapshotData {
  const whole = snapshotDataOf(bytes);
  return { byteLength: whole.byteLength, read: (offset, length) => whole.read(offset, Math.min(length, most)) };
}

/** A session snapshot's JSON header and the wrapped machine's bytes (see the format in sessions.ts). */
function splitSnapshot(data: Uint8Array): { header: Record<string, unknown>; user: Uint8Array } {
  const length = new DataView(data.buffer, data.byteOffset).getUint32(4);
  return { header: JSON.parse(new TextDecoder().decode(data.subarray(8, 8 + length))) as Record<string, unknown>, user: data.subarray(8 + length) };
}

function joinSnapshot(header: unknown, user: Uint8Array): Uint8Array {
  const h = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + h.byteLength + user.byteLength);
  out.set([0x52, 0x4b, 0x53, 0x53]);
  new DataView(out.buffer).setUint32(4, h.byteLength);
  out.set(h, 8);
  out.set(user, 8 + h.byteLength);
  return out;
}

describe("SessionStateMachine snapshots", () => {
  function populated() {
    const user = new CountingKv();
    const sm = new SessionStateMachine(user, { sessionTimeoutMs: 10_000 });
    const apply = feeder(sm);
    apply({ kind: "register", time: 100 }); // 1
    apply({ kind: "register", time: 200 }); // 2
    apply(command(1, 1, put("a", "1"), 300));
    apply(command(2, 1, { op: "delete", key: "zz" }, 400));
    apply(command(1, 2, put("a", "2"), 500, 1));
    return { user, sm, apply };
  }

  /** What a failed restore must leave alone. */
  function stateOf(sm: SessionStateMachine<KvCommand, KvResult>, user: CountingKv) {
    return { sessions: [1, 2, 6].map((id) => sm.sessionInfo(id)), logTime: sm.logTime, kv: user.kv.list(), applied: user.kv.lastApplied };
  }

  it("round-trips the sessions, their cached results and the log time with the wrapped state", async () => {
    const { sm } = populated();
    const data = await bytesOf(sm);
    const user2 = new CountingKv();
    const sm2 = new SessionStateMachine(user2, { sessionTimeoutMs: 10_000 });
    await sm2.restore!(snapshotDataOf(data));
    expect(sm2.logTime).toBe(500);
    expect([1, 2].map((id) => sm2.sessionInfo(id))).toEqual([1, 2].map((id) => sm.sessionInfo(id)));
    expect(user2.kv.get("a")).toBe("2");
    // A retry after the restore is still a duplicate.
    expect(sm2.apply(command(1, 1, put("a", "1"), 600), { index: 10, term: 2 })).toEqual({ kind: "result", result: { ok: true, previous: null }, duplicate: true });
    expect(sm2.apply(command(2, 1, { op: "delete", key: "zz" }, 600), { index: 11, term: 2 })).toEqual({ kind: "result", result: { ok: false, previous: null }, duplicate: true });
    expect(user2.applied.size).toBe(0);
    // The same state gives the same bytes: snapshots are deterministic.
    const { sm: again } = populated();
    expect(await bytesOf(again)).toEqual(data);
  });

  it("streams the header as one chunk, then the wrapped machine's chunks as they are", async () => {
    const { sm, user } = populated();
    const chunks: Uint8Array[] = [];
    for await (const chunk of sm.snapshot!()) chunks.push(chunk);
    const header = splitSnapshot(chunks[0]!);
    expect(header.user.byteLength).toBe(0);
    expect(header.header).toMatchObject({ version: 1, logTimeMs: 500 });
    expect(await collectChunks((async function* () { yield* chunks.slice(1); })())).toEqual(await collectChunks(user.kv.snapshot()));
  });

  it("restores from reads of at most 7 bytes", async () => {
    const { sm, user } = populated();
    const data = await bytesOf(sm);
    const user2 = new CountingKv();
    const sm2 = new SessionStateMachine(user2, { sessionTimeoutMs: 10_000 });
    await sm2.restore!(inPieces(data));
    expect(stateOf(sm2, user2)).toEqual(stateOf(sm, user));
  });

  it("captures the sessions and the wrapped state at the call, not when the stream is read", async () => {
    const { sm, user, apply } = populated();
    const atCall = stateOf(sm, user);
    const stream = sm.snapshot!();
    apply({ kind: "register", time: 900 }); // 6
    apply(command(1, 3, put("b", "late"), 950, 3));
    const user2 = new CountingKv();
    const sm2 = new SessionStateMachine(user2, { sessionTimeoutMs: 10_000 });
    await sm2.restore!(snapshotDataOf(await collectChunks(stream)));
    expect(stateOf(sm2, user2)).toEqual(atCall);
    expect(sm.sessionInfo(6)).toBeDefined();
  });

  it("abandoning the stream abandons the wrapped machine's, which then takes snapshots again", async () => {
    const { sm, user } = populated();
    const refused = expect.objectContaining({ code: "INVALID_STATE" });
    // After the header, before the wrapped machine's part started.
    for await (const _ of sm.snapshot!()) break;
    // Before anything was read.
    const unread = sm.snapshot!();
    expect(() => sm.snapshot!()).toThrow(refused); // KvStateMachine's guard, held for `unread`
    await unread[Symbol.asyncIterator]().return?.();
    // Part-way through the wrapped machine's chunks.
    let n = 0;
    for await (const _ of sm.snapshot!()) if (++n === 2) break;
    await expect(collectChunks(user.kv.snapshot())).resolves.toBeInstanceOf(Uint8Array);
    await expect(bytesOf(sm)).resolves.toBeInstanceOf(Uint8Array);
  });

  it("streams a wrapped machine that returns bytes, or a promise of them", async () => {
    for (const snapshot of [() => new Uint8Array([1, 2, 3]), async () => new Uint8Array([1, 2, 3])]) {
      let restored: Uint8Array | null = null;
      const inner: StateMachine<null, null> = {
        apply: () => null,
        snapshot,
        restore: async (data) => {
          restored = await collectChunks(snapshotChunks(data));
        },
      };
      const sm = new SessionStateMachine(inner);
      sm.apply({ kind: "register", time: 7 }, { index: 1, term: 1 });
      const sm2 = new SessionStateMachine(inner);
      await sm2.restore!(snapshotDataOf(await bytesOf(sm)));
      expect(restored).toEqual(new Uint8Array([1, 2, 3]));
      expect(sm2.sessionInfo(1)).toEqual(sm.sessionInfo(1));
    }
  });

  it("keeps cached results that are undefined", async () => {
    const inner = { value: 0, apply: () => undefined, snapshot: () => new Uint8Array([1]), restore: () => {} };
    const sm = new SessionStateMachine<null, undefined>(inner);
    sm.apply({ kind: "register", time: 0 }, { index: 1, term: 1 });
    sm.apply({ kind: "command", session: 1, seq: 1, ackSeq: 1, time: 0, cmd: null }, { index: 2, term: 1 });
    const sm2 = new SessionStateMachine<null, undefined>(inner);
    await sm2.restore!(snapshotDataOf(await bytesOf(sm)));
    expect(sm2.apply({ kind: "command", session: 1, seq: 1, ackSeq: 1, time: 0, cmd: null }, { index: 3, term: 1 })).toEqual({
      kind: "result",
      result: undefined,
      duplicate: true,
    });
  });

  it("writes results through a resultCodec when one is given", async () => {
    const codec = { encode: (n: bigint) => new TextEncoder().encode(n.toString()), decode: (b: Uint8Array) => BigInt(new TextDecoder().decode(b)) };
    const inner = { apply: (n: bigint) => n * 2n, snapshot: () => new Uint8Array(0), restore: () => {} };
    const sm = new SessionStateMachine(inner, { resultCodec: codec });
    sm.apply({ kind: "register", time: 0 }, { index: 1, term: 1 });
    sm.apply({ kind: "command", session: 1, seq: 1, ackSeq: 1, time: 0, cmd: 2n ** 70n }, { index: 2, term: 1 });
    const data = await bytesOf(sm);
    const sm2 = new SessionStateMachine(inner, { resultCodec: codec });
    await sm2.restore!(snapshotDataOf(data));
    expect(sm2.apply({ kind: "command", session: 1, seq: 1, ackSeq: 1, time: 0, cmd: 0n }, { index: 3, term: 1 })).toEqual({ kind: "result", result: 2n ** 71n, duplicate: true });
    // A result that is not base64 is corrupt.
    const { header, user } = splitSnapshot(data);
    const bad = { ...header, sessions: [[1, 0, 1, 1, [[1, "!!"]]]] };
    await expect(sm2.restore!(snapshotDataOf(joinSnapshot(bad, user)))).rejects.toMatchObject({ code: "CORRUPT" });
  });

  it("refuses a corrupt snapshot with CORRUPT and keeps its old state, sessions and wrapped state alike", async () => {
    const { sm, user } = populated();
    const good = await bytesOf(sm);
    const { header: validHeader, user: userBytes } = splitSnapshot(good);
    const withHeader = (header: unknown, user = userBytes): Uint8Array => joinSnapshot(header, user);
    const headerEnd = good.byteLength - userBytes.byteLength;
    const corrupt: [string, Uint8Array][] = [
      ["empty", new Uint8Array(0)],
      ["shorter than the framing", good.subarray(0, 7)],
      ["bad magic", new Uint8Array([1, 2, 3, 4, 0, 0, 0, 0])],
      ["header length past the end", good.subarray(0, 20)],
      ["header cut one byte short", good.subarray(0, headerEnd - 1)],
      ["garbage header", withHeader("x").map((b, i) => (i === 9 ? 0xff : b))],
      ["header that is not JSON", joinSnapshot("x", userBytes).map((b, i) => (i === 8 ? 0x7b : b))],
      ["future version", withHeader({ ...validHeader, version: 2 })],
      ["sessions not an array", withHeader({ ...validHeader, sessions: 7 })],
      ["malformed session", withHeader({ ...validHeader, sessions: [[1, 2, 3]] })],
      ["cached result below ackSeq", withHeader({ ...validHeader, sessions: [[1, 0, 5, 5, [[1, null]]]] })],
      ["malformed cached result", withHeader({ ...validHeader, sessions: [[1, 0, 0, 1, [[1, null, 3]]]] })],
      ["sessions out of activity order", withHeader({ ...validHeader, sessions: [[1, 9, 0, 0, []], [2, 5, 0, 0, []]] })],
      // The wrapped machine's part is KvStateMachine's: it refuses it, and the sessions stay too.
      ["corrupt user state", withHeader(validHeader, new TextEncoder().encode("{not json"))],
      ["no user state", good.subarray(0, headerEnd)],
      ["truncated user state", good.subarray(0, good.byteLength - 3)],
    ];
    const before = stateOf(sm, user);
    for (const read of [snapshotDataOf, inPieces]) {
      for (const [name, data] of corrupt) {
        const err = await sm.restore!(read(data)).then(
          () => null,
          (e: unknown) => e,
        );
        expect(err, name).toBeInstanceOf(RaftError);
        expect((err as RaftError).code, name).toBe("CORRUPT");
        expect(stateOf(sm, user), name).toEqual(before);
      }
    }
    await expect(sm.restore!(good as unknown as SnapshotData)).rejects.toThrow(/snapshotDataOf/);
  });

  it("keeps its sessions when the wrapped machine's restore fails, whatever the error", async () => {
    const { sm } = populated();
    const data = snapshotDataOf(await bytesOf(sm));
    const failing = new CountingKv();
    failing.restore = () => Promise.reject(new Error("disk on fire"));
    const target = new SessionStateMachine(failing, { sessionTimeoutMs: 10_000 });
    const apply = feeder(target);
    apply({ kind: "register", time: 50 });
    apply(command(1, 1, put("mine", "1"), 60));
    const before = stateOf(target, failing);
    await expect(target.restore!(data)).rejects.toThrow("disk on fire");
    expect(stateOf(target, failing)).toEqual(before);
  });
});

// ------------------------------------------------------------------------ clients and nodes

type SessionNode = RaftNode<SessionCommand<KvCommand>, SessionResult<KvResult>>;

async function until(cond: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 5));
  }
}

function cluster(ids: string[], smOptions = {}) {
  const network = new MemoryNetwork();
  const users = ids.map(() => new CountingKv());
  const nodes: SessionNode[] = ids.map(
    (id, i) =>
      new RaftNode<SessionCommand<KvCommand>, SessionResult<KvResult>>({
        id,
        peers: ids,
        stateMachine: new SessionStateMachine(users[i]!, smOptions),
        storage: new MemoryStorage(),
        transport: network.transport(id),
        tickMs: 5,
        electionTicks: 10,
      }),
  );
  return { network, users, nodes };
}

describe("RaftClient", () => {
  it("retries across a leader change on a 3-node cluster and applies every command exactly once", async () => {
    const { network, users, nodes } = cluster(["n1", "n2", "n3"]);
    await Promise.all(nodes.map((n) => n.start()));
    nodes[0]!.campaign();
    await until(() => nodes[0]!.isLeader);
    // The client sits on n2 and loses the answer to the first attempt of every third seq,
    // so those are retried after they were applied: the retries must be deduplicated.
    const n2 = nodes[1]!;
    const lost = new Set<number>();
    let duplicates = 0;
    const target: SessionTarget<KvCommand, KvResult> = {
      propose: async (cmd, options) => {
        const r = await n2.propose(cmd, options);
        if (r.kind === "result" && r.duplicate) duplicates++;
        if (cmd.kind === "command" && cmd.seq % 3 === 0 && !lost.has(cmd.seq)) {
          lost.add(cmd.seq);
          throw new RaftError("TIMEOUT", "answer lost");
        }
        return r;
      },
      read: (options) => n2.read(options),
    };
    const client = new RaftClient(target, { attemptTimeoutMs: 300, requestTimeoutMs: 15_000, retryDelayMs: 5 });
    const calls: Promise<KvResult>[] = [];
    let leaderChanged = false;
    for (let i = 0; i < 150; i++) {
      calls.push(client.propose(put(`k${i % 10}`, `v${i}`)));
      await new Promise((r) => setTimeout(r, 2));
      if (i === 50) {
        // Cut the leader off: the proposals in flight to it time out or are dropped, and n2 or n3 takes over.
        network.isolate("n1");
      }
      if (i === 100) {
        await until(() => nodes[1]!.isLeader || nodes[2]!.isLeader);
        leaderChanged = true;
        network.heal();
      }
    }
    const results = await Promise.all(calls);
    expect(leaderChanged).toBe(true);
    expect(results).toHaveLength(150);
    expect(duplicates).toBeGreaterThan(0);
    const commit = Math.max(...nodes.map((n) => n.status().commitIndex));
    await until(() => nodes.every((n) => n.status().appliedIndex >= commit));
    for (const user of users) {
      expect(user.twice()).toEqual([]);
      for (let i = 0; i < 150; i++) expect(user.applied.get(`k${i % 10}=v${i}`)).toBe(1);
    }
    // The writes happened in the order the client saw them complete with: each result's previous value was current then.
    expect(users[0]!.kv.list()).toEqual(users[2]!.kv.list());
    await client.read();
    await client.close();
    await expect(client.propose(put("late", "1"))).rejects.toMatchObject({ code: "STOPPED" });
    await Promise.all(nodes.map((n) => n.stop()));
  }, 60_000);

  it("registers lazily through node.client(), shares one registration between concurrent calls, and re-registers after SESSION_EXPIRED", async () => {
    const { nodes, users } = cluster(["solo"], { sessionTimeoutMs: 1000 });
    const node = nodes[0]!;
    await node.start();
    await until(() => node.isLeader);
    let wall = 10_000;
    const client = node.client<KvCommand, KvResult>({ now: () => wall });
    expect(client.clientId).toBeNull();
    const [a, b] = await Promise.all([client.propose(put("a", "1")), client.propose(put("b", "1"))]);
    expect([a, b]).toEqual([{ ok: true, previous: null }, { ok: true, previous: null }]);
    const first = client.clientId;
    expect(first).not.toBeNull();
    // Another proposer moves log time past the timeout: the idle session expires.
    const other = node.client<KvCommand, KvResult>({ now: () => wall });
    wall += 5000;
    await other.propose(put("c", "1"));
    await expect(client.propose(put("a", "2"))).rejects.toMatchObject({ code: "SESSION_EXPIRED" });
    expect(users[0]!.applied.has("a=2")).toBe(false);
    // The next call registers a new session.
    await expect(client.propose(put("a", "3"))).resolves.toEqual({ ok: true, previous: "1" });
    expect(client.clientId).not.toBe(first);
    await Promise.all([client.close(), other.close()]);
    await node.stop();
  });

  it("keeps a session alive with keep-alives while idle", async () => {
    const { nodes } = cluster(["solo"], { sessionTimeoutMs: 200 });
    const node = nodes[0]!;
    await node.start();
    await until(() => node.isLeader);
    const client = node.client<KvCommand, KvResult>({ keepAliveIntervalMs: 40 });
    const other = node.client<KvCommand, KvResult>();
    await client.propose(put("a", "1"));
    for (let i = 0; i < 8; i++) {
      await new Promise((r) => setTimeout(r, 50));
      await other.propose(put("tick", String(i))); // moves log time on
    }
    await expect(client.propose(put("a", "2"))).resolves.toEqual({ ok: true, previous: "1" });
    await Promise.all([client.close(), other.close()]);
    await node.stop();
  });

  it("rejects with INVALID_STATE when the node's state machine is not a SessionStateMachine", async () => {
    const network = new MemoryNetwork();
    const node = new RaftNode<unknown, unknown>({ id: "x", peers: ["x"], stateMachine: new KvStateMachine() as unknown as StateMachine<unknown, unknown>, storage: new MemoryStorage(), transport: network.transport("x"), tickMs: 5 });
    await node.start();
    await until(() => node.isLeader);
    const client = new RaftClient(node as unknown as SessionTarget<KvCommand, KvResult>);
    await expect(client.propose(put("a", "1"), { timeoutMs: 2000 })).rejects.toMatchObject({ code: "INVALID_STATE" });
    await node.stop();
  });

  it("gives up at its deadline with TIMEOUT when no attempt gets through, and honours its AbortSignal", async () => {
    const target: SessionTarget<KvCommand, KvResult> = {
      propose: () => new Promise(() => {}), // a node that died without answering
      read: () => Promise.resolve(),
    };
    const client = new RaftClient(target, { attemptTimeoutMs: 20 });
    await expect(client.propose(put("a", "1"), { timeoutMs: 100 })).rejects.toMatchObject({ code: "TIMEOUT" });
    const controller = new AbortController();
    const call = client.propose(put("a", "1"), { timeoutMs: 10_000, signal: controller.signal });
    setTimeout(() => controller.abort(), 30);
    await expect(call).rejects.toMatchObject({ code: "ABORTED" });
    expect(() => new RaftClient(target, { attemptTimeoutMs: 0 })).toThrow(/attemptTimeoutMs/);
  });

  /**
   * A target that registers session 1 and answers each command attempt as `answer` says:
   * a result, a rejection, or never. Records each attempt's seq and `timeoutMs`.
   */
  function scriptedTarget(answer: (seq: number, attempt: number) => "ok" | "hang" | RaftError) {
    const attempts: { seq: number; timeoutMs: number }[] = [];
    const target: SessionTarget<KvCommand, KvResult> = {
      propose: (cmd, options) => {
        if (cmd.kind === "register") return Promise.resolve({ kind: "registered", session: 1 });
        if (cmd.kind !== "command") return Promise.resolve({ kind: "ok" });
        attempts.push({ seq: cmd.seq, timeoutMs: options?.timeoutMs ?? Number.NaN });
        const a = answer(cmd.seq, attempts.filter((x) => x.seq === cmd.seq).length);
        if (a === "hang") return new Promise(() => {}); // a node that crashed with the request
        if (a instanceof RaftError) return Promise.reject(a);
        return Promise.resolve({ kind: "result", result: { ok: true, previous: null }, duplicate: false });
      },
      read: () => Promise.resolve(),
    };
    return { target, attempts };
  }

  it("a call that is over no longer holds back the seq window, though its attempt never got an answer", async () => {
    // Seq 1's attempt goes to a node that never answers; the call is aborted long before
    // the attempt's deadline. Seqs 2 and 3 must still run: with a window of 2, seq 3 is
    // refused with BUSY for as long as seq 1 counts as unfinished.
    const { target } = scriptedTarget((seq) => (seq === 1 ? "hang" : "ok"));
    const client = new RaftClient(target, { attemptTimeoutMs: 60_000, requestTimeoutMs: 60_000, maxSeqWindow: 2 });
    const controller = new AbortController();
    const first = client.propose(put("a", "1"), { signal: controller.signal });
    await new Promise((r) => setTimeout(r, 10));
    controller.abort();
    await expect(first).rejects.toMatchObject({ code: "ABORTED" });
    await expect(client.propose(put("b", "1"))).resolves.toEqual({ ok: true, previous: null });
    await expect(client.propose(put("c", "1"))).resolves.toEqual({ ok: true, previous: null });
  });

  it("doubles an attempt's deadline only after one that timed out, not after a node gave up at once", async () => {
    // The node rejects the first three attempts with TIMEOUT right away (its leader
    // changed before it answered): that says nothing about the deadline being too short.
    const early = new RaftError("TIMEOUT", "the leader changed before it answered");
    const { target, attempts } = scriptedTarget((_seq, n) => (n <= 3 ? early : "ok"));
    const client = new RaftClient(target, { attemptTimeoutMs: 500, requestTimeoutMs: 60_000, retryDelayMs: 1 });
    await expect(client.propose(put("a", "1"))).resolves.toEqual({ ok: true, previous: null });
    expect(attempts.map((a) => a.timeoutMs)).toEqual([500, 500, 500, 500]);
  });

  it("survives a restart from a snapshot: a retried command is still deduplicated", async () => {
    const network = new MemoryNetwork();
    const storage = new MemoryStorage();
    const make = (user: CountingKv) =>
      new RaftNode<SessionCommand<KvCommand>, SessionResult<KvResult>>({ id: "s", peers: ["s"], stateMachine: new SessionStateMachine(user), storage, transport: network.transport("s"), tickMs: 5, snapshotThreshold: 10, trailingEntries: 0 });
    const user = new CountingKv();
    const node = make(user);
    await node.start();
    await until(() => node.isLeader);
    const client = node.client<KvCommand, KvResult>();
    for (let i = 0; i < 30; i++) await client.propose(put("k", `v${i}`));
    const session = client.clientId!;
    await node.snapshot();
    await node.stop();
    const user2 = new CountingKv();
    const again = make(user2);
    await again.start();
    await until(() => again.isLeader);
    // seq 30 was the last one: a late retry of it (with the same ackSeq) is answered from the restored cache.
    const r = await again.propose({ kind: "command", session, seq: 30, ackSeq: 30, time: Date.now(), cmd: put("k", "v29") });
    expect(r).toEqual({ kind: "result", result: { ok: true, previous: "v28" }, duplicate: true });
    expect(user2.applied.has("k=v29")).toBe(false);
    expect(user2.kv.get("k")).toBe("v29");
    await again.stop();
  });
});
