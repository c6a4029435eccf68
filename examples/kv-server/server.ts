// One KV server: a RaftNode (KvStateMachine, LevelStorage, TcpTransport) behind the HTTP API.
import { mkdir } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { KvStateMachine, LevelStorage, RaftNode, TcpTransport } from "raftkit";
import type { KvCommand, Logger } from "raftkit";
import { formatHostPort, httpBaseUrl } from "./address.js";
import { type ServerConfig, clientAddressOf } from "./args.js";
import { createApiHandler } from "./http-api.js";
import { type IndexedKvResult, IndexedKvStateMachine } from "./indexed-kv.js";
import { createMetrics } from "./metrics.js";

/**
 * The cluster name in every handshake and in the store's identity record: a store made by
 * another program, or a connection from one, is refused rather than mixed in.
 */
const CLUSTER_ID = "raftkit-kv";

export interface RunningServer {
  readonly node: RaftNode<KvCommand, IndexedKvResult>;
  /** The base URL of the HTTP API. */
  readonly url: string;
  /** Stops the HTTP API and the node. Safe to call twice. */
  stop(): Promise<void>;
}

export async function startServer(config: ServerConfig, logger: Logger, onFatal: (err: Error) => void): Promise<RunningServer> {
  const { nodeId, timing } = config;
  try {
    await mkdir(config.dataDir, { recursive: true });
  } catch (err) {
    throw new Error(`cannot create --data-dir ${config.dataDir}: ${(err as Error).message}`);
  }
  const kv = new KvStateMachine();
  const transport = new TcpTransport({
    id: nodeId,
    listen: formatHostPort(config.bind),
    peers: new Map(config.members.map((m) => [m.id, formatHostPort(m.raft)])),
    clusterId: CLUSTER_ID,
    reconnectMaxMs: timing.reconnectMaxMs,
    logger,
  });
  const node = new RaftNode<KvCommand, IndexedKvResult>({
    id: nodeId,
    peers: config.members.map((m) => m.id),
    stateMachine: new IndexedKvStateMachine(kv),
    storage: new LevelStorage({ location: config.dataDir, nodeId, clusterId: CLUSTER_ID, logger }),
    transport,
    tickMs: timing.tickMs,
    electionTicks: timing.electionTicks,
    heartbeatTicks: timing.heartbeatTicks,
    requestTimeoutMs: timing.requestTimeoutMs,
    // The API answers a write sent to a follower with 307 to the leader (the spec), so the
    // node must refuse it with NOT_LEADER rather than forward it.
    forwardProposals: false,
    logger,
  });
  const metrics = createMetrics({ status: () => node.status(), kv, transportStats: () => transport.stats() });

  node.on("leader", (leader, term) => {
    metrics.leaderChanged();
    if (config.verbose) logger.info(leader === null ? `no leader known (term ${term})` : `leader is node ${leader} (term ${term})`);
  });
  if (config.verbose) {
    node.on("role", (role, term) => logger.info(`became ${role} (term ${term})`));
    node.on("term", (term) => logger.info(`term is now ${term}`));
  }
  node.on("error", (err) => onFatal(err));

  try {
    await node.start();
  } catch (err) {
    await node.stop().catch(() => {});
    throw err;
  }

  const handler = createApiHandler({
    node,
    kv,
    members: config.members.map((m) => ({
      id: m.id,
      address: formatHostPort(m.raft),
      clientUrl: httpBaseUrl(m.id === nodeId ? config.clientBind : clientAddressOf(m)),
    })),
    requestTimeoutMs: timing.requestTimeoutMs,
    metrics,
    logger,
  });
  const http = createServer({ keepAlive: true }, handler);
  // Above the usual 5 s so that clients with pooled connections rarely race a server-side close.
  http.keepAliveTimeout = 65_000;
  // Bounds a slow sender; a 1 MiB value arrives well within it.
  http.requestTimeout = 60_000;
  try {
    await listen(http, config.clientBind.host, config.clientBind.port);
  } catch (err) {
    await node.stop().catch(() => {});
    throw new Error(`cannot listen for HTTP on ${formatHostPort(config.clientBind)}: ${(err as Error).message}`);
  }
  const url = httpBaseUrl(config.clientBind);
  logger.info(`node ${nodeId} up: raft ${formatHostPort(config.bind)}, http ${url}, data ${config.dataDir}, ${timing.name} mode`);

  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      const closed = new Promise<void>((resolve) => http.close(() => resolve()));
      http.closeIdleConnections();
      // Pending writes and reads now settle (STOPPED) and their requests get answers.
      await node.stop();
      await new Promise<void>((resolve) => setImmediate(resolve));
      http.closeAllConnections();
      await closed;
    })());
  return { node, url, stop };
}

function listen(server: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host, port }, () => {
      server.off("error", reject);
      resolve();
    });
  });
}
