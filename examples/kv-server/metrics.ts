// Prometheus metrics for one server, in a registry of its own (never prom-client's global
// one, so that two servers in one process, as in an embedding, do not collide).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { KvStateMachine, NodeId, RaftRole, RaftStatus, TcpTransportStats } from "raftkit";

/** What the metrics read when Prometheus scrapes; nothing is polled in between. */
export interface MetricsSources {
  status(): RaftStatus;
  readonly kv: KvStateMachine;
  transportStats?(): TcpTransportStats;
  /** Messages handed to the transport per destination, and delivered by it per sender (running totals). */
  readonly peerMessages?: {
    readonly sentTo: ReadonlyMap<NodeId, number>;
    readonly receivedFrom: ReadonlyMap<NodeId, number>;
    /** Messages to a node missing from the transport's peer map (dropped by it), per destination. */
    readonly unknownPeerDrops: ReadonlyMap<NodeId, number>;
  };
}

/** How a proposal, a read or a membership change ended, as a label value. */
export type Outcome = "ok" | "cas_failed" | "not_leader" | "no_leader" | "timeout" | "dropped" | "unavailable" | "refused" | "error";

export interface KvMetrics {
  readonly registry: Registry;
  /** Starts timing a proposal of `op`; call the returned function with its outcome. */
  proposal(op: string): (outcome: Outcome) => void;
  /** Starts timing a linearizable read; call the returned function with its outcome. */
  read(): (outcome: Outcome) => void;
  /** Counts one answered HTTP request. */
  httpRequest(method: string, route: string, status: number): void;
  /** Counts a change of the known leader. */
  leaderChanged(): void;
  /** Starts timing a membership change; call the returned function with its outcome. */
  membershipChange(): (outcome: Outcome) => void;
  /** Records one durable write (RaftStorage.save) of `seconds`. */
  storageSave(seconds: number): void;
  /** Records one compaction (RaftStorage.compact: snapshot file and log truncation) of `seconds`. */
  storageCompact(seconds: number): void;
}

const roles: readonly RaftRole[] = ["follower", "pre-candidate", "candidate", "leader"];
// Writes wait for an fsync on a majority: from a fraction of a millisecond to seconds in a failover.
const latencyBuckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
// One LevelDB batch and its fsync: tens of microseconds on a write-cached disk, tens of milliseconds on a slow one.
const syncBuckets = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];
// Adding a member copies the log to it.
const membershipBuckets = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

export function createMetrics(src: MetricsSources): KvMetrics {
  const registry = new Registry();
  const registers = [registry];
  collectDefaultMetrics({ register: registry });

  // prom-client calls every collect() synchronously at the start of a scrape, so the
  // gauges, each reading status() (cheap, never blocking), describe the same moment.
  const status = (): RaftStatus => src.status();
  new Gauge({
    name: "raftkit_role",
    help: "1 for the role this node is in, 0 for the others",
    labelNames: ["role"] as const,
    registers,
    collect() {
      const role = status().role;
      for (const r of roles) this.set({ role: r }, r === role ? 1 : 0);
    },
  });
  const gauge = (name: string, help: string, value: (s: RaftStatus) => number): void => {
    new Gauge({ name, help, registers, collect() { this.set(value(status())); } });
  };
  gauge("raftkit_term", "The current Raft term", (s) => s.term);
  gauge("raftkit_commit_index", "The highest log index known to be committed", (s) => s.commitIndex);
  gauge("raftkit_applied_index", "The highest log index applied to the state machine", (s) => s.appliedIndex);
  gauge("raftkit_last_index", "The index of the last entry in this node's log", (s) => s.lastIndex);
  gauge("raftkit_leader_known", "1 when this node knows a leader", (s) => (s.leader === null ? 0 : 1));
  gauge("raftkit_voters", "The number of voting members", (s) => s.voters.length);
  gauge("raftkit_learners", "The number of learners (members that replicate the log without voting)", (s) => s.learners.length);
  gauge("raftkit_membership_joint", "1 while a membership change is half way (joint configuration)", (s) => (s.joint ? 1 : 0));
  new Gauge({ name: "raftkit_kv_keys", help: "Keys in this node's applied state", registers, collect() { this.set(src.kv.size); } });

  const leaderChanges = new Counter({ name: "raftkit_leader_changes_total", help: "Changes of the known leader seen by this node", registers });
  const proposals = new Counter({ name: "raftkit_kv_proposals_total", help: "Writes proposed by this node, by op and outcome", labelNames: ["op", "outcome"] as const, registers });
  const proposalSeconds = new Histogram({ name: "raftkit_kv_proposal_duration_seconds", help: "From proposal to commit and apply (or failure), by op", labelNames: ["op"] as const, buckets: latencyBuckets, registers });
  const reads = new Counter({ name: "raftkit_kv_linearizable_reads_total", help: "Linearizable reads (ReadIndex), by outcome", labelNames: ["outcome"] as const, registers });
  const readSeconds = new Histogram({ name: "raftkit_kv_linearizable_read_duration_seconds", help: "Time to reach a linearizable read point", buckets: latencyBuckets, registers });
  const memberships = new Counter({ name: "raftkit_membership_changes_total", help: "Membership changes (POST and DELETE /v1/members) handled by this node, by outcome", labelNames: ["outcome"] as const, registers });
  const membershipSeconds = new Histogram({ name: "raftkit_membership_change_duration_seconds", help: "From request to the new configuration being applied (or failure)", buckets: membershipBuckets, registers });
  const saveSeconds = new Histogram({
    name: "raftkit_storage_save_duration_seconds",
    help: "Time of each durable write of the hard state and entries (RaftStorage.save: LevelDB batch and fsync), as the node waits for it",
    buckets: syncBuckets,
    registers,
  });
  const compactSeconds = new Histogram({ name: "raftkit_storage_compact_duration_seconds", help: "Time of each snapshot-and-compaction write (RaftStorage.compact)", buckets: [0.001, 0.01, 0.1, 0.5, 1, 5, 30], registers });
  const http = new Counter({ name: "raftkit_http_requests_total", help: "HTTP requests answered, by method, route and status", labelNames: ["method", "route", "status"] as const, registers });

  const stats = src.transportStats;
  if (stats !== undefined) {
    // The transport counts on its own; a scrape adds what it counted since the last one.
    let last = { messagesSent: 0, messagesReceived: 0, messagesDropped: 0 };
    new Counter({
      name: "raftkit_transport_messages_total",
      help: "Raft messages sent, received and dropped by the transport",
      labelNames: ["kind"] as const,
      registers,
      collect() {
        const now = stats();
        this.inc({ kind: "sent" }, Math.max(0, now.messagesSent - last.messagesSent));
        this.inc({ kind: "received" }, Math.max(0, now.messagesReceived - last.messagesReceived));
        this.inc({ kind: "dropped" }, Math.max(0, now.messagesDropped - last.messagesDropped));
        last = { messagesSent: now.messagesSent, messagesReceived: now.messagesReceived, messagesDropped: now.messagesDropped };
      },
    });
    new Gauge({
      name: "raftkit_transport_connections",
      help: "Open transport connections, by direction",
      labelNames: ["direction"] as const,
      registers,
      collect() {
        const now = stats();
        this.set({ direction: "inbound" }, now.inboundConnections);
        this.set({ direction: "outbound" }, now.outboundConnections);
      },
    });
  }
  const peer = src.peerMessages;
  if (peer !== undefined) {
    // TcpTransport counts drops only in total (raftkit_transport_messages_total{kind="dropped"}),
    // so per peer this counts what RaftNode handed over for it, what arrived from it, and
    // the one kind of drop visible from outside: messages to a peer the transport does not know.
    const last = { out: new Map<NodeId, number>(), in: new Map<NodeId, number>(), dropped: new Map<NodeId, number>() };
    const delta = (seen: Map<NodeId, number>, id: NodeId, n: number): number => {
      const d = Math.max(0, n - (seen.get(id) ?? 0));
      seen.set(id, n);
      return d;
    };
    new Counter({
      name: "raftkit_transport_peer_messages_total",
      help: "Raft messages per peer: out = handed to the transport for the peer (then sent, or dropped), in = received from it",
      labelNames: ["peer", "direction"] as const,
      registers,
      collect() {
        for (const [direction, counts] of [["out", peer.sentTo], ["in", peer.receivedFrom]] as const) {
          for (const [id, n] of counts) this.inc({ peer: id, direction }, delta(last[direction], id, n));
        }
      },
    });
    new Counter({
      name: "raftkit_transport_peer_dropped_total",
      help: "Raft messages dropped per peer because the transport has no address for it (other drops: raftkit_transport_messages_total{kind=\"dropped\"})",
      labelNames: ["peer", "reason"] as const,
      registers,
      collect() {
        for (const [id, n] of peer.unknownPeerDrops) this.inc({ peer: id, reason: "unknown_peer" }, delta(last.dropped, id, n));
      },
    });
  }

  return {
    registry,
    proposal(op) {
      const end = proposalSeconds.startTimer({ op });
      return (outcome) => {
        end();
        proposals.inc({ op, outcome });
      };
    },
    read() {
      const end = readSeconds.startTimer();
      return (outcome) => {
        end();
        reads.inc({ outcome });
      };
    },
    httpRequest(method, route, status) {
      http.inc({ method, route, status: String(status) });
    },
    leaderChanged() {
      leaderChanges.inc();
    },
    membershipChange() {
      const end = membershipSeconds.startTimer();
      return (outcome) => {
        end();
        memberships.inc({ outcome });
      };
    },
    storageSave(seconds) {
      saveSeconds.observe(seconds);
    },
    storageCompact(seconds) {
      compactSeconds.observe(seconds);
    },
  };
}
