// Raft clusters inside this process for the benchmarks: RaftNodes over MemoryStorage with a
// KvStateMachine each, talking over MemoryNetwork or over TcpTransport on loopback. Built
// only from the public API ("raftkit"), as users do.
import { KvStateMachine, MemoryNetwork, MemoryStorage, RaftNode, TcpTransport, type KvCommand, type KvResult, type RaftNodeOptions } from "raftkit";
import { reservePort } from "../../tools/ports.js";

export type TransportKind = "memory" | "tcp";
export type KvRaftNode = RaftNode<KvCommand, KvResult>;

/** The options a benchmark may set; the cluster provides the rest. */
export type Tuning = Omit<RaftNodeOptions<KvCommand, KvResult>, "id" | "peers" | "stateMachine" | "storage" | "transport">;

export interface Member {
  readonly id: string;
  readonly node: KvRaftNode;
  readonly kv: KvStateMachine;
  /** "127.0.0.1:port" over TCP; undefined over MemoryNetwork. */
  readonly address: string | undefined;
}

export const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export class InprocCluster {
  /** Every node started, removed ones included, by id. */
  readonly members = new Map<string, Member>();
  private readonly network = new MemoryNetwork();

  private constructor(
    readonly transport: TransportKind,
    private readonly tuning: Tuning,
  ) {}

  /** Starts `ids` as the initial voters, makes `ids[0]` campaign, resolves once it leads. */
  static async start(ids: readonly string[], transport: TransportKind, tuning: Tuning): Promise<InprocCluster> {
    const cluster = new InprocCluster(transport, tuning);
    const addresses: Record<string, string> = {};
    if (transport === "tcp") for (const id of ids) addresses[id] = `127.0.0.1:${await reservePort()}`;
    const peers = transport === "tcp" ? addresses : ids;
    await Promise.all(ids.map((id) => cluster.startNode(id, peers, addresses)));
    cluster.get(ids[0]!).node.campaign();
    await cluster.waitForLeader();
    return cluster;
  }

  /**
   * Starts a node with `peers: []`, to be added with `addMember(id, address)`. Its TCP
   * transport accepts the current members (all nodes started and not stopped).
   */
  async startJoiner(id: string): Promise<Member> {
    const addresses: Record<string, string> = {};
    if (this.transport === "tcp") {
      for (const m of this.members.values()) if (m.address !== undefined) addresses[m.id] = m.address;
      addresses[id] = `127.0.0.1:${await reservePort()}`;
    }
    return this.startNode(id, [], addresses);
  }

  get(id: string): Member {
    const m = this.members.get(id);
    if (m === undefined) throw new Error(`no node ${id}`);
    return m;
  }

  /** The node that believes it leads and is a voter of its own configuration, if any. */
  leader(): Member | undefined {
    for (const m of this.members.values()) {
      if (m.node.isLeader && m.node.status().voters.includes(m.id)) return m;
    }
    return undefined;
  }

  /** Resolves with the leader, polling every millisecond; rejects after `timeoutMs`. */
  async waitForLeader(timeoutMs = 10_000, except?: string): Promise<Member> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const l = this.leader();
      if (l !== undefined && l.id !== except) return l;
      if (performance.now() > deadline) throw new Error(`no leader after ${timeoutMs} ms`);
      await pause(1);
    }
  }

  async stop(): Promise<void> {
    await Promise.all([...this.members.values()].map((m) => m.node.stop()));
  }

  private async startNode(id: string, peers: readonly string[] | Record<string, string>, addresses: Record<string, string>): Promise<Member> {
    const kv = new KvStateMachine();
    const address = addresses[id];
    const transport =
      this.transport === "tcp" ? new TcpTransport({ id, listen: address!, peers: addresses }) : this.network.transport(id);
    const node: KvRaftNode = new RaftNode<KvCommand, KvResult>({ ...this.tuning, id, peers, stateMachine: kv, storage: new MemoryStorage(), transport });
    node.on("error", (err) => process.stderr.write(`node ${id} stopped: ${err.message}\n`));
    const member: Member = { id, node, kv, address };
    this.members.set(id, member);
    await node.start();
    return member;
  }
}
