// The HTTP API of the KV server, exactly as the KV server spec lays it out (docs/kv-server.md).
// Routes parse and validate their input completely before anything is proposed, so a
// 4xx never changes the state.
import type { IncomingMessage, ServerResponse } from "node:http";
import { RaftError, validateKvCommand } from "raftkit";
import type { ClusterConfig, KvCommand, KvListOptions, KvStateMachine, Logger, RaftNode } from "raftkit";
import { HttpError, parseJsonObject, readBody, sendError, sendJson, stringField } from "./http-io.js";
import type { IndexedKvResult } from "./indexed-kv.js";
import { type AddressBook, canonicalAddress, isMember } from "./members.js";
import type { KvMetrics, Outcome } from "./metrics.js";

export interface ApiContext {
  readonly node: RaftNode<KvCommand, IndexedKvResult>;
  readonly kv: KvStateMachine;
  /** Where members are: their Raft addresses and the URLs of their HTTP APIs. */
  readonly book: AddressBook;
  /** How long a write or a linearizable read may wait before the answer is 504. */
  readonly requestTimeoutMs: number;
  /** How long a membership change may take (adding includes copying the log) before the answer is 504. */
  readonly membershipTimeoutMs: number;
  readonly metrics: KvMetrics;
  readonly logger: Logger;
}

type Handler = (req: IncomingMessage, res: ServerResponse, params: Params) => Promise<void>;

interface Params {
  /** The raw, still percent-encoded key segment, when the route has one. */
  readonly rawKey: string;
  readonly query: URLSearchParams;
  /** The path and query as requested: a redirect sends the client to the same one. */
  readonly rawUrl: string;
}

interface Route {
  /** The route's pattern, as a metrics label. */
  readonly name: string;
  readonly rawKey: string;
  readonly methods: Readonly<Record<string, Handler>>;
}

const DEFAULT_LIST_LIMIT = 1000;
const MAX_LIST_LIMIT = 10_000;
/** Node ids as the command line takes them (--node-id). */
const MEMBER_ID = /^[1-9][0-9]{0,8}$/;

export function createApiHandler(ctx: ApiContext): (req: IncomingMessage, res: ServerResponse) => void {
  const { node, kv, metrics, book } = ctx;
  // A JSON string escapes a byte as at most 6 ("\u0000"), so a body this large can still
  // carry a value at the limit; anything larger is refused while it is being read.
  const valueBodyLimit = 6 * kv.limits.maxValueBytes + 1024;

  // ---------------------------------------------------------------- leadership

  /** The answer for a request that needs the leader, on a node that is not it. */
  function notLeader(leader: string | null, rawUrl: string): HttpError {
    const base = leader === null || leader === node.id ? undefined : book.clientUrl(leader);
    if (base === undefined) {
      return new HttpError(503, "NO_LEADER", "no leader is known right now; retry shortly", { leader: null });
    }
    return new HttpError(307, "NOT_LEADER", `node ${node.id} is not the leader; node ${leader} is`, { leader }, { location: base + rawUrl });
  }

  async function propose(cmd: KvCommand, rawUrl: string): Promise<IndexedKvResult> {
    if (!node.isLeader) throw notLeader(node.leaderId, rawUrl);
    const done = metrics.proposal(cmd.op);
    try {
      const result = await node.propose(cmd, { timeoutMs: ctx.requestTimeoutMs });
      done(cmd.op === "cas" && !result.ok ? "cas_failed" : "ok");
      return result;
    } catch (err) {
      const answer = proposalFailure(err, rawUrl);
      done(outcomeOf(answer));
      throw answer;
    }
  }

  function proposalFailure(err: unknown, rawUrl: string): HttpError {
    if (!(err instanceof RaftError)) return internal(err);
    switch (err.code) {
      case "NOT_LEADER":
        return notLeader(err.leaderId ?? node.leaderId, rawUrl);
      case "DROPPED": {
        // Definitely not committed: send the client where it can try again.
        const answer = notLeader(node.leaderId, rawUrl);
        return answer.status === 307 ? answer : new HttpError(503, "DROPPED", "leadership changed and the write was not committed; retry", { leader: node.leaderId });
      }
      case "TIMEOUT":
      case "ABORTED":
        return new HttpError(504, "TIMEOUT", `the write was not confirmed within ${ctx.requestTimeoutMs} ms; it may still commit`);
      case "STOPPED":
        return new HttpError(503, "STOPPED", "the node is stopping; the write may still commit");
      case "BUSY":
        return new HttpError(503, "BUSY", "too many requests are pending on this node; retry shortly");
      default:
        return internal(err);
    }
  }

  /** Waits for a linearizable read point (ReadIndex) unless the request asks for a stale read. */
  async function readPoint(query: URLSearchParams): Promise<void> {
    const consistency = query.get("consistency");
    if (consistency === "stale") return;
    if (consistency !== null && consistency !== "linearizable") {
      throw new HttpError(400, "INVALID_QUERY", `consistency must be "linearizable" (the default) or "stale", got ${JSON.stringify(consistency)}`);
    }
    // The node would wait for a leader until its deadline; an immediate 503 lets the client look elsewhere.
    if (node.leaderId === null) throw new HttpError(503, "NO_LEADER", "no leader is known right now; retry shortly, or read with ?consistency=stale", { leader: null });
    const done = metrics.read();
    try {
      await node.read({ timeoutMs: ctx.requestTimeoutMs });
      done("ok");
    } catch (err) {
      const answer = readFailure(err);
      done(outcomeOf(answer));
      throw answer;
    }
  }

  function readFailure(err: unknown): HttpError {
    if (!(err instanceof RaftError)) return internal(err);
    switch (err.code) {
      case "TIMEOUT":
      case "ABORTED":
        return new HttpError(504, "TIMEOUT", `no linearizable read point within ${ctx.requestTimeoutMs} ms; retry, or read with ?consistency=stale`);
      case "STOPPED":
        return new HttpError(503, "STOPPED", "the node is stopping");
      case "BUSY":
        return new HttpError(503, "BUSY", "too many requests are pending on this node; retry shortly");
      default:
        return internal(err);
    }
  }

  // ---------------------------------------------------------------- input

  function decodeKey(rawKey: string): string {
    let key: string;
    try {
      key = decodeURIComponent(rawKey);
    } catch {
      throw new HttpError(400, "INVALID_KEY", "the key is not valid percent-encoded UTF-8");
    }
    if (key === "") throw new HttpError(400, "INVALID_KEY", "the key must not be empty");
    const bytes = Buffer.byteLength(key, "utf8");
    if (bytes > kv.limits.maxKeyBytes) {
      throw new HttpError(400, "KEY_TOO_LONG", `the key is ${bytes} bytes; the limit is ${kv.limits.maxKeyBytes}`);
    }
    return key;
  }

  function checkValue(value: string | null, field: string): void {
    if (value === null) return;
    const bytes = Buffer.byteLength(value, "utf8");
    if (bytes > kv.limits.maxValueBytes) {
      throw new HttpError(413, "VALUE_TOO_LARGE", `"${field}" is ${bytes} bytes; the limit is ${kv.limits.maxValueBytes}`);
    }
  }

  /** The state machine's own check, last: whatever it refuses must not take a log entry. */
  function validated(cmd: KvCommand): KvCommand {
    try {
      validateKvCommand(cmd, kv.limits);
    } catch (err) {
      throw new HttpError(err instanceof RangeError ? 413 : 400, "INVALID_COMMAND", (err as Error).message);
    }
    return cmd;
  }

  async function jsonBody(req: IncomingMessage, limitBytes: number): Promise<Record<string, unknown>> {
    return parseJsonObject(await readBody(req, limitBytes));
  }

  // ---------------------------------------------------------------- routes

  const getKey: Handler = async (_req, res, p) => {
    const key = decodeKey(p.rawKey);
    await readPoint(p.query);
    const value = kv.get(key);
    if (value === undefined) throw new HttpError(404, "NOT_FOUND", `key ${JSON.stringify(key)} not found`, { key });
    sendJson(res, 200, { key, value });
  };

  const putKey: Handler = async (req, res, p) => {
    const key = decodeKey(p.rawKey);
    const body = await jsonBody(req, valueBodyLimit);
    const value = stringField(body, "value", false) as string;
    checkValue(value, "value");
    const r = await propose(validated({ op: "put", key, value }), p.rawUrl);
    sendJson(res, 200, { index: r.index });
  };

  const deleteKey: Handler = async (_req, res, p) => {
    const key = decodeKey(p.rawKey);
    const r = await propose(validated({ op: "delete", key }), p.rawUrl);
    sendJson(res, 200, { deleted: r.ok, index: r.index });
  };

  const casKey: Handler = async (req, res, p) => {
    const key = decodeKey(p.rawKey);
    const body = await jsonBody(req, 2 * valueBodyLimit);
    const expected = stringField(body, "expected", true);
    const value = stringField(body, "value", true);
    checkValue(expected, "expected");
    checkValue(value, "value");
    const r = await propose(validated({ op: "cas", key, expected, value }), p.rawUrl);
    if (r.ok) sendJson(res, 200, { ok: true, index: r.index });
    else sendJson(res, 409, { error: "the current value differs from the expected one", code: "CAS_FAILED", ok: false, current: r.previous, index: r.index });
  };

  const list: Handler = async (_req, res, p) => {
    const limit = listLimit(p.query.get("limit"));
    const options: KvListOptions = { prefix: p.query.get("prefix") ?? "", limit };
    const after = p.query.get("after");
    await readPoint(p.query);
    sendJson(res, 200, { items: kv.list(after === null ? options : { ...options, after }) });
  };

  const status: Handler = async (_req, res) => {
    const s = node.status();
    const match = new Map(s.peers.map((peer) => [peer.id, peer.matchIndex]));
    const members = book.view(s).map((m) => ({
      ...m,
      // Known only on the leader: how far each member's log is known to match its own.
      ...(match.has(m.id) ? { matchIndex: match.get(m.id) } : {}),
    }));
    sendJson(res, 200, {
      id: s.id,
      role: s.role,
      term: s.term,
      leader: s.leader,
      commitIndex: s.commitIndex,
      appliedIndex: s.appliedIndex,
      lastIndex: s.lastIndex,
      joint: s.joint,
      members,
    });
  };

  // ---------------------------------------------------------------- membership

  /** POST /v1/members {"id": N, "address": "HOST:PORT"}: adds a learner, promoted once caught up. */
  const addMember: Handler = async (req, res, p) => {
    const body = await jsonBody(req, 4096);
    const id = memberIdField(body);
    const address = addressField(body);
    if (!node.isLeader) throw notLeader(node.leaderId, p.rawUrl);
    const s = node.status();
    const known = book.address(id);
    if (isMember(s, id) && known !== undefined && known !== address) {
      throw new HttpError(409, "MEMBER_EXISTS", `node ${id} is already a member, at ${known}; remove it first to move it`, { id, address: known });
    }
    const clash = [...s.voters, ...s.learners].find((other) => other !== id && book.address(other) === address);
    if (clash !== undefined) {
      throw new HttpError(409, "ADDRESS_IN_USE", `${address} is the address of node ${clash}`, { id: clash, address });
    }
    const config = await changeMembership(`adding node ${id}`, p.rawUrl, () => addCaughtUp(id, address));
    sendJson(res, 200, { members: book.view(config) });
  };

  /**
   * addMember's two steps, with a stricter catch-up test between them. RaftNode.addMember
   * promotes a learner once its match index is within `catchUpEntries` of the leader's
   * last index, which on a log shorter than that holds before the learner has received
   * anything: an unreachable node (a wrong address, a TLS certificate the others reject)
   * would become a voter and count against the quorum. So the learner is added here, and
   * promoted (by addMember, which finds it a learner) only once it has acknowledged the
   * log up to the entry that added it.
   */
  async function addCaughtUp(id: string, address: string): Promise<ClusterConfig> {
    const deadline = Date.now() + ctx.membershipTimeoutMs;
    const left = (): number => Math.max(1, deadline - Date.now());
    if (!isMember(node.status(), id)) {
      await node.changeMembership({ addLearners: [id], addresses: { [id]: address } }, { timeoutMs: left() });
    }
    if (!node.status().voters.includes(id)) {
      const target = node.status().commitIndex;
      for (;;) {
        const s = node.status();
        if (s.role !== "leader") throw new RaftError("NOT_LEADER", `${node.id} lost leadership while adding ${id}`, { leaderId: s.leader });
        if (s.voters.includes(id)) break; // promoted meanwhile (by a concurrent request)
        if (!s.learners.includes(id)) throw new RaftError("INVALID_STATE", `node ${id} was removed while it was being added`);
        const match = s.peers.find((peer) => peer.id === id)?.matchIndex ?? 0;
        if (match >= target) break;
        if (Date.now() >= deadline) {
          throw new RaftError("TIMEOUT", `learner ${id} has acknowledged the log up to ${match} of ${target}: is ${address} reachable, and does it accept this cluster's connections? It stays a learner`);
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    return node.addMember(id, address, { timeoutMs: left() });
  }

  /** DELETE /v1/members/N: removes a voter or a learner, this node (the leader) included. */
  const removeMember: Handler = async (_req, res, p) => {
    const id = p.rawKey;
    if (!MEMBER_ID.test(id)) throw new HttpError(400, "INVALID_MEMBER_ID", `a member id is a positive integer, got ${JSON.stringify(id)}`);
    if (!node.isLeader) throw notLeader(node.leaderId, p.rawUrl);
    if (!isMember(node.status(), id)) throw new HttpError(404, "NOT_MEMBER", `node ${id} is not a member`, { id });
    const config = await changeMembership(`removing node ${id}`, p.rawUrl, () => node.removeMember(id, { timeoutMs: ctx.membershipTimeoutMs }));
    sendJson(res, 200, { members: book.view(config) });
  };

  async function changeMembership(what: string, rawUrl: string, change: () => Promise<ClusterConfig>): Promise<ClusterConfig> {
    const done = metrics.membershipChange();
    try {
      const config = await change();
      done("ok");
      ctx.logger.info(`membership: ${what} done; voters ${config.voters.join(",")}${config.learners.length > 0 ? `, learners ${config.learners.join(",")}` : ""}`);
      return config;
    } catch (err) {
      const answer = membershipFailure(err, what, rawUrl);
      done(outcomeOf(answer));
      throw answer;
    }
  }

  function membershipFailure(err: unknown, what: string, rawUrl: string): HttpError {
    if (!(err instanceof RaftError)) return internal(err);
    switch (err.code) {
      case "NOT_LEADER":
        return notLeader(err.leaderId ?? node.leaderId, rawUrl);
      case "BUSY":
        // Raft takes one configuration change at a time (and none while leadership moves).
        return new HttpError(409, "CHANGE_IN_PROGRESS", `another membership change or a leadership transfer is in progress; retry shortly (${err.message})`);
      case "INVALID_STATE":
        return new HttpError(409, "INVALID_CHANGE", err.message);
      case "DROPPED": {
        const answer = notLeader(node.leaderId, rawUrl);
        return answer.status === 307 ? answer : new HttpError(503, "DROPPED", `leadership changed while ${what}; it did not complete: retry`, { leader: node.leaderId });
      }
      case "TIMEOUT":
      case "ABORTED":
        return new HttpError(504, "TIMEOUT", `${what} was not confirmed within ${ctx.membershipTimeoutMs} ms; it may still complete (${err.message})`);
      case "STOPPED":
        return new HttpError(503, "STOPPED", `the node is stopping; ${what} may still complete`);
      default:
        return internal(err);
    }
  }

  function memberIdField(body: Record<string, unknown>): string {
    if (!Object.hasOwn(body, "id")) throw new HttpError(400, "MISSING_FIELD", 'request body needs "id" (a positive integer)');
    const v = body["id"];
    const text = typeof v === "number" && Number.isSafeInteger(v) ? String(v) : typeof v === "string" ? v : null;
    if (text === null || !MEMBER_ID.test(text)) {
      throw new HttpError(400, "INVALID_FIELD", `"id" must be a positive integer (at most 9 digits), got ${JSON.stringify(v) ?? typeof v}`);
    }
    return text;
  }

  function addressField(body: Record<string, unknown>): string {
    const text = stringField(body, "address", false) as string;
    const address = canonicalAddress(text);
    if (address === null) throw new HttpError(400, "INVALID_FIELD", `"address" must be the member's Raft address, HOST:PORT, got ${JSON.stringify(text)}`);
    return address;
  }

  const prometheus: Handler = async (_req, res) => {
    const text = await metrics.registry.metrics();
    res.writeHead(200, { "content-type": metrics.registry.contentType, "content-length": Buffer.byteLength(text) });
    res.end(text);
  };

  function matchRoute(pathname: string): Route | null {
    const s = pathname.split("/");
    if (s[0] !== "") return null;
    const at = (name: string, methods: Record<string, Handler>, rawKey = ""): Route => ({ name, rawKey, methods });
    if (s[1] === "metrics" && s.length === 2) return at("/metrics", { GET: prometheus });
    if (s[1] !== "v1") return null;
    if (s[2] === "kv") {
      if (s.length === 3) return at("/v1/kv", { GET: list });
      if (s.length === 4) return at("/v1/kv/:key", { GET: getKey, PUT: putKey, DELETE: deleteKey }, s[3]);
      if (s.length === 5 && s[4] === "cas") return at("/v1/kv/:key/cas", { POST: casKey }, s[3]);
      return null;
    }
    if (s[2] === "status" && s.length === 3) return at("/v1/status", { GET: status });
    if (s[2] === "members" && s.length === 3) return at("/v1/members", { POST: addMember });
    if (s[2] === "members" && s.length === 4 && s[3] !== "") return at("/v1/members/:id", { DELETE: removeMember }, s[3]);
    return null;
  }

  // ---------------------------------------------------------------- dispatch

  return (req, res) => {
    const method = req.method ?? "GET";
    const rawUrl = req.url ?? "/";
    const q = rawUrl.indexOf("?");
    // Split by hand rather than with URL: URL would resolve "." and ".." (even "%2e")
    // segments, and those are keys like any other.
    const pathname = q < 0 ? rawUrl : rawUrl.slice(0, q);
    const query = new URLSearchParams(q < 0 ? "" : rawUrl.slice(q + 1));
    const route = matchRoute(pathname);
    res.once("finish", () => metrics.httpRequest(method, route?.name ?? "unknown", res.statusCode));
    const run = async (): Promise<void> => {
      if (route === null) {
        throw new HttpError(404, "UNKNOWN_ROUTE", `no route ${method} ${pathname}; keys with "/" must be percent-encoded (%2F)`);
      }
      const handler = route.methods[method];
      if (handler === undefined) {
        const allow = Object.keys(route.methods).join(", ");
        throw new HttpError(405, "METHOD_NOT_ALLOWED", `${method} is not allowed on ${route.name}; use ${allow}`, {}, { allow });
      }
      await handler(req, res, { rawKey: route.rawKey, query, rawUrl });
    };
    run().catch((err: unknown) => {
      const answer = err instanceof HttpError ? err : internal(err);
      if (answer.status >= 500 && answer.code === "INTERNAL") ctx.logger.error("request failed", { method, url: rawUrl, error: String(err) });
      if (!res.destroyed) sendError(res, answer);
    });
  };

  function listLimit(text: string | null): number {
    if (text === null) return DEFAULT_LIST_LIMIT;
    const n = Number(text);
    if (!/^[0-9]+$/.test(text) || n > MAX_LIST_LIMIT) {
      throw new HttpError(400, "INVALID_QUERY", `limit must be an integer from 0 to ${MAX_LIST_LIMIT}, got ${JSON.stringify(text)}`);
    }
    return n;
  }
}

function internal(err: unknown): HttpError {
  return new HttpError(500, "INTERNAL", `internal error: ${err instanceof Error ? err.message : String(err)}`);
}

function outcomeOf(answer: HttpError): Outcome {
  switch (answer.code) {
    case "NOT_LEADER":
      return "not_leader";
    case "NO_LEADER":
      return "no_leader";
    case "TIMEOUT":
      return "timeout";
    case "DROPPED":
      return "dropped";
    case "STOPPED":
    case "BUSY":
    case "CHANGE_IN_PROGRESS":
      return "unavailable";
    case "INVALID_CHANGE":
      return "refused";
    default:
      return "error";
  }
}
