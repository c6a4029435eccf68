/**
 * The TCP (optionally TLS) transport: one outbound connection per peer for sending, and
 * a listener that accepts each peer's outbound connection for receiving. Wire format in
 * docs/wire-format.md.
 */
import net from "node:net";
import tls from "node:tls";
import type { Message, NodeId } from "../core/messages.js";
import { RaftError } from "../errors.js";
import { type Logger, silentLogger } from "../logger.js";
import { DEFAULT_MAX_FRAME_BYTES, FRAME_HEADER_BYTES, FrameDecoder, FrameKind, encodeFrame, writeFrameHeader } from "./frame.js";
import type { MessageHandler, Transport } from "./transport.js";
import {
  MAX_NODE_ID_BYTES,
  decodeHandshake,
  decodeMessage,
  encodeHandshake,
  encodeMessageInto,
  encodedMessageSize,
} from "./wire-codec.js";

/**
 * TLS material for mutual authentication. Every member holds a certificate signed by the
 * same CA; the listener requires and verifies the caller's certificate, and the caller
 * verifies the listener's (including that it names the host dialled, so certificates need
 * the right subjectAltName: `IP:10.0.0.5` or `DNS:node-a.internal`).
 * @public
 */
export interface TcpTlsOptions {
  /** This node's private key, PEM. */
  readonly key: string | Buffer;
  /** This node's certificate, PEM; presented both when listening and when calling. */
  readonly cert: string | Buffer;
  /** The CA certificate(s), PEM, that every member's certificate must chain to. */
  readonly ca: string | Buffer | readonly (string | Buffer)[];
}

/**
 * Options for {@link TcpTransport}.
 * @public
 */
export interface TcpTransportOptions {
  /** This node's id; sent in the handshake of every outbound connection. */
  readonly id: NodeId;
  /** Where to listen, `"host:port"` (`"[::1]:7000"` for IPv6). Port 0 picks a free port; read it with {@link TcpTransport.port}. */
  readonly listen: string;
  /**
   * The other members and where they listen, node id to `"host:port"`. Only these ids may
   * connect. An entry for this node's own id is ignored, so the whole cluster map can be passed.
   * @defaultValue no peers
   */
  readonly peers?: ReadonlyMap<NodeId, string> | Readonly<Record<NodeId, string>>;
  /**
   * A name shared by the members of one cluster; connections from another cluster are refused.
   * @defaultValue `"default"`
   */
  readonly clusterId?: string;
  /** TLS with mutual authentication; plain TCP when absent. */
  readonly tls?: TcpTlsOptions;
  /**
   * The largest frame accepted or sent (the length prefix: payload plus 2 bytes). A message
   * that encodes larger is dropped at the sender; a larger incoming prefix closes the connection.
   * @defaultValue 16 MiB
   */
  readonly maxFrameBytes?: number;
  /**
   * Messages waiting per peer while its connection is being set up or is congested; when
   * full, further messages to that peer are dropped (and counted).
   * @defaultValue 4096
   */
  readonly maxQueuedMessages?: number;
  /**
   * How long an outbound connection (with its TLS handshake) may take before it is abandoned and retried.
   * @defaultValue 5000
   */
  readonly connectTimeoutMs?: number;
  /**
   * How long an inbound connection may take to complete its handshake before it is closed.
   * @defaultValue 5000
   */
  readonly handshakeTimeoutMs?: number;
  /**
   * The first reconnection delay after a connection fails or drops; it doubles with each
   * consecutive failure (with jitter) up to `reconnectMaxMs`.
   * @defaultValue 100
   */
  readonly reconnectMinMs?: number;
  /**
   * The longest reconnection delay. A connection that stayed up this long resets the backoff.
   * @defaultValue 5000
   */
  readonly reconnectMaxMs?: number;
  /**
   * The random source for backoff jitter, uniform in [0, 1).
   * @defaultValue `Math.random`
   */
  readonly random?: () => number;
  /**
   * Where diagnostics go.
   * @defaultValue {@link silentLogger}
   */
  readonly logger?: Logger;
}

/**
 * Counters of a {@link TcpTransport}, for monitoring and tests.
 * @public
 */
export interface TcpTransportStats {
  /** Messages written to a socket. */
  readonly messagesSent: number;
  /** Socket writes that carried messages; `messagesSent / batchesWritten` is the coalescing factor. */
  readonly batchesWritten: number;
  /** Messages received and handed to the handler. */
  readonly messagesReceived: number;
  /** Messages dropped: unknown peer, full queue, not encodable, too large, or the transport not running. */
  readonly messagesDropped: number;
  /** Inbound connections closed for a bad handshake, malformed input, a protocol violation or a failed TLS handshake. */
  readonly connectionsRefused: number;
  /** Inbound connections open now (handshaken or not). */
  readonly inboundConnections: number;
  /** Outbound connections established now. */
  readonly outboundConnections: number;
}

/** Before the handshake a caller is unauthenticated: it may not make us buffer more than this. */
const HANDSHAKE_MAX_FRAME_BYTES = 2 + 2 * (1 + MAX_NODE_ID_BYTES);
/** Frames gathered into one socket write; more wait for the next turn, so one write stays bounded. */
const WRITE_BATCH_BYTES = 1024 * 1024;
/** Bound on the set of (reason, peer) pairs already logged, so that it cannot grow without limit. */
const MAX_LOGGED_KEYS = 1024;
/** setTimeout's largest delay. */
const MAX_TIMER_MS = 0x7fffffff;

interface HostPort {
  readonly host: string;
  readonly port: number;
}

type LinkState = "idle" | "connecting" | "connected" | "backoff" | "closed";

/** The sending side towards one peer. */
class PeerLink {
  state: LinkState = "idle";
  socket: net.Socket | null = null;
  timer: NodeJS.Timeout | null = null;
  queue: Message[] = [];
  /** False while the socket's buffer is full; we wait for 'drain' instead of buffering without bound. */
  writable = true;
  /** Consecutive failed or short-lived connections, for the backoff. */
  failures = 0;
  openedAt = 0;
  /** Whether the queue-full warning was logged since the queue last emptied. */
  overflowLogged = false;
  /** The last connection error logged, so that a peer that stays down logs once. */
  lastError = "";

  constructor(
    readonly id: NodeId,
    public address: HostPort,
  ) {}
}

/** The receiving side of one accepted connection. */
interface InboundConnection {
  readonly socket: net.Socket;
  readonly remote: string;
  readonly decoder: FrameDecoder;
  /** The handshake's node id once accepted; identity never comes from the address. */
  peer: NodeId | null;
  timer: NodeJS.Timeout | null;
  closed: boolean;
}

type RunState = "new" | "starting" | "running" | "stopping" | "stopped";

/**
 * A {@link Transport} over TCP, with optional mutual TLS.
 *
 * - Sending: one outbound connection per peer, opened on the first message to it and
 *   reopened with exponential backoff and jitter when it drops. Its first frame is a
 *   handshake (protocol version, cluster id, this node's id). Messages sent to one peer in
 *   one turn of the event loop leave in one socket write. Each peer has a bounded queue;
 *   `send` never throws and drops (and counts) what it cannot send.
 * - Receiving: a connection is accepted only after a handshake from this cluster and from
 *   a member id; then every message on it must be from that id and to this node. Any
 *   malformed frame or message, or any violation, closes that connection (and is logged
 *   once per reason and peer); other connections are unaffected.
 *
 * @example
 * ```ts
 * const transport = new TcpTransport({
 *   id: "a",
 *   listen: "0.0.0.0:7001",
 *   peers: { b: "10.0.0.2:7001", c: "10.0.0.3:7001" },
 *   clusterId: "orders",
 * });
 * ```
 * @public
 */
export class TcpTransport implements Transport {
  private readonly id: NodeId;
  private readonly listenAddress: HostPort;
  private readonly clusterId: string;
  private readonly tls: TcpTlsOptions | undefined;
  private readonly maxFrameBytes: number;
  private readonly maxQueuedMessages: number;
  private readonly connectTimeoutMs: number;
  private readonly handshakeTimeoutMs: number;
  private readonly reconnectMinMs: number;
  private readonly reconnectMaxMs: number;
  private readonly random: () => number;
  private readonly logger: Logger;
  private readonly handshakeFrame: Uint8Array;

  private peers: Map<NodeId, HostPort>;
  private readonly links = new Map<NodeId, PeerLink>();
  private readonly inbound = new Set<InboundConnection>();
  /** Every socket the server accepted, including TLS sockets still in their TLS handshake. */
  private readonly rawSockets = new Set<net.Socket>();
  private readonly dirty = new Set<PeerLink>();
  private readonly logged = new Set<string>();
  private flushImmediate: NodeJS.Immediate | null = null;
  private server: net.Server | null = null;
  private handler: MessageHandler | null = null;
  private state: RunState = "new";
  /** A start in progress; a second start is refused while it is set, and stop waits for it. */
  private starting: Promise<void> | null = null;
  private stopping: Promise<void> | null = null;
  private counters = { messagesSent: 0, batchesWritten: 0, messagesReceived: 0, messagesDropped: 0, connectionsRefused: 0 };

  /**
   * Validates the options; nothing is opened until {@link TcpTransport.start}.
   * @param options - See {@link TcpTransportOptions}.
   * @throws TypeError or RangeError naming the offending option.
   */
  constructor(options: TcpTransportOptions) {
    if (typeof options !== "object" || options === null) throw new TypeError("TcpTransportOptions must be an object");
    this.id = checkId(options.id, "TcpTransportOptions.id");
    this.listenAddress = parseHostPort(options.listen, "TcpTransportOptions.listen", true);
    this.clusterId = checkId(options.clusterId ?? "default", "TcpTransportOptions.clusterId");
    this.tls = checkTls(options.tls);
    this.maxFrameBytes = checkInt(options.maxFrameBytes, DEFAULT_MAX_FRAME_BYTES, "maxFrameBytes", HANDSHAKE_MAX_FRAME_BYTES, 0xffffffff);
    this.maxQueuedMessages = checkInt(options.maxQueuedMessages, 4096, "maxQueuedMessages", 1, Number.MAX_SAFE_INTEGER);
    this.connectTimeoutMs = checkInt(options.connectTimeoutMs, 5000, "connectTimeoutMs", 1, MAX_TIMER_MS);
    this.handshakeTimeoutMs = checkInt(options.handshakeTimeoutMs, 5000, "handshakeTimeoutMs", 1, MAX_TIMER_MS);
    this.reconnectMinMs = checkInt(options.reconnectMinMs, 100, "reconnectMinMs", 1, MAX_TIMER_MS);
    this.reconnectMaxMs = checkInt(options.reconnectMaxMs, Math.max(5000, this.reconnectMinMs), "reconnectMaxMs", 1, MAX_TIMER_MS);
    if (this.reconnectMaxMs < this.reconnectMinMs) {
      throw new RangeError(
        `TcpTransportOptions.reconnectMaxMs (${this.reconnectMaxMs}) must be at least reconnectMinMs (${this.reconnectMinMs})`,
      );
    }
    if (options.random !== undefined && typeof options.random !== "function") {
      throw new TypeError("TcpTransportOptions.random must be a function returning a number in [0, 1)");
    }
    this.random = options.random ?? Math.random;
    this.logger = checkLogger(options.logger);
    this.peers = this.parsePeers(options.peers ?? new Map(), "TcpTransportOptions.peers");
    this.handshakeFrame = encodeFrame(FrameKind.Handshake, encodeHandshake({ clusterId: this.clusterId, nodeId: this.id }));
  }

  /**
   * The address the transport listens on.
   * @returns The bound host and port (the real port when `listen` gave port 0).
   * @throws RaftError with code `INVALID_STATE` when it is not listening.
   */
  address(): { host: string; port: number } {
    const info = this.server?.address();
    if (this.state !== "running" || info === null || info === undefined || typeof info === "string") {
      throw new RaftError("INVALID_STATE", "TcpTransport is not listening");
    }
    return { host: info.address, port: info.port };
  }

  /**
   * The port the transport listens on (useful after listening on port 0). Throws
   * `RaftError` `INVALID_STATE` when it is not listening.
   */
  get port(): number {
    return this.address().port;
  }

  /**
   * A snapshot of the counters.
   * @returns The counters now; a new object on each call.
   */
  stats(): TcpTransportStats {
    let outbound = 0;
    for (const link of this.links.values()) if (link.state === "connected") outbound++;
    return { ...this.counters, inboundConnections: this.inbound.size, outboundConnections: outbound };
  }

  /**
   * Starts listening. May be called again after {@link TcpTransport.stop}.
   * @param handler - Receives every message from an accepted peer.
   * @returns Resolves once listening. Rejects with `RaftError` `INVALID_STATE` when already
   * started, and with `TRANSPORT` when the address cannot be listened on.
   * @throws TypeError when `handler` is not a function.
   */
  start(handler: MessageHandler): Promise<void> {
    if (typeof handler !== "function") throw new TypeError("handler must be a function");
    if (this.starting !== null || this.state === "running") {
      return Promise.reject(new RaftError("INVALID_STATE", "TcpTransport is already started"));
    }
    const starting = this.listen(handler).finally(() => {
      this.starting = null;
    });
    this.starting = starting;
    return starting;
  }

  private async listen(handler: MessageHandler): Promise<void> {
    if (this.stopping !== null) {
      await this.stopping;
      this.stopping = null;
    }
    this.state = "starting";
    const server = this.createServer();
    try {
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen({ host: this.listenAddress.host, port: this.listenAddress.port }, () => {
          server.off("error", reject);
          resolve();
        });
      });
    } catch (err) {
      this.state = "stopped";
      throw new RaftError("TRANSPORT", `cannot listen on ${formatHostPort(this.listenAddress)}: ${errorText(err)}`, {
        cause: err,
      });
    }
    server.on("error", (err) => this.logger.error("tcp transport: server error", { error: errorText(err) }));
    this.server = server;
    this.handler = handler;
    this.state = "running";
  }

  /**
   * Stops listening, closes every connection, drops queued messages and clears every timer. Idempotent.
   * @returns Resolves once every socket is closed.
   */
  stop(): Promise<void> {
    if (this.stopping === null) this.stopping = this.shutdown();
    return this.stopping;
  }

  private async shutdown(): Promise<void> {
    if (this.starting !== null) await this.starting.catch(() => {});
    if (this.state !== "running") {
      this.state = "stopped";
      return;
    }
    this.state = "stopping";
    this.handler = null;
    if (this.flushImmediate !== null) clearImmediate(this.flushImmediate);
    this.flushImmediate = null;
    this.dirty.clear();
    const closing: Promise<void>[] = [];
    for (const link of this.links.values()) {
      this.counters.messagesDropped += link.queue.length;
      link.queue = [];
      const socket = this.closeLink(link);
      if (socket !== null) closing.push(whenClosed(socket));
    }
    this.links.clear();
    for (const conn of this.inbound) this.closeInbound(conn);
    for (const socket of this.rawSockets) {
      socket.destroy();
      closing.push(whenClosed(socket));
    }
    const server = this.server;
    this.server = null;
    if (server !== null) closing.push(new Promise<void>((resolve) => server.close(() => resolve())));
    await Promise.all(closing);
    this.state = "stopped";
  }

  /**
   * Replaces the membership: where to send, and which ids may connect. Connections to
   * and from removed members are closed; a member whose address changed is redialled.
   * The node calls it as the configuration changes (see {@link Transport.setPeerAddresses}).
   * @param addresses - Every other member's `"host:port"`, by id.
   * @throws TypeError or RangeError when an id or address is malformed.
   */
  setPeerAddresses(addresses: ReadonlyMap<NodeId, string>): void {
    const next = this.parsePeers(addresses, "setPeerAddresses");
    for (const [id, link] of this.links) {
      const address = next.get(id);
      if (address === undefined) {
        this.counters.messagesDropped += link.queue.length;
        this.closeLink(link);
        this.links.delete(id);
      } else if (address.host !== link.address.host || address.port !== link.address.port) {
        this.closeLink(link);
        link.address = address;
        link.state = "idle";
        link.failures = 0;
        if (link.queue.length > 0) this.connect(link);
      }
    }
    for (const conn of this.inbound) {
      if (conn.peer !== null && !next.has(conn.peer)) {
        this.logger.info("tcp transport: closing connection from removed member", { peer: conn.peer });
        this.closeInbound(conn);
      }
    }
    this.peers = next;
  }

  /**
   * Queues `message` for `message.to`; messages queued in one turn of the event loop
   * leave in one write. Never throws; drops (and counts) what cannot be sent.
   * @param message - A message from this node.
   */
  send(message: Message): void {
    if (this.state !== "running" || typeof message !== "object" || message === null) {
      this.counters.messagesDropped++;
      return;
    }
    const to = message.to;
    if (message.from !== this.id) {
      // The receiver would close the connection for it, taking good messages down too.
      this.drop("message from another node", String(message.from), { type: message.type });
      return;
    }
    let link = this.links.get(to);
    if (link === undefined) {
      const address = this.peers.get(to);
      if (address === undefined) {
        this.drop("message to an unknown peer", String(to), { type: message.type });
        return;
      }
      link = new PeerLink(to, address);
      this.links.set(to, link);
    }
    if (link.queue.length >= this.maxQueuedMessages) {
      // Drop the newest (as etcd's rafthttp does): Raft retransmits what matters.
      this.counters.messagesDropped++;
      if (!link.overflowLogged) {
        link.overflowLogged = true;
        this.logger.warn("tcp transport: send queue full, dropping messages", { peer: to, max: this.maxQueuedMessages });
      }
      return;
    }
    link.queue.push(message);
    if (link.state === "idle") this.connect(link);
    else if (link.state === "connected") this.scheduleFlush(link);
  }

  // ---- sending ------------------------------------------------------------------------

  private connect(link: PeerLink): void {
    link.state = "connecting";
    const { host, port } = link.address;
    const socket =
      this.tls === undefined
        ? net.connect({ host, port })
        : tls.connect({ host, port, key: this.tls.key, cert: this.tls.cert, ca: this.tls.ca as string | Buffer | (string | Buffer)[] });
    link.socket = socket;
    link.writable = true;
    socket.setNoDelay(true);
    link.timer = setTimeout(() => {
      link.timer = null;
      socket.destroy(new Error(`connect timed out after ${this.connectTimeoutMs} ms`));
    }, this.connectTimeoutMs);
    socket.once(this.tls === undefined ? "connect" : "secureConnect", () => {
      if (link.socket !== socket) return;
      if (link.timer !== null) clearTimeout(link.timer);
      link.timer = null;
      link.state = "connected";
      link.openedAt = performance.now();
      link.lastError = "";
      socket.write(this.handshakeFrame);
      this.logger.debug("tcp transport: connected", { peer: link.id, address: formatHostPort(link.address) });
      this.scheduleFlush(link);
    });
    socket.on("data", () => {
      // Protocol version 1 connections carry data one way only.
      this.logger.warn("tcp transport: unexpected data from peer, closing", { peer: link.id });
      socket.destroy();
    });
    socket.on("drain", () => {
      link.writable = true;
      this.scheduleFlush(link);
    });
    socket.on("error", (err: NodeJS.ErrnoException) => {
      const reason = err.code ?? err.message;
      if (reason !== link.lastError) {
        link.lastError = reason;
        this.logger.warn("tcp transport: connection to peer failed", { peer: link.id, error: err.message });
      }
    });
    socket.on("close", () => this.onLinkClosed(link, socket));
  }

  private onLinkClosed(link: PeerLink, socket: net.Socket): void {
    if (link.socket !== socket) return; // a socket this link already gave up
    if (link.timer !== null) clearTimeout(link.timer);
    link.timer = null;
    link.socket = null;
    link.writable = true;
    if (link.state === "closed" || this.state !== "running") return;
    // A connection refused right after its handshake must not reconnect in a tight loop,
    // so only one that lived long enough resets the backoff.
    if (link.openedAt > 0 && performance.now() - link.openedAt >= this.reconnectMaxMs) link.failures = 0;
    link.openedAt = 0;
    link.failures++;
    const delay = this.backoffMs(link.failures);
    link.state = "backoff";
    link.timer = setTimeout(() => {
      link.timer = null;
      link.state = "idle";
      if (link.queue.length > 0) this.connect(link);
    }, delay);
  }

  /** Exponential backoff with "equal jitter": half fixed, half random, so peers spread out. */
  private backoffMs(failures: number): number {
    const base = Math.min(this.reconnectMaxMs, this.reconnectMinMs * 2 ** Math.min(failures - 1, 30));
    return Math.max(1, Math.floor(base / 2 + this.random() * (base / 2)));
  }

  /** Closes the link's socket and timer; returns the socket so that the caller may await its close. */
  private closeLink(link: PeerLink): net.Socket | null {
    const socket = link.socket;
    link.state = "closed";
    if (link.timer !== null) clearTimeout(link.timer);
    link.timer = null;
    link.socket = null;
    this.dirty.delete(link);
    socket?.destroy();
    return socket;
  }

  private scheduleFlush(link: PeerLink): void {
    this.dirty.add(link);
    // setImmediate rather than a microtask: it also gathers messages sent from the promise
    // continuations of the same turn, which is how the node's Ready loop sends.
    if (this.flushImmediate === null) this.flushImmediate = setImmediate(() => this.flushAll());
  }

  private flushAll(): void {
    this.flushImmediate = null;
    const links = [...this.dirty];
    this.dirty.clear();
    for (const link of links) this.flush(link);
  }

  /** Writes the link's queue (up to WRITE_BATCH_BYTES) as one buffer of frames in one write. */
  private flush(link: PeerLink): void {
    const socket = link.socket;
    if (link.state !== "connected" || socket === null || !link.writable || link.queue.length === 0) return;
    const queue = link.queue;
    const sizes: number[] = [];
    let total = 0;
    let count = 0;
    while (count < queue.length && total < WRITE_BATCH_BYTES) {
      const message = queue[count]!;
      let size: number;
      try {
        size = encodedMessageSize(message);
        if (size + 2 > this.maxFrameBytes) {
          this.drop("message larger than maxFrameBytes", link.id, { type: message.type, bytes: size });
          size = -1;
        }
      } catch (err) {
        this.drop("message not encodable", link.id, { type: String(message.type), error: errorText(err) });
        size = -1;
      }
      sizes.push(size);
      if (size >= 0) total += FRAME_HEADER_BYTES + size;
      count++;
    }
    if (total > 0) {
      const out = Buffer.allocUnsafe(total);
      let pos = 0;
      let sent = 0;
      for (let i = 0; i < count; i++) {
        const size = sizes[i]!;
        if (size < 0) continue;
        pos = writeFrameHeader(out, pos, FrameKind.Message, size);
        const end = encodeMessageInto(queue[i]!, out, pos);
        // Invariant: sizing and writing agree (both read the same, immutable message).
        if (end !== pos + size) throw new Error(`tcp transport: message sized ${size} bytes but wrote ${end - pos}`);
        pos = end;
        sent++;
      }
      this.counters.messagesSent += sent;
      this.counters.batchesWritten++;
      link.writable = socket.write(out);
    }
    // Only now, after encoding from `queue`, remove what was taken.
    if (count === queue.length) link.queue = [];
    else queue.splice(0, count);
    if (link.queue.length === 0) link.overflowLogged = false;
    if (link.queue.length > 0 && link.writable) this.scheduleFlush(link);
  }

  private drop(reason: string, peer: string, fields: Record<string, unknown>): void {
    this.counters.messagesDropped++;
    this.warnOnce(reason, peer, fields);
  }

  // ---- receiving ----------------------------------------------------------------------

  private createServer(): net.Server {
    let server: net.Server;
    if (this.tls === undefined) {
      server = net.createServer((socket) => this.onInbound(socket));
    } else {
      server = tls.createServer(
        {
          key: this.tls.key,
          cert: this.tls.cert,
          ca: this.tls.ca as string | Buffer | (string | Buffer)[],
          requestCert: true,
          rejectUnauthorized: true,
          handshakeTimeout: this.handshakeTimeoutMs,
        },
        (socket) => this.onInbound(socket),
      );
      server.on("tlsClientError", (err: NodeJS.ErrnoException, socket: tls.TLSSocket) => {
        this.counters.connectionsRefused++;
        this.warnOnce("TLS handshake failed", socket.remoteAddress ?? "unknown", { error: err.code ?? err.message });
      });
    }
    // For TLS this is the raw TCP socket, seen before the TLS handshake, so that stop()
    // can close connections still in it.
    server.on("connection", (socket: net.Socket) => {
      if (this.state !== "running") {
        socket.destroy();
        return;
      }
      this.rawSockets.add(socket);
      socket.once("close", () => this.rawSockets.delete(socket));
      socket.on("error", () => {}); // reported through the TLS or inbound socket
    });
    return server;
  }

  private onInbound(socket: net.Socket): void {
    if (this.state !== "running") {
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    const conn: InboundConnection = {
      socket,
      remote: socket.remoteAddress ?? "unknown",
      decoder: new FrameDecoder({ maxFrameBytes: HANDSHAKE_MAX_FRAME_BYTES }),
      peer: null,
      timer: null,
      closed: false,
    };
    conn.timer = setTimeout(() => {
      conn.timer = null;
      this.refuse(conn, "no handshake in time", { timeoutMs: this.handshakeTimeoutMs });
    }, this.handshakeTimeoutMs);
    this.inbound.add(conn);
    socket.on("data", (chunk: Buffer) => this.onInboundData(conn, chunk));
    socket.on("error", (err) => this.logger.debug("tcp transport: inbound connection error", { error: err.message }));
    socket.on("close", () => {
      if (conn.timer !== null) clearTimeout(conn.timer);
      conn.timer = null;
      conn.closed = true;
      this.inbound.delete(conn);
    });
  }

  private onInboundData(conn: InboundConnection, chunk: Uint8Array): void {
    if (conn.closed) return;
    try {
      conn.decoder.push(chunk);
      for (let frame = conn.decoder.next(); frame !== null && !conn.closed; frame = conn.decoder.next()) {
        if (conn.peer === null) this.onHandshake(conn, frame.kind, frame.payload);
        else this.onMessageFrame(conn, conn.peer, frame.kind, frame.payload);
      }
    } catch (err) {
      this.refuse(conn, "malformed input", { error: errorText(err) });
    }
  }

  private onHandshake(conn: InboundConnection, kind: number, payload: Uint8Array): void {
    if (kind !== FrameKind.Handshake) throw new RaftError("CORRUPT", `expected a handshake frame, got kind ${kind}`);
    const handshake = decodeHandshake(payload);
    if (handshake.clusterId !== this.clusterId) {
      this.refuse(conn, "handshake from another cluster", { clusterId: handshake.clusterId }, handshake.nodeId);
      return;
    }
    if (!this.peers.has(handshake.nodeId)) {
      this.refuse(conn, "handshake from a node that is not a member", {}, handshake.nodeId);
      return;
    }
    conn.peer = handshake.nodeId;
    if (conn.timer !== null) clearTimeout(conn.timer);
    conn.timer = null;
    // Authenticated now: allow full-size frames.
    conn.decoder.maxFrameBytes = this.maxFrameBytes;
    this.logger.debug("tcp transport: accepted connection", { peer: conn.peer, remote: conn.remote });
  }

  private onMessageFrame(conn: InboundConnection, peer: NodeId, kind: number, payload: Uint8Array): void {
    if (kind !== FrameKind.Message) throw new RaftError("CORRUPT", `unexpected frame kind ${kind}`);
    const message = decodeMessage(payload);
    if (message.from !== peer) {
      this.refuse(conn, "message from an id other than the handshake's", { from: message.from }, peer);
      return;
    }
    if (message.to !== this.id) {
      this.refuse(conn, "message addressed to another node", { to: message.to }, peer);
      return;
    }
    const handler = this.handler;
    if (handler === null) return;
    this.counters.messagesReceived++;
    try {
      handler(message);
    } catch (err) {
      this.logger.error("tcp transport: message handler threw", { peer, type: message.type, error: errorText(err) });
    }
  }

  private refuse(conn: InboundConnection, reason: string, fields: Record<string, unknown>, peer = conn.peer): void {
    if (conn.closed) return;
    this.counters.connectionsRefused++;
    this.warnOnce(`refused connection: ${reason}`, peer ?? conn.remote, { remote: conn.remote, ...fields });
    this.closeInbound(conn);
  }

  private closeInbound(conn: InboundConnection): void {
    conn.closed = true;
    if (conn.timer !== null) clearTimeout(conn.timer);
    conn.timer = null;
    conn.socket.destroy();
  }

  // ---- helpers ------------------------------------------------------------------------

  /** Logs a warning once per (reason, peer): a misbehaving peer must not flood the log. */
  private warnOnce(reason: string, peer: string, fields: Record<string, unknown>): void {
    const key = `${reason}\u0000${peer}`;
    if (this.logged.has(key)) return;
    if (this.logged.size >= MAX_LOGGED_KEYS) this.logged.clear();
    this.logged.add(key);
    this.logger.warn(`tcp transport: ${reason}`, { peer, ...fields });
  }

  private parsePeers(peers: unknown, what: string): Map<NodeId, HostPort> {
    if (typeof peers !== "object" || peers === null) throw new TypeError(`${what} must be a Map or a record of node id to "host:port"`);
    const entries: Iterable<[unknown, unknown]> =
      peers instanceof Map ? (peers as Map<unknown, unknown>) : Object.entries(peers as Record<string, unknown>);
    const result = new Map<NodeId, HostPort>();
    for (const [id, address] of entries) {
      const nodeId = checkId(id, `${what} id`);
      const parsed = parseHostPort(address, `${what}[${JSON.stringify(nodeId)}]`, false);
      if (nodeId !== this.id) result.set(nodeId, parsed);
    }
    return result;
  }
}

// ---- option validation ------------------------------------------------------------------

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function checkId(value: unknown, what: string): string {
  if (typeof value !== "string" || value.length === 0) throw new TypeError(`${what} must be a non-empty string`);
  if (LONE_SURROGATE.test(value)) throw new RangeError(`${what} contains a lone surrogate, which UTF-8 cannot carry`);
  const bytes = new TextEncoder().encode(value).length;
  if (bytes > MAX_NODE_ID_BYTES) throw new RangeError(`${what} must be at most ${MAX_NODE_ID_BYTES} UTF-8 bytes, got ${bytes}`);
  return value;
}

function checkInt(value: unknown, fallback: number, name: string, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isInteger(value)) {
    throw new TypeError(`TcpTransportOptions.${name} must be an integer, got ${String(value)}`);
  }
  if (value < min || value > max) throw new RangeError(`TcpTransportOptions.${name} must be from ${min} to ${max}, got ${value}`);
  return value;
}

function checkTls(value: unknown): TcpTlsOptions | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "object" || value === null) throw new TypeError("TcpTransportOptions.tls must be an object { key, cert, ca }");
  const t = value as Record<string, unknown>;
  for (const field of ["key", "cert", "ca"] as const) {
    const v = t[field];
    const ok = typeof v === "string" || Buffer.isBuffer(v) || (field === "ca" && Array.isArray(v) && v.length > 0);
    if (!ok) throw new TypeError(`TcpTransportOptions.tls.${field} must be PEM text or a Buffer`);
  }
  return value as TcpTlsOptions;
}

function checkLogger(value: unknown): Logger {
  if (value === undefined) return silentLogger;
  const l = value as Record<string, unknown> | null;
  if (typeof l !== "object" || l === null || !["debug", "info", "warn", "error"].every((k) => typeof l[k] === "function")) {
    throw new TypeError("TcpTransportOptions.logger must have debug, info, warn and error methods");
  }
  return value as Logger;
}

function parseHostPort(value: unknown, what: string, allowPortZero: boolean): HostPort {
  if (typeof value !== "string") throw new TypeError(`${what} must be a "host:port" string`);
  const colon = value.lastIndexOf(":");
  let host = colon > 0 ? value.slice(0, colon) : "";
  const portText = value.slice(colon + 1);
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
  else if (host.includes(":")) throw new TypeError(`${what}: write an IPv6 host in brackets, "[::1]:7000"; got ${JSON.stringify(value)}`);
  if (host.length === 0 || !/^[0-9]{1,5}$/.test(portText)) {
    throw new TypeError(`${what} must be "host:port", got ${JSON.stringify(value)}`);
  }
  const port = Number(portText);
  if (port > 65535 || (port === 0 && !allowPortZero)) {
    throw new RangeError(`${what}: port must be ${allowPortZero ? 0 : 1} to 65535, got ${port}`);
  }
  return { host, port };
}

function formatHostPort(a: HostPort): string {
  return a.host.includes(":") ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function whenClosed(socket: net.Socket): Promise<void> {
  if (socket.closed) return Promise.resolve();
  return new Promise((resolve) => socket.once("close", () => resolve()));
}
