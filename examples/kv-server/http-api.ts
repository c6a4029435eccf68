// The HTTP API of the KV server, exactly as the KV server spec lays it out (docs/kv-server.md).
// Routes parse and validate their input completely before anything is proposed, so a
// 4xx never changes the state.
import type { IncomingMessage, ServerResponse } from "node:http";
import { RaftError, validateKvCommand } from "raftkit";
import type { KvCommand, KvListOptions, KvStateMachine, Logger, RaftNode } from "raftkit";
import { HttpError, parseJsonObject, readBody, sendError, sendJson, stringField } from "./http-io.js";
import type { IndexedKvResult } from "./indexed-kv.js";
import type { KvMetrics, Outcome } from "./metrics.js";

export interface ApiMember {
  readonly id: string;
  /** Where its Raft listener is reached, "host:port". */
  readonly address: string;
  /** The base URL of its HTTP API, where a follower redirects writes when it leads. */
  readonly clientUrl: string;
}

export interface ApiContext {
  readonly node: RaftNode<KvCommand, IndexedKvResult>;
  readonly kv: KvStateMachine;
  readonly members: readonly ApiMember[];
  /** How long a write or a linearizable read may wait before the answer is 504. */
  readonly requestTimeoutMs: number;
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
const MEMBERSHIP_MESSAGE = "membership changes are not supported yet: they land with issue 6";

export function createApiHandler(ctx: ApiContext): (req: IncomingMessage, res: ServerResponse) => void {
  const { node, kv, metrics } = ctx;
  const clientUrls = new Map(ctx.members.map((m) => [m.id, m.clientUrl]));
  // A JSON string escapes a byte as at most 6 ("\u0000"), so a body this large can still
  // carry a value at the limit; anything larger is refused while it is being read.
  const valueBodyLimit = 6 * kv.limits.maxValueBytes + 1024;

  // ---------------------------------------------------------------- leadership

  /** The answer for a request that needs the leader, on a node that is not it. */
  function notLeader(leader: string | null, rawUrl: string): HttpError {
    const base = leader === null || leader === node.id ? undefined : clientUrls.get(leader);
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
    const members = ctx.members.map((m) => ({
      id: m.id,
      address: m.address,
      clientUrl: m.clientUrl,
      voter: s.voters.includes(m.id),
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
      members,
    });
  };

  const membership: Handler = async () => {
    throw new HttpError(501, "NOT_IMPLEMENTED", MEMBERSHIP_MESSAGE);
  };

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
    if (s[2] === "members" && s.length === 3) return at("/v1/members", { POST: membership });
    if (s[2] === "members" && s.length === 4 && s[3] !== "") return at("/v1/members/:id", { DELETE: membership });
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
      return "unavailable";
    default:
      return "error";
  }
}
