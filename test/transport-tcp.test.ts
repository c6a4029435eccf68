import net from "node:net";
import { describe, expect, it } from "vitest";
import { transportConformance } from "../src/testing/transport-conformance.js";
import { TcpTransport } from "../src/transport/tcp-transport.js";

/** A free loopback port: the peers must know each other's address before anyone listens. */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

transportConformance({
  name: "TcpTransport",
  describe,
  it,
  expect,
  factory: async (ids) => {
    const peers = new Map<string, string>();
    for (const id of ids) peers.set(id, `127.0.0.1:${await freePort()}`);
    const make = (id: string) => new TcpTransport({ id, listen: peers.get(id)!, peers, reconnectMinMs: 10, reconnectMaxMs: 100 });
    return { transports: new Map(ids.map((id) => [id, make(id)])), restart: async (id) => make(id) };
  },
});
