// --join: a node that starts with an empty configuration asks a running cluster to add it.
//
// 1. Restarted on a data dir whose configuration already makes it a voter: nothing to do
//    (no network needed, so it restarts while part of the cluster is down).
// 2. Otherwise ask the member at --join for the cluster's members (GET /v1/status): their
//    ids and Raft addresses go into the transport, so that it accepts the leader's
//    connection before this node has a configuration of its own.
// 3. Then, unless the data dir already belongs to the cluster, POST /v1/members {id,
//    address: --bind}, following 307 to the leader and retrying while an election or
//    another change is under way. A learner left behind by an interrupted join is asked
//    for again (that promotes it; it is not added twice). A node the cluster no longer
//    lists but whose data dir has state was removed: it is not added back.
import type { KvCommand, Logger, NodeId, RaftNode } from "raftkit";
import { type HostPort, formatHostPort, httpBaseUrl } from "./address.js";
import { type ApiResponse, ClusterClient, ClusterUnavailableError } from "./cluster-client.js";
import type { IndexedKvResult } from "./indexed-kv.js";
import type { ObservedTransport } from "./instrument.js";
import type { AddressBook, MemberView } from "./members.js";
import type { TimingPreset } from "./presets.js";

export interface JoinOptions {
  readonly node: RaftNode<KvCommand, IndexedKvResult>;
  readonly transport: ObservedTransport;
  readonly book: AddressBook;
  readonly nodeId: NodeId;
  /** This node's Raft address, as the cluster will reach it. */
  readonly bind: HostPort;
  /** The HTTP API of a member. */
  readonly join: HostPort;
  readonly timing: TimingPreset;
  readonly logger: Logger;
  /** Aborted when the server stops. */
  readonly signal: AbortSignal;
}

/** Resolves once this node is (or already was) a member; rejects with what the cluster said otherwise. */
export async function joinCluster(o: JoinOptions): Promise<void> {
  const { node, nodeId, logger, signal } = o;
  const deadline = Date.now() + o.timing.joinRetryMs;
  const self = formatHostPort(o.bind);
  const loaded = node.status();
  // Nothing stored at all: no log entry and no term.
  const fresh = loaded.lastIndex === 0 && loaded.term === 0;
  if (!fresh) {
    // The configuration comes back as the committed entries are applied again.
    await until(() => node.status().appliedIndex >= loaded.commitIndex, 10_000, signal);
    if (node.status().voters.includes(nodeId)) {
      logger.info(`--join: this data dir already makes node ${nodeId} a voter; not joining again`);
      return;
    }
  }

  const client = new ClusterClient([httpBaseUrl(o.join)], o.timing.joinRetryMs, o.timing.membershipTimeoutMs + 5_000);
  const onAbort = (): void => client.close();
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    const members = await clusterMembers(client, deadline, signal);
    const me = members.find((m) => m.id === nodeId);
    if (me !== undefined && me.address !== null && me.address !== self) {
      throw new Error(`node ${nodeId} is already a member of the cluster, at ${me.address}, not ${self}; remove it first (DELETE /v1/members/${nodeId}) or pick another --node-id`);
    }
    if (me?.role === "voter") {
      if (fresh) {
        // A voter that lost its state could vote twice in a term or forget entries it acknowledged.
        throw new Error(`node ${nodeId} is a voter of the cluster but this --data-dir is empty; remove it first (DELETE /v1/members/${nodeId}) and join again`);
      }
      logger.info(`--join: node ${nodeId} is already a voter; not joining again`);
      return;
    }
    if (me === undefined && !fresh) {
      logger.warn(`--join: this --data-dir belongs to the cluster but node ${nodeId} is no longer a member (it was removed); not adding it back. Start it on an empty --data-dir to join again`);
      return;
    }
    // Accept (and reach) the members before the configuration that names them arrives.
    const bootstrap = new Map<NodeId, string>();
    for (const m of members) {
      if (m.address === null || m.id === nodeId) continue;
      bootstrap.set(m.id, m.address);
      o.book.learn(m.id, m.address);
    }
    o.transport.setBootstrap(bootstrap);
    logger.info(`--join: asking ${httpBaseUrl(o.join)} to add node ${nodeId} at ${self}${me?.role === "learner" ? " (a learner: to be promoted)" : ""}`);
    const added = await postMember(client, { id: Number(nodeId), address: self }, deadline, signal);
    for (const m of added) if (m.address !== null && m.id !== nodeId) o.book.learn(m.id, m.address);
    logger.info(`--join: node ${nodeId} joined; members ${added.map((m) => `${m.id}${m.role === "learner" ? " (learner)" : ""}`).join(", ")}`);
  } finally {
    signal.removeEventListener("abort", onAbort);
    client.close();
  }
}

async function clusterMembers(client: ClusterClient, deadline: number, signal: AbortSignal): Promise<MemberView[]> {
  for (;;) {
    const res = await attempt(client, "GET", "/v1/status", undefined, deadline, signal);
    const members = res === null ? null : membersOf(res.body);
    if (res !== null && res.status === 200 && members !== null) return members;
    if (res !== null) throw new Error(`GET /v1/status from ${res.from} answered ${res.status}: ${JSON.stringify(res.body)}`);
  }
}

async function postMember(client: ClusterClient, body: { id: number; address: string }, deadline: number, signal: AbortSignal): Promise<MemberView[]> {
  for (;;) {
    const res = await attempt(client, "POST", "/v1/members", body, deadline, signal);
    if (res === null) continue;
    const members = membersOf(res.body);
    if (res.status === 200 && members !== null) return members;
    const b = (typeof res.body === "object" && res.body !== null ? res.body : {}) as Record<string, unknown>;
    // A change in progress, a learner still catching up (504), no leader yet: ask again.
    const again = (res.status === 409 && b["code"] === "CHANGE_IN_PROGRESS") || res.status === 503 || res.status === 504;
    if (!again || Date.now() >= deadline) {
      throw new Error(`the cluster did not add this node: ${res.status} ${String(b["code"] ?? "")} ${String(b["error"] ?? JSON.stringify(res.body))}`);
    }
    await pause(500, signal);
  }
}

/** One request through the client (which follows redirects and retries 503s); null after a network failure worth retrying. */
async function attempt(client: ClusterClient, method: string, path: string, body: unknown, deadline: number, signal: AbortSignal): Promise<ApiResponse | null> {
  if (signal.aborted) throw new Error("stopped while joining");
  try {
    return await client.send(method, path, body, "idempotent");
  } catch (err) {
    if (signal.aborted) throw new Error("stopped while joining");
    if (!(err instanceof ClusterUnavailableError) || Date.now() >= deadline) throw err;
    await pause(500, signal);
    return null;
  }
}

function membersOf(body: unknown): MemberView[] | null {
  const members = typeof body === "object" && body !== null ? (body as { members?: unknown }).members : undefined;
  if (!Array.isArray(members)) return null;
  return members.filter(
    (m): m is MemberView => typeof m === "object" && m !== null && typeof m.id === "string" && (typeof m.address === "string" || m.address === null),
  ).map((m) => ({ ...m, role: m.role ?? (m.voter ? "voter" : "learner") }));
}

async function until(done: () => boolean, timeoutMs: number, signal: AbortSignal): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!done() && Date.now() < end && !signal.aborted) await pause(20, signal);
}

function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}
