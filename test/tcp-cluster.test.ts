// A 3-node cluster of RaftNodes over TcpTransport on loopback: elects, commits, survives
// a node restart, and heals after its connections are cut (through a proxy that drops
// every socket and refuses new ones for a while).
import { createServer, connect, type Server, type Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { KvStateMachine, MemoryStorage, RaftNode, TcpTransport, type KvCommand, type KvResult } from "../src/index.js";
import { freePort } from "../tools/ports.js";

/** Forwards a port to another; `cut()` drops every connection and refuses new ones until `heal()`. */
class CuttableProxy {
  private readonly sockets = new Set<Socket>();
  private open = true;
  private constructor(private readonly server: Server) {}

  static async start(listenPort: number, targetPort: number): Promise<CuttableProxy> {
    const server = createServer();
    const proxy = new CuttableProxy(server);
    server.on("connection", (client) => {
      if (!proxy.open) {
        client.destroy();
        return;
      }
      const upstream = connect(targetPort, "127.0.0.1");
      for (const s of [client, upstream]) {
        proxy.sockets.add(s);
        s.on("close", () => proxy.sockets.delete(s));
        s.on("error", () => {});
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve) => server.listen(listenPort, "127.0.0.1", resolve));
    return proxy;
  }

  cut(): void {
    this.open = false;
    for (const s of this.sockets) s.destroy();
  }

  heal(): void {
    this.open = true;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

async function until(cond: () => boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});

describe("RaftNodes over TcpTransport on loopback", () => {
  it("elect a leader, commit, survive a node restart, and heal after a connection cut", async () => {
    const ids = ["n1", "n2", "n3"];
    const ports = new Map<string, number>();
    for (const id of ids) ports.set(id, await freePort());
    // n1 and n2 reach n3 through a proxy, so that n3's links can be cut.
    const proxyPort = await freePort();
    const proxy = await CuttableProxy.start(proxyPort, ports.get("n3")!);
    cleanups.push(() => proxy.close());
    const addressFor = (viewer: string, id: string): string => `127.0.0.1:${id === "n3" && viewer !== "n3" ? proxyPort : ports.get(id)}`;
    const storages = new Map(ids.map((id) => [id, new MemoryStorage()]));
    const kvs = new Map<string, KvStateMachine>();
    const nodes = new Map<string, RaftNode<KvCommand, KvResult>>();
    const startNode = async (id: string): Promise<void> => {
      const peers = Object.fromEntries(ids.map((p) => [p, addressFor(id, p)]));
      const kv = new KvStateMachine();
      const node = new RaftNode<KvCommand, KvResult>({
        id,
        peers: ids,
        stateMachine: kv,
        storage: storages.get(id)!,
        transport: new TcpTransport({ id, listen: `127.0.0.1:${ports.get(id)}`, peers, reconnectMinMs: 10, reconnectMaxMs: 100 }),
        tickMs: 20,
      });
      kvs.set(id, kv);
      nodes.set(id, node);
      await node.start();
      cleanups.push(() => node.stop());
    };
    for (const id of ids) await startNode(id);

    await until(() => [...nodes.values()].some((n) => n.isLeader));
    const anyNode = nodes.get("n2")!;
    expect(await anyNode.propose({ op: "put", key: "a", value: "1" })).toEqual({ ok: true, previous: null });

    // Restart n1 on its storage: it comes back with everything and catches up.
    await nodes.get("n1")!.stop();
    await anyNode.propose({ op: "put", key: "b", value: "2" }).catch(async () => anyNode.propose({ op: "put", key: "b", value: "2" }));
    await startNode("n1");
    await nodes.get("n1")!.read({ timeoutMs: 15_000 });
    expect(kvs.get("n1")!.get("b")).toBe("2");

    // Cut n3 off, write without it, heal: it catches up over new connections.
    proxy.cut();
    const leader = (): RaftNode<KvCommand, KvResult> => [...nodes.values()].find((n) => n.isLeader)!;
    await until(() => leader() !== undefined && leader().id !== "n3");
    await leader().propose({ op: "put", key: "c", value: "3" });
    expect(kvs.get("n3")!.get("c")).toBeUndefined();
    proxy.heal();
    await until(() => kvs.get("n3")!.get("c") === "3");
  }, 60_000);

  it("hands over promptly when the leader removes itself (its links stay up until a new leader is known)", async () => {
    const ids = ["n1", "n2", "n3"];
    const ports = new Map<string, number>();
    for (const id of ids) ports.set(id, await freePort());
    const peers = Object.fromEntries(ids.map((p) => [p, `127.0.0.1:${ports.get(p)}`]));
    const tickMs = 100; // an election would take at least electionTicks × tickMs = 1 s
    const nodes = ids.map((id) => new RaftNode<KvCommand, KvResult>({
      id, peers, stateMachine: new KvStateMachine(), storage: new MemoryStorage(),
      transport: new TcpTransport({ id, listen: peers[id]!, peers, reconnectMinMs: 10, reconnectMaxMs: 100 }), tickMs,
    }));
    for (const n of nodes) {
      await n.start();
      cleanups.push(() => n.stop());
    }
    nodes[0]!.campaign();
    await until(() => nodes[0]!.isLeader);
    await nodes[0]!.propose({ op: "put", key: "a", value: "1" });
    // Writes keep the leader busy, so that it still has entries to send after the
    // configuration without it committed, as under real load.
    let writing = true;
    const writer = (async () => {
      for (let i = 0; writing; i++) {
        await Promise.all(Array.from({ length: 20 }, (_, j) => nodes[0]!.propose({ op: "put", key: `w${i}-${j}`, value: "x" }).catch(() => {})));
      }
    })();
    await new Promise((r) => setTimeout(r, 200));
    const started = Date.now();
    await nodes[0]!.removeMember("n1");
    await until(() => nodes[1]!.isLeader || nodes[2]!.isLeader, 10_000);
    const handOverMs = Date.now() - started;
    writing = false;
    await writer;
    expect(handOverMs).toBeLessThan(900);
  }, 30_000);
});
