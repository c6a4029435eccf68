import { describe, expect, it } from "vitest";
import { transportConformance } from "../src/testing/transport-conformance.js";
import { TcpTransport } from "../src/transport/tcp-transport.js";
import { freePort } from "../tools/ports.js";

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
