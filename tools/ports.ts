// Free loopback ports for the process-level tests, the benchmarks and the soaks: the peers
// of a cluster must know each other's addresses before anyone listens.
import { createServer, type AddressInfo, type Server } from "node:net";

/**
 * `count` distinct ports free on 127.0.0.1 right now, picked by the OS: all are listened
 * on at once, then closed, and the children listen on them.
 */
export async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<Server>((resolve, reject) => {
          const server = createServer();
          server.once("error", reject);
          server.listen(0, "127.0.0.1", () => resolve(server));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

/** One port free on 127.0.0.1 right now (nothing listens on it), picked by the OS. */
export async function freePort(): Promise<number> {
  return (await freePorts(1))[0]!;
}

/** Free loopback ports for `ids`, and each id's "127.0.0.1:port" (a cluster's `peers`). */
export async function loopbackPeers(ids: readonly string[]): Promise<{ ports: number[]; peers: Record<string, string> }> {
  const ports = await freePorts(ids.length);
  return { ports, peers: Object.fromEntries(ids.map((id, k) => [id, `127.0.0.1:${ports[k]}`])) };
}

/** Whether `port` can be listened on at 127.0.0.1 right now. */
function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen({ host: "127.0.0.1", port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

const taken = new Set<number>();

/**
 * A free 127.0.0.1 port `p` such that every `p + offset` is free too (the KV server's HTTP
 * API is its Raft port + 1000: `reservePort([0, 1000])`). Ports handed out by this process
 * are never handed out again.
 */
export async function reservePort(offsets: readonly number[] = [0]): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const p = 20_000 + Math.floor(Math.random() * 20_000);
    const ports = offsets.map((o) => p + o);
    if (ports.some((q) => taken.has(q))) continue;
    const free = await Promise.all(ports.map(portFree));
    if (free.every(Boolean)) {
      for (const q of ports) taken.add(q);
      return p;
    }
  }
  throw new Error("no free loopback port found");
}

/** `count` ports from {@link reservePort}. */
export async function reservePorts(count: number, offsets: readonly number[] = [0]): Promise<number[]> {
  const ports: number[] = [];
  for (let i = 0; i < count; i++) ports.push(await reservePort(offsets));
  return ports;
}
