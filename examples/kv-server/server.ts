// One KV server: a RaftNode (KvStateMachine, LevelStorage, TcpTransport) behind the HTTP API.
import { mkdir, readFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { KvStateMachine, LevelStorage, RaftNode, TcpTransport, kvCodec } from "raftkit";
import type { ClusterConfig, KvCommand, Logger, TcpTlsOptions } from "raftkit";
import { formatHostPort, httpBaseUrl } from "./address.js";
import type { ServerConfig, TlsFiles } from "./args.js";
import { createApiHandler } from "./http-api.js";
import { type IndexedKvResult, IndexedKvStateMachine } from "./indexed-kv.js";
import { ObservedTransport, TimedStorage } from "./instrument.js";
import { joinCluster } from "./join.js";
import { AddressBook } from "./members.js";
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
  /**
   * With --join: resolves once this node is a member (added now, or already one), rejects
   * when the cluster would not add it. Without --join: resolved.
   */
  readonly joined: Promise<void>;
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
  const tls = config.tls === null ? undefined : await readTls(config.tls);
  const kv = new KvStateMachine();
  // The initial members with their Raft addresses: given to RaftNode as a record, they
  // become the configuration's address book, which every later configuration carries on
  // and which RaftNode hands to the transport whenever the configuration changes. Empty
  // with --join: the node waits to be added.
  const initialPeers = new Map(config.members.map((m) => [m.id, formatHostPort(m.raft)]));
  const tcp = new TcpTransport({
    id: nodeId,
    listen: formatHostPort(config.bind),
    peers: initialPeers,
    clusterId: CLUSTER_ID,
    reconnectMaxMs: timing.reconnectMaxMs,
    logger,
    ...(tls === undefined ? {} : { tls }),
  });
  const transport = new ObservedTransport(tcp, initialPeers);
  const book = new AddressBook(nodeId, config.clientBind, initialPeers);
  // status() is read only when /metrics is scraped: by then `node` is set.
  let node: RaftNode<KvCommand, IndexedKvResult>;
  const metrics = createMetrics({ status: () => node.status(), kv, transportStats: () => tcp.stats(), peerMessages: transport });
  const storage = new TimedStorage(
    new LevelStorage({ location: config.dataDir, nodeId, clusterId: CLUSTER_ID, logger }),
    (seconds) => metrics.storageSave(seconds),
    (seconds) => metrics.storageCompact(seconds),
  );
  node = new RaftNode<KvCommand, IndexedKvResult>({
    id: nodeId,
    peers: Object.fromEntries(initialPeers),
    stateMachine: new IndexedKvStateMachine(kv),
    codec: kvCodec,
    storage,
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

  node.on("leader", (leader, term) => {
    metrics.leaderChanged();
    if (config.verbose) logger.info(leader === null ? `no leader known (term ${term})` : `leader is node ${leader} (term ${term})`);
  });
  if (config.verbose) {
    node.on("role", (role, term) => logger.info(`became ${role} (term ${term})`));
    node.on("term", (term) => logger.info(`term is now ${term}`));
  }
  node.on("error", (err) => onFatal(err));
  let wasMember = initialPeers.has(nodeId);
  node.on("config", (c: ClusterConfig) => {
    book.update(c);
    const member = [...c.voters, ...c.learners, ...c.outgoingVoters].includes(nodeId);
    // Named in a configuration with addresses: from now on the configuration says whom to accept.
    if (member && c.addresses !== undefined) transport.clearBootstrap();
    if (config.verbose) logger.info(`configuration: voters ${c.voters.join(",") || "-"}, learners ${c.learners.join(",") || "-"}${c.outgoingVoters.length > 0 ? `, joint with ${c.outgoingVoters.join(",")}` : ""}`);
    if (wasMember && !member) {
      logger.warn(`node ${nodeId} was removed from the cluster and no longer takes part; stop it (to add it back, start it with --join and an empty --data-dir)`);
    }
    wasMember = member;
  });

  try {
    await node.start();
  } catch (err) {
    await node.stop().catch(() => {});
    throw err;
  }

  const handler = createApiHandler({
    node,
    kv,
    book,
    requestTimeoutMs: timing.requestTimeoutMs,
    membershipTimeoutMs: timing.membershipTimeoutMs,
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
  logger.info(`node ${nodeId} up: raft ${formatHostPort(config.bind)}${tls === undefined ? "" : " (TLS)"}, http ${url}, data ${config.dataDir}, ${timing.name} mode`);

  const joining = new AbortController();
  const joined =
    config.join === null
      ? Promise.resolve()
      : joinCluster({ node, transport, book, nodeId, bind: config.bind, join: config.join, timing, logger, signal: joining.signal });
  joined.catch(() => {}); // the caller handles it; never an unhandled rejection meanwhile

  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      joining.abort();
      const closed = new Promise<void>((resolve) => http.close(() => resolve()));
      http.closeIdleConnections();
      // Pending writes and reads now settle (STOPPED) and their requests get answers.
      await node.stop();
      await new Promise<void>((resolve) => setImmediate(resolve));
      http.closeAllConnections();
      await closed;
    })());
  return { node, url, joined, stop };
}

async function readTls(files: TlsFiles): Promise<TcpTlsOptions> {
  const read = async (file: string, flag: string): Promise<Buffer> => {
    try {
      return await readFile(file);
    } catch (err) {
      throw new Error(`cannot read ${flag} ${file}: ${(err as Error).message}`);
    }
  };
  const [cert, key, ca] = await Promise.all([read(files.certFile, "--tls-cert"), read(files.keyFile, "--tls-key"), read(files.caFile, "--tls-ca")]);
  return { cert, key, ca };
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
